// Package testutil holds what the tests of several packages share: one way
// to wait for a condition instead of sleeping.
package testutil

import (
	"fmt"
	"testing"
	"time"
)

// Poll calls fn every interval every until it returns nil, and returns nil;
// once total has passed it gives up and returns fn's last error. fn is
// called at least once.
//
// total is a deadline so that a condition that never comes fails instead
// of hanging, not a claim about speed: make it generous (seconds, for
// -race and loaded machines); a condition that holds returns at once.
func Poll(total, every time.Duration, fn func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met after %v: %w", total, err)
		}
		time.Sleep(every)
	}
}

// CheckFor polls fn as Poll does (as nats-server's tests do, instead of
// sleeping) and fails the test with fn's last error if it has not returned
// nil after total. Call it from the test's goroutine.
func CheckFor(t testing.TB, total, every time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(total, every, fn); err != nil {
		t.Fatal(err)
	}
}
