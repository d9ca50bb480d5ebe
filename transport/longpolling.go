package transport

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// DefaultMaxBody is the default limit on a request body: 1 MiB.
const DefaultMaxBody = 1 << 20

// Options configures the long-polling transport.
type Options struct {
	// MaxBody limits a request body in bytes (default DefaultMaxBody); a
	// larger request gets 413.
	MaxBody int64
	// Logger receives the transport's logs; nil means none.
	Logger *zerolog.Logger
	// Types lists the connection types this handler serves: long-polling
	// (JSON or form requests) and callback-polling (JSONP); other names,
	// such as websocket, are ignored. Nil serves both. A request of a type
	// not served gets HTTP 400 with a Bayeux 400 error.
	Types []string
	// ParkAfter is how long a /meta/connect is held on its request's
	// goroutine before it is parked: taken from net/http (hijacked) and
	// held with no goroutine and no buffer until the session answers it,
	// when the answer is written and the connection goes back to the
	// http.Server for its next request. Parking needs the server to serve
	// through Serve, and an HTTP/1.1 request that does not ask to close
	// its connection; others are held on their goroutine. While parked, a
	// connection whose client has left is found when the session answers,
	// and the answer's messages stay queued for the client's next connect,
	// as when a held request goes away. Zero means DefaultParkAfter;
	// negative never parks.
	ParkAfter time.Duration
}

// LongPolling is the HTTP long-polling and callback-polling transport. It
// is an http.Handler.
type LongPolling struct {
	hub          *actors.Hub
	maxBody      int64
	log          zerolog.Logger
	longPolling  bool
	callbackPoll bool
	parkAfter    time.Duration // <= 0: never park
}

// NewLongPolling returns the long-polling transport for hub.
func NewLongPolling(hub *actors.Hub, opts Options) *LongPolling {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = opts.Logger.With().Str("component", "long-polling").Logger()
	}
	if opts.ParkAfter == 0 {
		opts.ParkAfter = DefaultParkAfter
	}
	t := &LongPolling{hub: hub, maxBody: opts.MaxBody, log: log, parkAfter: opts.ParkAfter}
	t.longPolling = opts.Types == nil || slices.Contains(opts.Types, protocol.LongPolling)
	t.callbackPoll = opts.Types == nil || slices.Contains(opts.Types, protocol.CallbackPolling)
	return t
}

// Register mounts t on r at path (for example "/cometd") and at every path
// below it, as the CometD client posts to /cometd/handshake, /cometd/connect
// and so on.
func (t *LongPolling) Register(r *mux.Router, path string) {
	Mount(r, path, t)
}

// Mount routes path and every path below it to h on r: the way to mount a
// transport wrapped in middleware such as CORS. It matches with a plain
// prefix test rather than mux's regular expressions, which cost more than
// the rest of routing on every long poll.
func Mount(r *mux.Router, path string, h http.Handler) {
	path = strings.TrimSuffix(path, "/")
	r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		p := req.URL.Path
		return p == path || (strings.HasPrefix(p, path) && p[len(path)] == '/')
	}).Handler(h)
}

// callbackName is what a JSONP callback name may look like: a JavaScript
// identifier path, nothing that could inject script.
var callbackName = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]{0,63}(\.[A-Za-z_$][A-Za-z0-9_$]{0,63}){0,3}$`)

// defaultCallback is the spec's JSONP callback name when none is given.
const defaultCallback = "jsonpcallback"

// Header values every response carries, shared (net/http copies a
// response's header map before it writes it, and nothing changes these).
var (
	hdrNosniff  = []string{"nosniff"}
	hdrNoCache  = []string{"no-cache, no-store, must-revalidate"}
	hdrJSON     = []string{"application/json; charset=utf-8"}
	hdrJSONP    = []string{"text/javascript; charset=utf-8"}
	maxPoolBody = 64 << 10 // larger bodies are not kept in bodyPool
)

// bodyPool holds response buffers: a held connect's response is written
// once and dropped, so one buffer serves many requests.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// ServeHTTP handles one Bayeux request.
func (t *LongPolling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Content-Type-Options"] = hdrNosniff
	h["Cache-Control"] = hdrNoCache

	msgs, jsonp, status, err := t.decode(w, r)
	if err != nil {
		t.log.Debug().Err(err).Str("remote", r.RemoteAddr).Int("status", status).Msg("bad request")
		writeError(w, status, err)
		return
	}
	if jsonp == "" && !t.longPolling || jsonp != "" && !t.callbackPoll {
		kind := protocol.LongPolling
		if jsonp != "" {
			kind = protocol.CallbackPolling
		}
		t.log.Debug().Str("remote", r.RemoteAddr).Str("type", kind).Msg("request for a disabled transport")
		writeError(w, http.StatusBadRequest,
			&protocol.Error{Code: protocol.CodeBadRequest, Args: []string{kind}, Message: "Transport disabled"})
		return
	}
	req := actors.RemoteRequest{Messages: msgs, RemoteAddr: r.RemoteAddr, Header: r.Header, BrowserID: browserID(w, r, msgs)}
	var parts [][]byte
	if pc := t.parkable(r, msgs); pc != nil {
		var parked bool
		if parts, parked = t.hold(w, r, pc, req, jsonp); parked {
			return
		}
	} else {
		parts = t.hub.HandleRemote(r.Context(), req)
	}
	if parts == nil {
		return // the client went away while its connect was held
	}
	bp := bodyPool.Get().(*[]byte)
	body := appendBody((*bp)[:0], jsonp, parts)
	h["Content-Type"] = contentType(jsonp)
	// A known length spares chunked encoding: one write for the response.
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if _, err := w.Write(body); err != nil {
		t.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("write response")
	}
	if cap(body) <= maxPoolBody {
		*bp = body[:0]
		bodyPool.Put(bp)
	}
}

// contentType is the Content-Type of a response: JSON, or JavaScript for
// JSONP.
func contentType(jsonp string) []string {
	if jsonp != "" {
		return hdrJSONP
	}
	return hdrJSON
}

// appendBody appends a response body to dst: the array of parts, wrapped
// in a call of jsonp unless it is empty.
func appendBody(dst []byte, jsonp string, parts [][]byte) []byte {
	dst = slices.Grow(dst, bodySize(parts)+len(jsonp)+4)
	if jsonp != "" {
		dst = append(append(dst, jsonp...), '(')
	}
	dst = appendArray(dst, parts)
	if jsonp != "" {
		dst = append(dst, ");"...)
	}
	return dst
}

// decode reads the messages of a request and the JSONP callback name (empty
// for plain JSON). On error it returns the HTTP status to answer with.
func (t *LongPolling) decode(w http.ResponseWriter, r *http.Request) (msgs []*protocol.Message, jsonp string, status int, err error) {
	var form url.Values
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, "", http.StatusRequestEntityTooLarge,
					&protocol.Error{Code: protocol.CodeTooLarge, Message: "Request body too large"}
			}
			return nil, "", http.StatusBadRequest, protocol.ErrBadRequest("Cannot read request body")
		}
		ct := mediaType(r.Header.Get("Content-Type"))
		switch ct {
		case "application/json", "text/json", "text/plain", "":
			msgs, err = protocol.DecodeLimit(body, t.hub.MaxBatch())
			if err != nil {
				return nil, "", http.StatusBadRequest, err
			}
			form = r.URL.Query()
		case "application/x-www-form-urlencoded":
			form, err = url.ParseQuery(string(body))
			if err != nil {
				return nil, "", http.StatusBadRequest, protocol.ErrBadRequest("Malformed form body")
			}
		default:
			return nil, "", http.StatusUnsupportedMediaType,
				&protocol.Error{Code: protocol.CodeBadRequest, Args: []string{ct}, Message: "Unsupported content type"}
		}
	case http.MethodGet:
		if len(r.URL.RawQuery) > int(t.maxBody) {
			return nil, "", http.StatusRequestEntityTooLarge,
				&protocol.Error{Code: protocol.CodeTooLarge, Message: "Request too large"}
		}
		form = r.URL.Query()
	default:
		w.Header().Set("Allow", "GET, POST")
		return nil, "", http.StatusMethodNotAllowed,
			&protocol.Error{Code: protocol.CodeBadRequest, Args: []string{r.Method}, Message: "Method not allowed"}
	}
	if msgs == nil {
		values := form["message"]
		if len(values) == 0 {
			return nil, "", http.StatusBadRequest, protocol.ErrBadRequest("Missing message parameter")
		}
		for _, v := range values {
			batch, err := protocol.DecodeLimit([]byte(v), t.hub.MaxBatch())
			if err != nil {
				return nil, "", http.StatusBadRequest, err
			}
			msgs = append(msgs, batch...)
		}
	}
	if names, ok := form["jsonp"]; ok {
		jsonp = names[0]
		if !callbackName.MatchString(jsonp) {
			return nil, "", http.StatusBadRequest, protocol.ErrBadRequest("Invalid jsonp callback name")
		}
	} else if r.Method == http.MethodGet && wantsCallback(msgs) {
		jsonp = defaultCallback
	}
	return msgs, jsonp, 0, nil
}

// BrowserCookie is the spec's cookie that identifies one browser across its
// Bayeux clients (tabs).
const BrowserCookie = "BAYEUX_BROWSER"

// browserID returns the request's BAYEUX_BROWSER id. A handshake from a
// browser without one gets a fresh id in a cookie.
func browserID(w http.ResponseWriter, r *http.Request, msgs []*protocol.Message) string {
	if c, err := r.Cookie(BrowserCookie); err == nil && validBrowserID(c.Value) {
		return c.Value
	}
	handshake := false
	for _, m := range msgs {
		handshake = handshake || m.Channel == protocol.MetaHandshake
	}
	if !handshake {
		return ""
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: BrowserCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return id
}

// validBrowserID accepts what browserID makes (and CometD's ids): short
// alphanumeric strings.
func validBrowserID(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// mediaType returns a Content-Type's media type without parameters; the
// usual values skip the general parser.
func mediaType(v string) string {
	switch v {
	case "application/json", "application/json;charset=UTF-8", "application/json; charset=utf-8", "application/json;charset=utf-8":
		return "application/json"
	}
	ct, _, _ := mime.ParseMediaType(v)
	return ct
}

// wantsCallback reports whether a GET request speaks callback-polling
// without naming its callback.
func wantsCallback(msgs []*protocol.Message) bool {
	for _, m := range msgs {
		if m.ConnectionType == protocol.CallbackPolling {
			return true
		}
		for _, t := range m.SupportedConnectionTypes {
			if t == protocol.CallbackPolling && len(m.SupportedConnectionTypes) == 1 {
				return true
			}
		}
	}
	return false
}

func bodySize(parts [][]byte) int {
	n := 2
	for _, p := range parts {
		n += len(p) + 1
	}
	return n
}

func appendArray(buf []byte, parts [][]byte) []byte {
	buf = append(buf, '[')
	for i, p := range parts {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, p...)
	}
	return append(buf, ']')
}

// writeError answers a request that could not be read at all: an HTTP
// error status with a one-message Bayeux error body.
func writeError(w http.ResponseWriter, status int, err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		pe = protocol.ErrBadRequest(err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(appendArray(nil, [][]byte{errorMessage(pe)}))
}

// errorMessage encodes the one-message Bayeux error sent for a request or
// frame that could not be read at all.
func errorMessage(pe *protocol.Error) []byte {
	body := append([]byte(`{"successful":false,"error":`), protocol.AppendString(nil, pe.Error())...)
	return append(body, '}')
}
