package wslib

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// gobwas/ws, used at its lowest level: frame headers are read straight
// from the net.Conn (no read buffer: an idle connection holds no buffer at
// all), and each frame is built in a pooled buffer and written with one
// Write under the connection's write mutex (the writer, the pinger and the
// reader's pong and close replies share the conn). Deadlines are the
// net.Conn's own. permessage-deflate is wsflate with no context takeover
// either way, so flate writers and readers come from pools.
type gobwasConn struct {
	conn    net.Conn
	r       io.Reader
	cfg     *Config
	deflate bool
	wmu     sync.Mutex
}

var errProtocol = errors.New("websocket protocol error")

func upgradeGobwas(w http.ResponseWriter, r *http.Request, cfg *Config) (wsConn, error) {
	var u ws.HTTPUpgrader
	var ext *wsflate.Extension
	if cfg.Deflate != NoDeflate {
		ext = &wsflate.Extension{Parameters: wsflate.Parameters{
			ServerNoContextTakeover: true,
			ClientNoContextTakeover: true,
		}}
		u.Negotiate = ext.Negotiate
	}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	gc := &gobwasConn{conn: conn, r: conn, cfg: cfg}
	if n := rw.Reader.Buffered(); n > 0 { // sent before our 101 came
		b, _ := rw.Reader.Peek(n)
		gc.r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	if ext != nil {
		_, gc.deflate = ext.Accepted()
	}
	gc.extendRead()
	return gc, nil
}

func (gc *gobwasConn) extendRead() {
	gc.conn.SetReadDeadline(time.Now().Add(gc.cfg.PingInterval + gc.cfg.PongTimeout))
}

func (gc *gobwasConn) read(onText func([]byte)) error {
	var msg []byte
	inMsg, compressed := false, false
	for {
		h, err := ws.ReadHeader(gc.r)
		if err != nil {
			return err
		}
		rsv1 := h.Rsv == ws.Rsv(true, false, false) && gc.deflate && h.OpCode == ws.OpText
		switch {
		case !h.Masked || (h.Rsv != 0 && !rsv1) || h.OpCode.IsReserved(),
			h.OpCode.IsControl() && (h.Length > 125 || !h.Fin),
			(h.OpCode == ws.OpContinuation) != inMsg:
			return gc.fail(ws.StatusProtocolError, errProtocol)
		case h.OpCode == ws.OpBinary:
			return gc.fail(ws.StatusUnsupportedData, errProtocol)
		case int64(len(msg))+h.Length > gc.cfg.MaxMessage:
			return gc.fail(ws.StatusMessageTooBig, errProtocol)
		}
		// Grown as bytes arrive, not allocated on the peer's word.
		p, err := io.ReadAll(io.LimitReader(gc.r, h.Length))
		if err == nil && int64(len(p)) < h.Length {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		ws.Cipher(p, h.Mask, 0)
		switch h.OpCode {
		case ws.OpPing:
			gc.writeFrame(ws.OpPong, p)
			continue
		case ws.OpPong:
			gc.extendRead()
			continue
		case ws.OpClose: // echo the status code, then close
			if len(p) > 2 {
				p = p[:2]
			}
			gc.writeFrame(ws.OpClose, p)
			return io.EOF
		case ws.OpText:
			msg, inMsg, compressed = p, true, rsv1
		default:
			msg = append(msg, p...)
		}
		if !h.Fin {
			continue
		}
		if compressed {
			if msg, err = inflate(msg, gc.cfg.MaxMessage); err != nil {
				return gc.fail(ws.StatusMessageTooBig, err)
			}
		}
		onText(msg)
		msg, inMsg = nil, false
	}
}

func (gc *gobwasConn) fail(code ws.StatusCode, err error) error {
	gc.writeFrame(ws.OpClose, ws.NewCloseFrameBody(code, ""))
	return err
}

type gobwasBuf struct {
	frame, z bytes.Buffer
	fw       *wsflate.Writer
	hdr      [ws.MaxHeaderSize]byte
}

var gobwasBufs = sync.Pool{New: func() any { return new(gobwasBuf) }}

func (gc *gobwasConn) write(frame []byte) error { return gc.writeFrame(ws.OpText, frame) }

func (gc *gobwasConn) ping() error { return gc.writeFrame(ws.OpPing, nil) }

func (gc *gobwasConn) writeFrame(op ws.OpCode, p []byte) error {
	b := gobwasBufs.Get().(*gobwasBuf)
	defer gobwasBufs.Put(b)
	frame, err := b.encode(op, p, gc.deflate && op == ws.OpText)
	if err != nil {
		return err
	}
	return gc.writeRaw(frame)
}

func (gc *gobwasConn) writeRaw(frame []byte) error {
	gc.wmu.Lock()
	defer gc.wmu.Unlock()
	gc.conn.SetWriteDeadline(time.Now().Add(gc.cfg.WriteTimeout))
	_, err := gc.conn.Write(frame)
	return err
}

// encode builds a frame of payload p in b, compressed if deflate.
func (b *gobwasBuf) encode(op ws.OpCode, p []byte, deflate bool) ([]byte, error) {
	h := ws.Header{Fin: true, OpCode: op}
	if deflate {
		b.z.Reset()
		if b.fw == nil {
			b.fw = wsflate.NewWriter(&b.z, func(w io.Writer) wsflate.Compressor {
				fw, _ := flate.NewWriter(w, flate.BestSpeed)
				return fw
			})
		} else {
			b.fw.Reset(&b.z)
		}
		if _, err := b.fw.Write(p); err != nil {
			return nil, err
		}
		if err := b.fw.Flush(); err != nil {
			return nil, err
		}
		p, h.Rsv = b.z.Bytes(), ws.Rsv(true, false, false)
	}
	h.Length = int64(len(p))
	b.frame.Reset()
	ws.WriteHeaderBuffer(&b.frame, h, b.hdr[:])
	b.frame.Write(p)
	return b.frame.Bytes(), nil
}

// gobwasPrepared is a text frame built once for all connections, plain and
// compressed (no context takeover makes it the same for every connection),
// each on first use.
type gobwasPrepared struct {
	payload []byte
	once    [2]sync.Once
	frames  [2][]byte
	errs    [2]error
}

func (gc *gobwasConn) writePrepared(p any) error {
	gp, i := p.(*gobwasPrepared), 0
	if gc.deflate {
		i = 1
	}
	gp.once[i].Do(func() {
		b := gobwasBufs.Get().(*gobwasBuf)
		defer gobwasBufs.Put(b)
		f, err := b.encode(ws.OpText, gp.payload, gc.deflate)
		gp.frames[i], gp.errs[i] = bytes.Clone(f), err
	})
	if gp.errs[i] != nil {
		return gp.errs[i]
	}
	return gc.writeRaw(gp.frames[i])
}

func (gc *gobwasConn) close() { gc.conn.Close() }

// inflate decompresses one message with a pooled flate reader.
func inflate(p []byte, max int64) ([]byte, error) {
	rd := inflaters.Get().(*wsflate.Reader)
	defer inflaters.Put(rd)
	rd.Reset(bytes.NewReader(p))
	out, err := io.ReadAll(io.LimitReader(rd, max+1))
	if err == nil && int64(len(out)) > max {
		err = errors.New("message too big")
	}
	return out, err
}

var inflaters = sync.Pool{New: func() any {
	return wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor {
		return flateReader{flate.NewReader(r)}
	})
}}

// flateReader lets wsflate.Reader reset a flate reader instead of making
// a new one per message.
type flateReader struct{ io.ReadCloser }

func (f flateReader) Reset(r io.Reader) { f.ReadCloser.(flate.Resetter).Reset(r, nil) }
