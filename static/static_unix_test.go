//go:build linux || darwin

package static

import (
	"path/filepath"
	"syscall"
	"testing"
)

// A FIFO in the document root must not block the request (opening it would
// wait for a writer) and is not served.
func TestFIFOIsNotServed(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	if err := syscall.Mkfifo(filepath.Join(tree.www, "pipe.txt"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	srv := newServer(t, Options{Dir: tree.www, DirectoryIndex: []string{"pipe.txt", "index.html"}})
	if r := rawRequest(t, srv, "GET", "/pipe.txt"); r.status != 404 {
		t.Errorf("GET /pipe.txt: %d %q, want 404", r.status, r.body)
	}
	if r := rawRequest(t, srv, "GET", "/"); r.status != 200 || r.body != "<h1>home</h1>" {
		t.Errorf("GET / with a FIFO as first index: %d %q, want index.html", r.status, r.body)
	}
}
