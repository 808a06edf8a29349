package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	t.Run("bad dates", func(t *testing.T) {
		for _, args := range [][]string{{"--from", "2026-13-01"}, {"--from", "2026-11-02", "--to", "2026-11-01"}} {
			if code, _, errOut := e.run(append([]string{"verify", "--config", e.config}, args...)...); code != exitConfig {
				t.Errorf("verify %v = %d, want 2; stderr:\n%s", args, code, errOut)
			}
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
