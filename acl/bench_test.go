package acl

import "testing"

// benchRules is a realistic rule list: a few specific rules before the
// catch-all, so a plain check walks several patterns.
var benchRules = []Rule{
	{Name: "hub", Pattern: "/bayeuxhub/**", Subscribe: Anyone, Publish: Nobody},
	{Name: "announce", Pattern: "/announce", Subscribe: Anyone, Publish: Nobody},
	{Name: "user", Pattern: "/user/{sub}/**", Subscribe: Owner, Publish: Owner | Granted},
	{Name: "team", Pattern: "/team/*", Subscribe: Granted, Publish: Granted, PublishRate: 10},
	{Name: "chat", Pattern: "/chat/**", Subscribe: Anyone, Publish: Authenticated, PublishRate: 5},
	{Name: "default", Pattern: "/**", Subscribe: Authenticated, Publish: Authenticated},
}

// benchCases are the checks the benchmark and the allocation test run.
var benchCases = []struct {
	name    string
	action  Action
	channel string
	want    bool
}{
	{"default-rule", Publish, "/some/other/channel", true},
	{"chat", Publish, "/chat/demo", true},
	{"owner", Publish, "/user/alice/inbox", true},
	{"granted", Publish, "/team/red", true},
	{"refused", Publish, "/bayeuxhub/stats", false},
}

func benchSubject(t testing.TB) Subject {
	return Subject{UserID: "alice", Grants: mustGrants(t, "/team/blue", "/team/red", "/user/bob/**")}
}

func BenchmarkCheck(b *testing.B) {
	r := mustRules(b, benchRules)
	s := benchSubject(b)
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r.Check(s, c.action, c.channel).Allowed != c.want {
					b.Fatal("wrong decision")
				}
			}
		})
	}
	b.Run("wildcard-subscribe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !r.Check(s, Subscribe, "/user/alice/**").Allowed {
				b.Fatal("wrong decision")
			}
		}
	})
}

// TestCheckPlainDoesNotAllocate guards the plain-name path against
// allocations. It is deliberately not parallel: testing.AllocsPerRun counts
// the whole process's allocations, and parallel tests only start once the
// sequential ones are done.
func TestCheckPlainDoesNotAllocate(t *testing.T) {
	r := mustRules(t, benchRules)
	s := benchSubject(t)
	for _, c := range benchCases {
		if n := testing.AllocsPerRun(100, func() { r.Check(s, c.action, c.channel) }); n != 0 {
			t.Errorf("Check(%s %q) allocates %v times, want 0", c.action, c.channel, n)
		}
	}
}
