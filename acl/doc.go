// Package acl decides which remote clients may subscribe to and publish on
// which channels, from an ordered list of operator-configured channel rules.
//
// # Rules: first match wins
//
// Each Rule has a channel Pattern and says who may subscribe and who may
// publish on the channels it covers (an Access: Nobody, or any combination
// of Anyone, Authenticated, Owner and Granted). New compiles a list of
// rules into Rules; Rules.Check then decides an action on a channel by the
// first rule, in list order, whose pattern matches the channel. Later rules
// are not consulted, so specific rules go before general ones, and a
// channel that no rule matches is refused. Default returns the built-in
// list: the hub's /bayeuxhub/** channels are server-only for publishing,
// and everything else is open.
//
//	/bayeuxhub/**   subscribe: anyone   publish: nobody
//	/**             subscribe: anyone   publish: anyone
//
// Nobody means no remote client: the server itself (Hub.Publish, local
// clients, the backend API) is not subject to the rules. Authenticated
// means a client whose token gave a user id; Granted, a client whose token
// grants the channel (Subject.Grants).
//
// # Patterns
//
// A pattern is a Bayeux channel glob: a plain channel name such as
// /chat/demo, which matches only itself, or a name ending in a wildcard
// segment. Following the Bayeux specification, /a/* matches exactly one
// more segment (/a/b, but neither /a nor /a/b/c), /a/** matches one or more
// more segments (/a/b and /a/b/c, but not /a), and /** matches every
// channel. A wildcard may only be the last segment, and segments use the
// characters of the channel grammar (package protocol). Patterns are case
// sensitive and never normalised. /meta channels are the hub's own and may
// not have rules.
//
// In a rule's pattern, a segment may be the placeholder {sub}, which
// matches any one segment. For Owner access, the channel's segment at every
// {sub} position must equal the subject's user id: under
//
//	/user/{sub}/**  subscribe: owner   publish: owner
//
// the user alice may use /user/alice/inbox but not /user/bob/inbox. A rule
// with Owner access must have a {sub} segment.
//
// # Wildcard subscriptions
//
// A subscription to a wildcard pattern W receives messages from every
// channel W matches, so it is allowed only if the subject is allowed on all
// of them. Check walks the rules in order; each rule whose channels
// intersect W's must allow the subject on the channels they share, and the
// walk ends, allowed, at the first rule whose pattern covers all of W. If a
// rule refuses, its refusal is the decision; if no rule covers W, W is
// refused as matching no rule. Owner access allows W only when W fixes
// every {sub} segment of the rule to the subject's user id, and Granted
// access only when one grant covers all the channels W shares with the
// rule. For example, with the rules
//
//	/chat/**        subscribe: anyone
//	/user/{sub}/**  subscribe: owner
//	/**             subscribe: authenticated
//
// an anonymous client may subscribe to /chat/** (the first rule covers it)
// but not to /** (the third rule intersects it and requires
// authentication); alice may subscribe to /user/alice/** but not to
// /user/**, which would deliver other users' channels too.
// The check is conservative: a rule's intersection with W is judged as a
// whole, even where earlier rules already decide part of it, unless a
// single earlier rule covers all of it (then the rule decides none of W's
// channels and is skipped). A refusal may therefore name a rule that
// decides only some of W's channels.
package acl
