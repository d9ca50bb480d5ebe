package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// runNoPoll: sessions that subscribe and never poll while 60 KB messages
// are published to their channel. The server should end each at
// --max-session-bytes or --max-bytes-per-ip (queue policy disconnect) or
// --max-interval, whichever comes first, and count their bytes against
// --max-total-bytes meanwhile. A session learns that it has ended from a
// small publish once a second (402), which is not a poll, and starts again
// at once, so that the server always has about 16 such sessions per
// address to keep bytes for.
func runNoPoll(ctx context.Context, h *hostile) {
	const p, ch = "nopoll", "/hostile/nopoll"
	var wg sync.WaitGroup
	defer wg.Wait()
	pub := &session{h: h, src: source(11, 200), pattern: p}
	data := pad(60000)
	wg.Add(2)
	go func() { defer wg.Done(); pub.connectLoop(ctx) }()
	go func() {
		defer wg.Done()
		every(ctx, 100*time.Millisecond, func() bool {
			a, _ := pub.send(ctx, ch, func(id string) []byte { return publishMsg(id, ch, data) }, 10*time.Second)
			h.count(ctx, p, "publish 60 KB", a)
			return true
		})
	}()
	addrs := 3 * h.workers
	n := 16 * addrs
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the sessions' starts over 10 s.
			if !sleep(ctx, time.Duration(k)*10*time.Second/time.Duration(n)) {
				return
			}
			for ctx.Err() == nil {
				noPollOnce(ctx, h, source(11, k%addrs), k%2 == 1)
			}
		}()
	}
}

func noPollOnce(ctx context.Context, h *hostile, src string, oneConnect bool) {
	const p, ch = "nopoll", "/hostile/nopoll"
	s := &session{h: h, src: src, pattern: p}
	id, err := s.clientID(ctx)
	if err != nil {
		sleep(ctx, time.Second)
		return
	}
	start := time.Now()
	a, _ := s.send(ctx, "/meta/subscribe", func(id string) []byte { return subscribeMsg(id, ch) }, 10*time.Second)
	h.count(ctx, p, "subscribe", a)
	if a != "ok" {
		sleep(ctx, time.Second)
		return
	}
	if oneConnect {
		a, _ := s.send(ctx, "/meta/connect", func(id string) []byte { return connectMsg(id, "long-polling") }, 40*time.Second)
		h.count(ctx, p, "single connect, then none", a)
	}
	probe := []byte(`{"probe":1}`)
	for ctx.Err() == nil && time.Since(start) < 15*time.Second {
		if !sleep(ctx, time.Second) {
			return
		}
		st, rs, err := h.post(ctx, src, publishMsg(id, "/hostile/nopoll-probe", probe), 5*time.Second)
		switch a := answer(st, rs, err, "/hostile/nopoll-probe"); a {
		case "bayeux 402":
			h.count(ctx, p, "session ended by the server", fmt.Sprintf("within %d-%d s", int(time.Since(start).Seconds())/5*5, int(time.Since(start).Seconds())/5*5+5))
			return
		case "ok":
		default:
			h.count(ctx, p, "probe publish (1/s)", a)
		}
	}
	h.count(ctx, p, "session ended by the server", "no, still alive after 15 s")
	s.disconnect(ctx)
}

// runJunkPost: POSTs of [{},{},...] of about --max-body without a
// handshake, every 4th one over it.
func runJunkPost(ctx context.Context, h *hostile) {
	const p = "junkpost"
	under, over := junk(h.maxBody), junk(h.maxBody+3)
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := source(12, w)
			i := 0
			every(ctx, 2*time.Second, func() bool {
				body := under
				if i%4 == 3 {
					body = over
				}
				i++
				a, n := junkPost(ctx, h, src, body)
				h.count(ctx, p, fmt.Sprintf("POST [{},...] %d B, no handshake", len(body)), a)
				if ctx.Err() == nil {
					h.counts.add(p, "reply bytes read (total)", n)
				}
				return true
			})
		}()
	}
}

// junkPost sends body and reads the whole reply without decoding it (it
// has one error per {}), and returns the answer to the first message.
func junkPost(ctx context.Context, h *hostile, src string, body []byte) (string, int64) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return "error " + errKind(err), 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client(src).Do(req)
	if err != nil {
		return "error " + errKind(err), 0
	}
	defer resp.Body.Close()
	head := make([]byte, 512)
	k, _ := io.ReadFull(resp.Body, head)
	head = head[:k]
	n, err := io.Copy(io.Discard, resp.Body)
	n += int64(k)
	switch {
	case err != nil:
		return "error " + errKind(err), n
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("http %d", resp.StatusCode), n
	}
	if i := bytes.Index(head, []byte(`"error":"`)); i >= 0 {
		return "bayeux " + errCode(string(head[i+len(`"error":"`):])), n
	}
	if bytes.Contains(head, []byte(`"successful":true`)) {
		return "ok", n
	}
	return "no reply", n
}

// runWSFrames: WebSocket peers that send 1 MB frames and never read. Each
// handshakes, subscribes to /hostile/wsframes and sends one /meta/connect
// over its socket (reading the first two replies), then reads nothing
// more and sends a frame a second, eight in turn: [{},{},...] of
// 1,000,000 bytes, then three frames of 500 publishes of 2 KB to
// /hostile/wsframes (1 MB each, whose acknowledgements and deliveries to
// every peer the server cannot write), [{},{},...] again, three
// publishes frames, and [{},{},...] just over --max-body.
func runWSFrames(ctx context.Context, h *hostile) {
	const p, ch = "wsframes", "/hostile/wsframes"
	empty, over := junk(1_000_000), junk(h.maxBody+3)
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := source(13, w)
			for ctx.Err() == nil {
				c, id, err := wsSubscribed(ctx, h, src, ch)
				if err != nil {
					h.count(ctx, p, "dial, handshake, subscribe", "error "+err.Error())
					sleep(ctx, time.Second)
					continue
				}
				h.count(ctx, p, "dial, handshake, subscribe", "ok")
				publishes := wsPublishes(id, ch, 500, 2000)
				i := 0
				every(ctx, time.Second, func() bool {
					f, what := publishes, "500 publishes of 2 KB"
					switch {
					case i%8 == 7:
						f, what = over, "[{},...]"
					case i%4 == 0:
						f, what = empty, "[{},...]"
					}
					i++
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := c.Write(wctx, websocket.MessageText, f)
					cancel()
					what = fmt.Sprintf("frame %s %d B, never reading", what, len(f))
					if err != nil {
						h.count(ctx, p, what, "error "+errKind(err))
						return false
					}
					h.count(ctx, p, what, "written")
					return true
				})
				c.CloseNow()
				sleep(ctx, time.Second)
			}
		}()
	}
}

// wsSubscribed dials from src, handshakes, subscribes to ch and sends a
// /meta/connect, all over the socket; it returns the socket and the
// client id.
func wsSubscribed(ctx context.Context, h *hostile, src, ch string) (*websocket.Conn, string, error) {
	c, err := h.dialWS(ctx, src)
	if err != nil {
		return nil, "", fmt.Errorf("dial %s", errKind(err))
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rs, err := wsRoundTrip(rctx, c, []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]`))
	if a := answer(http.StatusOK, rs, err, "/meta/handshake"); a != "ok" {
		c.CloseNow()
		return nil, "", fmt.Errorf("handshake %s", a)
	}
	id := find(rs, "/meta/handshake").ClientID
	rs, err = wsRoundTrip(rctx, c, subscribeMsg(id, ch))
	if a := answer(http.StatusOK, rs, err, "/meta/subscribe"); a != "ok" {
		c.CloseNow()
		return nil, "", fmt.Errorf("subscribe %s", a)
	}
	if err := c.Write(rctx, websocket.MessageText, connectMsg(id, "websocket")); err != nil {
		c.CloseNow()
		return nil, "", fmt.Errorf("connect %s", errKind(err))
	}
	return c, id, nil
}

// wsPublishes returns one frame of n publishes to ch of about size bytes
// each.
func wsPublishes(id, ch string, n, size int) []byte {
	data := pad(size - 100)
	var b []byte
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		m := publishMsg(id, ch, data)
		b = append(b, m[1:len(m)-1]...) // without its [ ]
	}
	return append(b, ']')
}

// dialWS opens a WebSocket to the Bayeux endpoint from src.
func (h *hostile) dialWS(ctx context.Context, src string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(dctx, h.wsURL, &websocket.DialOptions{
		HTTPClient: h.client(src), CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("http %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	c.SetReadLimit(maxReply)
	return c, nil
}

// runBadUTF8: raw invalid UTF-8 (FF FE) wherever a client can put it.
func runBadUTF8(ctx context.Context, h *hostile) {
	const p, ch = "badutf8", "/hostile/utf8"
	bad := "\xff\xfe"
	variants := []struct {
		what  string
		build func(id string) []byte
	}{
		{"publish, FF FE in a data string", func(id string) []byte {
			return []byte(`[{"channel":"` + ch + `","clientId":` + quote(id) + `,"data":"x` + bad + `"}]`)
		}},
		{"publish, FF FE bare in data", func(id string) []byte {
			return []byte(`[{"channel":"` + ch + `","clientId":` + quote(id) + `,"data":` + bad + `}]`)
		}},
		{"publish, FF FE in ext", func(id string) []byte {
			return []byte(`[{"channel":"` + ch + `","clientId":` + quote(id) + `,"data":{},"ext":{"x":"` + bad + `"}}]`)
		}},
		{"subscribe, FF FE in the channel name", func(id string) []byte {
			return []byte(`[{"channel":"/meta/subscribe","clientId":` + quote(id) + `,"subscription":"/hostile/` + bad + `"}]`)
		}},
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range h.workers {
		wg.Add(2)
		src := source(14, w)
		s := &session{h: h, src: src, pattern: p}
		go func() { defer wg.Done(); s.connectLoop(ctx) }()
		go func() {
			defer wg.Done()
			i := 0
			every(ctx, 200*time.Millisecond, func() bool {
				k := i % (len(variants) + 2)
				i++
				switch {
				case k < len(variants):
					v := variants[k]
					channel := ch
					if strings.HasPrefix(v.what, "subscribe") {
						channel = "/meta/subscribe"
					}
					a, _ := s.send(ctx, channel, v.build, 10*time.Second)
					h.count(ctx, p, v.what, a)
				case k == len(variants):
					st, rs, err := h.post(ctx, src, handshakeMsg(`{"x":"`+bad+`"}`), 10*time.Second)
					h.count(ctx, p, "handshake, FF FE in ext", answer(st, rs, err, "/meta/handshake"))
				default:
					h.count(ctx, p, "websocket publish, FF FE in a data string", badUTF8WS(ctx, h, src, bad))
				}
				return true
			})
		}()
	}
}

// badUTF8WS handshakes over a new WebSocket, publishes data with bad in
// it and returns the server's answer.
func badUTF8WS(ctx context.Context, h *hostile, src, bad string) string {
	c, err := h.dialWS(ctx, src)
	if err != nil {
		return "dial error " + errKind(err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rs, err := wsRoundTrip(ctx, c, []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]`))
	if a := answer(http.StatusOK, rs, err, "/meta/handshake"); a != "ok" {
		return "handshake " + a
	}
	id := find(rs, "/meta/handshake").ClientID
	rs, err = wsRoundTrip(ctx, c, []byte(`[{"channel":"/hostile/utf8","clientId":`+quote(id)+`,"data":"x`+bad+`"}]`))
	a := answer(http.StatusOK, rs, err, "/hostile/utf8")
	c.Close(websocket.StatusNormalClosure, "")
	return a
}

// wsRoundTrip writes one frame and reads the next one back.
func wsRoundTrip(ctx context.Context, c *websocket.Conn, frame []byte) ([]reply, error) {
	if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
		return nil, err
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var rs []reply
	if err := decodeReplies(b, &rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// runLongChan: channel names of 5,000+ bytes and of 256,000 segments.
func runLongChan(ctx context.Context, h *hostile) {
	const p = "longchan"
	long := "/hostile/" + strings.Repeat("x", 5000)
	deep := strings.Repeat("/a", 256000)
	wild := "/hostile/" + strings.Repeat("y", 5000) + "/**"
	variants := []struct {
		what, channel, name string
		publish             bool
	}{
		{fmt.Sprintf("subscribe %d-byte name", len(long)), "/meta/subscribe", long, false},
		{fmt.Sprintf("publish to %d-byte name", len(long)), long, long, true},
		{"subscribe 256,000-segment name", "/meta/subscribe", deep, false},
		{"publish to 256,000-segment name", deep, deep, true},
		{fmt.Sprintf("subscribe %d-byte wildcard", len(wild)), "/meta/subscribe", wild, false},
		{"unsubscribe 256,000-segment name", "/meta/unsubscribe", deep, false},
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range h.workers {
		wg.Add(2)
		s := &session{h: h, src: source(15, w), pattern: p}
		go func() { defer wg.Done(); s.connectLoop(ctx) }()
		go func() {
			defer wg.Done()
			i := 0
			every(ctx, 500*time.Millisecond, func() bool {
				v := variants[i%len(variants)]
				i++
				build := func(id string) []byte {
					switch {
					case v.publish:
						return publishMsg(id, v.name, []byte(`{"x":1}`))
					case v.channel == "/meta/unsubscribe":
						return []byte(`[{"channel":"/meta/unsubscribe","clientId":` + quote(id) + `,"subscription":` + quote(v.name) + `}]`)
					}
					return subscribeMsg(id, v.name)
				}
				a, _ := s.send(ctx, v.channel, build, 10*time.Second)
				h.count(ctx, p, v.what, a)
				return true
			})
		}()
	}
}

// runHSFlood: handshakes that never connect, from one address.
func runHSFlood(ctx context.Context, h *hostile) {
	const p = "hsflood"
	src := source(16, 0)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, 20*time.Millisecond, func() bool {
				st, rs, err := h.post(ctx, src, handshakeMsg(""), 10*time.Second)
				h.count(ctx, p, "handshake, never connecting", answer(st, rs, err, "/meta/handshake"))
				return true
			})
		}()
	}
}

// runManySubs: distinct-channel subscribes from one address, 100 new
// names per request, without end, from 4*W sessions at once, so that
// both --max-subscriptions and --max-subscriptions-per-ip are reached.
func runManySubs(ctx context.Context, h *hostile) {
	const p = "manysubs"
	src := source(17, 0)
	var next atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 4 * h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s := &session{h: h, src: src, pattern: p}
				sctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); s.connectLoop(sctx) }()
				refused := 0
				every(sctx, time.Second, func() bool {
					names := make([]string, 100)
					for j := range names {
						names[j] = "/hostile/many/" + strconv.FormatInt(next.Add(1), 10)
					}
					a, rs := s.send(sctx, "/meta/subscribe", func(id string) []byte { return subscribeMsg(id, names...) }, 10*time.Second)
					if r := find(rs, "/meta/subscribe"); r != nil && r.Error != "" {
						// Which limit: "403:...:Too many subscriptions" and the like.
						if _, why, ok := strings.Cut(r.Error[min(len(r.Error), 4):], ":"); ok {
							a += " " + why
						}
					}
					h.count(ctx, p, "subscribe 100 new channels", a)
					if ctx.Err() == nil {
						h.counts.add(p, "distinct channel names asked for", int64(len(names)))
					}
					if strings.HasPrefix(a, "ok") {
						refused = 0
					} else {
						refused++
					}
					return refused < 5
				})
				cancel()
				<-done
				if ctx.Err() == nil {
					s.disconnect(ctx)
					h.counts.add(p, "sessions ended after 5 refusals in a row", 1)
				}
			}
		}()
	}
}

// runNoAck: ack-extension clients that never acknowledge.
func runNoAck(ctx context.Context, h *hostile) {
	const p, ch = "noack", "/hostile/noack"
	var wg sync.WaitGroup
	defer wg.Wait()
	pub := &session{h: h, src: source(18, 200), pattern: p}
	data := pad(8000)
	wg.Add(2)
	go func() { defer wg.Done(); pub.connectLoop(ctx) }()
	go func() {
		defer wg.Done()
		every(ctx, 100*time.Millisecond, func() bool {
			a, _ := pub.send(ctx, ch, func(id string) []byte { return publishMsg(id, ch, data) }, 10*time.Second)
			h.count(ctx, p, "publish 8 KB", a)
			return true
		})
	}()
	for k := range 2 * h.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				noAckOnce(ctx, h, source(18, k%4))
			}
		}()
	}
}

func noAckOnce(ctx context.Context, h *hostile, src string) {
	const p, ch = "noack", "/hostile/noack"
	s := &session{h: h, src: src, pattern: p, ext: `{"ack":true}`}
	if _, err := s.clientID(ctx); err != nil {
		sleep(ctx, time.Second)
		return
	}
	a, _ := s.send(ctx, "/meta/subscribe", func(id string) []byte { return subscribeMsg(id, ch) }, 10*time.Second)
	h.count(ctx, p, "subscribe", a)
	if a != "ok" {
		sleep(ctx, time.Second)
		return
	}
	ended := false
	every(ctx, time.Second, func() bool {
		a, rs := s.send(ctx, "/meta/connect", func(id string) []byte { return connectMsg(id, "long-polling") }, 40*time.Second)
		h.count(ctx, p, "connect without ext.ack", a)
		n := 0
		for _, r := range rs {
			if r.Channel == ch {
				n++
			}
		}
		if ctx.Err() == nil {
			h.counts.add(p, "messages received, redeliveries included", int64(n))
		}
		// 402: the server ended the session; "no session": a new
		// handshake failed (and would not be subscribed anyway).
		ended = a == "bayeux 402" || a == "no session"
		return !ended
	})
	if !ended {
		s.disconnect(ctx)
	}
}
