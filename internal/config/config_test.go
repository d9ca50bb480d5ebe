package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

// env is a fake environment for Load.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, args []string, e env) (*Settings, error) {
	t.Helper()
	var stderr bytes.Buffer
	return Load(args, e.lookup, &stderr)
}

// TestPrecedence: flag over environment over file over default, for a
// string, an int, a duration, a list and a bool.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "hub.yaml", `
port: "9001"
max-queue: 11
poll-timeout: 11s
nats: [nats://file:4222]
node-name: from-file
debug: true
`)
	cases := []struct {
		name  string
		args  []string
		env   env
		port  string
		queue int
		poll  time.Duration
		nats  string
		node  string
	}{
		{"file only", []string{"--config", file}, env{}, "9001", 11, 11 * time.Second, "nats://file:4222", "from-file"},
		{"env over file", []string{"--config", file},
			env{"BAYEUXHUB_PORT": "9002", "BAYEUXHUB_MAX_QUEUE": "22", "BAYEUXHUB_POLL_TIMEOUT": "22", "BAYEUXHUB_NATS": "nats://env:1,nats://env:2"},
			"9002", 22, 22 * time.Second, "nats://env:1,nats://env:2", "from-file"},
		{"flag over env", []string{"--config", file, "--port", "9003", "--max-queue=33", "--poll-timeout", "33s", "--nats", "nats://flag:1", "--nats", "nats://flag:2"},
			env{"BAYEUXHUB_PORT": "9002", "BAYEUXHUB_MAX_QUEUE": "22", "BAYEUXHUB_POLL_TIMEOUT": "22", "BAYEUXHUB_NATS": "nats://env:1"},
			"9003", 33, 33 * time.Second, "nats://flag:1,nats://flag:2", "from-file"},
		{"config from the environment", nil, env{"BAYEUXHUB_CONFIG": file, "BAYEUXHUB_NODE_NAME": "from-env"},
			"9001", 11, 11 * time.Second, "nats://file:4222", "from-env"},
		{"defaults", nil, env{}, "8080", Defaults().MaxQueue, time.Duration(Defaults().PollTimeout), "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := load(t, c.args, c.env)
			if err != nil {
				t.Fatal(err)
			}
			if s.Port != c.port || s.MaxQueue != c.queue || time.Duration(s.PollTimeout) != c.poll ||
				strings.Join(s.NATS, ",") != c.nats || s.NodeName != c.node {
				t.Fatalf("got port %q queue %d poll %v nats %q node %q", s.Port, s.MaxQueue, time.Duration(s.PollTimeout), strings.Join(s.NATS, ","), s.NodeName)
			}
		})
	}
	s, err := load(t, []string{"--config", file, "--debug=false"}, env{})
	if err != nil || s.Debug {
		t.Fatalf("--debug=false over the file's true: %v %v", s.Debug, err)
	}
	s, err = load(t, []string{"--config", file}, env{"BAYEUXHUB_DEBUG": "false"})
	if err != nil || s.Debug {
		t.Fatalf("BAYEUXHUB_DEBUG=false over the file's true: %v %v", s.Debug, err)
	}
}

// TestFileErrors: an unknown key, a wrong type, a duplicate key and a
// malformed file each stop the start with the key and line.
func TestFileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, content, want string }{
		{"unknown key", "port: 8080\nmax-queu: 10\n", `line 2: unknown key "max-queu" (did you mean "max-queue"?)`},
		{"unknown far from any", "port: 8080\n\nfrobnicate: yes\n", `line 3: unknown key "frobnicate"`},
		{"int", "max-queue: lots\n", `line 1: key "max-queue": want an integer, not "lots"`},
		{"bool", "metrics: 3\n", `line 1: key "metrics": want true or false, not "3"`},
		{"duration", "poll-timeout: soon\n", `line 1: key "poll-timeout": want seconds or a duration such as 30s, not "soon"`},
		{"list of maps", "nats:\n  - {a: 1}\n", `key "nats": line 2: want a list of strings`},
		{"mapping for a string", "bind:\n  a: b\n", `line 2: key "bind": want a string, not a mapping`},
		{"twice", "port: 1\nport: 2\n", `line 2: key "port" given twice (first on line 1)`},
		{"rule key", "channels:\n  - pattern: /a/**\n    subscribe: anyone\n    publsh: anyone\n", `line 4: unknown key "publsh" in channels[1] (did you mean "publish"?)`},
		{"rule type", "channels:\n  - pattern: /a/**\n    publish-rate: fast\n", `line 3: key "publish-rate" in channels[1]: want a number, not "fast"`},
		{"rules not a list", "channels: /a\n", `line 1: key "channels": want a list`},
		{"not a mapping", "- port\n", "line 1: want a mapping of settings"},
		{"syntax", "port: [8080\n", "line 1"},
		{"flag-only key", "config: other.yaml\n", `unknown key "config"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, "hub.yaml", c.content)
			_, err := load(t, []string{"--config", p}, env{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want it to name %s and contain %q", err, p, c.want)
			}
		})
	}
	if _, err := load(t, []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, env{}); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

// TestEnvAndFlagErrors: a bad value names the variable or the flag.
func TestEnvAndFlagErrors(t *testing.T) {
	t.Parallel()
	if _, err := load(t, nil, env{"BAYEUXHUB_MAX_QUEUE": "many"}); err == nil || !strings.Contains(err.Error(), "BAYEUXHUB_MAX_QUEUE") {
		t.Fatalf("env error: %v", err)
	}
	if _, err := load(t, []string{"--poll-timeout", "soon"}, env{}); err == nil || !strings.Contains(err.Error(), "poll-timeout") {
		t.Fatalf("flag error: %v", err)
	}
	if _, err := load(t, []string{"--help"}, env{}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if _, err := load(t, []string{"extra"}, env{}); err == nil {
		t.Fatal("a stray argument was accepted")
	}
}

// TestPrintMasksSecrets: secrets set anywhere are masked, and the output
// loads back.
func TestPrintMasksSecrets(t *testing.T) {
	t.Parallel()
	const jwtSecret, apiKey = "jwt-secret-0123456789-0123456789-abcdef", "api-key-0123456789"
	file := writeFile(t, "hub.yaml", "jwt-hmac-secret: "+jwtSecret+"\n")
	s, err := load(t, []string{"--config", file, "--api-key", apiKey}, env{})
	if err != nil {
		t.Fatal(err)
	}
	s.Resolve()
	var out bytes.Buffer
	if err := Print(&out, s); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Contains(text, jwtSecret) || strings.Contains(text, apiKey) || strings.Count(text, Masked) != 2 {
		t.Fatalf("secrets not masked:\n%s", text)
	}
	if !strings.Contains(text, "allow-anonymous: false") {
		t.Fatalf("effective allow-anonymous not shown (a token key is set):\n%s", text)
	}
	back, err := load(t, []string{"--config", writeFile(t, "printed.yaml", text)}, env{})
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, text)
	}
	if back.JWTHMACSecret != Masked || back.Port != s.Port || len(back.Channels) != len(DefaultChannels()) {
		t.Fatalf("printed configuration read back as %+v", back)
	}
}

// TestExampleFile: the commented example in the repository loads and
// builds (with its secret files replaced by test files).
func TestExampleFile(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "jwt", "0123456789abcdef0123456789abcdef\n")
	key := writeFile(t, "key", "an-api-key-of-enough-length\n")
	s, err := load(t, []string{"--config", "../../examples/bayeuxhub.yaml"},
		env{"BAYEUXHUB_JWT_HMAC_SECRET_FILE": secret, "BAYEUXHUB_API_KEY_FILE": key})
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.Nop()
	b, err := s.Build(&log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := b.Server
	if b.JWT == nil || cfg.Hub.Authenticator == nil || !cfg.Hub.RequireUser || cfg.APIKey != "an-api-key-of-enough-length" {
		t.Fatalf("built: jwt %v require-user %v api key %q", b.JWT != nil, cfg.Hub.RequireUser, cfg.APIKey)
	}
	rules := cfg.Hub.Rules
	if rules.Len() != len(s.Channels)+1 || rules.Rule(0).Pattern != "/bayeuxhub/**" || rules.Rule(1).Name != "personal" {
		t.Fatalf("rules: %d, first %+v", rules.Len(), rules.Rule(0))
	}
	alice := acl.Subject{UserID: "alice"}
	for _, c := range []struct {
		sub     acl.Subject
		action  acl.Action
		channel string
		allowed bool
	}{
		{alice, acl.Subscribe, "/user/alice/inbox", true},
		{alice, acl.Subscribe, "/user/bob/inbox", false},
		{alice, acl.Publish, "/user/alice/inbox", false},
		{alice, acl.Publish, "/chat/room1", true},
		{acl.Subject{}, acl.Subscribe, "/chat/room1", false},
		{alice, acl.Publish, "/bayeuxhub/stats", false},
		{alice, acl.Subscribe, "/staff/news", false},
		{alice, acl.Subscribe, "/elsewhere", false},
	} {
		if d := rules.Check(c.sub, c.action, c.channel); d.Allowed != c.allowed {
			t.Errorf("%s %s by %q: %+v", c.action, c.channel, c.sub.UserID, d)
		}
	}
	if r := rules.Rule(2); r.PublishRate != 5 || r.PublishBurst != 10 || r.History.Size != 100 || !r.Presence {
		t.Errorf("rooms rate, history and presence: %+v", r)
	}
}

// TestBuildErrors: settings that cannot work stop the start with a reason.
func TestBuildErrors(t *testing.T) {
	t.Parallel()
	log := zerolog.Nop()
	secret := writeFile(t, "s", "0123456789abcdef0123456789abcdef")
	cases := []struct {
		name string
		file string
		env  env
		want string
	}{
		{"both secrets", "jwt-hmac-secret: x\njwt-hmac-secret-file: " + secret + "\n", nil, "jwt-hmac-secret and jwt-hmac-secret-file are both set"},
		{"short secret", "jwt-hmac-secret: short\n", nil, "tokens:"},
		{"short api key", "api-key: short\n", nil, "api-key: use at least 16 characters"},
		{"missing secret file", "api-key-file: /nonexistent/key\n", nil, "api-key-file"},
		{"bad rule", "channels:\n  - pattern: /a/*/b\n    subscribe: anyone\n    publish: anyone\n", nil, "channels: channel rule 1"},
		{"rule without publish", "channels:\n  - pattern: /a/**\n    subscribe: anyone\n", nil, `channels[1] ("/a/**"): say who may subscribe and who may publish`},
		{"bad access", "channels:\n  - pattern: /a/**\n    subscribe: everybody\n    publish: anyone\n", nil, `channels[1] ("/a/**"): subscribe:`},
		{"bad proxy url", "proxy-publish-url: ftp://x\n", nil, "proxy:"},
		{"bad type-expires", "type-expires: text/css\n", nil, "type-expires"},
		{"bad history store", "history-store: disk\n", nil, `history-store "disk"`},
		{"jetstream without nats", "history-store: jetstream\n", nil, "history-store jetstream needs --nats"},
		{"history replicas", "nats: nats://127.0.0.1:1\nhistory-replicas: 7\n", nil, "history-replicas 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := load(t, []string{"--config", writeFile(t, "hub.yaml", c.file)}, c.env)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Build(&log)
			if err == nil {
				b.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestAllowAnonymousDefault: anonymous handshakes are allowed without a
// token key or handshake proxy, refused with one, and as configured when
// set.
func TestAllowAnonymousDefault(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--jwt-hmac-secret", "0123456789abcdef0123456789abcdef"}, false},
		{[]string{"--proxy-handshake-url", "http://127.0.0.1:1/h"}, false},
		{[]string{"--jwt-hmac-secret", "0123456789abcdef0123456789abcdef", "--allow-anonymous"}, true},
		{[]string{"--allow-anonymous=false"}, false},
	} {
		s, err := load(t, c.args, env{})
		if err != nil {
			t.Fatal(err)
		}
		s.Resolve()
		if *s.AllowAnonymous != c.want {
			t.Errorf("%v: allow-anonymous %v, want %v", c.args, *s.AllowAnonymous, c.want)
		}
	}
}

// TestHistoryStoreDefault: history is kept in NATS JetStream with --nats
// and in memory without, unless history-store says otherwise.
func TestHistoryStoreDefault(t *testing.T) {
	t.Parallel()
	log := zerolog.Nop()
	for _, c := range []struct {
		args     []string
		want     string
		replicas int
	}{
		{nil, "memory", 1},
		{[]string{"--nats", "nats://127.0.0.1:1"}, "jetstream", 1},
		{[]string{"--nats", "nats://127.0.0.1:1", "--history-store", "memory"}, "memory", 1},
		{[]string{"--nats", "nats://127.0.0.1:1", "--history-replicas", "3"}, "jetstream", 3},
	} {
		s, err := load(t, c.args, env{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Build(&log)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		b.Close()
		if b.Server.HistoryStore != c.want || b.Server.JetStream.Replicas != c.replicas {
			t.Errorf("%v: history store %q with %d replicas, want %q with %d", c.args, b.Server.HistoryStore, b.Server.JetStream.Replicas, c.want, c.replicas)
		}
	}
}

// TestParkAfter: the default parks held long polls after a second, a value
// is passed on, and 0 never parks.
func TestParkAfter(t *testing.T) {
	t.Parallel()
	log := zerolog.Nop()
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{nil, transport.DefaultParkAfter},
		{[]string{"--park-after", "2.5"}, 2500 * time.Millisecond},
		{[]string{"--park-after", "0"}, -1},
	} {
		s, err := load(t, c.args, env{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Build(&log)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		b.Close()
		if b.Server.ParkAfter != c.want {
			t.Errorf("%v: park after %v, want %v", c.args, b.Server.ParkAfter, c.want)
		}
	}
}
