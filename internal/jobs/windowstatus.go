package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

// WindowProblem is a cdr window whose newest package is not done: its CDRs,
// and the recordings they list, may be missing from the archive.
type WindowProblem struct {
	Begin, End    time.Time        // the window [Begin, End)
	BillFileName  string           // of the newest package
	State         checkpoint.State // of the newest package: pending, failed or dead
	Attempts      int              // failed tries of the newest package
	LastError     string           // its last failure, "" when none
	QuarantineKey string           // where its rejected bytes were kept, "" when none
	// Days are the tenant calendar days (yyyy-mm-dd in the location given to
	// ProblemWindows) the window covers: none of them is complete.
	Days []string
}

// ProblemWindows returns every cdr window whose newest package is pending,
// failed or dead, ordered by window begin. A window whose newest package is
// done is not a problem, however many of its earlier packages failed; a
// window whose newest package is a re-request (lookback) that is not done is
// one, even if an earlier package was done: the CDRs the re-request was for
// are not archived. loc is the tenant time zone of Days (nil = UTC).
func ProblemWindows(ctx context.Context, st checkpoint.Store, loc *time.Location) ([]WindowProblem, error) {
	if loc == nil {
		loc = time.UTC
	}
	pkgs, err := st.Packages(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: problem windows: %w", err)
	}
	type window struct{ begin, end int64 }
	newest := map[window]checkpoint.Package{}
	var order []window
	for _, p := range pkgs {
		w := window{p.Begin.UnixNano(), p.End.UnixNano()}
		cur, seen := newest[w]
		if !seen {
			order = append(order, w)
		}
		if !seen || p.ID > cur.ID {
			newest[w] = p
		}
	}
	out := []WindowProblem{}
	for _, w := range order {
		p := newest[w]
		if p.State == checkpoint.StateDone {
			continue
		}
		out = append(out, WindowProblem{
			Begin: p.Begin, End: p.End, BillFileName: p.BillFileName, State: p.State,
			Attempts: p.Attempts, LastError: p.LastError, QuarantineKey: p.QuarantineKey,
			Days: windowDays(p.Begin, p.End, loc),
		})
	}
	return out, nil
}

// windowDays lists the calendar days in loc that [begin, end) touches.
func windowDays(begin, end time.Time, loc *time.Location) []string {
	if !end.After(begin) {
		return []string{begin.In(loc).Format(time.DateOnly)}
	}
	last := end.Add(-time.Nanosecond).In(loc).Format(time.DateOnly)
	b := begin.In(loc)
	d := time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, loc)
	var days []string
	for {
		s := d.Format(time.DateOnly)
		days = append(days, s)
		if s >= last {
			return days
		}
		d = d.AddDate(0, 0, 1)
	}
}

// ExportState sets the gauges that describe the checkpoint store rather
// than a run: the cdr watermark, each job's last success and the items per
// kind and state. Call it
// when a process starts and before every pass, so that a fresh process
// exports them before its first run finishes (or when it never does).
func (a *Archiver) ExportState(ctx context.Context) error {
	if err := a.init(); err != nil {
		return err
	}
	sctx := storeCtx(ctx)
	wm, ok, err := a.Store.Watermark(sctx, config.JobCDR)
	if err != nil {
		return a.storeErr("read cdr watermark", err)
	}
	if ok {
		a.met.Watermark(config.JobCDR, wm)
	}
	for _, job := range Jobs() {
		t, ok, err := a.Store.LastSuccess(sctx, job)
		if err != nil {
			return a.storeErr("read last success of "+job, err)
		}
		if ok {
			a.met.LastSuccess(job, t)
		}
	}
	days, err := a.Store.Days(sctx)
	if err != nil {
		return a.storeErr("days", err)
	}
	a.met.SetItems(itemCounts(days))
	return nil
}

// itemCounts sums the days' items per kind and state.
func itemCounts(days []checkpoint.DaySummary) map[string]map[string]int {
	counts := map[string]map[string]int{}
	for _, d := range days {
		for kind, states := range d.Counts {
			if counts[kind] == nil {
				counts[kind] = map[string]int{}
			}
			for st, n := range states {
				counts[kind][string(st)] += n
			}
		}
	}
	return counts
}
