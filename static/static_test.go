package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rs/zerolog"
)

//go:embed testdata/embedroot
var testEmbed embed.FS

func embedRoot(t *testing.T) fs.FS {
	t.Helper()
	sub, err := fs.Sub(testEmbed, "testdata/embedroot")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestEscapesAreRefused(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	absSecret := filepath.ToSlash(filepath.Join(tree.base, "secret.txt"))
	cases := []struct {
		name    string
		target  string
		want    int
		symlink bool // needs symbolic links
		server  bool // refused by net/http before the handler runs
	}{
		{"dot dot", "/../secret.txt", 400, false, false},
		{"dot dot deep", "/sub/../../private/secret.txt", 400, false, false},
		{"dot dot trailing", "/sub/..", 400, false, false},
		{"encoded dot dot", "/%2e%2e/secret.txt", 400, false, false},
		{"encoded upper", "/%2E%2E/%2E%2E/secret.txt", 400, false, false},
		{"encoded slash", "/..%2fsecret.txt", 400, false, false},
		{"double encoded", "/%252e%252e/secret.txt", 404, false, false},
		{"double encoded slash", "/..%252fsecret.txt", 404, false, false},
		{"backslash", `/..\..\secret.txt`, 400, false, false},
		{"encoded backslash", "/..%5c..%5csecret.txt", 400, false, false},
		{"dot", "/./style.css", 400, false, false},
		{"absolute", "/" + strings.TrimPrefix(absSecret, "/"), 404, false, false},
		{"double slash absolute", "/" + absSecret, 400, false, false},
		{"double slash", "//etc/passwd", 400, false, false},
		{"absolute form", "http://example.test/../secret.txt", 400, false, false},
		{"no leading slash", "secret.txt", 400, false, true},
		{"NUL", "/style.css%00.png", 400, false, false},
		{"NUL dot dot", "/%00/../secret.txt", 400, false, false},
		{"symlink out", "/link-out", 403, true, false},
		{"symlink out absolute", "/link-out-abs", 403, true, false},
		{"symlink dir out", "/link-out-dir/secret.txt", 403, true, false},
		{"symlink dir out listing", "/link-out-dir/", 403, true, false},
		{"symlink up from sub", "/sub/link-up", 403, true, false},
	}
	logs := new(syncBuffer)
	srv := newServer(t, Options{Dir: tree.www, Logger: zerolog.New(logs)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.symlink && !tree.symlinks {
				t.Skip("no symbolic links")
			}
			for _, method := range []string{"GET", "HEAD"} {
				r := rawRequest(t, srv, method, tc.target)
				if r.status != tc.want {
					t.Errorf("%s %s: status %d, want %d (body %q)", method, tc.target, r.status, tc.want, r.body)
				}
				if strings.Contains(r.body, secret) {
					t.Fatalf("%s %s: the secret leaked: %q", method, tc.target, r.body)
				}
				if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" && !tc.server {
					t.Errorf("%s %s: X-Content-Type-Options %q, want nosniff", method, tc.target, got)
				}
			}
		})
	}
	// The same lexical attacks against an fs.FS root: os.DirFS of the base's
	// www folder and the embedded root.
	for _, root := range []struct {
		name string
		fsys fs.FS
	}{{"DirFS", os.DirFS(tree.www)}, {"embed", embedRoot(t)}} {
		srv := newServer(t, Options{Root: root.fsys})
		for _, tc := range cases {
			if tc.symlink {
				continue
			}
			r := rawRequest(t, srv, "GET", tc.target)
			if r.status != tc.want || strings.Contains(r.body, secret) {
				t.Errorf("%s: GET %s: status %d body %q, want status %v without the secret", root.name, tc.target, r.status, r.body, tc.want)
			}
		}
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) {
		t.Errorf("refused paths were not logged at warn level; log:\n%s", logs)
	}
}

func TestSymlinksInsideRootAreServed(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	if !tree.symlinks {
		t.Skip("no symbolic links")
	}
	srv := newServer(t, Options{Dir: tree.www})
	for _, target := range []string{"/link-in", "/link-in-abs"} {
		r := rawRequest(t, srv, "GET", target)
		if r.status != 200 || r.body != "body{color:red}" {
			t.Errorf("GET %s: %d %q, want 200 with style.css", target, r.status, r.body)
		}
	}
	// The document root itself may be reached through a symbolic link.
	link := filepath.Join(tree.base, "www-link")
	if err := os.Symlink(tree.www, link); err != nil {
		t.Fatal(err)
	}
	srv = newServer(t, Options{Dir: link})
	if r := rawRequest(t, srv, "GET", "/style.css"); r.status != 200 || r.body != "body{color:red}" {
		t.Errorf("GET /style.css through a linked root: %d %q", r.status, r.body)
	}
	if r := rawRequest(t, srv, "GET", "/link-out"); r.status != 403 || strings.Contains(r.body, secret) {
		t.Errorf("GET /link-out through a linked root: %d %q, want 403", r.status, r.body)
	}
}

func TestResponses(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	srv := newServer(t, Options{Dir: tree.www})
	cases := []struct {
		method, target string
		status         int
		body           string // exact, when the status is not 301
		ctype          string
		header         map[string]string
	}{
		{"GET", "/", 200, "<h1>home</h1>", "text/html; charset=utf-8", nil},
		{"GET", "/index.html", 200, "<h1>home</h1>", "text/html; charset=utf-8", nil},
		{"GET", "/sub/", 200, "sub index", "text/html; charset=utf-8", nil},
		{"GET", "/sub/?x=1", 200, "sub index", "text/html; charset=utf-8", nil},
		{"GET", "/sub", 301, "", "", map[string]string{"Location": "sub/"}},
		{"GET", "/sub?x=1&y=2", 301, "", "", map[string]string{"Location": "sub/?x=1&y=2"}},
		{"HEAD", "/sub", 301, "", "", map[string]string{"Location": "sub/"}},
		{"GET", "/empty/", 403, "Directory listing denied", "text/plain; charset=utf-8", nil},
		{"GET", "/empty", 301, "", "", map[string]string{"Location": "empty/"}},
		{"GET", "/missing.txt", 404, "Path '/missing.txt' not found", "text/plain; charset=utf-8", nil},
		{"GET", "/no/such/dir/", 404, "Path '/no/such/dir/' not found", "text/plain; charset=utf-8", nil},
		{"GET", "/style.css/", 404, "Path '/style.css/' not found", "text/plain; charset=utf-8", nil},
		{"GET", "/style.css/x", 404, "Path '/style.css/x' not found", "text/plain; charset=utf-8", nil},
		{"GET", "/style.css", 200, "body{color:red}", "text/css; charset=utf-8", nil},
		{"GET", "/app.js", 200, "console.log(1)", "text/javascript; charset=utf-8", nil},
		{"GET", "/logo.png", 200, "\x89PNG\r\n\x1a\nfake", "image/png", nil},
		{"GET", "/blob.zzzunknown", 200, "blob", "application/octet-stream", nil},
		{"HEAD", "/style.css", 200, "", "text/css; charset=utf-8", map[string]string{"Content-Length": "15"}},
		{"POST", "/style.css", 405, "Method not allowed", "text/plain; charset=utf-8", map[string]string{"Allow": "GET, HEAD"}},
		{"PUT", "/", 405, "Method not allowed", "text/plain; charset=utf-8", map[string]string{"Allow": "GET, HEAD"}},
		{"OPTIONS", "/", 405, "Method not allowed", "text/plain; charset=utf-8", map[string]string{"Allow": "GET, HEAD"}},
		{"GET", "/style.css", 206, "body", "text/css; charset=utf-8", map[string]string{"Content-Range": "bytes 0-3/15"}},
	}
	for _, tc := range cases {
		var extra []string
		if tc.status == 206 {
			extra = append(extra, "Range: bytes=0-3")
		}
		r := rawRequest(t, srv, tc.method, tc.target, extra...)
		if r.status != tc.status {
			t.Errorf("%s %s: status %d, want %d (body %q)", tc.method, tc.target, r.status, tc.status, r.body)
			continue
		}
		if tc.status != 301 && r.body != tc.body {
			t.Errorf("%s %s: body %q, want %q", tc.method, tc.target, r.body, tc.body)
		}
		if tc.ctype != "" && r.header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.target, r.header.Get("Content-Type"), tc.ctype)
		}
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options %q, want nosniff", tc.method, tc.target, got)
		}
		for k, v := range tc.header {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s %s: %s %q, want %q", tc.method, tc.target, k, got, v)
			}
		}
		if tc.status == 200 && r.header.Get("ETag") == "" {
			t.Errorf("%s %s: no ETag", tc.method, tc.target)
		}
	}
}

func TestRedirectFollowedByClient(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Root: embedRoot(t)})
	resp, err := srv.Client().Get(srv.URL + "/docs?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(body) != "<p>docs index</p>\n" || resp.Request.URL.RequestURI() != "/docs/?lang=en" {
		t.Errorf("GET /docs?lang=en: ended at %s with %d %q", resp.Request.URL, resp.StatusCode, body)
	}
}

func TestConditionalRequestsOnDisk(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(tree.www, "style.css"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, Options{Dir: tree.www})
	first := rawRequest(t, srv, "GET", "/style.css")
	etag := first.header.Get("ETag")
	if first.status != 200 || !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Fatalf("first GET: %d, ETag %q; want 200 and a strong ETag", first.status, etag)
	}
	if got := first.header.Get("Last-Modified"); got != mtime.Format(http.TimeFormat) {
		t.Errorf("Last-Modified %q, want %q", got, mtime.Format(http.TimeFormat))
	}
	for _, h := range []string{
		"If-None-Match: " + etag,
		"If-None-Match: \"other\", " + etag,
		"If-Modified-Since: " + mtime.Format(http.TimeFormat),
		"If-Modified-Since: " + mtime.Add(time.Hour).Format(http.TimeFormat),
	} {
		r := rawRequest(t, srv, "GET", "/style.css", h)
		if r.status != 304 || r.body != "" {
			t.Errorf("GET with %s: %d %q, want 304 without body", h, r.status, r.body)
		}
	}
	for _, h := range []string{
		`If-None-Match: "other"`,
		"If-Modified-Since: " + mtime.Add(-time.Hour).Format(http.TimeFormat),
	} {
		if r := rawRequest(t, srv, "GET", "/style.css", h); r.status != 200 {
			t.Errorf("GET with %s: %d, want 200", h, r.status)
		}
	}
	// Changing the file changes the ETag.
	if err := os.WriteFile(filepath.Join(tree.www, "style.css"), []byte("body{color:blue}"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := rawRequest(t, srv, "GET", "/style.css", "If-None-Match: "+etag)
	if r.status != 200 || r.body != "body{color:blue}" || r.header.Get("ETag") == etag {
		t.Errorf("after a change: %d %q ETag %q (old %q), want 200 with new content and ETag", r.status, r.body, r.header.Get("ETag"), etag)
	}
}

func TestEmbedFSUsesContentHash(t *testing.T) {
	t.Parallel()
	srv := newServer(t, Options{Root: embedRoot(t)})
	content, err := testEmbed.ReadFile("testdata/embedroot/app.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	want := `"` + hex.EncodeToString(sum[:16]) + `"`
	for range 2 { // the second answer comes from the ETag cache
		r := rawRequest(t, srv, "GET", "/app.js")
		if r.status != 200 || r.body != string(content) || r.header.Get("ETag") != want {
			t.Fatalf("GET /app.js: %d %q ETag %q, want 200, the file and ETag %s", r.status, r.body, r.header.Get("ETag"), want)
		}
		if lm := r.header.Get("Last-Modified"); lm != "" {
			t.Errorf("Last-Modified %q for an embed.FS, which has no modification times", lm)
		}
	}
	if r := rawRequest(t, srv, "GET", "/app.js", "If-None-Match: "+want); r.status != 304 {
		t.Errorf("If-None-Match: status %d, want 304", r.status)
	}
	if r := rawRequest(t, srv, "GET", "/"); r.status != 200 || !strings.Contains(r.body, "embedded home") {
		t.Errorf("GET /: %d %q", r.status, r.body)
	}
	if r := rawRequest(t, srv, "GET", "/sub/"); r.status != 403 || r.body != "Directory listing denied" {
		t.Errorf("GET /sub/: %d %q, want 403 Directory listing denied", r.status, r.body)
	}
}

// noSeekFS hides io.Seeker from its files, as some fs.FS implementations do.
type noSeekFS struct{ fs.FS }

type noSeekFile struct{ fs.File }

func (n noSeekFS) Open(name string) (fs.File, error) {
	f, err := n.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return noSeekFile{f}, nil
}

func TestNonSeekableFS(t *testing.T) {
	t.Parallel()
	fsys := noSeekFS{fstest.MapFS{"a.txt": {Data: []byte("hello world")}}}
	srv := newServer(t, Options{Root: fsys})
	r := rawRequest(t, srv, "GET", "/a.txt", "Range: bytes=6-")
	if r.status != 206 || r.body != "world" || r.header.Get("ETag") == "" {
		t.Errorf("GET /a.txt range: %d %q ETag %q, want 206 world with an ETag", r.status, r.body, r.header.Get("ETag"))
	}
}

func TestTypeExpires(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	srv := newServer(t, Options{Dir: tree.www, TypeExpires: map[string]time.Duration{
		"Text/CSS":  time.Hour,
		"image/png": 0,
	}})
	before := time.Now().Truncate(time.Second)
	r := rawRequest(t, srv, "GET", "/style.css")
	after := time.Now()
	if got := r.header.Get("Cache-Control"); got != "max-age=3600" {
		t.Errorf("style.css: Cache-Control %q, want max-age=3600", got)
	}
	exp, err := http.ParseTime(r.header.Get("Expires"))
	if err != nil {
		t.Fatalf("style.css: Expires %q: %v", r.header.Get("Expires"), err)
	}
	if exp.Before(before.Add(time.Hour)) || exp.After(after.Add(time.Hour)) {
		t.Errorf("style.css: Expires %v, want between %v and %v", exp, before.Add(time.Hour), after.Add(time.Hour))
	}
	// Expiry headers stay on a 304, as RFC 9110 asks.
	r = rawRequest(t, srv, "GET", "/style.css", "If-None-Match: "+r.header.Get("ETag"))
	if r.status != 304 || r.header.Get("Cache-Control") != "max-age=3600" {
		t.Errorf("style.css 304: %d Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	if r := rawRequest(t, srv, "GET", "/logo.png"); r.header.Get("Cache-Control") != "max-age=0" || r.header.Get("Expires") == "" {
		t.Errorf("logo.png: Cache-Control %q Expires %q, want max-age=0 and an Expires", r.header.Get("Cache-Control"), r.header.Get("Expires"))
	}
	for _, target := range []string{"/app.js", "/missing.css"} {
		if r := rawRequest(t, srv, "GET", target); r.header.Get("Cache-Control") != "" || r.header.Get("Expires") != "" {
			t.Errorf("%s: Cache-Control %q Expires %q, want none", target, r.header.Get("Cache-Control"), r.header.Get("Expires"))
		}
	}
}

func TestPostHandle(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	srv := newServer(t, Options{
		Dir:         tree.www,
		TypeExpires: map[string]time.Duration{"text/css": time.Hour},
		PostHandle: func(r *http.Request, h http.Header) {
			h.Set("X-Post-Handle", r.Method+" "+r.URL.Path)
			if strings.HasPrefix(r.URL.Path, "/style") {
				h.Set("Cache-Control", "no-store")
			}
		},
	})
	cases := map[string]int{"/style.css": 200, "/missing": 404, "/empty/": 403, "/sub": 301, "/../x": 400}
	for target, status := range cases {
		r := rawRequest(t, srv, "GET", target)
		if r.status != status || r.header.Get("X-Post-Handle") != "GET "+target {
			t.Errorf("GET %s: %d X-Post-Handle %q, want %d and %q", target, r.status, r.header.Get("X-Post-Handle"), status, "GET "+target)
		}
	}
	if r := rawRequest(t, srv, "GET", "/style.css"); r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("PostHandle could not override Cache-Control: %q", r.header.Get("Cache-Control"))
	}
}

func TestDirectoryIndex(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	if err := os.WriteFile(filepath.Join(tree.www, "sub", "default.htm"), []byte("default"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder named like an index is skipped.
	if err := os.Mkdir(filepath.Join(tree.www, "empty", "home.html"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, Options{Dir: tree.www, DirectoryIndex: []string{"home.html", "default.htm", "index.html"}})
	for target, want := range map[string]string{"/sub/": "default", "/": "<h1>home</h1>", "/empty/": "Directory listing denied"} {
		if r := rawRequest(t, srv, "GET", target); r.body != want {
			t.Errorf("GET %s: %d %q, want %q", target, r.status, r.body, want)
		}
	}
}

func TestLogging(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	logs := new(syncBuffer)
	srv := newServer(t, Options{Dir: tree.www, Logger: zerolog.New(logs)})
	rawRequest(t, srv, "GET", "/style.css")
	rawRequest(t, srv, "GET", "/missing")
	rawRequest(t, srv, "GET", "/%2e%2e/secret.txt")
	type entry struct {
		Level, Path, Message string
		Status               int
	}
	var got []entry
	for line := range strings.Lines(logs.String()) {
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		got = append(got, e)
	}
	want := []entry{
		{Level: "debug", Path: "/style.css", Message: "static: serving file"},
		{Level: "debug", Path: "/missing", Message: "static", Status: 404},
		{Level: "warn", Path: "/../secret.txt", Message: "static: refused request path"},
		{Level: "debug", Path: "/../secret.txt", Message: "static", Status: 400},
	}
	if len(got) != len(want) {
		t.Fatalf("log entries %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("log entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tree := newTestTree(t)
	cases := map[string]Options{
		"no root":          {},
		"missing dir":      {Dir: filepath.Join(tree.base, "nope")},
		"dir is a file":    {Dir: filepath.Join(tree.www, "style.css")},
		"index with slash": {Root: embedRoot(t), DirectoryIndex: []string{"a/index.html"}},
		"index dot dot":    {Root: embedRoot(t), DirectoryIndex: []string{".."}},
		"index empty":      {Root: embedRoot(t), DirectoryIndex: []string{""}},
		"index backslash":  {Root: embedRoot(t), DirectoryIndex: []string{`a\b`}},
		"bad media type":   {Root: embedRoot(t), TypeExpires: map[string]time.Duration{"css": time.Hour}},
		"media params":     {Root: embedRoot(t), TypeExpires: map[string]time.Duration{"text/css; charset=utf-8": time.Hour}},
		"negative expiry":  {Root: embedRoot(t), TypeExpires: map[string]time.Duration{"text/css": -time.Second}},
	}
	for name, opts := range cases {
		h, err := New(opts)
		if err == nil || h != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, h, err)
		} else if !strings.HasPrefix(err.Error(), "static: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestContentType(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"a.html":    "text/html; charset=utf-8",
		"A.HTM":     "text/html; charset=utf-8",
		"a.js":      "text/javascript; charset=utf-8",
		"a.css":     "text/css; charset=utf-8",
		"a.png":     "image/png",
		"a.jpg":     "image/jpeg",
		"a.jpeg":    "image/jpeg",
		"a.gif":     "image/gif",
		"a.svg":     "image/svg+xml",
		"a.json":    "application/json",
		"a.js.map":  "application/json",
		"a.wasm":    "application/wasm",
		"a.ico":     "image/x-icon",
		"a.txt":     "text/plain; charset=utf-8",
		"a.woff2":   "font/woff2",
		"README":    "application/octet-stream",
		"a.qqqzzz":  "application/octet-stream",
		"dir.d/a.b": "application/octet-stream",
	}
	for name, want := range cases {
		if got := contentType(name); got != want {
			t.Errorf("contentType(%q) = %q, want %q", name, got, want)
		}
	}
	for ext, ct := range contentTypes {
		if strings.HasPrefix(ct, "text/") != strings.HasSuffix(ct, "; charset=utf-8") {
			t.Errorf("%s: %q: text types, and only they, need a UTF-8 charset", ext, ct)
		}
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	ok := map[string]string{
		"/":             ".",
		"/a":            "a",
		"/a/":           "a",
		"/a/b.html":     "a/b.html",
		"/..a/b..":      "..a/b..",
		"/%2e%2e":       "%2e%2e",
		"/a b/ü.txt":    "a b/ü.txt",
		"/.well-known/": ".well-known",
	}
	for in, want := range ok {
		if got, err := cleanPath(in); err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "//", "/a//b", "/a//", "/.", "/./a", "/a/.", "/..", "/a/../b", `/a\b`, "/a\x00", "/a\nb", "/\x7f"} {
		if got, err := cleanPath(in); err == nil {
			t.Errorf("cleanPath(%q) = %q, want an error", in, got)
		}
	}
}
