package protocol

import (
	"slices"
	"testing"
)

func TestParseChannel(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind ChannelKind
		ok   bool
	}{
		{"/foo/bar", KindRegular, true},
		{"/foo-bar/(foobar)", KindRegular, true},
		{"/a/b/$@!~_", KindRegular, true},
		{"/meta/connect", KindMeta, true},
		{"/meta/subscribe/x", KindMeta, true},
		{"/service/echo", KindService, true},
		{"/foo/*", KindWildcard, true},
		{"/foo/**", KindWildcard, true},
		{"/*", KindWildcard, true},
		{"/**", KindWildcard, true},
		{"/meta/*", KindWildcard, true},
		{"/Meta/connect", KindRegular, true}, // case matters: not /meta
		{"/meta", KindRegular, true},         // the segment alone is not the /meta/ space
		{"", 0, false},
		{"/", 0, false},
		{"foo", 0, false},
		{"//meta/connect", 0, false},
		{"/meta//connect", 0, false},
		{"/foo/", 0, false},
		{"/foo/*/bar", 0, false},
		{"/foo/***", 0, false},
		{"/foo/b*", 0, false},
		{"/foo bar", 0, false},
		{"/foo.bar", 0, false},
		{"/foo\\bar", 0, false},
		{"/ｍeta/connect", 0, false}, // full-width look-alike
		{"/meta/connect\x00", 0, false},
		{"/%6deta/connect", 0, false},
	} {
		kind, err := ParseChannel(tc.name)
		if (err == nil) != tc.ok || (tc.ok && kind != tc.kind) {
			t.Errorf("ParseChannel(%q) = %v, %v; want kind %v ok %v", tc.name, kind, err, tc.kind, tc.ok)
		}
		if err != nil && err.(*Error).Code != CodeInvalidChannel {
			t.Errorf("ParseChannel(%q) error %v is not a 405", tc.name, err)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"/foo/*", "/foo/bar", true},
		{"/foo/*", "/foo/boo", true},
		{"/foo/*", "/foo", false},
		{"/foo/*", "/foobar", false},
		{"/foo/*", "/foo/bar/boo", false},
		{"/foo/**", "/foo/bar", true},
		{"/foo/**", "/foo/bar/boo", true},
		{"/foo/**", "/foo", false},
		{"/foo/**", "/foobar", false},
		{"/foo/**", "/foobar/boo", false},
		{"/**", "/a", true},
		{"/*", "/a/b", false},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/bc", false},
	} {
		if got := Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestPatterns(t *testing.T) {
	var got []string
	Patterns("/a/b/c", func(p []byte) { got = append(got, string(p)) })
	want := []string{"/a/b/c", "/a/b/*", "/a/b/**", "/a/**", "/**"}
	if !slices.Equal(got, want) {
		t.Fatalf("Patterns(/a/b/c) = %v, want %v", got, want)
	}
	// Every pattern Patterns yields matches the name, and every matching
	// pattern of a set of candidates is yielded.
	for _, p := range got {
		if !Match(p, "/a/b/c") {
			t.Errorf("%s does not match /a/b/c", p)
		}
	}
	for _, p := range []string{"/a/*", "/b/**", "/a/b/c/*", "/a/b/c/**"} {
		if slices.Contains(got, p) {
			t.Errorf("%s should not be a candidate for /a/b/c", p)
		}
	}
	got = got[:0]
	Patterns("/x", func(p []byte) { got = append(got, string(p)) })
	if !slices.Equal(got, []string{"/x", "/*", "/**"}) {
		t.Fatalf("Patterns(/x) = %v", got)
	}
}

func TestPatternsDoNotAllocate(t *testing.T) {
	m := map[string]int{"/a/**": 1}
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		Patterns("/a/b/c", func(p []byte) { n += m[string(p)] })
	})
	// One scratch buffer per call at most; never a string per pattern.
	if allocs > 1 {
		t.Fatalf("Patterns allocates %v times per call", allocs)
	}
}
