package actors

import "encoding/json"

// wantsAck reports whether a handshake's ext asks for the CometD ack
// extension: {"ack": true} (or the newer {"ack": {"enabled": true}}).
func wantsAck(ext json.RawMessage) bool {
	if len(ext) == 0 {
		return false
	}
	var e struct{ Ack json.RawMessage }
	if json.Unmarshal(ext, &e) != nil {
		return false
	}
	if string(e.Ack) == "true" {
		return true
	}
	var obj struct{ Enabled bool }
	return json.Unmarshal(e.Ack, &obj) == nil && obj.Enabled
}

// ackOf reads the batch number a /meta/connect acknowledges, or -1.
func ackOf(ext json.RawMessage) int64 {
	if len(ext) == 0 {
		return -1
	}
	var e struct{ Ack *int64 }
	if json.Unmarshal(ext, &e) != nil || e.Ack == nil {
		return -1
	}
	return *e.Ack
}
