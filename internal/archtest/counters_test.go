package archtest

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The metrics are moved at the chokepoints (the CEC client's observer, the
// sink decorator, the job loop), all wired in jobs: cmd creates the registry
// and serves or pushes it, and counts nothing itself.

// countingReceivers are the types whose methods move a metric. A method of
// one of them called from a cmd package is a metric moved inline.
var countingReceivers = []string{
	"internal/telemetry.Metrics",
	"github.com/prometheus/client_golang/prometheus.Counter",
	"github.com/prometheus/client_golang/prometheus.CounterVec",
	"github.com/prometheus/client_golang/prometheus.Gauge",
	"github.com/prometheus/client_golang/prometheus.GaugeVec",
	"github.com/prometheus/client_golang/prometheus.Histogram",
	"github.com/prometheus/client_golang/prometheus.HistogramVec",
	"github.com/prometheus/client_golang/prometheus.Observer",
	"github.com/prometheus/client_golang/prometheus.Summary",
	"github.com/prometheus/client_golang/prometheus.SummaryVec",
}

// countingCalls type-checks the non-test files of the package in dir (a
// module-relative path) and lists each call of a method of a
// countingReceivers type, as "file:line: Type.Method".
func countingCalls(t *testing.T, module, dir string) []string {
	t.Helper()
	root := filepath.Join("..", "..")
	dir = filepath.Join(root, dir)
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", dir, err)
	}
	if len(pkgs) != 1 {
		t.Fatalf("%s: %d packages, want 1", dir, len(pkgs))
	}
	var files []*ast.File
	var name string
	for n, p := range pkgs {
		name = n
		for _, f := range p.Files {
			files = append(files, f)
		}
	}
	// The imports are read from the export data the go command builds.
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", abs)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.Bytes())
	}
	exports := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if p, f, ok := strings.Cut(l, "\t"); ok && f != "" {
			exports[p] = f
		}
	}
	lookup := func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	}
	info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", lookup)}
	if _, err := conf.Check(name, fset, files, info); err != nil {
		t.Fatalf("type-check %s: %v", dir, err)
	}
	var found []string
	for se, sel := range info.Selections {
		if sel.Kind() != types.MethodVal {
			continue
		}
		recv := sel.Recv()
		if p, ok := recv.(*types.Pointer); ok {
			recv = p.Elem()
		}
		named, ok := recv.(*types.Named)
		if !ok || named.Obj().Pkg() == nil {
			continue
		}
		full := strings.TrimPrefix(named.Obj().Pkg().Path(), module+"/") + "." + named.Obj().Name()
		if slices.Contains(countingReceivers, full) {
			pos := fset.Position(se.Pos())
			found = append(found, fmt.Sprintf("%s:%d: %s.%s", filepath.Base(pos.Filename), pos.Line, named.Obj().Name(), sel.Obj().Name()))
		}
	}
	sort.Strings(found)
	return found
}

// TestCmd_CountsNothing: no cmd package moves a metric itself.
func TestCmd_CountsNothing(t *testing.T) {
	module, pkgs := listPackages(t)
	n := 0
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		if !match("cmd/...", rel) {
			continue
		}
		n++
		for _, c := range countingCalls(t, module, rel) {
			t.Errorf("%s: %s moves a metric inline: count at a chokepoint in jobs (jobs.UpstreamObserver, jobs.ObserveSink, the job loop) instead", rel, c)
		}
	}
	if n == 0 {
		t.Fatal("no cmd package found")
	}
}

// TestCmd_CountsNothingBroken shows that the check finds an inline count:
// testdata/countsinline calls a telemetry.Metrics method and a prometheus
// counter's.
func TestCmd_CountsNothingBroken(t *testing.T) {
	module, _ := listPackages(t)
	got := countingCalls(t, module, "internal/archtest/testdata/countsinline")
	want := []string{"main.go:13: Metrics.Ledger", "main.go:15: Counter.Inc"}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("countingCalls on a package that counts inline = %q, want %q", got, want)
	}
}
