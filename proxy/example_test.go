package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/proxy"
)

func ExampleNew() {
	// The application's backend: it names the user from a cookie at
	// handshake and lets users subscribe to /chat/* but not /chat/admin.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Event   string              `json:"event"`
			Channel string              `json:"channel"`
			Headers map[string][]string `json:"headers"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case req.Event == "handshake" && len(req.Headers["Cookie"]) > 0:
			user := strings.TrimPrefix(req.Headers["Cookie"][0], "user=")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"allow": true, "user": user, "channels": []string{"/user/" + user + "/**"},
			})
		case req.Event == "handshake":
			fmt.Fprint(w, `{"allow": false, "reason": "Log in first"}`)
		case req.Channel == "/chat/admin":
			fmt.Fprint(w, `{"allow": false, "reason": "Admins only"}`)
		default:
			fmt.Fprint(w, `{"allow": true}`)
		}
	}))
	defer backend.Close()

	p, err := proxy.New(proxy.Options{
		HandshakeURL: backend.URL + "/handshake",
		SubscribeURL: backend.URL + "/subscribe",
		Headers:      []string{"Cookie"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The hub would be given p.Handshake() and p.Subscribe() as its
	// HandshakeHook and SubscribeHook; here they are called directly.
	ctx := context.Background()

	res, err := p.Handshake().Check(ctx, &actors.HookRequest{
		Event: actors.HookHandshake, ClientID: "c1",
		Header: http.Header{"Cookie": {"user=alice"}},
	})
	fmt.Println("handshake:", res.UserID, res.Channels, err)

	_, err = p.Handshake().Check(ctx, &actors.HookRequest{Event: actors.HookHandshake, ClientID: "c2"})
	fmt.Println("anonymous handshake:", err)

	for _, ch := range []string{"/chat/demo", "/chat/admin"} {
		_, err := p.Subscribe().Check(ctx, &actors.HookRequest{
			Event: actors.HookSubscribe, ClientID: "c1", UserID: "alice", Channel: ch,
		})
		fmt.Println("subscribe", ch+":", err)
	}

	fmt.Println("publish proxied:", p.Publish() != nil)

	fmt.Printf("%+v\n", p.Stats()[actors.HookSubscribe])

	// With the backend down, the hook cannot decide: the hub answers 503.
	backend.Close()
	down, _ := proxy.New(proxy.Options{SubscribeURL: backend.URL + "/subscribe"})
	_, err = down.Subscribe().Check(ctx, &actors.HookRequest{Event: actors.HookSubscribe, Channel: "/chat/demo"})
	fmt.Println("backend down:", err, errors.Is(err, actors.ErrHookUnavailable))
	// Output:
	// handshake: alice [/user/alice/**] <nil>
	// anonymous handshake: Log in first
	// subscribe /chat/demo: <nil>
	// subscribe /chat/admin: Admins only
	// publish proxied: false
	// {Calls:2 Allowed:1 Refused:1 Unavailable:0 Timeouts:0 Busy:0}
	// backend down: backend unavailable: connection refused true
}
