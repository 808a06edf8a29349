package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// TestCmdResolve: an operator closes a dead item with a reason; the ledger
// shows it as operator-attested, and nothing else is closed.
func TestCmdResolve(t *testing.T) {
	e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}, "")
	e.env["ARCHIVER_JOBS_RECORDINGS_MAX_ATTEMPTS"] = "1"
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr,recordings"); code != exitFailed {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	st, err := sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := st.Items(t.Context(), checkpoint.StateDead)
	st.Close()
	if err != nil || len(dead) < 2 {
		t.Fatalf("want at least 2 dead items after a failed run with max_attempts 1, got %d (%v)", len(dead), err)
	}
	target := dead[0]
	id := strconv.FormatInt(target.ID, 10)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no id", []string{"--absent", "x"}},
		{"no reason", []string{"--id", id}},
		{"blank reason", []string{"--id", id, "--absent", "  "}},
		{"unknown id", []string{"--id", "999999", "--absent", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, errOut := e.run(append([]string{"resolve", "--config", e.config}, tc.args...)...); code != exitConfig {
				t.Errorf("resolve %v = %d, want 2; stderr:\n%s", tc.args, code, errOut)
			}
		})
	}

	const why = "index lists a file the contact centre never recorded (ticket 4711)"
	code, out, errOut := e.run("resolve", "--config", e.config, "--id", id, "--absent", why)
	if code != exitOK || !strings.Contains(out, "absent by operator decision") {
		t.Fatalf("resolve = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, _, errOut := e.run("resolve", "--config", e.config, "--id", id, "--absent", why); code != exitConfig {
		t.Errorf("resolving an absent item again = %d, want 2; stderr:\n%s", code, errOut)
	}

	st, err = sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Item(t.Context(), target.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != checkpoint.StateAbsent || got.Reason != why || got.AttestedAt.IsZero() {
		t.Fatalf("resolved item = %+v", got)
	}
	still, err := st.Items(t.Context(), checkpoint.StateDead)
	if err != nil || len(still) != len(dead)-1 {
		t.Fatalf("dead items after resolving one: %d, want %d (%v)", len(still), len(dead)-1, err)
	}
	_, key, ok, err := st.Ledger(t.Context(), got.Day)
	if err != nil || !ok {
		t.Fatalf("no ledger for %s (%v)", got.Day, err)
	}
	b, err := os.ReadFile(filepath.Join(e.archive, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	var l jobs.Ledger
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range l.Calls {
		for _, r := range c.Recordings {
			if r.ID == target.UpstreamID {
				found = true
				if r.State != "absent" || r.Reason != why || r.AttestedAt == nil {
					t.Errorf("ledger record = %+v, want absent, attested, with the operator's reason", r)
				}
			}
		}
	}
	if !found {
		t.Errorf("ledger %s does not list %s", key, target.UpstreamID)
	}
	if l.Totals.Attested != 1 || l.Complete {
		t.Errorf("ledger totals %+v complete %v: want 1 attested and still incomplete (other items are dead)", l.Totals, l.Complete)
	}
}
