package server

import (
	"encoding/json"
	"net/http"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/metrics"
	"github.com/bayeuxhub/bayeuxhub/proxy"
)

// healthz answers 200 while the process serves HTTP at all: liveness.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is /readyz's answer: each check "ok" or why not.
type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// connectedBroker is a broker that can say whether it is connected (as
// broker.NATS can).
type connectedBroker interface{ Connected() bool }

// ready checks what a load balancer needs before sending clients: the hub
// is running and not draining, the HTTP server is accepting connections
// and, with a broker that can tell, the broker is connected.
func (s *Server) ready() readiness {
	r := readiness{Ready: true, Checks: map[string]string{}}
	check := func(name string, ok bool, why string) {
		if ok {
			r.Checks[name] = "ok"
			return
		}
		r.Ready = false
		r.Checks[name] = why
	}
	check("hub", !s.hub.Draining(), "shutting down")
	check("http", s.serving.Load(), "not listening")
	if b, ok := s.cfg.Hub.Broker.(connectedBroker); ok {
		check("nats", b.Connected(), "not connected")
	}
	return r
}

// readyz answers 200 when ready, 503 with the failing checks otherwise.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	r := s.ready()
	status := http.StatusOK
	if !r.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// setHook sets *dst to h unless it is set already or h is nil.
func setHook(dst *actors.Hook, h actors.Hook) {
	if *dst == nil && h != nil {
		*dst = h
	}
}

// metricsSnapshot reads the hub's and the proxy's figures for /metrics.
func (s *Server) metricsSnapshot() metrics.Snapshot {
	st := s.hub.Stats()
	snap := metrics.Snapshot{Clients: st.Clients, Channels: st.Channels, Published: st.Published,
		Delivered: st.Delivered, Handshakes: st.Handshakes, Held: st.Held, Queued: st.Queued,
		Overflows: st.Overflows, Dropped: st.Dropped, BrokerErrors: st.BrokerErrors, Expired: st.Expired,
		QueuedBytes: st.QueuedBytes, Evicted: st.Evicted, EventsDropped: st.EventsDropped,
		HistoryBytes: st.HistoryBytes, HistoryEvicted: st.HistoryEvicted,
		PresenceChannels: st.Presence.Channels, PresenceMembers: st.Presence.Members, PresenceUntracked: st.Presence.Untracked,
		PresenceDropped: st.Presence.EventsDropped, PresenceSyncs: st.Presence.Syncs}
	for _, r := range st.Refusals {
		snap.Refusals = append(snap.Refusals, metrics.Refusal{Action: r.Action, Rule: r.Rule, Reason: r.Reason, Count: r.Count})
	}
	if p := s.cfg.Proxy; p != nil {
		for ev, c := range p.Stats() {
			snap.Hooks = append(snap.Hooks, hookCounts(string(ev), c))
		}
	}
	return snap
}

func hookCounts(event string, c proxy.EventStats) metrics.HookCounts {
	return metrics.HookCounts{Event: event, Calls: c.Calls, Allowed: c.Allowed, Refused: c.Refused,
		Unavailable: c.Unavailable, Timeouts: c.Timeouts, Busy: c.Busy}
}
