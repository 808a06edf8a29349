package checkpointtest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// Filled says what Fill put in a store, for SameState: the jobs that have
// a watermark, a last success or a last run, and the days that have a
// ledger record.
type Filled struct {
	Jobs       []string
	LedgerDays []string
}

// Fill gives s, an empty store, a state with a row in every table of the
// persistent state and every column set somewhere, through its public API
// only: items of every kind in every state (done, absent on evidence and
// by an operator, failed, dead, deferred, released, never tried, and one
// left in_progress under a lease), with arguments; packages done, failed
// with a quarantine key, dead and pending; calls on two days; watermarks;
// ledger records, one replaced and one of a day without calls; last
// successes; last runs ended ok, failed and still running; and a named
// lease, which a copy leaves out. It returns what SameState needs.
func Fill(t testing.TB, s checkpoint.Store) Filled {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
	day1, day2, day3 := "2026-03-01", "2026-03-02", "2026-03-03"
	d1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	args := func(i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"file_name":"rec-%d.wav","location_id":"%d","nested":{"n":[1,2.5,"x"]}}`, i, i))
	}
	rec := func(kind, up, call, day string, i int) checkpoint.Item {
		return checkpoint.Item{Kind: kind, UpstreamID: up, CallID: call, Day: day, Key: "rec/" + day + "/" + up, Args: args(i)}
	}
	lookup := func(kind, call, day string) checkpoint.Item {
		return checkpoint.Item{Kind: kind, UpstreamID: call, CallID: call, Day: day}
	}

	// Day 1: a package done, with its calls and items.
	p1, err := s.CreatePackage(ctx, checkpoint.Package{Begin: d1, End: d1.AddDate(0, 0, 1), ResponseID: "resp-1",
		BillFileName: "bill-1.zip", RequestedAt: d1.Add(25 * time.Hour)})
	must(err)
	calls1 := []checkpoint.Call{
		{CallID: "call-1", Day: day1, Begin: d1.Add(9 * time.Hour), VDN: "100", AgentID: "agent-1"},
		{CallID: "call-2", Day: day1, Begin: d1.Add(10*time.Hour + 123456789), VDN: "100", AgentID: "agent-2"},
		{CallID: "call-3", Day: day1, Begin: d1.Add(23 * time.Hour), VDN: "200"},
	}
	items1 := []checkpoint.Item{
		rec(checkpoint.KindAgent, "a-done", "call-1", day1, 1),
		rec(checkpoint.KindAgent, "a-failed", "call-1", day1, 2),
		rec(checkpoint.KindAgent, "a-dead", "call-2", day1, 3),
		rec(checkpoint.KindAgent, "a-resolved", "call-2", day1, 4),
		rec(checkpoint.KindTransfer, "t-deferred", "call-3", day1, 5),
		rec(checkpoint.KindIVR, "i-evidence", "call-3", day1, 6),
		rec(checkpoint.KindAgent, "a-in-progress", "call-3", day1, 7),
		lookup(checkpoint.KindTransferLookup, "call-1", day1),
		lookup(checkpoint.KindIVRLookup, "call-1", day1),
		{Kind: checkpoint.KindTransfer, UpstreamID: "t-absent-at-add", CallID: "call-2", Day: day1, State: checkpoint.StateAbsent,
			Reason: "recordResult says no recording", Evidence: "queryTransferRecordHistory recordResult=1"},
	}
	_, err = s.CompletePackage(ctx, checkpoint.Package{ID: p1, ResponseID: "resp-1", BillFileName: "bill-1.zip",
		RequestedAt: d1.Add(25 * time.Hour), Attempts: 1, LastError: "not ready yet", Key: "cdr/2026-03-01/bill-1.zip",
		RowsKey: "cdr/2026-03-01/rows.jsonl.gz", Size: 4096, SHA256: "aa11", RowsSHA256: "bb22", Calls: len(calls1), Items: len(items1)},
		calls1, items1)
	must(err)

	// Day 2: a package done; a re-request of the window rejected for its
	// content (failed, quarantined), another dead; day 3's still pending.
	d2 := d1.AddDate(0, 0, 1)
	p2, err := s.CreatePackage(ctx, checkpoint.Package{Begin: d2, End: d2.AddDate(0, 0, 1), ResponseID: "resp-2", BillFileName: "bill-2.zip"})
	must(err)
	calls2 := []checkpoint.Call{{CallID: "call-4", Day: day2, Begin: d2.Add(time.Hour), VDN: "300", AgentID: "agent-4"}}
	items2 := []checkpoint.Item{rec(checkpoint.KindAgent, "a-pending", "call-4", day2, 8), rec(checkpoint.KindAgent, "a-orphan", "call-x", day2, 9)}
	_, err = s.CompletePackage(ctx, checkpoint.Package{ID: p2, ResponseID: "resp-2", BillFileName: "bill-2.zip", Key: "cdr/2026-03-02/bill-2.zip",
		Size: 100, SHA256: "cc33", Calls: 1, Items: 2}, calls2, items2)
	must(err)
	p3, err := s.CreatePackage(ctx, checkpoint.Package{Begin: d2, End: d2.AddDate(0, 0, 1), ResponseID: "resp-3", BillFileName: "bill-3.zip"})
	must(err)
	must(s.UpdatePackage(ctx, checkpoint.Package{ID: p3, ResponseID: "resp-3", BillFileName: "bill-3.zip", State: checkpoint.StateFailed,
		Attempts: 2, LastError: "row 3: empty call_id", QuarantineKey: "quarantine/dd44.zip", Size: 77, SHA256: "dd44"}))
	p4, err := s.CreatePackage(ctx, checkpoint.Package{Begin: d2, End: d2.AddDate(0, 0, 1), ResponseID: "resp-4", BillFileName: "bill-4.zip"})
	must(err)
	must(s.UpdatePackage(ctx, checkpoint.Package{ID: p4, ResponseID: "resp-4", BillFileName: "bill-4.zip", State: checkpoint.StateDead,
		Attempts: 5, LastError: "expired"}))
	d3 := d2.AddDate(0, 0, 1)
	_, err = s.CreatePackage(ctx, checkpoint.Package{Begin: d3, End: d3.AddDate(0, 0, 1), ResponseID: "resp-5", RequestedAt: d3.Add(time.Hour)})
	must(err)

	// The items' life: claim the due ones and move each where it belongs.
	owner := "fill-host-1-00000000"
	claimed, err := s.Claim(ctx, checkpoint.Claimer{Owner: owner, Lease: time.Hour}, nil, d3, 0)
	must(err)
	byUp := map[string]int64{}
	for _, it := range claimed {
		byUp[it.UpstreamID+"/"+it.Kind] = it.ID
	}
	id := func(kind, up string) int64 {
		t.Helper()
		n, ok := byUp[up+"/"+kind]
		if !ok {
			t.Fatalf("fill: %s %s was not claimed", kind, up)
		}
		return n
	}
	must(s.Done(ctx, owner, id(checkpoint.KindAgent, "a-done"), "rec/2026-03-01/a-done", 8044, "ee55"))
	_, err = s.Fail(ctx, owner, id(checkpoint.KindAgent, "a-failed"), "HTTP 503", d3.Add(time.Hour), 5)
	must(err)
	_, err = s.Fail(ctx, owner, id(checkpoint.KindAgent, "a-dead"), "0300012 file not found", d3, 1)
	must(err)
	_, err = s.Fail(ctx, owner, id(checkpoint.KindAgent, "a-resolved"), "garbage row", d3, 1)
	must(err)
	_, err = s.Resolve(ctx, id(checkpoint.KindAgent, "a-resolved"), "the index lists a file that never existed", d3.Add(2*time.Hour))
	must(err)
	must(s.Defer(ctx, owner, id(checkpoint.KindTransfer, "t-deferred"), d3.Add(30*time.Minute), "not settled yet"))
	must(s.Absent(ctx, owner, id(checkpoint.KindIVR, "i-evidence"), "no recording", "queryRecordHistory resultCode=0 records=0"))
	must(s.Done(ctx, owner, id(checkpoint.KindTransferLookup, "call-1"), "", 0, ""))
	must(s.Release(ctx, owner, id(checkpoint.KindIVRLookup, "call-1")))
	must(s.Release(ctx, owner, id(checkpoint.KindAgent, "a-pending")))
	_, err = s.Fail(ctx, owner, id(checkpoint.KindAgent, "a-orphan"), "reset", d3, 5)
	must(err)
	// a-in-progress stays claimed. A new item, never tried:
	_, err = s.AddItems(ctx, []checkpoint.Item{rec(checkpoint.KindAgent, "a-new", "call-4", day2, 10)})
	must(err)

	must(s.SetWatermark(ctx, "cdr", d3))
	must(s.SetWatermark(ctx, "ledger", d3.Add(90*time.Minute+1)))
	must(s.SetLedger(ctx, day1, "", "f1", "ledger/2026-03-01/1.json"))
	must(s.SetLedger(ctx, day1, "f1", "f2", "ledger/2026-03-01/2.json"))
	must(s.SetLedger(ctx, day2, "", "f3", "ledger/2026-03-02/1.json"))
	must(s.SetLedger(ctx, day3, "", "f4", "ledger/2026-03-03/1.json"))
	must(s.SetLastSuccess(ctx, "cdr", d3.Add(time.Minute+3)))
	must(s.SetLastSuccess(ctx, "recordings", d3.Add(2*time.Minute)))
	must(s.SetLastRun(ctx, checkpoint.JobRun{Job: "cdr", Started: d3, Finished: d3.Add(time.Minute + 3), Result: checkpoint.RunOK,
		Done: 4, Bytes: 123456, Replica: owner}))
	must(s.SetLastRun(ctx, checkpoint.JobRun{Job: "recordings", Started: d3.Add(time.Hour), Finished: d3.Add(time.Hour + 5*time.Second),
		Result: checkpoint.RunFailed, Error: "jobs: run recorded failures: 0 windows or packages failed, 2 attempts failed, 1 items dead",
		Done: 1, Failed: 3, Bytes: 8044, Replica: owner}))
	must(s.SetLastRun(ctx, checkpoint.JobRun{Job: "ivr", Started: d3.Add(2 * time.Hour), Result: checkpoint.RunRunning, Replica: owner}))
	ok, err := s.TryLease(ctx, "janitor", owner, time.Hour)
	must(err)
	if !ok {
		t.Fatal("fill: TryLease(janitor) = false")
	}
	return Filled{Jobs: []string{"cdr", "ivr", "ledger", "recordings"}, LedgerDays: []string{day1, day2, day3, "2026-03-04"}}
}

// Release is what a copy makes of an item in_progress in its source: a
// pending item, due at once, without owner or lease, as RecoverInProgress
// releases it (its UpdatedAt kept). Other items are returned as they are.
func Release(it checkpoint.Item) checkpoint.Item {
	if it.State == checkpoint.StateInProgress {
		it.State = checkpoint.StatePending
		it.NextAttemptAt, it.Owner, it.LeaseUntil = time.Time{}, "", time.Time{}
	}
	return it
}

// SameState checks, through the public API, that dst holds the state of
// src as a copy must: every item (with src's in_progress items released),
// package, call, day summary, watermark, last success and last run of
// f.Jobs and ledger record of f.LedgerDays equal, every field.
func SameState(t testing.TB, src, dst checkpoint.Store, f Filled) {
	t.Helper()
	ctx := t.Context()
	srcItems, err := src.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range srcItems {
		srcItems[i] = Release(srcItems[i])
	}
	dstItems, err := dst.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "items", srcItems, dstItems)
	srcPkgs, err := src.Packages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dstPkgs, err := dst.Packages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "packages", srcPkgs, dstPkgs)
	srcDays, err := src.Days(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range srcDays {
		for _, byState := range d.Counts {
			if n := byState[checkpoint.StateInProgress]; n > 0 {
				byState[checkpoint.StatePending] += n
				delete(byState, checkpoint.StateInProgress)
			}
		}
	}
	dstDays, err := dst.Days(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "days", srcDays, dstDays)
	for _, d := range srcDays {
		sc, err := src.DayCalls(ctx, d.Day)
		if err != nil {
			t.Fatal(err)
		}
		dc, err := dst.DayCalls(ctx, d.Day)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "calls of "+d.Day, sc, dc)
	}
	for _, job := range f.Jobs {
		st, sok, err := src.Watermark(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		dt, dok, err := dst.Watermark(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if sok != dok || !st.Equal(dt) {
			t.Errorf("watermark %s: %v %v, want %v %v", job, dt, dok, st, sok)
		}
	}
	for _, job := range f.Jobs {
		st, sok, err := src.LastSuccess(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		dt, dok, err := dst.LastSuccess(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if sok != dok || !st.Equal(dt) {
			t.Errorf("last success of %s: %v %v, want %v %v", job, dt, dok, st, sok)
		}
		sr, sok, err := src.LastRun(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		dr, dok, err := dst.LastRun(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if sok != dok || sr != dr {
			t.Errorf("last run of %s: %+v %v, want %+v %v", job, dr, dok, sr, sok)
		}
	}
	for _, day := range f.LedgerDays {
		ss, sk, sok, err := src.Ledger(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		ds, dk, dok, err := dst.Ledger(ctx, day)
		if err != nil {
			t.Fatal(err)
		}
		if ss != ds || sk != dk || sok != dok {
			t.Errorf("ledger of %s: %q %q %v, want %q %q %v", day, ds, dk, dok, ss, sk, sok)
		}
	}
}

// diff reports the elements of got that differ from want's, every field.
func diff[T any](t testing.TB, what string, want, got []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s[%d]:\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
}
