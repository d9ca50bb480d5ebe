package broker

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// DefaultSubjectPrefix is the first token(s) of every NATS subject the
// broker uses.
const DefaultSubjectPrefix = "bayeux"

// subjectPrefix is what a subject prefix may look like: dot-separated
// tokens of letters, digits, '-' and '_'.
var subjectPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// nodeName is what a node name may look like (the same rule as the hub's):
// it becomes a subject token and the prefix of the node's client ids.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)

// errWildcard is returned for a publish to a wildcard pattern.
var errWildcard = errors.New("wildcards are for subscriptions, not publishes")

const upperHex = "0123456789ABCDEF"

// appendSubject appends the NATS subject for a Bayeux channel name or, when
// pattern is set, a subscription pattern to buf, which already holds the
// message-subject prefix ("bayeux.msg"):
//
//	/a/b/c -> bayeux.msg.a.b.c
//	/a/*   -> bayeux.msg.a.*
//	/a/**  -> bayeux.msg.a.>
//	/**    -> bayeux.msg.>
//
// Segments outside the Bayeux token grammar are %-escaped; an empty
// segment, or a wildcard anywhere but in the last segment of a pattern, is
// an error.
func appendSubject(buf []byte, channel string, pattern bool) ([]byte, error) {
	if len(channel) < 2 || channel[0] != '/' {
		return nil, fmt.Errorf("channel %q: not a channel name", channel)
	}
	rest := channel[1:]
	for {
		seg, more, found := strings.Cut(rest, "/")
		last := !found
		buf = append(buf, '.')
		switch {
		case seg == "":
			return nil, fmt.Errorf("channel %q: empty segment", channel)
		case (seg == "*" || seg == "**") && !last:
			return nil, fmt.Errorf("channel %q: wildcard before the last segment", channel)
		case (seg == "*" || seg == "**") && !pattern:
			return nil, fmt.Errorf("channel %q: %w", channel, errWildcard)
		case seg == "*":
			buf = append(buf, '*')
		case seg == "**":
			buf = append(buf, '>')
		default:
			for i := 0; i < len(seg); i++ {
				c := seg[i]
				if protocol.IsTokenChar(c) { // the Bayeux token grammar passes unescaped; everything else, % included, becomes %XX
					buf = append(buf, c)
				} else {
					buf = append(buf, '%', upperHex[c>>4], upperHex[c&0xf])
				}
			}
		}
		if last {
			return buf, nil
		}
		rest = more
	}
}

// NodeNameFromHostname turns a host name into a node name the hub accepts
// (1 to 32 letters, digits and dashes, starting with a letter or digit):
// it keeps the first label of a dotted name, replaces other characters
// with dashes and falls back to "node" when nothing is left.
// "Web_1.example.com" becomes "Web-1".
func NodeNameFromHostname(host string) string {
	host, _, _ = strings.Cut(host, ".")
	b := make([]byte, 0, len(host))
	for i := 0; i < len(host) && len(b) < 32; i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b = append(b, c)
		case len(b) > 0:
			b = append(b, '-')
		}
	}
	s := strings.TrimRight(string(b), "-")
	if s == "" {
		return "node"
	}
	return s
}
