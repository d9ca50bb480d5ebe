// Command embed runs a bayeuxhub inside a program's own protoactor-go actor
// system and gorilla/mux router, with a service, an authorization hook, an
// event callback and a local reply bot. The README's Embedding section
// shows this file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
	"github.com/bayeuxhub/bayeuxhub/server"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

func main() {
	logger := zerolog.New(os.Stdout).With().Timestamp().Logger()
	system := server.NewActorSystem(logger) // or your own *actor.ActorSystem

	hub, err := actors.Start(system, actors.Options{
		Alias:          "bayeux",
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

	// Any actor can use the hub by message, as POE sessions posted to its alias.
	system.Root.Send(hub.PID(), &actors.Publish{Channel: "/chat/demo", Data: map[string]string{"user": "system", "chat": "hub up"}})

	// Mount Bayeux on your own router.
	router := mux.NewRouter()
	transport.NewLongPolling(hub, transport.Options{Logger: &logger}).Register(router, "/cometd")
	router.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Addr: "127.0.0.1:8081", Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()

	// Clean shutdown: answer held long-polls, stop HTTP, stop the hub's actors.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hub.Drain(shutdownCtx)
	_ = srv.Shutdown(shutdownCtx)
	_ = hub.Shutdown(shutdownCtx)
	system.Shutdown()
}
