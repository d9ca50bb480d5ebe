package test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves goroutines behind, as Go's own
// net/http tests do: held long-polls leak easily.
//
// protoactor-go's dead-letter throttle starts a goroutine that sleeps out a
// one-second period after the first dead letter (actors stopping at
// shutdown send some); it is the library's, and it ends by itself.
//
// The binary buildCommand built is removed at the end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.Cleanup(func(code int) {
			removeCommand()
			os.Exit(code)
		}))
}
