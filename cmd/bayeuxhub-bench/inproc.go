package main

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/loadgen"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// inProc is a bayeuxhub server started in this process.
type inProc struct {
	url  string
	hub  *actors.Hub
	stop func(context.Context) error
}

// startInProc starts a bayeuxhub on a free loopback port, keeping a
// history of historySize messages per channel on /bench/** when it is
// positive, with maxInterval as its max interval when that is.
func startInProc(historySize int, maxInterval time.Duration) (*inProc, error) {
	rules, err := benchRules(historySize)
	if err != nil {
		return nil, err
	}
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", Hub: actors.Options{Rules: rules, MaxInterval: maxInterval}})
	if err != nil {
		return nil, err
	}
	u := srv.URL()
	if !strings.HasSuffix(u, "/cometd") {
		u = strings.TrimSuffix(u, "/") + "/cometd"
	}
	return &inProc{url: u, hub: srv.Hub(), stop: srv.Shutdown}, nil
}

// benchRules returns the hub's default channel rules, with a rule
// before them for /bench/** keeping historySize messages per channel when
// it is positive.
func benchRules(historySize int) (*acl.Rules, error) {
	list := acl.Default()
	if historySize > 0 {
		bench := acl.Rule{Name: "bench", Pattern: "/bench/**", Subscribe: acl.Anyone, Publish: acl.Anyone,
			History: acl.History{Size: historySize}}
		list = append([]acl.Rule{bench}, list...)
	}
	return acl.New(list)
}

// localHub adapts the hub's local client API to loadgen.LocalHub.
type localHub struct{ hub *actors.Hub }

var _ loadgen.LocalHub = localHub{}

func (h localHub) NewClient() (loadgen.LocalClient, error) {
	c, err := h.hub.NewLocalClient("")
	if err != nil {
		return nil, err
	}
	return localClient{c}, nil
}

type localClient struct{ c *actors.LocalClient }

func (l localClient) Subscribe(channel string, deliver func(channel string, data []byte)) error {
	return l.c.Subscribe(channel, func(m *actors.Message) { deliver(m.Channel, m.Data) })
}

func (l localClient) Publish(channel string, data []byte, id string) error {
	return l.c.Publish(channel, json.RawMessage(data), actors.WithID(id))
}

func (l localClient) Disconnect() { l.c.Disconnect() }
