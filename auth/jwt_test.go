package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestAccept(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{
			"sub":      "user-42",
			"exp":      exp.Unix(),
			"iat":      time.Now().Unix(),
			"channels": []string{"/chat/*", "/user/user-42/**"},
			"info":     json.RawMessage(`{"name":"Ann","big":12345678901234567890,"tags":[true,null]}`),
		}
	}
	cases := []struct {
		name   string
		opts   JWTOptions
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", JWTOptions{HMACSecret: secret}, jwt.SigningMethodHS256, secret},
		{"HS512", JWTOptions{HMACSecret: secret, Algorithms: []string{"HS512"}}, jwt.SigningMethodHS512, secret},
		{"RS256", JWTOptions{PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey}}, jwt.SigningMethodRS256, rsaKey()},
		{"PS256", JWTOptions{PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey}, Algorithms: []string{"PS256"}}, jwt.SigningMethodPS256, rsaKey()},
		{"ES256", JWTOptions{PublicKeys: []crypto.PublicKey{&ecKey().PublicKey}}, jwt.SigningMethodES256, ecKey()},
		{"ES384", JWTOptions{PublicKeys: []crypto.PublicKey{&ec384().PublicKey}}, jwt.SigningMethodES384, ec384()},
		{"RS256 second key", JWTOptions{PublicKeys: []crypto.PublicKey{&rsaKey2().PublicKey, &ecKey().PublicKey, &rsaKey().PublicKey}},
			jwt.SigningMethodRS256, rsaKey()},
		{"ES256 among all", JWTOptions{HMACSecret: secret, PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey, &ecKey2().PublicKey, &ecKey().PublicKey}},
			jwt.SigningMethodES256, ecKey()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := newJWT(t, c.opts)
			id := accept(t, j, signed(t, c.method, c.key, claims(), nil))
			if id.UserID != "user-42" {
				t.Errorf("UserID = %q", id.UserID)
			}
			if !slices.Equal(id.Channels, []string{"/chat/*", "/user/user-42/**"}) {
				t.Errorf("Channels = %q", id.Channels)
			}
			if string(id.Info) != `{"name":"Ann","big":12345678901234567890,"tags":[true,null]}` {
				t.Errorf("Info = %s", id.Info)
			}
			if !id.ExpiresAt.Equal(exp.Add(DefaultLeeway)) {
				t.Errorf("ExpiresAt = %v, want %v plus the leeway", id.ExpiresAt, exp)
			}
		})
	}
}

func TestAcceptMinimalAndCustomClaims(t *testing.T) {
	t.Parallel()
	j := newJWT(t, JWTOptions{HMACSecret: secret})
	id := accept(t, j, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u"}, nil))
	if id.UserID != "u" || id.Channels != nil || id.Info != nil || !id.ExpiresAt.IsZero() {
		t.Errorf("identity = %+v, want only UserID", id)
	}
	id = accept(t, j, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "channels": []string{}, "info": nil}, nil))
	if id.Channels == nil || len(id.Channels) != 0 || id.Info != nil {
		t.Errorf("identity = %+v, want empty Channels and nil Info", id)
	}

	c := newJWT(t, JWTOptions{HMACSecret: secret, ChannelsClaim: "grants", InfoClaim: "profile", Issuer: "me", Audience: "hub"})
	id = accept(t, c, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{
		"sub": "u", "iss": "me", "aud": []string{"other", "hub"},
		"grants": []string{"/a"}, "channels": 7, "profile": "plain string", "info": []int{1},
	}, nil))
	if !slices.Equal(id.Channels, []string{"/a"}) || string(id.Info) != `"plain string"` {
		t.Errorf("identity = %+v", id)
	}
	refuse(t, c, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "iss": "me", "aud": "hub", "grants": "/a"}, nil),
		`invalid token: claim "grants" must be an array of channel names`)
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	j := newJWT(t, JWTOptions{
		HMACSecret: secret,
		PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey, &ecKey().PublicKey},
		Issuer:     "issuer-1",
		Audience:   "hub",
	})
	now := time.Now()
	base := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "u", "iss": "issuer-1", "aud": "hub", "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	hs := func(extra jwt.MapClaims) string { return signed(t, jwt.SigningMethodHS256, secret, base(extra), nil) }
	none := signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base(nil), nil)
	noneWithSig := none + "c2lnbmF0dXJl"
	garbage := strings.Repeat("x", 3<<20)
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	hsWith := func(header, payload string) string { // hand-built, then HS256-signed
		s := b64(header) + "." + b64(payload)
		sig, err := jwt.SigningMethodHS256.Sign(s, secret)
		if err != nil {
			t.Fatal(err)
		}
		return s + "." + base64.RawURLEncoding.EncodeToString(sig)
	}

	cases := []struct{ name, token, want string }{
		{"valid control", "", ""},
		{"expired", hs(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}), "invalid token: token has expired"},
		{"not yet valid", hs(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}), "invalid token: token is not valid yet"},
		{"issued in the future", hs(jwt.MapClaims{"iat": now.Add(time.Hour).Unix()}), "invalid token: token is issued in the future"},
		{"RS256 by another key", signed(t, jwt.SigningMethodRS256, rsaKey2(), base(nil), nil), "invalid token: signature is invalid"},
		{"ES256 by another key", signed(t, jwt.SigningMethodES256, ecKey2(), base(nil), nil), "invalid token: signature is invalid"},
		{"HS256 by another secret", signed(t, jwt.SigningMethodHS256, secret2, base(nil), nil), "invalid token: signature is invalid"},
		{"tampered payload", func() string {
			p := strings.Split(hs(nil), ".")
			p[1] = b64(`{"sub":"admin","iss":"issuer-1","aud":"hub"}`)
			return strings.Join(p, ".")
		}(), "invalid token: signature is invalid"},
		{"alg none", none, "invalid token: signing method none is not allowed"},
		{"alg none with a signature", noneWithSig, "invalid token: signing method none is not allowed"},
		{"ES384 not pinned", signed(t, jwt.SigningMethodES384, ec384(), base(nil), nil), "invalid token: signing method ES384 is not allowed"},
		{"PS256 not pinned", signed(t, jwt.SigningMethodPS256, rsaKey(), base(nil), nil), "invalid token: signing method PS256 is not allowed"},
		{"EdDSA not pinned", func() string {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			return signed(t, jwt.SigningMethodEdDSA, priv, base(nil), nil)
		}(), "invalid token: signing method EdDSA is not allowed"},
		{"unknown alg", hsWith(`{"alg":"XY1","typ":"JWT"}`, `{"sub":"u"}`), `invalid token: signing method "XY1" is not supported`},
		{"no alg", hsWith(`{"typ":"JWT"}`, `{"sub":"u"}`), "invalid token: token has no signing method"},
		{"empty", "", "invalid token: token is malformed"},
		{"abc", "abc", "invalid token: token is malformed"},
		{"a.b.c", "a.b.c", "invalid token: token is malformed"},
		{"four segments", hs(nil) + ".x", "invalid token: token is malformed"},
		{"header not JSON", b64("nope") + "." + b64("{}") + ".c2ln", "invalid token: token is malformed"},
		{"claims not an object", hsWith(`{"alg":"HS256"}`, `["sub"]`), "invalid token: token is malformed"},
		{"claims null", hsWith(`{"alg":"HS256"}`, `null`), "invalid token: token is malformed"},
		{"3 MiB of garbage", garbage, "invalid token: token is too large"},
		{"garbage with dots", strings.Repeat("x.", 1000), "invalid token: token is malformed"},
		{"wrong issuer", hs(jwt.MapClaims{"iss": "issuer-2"}), "invalid token: wrong issuer"},
		{"no issuer", hs(jwt.MapClaims{"iss": nil}), "invalid token: token has no issuer"},
		{"wrong audience", hs(jwt.MapClaims{"aud": []string{"a", "b"}}), "invalid token: wrong audience"},
		{"no audience", hs(jwt.MapClaims{"aud": nil}), "invalid token: token has no audience"},
		{"no subject", hs(jwt.MapClaims{"sub": nil}), "invalid token: token has no subject"},
		{"empty subject", hs(jwt.MapClaims{"sub": ""}), "invalid token: token has no subject"},
		{"numeric subject", hs(jwt.MapClaims{"sub": 42}), `invalid token: claim "sub" must be a string`},
		{"string exp", hs(jwt.MapClaims{"exp": "tomorrow"}), `invalid token: claim "exp" must be a number`},
		{"numeric string exp", hs(jwt.MapClaims{"exp": "99999999999"}), `invalid token: claim "exp" must be a number`},
		{"aud of numbers", hs(jwt.MapClaims{"aud": []int{1}}), `invalid token: claim "aud" must be a string or an array of strings`},
		{"channels a string", hs(jwt.MapClaims{"channels": "/chat/*"}), `invalid token: claim "channels" must be an array of channel names`},
		{"channels numbers", hs(jwt.MapClaims{"channels": []int{1, 2}}), `invalid token: claim "channels" must be an array of channel names`},
		{"channels with null", hs(jwt.MapClaims{"channels": []any{"/a", nil}}), `invalid token: claim "channels" must be an array of channel names`},
		{"channels an object", hs(jwt.MapClaims{"channels": map[string]any{"a": 1}}), `invalid token: claim "channels" must be an array of channel names`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.want == "" {
				accept(t, j, hs(nil))
				return
			}
			refuse(t, j, c.token, c.want)
		})
	}
}

func TestRefuseWrapsCause(t *testing.T) {
	t.Parallel()
	j := newJWT(t, JWTOptions{HMACSecret: secret})
	_, err := j.Authenticate(context.Background(), signed(t, jwt.SigningMethodHS256, secret,
		jwt.MapClaims{"sub": "u", "exp": time.Now().Add(-time.Minute).Unix()}, nil))
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("error %v: want ErrInvalidToken and jwt.ErrTokenExpired", err)
	}
}

// TestHMACWithPublicKey is the classic attack: a token "signed" with HS256
// using the verifier's RSA public key as the HMAC secret.
func TestHMACWithPublicKey(t *testing.T) {
	t.Parallel()
	pub := &rsaKey().PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkix := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	jwks := newJWKSServer(t, testJWK{kid: "k1", pub: pub})

	verifiers := []struct {
		name string
		opts JWTOptions
		want string
	}{
		{"public key only", JWTOptions{PublicKeys: []crypto.PublicKey{pub}}, "invalid token: signing method HS256 is not allowed"},
		{"JWKS only", JWTOptions{JWKSURL: jwks.URL()}, "invalid token: signing method HS256 is not allowed"},
		{"public key and another secret", JWTOptions{PublicKeys: []crypto.PublicKey{pub}, HMACSecret: secret}, "invalid token: signature is invalid"},
		{"pinned HS256 and RS256", JWTOptions{PublicKeys: []crypto.PublicKey{pub}, HMACSecret: secret, Algorithms: []string{"HS256", "RS256"}},
			"invalid token: signature is invalid"},
		{"JWKS and another secret", JWTOptions{JWKSURL: jwks.URL(), HMACSecret: secret}, "invalid token: signature is invalid"},
	}
	secrets := map[string][]byte{"PKIX PEM": pkix, "PKIX DER": der, "PKCS1 PEM": pkcs1}
	for _, v := range verifiers {
		for sname, s := range secrets {
			t.Run(v.name+"/"+sname, func(t *testing.T) {
				t.Parallel()
				j := newJWT(t, v.opts)
				claims := jwt.MapClaims{"sub": "admin", "exp": time.Now().Add(time.Hour).Unix()}
				refuse(t, j, signed(t, jwt.SigningMethodHS256, s, claims, nil), v.want)
				refuse(t, j, signed(t, jwt.SigningMethodHS256, s, claims, map[string]any{"kid": "k1"}), v.want)
			})
		}
	}
}

func TestRS256AgainstHMACOnly(t *testing.T) {
	t.Parallel()
	j := newJWT(t, JWTOptions{HMACSecret: secret})
	refuse(t, j, signed(t, jwt.SigningMethodRS256, rsaKey(), jwt.MapClaims{"sub": "u"}, nil),
		"invalid token: signing method RS256 is not allowed")
	refuse(t, j, signed(t, jwt.SigningMethodES256, ecKey(), jwt.MapClaims{"sub": "u"}, nil),
		"invalid token: signing method ES256 is not allowed")
}

func TestRequireExpiry(t *testing.T) {
	t.Parallel()
	j := newJWT(t, JWTOptions{HMACSecret: secret, RequireExpiry: true})
	refuse(t, j, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u"}, nil), "invalid token: token has no expiry")
	refuse(t, j, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "exp": nil}, nil), "invalid token: token has no expiry")
	accept(t, j, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Minute).Unix()}, nil))
}

func TestLeeway(t *testing.T) {
	t.Parallel()
	recent := jwt.MapClaims{"sub": "u", "exp": time.Now().Add(-2 * time.Second).Unix()}
	soon := jwt.MapClaims{"sub": "u", "nbf": time.Now().Add(2 * time.Second).Unix()}
	def := newJWT(t, JWTOptions{HMACSecret: secret}) // 5 s
	accept(t, def, signed(t, jwt.SigningMethodHS256, secret, recent, nil))
	accept(t, def, signed(t, jwt.SigningMethodHS256, secret, soon, nil))
	strict := newJWT(t, JWTOptions{HMACSecret: secret, Leeway: -1})
	refuse(t, strict, signed(t, jwt.SigningMethodHS256, secret, recent, nil), "invalid token: token has expired")
	refuse(t, strict, signed(t, jwt.SigningMethodHS256, secret, soon, nil), "invalid token: token is not valid yet")
	wide := newJWT(t, JWTOptions{HMACSecret: secret, Leeway: time.Hour})
	accept(t, wide, signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(-time.Minute).Unix()}, nil))
}

func TestNewJWTErrors(t *testing.T) {
	t.Parallel()
	small := genRSA(1024)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsaPub := []crypto.PublicKey{&rsaKey().PublicKey}
	cases := []struct {
		name string
		opts JWTOptions
		want string
	}{
		{"no key", JWTOptions{}, "no key"},
		{"no key, only algorithms", JWTOptions{Algorithms: []string{"HS256"}}, "no key"},
		{"short secret", JWTOptions{HMACSecret: []byte("short")}, "at least 32"},
		{"31-byte secret", JWTOptions{HMACSecret: secret[:31]}, "at least 32"},
		{"none", JWTOptions{HMACSecret: secret, Algorithms: []string{"HS256", "none"}}, `"none" is never allowed`},
		{"NONE", JWTOptions{HMACSecret: secret, Algorithms: []string{"NONE"}}, `"none" is never allowed`},
		{"unknown algorithm", JWTOptions{HMACSecret: secret, Algorithms: []string{"XY1"}}, "not supported"},
		{"EdDSA", JWTOptions{HMACSecret: secret, Algorithms: []string{"EdDSA"}}, "not supported"},
		{"RS256 without RSA key", JWTOptions{HMACSecret: secret, Algorithms: []string{"RS256"}}, "RS256 needs an RSA public key"},
		{"RS256 with only an EC key", JWTOptions{PublicKeys: []crypto.PublicKey{&ecKey().PublicKey}, Algorithms: []string{"RS256"}}, "RS256 needs"},
		{"HS256 without secret", JWTOptions{PublicKeys: rsaPub, Algorithms: []string{"HS256"}}, "HS256 needs HMACSecret"},
		{"HS256 with JWKS only", JWTOptions{JWKSURL: "https://example.invalid/jwks", Algorithms: []string{"HS256"}}, "HS256 needs HMACSecret"},
		{"ES384 with a P-256 key", JWTOptions{PublicKeys: []crypto.PublicKey{&ecKey().PublicKey}, Algorithms: []string{"ES384"}}, "ES384 needs a P-384"},
		{"1024-bit RSA key", JWTOptions{PublicKeys: []crypto.PublicKey{&small.PublicKey}}, "1024 bits"},
		{"Ed25519 key", JWTOptions{PublicKeys: []crypto.PublicKey{edPriv.Public()}}, "unsupported public key type"},
		{"P-224 key", JWTOptions{PublicKeys: []crypto.PublicKey{&p224.PublicKey}}, "P-224 is not supported"},
		{"private key", JWTOptions{PublicKeys: []crypto.PublicKey{rsaKey()}}, "unsupported public key type"},
		{"nil key", JWTOptions{PublicKeys: []crypto.PublicKey{nil}}, "nil key"},
		{"JWKS URL not http", JWTOptions{JWKSURL: "ftp://example.com/jwks"}, "not an http or https URL"},
		{"JWKS URL relative", JWTOptions{JWKSURL: "/jwks"}, "not an http or https URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j, err := NewJWT(c.opts)
			if err == nil {
				j.Close()
				t.Fatalf("NewJWT succeeded; want an error with %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
			if bytes.Contains([]byte(err.Error()), secret[:31]) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		opts JWTOptions
		want []string
	}{
		{JWTOptions{HMACSecret: secret}, []string{"HS256"}},
		{JWTOptions{PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey}}, []string{"RS256"}},
		{JWTOptions{HMACSecret: secret, PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey, &ecKey().PublicKey, &ec384().PublicKey, &rsaKey2().PublicKey}},
			[]string{"HS256", "RS256", "ES256", "ES384"}},
		{JWTOptions{JWKSURL: "http://127.0.0.1:1/jwks", JWKSRefresh: time.Hour}, []string{"RS256", "ES256"}},
		{JWTOptions{JWKSURL: "http://127.0.0.1:1/jwks", Algorithms: []string{"ES512", "PS384", "ES512"}}, []string{"ES512", "PS384"}},
		{JWTOptions{HMACSecret: secret, Algorithms: []string{"HS512", "HS384"}}, []string{"HS512", "HS384"}},
	}
	for _, c := range cases {
		j := newJWT(t, c.opts)
		got := j.Algorithms()
		if !slices.Equal(got, c.want) {
			t.Errorf("Algorithms() = %q, want %q", got, c.want)
		}
		got[0] = "changed"
		if j.Algorithms()[0] == "changed" {
			t.Error("Algorithms() returns the verifier's own slice")
		}
	}
}

func TestSecretIsCopied(t *testing.T) {
	t.Parallel()
	s := bytes.Clone(secret)
	j := newJWT(t, JWTOptions{HMACSecret: s})
	token := signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "u"}, nil)
	s[0] ^= 0xff
	accept(t, j, token)
}

func TestConcurrentAuthenticate(t *testing.T) {
	t.Parallel()
	j := newJWT(t, JWTOptions{HMACSecret: secret, PublicKeys: []crypto.PublicKey{&ecKey().PublicKey}})
	good := signed(t, jwt.SigningMethodES256, ecKey(), jwt.MapClaims{"sub": "u"}, nil)
	bad := signed(t, jwt.SigningMethodHS256, secret2, jwt.MapClaims{"sub": "u"}, nil)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 20 {
				if i%2 == 0 {
					if _, err := j.Authenticate(context.Background(), good); err != nil {
						t.Errorf("good token: %v", err)
						return
					}
				} else if _, err := j.Authenticate(context.Background(), bad); err == nil {
					t.Error("bad token accepted")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:pw@issuer.example/jwks?key=s3cret#x": "https://issuer.example/jwks",
		"http://issuer.example:8080/a/b":                   "http://issuer.example:8080/a/b",
		"https://issuer.example/p@th":                      "https://issuer.example/p@th",
		"ftp://u:pw@h":                                     "ftp://h",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	_, err := NewJWT(JWTOptions{JWKSURL: "ftp://u:pw@h/jwks?token=s3cret"})
	if err == nil || strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v", err)
	}
	if got := quoteShort("é" + strings.Repeat("x", 50)); got != `"é`+strings.Repeat("x", 38)+`"...` {
		t.Errorf("quoteShort = %s", got)
	}
}
