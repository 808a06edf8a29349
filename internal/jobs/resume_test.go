package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

// queries is the number of queryBillData requests the simulator answered.
func (e *env) queries() int { return e.sim.Stats().Requests[cecwire.PathQueryBillData] }

// TestBackfill_Resumes: a backfill over days a first one already did
// requests only the windows that one did not finish and those the lookback
// re-scans; --rescan requests them all.
func TestBackfill_Resumes(t *testing.T) {
	const days = 6
	e := newEnv(t, envOptions{sim: func(o *cecsim.Options) { o.Days = days; o.Calls = 90 }})
	// Now is noon of the day after the last: with a lookback of 2 the days
	// 0-3 are older than the lookback, 4 and 5 are re-scanned every run.
	e.clock.Add(time.Duration(days)*24*time.Hour + 12*time.Hour - 60*time.Hour)
	ctx := testCtx(t)
	m := e.sim.Manifest()
	end := simStart.AddDate(0, 0, days)

	// A first backfill that got as far as day 3 (k = 4 windows of 6).
	const k = 4
	if _, err := e.a.Backfill(ctx, simStart, simStart.AddDate(0, 0, k), BackfillOptions{}); err != nil {
		t.Fatalf("first backfill: %v", err)
	}
	if q := e.queries(); q != k {
		t.Fatalf("the first backfill made %d queryBillData requests, want %d", q, k)
	}

	before := e.queries()
	rep, err := e.a.Backfill(ctx, simStart, end, BackfillOptions{})
	if err != nil {
		t.Fatalf("second backfill: %v", err)
	}
	if q := e.queries() - before; q != days-k {
		t.Errorf("the second backfill made %d queryBillData requests, want %d (the windows after the first's)", q, days-k)
	}
	if rep.WindowsSettled != k || rep.Windows != days-k {
		t.Errorf("report: %d windows, %d skipped; want %d and %d", rep.Windows, rep.WindowsSettled, days-k, k)
	}
	e.checkArchive(m)
	e.checkLedgers(m, true)

	// Again: the days older than the lookback are skipped, the last two
	// (within the lookback) are requested again.
	before = e.queries()
	if rep, err = e.a.Backfill(ctx, simStart, end, BackfillOptions{}); err != nil {
		t.Fatalf("third backfill: %v", err)
	}
	if q := e.queries() - before; q != 2 || rep.WindowsSettled != days-2 {
		t.Errorf("a repeated backfill made %d requests and skipped %d windows; want 2 (the lookback) and %d", q, rep.WindowsSettled, days-2)
	}

	before = e.queries()
	if rep, err = e.a.Backfill(ctx, simStart, end, BackfillOptions{Rescan: true}); err != nil {
		t.Fatalf("rescan: %v", err)
	}
	if q := e.queries() - before; q != days || rep.WindowsSettled != 0 {
		t.Errorf("--rescan made %d requests and skipped %d windows; want %d and 0", q, rep.WindowsSettled, days)
	}
	e.checkArchive(m)

	// A window whose newest package is not done is never skipped.
	t.Run("open package", func(t *testing.T) {
		p, ok, err := e.store.LastDonePackage(ctx, simStart, simStart.AddDate(0, 0, 1))
		if err != nil || !ok {
			t.Fatalf("LastDonePackage: %v %v", ok, err)
		}
		if _, err := e.store.CreatePackage(ctx, checkpoint.Package{Begin: p.Begin, End: p.End, RequestedAt: e.clock.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		ok, err = e.a.settled(ctx, Window{Begin: p.Begin, End: p.End}, e.a.stepBack(e.clock.Now(), e.a.Lookback))
		if err != nil || ok {
			t.Errorf("settled = %v, %v; want false for a window with an open package", ok, err)
		}
	})
}

// stallingStore blocks the n-th CreatePackage until release is closed, and
// signals when it is blocked: a run killed while it requests window n. (The
// jobs call the store with a context that is never cancelled.)
type stallingStore struct {
	checkpoint.Store
	n       int
	calls   int
	blocked chan struct{}
	release chan struct{}
}

func (s *stallingStore) CreatePackage(ctx context.Context, p checkpoint.Package) (int64, error) {
	s.calls++
	if s.calls == s.n {
		close(s.blocked)
		<-s.release
		return 0, context.Canceled
	}
	return s.Store.CreatePackage(ctx, p)
}

// TestCatchUp_SavesWatermarkPerWindow: a cdr run catching up over many
// windows saves the watermark after each one, so a run killed at window k
// starts the next one from there (less the lookback), not from the start.
func TestCatchUp_SavesWatermarkPerWindow(t *testing.T) {
	const days = 5
	e := newEnv(t, envOptions{sim: func(o *cecsim.Options) { o.Days = days; o.Calls = 50 }})
	e.clock.Add(time.Duration(days)*24*time.Hour + 12*time.Hour - 60*time.Hour)
	ctx := testCtx(t)
	if err := e.store.SetWatermark(ctx, config.JobCDR, simStart); err != nil {
		t.Fatal(err)
	}
	// The run requests the two lookback windows before the watermark, then
	// days 0, 1, 2...: the store stalls at the request of day 2 (the fifth)
	// as if the process were killed there; the state is read while it hangs.
	ss := &stallingStore{Store: e.store, n: 5, blocked: make(chan struct{}), release: make(chan struct{})}
	e.a.Store = ss
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.a.Run(rctx, config.JobCDR)
	}()
	<-ss.blocked
	wm, ok, err := e.store.Watermark(ctx, config.JobCDR)
	cancel()
	close(ss.release)
	<-done
	if err != nil || !ok {
		t.Fatalf("watermark: %v %v", ok, err)
	}
	if want := simStart.AddDate(0, 0, 2); !wm.Equal(want) {
		t.Errorf("watermark while day 2 is requested: %v, want %v (the end of day 1)", wm, want)
	}
}

// TestRunCDR_TakesUpUnfinishedWindows: a scheduled cdr run takes up again
// the windows before its own whose newest package is not finished, however
// long ago: a request a killed replica left pending and a re-scan that
// failed, both in windows that have left the lookback (no run schedules
// them again). A window whose newest package is dead stays as it is, and
// the taken-up windows do not move the watermark back.
func TestRunCDR_TakesUpUnfinishedWindows(t *testing.T) {
	const days = 6
	e := newEnv(t, envOptions{sim: func(o *cecsim.Options) { o.Days = days; o.Calls = 60 }})
	e.clock.Add(time.Duration(days)*24*time.Hour + 12*time.Hour - 60*time.Hour)
	ctx := testCtx(t)
	if err := e.store.SetWatermark(ctx, config.JobCDR, simStart); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatalf("catch-up: %v", err)
	}
	wm, _, err := e.store.Watermark(ctx, config.JobCDR)
	if err != nil || !wm.Equal(simStart.AddDate(0, 0, days)) {
		t.Fatalf("watermark after the catch-up: %s, %v; want %s", wm, err, simStart.AddDate(0, 0, days))
	}
	day := func(d int) (time.Time, time.Time) { return simStart.AddDate(0, 0, d), simStart.AddDate(0, 0, d+1) }
	open := func(d int, st checkpoint.State) {
		t.Helper()
		b, en := day(d)
		id, err := e.store.CreatePackage(ctx, checkpoint.Package{Begin: b, End: en, ResponseID: "gone", BillFileName: "gone.zip",
			RequestedAt: e.clock.Now().Add(-24 * time.Hour)})
		if err == nil && st != checkpoint.StatePending {
			err = e.store.UpdatePackage(ctx, checkpoint.Package{ID: id, ResponseID: "gone", BillFileName: "gone.zip",
				RequestedAt: e.clock.Now().Add(-24 * time.Hour), State: st, Attempts: 1, LastError: "queryBillData: HTTP 500"})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	open(0, checkpoint.StateDead)    // given up on: reported, not taken up
	open(1, checkpoint.StatePending) // a replica killed after requesting it
	open(2, checkpoint.StateFailed)  // a re-scan that failed
	if wins, err := ProblemWindows(ctx, e.store, time.UTC); err != nil || len(wins) != 3 {
		t.Fatalf("ProblemWindows before the run: %+v, %v; want 3", wins, err)
	}

	before := e.queries()
	rep, err := e.a.Run(ctx, config.JobCDR)
	if err != nil || RunFailure(rep, err) != nil {
		t.Fatalf("run: %+v, %v", rep, err)
	}
	// The lookback's two windows, and days 1 and 2 requested again.
	if q := e.queries() - before; q != 4 || rep.Windows != 4 {
		t.Errorf("the run made %d queryBillData requests over %d windows, want 4 and 4 (2 of the lookback, 2 taken up)", q, rep.Windows)
	}
	wins, err := ProblemWindows(ctx, e.store, time.UTC)
	if err != nil || len(wins) != 1 || !wins[0].Begin.Equal(simStart) || wins[0].State != checkpoint.StateDead {
		t.Errorf("ProblemWindows after the run: %+v, %v; want only day 0's, dead", wins, err)
	}
	for _, d := range []int{1, 2} {
		b, en := day(d)
		if p, ok, err := e.store.LastDonePackage(ctx, b, en); err != nil || !ok || p.ResponseID == "gone" {
			t.Errorf("day %d: newest done package %+v, %v, %v; want a new request done", d, p, ok, err)
		}
	}
	if got, _, err := e.store.Watermark(ctx, config.JobCDR); err != nil || !got.Equal(wm) {
		t.Errorf("watermark after the run: %s, %v; want %s", got, err, wm)
	}

	// Nothing left: the next run requests the lookback alone.
	before = e.queries()
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatal(err)
	}
	if q := e.queries() - before; q != 2 {
		t.Errorf("the next run made %d queryBillData requests, want 2 (the lookback)", q)
	}
}
