package actors

import (
	"crypto/rand"
	"encoding/base32"
	"runtime"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newClientID returns a fresh client id carrying 160 random bits from
// crypto/rand, in lower-case base32 (32 characters, all spec alphanum).
func newClientID() string {
	var b [20]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms (Go 1.24+)
	s := []byte(idEncoding.EncodeToString(b[:]))
	for i, c := range s {
		if c >= 'A' && c <= 'Z' {
			s[i] = c + ('a' - 'A')
		}
	}
	return string(s)
}

// newClientID returns a client id for a remote client of this hub: with a
// broker, prefixed by the node name, so that a push for it can be sent to
// the node that holds it.
func (h *Hub) newClientID() string {
	if h.opts.Broker != nil {
		return h.opts.NodeName + nodeIDSep + newClientID()
	}
	return newClientID()
}

// goid returns the id of the calling goroutine. It costs microseconds:
// it is for rare calls (Shutdown from a callback), never per message.
func goid() uint64 {
	var buf [32]byte
	n := runtime.Stack(buf[:], false)
	var id uint64
	for _, c := range buf[len("goroutine "):n] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
