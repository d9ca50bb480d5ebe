package wslib

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// coder/websocket: Accept keeps net/http's hijacked 4 KiB bufio.Reader and
// 4 KiB bufio.Writer for the connection's life, and neither size can be
// set; there is nothing else to tune for memory. Deadlines are contexts
// (one per write, the idiomatic way); Ping waits for its pong; Read answers
// pings and the close handshake itself.
type coderConn struct {
	c   *websocket.Conn
	cfg *Config
}

func upgradeCoder(w http.ResponseWriter, r *http.Request, cfg *Config) (wsConn, error) {
	opts := &websocket.AcceptOptions{}
	switch cfg.Deflate {
	case ContextTakeover:
		opts.CompressionMode = websocket.CompressionContextTakeover
	case NoContextTakeover:
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	if cfg.Deflate != NoDeflate {
		// The defaults (128 B with context takeover, 512 B without) would
		// leave bayeuxhub's 100-300 B messages uncompressed in the second
		// mode; compress everything, as the others do.
		opts.CompressionThreshold = 1
	}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(cfg.MaxMessage)
	return &coderConn{c: c, cfg: cfg}, nil
}

func (cc *coderConn) read(onText func([]byte)) error {
	for {
		typ, msg, err := cc.c.Read(context.Background())
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			cc.c.Close(websocket.StatusUnsupportedData, "text frames only")
			return nil
		}
		onText(msg)
	}
}

func (cc *coderConn) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), cc.cfg.WriteTimeout)
	defer cancel()
	return cc.c.Write(ctx, websocket.MessageText, frame)
}

func (cc *coderConn) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), cc.cfg.PongTimeout)
	defer cancel()
	return cc.c.Ping(ctx)
}

func (cc *coderConn) close() { cc.c.CloseNow() }
