package actors

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds every message the hub's actors send each other, by
// who sends them to whom (ordering.txt lists the sends and waits). The
// messages an application sends (Publish, Subscribe, Unsubscribe, Push,
// Disconnect, and their *Result) are the actor API, in api.go.

// Message is a published message as its subscribers receive it. One Message
// is shared by every subscriber of a publish: treat it as read-only.
type Message struct {
	// Channel is the channel the message was published on.
	Channel string
	// Data is the message's data, as JSON.
	Data json.RawMessage
	// ID is the publisher's message id, as JSON (a string or a number), or nil.
	ID json.RawMessage
	// Ext is the publisher's ext object, as JSON, or nil.
	Ext json.RawMessage
	// ClientID is the publisher's client id, empty for an anonymous publish.
	// Local subscribers see it (the Perl reply bot uses it to skip its own
	// messages); it is never sent to remote clients.
	ClientID string
	// ReplayID and Epoch are the message's position in its channel's
	// history (History), when its channel rule keeps one; 0 and "" when
	// not. Remote clients get them in the delivery's ext as "replayId"
	// and "replayEpoch".
	ReplayID int64
	Epoch    string

	salesforce bool // also put ReplayID in data.event.replayId (acl.ShapeSalesforce)

	wireOnce   sync.Once
	wire       []byte
	fromBroker bool // published on another node
}

// wireJSON returns the message's delivery JSON, encoded once and shared by
// every remote subscriber.
func (m *Message) wireJSON() []byte {
	m.wireOnce.Do(func() {
		data, ext := m.Data, m.Ext
		if m.ReplayID != 0 {
			ext = replayExt(ext, m.ReplayID, m.Epoch)
			if m.salesforce {
				data = salesforceData(data, m.ReplayID)
			}
		}
		m.wire = protocol.AppendDelivery(make([]byte, 0, 64+len(data)+len(m.Channel)+len(ext)), m.Channel, data, m.ID, ext)
	})
	return m.wire
}

// ---- transport -> session ----

// remoteBatch is a run of consecutive messages of one request for one
// client. The session answers it exactly once on result.
type remoteBatch struct {
	msgs    []*protocol.Message
	browser string              // BAYEUX_BROWSER id of the request, or ""
	header  http.Header         // the request's headers, for hooks
	push    func([][]byte) bool // the pushing transport of the request, or nil
	result  chan *batchResult   // buffered(1); nil when notify is set
	// notify, when set, takes the answer instead of result, on the
	// session's goroutine (Hub.SubmitFunc); it must not block. It returns
	// false when the request went away, and the session keeps the
	// deliveries.
	notify func(*batchResult) bool
	// abandoned is set by the session when the request went away; read and
	// written on the session's goroutine only.
	abandoned bool
}

// answer hands the session's answer to whoever waits for it; false when
// nobody does any more.
func (b *remoteBatch) answer(res *batchResult) bool {
	if b.notify != nil {
		return b.notify(res)
	}
	b.result <- res
	return true
}

// batchResult is a session's answer to a remoteBatch: replies in message
// order, then the deliveries flushed by a connect, then the connect reply.
type batchResult struct {
	replies    [][]byte
	deliveries [][]byte
	tail       [][]byte
}

// abandon tells a session that the request behind b went away (the HTTP
// client closed the connection or the server is stopping its handler).
type abandon struct{ b *remoteBatch }

// ---- session <-> hub <-> channel ----

// channelFlush makes a channel actor publish its list and send its acks.
type channelFlush struct{}

// subscribeReq asks the hub to add session to the channel actor for pattern,
// creating it if needed.
type subscribeReq struct {
	pattern string
	session *actor.PID
}

// addSubscriber is the hub's forward of a subscribeReq to a channel actor.
type addSubscriber struct{ session *actor.PID }

// subscribed is a channel actor's ack to a session: from now on the session
// gets the channel's deliveries.
type subscribed struct {
	pattern string
	channel *actor.PID
}

// subscribeFailed tells a session that the hub refused a subscribe.
type subscribeFailed struct {
	pattern string
	err     *protocol.Error
}

// removeSubscriber asks a channel actor to drop a session.
type removeSubscriber struct{ session *actor.PID }

// unsubscribed is a channel actor's ack: no delivery from this channel
// follows it.
type unsubscribed struct{ pattern string }

// channelIdle tells the hub that a channel actor has no subscribers left
// after adds additions; the hub removes it unless a subscribe is in flight.
type channelIdle struct {
	pattern string
	pid     *actor.PID
	adds    uint64
}

// ---- hooks -> session ----

// hookWait is a session's wait for the hook answers about one message: one
// per channel asked about. It continues the job with then when every
// answer allowed, and fails the message with the first refusal otherwise.
type hookWait struct {
	job  *batchJob
	msg  *protocol.Message
	left int
	err  *protocol.Error
	then func()
}

// hookDone is a hook's answer, sent to the session that asked.
type hookDone struct {
	wait *hookWait
	err  *protocol.Error
}

// ---- session self-messages and supervisor ----

// flushNow makes a remote session send what it has queued (outbox
// flush), behind the deliveries already in its mailbox.
type flushNow struct{}

// tokenExpired tells a session that its client's token has expired.
type tokenExpired struct{}

// pollTimeout ends the held connect of generation gen at the poll
// timeout.
type pollTimeout struct{ gen uint64 }

// expire asks a session to end if its client is still idle.
type expire struct{}

// drain makes a session answer its held connect at once and stop holding
// new ones (hub shutdown). Sent to the supervisor, done is closed when every
// session has done so (or ended).
type drain struct{ done chan struct{} }

// drained is a session's answer to drain, to the supervisor.
type drained struct{ pid *actor.PID }

// spawnSession asks the supervisor to start a session actor.
type spawnSession struct {
	ref    *sessionRef
	client *Client
	reply  chan error
}

// sweep makes the supervisor look for idle sessions (its ticker).
type sweep struct{}

// startSupervisor asks the hub actor to spawn the supervisor, whose PID
// it sends on ready.
type startSupervisor struct{ ready chan *actor.PID }

// kick asks a session to end (Disconnect).
type kick struct{ noReconnect bool }

// forLocal asks the supervisor to pass op to a client's session, creating a
// local session first when create is set and none exists.
type forLocal struct {
	clientID string
	create   bool
	op       any
	replyTo  *actor.PID
}

// ---- local clients ----

// localSubscribe subscribes a session from Go code or another actor; the
// outcome goes to reply (a LocalClient call) and/or replyTo (an actor that
// sent a Subscribe with a sender) as a *Result.
type localSubscribe struct {
	pattern string
	sink    sink
	reply   chan error
	replyTo *actor.PID
}

// localUnsubscribe is localSubscribe's counterpart.
type localUnsubscribe struct {
	pattern string
	reply   chan error
	replyTo *actor.PID
}
