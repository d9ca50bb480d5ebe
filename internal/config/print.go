package config

import (
	"bytes"
	"fmt"
	"io"
	"reflect"

	"go.yaml.in/yaml/v3"

	"github.com/bayeuxhub/bayeuxhub/acl"
)

// Masked replaces a secret's value in Print's output.
const Masked = "********"

// Print writes s as a YAML file that Load would read back, with every
// secret that is set replaced by Masked.
func Print(w io.Writer, s *Settings) error {
	c := *s
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("secret") == "true" && v.Field(i).String() != "" {
			v.Field(i).SetString(Masked)
		}
	}
	if len(c.Channels) == 0 {
		c.Channels = DefaultChannels()
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return fmt.Errorf("print configuration: %w", err)
	}
	_, err := fmt.Fprintf(w, "# bayeuxhub: the effective configuration (defaults, file, environment, flags); secrets masked\n%s", out.Bytes())
	return err
}

// DefaultChannelHistory is how many messages of each chat room the
// standalone hub keeps when the file has no channel rules.
const DefaultChannelHistory = 100

// DefaultChannels returns the channel rules a hub has when the file sets
// none, as the file would write them: acl.Default (the hub's own
// /bayeuxhub/** server-only for publishing, every other channel open to
// anyone) with, before its catch-all, a rule for the chat demo's rooms,
// /chat/**, open to anyone as well, that keeps the last
// DefaultChannelHistory messages of each room for replay and tracks who
// is in it (presence).
func DefaultChannels() []ChannelRule {
	var out []ChannelRule
	for _, r := range acl.Default() {
		if r.Pattern == "/**" {
			out = append(out, ChannelRule{Name: "chat", Pattern: "/chat/**",
				Subscribe: splitList(acl.Anyone.String()), Publish: splitList(acl.Anyone.String()),
				HistorySize: DefaultChannelHistory, Presence: true})
		}
		out = append(out, ChannelRule{Name: r.Name, Pattern: r.Pattern,
			Subscribe: splitList(r.Subscribe.String()), Publish: splitList(r.Publish.String()),
			HistorySize: r.History.Size, HistoryTTL: Duration(r.History.TTL), HistoryShape: r.History.Shape,
			Presence: r.Presence})
	}
	return out
}
