package testutil

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	err := Poll(time.Minute, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestPollReportsTheLastError(t *testing.T) {
	errLast := errors.New("still not")
	calls := 0
	err := Poll(0, time.Millisecond, func() error {
		calls++
		return errLast
	})
	if !errors.Is(err, errLast) || calls != 1 {
		t.Fatalf("Poll = %v after %d calls, want the last error after 1", err, calls)
	}
}

func TestCheckForPasses(t *testing.T) {
	CheckFor(t, time.Minute, time.Millisecond, func() error { return nil })
}
