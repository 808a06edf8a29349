// Package checkpointtest is the conformance suite for checkpoint.Store
// implementations. Each implementation's tests call Run with a Backend that
// opens fresh, empty stores.
package checkpointtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// t0 is the suite's reference instant for windows and due times (the now
// Claim takes). The stores stamp CreatedAt and UpdatedAt, and judge leases,
// with their own clock, which the suite gives them (Backend.Open): the time
// of day, moved forward by the lease tests.
func t0() time.Time { return time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) }

// The owners (replica IDs) the suite claims as; ca and cb are their claims.
// ca's lease is long enough that no test outlives it unless it moves the
// clock.
const (
	ownerA = "host-a-101-0a1b2c3d"
	ownerB = "host-b-202-4e5f6071"
)

var (
	ca = checkpoint.Claimer{Owner: ownerA, Lease: time.Hour}
	cb = checkpoint.Claimer{Owner: ownerB, Lease: time.Hour}
)

// Backend opens the stores the suite tests.
type Backend struct {
	// Open returns a fresh, empty store whose clock (Options.Now: stamps and
	// leases) is now.
	Open func(t *testing.T, now func() time.Time) checkpoint.Store
	// Replica, when not nil, returns another store on the state s was opened
	// on, with the clock now: what a second process (replica) of the same
	// tenant sees. It is nil for a store whose state admits one process
	// (SQLite): the suite then plays the second replica on s itself, as a
	// second owner.
	Replica func(t *testing.T, s checkpoint.Store, now func() time.Time) checkpoint.Store
}

// clock is the stores' clock: the time of day plus an offset that a test
// moves forward to let leases expire.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// env is one test's store, its clock, and the second replica's store.
type env struct {
	s     checkpoint.Store
	clock *clock
	// b is the second replica: a store of its own on the same state, or s.
	b checkpoint.Store
}

// Run runs the conformance suite. Run closes the stores it opens.
func Run(t *testing.T, b Backend) {
	t.Helper()
	fresh := func(t *testing.T) *env {
		t.Helper()
		e := &env{clock: &clock{}}
		e.s = b.Open(t, e.clock.Now)
		t.Cleanup(func() { e.s.Close() })
		e.b = e.s
		if b.Replica != nil {
			e.b = b.Replica(t, e.s, e.clock.Now)
			t.Cleanup(func() { e.b.Close() })
		}
		return e
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s checkpoint.Store)
	}{
		{"Package", testPackage},
		{"UnfinishedWindows", testUnfinishedWindows},
		{"CompletePackage", testCompletePackage},
		{"AddCalls", testAddCalls},
		{"AddItems", testAddItems},
		{"Claim", testClaim},
		{"Transitions", testTransitions},
		{"Fail", testFail},
		{"DeferRelease", testDeferRelease},
		{"RecoverInProgress", testRecoverInProgress},
		{"Requeue", testRequeue},
		{"Queries", testQueries},
		{"Days", testDays},
		{"Watermark", testWatermark},
		{"Ledger", testLedger},
		{"ConcurrentTransitions", testConcurrentTransitions},
		{"EndedContext", testEndedContext},
		{"Params", testParams},
		{"Verdicts", testVerdicts},
		{"Packages", testPackages},
		{"Times", testTimes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t).s) })
	}
	leases := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"ConcurrentClaim", testConcurrentClaim},
		{"ClaimLease", testClaimLease},
		{"Takeover", testTakeover},
		{"Renew", testRenew},
		{"RecoverOwned", testRecoverOwned},
		{"Leases", testLeases},
		{"HeldLeases", testHeldLeases},
		{"ConcurrentLeases", testConcurrentLeases},
		{"WatermarkForward", testWatermarkForward},
		{"LastSuccess", testLastSuccess},
		{"LastRun", testLastRun},
		{"LedgerConflict", testLedgerConflict},
	}
	for _, tc := range leases {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t)) })
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

// add adds items and fails the test unless exactly want were new.
func add(t *testing.T, s checkpoint.Store, want int, items ...checkpoint.Item) {
	t.Helper()
	n, err := s.AddItems(ctx(t), items)
	if err != nil {
		t.Fatalf("AddItems: %v", err)
	}
	if n != want {
		t.Fatalf("AddItems added %d, want %d", n, want)
	}
}

func item(kind, id string) checkpoint.Item {
	return checkpoint.Item{Kind: kind, UpstreamID: id, CallID: "c-" + id, Day: "2026-03-01", Key: "k/" + id}
}

// ids returns the IDs of items.
func ids(items []checkpoint.Item) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func upstreams(items []checkpoint.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.UpstreamID
	}
	return out
}

func mustItem(t *testing.T, s checkpoint.Store, id int64) checkpoint.Item {
	t.Helper()
	it, err := s.Item(ctx(t), id)
	if err != nil {
		t.Fatalf("Item(%d): %v", id, err)
	}
	return it
}

// claimAll claims every item due at now.
func claimAll(t *testing.T, s checkpoint.Store, now time.Time) []checkpoint.Item {
	t.Helper()
	got, err := s.Claim(ctx(t), ca, nil, now, 0)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return got
}

// idOf returns the ID of the item with the given kind and upstream ID.
func idOf(t *testing.T, s checkpoint.Store, kind, upstream string) int64 {
	t.Helper()
	all, err := s.Items(ctx(t))
	if err != nil {
		t.Fatalf("Items: %v", err)
	}
	for _, it := range all {
		if it.Kind == kind && it.UpstreamID == upstream {
			return it.ID
		}
	}
	t.Fatalf("no item %s/%s", kind, upstream)
	return 0
}

func wantState(t *testing.T, s checkpoint.Store, id int64, want checkpoint.State) checkpoint.Item {
	t.Helper()
	it := mustItem(t, s, id)
	if it.State != want {
		t.Fatalf("item %d state = %s, want %s", id, it.State, want)
	}
	return it
}

func testPackage(t *testing.T, s checkpoint.Store) {
	begin, end := t0(), t0().Add(time.Hour)
	t.Run("empty", func(t *testing.T) {
		if _, ok, err := s.OpenPackage(ctx(t), begin, end); err != nil || ok {
			t.Fatalf("OpenPackage on empty store = ok %v, err %v", ok, err)
		}
		if _, ok, err := s.LastDonePackage(ctx(t), begin, end); err != nil || ok {
			t.Fatalf("LastDonePackage on empty store = ok %v, err %v", ok, err)
		}
	})
	p := checkpoint.Package{Begin: begin, End: end, ResponseID: "r1", BillFileName: "b1.zip", RequestedAt: t0(), State: checkpoint.StateDone}
	id1, err := s.CreatePackage(ctx(t), p)
	if err != nil {
		t.Fatalf("CreatePackage: %v", err)
	}
	t.Run("create is pending", func(t *testing.T) {
		got, ok, err := s.OpenPackage(ctx(t), begin, end)
		if err != nil || !ok {
			t.Fatalf("OpenPackage = ok %v, err %v", ok, err)
		}
		if got.ID != id1 || got.State != checkpoint.StatePending || got.ResponseID != "r1" || got.BillFileName != "b1.zip" ||
			!got.Begin.Equal(begin) || !got.End.Equal(end) || !got.RequestedAt.Equal(t0()) || got.UpdatedAt.IsZero() {
			t.Fatalf("OpenPackage = %+v", got)
		}
		if _, ok, _ := s.OpenPackage(ctx(t), begin, end.Add(time.Second)); ok {
			t.Fatal("OpenPackage matched another window")
		}
	})
	id2, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end, ResponseID: "r2", RequestedAt: t0().Add(time.Minute)})
	if err != nil {
		t.Fatalf("CreatePackage: %v", err)
	}
	if id2 == id1 {
		t.Fatalf("two packages got ID %d", id1)
	}
	t.Run("open is newest", func(t *testing.T) {
		got, ok, err := s.OpenPackage(ctx(t), begin, end)
		if err != nil || !ok || got.ID != id2 {
			t.Fatalf("OpenPackage = %d ok %v err %v, want %d", got.ID, ok, err, id2)
		}
	})
	t.Run("update", func(t *testing.T) {
		up := checkpoint.Package{ID: id2, Begin: begin.Add(-time.Hour), End: end.Add(time.Hour), ResponseID: "r2b", BillFileName: "b2.zip",
			RequestedAt: t0().Add(2 * time.Minute), State: checkpoint.StateFailed, Attempts: 2, LastError: "boom", Key: "k", RowsKey: "rk",
			Size: 10, SHA256: "ab", RowsSHA256: "cd", Calls: 3, Items: 4}
		if err := s.UpdatePackage(ctx(t), up); err != nil {
			t.Fatalf("UpdatePackage: %v", err)
		}
		got, ok, err := s.OpenPackage(ctx(t), begin, end)
		if err != nil || !ok {
			t.Fatalf("OpenPackage = ok %v err %v", ok, err)
		}
		up.Begin, up.End = begin, end // not updated
		up.UpdatedAt = got.UpdatedAt
		if !packageEqual(got, up) {
			t.Fatalf("after update got %+v\nwant %+v", got, up)
		}
	})
	t.Run("update unknown", func(t *testing.T) {
		err := s.UpdatePackage(ctx(t), checkpoint.Package{ID: 9999, State: checkpoint.StatePending})
		if !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("UpdatePackage(unknown) = %v, want ErrNotFound", err)
		}
	})
	t.Run("last done", func(t *testing.T) {
		for _, id := range []int64{id1, id2} {
			if _, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id, ResponseID: fmt.Sprint("r", id)}, nil, nil); err != nil {
				t.Fatalf("CompletePackage(%d): %v", id, err)
			}
		}
		if _, ok, err := s.OpenPackage(ctx(t), begin, end); err != nil || ok {
			t.Fatalf("OpenPackage with all done = ok %v err %v", ok, err)
		}
		got, ok, err := s.LastDonePackage(ctx(t), begin, end)
		if err != nil || !ok || got.ID != id2 || got.State != checkpoint.StateDone {
			t.Fatalf("LastDonePackage = %+v ok %v err %v, want ID %d done", got, ok, err, id2)
		}
	})
	t.Run("dead is not open", func(t *testing.T) {
		id3, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UpdatePackage(ctx(t), checkpoint.Package{ID: id3, State: checkpoint.StateDead}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.OpenPackage(ctx(t), begin, end); err != nil || ok {
			t.Fatalf("OpenPackage with dead newest = ok %v err %v", ok, err)
		}
		if got, _, _ := s.LastDonePackage(ctx(t), begin, end); got.ID != id2 {
			t.Fatalf("LastDonePackage = %d, want %d", got.ID, id2)
		}
	})
}

// testUnfinishedWindows: the newest package of each window decides, by
// its own window (begin and end), and only windows beginning before the
// bound count.
func testUnfinishedWindows(t *testing.T, s checkpoint.Store) {
	h := func(n int) time.Time { return t0().Add(time.Duration(n) * time.Hour) }
	if got, err := s.UnfinishedWindows(ctx(t), h(100)); err != nil || len(got) != 0 {
		t.Fatalf("UnfinishedWindows on an empty store = %+v, %v", got, err)
	}
	add := func(begin, end time.Time, st checkpoint.State) int64 {
		t.Helper()
		id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end, ResponseID: fmt.Sprint("r", begin.Unix(), st),
			BillFileName: "b.zip", RequestedAt: t0()})
		if err != nil {
			t.Fatalf("CreatePackage: %v", err)
		}
		switch st {
		case checkpoint.StatePending:
		case checkpoint.StateDone:
			if _, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id, ResponseID: fmt.Sprint("r", id)}, nil, nil); err != nil {
				t.Fatalf("CompletePackage(%d): %v", id, err)
			}
		default:
			if err := s.UpdatePackage(ctx(t), checkpoint.Package{ID: id, State: st, Attempts: 1, LastError: "boom"}); err != nil {
				t.Fatalf("UpdatePackage(%d, %s): %v", id, st, err)
			}
		}
		return id
	}
	pending := add(h(0), h(1), checkpoint.StatePending) // never finished
	add(h(0), h(2), checkpoint.StateDone)               // another window of the same begin: done
	add(h(1), h(2), checkpoint.StateFailed)
	add(h(1), h(2), checkpoint.StateDone) // failed, then done: finished
	add(h(2), h(3), checkpoint.StateDone)
	failed := add(h(2), h(3), checkpoint.StateFailed) // done, then a re-request failed
	add(h(3), h(4), checkpoint.StateFailed)
	add(h(3), h(4), checkpoint.StateDead)    // given up: reported, not taken up
	add(h(4), h(5), checkpoint.StatePending) // begins at the bound
	got, err := s.UnfinishedWindows(ctx(t), h(4))
	if err != nil {
		t.Fatalf("UnfinishedWindows: %v", err)
	}
	var ids []int64
	for _, p := range got {
		ids = append(ids, p.ID)
	}
	if !slices.Equal(ids, []int64{pending, failed}) {
		t.Fatalf("UnfinishedWindows(before %s) = packages %v, want %v (the pending one of [0h, 1h), the failed re-request of [2h, 3h))", h(4), ids, []int64{pending, failed})
	}
	if p := got[1]; p.State != checkpoint.StateFailed || p.Attempts != 1 || p.LastError != "boom" || !p.Begin.Equal(h(2)) || !p.End.Equal(h(3)) {
		t.Fatalf("UnfinishedWindows: the failed package = %+v", p)
	}
	if got, err := s.UnfinishedWindows(ctx(t), h(5)); err != nil || len(got) != 3 {
		t.Fatalf("UnfinishedWindows(before %s) = %d packages, %v; want 3", h(5), len(got), err)
	}
}

func packageEqual(a, b checkpoint.Package) bool {
	return a.ID == b.ID && a.Begin.Equal(b.Begin) && a.End.Equal(b.End) && a.ResponseID == b.ResponseID &&
		a.BillFileName == b.BillFileName && a.RequestedAt.Equal(b.RequestedAt) && a.State == b.State &&
		a.Attempts == b.Attempts && a.LastError == b.LastError && a.Key == b.Key && a.RowsKey == b.RowsKey &&
		a.Size == b.Size && a.SHA256 == b.SHA256 && a.RowsSHA256 == b.RowsSHA256 && a.Calls == b.Calls && a.Items == b.Items && a.UpdatedAt.Equal(b.UpdatedAt)
}

// testAddCalls: a package's calls and items committed in parts, then the
// package completed with the last part: each part's items are claimable at
// once, the package is done only at the end, repeats add nothing, and a
// part that fails adds nothing of it.
func testAddCalls(t *testing.T, s checkpoint.Store) {
	begin, end := t0(), t0().Add(time.Hour)
	id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end})
	if err != nil {
		t.Fatal(err)
	}
	part1 := []checkpoint.Call{{CallID: "p1", Day: "2026-03-01", Begin: t0(), VDN: "v1", AgentID: "a1"}}
	n, err := s.AddCalls(ctx(t), part1, []checkpoint.Item{item(checkpoint.KindAgent, "g1"), item(checkpoint.KindAgent, "g2")})
	if err != nil || n != 2 {
		t.Fatalf("AddCalls = %d, %v; want 2, nil", n, err)
	}
	if _, ok, err := s.LastDonePackage(ctx(t), begin, end); err != nil || ok {
		t.Fatalf("after a part: LastDonePackage ok %v err %v, want no done package", ok, err)
	}
	claimed, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 0)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("Claim after a part = %d items, err %v; want 2", len(claimed), err)
	}
	if n, err := s.AddCalls(ctx(t), part1, []checkpoint.Item{item(checkpoint.KindAgent, "g1")}); err != nil || n != 0 {
		t.Fatalf("AddCalls again = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.AddCalls(ctx(t), []checkpoint.Call{{CallID: "p9", Day: "2026-03-01"}},
		[]checkpoint.Item{item(checkpoint.KindAgent, "g9"), {Kind: checkpoint.KindAgent}}); err == nil {
		t.Fatal("AddCalls with an item without upstream ID: no error")
	}
	all, err := s.Items(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range all {
		if it.UpstreamID == "g9" {
			t.Fatalf("an item of the failed part was added: %+v (want the part rolled back)", it)
		}
	}
	part2 := []checkpoint.Call{{CallID: "p2", Day: "2026-03-01", Begin: t0().Add(time.Minute)}}
	n, err = s.CompletePackage(ctx(t), checkpoint.Package{ID: id, Key: "pk", Calls: 2, Items: 3}, part2,
		[]checkpoint.Item{item(checkpoint.KindAgent, "g3")})
	if err != nil || n != 1 {
		t.Fatalf("CompletePackage with the last part = %d, %v; want 1, nil", n, err)
	}
	if p, ok, err := s.LastDonePackage(ctx(t), begin, end); err != nil || !ok || p.ID != id {
		t.Fatalf("LastDonePackage = %+v ok %v err %v", p, ok, err)
	}
	dc, err := s.DayCalls(ctx(t), "2026-03-01")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range dc {
		ids = append(ids, c.CallID)
	}
	if !slices.Contains(ids, "p1") || !slices.Contains(ids, "p2") || slices.Contains(ids, "p9") {
		t.Fatalf("DayCalls = %v, want p1 and p2, not p9", ids)
	}
}

func testCompletePackage(t *testing.T, s checkpoint.Store) {
	begin, end := t0(), t0().Add(time.Hour)
	id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end})
	if err != nil {
		t.Fatal(err)
	}
	calls := []checkpoint.Call{
		{CallID: "c1", Day: "2026-03-01", Begin: t0(), VDN: "v1", AgentID: "a1"},
		{CallID: "c2", Day: "2026-03-01", Begin: t0().Add(time.Minute), VDN: "v1", AgentID: "a2"},
	}
	items := []checkpoint.Item{item(checkpoint.KindAgent, "f1"), item(checkpoint.KindAgent, "f2"),
		{Kind: checkpoint.KindTransferLookup, UpstreamID: "c1", CallID: "c1", Day: "2026-03-01", State: checkpoint.StateAbsent, Reason: "no transfer"}}
	n, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id, Key: "pk", SHA256: "ps", Calls: 2, Items: 3}, calls, items)
	if err != nil {
		t.Fatalf("CompletePackage: %v", err)
	}
	if n != 3 {
		t.Fatalf("CompletePackage added %d, want 3", n)
	}
	p, ok, err := s.LastDonePackage(ctx(t), begin, end)
	if err != nil || !ok || p.ID != id || p.Key != "pk" || p.SHA256 != "ps" || p.Calls != 2 || p.Items != 3 {
		t.Fatalf("LastDonePackage = %+v ok %v err %v", p, ok, err)
	}
	absent := wantState(t, s, idOf(t, s, checkpoint.KindTransferLookup, "c1"), checkpoint.StateAbsent)
	if absent.Reason != "no transfer" {
		t.Fatalf("absent item reason = %q", absent.Reason)
	}

	// A later package of an overlapping window lists f2 again (now done) and
	// a new f3, and c2 again with other fields: existing rows are untouched.
	f2 := idOf(t, s, checkpoint.KindAgent, "f2")
	claimed, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 0)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("Claim = %d items, err %v", len(claimed), err)
	}
	if err := s.Done(ctx(t), ownerA, f2, "k/f2", 5, "s2"); err != nil {
		t.Fatal(err)
	}
	id2, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	calls2 := []checkpoint.Call{{CallID: "c2", Day: "2026-03-02", VDN: "changed"}, {CallID: "c3", Day: "2026-03-01"}}
	redo := item(checkpoint.KindAgent, "f2")
	redo.Key = "other"
	n, err = s.CompletePackage(ctx(t), checkpoint.Package{ID: id2}, calls2, []checkpoint.Item{redo, item(checkpoint.KindAgent, "f3")})
	if err != nil {
		t.Fatalf("CompletePackage again: %v", err)
	}
	if n != 1 {
		t.Fatalf("CompletePackage again added %d, want 1", n)
	}
	got := wantState(t, s, f2, checkpoint.StateDone)
	if got.Key != "k/f2" || got.SHA256 != "s2" || got.Size != 5 {
		t.Fatalf("existing item changed: %+v", got)
	}
	dc, err := s.DayCalls(ctx(t), "2026-03-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(dc) != 3 || dc[1].CallID != "c2" || dc[1].VDN != "v1" {
		t.Fatalf("DayCalls = %+v, want c1 c2(v1) c3", dc)
	}
	t.Run("idempotent", func(t *testing.T) {
		n, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id2}, calls2, []checkpoint.Item{redo, item(checkpoint.KindAgent, "f3")})
		if err != nil || n != 0 {
			t.Fatalf("repeated CompletePackage = %d, %v; want 0, nil", n, err)
		}
	})
	t.Run("unknown package rolls back", func(t *testing.T) {
		_, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: 9999}, []checkpoint.Call{{CallID: "c9", Day: "2026-03-09"}},
			[]checkpoint.Item{item(checkpoint.KindAgent, "f9")})
		if !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("CompletePackage(unknown) = %v, want ErrNotFound", err)
		}
		if c, _ := s.DayCalls(ctx(t), "2026-03-09"); len(c) != 0 {
			t.Fatalf("failed CompletePackage left calls %+v", c)
		}
		all, _ := s.Items(ctx(t))
		if slices.Contains(upstreams(all), "f9") {
			t.Fatal("failed CompletePackage left item f9")
		}
	})
}

func testAddItems(t *testing.T, s checkpoint.Store) {
	add(t, s, 2, item(checkpoint.KindAgent, "a"), item(checkpoint.KindAgent, "b"))
	t.Run("dedupe", func(t *testing.T) {
		// "a" exists; "c" is listed twice in one call; same upstream ID with
		// another kind is a different item.
		add(t, s, 2, item(checkpoint.KindAgent, "a"), item(checkpoint.KindAgent, "c"), item(checkpoint.KindAgent, "c"),
			item(checkpoint.KindTransfer, "a"))
		all, err := s.Items(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 {
			t.Fatalf("Items = %d, want 4", len(all))
		}
	})
	t.Run("defaults", func(t *testing.T) {
		it := wantState(t, s, idOf(t, s, checkpoint.KindAgent, "a"), checkpoint.StatePending)
		if it.Attempts != 0 || !it.NextAttemptAt.IsZero() || it.CreatedAt.IsZero() || it.UpdatedAt.IsZero() ||
			it.Key != "k/a" || it.CallID != "c-a" || it.Day != "2026-03-01" {
			t.Fatalf("added item = %+v", it)
		}
	})
	t.Run("existing state kept", func(t *testing.T) {
		id := idOf(t, s, checkpoint.KindAgent, "b")
		if err := s.Absent(ctx(t), ownerA, id, "gone", ""); err != nil {
			t.Fatal(err)
		}
		add(t, s, 0, item(checkpoint.KindAgent, "b"))
		wantState(t, s, id, checkpoint.StateAbsent)
	})
	t.Run("refused state", func(t *testing.T) {
		bad := item(checkpoint.KindAgent, "z")
		bad.State = checkpoint.StateDone
		if _, err := s.AddItems(ctx(t), []checkpoint.Item{item(checkpoint.KindAgent, "y"), bad}); !errors.Is(err, checkpoint.ErrState) {
			t.Fatalf("AddItems(done) = %v, want ErrState", err)
		}
		all, _ := s.Items(ctx(t))
		if slices.Contains(upstreams(all), "y") {
			t.Fatal("a refused AddItems added part of the batch")
		}
	})
	t.Run("empty", func(t *testing.T) {
		add(t, s, 0)
	})
}

func testClaim(t *testing.T, s checkpoint.Store) {
	mk := func(kind, id string, next time.Time) checkpoint.Item {
		it := item(kind, id)
		it.NextAttemptAt = next
		return it
	}
	add(t, s, 6,
		mk(checkpoint.KindAgent, "late", t0().Add(time.Hour)),
		mk(checkpoint.KindAgent, "now", t0()),
		mk(checkpoint.KindAgent, "zero", time.Time{}),
		mk(checkpoint.KindAgent, "early", t0().Add(-time.Hour)),
		mk(checkpoint.KindIVR, "ivr", t0().Add(-2*time.Hour)),
		mk(checkpoint.KindTransfer, "tr", t0().Add(-3*time.Hour)),
	)
	t.Run("kinds and limit", func(t *testing.T) {
		got, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"zero", "early"}; !slices.Equal(upstreams(got), want) {
			t.Fatalf("Claim(agent, 2) = %v, want %v", upstreams(got), want)
		}
		for _, it := range got {
			if it.State != checkpoint.StateInProgress {
				t.Fatalf("claimed item state = %s", it.State)
			}
			wantState(t, s, it.ID, checkpoint.StateInProgress)
		}
	})
	t.Run("claimed not claimed again", func(t *testing.T) {
		got, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"now"}; !slices.Equal(upstreams(got), want) {
			t.Fatalf("Claim(agent) = %v, want %v (late not due)", upstreams(got), want)
		}
	})
	t.Run("several kinds", func(t *testing.T) {
		got, err := s.Claim(ctx(t), ca, []string{checkpoint.KindIVR, checkpoint.KindTransfer}, t0(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"tr", "ivr"}; !slices.Equal(upstreams(got), want) {
			t.Fatalf("Claim(ivr, transfer) = %v, want %v", upstreams(got), want)
		}
	})
	t.Run("due later", func(t *testing.T) {
		got, err := s.Claim(ctx(t), ca, nil, t0().Add(time.Hour-time.Nanosecond), 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("Claim before due = %v, %v", upstreams(got), err)
		}
		got, err = s.Claim(ctx(t), ca, nil, t0().Add(time.Hour), 0)
		if err != nil || !slices.Equal(upstreams(got), []string{"late"}) {
			t.Fatalf("Claim at due = %v, %v; want [late]", upstreams(got), err)
		}
	})
	t.Run("nothing left", func(t *testing.T) {
		got, err := s.Claim(ctx(t), ca, nil, t0().Add(24*time.Hour), 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("Claim = %v, %v; want none", upstreams(got), err)
		}
	})
	t.Run("failed is due and ordered", func(t *testing.T) {
		id := idOf(t, s, checkpoint.KindAgent, "late")
		if _, err := s.Fail(ctx(t), ownerA, id, "x", t0().Add(2*time.Hour), 5); err != nil {
			t.Fatal(err)
		}
		add(t, s, 1, mk(checkpoint.KindAgent, "newer", t0().Add(3*time.Hour)))
		add(t, s, 1, mk(checkpoint.KindAgent, "same", t0().Add(2*time.Hour)))
		got := claimAll(t, s, t0().Add(3*time.Hour))
		if want := []string{"late", "same", "newer"}; !slices.Equal(upstreams(got), want) {
			t.Fatalf("Claim = %v, want %v", upstreams(got), want)
		}
	})
	t.Run("absent done dead not claimed", func(t *testing.T) {
		ab := item(checkpoint.KindAgent, "absent")
		ab.State = checkpoint.StateAbsent
		add(t, s, 1, ab)
		if got := claimAll(t, s, t0().Add(48*time.Hour)); len(got) != 0 {
			t.Fatalf("Claim = %v, want none", upstreams(got))
		}
	})
}

// transition is one state-changing call under test.
type transition struct {
	name string
	do   func(ctx context.Context, s checkpoint.Store, id int64) error
}

func transitions() []transition {
	return []transition{
		{"Done", func(c context.Context, s checkpoint.Store, id int64) error { return s.Done(c, ownerA, id, "k", 1, "s") }},
		{"DoneArgs", func(c context.Context, s checkpoint.Store, id int64) error {
			return s.DoneArgs(c, ownerA, id, "k", 1, "s", json.RawMessage(`{"a":1}`))
		}},
		{"Absent", func(c context.Context, s checkpoint.Store, id int64) error { return s.Absent(c, ownerA, id, "r", "e") }},
		{"Resolve", func(c context.Context, s checkpoint.Store, id int64) error {
			_, err := s.Resolve(c, id, "operator says so", t0())
			return err
		}},
		{"Fail", func(c context.Context, s checkpoint.Store, id int64) error {
			_, err := s.Fail(c, ownerA, id, "m", t0(), 3)
			return err
		}},
		{"Defer", func(c context.Context, s checkpoint.Store, id int64) error { return s.Defer(c, ownerA, id, t0(), "n") }},
		{"Release", func(c context.Context, s checkpoint.Store, id int64) error { return s.Release(c, ownerA, id) }},
	}
}

func testTransitions(t *testing.T, s checkpoint.Store) {
	// One item in each state the suite can reach.
	n := 0
	inState := func(t *testing.T, st checkpoint.State) int64 {
		t.Helper()
		n++
		// A kind of its own, so that claiming it claims nothing else.
		kind, up := fmt.Sprint("kind", n), fmt.Sprint("t", n)
		it := item(kind, up)
		if st == checkpoint.StateAbsent {
			it.State, it.Reason = checkpoint.StateAbsent, "r"
		}
		add(t, s, 1, it)
		id := idOf(t, s, kind, up)
		if st == checkpoint.StatePending || st == checkpoint.StateAbsent {
			return id
		}
		got, err := s.Claim(ctx(t), ca, []string{kind}, t0().Add(-time.Hour), 0)
		if err != nil || len(got) != 1 || got[0].ID != id {
			t.Fatalf("setup claim = %v, %v; want [%d]", ids(got), err, id)
		}
		switch st {
		case checkpoint.StateDone:
			err = s.Done(ctx(t), ownerA, id, "k", 1, "s")
		case checkpoint.StateFailed:
			_, err = s.Fail(ctx(t), ownerA, id, "m", t0(), 0)
		case checkpoint.StateDead:
			_, err = s.Fail(ctx(t), ownerA, id, "m", t0(), 1)
		}
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, s, id, st)
		return id
	}
	allowed := map[string][]checkpoint.State{
		"Absent":  {checkpoint.StateInProgress, checkpoint.StatePending, checkpoint.StateFailed},
		"Resolve": {checkpoint.StateFailed, checkpoint.StateDead},
	}
	for _, tr := range transitions() {
		ok := allowed[tr.name]
		if ok == nil {
			ok = []checkpoint.State{checkpoint.StateInProgress}
		}
		for _, st := range checkpoint.States {
			t.Run(tr.name+" from "+string(st), func(t *testing.T) {
				id := inState(t, st)
				before := mustItem(t, s, id)
				err := tr.do(ctx(t), s, id)
				if slices.Contains(ok, st) {
					if err != nil {
						t.Fatalf("%s from %s: %v", tr.name, st, err)
					}
					return
				}
				if !errors.Is(err, checkpoint.ErrState) {
					t.Fatalf("%s from %s = %v, want ErrState", tr.name, st, err)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(id)) || !strings.Contains(msg, string(st)) {
					t.Fatalf("error %q does not name item %d and state %s", msg, id, st)
				}
				after := mustItem(t, s, id)
				if after.State != before.State || after.Attempts != before.Attempts || after.LastError != before.LastError {
					t.Fatalf("refused %s changed the item: %+v → %+v", tr.name, before, after)
				}
			})
		}
		t.Run(tr.name+" unknown", func(t *testing.T) {
			if err := tr.do(ctx(t), s, 987654); !errors.Is(err, checkpoint.ErrNotFound) {
				t.Fatalf("%s(unknown) = %v, want ErrNotFound", tr.name, err)
			}
		})
	}
	t.Run("Item unknown", func(t *testing.T) {
		if _, err := s.Item(ctx(t), 987654); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Item(unknown) = %v, want ErrNotFound", err)
		}
	})
	t.Run("Done fields", func(t *testing.T) {
		id := inState(t, checkpoint.StateFailed)
		claimAll(t, s, t0())
		if err := s.Done(ctx(t), ownerA, id, "k/final", 1234, "abcd"); err != nil {
			t.Fatal(err)
		}
		it := wantState(t, s, id, checkpoint.StateDone)
		if it.Key != "k/final" || it.Size != 1234 || it.SHA256 != "abcd" || it.Attempts != 1 {
			t.Fatalf("done item = %+v", it)
		}
	})
	t.Run("DoneArgs fields", func(t *testing.T) {
		id := inState(t, checkpoint.StateFailed)
		claimAll(t, s, t0())
		args := json.RawMessage(`{"file_name":"f","retention":{"rule":"r1","mode":"COMPLIANCE","days":30}}`)
		if err := s.DoneArgs(ctx(t), ownerA, id, "k/final", 1234, "abcd", args); err != nil {
			t.Fatal(err)
		}
		it := wantState(t, s, id, checkpoint.StateDone)
		if it.Key != "k/final" || it.Size != 1234 || it.SHA256 != "abcd" || it.Attempts != 1 {
			t.Fatalf("done item = %+v", it)
		}
		var got, want any
		if err := json.Unmarshal(it.Args, &got); err != nil {
			t.Fatalf("args %q: %v", it.Args, err)
		}
		_ = json.Unmarshal(args, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("args = %s, want %s", it.Args, args)
		}
		// Arguments that are not JSON are refused, and the item stays claimed.
		id = inState(t, checkpoint.StateFailed)
		claimAll(t, s, t0())
		if err := s.DoneArgs(ctx(t), ownerA, id, "k/bad", 1, "s", json.RawMessage(`{"a":`)); err == nil {
			t.Fatal("DoneArgs with arguments that are not JSON succeeded")
		}
		wantState(t, s, id, checkpoint.StateInProgress)
	})
	t.Run("Absent fields", func(t *testing.T) {
		id := inState(t, checkpoint.StatePending)
		if err := s.Absent(ctx(t), ownerA, id, "no recording by rule", ""); err != nil {
			t.Fatal(err)
		}
		if it := wantState(t, s, id, checkpoint.StateAbsent); it.Reason != "no recording by rule" {
			t.Fatalf("absent reason = %q", it.Reason)
		}
	})
}

func testFail(t *testing.T, s checkpoint.Store) {
	add(t, s, 1, item(checkpoint.KindAgent, "f"))
	id := idOf(t, s, checkpoint.KindAgent, "f")
	now := t0()
	for attempt := 1; attempt <= 3; attempt++ {
		got := claimAll(t, s, now)
		if len(got) != 1 || got[0].ID != id {
			t.Fatalf("attempt %d: claim = %v", attempt, ids(got))
		}
		next := now.Add(time.Minute)
		st, err := s.Fail(ctx(t), ownerA, id, fmt.Sprint("err ", attempt), next, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := checkpoint.StateFailed
		if attempt == 3 {
			want = checkpoint.StateDead
		}
		if st != want {
			t.Fatalf("attempt %d: Fail = %s, want %s", attempt, st, want)
		}
		it := wantState(t, s, id, want)
		if it.Attempts != attempt || it.LastError != fmt.Sprint("err ", attempt) {
			t.Fatalf("attempt %d: item = %+v", attempt, it)
		}
		if want == checkpoint.StateFailed {
			if !it.NextAttemptAt.Equal(next) {
				t.Fatalf("NextAttemptAt = %v, want %v", it.NextAttemptAt, next)
			}
			if got := claimAll(t, s, next.Add(-time.Nanosecond)); len(got) != 0 {
				t.Fatalf("failed item claimed before due: %v", ids(got))
			}
		}
		now = next
	}
	if got := claimAll(t, s, now.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("dead item claimed: %v", ids(got))
	}
	t.Run("no limit", func(t *testing.T) {
		add(t, s, 1, item(checkpoint.KindAgent, "g"))
		g := idOf(t, s, checkpoint.KindAgent, "g")
		for i := 1; i <= 5; i++ {
			claimAll(t, s, t0().Add(time.Duration(i)*time.Hour))
			st, err := s.Fail(ctx(t), ownerA, g, "e", t0().Add(time.Duration(i)*time.Hour), 0)
			if err != nil || st != checkpoint.StateFailed {
				t.Fatalf("Fail with maxAttempts 0 = %s, %v; want failed", st, err)
			}
		}
		if it := mustItem(t, s, g); it.Attempts != 5 {
			t.Fatalf("attempts = %d, want 5", it.Attempts)
		}
	})
}

func testDeferRelease(t *testing.T, s checkpoint.Store) {
	add(t, s, 1, item(checkpoint.KindIVR, "d"))
	id := idOf(t, s, checkpoint.KindIVR, "d")
	claimAll(t, s, t0())
	if _, err := s.Fail(ctx(t), ownerA, id, "first", t0(), 5); err != nil {
		t.Fatal(err)
	}
	t.Run("Defer", func(t *testing.T) {
		claimAll(t, s, t0())
		next := t0().Add(10 * time.Minute)
		if err := s.Defer(ctx(t), ownerA, id, next, "not settled"); err != nil {
			t.Fatal(err)
		}
		it := wantState(t, s, id, checkpoint.StatePending)
		if it.Attempts != 1 || it.LastError != "not settled" || !it.NextAttemptAt.Equal(next) {
			t.Fatalf("deferred item = %+v", it)
		}
		if got := claimAll(t, s, next.Add(-time.Nanosecond)); len(got) != 0 {
			t.Fatal("deferred item claimed before due")
		}
		claimAll(t, s, next)
		if err := s.Defer(ctx(t), ownerA, id, next, ""); err != nil {
			t.Fatal(err)
		}
		if it := mustItem(t, s, id); it.LastError != "" {
			t.Fatalf("Defer with empty note kept LastError %q", it.LastError)
		}
	})
	t.Run("Release", func(t *testing.T) {
		got := claimAll(t, s, t0().Add(time.Hour))
		if len(got) != 1 {
			t.Fatalf("claim = %v", ids(got))
		}
		if err := s.Release(ctx(t), ownerA, id); err != nil {
			t.Fatal(err)
		}
		it := wantState(t, s, id, checkpoint.StatePending)
		if it.Attempts != 1 {
			t.Fatalf("Release counted an attempt: %d", it.Attempts)
		}
		// Due at once: any claim time finds it.
		if got := claimAll(t, s, t0().Add(-24*time.Hour)); len(got) != 1 || got[0].ID != id {
			t.Fatalf("released item not due at once: %v", ids(got))
		}
	})
}

func testRecoverInProgress(t *testing.T, s checkpoint.Store) {
	add(t, s, 4, item(checkpoint.KindAgent, "1"), item(checkpoint.KindAgent, "2"), item(checkpoint.KindAgent, "3"), item(checkpoint.KindAgent, "4"))
	got, err := s.Claim(ctx(t), ca, nil, t0(), 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("Claim = %v, %v", ids(got), err)
	}
	if err := s.Done(ctx(t), ownerA, got[0].ID, "k", 1, "s"); err != nil {
		t.Fatal(err)
	}
	n, err := s.RecoverInProgress(ctx(t), ownerA)
	if err != nil || n != 2 {
		t.Fatalf("RecoverInProgress = %d, %v; want 2", n, err)
	}
	if left, _ := s.Items(ctx(t), checkpoint.StateInProgress); len(left) != 0 {
		t.Fatalf("in_progress after recover: %v", ids(left))
	}
	wantState(t, s, got[0].ID, checkpoint.StateDone)
	for _, it := range got[1:] {
		if r := wantState(t, s, it.ID, checkpoint.StatePending); r.Attempts != 0 {
			t.Fatalf("recover counted an attempt: %+v", r)
		}
	}
	if again := claimAll(t, s, t0()); len(again) != 3 {
		t.Fatalf("after recover claim = %v, want 3 items", ids(again))
	}
	if n, err := s.RecoverInProgress(ctx(t), ownerA); err != nil || n != 3 {
		t.Fatalf("second RecoverInProgress = %d, %v; want 3", n, err)
	}
	if n, err := s.RecoverInProgress(ctx(t), ownerA); err != nil || n != 0 {
		t.Fatalf("idle RecoverInProgress = %d, %v; want 0", n, err)
	}
}

func testRequeue(t *testing.T, s checkpoint.Store) {
	kill := func(kind, up string) int64 {
		add(t, s, 1, item(kind, up))
		id := idOf(t, s, kind, up)
		claimAll(t, s, t0())
		if st, err := s.Fail(ctx(t), ownerA, id, "bad", t0().Add(time.Hour), 1); err != nil || st != checkpoint.StateDead {
			t.Fatalf("Fail = %s, %v", st, err)
		}
		return id
	}
	a, tr, ivr := kill(checkpoint.KindAgent, "a"), kill(checkpoint.KindTransfer, "t"), kill(checkpoint.KindIVR, "i")
	add(t, s, 1, item(checkpoint.KindAgent, "pending"))
	t.Run("by kind", func(t *testing.T) {
		n, err := s.Requeue(ctx(t), checkpoint.KindAgent)
		if err != nil || n != 1 {
			t.Fatalf("Requeue(agent) = %d, %v; want 1", n, err)
		}
		it := wantState(t, s, a, checkpoint.StatePending)
		if it.Attempts != 0 || !it.NextAttemptAt.IsZero() {
			t.Fatalf("requeued item = %+v", it)
		}
		wantState(t, s, tr, checkpoint.StateDead)
	})
	t.Run("all", func(t *testing.T) {
		n, err := s.Requeue(ctx(t))
		if err != nil || n != 2 {
			t.Fatalf("Requeue() = %d, %v; want 2", n, err)
		}
		wantState(t, s, tr, checkpoint.StatePending)
		wantState(t, s, ivr, checkpoint.StatePending)
		if n, _ := s.Requeue(ctx(t)); n != 0 {
			t.Fatalf("Requeue with no dead = %d", n)
		}
	})
}

func testQueries(t *testing.T, s checkpoint.Store) {
	for _, day := range []string{"2026-03-02", "2026-03-01"} {
		for _, up := range []string{"b", "a"} {
			it := item(checkpoint.KindAgent, day+up)
			it.Day = day
			add(t, s, 1, it)
		}
	}
	got := claimAll(t, s, t0())
	if err := s.Done(ctx(t), ownerA, got[1].ID, "k", 1, "s"); err != nil {
		t.Fatal(err)
	}
	t.Run("Items", func(t *testing.T) {
		all, err := s.Items(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(ids(all)) || len(all) != 4 {
			t.Fatalf("Items() = %v, want 4 sorted", ids(all))
		}
		ip, err := s.Items(ctx(t), checkpoint.StateInProgress)
		if err != nil || len(ip) != 3 || !slices.IsSorted(ids(ip)) {
			t.Fatalf("Items(in_progress) = %v, %v", ids(ip), err)
		}
		both, err := s.Items(ctx(t), checkpoint.StateDone, checkpoint.StateInProgress)
		if err != nil || len(both) != 4 {
			t.Fatalf("Items(done, in_progress) = %v, %v", ids(both), err)
		}
		none, err := s.Items(ctx(t), checkpoint.StateDead)
		if err != nil || len(none) != 0 {
			t.Fatalf("Items(dead) = %v, %v", ids(none), err)
		}
	})
	t.Run("DayItems", func(t *testing.T) {
		d, err := s.DayItems(ctx(t), "2026-03-01")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"2026-03-01b", "2026-03-01a"}; !slices.Equal(upstreams(d), want) {
			t.Fatalf("DayItems = %v, want %v (by ID)", upstreams(d), want)
		}
		if d, err := s.DayItems(ctx(t), "1999-01-01"); err != nil || len(d) != 0 {
			t.Fatalf("DayItems(empty day) = %v, %v", upstreams(d), err)
		}
	})
	t.Run("EachDayItem", func(t *testing.T) {
		var got []checkpoint.Item
		if err := s.EachDayItem(ctx(t), "2026-03-01", func(it checkpoint.Item) error {
			got = append(got, it)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want, err := s.DayItems(ctx(t), "2026-03-01")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !reflect.DeepEqual(got, want) {
			t.Fatalf("EachDayItem = %v, want DayItems' %v", upstreams(got), upstreams(want))
		}
		stop := errors.New("stop")
		calls := 0
		err = s.EachDayItem(ctx(t), "2026-03-01", func(checkpoint.Item) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("EachDayItem with fn failing = %v after %d calls, want fn's error after 1", err, calls)
		}
		// The store is usable again once it returned (the read is closed).
		if _, err := s.DayItems(ctx(t), "2026-03-01"); err != nil {
			t.Fatalf("DayItems after a stopped EachDayItem: %v", err)
		}
		if err := s.EachDayItem(ctx(t), "1999-01-01", func(checkpoint.Item) error { return stop }); err != nil {
			t.Fatalf("EachDayItem(empty day) = %v, want nil (fn not called)", err)
		}
	})
	t.Run("DayCalls", func(t *testing.T) {
		id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: t0(), End: t0().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		calls := []checkpoint.Call{{CallID: "z", Day: "2026-03-01", Begin: t0(), VDN: "v", AgentID: "a"},
			{CallID: "m", Day: "2026-03-01"}, {CallID: "q", Day: "2026-03-02"}}
		if _, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id}, calls, nil); err != nil {
			t.Fatal(err)
		}
		d, err := s.DayCalls(ctx(t), "2026-03-01")
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 2 || d[0].CallID != "m" || !callEqual(d[1], calls[0]) {
			t.Fatalf("DayCalls = %+v, want m then %+v", d, calls[0])
		}
	})
}

func callEqual(a, b checkpoint.Call) bool {
	return a.CallID == b.CallID && a.Day == b.Day && a.Begin.Equal(b.Begin) && a.VDN == b.VDN && a.AgentID == b.AgentID
}

func testDays(t *testing.T, s checkpoint.Store) {
	if d, err := s.Days(ctx(t)); err != nil || len(d) != 0 {
		t.Fatalf("Days on empty store = %v, %v", d, err)
	}
	id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: t0(), End: t0().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	calls := []checkpoint.Call{{CallID: "c1", Day: "2026-03-02"}, {CallID: "c2", Day: "2026-03-02"}, {CallID: "c3", Day: "2026-02-28"}}
	mk := func(kind, up, day string) checkpoint.Item {
		it := item(kind, up)
		it.Day = day
		return it
	}
	items := []checkpoint.Item{
		mk(checkpoint.KindAgent, "a1", "2026-03-02"), mk(checkpoint.KindAgent, "a2", "2026-03-02"),
		mk(checkpoint.KindAgent, "a3", "2026-03-02"), mk(checkpoint.KindIVRLookup, "c1", "2026-03-02"),
		mk(checkpoint.KindAgent, "a4", "2026-03-01"), // a day with items and no calls
	}
	if _, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id}, calls, items); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("Claim = %v, %v", ids(got), err)
	}
	if err := s.Done(ctx(t), ownerA, got[0].ID, "k", 1, "s"); err != nil {
		t.Fatal(err)
	}
	days, err := s.Days(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range days {
		names = append(names, d.Day)
		if d.Updated.IsZero() || d.Updated.Location() != time.UTC {
			t.Fatalf("day %s Updated = %v, want a UTC time", d.Day, d.Updated)
		}
	}
	if want := []string{"2026-02-28", "2026-03-01", "2026-03-02"}; !slices.Equal(names, want) {
		t.Fatalf("Days = %v, want %v", names, want)
	}
	want := []checkpoint.DaySummary{
		{Day: "2026-02-28", Calls: 1, Counts: map[string]map[checkpoint.State]int{}},
		{Day: "2026-03-01", Calls: 0, Counts: map[string]map[checkpoint.State]int{checkpoint.KindAgent: {checkpoint.StatePending: 1}}},
		{Day: "2026-03-02", Calls: 2, Counts: map[string]map[checkpoint.State]int{
			checkpoint.KindAgent:     {checkpoint.StateDone: 1, checkpoint.StateInProgress: 1, checkpoint.StatePending: 1},
			checkpoint.KindIVRLookup: {checkpoint.StatePending: 1},
		}},
	}
	for i, w := range want {
		d := days[i]
		if d.Calls != w.Calls || !countsEqual(d.Counts, w.Counts) {
			t.Fatalf("Days[%d] = %+v, want %+v", i, d, w)
		}
	}
	t.Run("Updated follows changes", func(t *testing.T) {
		before := days[2].Updated
		it := mustItem(t, s, got[1].ID)
		if err := s.Release(ctx(t), ownerA, it.ID); err != nil {
			t.Fatal(err)
		}
		after, err := s.Days(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		upd := mustItem(t, s, it.ID).UpdatedAt
		if after[2].Updated.Before(before) || !after[2].Updated.Equal(maxTime(upd, before)) {
			t.Fatalf("Updated = %v, want max(%v, %v)", after[2].Updated, before, upd)
		}
	})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func countsEqual(a, b map[string]map[checkpoint.State]int) bool {
	norm := func(m map[string]map[checkpoint.State]int) map[string]map[checkpoint.State]int {
		out := map[string]map[checkpoint.State]int{}
		for k, v := range m {
			for st, n := range v {
				if n != 0 {
					if out[k] == nil {
						out[k] = map[checkpoint.State]int{}
					}
					out[k][st] = n
				}
			}
		}
		return out
	}
	return maps.EqualFunc(norm(a), norm(b), func(x, y map[checkpoint.State]int) bool { return maps.Equal(x, y) })
}

func testWatermark(t *testing.T, s checkpoint.Store) {
	if _, ok, err := s.Watermark(ctx(t), "cdr"); err != nil || ok {
		t.Fatalf("Watermark(unset) = ok %v, err %v", ok, err)
	}
	w1 := time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.FixedZone("CST", 8*3600))
	if err := s.SetWatermark(ctx(t), "cdr", w1); err != nil {
		t.Fatal(err)
	}
	w2 := w1.Add(time.Hour)
	if err := s.SetWatermark(ctx(t), "cdr", w2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark(ctx(t), "ivr", w1); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Watermark(ctx(t), "cdr")
	if err != nil || !ok || !got.Equal(w2) || got.Location() != time.UTC {
		t.Fatalf("Watermark(cdr) = %v ok %v err %v, want %v in UTC", got, ok, err, w2)
	}
	got, ok, err = s.Watermark(ctx(t), "ivr")
	if err != nil || !ok || !got.Equal(w1) {
		t.Fatalf("Watermark(ivr) = %v ok %v err %v, want %v", got, ok, err, w1)
	}
}

func testLedger(t *testing.T, s checkpoint.Store) {
	if _, _, ok, err := s.Ledger(ctx(t), "2026-03-01"); err != nil || ok {
		t.Fatalf("Ledger(unset) = ok %v, err %v", ok, err)
	}
	if err := s.SetLedger(ctx(t), "2026-03-01", "", "s1", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLedger(ctx(t), "2026-03-01", "s1", "s2", "k2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLedger(ctx(t), "2026-03-02", "", "s3", "k3"); err != nil {
		t.Fatal(err)
	}
	for day, want := range map[string][2]string{"2026-03-01": {"s2", "k2"}, "2026-03-02": {"s3", "k3"}} {
		sum, key, ok, err := s.Ledger(ctx(t), day)
		if err != nil || !ok || sum != want[0] || key != want[1] {
			t.Fatalf("Ledger(%s) = %q %q ok %v err %v, want %v", day, sum, key, ok, err, want)
		}
	}
}

// testConcurrentClaim: two replicas, each claiming from several goroutines
// at once, never get the same item, and every item is done once, by the
// owner that claimed it.
func testConcurrentClaim(t *testing.T, e *env) {
	const total, workers = 240, 6 // workers per replica
	batch := make([]checkpoint.Item, total)
	for i := range batch {
		batch[i] = item(checkpoint.KindAgent, fmt.Sprint("i", i))
	}
	add(t, e.s, total, batch...)
	var (
		mu   sync.Mutex
		seen = map[int64][]string{} // item → owners that claimed it
		wg   sync.WaitGroup
		errs = make(chan error, 2*workers)
	)
	start := make(chan struct{})
	for _, r := range []struct {
		s checkpoint.Store
		c checkpoint.Claimer
	}{{e.s, ca}, {e.b, cb}} {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					got, err := r.s.Claim(context.Background(), r.c, nil, t0(), 3)
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, it := range got {
						seen[it.ID] = append(seen[it.ID], it.Owner)
					}
					mu.Unlock()
					for _, it := range got {
						if it.Owner != r.c.Owner {
							errs <- fmt.Errorf("item %d claimed by %s has Owner %q", it.ID, r.c.Owner, it.Owner)
							return
						}
						if err := r.s.Done(context.Background(), r.c.Owner, it.ID, it.Key, 1, "s"); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	if len(seen) != total {
		t.Fatalf("claimed %d distinct items, want %d", len(seen), total)
	}
	per := map[string]int{}
	for id, owners := range seen {
		if len(owners) != 1 {
			t.Fatalf("item %d claimed %d times, by %v", id, len(owners), owners)
		}
		per[owners[0]]++
	}
	t.Logf("claims per owner: %v", per)
	done, err := e.s.Items(ctx(t), checkpoint.StateDone)
	if err != nil || len(done) != total {
		t.Fatalf("done items = %d, %v; want %d", len(done), err, total)
	}
	for _, it := range done {
		if it.Owner != "" || !it.LeaseUntil.IsZero() {
			t.Fatalf("done item %d keeps its claim: owner %q, lease until %v", it.ID, it.Owner, it.LeaseUntil)
		}
	}
}

// claimN adds n items of a kind of their own and has c claim them on s.
func claimN(t *testing.T, e *env, s checkpoint.Store, c checkpoint.Claimer, kind string, n int) []checkpoint.Item {
	t.Helper()
	batch := make([]checkpoint.Item, n)
	for i := range batch {
		batch[i] = item(kind, fmt.Sprint(kind, "-", i))
	}
	add(t, e.s, n, batch...)
	got, err := s.Claim(ctx(t), c, []string{kind}, t0(), 0)
	if err != nil || len(got) != n {
		t.Fatalf("%s: Claim(%s) = %d items, %v; want %d", c.Owner, kind, len(got), err, n)
	}
	return got
}

// testClaimLease: a claim carries its owner and lease expiry (the store's
// clock plus the lease); nobody, the owner included, claims the item again
// while the lease holds; once it has expired anyone does, as if it were
// due, without counting an attempt. A claim needs an owner and a lease.
func testClaimLease(t *testing.T, e *env) {
	c := checkpoint.Claimer{Owner: ownerA, Lease: 10 * time.Minute}
	before := e.clock.Now()
	got := claimN(t, e, e.s, c, checkpoint.KindAgent, 2)
	after := e.clock.Now()
	for _, it := range got {
		if it.Owner != ownerA || it.LeaseUntil.Before(before.Add(c.Lease)) || it.LeaseUntil.After(after.Add(c.Lease)) || it.LeaseUntil.Location() != time.UTC {
			t.Fatalf("claimed item: owner %q, lease until %v; want %s until %v…%v in UTC", it.Owner, it.LeaseUntil, ownerA, before.Add(c.Lease), after.Add(c.Lease))
		}
		if stored := mustItem(t, e.s, it.ID); stored.Owner != ownerA || !stored.LeaseUntil.Equal(it.LeaseUntil) {
			t.Fatalf("stored claim: owner %q until %v, claim said %q until %v", stored.Owner, stored.LeaseUntil, it.Owner, it.LeaseUntil)
		}
	}
	for _, r := range []struct {
		s checkpoint.Store
		c checkpoint.Claimer
	}{{e.s, ca}, {e.b, cb}} {
		if again, err := r.s.Claim(ctx(t), r.c, nil, t0().Add(24*time.Hour), 0); err != nil || len(again) != 0 {
			t.Fatalf("%s: Claim while the lease holds = %v, %v; want none", r.c.Owner, ids(again), err)
		}
	}
	// A failed attempt first, to see that a takeover does not count one.
	if _, err := e.s.Fail(ctx(t), ownerA, got[1].ID, "m", t0(), 0); err != nil {
		t.Fatal(err)
	}
	if again := claimAll(t, e.s, t0()); len(again) != 1 || again[0].ID != got[1].ID {
		t.Fatalf("Claim of the failed item = %v", ids(again))
	}
	e.clock.Advance(c.Lease + time.Second) // ca's lease on got[1] is an hour
	taken, err := e.b.Claim(ctx(t), cb, nil, t0(), 0)
	if err != nil || len(taken) != 1 || taken[0].ID != got[0].ID {
		t.Fatalf("%s: Claim after the lease expired = %v, %v; want [%d]", ownerB, ids(taken), err, got[0].ID)
	}
	if it := taken[0]; it.Owner != ownerB || it.State != checkpoint.StateInProgress || it.Attempts != 0 || !it.LeaseUntil.After(got[0].LeaseUntil) {
		t.Fatalf("taken over: %+v", it)
	}
	if it := mustItem(t, e.s, got[1].ID); it.Owner != ownerA || it.Attempts != 1 {
		t.Fatalf("the item whose lease holds: %+v", it)
	}
	t.Run("refused", func(t *testing.T) {
		add(t, e.s, 1, item(checkpoint.KindIVR, "refused"))
		for _, bad := range []checkpoint.Claimer{{Owner: "", Lease: time.Minute}, {Owner: ownerA}, {Owner: ownerA, Lease: -time.Second}} {
			if got, err := e.s.Claim(ctx(t), bad, nil, t0(), 0); err == nil {
				t.Fatalf("Claim(%+v) = %v, want an error", bad, ids(got))
			}
		}
		wantState(t, e.s, idOf(t, e.s, checkpoint.KindIVR, "refused"), checkpoint.StatePending)
	})
}

// testTakeover: a replica that stalls past its lease loses the item to
// another, which finishes it once; every transition of the first on it is
// refused with ErrLeaseLost (naming the holder) and changes nothing, and
// after the second finished it, with ErrState. A lease that expired but
// that nobody took is still its owner's.
func testTakeover(t *testing.T, e *env) {
	short := checkpoint.Claimer{Owner: ownerA, Lease: time.Minute}
	got := claimN(t, e, e.s, short, checkpoint.KindAgent, 2)
	lost, kept := got[0], got[1]
	e.clock.Advance(2 * time.Minute)
	taken, err := e.b.Claim(ctx(t), cb, []string{checkpoint.KindAgent}, t0(), 1)
	if err != nil || len(taken) != 1 || taken[0].ID != lost.ID {
		t.Fatalf("%s: Claim = %v, %v; want [%d]", ownerB, ids(taken), err, lost.ID)
	}
	for _, tr := range ownedTransitions(ownerA) {
		t.Run(tr.name+" by the old owner", func(t *testing.T) {
			before := mustItem(t, e.s, lost.ID)
			err := tr.do(ctx(t), e.s, lost.ID)
			if !errors.Is(err, checkpoint.ErrLeaseLost) || !errors.Is(err, checkpoint.ErrState) {
				t.Fatalf("%s by %s after the takeover = %v, want ErrLeaseLost (and ErrState)", tr.name, ownerA, err)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(lost.ID)) || !strings.Contains(msg, ownerB) {
				t.Fatalf("error %q does not name item %d and its holder %s", msg, lost.ID, ownerB)
			}
			if after := mustItem(t, e.s, lost.ID); !itemsEqual(before, after) {
				t.Fatalf("refused %s changed the item: %+v → %+v", tr.name, before, after)
			}
		})
	}
	if err := e.b.Done(ctx(t), ownerB, lost.ID, "k/new", 7, "sb"); err != nil {
		t.Fatalf("Done by the new owner: %v", err)
	}
	if it := wantState(t, e.s, lost.ID, checkpoint.StateDone); it.Key != "k/new" || it.Size != 7 || it.Owner != "" || !it.LeaseUntil.IsZero() {
		t.Fatalf("done by the new owner: %+v", it)
	}
	err = e.s.Done(ctx(t), ownerA, lost.ID, "k/old", 9, "sa")
	if !errors.Is(err, checkpoint.ErrState) || errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("late Done by the old owner = %v, want ErrState (the item is done)", err)
	}
	if it := mustItem(t, e.s, lost.ID); it.Key != "k/new" || it.SHA256 != "sb" {
		t.Fatalf("the late Done changed the item: %+v", it)
	}
	t.Run("expired, not taken", func(t *testing.T) {
		// kept's lease expired too, but nobody claimed it: still A's.
		if it := mustItem(t, e.s, kept.ID); it.Owner != ownerA || it.LeaseUntil.After(e.clock.Now()) {
			t.Fatalf("kept: %+v", it)
		}
		if err := e.s.Done(ctx(t), ownerA, kept.ID, "k", 1, "s"); err != nil {
			t.Fatalf("Done of an expired lease nobody took: %v", err)
		}
	})
	t.Run("no owner", func(t *testing.T) {
		it := claimN(t, e, e.s, ca, checkpoint.KindIVR, 1)[0]
		if err := e.s.Release(ctx(t), "", it.ID); !errors.Is(err, checkpoint.ErrLeaseLost) {
			t.Fatalf("Release without an owner = %v, want ErrLeaseLost", err)
		}
		// Absent of a pending item needs no claim.
		add(t, e.s, 1, item(checkpoint.KindTransfer, "unclaimed"))
		if err := e.b.Absent(ctx(t), ownerB, idOf(t, e.s, checkpoint.KindTransfer, "unclaimed"), "r", "e"); err != nil {
			t.Fatalf("Absent of a pending item by anyone: %v", err)
		}
	})
}

// ownedTransitions are the transitions that end owner's claim.
func ownedTransitions(owner string) []transition {
	return []transition{
		{"Done", func(c context.Context, s checkpoint.Store, id int64) error { return s.Done(c, owner, id, "k", 1, "s") }},
		{"Absent", func(c context.Context, s checkpoint.Store, id int64) error { return s.Absent(c, owner, id, "r", "e") }},
		{"Fail", func(c context.Context, s checkpoint.Store, id int64) error {
			_, err := s.Fail(c, owner, id, "m", t0(), 3)
			return err
		}},
		{"Defer", func(c context.Context, s checkpoint.Store, id int64) error { return s.Defer(c, owner, id, t0(), "n") }},
		{"Release", func(c context.Context, s checkpoint.Store, id int64) error { return s.Release(c, owner, id) }},
	}
}

func itemsEqual(a, b checkpoint.Item) bool {
	return a.ID == b.ID && a.State == b.State && a.Owner == b.Owner && a.LeaseUntil.Equal(b.LeaseUntil) &&
		a.Attempts == b.Attempts && a.LastError == b.LastError && a.Key == b.Key && a.Size == b.Size &&
		a.SHA256 == b.SHA256 && a.Reason == b.Reason && a.NextAttemptAt.Equal(b.NextAttemptAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// testRenew: Renew extends the leases the owner still holds, from the
// store's clock, and reports the others (taken over, finished, released,
// unknown, another's) in the order given; a renewed item is not taken when
// its first lease would have expired.
func testRenew(t *testing.T, e *env) {
	c := checkpoint.Claimer{Owner: ownerA, Lease: 10 * time.Minute}
	got := claimN(t, e, e.s, c, checkpoint.KindAgent, 5)
	mine, expired, taken, done, released := got[0], got[1], got[2], got[3], got[4]
	if err := e.s.Done(ctx(t), ownerA, done.ID, "k", 1, "s"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Release(ctx(t), ownerA, released.ID); err != nil {
		t.Fatal(err)
	}
	other := claimN(t, e, e.b, cb, checkpoint.KindIVR, 1)[0]
	e.clock.Advance(6 * time.Minute)
	if lost, err := e.s.Renew(ctx(t), c, []int64{mine.ID}); err != nil || len(lost) != 0 {
		t.Fatalf("Renew(mine) = %v, %v; want none lost", lost, err)
	}
	renewed := mustItem(t, e.s, mine.ID)
	if !renewed.LeaseUntil.After(mine.LeaseUntil) || renewed.LeaseUntil.Before(e.clock.Now().Add(c.Lease-time.Minute)) {
		t.Fatalf("renewed lease until %v, claimed until %v, clock %v", renewed.LeaseUntil, mine.LeaseUntil, e.clock.Now())
	}
	if !renewed.UpdatedAt.Equal(mine.UpdatedAt) {
		t.Fatalf("Renew changed UpdatedAt: %v → %v", mine.UpdatedAt, renewed.UpdatedAt)
	}
	e.clock.Advance(5 * time.Minute) // past the first leases, within the renewed one
	// B takes over what expired: the released item (pending) and "taken";
	// "expired" too, unless A renews it first: it does not, yet.
	tk, err := e.b.Claim(ctx(t), cb, []string{checkpoint.KindAgent}, t0(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{expired.ID, taken.ID, released.ID}; !slices.Equal(sortedIDs(tk), sortedIDs([]checkpoint.Item{expired, taken, released})) {
		t.Fatalf("%s: Claim after the first leases expired = %v, want %v (not the renewed %d)", ownerB, ids(tk), want, mine.ID)
	}
	if err := e.b.Release(ctx(t), ownerB, expired.ID); err != nil { // back to pending: not A's either
		t.Fatal(err)
	}
	ask := []int64{other.ID, mine.ID, 987654, taken.ID, done.ID, expired.ID}
	lost, err := e.s.Renew(ctx(t), c, ask)
	if want := []int64{other.ID, 987654, taken.ID, done.ID, expired.ID}; err != nil || !slices.Equal(lost, want) {
		t.Fatalf("Renew(%v) lost %v, %v; want %v", ask, lost, err, want)
	}
	if it := mustItem(t, e.s, taken.ID); it.Owner != ownerB {
		t.Fatalf("Renew by the old owner took the item back: %+v", it)
	}
	if it := mustItem(t, e.s, other.ID); it.Owner != ownerB || !it.LeaseUntil.Equal(other.LeaseUntil) {
		t.Fatalf("Renew by %s changed %s's lease: %+v", ownerA, ownerB, it)
	}
	if lost, err := e.s.Renew(ctx(t), c, nil); err != nil || len(lost) != 0 {
		t.Fatalf("Renew(none) = %v, %v", lost, err)
	}
	t.Run("expired, not taken", func(t *testing.T) {
		e.clock.Advance(time.Hour) // every lease has expired; nobody claims
		if lost, err := e.s.Renew(ctx(t), c, []int64{mine.ID}); err != nil || len(lost) != 0 {
			t.Fatalf("Renew of an expired lease nobody took = %v, %v; want it renewed", lost, err)
		}
		if got, err := e.b.Claim(ctx(t), cb, []string{checkpoint.KindAgent}, t0(), 0); err != nil || slices.Contains(ids(got), mine.ID) {
			t.Fatalf("Claim after the renewal = %v, %v; want not %d", ids(got), err, mine.ID)
		}
	})
	if _, err := e.s.Renew(ctx(t), checkpoint.Claimer{Owner: ownerA}, []int64{mine.ID}); err == nil {
		t.Fatal("Renew without a lease succeeded")
	}
}

func sortedIDs(items []checkpoint.Item) []int64 {
	out := ids(items)
	slices.Sort(out)
	return out
}

// testRecoverOwned: RecoverInProgress releases the caller's own items and
// every expired one, not another owner's live claim.
func testRecoverOwned(t *testing.T, e *env) {
	mine := claimN(t, e, e.s, checkpoint.Claimer{Owner: ownerA, Lease: time.Hour}, checkpoint.KindAgent, 2)
	live := claimN(t, e, e.b, checkpoint.Claimer{Owner: ownerB, Lease: time.Hour}, checkpoint.KindIVR, 2)
	dead := claimN(t, e, e.b, checkpoint.Claimer{Owner: "host-c-303-deadbeef", Lease: time.Minute}, checkpoint.KindTransfer, 1)
	e.clock.Advance(2 * time.Minute)
	n, err := e.s.RecoverInProgress(ctx(t), ownerA)
	if err != nil || n != 3 {
		t.Fatalf("RecoverInProgress(%s) = %d, %v; want its 2 and the expired 1", ownerA, n, err)
	}
	for _, it := range append(mine, dead...) {
		if r := wantState(t, e.s, it.ID, checkpoint.StatePending); r.Owner != "" || !r.LeaseUntil.IsZero() || r.Attempts != 0 || !r.NextAttemptAt.IsZero() {
			t.Fatalf("recovered item: %+v", r)
		}
	}
	for _, it := range live {
		if r := wantState(t, e.s, it.ID, checkpoint.StateInProgress); r.Owner != ownerB {
			t.Fatalf("%s's live claim after %s's recovery: %+v", ownerB, ownerA, r)
		}
		if err := e.b.Done(ctx(t), ownerB, it.ID, "k", 1, "s"); err != nil {
			t.Fatalf("%s: Done after %s's recovery: %v", ownerB, ownerA, err)
		}
	}
	if n, err := e.b.RecoverInProgress(ctx(t), ownerB); err != nil || n != 0 {
		t.Fatalf("idle RecoverInProgress = %d, %v", n, err)
	}
}

// testLeases: a named lease has one holder at a time until it is released
// or expires on the store's clock; the holder extends it by taking it
// again; releasing a lease one does not hold changes nothing.
func testLeases(t *testing.T, e *env) {
	const name, other = "cdr:2026-03-01T10:00:00Z", "ledger:2026-03-01"
	try := func(s checkpoint.Store, name, owner string, ttl time.Duration, want bool) {
		t.Helper()
		if ok, err := s.TryLease(ctx(t), name, owner, ttl); err != nil || ok != want {
			t.Fatalf("%s: TryLease(%s, %v) = %v, %v; want %v", owner, name, ttl, ok, err, want)
		}
	}
	try(e.s, name, ownerA, time.Minute, true)
	try(e.b, name, ownerB, time.Hour, false)
	try(e.b, other, ownerB, time.Minute, true) // another name
	try(e.s, other, ownerA, time.Minute, false)
	e.clock.Advance(40 * time.Second)
	try(e.s, name, ownerA, time.Minute, true) // renewed: until +100s
	e.clock.Advance(40 * time.Second)         // +80s: the first lease has passed, not the renewed one
	try(e.b, name, ownerB, time.Minute, false)
	// B's lease of other has expired: A takes it; B no longer holds it.
	try(e.s, other, ownerA, time.Minute, true)
	try(e.b, other, ownerB, time.Minute, false)
	e.clock.Advance(30 * time.Second) // +110s: A's lease of name has expired
	try(e.b, name, ownerB, time.Minute, true)
	try(e.s, name, ownerA, time.Minute, false)
	// A releases what it no longer holds: B keeps it.
	if err := e.s.ReleaseLease(ctx(t), name, ownerA); err != nil {
		t.Fatal(err)
	}
	try(e.s, name, ownerA, time.Minute, false)
	// B releases: A takes it at once.
	if err := e.b.ReleaseLease(ctx(t), name, ownerB); err != nil {
		t.Fatal(err)
	}
	try(e.s, name, ownerA, time.Minute, true)
	if err := e.s.ReleaseLease(ctx(t), "never-taken", ownerA); err != nil {
		t.Fatalf("ReleaseLease(never taken) = %v", err)
	}
	for _, bad := range []struct {
		name, owner string
		ttl         time.Duration
	}{{"", ownerA, time.Minute}, {"x", "", time.Minute}, {"x", ownerA, 0}} {
		if ok, err := e.s.TryLease(ctx(t), bad.name, bad.owner, bad.ttl); err == nil {
			t.Fatalf("TryLease(%q, %q, %v) = %v, want an error", bad.name, bad.owner, bad.ttl, ok)
		}
	}
}

// testHeldLeases: Leases lists the leases held now, by name, with their
// holder and expiry, from either replica; a released or expired one is
// not listed, and a lease taken over is listed under its new holder.
func testHeldLeases(t *testing.T, e *env) {
	// held is a lease taken by owner, expiring within [lo, hi]: the clock
	// runs (real time plus the test's offset).
	type held struct {
		name, owner string
		lo, hi      time.Time
	}
	take := func(s checkpoint.Store, name, owner string, ttl time.Duration) held {
		t.Helper()
		lo := e.clock.Now().Add(ttl)
		if ok, err := s.TryLease(ctx(t), name, owner, ttl); err != nil || !ok {
			t.Fatalf("%s: TryLease(%s) = %v, %v", owner, name, ok, err)
		}
		return held{name, owner, lo, e.clock.Now().Add(ttl)}
	}
	want := func(s checkpoint.Store, w ...held) {
		t.Helper()
		got, err := s.Leases(ctx(t))
		if err != nil {
			t.Fatalf("Leases: %v", err)
		}
		if len(got) != len(w) {
			t.Fatalf("Leases = %+v, want %+v", got, w)
		}
		for i, l := range got {
			if l.Name != w[i].name || l.Owner != w[i].owner || l.Until.Before(w[i].lo) || l.Until.After(w[i].hi) {
				t.Fatalf("Leases[%d] = %+v, want %s held by %s until %v … %v (all: %+v)", i, l, w[i].name, w[i].owner, w[i].lo, w[i].hi, got)
			}
		}
	}
	want(e.s)
	ledgerA := take(e.s, "ledger:2026-03-01", ownerA, time.Minute)
	cdrB := take(e.b, "cdr:2026-03-01T10:00:00Z", ownerB, time.Hour)
	janitor := take(e.s, "janitor", ownerA, 2*time.Minute)
	want(e.b, cdrB, janitor, ledgerA)
	if err := e.s.ReleaseLease(ctx(t), "janitor", ownerA); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(90 * time.Second) // A's ledger lease has expired
	want(e.s, cdrB)
	ledgerB := take(e.b, "ledger:2026-03-01", ownerB, time.Minute)
	want(e.s, cdrB, ledgerB)
}

// testConcurrentLeases: owners racing for one lease from two replicas get
// it once per round.
func testConcurrentLeases(t *testing.T, e *env) {
	const rounds, per = 20, 4 // owners per replica
	for round := range rounds {
		name := fmt.Sprint("janitor-", round)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			winner []string
			errs   []error
		)
		start := make(chan struct{})
		for i := range 2 * per {
			s, owner := e.s, fmt.Sprintf("%s-%d", ownerA, i)
			if i >= per {
				s, owner = e.b, fmt.Sprintf("%s-%d", ownerB, i)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := s.TryLease(context.Background(), name, owner, time.Minute)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				if ok {
					winner = append(winner, owner)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("round %d: %v", round, errors.Join(errs...))
		}
		if len(winner) != 1 {
			t.Fatalf("round %d: lease %s held by %v at once", round, name, winner)
		}
	}
}

// testWatermarkForward: a watermark only moves forward; an older value (a
// replica that read a stale one) is refused with ErrConflict and the
// stored one stays.
func testWatermarkForward(t *testing.T, e *env) {
	w := t0()
	if err := e.s.SetWatermark(ctx(t), "cdr", w.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	err := e.b.SetWatermark(ctx(t), "cdr", w.Add(time.Hour))
	if !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("SetWatermark(older) = %v, want ErrConflict", err)
	}
	if got, ok, err := e.s.Watermark(ctx(t), "cdr"); err != nil || !ok || !got.Equal(w.Add(2*time.Hour)) {
		t.Fatalf("Watermark after the refused update = %v, %v, %v; want %v", got, ok, err, w.Add(2*time.Hour))
	}
	if err := e.b.SetWatermark(ctx(t), "cdr", w.Add(2*time.Hour)); err != nil {
		t.Fatalf("SetWatermark(equal) = %v, want nil", err)
	}
	if err := e.b.SetWatermark(ctx(t), "cdr", w.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := e.s.Watermark(ctx(t), "cdr"); !got.Equal(w.Add(3 * time.Hour)) {
		t.Fatalf("Watermark = %v, want %v", got, w.Add(3*time.Hour))
	}
	// Other jobs are apart.
	if err := e.s.SetWatermark(ctx(t), "ledger", w); err != nil {
		t.Fatalf("SetWatermark of another job: %v", err)
	}
	t.Run("racing", func(t *testing.T) {
		e.race(func(s checkpoint.Store, i int) {
			err := s.SetWatermark(context.Background(), "race", w.Add(time.Duration(i)*time.Minute))
			if err != nil && !errors.Is(err, checkpoint.ErrConflict) {
				t.Errorf("SetWatermark: %v", err)
			}
		})
		if got, _, _ := e.s.Watermark(ctx(t), "race"); !got.Equal(w.Add(15 * time.Minute)) {
			t.Fatalf("after racing updates the watermark is %v, want the latest %v", got, w.Add(15*time.Minute))
		}
	})
}

// race calls fn 16 times at once, i = 0..15, alternately on the two
// handles of the store, and returns when every call has.
func (e *env) race(fn func(s checkpoint.Store, i int)) {
	var wg sync.WaitGroup
	for i := range 16 {
		s := e.s
		if i%2 == 1 {
			s = e.b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(s, i)
		}()
	}
	wg.Wait()
}

// testLastSuccess: a job's last success is kept per job, in UTC, and only
// moves forward: an older or equal time (a replica that finished earlier
// and records it later) changes nothing and is no error; concurrent
// writers leave the latest.
func testLastSuccess(t *testing.T, e *env) {
	if _, ok, err := e.s.LastSuccess(ctx(t), "cdr"); err != nil || ok {
		t.Fatalf("LastSuccess(unset) = ok %v, err %v", ok, err)
	}
	w := time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.FixedZone("CST", 8*3600))
	for _, c := range []struct {
		s    checkpoint.Store
		t    time.Time
		want time.Time
	}{
		{e.s, w, w},
		{e.b, w.Add(time.Hour), w.Add(time.Hour)},
		{e.s, w.Add(time.Minute), w.Add(time.Hour)}, // older: kept
		{e.b, w.Add(time.Hour), w.Add(time.Hour)},   // equal
	} {
		if err := c.s.SetLastSuccess(ctx(t), "cdr", c.t); err != nil {
			t.Fatalf("SetLastSuccess(%v) = %v", c.t, err)
		}
		got, ok, err := e.b.LastSuccess(ctx(t), "cdr")
		if err != nil || !ok || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Fatalf("after SetLastSuccess(%v): LastSuccess = %v ok %v err %v, want %v in UTC", c.t, got, ok, err, c.want)
		}
	}
	if _, ok, err := e.s.LastSuccess(ctx(t), "ivr"); err != nil || ok {
		t.Fatalf("LastSuccess(ivr) = ok %v, err %v; another job's success leaked", ok, err)
	}
	if got, _, _ := e.s.Watermark(ctx(t), "cdr"); !got.IsZero() {
		t.Fatalf("Watermark(cdr) = %v: a last success is no watermark", got)
	}
	e.race(func(s checkpoint.Store, i int) {
		if err := s.SetLastSuccess(context.Background(), "race", w.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Errorf("SetLastSuccess: %v", err)
		}
	})
	if got, _, _ := e.s.LastSuccess(ctx(t), "race"); !got.Equal(w.Add(15 * time.Minute)) {
		t.Fatalf("after racing updates the last success is %v, want the latest %v", got, w.Add(15*time.Minute))
	}
}

// testLastRun: a job's last run is kept per job, whole, in UTC; it is
// recorded when the run starts and replaced when it ends (same Started);
// a record of a run that started before the stored one (a replica's older
// run ending late) changes nothing and is no error; concurrent writers
// leave the run that started last; a record without a job, a start or a
// known result is refused and changes nothing; an ended ctx changes
// nothing.
func testLastRun(t *testing.T, e *env) {
	if _, ok, err := e.s.LastRun(ctx(t), "cdr"); err != nil || ok {
		t.Fatalf("LastRun(unset) = ok %v, err %v", ok, err)
	}
	cst := time.FixedZone("CST", 8*3600)
	w := time.Date(2026, 3, 1, 9, 30, 0, 123456789, cst)
	started := checkpoint.JobRun{Job: "cdr", Started: w, Result: checkpoint.RunRunning, Replica: ownerA}
	ended := checkpoint.JobRun{Job: "cdr", Started: w, Finished: w.Add(90*time.Second + 7), Result: checkpoint.RunFailed,
		Error: "jobs: cdr: query bill data: cec: 0300005 – 通话 refused", Done: 12, Failed: 3, Bytes: 1 << 40, Replica: ownerA}
	later := checkpoint.JobRun{Job: "cdr", Started: w.Add(time.Hour), Finished: w.Add(time.Hour + time.Second),
		Result: checkpoint.RunOK, Done: 1, Replica: ownerB}
	utc := func(r checkpoint.JobRun) checkpoint.JobRun {
		r.Started = r.Started.UTC()
		if !r.Finished.IsZero() {
			r.Finished = r.Finished.UTC()
		}
		return r
	}
	for _, c := range []struct {
		what string
		s    checkpoint.Store
		r    checkpoint.JobRun
		want checkpoint.JobRun
	}{
		{"started", e.s, started, started},
		{"ended", e.s, ended, ended},
		{"another replica's later run", e.b, later, later},
		{"the older run recorded late", e.s, ended, later},
		{"the later run again", e.b, later, later},
	} {
		if err := c.s.SetLastRun(ctx(t), c.r); err != nil {
			t.Fatalf("%s: SetLastRun = %v", c.what, err)
		}
		got, ok, err := e.b.LastRun(ctx(t), "cdr")
		if err != nil || !ok || got != utc(c.want) || got.Started.Location() != time.UTC {
			t.Fatalf("%s: LastRun = %+v ok %v err %v\nwant %+v in UTC", c.what, got, ok, err, utc(c.want))
		}
	}
	if _, ok, err := e.s.LastRun(ctx(t), "ivr"); err != nil || ok {
		t.Fatalf("LastRun(ivr) = ok %v, err %v; another job's run leaked", ok, err)
	}
	if _, ok, _ := e.s.LastSuccess(ctx(t), "cdr"); ok {
		t.Fatal("LastSuccess(cdr) is set: a run is no success")
	}
	for _, c := range []struct {
		what string
		r    checkpoint.JobRun
	}{
		{"no job", checkpoint.JobRun{Started: w.Add(2 * time.Hour), Result: checkpoint.RunOK}},
		{"no start", checkpoint.JobRun{Job: "cdr", Result: checkpoint.RunOK}},
		{"unknown result", checkpoint.JobRun{Job: "cdr", Started: w.Add(2 * time.Hour), Result: "success"}},
		{"no result", checkpoint.JobRun{Job: "cdr", Started: w.Add(2 * time.Hour)}},
	} {
		if err := e.s.SetLastRun(ctx(t), c.r); err == nil {
			t.Errorf("SetLastRun(%s) = nil, want an error", c.what)
		}
	}
	ended2, cancel := context.WithCancel(ctx(t))
	cancel()
	next := checkpoint.JobRun{Job: "cdr", Started: w.Add(3 * time.Hour), Result: checkpoint.RunRunning}
	if err := e.s.SetLastRun(ended2, next); !errors.Is(err, context.Canceled) {
		t.Errorf("SetLastRun with an ended ctx = %v, want context.Canceled", err)
	}
	if got, _, _ := e.s.LastRun(ctx(t), "cdr"); got != utc(later) {
		t.Fatalf("after the refused calls LastRun = %+v, want %+v unchanged", got, utc(later))
	}
	// Diagnostic text the store cannot hold as it is is stored anyway.
	odd := checkpoint.JobRun{Job: "odd", Started: w, Finished: w, Result: checkpoint.RunFailed, Error: "bad \xff byte and \x00 NUL"}
	if err := e.s.SetLastRun(ctx(t), odd); err != nil {
		t.Fatalf("SetLastRun(error text with invalid UTF-8 and NUL) = %v", err)
	}
	if got, ok, err := e.s.LastRun(ctx(t), "odd"); err != nil || !ok || !strings.HasPrefix(got.Error, "bad ") {
		t.Fatalf("LastRun(odd) = %+v ok %v err %v", got, ok, err)
	}
	e.race(func(s checkpoint.Store, i int) {
		r := checkpoint.JobRun{Job: "race", Started: w.Add(time.Duration(i) * time.Minute), Result: checkpoint.RunOK, Done: i}
		if err := s.SetLastRun(context.Background(), r); err != nil {
			t.Errorf("SetLastRun: %v", err)
		}
	})
	if got, _, _ := e.s.LastRun(ctx(t), "race"); !got.Started.Equal(w.Add(15*time.Minute)) || got.Done != 15 {
		t.Fatalf("after racing updates the last run is %+v, want the one started last (%v, done 15)", got, w.Add(15*time.Minute))
	}
}

// testLedgerConflict: a ledger record is replaced only by a caller that
// names the record it replaces; a stale writer gets ErrConflict and
// changes nothing.
func testLedgerConflict(t *testing.T, e *env) {
	const day = "2026-03-01"
	if err := e.s.SetLedger(ctx(t), day, "", "s1", "k1"); err != nil {
		t.Fatal(err)
	}
	// Both replicas read s1; B writes s2 first; A's s3 is refused.
	if err := e.b.SetLedger(ctx(t), day, "s1", "s2", "k2"); err != nil {
		t.Fatal(err)
	}
	err := e.s.SetLedger(ctx(t), day, "s1", "s3", "k3")
	if !errors.Is(err, checkpoint.ErrConflict) || !strings.Contains(err.Error(), "s2") {
		t.Fatalf("stale SetLedger = %v, want ErrConflict naming the record s2", err)
	}
	// A writer that thought the day had no ledger yet.
	if err := e.s.SetLedger(ctx(t), day, "", "s4", "k4"); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("SetLedger(no record expected) = %v, want ErrConflict", err)
	}
	// One that expects a record where there is none.
	if err := e.s.SetLedger(ctx(t), "2026-03-09", "s1", "s5", "k5"); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("SetLedger(a record expected, none) = %v, want ErrConflict", err)
	}
	if _, _, ok, _ := e.s.Ledger(ctx(t), "2026-03-09"); ok {
		t.Fatal("a refused SetLedger created a record")
	}
	if sum, key, ok, err := e.s.Ledger(ctx(t), day); err != nil || !ok || sum != "s2" || key != "k2" {
		t.Fatalf("Ledger after the refused updates = %q %q %v %v; want s2 k2", sum, key, ok, err)
	}
}

// testConcurrentTransitions: transitions called from many goroutines at
// once each get their own outcome, however the store groups their commits:
// a refused one (wrong state, unknown item) changes nothing and does not
// disturb the others.
func testConcurrentTransitions(t *testing.T, s checkpoint.Store) {
	const per = 12 // items per case
	cases := []struct {
		name    string
		claimed bool // in_progress; else pending
		do      func(c context.Context, id int64) error
		want    checkpoint.State // the state after; the item's own when refused
		refused error            // the error the call must wrap, nil when allowed
	}{
		{"Done", true, func(c context.Context, id int64) error { return s.Done(c, ownerA, id, fmt.Sprint("k/", id), id, "s") }, checkpoint.StateDone, nil},
		{"Fail", true, func(c context.Context, id int64) error { _, err := s.Fail(c, ownerA, id, "m", t0(), 5); return err }, checkpoint.StateFailed, nil},
		{"Defer", true, func(c context.Context, id int64) error { return s.Defer(c, ownerA, id, t0(), "later") }, checkpoint.StatePending, nil},
		{"Release", true, func(c context.Context, id int64) error { return s.Release(c, ownerA, id) }, checkpoint.StatePending, nil},
		{"Absent", true, func(c context.Context, id int64) error { return s.Absent(c, ownerA, id, "r", "e") }, checkpoint.StateAbsent, nil},
		{"Absent pending", false, func(c context.Context, id int64) error { return s.Absent(c, ownerA, id, "r", "e") }, checkpoint.StateAbsent, nil},
		{"Done pending", false, func(c context.Context, id int64) error { return s.Done(c, ownerA, id, "k", 1, "s") }, checkpoint.StatePending, checkpoint.ErrState},
		{"Release pending", false, func(c context.Context, id int64) error { return s.Release(c, ownerA, id) }, checkpoint.StatePending, checkpoint.ErrState},
	}
	var claimed, pending []checkpoint.Item
	for i, tc := range cases {
		for j := range per {
			it := item(checkpoint.KindAgent, fmt.Sprintf("ct%d-%d", i, j))
			if tc.claimed {
				claimed = append(claimed, it)
			} else {
				it.Kind = checkpoint.KindIVR // not claimed below
				pending = append(pending, it)
			}
		}
	}
	add(t, s, len(claimed)+len(pending), append(claimed, pending...)...)
	if got, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 0); err != nil || len(got) != len(claimed) {
		t.Fatalf("Claim = %d, %v; want %d", len(got), err, len(claimed))
	}
	type call struct {
		tc   int
		id   int64
		err  error
		want error
	}
	var calls []*call
	for i, tc := range cases {
		kind := checkpoint.KindAgent
		if !tc.claimed {
			kind = checkpoint.KindIVR
		}
		for j := range per {
			calls = append(calls, &call{tc: i, id: idOf(t, s, kind, fmt.Sprintf("ct%d-%d", i, j)), want: tc.refused})
		}
		// And one unknown item per case.
		calls = append(calls, &call{tc: i, id: int64(900000 + i), want: checkpoint.ErrNotFound})
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c.err = cases[c.tc].do(context.Background(), c.id)
		}()
	}
	close(start)
	wg.Wait()
	for _, c := range calls {
		tc := cases[c.tc]
		if c.want == nil {
			if c.err != nil {
				t.Errorf("%s(%d) = %v, want nil", tc.name, c.id, c.err)
			}
		} else if !errors.Is(c.err, c.want) {
			t.Errorf("%s(%d) = %v, want %v", tc.name, c.id, c.err, c.want)
		}
		if c.want == checkpoint.ErrNotFound {
			continue
		}
		it := mustItem(t, s, c.id)
		if it.State != tc.want {
			t.Errorf("%s(%d): item is %s, want %s", tc.name, c.id, it.State, tc.want)
		}
		switch {
		case tc.name == "Done" && (it.Key != fmt.Sprint("k/", c.id) || it.Size != c.id):
			t.Errorf("Done(%d) stored key %q size %d", c.id, it.Key, it.Size)
		case tc.name == "Fail" && (it.Attempts != 1 || it.LastError != "m"):
			t.Errorf("Fail(%d): attempts %d, error %q", c.id, it.Attempts, it.LastError)
		case tc.refused != nil && (it.Key != "k/"+it.UpstreamID || it.Attempts != 0 || it.LastError != ""):
			t.Errorf("refused %s changed item %d: %+v", tc.name, c.id, it)
		}
	}
}

// testEndedContext: a transition called with a ctx that has already ended
// changes nothing and returns an error wrapping ctx.Err().
func testEndedContext(t *testing.T, s checkpoint.Store) {
	for _, tr := range transitions() {
		t.Run(tr.name, func(t *testing.T) {
			it := item(checkpoint.KindAgent, "ended-"+tr.name)
			add(t, s, 1, it)
			id := idOf(t, s, it.Kind, it.UpstreamID)
			// Resolve applies to failed items; the others to in_progress.
			claimAll(t, s, t0())
			if tr.name == "Resolve" {
				if _, err := s.Fail(ctx(t), ownerA, id, "m", t0(), 0); err != nil {
					t.Fatal(err)
				}
			}
			before := mustItem(t, s, id)
			c, cancel := context.WithCancel(ctx(t))
			cancel()
			if err := tr.do(c, s, id); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s with an ended ctx = %v, want context.Canceled", tr.name, err)
			}
			if after := mustItem(t, s, id); !after.UpdatedAt.Equal(before.UpdatedAt) || after.State != before.State {
				t.Fatalf("%s with an ended ctx changed the item: %+v → %+v", tr.name, before, after)
			}
			if tr.name == "Resolve" {
				return
			}
			if err := tr.do(ctx(t), s, id); err != nil {
				t.Fatalf("%s after the refused call: %v", tr.name, err)
			}
		})
	}
}

func testParams(t *testing.T, s checkpoint.Store) {
	p := map[string]string{"file_name": "rec 01.wav", "location": "L-7", "quote": `a"b\c`, "unicode": "通话", "empty": ""}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	// Arguments are stored as they are given, whatever their shape.
	nested := json.RawMessage(`{"call_begin":"2026-03-01T08:00:00+08:00","members":["a.wav","b.wav"],"meta":{"k":"v"}}`)
	it := item(checkpoint.KindAgent, "p")
	it.Args = raw
	nt := item(checkpoint.KindAgent, "nested")
	nt.Args = nested
	add(t, s, 3, it, nt, item(checkpoint.KindAgent, "noparams"))
	decode := func(a json.RawMessage) map[string]string {
		t.Helper()
		var m map[string]string
		if err := json.Unmarshal(a, &m); err != nil {
			t.Fatalf("Args %s: %v", a, err)
		}
		return m
	}
	got := mustItem(t, s, idOf(t, s, checkpoint.KindAgent, "p"))
	if !maps.Equal(decode(got.Args), p) {
		t.Fatalf("Params = %s, want %v", got.Args, p)
	}
	if got := mustItem(t, s, idOf(t, s, checkpoint.KindAgent, "nested")); string(got.Args) != string(nested) {
		t.Fatalf("Args = %s, want %s", got.Args, nested)
	}
	claimed := claimAll(t, s, t0())
	for _, c := range claimed {
		if c.UpstreamID == "p" && !maps.Equal(decode(c.Args), p) {
			t.Fatalf("claimed Params = %s, want %v", c.Args, p)
		}
	}
	if np := mustItem(t, s, idOf(t, s, checkpoint.KindAgent, "noparams")); len(np.Args) != 0 {
		t.Fatalf("item without params got %s", np.Args)
	}
	bad := item(checkpoint.KindAgent, "bad")
	bad.Args = json.RawMessage(`{"file_name":`)
	if _, err := s.AddItems(ctx(t), []checkpoint.Item{bad}); err == nil {
		t.Fatal("AddItems with arguments that are not JSON succeeded")
	}
}

func testTimes(t *testing.T, s checkpoint.Store) {
	loc := time.FixedZone("UTC+8", 8*3600)
	begin := time.Date(2026, 3, 1, 0, 0, 0, 1, loc)
	end := time.Date(2026, 3, 1, 23, 59, 59, 999999999, loc)
	req := time.Now() // carries a monotonic reading
	id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: begin, End: end, RequestedAt: req})
	if err != nil {
		t.Fatal(err)
	}
	utc := func(name string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s = %v (%v), want %v in UTC", name, got, got.Location(), want)
		}
	}
	t.Run("package", func(t *testing.T) {
		p, ok, err := s.OpenPackage(ctx(t), begin.UTC(), end.In(time.Local))
		if err != nil || !ok || p.ID != id {
			t.Fatalf("OpenPackage by equal instants in other zones = %d ok %v err %v", p.ID, ok, err)
		}
		utc("Begin", p.Begin, begin)
		utc("End", p.End, end)
		utc("RequestedAt", p.RequestedAt, req)
		utc("UpdatedAt", p.UpdatedAt, p.UpdatedAt)
	})
	t.Run("item", func(t *testing.T) {
		next := time.Date(2026, 3, 1, 8, 0, 0, 42, loc)
		it := item(checkpoint.KindAgent, "t")
		it.NextAttemptAt = next
		add(t, s, 1, it)
		got := mustItem(t, s, idOf(t, s, checkpoint.KindAgent, "t"))
		utc("NextAttemptAt", got.NextAttemptAt, next)
		utc("CreatedAt", got.CreatedAt, got.CreatedAt)
		utc("UpdatedAt", got.UpdatedAt, got.UpdatedAt)
		if c := claimAll(t, s, next.Add(-time.Nanosecond)); len(c) != 0 {
			t.Fatal("claimed one nanosecond early")
		}
		if c := claimAll(t, s, next); len(c) != 1 {
			t.Fatal("not claimed when due")
		}
	})
	t.Run("zero", func(t *testing.T) {
		zid, err := s.CreatePackage(ctx(t), checkpoint.Package{})
		if err != nil {
			t.Fatal(err)
		}
		p, ok, err := s.OpenPackage(ctx(t), time.Time{}, time.Time{})
		if err != nil || !ok || p.ID != zid {
			t.Fatalf("OpenPackage(zero window) = %d ok %v err %v", p.ID, ok, err)
		}
		if !p.Begin.IsZero() || !p.End.IsZero() || !p.RequestedAt.IsZero() {
			t.Fatalf("zero times came back as %v %v %v", p.Begin, p.End, p.RequestedAt)
		}
	})
	t.Run("call", func(t *testing.T) {
		cb := time.Date(2026, 3, 1, 12, 0, 0, 7, loc)
		if _, err := s.CompletePackage(ctx(t), checkpoint.Package{ID: id}, []checkpoint.Call{{CallID: "tc", Day: "2026-03-01", Begin: cb}}, nil); err != nil {
			t.Fatal(err)
		}
		c, err := s.DayCalls(ctx(t), "2026-03-01")
		if err != nil || len(c) != 1 {
			t.Fatalf("DayCalls = %v, %v", c, err)
		}
		utc("Call.Begin", c[0].Begin, cb)
	})
}

// testVerdicts: an absence keeps the source's evidence, an operator's
// decision keeps its reason and time, and both survive a re-add.
func testVerdicts(t *testing.T, s checkpoint.Store) {
	ev := item(checkpoint.KindTransfer, "ev")
	ev.State, ev.Reason, ev.Evidence = checkpoint.StateAbsent, "no recording", "queryTransferRecordHistory: opResult FAIL, no recordFilePath"
	add(t, s, 3, ev, item(checkpoint.KindTransfer, "nf"), item(checkpoint.KindAgent, "op"))
	got := wantState(t, s, idOf(t, s, checkpoint.KindTransfer, "ev"), checkpoint.StateAbsent)
	if got.Evidence != ev.Evidence || got.Reason != ev.Reason || !got.AttestedAt.IsZero() {
		t.Fatalf("added absent item = %+v", got)
	}
	nf := idOf(t, s, checkpoint.KindTransfer, "nf")
	if err := s.Absent(ctx(t), ownerA, nf, "not found upstream", "downloadOiapRecord 0300012 at 2026-03-04T10:00:00Z"); err != nil {
		t.Fatal(err)
	}
	if got := mustItem(t, s, nf); got.Evidence != "downloadOiapRecord 0300012 at 2026-03-04T10:00:00Z" || got.Reason != "not found upstream" {
		t.Fatalf("Absent kept %+v", got)
	}
	op := idOf(t, s, checkpoint.KindAgent, "op")
	claimed, err := s.Claim(ctx(t), ca, []string{checkpoint.KindAgent}, t0(), 0)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", ids(claimed), err)
	}
	if _, err := s.Fail(ctx(t), ownerA, op, "garbage", t0(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx(t), op, "", t0()); err == nil {
		t.Fatal("Resolve with an empty reason succeeded")
	}
	at := t0().Add(90 * time.Minute)
	res, err := s.Resolve(ctx(t), op, "upstream lists a file that never existed (ticket 42)", at)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != checkpoint.StateAbsent || res.Reason != "upstream lists a file that never existed (ticket 42)" || !res.AttestedAt.Equal(at) {
		t.Fatalf("Resolve = %+v", res)
	}
	if got := mustItem(t, s, op); !got.AttestedAt.Equal(at) || got.State != checkpoint.StateAbsent {
		t.Fatalf("after Resolve the item is %+v", got)
	}
	if _, err := s.Resolve(ctx(t), op, "again", at); !errors.Is(err, checkpoint.ErrState) {
		t.Fatalf("Resolve of an absent item = %v, want ErrState", err)
	}
}

// testPackages: Packages lists by state, in window order, with every field.
func testPackages(t *testing.T, s checkpoint.Store) {
	mk := func(h int) int64 {
		t.Helper()
		id, err := s.CreatePackage(ctx(t), checkpoint.Package{Begin: t0().Add(time.Duration(h) * time.Hour), End: t0().Add(time.Duration(h+1) * time.Hour),
			ResponseID: fmt.Sprint("r", h), BillFileName: fmt.Sprint("b", h), RequestedAt: t0()})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	late, early := mk(5), mk(1)
	p, ok, err := s.OpenPackage(ctx(t), t0().Add(5*time.Hour), t0().Add(6*time.Hour))
	if err != nil || !ok || p.ID != late {
		t.Fatalf("OpenPackage = %+v, %v, %v", p, ok, err)
	}
	p.State, p.Attempts, p.LastError, p.QuarantineKey = checkpoint.StateFailed, 1, "bad row", "t/quarantine/x-abc.zip"
	if err := s.UpdatePackage(ctx(t), p); err != nil {
		t.Fatal(err)
	}
	all, err := s.Packages(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != early || all[1].ID != late {
		t.Fatalf("Packages() = %+v, want [%d %d]", all, early, late)
	}
	failed, err := s.Packages(ctx(t), checkpoint.StateFailed)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].ID != late || failed[0].QuarantineKey != "t/quarantine/x-abc.zip" || failed[0].LastError != "bad row" {
		t.Fatalf("Packages(failed) = %+v", failed)
	}
	if none, err := s.Packages(ctx(t), checkpoint.StateDead); err != nil || len(none) != 0 {
		t.Fatalf("Packages(dead) = %+v, %v", none, err)
	}
}
