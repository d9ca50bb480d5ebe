package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// MaxReasonBytes is the most of a backend's refusal reason kept (cut at a
// character boundary).
const MaxReasonBytes = 200

// DefaultReason is the reason of a refusal whose answer gave none.
const DefaultReason = "Refused by backend"

type failureKind int

const (
	kindOther   failureKind = iota
	kindTimeout             // the deadline passed during the backend call
	kindBusy                // no slot free before the deadline
)

// failure is a call that got no valid answer. Its text, "backend
// unavailable: " and what, is safe to show a client; the cause (which may
// name the backend's address) is only logged.
type failure struct {
	kind  failureKind
	what  string
	cause error
}

func fail(kind failureKind, what string, cause error) *failure {
	return &failure{kind: kind, what: what, cause: cause}
}

func (e *failure) Error() string { return actors.ErrHookUnavailable.Error() + ": " + e.what }

// Unwrap returns actors.ErrHookUnavailable only: the cause is kept out of
// errors.Is so that a client-facing caller cannot reach internal details
// by accident.
func (e *failure) Unwrap() error { return actors.ErrHookUnavailable }

// refusal is the backend's "allow": false. Its text is the sanitised
// reason.
type refusal struct{ reason string }

func refuse(reason string) *refusal {
	reason = sanitizeReason(reason)
	if reason == "" {
		reason = DefaultReason
	}
	return &refusal{reason: reason}
}

func (e *refusal) Error() string { return e.reason }

// sanitizeReason drops invalid UTF-8 and control characters (newlines and
// tabs included), trims spaces and cuts s to MaxReasonBytes at a character
// boundary.
func sanitizeReason(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > MaxReasonBytes {
		cut := MaxReasonBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func isUnreachable(err error) bool {
	return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

func isTLSError(err error) bool {
	var verr *tls.CertificateVerificationError
	var rerr tls.RecordHeaderError
	var aerr tls.AlertError
	var herr x509.HostnameError
	var uerr x509.UnknownAuthorityError
	var cerr x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &rerr) || errors.As(err, &aerr) ||
		errors.As(err, &herr) || errors.As(err, &uerr) || errors.As(err, &cerr)
}
