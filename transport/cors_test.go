package transport

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	const app = "https://app.example.com"
	listed := []string{app, "HTTP://Other.Example.com:8080/", "https://default.example.com:443"}
	corsHeaders := []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age", "Vary"}

	tests := []struct {
		name    string
		allowed []string
		method  string
		host    string            // default "bayeux.example.com"
		header  map[string]string // request headers
		status  int
		reached bool              // next was called
		want    map[string]string // exactly these of corsHeaders are set
		body    string            // prefix of the body, when set
	}{
		{name: "no origin", allowed: listed, method: "POST", status: 200, reached: true, want: map[string]string{}},
		{name: "no origin, nothing allowed", method: "GET", status: 200, reached: true, want: map[string]string{}},
		{name: "listed origin", allowed: listed, method: "POST", header: map[string]string{"Origin": app},
			status: 200, reached: true, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
		{name: "listed origin, GET", allowed: listed, method: "GET", header: map[string]string{"Origin": app},
			status: 200, reached: true, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
		{name: "listed origin case-insensitive, trailing slash in the list", allowed: listed, method: "POST",
			header: map[string]string{"Origin": "http://other.example.com:8080"},
			status: 200, reached: true, want: map[string]string{
				"Access-Control-Allow-Origin": "http://other.example.com:8080", "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
		{name: "default port in the list", allowed: listed, method: "POST",
			header: map[string]string{"Origin": "https://default.example.com"},
			status: 200, reached: true, want: map[string]string{
				"Access-Control-Allow-Origin": "https://default.example.com", "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
		{name: "other port is another origin", allowed: listed, method: "POST",
			header: map[string]string{"Origin": "https://app.example.com:8443"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "other scheme is another origin", allowed: listed, method: "POST",
			header: map[string]string{"Origin": "http://app.example.com"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "suffix is not a match", allowed: listed, method: "POST",
			header: map[string]string{"Origin": "https://app.example.com.evil.test"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "nothing allowed by default", method: "POST", header: map[string]string{"Origin": app},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "wildcard reflects the origin", allowed: []string{"*"}, method: "POST",
			header: map[string]string{"Origin": "https://anywhere.test"},
			status: 200, reached: true, want: map[string]string{
				"Access-Control-Allow-Origin": "https://anywhere.test", "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
		{name: "wildcard never allows null", allowed: []string{"*"}, method: "POST",
			header: map[string]string{"Origin": "null"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "wildcard refuses a non-http origin", allowed: []string{"*"}, method: "POST",
			header: map[string]string{"Origin": "file://"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "wildcard refuses an origin with a path", allowed: []string{"*"}, method: "POST",
			header: map[string]string{"Origin": "https://a.test/x"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "same origin http passes unlisted", method: "POST", host: "bayeux.example.com:8080",
			header: map[string]string{"Origin": "http://bayeux.example.com:8080"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "same origin https default port", method: "POST", host: "Bayeux.Example.com",
			header: map[string]string{"Origin": "https://bayeux.example.com"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},
		{name: "same host other port is cross-origin", method: "POST", host: "bayeux.example.com:8080",
			header: map[string]string{"Origin": "http://bayeux.example.com:9090"},
			status: 200, reached: true, want: map[string]string{"Vary": "Origin"}},

		{name: "preflight allowed", allowed: listed, method: "OPTIONS",
			header: map[string]string{"Origin": app, "Access-Control-Request-Method": "POST",
				"Access-Control-Request-Headers": "content-type,x-requested-with"},
			status: 204, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Allow-Headers": "content-type,x-requested-with",
				"Access-Control-Max-Age": "86400", "Vary": "Origin"}},
		{name: "preflight without requested headers", allowed: []string{"*"}, method: "OPTIONS",
			header: map[string]string{"Origin": app, "Access-Control-Request-Method": "GET"},
			status: 204, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "86400", "Vary": "Origin"}},
		{name: "preflight same origin", method: "OPTIONS", host: "bayeux.example.com",
			header: map[string]string{"Origin": "https://bayeux.example.com", "Access-Control-Request-Method": "POST"},
			status: 204, want: map[string]string{
				"Access-Control-Allow-Origin": "https://bayeux.example.com", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "86400", "Vary": "Origin"}},
		{name: "preflight disallowed origin", allowed: listed, method: "OPTIONS",
			header: map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
			status: 403, want: map[string]string{"Vary": "Origin"}, body: "CORS: origin not allowed"},
		{name: "preflight with nothing allowed", method: "OPTIONS",
			header: map[string]string{"Origin": app, "Access-Control-Request-Method": "POST"},
			status: 403, want: map[string]string{"Vary": "Origin"}, body: "CORS: origin not allowed"},
		{name: "preflight without origin", allowed: []string{"*"}, method: "OPTIONS",
			header: map[string]string{"Access-Control-Request-Method": "POST"},
			status: 200, reached: true, want: map[string]string{}},
		{name: "preflight for PUT", allowed: listed, method: "OPTIONS",
			header: map[string]string{"Origin": app, "Access-Control-Request-Method": "PUT"},
			status: 403, want: map[string]string{"Vary": "Origin"}, body: "CORS: method not allowed"},
		{name: "preflight bad header name", allowed: listed, method: "OPTIONS",
			header: map[string]string{"Origin": app, "Access-Control-Request-Method": "POST",
				"Access-Control-Request-Headers": "content-type, x\"y"},
			status: 403, want: map[string]string{"Vary": "Origin"}, body: "CORS: request headers not allowed"},
		{name: "preflight header list too long", allowed: listed, method: "OPTIONS",
			header: map[string]string{"Origin": app, "Access-Control-Request-Method": "POST",
				"Access-Control-Request-Headers": strings.Repeat("x-a,", 300) + "x-a"},
			status: 403, want: map[string]string{"Vary": "Origin"}, body: "CORS: request headers not allowed"},
		{name: "plain OPTIONS goes to next", allowed: listed, method: "OPTIONS",
			header: map[string]string{"Origin": app},
			status: 200, reached: true, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reached := false
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte("[]"))
			})
			req := httptest.NewRequest(tc.method, "http://bayeux.example.com/cometd", strings.NewReader("[]"))
			req.Host = "bayeux.example.com"
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			CORS(tc.allowed, next).ServeHTTP(rec, req)

			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if reached != tc.reached {
				t.Errorf("next reached: %v, want %v", reached, tc.reached)
			}
			got := map[string]string{}
			for _, k := range corsHeaders {
				if v := rec.Header().Values(k); len(v) > 0 {
					got[k] = strings.Join(v, "|")
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("headers\n got %v\nwant %v", got, tc.want)
			}
			if got["Access-Control-Allow-Origin"] == "*" {
				t.Error("Access-Control-Allow-Origin: * sent")
			}
			if tc.body != "" && !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Errorf("body %q, want %q", rec.Body.String(), tc.body)
			}
		})
	}
}

// TestCORSKeepsVaryOfNext checks that Vary: Origin is added to, not
// replacing, what the handler varies on.
func TestCORSKeepsVaryOfNext(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
	})
	req := httptest.NewRequest("POST", "http://h.test/cometd", nil)
	req.Header.Set("Origin", "https://a.test")
	rec := httptest.NewRecorder()
	CORS([]string{"https://a.test"}, next).ServeHTTP(rec, req)
	if got := rec.Header().Values("Vary"); !reflect.DeepEqual(got, []string{"Origin", "Accept-Encoding"}) {
		t.Fatalf("Vary %q", got)
	}
}

// TestCORSWithLongPolling checks the middleware in front of the real
// transport: a cross-origin Bayeux request gets the transport's answer and
// the CORS headers, and a plain OPTIONS gets the transport's 405.
func TestCORSWithLongPolling(t *testing.T) {
	h := CORS([]string{"https://app.example.com"}, NewLongPolling(nil, Options{}))
	req := httptest.NewRequest("OPTIONS", "http://h.test/cometd", nil)
	req.Header.Set("Origin", "https://app.example.com")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, POST" ||
		rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("plain OPTIONS: %d %v", rec.Code, rec.Header())
	}
}
