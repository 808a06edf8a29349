package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// floor lists the packages of the bottom floor: the parts jobs puts
// together. They import each other and outside code, never the floors above.
var floor = []string{
	"internal/cecclient", "internal/cdr", "internal/sink/...", "internal/checkpoint/...",
	"internal/telemetry", "internal/config", "internal/recording", "internal/cecwire",
}

// above are the packages no floor package imports, not even in its tests.
var above = []string{"internal/jobs", "internal/cecsim/...", "cmd/..."}

// rule is the import rule of the packages Pkgs match (module-relative
// paths; "x/..." is x and everything under it). The first rule that matches
// a package is its rule, and every package must match one.
type rule struct {
	Pkgs []string
	// May lists the module packages the non-test files may import; any
	// other module import breaks the rule.
	May []string
	// Never lists the module packages no file may import, tests included.
	Never []string
	// NeverOutside lists packages from outside the module that the non-test
	// files may not import: what they stand for belongs on another floor.
	NeverOutside []string
	// Why is the rule in words, for the failure message.
	Why string
}

var rules = []rule{
	{
		Pkgs: []string{"cmd/cecsim"},
		May:  []string{"internal/cecsim", "internal/cecwire"},
		Why:  "the simulator's binary wires the simulator only",
	},
	{
		Pkgs:         []string{"cmd/..."},
		May:          []string{"internal/..."},
		NeverOutside: []string{"github.com/robfig/cron/v3"},
		Why:          "cmd wires the internal packages together; the schedule loop lives in jobs (Archiver.Serve)",
	},
	{
		Pkgs:  []string{"internal/jobs"},
		May:   floor,
		Never: []string{"cmd/..."},
		Why:   "jobs imports the bottom floor only",
	},
	{
		Pkgs:  []string{"internal/cecsim/..."},
		May:   []string{"internal/cecwire"},
		Never: []string{"internal/jobs", "cmd/..."},
		Why:   "the simulator shares only the wire types with the archiver",
	},
	{
		Pkgs:  []string{"internal/sink/..."},
		May:   without(floor, "internal/cecclient"),
		Never: []string{"internal/cecclient", "internal/jobs", "internal/cecsim/...", "cmd/..."},
		Why:   "sink is on the bottom floor (no jobs, simulator or cmd) and never imports cecclient",
	},
	{
		Pkgs:  []string{"internal/cecclient"},
		May:   without(floor, "internal/sink/..."),
		Never: []string{"internal/sink/...", "internal/jobs", "cmd/..."},
		Why:   "cecclient is on the bottom floor (no jobs, simulator or cmd) and never imports sink",
	},
	{
		Pkgs:  floor,
		May:   floor,
		Never: above,
		Why:   "the bottom floor never imports jobs, the simulator or cmd",
	},
	{
		Pkgs:  []string{"internal/archtest"},
		Never: []string{"internal/...", "cmd/..."},
		Why:   "the architecture tests import nothing they check",
	},
	{
		Pkgs:  []string{"bench/..."},
		May:   []string{"internal/..."},
		Never: []string{"cmd/...", "test/..."},
		Why:   "the benchmark harness runs the built binaries like the acceptance tests, and may use internal packages (the simulator, the CEC client) like cmd",
	},
	{
		Pkgs:  []string{"tools/...", "packaging"},
		May:   []string{},
		Never: []string{"internal/...", "cmd/..."},
		Why:   "the build tools (the image builder, the packages) build the binary with go build and read files; they import nothing of the archiver",
	},
	{
		Pkgs:  []string{"test/..."},
		May:   []string{},
		Never: []string{"cmd/..."},
		Why:   "the acceptance tests run the built binary, they do not import it",
	},
}

func without(list []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == drop })
}

// match says whether the module-relative path pkg matches pattern.
func match(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matchAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, pkg) })
}

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath   string
	Module       *struct{ Path string }
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// listPackages runs `go list -json ./...` at the module root.
func listPackages(t *testing.T) (module string, pkgs []pkg) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the packages: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-e", "-json=ImportPath,Module,Imports,TestImports,XTestImports,Error", "./...")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 || pkgs[0].Module == nil {
		t.Fatalf("go list found no packages of a module")
	}
	return pkgs[0].Module.Path, pkgs
}

// violations checks the packages against the rules and returns one message
// for each import that breaks one, naming the package, the import and the
// rule.
func violations(module string, pkgs []pkg, rules []rule) []string {
	var out []string
	rel := func(path string) (string, bool) {
		if path == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	for _, p := range pkgs {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		i := slices.IndexFunc(rules, func(r rule) bool { return matchAny(r.Pkgs, name) })
		if i < 0 {
			out = append(out, name+": no import rule covers this package; add one to rules")
			continue
		}
		r := rules[i]
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				target, ok := rel(imp)
				if !ok {
					if !test && slices.Contains(r.NeverOutside, imp) {
						out = append(out, name+" imports "+imp+": not allowed; "+r.Why)
					}
					continue
				}
				if target == name {
					continue
				}
				where := ""
				if test {
					where = " (in its tests)"
				}
				switch {
				case matchAny(r.Never, target):
					out = append(out, name+" imports "+target+where+": never allowed; "+r.Why)
				case !test && r.May != nil && !matchAny(r.May, target):
					out = append(out, name+" imports "+target+": not in its allowed imports "+strings.Join(r.May, ", ")+"; "+r.Why)
				case strings.HasPrefix(target, "cmd/") || target == "cmd":
					out = append(out, name+" imports "+target+where+": nothing imports cmd")
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	return out
}

// TestImports_Floor enforces the import floor of the house style: cmd →
// jobs → {cecclient, cdr, sink, checkpoint, telemetry, config, recording,
// cecwire}, the simulator apart.
func TestImports_Floor(t *testing.T) {
	module, pkgs := listPackages(t)
	for _, v := range violations(module, pkgs, rules) {
		t.Error(v)
	}
	// A broken import (an import cycle, say) is reported after the rule it
	// breaks, which names the import.
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
	}
}

// TestImports_BrokenFloor checks that the checker reports a broken floor: a made-up
// module whose sink imports jobs, whose cecclient tests import cmd and
// whose new package has no rule.
func TestImports_BrokenFloor(t *testing.T) {
	const m = "example.com/m"
	pkgs := []pkg{
		{ImportPath: m + "/internal/sink", Imports: []string{"io", m + "/internal/jobs"}},
		{ImportPath: m + "/internal/cecclient", TestImports: []string{m + "/cmd/archiver", m + "/internal/cecsim"}},
		{ImportPath: m + "/internal/jobs", Imports: []string{m + "/internal/sink", m + "/internal/cecsim"}},
		{ImportPath: m + "/internal/cecsim", Imports: []string{m + "/internal/cecwire", m + "/internal/recording"}},
		{ImportPath: m + "/internal/newthing"},
		{ImportPath: m + "/cmd/archiver", Imports: []string{m + "/internal/jobs"}},
	}
	got := violations(m, pkgs, rules)
	want := []string{
		"internal/sink imports internal/jobs: never allowed",
		"internal/cecclient imports cmd/archiver (in its tests): never allowed",
		"internal/jobs imports internal/cecsim: not in its allowed imports",
		"internal/cecsim imports internal/recording: not in its allowed imports",
		"internal/newthing: no import rule covers this package",
	}
	if len(got) != len(want) {
		t.Errorf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no violation %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// TestImports_NeverOutside checks that the checker reports a package from
// outside the module that a rule forbids: cmd importing the scheduler.
func TestImports_NeverOutside(t *testing.T) {
	const m = "example.com/m"
	pkgs := []pkg{
		{ImportPath: m + "/cmd/archiver", Imports: []string{m + "/internal/jobs", "github.com/robfig/cron/v3"}},
		{ImportPath: m + "/cmd/other", TestImports: []string{"github.com/robfig/cron/v3"}},
		{ImportPath: m + "/internal/jobs", Imports: []string{"github.com/robfig/cron/v3"}},
	}
	got := violations(m, pkgs, rules)
	want := "cmd/archiver imports github.com/robfig/cron/v3: not allowed"
	if len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("violations:\n%s\nwant only %q", strings.Join(got, "\n"), want)
	}
}
