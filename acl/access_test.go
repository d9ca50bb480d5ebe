package acl

import (
	"strings"
	"testing"
)

func TestParseAccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		words []string
		want  Access
	}{
		{"nobody", []string{"nobody"}, Nobody},
		{"nobody twice", []string{"nobody", " NOBODY "}, Nobody},
		{"anyone", []string{"anyone"}, Anyone},
		{"authenticated", []string{"authenticated"}, Authenticated},
		{"owner", []string{"owner"}, Owner},
		{"granted", []string{"granted"}, Granted},
		{"case and spaces", []string{"  Anyone\t", "OWNER"}, Anyone | Owner},
		{"owner or granted", []string{"owner", "granted"}, Owner | Granted},
		{"repeated word", []string{"granted", "granted"}, Granted},
		{"comma list", []string{"authenticated, owner"}, Authenticated | Owner},
		{"all four", []string{"granted", "owner", "authenticated", "anyone"}, Anyone | Authenticated | Owner | Granted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAccess(tt.words)
			if err != nil || got != tt.want {
				t.Fatalf("ParseAccess(%q) = %v, %v; want %v, nil", tt.words, got, err, tt.want)
			}
		})
	}
}

func TestParseAccessErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		words []string
		want  []string // substrings of the error
	}{
		{"empty list", nil, []string{"no access given", "nobody, anyone, authenticated, owner, granted"}},
		{"empty slice", []string{}, []string{"no access given"}},
		{"unknown word", []string{"anyone", "Admin"}, []string{`"admin"`, "valid: nobody, anyone, authenticated, owner, granted"}},
		{"blank word", []string{"  "}, []string{`unknown access ""`, "valid:"}},
		{"nobody and anyone", []string{"nobody", "anyone"}, []string{`"nobody" cannot be combined`, "anyone"}},
		{"anyone then nobody", []string{"owner", "granted", "nobody"}, []string{`"nobody" cannot be combined`, "owner,granted"}},
		{"nobody in comma list", []string{"nobody,granted"}, []string{`"nobody" cannot be combined`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAccess(tt.words)
			if err == nil {
				t.Fatalf("ParseAccess(%q) = %v, nil; want an error", tt.words, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseAccess(%q) error %q does not contain %q", tt.words, err, w)
				}
			}
		})
	}
}

func TestAccessString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a    Access
		want string
	}{
		{Nobody, "nobody"},
		{Anyone, "anyone"},
		{Authenticated, "authenticated"},
		{Owner, "owner"},
		{Granted, "granted"},
		{Granted | Anyone, "anyone,granted"},
		{Owner | Authenticated, "authenticated,owner"},
		{Anyone | Authenticated | Owner | Granted, "anyone,authenticated,owner,granted"},
		{Access(0x10), "0x10"},
		{Anyone | Access(0x30), "anyone,0x30"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.a.String(); got != tt.want {
				t.Fatalf("Access(%#x).String() = %q, want %q", uint8(tt.a), got, tt.want)
			}
		})
	}
}

func TestAccessBitsDistinct(t *testing.T) {
	t.Parallel()
	bits := []Access{Anyone, Authenticated, Owner, Granted}
	var seen Access
	for _, b := range bits {
		if b == 0 || b&(b-1) != 0 || seen&b != 0 {
			t.Fatalf("access %v (%#x) is not a new single bit", b, uint8(b))
		}
		seen |= b
	}
}

func TestAccessRoundTrip(t *testing.T) {
	t.Parallel()
	for a := Access(0); a <= allAccess; a++ {
		got, err := ParseAccess([]string{a.String()})
		if err != nil || got != a {
			t.Errorf("ParseAccess(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
		got, err = ParseAccess(strings.Split(a.String(), ","))
		if err != nil || got != a {
			t.Errorf("ParseAccess(split %q) = %v, %v; want %v", a.String(), got, err, a)
		}
	}
}

func TestActionString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a    Action
		want string
	}{
		{Subscribe, "subscribe"},
		{Publish, "publish"},
		{Action(0), "Action(0)"},
		{Action(9), "Action(9)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.a.String(); got != tt.want {
				t.Fatalf("Action(%d).String() = %q, want %q", uint8(tt.a), got, tt.want)
			}
		})
	}
}
