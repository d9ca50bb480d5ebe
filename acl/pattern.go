package acl

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// placeholder is the rule-pattern segment that matches any one segment and,
// for Owner access, must equal the subject's user id.
const placeholder = "{sub}"

// tailKind is what a pattern allows after its explicit segments.
type tailKind uint8

const (
	tailNone tailKind = iota // nothing: exactly the explicit segments
	tailOne                  // "/*": exactly one more segment
	tailMany                 // "/**": one or more more segments
)

// pattern is a compiled channel glob: explicit segments, each a literal or
// "" for "any one segment" (real segments are never empty), followed by a
// tail. Rule patterns compile {sub} to "". Intersections of patterns are
// patterns too, possibly with "" segments anywhere.
type pattern struct {
	segs []string
	tail tailKind
}

// infinite is the upper length bound of a pattern ending in "/**".
const infinite = math.MaxInt

// lo is the least number of segments of a channel in p.
func (p pattern) lo() int {
	if p.tail == tailNone {
		return len(p.segs)
	}
	return len(p.segs) + 1
}

// hi is the greatest number of segments of a channel in p, or infinite.
func (p pattern) hi() int {
	if p.tail == tailMany {
		return infinite
	}
	return p.lo()
}

// String renders p in glob syntax with open segments as "{any}"; it is for
// tests and debugging only.
func (p pattern) String() string {
	var b strings.Builder
	for _, s := range p.segs {
		b.WriteByte('/')
		if s == "" {
			b.WriteString("{any}")
		} else {
			b.WriteString(s)
		}
	}
	switch p.tail {
	case tailOne:
		b.WriteString("/*")
	case tailMany:
		b.WriteString("/**")
	}
	return b.String()
}

// compatible reports whether two explicit segments can hold the same text.
func compatible(a, b string) bool { return a == "" || b == "" || a == b }

// intersects reports whether some channel belongs to both p and q. Segments
// a pattern leaves open accept any text, and the set of segment texts is
// unbounded, so the only constraints are the segment counts and the
// positions where both patterns are explicit.
func intersects(p, q pattern) bool {
	if max(p.lo(), q.lo()) > min(p.hi(), q.hi()) {
		return false
	}
	for i := range min(len(p.segs), len(q.segs)) {
		if !compatible(p.segs[i], q.segs[i]) {
			return false
		}
	}
	return true
}

// covers reports whether every channel of q belongs to p. The segment
// counts q allows must all be allowed by p, and every literal segment of p
// must be the same literal in q (an open position of q admits texts p's
// literal refuses).
func covers(p, q pattern) bool {
	if q.lo() < p.lo() || q.hi() > p.hi() {
		return false
	}
	for i, s := range p.segs {
		if s != "" && (i >= len(q.segs) || q.segs[i] != s) {
			return false
		}
	}
	return true
}

// at returns p's constraint on segment i: its explicit segment, or "" (any)
// beyond them.
func (p pattern) at(i int) string {
	if i < len(p.segs) {
		return p.segs[i]
	}
	return ""
}

// intersect returns the pattern of the channels in both p and q, and false
// when there are none. The bounded segment counts are single values (a
// pattern without "/**" has exactly one length), so the result is either a
// pattern of fixed length or one ending in "/**".
func intersect(p, q pattern) (pattern, bool) {
	if !intersects(p, q) {
		return pattern{}, false
	}
	n, tail := max(p.lo(), q.lo()), tailNone
	if min(p.hi(), q.hi()) == infinite {
		n, tail = max(len(p.segs), len(q.segs)), tailMany
	}
	segs := make([]string, n)
	for i := range segs {
		if s := p.at(i); s != "" {
			segs[i] = s
		} else {
			segs[i] = q.at(i)
		}
	}
	return pattern{segs: segs, tail: tail}, true
}

// matchName reports whether the plain channel name (valid, no wildcard)
// belongs to p, and whether every position listed in subs (ascending)
// holds user. It does not allocate.
func (p *pattern) matchName(name, user string, subs []int) (match, owner bool) {
	owner = user != ""
	rest := name
	next := 0
	for i, want := range p.segs {
		if len(rest) < 2 || rest[0] != '/' {
			return false, false
		}
		rest = rest[1:]
		seg := rest
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			seg, rest = rest[:j], rest[j:]
		} else {
			rest = ""
		}
		if want != "" && seg != want {
			return false, false
		}
		if next < len(subs) && subs[next] == i {
			next++
			if seg != user {
				owner = false
			}
		}
	}
	switch p.tail {
	case tailNone:
		return rest == "", owner
	case tailOne:
		return len(rest) >= 2 && strings.IndexByte(rest[1:], '/') < 0, owner
	default:
		return len(rest) >= 2, owner
	}
}

// classify checks name against the channel grammar in one pass, as
// protocol.ParseChannel does (ok is false exactly when ParseChannel fails),
// and reports whether it is a trailing-wildcard pattern.
func classify(name string) (wildcard, ok bool) {
	if len(name) < 2 || name[0] != '/' {
		return false, false
	}
	segStart := 1
	for i := 1; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			if i == segStart {
				return false, false
			}
			segStart = i + 1
		case !protocol.IsTokenChar(c):
			last := name[segStart:]
			return true, c == '*' && (last == "*" || last == "**")
		}
	}
	return false, segStart < len(name)
}

// literalPrefix returns the text of a valid rule pattern up to its first
// {sub} or wildcard segment ("/user/" for "/user/{sub}/**", all of a plain
// name without {sub}): every channel the pattern matches starts with it.
func literalPrefix(text string) string {
	for i := 0; i < len(text); i++ {
		if text[i] == '*' || text[i] == '{' {
			return text[:i]
		}
	}
	return text
}

// compileChannel compiles a name that protocol.ParseChannel accepted: a
// plain channel or a trailing-wildcard pattern.
func compileChannel(name string) pattern {
	var p pattern
	switch {
	case strings.HasSuffix(name, "/**"):
		name, p.tail = name[:len(name)-3], tailMany
	case strings.HasSuffix(name, "/*"):
		name, p.tail = name[:len(name)-2], tailOne
	}
	if name != "" {
		p.segs = strings.Split(name[1:], "/")
	}
	return p
}

// compileRule validates and compiles a rule pattern: a channel glob whose
// explicit segments may be {sub}. It returns the pattern and the positions
// of its {sub} segments.
func compileRule(text string) (pattern, []int, error) {
	if text == "" {
		return pattern{}, nil, errors.New("empty pattern")
	}
	if text[0] != '/' {
		return pattern{}, nil, errors.New("pattern must start with /")
	}
	segs := strings.Split(text[1:], "/")
	var subs []int
	check := make([]string, len(segs)) // text with {sub} replaced, for ParseChannel
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "":
			return pattern{}, nil, errors.New("empty segment")
		case s == "*" || s == "**":
			if !last {
				return pattern{}, nil, fmt.Errorf("wildcard %q is only allowed as the last segment", s)
			}
			check[i] = s
			continue
		case s == placeholder:
			subs = append(subs, i)
			s = "x"
		case strings.ContainsAny(s, "{}"):
			switch {
			case s[0] == '{' && s[len(s)-1] == '}' && strings.Count(s, "{") == 1 && strings.Count(s, "}") == 1:
				return pattern{}, nil, fmt.Errorf("unknown placeholder %q (only %s is supported)", s, placeholder)
			case strings.Contains(s, placeholder):
				return pattern{}, nil, fmt.Errorf("segment %q: %s must be a whole segment", s, placeholder)
			}
			return pattern{}, nil, fmt.Errorf("segment %q: braces are only allowed in the whole segment %s", s, placeholder)
		case strings.Contains(s, "*"):
			return pattern{}, nil, fmt.Errorf("segment %q: a wildcard must be a whole segment (* or **)", s)
		}
		for j := 0; j < len(s); j++ {
			if !protocol.IsTokenChar(s[j]) {
				return pattern{}, nil, fmt.Errorf("segment %q: character %q is not allowed in a channel name", s, s[j])
			}
		}
		check[i] = s
	}
	if _, err := protocol.ParseChannel("/" + strings.Join(check, "/")); err != nil {
		return pattern{}, nil, fmt.Errorf("invalid channel pattern: %v", err)
	}
	if protocol.IsMeta(text) {
		return pattern{}, nil, errors.New("/meta channels are handled by the hub and cannot have rules")
	}
	p := compileChannel(text)
	for _, i := range subs {
		p.segs[i] = ""
	}
	return p, subs, nil
}
