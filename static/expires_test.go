package static

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestParseTypeExpires(t *testing.T) {
	t.Parallel()
	ok := map[string]map[string]time.Duration{
		"":                                {},
		"  ":                              {},
		"text/css=3600":                   {"text/css": time.Hour},
		"text/css=3600,image/png=86400":   {"text/css": time.Hour, "image/png": 24 * time.Hour},
		" Text/CSS = 0 , image/svg+xml=5": {"text/css": 0, "image/svg+xml": 5 * time.Second},
	}
	for in, want := range ok {
		got, err := ParseTypeExpires(in)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("ParseTypeExpires(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"text/css":                      "want media-type=seconds",
		"text/css=3600,":                "item 2",
		"text/css=1h":                   `seconds "1h"`,
		"text/css=-1":                   "non-negative",
		"text/css=":                     "non-negative whole number",
		"text/css=99999999999999999999": "non-negative",
		"text/css=9999999999999":        "non-negative",
		"css=60":                        "type/subtype",
		"/css=60":                       "type/subtype",
		"text/=60":                      "type/subtype",
		"text/css;charset=utf-8=60":     "type/subtype",
		"text/css=1,TEXT/CSS=2":         "given twice",
	}
	for in, want := range bad {
		got, err := ParseTypeExpires(in)
		if err == nil {
			t.Errorf("ParseTypeExpires(%q) = %v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTypeExpires(%q) error %q, want it to mention %q", in, err, want)
		}
	}
}
