// Command floor is a deliberately minimal Bayeux long-polling server used
// as the benchmark's baseline: net/http, one mutex and queue per client, a
// map from channel to clients, no actors, no validation, no wildcards.
// It shows what this machine can do at all; it is not a server to use.
//
// Usage:
//
//	floor --port 8081   # serves http://127.0.0.1:8081/cometd
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"sync"
	"time"
)

const (
	holdTimeout = 30 * time.Second // how long a connect is held
	sessionTTL  = 60 * time.Second // sessions without a connect expire
)

type client struct {
	id string

	mu       sync.Mutex
	queue    [][]byte      // encoded messages waiting for a connect
	wake     chan struct{} // closed to release the held connect
	lastSeen time.Time
	gone     bool
}

type server struct {
	mu       sync.RWMutex
	clients  map[string]*client
	channels map[string]map[*client]struct{}
}

// message is the part of a Bayeux message the floor server reads.
type message struct {
	Channel      string          `json:"channel"`
	ClientID     string          `json:"clientId"`
	ID           json.RawMessage `json:"id"`
	Subscription json.RawMessage `json:"subscription"`
	Data         json.RawMessage `json:"data"`
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *server) lookup(id string) *client {
	s.mu.RLock()
	c := s.clients[id]
	s.mu.RUnlock()
	return c
}

// reply appends one reply object to out.
func reply(out []byte, channel string, id json.RawMessage, clientID string, ok bool, extra string) []byte {
	if len(out) > 1 {
		out = append(out, ',')
	}
	out = append(out, `{"channel":`...)
	out = strconv.AppendQuote(out, channel)
	out = append(out, `,"successful":`...)
	out = strconv.AppendBool(out, ok)
	if len(id) > 0 {
		out = append(out, `,"id":`...)
		out = append(out, id...)
	}
	if clientID != "" {
		out = append(out, `,"clientId":`...)
		out = strconv.AppendQuote(out, clientID)
	}
	out = append(out, extra...)
	return append(out, '}')
}

const unknown = `,"error":"402::Unknown client","advice":{"reconnect":"handshake","interval":0}`

func subscriptions(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var msgs []message
	if err := json.NewDecoder(r.Body).Decode(&msgs); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	out := []byte{'['}
	var connect *client
	var connectMsg *message
	for i := range msgs {
		m := &msgs[i]
		switch m.Channel {
		case "/meta/handshake":
			c := &client{id: newID(), wake: make(chan struct{}), lastSeen: time.Now()}
			s.mu.Lock()
			s.clients[c.id] = c
			s.mu.Unlock()
			out = reply(out, m.Channel, m.ID, c.id, true,
				`,"version":"1.0","supportedConnectionTypes":["long-polling"],"advice":{"reconnect":"retry","interval":0,"timeout":30000}`)
		case "/meta/connect":
			c := s.lookup(m.ClientID)
			if c == nil {
				out = reply(out, m.Channel, m.ID, m.ClientID, false, unknown)
				continue
			}
			connect, connectMsg = c, m
		case "/meta/subscribe", "/meta/unsubscribe":
			c := s.lookup(m.ClientID)
			if c == nil {
				out = reply(out, m.Channel, m.ID, m.ClientID, false, unknown)
				continue
			}
			subs := subscriptions(m.Subscription)
			s.mu.Lock()
			for _, ch := range subs {
				set := s.channels[ch]
				if m.Channel == "/meta/subscribe" {
					if set == nil {
						set = map[*client]struct{}{}
						s.channels[ch] = set
					}
					set[c] = struct{}{}
				} else if set != nil {
					delete(set, c)
				}
			}
			s.mu.Unlock()
			extra, _ := json.Marshal(subs)
			if len(subs) == 1 {
				extra, _ = json.Marshal(subs[0])
			}
			out = reply(out, m.Channel, m.ID, c.id, true, `,"subscription":`+string(extra))
		case "/meta/disconnect":
			if c := s.lookup(m.ClientID); c != nil {
				s.remove(c)
			}
			out = reply(out, m.Channel, m.ID, m.ClientID, true, "")
		default:
			s.publish(m)
			out = reply(out, m.Channel, m.ID, "", true, "")
		}
	}
	if connect != nil {
		out = s.hold(r, connect, connectMsg, out)
	}
	out = append(out, ']')
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(out)
}

// publish queues the message for every subscriber of its channel and
// wakes their held connects.
func (s *server) publish(m *message) {
	enc := []byte(`{"channel":`)
	enc = strconv.AppendQuote(enc, m.Channel)
	enc = append(enc, `,"data":`...)
	enc = append(enc, m.Data...)
	if len(m.ID) > 0 {
		enc = append(enc, `,"id":`...)
		enc = append(enc, m.ID...)
	}
	enc = append(enc, '}')
	s.mu.RLock()
	for c := range s.channels[m.Channel] {
		c.mu.Lock()
		c.queue = append(c.queue, enc)
		if len(c.queue) == 1 {
			close(c.wake)
			c.wake = make(chan struct{})
		}
		c.mu.Unlock()
	}
	s.mu.RUnlock()
}

// hold answers a connect once messages are queued, the hold times out, a
// newer connect replaces it, or the client goes away.
func (s *server) hold(r *http.Request, c *client, m *message, out []byte) []byte {
	c.mu.Lock()
	c.lastSeen = time.Now()
	// A newer connect releases the one already held.
	close(c.wake)
	c.wake = make(chan struct{})
	wake := c.wake
	empty := len(c.queue) == 0 && !c.gone
	c.mu.Unlock()
	if empty {
		t := time.NewTimer(holdTimeout)
		select {
		case <-wake:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.lastSeen = time.Now()
	gone := c.gone
	c.mu.Unlock()
	if gone {
		return reply(out, "/meta/connect", m.ID, c.id, false, unknown)
	}
	out = reply(out, "/meta/connect", m.ID, c.id, true, `,"advice":{"reconnect":"retry","interval":0,"timeout":30000}`)
	for _, e := range q {
		out = append(out, ',')
		out = append(out, e...)
	}
	return out
}

func (s *server) remove(c *client) {
	s.mu.Lock()
	delete(s.clients, c.id)
	for ch, set := range s.channels {
		delete(set, c)
		if len(set) == 0 {
			delete(s.channels, ch)
		}
	}
	s.mu.Unlock()
	c.mu.Lock()
	c.gone = true
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

// sweep removes sessions that stopped connecting.
func (s *server) sweep() {
	for range time.Tick(10 * time.Second) {
		var dead []*client
		s.mu.RLock()
		for _, c := range s.clients {
			c.mu.Lock()
			if time.Since(c.lastSeen) > sessionTTL {
				dead = append(dead, c)
			}
			c.mu.Unlock()
		}
		s.mu.RUnlock()
		for _, c := range dead {
			s.remove(c)
		}
	}
}

func main() {
	port := flag.Int("port", 8081, "loopback port to listen on")
	flag.Parse()
	s := &server{clients: map[string]*client{}, channels: map[string]map[*client]struct{}{}}
	go s.sweep()
	mux := http.NewServeMux()
	mux.Handle("/cometd", s)
	mux.Handle("/cometd/", s)
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	log.Printf("floor: serving http://%s/cometd", addr)
	log.Fatal(http.ListenAndServe(addr, mux))
}
