package test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeEmbeddingExample keeps the README's embedding example identical
// to examples/embed/main.go, which the build compiles.
func TestReadmeEmbeddingExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../examples/embed/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```") {
		t.Fatal("README's Embedding example differs from examples/embed/main.go")
	}
	for _, cmd := range []string{"go run ./cmd/bayeuxhub", "test/run"} {
		if !strings.Contains(string(readme), cmd) {
			t.Errorf("README lacks %q", cmd)
		}
	}
}
