package loadgen

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Msg is the part of a Bayeux message the load generator looks at.
// Byte-slice fields point into the buffer given to ParseMessages and are
// valid only until that buffer is reused.
type Msg struct {
	Channel       []byte
	ID            []byte
	ClientID      string
	Error         string
	Successful    bool
	HasSuccessful bool
	HasData       bool
	// Reconnect is the advice's reconnect field ("retry", "handshake",
	// "none"), or "" when absent.
	Reconnect string
	// Interval and Timeout are the advice's fields in milliseconds, or -1
	// when absent.
	Interval int64
	Timeout  int64
	// Bench is true when data carried this tool's ts, pub and seq fields;
	// HasTS when it carried ts (the reach scenario's data has only that).
	Bench bool
	HasTS bool
	TS    int64
	Pub   int64
	Seq   int64
	// Window is the data's "w" (Payload.Window), 0 when absent.
	Window int64

	// Centrifugo (parseCentrifugo): ping is a server ping (an empty
	// reply), pong the connect result's pong (the server wants pings
	// answered).
	ping, pong bool
	// ReplayID is ext.replayId, the replay id a server with history
	// stamps each delivery of such a channel with; 0 when absent.
	ReplayID int64
}

// IsMeta reports whether the message is on a /meta/ channel.
func (m *Msg) IsMeta() bool {
	return len(m.Channel) >= 6 && string(m.Channel[:6]) == "/meta/"
}

// IsDelivery reports whether the message is an event delivered to the
// client rather than a reply to one of its requests.
func (m *Msg) IsDelivery() bool {
	return m.HasData && !m.HasSuccessful && !m.IsMeta()
}

var errSyntax = errors.New("loadgen: malformed JSON in response")

// ParseMessages parses a Bayeux response body (a JSON array of messages,
// or a single message object) and appends the messages to out. It reads
// only the fields of Msg and skips everything else without allocating.
func ParseMessages(buf []byte, out []Msg) ([]Msg, error) {
	p := parser{b: buf}
	p.ws()
	if p.i >= len(p.b) {
		return out, errSyntax
	}
	if p.b[p.i] == '{' {
		var m Msg
		if err := p.message(&m); err != nil {
			return out, err
		}
		return append(out, m), nil
	}
	if p.b[p.i] != '[' {
		return out, errSyntax
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		return out, nil
	}
	for {
		p.ws()
		out = append(out, Msg{})
		if err := p.message(&out[len(out)-1]); err != nil {
			return out[:len(out)-1], err
		}
		p.ws()
		if p.i >= len(p.b) {
			return out, errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			return out, nil
		default:
			return out, errSyntax
		}
	}
}

type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object walks an object, calling f for each key with the parser
// positioned at the value; f must consume the value.
func (p *parser) object(f func(key []byte) error) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return errSyntax
	}
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return errSyntax
		}
		p.i++
		p.ws()
		if err := f(key); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return errSyntax
		}
	}
}

func (p *parser) message(m *Msg) error {
	m.Interval, m.Timeout = -1, -1
	return p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "channel":
			m.Channel, err = p.str()
		case "id":
			if p.i < len(p.b) && p.b[p.i] == '"' {
				m.ID, err = p.str()
			} else {
				err = p.skip()
			}
		case "clientId":
			var s []byte
			s, err = p.str()
			m.ClientID = string(s)
		case "error":
			if p.i < len(p.b) && p.b[p.i] == '"' {
				var s []byte
				s, err = p.str()
				m.Error = string(s)
			} else {
				err = p.skip()
			}
		case "successful":
			m.HasSuccessful = true
			m.Successful, err = p.boolean()
		case "advice":
			if p.i < len(p.b) && p.b[p.i] == '{' {
				err = p.advice(m)
			} else {
				err = p.skip()
			}
		case "ext":
			if p.i < len(p.b) && p.b[p.i] == '{' {
				err = p.ext(m)
			} else {
				err = p.skip()
			}
		case "data":
			m.HasData = true
			if p.i < len(p.b) && p.b[p.i] == '{' {
				err = p.data(m)
			} else {
				err = p.skip()
			}
		default:
			err = p.skip()
		}
		return err
	})
}

func (p *parser) advice(m *Msg) error {
	return p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "reconnect":
			var s []byte
			s, err = p.str()
			switch string(s) {
			case "retry":
				m.Reconnect = "retry"
			case "handshake":
				m.Reconnect = "handshake"
			case "none":
				m.Reconnect = "none"
			default:
				m.Reconnect = string(s)
			}
		case "interval":
			m.Interval, err = p.num()
		case "timeout":
			m.Timeout, err = p.num()
		default:
			err = p.skip()
		}
		return err
	})
}

// ext reads the replay id from a message's ext object.
func (p *parser) ext(m *Msg) error {
	return p.object(func(key []byte) error {
		if string(key) == "replayId" && p.i < len(p.b) && (p.b[p.i] == '-' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
			var err error
			m.ReplayID, err = p.num()
			return err
		}
		return p.skip()
	})
}

func (p *parser) data(m *Msg) error {
	var have int
	err := p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "ts":
			m.TS, err = p.num()
			have |= 1
		case "pub":
			m.Pub, err = p.num()
			have |= 2
		case "seq":
			m.Seq, err = p.num()
			have |= 4
		case "w":
			m.Window, err = p.num()
		default:
			err = p.skip()
		}
		return err
	})
	m.Bench = have == 7
	m.HasTS = have&1 != 0
	return err
}

// str reads a string; it returns a slice of the input when the string has
// no escapes and a freshly decoded copy otherwise.
func (p *parser) str() ([]byte, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, errSyntax
	}
	start := p.i + 1
	escaped := false
	for j := start; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			p.i = j + 1
			if !escaped {
				return p.b[start:j], nil
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:j+1], &s); err != nil {
				return nil, errSyntax
			}
			return []byte(s), nil
		}
	}
	return nil, errSyntax
}

func (p *parser) boolean() (bool, error) {
	if p.i+4 <= len(p.b) && string(p.b[p.i:p.i+4]) == "true" {
		p.i += 4
		return true, nil
	}
	if p.i+5 <= len(p.b) && string(p.b[p.i:p.i+5]) == "false" {
		p.i += 5
		return false, nil
	}
	return false, p.skip()
}

// num reads an integer; a fractional or exponent number is truncated.
func (p *parser) num() (int64, error) {
	start := p.i
	neg := false
	if p.i < len(p.b) && p.b[p.i] == '-' {
		neg = true
		p.i++
	}
	var v int64
	digits := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int64(p.b[p.i]-'0')
		p.i++
		digits++
	}
	if digits == 0 {
		p.i = start
		return 0, p.skip()
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		for p.i < len(p.b) && isNumByte(p.b[p.i]) {
			p.i++
		}
		f, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
		if err != nil {
			return 0, errSyntax
		}
		return int64(f), nil
	}
	if neg {
		v = -v
	}
	return v, nil
}

func isNumByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// skip consumes any JSON value.
func (p *parser) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.strRaw()
		return err
	case c == '{' || c == '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				if _, err := p.strRaw(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					return nil
				}
			}
			p.i++
		}
		return errSyntax
	case c == 't' || c == 'n':
		if p.i+4 > len(p.b) {
			return errSyntax
		}
		p.i += 4
		return nil
	case c == 'f':
		if p.i+5 > len(p.b) {
			return errSyntax
		}
		p.i += 5
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		for p.i < len(p.b) && isNumByte(p.b[p.i]) {
			p.i++
		}
		return nil
	default:
		return errSyntax
	}
}

// strRaw skips a string without decoding it.
func (p *parser) strRaw() (int, error) {
	for j := p.i + 1; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			j++
		case '"':
			p.i = j + 1
			return j, nil
		}
	}
	return 0, errSyntax
}
