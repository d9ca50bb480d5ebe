package transport

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// parkable returns the connection a request may be parked on: one of
// Serve's, for an HTTP/1.1 keep-alive request carrying a /meta/connect
// (the only message a session holds); nil when it may not.
func (t *LongPolling) parkable(r *http.Request, msgs []*protocol.Message) *parkConn {
	if t.parkAfter <= 0 || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close {
		return nil
	}
	pc, _ := r.Context().Value(parkKey{}).(*parkConn)
	if pc == nil {
		return nil
	}
	for _, m := range msgs {
		if m.Channel == protocol.MetaConnect {
			return pc
		}
	}
	return nil
}

// hold submits a request that may be parked and waits for its answer for
// up to ParkAfter. It returns the answer (nil when the client left), or
// parked true when the connection was parked and the answer will be
// written without this goroutine.
func (t *LongPolling) hold(w http.ResponseWriter, r *http.Request, pc *parkConn, req actors.RemoteRequest, jsonp string) (parts [][]byte, parked bool) {
	// The submission outlives the request's context once parked: its own
	// context ends with the request's only until then.
	ctx, cancel := context.WithCancel(context.Background())
	unlink := context.AfterFunc(r.Context(), cancel)
	p := &heldPoll{answered: make(chan struct{}, 1), cancel: cancel, jsonp: jsonp}
	req.Gone = p.gone
	t.hub.SubmitFunc(ctx, req, p.answer)

	timer := time.NewTimer(t.parkAfter)
	defer timer.Stop()
	select {
	case <-p.answered:
		unlink()
		return p.parts, false
	case <-timer.C:
	}
	if !unlink() {
		// The request's context has ended: the submission is being
		// abandoned, and its answer (nil) comes at once.
		<-p.answered
		return p.parts, false
	}
	h := w.Header()
	h["Content-Type"] = contentType(jsonp)
	head := responseHead(h)
	// The hijacked connection is pc: the one ConnContext saw.
	_, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("park: hijack")
		context.AfterFunc(r.Context(), cancel)
		<-p.answered
		return p.parts, false
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes net/http read past the request: the next request's.
		ahead, _ := brw.Reader.Peek(n)
		pc.pre = append(append(make([]byte, 0, n+len(pc.pre)), ahead...), pc.pre...)
	}
	pc.l.park(p)
	p.mu.Lock()
	p.conn, p.head = pc, head
	done := p.done
	p.mu.Unlock()
	if done {
		pc.l.unpark(p)
		p.writeParked()
	}
	return nil, true
}

// heldPoll is a request that may be parked: the session's answer goes to
// the goroutine that waits for it, or, once parked, to the connection.
type heldPoll struct {
	answered chan struct{} // capacity 1: the answer came before parking
	cancel   context.CancelFunc
	jsonp    string

	mu    sync.Mutex
	done  bool
	parts [][]byte  // the answer; nil: the client left
	conn  *parkConn // set when parked
	head  []byte    // the response head, set when parked
}

// answer takes the session's answer (SubmitFunc's done): on the session's
// goroutine, or the submitter's when the answer is ready at once.
func (p *heldPoll) answer(parts [][]byte) {
	p.cancel() // the submission is over; its context has no more use
	p.mu.Lock()
	p.done, p.parts = true, parts
	parked := p.conn != nil
	p.mu.Unlock()
	if parked {
		p.conn.l.unpark(p)
		p.writeParked()
		return
	}
	p.answered <- struct{}{}
}

// sweep ends the poll, if it is parked and its client has closed the
// connection: the submission is abandoned (the session keeps what it
// would have sent) and its answer, nil, closes the connection. The peek
// is made under p.mu, before the answer: nothing else reads the
// connection then.
func (p *heldPoll) sweep() {
	p.mu.Lock()
	left := !p.done && p.conn != nil && p.conn.peerClosed()
	p.mu.Unlock()
	if left {
		p.cancel()
	}
}

// gone is RemoteRequest.Gone: whether the parked connection's client has
// left. Before parking the request's context says so.
func (p *heldPoll) gone() bool {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	return c != nil && c.peerClosed()
}

// writeParked hands the parked connection back to its listener with its
// answer owed, or closes it when the client left. It does not block on
// the connection: the goroutine that serves it next writes the answer.
func (p *heldPoll) writeParked() {
	if p.parts == nil {
		_ = p.conn.Conn.Close()
		return
	}
	body := appendBody(nil, p.jsonp, p.parts)
	resp := make([]byte, 0, len(p.head)+len(body)+80)
	resp = append(resp, p.head...)
	resp = append(resp, "Content-Length: "...)
	resp = strconv.AppendInt(resp, int64(len(body)), 10)
	resp = append(resp, "\r\nDate: "...)
	resp = time.Now().UTC().AppendFormat(resp, http.TimeFormat)
	resp = append(resp, "\r\n\r\n"...)
	p.conn.owed = append(resp, body...)
	p.conn.l.serveAgain(p.conn)
}

// responseHead is the start of a parked request's 200 response: the status
// line and the headers set so far, each line ended by CRLF.
func responseHead(h http.Header) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.WriteSubset(&b, map[string]bool{"Content-Length": true, "Date": true})
	return b.Bytes()
}
