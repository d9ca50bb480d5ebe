package wslib

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// gorilla/websocket: a 512 B read buffer of its own (it is held for the
// connection's life, since the reader sits in it; 125 B is the least it
// takes) and write buffers from a shared sync.Pool, held only while a frame
// is written (WriteMessage on a server writes one frame whatever its size,
// so the write buffer's size only sets how much is copied before the
// writev). Deadlines are plain SetWriteDeadline/SetReadDeadline; the read
// deadline is pushed back by each pong. WriteControl (the ping) may run
// concurrently with WriteMessage; the default close handler answers the
// close handshake.
var gorillaUpgrader, gorillaDeflate = newGorillaUpgrader(false), newGorillaUpgrader(true)

var gorillaPool sync.Pool

func newGorillaUpgrader(deflate bool) *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:    512,
		WriteBufferSize:   1024,
		WriteBufferPool:   &gorillaPool,
		EnableCompression: deflate, // no context takeover: pooled flate writers
	}
}

type gorillaConn struct {
	c   *websocket.Conn
	cfg *Config
}

func upgradeGorilla(w http.ResponseWriter, r *http.Request, cfg *Config) (wsConn, error) {
	u := gorillaUpgrader
	if cfg.Deflate != NoDeflate {
		u = gorillaDeflate
	}
	c, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(cfg.MaxMessage)
	gc := &gorillaConn{c: c, cfg: cfg}
	gc.extendRead()
	c.SetPongHandler(func(string) error { gc.extendRead(); return nil })
	return gc, nil
}

func (gc *gorillaConn) extendRead() {
	gc.c.SetReadDeadline(time.Now().Add(gc.cfg.PingInterval + gc.cfg.PongTimeout))
}

func (gc *gorillaConn) read(onText func([]byte)) error {
	for {
		typ, r, err := gc.c.NextReader()
		if err != nil {
			return err
		}
		if typ != websocket.TextMessage {
			return gc.fail(websocket.CloseUnsupportedData)
		}
		// SetReadLimit counts the bytes on the wire: a compressed message
		// must also be limited once inflated.
		msg, err := io.ReadAll(io.LimitReader(r, gc.cfg.MaxMessage+1))
		if err != nil {
			return err
		}
		if int64(len(msg)) > gc.cfg.MaxMessage {
			return gc.fail(websocket.CloseMessageTooBig)
		}
		onText(msg)
	}
}

func (gc *gorillaConn) fail(code int) error {
	gc.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	return errProtocol
}

func (gc *gorillaConn) write(frame []byte) error {
	gc.c.SetWriteDeadline(time.Now().Add(gc.cfg.WriteTimeout))
	return gc.c.WriteMessage(websocket.TextMessage, frame)
}

func prepareGorilla(frame []byte) any {
	pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, frame)
	return pm
}

// writePrepared writes a PreparedMessage: gorilla frames (and compresses)
// it once per set of connection options, for all connections.
func (gc *gorillaConn) writePrepared(p any) error {
	gc.c.SetWriteDeadline(time.Now().Add(gc.cfg.WriteTimeout))
	return gc.c.WritePreparedMessage(p.(*websocket.PreparedMessage))
}

func (gc *gorillaConn) ping() error {
	return gc.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(gc.cfg.WriteTimeout))
}

func (gc *gorillaConn) close() { gc.c.Close() }
