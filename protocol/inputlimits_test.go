package protocol

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestDecodeInvalidUTF8 (issue 15 item 4): a message with invalid UTF-8
// in any string, at any depth, field names included, is refused with a
// 400 by both decoders; its neighbours in the batch are served, and the
// error reply repeats nothing that is not UTF-8.
func TestDecodeInvalidUTF8(t *testing.T) {
	t.Parallel()
	good := `{"channel":"/ok","data":"h` + "\u00e9 \u2603 \U0001d11e" + `","id":"1"}`
	for name, bad := range map[string]string{
		"data FF FE":          `{"channel":"/x","data":"` + "\xff\xfe" + `","id":"2"}`,
		"data nested":         `{"channel":"/x","data":{"a":[1,{"b":"ok` + "\xc3" + `"}]},"id":"2"}`,
		"data nested key":     `{"channel":"/x","data":{"a":{"` + "\xff" + `":1}},"id":"2"}`,
		"ext":                 `{"channel":"/x","data":1,"ext":{"a":"` + "\xed\xa0\x80" + `"},"id":"2"}`,
		"ext key":             `{"channel":"/x","data":1,"ext":{"` + "\xfe" + `":true},"id":"2"}`,
		"id":                  `{"channel":"/x","data":1,"id":"` + "\xff" + `"}`,
		"channel":             `{"channel":"/x` + "\xff" + `","data":1,"id":"2"}`,
		"clientId":            `{"channel":"/x","clientId":"` + "\xc0\xaf" + `","data":1,"id":"2"}`,
		"subscription":        `{"channel":"/meta/subscribe","subscription":["/a","/b` + "\xff" + `"],"id":"2"}`,
		"unknown field value": `{"channel":"/x","data":1,"extra":["` + "\xf8\x88\x80\x80\x80" + `"],"id":"2"}`,
		"unknown field name":  `{"channel":"/x","data":1,"` + "\xff" + `":1,"id":"2"}`,
		"escaped and invalid": `{"channel":"\/x","data":"\n` + "\xff" + `","id":"2"}`,
	} {
		for _, body := range []string{bad, "[" + good + "," + bad + "]"} {
			msgs, err := Decode([]byte(body))
			if err != nil {
				t.Fatalf("%s: Decode(%q) = %v, want the message marked invalid", name, body, err)
			}
			m := msgs[len(msgs)-1]
			if m.Invalid == nil || m.Invalid.Code != CodeBadRequest || m.Invalid.Error() != "400::Invalid UTF-8 in message" {
				t.Errorf("%s: %q decoded as %+v, want 400::Invalid UTF-8 in message", name, body, m)
				continue
			}
			if len(msgs) == 2 && msgs[0].Invalid != nil {
				t.Errorf("%s: the good neighbour failed: %v", name, msgs[0].Invalid)
			}
			out := ReplyTo(m).Fail(m.Invalid).AppendJSON(nil)
			if !utf8.Valid(out) {
				t.Errorf("%s: error reply is not UTF-8: %q", name, out)
			}
			if name != "id" && string(m.ID) != `"2"` {
				t.Errorf("%s: id not recovered for the error reply: %q", name, m.ID)
			}
		}
	}
	// Valid UTF-8, escapes and all, passes both decoders.
	for _, body := range []string{good, "[" + good + "]", `{"channel":"\/ok","data":"\u00e9\ud834\udd1e"}`} {
		msgs, err := Decode([]byte(body))
		if err != nil || msgs[0].Invalid != nil {
			t.Errorf("Decode(%q) = %+v, %v", body, msgs, err)
		}
	}
}

// TestDecodeSize (issue 15 item 6): Size is the message's JSON as
// received, from both decoders.
func TestDecodeSize(t *testing.T) {
	t.Parallel()
	a := `{"channel":"/a","id":"` + strings.Repeat("i", 1000) + `","data":1}`
	b := `{ "channel" : "\/b" , "data" : 2 , "x" : [1,2,3] }`
	for _, tc := range []struct {
		body  string
		sizes []int
	}{
		{a, []int{len(a)}},
		{"  " + b + "\n", []int{len(b)}},
		{"[" + a + " , " + b + "]", []int{len(a), len(b)}},
		{"[ " + a + ",null,5]", []int{len(a), 4, 1}},
	} {
		msgs, err := Decode([]byte(tc.body))
		if err != nil || len(msgs) != len(tc.sizes) {
			t.Fatalf("Decode(%q) = %v, %v", tc.body, msgs, err)
		}
		for i, m := range msgs {
			if m.Size != tc.sizes[i] {
				t.Errorf("%q: message %d size %d, want %d", tc.body, i, m.Size, tc.sizes[i])
			}
		}
	}
}

// TestCheckChannelSize (issue 15 item 8): the bounds are inclusive, a
// wildcard is a segment, 0 is no bound, and a name too long is refused
// without being repeated.
func TestCheckChannelSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		length, depth int
		want          string
	}{
		{"/a/b", 4, 2, ""},
		{"/a/b", 3, 2, "405::Channel name too long: over 3 bytes"},
		{"/a/b", 4, 1, "405:/a/b:Channel name too deep: over 1 segments"},
		{"/a/**", 0, 2, ""},
		{"/a/**", 0, 1, "405:/a/**:Channel name too deep: over 1 segments"},
		{strings.Repeat("/a", 32), 1024, 32, ""},
		{strings.Repeat("/a", 33), 1024, 32, "405:" + strings.Repeat("/a", 33) + ":Channel name too deep: over 32 segments"},
		{"/" + strings.Repeat("x", 1023), 1024, 32, ""},
		{"/" + strings.Repeat("x", 1024), 1024, 32, "405::Channel name too long: over 1024 bytes"},
		{strings.Repeat("/a", 256000), 0, 0, ""},
	} {
		err := CheckChannelSize(tc.name, tc.length, tc.depth)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckChannelSize(%.20q..., %d, %d) = %q, want %q", tc.name, tc.length, tc.depth, got, tc.want)
		}
	}
}

// TestPatternsDeep checks Patterns against the obvious construction on
// names of every depth up to 40 and on segments of several lengths.
func TestPatternsDeep(t *testing.T) {
	t.Parallel()
	for depth := 1; depth <= 40; depth++ {
		var b strings.Builder
		for i := range depth {
			fmt.Fprintf(&b, "/%s", strings.Repeat("s", 1+i%7))
		}
		name := b.String()
		want := []string{name, name[:strings.LastIndexByte(name, '/')+1] + "*"}
		for i := len(name) - 1; i >= 0; i-- {
			if name[i] == '/' {
				want = append(want, name[:i+1]+"**")
			}
		}
		var got []string
		Patterns(name, func(p []byte) { got = append(got, string(p)) })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Patterns(%q) =\n%v\nwant\n%v", name, got, want)
		}
	}
}
