package test

// What a message may contain (issue 15 items 4, 6 and 8): UTF-8, the
// size of the whole message, the length and depth of channel names.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// postBytes posts body to srv's Bayeux endpoint and returns the replies,
// failing unless the response is valid UTF-8 (a browser's WebSocket would
// close on anything else; a JSON decoder would silently replace it).
func postBytes(t *testing.T, srv *server.Server, body string) []msg {
	t.Helper()
	resp, err := http.Post(srv.URL()+"/cometd", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(data) {
		t.Fatalf("response to %.80q is not UTF-8: %q", body, data)
	}
	var out []msg
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("response to %.80q is not a JSON array: %s", body, data)
	}
	return out
}

// noReplacement fails if a delivery carries U+FFFD: invalid UTF-8 that
// went through (the test clients' JSON decoder replaces it).
func noReplacement(t *testing.T, msgs []msg) {
	t.Helper()
	for _, m := range msgs {
		if b, _ := json.Marshal(m); bytes.Contains(b, []byte("\ufffd")) || bytes.Contains(b, []byte(`\ufffd`)) {
			t.Fatalf("invalid UTF-8 was passed on: %s", b)
		}
	}
}

// wantError fails unless r failed with exactly the Bayeux error want.
func wantError(t *testing.T, what string, r msg, want string) {
	t.Helper()
	if r["successful"] != false || r["error"] != want {
		t.Errorf("%s: got %.300v, want error %q", what, r, want)
	}
}

// wantCode fails unless err is or wraps a *protocol.Error with code and a
// message starting with text.
func wantCode(t *testing.T, what string, err error, code int, text string) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code || !strings.HasPrefix(pe.Message, text) {
		t.Errorf("%s: got %.300v, want a %d %q", what, err, code, text)
	}
}

const invalidUTF8 = "400::Invalid UTF-8 in message"

// TestInputInvalidUTF8Refused: raw FF FE (and other invalid UTF-8) in
// data, ext, an id, a field name, at any depth, through either decoder,
// from a client or anonymously, is refused with a 400 for that message
// alone; nothing of it reaches the subscriber, which gets the next good
// message.
func TestInputInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{AnonPublish: true}})
	sub := newClient(t, srv).start()
	sub.subscribe("/poison/**")
	pub := newClient(t, srv).start()
	bad := "\xff\xfe"
	for name, m := range map[string]string{
		"data":               `{"channel":"/poison/a","clientId":"$c","data":"` + bad + `","id":"1"}`,
		"nested data":        `{"channel":"/poison/a","clientId":"$c","data":{"a":[1,{"b":"x` + bad + `"}]},"id":"1"}`,
		"key in data":        `{"channel":"/poison/a","clientId":"$c","data":{"` + bad + `":1},"id":"1"}`,
		"ext":                `{"channel":"/poison/a","clientId":"$c","data":1,"ext":{"x":"` + bad + `"},"id":"1"}`,
		"id":                 `{"channel":"/poison/a","clientId":"$c","data":1,"id":"` + bad + `"}`,
		"unknown field":      `{"channel":"/poison/a","clientId":"$c","data":1,"` + bad + `":"x","id":"1"}`,
		"surrogate encoded":  `{"channel":"/poison/a","clientId":"$c","data":"` + "\xed\xa0\x80" + `","id":"1"}`,
		"slow decoder":       `{"channel":"\/poison\/a","clientId":"$c","data":"\n` + bad + `","id":"1"}`,
		"anonymous":          `{"channel":"/poison/a","data":"` + bad + `","id":"1"}`,
		"next to a good one": `{"channel":"/poison/a","clientId":"$c","data":"` + bad + `","id":"1"}`,
	} {
		body := "[" + strings.ReplaceAll(m, "$c", pub.id) + "]"
		if name == "next to a good one" {
			body = `[{"channel":"/poison/a","clientId":"` + pub.id + `","data":"good","id":"0"},` + body[1:]
		}
		replies := postBytes(t, srv, body)
		r := replies[len(replies)-1]
		wantError(t, name, r, invalidUTF8)
		if name != "id" && r["id"] != "1" {
			t.Errorf("%s: the error reply lost the id: %v", name, r)
		}
		if name == "next to a good one" && replies[0]["successful"] != true {
			t.Errorf("%s: the good message failed: %v", name, replies[0])
		}
	}
	if r := pub.publish("/poison/a", "after"); r["successful"] != true {
		t.Fatalf("good publish: %v", r)
	}
	got := sub.deliveries(2, 10*time.Second)
	noReplacement(t, got)
	if len(got) != 2 || got[0]["data"] != "good" || got[1]["data"] != "after" {
		t.Fatalf("subscriber got %v, want the two good messages only", got)
	}
}

// TestInputInvalidUTF8WebSocketSubscriber: a WebSocket subscriber stays
// connected and keeps receiving after clients (over WebSocket and long
// polling) tried to publish FF FE to its channel.
func TestInputInvalidUTF8WebSocketSubscriber(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	ws := wsDial(t, srv, true).start("/poison/ws")
	wsPub := wsDial(t, srv, true).start()
	wsPub.sendRaw(`[{"channel":"/poison/ws","clientId":"` + wsPub.id + `","id":"p1","data":"` + "\xff\xfe" + `"}]`)
	r, _ := wsPub.await(10*time.Second, func(m msg) bool { return m["id"] == "p1" })
	wantError(t, "over WebSocket", r, invalidUTF8)
	lp := newClient(t, srv).start()
	replies := postBytes(t, srv, `[{"channel":"/poison/ws","clientId":"`+lp.id+`","id":"p2","data":{"x":"`+"\xff\xfe"+`"}}]`)
	wantError(t, "over long polling", replies[0], invalidUTF8)
	for n := 1; n <= 3; n++ {
		if r := lp.publish("/poison/ws", msg{"n": n}); r["successful"] != true {
			t.Fatalf("publish %d: %v", n, r)
		}
		m, skipped := ws.await(10*time.Second, func(m msg) bool { return m["channel"] == "/poison/ws" })
		noReplacement(t, append(skipped, m))
		if wsData(m) != n {
			t.Fatalf("WebSocket subscriber got %v, want n=%d", m, n)
		}
	}
}

// TestInputServerValuesValidUTF8: what the server itself sends (Hub.Publish
// and LocalClient.Publish with a json.RawMessage or a value holding one,
// WithExt, Push, PushUser, the Publish and Push actor messages, a service
// reply, the backend API) is refused when it is not UTF-8.
func TestInputServerValuesValidUTF8(t *testing.T) {
	t.Parallel()
	bad := json.RawMessage("\"\xff\xfe\"")
	srv := startServer(t, server.Config{APIKey: testAPIKey, Hub: actors.Options{Services: map[string]actors.ServiceFunc{
		"bad": func(*actors.Client, *protocol.Message) ([]actors.ServiceReply, error) {
			return []actors.ServiceReply{{Data: bad}}, nil
		},
	}}})
	h := srv.Hub()
	sub := newClient(t, srv).start()
	sub.subscribe("/srv/**")
	const text = "Invalid UTF-8 in data"
	wantCode(t, "Hub.Publish", h.Publish("/srv/a", bad), 400, text)
	wantCode(t, "Hub.Publish of a struct", h.Publish("/srv/a", struct{ X json.RawMessage }{bad}), 400, text)
	wantCode(t, "WithExt", h.Publish("/srv/a", 1, actors.WithExt(json.RawMessage(`{"x":`+string(bad)+`}`))), 400, text)
	lc, err := h.NewLocalClient("")
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Disconnect()
	wantCode(t, "LocalClient.Publish", lc.Publish("/srv/a", bad), 400, text)
	wantCode(t, "Hub.Push", h.Push(sub.id, "/srv/a", bad), 400, text)
	_, _, err = h.PushUser(context.Background(), "alice", "/srv/a", bad)
	wantCode(t, "Hub.PushUser", err, 400, text)
	root := h.System().Root
	res, err := root.RequestFuture(h.PID(), &actors.Publish{Channel: "/srv/a", Data: bad}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Publish message", res.(*actors.Result).Err, 400, text)
	pid, _ := h.SessionPID(sub.id)
	res, err = root.RequestFuture(pid, &actors.Push{ClientID: sub.id, Channel: "/srv/a", Data: bad}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Push message to the session", res.(*actors.Result).Err, 400, text)
	if r := sub.publish("/service/bad", 1); errorCode(r) != "500" {
		t.Errorf("service reply: %v", r)
	}
	api := newAPIClient(t, srv, testAPIKey)
	if status, out := api.call("POST", "/publish", `{"channel":"/srv/a","data":"`+"\xff\xfe"+`"}`, nil); status != 400 || errCode(out) != "bad_request" {
		t.Errorf("API publish: %d %v", status, out)
	}
	if status, out := api.call("POST", "/push", `{"client_id":"`+sub.id+`","channel":"/srv/a","data":"`+"\xff\xfe"+`"}`, nil); status != 400 || errCode(out) != "bad_request" {
		t.Errorf("API push: %d %v", status, out)
	}
	if err := h.Publish("/srv/a", "good"); err != nil {
		t.Fatal(err)
	}
	got := sub.deliveries(1, 10*time.Second)
	noReplacement(t, got)
	if len(got) != 1 || got[0]["data"] != "good" {
		t.Fatalf("subscriber got %v, want the good message only", got)
	}
}

// sized returns a publish of exactly size bytes of JSON, padded in field
// (channel, data, id, ext or a field Bayeux does not know).
func sized(clientID, field string, size int) string {
	obj := func(pad string) string {
		channel, data, id, extra := "/size/a", `"d"`, `"i"`, ""
		switch field {
		case "channel":
			channel += pad
		case "data":
			data = `"d` + pad + `"`
		case "id":
			id = `"i` + pad + `"`
		case "ext":
			extra = `,"ext":{"p":"` + pad + `"}`
		default:
			extra = `,"` + field + `":"` + pad + `"`
		}
		return `{"channel":"` + channel + `","clientId":"` + clientID + `","data":` + data + `,"id":` + id + extra + `}`
	}
	return obj(strings.Repeat("x", size-len(obj(""))))
}

// TestInputMessageSizeIsTheWholeMessage: --max-message-size bounds the
// message's JSON as received, whichever field makes it large, and the
// server's own publishes with their id and ext.
func TestInputMessageSizeIsTheWholeMessage(t *testing.T) {
	t.Parallel()
	const limit = 1000
	srv := startServer(t, server.Config{Hub: actors.Options{MaxMessageSize: limit}})
	sub := newClient(t, srv).start()
	sub.subscribe("/size/**")
	pub := newClient(t, srv).start()
	accepted := 0
	for _, field := range []string{"id", "ext", "channel", "data", "x-extra"} {
		for _, size := range []int{limit, limit + 1} {
			body := sized(pub.id, field, size)
			if len(body) != size {
				t.Fatalf("built %d bytes, want %d", len(body), size)
			}
			replies := postBytes(t, srv, "["+body+"]")
			switch r := replies[0]; {
			case size <= limit && r["successful"] == true:
				accepted++
			case size > limit && errorCode(r) == "413" && strings.HasSuffix(r["error"].(string), ":Message too large"):
			default:
				t.Errorf("%s making %d bytes (limit %d): %.200v", field, size, limit, r)
			}
		}
	}
	// The server's own: data, id and ext together.
	h := srv.Hub()
	wantCode(t, "Hub.Publish with a large ext", h.Publish("/size/a", 1, actors.WithExt(msg{"p": strings.Repeat("x", limit)})), 413, "Message too large")
	wantCode(t, "Hub.Publish with a large id", h.Publish("/size/a", 1, actors.WithID(strings.Repeat("x", limit))), 413, "Message too large")
	if err := h.Publish("/size/a", 1, actors.WithID("small"), actors.WithExt(msg{"p": 1})); err != nil {
		t.Fatal(err)
	}
	accepted++
	got := sub.deliveries(accepted, 10*time.Second)
	if len(got) != accepted {
		t.Fatalf("subscriber got %d messages, want the %d accepted", len(got), accepted)
	}
	// Issue 15: on a hub with the defaults, a 200,000-byte id.
	def := startServer(t, server.Config{})
	c := newClient(t, def).start()
	_, replies := c.post(msg{"channel": "/size/a", "clientId": c.id, "data": 1, "id": strings.Repeat("i", 200000)})
	if r := replies[0]; errorCode(r) != "413" {
		t.Fatalf("200,000-byte id on a hub with the defaults: %.200v", r)
	}
}

// TestInputChannelNameLimits: a channel name or pattern of more than
// 1024 bytes or 32 segments (by default) is refused with a 405 for
// publish, subscribe and unsubscribe, anonymous or not, by the server's
// own methods and actor messages and by the backend API alike, before it
// is routed.
func TestInputChannelNameLimits(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{APIKey: testAPIKey, Hub: actors.Options{AnonPublish: true}})
	h := srv.Hub()
	c := newClient(t, srv).start()
	long := "/" + strings.Repeat("x", actors.DefaultMaxChannelLength-1) // 1024 bytes
	deep := strings.Repeat("/d", actors.DefaultMaxChannelDepth)         // 32 segments
	deepPattern := strings.Repeat("/d", actors.DefaultMaxChannelDepth-1) + "/**"
	tooLong, tooDeep, tooDeepPattern := long+"x", deep+"/d", deep+"/**"
	huge := strings.Repeat("/a", 256000) // issue 15: 512 KB, 256,000 segments
	const errLong = "405::Channel name too long: over 1024 bytes"
	errDeep := func(name string) string { return "405:" + name + ":Channel name too deep: over 32 segments" }

	for _, name := range []string{long, deep, deepPattern} {
		if r := c.subscribe(name); r["successful"] != true {
			t.Fatalf("subscribe %d bytes: %.200v", len(name), r)
		}
	}
	wantError(t, "subscribe too long", c.subscribe(tooLong), errLong)
	wantError(t, "subscribe too deep", c.subscribe(tooDeep), errDeep(tooDeep))
	wantError(t, "subscribe to a pattern too deep", c.subscribe("/fine", tooDeepPattern), errDeep(tooDeepPattern))
	wantError(t, "subscribe huge", c.subscribe(huge), errLong)
	_, replies := c.post(msg{"channel": "/meta/unsubscribe", "clientId": c.id, "subscription": tooDeep})
	wantError(t, "unsubscribe too deep", replies[0], errDeep(tooDeep))
	for _, name := range []string{long, deep} {
		if r := c.publish(name, 1); r["successful"] != true {
			t.Fatalf("publish %d bytes: %.200v", len(name), r)
		}
	}
	wantError(t, "publish too long", c.publish(tooLong, 1), errLong)
	wantError(t, "publish too deep", c.publish(tooDeep, 1), errDeep(tooDeep))
	wantError(t, "publish huge", c.publish(huge, 1), errLong)
	_, replies = c.post(msg{"channel": tooDeep, "data": 1})
	wantError(t, "anonymous publish too deep", replies[0], errDeep(tooDeep))

	// The server's own methods and actor messages.
	wantCode(t, "Hub.Publish too deep", h.Publish(tooDeep, 1), 405, "Channel name too deep")
	wantCode(t, "Hub.Publish huge", h.Publish(huge, 1), 405, "Channel name too long")
	wantCode(t, "Hub.CheckPublishChannel", h.CheckPublishChannel(tooLong), 405, "Channel name too long")
	wantCode(t, "Hub.Push", h.Push(c.id, tooDeep, 1), 405, "Channel name too deep")
	_, _, err := h.PushUser(context.Background(), "alice", tooLong, 1)
	wantCode(t, "Hub.PushUser", err, 405, "Channel name too long")
	_, _, err = h.ListSessions(context.Background(), actors.SessionFilter{Channel: tooDeep})
	wantCode(t, "Hub.ListSessions", err, 405, "Channel name too deep")
	lc, err := h.NewLocalClient("")
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Disconnect()
	wantCode(t, "LocalClient.Subscribe", lc.Subscribe(tooDeepPattern, func(*actors.Message) {}), 405, "Channel name too deep")
	wantCode(t, "LocalClient.Unsubscribe", lc.Unsubscribe(tooLong), 405, "Channel name too long")
	wantCode(t, "LocalClient.Publish", lc.Publish(tooDeep, 1), 405, "Channel name too deep")
	if err := lc.Subscribe(deepPattern, func(*actors.Message) {}); err != nil {
		t.Fatalf("LocalClient.Subscribe at the bounds: %v", err)
	}
	root := h.System().Root
	pid, _ := h.SessionPID(c.id)
	for _, m := range []struct {
		what   string
		to     any
		text   string
		target string
	}{
		{"Publish", &actors.Publish{Channel: tooDeep, Data: 1}, "Channel name too deep", "hub"},
		{"Subscribe", &actors.Subscribe{ClientID: "local-limits", Channel: tooLong}, "Channel name too long", "hub"},
		{"Unsubscribe", &actors.Unsubscribe{ClientID: lc.ID(), Channel: tooDeepPattern}, "Channel name too deep", "hub"},
		{"Push", &actors.Push{ClientID: c.id, Channel: tooDeep, Data: 1}, "Channel name too deep", "hub"},
		{"Push to the session", &actors.Push{ClientID: c.id, Channel: tooLong, Data: 1}, "Channel name too long", "session"},
	} {
		target := h.PID()
		if m.target == "session" {
			target = pid
		}
		res, err := root.RequestFuture(target, m.to, 5*time.Second).Result()
		if err != nil {
			t.Fatalf("%s message: %v", m.what, err)
		}
		wantCode(t, m.what+" message", res.(*actors.Result).Err, 405, m.text)
	}

	// The backend API.
	api := newAPIClient(t, srv, testAPIKey)
	for _, call := range []struct{ method, path, body string }{
		{"POST", "/publish", `{"channel":"` + tooDeep + `","data":1}`},
		{"POST", "/publish", `{"channels":["/fine","` + tooLong + `"],"data":1}`},
		{"POST", "/push", `{"client_id":"` + c.id + `","channel":"` + tooDeep + `","data":1}`},
		{"POST", "/push", `{"user":"alice","channel":"` + tooLong + `","data":1}`},
		{"GET", "/sessions?channel=" + tooDeep, ""},
	} {
		var body any
		if call.body != "" {
			body = call.body
		}
		if status, out := api.call(call.method, call.path, body, nil); status != 400 || errCode(out) != "invalid_channel" {
			t.Errorf("API %s %.60s: %d %.200v", call.method, call.path, status, out)
		}
	}
	if p := h.Stats().Published; p != 2 {
		t.Errorf("%d messages routed, want the 2 within the bounds", p)
	}
	got := c.deliveries(2, 10*time.Second)
	if len(got) != 2 || got[0]["channel"] != long || got[1]["channel"] != deep {
		t.Fatalf("subscriber got %d messages, want the 2 within the bounds", len(got))
	}
}

// TestInputChannelNameLimitsConfigured: the bounds follow
// Options.MaxChannelLength and MaxChannelDepth; negative is no bound.
func TestInputChannelNameLimitsConfigured(t *testing.T) {
	t.Parallel()
	small := startServer(t, server.Config{Hub: actors.Options{MaxChannelLength: 16, MaxChannelDepth: 3}})
	c := newClient(t, small).start()
	for name, want := range map[string]string{
		"/a/b/c":            "",
		"/a/b/*":            "",
		"/a/b/c/d":          "405:/a/b/c/d:Channel name too deep: over 3 segments",
		"/a/b/c/**":         "405:/a/b/c/**:Channel name too deep: over 3 segments",
		"/abcdefghijklmno":  "",
		"/abcdefghijklmnop": "405::Channel name too long: over 16 bytes",
	} {
		r := c.subscribe(name)
		if want == "" && r["successful"] != true {
			t.Errorf("subscribe %s: %v", name, r)
		} else if want != "" {
			wantError(t, "subscribe "+name, r, want)
		}
	}
	none := startServer(t, server.Config{Hub: actors.Options{MaxChannelLength: -1, MaxChannelDepth: -1}})
	c = newClient(t, none).start()
	deep := strings.Repeat("/"+strings.Repeat("d", 40), 40)
	if r := c.subscribe(deep); r["successful"] != true {
		t.Fatalf("subscribe with no bounds: %.200v", r)
	}
	if r := c.publish(deep, 1); r["successful"] != true {
		t.Fatalf("publish with no bounds: %.200v", r)
	}
	if got := c.deliveries(1, 10*time.Second); len(got) != 1 {
		t.Fatalf("got %v", got)
	}
}
