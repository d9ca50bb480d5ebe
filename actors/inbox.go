package actors

import "sync/atomic"

// inbox counts the deliveries (*Message) in a remote session's mailbox
// that the session has not received yet. It is the mailbox's middleware:
// MessagePosted runs on the sender's goroutine as a delivery is posted,
// and the session counts each one out as it receives it (session.Receive).
// While more deliveries wait behind the one being received, the outbox
// queues it rather than pushing it alone, and pushes them together once
// the last has arrived (its flushNow comes after them in the mailbox): so
// under load a connection is handed batches, not a frame per delivery,
// and when deliveries come one at a time each is pushed at once.
type inbox struct {
	waiting atomic.Int32
}

// MailboxStarted is part of actor.MailboxMiddleware.
func (*inbox) MailboxStarted() {}

// MessagePosted counts a delivery in.
func (b *inbox) MessagePosted(m any) {
	if _, ok := m.(*Message); ok {
		b.waiting.Add(1)
	}
}

// MessageReceived is part of actor.MailboxMiddleware: the session counts
// deliveries out itself, before handling them.
func (*inbox) MessageReceived(any) {}

// MailboxEmpty is part of actor.MailboxMiddleware.
func (*inbox) MailboxEmpty() {}
