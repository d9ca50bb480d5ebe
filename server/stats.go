package server

import (
	"math"
	"time"
)

// liveStats is what the hub publishes on the stats channel.
type liveStats struct {
	Clients     int     `json:"clients"`
	Channels    int     `json:"channels"`
	Published   uint64  `json:"published"`
	Delivered   uint64  `json:"delivered"`
	Handshakes  uint64  `json:"handshakes"`
	PublishRate float64 `json:"publishRate"`
	DeliverRate float64 `json:"deliverRate"`
	Uptime      float64 `json:"uptime"`
}

// startStats publishes the hub's figures on the stats channel, so that any
// Bayeux client (the status page) can watch.
func (s *Server) startStats() error {
	channel := s.cfg.StatsChannel
	if channel == "-" {
		return nil
	}
	if channel == "" {
		channel = DefaultStatsChannel
	}
	every := s.cfg.StatsInterval
	if every <= 0 {
		every = time.Second
	}
	s.stopStats, s.statsDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.statsDone)
		t := time.NewTicker(every)
		defer t.Stop()
		prev, prevAt := s.hub.Stats(), time.Now()
		for {
			select {
			case <-s.stopStats:
				return
			case now := <-t.C:
				st := s.hub.Stats()
				secs := now.Sub(prevAt).Seconds()
				ls := liveStats{
					Clients: st.Clients, Channels: st.Channels, Published: st.Published,
					Delivered: st.Delivered, Handshakes: st.Handshakes,
					PublishRate: round(float64(st.Published-prev.Published) / secs),
					DeliverRate: round(float64(st.Delivered-prev.Delivered) / secs),
					Uptime:      math.Round(st.Uptime.Seconds()),
				}
				prev, prevAt = st, now
				if err := s.hub.Publish(channel, ls); err != nil {
					s.log.Warn().Err(err).Msg("publish stats")
				}
			}
		}
	}()
	return nil
}

func (s *Server) stopStatsLoop() {
	if s.stopStats == nil {
		return
	}
	select {
	case <-s.stopStats:
	default:
		close(s.stopStats)
	}
	<-s.statsDone
}

func round(f float64) float64 { return math.Round(f*10) / 10 }
