package protocol

import (
	"bytes"
	"strconv"
)

// DefaultMaxBatch is the default bound on the messages of one request.
const DefaultMaxBatch = 1000

// ErrTooManyMessages refuses a request of more than max messages before
// it is decoded: a request's reply (one per message) and the memory it
// takes grow with its messages, not only with its size.
func ErrTooManyMessages(max int) *Error {
	return ErrBadRequest("Too many messages in one request (at most " + strconv.Itoa(max) + ")")
}

// DecodeLimit is Decode for a body of at most max messages (0: no bound):
// a larger batch is refused with ErrTooManyMessages after a scan that
// allocates nothing, before any message is decoded.
func DecodeLimit(body []byte, max int) ([]*Message, error) {
	if max > 0 {
		if n, ok := countMessages(bytes.TrimSpace(body), max); ok && n > max {
			return nil, ErrTooManyMessages(max)
		}
	}
	return Decode(body)
}

// countMessages counts the messages of a body (1 for an object, the
// elements of an array), stopping once past max; ok is false when the
// scanner cannot read the body (Decode then reports what is wrong).
func countMessages(body []byte, max int) (n int, ok bool) {
	s := scanner{b: body}
	switch s.peek() {
	case '{':
		return 1, true
	case '[':
	default:
		return 0, false
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		return 0, true
	}
	for {
		s.ws()
		if !s.skip(0) {
			return n, false
		}
		if n++; n > max {
			return n, true
		}
		s.ws()
		switch s.next() {
		case ',':
		case ']':
			return n, true
		default:
			return n, false
		}
	}
}
