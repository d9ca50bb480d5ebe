package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidToken is wrapped by every error Authenticate returns for a
// token that does not verify. The error's text, "invalid token: " and the
// reason, is meant to be shown to the client.
var ErrInvalidToken = errors.New("invalid token")

// tokenError is what Authenticate returns: a short, client-safe reason,
// wrapping ErrInvalidToken and, for the caller's errors.Is, the cause
// (a golang-jwt sentinel, a context error, ...), whose text is not shown.
type tokenError struct {
	reason string
	cause  error
}

func (e *tokenError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

func invalid(reason string) *tokenError { return &tokenError{reason: reason} }

func invalidf(cause error, format string, args ...any) *tokenError {
	return &tokenError{reason: fmt.Sprintf(format, args...), cause: cause}
}

// Client-facing reasons (after "invalid token: ").
const (
	reasonMalformed     = "token is malformed"
	reasonTooLarge      = "token is too large"
	reasonExpired       = "token has expired"
	reasonNotYetValid   = "token is not valid yet"
	reasonIssuedFuture  = "token is issued in the future"
	reasonNoExpiry      = "token has no expiry"
	reasonNoIssuer      = "token has no issuer"
	reasonNoAudience    = "token has no audience"
	reasonWrongIssuer   = "wrong issuer"
	reasonWrongAudience = "wrong audience"
	reasonSignature     = "signature is invalid"
	reasonNoSubject     = "token has no subject"
	reasonNoAlg         = "token has no signing method"
	reasonUnavailable   = "key set unavailable"
	reasonUnverifiable  = "token is unverifiable"
)

// quoteShort quotes an attacker-chosen string (a kid, an alg) for an error
// text, cut to a few dozen characters so that a client cannot make the hub
// echo or log kilobytes.
func quoteShort(s string) string {
	const maxLen = 40
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q", s[:cut]) + "..."
	}
	return fmt.Sprintf("%q", s)
}

// claimError is returned while decoding the claims for a registered claim
// of the wrong JSON type.
func claimError(name, want string) *tokenError {
	return invalid(fmt.Sprintf("claim %s must be %s", quoteShort(name), want))
}

// redactURL keeps a URL's scheme, host and path, for logs: no user info,
// query or fragment, which may carry credentials.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if slash := strings.Index(rest, "/"); slash < 0 || at < slash {
				rest = rest[at+1:]
			}
		}
		u = scheme + "://" + rest
	}
	return u
}
