package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// This file holds what the nodes know of each other: membership by
// heartbeats on <prefix>.node, and questions to every node (Query) on
// <prefix>.query, answered on the asker's reply subject.

// Defaults for the membership and queries of a NATS broker.
const (
	// DefaultHeartbeatInterval is how often a node announces itself.
	DefaultHeartbeatInterval = time.Second
	// heartbeatsMissed is how many heartbeats a node may miss before the
	// others stop waiting for its answers.
	heartbeatsMissed = 3
	// maxAnswering bounds the queries a node answers at once; beyond it
	// it answers "busy".
	maxAnswering = 16
)

// heartbeat is a node's announcement on <prefix>.node. Hello asks the
// others to announce themselves at once (sent at Start); Bye says the
// node is leaving (sent at Close).
type heartbeat struct {
	Node   string `json:"n"`
	Origin string `json:"o"`
	Hello  bool   `json:"hello,omitempty"`
	Bye    bool   `json:"bye,omitempty"`
}

// query is a question on <prefix>.query; answer is one node's reply.
type query struct {
	From string `json:"from"`
	Op   string `json:"op"`
	Body []byte `json:"b,omitempty"`
}

type answer struct {
	Node string `json:"n"`
	Body []byte `json:"b,omitempty"`
	Err  string `json:"e,omitempty"`
}

// members is a node's view of the other live nodes.
type members struct {
	mu   sync.Mutex
	seen map[string]time.Time // node -> last heartbeat
}

func (m *members) saw(node string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[string]time.Time)
	}
	m.seen[node] = at
}

func (m *members) left(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, node)
}

// alive returns the nodes heard from within ttl, sorted.
func (m *members) alive(now time.Time, ttl time.Duration) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for node, at := range m.seen {
		if now.Sub(at) <= ttl {
			out = append(out, node)
		} else {
			delete(m.seen, node)
		}
	}
	sort.Strings(out)
	return out
}

// announce publishes this node's heartbeat on nc. The broker subscribes
// every connection to heartbeats and queries (connect, in nats.go) and
// announces itself on joining and every HeartbeatInterval
// (heartbeatLoop).
func (b *NATS) announce(nc *nats.Conn, hb heartbeat) {
	hb.Node, hb.Origin = b.node, b.origin
	data, _ := json.Marshal(hb)
	if err := nc.Publish(b.nodeSubject, data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		b.log.Debug().Err(err).Msg("heartbeat not sent")
	}
}

func (b *NATS) onHeartbeat(m *nats.Msg) {
	var hb heartbeat
	if json.Unmarshal(m.Data, &hb) != nil || !nodeName.MatchString(hb.Node) || hb.Node == b.node {
		return
	}
	if hb.Bye {
		b.members.left(hb.Node)
		return
	}
	b.members.saw(hb.Node, time.Now())
	if nc := b.nc.Load(); hb.Hello && !b.closed.Load() && nc != nil {
		b.announce(nc, heartbeat{})
	}
}

// onQuery answers another node's question on a goroutine of its own, so
// that a slow answer holds up neither heartbeats nor other questions.
func (b *NATS) onQuery(m *nats.Msg) {
	var q query
	if json.Unmarshal(m.Data, &q) != nil || m.Reply == "" || q.From == b.node {
		return
	}
	select {
	case b.answering <- struct{}{}:
	default:
		b.reply(m, answer{Node: b.node, Err: "busy"})
		return
	}
	b.answerMu.Lock()
	defer b.answerMu.Unlock()
	if b.closed.Load() {
		<-b.answering
		return
	}
	b.answers.Add(1)
	go func() {
		defer b.answers.Done()
		defer func() { <-b.answering }()
		body, err := b.inbox.Answer(q.Op, q.Body)
		a := answer{Node: b.node, Body: body}
		if err != nil {
			a = answer{Node: b.node, Err: err.Error()}
		}
		b.reply(m, a)
	}()
}

func (b *NATS) reply(m *nats.Msg, a answer) {
	data, err := json.Marshal(a)
	if nc := b.nc.Load(); err == nil && nc != nil {
		if perr := b.checkPayload(nc, len(data)); perr != nil {
			// Say so instead: the asker would otherwise wait it out.
			_ = b.refuse(perr)
			data, err = json.Marshal(answer{Node: b.node, Err: "answer not sent: " + perr.Error()})
		}
	}
	if err == nil {
		err = m.Respond(data)
	}
	if err != nil {
		b.log.Debug().Err(err).Msg("query answer not sent")
	}
}

// Query asks every other node op and collects their answers until each
// node heard from within the last few heartbeats has answered, or ctx
// ends. A node that joins meanwhile and answers is included; nodes known
// alive that did not answer are returned in missing.
func (b *NATS) Query(ctx context.Context, op string, body []byte) ([]actors.NodeAnswer, []string, error) {
	nc, err := b.conn()
	if err != nil {
		return nil, nil, fmt.Errorf("broker: query %s: %w", op, err)
	}
	expect := b.members.alive(time.Now(), heartbeatsMissed*b.opts.HeartbeatInterval)
	if len(expect) == 0 {
		return nil, nil, nil
	}
	data, err := json.Marshal(query{From: b.node, Op: op, Body: body})
	if err != nil {
		return nil, expect, fmt.Errorf("broker: query %s: %w", op, err)
	}
	if err := b.checkSubject(b.querySubject); err != nil {
		return nil, expect, b.refuse(fmt.Errorf("broker: query %s: %w", op, err))
	}
	if err := b.checkPayload(nc, len(data)); err != nil {
		return nil, expect, b.refuse(fmt.Errorf("broker: query %s: %w", op, err))
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, expect, fmt.Errorf("broker: query %s: %w", op, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(b.querySubject, inbox, data); err != nil {
		return nil, expect, fmt.Errorf("broker: query %s: %w", op, err)
	}
	waiting := make(map[string]bool, len(expect))
	for _, n := range expect {
		waiting[n] = true
	}
	var answers []actors.NodeAnswer
	got := make(map[string]bool)
	for len(waiting) > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			b.log.Debug().Err(err).Msg("query ends")
			break // ctx ended: the rest are missing
		}
		var a answer
		if json.Unmarshal(m.Data, &a) != nil || a.Node == "" || got[a.Node] {
			continue
		}
		got[a.Node] = true
		delete(waiting, a.Node)
		answers = append(answers, actors.NodeAnswer{Node: a.Node, Body: a.Body, Err: a.Err})
	}
	missing := make([]string, 0, len(waiting))
	for n := range waiting {
		missing = append(missing, n)
	}
	sort.Strings(missing)
	sort.Slice(answers, func(i, j int) bool { return answers[i].Node < answers[j].Node })
	return answers, missing, nil
}

// Nodes returns the other nodes this one has heard from recently.
func (b *NATS) Nodes() []string {
	return b.members.alive(time.Now(), heartbeatsMissed*b.opts.HeartbeatInterval)
}
