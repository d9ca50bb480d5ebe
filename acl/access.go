package acl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Access says who may do an action on a rule's channels. Values combine
// with |: a subject is allowed when any of the bits allows it.
type Access uint8

// The access levels. Nobody is the zero value; the others are distinct bits.
const (
	// Nobody allows no remote client: only the server may act (Hub.Publish,
	// local clients, the backend API).
	Nobody Access = 0
	// Anyone allows every client, anonymous or not.
	Anyone Access = 1 << (iota - 1)
	// Authenticated allows clients with a user id (a verified token).
	Authenticated
	// Owner allows the user whose id equals every {sub} segment of the
	// channel.
	Owner
	// Granted allows users whose token grants the channel (Subject.Grants).
	Granted
)

// allAccess is the union of the defined access bits.
const allAccess = Anyone | Authenticated | Owner | Granted

// accessWords lists the access words in String order.
var accessWords = [...]struct {
	bit  Access
	word string
}{
	{Anyone, "anyone"},
	{Authenticated, "authenticated"},
	{Owner, "owner"},
	{Granted, "granted"},
}

// validAccessWords is the list of valid words for error messages.
const validAccessWords = "nobody, anyone, authenticated, owner, granted"

// ParseAccess combines access words: "nobody", "anyone", "authenticated",
// "owner" and "granted", compared case-insensitively after trimming
// spaces. A word may itself be a comma-separated list, so that
// ParseAccess([]string{a.String()}) returns a. An empty list, an unknown
// word, or "nobody" together with another word is an error.
func ParseAccess(words []string) (Access, error) {
	if len(words) == 0 {
		return 0, errors.New("no access given (valid: " + validAccessWords + ")")
	}
	var a Access
	nobody := false
	for _, w := range words {
		for part := range strings.SplitSeq(w, ",") {
			part = strings.ToLower(strings.TrimSpace(part))
			if part == "nobody" {
				nobody = true
				continue
			}
			bit, ok := accessBit(part)
			if !ok {
				return 0, fmt.Errorf("unknown access %q (valid: %s)", part, validAccessWords)
			}
			a |= bit
		}
	}
	if nobody && a != Nobody {
		return 0, fmt.Errorf("access \"nobody\" cannot be combined with %q", a.String())
	}
	return a, nil
}

// accessBit returns the bit of a lower-case access word other than nobody.
func accessBit(word string) (Access, bool) {
	for _, w := range accessWords {
		if w.word == word {
			return w.bit, true
		}
	}
	return 0, false
}

// String returns "nobody", or the words of a's bits joined with commas in
// the order anyone, authenticated, owner, granted. Undefined bits are
// appended in hexadecimal.
func (a Access) String() string {
	if a == Nobody {
		return "nobody"
	}
	var b strings.Builder
	for _, w := range accessWords {
		if a&w.bit != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(w.word)
		}
	}
	if rest := a &^ allAccess; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("0x")
		b.WriteString(strconv.FormatUint(uint64(rest), 16))
	}
	return b.String()
}

// Action is what a client asks to do on a channel.
type Action uint8

// The actions a rule controls.
const (
	// Subscribe is a /meta/subscribe to a channel or wildcard pattern.
	Subscribe Action = iota + 1
	// Publish is a publish on a plain channel.
	Publish
)

// String returns "subscribe" or "publish", or "Action(n)" for other values.
func (a Action) String() string {
	switch a {
	case Subscribe:
		return "subscribe"
	case Publish:
		return "publish"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}
