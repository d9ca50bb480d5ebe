package config

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// TestPresenceSettings: a rule's presence key reaches acl.Rule.Presence,
// and max-presence-members and max-presence-channels reach
// actors.Options.Presence, with the hub's defaults.
func TestPresenceSettings(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "hub.yaml", `
max-presence-members: 50
channels:
  - name: rooms
    pattern: /chat/**
    subscribe: anyone
    publish: anyone
    presence: true
  - pattern: /news/**
    subscribe: anyone
    publish: nobody
`)
	for _, c := range []struct {
		name              string
		args              []string
		members, channels int
	}{
		{"defaults", nil, actors.DefaultMaxPresenceMembers, actors.DefaultMaxPresenceChannels},
		{"file and flag", []string{"--config", file, "--max-presence-channels=-1"}, 50, -1},
	} {
		s, err := load(t, c.args, env{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		log := zerolog.Nop()
		b, err := s.Build(&log)
		if err != nil {
			t.Fatalf("%s: build: %v", c.name, err)
		}
		if p := b.Server.Hub.Presence; p.MaxMembers != c.members || p.MaxChannels != c.channels {
			t.Errorf("%s: presence options %+v, want %d members and %d channels", c.name, p, c.members, c.channels)
		}
		if rules := b.Server.Hub.Rules; c.args != nil {
			// The built-in /bayeuxhub/** rule comes first.
			if rules.Len() != 3 || rules.Rule(0).Presence || !rules.Rule(1).Presence || rules.Rule(2).Presence {
				t.Errorf("%s: rules %+v %+v %+v", c.name, rules.Rule(0), rules.Rule(1), rules.Rule(2))
			}
		}
		b.Close()
	}
	bad := writeFile(t, "bad.yaml", "channels:\n  - pattern: /a/**\n    subscribe: anyone\n    publish: anyone\n    presence: yes please\n")
	if _, err := load(t, []string{"--config", bad}, env{}); err == nil || !strings.Contains(err.Error(), `"presence"`) {
		t.Fatalf("presence that is not a bool: %v", err)
	}
}
