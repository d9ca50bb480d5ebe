package actors

import "net"

// hostOf returns the host part of a remote address ("ip:port").
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// takeIPSlot counts a new session from ip, or refuses it at the limit.
func (h *Hub) takeIPSlot(ip string) bool {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	if max := h.opts.MaxSessionsPerIP; max > 0 && h.perIP[ip] >= max {
		return false
	}
	h.perIP[ip]++
	return true
}

func (h *Hub) releaseIPSlot(ip string) {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	if h.perIP[ip]--; h.perIP[ip] <= 0 {
		delete(h.perIP, ip)
	}
}

// holdBrowser reserves one of the browser's held long polls; it reports
// false when its other clients already hold Options.MaxSessionsPerBrowser.
func (h *Hub) holdBrowser(id string) bool {
	h.browserMu.Lock()
	defer h.browserMu.Unlock()
	if max := h.opts.MaxSessionsPerBrowser; max > 0 && h.browserHeld[id] >= max {
		return false
	}
	h.browserHeld[id]++
	return true
}

func (h *Hub) releaseBrowser(id string) {
	h.browserMu.Lock()
	defer h.browserMu.Unlock()
	if h.browserHeld[id]--; h.browserHeld[id] <= 0 {
		delete(h.browserHeld, id)
	}
}
