package static

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Options configures the handler returned by [New]. Exactly one of Root and
// Dir is needed; Dir wins when both are set.
type Options struct {
	// Root is the document root as a file system, such as htdocs.FS (an
	// embed.FS). It is used as is: symbolic links in an os.DirFS are followed
	// wherever they point, so use Dir to serve a folder on disk.
	Root fs.FS

	// Dir, when non-empty, is a folder on disk served instead of Root. It is
	// resolved once, in New; symbolic links under it are followed only when
	// they resolve to a place inside it, and files are opened through os.Root.
	Dir string

	// DirectoryIndex lists the file names tried, in order, when a folder is
	// requested. Each must be a single path element. Empty means
	// []string{"index.html"}.
	DirectoryIndex []string

	// TypeExpires maps a media type without parameters ("text/css") to how
	// long files of that type may be cached, like Apache's
	// `ExpiresByType text/css "access plus 3600 seconds"`: responses get
	// Expires (now plus the duration) and Cache-Control: max-age (in whole
	// seconds). See ParseTypeExpires for the command-line syntax.
	TypeExpires map[string]time.Duration

	// PostHandle, when non-nil, is called with the request and the response
	// headers of every response before its status is written, and may change
	// the headers (as PostHandle in the Perl original). For files,
	// http.ServeContent still sets Last-Modified, Content-Length and
	// Content-Range afterwards, and drops body headers from a 304.
	PostHandle func(r *http.Request, h http.Header)

	// Logger receives one debug event per request and warnings for refused
	// paths and server-side errors. The zero value logs nothing.
	Logger zerolog.Logger
}

// Response bodies of the error answers; the 404 body is formatted with the
// request path, as in the Perl original.
const (
	textNotFound      = "Path '%s' not found"
	textDirDenied     = "Directory listing denied"
	textBadPath       = "Bad request path"
	textForbidden     = "Forbidden"
	textNotAllowed    = "Method not allowed"
	textInternalError = "Internal server error"
	plainText         = "text/plain; charset=utf-8"
)

// errOutside marks a name whose symbolic links resolve outside the document root.
var errOutside = errors.New("path resolves outside the document root")

// handler serves files below one document root; see New.
type handler struct {
	open    func(name string) (fs.File, error)
	index   []string
	expires map[string]time.Duration
	post    func(*http.Request, http.Header)
	log     zerolog.Logger
	etags   *sync.Map // name -> ETag, kept only for immutable roots (embed.FS)
}

// New returns an http.Handler serving the document root described by opts.
// It answers GET and HEAD (405 with an Allow header otherwise); a folder
// with an index file serves that file, a folder URL without a trailing slash
// is redirected (301) to the slash form, a folder without an index answers
// 403 "Directory listing denied", a missing file 404 "Path '/x' not found",
// and a path that tries to leave the root 400 (lexically) or 403 (through a
// symbolic link).
//
// Files carry a strong ETag (size and modification time, or a SHA-256 of the
// content when the file system has no modification times, as embed.FS) and
// Last-Modified when known, and conditional and range requests are answered
// by http.ServeContent. Content-Type comes from the extension: html, htm,
// css, js, mjs, json, map, wasm, png, jpg, jpeg, gif, svg, ico, webp, avif,
// txt, csv, md, xml, woff, woff2, ttf, otf, pdf, mp3, mp4, ogg, webm and
// webmanifest are built in (JavaScript is text/javascript); other extensions
// use mime.TypeByExtension, then application/octet-stream.
//
// New fails when there is no document root, Dir is not a folder, or an index
// name or TypeExpires entry is invalid.
func New(opts Options) (http.Handler, error) {
	h := &handler{post: opts.PostHandle, log: opts.Logger}
	switch {
	case opts.Dir != "":
		d, err := openDirRoot(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("static: document root %q: %w", opts.Dir, err)
		}
		h.open = d.open
	case opts.Root != nil:
		h.open = opts.Root.Open
		if _, ok := opts.Root.(embed.FS); ok {
			h.etags = new(sync.Map)
		}
	default:
		return nil, errors.New("static: no document root: set Options.Root or Options.Dir")
	}

	h.index = []string{"index.html"}
	if len(opts.DirectoryIndex) > 0 {
		h.index = make([]string, 0, len(opts.DirectoryIndex))
		for _, name := range opts.DirectoryIndex {
			if !fs.ValidPath(name) || name == "." || strings.ContainsAny(name, `/\`) {
				return nil, fmt.Errorf("static: directory index %q: must be a single file name", name)
			}
			h.index = append(h.index, name)
		}
	}

	h.expires = make(map[string]time.Duration, len(opts.TypeExpires))
	for typ, d := range opts.TypeExpires {
		mt, err := checkExpiry(typ, d)
		if err != nil {
			return nil, fmt.Errorf("static: type expires: %w", err)
		}
		h.expires[mt] = d
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		h.fail(w, r, http.StatusMethodNotAllowed, textNotAllowed)
		return
	}
	name, err := cleanPath(r.URL.Path)
	if err != nil {
		h.log.Warn().Str("method", r.Method).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).
			Err(err).Msg("static: refused request path")
		h.fail(w, r, http.StatusBadRequest, textBadPath)
		return
	}

	f, fi, err := h.openStat(name)
	if err != nil {
		h.openFailed(w, r, name, err)
		return
	}
	slash := strings.HasSuffix(r.URL.Path, "/")
	if fi.IsDir() {
		_ = f.Close()
		if !slash {
			h.redirectToFolder(w, r, name)
			return
		}
		f, fi, err = h.openIndex(name)
		if err != nil {
			h.openFailed(w, r, name, err)
			return
		}
		if f == nil {
			h.fail(w, r, http.StatusForbidden, textDirDenied)
			return
		}
	} else if slash || !fi.Mode().IsRegular() {
		_ = f.Close()
		h.fail(w, r, http.StatusNotFound, fmt.Sprintf(textNotFound, r.URL.Path))
		return
	}
	defer func() { _ = f.Close() }()
	h.serveFile(w, r, fi, f)
}

// cleanPath turns a decoded URL path into an fs.FS name ("." for the root).
// It refuses, rather than cleans, anything a browser would not send for a
// file below the root: a missing leading slash, empty, "." or ".." elements,
// backslashes, and control characters such as NUL. A trailing slash is
// allowed and dropped.
func cleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q: must start with a slash", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", fmt.Errorf("path %q: control character or backslash at byte %d", p, i)
		}
	}
	name := strings.TrimSuffix(p[1:], "/")
	if name == "" {
		if len(p) > 1 {
			return "", fmt.Errorf("path %q: empty path element", p)
		}
		return ".", nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		switch elem {
		case "":
			return "", fmt.Errorf("path %q: empty path element", p)
		case ".", "..":
			return "", fmt.Errorf("path %q: %q path element", p, elem)
		}
	}
	if !fs.ValidPath(name) {
		return "", fmt.Errorf("path %q: not a valid file name", p)
	}
	return name, nil
}

// openStat opens name and stats it.
func (h *handler) openStat(name string) (fs.File, fs.FileInfo, error) {
	f, err := h.open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", name, err)
	}
	return f, fi, nil
}

// openIndex opens the first DirectoryIndex file that is a regular file in
// folder dir. It returns a nil file when there is none.
func (h *handler) openIndex(dir string) (fs.File, fs.FileInfo, error) {
	for _, idx := range h.index {
		f, fi, err := h.openStat(path.Join(dir, idx))
		switch {
		case notFound(err):
			continue
		case err != nil:
			return nil, nil, err
		case !fi.Mode().IsRegular():
			_ = f.Close()
			continue
		}
		return f, fi, nil
	}
	return nil, nil, nil
}

// openFailed answers a request whose file could not be opened.
func (h *handler) openFailed(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case notFound(err):
		h.fail(w, r, http.StatusNotFound, fmt.Sprintf(textNotFound, r.URL.Path))
	case errors.Is(err, errOutside), errors.Is(err, fs.ErrPermission):
		h.log.Warn().Str("method", r.Method).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).
			Err(err).Msg("static: access denied")
		h.fail(w, r, http.StatusForbidden, textForbidden)
	default:
		h.log.Warn().Str("method", r.Method).Str("path", r.URL.Path).Str("name", name).
			Err(err).Msg("static: cannot open file")
		h.fail(w, r, http.StatusInternalServerError, textInternalError)
	}
}

// redirectToFolder answers a folder URL without its trailing slash with a
// relative redirect to the slash form, so it also works below a prefix.
func (h *handler) redirectToFolder(w http.ResponseWriter, r *http.Request, name string) {
	// url.URL.String protects a first element with a colon ("./a:b/").
	loc := (&url.URL{Path: path.Base(name) + "/", RawQuery: r.URL.RawQuery}).String()
	w.Header().Set("Location", loc)
	h.finish(w, r, http.StatusMovedPermanently, "")
}

// fail answers with a short plain-text body.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, code int, body string) {
	w.Header().Set("Content-Type", plainText)
	h.finish(w, r, code, body)
}

// finish runs PostHandle, logs and writes status and body.
func (h *handler) finish(w http.ResponseWriter, r *http.Request, code int, body string) {
	if h.post != nil {
		h.post(r, w.Header())
	}
	h.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).
		Int("status", code).Msg("static")
	w.WriteHeader(code)
	if body != "" {
		_, _ = io.WriteString(w, body)
	}
}

// serveFile sends an open regular file with its content type, expiry and
// validators, leaving conditionals and ranges to http.ServeContent.
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, fi fs.FileInfo, f fs.File) {
	hdr := w.Header()
	ctype := contentType(fi.Name())
	hdr.Set("Content-Type", ctype)
	if d, ok := h.expires[mediaType(ctype)]; ok {
		hdr.Set("Cache-Control", "max-age="+strconv.FormatInt(int64(d/time.Second), 10))
		hdr.Set("Expires", time.Now().Add(d).UTC().Format(http.TimeFormat))
	}
	content, etag, err := h.content(r.URL.Path, fi, f)
	if err != nil {
		hdr.Del("Cache-Control")
		hdr.Del("Expires")
		h.log.Warn().Str("method", r.Method).Str("path", r.URL.Path).Err(err).Msg("static: cannot read file")
		h.fail(w, r, http.StatusInternalServerError, textInternalError)
		return
	}
	hdr.Set("ETag", etag)
	if h.post != nil {
		h.post(r, hdr)
	}
	h.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).
		Str("type", ctype).Int64("size", fi.Size()).Msg("static: serving file")
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), content)
}

// content returns f as an io.ReadSeeker positioned at its start, and its
// strong ETag: size and modification time when known, else a SHA-256 of
// the content (remembered per URL path for an embed.FS, which cannot change).
func (h *handler) content(key string, fi fs.FileInfo, f fs.File) (io.ReadSeeker, string, error) {
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(f)
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", fi.Name(), err)
		}
		rs = bytes.NewReader(b)
	}
	if mt := fi.ModTime(); !mt.IsZero() {
		return rs, fmt.Sprintf(`"%x-%x"`, mt.UnixNano(), fi.Size()), nil
	}
	if h.etags != nil {
		if etag, ok := h.etags.Load(key); ok {
			return rs, etag.(string), nil
		}
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, rs); err != nil {
		return nil, "", fmt.Errorf("hash %s: %w", fi.Name(), err)
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, "", fmt.Errorf("rewind %s: %w", fi.Name(), err)
	}
	etag := `"` + hex.EncodeToString(sum.Sum(nil)[:16]) + `"`
	if h.etags != nil {
		h.etags.Store(key, etag)
	}
	return rs, etag, nil
}
