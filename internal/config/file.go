package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// loadFile decodes the YAML file at path over s. Every key must be a
// setting and every value of its type; errors name the file, line and key.
func loadFile(path string, s *Settings) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := decodeFile(data, s); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// decodeFile decodes a YAML document over s.
func decodeFile(data []byte, s *Settings) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of settings (key: value)", root.Line)
	}
	return decodeMapping(root, reflect.ValueOf(s).Elem(), "")
}

// decodeMapping decodes a mapping node into the struct v, field by field,
// by their yaml tags; where names the mapping in errors ("channels[2]").
func decodeMapping(n *yaml.Node, v reflect.Value, where string) error {
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); key != "" && key != "-" {
			fields[key] = i
		}
	}
	in := ""
	if where != "" {
		in = " in " + where
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		idx, ok := fields[name]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q%s%s", k.Line, name, in, suggest(name, fields))
		}
		if line, dup := seen[name]; dup {
			return fmt.Errorf("line %d: key %q%s given twice (first on line %d)", k.Line, name, in, line)
		}
		seen[name] = k.Line
		f := v.Field(idx)
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
			if err := decodeStructs(val, f, name); err != nil {
				return err
			}
			continue
		}
		if err := val.Decode(f.Addr().Interface()); err != nil {
			return fmt.Errorf("line %d: key %q%s: %s", val.Line, name, in, typeError(err))
		}
	}
	return nil
}

// decodeStructs decodes a sequence of mappings into the slice f.
func decodeStructs(n *yaml.Node, f reflect.Value, name string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		f.Set(reflect.Zero(f.Type()))
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: key %q: want a list", n.Line, name)
	}
	out := reflect.MakeSlice(f.Type(), len(n.Content), len(n.Content))
	for j, item := range n.Content {
		where := fmt.Sprintf("%s[%d]", name, j+1)
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: %s: want a mapping (key: value)", item.Line, where)
		}
		if err := decodeMapping(item, out.Index(j), where); err != nil {
			return err
		}
	}
	f.Set(out)
	return nil
}

// yamlTypeError matches yaml's "cannot unmarshal !!str `x` into int".
var yamlTypeError = regexp.MustCompile("cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)")

// typeError turns a yaml decoding error into a short text: what the key
// wants and what it got.
func typeError(err error) string {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
		if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			msg = rest
		}
	}
	if m := yamlTypeError.FindStringSubmatch(msg); m != nil {
		want := m[3]
		switch strings.TrimPrefix(want, "*") {
		case "int", "int64":
			want = "an integer"
		case "float64":
			want = "a number"
		case "bool":
			want = "true or false"
		case "string":
			want = "a string"
		}
		got := m[2]
		if m[1] == "map" || m[1] == "seq" {
			got = map[string]string{"map": "a mapping", "seq": "a list"}[m[1]]
		} else {
			got = fmt.Sprintf("%q", got)
		}
		return fmt.Sprintf("want %s, not %s", want, got)
	}
	return strings.TrimPrefix(msg, "yaml: ")
}

// suggest names the known key closest to an unknown one, if one is close.
func suggest(name string, fields map[string]int) string {
	best, bestD := "", 3
	for k := range fields {
		if d := distance(name, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
