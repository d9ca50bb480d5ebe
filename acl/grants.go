package acl

import (
	"fmt"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// Grants is the compiled list of channels a subject's token grants: plain
// channel names and trailing-wildcard patterns. The zero value grants
// nothing. A Grants is immutable and safe for concurrent use; copies share
// the compiled list.
type Grants struct {
	list []grant
}

// grant is one granted channel or pattern, as given and compiled.
type grant struct {
	name string
	pat  pattern
}

// NewGrants compiles granted channel patterns. Each must be a valid channel
// name or trailing-wildcard pattern (protocol.ParseChannel) outside /meta;
// the error for an invalid one names it. No patterns give the zero Grants.
func NewGrants(patterns []string) (Grants, error) {
	if len(patterns) == 0 {
		return Grants{}, nil
	}
	list := make([]grant, len(patterns))
	for i, p := range patterns {
		if _, err := protocol.ParseChannel(p); err != nil {
			return Grants{}, fmt.Errorf("grant %d (%q): invalid channel pattern", i+1, p)
		}
		if protocol.IsMeta(p) {
			return Grants{}, fmt.Errorf("grant %d (%q): /meta channels cannot be granted", i+1, p)
		}
		list[i] = grant{name: p, pat: compileChannel(p)}
	}
	return Grants{list: list}, nil
}

// Len returns the number of granted patterns.
func (g Grants) Len() int { return len(g.list) }

// matches reports whether some grant matches the plain channel name.
func (g Grants) matches(name string) bool {
	for i := range g.list {
		if protocol.Match(g.list[i].name, name) {
			return true
		}
	}
	return false
}

// coverAll reports whether some single grant covers every channel of p.
func (g Grants) coverAll(p pattern) bool {
	for i := range g.list {
		if covers(g.list[i].pat, p) {
			return true
		}
	}
	return false
}
