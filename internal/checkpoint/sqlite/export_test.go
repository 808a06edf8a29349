package sqlite

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
)

// collect returns every row of seq, failing the test on an error.
func collect[T any](t *testing.T, what string, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		out = append(out, v)
	}
	return out
}

// TestStore_Export: the dump of a filled state has every item and package
// as the Store returns them, every call with when it was recorded, the
// watermarks, ledger records, last successes and last runs, in key order,
// and counts that agree; its
// iterators end with Export.
func TestStore_Export(t *testing.T) {
	s := mustOpen(t, dbPath(t), Options{})
	f := checkpointtest.Fill(t, s)
	ctx := t.Context()
	wantItems, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPkgs, err := s.Packages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(wantPkgs, func(a, b checkpoint.Package) int { return int(a.ID - b.ID) })
	var (
		stale      checkpoint.Dump
		items      []checkpoint.Item
		pkgs       []checkpoint.Package
		calls      []checkpoint.CallRow
		watermarks []checkpoint.WatermarkRow
		ledgers    []checkpoint.LedgerRow
		successes  []checkpoint.SuccessRow
		runs       []checkpoint.JobRun
		counts     checkpoint.Counts
	)
	// fn reads the dump only: the store's other methods would wait for the
	// connection the snapshot holds.
	err = s.Export(ctx, func(d checkpoint.Dump) error {
		stale = d
		items, pkgs, calls = collect(t, "items", d.Items), collect(t, "packages", d.Packages), collect(t, "calls", d.Calls)
		watermarks, ledgers = collect(t, "watermarks", d.Watermarks), collect(t, "ledgers", d.Ledgers)
		successes, runs = collect(t, "successes", d.Successes), collect(t, "runs", d.Runs)
		var err error
		counts, err = d.Counts()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(items, wantItems) {
		t.Errorf("items:\n%+v\nwant\n%+v", items, wantItems)
	}
	if !reflect.DeepEqual(pkgs, wantPkgs) {
		t.Errorf("packages:\n%+v\nwant\n%+v", pkgs, wantPkgs)
	}
	if !slices.IsSortedFunc(calls, func(a, b checkpoint.CallRow) int { return strings.Compare(a.CallID, b.CallID) }) || len(calls) != 4 {
		t.Errorf("calls not all there in order: %+v", calls)
	}
	for _, c := range calls {
		day, err := s.DayCalls(ctx, c.Day)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(day, c.Call) || c.CreatedAt.IsZero() {
			t.Errorf("call %+v: not among its day's %+v, or no creation time", c, day)
		}
	}
	var jobs []string
	for _, w := range watermarks {
		jobs = append(jobs, w.Job)
		if got, _, err := s.Watermark(ctx, w.Job); err != nil || !got.Equal(w.T) {
			t.Errorf("watermark %s: %v, the store says %v (%v)", w.Job, w.T, got, err)
		}
	}
	if want := []string{"cdr", "ledger"}; !slices.Equal(jobs, want) {
		t.Errorf("watermarks of %v, want %v", jobs, want)
	}
	var days []string
	for _, l := range ledgers {
		days = append(days, l.Day)
		sum, key, _, err := s.Ledger(ctx, l.Day)
		if err != nil || sum != l.SHA256 || key != l.Key || l.WrittenAt.IsZero() {
			t.Errorf("ledger %+v: the store says %s %s (%v)", l, sum, key, err)
		}
	}
	if want := f.LedgerDays[:3]; !slices.Equal(days, want) {
		t.Errorf("ledgers of %v, want %v", days, want)
	}
	jobs = nil
	for _, r := range successes {
		jobs = append(jobs, r.Job)
		if got, _, err := s.LastSuccess(ctx, r.Job); err != nil || !got.Equal(r.T) {
			t.Errorf("last success of %s: %v, the store says %v (%v)", r.Job, r.T, got, err)
		}
	}
	if want := []string{"cdr", "recordings"}; !slices.Equal(jobs, want) {
		t.Errorf("last successes of %v, want %v", jobs, want)
	}
	jobs = nil
	for _, r := range runs {
		jobs = append(jobs, r.Job)
		if got, _, err := s.LastRun(ctx, r.Job); err != nil || got != r {
			t.Errorf("last run %+v, the store says %+v (%v)", r, got, err)
		}
	}
	if want := []string{"cdr", "ivr", "recordings"}; !slices.Equal(jobs, want) {
		t.Errorf("last runs of %v, want %v", jobs, want)
	}
	wantTables := map[string]int64{checkpoint.TableItems: int64(len(wantItems)), checkpoint.TablePackages: int64(len(wantPkgs)),
		checkpoint.TableCalls: 4, checkpoint.TableWatermarks: 2, checkpoint.TableLedgers: 3,
		checkpoint.TableJobSuccesses: 2, checkpoint.TableJobRuns: 3}
	wantStates := map[checkpoint.State]int64{}
	for _, it := range wantItems {
		wantStates[it.State]++
	}
	if !maps.Equal(counts.Tables, wantTables) || !maps.Equal(counts.ItemStates, wantStates) {
		t.Errorf("counts %+v, want %v %v", counts, wantTables, wantStates)
	}
	failed := false
	for _, err := range stale.Items {
		failed = err != nil
		break
	}
	if !failed {
		t.Error("the dump's items are readable after Export returned")
	}
}
