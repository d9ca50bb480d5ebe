package protocol

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeFast parses the usual shape of a Bayeux request (an array of
// objects, or one object, with the Bayeux fields) without reflection,
// several times faster than encoding/json. Raw fields (id, data, ext,
// subscription) are copied, as encoding/json does, so that a held request
// does not keep its whole body alive. It gives up (ok false) on anything it
// would not decode exactly as encoding/json does: escaped strings, invalid
// UTF-8 anywhere (Decode's slow path marks that message invalid), duplicate
// or case-folded keys, unexpected types, numbers that are
// not plain integers in advice, very deep nesting. Decode then takes the
// encoding/json path, which also produces the error messages. FuzzDecodeFast
// checks the two agree.
func decodeFast(body []byte) (msgs []*Message, ok bool) {
	s := scanner{b: body}
	s.ws()
	switch s.peek() {
	case '{':
		m, ok := s.message()
		if !ok {
			return nil, false
		}
		msgs = []*Message{m}
	case '[':
		s.i++
		s.ws()
		if s.peek() == ']' {
			return nil, false // empty batch: the slow path reports it
		}
		for {
			s.ws()
			if s.peek() != '{' {
				return nil, false
			}
			m, ok := s.message()
			if !ok {
				return nil, false
			}
			msgs = append(msgs, m)
			s.ws()
			switch s.next() {
			case ',':
				continue
			case ']':
			default:
				return nil, false
			}
			break
		}
	default:
		return nil, false
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	return msgs, true
}

// scanner reads JSON from b; next and peek return 0 at the end.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) next() byte {
	c := s.peek()
	s.i++
	return c
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// Field bits, to refuse duplicate keys.
const (
	fChannel = 1 << iota
	fID
	fClientID
	fVersion
	fMinimumVersion
	fTypes
	fConnectionType
	fSubscription
	fData
	fExt
	fAdvice
)

var fieldNames = [...]string{"channel", "id", "clientId", "version", "minimumVersion", "supportedConnectionTypes",
	"connectionType", "subscription", "data", "ext", "advice"}

// message reads one object into a Message.
func (s *scanner) message() (*Message, bool) {
	m := new(Message)
	start := s.i
	seen := 0
	ok := s.object(func(key []byte) bool {
		field := -1
		for i, name := range fieldNames {
			if string(key) == name {
				field = i
				break
			}
		}
		if field < 0 {
			for _, name := range fieldNames {
				if bytes.EqualFold(key, []byte(name)) {
					return false // encoding/json matches keys case-insensitively
				}
			}
			return s.skip(0)
		}
		if seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		switch 1 << field {
		case fChannel:
			return s.stringInto(&m.Channel)
		case fClientID:
			return s.stringInto(&m.ClientID)
		case fVersion:
			return s.stringInto(&m.Version)
		case fMinimumVersion:
			return s.stringInto(&m.MinimumVersion)
		case fConnectionType:
			return s.stringInto(&m.ConnectionType)
		case fID:
			start := s.i
			c := s.peek()
			if c != '"' && c != '-' && (c < '0' || c > '9') {
				return false
			}
			if !s.skip(0) {
				return false
			}
			m.ID = json.RawMessage(bytes.Clone(s.b[start:s.i]))
			return true
		case fData:
			return s.rawInto(&m.Data)
		case fExt:
			return s.rawInto(&m.Ext)
		case fTypes:
			if s.literal("null") {
				return true
			}
			names, ok := s.stringArray()
			m.SupportedConnectionTypes = names
			return ok
		case fSubscription:
			start := s.i
			if s.peek() == '"' {
				var one string
				if !s.stringInto(&one) {
					return false
				}
				m.Subscription = Subscription{Names: []string{one}, Raw: json.RawMessage(bytes.Clone(s.b[start:s.i]))}
				return true
			}
			names, ok := s.stringArray()
			if !ok || names == nil {
				return false
			}
			m.Subscription = Subscription{Names: names, Raw: json.RawMessage(bytes.Clone(s.b[start:s.i]))}
			return true
		case fAdvice:
			if s.literal("null") {
				return true
			}
			return s.advice(m)
		}
		return false
	})
	if !ok {
		return nil, false
	}
	m.Size = s.i - start
	m.Invalid = m.validate()
	return m, true
}

// object reads {"key": value, ...}, calling field for each key with the
// scanner on the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if s.next() != '{' {
		return false
	}
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, ok := s.plainString()
		if !ok {
			return false
		}
		s.ws()
		if s.next() != ':' {
			return false
		}
		s.ws()
		if !field(key) {
			return false
		}
		s.ws()
		switch s.next() {
		case ',':
		case '}':
			return true
		default:
			return false
		}
	}
}

// plainString reads a string without escapes, control characters or
// invalid UTF-8 and returns its contents.
func (s *scanner) plainString() ([]byte, bool) {
	if s.next() != '"' {
		return nil, false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			str := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(str) {
				return nil, false
			}
			return str, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		s.i++
	}
	return nil, false
}

func (s *scanner) stringInto(dst *string) bool {
	str, ok := s.plainString()
	if ok {
		*dst = string(str)
	}
	return ok
}

func (s *scanner) rawInto(dst *json.RawMessage) bool {
	start := s.i
	if !s.skip(0) {
		return false
	}
	*dst = json.RawMessage(bytes.Clone(s.b[start:s.i]))
	return true
}

// stringArray reads an array of plain strings.
func (s *scanner) stringArray() ([]string, bool) {
	if s.next() != '[' {
		return nil, false
	}
	out := []string{}
	s.ws()
	if s.peek() == ']' {
		s.i++
		return out, true
	}
	for {
		s.ws()
		var str string
		if !s.stringInto(&str) {
			return nil, false
		}
		out = append(out, str)
		s.ws()
		switch s.next() {
		case ',':
		case ']':
			return out, true
		default:
			return nil, false
		}
	}
}

// advice reads the advice object; only reconnect, interval and timeout are
// kept, as in Advice.
func (s *scanner) advice(m *Message) bool {
	a := new(Advice)
	seen := 0
	ok := s.object(func(key []byte) bool {
		var bit int
		switch string(key) {
		case "reconnect":
			bit = 1
		case "interval":
			bit = 2
		case "timeout":
			bit = 4
		case "multiple-clients", "hosts":
			return false
		default:
			for _, name := range []string{"reconnect", "interval", "timeout"} {
				if bytes.EqualFold(key, []byte(name)) {
					return false
				}
			}
			return s.skip(0)
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		if bit == 1 {
			return s.stringInto(&a.Reconnect)
		}
		n, ok := s.integer()
		if !ok {
			return false
		}
		if bit == 2 {
			a.Interval = &n
		} else {
			a.Timeout = &n
		}
		return true
	})
	m.Advice = a
	return ok
}

// integer reads a plain integer (no fraction or exponent) that fits int64.
func (s *scanner) integer() (int64, bool) {
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		if s.i-start >= 18 {
			return 0, false
		}
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || (digits > 1 && s.b[start] == '0') {
		return 0, false
	}
	switch s.peek() {
	case '.', 'e', 'E':
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func (s *scanner) literal(word string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.i += len(word)
		return true
	}
	return false
}

// maxDepth bounds nesting in skipped values; deeper input takes the slow
// path.
const maxDepth = 256

// skip reads and validates any JSON value.
func (s *scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		return s.skipString()
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		s.i++
		s.ws()
		if s.peek() == ']' {
			s.i++
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			switch s.next() {
			case ',':
			case ']':
				return true
			default:
				return false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return s.skipNumber()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// skipString validates a string, escapes included (raw values keep them),
// and its UTF-8.
func (s *scanner) skipString() bool {
	s.i++ // opening quote
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(s.b[start:s.i]) {
				return false
			}
			s.i++
			return true
		case c >= utf8.RuneSelf:
			ascii = false
			s.i++
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

// skipNumber validates a number by the JSON grammar.
func (s *scanner) skipNumber() bool {
	if s.peek() == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.peek() == '0' {
		s.i++
	} else if digits() == 0 {
		return false
	}
	if s.peek() == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
