package test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/server"
)

// TestBadInput sends every kind of malformed request while another client
// holds a long-poll, and checks that each gets a clear error and that the
// other client is still served afterwards.
func TestBadInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{MaxBody: 64 << 10})
	good := newClient(t, srv).start()
	good.subscribe("/still/here")
	held := make(chan []msg, 1)
	go func() { held <- good.connect() }()

	c := newClient(t, srv).start()
	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code        string
	}{
		{"malformed JSON", "application/json", []byte(`[{"channel":"/a",`), 400, "400"},
		{"not JSON at all", "application/json", []byte(`hello`), 400, "400"},
		{"JSON scalar", "application/json", []byte(`"x"`), 400, "400"},
		{"empty body", "application/json", nil, 400, "400"},
		{"empty batch", "application/json", []byte(`[]`), 400, "400"},
		{"too large", "application/json", bytes.Repeat([]byte(" "), 65<<10), 413, "413"},
		{"unknown content type", "application/xml", []byte(`<a/>`), 415, "400"},
		{"form without message", "application/x-www-form-urlencoded", []byte(`foo=bar`), 400, "400"},
		{"form with bad JSON", "application/x-www-form-urlencoded", []byte(`message=%7Bnope`), 400, "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, r := c.raw(tc.contentType, tc.body)
			if status != tc.status || len(r) != 1 || r[0]["successful"] != false || errorCode(r[0]) != tc.code {
				t.Fatalf("want %d with a %s Bayeux error, got %d %v", tc.status, tc.code, status, r)
			}
		})
	}

	t.Run("wrong field types", func(t *testing.T) {
		// Each bad message gets its own 400; the good one in the same batch is served.
		body := fmt.Sprintf(`[{"channel":5,"clientId":%[1]q},{"channel":"/still/here","clientId":%[1]q,"data":"ok","id":"good"},`+
			`{"channel":"/meta/subscribe","clientId":%[1]q,"subscription":{"a":1},"id":"s"},{"channel":"/x","clientId":%[1]q,"data":1,"id":[1]},`+
			`{"channel":"/meta/connect","clientId":%[1]q,"connectionType":"long-polling","advice":{"timeout":"soon"}},7]`, c.id)
		status, r := c.raw("application/json", []byte(body))
		if status != 200 || len(r) != 6 {
			t.Fatalf("want 6 replies, got %d %v", status, r)
		}
		for i, rep := range r {
			if i == 1 {
				if rep["successful"] != true || rep["id"] != "good" {
					t.Errorf("good message in a bad batch: %v", rep)
				}
				continue
			}
			if rep["successful"] != false || errorCode(rep) != "400" {
				t.Errorf("reply %d: want a 400, got %v", i, rep)
			}
		}
		if r[2]["id"] != "s" || r[2]["channel"] != "/meta/subscribe" {
			t.Errorf("error reply does not name the message: %v", r[2])
		}
	})

	t.Run("method", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, c.url, strings.NewReader(`[]`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
			t.Fatalf("PUT: %d allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("truncated request", func(t *testing.T) {
		// A client that promises a body and hangs up half way.
		conn, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /cometd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"channel\":")
		conn.Close()
	})

	if r := c.publish("/still/here", "after"); r["successful"] != true {
		t.Fatalf("publish after the bad requests: %v", r)
	}
	select {
	case r := <-held:
		if len(r) < 2 || r[0]["data"] != "ok" {
			t.Fatalf("held client after bad input: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held client was not served after the bad requests")
	}
	if got := good.deliveries(1, 5*time.Second); len(got) != 1 || got[0]["data"] != "after" {
		t.Fatalf("later delivery: %v", got)
	}
}

func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	resp, err := http.Post(srv.URL()+"/cometd/handshake", "application/json",
		strings.NewReader(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("sub-path handshake: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = http.Get(srv.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
}

func TestCORSWiring(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{AllowedOrigins: []string{"http://app.example"}})
	for _, tc := range []struct {
		origin string
		status int
		allow  string
	}{
		{"http://app.example", 204, "http://app.example"},
		{"http://evil.example", 403, ""},
	} {
		req, _ := http.NewRequest(http.MethodOptions, srv.URL()+"/cometd/connect", nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Access-Control-Allow-Origin") != tc.allow {
			t.Errorf("preflight from %s: %d %q", tc.origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/cometd", strings.NewReader(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`))
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("cross-origin handshake headers: %v", resp.Header)
	}
}
