package config

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// checkTypes walks the TOML document and reports every value whose TOML type
// does not fit its key, and every duration or size string that does not
// parse, each with the key's path and line.
//
// The decoder would stop at the first such value, and for types decoded
// through UnmarshalText (Duration, Size, Secret) it would not even say which
// key it was, or would silently accept an integer as a secret. Doing the
// check up front names every bad value at once. Keys the Config does not know
// are skipped here (strict decoding reports them), and so is a document that
// does not parse (the decoder reports where).
func checkTypes(data []byte) []error {
	var p unstable.Parser
	p.Reset(data)
	var table []string
	var errs []error
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			if t, ok := typeAt(table); ok && isLeafType(t) && !(e.Kind == unstable.ArrayTable && isTableArray(t)) {
				errs = append(errs, &FieldError{Field: strings.Join(table, "."),
					Msg: "want " + describeType(t) + ", got a table" + lineOf(&p, e)})
			}
		case unstable.KeyValue:
			path := append(append([]string(nil), table...), keyParts(e.Key())...)
			errs = append(errs, checkValue(&p, path, e.Value())...)
		}
	}
	if p.Error() != nil {
		return nil
	}
	return errs
}

// checkValue checks the value node v of the key at path.
func checkValue(p *unstable.Parser, path []string, v *unstable.Node) []error {
	t, ok := typeAt(path)
	if !ok {
		return nil
	}
	field := strings.Join(path, ".")
	if v.Kind == unstable.InlineTable && t.Kind() == reflect.Struct && !isLeafType(t) {
		var errs []error
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			sub := append(append([]string(nil), path...), keyParts(kv.Key())...)
			errs = append(errs, checkValue(p, sub, kv.Value())...)
		}
		return errs
	}

	fits := false
	var parseErr error
	switch {
	case t == reflect.TypeFor[Secret]():
		fits = v.Kind == unstable.String
	case t == reflect.TypeFor[Duration]():
		fits = v.Kind == unstable.String
		if fits {
			_, parseErr = parseDuration(string(v.Data))
		}
	case t == reflect.TypeFor[Size]():
		fits = v.Kind == unstable.Integer || v.Kind == unstable.String
		if v.Kind == unstable.String {
			_, parseErr = parseSize(string(v.Data))
		}
	case t.Kind() == reflect.String:
		fits = v.Kind == unstable.String
	case t.Kind() == reflect.Bool:
		fits = v.Kind == unstable.Bool
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		fits = v.Kind == unstable.Integer
	case t.Kind() == reflect.Float64:
		fits = v.Kind == unstable.Integer || v.Kind == unstable.Float
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		fits = v.Kind == unstable.Array
		if fits {
			it := v.Children()
			for it.Next() {
				if el := it.Node(); el.Kind != unstable.String {
					return []error{&FieldError{Field: field, Msg: "want " + describeType(t) +
						", got an array containing " + describeKind(el.Kind) + lineOf(p, v)}}
				}
			}
		}
	case t.Kind() == reflect.Struct:
		fits = v.Kind == unstable.InlineTable
	default:
		fits = true // not a type Config uses; leave it to the decoder
	}
	switch {
	case !fits:
		return []error{&FieldError{Field: field, Msg: "want " + describeType(t) + ", got " + describeKind(v.Kind) + lineOf(p, v)}}
	case parseErr != nil:
		return []error{&FieldError{Field: field, Msg: parseErr.Error() + lineOf(p, v)}}
	}
	return nil
}

// keyParts returns the parts of a dotted key.
func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// lineOf returns " (line N)" for node n, or "" if its position is unknown.
// Container nodes (tables, arrays) carry no position of their own; the first
// child that has one stands for them.
func lineOf(p *unstable.Parser, n *unstable.Node) string {
	for ; n.Valid(); n = n.Child() {
		if n.Raw.Length != 0 || n.Raw.Offset != 0 {
			return " (line " + strconv.Itoa(p.Shape(n.Raw).Start.Line) + ")"
		}
	}
	return ""
}

func describeKind(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return "a " + strings.ToLower(k.String())
}
