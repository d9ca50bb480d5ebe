package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// Defaults for the zero values of Options.
const (
	// DefaultTimeout is the default Options.Timeout.
	DefaultTimeout = time.Second
	// DefaultMaxConcurrency is the default Options.MaxConcurrency.
	DefaultMaxConcurrency = 64
	// DefaultMaxResponseBytes is the default Options.MaxResponseBytes.
	DefaultMaxResponseBytes = 64 << 10
)

// UserAgent is the User-Agent header of every request the proxy sends.
const UserAgent = "bayeuxhub-proxy"

// Options configures a Proxy. Only the URLs are required, and only for the
// events to proxy.
type Options struct {
	// HandshakeURL, SubscribeURL and PublishURL are the backend endpoints
	// asked about each event: absolute http or https URLs. An empty URL
	// means the event is not proxied (its hook is nil).
	HandshakeURL, SubscribeURL, PublishURL string

	// Timeout bounds each call, waiting for a slot included; the default is
	// DefaultTimeout. When the hub's context has an earlier deadline, that
	// deadline wins.
	Timeout time.Duration

	// MaxConcurrency is how many calls may be in flight at once, over all
	// events; the default is DefaultMaxConcurrency. A call that cannot get
	// a slot before its deadline fails as unavailable ("too many requests
	// in flight").
	MaxConcurrency int

	// Headers names the client's HTTP request headers copied into the
	// request's "headers" object, for example "Cookie", "Authorization",
	// "X-Forwarded-For". Names are canonicalised (http.CanonicalHeaderKey);
	// none are copied by default.
	Headers []string

	// MaxResponseBytes limits the size of the backend's answer (after
	// content decoding); the default is DefaultMaxResponseBytes. A bigger
	// answer is a failure.
	MaxResponseBytes int64

	// Client sends the requests. The default is a client of its own that
	// does not follow redirects (a redirect is a failure, "HTTP 302") and
	// keeps up to MaxConcurrency idle connections per backend host. A
	// client given here is used as it is; the proxy still applies Timeout
	// through the request's context.
	Client *http.Client

	// Logger receives failures at warn level (with the backend URL and the
	// underlying error) and refusals at debug level; header values and
	// published data are never logged. nil means no logs.
	Logger *zerolog.Logger
}

// Proxy asks an application's backend over HTTP whether to allow a
// client's handshake, subscribe or publish; its Handshake, Subscribe and
// Publish methods return the actors.Hook for each event. A Proxy is safe
// for concurrent use.
type Proxy struct {
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	headers  []string
	slots    chan struct{}
	log      *zerolog.Logger

	handshake, subscribe, publish *hook
	stats                         map[actors.HookEvent]*counters
}

// EventStats counts one event's calls since New. Every finished call is
// counted once in Allowed, Refused or Unavailable; Timeouts and Busy are
// the parts of Unavailable that ran out of time in the backend call and
// waiting for a slot ("too many requests in flight").
type EventStats struct {
	// Calls is how many calls started.
	Calls uint64
	// Allowed is how many the backend allowed.
	Allowed uint64
	// Refused is how many the backend refused.
	Refused uint64
	// Unavailable is how many failed: no valid answer from the backend.
	Unavailable uint64
	// Timeouts is how many of the failures were the deadline passing.
	Timeouts uint64
	// Busy is how many of the failures found no free slot in time.
	Busy uint64
}

type counters struct {
	calls, allowed, refused, unavailable, timeouts, busy atomic.Uint64
}

// New validates opts and returns a Proxy. It returns an error for a URL
// that is not an absolute http or https URL, a negative limit, or an
// invalid header name. A Proxy with no URL at all is valid; its hooks are
// all nil.
func New(opts Options) (*Proxy, error) {
	if opts.Timeout < 0 {
		return nil, errors.New("proxy: negative Timeout")
	}
	if opts.MaxConcurrency < 0 {
		return nil, errors.New("proxy: negative MaxConcurrency")
	}
	if opts.MaxResponseBytes < 0 {
		return nil, errors.New("proxy: negative MaxResponseBytes")
	}
	p := &Proxy{
		client:   opts.Client,
		timeout:  opts.Timeout,
		maxBytes: opts.MaxResponseBytes,
		log:      opts.Logger,
		stats:    make(map[actors.HookEvent]*counters),
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.maxBytes == 0 {
		p.maxBytes = DefaultMaxResponseBytes
	}
	n := opts.MaxConcurrency
	if n == 0 {
		n = DefaultMaxConcurrency
	}
	p.slots = make(chan struct{}, n)
	if p.log == nil {
		nop := zerolog.Nop()
		p.log = &nop
	}
	seen := make(map[string]bool)
	for _, h := range opts.Headers {
		if !validHeaderName(h) {
			return nil, fmt.Errorf("proxy: invalid header name %q", h)
		}
		h = http.CanonicalHeaderKey(h)
		if !seen[h] {
			seen[h] = true
			p.headers = append(p.headers, h)
		}
	}
	for _, e := range []struct {
		event actors.HookEvent
		raw   string
		dst   **hook
	}{
		{actors.HookHandshake, opts.HandshakeURL, &p.handshake},
		{actors.HookSubscribe, opts.SubscribeURL, &p.subscribe},
		{actors.HookPublish, opts.PublishURL, &p.publish},
	} {
		if e.raw == "" {
			continue
		}
		u, err := parseURL(e.raw)
		if err != nil {
			return nil, fmt.Errorf("proxy: %s URL: %w", e.event, err)
		}
		c := new(counters)
		p.stats[e.event] = c
		*e.dst = &hook{p: p, event: e.event, url: u.String(), logURL: u.Redacted(), stats: c}
	}
	if p.client == nil {
		p.client = defaultClient(n)
	}
	return p, nil
}

// parseURL accepts only absolute http and https URLs with a host.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, errors.New("not an absolute URL (want http:// or https://)")
	default:
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("URL has no host")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 5.1).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// defaultClient returns a client that does not follow redirects, keeps
// enough idle connections for n concurrent calls and limits the size of
// response headers.
func defaultClient(n int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(n, 100)
	tr.MaxIdleConnsPerHost = n
	tr.IdleConnTimeout = 90 * time.Second
	tr.MaxResponseHeaderBytes = 64 << 10
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Handshake returns the hook for handshakes, or nil when
// Options.HandshakeURL is empty.
func (p *Proxy) Handshake() actors.Hook { return p.handshake.asHook() }

// Subscribe returns the hook for subscribes (one call per channel), or nil
// when Options.SubscribeURL is empty.
func (p *Proxy) Subscribe() actors.Hook { return p.subscribe.asHook() }

// Publish returns the hook for publishes, or nil when Options.PublishURL
// is empty.
func (p *Proxy) Publish() actors.Hook { return p.publish.asHook() }

// Stats returns the counters of each configured event.
func (p *Proxy) Stats() map[actors.HookEvent]EventStats {
	out := make(map[actors.HookEvent]EventStats, len(p.stats))
	for ev, c := range p.stats {
		out[ev] = EventStats{
			Calls:       c.calls.Load(),
			Allowed:     c.allowed.Load(),
			Refused:     c.refused.Load(),
			Unavailable: c.unavailable.Load(),
			Timeouts:    c.timeouts.Load(),
			Busy:        c.busy.Load(),
		}
	}
	return out
}

// hook is one event's actors.Hook.
type hook struct {
	p      *Proxy
	event  actors.HookEvent
	url    string
	logURL string // password redacted
	stats  *counters
}

// asHook returns h as an actors.Hook, or a nil interface for a nil h.
func (h *hook) asHook() actors.Hook {
	if h == nil {
		return nil
	}
	return h
}

// wireRequest is the JSON body sent to the backend.
type wireRequest struct {
	Event      actors.HookEvent    `json:"event"`
	ClientID   string              `json:"client_id,omitempty"`
	User       string              `json:"user,omitempty"`
	Info       json.RawMessage     `json:"info,omitempty"`
	Channel    string              `json:"channel,omitempty"`
	Data       json.RawMessage     `json:"data,omitempty"`
	Ext        json.RawMessage     `json:"ext,omitempty"`
	RemoteAddr string              `json:"remote_addr,omitempty"`
	Headers    map[string][]string `json:"headers,omitempty"`
}

// Check asks the backend about req. See the package documentation for the
// wire format and the errors.
func (h *hook) Check(ctx context.Context, req *actors.HookRequest) (*actors.HookResult, error) {
	h.stats.calls.Add(1)
	start := time.Now()
	if req == nil {
		req = &actors.HookRequest{}
	}
	res, err := h.check(ctx, req)
	switch e := err.(type) {
	case nil:
		h.stats.allowed.Add(1)
	case *refusal:
		h.stats.refused.Add(1)
		h.p.log.Debug().Str("event", string(h.event)).Str("client_id", req.ClientID).
			Str("channel", req.Channel).Str("reason", e.reason).Msg("proxy: backend refused")
	case *failure:
		h.stats.unavailable.Add(1)
		switch e.kind {
		case kindTimeout:
			h.stats.timeouts.Add(1)
		case kindBusy:
			h.stats.busy.Add(1)
		}
		ev := h.p.log.Warn().Str("event", string(h.event)).Str("url", h.logURL).
			Str("client_id", req.ClientID).Str("channel", req.Channel).
			Dur("elapsed", time.Since(start)).Str("failure", e.what)
		if e.cause != nil {
			ev = ev.AnErr("cause", e.cause)
		}
		ev.Msg("proxy: backend call failed")
	}
	return res, err
}

func (h *hook) check(parent context.Context, req *actors.HookRequest) (*actors.HookResult, error) {
	p := h.p
	if err := parent.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fail(kindTimeout, "deadline already passed", err)
		}
		return nil, fail(kindOther, "request canceled", err)
	}
	budget := p.timeout
	if dl, ok := parent.Deadline(); ok {
		budget = min(budget, time.Until(dl))
	}
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()

	body, err := h.encode(req)
	if err != nil {
		return nil, fail(kindOther, "cannot encode request", err)
	}

	// Wait for a slot, within the same deadline as the call.
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			if parent.Err() != nil && !errors.Is(parent.Err(), context.DeadlineExceeded) {
				return nil, fail(kindOther, "request canceled", parent.Err())
			}
			return nil, fail(kindBusy, "too many requests in flight", nil)
		}
	}
	defer func() { <-p.slots }()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, fail(kindOther, "cannot build request", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", UserAgent)
	// A check is idempotent: let the transport resend it on a fresh
	// connection when a kept-alive one turns out to be closed. (An empty
	// Idempotency-Key marks that without being sent.)
	hreq.Header["Idempotency-Key"] = nil

	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, h.transportFailure(ctx, parent, budget, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain (a bounded amount) so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, p.maxBytes))
		return nil, fail(kindOther, fmt.Sprintf("HTTP %d", resp.StatusCode), nil)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBytes+1))
	if err != nil {
		return nil, h.transportFailure(ctx, parent, budget, err)
	}
	if int64(len(answer)) > p.maxBytes {
		return nil, fail(kindOther, "answer is too large", nil)
	}
	// Drain what may follow (nothing, or the chunked terminator).
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
	return h.decode(answer)
}

// encode returns the JSON body for req.
func (h *hook) encode(req *actors.HookRequest) ([]byte, error) {
	w := wireRequest{
		Event:      h.event,
		ClientID:   req.ClientID,
		User:       req.UserID,
		Info:       nonNull(req.Info),
		Ext:        nonNull(req.Ext),
		RemoteAddr: req.RemoteAddr,
	}
	if h.event != actors.HookHandshake {
		w.Channel = req.Channel
	}
	if h.event == actors.HookPublish {
		w.Data = nonNull(req.Data)
	}
	for _, name := range h.p.headers {
		if v := req.Header.Values(name); len(v) > 0 {
			if w.Headers == nil {
				w.Headers = make(map[string][]string)
			}
			w.Headers[name] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// nonNull returns nil for an empty or JSON null raw value, else raw.
func nonNull(raw json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return nil
	}
	return raw
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// decode interprets the backend's answer.
func (h *hook) decode(answer []byte) (*actors.HookResult, error) {
	if !json.Valid(answer) {
		return nil, fail(kindOther, "answer is not JSON", nil)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(answer, &obj); err != nil || obj == nil {
		return nil, fail(kindOther, "answer is not a JSON object", nil)
	}
	rawAllow, ok := obj["allow"]
	if !ok || isNull(rawAllow) {
		return nil, fail(kindOther, "answer has no allow field", nil)
	}
	var allow bool
	if err := json.Unmarshal(rawAllow, &allow); err != nil {
		return nil, fail(kindOther, "answer's allow field is not a boolean", nil)
	}
	if !allow {
		reason := ""
		if raw, ok := obj["reason"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &reason); err != nil {
				return nil, fail(kindOther, "answer's reason field is not a string", nil)
			}
		}
		return nil, refuse(reason)
	}
	res := &actors.HookResult{}
	if h.event != actors.HookHandshake {
		return res, nil
	}
	if raw, ok := obj["user"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &res.UserID); err != nil {
			return nil, fail(kindOther, "answer's user field is not a string", nil)
		}
		if res.UserID == "" {
			return nil, fail(kindOther, "answer's user field is empty", nil)
		}
	}
	if raw, ok := obj["info"]; ok && !isNull(raw) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, fail(kindOther, "answer is not JSON", nil)
		}
		res.Info = json.RawMessage(buf.Bytes())
	}
	if raw, ok := obj["channels"]; ok && !isNull(raw) {
		var chans []string
		if err := json.Unmarshal(raw, &chans); err != nil {
			return nil, fail(kindOther, "answer's channels field is not a list of strings", nil)
		}
		for _, c := range chans {
			if c == "" {
				return nil, fail(kindOther, "answer's channels field has an empty name", nil)
			}
		}
		if chans == nil {
			chans = []string{}
		}
		res.Channels = chans
	}
	return res, nil
}

// transportFailure classifies an error from sending the request or reading
// the answer into a short, client-safe failure.
func (h *hook) transportFailure(ctx, parent context.Context, budget time.Duration, err error) error {
	if ctx.Err() != nil {
		if perr := parent.Err(); perr != nil && !errors.Is(perr, context.DeadlineExceeded) {
			return fail(kindOther, "request canceled", err)
		}
		return fail(kindTimeout, "timeout after "+roundDuration(budget).String(), err)
	}
	what := "request failed"
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		what = "timeout"
		return fail(kindTimeout, what, err)
	case errors.As(err, &dnsErr):
		what = "host not found"
	case isConnRefused(err):
		what = "connection refused"
	case isConnReset(err):
		what = "connection reset"
	case isUnreachable(err):
		what = "host unreachable"
	case isTLSError(err):
		what = "TLS handshake failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		what = "connection closed before the answer"
	}
	return fail(kindOther, what, err)
}

// roundDuration rounds d for an error text: to the millisecond, or to
// 100µs under a millisecond.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}
