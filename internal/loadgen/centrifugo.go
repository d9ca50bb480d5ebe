package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// This file is the Centrifugo driver (Config.Protocol ProtocolCentrifugo):
// the same scenarios and accounting over Centrifugo's own client
// protocol, version 2, JSON over WebSocket, as centrifuge-js speaks it
// (github.com/centrifugal/protocol, client.proto). A frame holds one or
// more JSON objects separated by newlines, each way:
//
//	client → server  {"id":1,"connect":{"name":"bayeuxhub-bench"}}
//	                 {"id":2,"subscribe":{"channel":"bench_0"}}
//	                 {"id":3,"publish":{"channel":"bench_0","data":{"ts":..,"pub":..,"seq":..}}}
//	server → client  {"id":1,"connect":{"client":"<uuid>","version":"..","ping":25,"pong":true}}
//	                 {"id":2,"subscribe":{}}   {"id":3,"publish":{}}
//	                 {"id":3,"error":{"code":103,"message":"permission denied"}}
//	                 {"push":{"channel":"bench_0","pub":{"data":{..},"offset":..}}}
//	                 {}   a ping, answered with {} when the connect result said "pong":true
//
// Replies carry the command's id; pushes have none. A client must send
// connect first, on each new socket: there is no session to resume, so a
// socket that breaks ends the client's "session" (ErrRehandshake) and the
// runner connects and subscribes again. Channel names have no namespace
// (ChannelName gives bench_N): Centrifugo must let anonymous clients
// connect, subscribe and publish there. The configuration keys this
// relies on (Centrifugo v6), either
//
//	{"client":{"insecure":true}}
//
// or, without insecure mode,
//
//	{"client":{"allow_anonymous_connect_without_token":true},
//	 "channel":{"without_namespace":{
//	   "allow_subscribe_for_client":true,"allow_subscribe_for_anonymous":true,
//	   "allow_publish_for_client":true,"allow_publish_for_anonymous":true}}}
//
// The second is what the tests run (centrifugo_test.go). Everything else
// is Centrifugo's default: WebSocket at /connection/websocket, memory
// broker, no history, no presence.

// The client protocols (Config.Protocol).
const (
	// ProtocolBayeux is Bayeux 1.0, over Config.Transport.
	ProtocolBayeux = "bayeux"
	// ProtocolCentrifugo is Centrifugo's client protocol v2, JSON over
	// WebSocket (CentrifugoClient).
	ProtocolCentrifugo = "centrifugo"
)

// cfPong is the answer to a server ping.
var cfPong = []byte(`{}`)

// CentrifugoClient is one simulated Centrifugo client: one WebSocket at
// URL (ws://host:port/connection/websocket), on which Handshake sends
// connect, Subscribe subscribe commands and Publish publish commands;
// publications pushed to it go to OnDeliver as Msgs with the channel and
// the data's benchmark fields. It is safe for concurrent use and
// implements the same calls as WSClient; Connect waits for the socket to
// end, since Centrifugo has no connect loop.
type CentrifugoClient struct {
	ws WSClient
}

// NewCentrifugoClient returns a client of the Centrifugo endpoint url
// (ws:// or wss://), dialling with hc (nil: http.DefaultClient, whose
// Timeout must be zero); deliver, when set, receives every publication
// with the time its frame was read, on the socket's reader goroutine.
func NewCentrifugoClient(url string, hc *http.Client, deliver func(m *Msg, at time.Time)) *CentrifugoClient {
	c := &CentrifugoClient{ws: WSClient{URL: url, HC: hc, OnDeliver: deliver, centrifugo: true}}
	return c
}

// ClientID returns the client id of the last connect.
func (c *CentrifugoClient) ClientID() string { return c.ws.ClientID() }

// SetClientID does nothing: a Centrifugo connection cannot speak for
// another.
func (c *CentrifugoClient) SetClientID(string) {}

// ConnectInterval is 0: there is no connect loop.
func (c *CentrifugoClient) ConnectInterval() time.Duration { return 0 }

// Close closes the socket and waits for its reader.
func (c *CentrifugoClient) Close() { c.ws.Close() }

// cfError turns a reply's error into an error.
func cfError(m *Msg, what string) error {
	if m.Successful {
		return nil
	}
	return fmt.Errorf("loadgen: centrifugo %s failed: %s", what, m.Error)
}

// Handshake dials a new socket (closing the old one) and sends connect.
func (c *CentrifugoClient) Handshake(ctx context.Context) error {
	if _, err := c.ws.redial(ctx); err != nil {
		return err
	}
	id := c.ws.newID()
	w, err := c.ws.roundTrip(ctx, []string{id}, 30*time.Second, func(b []byte) []byte {
		b = append(b, `{"id":`...)
		b = append(b, id...)
		return append(b, `,"connect":{"name":"bayeuxhub-bench"}}`...)
	})
	if err != nil {
		return err
	}
	m := &w.got[0]
	if err := cfError(m, "connect"); err != nil {
		return err
	}
	if m.ClientID == "" {
		return errors.New("loadgen: centrifugo connect reply without client id")
	}
	c.ws.SetClientID(m.ClientID)
	return nil
}

// Subscribe subscribes to the channels, one subscribe command each, in
// one frame.
func (c *CentrifugoClient) Subscribe(ctx context.Context, channels []string) error {
	ids := make([]string, len(channels))
	for i := range ids {
		ids[i] = c.ws.newID()
	}
	w, err := c.ws.roundTrip(ctx, ids, 30*time.Second, func(b []byte) []byte {
		for i, ch := range channels {
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, `{"id":`...)
			b = append(b, ids[i]...)
			b = append(b, `,"subscribe":{"channel":`...)
			b = strconv.AppendQuote(b, ch)
			b = append(b, `}}`...)
		}
		return b
	})
	if err != nil {
		return err
	}
	for i := range w.got {
		if err := cfError(&w.got[i], "subscribe"); err != nil {
			return err
		}
	}
	return nil
}

// SubscribeReplay is not supported: the replay scenario is Bayeux's.
func (c *CentrifugoClient) SubscribeReplay(context.Context, []string, []int64) error {
	return errors.New("loadgen: the centrifugo driver has no replay")
}

// Connect waits until the socket ends (ErrRehandshake: connect again) or
// ctx does; Centrifugo pushes publications without a request.
func (c *CentrifugoClient) Connect(ctx context.Context) (int, error) {
	s := c.ws.current()
	if s == nil {
		return 0, errNoConnection
	}
	select {
	case <-s.done:
		return 0, fmt.Errorf("%w: %v", errNoConnection, s.err)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Disconnect closes the socket: Centrifugo forgets a client whose
// connection closed.
func (c *CentrifugoClient) Disconnect(context.Context) error {
	c.ws.mu.Lock()
	s := c.ws.sock
	c.ws.sock = nil
	c.ws.mu.Unlock()
	if s != nil {
		s.close()
	}
	return nil
}

// appendPublish appends publish commands for ps with the given ids.
func (c *CentrifugoClient) appendPublish(b []byte, ps []Payload, ids []string, size int) []byte {
	for i := range ps {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, `{"id":`...)
		b = append(b, ids[i]...)
		b = append(b, `,"publish":{"channel":`...)
		b = strconv.AppendQuote(b, ps[i].Channel)
		b = append(b, `,"data":`...)
		b = AppendPayload(b, &ps[i], size)
		b = append(b, `}}`...)
	}
	return b
}

// Publish sends one publish command per payload in one frame and waits
// for their replies.
func (c *CentrifugoClient) Publish(ctx context.Context, ps []Payload, size int) ([]bool, error) {
	ids := make([]string, len(ps))
	for i := range ids {
		ids[i] = c.ws.newID()
	}
	acked := make([]bool, len(ps))
	w, err := c.ws.roundTrip(ctx, ids, 30*time.Second, func(b []byte) []byte { return c.appendPublish(b, ps, ids, size) })
	if err != nil {
		return acked, err
	}
	return acked, publishReplies(w, ids, acked)
}

// PublishAsync is Publish without waiting, as WSClient.PublishAsync.
func (c *CentrifugoClient) PublishAsync(ctx context.Context, ps []Payload, size int, done func(acked []bool, err error)) {
	ids := make([]string, len(ps))
	for i := range ids {
		ids[i] = c.ws.newID()
	}
	c.ws.publishAsync(ctx, ps, ids, done, func(b []byte) []byte { return c.appendPublish(b, ps, ids, size) })
}

// parseCentrifugo parses a frame of Centrifugo replies (JSON objects
// separated by newlines) and appends them to out as Msgs: a reply has
// its id in ID, HasSuccessful set, Successful unless it carries an error
// (then Error is "code: message"), and a connect reply the client id and
// pong; a publication push is a delivery, with the push's channel and
// the data's benchmark fields; an empty object is a ping; other pushes
// (join, leave, unsubscribe, disconnect…) are neither.
func parseCentrifugo(buf []byte, out []Msg) ([]Msg, error) {
	p := parser{b: buf}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return out, nil
		}
		out = append(out, Msg{Interval: -1, Timeout: -1})
		if err := p.cfReply(&out[len(out)-1]); err != nil {
			return out[:len(out)-1], err
		}
	}
}

func (p *parser) cfReply(m *Msg) error {
	keys := 0
	err := p.object(func(key []byte) error {
		keys++
		switch string(key) {
		case "id":
			start := p.i
			if _, err := p.num(); err != nil {
				return err
			}
			if id := p.b[start:p.i]; len(id) > 0 && string(id) != "0" {
				m.ID = id
				m.HasSuccessful, m.Successful = true, true
			}
			return nil
		case "error":
			m.Successful = false
			return p.cfErr(m)
		case "connect":
			return p.object(func(key []byte) error {
				switch string(key) {
				case "client":
					s, err := p.str()
					m.ClientID = string(s)
					return err
				case "pong":
					var err error
					m.pong, err = p.boolean()
					return err
				}
				return p.skip()
			})
		case "push":
			return p.cfPush(m)
		}
		return p.skip()
	})
	if err != nil {
		return err
	}
	if m.HasSuccessful && m.Error != "" {
		m.Successful = false
	}
	m.ping = keys == 0
	return nil
}

func (p *parser) cfErr(m *Msg) error {
	var code int64
	var msg []byte
	err := p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "code":
			code, err = p.num()
		case "message":
			msg, err = p.str()
		default:
			err = p.skip()
		}
		return err
	})
	m.Error = strconv.FormatInt(code, 10) + ": " + string(msg)
	return err
}

func (p *parser) cfPush(m *Msg) error {
	return p.object(func(key []byte) error {
		switch string(key) {
		case "channel":
			var err error
			m.Channel, err = p.str()
			return err
		case "pub":
			return p.object(func(key []byte) error {
				if string(key) != "data" {
					return p.skip()
				}
				m.HasData = true
				if p.i < len(p.b) && p.b[p.i] == '{' {
					return p.data(m)
				}
				return p.skip()
			})
		}
		return p.skip()
	})
}
