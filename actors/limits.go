package actors

import (
	"net"
	"sync/atomic"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds the limits the hub keeps per remote address and in
// total, so that one address cannot take what others need: its sessions
// (only those that have connected count against MaxSessionsPerIP; those
// that have not are bounded by MaxPendingSessionsPerIP, oldest evicted
// first), the subscriptions they hold, and the bytes they keep queued.

// hostOf returns the host part of a remote address ("ip:port").
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// countState is how a session counts for its address.
type countState uint8

const (
	countPending   countState = iota // handshaken, not connected yet
	countConnected                   // its first connect was answered
	countReleased                    // counted no more (ended or evicted)
)

// address is what the hub counts for one remote host.
type address struct {
	host      string
	connected int           // sessions that have had a connect answered; under Hub.ipMu
	pending   []*sessionRef // sessions not connected yet, oldest first; under Hub.ipMu
	subs      atomic.Int64  // subscriptions its sessions hold
	bytes     atomic.Int64  // bytes its sessions keep for their clients
}

// admit counts a new session from ref.ip, before it is spawned: it
// refuses one when the address has MaxSessionsPerIP connected sessions.
func (h *Hub) admit(ref *sessionRef) bool {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	a := h.perIP[ref.ip]
	if a == nil {
		a = &address{host: ref.ip}
		h.perIP[ref.ip] = a
	}
	if max := h.opts.MaxSessionsPerIP; max > 0 && a.connected >= max {
		h.forgetAddress(a)
		return false
	}
	a.pending = append(a.pending, ref)
	ref.addr = a
	return true
}

// evictPending makes room among the address's sessions that have not
// connected yet, once a new one is spawned: past MaxPendingSessionsPerIP
// it returns the oldest, for the caller to stop, so that a flood of
// handshakes from one address (a proxy) cannot lock out its other users.
// Only sessions spawned (whose pid is set) are evicted.
func (h *Hub) evictPending(ref *sessionRef) *sessionRef {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	ref.spawned = true
	a := ref.addr
	max := h.opts.MaxPendingSessionsPerIP
	if a == nil || max <= 0 || len(a.pending) <= max {
		return nil
	}
	for i, old := range a.pending {
		if old.spawned && old != ref {
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			old.counted = countReleased // not again when it ends
			h.stats.evicted.Add(1)
			return old
		}
	}
	return nil
}

// markConnected moves a session from its address's pending sessions to
// its connected ones, at its first connect; it reports false (and
// releases the session) when the address has MaxSessionsPerIP connected
// sessions already.
func (h *Hub) markConnected(ref *sessionRef) bool {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	a := ref.addr
	switch {
	case a == nil || ref.counted == countConnected:
		return true
	case ref.counted == countReleased:
		return false // evicted
	}
	a.removePending(ref)
	if max := h.opts.MaxSessionsPerIP; max > 0 && a.connected >= max {
		ref.counted = countReleased
		h.forgetAddress(a)
		return false
	}
	a.connected++
	ref.counted = countConnected
	return true
}

// release forgets a session that ended (or was never spawned).
func (h *Hub) release(ref *sessionRef) {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	a := ref.addr
	if a == nil || ref.counted == countReleased {
		return
	}
	if ref.counted == countConnected {
		a.connected--
	} else {
		a.removePending(ref)
	}
	ref.counted = countReleased
	h.forgetAddress(a)
}

// forgetAddress drops an address with no sessions left; under ipMu.
func (h *Hub) forgetAddress(a *address) {
	if a.connected <= 0 && len(a.pending) == 0 && h.perIP[a.host] == a {
		delete(h.perIP, a.host)
	}
}

func (a *address) removePending(ref *sessionRef) {
	for i, r := range a.pending {
		if r == ref {
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			return
		}
	}
}

// errTooManySessions refuses a session past MaxSessionsPerIP.
func errTooManySessions(ip string) *protocol.Error {
	return &protocol.Error{Code: protocol.CodeDenied, Args: []string{ip}, Message: "Too many sessions from this address",
		Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(10000)}}
}

// holdBrowser reserves one of the browser's held long polls; it reports
// false when its other clients already hold Options.MaxSessionsPerBrowser.
func (h *Hub) holdBrowser(id string) bool {
	h.browserMu.Lock()
	defer h.browserMu.Unlock()
	if max := h.opts.MaxSessionsPerBrowser; max > 0 && h.browserHeld[id] >= max {
		return false
	}
	h.browserHeld[id]++
	return true
}

func (h *Hub) releaseBrowser(id string) {
	h.browserMu.Lock()
	defer h.browserMu.Unlock()
	if h.browserHeld[id]--; h.browserHeld[id] <= 0 {
		delete(h.browserHeld, id)
	}
}
