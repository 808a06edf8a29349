package config

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

const (
	examplePath = "../../config.toml.example"
	docsPath    = "../../docs/configuration.md"
)

// exampleKeys reads config.toml.example and returns, per TOML path, the
// assignment line of every key it shows: "key = value" for a value that is set,
// "# key = value" (exactly one space after '#') for a default shown commented
// out. Prose comments never take that form.
func exampleKeys(t *testing.T) (set, commented map[string]string) {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile(`^\[([a-z0-9_.]+)\]\s*$`)
	assign := regexp.MustCompile(`^(# )?([a-z0-9_]+) = (.*)$`)
	set, commented = map[string]string{}, map[string]string{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if m := header.FindStringSubmatch(line); m != nil {
			table = m[1]
			continue
		}
		m := assign.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path := m[2]
		if table != "" {
			path = table + "." + m[2]
		}
		kv := m[2] + " = " + m[3]
		if _, dup := set[path]; dup {
			t.Errorf("%s appears twice in the example", path)
		}
		if _, dup := commented[path]; dup {
			t.Errorf("%s appears twice in the example", path)
		}
		if m[1] == "" {
			set[path] = kv
		} else {
			commented[path] = kv
		}
	}
	return set, commented
}

func TestExample_Loads(t *testing.T) {
	// The example keeps secrets out of the file, as it tells users to; supply
	// them the way it suggests.
	cfg, err := Load(examplePath, mapEnv(map[string]string{
		"ARCHIVER_CEC_SK":           "example-sk",
		"ARCHIVER_CEC_API_PASSWORD": "example-password",
	}))
	if err != nil {
		t.Fatalf("config.toml.example does not load:\n%v", err)
	}
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("config.toml.example has warnings: %q", w)
	}
}

// TestExample_CoversEveryKey fails when a key is added to Config but not to
// config.toml.example, or the example shows a key Config does not have.
func TestExample_CoversEveryKey(t *testing.T) {
	set, commented := exampleKeys(t)
	known := map[string]bool{}
	for _, l := range leaves() {
		known[l.name()] = true
		_, s := set[l.name()]
		_, c := commented[l.name()]
		if !s && !c {
			t.Errorf("config.toml.example does not show %s", l.name())
		}
	}
	for path := range set {
		if !known[path] {
			t.Errorf("config.toml.example sets unknown key %s", path)
		}
	}
	for path := range commented {
		if !known[path] {
			t.Errorf("config.toml.example shows unknown key %s", path)
		}
	}
}

// TestExample_DefaultsMatch uncomments every "# key = value" line of the
// example and checks that the value is the built-in default, so the example
// never advertises a stale default.
func TestExample_DefaultsMatch(t *testing.T) {
	_, commented := exampleKeys(t)
	def := reflect.ValueOf(Default()).Elem()
	for _, l := range leaves() {
		kv, ok := commented[l.name()]
		if !ok {
			continue
		}
		doc := kv + "\n"
		if len(l.path) > 1 {
			doc = "[" + strings.Join(l.path[:len(l.path)-1], ".") + "]\n" + doc
		}
		var got Config
		if err := toml.NewDecoder(strings.NewReader(doc)).DisallowUnknownFields().Decode(&got); err != nil {
			t.Errorf("%s: example line %q does not decode: %v", l.name(), kv, err)
			continue
		}
		g := reflect.ValueOf(&got).Elem().FieldByIndex(l.index).Interface()
		w := def.FieldByIndex(l.index).Interface()
		if !reflect.DeepEqual(g, w) && !(isEmpty(g) && isEmpty(w)) {
			t.Errorf("%s: example shows %q, the default is %v", l.name(), kv, w)
		}
	}
}

// isEmpty treats nil and empty slices alike.
func isEmpty(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Slice && rv.Len() == 0
}

// TestDocs_CoversEveryKey fails when docs/configuration.md does not describe
// a key, or describes one Config does not have.
func TestDocs_CoversEveryKey(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	known := map[string]bool{}
	for _, l := range leaves() {
		known[l.name()] = true
		if !strings.Contains(doc, "| `"+l.name()+"` |") {
			t.Errorf("docs/configuration.md has no table row for `%s`", l.name())
		}
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_.]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		if !known[m[1]] {
			t.Errorf("docs/configuration.md describes unknown key %s", m[1])
		}
	}
}

// TestDocs_ExamplesDecode checks that every TOML example in
// docs/configuration.md uses only known keys with values of the right type.
func TestDocs_ExamplesDecode(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) == 0 {
		t.Fatal("no TOML examples found")
	}
	for i, b := range blocks {
		problems, err := decode([]byte(b[1]), Default())
		if err != nil || len(problems) > 0 {
			t.Errorf("example %d: %v %v\n%s", i+1, err, problems, b[1])
		}
	}
}
