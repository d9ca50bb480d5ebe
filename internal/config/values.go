package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a duration setting: plain seconds ("120", 1.5, as the Perl
// module's options were) or a Go duration ("2m", "500ms").
type Duration time.Duration

// ParseDuration reads a Duration's text form.
func ParseDuration(v string) (Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want seconds or a duration such as 30s, not %q", v)
	}
	return Duration(d), nil
}

// String returns the Go form, e.g. "2m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts a number of seconds or a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("want seconds or a duration such as 30s")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the Go form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// List is a list setting: a YAML sequence, or a comma-separated string (in
// a flag, an environment variable or the file).
type List []string

// splitList splits a comma-separated value, dropping empty items.
func splitList(v string) List {
	var out List
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// UnmarshalYAML accepts a sequence of strings or one comma-separated
// string.
func (l *List) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = splitList(n.Value)
		return nil
	case yaml.SequenceNode:
		out := make(List, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a list of strings", item.Line)
			}
			out = append(out, item.Value)
		}
		*l = out
		return nil
	}
	return errors.New("want a list of strings or a comma-separated string")
}

// MarshalYAML writes the list in flow style: [a, b].
func (l List) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, v := range l {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: v})
	}
	return n, nil
}

// The flag.Value implementations bound to the fields of Settings.

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v stringValue) Set(s string) error { *v.p = s; return nil }

type boolValue struct{ p *bool }

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, not %q", s)
	}
	*v.p = b
	return nil
}
func (v boolValue) IsBoolFlag() bool { return true }

// optBoolValue is a bool that may be unset (nil: the default applies).
type optBoolValue struct{ p **bool }

func (v optBoolValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	return strconv.FormatBool(**v.p)
}
func (v optBoolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, not %q", s)
	}
	*v.p = &b
	return nil
}
func (v optBoolValue) IsBoolFlag() bool { return true }

type intValue struct{ p *int }

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}
func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want an integer, not %q", s)
	}
	*v.p = n
	return nil
}

type int64Value struct{ p *int64 }

func (v int64Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}
func (v int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, not %q", s)
	}
	*v.p = n
	return nil
}

type durationValue struct{ p *Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}
func (v durationValue) Set(s string) error {
	d, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}

// listValue replaces the list on its first Set in a layer (flags,
// environment) and appends on the next, so that a repeated flag adds
// items while a flag still overrides the file.
type listValue struct {
	p     *List
	fresh *bool
}

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v listValue) Set(s string) error {
	if *v.fresh {
		*v.p, *v.fresh = nil, false
	}
	*v.p = append(*v.p, splitList(s)...)
	return nil
}
