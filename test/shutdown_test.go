package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/server"
)

// TestShutdownLosesNoAcceptedPublish publishes without pause while
// subscribers poll, shuts the server down in the middle, and checks that
// every publish the server acknowledged reached every subscriber.
func TestShutdownLosesNoAcceptedPublish(t *testing.T) {
	t.Parallel()
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", StatsChannel: "-", ShutdownGrace: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const subscribers = 5
	hc := &http.Client{Timeout: 20 * time.Second}
	post := func(body string) ([]msg, error) {
		resp, err := hc.Post(srv.URL()+"/cometd", "application/json", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out []msg
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, err
		}
		return out, nil
	}
	subs := make([]*client, subscribers)
	for i := range subs {
		subs[i] = newClient(t, srv).start()
		subs[i].subscribe("/stop/test")
	}
	pub := newClient(t, srv).start()

	var wg sync.WaitGroup
	got := make([][]float64, subscribers)
	for i, c := range subs {
		body := fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, c.id)
		wg.Go(func() {
			for {
				r, err := post(body)
				if err != nil {
					return // the server is gone
				}
				for _, m := range r {
					if m["channel"] == "/stop/test" {
						got[i] = append(got[i], m["data"].(float64))
					} else if m["channel"] == "/meta/connect" && m["successful"] != true {
						return
					}
				}
			}
		})
	}
	var acked []float64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for seq := 0; ; seq++ {
			r, err := post(fmt.Sprintf(`[{"channel":"/stop/test","clientId":%q,"data":%d}]`, pub.id, seq))
			if err != nil || len(r) != 1 {
				return
			}
			if r[0]["successful"] != true {
				if errorCode(r[0]) != "503" {
					t.Errorf("publish refused with %v", r[0])
				}
				return
			}
			acked = append(acked, float64(seq))
		}
	}()
	// Shut down in the middle of the traffic: once a good number of
	// publishes have been accepted and delivered.
	checkFor(t, 30*time.Second, 2*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Published < 100 || st.Delivered < 100*subscribers {
			return fmt.Errorf("%d publishes accepted, %d delivered so far", st.Published, st.Delivered)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-pubDone
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d publishes before shutdown: the test proved little", len(acked))
	}
	for i, g := range got {
		if len(g) < len(acked) {
			t.Errorf("subscriber %d got %d of %d acknowledged messages", i, len(g), len(acked))
			continue
		}
		for j, seq := range acked {
			if g[j] != seq {
				t.Fatalf("subscriber %d: message %d is %v, want %v", i, j, g[j], seq)
			}
		}
	}
	t.Logf("%d publishes acknowledged before shutdown; each of %d subscribers got all of them", len(acked), subscribers)
}
