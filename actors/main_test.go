package actors

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves goroutines behind, as Go's own
// net/http tests do: held long-polls leak easily.
//
// protoactor-go's dead-letter throttle starts a goroutine that sleeps out a
// one-second period after the first dead letter (actors stopping at
// shutdown send some); it is the library's, and it ends by itself.
func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzHub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = fuzzHub.Shutdown(ctx)
		cancel()
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
