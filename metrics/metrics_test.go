package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// scrape GETs the handler once over HTTP and returns the body.
func scrape(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: Content-Type %q, want the text format", ct)
	}
	return string(body)
}

// requireLines fails unless every line appears, whole, in body.
func requireLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	have := make(map[string]bool)
	for l := range strings.Lines(body) {
		have[strings.TrimSuffix(l, "\n")] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("missing line %q in:\n%s", l, body)
		}
	}
}

func TestHandlerServesSnapshot(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	snap := Snapshot{Clients: 3, Channels: 7, Published: 1234567, Delivered: 89, Handshakes: 5}
	srv := httptest.NewServer(NewHandler(func() Snapshot {
		calls.Add(1)
		return snap
	}))
	defer srv.Close()

	body := scrape(t, srv)
	requireLines(t, body,
		"# HELP bayeuxhub_clients Number of open client sessions, remote and local.",
		"# TYPE bayeuxhub_clients gauge",
		"bayeuxhub_clients 3",
		"# TYPE bayeuxhub_channels gauge",
		"bayeuxhub_channels 7",
		"# TYPE bayeuxhub_messages_published_total counter",
		"bayeuxhub_messages_published_total 1.234567e+06",
		"# TYPE bayeuxhub_messages_delivered_total counter",
		"bayeuxhub_messages_delivered_total 89",
		"# TYPE bayeuxhub_handshakes_total counter",
		"bayeuxhub_handshakes_total 5",
		"# TYPE go_goroutines gauge",
	)
	for _, prefix := range []string{"go_goroutines ", "process_start_time_seconds ", "# HELP bayeuxhub_channels ", "# HELP bayeuxhub_messages_published_total ", "# HELP bayeuxhub_messages_delivered_total ", "# HELP bayeuxhub_handshakes_total "} {
		if !strings.HasPrefix(body, prefix) && !strings.Contains(body, "\n"+prefix) {
			t.Errorf("no line starting %q", prefix)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("src called %d times for one scrape, want 1", got)
	}
}

func TestHandlerReadsAtScrapeTime(t *testing.T) {
	t.Parallel()
	var clients atomic.Int64
	srv := httptest.NewServer(NewHandler(func() Snapshot {
		return Snapshot{Clients: int(clients.Load())}
	}))
	defer srv.Close()
	for _, n := range []int64{0, 42, 1} {
		clients.Store(n)
		requireLines(t, scrape(t, srv), "bayeuxhub_clients "+strconv.FormatInt(n, 10))
	}
}

// Handlers have private registries: two of them, or a test registering on
// the default registry, do not collide.
func TestHandlersAreIndependent(t *testing.T) {
	t.Parallel()
	a := httptest.NewServer(NewHandler(func() Snapshot { return Snapshot{Channels: 1} }))
	defer a.Close()
	b := httptest.NewServer(NewHandler(func() Snapshot { return Snapshot{Channels: 2} }))
	defer b.Close()
	requireLines(t, scrape(t, a), "bayeuxhub_channels 1")
	requireLines(t, scrape(t, b), "bayeuxhub_channels 2")
}

func TestNewHandlerNilPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("NewHandler(nil) did not panic")
		}
	}()
	NewHandler(nil)
}
