package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// source returns the loopback source address k of pattern p: 127.0.p.(k+1).
func source(p, k int) string { return fmt.Sprintf("127.0.%d.%d", p, k%250+1) }

// client returns the HTTP client whose connections come from src.
func (h *hostile) client(src string) *http.Client {
	if c, ok := h.clients.Load(src); ok {
		return c.(*http.Client)
	}
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c := &http.Client{Transport: &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	got, _ := h.clients.LoadOrStore(src, c)
	return got.(*http.Client)
}

// reply is the part of a server message the patterns look at.
type reply struct {
	Channel    string          `json:"channel"`
	ClientID   string          `json:"clientId"`
	Successful *bool           `json:"successful"`
	Error      string          `json:"error"`
	Ext        json.RawMessage `json:"ext"`
}

// maxReply bounds the replies read whole (a connect reply carries at most
// the server's --max-session-bytes).
const maxReply = 64 << 20

// post sends body to the Bayeux endpoint from src and decodes the reply.
func (h *hostile) post(ctx context.Context, src string, body []byte, timeout time.Duration) (int, []reply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client(src).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var rs []reply
	if resp.StatusCode == http.StatusOK {
		if err := decodeReplies(b, &rs); err != nil {
			return resp.StatusCode, nil, err
		}
	}
	return resp.StatusCode, rs, nil
}

// decodeReplies decodes a reply: an array of messages, or one message.
func decodeReplies(b []byte, rs *[]reply) error {
	if err := json.Unmarshal(b, rs); err != nil {
		var one reply
		if json.Unmarshal(b, &one) != nil {
			return fmt.Errorf("bad reply: %w", err)
		}
		*rs = []reply{one}
	}
	return nil
}

// answer describes the server's answer to the message on channel (or, if
// none has that channel, to the first message with a successful field):
// "ok", "bayeux NNN", "http NNN", "no reply" or "error KIND".
func answer(status int, rs []reply, err error, channel string) string {
	if err != nil {
		return "error " + errKind(err)
	}
	if status != http.StatusOK {
		return fmt.Sprintf("http %d", status)
	}
	r := find(rs, channel)
	if r == nil {
		return "no reply"
	}
	if *r.Successful {
		return "ok"
	}
	return "bayeux " + errCode(r.Error)
}

// find returns the reply to the message on channel, else the first one
// with a successful field, or nil.
func find(rs []reply, channel string) *reply {
	for i := range rs {
		if rs[i].Channel == channel && rs[i].Successful != nil {
			return &rs[i]
		}
	}
	for i := range rs {
		if rs[i].Successful != nil {
			return &rs[i]
		}
	}
	return nil
}

// errCode returns the code of a Bayeux error "NNN:args:message".
func errCode(e string) string {
	if len(e) >= 3 {
		if _, err := strconv.Atoi(e[:3]); err == nil {
			return e[:3]
		}
	}
	return "?"
}

// errKind classifies a transport error in a word.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken-pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case websocket.CloseStatus(err) != -1:
		return fmt.Sprintf("ws-close-%d", websocket.CloseStatus(err))
	case strings.Contains(err.Error(), "bad reply"):
		return "bad-reply"
	}
	return "other"
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func handshakeMsg(ext string) []byte {
	var b strings.Builder
	b.WriteString(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling","websocket"]`)
	if ext != "" {
		b.WriteString(`,"ext":`)
		b.WriteString(ext)
	}
	b.WriteString(`}]`)
	return []byte(b.String())
}

func connectMsg(id, conn string) []byte {
	return []byte(`[{"channel":"/meta/connect","clientId":` + quote(id) + `,"connectionType":` + quote(conn) + `}]`)
}

func subscribeMsg(id string, names ...string) []byte {
	sub := quote(names[0])
	if len(names) > 1 {
		b, _ := json.Marshal(names)
		sub = string(b)
	}
	return []byte(`[{"channel":"/meta/subscribe","clientId":` + quote(id) + `,"subscription":` + sub + `}]`)
}

// publishMsg publishes data (raw JSON, not checked) to channel.
func publishMsg(id, channel string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(channel)+96)
	b = append(b, `[{"channel":`...)
	b = append(b, quote(channel)...)
	b = append(b, `,"clientId":`...)
	b = append(b, quote(id)...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, `}]`...)
}

func disconnectMsg(id string) []byte {
	return []byte(`[{"channel":"/meta/disconnect","clientId":` + quote(id) + `}]`)
}

// session is a long-polling Bayeux session from one source address,
// shared by a connect loop and the pattern's requests; whoever is told
// 402 forgets the id and the next user handshakes again.
type session struct {
	h       *hostile
	src     string
	pattern string
	ext     string // handshake ext, "" for none

	mu sync.Mutex
	id string
}

// clientID returns the session's id, handshaking first if it has none.
func (s *session) clientID(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" {
		return s.id, nil
	}
	st, rs, err := s.h.post(ctx, s.src, handshakeMsg(s.ext), 10*time.Second)
	a := answer(st, rs, err, "/meta/handshake")
	what := "handshake"
	if s.ext != "" {
		what = "handshake ext " + s.ext
	}
	s.h.count(ctx, s.pattern, what, a)
	if a != "ok" {
		return "", fmt.Errorf("handshake: %s", a)
	}
	r := find(rs, "/meta/handshake")
	if s.ext != "" && ctx.Err() == nil {
		s.h.counts.add(s.pattern, "handshake reply ext "+string(r.Ext), 1)
	}
	s.id = r.ClientID
	return s.id, nil
}

// forget drops id after a 402, unless another user already replaced it.
func (s *session) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == id {
		s.id = ""
	}
}

// send posts the message build makes for the session's id and returns
// the answer to the message on channel; a 402 makes the session forget
// its id.
func (s *session) send(ctx context.Context, channel string, build func(id string) []byte, timeout time.Duration) (string, []reply) {
	id, err := s.clientID(ctx)
	if err != nil {
		return "no session", nil
	}
	st, rs, err := s.h.post(ctx, s.src, build(id), timeout)
	a := answer(st, rs, err, channel)
	if a == "bayeux 402" {
		s.forget(id)
	}
	return a, rs
}

// connectLoop keeps the session alive as a well-behaved client would:
// one /meta/connect after another, until ctx ends. Answers other than ok
// are counted as "keepalive ...".
func (s *session) connectLoop(ctx context.Context) {
	for ctx.Err() == nil {
		a, _ := s.send(ctx, "/meta/connect", func(id string) []byte { return connectMsg(id, "long-polling") }, 45*time.Second)
		if ctx.Err() != nil {
			return
		}
		if a != "ok" {
			s.h.count(ctx, s.pattern, "keepalive connect", a)
			if a != "bayeux 402" {
				sleep(ctx, time.Second)
			}
		}
	}
}

// disconnect ends the session, if it has one.
func (s *session) disconnect(ctx context.Context) {
	s.mu.Lock()
	id := s.id
	s.id = ""
	s.mu.Unlock()
	if id != "" {
		_, _, _ = s.h.post(ctx, s.src, disconnectMsg(id), 5*time.Second)
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// every calls f every d (ticks missed while f runs are dropped, so the
// rate never goes over 1/d) until ctx ends or f returns false.
func every(ctx context.Context, d time.Duration, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for ctx.Err() == nil && f() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// junk returns [{},{},...] of at most n bytes (and at least n-2).
func junk(n int) []byte {
	k := max((n-1)/3, 1)
	b := make([]byte, 0, 3*k+1)
	b = append(b, '[')
	for i := range k {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{', '}')
	}
	return append(b, ']')
}

// pad returns a JSON object of about n bytes: {"pad":"xxx..."}.
func pad(n int) []byte {
	return []byte(`{"pad":"` + strings.Repeat("x", max(n-10, 0)) + `"}`)
}
