package acl

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// The brute-force tests build patterns over the segments "a", "b" and
// {sub}, and enumerate channels over "a", "b" and "c": "c" is a text no
// pattern names, which an open segment admits and a literal refuses, as
// any of the unbounded other texts would.
var (
	patternSegs = []string{"a", "b", placeholder}
	channelSegs = []string{"a", "b", "c"}
)

// globs returns every pattern of up to n explicit segments over
// patternSegs, with every tail.
func globs(n int) []string {
	prefixes := []string{""}
	var out []string
	for k := 0; k <= n; k++ {
		for _, p := range prefixes {
			if k > 0 {
				out = append(out, p)
			}
			out = append(out, p+"/*", p+"/**")
		}
		var next []string
		for _, p := range prefixes {
			for _, s := range patternSegs {
				next = append(next, p+"/"+s)
			}
		}
		prefixes = next
	}
	return out
}

// channels returns every plain channel of 1 to depth segments over
// channelSegs.
func channels(depth int) []string {
	var out []string
	level := []string{""}
	for d := 1; d <= depth; d++ {
		var next []string
		for _, p := range level {
			for _, s := range channelSegs {
				next = append(next, p+"/"+s)
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// refMatch is an independent reference: whether the plain channel belongs
// to the glob, {sub} matching any one segment.
func refMatch(glob, channel string) bool {
	g := strings.Split(glob[1:], "/")
	c := strings.Split(channel[1:], "/")
	last := g[len(g)-1]
	switch last {
	case "*":
		if len(c) != len(g) {
			return false
		}
		g = g[:len(g)-1]
	case "**":
		if len(c) < len(g) {
			return false
		}
		g = g[:len(g)-1]
	default:
		if len(c) != len(g) {
			return false
		}
	}
	for i, s := range g {
		if s != placeholder && s != c[i] {
			return false
		}
	}
	return true
}

func mustCompile(t *testing.T, glob string) pattern {
	t.Helper()
	p, _, err := compileRule(glob)
	if err != nil {
		t.Fatalf("compileRule(%q): %v", glob, err)
	}
	return p
}

// TestPatternBruteForce compares intersects, covers, intersect and
// matchName with enumeration. With at most 2 explicit segments, any
// channel that tells two patterns apart has at most 4 segments.
func TestPatternBruteForce(t *testing.T) {
	t.Parallel()
	bruteForce(t, globs(2), channels(4), nil)
}

// TestPatternBruteForceRandom does the same for random pairs of patterns
// with up to 3 explicit segments, over channels of up to 5 segments.
func TestPatternBruteForceRandom(t *testing.T) {
	t.Parallel()
	all := globs(3)
	rng := rand.New(rand.NewPCG(1, 2))
	pairs := make([][2]string, 3000)
	for i := range pairs {
		pairs[i] = [2]string{all[rng.IntN(len(all))], all[rng.IntN(len(all))]}
	}
	bruteForce(t, nil, channels(5), pairs)
}

// bruteForce checks every pair of globs, or the given pairs.
func bruteForce(t *testing.T, globs []string, chans []string, pairs [][2]string) {
	if pairs == nil {
		for _, p := range globs {
			for _, q := range globs {
				pairs = append(pairs, [2]string{p, q})
			}
		}
	}
	compiled := map[string]pattern{}
	members := map[string][]bool{} // glob -> membership of each channel
	for _, pq := range pairs {
		for _, g := range pq {
			if _, ok := compiled[g]; ok {
				continue
			}
			p := mustCompile(t, g)
			compiled[g] = p
			in := make([]bool, len(chans))
			for i, c := range chans {
				in[i] = refMatch(g, c)
				if got, _ := p.matchName(c, "", nil); got != in[i] {
					t.Errorf("matchName(%q, %q) = %v, want %v", g, c, got, in[i])
				}
				if !strings.Contains(g, placeholder) && protocol.Match(g, c) != in[i] {
					t.Errorf("reference disagrees with protocol.Match(%q, %q)", g, c)
				}
			}
			members[g] = in
		}
	}
	for _, pq := range pairs {
		p, q := compiled[pq[0]], compiled[pq[1]]
		inP, inQ := members[pq[0]], members[pq[1]]
		wantMeet, wantCover := false, true
		for i := range chans {
			if inP[i] && inQ[i] {
				wantMeet = true
			}
			if inQ[i] && !inP[i] {
				wantCover = false
			}
		}
		if got := intersects(p, q); got != wantMeet {
			t.Errorf("intersects(%s, %s) = %v, want %v", pq[0], pq[1], got, wantMeet)
		}
		if got := covers(p, q); got != wantCover {
			t.Errorf("covers(%s, %s) = %v, want %v", pq[0], pq[1], got, wantCover)
		}
		meet, ok := intersect(p, q)
		if ok != wantMeet {
			t.Errorf("intersect(%s, %s) ok = %v, want %v", pq[0], pq[1], ok, wantMeet)
			continue
		}
		if !ok {
			continue
		}
		for i, c := range chans {
			if got, _ := meet.matchName(c, "", nil); got != (inP[i] && inQ[i]) {
				t.Errorf("intersect(%s, %s) = %s: matches %q = %v, want %v", pq[0], pq[1], meet, c, got, inP[i] && inQ[i])
			}
		}
	}
}

// TestMatchNameOwner checks the {sub} positions matchName reports.
func TestMatchNameOwner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		glob, channel, user string
		match, owner        bool
	}{
		{"/u/{sub}/**", "/u/alice/x", "alice", true, true},
		{"/u/{sub}/**", "/u/bob/x", "alice", true, false},
		{"/u/{sub}/**", "/u/alice/x", "", true, false},
		{"/u/{sub}/**", "/u/alice", "alice", false, false},
		{"/{sub}/{sub}", "/alice/alice", "alice", true, true},
		{"/{sub}/{sub}", "/alice/bob", "alice", true, false},
		{"/{sub}/{sub}", "/bob/alice", "alice", true, false},
		{"/{sub}/*", "/alice/x", "alice", true, true},
		{"/{sub}/*", "/alice/x/y", "alice", false, false},
		{"/a", "/a", "alice", true, true},
		{"/a", "/ab", "alice", false, false},
		{"/a/b", "/a", "alice", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.glob+" "+tt.channel, func(t *testing.T) {
			t.Parallel()
			p, subs, err := compileRule(tt.glob)
			if err != nil {
				t.Fatal(err)
			}
			match, owner := p.matchName(tt.channel, tt.user, subs)
			if match != tt.match || (match && owner != tt.owner) {
				t.Fatalf("matchName(%q, %q, %q) = %v, %v; want %v, %v",
					tt.glob, tt.channel, tt.user, match, owner, tt.match, tt.owner)
			}
		})
	}
}

// TestCheckWildcardSound checks, over random rule lists, subjects and
// subscriptions, that a wildcard subscription is allowed only if every
// channel it can receive is allowed on its own.
func TestCheckWildcardSound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	ruleGlobs := globs(2)
	var subs, grantGlobs []string // literal globs: subscriptions and grants
	for _, g := range ruleGlobs {
		if !strings.Contains(g, placeholder) {
			grantGlobs = append(grantGlobs, g)
			if strings.HasSuffix(g, "*") {
				subs = append(subs, g)
			}
		}
	}
	chans := channels(4)
	allowedSome := 0
	for range 400 {
		rules := make([]Rule, 1+rng.IntN(4))
		for i := range rules {
			g := ruleGlobs[rng.IntN(len(ruleGlobs))]
			a := Access(rng.IntN(int(allAccess) + 1))
			if !strings.Contains(g, placeholder) {
				a &^= Owner
			}
			rules[i] = Rule{Name: string(rune('A' + i)), Pattern: g, Subscribe: a}
		}
		r, err := New(rules)
		if err != nil {
			t.Fatal(err)
		}
		var granted []string
		for range rng.IntN(3) {
			granted = append(granted, grantGlobs[rng.IntN(len(grantGlobs))])
		}
		grants, err := NewGrants(granted)
		if err != nil {
			t.Fatal(err)
		}
		for _, user := range []string{"", "a"} {
			s := Subject{UserID: user, Grants: grants}
			for _, w := range subs {
				d := r.Check(s, Subscribe, w)
				if !d.Allowed {
					continue
				}
				allowedSome++
				for _, c := range chans {
					if !protocol.Match(w, c) {
						continue
					}
					if cd := r.Check(s, Subscribe, c); !cd.Allowed {
						t.Fatalf("rules %+v, user %q, grants %q: %s allowed (%+v) but %s refused (%+v)",
							rules, user, granted, w, d, c, cd)
					}
				}
			}
		}
	}
	if allowedSome == 0 {
		t.Fatal("no wildcard subscription was ever allowed; the test checks nothing")
	}
}

// TestClassify compares classify with protocol.ParseChannel on every
// string of up to 7 bytes over a small alphabet.
func TestClassify(t *testing.T) {
	t.Parallel()
	alphabet := []byte{'/', 'a', '*', '{', ' '}
	var walk func(b []byte)
	walk = func(b []byte) {
		name := string(b)
		kind, err := protocol.ParseChannel(name)
		wildcard, ok := classify(name)
		if ok != (err == nil) || (ok && wildcard != (kind == protocol.KindWildcard)) {
			t.Errorf("classify(%q) = %v, %v; ParseChannel = %v, %v", name, wildcard, ok, kind, err)
		}
		if len(b) == 7 {
			return
		}
		for _, c := range alphabet {
			walk(append(b, c))
		}
	}
	walk(nil)
}
