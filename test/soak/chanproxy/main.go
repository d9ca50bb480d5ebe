// Command chanproxy is a reverse proxy that renames channels: it replaces
// --from with --to in every request body it passes to --target and --to
// with --from in every response body it passes back.
//
// test/soak/run puts it in front of one of its two bayeuxhub-bench
// instances. The load tool always uses the channels /bench/0 to
// /bench/N-1 and numbers its publishers from 0, so two instances on one
// server would each receive the other's messages and take them for their
// own (masking losses as duplicates). Through chanproxy one instance's
// channels are /soakl/N on the server while the tool still sees
// /bench/N. It speaks plain HTTP (long-polling), not WebSocket, and its
// target must be a loopback address.
//
// Usage:
//
//	chanproxy --target http://127.0.0.1:PORT [--listen 127.0.0.1:0] [--from /bench/ --to /soakl/] [--addr-file FILE]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"time"
)

// maxBody bounds the bodies the proxy reads whole, both ways.
const maxBody = 64 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "the server, e.g. http://127.0.0.1:8080 (loopback only)")
	from := flag.String("from", "/bench/", "text to replace in requests (and to restore in responses)")
	to := flag.String("to", "/soakl/", "its replacement")
	addrFile := flag.String("addr-file", "", "write the address listened on to this file once listening")
	flag.Parse()
	if *target == "" || *from == "" || *to == "" || *from == *to {
		log.Fatal("chanproxy: --target, and distinct --from and --to, are required")
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		log.Fatalf("chanproxy: --target %q: want http://127.x.x.x:port", *target)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		log.Fatalf("chanproxy: --target %q is not a loopback address", *target)
	}
	f, t := []byte(*from), []byte(*to)

	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		ModifyResponse: func(resp *http.Response) error {
			b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
			resp.Body.Close()
			if err != nil {
				return err
			}
			b = bytes.ReplaceAll(b, t, f)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			resp.Header.Del("Transfer-Encoding")
			return nil
		},
		ErrorLog: log.New(os.Stderr, "chanproxy: ", log.LstdFlags),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
			r.Body.Close()
			if err != nil {
				http.Error(w, "chanproxy: "+err.Error(), http.StatusBadGateway)
				return
			}
			b = bytes.ReplaceAll(b, f, t)
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
			r.Header.Del("Content-Length")
		}
		rp.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("chanproxy: %v", err)
	}
	if *addrFile != "" {
		// Written whole, then renamed, so a reader never sees half of it.
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			log.Fatalf("chanproxy: %v", err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatalf("chanproxy: %v", err)
		}
	}
	fmt.Fprintf(os.Stderr, "chanproxy: %s -> %s, %q <-> %q\n", ln.Addr(), u, *from, *to)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
