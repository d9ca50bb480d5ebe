// Command embed runs a bayeuxhub inside a program's own protoactor-go actor
// system and gorilla/mux router: WebSocket and long-polling at /cometd
// through transport.Attach, with a service, an authorization hook, an
// event callback and a local reply bot. The README's Embedding section
// shows this file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

func main() {
	logger := zerolog.New(os.Stdout).With().Timestamp().Logger()
	system := actor.NewActorSystem() // the program's own actor system

	hub, err := actors.Start(system, actors.Options{
		Alias:          "bayeux", // the hub actor's name in system (the default)
		ConnectTimeout: 2 * time.Minute,
		PollTimeout:    30 * time.Second,
		Logger:         &logger,
		Services: map[string]actors.ServiceFunc{
			"echo": func(c *actors.Client, m *protocol.Message) ([]actors.ServiceReply, error) {
				return []actors.ServiceReply{{Data: m.Data}}, nil
			},
		},
		MessageACL: func(c *actors.Client, m *protocol.Message) error {
			if m.Channel == protocol.MetaSubscribe {
				for _, s := range m.Subscription.Names {
					if strings.HasPrefix(s, "/private/") {
						return errors.New("subscription denied")
					}
				}
			}
			return nil
		},
		Callback: func(e actors.Event) {
			logger.Debug().Str("event", string(e.Type)).Str("client", e.ClientID).Str("channel", e.Channel).Msg("hub event")
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	// A local client: no HTTP, no handshake. It answers every message but its own.
	bot, err := hub.NewLocalClient("reply-bot")
	if err != nil {
		log.Fatal(err)
	}
	err = bot.Subscribe("/chat/demo", func(m *actors.Message) {
		if m.ClientID == bot.ID() {
			return
		}
		var in struct{ User string }
		_ = json.Unmarshal(m.Data, &in)
		_ = bot.Publish(m.Channel, map[string]string{"user": "Autobot", "chat": "I got your message, " + in.User})
	})
	if err != nil {
		log.Fatal(err)
	}

	// Any actor can use the hub by message, addressed by its alias, as POE sessions posted to it.
	system.Root.Send(system.NewLocalPID("bayeux"), &actors.Publish{Channel: "/chat/demo", Data: map[string]string{"user": "system", "chat": "hub up"}})

	// Serve Bayeux on your own router: WebSocket and long-polling at /cometd and below.
	// Attach also makes the hub offer exactly these connection types.
	router := mux.NewRouter()
	bayeux, err := transport.Attach(router, "/cometd", hub, transport.Config{
		Types:       []string{protocol.WebSocket, protocol.LongPolling},
		LongPolling: transport.Options{Logger: &logger},
		WebSocket:   transport.WebSocketOptions{Logger: &logger},
	})
	if err != nil {
		log.Fatal(err)
	}
	router.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:8081")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		// transport.Serve is srv.Serve(ln) that also parks held long polls: no goroutine while they wait.
		if err := transport.Serve(srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()

	// Clean shutdown, in this order.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	warn := func(step string, err error) {
		if err != nil {
			logger.Warn().Err(err).Msg(step)
		}
	}
	warn("drain", hub.Drain(shutdownCtx))              // 1. refuse new publishes; answer held connects with what is queued
	warn("websocket close", bayeux.Close(shutdownCtx)) // 2. write those replies, close the WebSockets with 1001
	warn("http shutdown", srv.Shutdown(shutdownCtx))   // 3. stop accepting HTTP, finish requests in progress
	warn("hub shutdown", hub.Shutdown(shutdownCtx))    // 4. stop the sessions, channels and hub actor
	system.Shutdown()                                  // 5. stop the actor system
}
