package loadgen

import (
	"testing"
)

func TestParseMessages(t *testing.T) {
	t.Parallel()
	in := `[ {"id":"7","channel":"/meta/connect","successful":true,"clientId":"abc",
	  "advice":{"reconnect":"handshake","interval":0,"timeout":30000,"x":[1,{"y":"}"}]}},
	 {"channel":"/bench/3","data":{"pad":"x\"]}","ts":1700000000123456789,"pub":4,"seq":99,"n":null,"f":false,"nest":{"a":[1.5e3,-2]}},"id":12},
	 {"channel":"/bench/3","successful":false,"error":"402::unknown \"client\"","id":"p1"},
	 {"channel":"/x","data":"just a string","ext":{"ack":true}} ]`
	msgs, err := ParseMessages([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if string(m.Channel) != "/meta/connect" || !m.Successful || !m.HasSuccessful || m.ClientID != "abc" ||
		m.Reconnect != "handshake" || m.Interval != 0 || m.Timeout != 30000 || string(m.ID) != "7" || m.IsDelivery() {
		t.Errorf("connect reply parsed as %+v", m)
	}
	m = msgs[1]
	if !m.IsDelivery() || !m.Bench || m.TS != 1700000000123456789 || m.Pub != 4 || m.Seq != 99 || m.Interval != -1 {
		t.Errorf("delivery parsed as %+v", m)
	}
	m = msgs[2]
	if m.Successful || !m.HasSuccessful || m.Error != `402::unknown "client"` || string(m.ID) != "p1" || m.IsDelivery() {
		t.Errorf("publish reply parsed as %+v", m)
	}
	m = msgs[3]
	if !m.IsDelivery() || m.Bench {
		t.Errorf("string data parsed as %+v", m)
	}
}

func TestParseSingleObjectAndEmpty(t *testing.T) {
	t.Parallel()
	msgs, err := ParseMessages([]byte(` {"channel":"/meta/handshake","successful":true,"clientId":"q"} `), nil)
	if err != nil || len(msgs) != 1 || msgs[0].ClientID != "q" {
		t.Fatalf("%v %+v", err, msgs)
	}
	msgs, err = ParseMessages([]byte(`[]`), msgs[:0])
	if err != nil || len(msgs) != 0 {
		t.Fatalf("%v %+v", err, msgs)
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, `[`, `[{`, `[{"channel":}]`, `[{"channel":"x"`, `[{"channel":"x"}`, `{"a":"b`, `<html>`, `[{"data":{"ts":}}]`, `[1]`} {
		if _, err := ParseMessages([]byte(in), nil); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestAppendDataRoundTrip(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 10, 100, 1000} {
		d := AppendData(nil, 123, 7, 42, size)
		if size >= 60 && len(d) != size {
			t.Errorf("size %d: got %d bytes: %s", size, len(d), d)
		}
		body := `[{"channel":"/bench/1","data":` + string(d) + `}]`
		msgs, err := ParseMessages([]byte(body), nil)
		if err != nil || len(msgs) != 1 || !msgs[0].Bench || msgs[0].TS != 123 || msgs[0].Pub != 7 || msgs[0].Seq != 42 {
			t.Errorf("size %d: %v %+v", size, err, msgs)
		}
	}
}

func FuzzParseMessages(f *testing.F) {
	f.Add(`[{"channel":"/a","data":{"ts":1,"pub":2,"seq":3}}]`)
	f.Add(`{"channel":"/meta/connect","advice":{"reconnect":"retry"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseMessages([]byte(s), nil) // must not panic
	})
}

func BenchmarkParseDelivery(b *testing.B) {
	body := []byte(`[{"channel":"/meta/connect","successful":true,"clientId":"abcdef","advice":{"reconnect":"retry","interval":0,"timeout":30000}}`)
	for i := range 50 {
		body = append(body, `,{"channel":"/bench/0","data":`...)
		body = AppendData(body, 1700000000123456789, i, uint64(i), 100)
		body = append(body, `,"id":"123"}`...)
	}
	body = append(body, ']')
	b.SetBytes(int64(len(body)))
	var msgs []Msg
	for b.Loop() {
		var err error
		msgs, err = ParseMessages(body, msgs[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseReplayID(t *testing.T) {
	t.Parallel()
	in := `[{"channel":"/bench/0","data":{"ts":1,"pub":0,"seq":5},"ext":{"replayId":1729,"replayEpoch":"lx3k9q0","ack":{"x":[1]}}},
	 {"channel":"/bench/0","ext":{"replayEpoch":"e","replayId":"not a number"},"data":{"ts":1,"pub":0,"seq":6}},
	 {"channel":"/bench/0","ext":null,"data":{"ts":1,"pub":0,"seq":7}}]`
	msgs, err := ParseMessages([]byte(in), nil)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%v %+v", err, msgs)
	}
	if !msgs[0].Bench || msgs[0].ReplayID != 1729 || msgs[0].Seq != 5 {
		t.Errorf("first: %+v", msgs[0])
	}
	for _, m := range msgs[1:] {
		if !m.Bench || m.ReplayID != 0 {
			t.Errorf("no replay id: %+v", m)
		}
	}
}
