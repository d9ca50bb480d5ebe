package acl

import (
	"math"
	"strings"
	"testing"
)

func TestNewErrors(t *testing.T) {
	t.Parallel()
	ok := Rule{Name: "ok", Pattern: "/ok/**", Subscribe: Anyone, Publish: Anyone}
	tests := []struct {
		name  string
		rules []Rule
		want  []string // substrings of the error
	}{
		{"empty pattern", []Rule{{Pattern: ""}}, []string{`channel rule 1 (""): `, "empty pattern"}},
		{"no leading slash", []Rule{{Pattern: "chat"}}, []string{`channel rule 1 ("chat"): `, "start with /"}},
		{"lone slash", []Rule{ok, {Pattern: "/"}}, []string{`channel rule 2 ("/"): `, "empty segment"}},
		{"empty segment", []Rule{{Pattern: "/a//b"}}, []string{`channel rule 1 ("/a//b"): `, "empty segment"}},
		{"trailing slash", []Rule{{Pattern: "/a/"}}, []string{`channel rule 1 ("/a/"): `, "empty segment"}},
		{"wildcard in middle", []Rule{ok, {Name: "x", Pattern: "/x"}, {Pattern: "/a/**/b"}},
			[]string{`channel rule 3 ("/a/**/b"): `, `wildcard "**" is only allowed as the last segment`}},
		{"one wildcard in middle", []Rule{{Pattern: "/*/b"}}, []string{`channel rule 1 ("/*/b"): `, "last segment"}},
		{"partial wildcard", []Rule{{Pattern: "/a/b*"}}, []string{`channel rule 1 ("/a/b*"): `, "whole segment"}},
		{"triple star", []Rule{{Pattern: "/a/***"}}, []string{`channel rule 1 ("/a/***"): `, "whole segment"}},
		{"bad character", []Rule{{Pattern: "/a b"}}, []string{`channel rule 1 ("/a b"): `, "not allowed"}},
		{"dot", []Rule{{Pattern: "/a.b"}}, []string{`channel rule 1 ("/a.b"): `, "not allowed"}},
		{"user placeholder", []Rule{{Pattern: "/user/{user}/**", Subscribe: Owner}},
			[]string{`channel rule 1 ("/user/{user}/**"): `, `unknown placeholder "{user}"`, "{sub}"}},
		{"empty placeholder", []Rule{{Pattern: "/user/{}"}}, []string{`channel rule 1 ("/user/{}"): `, "unknown placeholder"}},
		{"sub inside segment", []Rule{{Pattern: "/user/x{sub}"}}, []string{`channel rule 1 ("/user/x{sub}"): `, "whole segment"}},
		{"sub in wildcard", []Rule{{Pattern: "/user/{sub}**"}}, []string{`channel rule 1 ("/user/{sub}**"): `, "whole segment"}},
		{"sub in last wildcard", []Rule{{Pattern: "/user/*{sub}"}}, []string{`channel rule 1 ("/user/*{sub}"): `, "whole segment"}},
		{"unbalanced brace", []Rule{{Pattern: "/user/{sub"}}, []string{`channel rule 1 ("/user/{sub"): `, "braces are only allowed in the whole segment {sub}"}},
		{"meta channel", []Rule{{Pattern: "/meta/x"}}, []string{`channel rule 1 ("/meta/x"): `, "/meta"}},
		{"meta wildcard", []Rule{{Pattern: "/meta/**"}}, []string{`channel rule 1 ("/meta/**"): `, "/meta"}},
		{"meta sub", []Rule{{Pattern: "/meta/{sub}"}}, []string{`channel rule 1 ("/meta/{sub}"): `, "/meta"}},
		{"negative rate", []Rule{ok, {Pattern: "/r", PublishRate: -1}}, []string{`channel rule 2 ("/r"): `, "publish rate -1 is negative"}},
		{"NaN rate", []Rule{{Pattern: "/r", PublishRate: math.NaN()}}, []string{`channel rule 1 ("/r"): `, "publish rate NaN"}},
		{"infinite rate", []Rule{{Pattern: "/r", PublishRate: math.Inf(1)}}, []string{`channel rule 1 ("/r"): `, "publish rate +Inf"}},
		{"negative burst", []Rule{{Pattern: "/r", PublishRate: 1, PublishBurst: -2}}, []string{`channel rule 1 ("/r"): `, "publish burst -2 is negative"}},
		{"burst without rate", []Rule{{Pattern: "/r", PublishBurst: 5}}, []string{`channel rule 1 ("/r"): `, "without a publish rate"}},
		{"duplicate names", []Rule{{Name: "a", Pattern: "/x"}, ok, {Name: "a", Pattern: "/y"}},
			[]string{`channel rule 3 ("/y"): `, `duplicate name "a" (also rule 1)`}},
		{"duplicate default names", []Rule{{Pattern: "/x/**"}, {Pattern: "/x/**"}},
			[]string{`channel rule 2 ("/x/**"): `, `duplicate name "/x/**" (also rule 1)`}},
		{"name equals other pattern", []Rule{{Pattern: "/x"}, {Name: "/x", Pattern: "/y"}},
			[]string{`channel rule 2 ("/y"): `, `duplicate name "/x"`}},
		{"owner without sub", []Rule{{Pattern: "/user/**", Subscribe: Owner}},
			[]string{`channel rule 1 ("/user/**"): `, "subscribe access owner needs a {sub} segment"}},
		{"owner publish without sub", []Rule{{Pattern: "/user/**", Publish: Owner | Granted}},
			[]string{`channel rule 1 ("/user/**"): `, "publish access owner,granted needs a {sub} segment"}},
		{"undefined access bits", []Rule{{Pattern: "/a", Subscribe: Access(0x40)}},
			[]string{`channel rule 1 ("/a"): `, "subscribe access 0x40 has undefined bits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tt.rules)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.rules, r)
			}
			if r != nil {
				t.Errorf("New returned %v with error %v; want nil", r, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewValidPatterns(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"/**", "/*", "/a", "/a/*", "/a/**", "/{sub}", "/{sub}/**", "/a/{sub}/*",
		"/a/{sub}/b/{sub}", "/meta", "/Meta/x", "/metadata/**", "/service/**", "/a-b_c!~()$@/**",
	} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			r, err := New([]Rule{{Pattern: p, Subscribe: Anyone}})
			if err != nil {
				t.Fatalf("New(%q) error: %v", p, err)
			}
			if got := r.Rule(0).Pattern; got != p {
				t.Fatalf("Rule(0).Pattern = %q, want %q (never normalised)", got, p)
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	t.Parallel()
	in := []Rule{
		{Pattern: "/a/**", Subscribe: Anyone, Publish: Authenticated},
		{Name: "slow", Pattern: "/b", PublishRate: 0.2},
		{Name: "fast", Pattern: "/c", PublishRate: 2.5},
		{Name: "whole", Pattern: "/d", PublishRate: 4},
		{Name: "given", Pattern: "/e", PublishRate: 2.5, PublishBurst: 10},
		{Name: "huge", Pattern: "/f", PublishRate: 1e300},
	}
	want := []Rule{
		{Name: "/a/**", Pattern: "/a/**", Subscribe: Anyone, Publish: Authenticated},
		{Name: "slow", Pattern: "/b", PublishRate: 0.2, PublishBurst: 1},
		{Name: "fast", Pattern: "/c", PublishRate: 2.5, PublishBurst: 3},
		{Name: "whole", Pattern: "/d", PublishRate: 4, PublishBurst: 4},
		{Name: "given", Pattern: "/e", PublishRate: 2.5, PublishBurst: 10},
		{Name: "huge", Pattern: "/f", PublishRate: 1e300, PublishBurst: math.MaxInt32},
	}
	r, err := New(in)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != len(want) {
		t.Fatalf("Len() = %d, want %d", r.Len(), len(want))
	}
	for i, w := range want {
		if got := r.Rule(i); got != w {
			t.Errorf("Rule(%d) = %+v, want %+v", i, got, w)
		}
	}
	if in[0].Name != "" || in[1].PublishBurst != 0 {
		t.Errorf("New modified its argument: %+v", in)
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	rules := Default()
	want := []Rule{
		{Name: "hub", Pattern: "/bayeuxhub/**", Subscribe: Anyone, Publish: Nobody},
		{Name: "default", Pattern: "/**", Subscribe: Anyone, Publish: Anyone},
	}
	if len(rules) != len(want) {
		t.Fatalf("Default() has %d rules, want %d", len(rules), len(want))
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("Default()[%d] = %+v, want %+v", i, rules[i], want[i])
		}
	}
	rules[0].Name = "changed"
	if Default()[0].Name != "hub" {
		t.Error("Default() returns a shared slice")
	}
}

func TestEmptyRules(t *testing.T) {
	t.Parallel()
	empty, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var null *Rules
	no := Decision{Rule: -1, Reason: "No channel rule allows this channel"}
	for _, r := range []*Rules{empty, null} {
		if r.Len() != 0 {
			t.Errorf("Len() = %d, want 0", r.Len())
		}
		for _, c := range []struct {
			a  Action
			ch string
		}{{Publish, "/chat/demo"}, {Subscribe, "/chat/demo"}, {Subscribe, "/**"}} {
			if got := r.Check(Subject{UserID: "alice"}, c.a, c.ch); got != no {
				t.Errorf("%v Check(%v, %q) = %+v, want %+v", r, c.a, c.ch, got, no)
			}
		}
	}
}
