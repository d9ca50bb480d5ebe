package broker

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

// TestQueryEveryNode: a query reaches every other live node and waits for
// all of them; an error answer is passed on; a node that leaves is no
// longer waited for.
func TestQueryEveryNode(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}, HeartbeatInterval: 50 * time.Millisecond}
	a, _ := startNode(t, "a", opts)
	_, _ = startNode(t, "b", opts)
	c, _ := startNode(t, "c", opts)
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if nodes := a.Nodes(); !reflect.DeepEqual(nodes, []string{"b", "c"}) {
			return fmt.Errorf("a knows %v, want b and c", nodes)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answers, missing, err := a.Query(ctx, "echo", []byte(`{"x":1}`))
	if err != nil || len(missing) != 0 || len(answers) != 2 {
		t.Fatalf("query: answers %+v missing %v err %v", answers, missing, err)
	}
	for i, node := range []string{"b", "c"} {
		if answers[i].Node != node || string(answers[i].Body) != `echo:{"x":1}` || answers[i].Err != "" {
			t.Fatalf("answer %d: %+v", i, answers[i])
		}
	}
	answers, _, err = a.Query(ctx, "fail", nil)
	if err != nil || len(answers) != 2 || answers[0].Err != "cannot answer" {
		t.Fatalf("failing query: %+v %v", answers, err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if nodes := a.Nodes(); !reflect.DeepEqual(nodes, []string{"b"}) {
			return fmt.Errorf("a knows %v, want b only", nodes)
		}
		return nil
	})
	answers, missing, err = a.Query(ctx, "echo", nil)
	if err != nil || len(missing) != 0 || len(answers) != 1 || answers[0].Node != "b" {
		t.Fatalf("after c left: %+v %v %v", answers, missing, err)
	}
}

// TestQueryMissingNode: a node that does not answer in time is reported
// missing when the context ends, and the query returns then.
func TestQueryMissingNode(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}, HeartbeatInterval: time.Hour}
	a, _ := startNode(t, "a", opts)
	_, inB := startNode(t, "b", opts)
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if nodes := a.Nodes(); len(nodes) != 1 {
			return fmt.Errorf("a knows %v, want b", nodes)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	answers, missing, err := a.Query(ctx, "block", nil)
	if err != nil || len(answers) != 0 || strings.Join(missing, ",") != "b" {
		t.Fatalf("query: answers %+v missing %v err %v", answers, missing, err)
	}
	if ctx.Err() == nil {
		t.Fatal("query returned before its context ended, without b's answer")
	}
	close(inB.release)
}

// TestQueryAlone: a node that knows no other answers at once.
func TestQueryAlone(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t, 0)
	a, _ := startNode(t, "a", NATSOptions{URLs: []string{srv.URL()}})
	answers, missing, err := a.Query(context.Background(), "echo", nil)
	if err != nil || answers != nil || missing != nil {
		t.Fatalf("alone: %v %v %v", answers, missing, err)
	}
}
