package actors

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// handshake creates a session for a remote client.
func (h *Hub) handshake(m *protocol.Message, remoteAddr string) []byte {
	r := protocol.ReplyTo(m)
	r.Version = protocol.Version
	r.SupportedConnectionTypes = h.opts.ConnectionTypes
	none := &protocol.Advice{Reconnect: protocol.ReconnectNone}
	if h.draining.Load() {
		e := &protocol.Error{Code: protocol.CodeServiceUnavailable, Message: "Server shutting down",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(1000)}}
		return r.Fail(e).AppendJSON(nil)
	}
	if m.Version == "" || !strings.HasPrefix(m.Version, "1") {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: []string{m.Version}, Message: "Unsupported version", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	if !h.commonType(m.SupportedConnectionTypes) {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: m.SupportedConnectionTypes, Message: "No common connection type", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	c := &Client{ID: h.newClientID(), RemoteAddr: remoteAddr, Flags: map[string]any{}}
	if err := h.authorize(c, m); err != nil {
		err.Advice = none
		return r.Fail(err).AppendJSON(nil)
	}
	ip := hostOf(remoteAddr)
	if !h.takeIPSlot(ip) {
		e := &protocol.Error{Code: protocol.CodeDenied, Args: []string{ip}, Message: "Too many sessions from this address",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(10000)}}
		return r.Fail(e).AppendJSON(nil)
	}
	ref := newSessionRef(c.ID, false, ip)
	ref.ack = wantsAck(m.Ext)
	if err := h.spawnSession(ref, c); err != nil {
		h.releaseIPSlot(ip)
		h.log.Error().Err(err).Msg("spawn session")
		return r.Fail(&protocol.Error{Code: protocol.CodeServerError, Message: "Cannot create session",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(1000)}}).AppendJSON(nil)
	}
	h.stats.handshakes.Add(1)
	r.ClientID = c.ID
	r.Successful = true
	r.Advice = h.connectAdvice()
	if ref.ack {
		r.Ext = json.RawMessage(`{"ack":true}`)
	}
	return r.AppendJSON(make([]byte, 0, 256))
}

func (h *Hub) commonType(types []string) bool {
	for _, t := range types {
		if h.servesType(t) {
			return true
		}
	}
	return false
}

// servesType reports whether connection type t is one of
// Options.ConnectionTypes.
func (h *Hub) servesType(t string) bool {
	for _, s := range h.opts.ConnectionTypes {
		if t == s {
			return true
		}
	}
	return false
}

// spawnSession asks the supervisor for a new session actor and waits.
func (h *Hub) spawnSession(ref *sessionRef, c *Client) error {
	if h.closed.Load() {
		return ErrClosed
	}
	reply := make(chan error, 1)
	h.root.Send(h.supervisor, &spawnSession{ref: ref, client: c, reply: reply})
	select {
	case err := <-reply:
		if err != nil {
			return fmt.Errorf("spawn session %s: %w", ref.id, err)
		}
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("spawn session %s: supervisor did not answer", ref.id)
	}
}

// connectAdvice is the advice sent with handshake and connect replies.
func (h *Hub) connectAdvice() *protocol.Advice {
	return &protocol.Advice{
		Reconnect: protocol.ReconnectRetry,
		Interval:  protocol.Int(0),
		Timeout:   protocol.Int(h.opts.PollTimeout.Milliseconds()),
	}
}
