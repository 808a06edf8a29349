package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "ARCHIVER_"

// applyEnv overrides every key whose ARCHIVER_<PATH> variable is set (even to
// the empty string). Only the names of known keys are looked up, so unrelated
// ARCHIVER_* variables are ignored. A value that does not parse is reported
// with the variable's name and leaves the key as it was. The values of secret
// keys are never echoed.
func applyEnv(cfg *Config, env func(string) (string, bool)) []error {
	var errs []error
	root := reflect.ValueOf(cfg).Elem()
	for _, l := range leaves() {
		name := l.envName()
		raw, ok := env(name)
		if !ok {
			continue
		}
		if err := setFromString(root.FieldByIndex(l.index), raw); err != nil {
			errs = append(errs, &FieldError{Field: name, Msg: err.Error()})
		}
	}
	return errs
}

// setFromString parses s into v, a key of one of the types Config uses.
func setFromString(v reflect.Value, s string) error {
	switch v.Type() {
	case reflect.TypeFor[Secret]():
		v.Set(reflect.ValueOf(NewSecret(s)))
		return nil
	case reflect.TypeFor[Duration]():
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(Duration{d}))
		return nil
	case reflect.TypeFor[Size]():
		z, err := parseSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(z))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q: want true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported type %s", v.Type())
		}
		// A comma-separated list; "" is the empty list.
		var list []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// EnvNames returns the environment override of every key, keyed by TOML path
// ("cec.sk" → "ARCHIVER_CEC_SK"), for documentation and tooling.
func EnvNames() map[string]string {
	m := make(map[string]string)
	for _, l := range leaves() {
		m[l.name()] = l.envName()
	}
	return m
}
