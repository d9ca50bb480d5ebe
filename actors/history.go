package actors

import (
	"context"
	"errors"
	"time"
)

// This file holds what the hub needs of a history store: the recent
// messages of the channels whose rule asks for history (acl.Rule.History),
// each stamped with a replay id, so that a client that comes back can
// replay what it missed (the Salesforce replay extension, replay.go).
// Package history keeps them in memory; package broker's JetStream
// history keeps them in NATS JetStream, where every hub of a cluster can
// replay them.

// History stores the messages of channels with history and replays them.
// Its methods are called from the publisher's goroutine (Append) and from
// the subscriber's session through a goroutine of its own (Since); they
// must be safe for concurrent use and bounded in time by ctx.
type History interface {
	// Append stores m, published on m.Channel, keeping at most what keep
	// allows, and returns its position: a replay id larger than every id
	// before it on that channel, and the channel's epoch.
	Append(ctx context.Context, m *Message, keep Retention) (Position, error)
	// Since returns what is retained of channel after replay id after
	// (ReplayAll: everything retained), oldest first, each with its
	// ReplayID and Epoch set, and the ids of the oldest and newest message
	// retained (0 when none is).
	Since(ctx context.Context, channel string, after int64) (Replay, error)
}

// Retention is how much of one channel a History keeps: the last Max
// messages and/or those younger than TTL (0: no bound of that kind).
type Retention struct {
	Max int
	TTL time.Duration
}

// Position is where a message was stored: its replay id and the epoch of
// its channel's history.
type Position struct {
	ID    int64
	Epoch string
}

// Replay is what a History retains of one channel after a replay id.
type Replay struct {
	// Messages are the retained messages after the id asked for, oldest
	// first.
	Messages []*Message
	// Oldest and Newest bound the channel's retained history (0 when it
	// retains nothing): a replay from any id from Oldest-1 to Newest loses
	// nothing (no message of the channel after Oldest-1 was dropped), a
	// replay from an id before Oldest-1 may have lost some and is refused,
	// and an id after Newest is not one of this history's. Newest is at
	// least the id of the last of Messages. For a history whose ids are
	// not consecutive per channel (JetStream's stream sequence), Oldest-1
	// is the newest id up to which the channel's messages may have been
	// dropped.
	Oldest, Newest int64
	// Epoch is the channel's current epoch.
	Epoch string
}

// The replay ids a client may ask for besides a message's own, as in the
// Salesforce replay extension.
const (
	// ReplayNew asks for new messages only (no replay).
	ReplayNew int64 = -1
	// ReplayAll asks for everything retained, then new messages.
	ReplayAll int64 = -2
)

// ErrHistoryUnavailable marks a History's failure to store or replay (its
// store is unreachable or slow): a publish on a channel with history is
// then refused, and so is a replaying subscribe, rather than losing the
// message for replay or replaying with a gap.
var ErrHistoryUnavailable = errors.New("history unavailable")
