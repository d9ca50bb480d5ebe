package actors

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds the checks a remote client's requests go through, in
// order: the channel rules (Options.Rules) and the publish rate limits of
// their rules, the application's MessageACL, then its hooks
// (Options.*Hook). Every refusal is counted by action, rule and reason
// (Stats.Refusals) and logged at debug level.

// Refusal reasons, the "reason" of Stats.Refusals: a bounded set, so they
// can label metrics.
const (
	refusedByRule      = "rule"
	refusedByRate      = "rate-limit"
	refusedByACL       = "acl"
	refusedByHook      = "hook"
	refusedHookFailed  = "hook-unavailable"
	refusedBadToken    = "token"
	refusedAnonymous   = "anonymous"
	refusedByLimit     = "limit"  // a per-address or global limit
	refusedByMemory    = "memory" // MaxTotalBytes
	actionHandshake    = "handshake"
	actionSubscribe    = "subscribe"
	actionPublish      = "publish"
	refusalNoRule      = "none"
	refusalNoRuleMatch = -1
)

// Refusal counts the requests refused for one action, rule and reason.
type Refusal struct {
	// Action is "handshake", "subscribe" or "publish".
	Action string
	// Rule names the channel rule that applied; "none" when no rule
	// matched or none was involved (handshakes).
	Rule string
	// Reason is what refused: "rule", "rate-limit", "acl", "hook",
	// "hook-unavailable", "token", "anonymous", "limit" (a per-address or
	// global limit) or "memory" (MaxTotalBytes).
	Reason string
	Count  uint64
}

type refusalKey struct{ action, rule, reason string }

// refusals counts refused requests; safe for concurrent use.
type refusals struct{ m sync.Map } // refusalKey -> *atomic.Uint64

func (r *refusals) add(k refusalKey) {
	v, ok := r.m.Load(k)
	if !ok {
		v, _ = r.m.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// snapshot returns the counts, sorted by action, rule and reason.
func (r *refusals) snapshot() []Refusal {
	var out []Refusal
	r.m.Range(func(k, v any) bool {
		key := k.(refusalKey)
		out = append(out, Refusal{Action: key.action, Rule: key.rule, Reason: key.reason, Count: v.(*atomic.Uint64).Load()})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Action != b.Action {
			return a.Action < b.Action
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Reason < b.Reason
	})
	return out
}

// refuse counts and logs a refusal and returns err.
func (h *Hub) refuse(action, rule, reason, clientID string, err *protocol.Error) *protocol.Error {
	if rule == "" {
		rule = refusalNoRule
	}
	h.refusals.add(refusalKey{action, rule, reason})
	h.log.Debug().Str("action", action).Str("rule", rule).Str("reason", reason).Str("client", clientID).
		Str("error", err.Error()).Msg("request refused")
	return err
}

// checkRule applies the channel rules to an action of a client with the
// given subject on channel. It returns the decision (for the rate limit
// of its rule) and, when refused, the error to send.
func (h *Hub) checkRule(sub acl.Subject, a acl.Action, channel, clientID string) (acl.Decision, *protocol.Error) {
	d := h.opts.Rules.Check(sub, a, channel)
	if d.Allowed && a == acl.Subscribe {
		return h.checkPresenceSubscribe(d, sub, channel, clientID) // presence.go
	}
	if d.Allowed {
		return d, nil
	}
	return d, h.refuse(a.String(), d.RuleName, refusedByRule, clientID, protocol.ErrDenied(channel, d.Reason))
}

// authorize runs the MessageACL hook, turning a rejection or a panic into
// a Bayeux error. An error the hook returns that is or wraps a
// *protocol.Error is sent as it is; any other is a 403 with its text.
func (h *Hub) authorize(c *Client, m *protocol.Message) (perr *protocol.Error) {
	if h.opts.MessageACL == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			h.log.Error().Interface("panic", r).Str("channel", m.Channel).Bytes("stack", debug.Stack()).
				Msg("authorization hook panicked")
			perr = &protocol.Error{Code: protocol.CodeServerError, Args: []string{m.Channel}, Message: "Authorization failed"}
		}
	}()
	if err := h.opts.MessageACL(c, m); err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return pe
		}
		return protocol.ErrDenied(m.Channel, err.Error())
	}
	return nil
}

// callHook asks hook about req within Options.HookTimeout. A hook that
// panics, or does not answer in time (even one that ignores its context),
// is a failure: the caller is answered, the hook's goroutine is left to
// finish on its own.
func (h *Hub) callHook(hook Hook, req *HookRequest) (*HookResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.HookTimeout)
	defer cancel()
	type outcome struct {
		res *HookResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				h.log.Error().Interface("panic", r).Str("event", string(req.Event)).Bytes("stack", debug.Stack()).
					Msg("hook panicked")
				done <- outcome{err: &protocol.Error{Code: protocol.CodeServerError, Args: argsOf(req.Channel), Message: "Hook failed"}}
			}
		}()
		res, err := hook.Check(ctx, req)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		if o.err != nil && ctx.Err() != nil && !errors.Is(o.err, ErrHookUnavailable) {
			var pe *protocol.Error
			if !errors.As(o.err, &pe) {
				o.err = fmt.Errorf("%w: no answer within %v", ErrHookUnavailable, h.opts.HookTimeout)
			}
		}
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: no answer within %v", ErrHookUnavailable, h.opts.HookTimeout)
	}
}

// hookError turns a hook's error into the Bayeux error for a request on
// channel ("" for a handshake), and counts the refusal.
func (h *Hub) hookError(action, rule, clientID, channel string, err error) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return h.refuse(action, rule, refusedByHook, clientID, pe)
	case errors.Is(err, ErrHookUnavailable):
		e := &protocol.Error{Code: protocol.CodeServiceUnavailable, Args: argsOf(channel), Message: err.Error()}
		return h.refuse(action, rule, refusedHookFailed, clientID, e)
	}
	return h.refuse(action, rule, refusedByHook, clientID, protocol.ErrDenied(channel, err.Error()))
}

func argsOf(channel string) []string {
	if channel == "" {
		return nil
	}
	return []string{channel}
}

// expiry returns when a session with this identity must end (zero:
// never), or an error for an identity that has expired already.
func expiry(id *Identity, now time.Time) (time.Time, *protocol.Error) {
	if id.ExpiresAt.IsZero() {
		return time.Time{}, nil
	}
	if !id.ExpiresAt.After(now) {
		return time.Time{}, protocol.ErrAuthenticationFailed("token has expired")
	}
	return id.ExpiresAt, nil
}
