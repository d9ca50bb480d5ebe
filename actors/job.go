package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// job is one unit of work a session does in order: a batch of a remote
// request (batchJob, batch.go) or a subscribe or unsubscribe of a local
// client (localJob, localop.go). A job may wait for acks from channel
// actors or for hook answers; the session's other work (deliveries, held
// connects) goes on meanwhile, but the next job waits.
type job interface {
	// state is what the run loop needs of every job.
	state() *jobState
	// next starts the job's next step and reports true, or reports false
	// when there is none left.
	next(ctx actor.Context, s *session) bool
	// end answers whoever waits for the finished job; it reports whether
	// the session must stop (the batch disconnected).
	end(ctx actor.Context, s *session) (stop bool)
	// abort answers whoever waits for the job with gone, as the session
	// ends before the job does.
	abort(ctx actor.Context, s *session, gone *protocol.Error)
}

// jobState is the part of a job the run loop drives.
type jobState struct {
	waiting int             // acks (or hook answers) outstanding
	after   func()          // runs once they have all arrived
	err     *protocol.Error // a subscribe the hub refused meanwhile
}

func (st *jobState) state() *jobState { return st }

// run starts or continues jobs in order until one waits.
func (s *session) run(ctx actor.Context) {
	for {
		if s.cur == nil {
			if len(s.backlog) == 0 {
				return
			}
			s.cur = s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
		}
		j := s.cur
		st := j.state()
		if st.waiting > 0 {
			return
		}
		if f := st.after; f != nil {
			st.after = nil
			f()
			continue
		}
		if j.next(ctx, s) {
			continue
		}
		s.cur = nil
		if j.end(ctx, s) {
			ctx.Stop(ctx.Self())
			return
		}
	}
}

// ack counts one ack (or hook answer) for the current job and resumes it.
func (s *session) ack(ctx actor.Context) {
	if s.cur != nil && s.cur.state().waiting > 0 {
		s.cur.state().waiting--
		s.run(ctx)
	}
}
