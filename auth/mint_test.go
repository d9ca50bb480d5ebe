package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintRoundTrip(t *testing.T) {
	t.Parallel()
	pubs := []crypto.PublicKey{&rsaKey().PublicKey, &ecKey().PublicKey, &ec384().PublicKey}
	full := Claims{
		Subject:   "user-7",
		Channels:  []string{"/room/1", "/user/user-7/**"},
		Info:      map[string]any{"name": "Bo", "admin": false},
		TTL:       time.Hour,
		Issuer:    "me",
		Audience:  "hub",
		NotBefore: time.Now().Add(-time.Minute),
		KeyID:     "k1",
	}
	cases := []struct {
		name   string
		verify JWTOptions
		mint   func(Claims) (string, error)
	}{
		{"HS256", JWTOptions{HMACSecret: secret, Issuer: "me", Audience: "hub"}, func(c Claims) (string, error) { return MintHS256(secret, c) }},
		{"RS256", JWTOptions{PublicKeys: pubs, Issuer: "me", Audience: "hub"}, func(c Claims) (string, error) { return Mint("RS256", rsaKey(), c) }},
		{"PS512", JWTOptions{PublicKeys: pubs, Issuer: "me", Audience: "hub", Algorithms: []string{"PS512"}},
			func(c Claims) (string, error) { return Mint("PS512", rsaKey(), c) }},
		{"ES256", JWTOptions{PublicKeys: pubs, Issuer: "me", Audience: "hub"}, func(c Claims) (string, error) { return Mint("ES256", ecKey(), c) }},
		{"ES384", JWTOptions{PublicKeys: pubs, Issuer: "me", Audience: "hub"}, func(c Claims) (string, error) { return Mint("ES384", ec384(), c) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := newJWT(t, c.verify)
			before := time.Now()
			token, err := c.mint(full)
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
			if err != nil || tok.Header["kid"] != "k1" || tok.Header["alg"] != c.name {
				t.Errorf("header = %v (%v)", tok.Header, err)
			}
			id := accept(t, j, token)
			if id.UserID != "user-7" || !slices.Equal(id.Channels, full.Channels) {
				t.Errorf("identity = %+v", id)
			}
			var info map[string]any
			if err := json.Unmarshal(id.Info, &info); err != nil || info["name"] != "Bo" || info["admin"] != false {
				t.Errorf("Info = %s", id.Info)
			}
			lo, hi := before.Add(time.Hour+DefaultLeeway).Add(-time.Second), time.Now().Add(time.Hour+DefaultLeeway)
			if id.ExpiresAt.Before(lo) || id.ExpiresAt.After(hi) {
				t.Errorf("ExpiresAt = %v, want about an hour from now", id.ExpiresAt)
			}

			minimal, err := c.mint(Claims{Subject: "u"})
			if err != nil {
				t.Fatal(err)
			}
			refuse(t, j, minimal, "invalid token: token has no issuer")
			expired, _ := c.mint(Claims{Subject: "u", TTL: -time.Hour, Issuer: "me", Audience: "hub"})
			refuse(t, j, expired, "invalid token: token has expired")
			later, _ := c.mint(Claims{Subject: "u", NotBefore: time.Now().Add(time.Hour), Issuer: "me", Audience: "hub"})
			refuse(t, j, later, "invalid token: token is not valid yet")
		})
	}

	j := newJWT(t, JWTOptions{HMACSecret: secret})
	token, err := MintHS256(secret, Claims{Subject: "u", Info: json.RawMessage(`{"z":1,"a":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	id := accept(t, j, token)
	if !id.ExpiresAt.IsZero() || id.Channels != nil || string(id.Info) != `{"z":1,"a":2}` {
		t.Errorf("identity = %+v (Info %s)", id, id.Info)
	}
}

func TestMintErrors(t *testing.T) {
	t.Parallel()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name string
		mint func() (string, error)
		want string
	}{
		{"short secret", func() (string, error) { return MintHS256([]byte("short"), Claims{Subject: "u"}) }, "at least 32"},
		{"no subject", func() (string, error) { return MintHS256(secret, Claims{}) }, "Subject is required"},
		{"no subject RS256", func() (string, error) { return Mint("RS256", rsaKey(), Claims{}) }, "Subject is required"},
		{"HS256 via Mint", func() (string, error) { return Mint("HS256", rsaKey(), Claims{Subject: "u"}) }, "use MintHS256"},
		{"none", func() (string, error) { return Mint("none", rsaKey(), Claims{Subject: "u"}) }, "not supported"},
		{"unknown", func() (string, error) { return Mint("XY1", rsaKey(), Claims{Subject: "u"}) }, "not supported"},
		{"ES256 with RSA", func() (string, error) { return Mint("ES256", rsaKey(), Claims{Subject: "u"}) }, "needs an ECDSA key"},
		{"RS256 with ECDSA", func() (string, error) { return Mint("RS256", ecKey(), Claims{Subject: "u"}) }, "needs an RSA key"},
		{"ES384 with P-256", func() (string, error) { return Mint("ES384", ecKey(), Claims{Subject: "u"}) }, "needs a P-384 key"},
		{"Ed25519", func() (string, error) { return Mint("ES256", edPriv, Claims{Subject: "u"}) }, "unsupported key type"},
		{"nil key", func() (string, error) { return Mint("ES256", (*ecdsa.PrivateKey)(nil), Claims{Subject: "u"}) }, "nil key"},
		{"small RSA", func() (string, error) { return Mint("RS256", genRSA(1024), Claims{Subject: "u"}) }, "1024 bits"},
		{"bad info", func() (string, error) { return MintHS256(secret, Claims{Subject: "u", Info: json.RawMessage("{")}) }, "auth: Mint"},
	}
	for _, c := range cases {
		token, err := c.mint()
		if err == nil {
			t.Errorf("%s: got token %q, want an error", c.name, token)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to contain %q", c.name, err, c.want)
		}
	}
}
