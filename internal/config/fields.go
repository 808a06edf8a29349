package config

import (
	"reflect"
	"strings"
)

// FieldError is one configuration problem, tied to the TOML path of the key it
// is about ("cec.fs_url") or, for an environment override, to the variable.
type FieldError struct {
	Field string // TOML path or environment variable name
	Msg   string
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// leaf is one key of the configuration: a struct field that is not a table.
type leaf struct {
	path  []string // TOML path, e.g. ["sink", "s3", "endpoint"]
	index []int    // reflect.Value.FieldByIndex index from Config
	typ   reflect.Type
}

func (l leaf) name() string { return strings.Join(l.path, ".") }

// envName is the environment override of the key: ARCHIVER_SINK_S3_ENDPOINT.
func (l leaf) envName() string {
	return EnvPrefix + strings.ToUpper(strings.Join(l.path, "_"))
}

// isLeafType reports whether values of t are keys rather than tables.
func isLeafType(t reflect.Type) bool {
	return t.Kind() != reflect.Struct || t == reflect.TypeFor[Secret]() || t == reflect.TypeFor[Duration]()
}

// isTableArray reports whether values of t are an array of tables
// ([[retention.rules]]): its elements' keys are not keys of Config (no
// environment override, no example line of their own).
func isTableArray(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && !isLeafType(t.Elem())
}

// leaves lists every key of Config in declaration order. Arrays of tables
// are not keys: they are left out.
func leaves() []leaf {
	var out []leaf
	var walk func(t reflect.Type, path []string, index []int)
	walk = func(t reflect.Type, path []string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			tag := tomlName(f)
			if f.Anonymous && tag == "" {
				walk(f.Type, path, idx) // embedded Job: its keys belong to the enclosing table
				continue
			}
			if tag == "" || tag == "-" {
				continue
			}
			p := append(append([]string(nil), path...), tag)
			if isTableArray(f.Type) {
				continue
			}
			if isLeafType(f.Type) {
				out = append(out, leaf{path: p, index: idx, typ: f.Type})
				continue
			}
			walk(f.Type, p, idx)
		}
	}
	walk(reflect.TypeFor[Config](), nil, nil)
	return out
}

// tomlName is the key name of a struct field ("" when it has no toml tag).
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// keysAt lists the key and table names directly inside the table at path
// (nil path = the top level), or nil if path names no table.
func keysAt(path []string) []string {
	t := reflect.TypeFor[Config]()
	for _, p := range path {
		f, ok := fieldByTOML(t, p)
		switch {
		case ok && isTableArray(f.Type):
			t = f.Type.Elem()
		case !ok || isLeafType(f.Type):
			return nil
		default:
			t = f.Type
		}
	}
	var names []string
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := tomlName(f)
			if f.Anonymous && tag == "" {
				collect(f.Type)
				continue
			}
			if tag != "" && tag != "-" {
				names = append(names, tag)
			}
		}
	}
	collect(t)
	return names
}

// fieldByTOML finds the field of struct type t (or of a struct it embeds)
// whose toml tag is name.
func fieldByTOML(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := tomlName(f)
		if f.Anonymous && tag == "" {
			if g, ok := fieldByTOML(f.Type, name); ok {
				return g, true
			}
			continue
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// typeAt returns the Go type of the key or table at path.
func typeAt(path []string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	for i, p := range path {
		if i > 0 && isTableArray(t) {
			t = t.Elem() // a key of one of the tables
		}
		if t.Kind() != reflect.Struct || (i > 0 && isLeafType(t)) {
			return nil, false
		}
		name, indexed := cutIndex(p)
		f, ok := fieldByTOML(t, name)
		if !ok || (indexed && !isTableArray(f.Type)) {
			return nil, false
		}
		t = f.Type
		if indexed {
			t = t.Elem() // one table of the array: rules[2]
		}
	}
	return t, len(path) > 0
}

// cutIndex splits "rules[2]" into "rules" and true; a name without a
// [N] suffix is returned as it is.
func cutIndex(p string) (string, bool) {
	open := strings.IndexByte(p, '[')
	if open <= 0 || !strings.HasSuffix(p, "]") {
		return p, false
	}
	n := p[open+1 : len(p)-1]
	if n == "" || strings.Trim(n, "0123456789") != "" {
		return p, false
	}
	return p[:open], true
}

// describeType says what a TOML value for a field of type t looks like.
func describeType(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Secret]():
		return "a string"
	case t == reflect.TypeFor[Duration]():
		return `a duration string such as "30s"`
	case t == reflect.TypeFor[Size]():
		return `a size in bytes or a string such as "8MiB"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		if isTableArray(t) {
			return "an array of tables"
		}
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct:
		return "a table"
	}
	return t.String()
}
