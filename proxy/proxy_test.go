package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// returnBound is how long a call that should fail fast may take at most:
// generous, for slow and -race machines.
const returnBound = 5 * time.Second

// backend starts an HTTP server on 127.0.0.1 that the test closes.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// drain reads r's body to its end, which lets the server notice (and
// cancel r's context) when the client hangs up.
func drain(r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }

// answer returns a handler that answers status and body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func mustNew(t *testing.T, opts Options) *Proxy {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func isUnavailable(err error) bool { return errors.Is(err, actors.ErrHookUnavailable) }

// wantUnavailable checks that err is a failure with exactly text.
func wantUnavailable(t *testing.T, err error, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %q", text)
	}
	if !isUnavailable(err) {
		t.Fatalf("err = %q does not wrap ErrHookUnavailable", err)
	}
	if err.Error() != text {
		t.Fatalf("err = %q, want %q", err, text)
	}
}

// wantRefused checks that err is a refusal with exactly reason.
func wantRefused(t *testing.T, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want refusal %q", reason)
	}
	if isUnavailable(err) {
		t.Fatalf("refusal %q wraps ErrHookUnavailable", err)
	}
	if err.Error() != reason {
		t.Fatalf("err = %q, want %q", err, reason)
	}
}

// recorded is what a recording backend saw of one request.
type recorded struct {
	method, contentType, userAgent, path string
	body                                 string
	header                               http.Header
}

// recorder answers body to every request and sends what it saw on a
// channel.
func recorder(t *testing.T, body string) (*httptest.Server, <-chan recorded) {
	seen := make(chan recorded, 16)
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- recorded{r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), r.URL.Path, string(b), r.Header}
		_, _ = io.WriteString(w, body)
	})
	return srv, seen
}

func sampleRequest() *actors.HookRequest {
	h := http.Header{}
	h.Add("Cookie", "a=b")
	h.Add("X-Forwarded-For", "10.0.0.1")
	h.Add("X-Forwarded-For", "10.0.0.2")
	h.Add("X-Secret", "do-not-forward")
	h.Add("User-Agent", "browser")
	return &actors.HookRequest{
		ClientID:   "c1",
		UserID:     "alice",
		Info:       json.RawMessage(`{"name": "Alice <a@example.com>"}`),
		Channel:    "/chat/demo",
		Data:       json.RawMessage(`{"text":"hi & bye"}`),
		Ext:        json.RawMessage(`{"k":1}`),
		RemoteAddr: "127.0.0.1:5555",
		Header:     h,
	}
}

func TestAllowSendsExactBody(t *testing.T) {
	t.Parallel()
	const headers = `"headers":{"Cookie":["a=b"],"X-Forwarded-For":["10.0.0.1","10.0.0.2"]}`
	cases := []struct {
		event actors.HookEvent
		want  string
	}{
		{actors.HookHandshake, `{"event":"handshake","client_id":"c1","user":"alice","info":{"name":"Alice <a@example.com>"},"ext":{"k":1},"remote_addr":"127.0.0.1:5555",` + headers + `}`},
		{actors.HookSubscribe, `{"event":"subscribe","client_id":"c1","user":"alice","info":{"name":"Alice <a@example.com>"},"channel":"/chat/demo","ext":{"k":1},"remote_addr":"127.0.0.1:5555",` + headers + `}`},
		{actors.HookPublish, `{"event":"publish","client_id":"c1","user":"alice","info":{"name":"Alice <a@example.com>"},"channel":"/chat/demo","data":{"text":"hi & bye"},"ext":{"k":1},"remote_addr":"127.0.0.1:5555",` + headers + `}`},
	}
	for _, tc := range cases {
		t.Run(string(tc.event), func(t *testing.T) {
			t.Parallel()
			srv, seen := recorder(t, `{"allow": true}`)
			url := srv.URL + "/hook/" + string(tc.event)
			p := mustNew(t, Options{
				HandshakeURL: url, SubscribeURL: url, PublishURL: url,
				// Authorization is listed but absent from the request;
				// X-Secret and User-Agent are present but not listed.
				Headers: []string{"cookie", "x-forwarded-for", "Authorization", "Cookie"},
			})
			hook := map[actors.HookEvent]actors.Hook{
				actors.HookHandshake: p.Handshake(), actors.HookSubscribe: p.Subscribe(), actors.HookPublish: p.Publish(),
			}[tc.event]
			req := sampleRequest()
			req.Event = tc.event
			res, err := hook.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if res == nil || res.UserID != "" || res.Info != nil || res.Channels != nil {
				t.Fatalf("result = %+v, want empty", res)
			}
			got := <-seen
			if got.method != http.MethodPost || got.contentType != "application/json" ||
				got.userAgent != "bayeuxhub-proxy" || got.path != "/hook/"+string(tc.event) {
				t.Errorf("request = %s %s, Content-Type %q, User-Agent %q", got.method, got.path, got.contentType, got.userAgent)
			}
			if got.body != tc.want {
				t.Errorf("body:\n got %s\nwant %s", got.body, tc.want)
			}
			// No client header is forwarded as an HTTP header, and the
			// idempotency marker is not sent.
			var names []string
			for k := range got.header {
				names = append(names, k)
			}
			sort.Strings(names)
			if want := []string{"Accept", "Accept-Encoding", "Content-Length", "Content-Type", "User-Agent"}; !reflect.DeepEqual(names, want) {
				t.Errorf("HTTP headers = %v, want %v", names, want)
			}
		})
	}
}

func TestAllowOmitsEmptyFields(t *testing.T) {
	t.Parallel()
	srv, seen := recorder(t, `{"allow":true}`)
	p := mustNew(t, Options{PublishURL: srv.URL, Headers: []string{"Cookie"}})
	req := &actors.HookRequest{Event: actors.HookPublish, Channel: "/a", Info: json.RawMessage("null"), Data: json.RawMessage(" null ")}
	if _, err := p.Publish().Check(context.Background(), req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got, want := (<-seen).body, `{"event":"publish","channel":"/a"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 150) // 300 bytes
	cases := []struct {
		name, body, want string
	}{
		{"reason", `{"allow": false, "reason": "Banned from this room"}`, "Banned from this room"},
		{"no reason", `{"allow": false}`, "Refused by backend"},
		{"empty reason", `{"allow": false, "reason": ""}`, "Refused by backend"},
		{"null reason", `{"allow": false, "reason": null}`, "Refused by backend"},
		{"only controls", `{"allow": false, "reason": "\n\t\u0007"}`, "Refused by backend"},
		{"control chars", `{"allow": false, "reason": " line1\nline2\u0000\u001b[31m red\u007f\u0085 "}`, "line1line2[31m red"},
		{"long", `{"allow": false, "reason": "` + long + `"}`, strings.Repeat("é", 100)},
		{"ignores grants", `{"allow": false, "reason": "no", "user": "bob", "channels": ["/**"]}`, "no"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := backend(t, answer(200, tc.body))
			p := mustNew(t, Options{SubscribeURL: srv.URL, HandshakeURL: srv.URL})
			for _, h := range []actors.Hook{p.Subscribe(), p.Handshake()} {
				res, err := h.Check(context.Background(), &actors.HookRequest{Channel: "/chat/demo"})
				if res != nil {
					t.Errorf("result = %+v, want nil", res)
				}
				wantRefused(t, err, tc.want)
			}
		})
	}
}

func TestHandshakeAnswerSetsIdentity(t *testing.T) {
	t.Parallel()
	srv := backend(t, answer(200, `{"allow": true, "user": "alice", "info": {"name": "Alice", "roles": ["admin"]}, "channels": ["/user/alice/**", "/chat/*"], "extra": 1}`))
	p := mustNew(t, Options{HandshakeURL: srv.URL, SubscribeURL: srv.URL})
	res, err := p.Handshake().Check(context.Background(), &actors.HookRequest{Event: actors.HookHandshake, ClientID: "c1"})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	want := &actors.HookResult{
		UserID:   "alice",
		Info:     json.RawMessage(`{"name":"Alice","roles":["admin"]}`),
		Channels: []string{"/user/alice/**", "/chat/*"},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v (info %s), want %+v", res, res.Info, want)
	}

	// The same answer to a subscribe grants nothing.
	res, err = p.Subscribe().Check(context.Background(), &actors.HookRequest{Event: actors.HookSubscribe, Channel: "/a"})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !reflect.DeepEqual(res, &actors.HookResult{}) {
		t.Errorf("subscribe result = %+v, want empty", res)
	}
}

func TestHandshakeAnswerVariants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		want       *actors.HookResult
	}{
		{"allow only", `{"allow":true}`, &actors.HookResult{}},
		{"nulls are absent", `{"allow":true,"user":null,"info":null,"channels":null}`, &actors.HookResult{}},
		{"empty channels revoke", `{"allow":true,"channels":[]}`, &actors.HookResult{Channels: []string{}}},
		{"string info", `{"allow":true,"info":"plain"}`, &actors.HookResult{Info: json.RawMessage(`"plain"`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := backend(t, answer(200, tc.body))
			p := mustNew(t, Options{HandshakeURL: srv.URL})
			res, err := p.Handshake().Check(context.Background(), &actors.HookRequest{})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !reflect.DeepEqual(res, tc.want) {
				t.Errorf("result = %#v, want %#v", res, tc.want)
			}
		})
	}
}

func TestSlowBackendTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		select {
		case <-time.After(10 * time.Second):
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, `{"allow":true}`)
	})
	t.Cleanup(func() { close(release) })
	p := mustNew(t, Options{SubscribeURL: srv.URL, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := p.Subscribe().Check(context.Background(), &actors.HookRequest{Channel: "/a"})
	elapsed := time.Since(start)
	wantUnavailable(t, err, "backend unavailable: timeout after 200ms")
	if elapsed < 150*time.Millisecond || elapsed > returnBound {
		t.Errorf("returned after %v, want about 200ms", elapsed)
	}
	if s := p.Stats()[actors.HookSubscribe]; s.Timeouts != 1 || s.Unavailable != 1 || s.Busy != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestSlowBackendDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		select { // never block: a retried request must still see its context end
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, `{"allow":true}`)
	})
	fast := backend(t, answer(200, `{"allow":true}`))
	// Same Proxy, another event's URL; and another Proxy.
	p := mustNew(t, Options{HandshakeURL: slow.URL, SubscribeURL: fast.URL, Timeout: time.Minute})
	other := mustNew(t, Options{PublishURL: fast.URL})

	slowDone := make(chan error, 1)
	go func() {
		_, err := p.Handshake().Check(context.Background(), &actors.HookRequest{})
		slowDone <- err
	}()
	<-arrived // the slow call is in the backend now, and stays until released

	for i := 0; i < 3; i++ {
		if _, err := p.Subscribe().Check(context.Background(), &actors.HookRequest{Channel: "/a"}); err != nil {
			t.Fatalf("fast call on the same proxy: %v", err)
		}
		if _, err := other.Publish().Check(context.Background(), &actors.HookRequest{Channel: "/a"}); err != nil {
			t.Fatalf("fast call on another proxy: %v", err)
		}
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow call returned before release: %v", err)
	default:
	}
	close(release)
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("slow call after release: %v", err)
		}
	case <-time.After(returnBound):
		t.Fatal("slow call did not return after release")
	}
}

func TestContextDeadlineWins(t *testing.T) {
	t.Parallel()
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	})
	p := mustNew(t, Options{PublishURL: srv.URL, Timeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Publish().Check(ctx, &actors.HookRequest{Channel: "/a"})
	elapsed := time.Since(start)
	if !isUnavailable(err) || !strings.HasPrefix(err.Error(), "backend unavailable: timeout after ") ||
		strings.Contains(err.Error(), "30s") {
		t.Fatalf("err = %v, want a timeout after about 100ms", err)
	}
	if elapsed < 50*time.Millisecond || elapsed > returnBound {
		t.Errorf("returned after %v, want about 100ms", elapsed)
	}
}

func TestContextDoneBeforeCall(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	p := mustNew(t, Options{SubscribeURL: srv.URL})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Subscribe().Check(ctx, &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: request canceled")

	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = p.Subscribe().Check(ctx, &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: deadline already passed")

	if hits.Load() != 0 {
		t.Errorf("backend hit %d times", hits.Load())
	}
}

func TestContextCanceledDuringCall(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		select { // never block: a retried request must still see its context end
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	})
	p := mustNew(t, Options{SubscribeURL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := p.Subscribe().Check(ctx, &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: request canceled")
}

func TestBackendDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := mustNew(t, Options{SubscribeURL: "http://" + addr + "/hook"})
	start := time.Now()
	_, err = p.Subscribe().Check(context.Background(), &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: connection refused")
	if time.Since(start) > returnBound {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestGarbageAnswers(t *testing.T) {
	t.Parallel()
	big := `{"allow":true,"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	cases := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"html", 200, "<html><body>Welcome</body></html>", "answer is not JSON"},
		{"empty", 200, "", "answer is not JSON"},
		{"trailing garbage", 200, `{"allow":true} {"allow":true}`, "answer is not JSON"},
		{"array", 200, "[]", "answer is not a JSON object"},
		{"null", 200, "null", "answer is not a JSON object"},
		{"string", 200, `"allow"`, "answer is not a JSON object"},
		{"no allow", 200, `{}`, "answer has no allow field"},
		{"null allow", 200, `{"allow":null}`, "answer has no allow field"},
		{"string allow", 200, `{"allow":"yes"}`, "answer's allow field is not a boolean"},
		{"number allow", 200, `{"allow":1}`, "answer's allow field is not a boolean"},
		{"number reason", 200, `{"allow":false,"reason":5}`, "answer's reason field is not a string"},
		{"object user", 200, `{"allow":true,"user":{"id":1}}`, "answer's user field is not a string"},
		{"empty user", 200, `{"allow":true,"user":""}`, "answer's user field is empty"},
		{"string channels", 200, `{"allow":true,"channels":"/a"}`, "answer's channels field is not a list of strings"},
		{"number channels", 200, `{"allow":true,"channels":[1]}`, "answer's channels field is not a list of strings"},
		{"empty channel", 200, `{"allow":true,"channels":["/a",""]}`, "answer's channels field has an empty name"},
		{"2 MiB", 200, big, "answer is too large"},
		{"HTTP 500", 500, `{"allow":true}`, "HTTP 500"},
		{"HTTP 204", 204, ``, "HTTP 204"},
		{"HTTP 404 html", 404, `<h1>Not found</h1>`, "HTTP 404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := backend(t, answer(tc.status, tc.body))
			p := mustNew(t, Options{HandshakeURL: srv.URL + "/secret-path"})
			res, err := p.Handshake().Check(context.Background(), &actors.HookRequest{})
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			wantUnavailable(t, err, "backend unavailable: "+tc.want)
			host := strings.TrimPrefix(srv.URL, "http://")
			if strings.Contains(err.Error(), host) || strings.Contains(err.Error(), "secret-path") {
				t.Errorf("error %q leaks the URL", err)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	target := backend(t, func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		_, _ = io.WriteString(w, `{"allow":true}`)
	})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	p := mustNew(t, Options{SubscribeURL: srv.URL})
	_, err := p.Subscribe().Check(context.Background(), &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: HTTP 302")
	if n := targetHits.Load(); n != 0 {
		t.Errorf("redirect target hit %d times", n)
	}
}

func TestMaxResponseBytes(t *testing.T) {
	t.Parallel()
	body := `{"allow":true,"pad":"` + strings.Repeat("x", 100) + `"}`
	srv := backend(t, answer(200, body))
	exact := mustNew(t, Options{SubscribeURL: srv.URL, MaxResponseBytes: int64(len(body))})
	if _, err := exact.Subscribe().Check(context.Background(), &actors.HookRequest{}); err != nil {
		t.Errorf("answer of exactly MaxResponseBytes: %v", err)
	}
	under := mustNew(t, Options{SubscribeURL: srv.URL, MaxResponseBytes: int64(len(body) - 1)})
	_, err := under.Subscribe().Check(context.Background(), &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: answer is too large")
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	var inBackend atomic.Int32
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	var releaseOnce sync.Once
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		inBackend.Add(1)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, `{"allow":true}`)
	})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	// The slot limit is over all events: the blocked calls use two events.
	p := mustNew(t, Options{SubscribeURL: srv.URL, PublishURL: srv.URL, MaxConcurrency: 2, Timeout: time.Minute})
	req := &actors.HookRequest{Channel: "/a"}

	// Two calls with a long deadline take both slots and block in the
	// backend...
	holders := make(chan error, 2)
	for _, h := range []actors.Hook{p.Subscribe(), p.Publish()} {
		go func() {
			_, err := h.Check(context.Background(), req)
			holders <- err
		}()
	}
	for i := 0; i < 2; i++ {
		select {
		case <-arrived:
		case <-time.After(returnBound):
			t.Fatal("the first two calls did not reach the backend")
		}
	}

	// ...so three more, concurrent with them, find no slot by their
	// deadline.
	const deadline = 300 * time.Millisecond
	var wg sync.WaitGroup
	errs := make([]error, 3)
	took := make([]time.Duration, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, errs[i] = p.Subscribe().Check(ctx, req)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		wantUnavailable(t, err, "backend unavailable: too many requests in flight")
		if took[i] < deadline/2 || took[i] > returnBound {
			t.Errorf("busy call %d returned after %v, want about %v", i, took[i], deadline)
		}
	}
	if n := inBackend.Load(); n != 2 {
		t.Errorf("%d calls reached the backend, want 2", n)
	}
	select {
	case err := <-holders:
		t.Fatalf("a slot holder returned before release: %v", err)
	default:
	}

	// After release the holders are allowed and new calls work.
	releaseOnce.Do(func() { close(release) })
	for i := 0; i < 2; i++ {
		if err := <-holders; err != nil {
			t.Errorf("slot holder: %v", err)
		}
	}
	for i := 0; i < 4; i++ {
		if _, err := p.Publish().Check(context.Background(), req); err != nil {
			t.Errorf("call after release: %v", err)
		}
	}
	st := p.Stats()
	if s := st[actors.HookSubscribe]; s != (EventStats{Calls: 4, Allowed: 1, Unavailable: 3, Busy: 3}) {
		t.Errorf("subscribe stats = %+v", s)
	}
	if s := st[actors.HookPublish]; s != (EventStats{Calls: 5, Allowed: 5}) {
		t.Errorf("publish stats = %+v", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		var req wireRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if req.Channel == "/deny" {
			_, _ = io.WriteString(w, `{"allow":false,"reason":"denied `+req.ClientID+`"}`)
			return
		}
		_, _ = io.WriteString(w, `{"allow":true}`)
	})
	p := mustNew(t, Options{SubscribeURL: srv.URL, MaxConcurrency: 4, Timeout: returnBound})
	const n = 100
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "c" + string(rune('a'+i%26))
			ch := "/ok"
			if i%2 == 1 {
				ch = "/deny"
			}
			_, err := p.Subscribe().Check(context.Background(), &actors.HookRequest{ClientID: id, Channel: ch})
			switch {
			case ch == "/ok" && err != nil:
				t.Errorf("call %d: %v", i, err)
			case ch == "/deny" && (err == nil || err.Error() != "denied "+id):
				t.Errorf("call %d: err = %v", i, err)
			}
			_ = p.Stats()
		}()
	}
	wg.Wait()
	if s := p.Stats()[actors.HookSubscribe]; s != (EventStats{Calls: n, Allowed: n / 2, Refused: n / 2}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		var req wireRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch req.Channel {
		case "/allow":
			_, _ = io.WriteString(w, `{"allow":true}`)
		case "/refuse":
			_, _ = io.WriteString(w, `{"allow":false}`)
		case "/slow":
			drain(r)
			<-r.Context().Done()
		default:
			w.WriteHeader(500)
		}
	})
	p := mustNew(t, Options{HandshakeURL: srv.URL, SubscribeURL: srv.URL, Timeout: 100 * time.Millisecond})
	for _, ch := range []string{"/allow", "/allow", "/refuse", "/fail", "/slow"} {
		_, _ = p.Subscribe().Check(context.Background(), &actors.HookRequest{Channel: ch})
	}
	got := p.Stats()
	want := map[actors.HookEvent]EventStats{
		actors.HookHandshake: {},
		actors.HookSubscribe: {Calls: 5, Allowed: 2, Refused: 1, Unavailable: 2, Timeouts: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestNilHooks(t *testing.T) {
	t.Parallel()
	p := mustNew(t, Options{SubscribeURL: "http://127.0.0.1:1/"})
	if h := p.Handshake(); h != nil {
		t.Errorf("Handshake() = %#v, want a nil interface", h)
	}
	if h := p.Publish(); h != nil {
		t.Errorf("Publish() = %#v, want a nil interface", h)
	}
	if p.Subscribe() == nil {
		t.Error("Subscribe() = nil")
	}
	if st := p.Stats(); len(st) != 1 {
		t.Errorf("Stats = %v, want only subscribe", st)
	}
	none := mustNew(t, Options{})
	if none.Handshake() != nil || none.Subscribe() != nil || none.Publish() != nil || len(none.Stats()) != 0 {
		t.Error("a Proxy without URLs has hooks or stats")
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"unparsable", Options{HandshakeURL: "http://[::1"}, "proxy: handshake URL: not a valid URL"},
		{"relative", Options{SubscribeURL: "/hook"}, "proxy: subscribe URL: not an absolute URL (want http:// or https://)"},
		{"no scheme", Options{SubscribeURL: "backend:8080/hook"}, `proxy: subscribe URL: scheme "backend" is not http or https`},
		{"ftp", Options{PublishURL: "ftp://example.com/hook"}, `proxy: publish URL: scheme "ftp" is not http or https`},
		{"no host", Options{PublishURL: "http:///hook"}, "proxy: publish URL: URL has no host"},
		{"port only", Options{PublishURL: "http://:8080/hook"}, "proxy: publish URL: URL has no host"},
		{"negative timeout", Options{Timeout: -1}, "proxy: negative Timeout"},
		{"negative concurrency", Options{MaxConcurrency: -1}, "proxy: negative MaxConcurrency"},
		{"negative size", Options{MaxResponseBytes: -1}, "proxy: negative MaxResponseBytes"},
		{"bad header", Options{Headers: []string{"X-Ok", "Bad Header"}}, `proxy: invalid header name "Bad Header"`},
		{"empty header", Options{Headers: []string{""}}, `proxy: invalid header name ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("New = %v, %v; want error %q", p, err, tc.want)
			}
			if p != nil {
				t.Errorf("New returned a Proxy with an error")
			}
		})
	}
	for _, ok := range []string{"http://127.0.0.1:8080/hook", "HTTPS://example.com", "http://user:pw@example.com/x?y=1#frag"} {
		if _, err := New(Options{SubscribeURL: ok}); err != nil {
			t.Errorf("New(%q): %v", ok, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	p := mustNew(t, Options{SubscribeURL: "http://127.0.0.1:1/"})
	if p.timeout != DefaultTimeout || cap(p.slots) != DefaultMaxConcurrency || p.maxBytes != DefaultMaxResponseBytes {
		t.Errorf("defaults: timeout %v, slots %d, max bytes %d", p.timeout, cap(p.slots), p.maxBytes)
	}
	if p.client == nil || p.client.CheckRedirect == nil {
		t.Fatal("default client follows redirects")
	}
	if err := p.client.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v", err)
	}
}

func TestCustomClient(t *testing.T) {
	t.Parallel()
	target := backend(t, answer(200, `{"allow":true}`))
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	// A client given in Options is used as it is: this one follows
	// redirects.
	p := mustNew(t, Options{SubscribeURL: srv.URL, Client: &http.Client{}})
	if _, err := p.Subscribe().Check(context.Background(), &actors.HookRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestLogging(t *testing.T) {
	t.Parallel()
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		var req wireRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Channel == "/refuse" {
			_, _ = io.WriteString(w, `{"allow":false,"reason":"nope"}`)
			return
		}
		w.WriteHeader(503)
	})
	var buf syncBuffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	p := mustNew(t, Options{PublishURL: srv.URL + "/pub", Headers: []string{"Cookie"}, Logger: &log})
	req := &actors.HookRequest{
		ClientID: "c1", Channel: "/fail", Data: json.RawMessage(`{"secret-data":1}`),
		Header: http.Header{"Cookie": {"session=secret-cookie"}},
	}
	_, err := p.Publish().Check(context.Background(), req)
	wantUnavailable(t, err, "backend unavailable: HTTP 503")
	req.Channel = "/refuse"
	_, err = p.Publish().Check(context.Background(), req)
	wantRefused(t, err, "nope")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log = %q, want 2 lines", buf.String())
	}
	var warn, debug map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &warn); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &debug); err != nil {
		t.Fatal(err)
	}
	if warn["level"] != "warn" || warn["url"] != srv.URL+"/pub" || warn["failure"] != "HTTP 503" ||
		warn["event"] != "publish" || warn["client_id"] != "c1" || warn["channel"] != "/fail" {
		t.Errorf("warn line = %s", lines[0])
	}
	if debug["level"] != "debug" || debug["reason"] != "nope" || debug["channel"] != "/refuse" {
		t.Errorf("debug line = %s", lines[1])
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("log leaks header values or data: %s", buf.String())
	}
}

func TestLoggedURLIsRedacted(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var buf syncBuffer
	log := zerolog.New(&buf)
	p := mustNew(t, Options{SubscribeURL: "http://user:hunter2@" + addr + "/x", Logger: &log})
	_, err = p.Subscribe().Check(context.Background(), &actors.HookRequest{})
	wantUnavailable(t, err, "backend unavailable: connection refused")
	if !strings.Contains(buf.String(), addr) || strings.Contains(buf.String(), "hunter2") {
		t.Errorf("log = %s", buf.String())
	}
}

func TestSanitizeReason(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"":                                "",
		"  ok  ":                          "ok",
		"a\x00b\x1fc\x7fd":                "abcd",
		"bad \xff\xfe utf8":               "bad  utf8",
		"bidi \u202e ok":                  "bidi \u202e ok", // not a control character
		strings.Repeat("a", 250):          strings.Repeat("a", 200),
		strings.Repeat("a", 199) + "€xyz": strings.Repeat("a", 199),
		strings.Repeat("a", 198) + "€xyz": strings.Repeat("a", 198),
		strings.Repeat("a", 197) + "€xyz": strings.Repeat("a", 197) + "€",
	}
	for in, want := range cases {
		if got := sanitizeReason(in); got != want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", in, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
