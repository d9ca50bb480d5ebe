package acl

import (
	"strings"
	"testing"
)

func TestNewGrants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string
		want     int
	}{
		{"nil", nil, 0},
		{"empty", []string{}, 0},
		{"plain", []string{"/a"}, 1},
		{"wildcards", []string{"/a/*", "/b/**", "/**", "/*", "/service/x", "/meta"}, 6},
		{"duplicates kept", []string{"/a", "/a"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := NewGrants(tt.patterns)
			if err != nil || g.Len() != tt.want {
				t.Fatalf("NewGrants(%q) = Len %d, %v; want Len %d, nil", tt.patterns, g.Len(), err, tt.want)
			}
		})
	}
	if (Grants{}).Len() != 0 {
		t.Error("zero Grants has a grant")
	}
}

func TestNewGrantsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string
		want     []string
	}{
		{"empty name", []string{""}, []string{`grant 1 ("")`, "invalid"}},
		{"relative", []string{"/ok", "chat"}, []string{`grant 2 ("chat")`, "invalid"}},
		{"empty segment", []string{"/a//b"}, []string{`grant 1 ("/a//b")`, "invalid"}},
		{"wildcard in middle", []string{"/a", "/b", "/a/**/b"}, []string{`grant 3 ("/a/**/b")`, "invalid"}},
		{"placeholder", []string{"/user/{sub}"}, []string{`grant 1 ("/user/{sub}")`, "invalid"}},
		{"meta", []string{"/meta/connect"}, []string{`grant 1 ("/meta/connect")`, "/meta"}},
		{"meta wildcard", []string{"/meta/**"}, []string{`grant 1 ("/meta/**")`, "/meta"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := NewGrants(tt.patterns)
			if err == nil {
				t.Fatalf("NewGrants(%q) = Len %d, nil; want an error", tt.patterns, g.Len())
			}
			if g.Len() != 0 {
				t.Errorf("NewGrants returned %d grants with its error", g.Len())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewGrants error %q does not contain %q", err, w)
				}
			}
		})
	}
}
