package transport

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// wsSocket writes a connection's frames itself, framed here (RFC 6455
// server frames: unmasked), straight to the net.Conn: a batch of frames in
// one write, one write deadline per batch, and a push may be written at
// once, without blocking, from the session's goroutine (tryWrite). It is
// used for connections without permessage-deflate; gorilla/websocket reads
// them, and its handlers for pings and close frames answer through
// writeControl, so that nothing is written to the socket but through mu.
type wsSocket struct {
	nc  net.Conn
	raw syscall.RawConn // nil when the connection has no file descriptor

	mu      sync.Mutex // held while writing to nc, and over partial
	partial []byte     // the rest of a frame tryWrite began: written first
	failed  error      // the first write error: the connection is broken
	closed  bool       // a close frame was sent: no more frames
	// deadlineSet is when the write deadline was last set.
	deadlineSet time.Time
}

func newWSSocket(nc net.Conn) *wsSocket {
	s := &wsSocket{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s
}

// errSocketClosed is a write after a close frame was sent.
var errSocketClosed = errors.New("websocket: close frame sent")

// framePool holds frame buffers (held only while a batch is written).
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledFrame = 64 << 10

// appendFrameHeader appends the header of a final, unmasked server frame
// of opcode op and n payload bytes.
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// appendTextFrame appends one text frame carrying items as a JSON array.
func appendTextFrame(b []byte, items [][]byte) []byte {
	n := 1 + len(items) // brackets and commas
	for _, it := range items {
		n += len(it)
	}
	b = appendFrameHeader(b, websocket.TextMessage, n)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

// tryWrite writes frame now if the socket takes it without waiting and
// nobody else is writing: true when all of it was written or its rest was
// kept in partial for the writer (then started reports true); false when
// the socket is busy and nothing was written.
func (s *wsSocket) tryWrite(frame []byte) (done, started bool) {
	if s.raw == nil || !s.mu.TryLock() {
		return false, false
	}
	defer s.mu.Unlock()
	if s.partial != nil || s.failed != nil || s.closed {
		return false, false
	}
	n := 0
	err := s.raw.Write(func(fd uintptr) bool {
		for n < len(frame) {
			m, err := syscall.Write(int(fd), frame[n:])
			if m > 0 {
				n += m
			}
			if err != nil || m <= 0 {
				break // EAGAIN (the socket is full) and any error: the writer goes on
			}
		}
		return true // one attempt, never a wait
	})
	switch {
	case n == len(frame):
		return true, false
	case n == 0 && err == nil:
		return false, false // nothing written: the caller queues it
	}
	s.partial = append([]byte(nil), frame[n:]...)
	return true, true
}

// write writes frames (and the rest of a frame tryWrite began) within
// timeout.
func (s *wsSocket) write(frames []byte, timeout time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(frames, timeout)
}

func (s *wsSocket) writeLocked(frames []byte, timeout time.Duration) error {
	if s.failed != nil {
		return s.failed
	}
	if s.closed {
		return errSocketClosed
	}
	// The deadline is set anew only when a quarter of it has passed, so
	// that a busy connection does not reset a timer per write: a write
	// has between three quarters of timeout and all of it.
	if now := time.Now(); now.Sub(s.deadlineSet) > timeout/4 {
		if err := s.nc.SetWriteDeadline(now.Add(timeout)); err != nil {
			s.failed = err
			return err
		}
		s.deadlineSet = now
	}
	if s.partial != nil {
		if _, err := s.nc.Write(s.partial); err != nil {
			s.failed = err
			return err
		}
		s.partial = nil
	}
	if len(frames) > 0 {
		if _, err := s.nc.Write(frames); err != nil {
			s.failed = err
			return err
		}
	}
	return nil
}

// pendingPartial is the size of the rest of a frame tryWrite began.
func (s *wsSocket) pendingPartial() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.partial)
}

// writeControl writes a control frame (ping, pong, close) between frames;
// after a close frame nothing more is written.
func (s *wsSocket) writeControl(op int, payload []byte, timeout time.Duration) error {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	frame := append(appendFrameHeader(make([]byte, 0, 2+len(payload)), byte(op), len(payload)), payload...)
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.writeLocked(frame, timeout)
	if op == websocket.CloseMessage {
		s.closed = true
	}
	return err
}
