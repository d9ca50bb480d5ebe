package config

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
)

// EnvPrefix starts the name of every environment variable that sets a
// flag: BAYEUXHUB_PORT sets --port, BAYEUXHUB_CONNECT_TIMEOUT sets
// --connect-timeout.
const EnvPrefix = "BAYEUXHUB_"

// EnvName returns the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load reads the effective settings: the defaults, then the YAML file
// named by --config (or BAYEUXHUB_CONFIG), then the BAYEUXHUB_*
// environment variables (lookupEnv, as os.LookupEnv), then the flags in
// args (without the program name). Usage and flag errors are written to
// stderr; --help returns flag.ErrHelp.
func Load(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*Settings, error) {
	s := Defaults()
	fs, fresh := newFlagSet(&s, stderr)

	path := configArg(args)
	if path == "" {
		path, _ = lookupEnv(EnvName("config"))
	}
	if path != "" {
		if err := loadFile(path, &s); err != nil {
			return nil, err
		}
	}

	resetLists(fresh)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		v, ok := lookupEnv(EnvName(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			envErr = fmt.Errorf("environment variable %s: %w", EnvName(f.Name), err)
		}
	})
	if envErr != nil {
		return nil, envErr
	}

	resetLists(fresh)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	s.Config = path
	return &s, nil
}

func resetLists(fresh []*bool) {
	for _, f := range fresh {
		*f = true
	}
}

// configArg finds --config's value in args without parsing the rest, so
// that the file can be read before the flags that override it.
func configArg(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// usageName marks the value's name in a usage text: "{port}".
var usageName = regexp.MustCompile(`\{([^{}]+)\}`)

// newFlagSet binds a flag to every field of s tagged flag. It returns the
// set and the "fresh" markers of the list flags.
func newFlagSet(s *Settings, stderr io.Writer) (*flag.FlagSet, []*bool) {
	fs := flag.NewFlagSet("bayeuxhub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var fresh []*bool
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := sf.Tag.Get("flag")
		if name == "" {
			continue
		}
		usage := sf.Tag.Get("usage")
		if loc := usageName.FindStringSubmatchIndex(usage); loc != nil {
			usage = usage[:loc[0]] + "`" + usage[loc[2]:loc[3]] + "`" + usage[loc[1]:]
		}
		usage += " [$" + EnvName(name) + "]"
		fs.Var(bindValue(v.Field(i).Addr().Interface(), &fresh), name, usage)
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: bayeuxhub [flags]
       bayeuxhub token [flags]   (mint a token: bayeuxhub token --help)

A Bayeux 1.0 (CometD) publish/subscribe server: Bayeux at /cometd, the chat
demo at /. Every flag can also be set in the --config file (same name) or
as an environment variable (in brackets); flags win over the environment,
which wins over the file.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, fresh
}

// bindValue returns the flag.Value for a pointer to a Settings field.
func bindValue(p any, fresh *[]*bool) flag.Value {
	switch p := p.(type) {
	case *string:
		return stringValue{p}
	case *bool:
		return boolValue{p}
	case **bool:
		return optBoolValue{p}
	case *int:
		return intValue{p}
	case *int64:
		return int64Value{p}
	case *Duration:
		return durationValue{p}
	case *List:
		f := new(bool)
		*fresh = append(*fresh, f)
		return listValue{p: p, fresh: f}
	}
	panic(fmt.Sprintf("config: no flag type for %T", p))
}
