package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bayeuxhub/bayeuxhub/metrics"
)

func ExampleNewHandler() {
	h := metrics.NewHandler(func() metrics.Snapshot {
		return metrics.Snapshot{Clients: 2, Channels: 3, Published: 10, Delivered: 25, Handshakes: 4}
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "bayeuxhub_") {
			fmt.Print(line)
		}
	}
	// Output:
	// bayeuxhub_broker_errors_total 0
	// bayeuxhub_channels 3
	// bayeuxhub_clients 2
	// bayeuxhub_connects_held 0
	// bayeuxhub_events_dropped_total 0
	// bayeuxhub_handshakes_total 4
	// bayeuxhub_history_bytes 0
	// bayeuxhub_history_evicted_total 0
	// bayeuxhub_messages_delivered_total 25
	// bayeuxhub_messages_dropped_total 0
	// bayeuxhub_messages_published_total 10
	// bayeuxhub_messages_queued 0
	// bayeuxhub_presence_channels 0
	// bayeuxhub_presence_events_dropped_total 0
	// bayeuxhub_presence_members 0
	// bayeuxhub_presence_syncs_total 0
	// bayeuxhub_presence_untracked_total 0
	// bayeuxhub_queue_overflows_total 0
	// bayeuxhub_queued_bytes 0
	// bayeuxhub_sessions_evicted_total 0
	// bayeuxhub_sessions_expired_total 0
}
