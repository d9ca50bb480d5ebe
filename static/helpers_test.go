package static

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// secret is the content of files outside the document root; no response may
// ever contain it.
const secret = "TOP-SECRET-7f3a9c"

// testTree is a document root on disk with a sibling folder holding secrets:
//
//	base/secret.txt                 secret
//	base/private/secret.txt         secret
//	base/www/index.html             "<h1>home</h1>"
//	base/www/style.css              "body{color:red}"
//	base/www/app.js, logo.png, blob.zzzunknown
//	base/www/sub/index.html         "sub index"
//	base/www/empty/                 no index
//	base/www/link-in      -> style.css            (relative, inside)
//	base/www/link-in-abs  -> base/www/style.css   (absolute, inside)
//	base/www/link-out     -> ../secret.txt
//	base/www/link-out-abs -> base/private/secret.txt
//	base/www/link-out-dir -> ../private
//	base/www/sub/link-up  -> ../../private/secret.txt
type testTree struct {
	base, www string
	symlinks  bool // whether the symbolic links could be made
}

func newTestTree(t *testing.T) testTree {
	t.Helper()
	base := t.TempDir()
	www := filepath.Join(base, "www")
	files := map[string]string{
		"secret.txt":             secret,
		"private/secret.txt":     secret,
		"www/index.html":         "<h1>home</h1>",
		"www/style.css":          "body{color:red}",
		"www/app.js":             "console.log(1)",
		"www/logo.png":           "\x89PNG\r\n\x1a\nfake",
		"www/blob.zzzunknown":    "blob",
		"www/sub/index.html":     "sub index",
		"www/empty/.placeholder": "",
	}
	for name, content := range files {
		p := filepath.Join(base, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree := testTree{base: base, www: www, symlinks: true}
	links := map[string]string{
		"www/link-in":      "style.css",
		"www/link-in-abs":  filepath.Join(www, "style.css"),
		"www/link-out":     filepath.Join("..", "secret.txt"),
		"www/link-out-abs": filepath.Join(base, "private", "secret.txt"),
		"www/link-out-dir": filepath.Join("..", "private"),
		"www/sub/link-up":  filepath.Join("..", "..", "private", "secret.txt"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(base, filepath.FromSlash(name))); err != nil {
			t.Logf("no symbolic links on this system: %v", err)
			tree.symlinks = false
			break
		}
	}
	return tree
}

// newServer starts a test server for a handler built from opts.
func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// response is what rawRequest read back.
type response struct {
	status int
	header http.Header
	body   string
}

// rawRequest writes a request line with target sent verbatim (no client-side
// cleaning or escaping), plus extra header lines, and reads the response.
func rawRequest(t *testing.T, srv *httptest.Server, method, target string, headers ...string) response {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n", method, target)
	for _, h := range headers {
		req.WriteString(h + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: read response: %v", method, target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
