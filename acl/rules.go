package acl

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// Rule is one operator-configured channel rule: the channels its Pattern
// covers, who may subscribe and publish on them, and the publish rate limit
// per client.
type Rule struct {
	// Name labels the rule in metrics and logs. New fills in Pattern when
	// it is empty; names must be unique in a list.
	Name string
	// Pattern is the channel glob the rule covers: a plain channel name or
	// one ending in /* or /**, whose segments may be the placeholder {sub}.
	Pattern string
	// Subscribe says who may subscribe to the rule's channels.
	Subscribe Access
	// Publish says who may publish on the rule's channels.
	Publish Access
	// PublishRate is the publishes per second one client may make on the
	// rule's channels; 0 means no limit. It must not be negative.
	PublishRate float64
	// PublishBurst is the rate limit's bucket size. 0 means the default,
	// max(1, ceil(PublishRate)), which New fills in. It must not be
	// negative, nor set when PublishRate is 0.
	PublishBurst int
	// History, when its Size or TTL is set, keeps the rule's channels'
	// recent messages for replay (the hub's replay extension).
	History History
	// Presence tracks who is subscribed to each of the rule's channels,
	// with join and leave events and a "who is here" query.
	Presence bool
}

// History says how much of a channel's traffic the hub keeps for replay:
// the last Size messages and/or those younger than TTL (0 for no bound
// of that kind; both 0: no history).
type History struct {
	Size int
	TTL  time.Duration
	// Shape "salesforce" also puts each delivery's replay id in
	// data.event.replayId, the Salesforce Streaming API's shape that
	// jsforce's replay extension reads (the data becomes
	// {"event":{"replayId":N},"payload":<data>}); "" keeps data as it is.
	Shape string
}

// Enabled reports whether the history keeps anything.
func (h History) Enabled() bool { return h.Size > 0 || h.TTL > 0 }

// ShapeSalesforce is History.Shape for the Salesforce delivery shape.
const ShapeSalesforce = "salesforce"

// Rules is a compiled, ordered list of channel rules. It is immutable and
// safe for concurrent use. A nil *Rules has no rules, like New(nil).
type Rules struct {
	rules []compiledRule
}

// compiledRule is a Rule with its pattern compiled.
type compiledRule struct {
	Rule
	pat  pattern
	subs []int // positions of the {sub} segments, ascending
	// prefix is the pattern text before its first open segment, which
	// every matching name starts with: a quick test before matchName.
	prefix string
}

// maxBurst caps the default burst of a huge PublishRate.
const maxBurst = math.MaxInt32

// New validates and compiles rules, in order: the first rule whose pattern
// matches a channel decides for it. Each error names the rule by its
// position from 1 and its pattern, as in
//
//	channel rule 3 ("/a/**/b"): wildcard "**" is only allowed as the last segment
//
// An empty list is valid and refuses everything.
func New(rules []Rule) (*Rules, error) {
	r := &Rules{rules: make([]compiledRule, len(rules))}
	names := make(map[string]int, len(rules))
	for i, rule := range rules {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("channel rule %d (%q): %s", i+1, rule.Pattern, fmt.Sprintf(format, args...))
		}
		pat, subs, err := compileRule(rule.Pattern)
		if err != nil {
			return nil, fail("%v", err)
		}
		switch h := rule.History; {
		case h.Size < 0 || h.TTL < 0:
			return nil, fail("history size and TTL must not be negative")
		case h.Shape != "" && h.Shape != ShapeSalesforce:
			return nil, fail("unknown history shape %q (want %q or none)", h.Shape, ShapeSalesforce)
		case h.Shape != "" && !h.Enabled():
			return nil, fail("history shape %q without a history size or TTL", h.Shape)
		}
		for _, x := range []struct {
			what string
			a    Access
		}{{"subscribe", rule.Subscribe}, {"publish", rule.Publish}} {
			if x.a&^allAccess != 0 {
				return nil, fail("%s access %s has undefined bits", x.what, x.a)
			}
			if x.a&Owner != 0 && len(subs) == 0 {
				return nil, fail("%s access %s needs a {sub} segment in the pattern", x.what, x.a)
			}
		}
		switch {
		case math.IsNaN(rule.PublishRate) || math.IsInf(rule.PublishRate, 0):
			return nil, fail("publish rate %v is not a number of publishes per second", rule.PublishRate)
		case rule.PublishRate < 0:
			return nil, fail("publish rate %v is negative", rule.PublishRate)
		case rule.PublishBurst < 0:
			return nil, fail("publish burst %d is negative", rule.PublishBurst)
		case rule.PublishBurst != 0 && rule.PublishRate == 0:
			return nil, fail("publish burst %d is set without a publish rate", rule.PublishBurst)
		case rule.PublishBurst == 0 && rule.PublishRate > 0:
			rule.PublishBurst = int(min(maxBurst, max(1, math.Ceil(rule.PublishRate))))
		}
		if rule.Name == "" {
			rule.Name = rule.Pattern
		}
		if j, dup := names[rule.Name]; dup {
			return nil, fail("duplicate name %q (also rule %d)", rule.Name, j+1)
		}
		names[rule.Name] = i
		r.rules[i] = compiledRule{Rule: rule, pat: pat, subs: subs, prefix: literalPrefix(rule.Pattern)}
	}
	return r, nil
}

// Default returns the built-in rule list: the hub's own /bayeuxhub/**
// channels may be subscribed to by anyone and published on only by the
// server; every other channel is open to anyone.
func Default() []Rule {
	return []Rule{
		{Name: "hub", Pattern: "/bayeuxhub/**", Subscribe: Anyone, Publish: Nobody},
		{Name: "default", Pattern: "/**", Subscribe: Anyone, Publish: Anyone},
	}
}

// Len returns the number of rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// Rule returns the i-th rule (from 0) as given to New, with the Name and
// PublishBurst defaults New filled in. It panics if i is out of range.
func (r *Rules) Rule(i int) Rule { return r.rules[i].Rule }

// Match returns the index of the first rule whose pattern covers the
// channel name (a {sub} segment matches any user), or -1 when none does
// or channel is not a plain channel name. It does not allocate.
func (r *Rules) Match(channel string) int {
	if r == nil {
		return -1
	}
	if wildcard, ok := classify(channel); !ok || wildcard {
		return -1
	}
	for i := range r.rules {
		cr := &r.rules[i]
		if !strings.HasPrefix(channel, cr.prefix) {
			continue
		}
		if match, _ := cr.pat.matchName(channel, "", cr.subs); match {
			return i
		}
	}
	return -1
}

// Subject is who asks: a remote client's user id and granted channels.
type Subject struct {
	// UserID is the verified user id; empty means anonymous.
	UserID string
	// Grants are the channels the client's token grants.
	Grants Grants
}

// Decision is the outcome of Rules.Check.
type Decision struct {
	// Allowed reports whether the action may go ahead.
	Allowed bool
	// Rule is the index (from 0) of the rule that decided, or -1 when no
	// rule matched.
	Rule int
	// RuleName is that rule's Name, or "" when no rule matched.
	RuleName string
	// Reason, when the action is refused, is a short explanation for the
	// client; the hub sends it as "403:<channel>:<reason>".
	Reason string
}

// The refusal reasons of a Decision.
const (
	reasonNoRule          = "No channel rule allows this channel"
	reasonServerOnly      = "Publishing on this channel is server-only"
	reasonNoSubscribe     = "Subscribing to this channel is not allowed"
	reasonAuthentication  = "Authentication required"
	reasonNotOwner        = "Not your channel"
	reasonNotGranted      = "Channel not granted"
	reasonNotOwnerGranted = "Not your channel and not granted"
	reasonInvalidChannel  = "Invalid channel"
	reasonUnknownAction   = "Unknown action"
)

// noRule is the Decision when no rule matches.
var noRule = Decision{Rule: -1, Reason: reasonNoRule}

// Check decides whether subject s may do action a on channel: the first
// rule whose pattern matches the channel decides, and no matching rule
// refuses.
//
// channel is a plain name or, for Subscribe, a trailing-wildcard pattern
// such as /chat/* or /user/**. A pattern is allowed only when the subject
// is allowed on every channel it can receive: every rule whose channels
// intersect the pattern's, in order up to the first rule covering the
// whole pattern, must allow the subject for the channels they share (a
// rule is skipped when one earlier rule already covers those). Owner
// access then requires the pattern to fix every {sub} segment to the
// subject's user id, and Granted access a grant covering the shared
// channels. The covering rule is the Decision's Rule.
//
// The hub validates channels first; an invalid name is refused with Rule -1
// and reason "Invalid channel", a /meta name with Rule -1 as matching no
// rule. Check does not allocate for a plain name.
func (r *Rules) Check(s Subject, a Action, channel string) Decision {
	if a != Subscribe && a != Publish {
		return Decision{Rule: -1, Reason: reasonUnknownAction}
	}
	wildcard, ok := classify(channel)
	switch {
	case !ok:
		return Decision{Rule: -1, Reason: reasonInvalidChannel}
	case protocol.IsMeta(channel):
		return noRule
	case wildcard:
		return r.checkPattern(s, a, compileChannel(channel))
	}
	if r == nil {
		return noRule
	}
	for i := range r.rules {
		cr := &r.rules[i]
		if !strings.HasPrefix(channel, cr.prefix) {
			continue
		}
		match, owner := cr.pat.matchName(channel, s.UserID, cr.subs)
		if !match {
			continue
		}
		access := cr.access(a)
		if allows(s, access, owner) || access&Granted != 0 && s.Grants.matches(channel) {
			return Decision{Allowed: true, Rule: i, RuleName: cr.Name}
		}
		return cr.refuse(i, s, a, access)
	}
	return noRule
}

// checkPattern decides a subscription to the wildcard pattern w.
func (r *Rules) checkPattern(s Subject, a Action, w pattern) Decision {
	if r == nil {
		return noRule
	}
	for i := range r.rules {
		cr := &r.rules[i]
		shared, ok := intersect(cr.pat, w)
		if !ok || r.shadowed(i, shared) {
			continue
		}
		access := cr.access(a)
		owner := s.UserID != ""
		for _, k := range cr.subs {
			if shared.segs[k] != s.UserID {
				owner = false
			}
		}
		if !allows(s, access, owner) && (access&Granted == 0 || !s.Grants.coverAll(shared)) {
			return cr.refuse(i, s, a, access)
		}
		if covers(cr.pat, w) {
			return Decision{Allowed: true, Rule: i, RuleName: cr.Name}
		}
	}
	return noRule
}

// shadowed reports whether one of the rules before rule i covers all of
// p, so that rule i decides none of p's channels.
func (r *Rules) shadowed(i int, p pattern) bool {
	for j := range i {
		if covers(r.rules[j].pat, p) {
			return true
		}
	}
	return false
}

// access returns the rule's access for action a.
func (cr *compiledRule) access(a Action) Access {
	if a == Publish {
		return cr.Publish
	}
	return cr.Subscribe
}

// allows reports whether access lets s in by identity alone (Anyone,
// Authenticated, or Owner given whether s owns the channels); the caller
// checks Granted, which depends on the channels.
func allows(s Subject, access Access, owner bool) bool {
	switch {
	case access&Anyone != 0:
		return true
	case s.UserID == "":
		return false
	}
	return access&Authenticated != 0 || access&Owner != 0 && owner
}

// refuse returns the refusal by rule i of action a under access.
func (cr *compiledRule) refuse(i int, s Subject, a Action, access Access) Decision {
	return Decision{Rule: i, RuleName: cr.Name, Reason: reason(s, a, access)}
}

// reason explains why access refused s the action a.
func reason(s Subject, a Action, access Access) string {
	switch {
	case access == Nobody && a == Publish:
		return reasonServerOnly
	case access == Nobody:
		return reasonNoSubscribe
	case s.UserID == "" && (access&(Authenticated|Owner) != 0 || s.Grants.Len() == 0):
		// A user id (a token) would or could have allowed it.
		return reasonAuthentication
	}
	switch access & (Owner | Granted) {
	case Owner:
		return reasonNotOwner
	case Granted:
		return reasonNotGranted
	}
	return reasonNotOwnerGranted
}
