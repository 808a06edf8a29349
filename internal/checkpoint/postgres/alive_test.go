package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// alive is ReplicasAlive for one replica.
func alive(t *testing.T, s *Store, replica string) bool {
	t.Helper()
	m, err := s.ReplicasAlive(t.Context(), []string{replica})
	if err != nil {
		t.Fatal(err)
	}
	return m[replica]
}

// lockPID is the backend holding the database's advisory lock (0: none).
func lockPID(t *testing.T, s *Store) int32 {
	t.Helper()
	var pid int32
	err := s.pool.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
	}
}

// TestStore_RunLock: a store that records a run as running holds its
// replica's run lock until it is closed (as a killed process's connection
// goes), takes it again after its connection was ended by the server, and
// another store of the same tenant (status) sees whether it is held; a
// replica of another tenant is another lock.
func TestStore_RunLock(t *testing.T) {
	old := runLockCheck
	runLockCheck = 50 * time.Millisecond
	t.Cleanup(func() { runLockCheck = old })
	dsn := freshDB(t)
	a, status, other := open(t, dsn, "tenant-a"), open(t, dsn, "tenant-a"), open(t, dsn, "tenant-b")
	const replica = "host-1-0000abcd"
	if alive(t, status, replica) {
		t.Fatal("alive before any run was recorded")
	}
	run := checkpoint.JobRun{Job: "cdr", Started: time.Now(), Result: checkpoint.RunRunning, Replica: replica}
	if err := a.SetLastRun(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if !alive(t, status, replica) {
		t.Fatal("not alive while the store that recorded the run is open")
	}
	if alive(t, status, "host-2-0000abcd") || alive(t, other, replica) {
		t.Fatal("another replica, or the same replica of another tenant, is alive")
	}
	// The server ends the lock's session (a restart, an administrator):
	// the store takes the lock again.
	before := lockPID(t, status)
	sql(t, dsn, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	eventually(t, "the run lock was not taken again after its session ended", func() bool {
		pid := lockPID(t, status)
		return pid != 0 && pid != before && alive(t, status, replica)
	})
	// A later run of the same replica keeps the one lock.
	run.Job, run.Started = "recordings", time.Now()
	if err := a.SetLastRun(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if !alive(t, status, replica) {
		t.Fatal("not alive after a second run")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "still alive after the store was closed", func() bool { return !alive(t, status, replica) })
	// A read-only store (status) never takes the lock.
	ro, err := Open(t.Context(), Options{DSN: dsn, Tenant: "tenant-a", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.SetLastRun(context.Background(), run); err == nil {
		t.Error("a read-only store recorded a run")
	}
	if alive(t, status, replica) {
		t.Error("alive after a read-only store was asked to record a run")
	}
}
