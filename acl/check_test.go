package acl

import "testing"

// Reasons, spelled out as the hub sends them.
const (
	rNoRule      = "No channel rule allows this channel"
	rServerOnly  = "Publishing on this channel is server-only"
	rNoSubscribe = "Subscribing to this channel is not allowed"
	rAuth        = "Authentication required"
	rNotOwner    = "Not your channel"
	rNotGranted  = "Channel not granted"
	rNotEither   = "Not your channel and not granted"
)

func mustRules(t testing.TB, rules []Rule) *Rules {
	t.Helper()
	r, err := New(rules)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func mustGrants(t testing.TB, patterns ...string) Grants {
	t.Helper()
	g, err := NewGrants(patterns)
	if err != nil {
		t.Fatalf("NewGrants: %v", err)
	}
	return g
}

// allow and deny build the expected decisions; rule names in the test rule
// sets below equal their index's label.
func allow(i int, name string) Decision { return Decision{Allowed: true, Rule: i, RuleName: name} }

func deny(i int, name, reason string) Decision {
	return Decision{Rule: i, RuleName: name, Reason: reason}
}

var noMatch = Decision{Rule: -1, Reason: rNoRule}

// ruleSets are the rule lists the Check tests run against.
var ruleSets = map[string][]Rule{
	"default": Default(),
	"ordering": {
		{Name: "locked", Pattern: "/chat/locked", Subscribe: Nobody, Publish: Nobody},
		{Name: "chat", Pattern: "/chat/**", Subscribe: Anyone, Publish: Authenticated},
		{Name: "all", Pattern: "/**", Subscribe: Authenticated, Publish: Nobody},
	},
	"shadowed": {
		{Name: "all", Pattern: "/**", Subscribe: Anyone, Publish: Anyone},
		{Name: "locked", Pattern: "/chat/locked", Subscribe: Nobody, Publish: Nobody},
	},
	"words": {
		{Name: "nobody", Pattern: "/nobody/**", Subscribe: Nobody, Publish: Nobody},
		{Name: "anyone", Pattern: "/anyone/**", Subscribe: Anyone, Publish: Anyone},
		{Name: "auth", Pattern: "/auth/**", Subscribe: Authenticated, Publish: Authenticated},
		{Name: "owner", Pattern: "/owner/{sub}/**", Subscribe: Owner, Publish: Owner},
		{Name: "granted", Pattern: "/granted/**", Subscribe: Granted, Publish: Granted},
		{Name: "auth|granted", Pattern: "/ag/**", Subscribe: Authenticated | Granted, Publish: Authenticated | Granted},
		{Name: "owner|granted", Pattern: "/og/{sub}/**", Subscribe: Owner | Granted, Publish: Owner | Granted},
		{Name: "anyone|owner", Pattern: "/ao/{sub}", Subscribe: Anyone | Owner, Publish: Anyone | Owner},
		{Name: "auth|owner", Pattern: "/oa/{sub}", Subscribe: Authenticated | Owner, Publish: Authenticated | Owner},
		{Name: "all4", Pattern: "/all4/{sub}", Subscribe: Anyone | Authenticated | Owner | Granted, Publish: Anyone | Authenticated | Owner | Granted},
		{Name: "split", Pattern: "/split/**", Subscribe: Anyone, Publish: Nobody},
		{Name: "pair", Pattern: "/pair/{sub}/x/{sub}/**", Subscribe: Owner, Publish: Owner},
		{Name: "anysub", Pattern: "/anysub/{sub}/x", Subscribe: Anyone, Publish: Authenticated},
	},
	"spans": {
		{Name: "chat", Pattern: "/chat/**", Subscribe: Anyone, Publish: Anyone},
		{Name: "user", Pattern: "/user/{sub}/**", Subscribe: Owner, Publish: Owner},
		{Name: "rest", Pattern: "/**", Subscribe: Authenticated, Publish: Authenticated},
	},
	"stricter later": {
		{Name: "chat", Pattern: "/chat/**", Subscribe: Anyone, Publish: Anyone},
		{Name: "rest", Pattern: "/**", Subscribe: Authenticated, Publish: Authenticated},
	},
	"public first": {
		{Name: "public", Pattern: "/chat/public/**", Subscribe: Anyone},
		{Name: "chat", Pattern: "/chat/**", Subscribe: Authenticated},
	},
	"secret first": {
		{Name: "secret", Pattern: "/news/secret", Subscribe: Nobody},
		{Name: "news", Pattern: "/news/**", Subscribe: Anyone},
	},
	"secret later": {
		{Name: "news", Pattern: "/news/*", Subscribe: Anyone},
		{Name: "secret", Pattern: "/news/secret", Subscribe: Nobody},
		{Name: "rest", Pattern: "/**", Subscribe: Anyone},
	},
	"partly shadowed": {
		{Name: "a", Pattern: "/news/a/**", Subscribe: Anyone},
		{Name: "b", Pattern: "/news/b/**", Subscribe: Anyone},
		{Name: "secret", Pattern: "/news/{sub}/**", Subscribe: Nobody},
		{Name: "rest", Pattern: "/**", Subscribe: Anyone},
	},
	"chat only": {
		{Name: "chat", Pattern: "/chat/**", Subscribe: Anyone, Publish: Anyone},
	},
	"team": {
		{Name: "team", Pattern: "/team/**", Subscribe: Granted, Publish: Granted},
		{Name: "rest", Pattern: "/**", Subscribe: Anyone, Publish: Anyone},
	},
	"one level": {
		{Name: "top", Pattern: "/*", Subscribe: Anyone},
		{Name: "exact", Pattern: "/a/b", Subscribe: Authenticated},
		{Name: "a", Pattern: "/a/*", Subscribe: Nobody},
	},
}

func TestCheck(t *testing.T) {
	t.Parallel()
	var (
		anon   = Subject{}
		alice  = Subject{UserID: "alice"}
		bob    = Subject{UserID: "bob"}
		aliceG = Subject{UserID: "alice", Grants: mustGrants(t,
			"/granted/a", "/granted/team/*", "/granted/deep/**", "/og/bob/**", "/team/a/**", "/team/b")}
		anonG    = Subject{Grants: mustGrants(t, "/granted/a", "/team/a/*")}
		teamAll  = Subject{UserID: "carol", Grants: mustGrants(t, "/team/**")}
		teamStar = Subject{UserID: "carol", Grants: mustGrants(t, "/team/*")}
		everyG   = Subject{UserID: "dave", Grants: mustGrants(t, "/**")}
	)
	tests := []struct {
		name    string
		set     string
		subject Subject
		action  Action
		channel string
		want    Decision
	}{
		// Default().
		{"default publish hub", "default", anon, Publish, "/bayeuxhub/stats", deny(0, "hub", rServerOnly)},
		{"default publish hub authenticated", "default", alice, Publish, "/bayeuxhub/stats", deny(0, "hub", rServerOnly)},
		{"default subscribe hub", "default", anon, Subscribe, "/bayeuxhub/stats", allow(0, "hub")},
		{"default subscribe hub wildcard", "default", anon, Subscribe, "/bayeuxhub/**", allow(0, "hub")},
		{"default publish chat", "default", anon, Publish, "/chat/demo", allow(1, "default")},
		{"default subscribe chat", "default", anon, Subscribe, "/chat/demo", allow(1, "default")},
		{"default publish top level", "default", anon, Publish, "/bayeuxhub", allow(1, "default")},
		{"default subscribe everything", "default", anon, Subscribe, "/**", allow(1, "default")},
		{"default subscribe one level", "default", anon, Subscribe, "/*", allow(1, "default")},
		{"default publish service", "default", alice, Publish, "/service/echo", allow(1, "default")},

		// First match wins.
		{"ordering locked publish", "ordering", alice, Publish, "/chat/locked", deny(0, "locked", rServerOnly)},
		{"ordering locked subscribe", "ordering", alice, Subscribe, "/chat/locked", deny(0, "locked", rNoSubscribe)},
		{"ordering chat publish authenticated", "ordering", alice, Publish, "/chat/room", allow(1, "chat")},
		{"ordering chat publish anonymous", "ordering", anon, Publish, "/chat/room", deny(1, "chat", rAuth)},
		{"ordering chat subscribe anonymous", "ordering", anon, Subscribe, "/chat/room/sub", allow(1, "chat")},
		{"ordering chat itself falls through", "ordering", anon, Subscribe, "/chat", deny(2, "all", rAuth)},
		{"ordering other subscribe authenticated", "ordering", alice, Subscribe, "/other", allow(2, "all")},
		{"ordering other publish", "ordering", alice, Publish, "/other", deny(2, "all", rServerOnly)},
		{"shadowed rule never decides", "shadowed", anon, Publish, "/chat/locked", allow(0, "all")},
		{"shadowed rule subscribe", "shadowed", anon, Subscribe, "/chat/locked", allow(0, "all")},

		// Every access word alone.
		{"nobody publish", "words", alice, Publish, "/nobody/x", deny(0, "nobody", rServerOnly)},
		{"nobody subscribe", "words", alice, Subscribe, "/nobody/x", deny(0, "nobody", rNoSubscribe)},
		{"nobody subscribe anonymous", "words", anon, Subscribe, "/nobody/x", deny(0, "nobody", rNoSubscribe)},
		{"nobody granted", "words", everyG, Publish, "/nobody/x", deny(0, "nobody", rServerOnly)},
		{"anyone anonymous", "words", anon, Publish, "/anyone/x", allow(1, "anyone")},
		{"anyone authenticated", "words", alice, Subscribe, "/anyone/x/y", allow(1, "anyone")},
		{"authenticated anonymous", "words", anon, Publish, "/auth/x", deny(2, "auth", rAuth)},
		{"authenticated anonymous with grants", "words", anonG, Publish, "/auth/x", deny(2, "auth", rAuth)},
		{"authenticated user", "words", alice, Publish, "/auth/x", allow(2, "auth")},
		{"owner own channel", "words", alice, Publish, "/owner/alice/inbox", allow(3, "owner")},
		{"owner own deep channel", "words", alice, Subscribe, "/owner/alice/a/b/c", allow(3, "owner")},
		{"owner other user", "words", alice, Publish, "/owner/bob/inbox", deny(3, "owner", rNotOwner)},
		{"owner other user subscribe", "words", bob, Subscribe, "/owner/alice/inbox", deny(3, "owner", rNotOwner)},
		{"owner prefix of id", "words", alice, Publish, "/owner/alic/inbox", deny(3, "owner", rNotOwner)},
		{"owner id is prefix", "words", alice, Publish, "/owner/alice2/inbox", deny(3, "owner", rNotOwner)},
		{"owner anonymous", "words", anon, Publish, "/owner/alice/inbox", deny(3, "owner", rAuth)},
		{"owner granted other user", "words", aliceG, Publish, "/owner/bob/inbox", deny(3, "owner", rNotOwner)},
		{"owner pattern needs more segments", "words", alice, Publish, "/owner/alice", noMatch},
		{"granted exact", "words", aliceG, Publish, "/granted/a", allow(4, "granted")},
		{"granted exact other", "words", aliceG, Publish, "/granted/b", deny(4, "granted", rNotGranted)},
		{"granted exact no child", "words", aliceG, Publish, "/granted/a/b", deny(4, "granted", rNotGranted)},
		{"granted one wildcard", "words", aliceG, Publish, "/granted/team/x", allow(4, "granted")},
		{"granted one wildcard too deep", "words", aliceG, Publish, "/granted/team/x/y", deny(4, "granted", rNotGranted)},
		{"granted one wildcard parent", "words", aliceG, Publish, "/granted/team", deny(4, "granted", rNotGranted)},
		{"granted deep wildcard", "words", aliceG, Subscribe, "/granted/deep/x/y", allow(4, "granted")},
		{"granted deep wildcard parent", "words", aliceG, Subscribe, "/granted/deep", deny(4, "granted", rNotGranted)},
		{"granted everything", "words", everyG, Publish, "/granted/zzz", allow(4, "granted")},
		{"granted without grants", "words", alice, Publish, "/granted/a", deny(4, "granted", rNotGranted)},
		{"granted anonymous without grants", "words", anon, Publish, "/granted/a", deny(4, "granted", rAuth)},
		{"granted anonymous with grant", "words", anonG, Publish, "/granted/a", allow(4, "granted")},
		{"granted anonymous other", "words", anonG, Publish, "/granted/b", deny(4, "granted", rNotGranted)},

		// Access words combined.
		{"auth|granted anonymous", "words", anon, Publish, "/ag/x", deny(5, "auth|granted", rAuth)},
		{"auth|granted user", "words", bob, Publish, "/ag/x", allow(5, "auth|granted")},
		{"owner|granted own", "words", alice, Publish, "/og/alice/x", allow(6, "owner|granted")},
		{"owner|granted neither", "words", alice, Publish, "/og/bob/x", deny(6, "owner|granted", rNotEither)},
		{"owner|granted by grant", "words", aliceG, Publish, "/og/bob/x", allow(6, "owner|granted")},
		{"owner|granted grant elsewhere", "words", aliceG, Publish, "/og/carol/x", deny(6, "owner|granted", rNotEither)},
		{"owner|granted anonymous", "words", anon, Publish, "/og/alice/x", deny(6, "owner|granted", rAuth)},
		{"owner|granted anonymous with grants", "words", anonG, Publish, "/og/alice/x", deny(6, "owner|granted", rAuth)},
		{"anyone|owner anonymous", "words", anon, Publish, "/ao/bob", allow(7, "anyone|owner")},
		{"auth|owner other user", "words", bob, Publish, "/oa/alice", allow(8, "auth|owner")},
		{"auth|owner anonymous", "words", anon, Publish, "/oa/alice", deny(8, "auth|owner", rAuth)},
		{"all four anonymous", "words", anon, Publish, "/all4/bob", allow(9, "all4")},
		{"subscribe anyone publish nobody: subscribe", "words", anon, Subscribe, "/split/x", allow(10, "split")},
		{"subscribe anyone publish nobody: publish", "words", alice, Publish, "/split/x", deny(10, "split", rServerOnly)},
		{"sub without owner access", "words", anon, Subscribe, "/anysub/whatever/x", allow(12, "anysub")},
		{"sub without owner access publish", "words", anon, Publish, "/anysub/whatever/x", deny(12, "anysub", rAuth)},

		// Several {sub} segments: all must be the user.
		{"pair own", "words", alice, Publish, "/pair/alice/x/alice/y", allow(11, "pair")},
		{"pair second other", "words", alice, Publish, "/pair/alice/x/bob/y", deny(11, "pair", rNotOwner)},
		{"pair first other", "words", alice, Publish, "/pair/bob/x/alice/y", deny(11, "pair", rNotOwner)},
		{"pair bob", "words", bob, Publish, "/pair/bob/x/bob/deep/er", allow(11, "pair")},
		{"pair literal mismatch", "words", alice, Publish, "/pair/alice/y/alice/z", noMatch},
		{"pair too short", "words", alice, Publish, "/pair/alice/x/alice", noMatch},
		{"pair wildcard pinned", "words", alice, Subscribe, "/pair/alice/x/alice/**", allow(11, "pair")},
		{"pair wildcard one pinned", "words", alice, Subscribe, "/pair/alice/x/alice/*", allow(11, "pair")},
		{"pair wildcard half pinned", "words", alice, Subscribe, "/pair/alice/**", deny(11, "pair", rNotOwner)},
		{"pair wildcard too short", "words", alice, Subscribe, "/pair/alice/x/*", noMatch},

		// No rule matches.
		{"no rule plain", "words", alice, Publish, "/elsewhere", noMatch},
		{"no rule subscribe", "words", alice, Subscribe, "/elsewhere/x", noMatch},
		{"no rule prefix only", "words", alice, Subscribe, "/anyone", noMatch},
		{"no rule wildcard", "chat only", anon, Subscribe, "/other/*", noMatch},
		{"no rule covers wildcard", "chat only", anon, Subscribe, "/**", noMatch},
		{"no rule covers all-level wildcard", "chat only", alice, Subscribe, "/*", noMatch},
		{"chat only covered", "chat only", anon, Subscribe, "/chat/*", allow(0, "chat")},

		// Wildcard subscriptions spanning several rules.
		{"spans everything anonymous", "spans", anon, Subscribe, "/**", deny(1, "user", rAuth)},
		{"spans everything authenticated", "spans", alice, Subscribe, "/**", deny(1, "user", rNotOwner)},
		{"spans everything granted", "spans", everyG, Subscribe, "/**", deny(1, "user", rNotOwner)},
		{"spans users", "spans", alice, Subscribe, "/user/**", deny(1, "user", rNotOwner)},
		{"spans own user", "spans", alice, Subscribe, "/user/alice/**", allow(1, "user")},
		{"spans own user one level", "spans", alice, Subscribe, "/user/alice/*", allow(1, "user")},
		{"spans other user", "spans", bob, Subscribe, "/user/alice/**", deny(1, "user", rNotOwner)},
		{"spans own user anonymous", "spans", anon, Subscribe, "/user/alice/**", deny(1, "user", rAuth)},
		{"spans user one level misses owner rule", "spans", alice, Subscribe, "/user/*", allow(2, "rest")},
		{"spans user one level anonymous", "spans", anon, Subscribe, "/user/*", deny(2, "rest", rAuth)},
		{"spans chat one level", "spans", anon, Subscribe, "/chat/*", allow(0, "chat")},
		{"spans chat all levels", "spans", anon, Subscribe, "/chat/**", allow(0, "chat")},
		{"spans top level", "spans", alice, Subscribe, "/*", allow(2, "rest")},
		{"spans top level anonymous", "spans", anon, Subscribe, "/*", deny(2, "rest", rAuth)},
		{"spans plain own", "spans", alice, Subscribe, "/user/alice/inbox", allow(1, "user")},
		{"spans plain user", "spans", alice, Subscribe, "/user/alice", allow(2, "rest")},
		{"stricter later anonymous", "stricter later", anon, Subscribe, "/**", deny(1, "rest", rAuth)},
		{"stricter later authenticated", "stricter later", alice, Subscribe, "/**", allow(1, "rest")},
		{"stricter later covered", "stricter later", anon, Subscribe, "/chat/**", allow(0, "chat")},
		{"stricter later disjoint", "stricter later", anon, Subscribe, "/*", deny(1, "rest", rAuth)},
		{"public first within", "public first", anon, Subscribe, "/chat/public/*", allow(0, "public")},
		{"public first spans", "public first", anon, Subscribe, "/chat/**", deny(1, "chat", rAuth)},
		{"public first spans authenticated", "public first", alice, Subscribe, "/chat/**", allow(1, "chat")},
		{"public first one level", "public first", anon, Subscribe, "/chat/*", deny(1, "chat", rAuth)},
		{"secret first spans", "secret first", anon, Subscribe, "/news/*", deny(0, "secret", rNoSubscribe)},
		{"secret first spans deep", "secret first", alice, Subscribe, "/news/**", deny(0, "secret", rNoSubscribe)},
		{"secret first disjoint", "secret first", anon, Subscribe, "/news/public/**", allow(1, "news")},
		{"secret later shadowed", "secret later", anon, Subscribe, "/news/*", allow(0, "news")},
		{"secret later plain", "secret later", anon, Subscribe, "/news/secret", allow(0, "news")},
		{"secret later deep: shadowed rule skipped", "secret later", anon, Subscribe, "/news/**", allow(2, "rest")},
		{"secret later partly shadowed", "partly shadowed", anon, Subscribe, "/news/**", deny(2, "secret", rNoSubscribe)},
		{"secret later partly shadowed plain", "partly shadowed", anon, Subscribe, "/news/secret/x", deny(2, "secret", rNoSubscribe)},
		{"one level top", "one level", anon, Subscribe, "/*", allow(0, "top")},
		{"one level exact refuses", "one level", anon, Subscribe, "/a/*", deny(1, "exact", rAuth)},
		{"one level exact then nobody", "one level", alice, Subscribe, "/a/*", deny(2, "a", rNoSubscribe)},
		{"one level plain", "one level", alice, Subscribe, "/a/b", allow(1, "exact")},
		{"one level plain other", "one level", alice, Subscribe, "/a/c", deny(2, "a", rNoSubscribe)},

		// Wildcard subscriptions under Granted access.
		{"team granted all", "team", teamAll, Subscribe, "/team/**", allow(0, "team")},
		{"team granted all one level", "team", teamAll, Subscribe, "/team/*", allow(0, "team")},
		{"team grant intersection only", "team", teamAll, Subscribe, "/**", allow(1, "rest")},
		{"team grant one level", "team", teamStar, Subscribe, "/team/*", allow(0, "team")},
		{"team grant one level not deep", "team", teamStar, Subscribe, "/team/**", deny(0, "team", rNotGranted)},
		{"team grant one level everything", "team", teamStar, Subscribe, "/**", deny(0, "team", rNotGranted)},
		{"team grant subtree", "team", aliceG, Subscribe, "/team/a/**", allow(0, "team")},
		{"team grant subtree one level", "team", aliceG, Subscribe, "/team/a/*", allow(0, "team")},
		{"team grant subtree not parent", "team", aliceG, Subscribe, "/team/**", deny(0, "team", rNotGranted)},
		{"team plain grant not wildcard", "team", aliceG, Subscribe, "/team/*", deny(0, "team", rNotGranted)},
		{"team plain grant", "team", aliceG, Subscribe, "/team/b", allow(0, "team")},
		{"team anonymous grant", "team", anonG, Subscribe, "/team/a/*", allow(0, "team")},
		{"team anonymous grant too wide", "team", anonG, Subscribe, "/team/a/**", deny(0, "team", rNotGranted)},
		{"team anonymous without grants", "team", anon, Subscribe, "/team/**", deny(0, "team", rAuth)},
		{"team everything granted", "team", everyG, Subscribe, "/**", allow(1, "rest")},
		{"team no grants", "team", alice, Subscribe, "/**", deny(0, "team", rNotGranted)},
		{"team disjoint", "team", anon, Subscribe, "/teams/**", allow(1, "rest")},
		{"owner|granted wildcard by grant", "words", aliceG, Subscribe, "/og/bob/*", allow(6, "owner|granted")},
		{"owner|granted wildcard own", "words", aliceG, Subscribe, "/og/alice/**", allow(6, "owner|granted")},
		{"owner|granted wildcard neither", "words", aliceG, Subscribe, "/og/**", deny(6, "owner|granted", rNotEither)},
		{"granted wildcard in words", "words", aliceG, Subscribe, "/granted/deep/x/**", allow(4, "granted")},
		{"granted wildcard one level by star grant", "words", aliceG, Subscribe, "/granted/team/*", allow(4, "granted")},
		{"nobody wildcard", "words", alice, Subscribe, "/nobody/*", deny(0, "nobody", rNoSubscribe)},

		// Out of contract input.
		{"invalid channel", "default", anon, Publish, "/a//b", Decision{Rule: -1, Reason: "Invalid channel"}},
		{"invalid wildcard", "default", anon, Subscribe, "/a/**/b", Decision{Rule: -1, Reason: "Invalid channel"}},
		{"meta channel", "default", anon, Subscribe, "/meta/connect", noMatch},
		{"meta wildcard", "default", anon, Subscribe, "/meta/**", noMatch},
		{"unknown action", "default", anon, Action(0), "/chat/demo", Decision{Rule: -1, Reason: "Unknown action"}},
	}
	compiled := map[string]*Rules{}
	for name, rules := range ruleSets {
		compiled[name] = mustRules(t, rules)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, ok := compiled[tt.set]
			if !ok {
				t.Fatalf("no rule set %q", tt.set)
			}
			got := r.Check(tt.subject, tt.action, tt.channel)
			if got != tt.want {
				t.Fatalf("rules %q: Check(%+v, %v, %q) = %+v, want %+v",
					tt.set, tt.subject.UserID, tt.action, tt.channel, got, tt.want)
			}
		})
	}
}

// TestCheckRuleNames checks that decisions name the rule New named.
func TestCheckRuleNames(t *testing.T) {
	t.Parallel()
	r := mustRules(t, []Rule{
		{Pattern: "/a/**", Subscribe: Anyone},
		{Name: "b", Pattern: "/b", Publish: Authenticated},
	})
	tests := []struct {
		name    string
		action  Action
		channel string
		want    Decision
	}{
		{"unnamed rule", Subscribe, "/a/x", allow(0, "/a/**")},
		{"unnamed rule refuses", Publish, "/a/x", deny(0, "/a/**", rServerOnly)},
		{"named rule", Publish, "/b", deny(1, "b", rAuth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := r.Check(Subject{}, tt.action, tt.channel); got != tt.want {
				t.Fatalf("Check(%v, %q) = %+v, want %+v", tt.action, tt.channel, got, tt.want)
			}
		})
	}
}
