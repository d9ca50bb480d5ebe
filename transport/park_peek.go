//go:build linux || darwin || freebsd || netbsd || openbsd

package transport

import (
	"errors"
	"syscall"
)

// peerClosed reports whether the peer of a parked connection has closed
// it: a read that would see end of file, tried without waiting and
// without taking the bytes (the next request, if the client sent one). It
// must only be called while nothing else reads the connection.
func (c *parkConn) peerClosed() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)
		return true
	})
	return closed || err != nil
}
