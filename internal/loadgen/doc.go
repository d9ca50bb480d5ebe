// Package loadgen is the engine of bayeuxhub-bench: a fast Bayeux 1.0
// long-polling client, a WebSocket client, and the scenario driver that
// measures any Bayeux server (bayeuxhub, Faye, CometD) with them.
//
// Config.Transport picks the client. Client speaks long-polling: one HTTP
// request at a time, over pooled keep-alive connections. WSClient (ws.go)
// speaks the websocket connection type: one socket per client, requests
// as text frames, a reader goroutine that hands replies to the requests
// waiting for their ids and deliveries, pushed in their own frames, to
// the same accounting as long-polling deliveries; a publisher's connect
// loop and its publishes share its socket.
//
// A run (Run with a Config, usually from Preset) sets up subscribers
// (handshake, subscribe, then a /meta/connect loop each), handshakes the
// publishers, then publishes for Warmup plus Duration and waits up to Drain
// for the last deliveries.
//
// Publishers run an open loop by default when the scenario has a rate
// (Config.Loop, publish.go): each one sends its message i at its
// scheduled time whatever the acknowledgements do, pipelined on its
// WebSocket or over a bounded pool of concurrent long-polling requests,
// at most Config.MaxInflight unacknowledged, and stamps it with that
// scheduled time, so that latency counts from the schedule (no
// coordinated omission). A publish sent more than LateThreshold (1 ms)
// after its time counts as late (Result.Late, LateMaxMS), one still
// waiting for a slot when the window ends as unsent. The closed loop
// (each publisher waits for its acknowledgement, "ts" the send time) is
// kept for rate 0 and on request. The generator stays cheap: one
// goroutine and one reusable timer per publisher (plus the long-polling
// pool's workers), nothing per publish.
//
// Every published message carries
// {"ts":time-ns,"pub":publisher,"seq":n} in its data (plus "w", the
// number of the publisher's earlier messages still in flight, for
// concurrent long-polling requests, which the server may take in any
// order); subscribers
// check each delivery off in a SubTracker (a bitmap of sequence numbers per
// publisher), and at the end every acknowledged message is matched against
// every subscriber of its channel, so lost, duplicated and out-of-order
// deliveries are counted exactly. Latency goes into lock-free log-linear
// histograms (Histogram), overall and per second.
//
// The chat preset has CometD's published benchmark parameters (1,000
// clients, 100 rooms, 10 rooms each, 10 messages/s per room, 50-byte
// data, where Size is the whole data object); as in CometD's benchmark
// its publishers are clients that subscribe (Config.PublishersSubscribe):
// the first Publishers subscribers publish from their own sessions over
// their own rooms.
//
// Config.Protocol ProtocolCentrifugo drives a Centrifugo server instead
// (centrifugo.go): CentrifugoClient speaks Centrifugo's client protocol
// v2, JSON over WebSocket (connect, subscribe, publish commands, several
// per frame separated by newlines; publication pushes; pings answered),
// on the same WSClient socket machinery, channels bench_N, with the same
// scenarios (fanout, fanout-latency, chat, idle, churn, publish) and the
// same accounting.
//
// The reach scenario (reach.go) holds many connections on one channel
// for a while, says when they are all subscribed (Config.OnReady), and
// counts how many clients each message published there from elsewhere
// reached, and how fast, from the ts in its data; server RSS is summed
// over several server PIDs (Config.ServerPIDs).
//
// Config.LocalAddrs spreads the clients' TCP connections over source
// addresses in 127.0.0.0/8, round robin, to hold more connections to one
// server port than one source address's ephemeral ports allow.
//
// Responses are parsed by ParseMessages, which reads only the fields the
// generator needs and skips the rest without allocating, so that the
// generator stays cheaper than the servers it measures. Its own CPU use
// (getrusage) is reported beside every figure, with the server's CPU and
// RSS read from /proc when its PID is known.
//
// The idle scenario holds long-polls open and reports server memory per
// client; churn loops handshake, subscribe, disconnect. The replay
// scenario (replay.go) has its subscribers drop their sessions on a
// schedule while publishing goes on and come back with the replay
// extension (ext.replay, from the last ext.replayId they received); the
// same trackers, kept across their sessions, count what the cuts lost or
// duplicated, per subscriber, beside the replays, the messages replayed
// and the time a replay takes to catch up. With Config.Hub set
// the same scenarios drive bayeuxhub's in-process client API instead of
// HTTP (local.go).
package loadgen
