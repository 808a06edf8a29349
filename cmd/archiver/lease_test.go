package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// TestCmdOnce_Replica: a writing command logs the replica ID it claims as
// (and a new one each time), and runs the sink janitor only when no other
// replica of the tenant holds its lease.
func TestCmdOnce_Replica(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	e := newTestEnv(t, nil, "")
	e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
	e.env["ARCHIVER_CHECKPOINT_DSN"] = dsn
	e.env["ARCHIVER_LOG_LEVEL"] = "debug"
	replica := func(log string) string {
		t.Helper()
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "checkpoint replica") {
				_, after, _ := strings.Cut(line, `"replica": "`)
				id, _, _ := strings.Cut(after, `"`)
				return id
			}
		}
		t.Fatalf("no replica ID logged:\n%s", log)
		return ""
	}
	code, out, errOut := e.run("once", "--config", e.config)
	if code != exitOK {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	first := replica(errOut)
	if strings.Count(first, "-") < 2 || strings.Contains(errOut, "sink janitor skipped") {
		t.Errorf("first run: replica %q, janitor skipped? stderr:\n%s", first, errOut)
	}

	// Another replica of the tenant is running the janitor.
	st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ok, err := st.TryLease(t.Context(), jobs.LeaseJanitor, "other-host-9-00000000", time.Hour); err != nil || !ok {
		t.Fatalf("TryLease = %v, %v", ok, err)
	}
	code, out, errOut = e.run("once", "--config", e.config)
	if code != exitOK {
		t.Fatalf("second once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "sink janitor skipped: another replica is running it") {
		t.Errorf("the janitor ran although another replica holds its lease:\n%s", errOut)
	}
	if second := replica(errOut); second == first {
		t.Errorf("two processes claimed as the same replica %q", first)
	}
}

// TestCmdOnce_HeldElsewhere: items another replica holds under its lease
// when once ends are not this run's: once exits 0, says how many are left
// in progress and until when, and leaves them to that replica.
func TestCmdOnce_HeldElsewhere(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	e := newTestEnv(t, nil, "")
	e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
	e.env["ARCHIVER_CHECKPOINT_DSN"] = dsn
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr"); code != exitOK {
		t.Fatalf("once --job cdr = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const other = "other-host-9-00000000"
	claimed, err := st.Claim(t.Context(), checkpoint.Claimer{Owner: other, Lease: time.Hour},
		[]string{checkpoint.KindAgent}, time.Now().Add(time.Hour), 3)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("Claim = %d items, %v; want 3 agent recordings", len(claimed), err)
	}
	code, out, errOut := e.run("once", "--config", e.config)
	if code != exitOK {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "once: 3 items in progress under the leases of 1 other replicas (until ") {
		t.Errorf("once does not say that 3 items are left to the other replica:\n%s", out)
	}
	for _, it := range claimed {
		got, err := st.Item(t.Context(), it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != checkpoint.StateInProgress || got.Owner != other {
			t.Errorf("item %d: %s by %q after once, want still in progress by %s", it.ID, got.State, got.Owner, other)
		}
	}
	// Once released, the next run does them and says nothing of leases.
	for _, it := range claimed {
		if err := st.Release(t.Context(), other, it.ID); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = e.run("once", "--config", e.config)
	if code != exitOK || strings.Contains(out, "in progress under the leases") {
		t.Errorf("once after the release = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
