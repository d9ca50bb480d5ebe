package protocol

import (
	"encoding/json"
	"testing"
)

var (
	connectBody = []byte(`[{"channel":"/meta/connect","clientId":"4ltd4xplykcp5qrsrwzc3m5v7dcf2pyb","connectionType":"long-polling","id":"42","advice":{"timeout":0}}]`)
	publishBody = []byte(`[{"channel":"/chat/demo","clientId":"4ltd4xplykcp5qrsrwzc3m5v7dcf2pyb","data":{"user":"ann","chat":"hello there, how are you doing today?","ts":1764300000000},"id":"43"}]`)
)

func BenchmarkDecodeConnect(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(connectBody)))
	for b.Loop() {
		if _, err := Decode(connectBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePublish(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(publishBody)))
	for b.Loop() {
		if _, err := Decode(publishBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendDelivery(b *testing.B) {
	data := json.RawMessage(`{"user":"ann","chat":"hello there, how are you doing today?","ts":1764300000000}`)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDelivery(buf[:0], "/chat/demo", data, json.RawMessage(`"43"`), nil)
	}
}

func BenchmarkConnectReplyJSON(b *testing.B) {
	r := &Reply{Channel: MetaConnect, ID: json.RawMessage(`"42"`), ClientID: "4ltd4xplykcp5qrsrwzc3m5v7dcf2pyb", Successful: true,
		Advice: &Advice{Reconnect: ReconnectRetry, Interval: Int(0), Timeout: Int(30000)}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}
