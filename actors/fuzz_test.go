package actors

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

var (
	fuzzOnce sync.Once
	fuzzHub  *Hub
	fuzzIDs  []string // live client ids the inputs can refer to as "$0", "$1"
)

// fuzzSetup starts one hub for the whole fuzz run, with two clients whose
// ids inputs can use, and a service.
func fuzzSetup(t testing.TB) {
	fuzzOnce.Do(func() {
		h, err := Start(actor.NewActorSystem(), Options{
			PollTimeout: 50 * time.Millisecond, ConnectTimeout: 5 * time.Second, AnonPublish: true, MaxQueue: 100,
			MaxSessionsPerIP: -1,
			Services: map[string]ServiceFunc{"echo": func(c *Client, m *protocol.Message) ([]ServiceReply, error) {
				return []ServiceReply{{Data: m.Data}}, nil
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		fuzzHub = h
		for range 2 {
			r := h.HandleRemote(context.Background(), RemoteRequest{Messages: []*protocol.Message{{
				Channel: protocol.MetaHandshake, Version: "1.0", SupportedConnectionTypes: []string{"long-polling"}}}})
			var v []map[string]any
			_ = json.Unmarshal([]byte("["+string(r[0])+"]"), &v)
			fuzzIDs = append(fuzzIDs, v[0]["clientId"].(string))
		}
	})
}

// FuzzHandleRemote feeds arbitrary request bodies through the decoder and
// the hub's dispatch. No input may panic, hang, or produce a reply that is
// not JSON; afterwards the hub must still serve a publish. The seed corpus
// is in testdata/fuzz/FuzzHandleRemote as well as below.
func FuzzHandleRemote(f *testing.F) {
	for _, seed := range []string{
		`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"ack":true}}]`,
		`[{"channel":"/meta/connect","clientId":"$0","connectionType":"long-polling","advice":{"timeout":0},"ext":{"ack":3}}]`,
		`[{"channel":"/meta/subscribe","clientId":"$0","subscription":["/a/*","/b/**","/meta/x"]},{"channel":"/a/b","clientId":"$1","data":{"x":1},"id":"7"}]`,
		`[{"channel":"/meta/unsubscribe","clientId":"$0","subscription":"/a/*"},{"channel":"/meta/disconnect","clientId":"$1"}]`,
		`[{"channel":"/service/echo","clientId":"$0","data":[1,2,3]},{"channel":"/service/none","clientId":"$0","data":1}]`,
		`{"channel":"/anon","data":"no client"}`,
		`[{"channel":5},null,{"id":{"a":1}},{"channel":"/x","clientId":"$0","ext":[]}]`,
		`[{"channel":"//meta/connect","clientId":"$0","data":1},{"channel":"/Meta/connect","clientId":"$1","data":1}]`,
		// Issue 15: invalid UTF-8 anywhere, deep and long names, a large id.
		"[{\"channel\":\"/a/b\",\"clientId\":\"$0\",\"data\":\"\xff\xfe\",\"id\":\"\xfe\"},{\"channel\":\"/service/echo\",\"clientId\":\"$1\",\"data\":{\"\xc3\":1}}]",
		"{\"channel\":\"/anon\",\"data\":1,\"ext\":{\"x\":\"\xed\xa0\x80\"}}",
		`[{"channel":"/meta/subscribe","clientId":"$0","subscription":["` + strings.Repeat("/d", 40) + `","/x/` + strings.Repeat("y", 1100) + `"]},` +
			`{"channel":"` + strings.Repeat("/d", 40) + `","clientId":"$1","data":1},{"channel":"/meta/unsubscribe","clientId":"$0","subscription":"` + strings.Repeat("/d", 33) + `"}]`,
		`[{"channel":"/a/b","clientId":"$0","data":1,"id":"` + strings.Repeat("i", 70000) + `"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzSetup(t)
		text := strings.NewReplacer("$0", fuzzIDs[0], "$1", fuzzIDs[1]).Replace(string(body))
		msgs, err := protocol.Decode([]byte(text))
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done := make(chan [][]byte, 1)
		go func() { done <- fuzzHub.HandleRemote(ctx, RemoteRequest{Messages: msgs, RemoteAddr: "127.0.0.1:9"}) }()
		select {
		case parts := <-done:
			for _, p := range parts {
				if !json.Valid(p) || !utf8.Valid(p) {
					t.Fatalf("reply is not JSON in UTF-8: %q", p)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("request hung: %s", text)
		}
		r := fuzzHub.HandleRemote(context.Background(), RemoteRequest{Messages: []*protocol.Message{{
			Channel: "/fuzz/alive", Data: json.RawMessage(`1`)}}})
		if len(r) != 1 || !strings.Contains(string(r[0]), `"successful":true`) {
			t.Fatalf("hub stopped serving after %q: %s", text, r)
		}
	})
}
