package jobs

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// Phases of a pass, in order (ProgressSnapshot.Phase).
const (
	PhaseCDR     = "cdr"     // the cdr job: requesting and storing the packages of the windows
	PhaseItems   = "items"   // the item jobs: downloading recordings, looking calls up
	PhaseLedgers = "ledgers" // writing the per-day ledgers
	PhaseDone    = "done"    // the pass has ended
)

// Progress counts what the pass under way (Once, Backfill, or a scheduled
// run of Serve) has done so far, for a display: set Archiver.Progress to a
// new Progress before the pass, and read Snapshot from any goroutine while
// it runs. The counts move where the pass's Report does: the cdr job's
// window loop and the item jobs' report (syncReport.add), so they are the
// Report's own numbers, seen early. A nil *Progress counts nothing.
type Progress struct {
	mu sync.Mutex
	s  ProgressSnapshot
	// pending items of the pass's item kinds in the store when last counted
	// (rebase), and the items added and ended since then.
	base, added, ended int
	countAdded         bool // the pass runs item jobs: items added count as pending
}

// ProgressSnapshot is what a pass has done at one moment.
type ProgressSnapshot struct {
	Phase        string    // PhaseCDR, PhaseItems, PhaseLedgers or PhaseDone; "" before the pass starts
	Started      time.Time // the start of the pass
	PhaseStarted time.Time // the start of Phase

	// WindowsTotal are the cdr windows of the pass: the range of a backfill,
	// the scheduled windows (lookback and catch-up) of once; WindowsDone
	// those finished: processed, failed, skipped as done before or held by
	// another replica.
	WindowsTotal, WindowsDone int

	// ItemsDone are the items finished by the pass: recordings stored (or
	// found stored already), lookups done, items absent by rule.
	ItemsDone int
	// ItemsFailed are the failed attempts the pass recorded (dead ones
	// included); the items are retried on a later run.
	ItemsFailed int
	// ItemsPending are the items of the pass's item jobs waiting in the
	// store (pending or in progress, counted at the start of each phase)
	// plus those the pass added, less those it ended (done, failed,
	// deferred, released). At the end it is about what waits for a later
	// run.
	ItemsPending int
	// Bytes are the bytes newly stored: recordings, CDR packages, rows files.
	Bytes int64
}

// Snapshot returns the counts now.
func (p *Progress) Snapshot() ProgressSnapshot {
	if p == nil {
		return ProgressSnapshot{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	s.ItemsPending = 0
	if p.countAdded {
		s.ItemsPending = max(0, p.base+p.added-p.ended)
	}
	return s
}

// Watch calls f with a snapshot every interval until ctx ends, then once
// more with the last one; it returns after that call. It is the loop of a
// periodic progress report; its caller only starts it.
func (p *Progress) Watch(ctx context.Context, interval time.Duration, f func(ProgressSnapshot)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f(p.Snapshot())
			return
		case <-t.C:
			f(p.Snapshot())
		}
	}
}

// begin resets the counts at the start of a pass: with or without the cdr
// job, with or without item jobs (whose items count as pending).
func (p *Progress) begin(now time.Time, cdr, items bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	phase := PhaseItems
	if cdr {
		phase = PhaseCDR
	}
	p.s = ProgressSnapshot{Phase: phase, Started: now, PhaseStarted: now}
	p.base, p.added, p.ended, p.countAdded = 0, 0, 0, items
}

// phase enters the next phase of the pass.
func (p *Progress) phase(name string, now time.Time) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.Phase, p.s.PhaseStarted = name, now
}

// rebase sets the pending items to n, as counted in the store now.
func (p *Progress) rebase(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base, p.added, p.ended = n, 0, 0
}

// planned sets the windows of the pass.
func (p *Progress) planned(windows int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.WindowsTotal = windows
}

// windowEnded counts a window finished, with what its report gained from
// before to after (after is then the next window's before).
func (p *Progress) windowEnded(before *Report, after *Report) {
	if p == nil {
		return
	}
	p.moved(before, after)
	p.mu.Lock()
	p.s.WindowsDone++
	p.mu.Unlock()
	*before = *after
}

// moved counts what a report gained from before to after.
func (p *Progress) moved(before, after *Report) {
	if p == nil {
		return
	}
	d := func(f func(r *Report) int) int { return f(after) - f(before) }
	done := d(func(r *Report) int { return r.Done + r.Existed + r.Absent })
	failed := d(func(r *Report) int { return r.Failed + r.Dead })
	ended := done + failed + d(func(r *Report) int { return r.Deferred + r.Released + r.LeaseLost })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.ItemsDone += done
	p.s.ItemsFailed += failed
	p.s.Bytes += after.Bytes - before.Bytes
	p.added += after.Added - before.Added
	p.ended += ended
}

// itemKinds are the item kinds the wanted item jobs claim.
func (a *Archiver) itemKinds(want map[string]bool) []string {
	var kinds []string
	for _, j := range Jobs()[1:] {
		if want[j] {
			kinds = append(kinds, a.spec(j).kinds...)
		}
	}
	return kinds
}

// countPending rebases a.Progress on the items of kinds the store holds
// pending or in progress (checkpoint.Store.Days, a summary the store keeps
// or aggregates). A failure leaves the count as it is: it is only shown.
func (a *Archiver) countPending(ctx context.Context, kinds []string) {
	if a.Progress == nil || len(kinds) == 0 {
		return
	}
	days, err := a.Store.Days(storeCtx(ctx))
	if err != nil {
		a.log.Debug("progress: count pending items", zap.Error(err))
		return
	}
	n := 0
	for _, d := range days {
		for _, k := range kinds {
			n += d.Counts[k][checkpoint.StatePending] + d.Counts[k][checkpoint.StateInProgress]
		}
	}
	a.Progress.rebase(n)
}
