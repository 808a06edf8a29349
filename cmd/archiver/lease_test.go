package main

import (
	"strings"
	"testing"
	"time"

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
