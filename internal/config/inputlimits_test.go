package config

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// TestChannelNameLimits: max-channel-length and max-channel-depth are
// flags, BAYEUXHUB_* variables and file keys, default to the hub's
// defaults, and reach actors.Options through Build.
func TestChannelNameLimits(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "hub.yaml", "max-channel-length: 300\nmax-channel-depth: 7\nmax-message-size: 5000\n")
	for _, c := range []struct {
		name                   string
		args                   []string
		env                    env
		length, depth, message int
	}{
		{"defaults", nil, env{}, actors.DefaultMaxChannelLength, actors.DefaultMaxChannelDepth, actors.DefaultMaxMessageSize},
		{"file", []string{"--config", file}, env{}, 300, 7, 5000},
		{"environment", []string{"--config", file}, env{"BAYEUXHUB_MAX_CHANNEL_LENGTH": "200", "BAYEUXHUB_MAX_CHANNEL_DEPTH": "6"}, 200, 6, 5000},
		{"flags", []string{"--config", file, "--max-channel-length", "100", "--max-channel-depth=-1", "--max-message-size", "9"},
			env{"BAYEUXHUB_MAX_CHANNEL_LENGTH": "200"}, 100, -1, 9},
	} {
		s, err := load(t, c.args, c.env)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		log := zerolog.Nop()
		b, err := s.Build(&log)
		if err != nil {
			t.Fatalf("%s: build: %v", c.name, err)
		}
		h := b.Server.Hub
		if h.MaxChannelLength != c.length || h.MaxChannelDepth != c.depth || h.MaxMessageSize != c.message {
			t.Errorf("%s: length %d depth %d message %d, want %d %d %d", c.name, h.MaxChannelLength, h.MaxChannelDepth, h.MaxMessageSize,
				c.length, c.depth, c.message)
		}
		b.Close()
	}
}
