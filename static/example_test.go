package static_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing/fstest"
	"time"

	"github.com/bayeuxhub/bayeuxhub/static"
)

func ExampleParseTypeExpires() {
	expires, err := static.ParseTypeExpires("text/css=3600,image/png=86400")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(expires["text/css"], expires["image/png"])

	_, err = static.ParseTypeExpires("text/css=1h")
	fmt.Println(err)
	// Output:
	// 1h0m0s 24h0m0s
	// type expires item 1 "text/css=1h": seconds "1h": want a non-negative whole number
}

func ExampleNew() {
	h, err := static.New(static.Options{
		Root:        fstest.MapFS{"index.html": {Data: []byte("<h1>hello</h1>")}},
		TypeExpires: map[string]time.Duration{"text/html": 60 * time.Second},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, target := range []string{"/", "/missing.js"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		body, _ := io.ReadAll(rec.Body)
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"), string(body))
	}
	// Output:
	// 200 text/html; charset=utf-8 max-age=60 <h1>hello</h1>
	// 404 text/plain; charset=utf-8  Path '/missing.js' not found
}
