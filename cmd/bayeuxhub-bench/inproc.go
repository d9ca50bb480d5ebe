package main

import (
	"context"
	"encoding/json"
	"strings"

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

// startInProc starts a bayeuxhub on a free loopback port.
func startInProc() (*inProc, error) {
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	u := srv.URL()
	if !strings.HasSuffix(u, "/cometd") {
		u = strings.TrimSuffix(u, "/") + "/cometd"
	}
	return &inProc{url: u, hub: srv.Hub(), stop: srv.Shutdown}, nil
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
