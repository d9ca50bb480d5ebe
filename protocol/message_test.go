package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	msgs, err := Decode([]byte(`{"channel":"/a","data":1,"id":"x"}`))
	if err != nil || len(msgs) != 1 || msgs[0].Channel != "/a" || string(msgs[0].ID) != `"x"` {
		t.Fatalf("single object: %v %v", msgs, err)
	}
	msgs, err = Decode([]byte(`[{"channel":"/meta/subscribe","subscription":["/a","/b"]},{"channel":"/meta/subscribe","subscription":"/c"}]`))
	if err != nil || len(msgs) != 2 || len(msgs[0].Subscription.Names) != 2 || msgs[1].Subscription.Names[0] != "/c" {
		t.Fatalf("subscriptions: %+v %v", msgs, err)
	}
	if string(msgs[1].Subscription.Raw) != `"/c"` {
		t.Fatalf("raw subscription %s", msgs[1].Subscription.Raw)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, body := range []string{``, `   `, `nonsense`, `"string"`, `42`, `[]`, `[{"channel":"/a"}`, `{"channel":`} {
		if _, err := Decode([]byte(body)); err == nil || err.(*Error).Code != CodeBadRequest {
			t.Errorf("Decode(%q) = %v, want a 400", body, err)
		}
	}
	// A bad element fails alone; its neighbours are served.
	msgs, err := Decode([]byte(`[{"channel":"/ok","data":1},{"channel":5},{"channel":"/x","id":{"a":1}},{"channel":"/y","ext":[1]},null,{"channel":"/s","subscription":7,"id":"k"}]`))
	if err != nil || len(msgs) != 6 {
		t.Fatalf("mixed batch: %v %v", msgs, err)
	}
	if msgs[0].Invalid != nil {
		t.Errorf("good message marked invalid: %v", msgs[0].Invalid)
	}
	for i := 1; i < 6; i++ {
		if msgs[i].Invalid == nil || msgs[i].Invalid.Code != CodeBadRequest {
			t.Errorf("message %d: want a 400, got %+v", i, msgs[i])
		}
	}
	if msgs[5].Channel != "/s" || string(msgs[5].ID) != `"k"` {
		t.Errorf("channel and id not recovered for the error reply: %+v", msgs[5])
	}
	if !strings.Contains(msgs[1].Invalid.Message, "channel") {
		t.Errorf("error does not name the field: %v", msgs[1].Invalid)
	}
}

func TestReplyJSON(t *testing.T) {
	r := &Reply{Channel: "/meta/handshake", ID: json.RawMessage(`"1"`), ClientID: "abc", Successful: true,
		Version: "1.0", SupportedConnectionTypes: []string{"long-polling"},
		Advice: &Advice{Reconnect: ReconnectRetry, Interval: Int(0), Timeout: Int(30000)}}
	var got map[string]any
	if err := json.Unmarshal(r.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if got["clientId"] != "abc" || got["successful"] != true || got["advice"].(map[string]any)["timeout"] != 30000.0 {
		t.Fatalf("reply: %v", got)
	}
	f := ReplyTo(&Message{Channel: "/x"}).Fail(ErrUnknownClient("c1"))
	if err := json.Unmarshal(f.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if got["error"] != "402:c1:Unknown client" || got["successful"] != false {
		t.Fatalf("error reply: %v", got)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x1f\n\t\r", "<script>&", "héllo ☃ 𝄞", "bad\xffutf8", "line\u2028sep\u2029"} {
		b := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if back != want {
			t.Errorf("round trip of %q = %q", s, back)
		}
		if strings.ContainsAny(string(b), "<>&\u2028\u2029") {
			t.Errorf("AppendString(%q) = %s leaves characters unsafe for JSONP", s, b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`,
		`{"channel":"/meta/connect","clientId":"x","connectionType":"long-polling","advice":{"timeout":0}}`,
		`[{"channel":"/meta/subscribe","subscription":["/a/*","/b/**"]},{"channel":"/a","data":{"x":[1,2]},"id":7,"ext":{}}]`,
		`[{"channel":5},null,{"id":{"a":1}}]`,
		`[{"channel":"/x","data":"\u2028<\/script>"}]`,
		// Invalid UTF-8 (issue 15): in data, ext, an id, a nested key, a
		// channel; a batch with one bad element.
		"[{\"channel\":\"/x\",\"data\":\"\xff\xfe\"}]",
		"{\"channel\":\"/x\",\"data\":{\"a\":[1,{\"b\":\"ok\xc3\"}]},\"ext\":{\"\xed\xa0\x80\":1},\"id\":\"\xff\"}",
		"[{\"channel\":\"/ok\",\"data\":1},{\"channel\":\"/x\xff\",\"data\":1,\"id\":\"7\"},{\"\xfe\":1,\"channel\":\"/y\"}]",
		// Deep and long names.
		`[{"channel":"` + strings.Repeat("/a", 300) + `","data":1},{"channel":"/meta/subscribe","subscription":["` + strings.Repeat("/b", 40) + `/**"]}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := Decode(body)
		if err != nil {
			return
		}
		flagged := false
		for _, m := range msgs {
			checkUTF8(t, body, m)
			if m.Size <= 0 || m.Size > len(body) {
				t.Fatalf("%q: message size %d of a %d-byte body", body, m.Size, len(body))
			}
			flagged = flagged || m.Invalid != nil
			r := ReplyTo(m)
			if m.Invalid != nil {
				r.Fail(m.Invalid)
			}
			out := r.AppendJSON(nil)
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("reply to %q is not valid JSON in UTF-8: %s", body, out)
			}
			if m.Invalid == nil && m.Data != nil {
				d := AppendDelivery(nil, m.Channel, m.Data, m.ID, m.Ext)
				if !json.Valid(d) || !utf8.Valid(d) {
					t.Fatalf("delivery of %q is not valid JSON in UTF-8: %s", body, d)
				}
			}
		}
		if !utf8.Valid(body) && !flagged {
			t.Fatalf("%q is not UTF-8, yet no message of it is invalid", body)
		}
	})
}

// checkUTF8 fails unless every string and raw value of m is valid UTF-8:
// whatever Decode returns may be passed on to other clients or repeated
// in a reply.
func checkUTF8(t *testing.T, body []byte, m *Message) {
	t.Helper()
	strs := append([]string{m.Channel, m.ClientID, m.Version, m.MinimumVersion, m.ConnectionType,
		string(m.ID), string(m.Data), string(m.Ext), string(m.Subscription.Raw)},
		m.SupportedConnectionTypes...)
	strs = append(strs, m.Subscription.Names...)
	if m.Advice != nil {
		strs = append(strs, m.Advice.Reconnect)
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			t.Fatalf("%q: decoded %q is not valid UTF-8 (message %+v)", body, s, m)
		}
	}
}

// FuzzDecodeFast checks that the fast decoder, whenever it accepts an
// input, reads it exactly as encoding/json does.
func FuzzDecodeFast(f *testing.F) {
	for _, seed := range []string{
		`[{"channel":"/meta/connect","clientId":"x","connectionType":"long-polling","advice":{"timeout":0,"interval":-5,"reconnect":"retry","x":[1,{"a":null}]}}]`,
		`{"channel":"/a","data":{"x":[1,2.5e-3,"s\u00e9\n"]},"id":7,"ext":{"ack":true},"extra":[true,false,null]}`,
		`[{"channel":"/meta/subscribe","subscription":["/a/*","/b/**"]},{"channel":"/meta/unsubscribe","subscription":"/a"}]`,
		`[{"channel":"/meta/handshake","version":"1.0","minimumVersion":"0.9","supportedConnectionTypes":["long-polling","callback-polling"]}]`,
		`[{"Channel":"/a"}]`, `[{"channel":"/a","channel":"/b"}]`, `[{"channel":"h\u00e9"}]`, `[{"id":1e3}]`, `[{"data":-0.0}]`,
		"[{\"channel\":\"\xff\"}]", `[{"supportedConnectionTypes":null,"advice":null,"data":null,"ext":null}]`,
		"[{\"channel\":\"/x\",\"data\":\"\xff\xfe\"}]", "[{\"channel\":\"/x\",\"ext\":{\"a\":{\"\xc3\":1}},\"data\":1}]",
		"[{\"channel\":\"/x\",\"data\":\"h\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e\"}]", " [ {\"channel\":\"/x\" , \"data\":1 } , {\"channel\":\"/y\"} ] ",
		`[{"channel":"` + strings.Repeat("/a", 300) + `","data":1}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.TrimSpace(body)
		fast, ok := decodeFast(body)
		if !ok || len(body) == 0 {
			return
		}
		for _, m := range fast {
			checkUTF8(t, body, m)
		}
		slow, err := decodeSlow(body)
		if err != nil {
			t.Fatalf("fast decoder accepted %q, encoding/json refused it: %v", body, err)
		}
		if len(fast) != len(slow) {
			t.Fatalf("%q: %d messages fast, %d slow", body, len(fast), len(slow))
		}
		for i := range fast {
			a, b := *fast[i], *slow[i]
			if !reflect.DeepEqual(normalize(a), normalize(b)) {
				t.Fatalf("%q message %d:\nfast %+v\nslow %+v", body, i, a, b)
			}
		}
	})
}

// normalize makes two decodings comparable: raw fields as strings, advice
// by value.
func normalize(m Message) map[string]any {
	out := map[string]any{
		"channel": m.Channel, "id": string(m.ID), "clientId": m.ClientID, "version": m.Version,
		"minimumVersion": m.MinimumVersion, "types": fmt.Sprint(m.SupportedConnectionTypes), "typesNil": m.SupportedConnectionTypes == nil,
		"connectionType": m.ConnectionType, "subNames": fmt.Sprint(m.Subscription.Names), "subRaw": string(m.Subscription.Raw),
		"data": string(m.Data), "ext": string(m.Ext), "invalid": fmt.Sprint(m.Invalid),
		"size": m.Size,
	}
	if a := m.Advice; a != nil {
		out["advice"] = fmt.Sprintf("%q %v %v", a.Reconnect, deref(a.Interval), deref(a.Timeout))
	}
	return out
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
