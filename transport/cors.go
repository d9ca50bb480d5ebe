package transport

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// corsMaxRequestHeaders caps the Access-Control-Request-Headers value a
// preflight may carry; longer lists are refused.
const corsMaxRequestHeaders = 1024

// corsHeaderName is what a requested header name may look like: a short
// HTTP token of letters, digits and dashes (Content-Type and
// X-Requested-With among them).
var corsHeaderName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// CORS wraps next so that pages on other origins may use it with
// credentials (cookies), as cross-origin long-polling needs.
//
// allowedOrigins lists exact origins ("https://app.example.com",
// scheme://host[:port]; compared case-insensitively, default ports
// ignored, as RFC 6454 serialises them) or "*" for any origin. An empty
// list allows none. The response names the request's own origin, never
// "*", together with Access-Control-Allow-Credentials: true; the opaque
// origin "null" is never allowed. An Origin whose host is the request's
// own Host (http or https) is same-origin: it needs no listing and gets no
// CORS headers. Every response to a request carrying Origin has
// Vary: Origin.
//
// A preflight (OPTIONS with Access-Control-Request-Method) from an allowed
// origin for GET or POST, asking for headers that are plain names (at most
// 1 KiB of them), is answered 204 with the allowed methods, the requested
// headers and a max-age of one day; any other preflight gets 403 with a
// short text body and no CORS headers. A request that is not a preflight,
// OPTIONS included, goes to next (the long-polling transport answers
// OPTIONS 405); from a disallowed origin it goes without CORS headers, so
// the browser keeps the response from the page.
func CORS(allowedOrigins []string, next http.Handler) http.Handler {
	policy := newOriginPolicy(allowedOrigins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin, present := r.Header["Origin"]
		if !present {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		o := ""
		if len(origin) == 1 {
			o = origin[0]
		}
		same, ok := policy.check(o, r.Host)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			preflight(w, r, o, ok)
			return
		}
		if ok && !same {
			h.Set("Access-Control-Allow-Origin", o)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		next.ServeHTTP(w, r)
	})
}

// originPolicy is a compiled allowed-origins list, shared by CORS and the
// WebSocket upgrade check.
type originPolicy struct {
	any     bool
	allowed map[string]bool
}

func newOriginPolicy(allowedOrigins []string) *originPolicy {
	p := &originPolicy{allowed: make(map[string]bool, len(allowedOrigins))}
	for _, o := range allowedOrigins {
		if o == "*" {
			p.any = true
			continue
		}
		if n, ok := normalizeOrigin(strings.TrimSuffix(o, "/")); ok {
			p.allowed[n] = true
		}
	}
	return p
}

// check reports whether origin (one Origin header value) names the
// request's own host, and whether it is allowed: same-origin, listed, or
// any valid origin under "*". The opaque origin "null" and malformed
// values are never allowed.
func (p *originPolicy) check(origin, host string) (same, ok bool) {
	n, valid := normalizeOrigin(origin)
	if !valid {
		return false, false
	}
	same = sameOrigin(n, host)
	return same, same || p.any || p.allowed[n]
}

// OriginChecker returns a function that reports whether a request may
// proceed under the allowed-origins list that CORS takes (same syntax and
// matching): a request without an Origin header (not from a browser page)
// and a same-origin request always may; a request from another origin may
// if it is listed or the list has "*"; "null", malformed or repeated
// Origin headers never may. The WebSocket transport uses it to refuse
// cross-site upgrades, which browsers do not guard with CORS.
func OriginChecker(allowedOrigins []string) func(r *http.Request) bool {
	policy := newOriginPolicy(allowedOrigins)
	return func(r *http.Request) bool {
		origin, present := r.Header["Origin"]
		if !present {
			return true
		}
		if len(origin) != 1 {
			return false
		}
		_, ok := policy.check(origin[0], r.Host)
		return ok
	}
}

// preflight answers a CORS preflight request.
func preflight(w http.ResponseWriter, r *http.Request, origin string, ok bool) {
	method := r.Header.Get("Access-Control-Request-Method")
	reqHeaders := strings.Join(r.Header.Values("Access-Control-Request-Headers"), ",")
	switch {
	case !ok:
		http.Error(w, "CORS: origin not allowed", http.StatusForbidden)
		return
	case method != http.MethodGet && method != http.MethodPost:
		http.Error(w, "CORS: method not allowed", http.StatusForbidden)
		return
	case !safeHeaderList(reqHeaders):
		http.Error(w, "CORS: request headers not allowed", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if strings.TrimSpace(reqHeaders) != "" {
		h.Set("Access-Control-Allow-Headers", reqHeaders)
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// safeHeaderList reports whether an Access-Control-Request-Headers value
// is short and names only plain headers.
func safeHeaderList(list string) bool {
	if len(list) > corsMaxRequestHeaders {
		return false
	}
	if strings.TrimSpace(list) == "" {
		return true
	}
	for name := range strings.SplitSeq(list, ",") {
		if !corsHeaderName.MatchString(strings.TrimSpace(name)) {
			return false
		}
	}
	return true
}

// normalizeOrigin returns an http or https origin in RFC 6454 form,
// lowercased and without a default port, or false if s is not one.
func normalizeOrigin(s string) (string, bool) {
	if s == "" || s == "null" || len(s) > 1024 {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	return scheme + "://" + stripDefaultPort(scheme, strings.ToLower(u.Host)), true
}

// stripDefaultPort removes :80 from an http host and :443 from an https
// one.
func stripDefaultPort(scheme, host string) string {
	if scheme == "http" {
		return strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":443")
}

// sameOrigin reports whether a normalised origin names the request's own
// Host, with either scheme.
func sameOrigin(origin, host string) bool {
	if host == "" {
		return false
	}
	scheme, oh, _ := strings.Cut(origin, "://")
	return oh == stripDefaultPort(scheme, strings.ToLower(host))
}
