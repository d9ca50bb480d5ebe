// Package auth verifies the JSON Web Tokens clients present at handshake:
// JWT implements actors.Authenticator. It also mints tokens (Mint,
// MintHS256), for tests, the `bayeuxhub token` command and operators'
// scripts, and loads PEM keys.
//
// # Keys and algorithms
//
// A JWT verifier has one or more key sources: an HMAC secret
// (JWTOptions.HMACSecret, at least 32 bytes), RSA or ECDSA public keys
// (JWTOptions.PublicKeys, e.g. from LoadPublicKeyPEM; RSA keys of at least
// 2048 bits, ECDSA on P-256, P-384, P-521) and a JWK Set URL
// (JWTOptions.JWKSURL).
//
// The accepted algorithms are pinned: a token whose "alg" is not one of
// them is refused before any key is looked at. JWTOptions.Algorithms lists
// them; by default they follow from the keys: HS256 with an HMAC secret,
// RS256 with an RSA key, ES256, ES384 or ES512 with a P-256, P-384 or P-521
// key, and RS256 and ES256 with a JWK Set. NewJWT refuses "none", unknown
// algorithms and any algorithm without a configured key of its type
// (RS*/PS* need an RSA key or a JWK Set, ES* a key on the curve or a JWK
// Set, HS* the secret).
//
// The key a token is checked with follows from its (pinned) algorithm,
// never from the token's other headers or the key found: an HMAC algorithm
// is verified with the HMAC secret only, so a token "signed" with HS256
// using an RSA public key as the secret fails, whether or not a secret is
// configured; an RSA algorithm (RS*, PS*) with each RSA key, an ECDSA one
// with each ECDSA key on its curve. With a JWK Set and a token that has a
// key id ("kid"), the set's keys with that id come first, then the
// PublicKeys; without a key id, all the set's keys of the right type are
// tried with the PublicKeys. A JWK whose "alg" is set must match the
// token's. Only public RSA and ECDSA keys of the set whose "use" is absent
// or "sig" (and "key_ops", if any, has "verify") are kept; others, such as
// symmetric "oct" keys, are skipped.
//
// # JWK Set caching and rotation
//
// The JWK Set is fetched (with jwkset, which decodes and validates its
// keys) in the background: NewJWT does not wait for it, and an unreachable
// server does not make it fail; the failure is logged (warn) and the fetch
// retried after 1 s, then 2 s, 4 s, ... up to 5 minutes (never later than
// JWKSRefresh). Once fetched, the set is fetched again every JWKSRefresh
// (default 1 hour); a failed refresh keeps the keys fetched before, and a
// successful one replaces them all, so a key removed from the set stops
// verifying tokens at the next refresh. A token with a key id the cached
// set lacks (a key just rotated in) triggers an immediate fetch, at most
// once per JWKSUnknownKIDInterval (default 30 s; the first one is
// immediate). At most one fetch runs at a time and others join it. The
// fetch is bounded by the HTTP client's timeout (default 5 s), by 10 s and
// by 1 MiB; Authenticate waits for it no longer than its ctx allows (the
// fetch continues, for the next tokens), so a slow or dead JWK Set server
// delays a handshake at most until the hub's auth timeout. Until the set
// was fetched once, tokens that need it fail with "invalid token: key set
// unavailable". Close stops the background fetches.
//
// # Claims
//
// Authenticate checks the signature, then "exp", "nbf" and "iat" (not in
// the future) with JWTOptions.Leeway of clock skew (default 5 s), "iss" and
// "aud" when JWTOptions.Issuer and Audience are set, and that "exp" is
// present with RequireExpiry. Registered claims of the wrong JSON type are
// refused. The identity it returns has:
//
//   - UserID: "sub", which must be a non-empty string;
//   - Channels: the channels claim (JWTOptions.ChannelsClaim, default
//     "channels"), an array of channel names and patterns, when present;
//   - Info: the info claim (JWTOptions.InfoClaim, default "info"), any
//     JSON value, kept as it is in the token, when present and not null;
//   - ExpiresAt: "exp" plus the leeway, when present: the time the token
//     stops being accepted, when the hub ends the session.
//
// Tokens longer than MaxTokenSize (64 KiB) are refused without decoding.
//
// # Errors
//
// Every error Authenticate returns wraps ErrInvalidToken and reads
// "invalid token: <reason>", with a short reason the hub sends to the
// client: "token is malformed", "token is too large", "token has expired",
// "token is not valid yet", "token is issued in the future", "signature is
// invalid", "signing method HS256 is not allowed", `signing method "XY1"
// is not supported`, "token has no signing method", `unknown key id "k2"`,
// `key id "k1" does not match signing method ES256`, "no key for signing
// method ES384", "key set unavailable", "token has no subject", "token has
// no expiry", "token has no issuer", "wrong issuer", "token has no
// audience", "wrong audience", `claim "sub" must be a string`, `claim
// "exp" must be a number`, `claim "aud" must be a string or an array of
// strings`, `claim "channels" must be an array of channel names`, and, for
// anything else golang-jwt refuses, "token is unverifiable". The
// underlying cause (a golang-jwt error, a context error) is wrapped too,
// for errors.Is, but is not part of the text.
//
// # Secrets
//
// Tokens, HMAC secrets and keys are never logged, nor put in error texts;
// a token's key id or algorithm, quoted and cut to 40 characters, is the
// only part of a token an error repeats. The JWK Set URL is logged without
// its user info and query.
package auth
