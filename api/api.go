// Package api is bayeuxhub's backend HTTP API: the application's servers
// publish, push to clients and users, disconnect them and look at the
// hub's channels, sessions, presence and figures, with JSON over HTTP and
// an API key. It is off in the bayeuxhub command unless --api-key is set.
//
// Every request but GET /api/openapi.yaml carries the key as
// "Authorization: apikey <key>" (compared in constant time); POST bodies
// are JSON objects (Content-Type: application/json) and every answer is a
// JSON object: the result, or {"error": {"code": "...", "message": "..."}}
// with a 4xx or 5xx status. openapi.yaml, served at /api/openapi.yaml,
// describes every route.
//
// With a broker (--nats) the API acts on the whole cluster: a publish
// reaches every node's subscribers, a push or disconnect by user reaches
// the user's sessions on every node, and listings (presence included)
// cover every node that answers in time (answers say which did not).
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// OpenAPI is the OpenAPI 3 description of the API.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Defaults of Options.
const (
	DefaultMaxBody = 1 << 20
	DefaultTimeout = 2 * time.Second
)

// Options configures the API.
type Options struct {
	// Key is the API key; New refuses an empty one.
	Key string
	// MaxBody bounds a request body in bytes (default DefaultMaxBody).
	MaxBody int64
	// Timeout bounds the cluster-wide operations: how long the other
	// nodes have to answer (default DefaultTimeout).
	Timeout time.Duration
	// Logger receives the API's logs (requests refused for a key at warn);
	// nil means none. Keys are never logged.
	Logger *zerolog.Logger
}

// API serves the backend API for one hub. It is an http.Handler for the
// paths below its prefix.
type API struct {
	hub     *actors.Hub
	key     [sha256.Size]byte
	maxBody int64
	timeout time.Duration
	log     zerolog.Logger
	router  *mux.Router
}

// New returns the API for hub, to be mounted at prefix (for example
// "/api") with Register, or used as a handler for the paths below it.
func New(hub *actors.Hub, prefix string, opts Options) (*API, error) {
	if opts.Key == "" {
		return nil, errors.New("api: no API key")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = opts.Logger.With().Str("component", "api").Logger()
	}
	a := &API{hub: hub, key: sha256.Sum256([]byte(opts.Key)), maxBody: opts.MaxBody, timeout: opts.Timeout, log: log}
	prefix = strings.TrimSuffix(prefix, "/")
	r := mux.NewRouter()
	r.HandleFunc(prefix+"/openapi.yaml", a.openAPI).Methods(http.MethodGet, http.MethodHead)
	for _, route := range []struct {
		path, method string
		handle       http.HandlerFunc
	}{
		{"/publish", http.MethodPost, a.publish},
		{"/push", http.MethodPost, a.push},
		{"/disconnect", http.MethodPost, a.disconnect},
		{"/channels", http.MethodGet, a.channels},
		{"/sessions", http.MethodGet, a.sessions},
		{"/presence", http.MethodGet, a.presence},
		{"/stats", http.MethodGet, a.stats},
	} {
		r.Handle(prefix+route.path, a.authenticate(route.handle)).Methods(route.method)
	}
	r.NotFoundHandler = a.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, http.StatusNotFound, "not_found", "No such API route: "+r.URL.Path)
	}))
	r.MethodNotAllowedHandler = a.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
	}))
	a.router = r
	return a, nil
}

// ServeHTTP serves one API request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

// errorBody is every failure's answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail answers with status and an error body.
func (a *API) fail(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	a.reply(w, status, b)
}

// reply writes v as the JSON answer.
func (a *API) reply(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		a.log.Error().Err(err).Msg("encode API answer")
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"Cannot encode the answer"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// authenticate lets through requests that carry the API key.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "apikey") || strings.TrimSpace(key) == "" {
			w.Header().Set("WWW-Authenticate", "apikey")
			a.fail(w, http.StatusUnauthorized, "unauthorized", "Missing API key: send Authorization: apikey <key>")
			return
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(key)))
		if subtle.ConstantTimeCompare(got[:], a.key[:]) != 1 {
			a.log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("API request with a wrong key refused")
			w.Header().Set("WWW-Authenticate", "apikey")
			a.fail(w, http.StatusUnauthorized, "unauthorized", "Wrong API key")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	_, _ = w.Write(OpenAPI)
}

// decode reads a POST's JSON object into v; on failure it has answered.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			a.fail(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as application/json")
			return false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.fail(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("Body over %d bytes", a.maxBody))
			return false
		}
		a.fail(w, http.StatusBadRequest, "bad_request", "Cannot read the body")
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		a.fail(w, http.StatusBadRequest, "bad_request", "Body is not a valid JSON object for this route: "+jsonError(err))
		return false
	}
	if dec.More() {
		a.fail(w, http.StatusBadRequest, "bad_request", "Body holds more than one JSON value")
		return false
	}
	return true
}

// jsonError shortens encoding/json's errors for an answer.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// hubError answers an error from the hub with the status it calls for.
func (a *API) hubError(w http.ResponseWriter, err error) {
	var pe *protocol.Error
	switch {
	case errors.Is(err, actors.ErrUnknownClient):
		a.fail(w, http.StatusNotFound, "unknown_client", err.Error())
	case errors.Is(err, actors.ErrClosed):
		a.fail(w, http.StatusServiceUnavailable, "unavailable", "The hub is shutting down")
	case errors.As(err, &pe) && pe.Code == protocol.CodeInvalidChannel:
		a.fail(w, http.StatusBadRequest, "invalid_channel", pe.Error())
	case errors.As(err, &pe) && pe.Code < 500:
		a.fail(w, http.StatusBadRequest, "bad_request", pe.Error())
	default:
		a.log.Error().Err(err).Msg("API request failed")
		a.fail(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// publishRequest is POST /publish's body.
type publishRequest struct {
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
	ID       string          `json:"id"`
	Ext      json.RawMessage `json:"ext"`
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if !a.decode(w, r, &req) {
		return
	}
	channels := req.Channels
	switch {
	case req.Channel != "" && len(channels) > 0:
		a.fail(w, http.StatusBadRequest, "bad_request", `Give "channel" or "channels", not both`)
		return
	case req.Channel != "":
		channels = []string{req.Channel}
	case len(channels) == 0:
		a.fail(w, http.StatusBadRequest, "bad_request", `Missing "channel" (or "channels")`)
		return
	}
	if len(req.Data) == 0 || string(req.Data) == "null" {
		a.fail(w, http.StatusBadRequest, "bad_request", `Missing "data"`)
		return
	}
	if len(req.Ext) > 0 && req.Ext[0] != '{' && string(req.Ext) != "null" {
		a.fail(w, http.StatusBadRequest, "bad_request", `"ext" must be an object`)
		return
	}
	// Every channel is checked before any is published to.
	for _, ch := range channels {
		if err := a.hub.CheckPublishChannel(ch); err != nil {
			a.hubError(w, err)
			return
		}
	}
	var opts []actors.PublishOption
	if req.ID != "" {
		opts = append(opts, actors.WithID(req.ID))
	}
	if len(req.Ext) > 0 && string(req.Ext) != "null" {
		opts = append(opts, actors.WithExt(req.Ext))
	}
	for i, ch := range channels {
		if err := a.hub.Publish(ch, req.Data, opts...); err != nil {
			if i > 0 {
				a.log.Warn().Err(err).Int("published", i).Msg("API publish stopped part way")
			}
			a.hubError(w, err)
			return
		}
	}
	a.reply(w, http.StatusOK, map[string]any{"published": len(channels)})
}

// targetRequest names the sessions of POST /push and /disconnect.
type targetRequest struct {
	ClientID  string          `json:"client_id"`
	UserID    string          `json:"user"`
	Channel   string          `json:"channel"`
	Data      json.RawMessage `json:"data"`
	Reconnect bool            `json:"reconnect"`
}

// reached is the answer of a push or disconnect.
type reached struct {
	Sessions int `json:"sessions"`
	actors.Coverage
}

// target checks that exactly one of client_id and user is given.
func (a *API) target(w http.ResponseWriter, req *targetRequest) bool {
	if (req.ClientID == "") == (req.UserID == "") {
		a.fail(w, http.StatusBadRequest, "bad_request", `Give "client_id" or "user" (one of them)`)
		return false
	}
	return true
}

func (a *API) push(w http.ResponseWriter, r *http.Request) {
	var req targetRequest
	if !a.decode(w, r, &req) || !a.target(w, &req) {
		return
	}
	if req.Reconnect {
		a.fail(w, http.StatusBadRequest, "bad_request", `"reconnect" is for /disconnect`)
		return
	}
	if req.Channel == "" {
		a.fail(w, http.StatusBadRequest, "bad_request", `Missing "channel"`)
		return
	}
	if len(req.Data) == 0 {
		a.fail(w, http.StatusBadRequest, "bad_request", `Missing "data"`)
		return
	}
	if req.ClientID != "" {
		if err := a.hub.Push(req.ClientID, req.Channel, req.Data); err != nil {
			a.hubError(w, err)
			return
		}
		a.reply(w, http.StatusOK, reached{Sessions: 1, Coverage: actors.Coverage{Nodes: []string{a.hub.NodeName()}}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	n, cov, err := a.hub.PushUser(ctx, req.UserID, req.Channel, req.Data)
	if err != nil {
		a.hubError(w, err)
		return
	}
	a.reply(w, http.StatusOK, reached{Sessions: n, Coverage: cov})
}

func (a *API) disconnect(w http.ResponseWriter, r *http.Request) {
	var req targetRequest
	if !a.decode(w, r, &req) || !a.target(w, &req) {
		return
	}
	if req.Channel != "" || len(req.Data) > 0 {
		a.fail(w, http.StatusBadRequest, "bad_request", `"channel" and "data" are for /push`)
		return
	}
	var opts []actors.DisconnectOption
	if !req.Reconnect {
		opts = append(opts, actors.NoReconnect())
	}
	if req.ClientID != "" {
		if err := a.hub.Disconnect(req.ClientID, opts...); err != nil {
			a.hubError(w, err)
			return
		}
		a.reply(w, http.StatusOK, reached{Sessions: 1, Coverage: actors.Coverage{Nodes: []string{a.hub.NodeName()}}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	n, cov, err := a.hub.DisconnectUser(ctx, req.UserID, opts...)
	if err != nil {
		a.hubError(w, err)
		return
	}
	a.reply(w, http.StatusOK, reached{Sessions: n, Coverage: cov})
}

func (a *API) channels(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	list, cov, err := a.hub.ListChannels(ctx)
	if err != nil {
		a.hubError(w, err)
		return
	}
	a.reply(w, http.StatusOK, struct {
		Channels []actors.ChannelInfo `json:"channels"`
		actors.Coverage
	}{list, cov})
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := actors.SessionFilter{Channel: q.Get("channel"), UserID: q.Get("user")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			a.fail(w, http.StatusBadRequest, "bad_request", `"limit" must be a positive integer`)
			return
		}
		f.Limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	list, cov, err := a.hub.ListSessions(ctx, f)
	if err != nil {
		a.hubError(w, err)
		return
	}
	if list == nil {
		list = []actors.SessionInfo{}
	}
	a.reply(w, http.StatusOK, struct {
		Sessions []actors.SessionInfo `json:"sessions"`
		actors.Coverage
	}{list, cov})
}

// presence answers GET /presence?channel=...: the members of a channel
// whose rule keeps presence, on every hub.
func (a *API) presence(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		a.fail(w, http.StatusBadRequest, "bad_request", `Missing "channel"`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	list, cov, err := a.hub.Presence(ctx, channel)
	if err != nil {
		a.hubError(w, err)
		return
	}
	if list == nil {
		list = []actors.Member{}
	}
	a.reply(w, http.StatusOK, struct {
		Channel string          `json:"channel"`
		Members []actors.Member `json:"members"`
		actors.Coverage
	}{channel, list, cov})
}

// statsBody is GET /stats's answer: this node's figures.
type statsBody struct {
	Node          string        `json:"node"`
	Clients       int           `json:"clients"`
	Channels      int           `json:"channels"`
	Published     uint64        `json:"published"`
	Delivered     uint64        `json:"delivered"`
	Handshakes    uint64        `json:"handshakes"`
	Queued        int           `json:"queued"`
	Held          int           `json:"held"`
	Overflows     uint64        `json:"overflows"`
	Dropped       uint64        `json:"dropped"`
	BrokerErrors  uint64        `json:"broker_errors"`
	Expired       uint64        `json:"expired"`
	Refusals      []refusalBody `json:"refusals"`
	UptimeSeconds float64       `json:"uptime_seconds"`
	Draining      bool          `json:"draining"`
}

type refusalBody struct {
	Action string `json:"action"`
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

func (a *API) stats(w http.ResponseWriter, _ *http.Request) {
	st := a.hub.Stats()
	b := statsBody{Node: a.hub.NodeName(), Clients: st.Clients, Channels: st.Channels, Published: st.Published,
		Delivered: st.Delivered, Handshakes: st.Handshakes, Queued: st.Queued, Held: st.Held,
		Overflows: st.Overflows, Dropped: st.Dropped, BrokerErrors: st.BrokerErrors, Expired: st.Expired,
		Refusals: []refusalBody{}, UptimeSeconds: st.Uptime.Seconds(), Draining: a.hub.Draining()}
	for _, r := range st.Refusals {
		b.Refusals = append(b.Refusals, refusalBody{r.Action, r.Rule, r.Reason, r.Count})
	}
	a.reply(w, http.StatusOK, b)
}
