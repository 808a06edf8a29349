package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// TestDemo runs the README's first command in-process: the whole chain
// (simulator over TLS with a private CA, signed client, CDR package, every
// recording kind, directory sink) must archive exactly the manifest, and a
// second run over the same directory must store nothing twice.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	run := func(faults ...string) (string, error) {
		t.Helper()
		var fs []cecsim.Fault
		for _, f := range faults {
			fault, err := cecsim.ParseFault(f)
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, fault)
		}
		var out bytes.Buffer
		err := demo(context.Background(), demoOptions{Dir: dir, Calls: 25, Days: 2, Seed: 7, Concurrency: 4, Faults: fs}, &out, zap.NewNop())
		return out.String(), err
	}
	mustOK := func(out string, err error) string {
		t.Helper()
		if err != nil || !strings.Contains(out, "OK: all ") {
			t.Fatalf("demo: %v\noutput:\n%s", err, out)
		}
		return out
	}
	out := mustOK(run())
	if !regexp.MustCompile(`calls in CDR packages: 25 of 25`).MatchString(out) {
		t.Errorf("not every call enumerated:\n%s", out)
	}
	if !strings.Contains(out, "signed CC-FS callbacks received and verified: 2") {
		t.Errorf("callbacks not verified:\n%s", out)
	}
	before := countFiles(t, dir)

	// Faults in every stream. A pass retries broken items a few times; what
	// still fails is reported by name, never dropped or stored half.
	out, err := run("http500:0.1", "reset:0.1", "truncate:0.1", "flow_control:0.1", "429:0.05")
	if err != nil && !strings.Contains(err.Error(), " failed: ") && !strings.Contains(err.Error(), "download package") {
		t.Fatalf("faulted pass: %v\n%s", err, out)
	}
	// The next pass completes the set, and no recording was stored twice:
	// only CDR packages (new responseIds) and ledgers are new.
	mustOK(run())
	after := countFiles(t, dir)
	if after != before {
		t.Errorf("later passes changed the recording files from %d to %d: recordings stored twice?", before, after)
	}
}

// countFiles counts the recording files under dir: not the CDR packages and
// ledgers ({tenant}/cdr/..., {tenant}/ledger/...), not the sink's own files.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		seg := strings.Split(filepath.ToSlash(rel), "/")
		if seg[0] == sink.ReservedPrefix || len(seg) > 1 && (seg[1] == "cdr" || seg[1] == "ledger") {
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
