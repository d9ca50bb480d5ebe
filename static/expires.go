package static

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseTypeExpires parses the command-line form of Options.TypeExpires: a
// comma-separated list of media-type=seconds pairs, such as
// "text/css=3600,image/png=86400". Spaces around items are ignored, media
// types are lower-cased, and an empty string gives an empty map. It fails on
// a malformed pair, a media type that is not type/subtype without
// parameters, seconds that are not a non-negative integer, or a media type
// given twice.
func ParseTypeExpires(s string) (map[string]time.Duration, error) {
	out := make(map[string]time.Duration)
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		eq := strings.LastIndexByte(item, '=')
		if eq < 0 {
			return nil, fmt.Errorf("type expires item %d %q: want media-type=seconds", i+1, item)
		}
		typ, secs := strings.TrimSpace(item[:eq]), strings.TrimSpace(item[eq+1:])
		n, err := strconv.ParseInt(secs, 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(time.Second) {
			return nil, fmt.Errorf("type expires item %d %q: seconds %q: want a non-negative whole number", i+1, item, secs)
		}
		mt, err := checkExpiry(typ, time.Duration(n)*time.Second)
		if err != nil {
			return nil, fmt.Errorf("type expires item %d: %w", i+1, err)
		}
		if _, dup := out[mt]; dup {
			return nil, fmt.Errorf("type expires item %d: media type %q given twice", i+1, mt)
		}
		out[mt] = time.Duration(n) * time.Second
	}
	return out, nil
}

// checkExpiry validates one TypeExpires entry and returns its media type in
// lower case.
func checkExpiry(typ string, d time.Duration) (string, error) {
	mt := strings.ToLower(strings.TrimSpace(typ))
	major, minor, ok := strings.Cut(mt, "/")
	if !ok || !isToken(major) || !isToken(minor) {
		return "", fmt.Errorf("media type %q: want type/subtype without parameters, such as text/css", typ)
	}
	if d < 0 {
		return "", fmt.Errorf("media type %q: negative expiry %v", typ, d)
	}
	return mt, nil
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
