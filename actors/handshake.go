package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// handshake creates a session for a remote client, once the client has
// shown who it is (identify) and MessageACL has allowed it.
func (h *Hub) handshake(m *protocol.Message, req *RemoteRequest) []byte {
	r := protocol.ReplyTo(m)
	r.Version = protocol.Version
	r.SupportedConnectionTypes = *h.connTypes.Load()
	none := &protocol.Advice{Reconnect: protocol.ReconnectNone}
	if h.draining.Load() {
		return r.Fail(protocol.ErrShuttingDown(protocol.ReconnectHandshake)).AppendJSON(nil)
	}
	if m.Version == "" || !strings.HasPrefix(m.Version, "1") {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: []string{m.Version}, Message: "Unsupported version", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	if !h.commonType(m.SupportedConnectionTypes) {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: m.SupportedConnectionTypes, Message: "No common connection type", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	c := &Client{ID: h.newClientID(), RemoteAddr: req.RemoteAddr, Flags: map[string]any{}}
	id, sub, expires, perr := h.identify(m, req, c.ID)
	if perr != nil {
		return r.Fail(perr).AppendJSON(nil)
	}
	c.UserID, c.Info = id.UserID, id.Info
	if err := h.authorize(c, m); err != nil {
		err.Advice = none
		h.refuse(actionHandshake, "", refusedByACL, c.ID, err)
		return r.Fail(err).AppendJSON(nil)
	}
	if err := h.overMemory(); err != nil {
		h.refuse(actionHandshake, "", refusedByMemory, c.ID, err)
		return r.Fail(err).AppendJSON(nil)
	}
	ip := hostOf(req.RemoteAddr)
	ref := newSessionRef(c.ID, false, ip)
	if !h.admit(ref) {
		return r.Fail(errTooManySessions(ip)).AppendJSON(nil)
	}
	ref.ack = wantsAck(m.Ext)
	ref.subject, ref.info, ref.expires, ref.remote = sub, id.Info, expires, req.RemoteAddr
	if err := h.spawnSession(ref, c); err != nil {
		h.release(ref)
		h.log.Error().Err(err).Msg("spawn session")
		return r.Fail(&protocol.Error{Code: protocol.CodeServerError, Message: "Cannot create session",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(1000)}}).AppendJSON(nil)
	}
	if old := h.evictPending(ref); old != nil {
		h.root.Send(old.pid, &kick{})
	}
	h.stats.handshakes.Add(1)
	r.ClientID = c.ID
	r.Successful = true
	r.Advice = h.connectAdvice()
	switch {
	case ref.ack && h.historyOn:
		r.Ext = json.RawMessage(`{"ack":true,"replay":true}`)
	case ref.ack:
		r.Ext = json.RawMessage(`{"ack":true}`)
	case h.historyOn:
		// The Salesforce replay extension's sign that replay is served.
		r.Ext = json.RawMessage(`{"replay":true}`)
	}
	return r.AppendJSON(make([]byte, 0, 256))
}

// identify establishes who a handshaking client is: its token, verified by
// Options.Authenticator, then Options.HandshakeHook, which may name or
// rename the user; Options.RequireUser then refuses one that is still
// anonymous. It returns the identity, its subject for the channel rules
// and when the session must end.
func (h *Hub) identify(m *protocol.Message, req *RemoteRequest, clientID string) (*Identity, acl.Subject, time.Time, *protocol.Error) {
	var (
		sub acl.Subject
		id  = &Identity{}
	)
	fail := func(reason string, err *protocol.Error) (*Identity, acl.Subject, time.Time, *protocol.Error) {
		return nil, sub, time.Time{}, h.refuse(actionHandshake, "", reason, clientID, err)
	}
	token, err := tokenOf(m.Ext, req.Header)
	if err != nil {
		return fail(refusedBadToken, protocol.ErrAuthenticationFailed(err.Error()))
	}
	if token != "" && h.opts.Authenticator != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.AuthTimeout)
		got, err := h.opts.Authenticator.Authenticate(ctx, token)
		cancel()
		if err != nil {
			return fail(refusedBadToken, protocol.ErrAuthenticationFailed(err.Error()))
		}
		if got != nil {
			id = got
		}
	}
	if hook := h.opts.HandshakeHook; hook != nil {
		res, err := h.callHook(hook, &HookRequest{Event: HookHandshake, ClientID: clientID, UserID: id.UserID, Info: id.Info,
			Ext: m.Ext, RemoteAddr: req.RemoteAddr, Header: req.Header})
		if err != nil {
			e := h.hookError(actionHandshake, "", clientID, "", err)
			if e.Advice == nil {
				e.Advice = &protocol.Advice{Reconnect: protocol.ReconnectNone}
				if e.Code == protocol.CodeServiceUnavailable { // the backend may be back soon
					e.Advice = &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(5000)}
				}
			}
			return nil, sub, time.Time{}, e
		}
		if res != nil {
			merged := *id
			if res.UserID != "" {
				merged.UserID = res.UserID
			}
			if res.Info != nil {
				merged.Info = res.Info
			}
			if res.Channels != nil {
				merged.Channels = res.Channels
			}
			id = &merged
		}
	}
	if id.UserID == "" && h.opts.RequireUser {
		return fail(refusedAnonymous, protocol.ErrAuthenticationRequired())
	}
	grants, err := acl.NewGrants(id.Channels)
	if err != nil {
		return fail(refusedBadToken, protocol.ErrAuthenticationFailed("granted channels: "+err.Error()))
	}
	expires, perr := expiry(id, time.Now())
	if perr != nil {
		return fail(refusedBadToken, perr)
	}
	return id, acl.Subject{UserID: id.UserID, Grants: grants}, expires, nil
}

// tokenOf returns the token a handshake carries: ext.auth.token, or else
// the HTTP request's Authorization: Bearer header; "" when there is none.
func tokenOf(ext json.RawMessage, header http.Header) (string, error) {
	if len(ext) > 0 {
		var e struct {
			Auth *struct {
				Token json.RawMessage `json:"token"`
			} `json:"auth"`
		}
		if json.Unmarshal(ext, &e) == nil && e.Auth != nil && len(e.Auth.Token) > 0 && string(e.Auth.Token) != "null" {
			var token string
			if json.Unmarshal(e.Auth.Token, &token) != nil {
				return "", errors.New("ext.auth.token must be a string")
			}
			if token != "" {
				return token, nil
			}
		}
	}
	if v := header.Get("Authorization"); v != "" {
		scheme, token, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token), nil
		}
	}
	return "", nil
}

func (h *Hub) commonType(types []string) bool {
	for _, t := range types {
		if h.servesType(t) {
			return true
		}
	}
	return false
}

// servesType reports whether connection type t is one the hub offers
// (Options.ConnectionTypes, or SetConnectionTypes).
func (h *Hub) servesType(t string) bool {
	return slices.Contains(*h.connTypes.Load(), t)
}

// SetConnectionTypes replaces the Bayeux connection types the hub offers in
// handshake replies and accepts in /meta/connect, in order of preference.
// The transports' mounting helper (transport.Attach) calls it with the
// types of the transports it mounts; call it yourself only when you mount
// transport handlers by hand. Each type must be one of protocol.LongPolling,
// protocol.CallbackPolling and protocol.WebSocket.
func (h *Hub) SetConnectionTypes(types []string) error {
	if err := checkConnectionTypes(types); err != nil {
		return fmt.Errorf("bayeuxhub: %w", err)
	}
	t := slices.Clone(types)
	h.connTypes.Store(&t)
	return nil
}

// checkConnectionTypes refuses an empty list and unknown or repeated
// types.
func checkConnectionTypes(types []string) error {
	if len(types) == 0 {
		return errors.New("no connection types")
	}
	for i, t := range types {
		switch t {
		case protocol.LongPolling, protocol.CallbackPolling, protocol.WebSocket:
		default:
			return fmt.Errorf("unknown connection type %q (want %s, %s or %s)", t,
				protocol.LongPolling, protocol.CallbackPolling, protocol.WebSocket)
		}
		if slices.Contains(types[:i], t) {
			return fmt.Errorf("connection type %q listed twice", t)
		}
	}
	return nil
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

// connectAdvice is the advice sent with handshake and connect replies. A
// draining hub answers connects at once: its advice makes clients come
// back after DrainRetryInterval instead of at once, in a loop.
func (h *Hub) connectAdvice() *protocol.Advice {
	if h.draining.Load() {
		return &protocol.Advice{
			Reconnect: protocol.ReconnectRetry,
			Interval:  protocol.Int(DrainRetryInterval.Milliseconds()),
			Timeout:   protocol.Int(h.opts.PollTimeout.Milliseconds()),
		}
	}
	return &protocol.Advice{
		Reconnect: protocol.ReconnectRetry,
		Interval:  protocol.Int(0),
		Timeout:   protocol.Int(h.opts.PollTimeout.Milliseconds()),
	}
}
