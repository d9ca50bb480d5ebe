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

// DefaultChannels returns the channel rules a hub has when the file sets
// none (acl.Default), as the file would write them.
func DefaultChannels() []ChannelRule {
	var out []ChannelRule
	for _, r := range acl.Default() {
		out = append(out, ChannelRule{Name: r.Name, Pattern: r.Pattern,
			Subscribe: splitList(r.Subscribe.String()), Publish: splitList(r.Publish.String())})
	}
	return out
}
