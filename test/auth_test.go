package test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/auth"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// The tests of this file run a hub as an operator would deploy one: tokens
// required, channel rules, the backend API. Tokens are signed here with
// golang-jwt directly, not with package auth.

const (
	testJWTSecret = "test-jwt-secret-0123456789-abcdefghij"
	testAPIKey    = "test-api-key-0123456789"
)

// testRules are the rules of the deployment these tests run.
func testRules(t testing.TB) *acl.Rules {
	t.Helper()
	rules, err := acl.New([]acl.Rule{
		acl.Default()[0], // /bayeuxhub/**: server-only publishing
		{Name: "personal", Pattern: "/user/{sub}/**", Subscribe: acl.Owner, Publish: acl.Nobody},
		{Name: "rooms", Pattern: "/chat/**", Subscribe: acl.Authenticated, Publish: acl.Authenticated, PublishRate: 2, PublishBurst: 3},
		{Name: "staff", Pattern: "/staff/**", Subscribe: acl.Granted, Publish: acl.Granted},
		{Name: "public", Pattern: "/public/**", Subscribe: acl.Anyone, Publish: acl.Anyone},
		{Name: "services", Pattern: "/service/**", Subscribe: acl.Nobody, Publish: acl.Authenticated},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// secureConfig is a hub that requires an HS256 token, with testRules and
// the backend API; mod adjusts it.
func secureConfig(t testing.TB, mod func(*server.Config, *auth.JWTOptions)) server.Config {
	t.Helper()
	jopts := auth.JWTOptions{HMACSecret: []byte(testJWTSecret), Leeway: -1}
	cfg := server.Config{
		Hub:    actors.Options{RequireUser: true, Rules: testRules(t)},
		APIKey: testAPIKey, Metrics: true,
	}
	if mod != nil {
		mod(&cfg, &jopts)
	}
	if cfg.Hub.Authenticator == nil {
		j, err := auth.NewJWT(jopts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(j.Close)
		cfg.Hub.Authenticator = j
	}
	return cfg
}

// hsToken signs claims with the test secret.
func hsToken(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// userToken is a valid token for user, for an hour.
func userToken(t testing.TB, user string, extra jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return hsToken(t, c)
}

// authExt is the handshake ext that carries a token.
func authExt(token string) msg { return msg{"auth": msg{"token": token}} }

// handshakeWith sends a handshake with ext (and header) and returns its
// reply, remembering the client id when it succeeded.
func (c *client) handshakeWith(ext msg, header http.Header) msg {
	c.t.Helper()
	m := msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}, "id": c.nextID()}
	if ext != nil {
		m["ext"] = ext
	}
	body, _ := json.Marshal([]msg{m})
	req, err := http.NewRequest(http.MethodPost, c.url, strings.NewReader(string(body)))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	_, replies := decodeResponse(c.t, resp)
	r := only(c.t, replies, "/meta/handshake")
	if r["successful"] == true {
		c.id = r["clientId"].(string)
	}
	return r
}

// startAs handshakes with a token and makes the first connect.
func (c *client) startAs(token string) *client {
	c.t.Helper()
	if r := c.handshakeWith(authExt(token), nil); r["successful"] != true {
		c.t.Fatalf("handshake with a token: %v", r)
	}
	if r := find(c.connect(), "/meta/connect"); r == nil || r["successful"] != true {
		c.t.Fatalf("first connect: %v", r)
	}
	return c
}

func adviceOf(m msg) string {
	a, _ := m["advice"].(map[string]any)
	s, _ := a["reconnect"].(string)
	return s
}

// TestTokenRulesEndToEnd: a user with a token subscribes to its own
// channels and the rooms, not to another user's; cannot publish on
// server-only channels (the statistics channel included); every refusal is
// a 403 with the channel and a reason, and is counted.
func TestTokenRulesEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, nil))
	alice := newClient(t, srv).startAs(userToken(t, "alice", nil))

	for _, c := range []struct {
		sub, want string
	}{
		{"/user/alice/inbox", ""},
		{"/user/alice/**", ""},
		{"/chat/lobby", ""},
		{"/user/bob/inbox", "403:/user/bob/inbox:Not your channel"},
		{"/user/**", "403:/user/**:Not your channel"},
		{"/staff/news", "403:/staff/news:Channel not granted"},
		{"/elsewhere", "403:/elsewhere:No channel rule allows this channel"},
	} {
		r := alice.subscribe(c.sub)
		if c.want == "" && r["successful"] != true || c.want != "" && (r["successful"] != false || r["error"] != c.want) {
			t.Errorf("subscribe %s: %v, want error %q", c.sub, r, c.want)
		}
	}
	for _, c := range []struct {
		channel, want string
	}{
		{"/chat/lobby", ""},
		{"/bayeuxhub/stats", "403:/bayeuxhub/stats:Publishing on this channel is server-only"},
		{"/user/alice/inbox", "403:/user/alice/inbox:Publishing on this channel is server-only"},
	} {
		r := alice.publish(c.channel, msg{"clients": 999999})
		if c.want == "" && r["successful"] != true || c.want != "" && (r["successful"] != false || r["error"] != c.want) {
			t.Errorf("publish %s: %v, want error %q", c.channel, r, c.want)
		}
	}
	// Another user gets alice's room message; alice's own personal channel
	// is fed by the server (here the backend API's push).
	bob := newClient(t, srv).startAs(userToken(t, "bob", nil))
	bob.subscribe("/chat/lobby")
	alice.publish("/chat/lobby", "hi bob")
	if got := bob.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "hi bob" {
		t.Fatalf("bob got %v", got)
	}
	st := srv.Hub().Stats()
	counted := map[string]uint64{}
	for _, r := range st.Refusals {
		counted[r.Action+"/"+r.Rule+"/"+r.Reason] = r.Count
	}
	for key, n := range map[string]uint64{"subscribe/personal/rule": 2, "subscribe/staff/rule": 1, "subscribe/none/rule": 1, "publish/hub/rule": 1, "publish/personal/rule": 1} {
		if counted[key] != n {
			t.Errorf("refusals %s = %d, want %d (all: %v)", key, counted[key], n, counted)
		}
	}
	metrics := get(t, srv.URL()+"/metrics")
	for _, line := range []string{
		`bayeuxhub_refusals_total{action="publish",reason="rule",rule="hub"} 1`,
		`bayeuxhub_refusals_total{action="subscribe",reason="rule",rule="personal"} 2`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// get returns a GET's body, failing on a status other than 200.
func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}

// TestHandshakeRefusals: every bad token fails the handshake with a clear
// error and reconnect "none", and no session is created.
func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	srv := startServer(t, secureConfig(t, func(_ *server.Config, o *auth.JWTOptions) {
		o.PublicKeys = []crypto.PublicKey{&rsaKey.PublicKey}
	}))
	now := time.Now()
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name string
		ext  msg
		want string
	}{
		{"no token", nil, "403::Authentication required"},
		{"empty token", authExt(""), "403::Authentication required"},
		{"token not a string", msg{"auth": msg{"token": 42}}, "403::Authentication failed: ext.auth.token must be a string"},
		{"expired", authExt(hsToken(t, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()})), "403::Authentication failed: invalid token: token has expired"},
		{"not yet valid", authExt(hsToken(t, jwt.MapClaims{"sub": "alice", "nbf": now.Add(time.Hour).Unix()})), "403::Authentication failed: invalid token: token is not valid yet"},
		{"wrong secret", authExt(sign(jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefgh"), valid)), "403::Authentication failed: invalid token: signature is invalid"},
		{"wrong RSA key", authExt(sign(jwt.SigningMethodRS256, otherKey, valid)), "403::Authentication failed: invalid token: signature is invalid"},
		{"alg none", authExt(sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid)), "403::Authentication failed: invalid token: signing method none is not allowed"},
		{"HS256 with the public key as secret", authExt(sign(jwt.SigningMethodHS256, pubPEM, valid)), "403::Authentication failed: invalid token: signature is invalid"},
		{"HS512 not pinned", authExt(sign(jwt.SigningMethodHS512, []byte(testJWTSecret), valid)), "403::Authentication failed: invalid token: signing method HS512 is not allowed"},
		{"malformed", authExt("abc.def"), "403::Authentication failed: invalid token: token is malformed"},
		{"no subject", authExt(hsToken(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})), "403::Authentication failed: invalid token: token has no subject"},
		{"channels of the wrong type", authExt(hsToken(t, jwt.MapClaims{"sub": "a", "channels": "/staff/**"})), `403::Authentication failed: invalid token: claim "channels" must be an array of channel names`},
		{"granted pattern invalid", authExt(hsToken(t, jwt.MapClaims{"sub": "a", "channels": []string{"/a/*/b"}})), "403::Authentication failed: granted channels:"},
	}
	before := srv.Hub().Stats().Clients
	for _, c := range cases {
		r := newClient(t, srv).handshakeWith(c.ext, nil)
		e, _ := r["error"].(string)
		if r["successful"] != false || !strings.HasPrefix(e, c.want) || adviceOf(r) != "none" || r["clientId"] != nil {
			t.Errorf("%s: %v, want error %q and reconnect none", c.name, r, c.want)
		}
	}
	if n := srv.Hub().Stats().Clients; n != before {
		t.Fatalf("refused handshakes left %d sessions", n-before)
	}
	// The same key works for a well-signed RS256 token.
	ok := newClient(t, srv).handshakeWith(authExt(sign(jwt.SigningMethodRS256, rsaKey, valid)), nil)
	if ok["successful"] != true {
		t.Fatalf("RS256 token: %v", ok)
	}
}

// TestBearerHeader: on long-polling and on WebSocket the token may come in
// an Authorization: Bearer header instead of the ext.
func TestBearerHeader(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, nil))
	h := http.Header{"Authorization": {"Bearer " + userToken(t, "carol", nil)}}
	c := newClient(t, srv)
	if r := c.handshakeWith(nil, h); r["successful"] != true {
		t.Fatalf("long-polling handshake with a bearer header: %v", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, wsURL(srv), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	frame, _ := json.Marshal([]msg{{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"websocket"}}})
	if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
	_, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var replies []msg
	if err := json.Unmarshal(data, &replies); err != nil || len(replies) != 1 || replies[0]["successful"] != true {
		t.Fatalf("websocket handshake with a bearer header: %s", data)
	}
	sessions, _, err := srv.Hub().ListSessions(ctx, actors.SessionFilter{UserID: "carol"})
	if err != nil || len(sessions) != 2 {
		t.Fatalf("carol's sessions: %v %v", sessions, err)
	}
}

// TestTokenExpiryEndsSession: at the token's exp the held connect is
// answered with 402 "Token expired" and advice to handshake again.
func TestTokenExpiryEndsSession(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, nil))
	// exp is a whole second: at least one second is left for the handshake,
	// even on a loaded machine.
	c := newClient(t, srv).startAs(hsToken(t, jwt.MapClaims{"sub": "dave", "exp": time.Now().Add(2 * time.Second).Unix()}))
	start := time.Now()
	var r msg
	for r == nil || r["successful"] == true {
		if time.Since(start) > 30*time.Second {
			t.Fatal("session did not end at its token's expiry")
		}
		r = find(c.connect(), "/meta/connect")
	}
	if r["error"] != "402:"+c.id+":Token expired" || adviceOf(r) != "handshake" {
		t.Fatalf("connect at expiry: %v", r)
	}
	if srv.Hub().Stats().Expired != 1 {
		t.Fatalf("expired sessions: %d", srv.Hub().Stats().Expired)
	}
	// A fresh token lets it back in.
	c.startAs(userToken(t, "dave", nil))
}

// TestAnonymousAndGranted: with anonymous clients allowed they reach the
// public channels only; a token's channels claim grants the staff rooms.
func TestAnonymousAndGranted(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, func(c *server.Config, _ *auth.JWTOptions) { c.Hub.RequireUser = false }))
	anon := newClient(t, srv)
	if r := anon.handshakeWith(nil, nil); r["successful"] != true {
		t.Fatalf("anonymous handshake: %v", r)
	}
	anon.connect()
	if r := anon.subscribe("/public/news"); r["successful"] != true {
		t.Fatalf("anonymous subscribe to a public channel: %v", r)
	}
	if r := anon.subscribe("/chat/lobby"); r["error"] != "403:/chat/lobby:Authentication required" {
		t.Fatalf("anonymous subscribe to a room: %v", r)
	}
	if r := anon.publish("/service/echo", "x"); r["error"] != "403:/service/echo:Authentication required" {
		t.Fatalf("anonymous call of a service: %v", r)
	}
	staff := newClient(t, srv).startAs(userToken(t, "erin", jwt.MapClaims{"channels": []string{"/staff/**"}}))
	if r := staff.subscribe("/staff/news"); r["successful"] != true {
		t.Fatalf("granted subscribe: %v", r)
	}
	if r := staff.publish("/staff/news", "meeting"); r["successful"] != true {
		t.Fatalf("granted publish: %v", r)
	}
}

// TestPublishRateLimit: past the rule's bucket a client's publishes are
// refused with "Rate limit exceeded" and counted; another client is not
// affected.
func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, nil))
	fast := newClient(t, srv).startAs(userToken(t, "frank", nil))
	// One request of 6 publishes: the bucket (burst 3, 2/s) takes 3.
	batch := make([]msg, 6)
	for i := range batch {
		batch[i] = msg{"channel": "/chat/lobby", "clientId": fast.id, "data": i, "id": fast.nextID()}
	}
	_, replies := fast.post(batch...)
	okN, limited := 0, 0
	for _, r := range replies {
		switch {
		case r["successful"] == true:
			okN++
		case r["error"] == "403:/chat/lobby:Rate limit exceeded":
			limited++
		default:
			t.Fatalf("unexpected reply %v", r)
		}
	}
	if okN != 3 || limited != 3 {
		t.Fatalf("%d allowed, %d limited; want 3 and 3", okN, limited)
	}
	other := newClient(t, srv).startAs(userToken(t, "grace", nil))
	if r := other.publish("/chat/lobby", "me too"); r["successful"] != true {
		t.Fatalf("another client: %v", r)
	}
	if !strings.Contains(get(t, srv.URL()+"/metrics"), `bayeuxhub_refusals_total{action="publish",reason="rate-limit",rule="rooms"} 3`) {
		t.Fatal("rate-limit refusals not in /metrics")
	}
	// The bucket refills: half a second gives one more publish.
	checkFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if r := fast.publish("/chat/lobby", "later"); r["successful"] != true {
			return errorString(r["error"].(string))
		}
		return nil
	})
}

// TestJWKSRotation: a hub verifying with a JWK Set served over HTTP accepts
// a token signed by a key added mid-run, without a restart.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var mu sync.Mutex
	serving := map[string]*ecdsa.PrivateKey{"k1": k1}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		set := jwkset.JWKSMarshal{}
		for kid, k := range serving {
			j, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig}})
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			set.Keys = append(set.Keys, j.Marshal())
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwks.Close)
	srv := startServer(t, secureConfig(t, func(_ *server.Config, o *auth.JWTOptions) {
		*o = auth.JWTOptions{JWKSURL: jwks.URL, JWKSUnknownKIDInterval: time.Millisecond}
	}))
	token := func(kid string, key *ecdsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "heidi", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if r := newClient(t, srv).handshakeWith(authExt(token("k1", k1)), nil); r["successful"] != true {
			return errorString(r["error"].(string))
		}
		return nil
	})
	mu.Lock()
	serving = map[string]*ecdsa.PrivateKey{"k2": k2}
	mu.Unlock()
	if r := newClient(t, srv).handshakeWith(authExt(token("k2", k2)), nil); r["successful"] != true {
		t.Fatalf("token of the rotated-in key: %v", r)
	}
	if r := newClient(t, srv).handshakeWith(authExt(token("k1", k1)), nil); r["successful"] != false {
		t.Fatalf("token of the rotated-out key: %v", r)
	}
}

// handshakeAs handshakes over the socket with a token, makes the first
// connect and leaves a second one held, as a WebSocket client does.
func (c *wsClient) handshakeAs(token string) {
	c.t.Helper()
	r := c.reply(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"websocket"}, "ext": authExt(token)})
	if r["successful"] != true {
		c.t.Fatalf("websocket handshake with a token: %v", r)
	}
	c.id = r["clientId"].(string)
	if r := c.reply(msg{"channel": "/meta/connect", "connectionType": "websocket"}); r["successful"] != true {
		c.t.Fatalf("first connect: %v", r)
	}
	c.send(msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "websocket", "id": c.nextID()})
}

// subscribeTo subscribes over the socket.
func (c *wsClient) subscribeTo(channel string) {
	c.t.Helper()
	if r := c.reply(msg{"channel": "/meta/subscribe", "subscription": channel}); r["successful"] != true {
		c.t.Fatalf("subscribe %s: %v", channel, r)
	}
}

// waitDeliveries reads frames until n deliveries (messages that are not
// replies) have arrived, or fails after within.
func (c *wsClient) waitDeliveries(n int, within time.Duration) []msg {
	c.t.Helper()
	var got []msg
	deadline := time.Now().Add(within)
	for len(got) < n {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("%d of %d deliveries within %v: %v", len(got), n, within, got)
		}
		for _, m := range c.next(left) {
			if _, reply := m["successful"]; !reply {
				got = append(got, m)
			}
		}
	}
	return got
}

// TestDefaultStatsChannelServerOnly: on a hub with no configuration at
// all, a client cannot falsify the statistics channel, neither after a
// handshake nor by anonymous publish, while the server's own statistics
// still reach subscribers and the chat channel stays open.
func TestDefaultStatsChannelServerOnly(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{StatsChannel: "/bayeuxhub/stats", StatsInterval: 50 * time.Millisecond, Hub: actors.Options{AnonPublish: true}})
	c := newClient(t, srv).start()
	if r := c.subscribe("/bayeuxhub/stats"); r["successful"] != true {
		t.Fatalf("subscribe to the statistics: %v", r)
	}
	want := "403:/bayeuxhub/stats:Publishing on this channel is server-only"
	if r := c.publish("/bayeuxhub/stats", msg{"clients": 999999}); r["error"] != want {
		t.Fatalf("publish after a handshake: %v", r)
	}
	_, replies := c.post(msg{"channel": "/bayeuxhub/stats", "data": msg{"clients": 999999}})
	if r := only(t, replies, "/bayeuxhub/stats"); r["error"] != want {
		t.Fatalf("anonymous publish: %v", r)
	}
	if r := c.publish("/chat/demo", msg{"user": "a", "chat": "b"}); r["successful"] != true {
		t.Fatalf("chat publish: %v", r)
	}
	for _, m := range c.deliveries(3, 10*time.Second) {
		if d, _ := m["data"].(map[string]any); m["channel"] == "/bayeuxhub/stats" && d["clients"] == float64(999999) {
			t.Fatalf("a forged statistic was delivered: %v", m)
		}
	}
}
