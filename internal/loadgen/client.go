package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrRehandshake is returned when the server advised reconnect=handshake
// (or answered with an unknown-client error); the client must handshake
// again.
var ErrRehandshake = errors.New("loadgen: server asked for a new handshake")

// ErrReconnectNone is returned when the server advised reconnect=none.
var ErrReconnectNone = errors.New("loadgen: server advised reconnect none")

// NewHTTPClient returns the http.Client shared by all simulated Bayeux
// clients: keep-alive, no overall timeout (each request carries its own
// context deadline), and an idle pool large enough for conns connections.
func NewHTTPClient(conns int) *http.Client { return newHTTPClient(conns, nil) }

// newHTTPClient is NewHTTPClient dialling from the local addresses
// given, round robin, one TCP connection after the other (none: the
// system's choice).
func newHTTPClient(conns int, local []net.IP) *http.Client {
	if conns < 100 {
		conns = 100
	}
	dial := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if len(local) > 0 {
		dialers := make([]*net.Dialer, len(local))
		for i, ip := range local {
			dialers[i] = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
		}
		var next atomic.Uint64
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialers[(next.Add(1)-1)%uint64(len(dialers))].DialContext(ctx, network, addr)
		}
	}
	tr := &http.Transport{
		DialContext:           dial,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0,
		ExpectContinueTimeout: 0,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	return &http.Client{Transport: tr}
}

// Client is one simulated Bayeux long-polling client. It is not safe for
// concurrent use: a subscriber runs its connect loop in one goroutine and
// publishes, if at all, from another Client sharing the same session id.
type Client struct {
	HC  *http.Client
	URL string
	// ID is the clientId from the last successful handshake.
	ID string
	// Timeout is the server's long-poll hold time from the last advice;
	// requests time out after Timeout plus a margin.
	Timeout time.Duration
	// Interval is the delay the server advised between connects.
	Interval time.Duration
	// OnDeliver, when set, is called for every event delivered to this
	// client, in whatever response it arrives.
	OnDeliver func(m *Msg)
	// RecvAt is when the last response was read completely.
	RecvAt time.Time

	body []byte
	resp bytes.Buffer
	msgs []Msg
	nid  uint64
}

// ClientID returns the clientId of the session the client speaks for.
func (c *Client) ClientID() string { return c.ID }

// SetClientID makes the client speak for session id.
func (c *Client) SetClientID(id string) { c.ID = id }

// ConnectInterval returns the delay the server advised between connects.
func (c *Client) ConnectInterval() time.Duration { return c.Interval }

// Close does nothing: a long-polling client holds no connection of its
// own (they are pooled in HC).
func (c *Client) Close() {}

func (c *Client) nextID() []byte {
	c.nid++
	return strconv.AppendUint(nil, c.nid, 10)
}

// do POSTs body and parses the reply into c.msgs, calling OnDeliver for
// deliveries.
func (c *Client) do(ctx context.Context, body []byte, hold bool) ([]Msg, error) {
	to := 30 * time.Second
	if hold {
		to = c.Timeout + 20*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	res, err := c.HC.Do(req)
	if err != nil {
		return nil, err
	}
	c.resp.Reset()
	_, err = c.resp.ReadFrom(res.Body)
	res.Body.Close()
	c.RecvAt = time.Now()
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadgen: HTTP %d: %.200s", res.StatusCode, c.resp.Bytes())
	}
	c.msgs, err = ParseMessages(c.resp.Bytes(), c.msgs[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: %.200s", err, c.resp.Bytes())
	}
	if c.OnDeliver != nil {
		for i := range c.msgs {
			if c.msgs[i].IsDelivery() {
				c.OnDeliver(&c.msgs[i])
			}
		}
	}
	for i := range c.msgs {
		m := &c.msgs[i]
		if m.Timeout >= 0 {
			c.Timeout = time.Duration(m.Timeout) * time.Millisecond
		}
		if m.Interval >= 0 {
			c.Interval = time.Duration(m.Interval) * time.Millisecond
		}
	}
	return c.msgs, nil
}

// find returns the first message on channel ch that is not a delivery.
func find(msgs []Msg, ch string) *Msg {
	for i := range msgs {
		if string(msgs[i].Channel) == ch && !msgs[i].IsDelivery() {
			return &msgs[i]
		}
	}
	return nil
}

func replyErr(m *Msg, what string) error {
	if m == nil {
		return fmt.Errorf("loadgen: no %s reply", what)
	}
	if m.Successful {
		return nil
	}
	if m.Reconnect == "handshake" || strings.HasPrefix(m.Error, "401") || strings.HasPrefix(m.Error, "402") {
		return fmt.Errorf("%w (%s: %q)", ErrRehandshake, what, m.Error)
	}
	if m.Reconnect == "none" {
		return fmt.Errorf("%w (%s: %q)", ErrReconnectNone, what, m.Error)
	}
	return fmt.Errorf("loadgen: %s failed: %q", what, m.Error)
}

// Handshake performs /meta/handshake and stores the client id.
func (c *Client) Handshake(ctx context.Context) error {
	c.body = append(c.body[:0], `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"`...)
	c.body = append(c.body, c.nextID()...)
	c.body = append(c.body, `"}]`...)
	msgs, err := c.do(ctx, c.body, false)
	if err != nil {
		return err
	}
	m := find(msgs, "/meta/handshake")
	if err := replyErr(m, "handshake"); err != nil {
		return err
	}
	if m.ClientID == "" {
		return errors.New("loadgen: handshake reply without clientId")
	}
	c.ID = m.ClientID
	return nil
}

func (c *Client) appendHead(channel string) {
	c.body = append(c.body, `{"channel":"`...)
	c.body = append(c.body, channel...)
	c.body = append(c.body, `","clientId":"`...)
	c.body = append(c.body, c.ID...)
	c.body = append(c.body, `","id":"`...)
	c.body = append(c.body, c.nextID()...)
	c.body = append(c.body, '"')
}

// Connect sends one /meta/connect and waits for its reply, which the
// server may hold until events arrive. Deliveries go to OnDeliver; the
// number of deliveries in the reply is returned.
func (c *Client) Connect(ctx context.Context) (int, error) {
	c.body = append(c.body[:0], '[')
	c.appendHead("/meta/connect")
	c.body = append(c.body, `,"connectionType":"long-polling"}]`...)
	msgs, err := c.do(ctx, c.body, true)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range msgs {
		if msgs[i].IsDelivery() {
			n++
		}
	}
	return n, replyErr(find(msgs, "/meta/connect"), "connect")
}

// Subscribe subscribes to the given channels in one request, one
// /meta/subscribe message per channel.
func (c *Client) Subscribe(ctx context.Context, channels []string) error {
	return c.SubscribeReplay(ctx, channels, nil)
}

// SubscribeReplay subscribes as Subscribe does, asking for replay with
// the replay extension: from[k] is the replay id channels[k] resumes
// after (ReplayAll for everything retained, ReplayNew or a nil from for
// no replay). A replay the server refuses (a 400 to a subscribe that
// asked for one: the id is not in the channel's retained history) yields
// an error wrapping ErrReplayRefused; the other channels are subscribed.
func (c *Client) SubscribeReplay(ctx context.Context, channels []string, from []int64) error {
	c.body = append(c.body[:0], '[')
	for i, ch := range channels {
		if i > 0 {
			c.body = append(c.body, ',')
		}
		c.appendHead("/meta/subscribe")
		c.body = append(c.body, `,"subscription":"`...)
		c.body = append(c.body, ch...)
		c.body = append(c.body, '"')
		c.body = appendReplayExt(c.body, ch, replayFrom(from, i))
		c.body = append(c.body, '}')
	}
	c.body = append(c.body, ']')
	msgs, err := c.do(ctx, c.body, false)
	if err != nil {
		return err
	}
	n := 0
	for i := range msgs {
		m := &msgs[i]
		if string(m.Channel) != "/meta/subscribe" {
			continue
		}
		n++
		if err == nil {
			err = subscribeErr(m, from != nil)
		}
	}
	if err != nil {
		return err
	}
	if n != len(channels) {
		return fmt.Errorf("loadgen: %d subscribe replies for %d subscriptions", n, len(channels))
	}
	return nil
}

// The replay ids a subscribe may ask for besides a message's own (the
// replay extension's).
const (
	// ReplayNew asks for new messages only (no replay).
	ReplayNew int64 = -1
	// ReplayAll asks for everything the channel's history retains.
	ReplayAll int64 = -2
)

// ErrReplayRefused is returned when the server refused a subscribe that
// asked for replay with a 400: the replay id is not in what the channel's
// history retains (or the replay is too large to send at once).
var ErrReplayRefused = errors.New("loadgen: server refused the replay")

func replayFrom(from []int64, i int) int64 {
	if i < len(from) {
		return from[i]
	}
	return ReplayNew
}

// appendReplayExt appends ,"ext":{"replay":{"<channel>":<id>}} unless id
// is ReplayNew.
func appendReplayExt(b []byte, channel string, id int64) []byte {
	if id == ReplayNew {
		return b
	}
	b = append(b, `,"ext":{"replay":{"`...)
	b = append(b, channel...)
	b = append(b, `":`...)
	b = strconv.AppendInt(b, id, 10)
	return append(b, `}}`...)
}

// subscribeErr is replyErr for a subscribe reply; a 400 to one that asked
// for replay wraps ErrReplayRefused.
func subscribeErr(m *Msg, replay bool) error {
	if !m.Successful && replay && strings.HasPrefix(m.Error, "400:") {
		return fmt.Errorf("%w: %q", ErrReplayRefused, m.Error)
	}
	return replyErr(m, "subscribe")
}

// Disconnect sends /meta/disconnect.
func (c *Client) Disconnect(ctx context.Context) error {
	c.body = append(c.body[:0], '[')
	c.appendHead("/meta/disconnect")
	c.body = append(c.body, `}]`...)
	msgs, err := c.do(ctx, c.body, false)
	if err != nil {
		return err
	}
	return replyErr(find(msgs, "/meta/disconnect"), "disconnect")
}

// Payload is one benchmark message to publish.
type Payload struct {
	Channel string
	// TS is the message's time in Unix ns: in an open-loop run the time
	// it was scheduled to be sent, in a closed-loop run the time it was.
	TS  int64
	Pub int
	Seq uint64
	// Window is how many of the publisher's messages just before this
	// one may still have been in flight, unacknowledged, when it was
	// sent: 0 when the publisher sends in order on one connection (the
	// server must then deliver its messages in order), positive for an
	// open-loop long-polling publisher whose concurrent requests the
	// server may take in any order. The data carries it as "w" when
	// positive; SubTracker.ObserveWindow uses it.
	Window uint64

	ch int // channel index
}

// Publish sends the payloads in one request, each with data
// {"ts":..,"pub":..,"seq":..,"pad":".."} padded to size bytes, and returns
// how many were acknowledged as successful. A server that does not
// acknowledge publishes at all is treated as acknowledging all of them.
func (c *Client) Publish(ctx context.Context, ps []Payload, size int) (acked []bool, err error) {
	c.body = append(c.body[:0], '[')
	ids := make([]uint64, len(ps))
	for i, p := range ps {
		if i > 0 {
			c.body = append(c.body, ',')
		}
		c.body = append(c.body, `{"channel":"`...)
		c.body = append(c.body, p.Channel...)
		c.body = append(c.body, `","clientId":"`...)
		c.body = append(c.body, c.ID...)
		c.body = append(c.body, `","data":`...)
		c.body = AppendPayload(c.body, &p, size)
		c.nid++
		ids[i] = c.nid
		c.body = append(c.body, `,"id":"`...)
		c.body = strconv.AppendUint(c.body, c.nid, 10)
		c.body = append(c.body, `"}`...)
	}
	c.body = append(c.body, ']')
	msgs, err := c.do(ctx, c.body, false)
	acked = make([]bool, len(ps))
	if err != nil {
		return acked, err
	}
	replies := 0
	var firstErr error
	for i := range msgs {
		m := &msgs[i]
		if m.IsMeta() || !m.HasSuccessful {
			continue
		}
		replies++
		id, perr := strconv.ParseUint(string(m.ID), 10, 64)
		if perr != nil {
			continue
		}
		for k, want := range ids {
			if want == id {
				if m.Successful {
					acked[k] = true
				} else if firstErr == nil {
					firstErr = replyErr(m, "publish")
				}
			}
		}
	}
	if replies == 0 {
		for k := range acked {
			acked[k] = true
		}
	}
	return acked, firstErr
}

// AppendData appends the benchmark data object for one message,
// {"ts":..,"pub":..,"seq":..,"pad":"xx.."}, padded with the "pad" string
// so that the whole object, its own fields included, is size bytes long.
// The padding needs 10 bytes (`,"pad":""`), so when size is less than
// the fields' own length plus 10 the object is the fields alone: about 45
// to 50 bytes with a 19-digit ts, which is what --size 50 gives.
func AppendData(b []byte, ts int64, pub int, seq uint64, size int) []byte {
	return AppendPayload(b, &Payload{TS: ts, Pub: pub, Seq: seq}, size)
}

// AppendPayload is AppendData for p, with p.Window as "w" when positive.
func AppendPayload(b []byte, p *Payload, size int) []byte {
	start := len(b)
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, p.TS, 10)
	b = append(b, `,"pub":`...)
	b = strconv.AppendInt(b, int64(p.Pub), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, p.Seq, 10)
	if p.Window > 0 {
		b = append(b, `,"w":`...)
		b = strconv.AppendUint(b, p.Window, 10)
	}
	pad := size - (len(b) - start) - len(`,"pad":""}`)
	if pad > 0 {
		b = append(b, `,"pad":"`...)
		for range pad {
			b = append(b, 'x')
		}
		b = append(b, '"')
	}
	return append(b, '}')
}
