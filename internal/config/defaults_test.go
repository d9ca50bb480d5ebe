package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/acl"
)

// TestDefaultChannelRules: without channel rules in the file the standalone
// hub keeps the last 100 messages of each /chat/** room and tracks who is
// in it, and otherwise has acl.Default's rules: /bayeuxhub/** server-only
// for publishing, every other channel open to anyone, without history or
// presence. --print-config writes those rules, and they load back.
func TestDefaultChannelRules(t *testing.T) {
	t.Parallel()
	s, err := load(t, nil, env{})
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.Nop()
	b, err := s.Build(&log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rules := b.Server.Hub.Rules
	if rules.Len() != 3 {
		t.Fatalf("%d default rules, want 3", rules.Len())
	}
	anon := acl.Subject{}
	for _, c := range []struct {
		channel  string
		rule     string
		sub, pub bool
		history  int
		presence bool
	}{
		{"/bayeuxhub/stats", "hub", true, false, 0, false},
		{"/bayeuxhub/presence/chat/demo", "hub", true, false, 0, false},
		{"/chat/demo", "chat", true, true, DefaultChannelHistory, true},
		{"/chat/other/room", "chat", true, true, DefaultChannelHistory, true},
		{"/chatter", "default", true, true, 0, false},
		{"/service/presence", "default", true, true, 0, false},
		{"/anything/else", "default", true, true, 0, false},
	} {
		i := rules.Match(c.channel)
		if i < 0 {
			t.Errorf("%s: no rule", c.channel)
			continue
		}
		r := rules.Rule(i)
		if r.Name != c.rule || r.History.Size != c.history || r.History.TTL != 0 || r.Presence != c.presence {
			t.Errorf("%s: rule %+v, want %q with history %d and presence %v", c.channel, r, c.rule, c.history, c.presence)
		}
		if d := rules.Check(anon, acl.Subscribe, c.channel); d.Allowed != c.sub {
			t.Errorf("%s: anonymous subscribe %+v, want %v", c.channel, d, c.sub)
		}
		if d := rules.Check(anon, acl.Publish, c.channel); d.Allowed != c.pub {
			t.Errorf("%s: anonymous publish %+v, want %v", c.channel, d, c.pub)
		}
	}
	// The hub's own defaults, for programs that embed it, are unchanged.
	for _, r := range acl.Default() {
		if r.History.Enabled() || r.Presence {
			t.Errorf("acl.Default rule %+v keeps history or presence", r)
		}
	}

	var out bytes.Buffer
	if err := Print(&out, s); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"  - name: chat\n    pattern: /chat/**\n    subscribe: [anyone]\n    publish: [anyone]\n    history-size: 100\n    presence: true\n",
		"  - name: hub\n    pattern: /bayeuxhub/**\n    subscribe: [anyone]\n    publish: [nobody]\n",
		"  - name: default\n    pattern: /**\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("--print-config lacks\n%s\nin\n%s", want, text)
		}
	}
	back, err := load(t, []string{"--config", writeFile(t, "printed.yaml", text)}, env{})
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, text)
	}
	again, err := back.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if again.Len() != rules.Len() {
		t.Fatalf("printed rules read back as %d rules, want %d", again.Len(), rules.Len())
	}
	for i := range rules.Len() {
		if a, b := again.Rule(i), rules.Rule(i); a.Name != b.Name || a.Pattern != b.Pattern || a.Subscribe != b.Subscribe ||
			a.Publish != b.Publish || a.History != b.History || a.Presence != b.Presence {
			t.Errorf("printed rule %d read back as %+v, want %+v", i, a, b)
		}
	}
}
