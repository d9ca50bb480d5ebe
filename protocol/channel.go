package protocol

import "strings"

// Reserved channel names and prefixes.
const (
	MetaHandshake   = "/meta/handshake"
	MetaConnect     = "/meta/connect"
	MetaDisconnect  = "/meta/disconnect"
	MetaSubscribe   = "/meta/subscribe"
	MetaUnsubscribe = "/meta/unsubscribe"

	metaPrefix    = "/meta/"
	servicePrefix = "/service/"
)

// ChannelKind classifies a syntactically valid channel name.
type ChannelKind uint8

// The kinds of channel a name can denote.
const (
	KindRegular  ChannelKind = iota // a plain broadcast channel such as /chat/demo
	KindMeta                        // /meta/**: the protocol's own channels
	KindService                     // /service/**: request/response, never broadcast
	KindWildcard                    // a pattern ending in /* or /**
)

// ParseChannel checks name against the Bayeux channel grammar (spec: Channels,
// Channel Globbing) and classifies it. Names are case sensitive and are never
// normalised: "/Meta/connect" is a regular channel and "//meta/connect" is
// invalid. A wildcard may only be the last segment.
func ParseChannel(name string) (ChannelKind, error) {
	if len(name) < 2 || name[0] != '/' {
		return 0, ErrInvalidChannel(name)
	}
	segStart := 1
	for i := 1; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		seg := name[segStart:i]
		last := i == len(name)
		switch {
		case seg == "":
			return 0, ErrInvalidChannel(name)
		case seg == "*" || seg == "**":
			if !last {
				return 0, ErrInvalidChannel(name)
			}
			return KindWildcard, nil
		case !isToken(seg):
			return 0, ErrInvalidChannel(name)
		}
		segStart = i + 1
	}
	switch {
	case strings.HasPrefix(name, metaPrefix):
		return KindMeta, nil
	case strings.HasPrefix(name, servicePrefix):
		return KindService, nil
	}
	return KindRegular, nil
}

// CheckChannelSize refuses a channel name or pattern of more than
// maxLength bytes (ErrChannelTooLong) or more than maxDepth segments
// (ErrChannelTooDeep; a wildcard is a segment: "/a/**" has two); a bound
// of 0 or less is no bound. It reads no more than maxLength bytes of the
// name, so that a hub can refuse a huge name before anything else (the
// grammar, the channel rules, routing) reads it.
func CheckChannelSize(name string, maxLength, maxDepth int) *Error {
	if maxLength > 0 && len(name) > maxLength {
		return ErrChannelTooLong(maxLength)
	}
	if maxDepth > 0 && strings.Count(name, "/") > maxDepth {
		return ErrChannelTooDeep(name, maxDepth)
	}
	return nil
}

// IsMeta reports whether name lies in the reserved /meta/ space. It is a
// prefix test on the raw name: callers use it after ParseChannel.
func IsMeta(name string) bool { return strings.HasPrefix(name, metaPrefix) }

// IsService reports whether name lies in the /service/ space.
func IsService(name string) bool { return strings.HasPrefix(name, servicePrefix) }

// IsTokenChar reports whether c may appear in a channel segment: the spec's
// alphanum and mark characters ("-" "_" "!" "~" "(" ")" "$" "@").
func IsTokenChar(c byte) bool { return tokenChar[c] }

// isToken reports whether s is a spec "token": one or more of alphanum or mark
// ("-" "_" "!" "~" "(" ")" "$" "@").
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return s != ""
}

var tokenChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_!~()$@" {
		t[c] = true
	}
	return t
}()

// Match reports whether the channel name matches pattern, which is either a
// plain channel name (exact match) or a trailing-wildcard pattern: "/a/*"
// matches one more segment, "/a/**" one or more.
func Match(pattern, name string) bool {
	n := len(pattern)
	switch {
	case n >= 2 && pattern[n-2:] == "/*":
		prefix := pattern[:n-1] // keeps the slash
		rest, ok := strings.CutPrefix(name, prefix)
		return ok && rest != "" && !strings.Contains(rest, "/")
	case n >= 3 && pattern[n-3:] == "/**":
		prefix := pattern[:n-2]
		rest, ok := strings.CutPrefix(name, prefix)
		return ok && rest != ""
	}
	return pattern == name
}

// Patterns calls fn with every subscription name that a publish to the
// regular channel name can reach, most specific first: the name itself, its
// parent's "/*", then "/**" of every ancestor. For "/a/b/c" that is "/a/b/c",
// "/a/b/*", "/a/b/**", "/a/**" and "/**". The byte slice passed to fn is
// reused between calls; fn must not keep or change it (a map lookup with
// m[string(b)] does not allocate). Each pattern after the first is made by
// overwriting the end of the previous one, so building them all costs time
// linear in the name's length; looking each one up (hashing it) still
// costs its length, which is why a hub bounds a name's length and depth.
func Patterns(name string, fn func(pattern []byte)) {
	buf := make([]byte, 0, max(len(name)+2, 64)) // fn escapes it: one allocation
	buf = append(buf, name...)
	fn(buf)
	last := strings.LastIndexByte(name, '/')
	if last < 0 {
		return
	}
	// buf[:i+1] is name[:i+1] for every i <= last: only bytes past the
	// slash in use are ever overwritten, and the slashes go right to left.
	buf = append(buf[:last+1], '*')
	fn(buf)
	for i := last; i >= 0; i-- {
		if name[i] != '/' {
			continue
		}
		buf = append(buf[:i+1], '*', '*')
		fn(buf)
	}
}
