package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

var _ actors.Authenticator = (*JWT)(nil)

// Defaults and limits of JWTOptions and Authenticate.
const (
	// DefaultLeeway is the clock skew allowed for "exp", "nbf" and "iat"
	// when JWTOptions.Leeway is 0.
	DefaultLeeway = 5 * time.Second
	// DefaultJWKSRefresh is how often the JWK Set is fetched again when
	// JWTOptions.JWKSRefresh is 0.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSUnknownKIDInterval is the least time between two fetches
	// of the JWK Set made for tokens with an unknown key id, when
	// JWTOptions.JWKSUnknownKIDInterval is 0.
	DefaultJWKSUnknownKIDInterval = 30 * time.Second
	// DefaultJWKSTimeout is the timeout of the HTTP client used for the
	// JWK Set when JWTOptions.HTTPClient is nil.
	DefaultJWKSTimeout = 5 * time.Second
	// DefaultChannelsClaim is the claim granting channels when
	// JWTOptions.ChannelsClaim is empty.
	DefaultChannelsClaim = "channels"
	// DefaultInfoClaim is the claim with the user's public info when
	// JWTOptions.InfoClaim is empty.
	DefaultInfoClaim = "info"
	// MinHMACSecretSize is the shortest HMAC secret accepted, in bytes.
	MinHMACSecretSize = 32
	// MinRSAKeyBits is the smallest RSA modulus accepted, in bits.
	MinRSAKeyBits = 2048
	// MaxTokenSize is the longest token Authenticate looks at, in bytes;
	// longer ones are refused ("token is too large") before any decoding.
	MaxTokenSize = 64 << 10
)

// JWTOptions configure NewJWT. At least one key source (HMACSecret,
// PublicKeys, JWKSURL) is required.
type JWTOptions struct {
	// HMACSecret is the shared secret for HS256 (and HS384/HS512 when
	// listed in Algorithms); at least MinHMACSecretSize bytes. It is only
	// ever used for HMAC algorithms.
	HMACSecret []byte
	// PublicKeys are RSA (at least MinRSAKeyBits) or ECDSA (P-256, P-384,
	// P-521) public keys, for instance from LoadPublicKeyPEM. A token
	// signed with an RSA or ECDSA algorithm is checked against each key of
	// the right type.
	PublicKeys []crypto.PublicKey
	// JWKSURL is the http or https URL of a JWK Set. It is fetched in the
	// background by NewJWT, then every JWKSRefresh, and on demand, at most
	// once per JWKSUnknownKIDInterval, when a token names a key id the set
	// does not have (the first such fetch is immediate).
	JWKSURL string
	// JWKSRefresh is how often the JWK Set is fetched again; 0 means
	// DefaultJWKSRefresh. After a failed fetch the next one comes sooner:
	// 1 s, then doubling, up to 5 minutes, and never later than JWKSRefresh.
	JWKSRefresh time.Duration
	// JWKSUnknownKIDInterval is the least time between two on-demand
	// fetches for unknown key ids; 0 means DefaultJWKSUnknownKIDInterval.
	JWKSUnknownKIDInterval time.Duration
	// HTTPClient fetches the JWK Set; nil means a client with a
	// DefaultJWKSTimeout timeout. Every fetch is also bounded by 10 s.
	HTTPClient *http.Client
	// Algorithms are the only signing algorithms accepted ("alg"). Empty
	// means derived from the keys: HS256 with HMACSecret; RS256 for RSA
	// keys; ES256, ES384, ES512 for P-256, P-384, P-521 keys; RS256 and
	// ES256 with JWKSURL. Listed algorithms may be HS256, HS384, HS512,
	// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, each
	// backed by a configured key of its type (an RSA or ECDSA algorithm is
	// backed by JWKSURL too); "none" is refused.
	Algorithms []string
	// Issuer and Audience, when set, must be the token's "iss" and one of
	// its "aud".
	Issuer, Audience string
	// Leeway is the clock skew allowed when checking "exp", "nbf" and
	// "iat"; 0 means DefaultLeeway, a negative value none.
	Leeway time.Duration
	// RequireExpiry refuses tokens without "exp".
	RequireExpiry bool
	// ChannelsClaim names the claim listing the channels and channel
	// patterns granted to the user (Identity.Channels); empty means
	// DefaultChannelsClaim. When present (and not null) it must be an
	// array of strings.
	ChannelsClaim string
	// InfoClaim names the claim with the user's public info
	// (Identity.Info), any JSON value, kept as it is in the token; empty
	// means DefaultInfoClaim. Absent or null gives a nil Info.
	InfoClaim string
	// Logger receives JWK Set fetch failures (warn); nil means no logs.
	// Tokens and secrets are never logged, nor the JWK Set URL's query.
	Logger *zerolog.Logger
}

// keyKind is the type of key an algorithm verifies with.
type keyKind int

const (
	kindHMAC keyKind = iota + 1
	kindRSA
	kindEC
)

type algInfo struct {
	kind  keyKind
	curve int // kindEC: the curve's bit size
}

// supported are the algorithms JWTOptions.Algorithms may list.
var supported = map[string]algInfo{
	"HS256": {kind: kindHMAC}, "HS384": {kind: kindHMAC}, "HS512": {kind: kindHMAC},
	"RS256": {kind: kindRSA}, "RS384": {kind: kindRSA}, "RS512": {kind: kindRSA},
	"PS256": {kind: kindRSA}, "PS384": {kind: kindRSA}, "PS512": {kind: kindRSA},
	"ES256": {kind: kindEC, curve: 256}, "ES384": {kind: kindEC, curve: 384}, "ES512": {kind: kindEC, curve: 521},
}

// ecAlg is the ES algorithm of a curve size.
var ecAlg = map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}

// JWT verifies JSON Web Tokens: it is an actors.Authenticator. It is safe
// for concurrent use. Close it when it has a JWKSURL.
type JWT struct {
	secret        []byte
	rsaKeys       []*rsa.PublicKey
	ecKeys        []*ecdsa.PublicKey
	jwks          *jwksCache
	algs          []string
	allowed       map[string]bool
	parser        *jwt.Parser
	issuer        string
	audience      string
	requireExpiry bool
	leeway        time.Duration
	channelsClaim string
	infoClaim     string
}

// NewJWT returns a verifier configured by opts. With a JWKSURL it starts
// fetching the JWK Set in the background and returns without waiting: an
// unreachable JWK Set server is logged and retried, and tokens that need
// its keys are refused meanwhile ("key set unavailable").
func NewJWT(opts JWTOptions) (*JWT, error) {
	j := &JWT{
		issuer:        opts.Issuer,
		audience:      opts.Audience,
		requireExpiry: opts.RequireExpiry,
		channelsClaim: opts.ChannelsClaim,
		infoClaim:     opts.InfoClaim,
	}
	if j.channelsClaim == "" {
		j.channelsClaim = DefaultChannelsClaim
	}
	if j.infoClaim == "" {
		j.infoClaim = DefaultInfoClaim
	}
	if len(opts.HMACSecret) > 0 {
		if len(opts.HMACSecret) < MinHMACSecretSize {
			return nil, fmt.Errorf("auth: the HMAC secret is %d bytes; at least %d are needed", len(opts.HMACSecret), MinHMACSecretSize)
		}
		j.secret = bytes.Clone(opts.HMACSecret)
	}
	var derived []string
	if j.secret != nil {
		derived = append(derived, "HS256")
	}
	for i, k := range opts.PublicKeys {
		k, err := checkPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("auth: PublicKeys[%d]: %w", i, err)
		}
		switch k := k.(type) {
		case *rsa.PublicKey:
			j.rsaKeys = append(j.rsaKeys, k)
			derived = append(derived, "RS256")
		case *ecdsa.PublicKey:
			j.ecKeys = append(j.ecKeys, k)
			derived = append(derived, ecAlg[k.Curve.Params().BitSize])
		}
	}
	if opts.JWKSURL != "" {
		u, err := url.Parse(opts.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("auth: JWKSURL %q is not an http or https URL", redactURL(opts.JWKSURL))
		}
		derived = append(derived, "RS256", "ES256")
	}
	if j.secret == nil && len(j.rsaKeys) == 0 && len(j.ecKeys) == 0 && opts.JWKSURL == "" {
		return nil, errors.New("auth: no key: set HMACSecret, PublicKeys or JWKSURL")
	}

	algs := opts.Algorithms
	if len(algs) == 0 {
		algs = derived
	}
	j.allowed = make(map[string]bool)
	for _, a := range algs {
		if strings.EqualFold(a, "none") {
			return nil, errors.New(`auth: algorithm "none" is never allowed`)
		}
		info, ok := supported[a]
		if !ok {
			return nil, fmt.Errorf("auth: algorithm %q is not supported", a)
		}
		switch info.kind {
		case kindHMAC:
			if j.secret == nil {
				return nil, fmt.Errorf("auth: algorithm %s needs HMACSecret", a)
			}
		case kindRSA:
			if len(j.rsaKeys) == 0 && opts.JWKSURL == "" {
				return nil, fmt.Errorf("auth: algorithm %s needs an RSA public key or a JWKSURL", a)
			}
		case kindEC:
			if !slices.ContainsFunc(j.ecKeys, func(k *ecdsa.PublicKey) bool { return k.Curve.Params().BitSize == info.curve }) &&
				opts.JWKSURL == "" {
				return nil, fmt.Errorf("auth: algorithm %s needs a P-%d public key or a JWKSURL", a, info.curve)
			}
		}
		if !j.allowed[a] {
			j.allowed[a] = true
			j.algs = append(j.algs, a)
		}
	}

	leeway := opts.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	} else if leeway < 0 {
		leeway = 0
	}
	j.leeway = leeway
	popts := []jwt.ParserOption{jwt.WithValidMethods(slices.Clone(j.algs)), jwt.WithLeeway(leeway), jwt.WithIssuedAt()}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	if opts.RequireExpiry {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	j.parser = jwt.NewParser(popts...)

	if opts.JWKSURL != "" {
		j.jwks = newJWKSCache(opts)
	}
	return j, nil
}

// Algorithms returns the signing algorithms the verifier accepts.
func (j *JWT) Algorithms() []string { return slices.Clone(j.algs) }

// Close stops the JWK Set refresher and waits for it. It is idempotent,
// and a no-op without JWKSURL. Tokens are still verified after Close,
// against the keys fetched before.
func (j *JWT) Close() {
	if j.jwks != nil {
		j.jwks.close()
	}
}

// Authenticate verifies token and returns the identity it proves:
// UserID from "sub", Channels from the channels claim, Info from the info
// claim and ExpiresAt from "exp". Every error wraps ErrInvalidToken and
// reads "invalid token: <reason>", a short text fit for the client; the
// underlying cause (a golang-jwt error, ctx.Err(), ...) is wrapped too, for
// errors.Is, but not shown. A JWK Set fetch for an unknown key id is given
// up when ctx ends.
func (j *JWT) Authenticate(ctx context.Context, token string) (*actors.Identity, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid(reasonTooLarge)
	}
	if token == "" {
		return nil, invalid(reasonMalformed)
	}
	claims := &tokenClaims{}
	tok, err := j.parser.ParseWithClaims(token, claims, j.keyfunc(ctx))
	if err != nil {
		return nil, j.refusal(tok, claims, err)
	}
	if claims.raw == nil { // "null": golang-jwt decodes it without calling UnmarshalJSON
		return nil, invalid(reasonMalformed)
	}
	if claims.Subject == "" {
		return nil, invalid(reasonNoSubject)
	}
	id := &actors.Identity{UserID: claims.Subject}
	if claims.ExpiresAt != nil {
		// The token is accepted until exp plus the leeway; the session
		// lasts as long.
		id.ExpiresAt = claims.ExpiresAt.Time.Add(j.leeway)
	}
	if v, ok := claims.raw[j.channelsClaim]; ok && !isNull(v) {
		if id.Channels, err = channelList(v); err != nil {
			return nil, invalid(fmt.Sprintf("claim %s must be an array of channel names", quoteShort(j.channelsClaim)))
		}
	}
	if v, ok := claims.raw[j.infoClaim]; ok && !isNull(v) {
		id.Info = v
	}
	return id, nil
}

// keyfunc returns the keys a token may be verified with. The token's
// algorithm is one of j.algs (the parser checked it), and the key type
// follows from it, never from the token's key id or the key found: the
// HMAC secret for HS*, RSA keys for RS*/PS*, ECDSA keys on the
// algorithm's curve for ES*.
func (j *JWT) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		var (
			want algInfo
			keys []jwt.VerificationKey
		)
		switch m := t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			if j.secret == nil || !j.allowed[alg] {
				return nil, invalid(fmt.Sprintf("signing method %s is not allowed", alg))
			}
			return j.secret, nil
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
			want = algInfo{kind: kindRSA}
			for _, k := range j.rsaKeys {
				keys = append(keys, k)
			}
		case *jwt.SigningMethodECDSA:
			want = algInfo{kind: kindEC, curve: m.CurveBits}
			for _, k := range j.ecKeys {
				if k.Curve.Params().BitSize == m.CurveBits {
					keys = append(keys, k)
				}
			}
		default:
			return nil, invalid(fmt.Sprintf("signing method %s is not allowed", alg))
		}
		if want != supported[alg] || !j.allowed[alg] { // a method registered under another name
			return nil, invalid(fmt.Sprintf("signing method %s is not allowed", alg))
		}
		if j.jwks != nil {
			kid, hasKID := t.Header["kid"]
			if hasKID && kid != "" {
				kid, ok := kid.(string)
				if !ok {
					return nil, invalid(reasonMalformed)
				}
				found, err := j.jwks.byKID(ctx, kid)
				fit := fitting(found, alg, want)
				switch {
				case len(fit) > 0:
					keys = append(fit, keys...)
				case len(keys) > 0:
					// Not a JWK Set key: try the configured PublicKeys.
				case len(found) > 0:
					return nil, invalid(fmt.Sprintf("key id %s does not match signing method %s", quoteShort(kid), alg))
				case !j.jwks.fetched():
					return nil, &tokenError{reason: reasonUnavailable, cause: err}
				default:
					return nil, invalidf(err, "unknown key id %s", quoteShort(kid))
				}
			} else {
				all, err := j.jwks.all(ctx)
				keys = append(keys, fitting(all, alg, want)...)
				if len(keys) == 0 && !j.jwks.fetched() {
					return nil, &tokenError{reason: reasonUnavailable, cause: err}
				}
			}
		}
		if len(keys) == 0 {
			return nil, invalid(fmt.Sprintf("no key for signing method %s", alg))
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
}

// refusal turns a golang-jwt error into the client-facing one.
func (j *JWT) refusal(tok *jwt.Token, claims *tokenClaims, err error) error {
	var te *tokenError
	if errors.As(err, &te) { // from the keyfunc or the claims' decoding
		return te
	}
	wrap := func(reason string) error { return &tokenError{reason: reason, cause: err} }
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed),
		errors.Is(err, jwt.ErrTokenInvalidClaims) && claims.raw == nil: // claims "null"
		return wrap(reasonMalformed)
	case tok != nil && tok.Method == nil && errors.Is(err, jwt.ErrTokenUnverifiable):
		if alg, ok := tok.Header["alg"].(string); ok && alg != "" {
			return wrap(fmt.Sprintf("signing method %s is not supported", quoteShort(alg)))
		}
		return wrap(reasonNoAlg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && !j.allowed[tok.Method.Alg()] {
			return wrap(fmt.Sprintf("signing method %s is not allowed", tok.Method.Alg()))
		}
		return wrap(reasonSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return wrap(reasonExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return wrap(reasonNotYetValid)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return wrap(reasonIssuedFuture)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case j.requireExpiry && claims.ExpiresAt == nil:
			return wrap(reasonNoExpiry)
		case j.issuer != "" && claims.Issuer == "":
			return wrap(reasonNoIssuer)
		default:
			return wrap(reasonNoAudience)
		}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return wrap(reasonWrongIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return wrap(reasonWrongAudience)
	}
	return wrap(reasonUnverifiable)
}

// tokenClaims are a token's claims: the registered ones, decoded with a
// precise error for each of the wrong type, and all of them raw, for the
// configurable channels and info claims.
type tokenClaims struct {
	jwt.RegisteredClaims
	raw map[string]json.RawMessage
}

// UnmarshalJSON decodes the claims set, which must be a JSON object.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return err
	}
	if c.raw == nil {
		return errors.New("the claims set is null")
	}
	for name, dst := range map[string]*string{"iss": &c.Issuer, "sub": &c.Subject, "jti": &c.ID} {
		if v, ok := c.raw[name]; ok && !isNull(v) {
			if v[0] != '"' || json.Unmarshal(v, dst) != nil {
				return claimError(name, "a string")
			}
		}
	}
	for name, dst := range map[string]**jwt.NumericDate{"exp": &c.ExpiresAt, "nbf": &c.NotBefore, "iat": &c.IssuedAt} {
		if v, ok := c.raw[name]; ok && !isNull(v) {
			if (v[0] != '-' && (v[0] < '0' || v[0] > '9')) || json.Unmarshal(v, dst) != nil {
				return claimError(name, "a number")
			}
		}
	}
	if v, ok := c.raw["aud"]; ok && !isNull(v) {
		if json.Unmarshal(v, &c.Audience) != nil {
			return claimError("aud", "a string or an array of strings")
		}
	}
	return nil
}

func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}

// channelList decodes an array of strings, refusing nulls and other types.
func channelList(v json.RawMessage) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return nil, err
	}
	if items == nil {
		return nil, errors.New("not an array")
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		var s string
		if len(it) == 0 || it[0] != '"' {
			return nil, errors.New("not a string")
		}
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
