package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are what Mint and MintHS256 put in a token.
type Claims struct {
	// Subject is the user id ("sub"); required.
	Subject string
	// Channels, when not nil, are the granted channels and patterns
	// (claim "channels").
	Channels []string
	// Info, when not nil, is the user's public info (claim "info"),
	// marshalled as JSON; a json.RawMessage is kept as it is.
	Info any
	// TTL sets "exp" to now+TTL; 0 means no "exp" (a negative TTL makes
	// an expired token, for tests).
	TTL time.Duration
	// Issuer and Audience, when set, are "iss" and "aud".
	Issuer, Audience string
	// NotBefore, when not zero, is "nbf".
	NotBefore time.Time
	// KeyID, when set, is the header's "kid" (to pick a JWK Set key).
	KeyID string
}

// MintHS256 returns a token signed with HS256 by secret (at least
// MinHMACSecretSize bytes), with the claims c and "iat" now. It is meant
// for tests, the `bayeuxhub token` command and operators' scripts.
func MintHS256(secret []byte, c Claims) (string, error) {
	if len(secret) < MinHMACSecretSize {
		return "", fmt.Errorf("auth: the HMAC secret is %d bytes; at least %d are needed", len(secret), MinHMACSecretSize)
	}
	return sign(jwt.SigningMethodHS256, secret, c)
}

// Mint returns a token signed with method (RS256, RS384, RS512, PS256,
// PS384, PS512 with an *rsa.PrivateKey of at least MinRSAKeyBits bits;
// ES256, ES384, ES512 with an *ecdsa.PrivateKey on P-256, P-384, P-521),
// with the claims c and "iat" now. Use MintHS256 for HMAC.
func Mint(method string, key crypto.Signer, c Claims) (string, error) {
	m := jwt.GetSigningMethod(method)
	info, ok := supported[method]
	if m == nil || !ok || info.kind == kindHMAC {
		return "", fmt.Errorf("auth: Mint: signing method %q is not supported (use MintHS256 for HS256)", method)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k == nil {
			return "", errors.New("auth: Mint: nil key")
		}
		if info.kind != kindRSA {
			return "", fmt.Errorf("auth: Mint: %s needs an ECDSA key, not RSA", method)
		}
		if _, err := checkPublicKey(&k.PublicKey); err != nil {
			return "", err
		}
	case *ecdsa.PrivateKey:
		if k == nil {
			return "", errors.New("auth: Mint: nil key")
		}
		if info.kind != kindEC {
			return "", fmt.Errorf("auth: Mint: %s needs an RSA key, not ECDSA", method)
		}
		if _, err := checkPublicKey(&k.PublicKey); err != nil {
			return "", err
		}
		if bits := k.Curve.Params().BitSize; bits != info.curve {
			return "", fmt.Errorf("auth: Mint: %s needs a P-%d key, not P-%d", method, info.curve, bits)
		}
	default:
		return "", fmt.Errorf("auth: Mint: unsupported key type %T (want *rsa.PrivateKey or *ecdsa.PrivateKey)", key)
	}
	return sign(m, key, c)
}

func sign(m jwt.SigningMethod, key any, c Claims) (string, error) {
	if c.Subject == "" {
		return "", errors.New("auth: Mint: Claims.Subject is required")
	}
	now := time.Now()
	mc := jwt.MapClaims{"sub": c.Subject, "iat": jwt.NewNumericDate(now)}
	if c.TTL != 0 {
		mc["exp"] = jwt.NewNumericDate(now.Add(c.TTL))
	}
	if !c.NotBefore.IsZero() {
		mc["nbf"] = jwt.NewNumericDate(c.NotBefore)
	}
	if c.Issuer != "" {
		mc["iss"] = c.Issuer
	}
	if c.Audience != "" {
		mc["aud"] = c.Audience
	}
	if c.Channels != nil {
		mc[DefaultChannelsClaim] = c.Channels
	}
	if c.Info != nil {
		mc[DefaultInfoClaim] = c.Info
	}
	t := jwt.NewWithClaims(m, mc)
	if c.KeyID != "" {
		t.Header["kid"] = c.KeyID
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: Mint: %w", err)
	}
	return s, nil
}
