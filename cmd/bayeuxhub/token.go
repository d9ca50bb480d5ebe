package main

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/auth"
	"github.com/bayeuxhub/bayeuxhub/internal/config"
)

// mintToken is "bayeuxhub token": it prints a token for a user, signed
// with the hub's HS256 secret (from --config, BAYEUXHUB_JWT_HMAC_SECRET or
// BAYEUXHUB_JWT_HMAC_SECRET_FILE) or with a private key.
func mintToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bayeuxhub token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgFile, sub, channels, info, keyFile, alg, kid, issuer, audience string
		ttl                                                               time.Duration
	)
	fs.StringVar(&cfgFile, "config", "", "the hub's config `file`, for its jwt-hmac-secret (or -file), issuer and audience [$BAYEUXHUB_CONFIG]")
	fs.StringVar(&sub, "sub", "", "the user `id` (required): the session's user, the {sub} of personal channels")
	fs.StringVar(&channels, "channels", "", "comma-separated channel `patterns` the token grants (for rules with access granted)")
	fs.StringVar(&info, "info", "", "the user's public info, a JSON `object` (e.g. '{\"name\":\"Alice\"}')")
	fs.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid; 0: no expiry")
	fs.StringVar(&keyFile, "private-key-file", "", "sign with this RSA or ECDSA private key (PEM) `file` instead of the HS256 secret")
	fs.StringVar(&alg, "alg", "", "signing `algorithm` with --private-key-file (default RS256 for RSA keys, ES256 for P-256 keys)")
	fs.StringVar(&kid, "kid", "", "key `id` to put in the header (for a JWKS)")
	fs.StringVar(&issuer, "iss", "", "issuer claim (default: the config's jwt-issuer)")
	fs.StringVar(&audience, "aud", "", "audience claim (default: the config's jwt-audience)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: bayeuxhub token --sub USER [flags]\n\nPrints a token for the hub's clients to pass in the handshake (ext.auth.token).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sub == "" {
		return errors.New("token: --sub is required")
	}
	var cfgArgs []string
	if cfgFile != "" {
		cfgArgs = []string{"--config", cfgFile}
	}
	s, err := config.Load(cfgArgs, os.LookupEnv, stderr)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	c := auth.Claims{Subject: sub, TTL: ttl, Issuer: or(issuer, s.JWTIssuer), Audience: or(audience, s.JWTAudience), KeyID: kid}
	if channels != "" {
		for _, ch := range strings.Split(channels, ",") {
			if ch = strings.TrimSpace(ch); ch != "" {
				c.Channels = append(c.Channels, ch)
			}
		}
	}
	if info != "" {
		if !json.Valid([]byte(info)) {
			return errors.New("token: --info is not valid JSON")
		}
		c.Info = json.RawMessage(info)
	}
	var token string
	if keyFile != "" {
		pemData, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		key, err := auth.LoadPrivateKeyPEM(pemData)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		if alg == "" {
			alg = defaultAlg(key)
		}
		token, err = auth.Mint(alg, key, c)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
	} else {
		secret, err := s.HMACSecret()
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		if secret == "" {
			return errors.New("token: no HS256 secret: give --config with jwt-hmac-secret or jwt-hmac-secret-file, set BAYEUXHUB_JWT_HMAC_SECRET, or use --private-key-file")
		}
		token, err = auth.MintHS256([]byte(secret), c)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// defaultAlg is the usual signing algorithm for a private key.
func defaultAlg(key crypto.Signer) string {
	if k, ok := key.Public().(*ecdsa.PublicKey); ok {
		switch k.Curve.Params().BitSize {
		case 384:
			return "ES384"
		case 521:
			return "ES512"
		}
		return "ES256"
	}
	return "RS256"
}
