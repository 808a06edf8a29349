package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

func TestCmdVerify(t *testing.T) {
	e := newTestEnv(t, nil, "")
	t.Run("no state", func(t *testing.T) {
		code, _, errOut := e.run("verify", "--config", e.config)
		if code != exitFailed || !strings.Contains(errOut, "no state file at "+e.state) {
			t.Errorf("verify = %d, want 1; stderr:\n%s", code, errOut)
		}
	})
	if code, out, errOut := e.run("once", "--config", e.config); code != exitOK {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// The state is held open, as by a running daemon: verify reads anyway.
	held, err := sqlite.Open(e.state, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	items, err := held.Items(t.Context(), checkpoint.StateDone)
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for _, it := range items {
		if it.Key != "" {
			key = it.Key
			break
		}
	}
	if key == "" {
		t.Fatal("nothing archived")
	}

	t.Run("clean", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--deep"}} {
			code, out, errOut := e.run(append([]string{"verify", "--config", e.config}, args...)...)
			if code != exitOK {
				t.Fatalf("verify %v = %d, want 0\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
			}
			for _, want := range []string{"DAY", "ENTRIES", "MISSING", "LEDGER", "strays: none", "no problems found"} {
				if !strings.Contains(out, want) {
					t.Errorf("verify %v: no %q in\n%s", args, want, out)
				}
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := e.run("verify", "--config", e.config, "--json")
		if code != exitOK {
			t.Fatalf("verify --json = %d\nstderr:\n%s", code, errOut)
		}
		var rep jobs.VerifyReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(rep.Days) != 2 || rep.Problems != 0 || !rep.StraysChecked {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("locks on the dir sink", func(t *testing.T) {
		code, out, errOut := e.run("verify", "--config", e.config, "--locks")
		if code != exitConfig || !strings.Contains(errOut, "verify: --locks: ") || !strings.Contains(errOut, "has no Object Lock to read back") {
			t.Errorf("verify --locks = %d, want 2 naming the missing Object Lock\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
	t.Run("bad dates", func(t *testing.T) {
		for _, args := range [][]string{{"--from", "2026-13-01"}, {"--from", "2026-11-02", "--to", "2026-11-01"}} {
			if code, _, errOut := e.run(append([]string{"verify", "--config", e.config}, args...)...); code != exitConfig {
				t.Errorf("verify %v = %d, want 2; stderr:\n%s", args, code, errOut)
			}
		}
	})
	t.Run("chain", func(t *testing.T) {
		code, out, errOut := e.run("verify", "--config", e.config, "--chain")
		if code != exitOK {
			t.Fatalf("verify --chain = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, want := range []string{"chain: 2 links over 2 days, 2 verified; head seq 2 ", "chain problems: none", "no problems found"} {
			if !strings.Contains(out, want) {
				t.Errorf("verify --chain: no %q in\n%s", want, out)
			}
		}
		code, out, errOut = e.run("verify", "--config", e.config, "--chain", "--json")
		var rep jobs.VerifyReport
		if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Chain == nil || rep.Chain.Links != 2 || rep.Chain.Head == nil {
			t.Fatalf("verify --chain --json = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		// The first link deleted: named, exit 1, text and JSON.
		first := rep.Chain.Days[0].Current
		path := filepath.Join(e.archive, filepath.FromSlash(first.Key))
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.WriteFile(path, body, 0o640); err != nil {
				t.Error(err)
			}
		}()
		code, out, errOut = e.run("verify", "--config", e.config, "--chain")
		t.Logf("verify --chain with link %d deleted:\n%s", first.Seq, out)
		want := fmt.Sprintf("missing seq %d day %s %s: deleted", first.Seq, first.Day, first.Key)
		if code != exitFailed || !strings.Contains(out, want) {
			t.Errorf("verify --chain with link %d deleted = %d, want 1 and %q\nstdout:\n%s\nstderr:\n%s", first.Seq, code, want, out, errOut)
		}
		code, out, _ = e.run("verify", "--config", e.config, "--chain", "--json")
		rep = jobs.VerifyReport{}
		if code != exitFailed || json.Unmarshal([]byte(out), &rep) != nil || rep.Chain == nil ||
			!slices.ContainsFunc(rep.Chain.Problems, func(p jobs.ChainProblem) bool { return p.Kind == jobs.ChainMissing && p.Key == first.Key }) {
			t.Errorf("verify --chain --json with link %d deleted = %d\n%s", first.Seq, code, out)
		}
	})
	t.Run("deleted object", func(t *testing.T) {
		path := filepath.Join(e.archive, filepath.FromSlash(key))
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := e.run("verify", "--config", e.config)
		if code != exitFailed {
			t.Fatalf("verify = %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "missing "+key) || !strings.Contains(out, "1 problems found") {
			t.Errorf("the missing object is not named:\n%s", out)
		}
	})
}

// TestPrintVerify_Locks: the LOCK column is "-" until --locks checked it;
// a configuration that locks objects gets a note when it was not checked.
func TestPrintVerify_Locks(t *testing.T) {
	day := jobs.VerifyDay{Day: "2026-11-01", Entries: 3, OK: 2, LockMismatch: 1, Ledger: jobs.LedgerOK,
		Problems: []string{"legal hold mismatch rec/k (agent r1, call c1): not held"}}
	for _, c := range []struct {
		name           string
		locks, locking bool
		want, unwanted []string
	}{
		{"Checked", true, true, []string{"LOCK", "  1      ok", "with Object Lock: 1 problems found", "legal hold mismatch rec/k"}, []string{"locks: not checked"}},
		{"NotChecked", false, true, []string{"LOCK", "  -      ok", "locks: not checked", "verify fast (recorded size and digest): 1 problems"}, []string{"with Object Lock"}},
		{"NothingLocked", false, false, []string{"  -      ok"}, []string{"locks: not checked"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			printVerify(&b, &jobs.VerifyReport{Days: []jobs.VerifyDay{day}, Locks: c.locks, Problems: 1, StraysChecked: true}, c.locking)
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("no %q in\n%s", w, b.String())
				}
			}
			for _, w := range c.unwanted {
				if strings.Contains(b.String(), w) {
					t.Errorf("%q in\n%s", w, b.String())
				}
			}
		})
	}
}
