package protocol

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// Reply is a message the server sends: a reply to a meta message, a publish
// acknowledgement, or an error. Its JSON is written by AppendJSON without
// reflection.
type Reply struct {
	Channel                  string
	ID                       json.RawMessage
	ClientID                 string
	Successful               bool
	Error                    string
	Version                  string
	SupportedConnectionTypes []string
	Subscription             json.RawMessage
	Advice                   *Advice
	Ext                      json.RawMessage
	Data                     json.RawMessage
}

// ReplyTo starts a reply to m on m's channel with m's id.
func ReplyTo(m *Message) *Reply {
	return &Reply{Channel: m.Channel, ID: m.ID}
}

// Fail marks r unsuccessful with err's wire text and advice.
func (r *Reply) Fail(err *Error) *Reply {
	r.Successful = false
	r.Error = err.Error()
	if err.Advice != nil {
		r.Advice = err.Advice
	}
	return r
}

// AppendJSON appends r as a JSON object to buf. Successful is written for
// every reply except deliveries (replies with Data), as the spec requires.
func (r *Reply) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"channel":`...)
	buf = AppendString(buf, r.Channel)
	if len(r.ID) > 0 {
		buf = append(buf, `,"id":`...)
		buf = append(buf, r.ID...)
	}
	if r.ClientID != "" {
		buf = append(buf, `,"clientId":`...)
		buf = AppendString(buf, r.ClientID)
	}
	if r.Data == nil {
		if r.Successful {
			buf = append(buf, `,"successful":true`...)
		} else {
			buf = append(buf, `,"successful":false`...)
		}
	}
	if r.Error != "" {
		buf = append(buf, `,"error":`...)
		buf = AppendString(buf, r.Error)
	}
	if r.Version != "" {
		buf = append(buf, `,"version":`...)
		buf = AppendString(buf, r.Version)
	}
	if r.SupportedConnectionTypes != nil {
		buf = append(buf, `,"supportedConnectionTypes":[`...)
		for i, t := range r.SupportedConnectionTypes {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, t)
		}
		buf = append(buf, ']')
	}
	if len(r.Subscription) > 0 {
		buf = append(buf, `,"subscription":`...)
		buf = append(buf, r.Subscription...)
	}
	if r.Advice != nil {
		buf = append(buf, `,"advice":`...)
		buf = r.Advice.AppendJSON(buf)
	}
	if len(r.Ext) > 0 {
		buf = append(buf, `,"ext":`...)
		buf = append(buf, r.Ext...)
	}
	if r.Data != nil {
		buf = append(buf, `,"data":`...)
		buf = append(buf, r.Data...)
	}
	return append(buf, '}')
}

// AppendJSON appends a as a JSON object to buf.
func (a *Advice) AppendJSON(buf []byte) []byte {
	buf = append(buf, '{')
	n := 0
	sep := func() {
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
	}
	if a.Reconnect != "" {
		sep()
		buf = append(buf, `"reconnect":`...)
		buf = AppendString(buf, a.Reconnect)
	}
	if a.Interval != nil {
		sep()
		buf = append(buf, `"interval":`...)
		buf = strconv.AppendInt(buf, *a.Interval, 10)
	}
	if a.Timeout != nil {
		sep()
		buf = append(buf, `"timeout":`...)
		buf = strconv.AppendInt(buf, *a.Timeout, 10)
	}
	if a.MultipleClients {
		sep()
		buf = append(buf, `"multiple-clients":true`...)
	}
	if a.Hosts != nil {
		sep()
		buf = append(buf, `"hosts":[`...)
		for i, h := range a.Hosts {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, h)
		}
		buf = append(buf, ']')
	}
	return append(buf, '}')
}

// AppendDelivery appends the delivery form of a published message: channel,
// data, and id and ext when the publisher gave them. It never carries a
// clientId, so one encoding serves every subscriber.
func AppendDelivery(buf []byte, channel string, data, id, ext json.RawMessage) []byte {
	buf = append(buf, `{"channel":`...)
	buf = AppendString(buf, channel)
	buf = append(buf, `,"data":`...)
	if len(data) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, data...)
	}
	if len(id) > 0 {
		buf = append(buf, `,"id":`...)
		buf = append(buf, id...)
	}
	if len(ext) > 0 {
		buf = append(buf, `,"ext":`...)
		buf = append(buf, ext...)
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// <, > and & are escaped so the output is safe inside a JSONP script, and so
// are U+2028 and U+2029.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
