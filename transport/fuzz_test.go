package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coder/websocket"
	"github.com/gorilla/mux"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// The fuzz targets below drive the whole HTTP path (method, headers,
// query, body) and WebSocket frames into one hub with small byte limits.
// Whatever the input: no panic, no hang, an HTTP answer with a known
// status or a frame of JSON, and the hub's memory for its clients stays
// under its configured total.

const fuzzTotalBytes = 1 << 20

var (
	fuzzOnce sync.Once
	fuzzSrv  *httptest.Server
	fuzzHub  *actors.Hub
)

func fuzzServer(t testing.TB) (*httptest.Server, *actors.Hub) {
	fuzzOnce.Do(func() {
		hub, err := actors.Start(actor.NewActorSystem(), actors.Options{
			PollTimeout: 20 * time.Millisecond, AnonPublish: true, MaxSessionsPerIP: -1,
			MaxSessionBytes: 64 << 10, MaxBytesPerIP: 256 << 10, MaxTotalBytes: fuzzTotalBytes,
			QueuePolicy: actors.QueueDropOldest,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := mux.NewRouter()
		if _, err := Attach(r, "/cometd", hub, Config{}); err != nil {
			t.Fatal(err)
		}
		fuzzHub, fuzzSrv = hub, httptest.NewServer(r)
	})
	return fuzzSrv, fuzzHub
}

// checkHub asserts the invariants that hold after every input.
func checkHub(t *testing.T, hub *actors.Hub) {
	t.Helper()
	if st := hub.Stats(); st.QueuedBytes > fuzzTotalBytes+(64<<10) {
		t.Fatalf("the hub keeps %d bytes for its clients, over its total of %d", st.QueuedBytes, fuzzTotalBytes)
	}
}

// FuzzHTTPRequest sends one arbitrary HTTP request to the Bayeux endpoint.
func FuzzHTTPRequest(f *testing.F) {
	seeds := []struct {
		method, ctype, query, body string
	}{
		{"POST", "application/json", "", `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`},
		{"POST", "application/json", "", `[{},{},{},{},{}]`},
		{"POST", "application/x-www-form-urlencoded", "", `message=%5B%7B%22channel%22%3A%22%2Fa%22%2C%22data%22%3A1%7D%5D`},
		{"GET", "", "message=%5B%7B%22channel%22%3A%22%2Fa%22%2C%22data%22%3A1%7D%5D&jsonp=cb", ""},
		{"GET", "", "message=[{\"channel\":\"/meta/connect\"}]&jsonp=a.b", ""},
		{"POST", "text/plain", "", "\xff\xfe"},
		{"POST", "application/json", "", `[{"channel":"/a","data":"\ud800"}]`},
		{"DELETE", "application/json", "", `[]`},
		{"POST", "application/json", "", `[{"channel":"/` + strings.Repeat("a/", 200) + `b","data":1}]`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.ctype, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, ctype, query string, body []byte) {
		srv, hub := fuzzServer(t)
		if len(method) == 0 || len(method) > 10 || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			method = "POST"
		}
		if _, err := url.ParseQuery(query); err != nil {
			query = ""
		}
		req, err := http.NewRequest(method, srv.URL+"/cometd?"+query, bytes.NewReader(body))
		if err != nil {
			return
		}
		if ctype != "" && validHeaderValue(ctype) {
			req.Header.Set("Content-Type", ctype)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusServiceUnavailable:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
		checkHub(t, hub)
	})
}

// validHeaderValue reports whether net/http's client would send v as a
// header value (no control characters but tab): the fuzzer's other values
// would be refused by the client, not reach the server.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzWebSocketFrames sends arbitrary text frames on one WebSocket; every
// reply frame must be a JSON array, and the connection must end cleanly
// (a close, not a hang) when the input is not Bayeux.
func FuzzWebSocketFrames(f *testing.F) {
	f.Add([]byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]`), []byte(`[{"channel":"/a","data":1}]`))
	f.Add([]byte(`[{},{},{}]`), []byte(`{}`))
	f.Add([]byte("\xff\xfe"), []byte(`[{"channel":"/meta/connect","connectionType":"websocket"}]`))
	f.Add([]byte(`[{"channel":"/a","data":"x","id":"`+strings.Repeat("i", 5000)+`"}]`), []byte(`null`))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		srv, hub := fuzzServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/cometd", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		for _, frame := range [][]byte{first, second} {
			if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
				break // the server closed: a clear end, checked below
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			typ, data, err := c.Read(rctx)
			rcancel()
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("the connection hung: %v", err)
				}
				break // closed, or nothing to answer (a held connect)
			}
			var v []json.RawMessage
			if typ != websocket.MessageText || json.Unmarshal(data, &v) != nil {
				t.Fatalf("reply frame is not a JSON array: %q", data)
			}
		}
		checkHub(t, hub)
	})
}
