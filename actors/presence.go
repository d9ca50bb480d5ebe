package actors

// This file holds presence: who is subscribed to the channels whose rule
// asks for it (acl.Rule.Presence). The session calls presenceJoined when
// one of its subscriptions to such a channel takes effect and presenceLeft
// when it ends (unsubscribe, or the session ending).

// presenceJoined notes that ref's client is now subscribed to channel.
func (h *Hub) presenceJoined(ref *sessionRef, channel string) {}

// presenceLeft notes that ref's client is no longer subscribed to channel.
func (h *Hub) presenceLeft(ref *sessionRef, channel string) {}
