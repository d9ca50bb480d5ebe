package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

// testJWK is a key a test JWK Set server serves.
type testJWK struct {
	kid  string
	alg  jwkset.ALG
	use  jwkset.USE
	pub  any  // a public key, or []byte for an "oct" key
	priv bool // marshal private material (needed for "oct")
}

// jwksServer serves a JWK Set on 127.0.0.1 that the test can change.
type jwksServer struct {
	srv    *httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	body   []byte
	status int
}

func newJWKSServer(t *testing.T, keys ...testJWK) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.set(t, keys...)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) URL() string { return s.srv.URL + "/.well-known/jwks.json" }

// set replaces the served JWK Set, built with jwkset.
func (s *jwksServer) set(t *testing.T, keys ...testJWK) {
	t.Helper()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{
			Marshal:  jwkset.JWKMarshalOptions{Private: k.priv},
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: k.use},
		})
		if err != nil {
			t.Fatalf("jwkset.NewJWKFromKey(%s): %v", k.kid, err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.setBody(http.StatusOK, body)
}

func (s *jwksServer) setBody(status int, body []byte) {
	s.mu.Lock()
	s.body, s.status = body, status
	s.mu.Unlock()
}

func withKID(kid string) map[string]any { return map[string]any{"kid": kid} }

var userClaims = jwt.MapClaims{"sub": "u", "channels": []string{"/a"}}

func TestJWKSRotationUnknownKID(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", alg: jwkset.AlgRS256, use: jwkset.UseSig, pub: &rsaKey().PublicKey})
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), JWKSRefresh: time.Hour})

	k1 := signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1"))
	if id := accept(t, j, k1); id.UserID != "u" || len(id.Channels) != 1 || id.Channels[0] != "/a" {
		t.Errorf("identity = %+v", id)
	}
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	// The issuer rotates to an ECDSA key k2, removing k1.
	s.set(t, testJWK{kid: "k2", pub: &ecKey().PublicKey})
	k2 := signed(t, jwt.SigningMethodES256, ecKey(), userClaims, withKID("k2"))
	accept(t, j, k2) // fetched on demand, without waiting for the hourly refresh
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	accept(t, j, k2) // cached
	// k1 is gone from the cached set; another fetch is too soon.
	refuse(t, j, k1, `invalid token: unknown key id "k1"`)
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

func TestJWKSPeriodicRefreshRemovesKey(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", pub: &rsaKey().PublicKey})
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), JWKSRefresh: 20 * time.Millisecond, JWKSUnknownKIDInterval: time.Hour})
	k1 := signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1"))
	accept(t, j, k1)

	s.set(t, testJWK{kid: "k2", pub: &rsaKey2().PublicKey})
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		_, err := j.Authenticate(context.Background(), k1)
		if err == nil {
			return errors.New("k1 still accepted after it left the JWK Set")
		}
		if err.Error() != `invalid token: unknown key id "k1"` || !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error = %q", err)
		}
		return nil
	})
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey2(), userClaims, withKID("k2")))
}

func TestJWKSWithoutKID(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t,
		testJWK{kid: "r1", pub: &rsaKey().PublicKey},
		testJWK{kid: "e1", alg: jwkset.AlgES256, pub: &ecKey().PublicKey},
		testJWK{pub: &rsaKey2().PublicKey}, // no kid
	)
	j := newJWT(t, JWTOptions{JWKSURL: s.URL()})
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, nil))
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey2(), userClaims, nil))
	accept(t, j, signed(t, jwt.SigningMethodES256, ecKey(), userClaims, nil))
	refuse(t, j, signed(t, jwt.SigningMethodES256, ecKey2(), userClaims, nil), "invalid token: signature is invalid")
	// A kid that names another key than the signer's.
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey2(), userClaims, withKID("r1")), "invalid token: signature is invalid")
}

func TestJWKSKeyMismatch(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t,
		testJWK{kid: "r1", pub: &rsaKey().PublicKey},
		testJWK{kid: "r384", alg: jwkset.AlgRS384, pub: &rsaKey().PublicKey},
	)
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), Algorithms: []string{"RS256", "RS384", "ES256", "ES384"}})
	refuse(t, j, signed(t, jwt.SigningMethodES256, ecKey(), userClaims, withKID("r1")),
		`invalid token: key id "r1" does not match signing method ES256`)
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("r384")),
		`invalid token: key id "r384" does not match signing method RS256`)
	accept(t, j, signed(t, jwt.SigningMethodRS384, rsaKey(), userClaims, withKID("r384")))
	refuse(t, j, signed(t, jwt.SigningMethodES384, ec384(), userClaims, nil), "invalid token: no key for signing method ES384")
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, map[string]any{"kid": 7}), "invalid token: token is malformed")
	long := strings.Repeat("k", 500)
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID(long)),
		`invalid token: unknown key id "`+strings.Repeat("k", 40)+`"...`)
}

func TestJWKSAndPublicKeys(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", pub: &rsaKey().PublicKey})
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), PublicKeys: []crypto.PublicKey{&rsaKey2().PublicKey}, JWKSUnknownKIDInterval: time.Hour})
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1")))
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey2(), userClaims, withKID("static")))
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey2(), userClaims, nil))
	refuse(t, j, signed(t, jwt.SigningMethodES256, ecKey(), userClaims, withKID("static")), `invalid token: unknown key id "static"`)
}

func TestJWKSUnknownKIDRateLimit(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", pub: &rsaKey().PublicKey})
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), JWKSUnknownKIDInterval: time.Hour})
	accept(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1")))
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("x")), `invalid token: unknown key id "x"`)
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	for i := range 5 {
		err := refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("y")), `invalid token: unknown key id "y"`)
		if !errors.Is(err, errRateLimited) {
			t.Errorf("try %d: error %v does not wrap errRateLimited", i, err)
		}
	}
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

func TestJWKSSkipsUnusableKeys(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t,
		testJWK{kid: "enc", use: jwkset.UseEnc, pub: &rsaKey().PublicKey},
		testJWK{kid: "oct", pub: secret, priv: true},
		testJWK{kid: "small", pub: &genRSA(1024).PublicKey},
		testJWK{kid: "oaep", alg: jwkset.AlgRSAOAEP, pub: &rsaKey().PublicKey},
		testJWK{kid: "ok", pub: &ecKey().PublicKey},
	)
	var logs syncBuffer
	lg := zerolog.New(&logs)
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), Logger: &lg})
	accept(t, j, signed(t, jwt.SigningMethodES256, ecKey(), userClaims, withKID("ok")))
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("enc")), `invalid token: unknown key id "enc"`)
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("oaep")), `invalid token: unknown key id "oaep"`)
	refuse(t, j, signed(t, jwt.SigningMethodHS256, secret, userClaims, withKID("oct")), "invalid token: signing method HS256 is not allowed")
	if out := logs.String(); !strings.Contains(out, `"skipped":4`) || !strings.Contains(out, `"level":"warn"`) {
		t.Errorf("logs = %s; want a warning about 4 skipped keys", out)
	}
	if strings.Contains(logs.String(), base64URL(secret)) {
		t.Error("the logs show the oct key")
	}
}

func base64URL(b []byte) string {
	s, _ := json.Marshal(b) // standard base64, quoted
	return strings.Trim(string(s), `"`)
}

func TestJWKSServerDown(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	u := down.URL
	down.Close()

	var logs syncBuffer
	lg := zerolog.New(&logs)
	start := time.Now()
	j := newJWT(t, JWTOptions{JWKSURL: u + "/jwks?access_token=hunter2", Logger: &lg})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("NewJWT took %v", d)
	}
	for _, token := range []string{
		signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1")),
		signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, nil),
		signed(t, jwt.SigningMethodES256, ecKey(), userClaims, withKID("k2")),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		refuseCtx(t, ctx, j, token, "invalid token: key set unavailable")
		cancel()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Authenticate took %v", d)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "cannot fetch the JWK Set") || !strings.Contains(out, `"level":"warn"`) {
		t.Errorf("logs = %s; want a warning", out)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "access_token") {
		t.Errorf("logs show the URL's query: %s", out)
	}
}

func TestJWKSServerHangs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	start := time.Now()
	j := newJWT(t, JWTOptions{JWKSURL: srv.URL})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("NewJWT took %v", d)
	}
	for _, token := range []string{
		signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1")),
		signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, nil),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := refuseCtx(t, ctx, j, token, "invalid token: key set unavailable")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Authenticate took %v", d)
		}
	}
	start = time.Now()
	j.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestJWKSRecovers(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", pub: &rsaKey().PublicKey})
	good := s.body
	s.setBody(http.StatusServiceUnavailable, []byte("try later"))
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), JWKSUnknownKIDInterval: 10 * time.Millisecond})
	k1 := signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1"))
	refuse(t, j, k1, "invalid token: key set unavailable")

	s.setBody(http.StatusOK, good)
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		_, err := j.Authenticate(context.Background(), k1)
		return err // still refused after the JWK Set came back
	})
}

func TestJWKSBadDocuments(t *testing.T) {
	t.Parallel()
	bodies := map[string][]byte{
		"not JSON":      []byte("<html>"),
		"no keys":       []byte(`{"foo":[]}`),
		"keys null":     []byte(`{"keys":null}`),
		"too large":     []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`),
		"keys a string": []byte(`{"keys":"k1"}`),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newJWKSServer(t)
			s.setBody(http.StatusOK, body)
			var logs syncBuffer
			lg := zerolog.New(&logs)
			j := newJWT(t, JWTOptions{JWKSURL: s.URL(), Logger: &lg})
			refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1")), "invalid token: key set unavailable")
			if !strings.Contains(logs.String(), "cannot fetch the JWK Set") {
				t.Errorf("logs = %s", logs.String())
			}
		})
	}
}

func TestJWKSEmptySetRevokes(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", pub: &rsaKey().PublicKey})
	j := newJWT(t, JWTOptions{JWKSURL: s.URL(), JWKSUnknownKIDInterval: 10 * time.Millisecond})
	k1 := signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1"))
	accept(t, j, k1)
	s.set(t)
	// Another kid forces a fetch; the now empty set drops k1.
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := s.hits.Load(); n < 2 {
			refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k9")), `invalid token: unknown key id "k9"`)
			return fmt.Errorf("%d fetches of the JWK Set, want a second one", n)
		}
		return nil
	})
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, nil), "invalid token: no key for signing method RS256")
}

func TestClose(t *testing.T) {
	t.Parallel()
	s := newJWKSServer(t, testJWK{kid: "k1", pub: &rsaKey().PublicKey})
	j, err := NewJWT(JWTOptions{JWKSURL: s.URL(), JWKSRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	k1 := signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k1"))
	accept(t, j, k1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(j.Close)
	}
	wg.Wait()
	j.Close()
	n := s.hits.Load()
	accept(t, j, k1) // the keys fetched before
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), userClaims, withKID("k2")), `invalid token: unknown key id "k2"`)
	if s.hits.Load() != n {
		t.Error("fetched after Close")
	}

	h := newJWT(t, JWTOptions{HMACSecret: secret}) // no JWK Set: Close is a no-op
	h.Close()
	h.Close()
	accept(t, h, signed(t, jwt.SigningMethodHS256, secret, userClaims, nil))
}
