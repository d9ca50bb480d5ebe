package wslib

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
)

// The benchmarks' clients run in a child process (this test binary, told by
// WSLIB_CLIENTS), so that their CPU and memory are not the server's.
func TestMain(m *testing.M) {
	if spec := os.Getenv("WSLIB_CLIENTS"); spec != "" {
		var addr string
		var n int
		var deflate bool
		fmt.Sscan(spec, &addr, &n, &deflate)
		if err := runClients(addr, n, deflate); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const subscribe = `[{"id":"1","channel":"/meta/subscribe","clientId":"0123456789abcdef0123","subscription":"/bench/fanout"}]`

// runClients opens n connections to addr, sends each a subscribe and waits
// for its reply, prints "ready", then counts the data frames the server
// pushes, printing the total (and the payload bytes so far: compressed,
// with deflate) each time it is a multiple of n. It returns
// when stdin closes.
func runClients(addr string, n int, deflate bool) error {
	var total, bytes atomic.Int64
	notify := make(chan [2]int64, 1<<16)
	fail := make(chan error, 1)
	var ready sync.WaitGroup
	sem := make(chan struct{}, 32) // connections being set up at once
	for range n {
		ready.Add(1)
		sem <- struct{}{}
		go func() {
			conn, br, compressed, err := dialRaw(addr, deflate)
			if err == nil {
				err = writeClientFrame(conn, []byte(subscribe), compressed)
			}
			if err == nil {
				_, err = readDataFrame(conn, br)
			}
			<-sem
			if err != nil {
				select {
				case fail <- err:
				default:
				}
				return
			}
			ready.Done()
			for {
				p, err := readDataFrame(conn, br)
				if err != nil {
					return
				}
				b := bytes.Add(int64(len(p)))
				if t := total.Add(1); t%int64(n) == 0 {
					notify <- [2]int64{t, b}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { ready.Wait(); close(done) }()
	select {
	case err := <-fail:
		return err
	case <-done:
	}
	fmt.Println("ready")
	go func() {
		for t := range notify {
			fmt.Println(t[0], t[1])
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// dialRaw does the opening handshake by hand, offering permessage-deflate
// if asked; it reports whether the server accepted it.
func dialRaw(addr string, deflate bool) (net.Conn, *bufio.Reader, bool, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, false, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n"
	if deflate {
		req += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("handshake: %s", resp.Status)
	}
	if err != nil {
		conn.Close()
		return nil, nil, false, err
	}
	return conn, br, strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate"), nil
}

// writeClientFrame writes a masked text frame, compressed if asked (as the
// first message of a context, so valid with or without context takeover).
func writeClientFrame(conn net.Conn, p []byte, compressed bool) error {
	f := ws.NewTextFrame(bytes.Clone(p))
	if compressed {
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, flate.BestSpeed)
		fw.Write(p)
		fw.Flush()
		f.Payload = bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
		f.Header.Length = int64(len(f.Payload))
		f.Header.Rsv = ws.Rsv(true, false, false)
	}
	return ws.WriteFrame(conn, ws.MaskFrameInPlace(f))
}

// readDataFrame reads up to the end of the next data message, answering
// pings; it returns the (possibly compressed) payload of its last frame.
func readDataFrame(conn net.Conn, br *bufio.Reader) ([]byte, error) {
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			return nil, err
		}
		switch {
		case h.OpCode == ws.OpPing:
			ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewPongFrame(p)))
		case h.OpCode == ws.OpClose:
			return nil, io.EOF
		case h.OpCode.IsData() && h.Fin:
			return p, nil
		}
	}
}
