package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
)

// serverDSN, freshDB and sql: see package pgtest.
func serverDSN(t testing.TB) string             { return pgtest.ServerDSN(t) }
func freshDB(t testing.TB) string               { return pgtest.NewDatabase(t) }
func sql(t testing.TB, dsn string, q ...string) { pgtest.Exec(t, dsn, q...) }

// open opens a store on dsn for tenant, closed when the test ends.
func open(t testing.TB, dsn, tenant string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: dsn, Tenant: tenant})
	if err != nil {
		t.Fatalf("Open(%s): %v", tenant, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testOwner claims the items of the store's own tests; its lease outlives
// every test.
const testOwner = "test-host-1-00000000"

var testClaimer = checkpoint.Claimer{Owner: testOwner, Lease: time.Hour}

// openClock opens a store on dsn for tenant with the clock now.
func openClock(t testing.TB, dsn, tenant string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: dsn, Tenant: tenant, Now: now})
	if err != nil {
		t.Fatalf("Open(%s): %v", tenant, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// backend is the conformance suite's Backend for tenant: each test on a
// fresh database (made by fresh), and a second store (a pool of its own)
// on it for the second replica.
func backend(tenant string, fresh func(t testing.TB) string) checkpointtest.Backend {
	var mu sync.Mutex
	dsns := map[checkpoint.Store]string{}
	return checkpointtest.Backend{
		Open: func(t *testing.T, now func() time.Time) checkpoint.Store {
			dsn := fresh(t)
			s := openClock(t, dsn, tenant, now)
			mu.Lock()
			dsns[s] = dsn
			mu.Unlock()
			return s
		},
		Replica: func(t *testing.T, s checkpoint.Store, now func() time.Time) checkpoint.Store {
			mu.Lock()
			dsn := dsns[s]
			mu.Unlock()
			return openClock(t, dsn, tenant, now)
		},
	}
}

// TestStore_Conformance runs the checkpoint conformance suite, each test
// on a database of its own, the second replica a store of its own.
func TestStore_Conformance(t *testing.T) {
	checkpointtest.Run(t, backend("tenant-a", freshDB))
}

// TestStore_ConformanceBesideAnotherTenant runs the suite again, each test on
// a database that already holds another tenant's state, made to collide
// with what the suite does: the same kinds, upstream IDs, call IDs, days,
// windows, jobs and ledger days, items due, in progress and dead, and rows
// with the very IDs the suite uses as unknown ones. A statement that forgot
// the tenant would find them (the suite's counts, orders and ErrNotFound
// cases fail); after the test the other tenant's state must be as it was.
func TestStore_ConformanceBesideAnotherTenant(t *testing.T) {
	checkpointtest.Run(t, backend("tenant-a", func(t testing.TB) string {
		dsn := freshDB(t)
		other := open(t, dsn, "tenant-b")
		fillOther(t, dsn, other)
		before := snapshot(t, other)
		t.Cleanup(func() {
			if after := snapshot(t, other); after != before {
				t.Errorf("the other tenant's state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
		return dsn
	}))
}

// t0 is the conformance suite's reference instant.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// fillOther gives tenant s (on dsn) a state that collides with the suite's.
func fillOther(t testing.TB, dsn string, s *Store) {
	t.Helper()
	ctx := context.Background()
	ups := []string{"a", "b", "c", "f", "f1", "f2", "f3", "g", "p", "t", "d", "z", "1", "2", "3", "4", "ev", "nf", "op",
		"now", "late", "zero", "early", "ivr", "tr", "i0", "i1", "c1", "c2", "ct0-0", "ended-Done", "2026-03-01a", "2026-03-02b"}
	days := []string{"2026-02-28", "2026-03-01", "2026-03-02"}
	var items []checkpoint.Item
	for i, up := range ups {
		for _, kind := range append(checkpoint.Kinds(), "kind1", "kind2") {
			items = append(items, checkpoint.Item{Kind: kind, UpstreamID: up, CallID: "c-" + up, Day: days[i%len(days)], Key: "other/" + up})
		}
	}
	if n, err := s.AddItems(ctx, items); err != nil || n != len(items) {
		t.Fatalf("other tenant: AddItems = %d, %v", n, err)
	}
	// Some in progress, failed (due), dead and done; the rest pending, due.
	claimed, err := s.Claim(ctx, testClaimer, []string{checkpoint.KindAgent, checkpoint.KindIVR}, t0, 0)
	if err != nil || len(claimed) == 0 {
		t.Fatalf("other tenant: Claim = %d, %v", len(claimed), err)
	}
	for i, it := range claimed {
		switch i % 4 {
		case 1:
			_, err = s.Fail(ctx, testOwner, it.ID, "other failed", time.Time{}, 0)
		case 2:
			_, err = s.Fail(ctx, testOwner, it.ID, "other dead", time.Time{}, 1)
		case 3:
			err = s.Done(ctx, testOwner, it.ID, "other/done", 7, "0th")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []struct {
		begin, end time.Time
		done       bool
	}{{t0, t0.Add(time.Hour), false}, {t0, t0.Add(time.Hour), true}, {t0.Add(5 * time.Hour), t0.Add(6 * time.Hour), false},
		{t0.Add(time.Hour), t0.Add(2 * time.Hour), true}, {time.Time{}, time.Time{}, false}} {
		id, err := s.CreatePackage(ctx, checkpoint.Package{Begin: w.begin, End: w.end, ResponseID: "other", RequestedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		if w.done {
			calls := []checkpoint.Call{{CallID: "c1", Day: "2026-03-01", VDN: "other"}, {CallID: "m", Day: "2026-03-01"},
				{CallID: "q", Day: "2026-03-02"}, {CallID: "tc", Day: "2026-03-01"}, {CallID: "c3", Day: "2026-02-28"}}
			if _, err := s.CompletePackage(ctx, checkpoint.Package{ID: id, ResponseID: "other"}, calls, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, job := range []string{"cdr", "ivr"} {
		if err := s.SetWatermark(ctx, job, t0.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for _, day := range days {
		if err := s.SetLedger(ctx, day, "", "other-sum", "other/ledger/"+day); err != nil {
			t.Fatal(err)
		}
	}
	// The IDs the suite takes for unknown ones, and packages newer than any
	// of the suite's in its windows.
	var stmts []string
	for _, id := range []int64{9999, 987654, 900000, 900001, 900002, 900003, 900004, 900005, 900006, 900007} {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO items (tenant, id, kind, upstream_id, day, state, attempts)
			OVERRIDING SYSTEM VALUE VALUES ('tenant-b', %d, 'agent', 'fixed-%d', '2026-03-01', 'in_progress', 0)`, id, id))
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO items (tenant, id, kind, upstream_id, day, state, attempts)
			OVERRIDING SYSTEM VALUE VALUES ('tenant-b', %d, 'agent', 'fixed-%d', '2026-03-02', 'failed', 1)`, id+1000000, id+1000000))
	}
	for i, w := range [][2]int64{{t0.UnixNano(), t0.Add(time.Hour).UnixNano()}, {0, 0}, {t0.Add(5 * time.Hour).UnixNano(), t0.Add(6 * time.Hour).UnixNano()}} {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO packages (tenant, id, begin, "end", state, response_id)
			OVERRIDING SYSTEM VALUE VALUES ('tenant-b', %d, %d, %d, 'pending', 'other-fixed')`, 9999-i, w[0], w[1]))
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO packages (tenant, id, begin, "end", state, response_id)
			OVERRIDING SYSTEM VALUE VALUES ('tenant-b', %d, %d, %d, 'done', 'other-fixed')`, 99999-i, w[0], w[1]))
	}
	sql(t, dsn, stmts...)
}

// snapshot prints everything tenant s can read.
func snapshot(t testing.TB, s *Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	items, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		fmt.Fprintf(&b, "item %+v\n", it)
	}
	pkgs, err := s.Packages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		fmt.Fprintf(&b, "package %+v\n", p)
	}
	days, err := s.Days(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range days {
		fmt.Fprintf(&b, "day %s calls %d counts %v updated %s\n", d.Day, d.Calls, d.Counts, d.Updated)
		calls, err := s.DayCalls(ctx, d.Day)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "calls %+v\n", calls)
		sum, key, ok, err := s.Ledger(ctx, d.Day)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "ledger %s %s %v\n", sum, key, ok)
	}
	for _, job := range []string{"cdr", "ivr", "recordings", "transfer"} {
		w, ok, err := s.Watermark(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "watermark %s %s %v\n", job, w, ok)
		su, ok, err := s.LastSuccess(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "last success %s %s %v\n", job, su, ok)
		r, ok, err := s.LastRun(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "last run %+v %v\n", r, ok)
	}
	return b.String()
}
