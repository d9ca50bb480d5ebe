package test

import (
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// The hub actor carries the Alias name, so other actors can find it by name.
func TestHubActorIsNamedByAlias(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{Alias: "bayeux_server"}})
	system := srv.Hub().System()
	pid := actor.NewPID(system.Address(), "bayeux_server")
	if _, ok := system.ProcessRegistry.Get(pid); !ok || !pid.Equal(srv.Hub().PID()) {
		t.Fatalf("no actor named bayeux_server (hub PID %v)", srv.Hub().PID())
	}
	// An actor that knows only the name can publish through it.
	web := newClient(t, srv).start()
	web.subscribe("/by/name")
	system.Root.Send(pid, &actors.Publish{Channel: "/by/name", Data: "found you"})
	if d := web.deliveries(1, 5*time.Second); len(d) != 1 || d[0]["data"] != "found you" {
		t.Fatalf("publish through the alias: %v", d)
	}
}

// A request may be a single object instead of an array.
func TestSingleObjectRequest(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv)
	status, r := c.raw("application/json", []byte(`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}`))
	if status != 200 || len(r) != 1 || r[0]["successful"] != true {
		t.Fatalf("single-object handshake: %d %v", status, r)
	}
}

// A batch is processed in order and answered together: a subscribe, a
// publish to the same channel and a connect in one request yield the
// subscribe reply, the publish ack and the connect carrying the delivery.
func TestBatchInOrder(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	_, r := c.post(
		msg{"channel": "/meta/subscribe", "clientId": c.id, "subscription": "/batch", "id": "1"},
		msg{"channel": "/batch", "clientId": c.id, "data": "mine", "id": "2"},
		msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "long-polling", "id": "3"},
	)
	if len(r) != 4 || r[0]["id"] != "1" || r[1]["id"] != "2" || r[2]["data"] != "mine" || r[3]["id"] != "3" {
		t.Fatalf("batch replies: %v", r)
	}
}

// protoactor-go's own logs go through the same zerolog logger.
func TestActorRuntimeLogsGoToZerolog(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	logger := zerolog.New(logs).Level(zerolog.DebugLevel)
	system := server.NewActorSystem(logger)
	defer system.Shutdown()
	// A message to a stopped actor is a dead letter, which the runtime logs.
	pid := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = system.Root.StopFuture(pid).Wait()
	system.Root.Send(pid, "hello")
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), `"component":"protoactor"`) {
			return errNoLog
		}
		return nil
	})
}

var errNoLog = errorString("no protoactor log line yet")

type errorString string

func (e errorString) Error() string { return string(e) }
