package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// readyz returns /readyz's status and checks.
func readyz(t *testing.T, srv *server.Server) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(srv.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("/readyz: %v: %s", err, body)
	}
	if r.Ready != (resp.StatusCode == http.StatusOK) {
		t.Fatalf("/readyz: status %d with ready %v", resp.StatusCode, r.Ready)
	}
	return resp.StatusCode, r.Checks
}

// TestHealthEndpoints: /healthz answers while the process serves; /readyz
// follows the NATS connection and says 503 once the hub drains.
func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	b, err := broker.NewNATS(broker.NATSOptions{URLs: []string{ns.URL()}, ReconnectWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, server.Config{NodeName: "health", Hub: actors.Options{Broker: b}})
	if body := get(t, srv.URL()+"/healthz"); body != "{\"status\":\"ok\"}\n" {
		t.Fatalf("/healthz: %q", body)
	}
	if status, checks := readyz(t, srv); status != 200 || checks["hub"] != "ok" || checks["http"] != "ok" || checks["nats"] != "ok" {
		t.Fatalf("/readyz: %d %v", status, checks)
	}

	ns.Stop()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if status, checks := readyz(t, srv); status != 503 || checks["nats"] != "not connected" {
			return errorString("still ready without NATS")
		}
		return nil
	})
	get(t, srv.URL()+"/healthz") // alive all the same
	ns.Restart()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if status, _ := readyz(t, srv); status != 200 {
			return errorString("not ready after NATS came back")
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Hub().Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if status, checks := readyz(t, srv); status != 503 || checks["hub"] != "shutting down" {
		t.Fatalf("/readyz while draining: %d %v", status, checks)
	}
}
