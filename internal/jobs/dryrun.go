package jobs

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DryRun prints, for each window of Plan(from, to), the requests a backfill
// would make: one queryBillData, downloadBillFile polls until the package is
// ready, one download per recording and two OIFDE lookups per call (plus one
// download per transfer/IVR recording they find). Where the checkpoint store
// already has a done package of the same window it prints that package's
// calls, items and bytes; a window the backfill skips (settled, unless
// rescan) is printed as skipped. It never calls CEC and never writes
// anything.
func (a *Archiver) DryRun(ctx context.Context, from, to time.Time, rescan bool, w io.Writer) error {
	if err := a.init(); err != nil {
		return err
	}
	plan := a.Plan(from, to)
	fmt.Fprintf(w, "dry run: %d window(s) from %s to %s (%s), method %s\n",
		len(plan), from.In(a.loc()).Format(time.RFC3339), to.In(a.loc()).Format(time.RFC3339), a.loc(), a.method())
	var calls, recs int
	var size int64
	known, skipped := 0, 0
	horizon := a.stepBack(a.now(), a.Lookback)
	for _, win := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !rescan {
			ok, err := a.settled(storeCtx(ctx), win, horizon)
			if err != nil {
				return err
			}
			if ok {
				skipped++
				fmt.Fprintf(w, "window %s: done before and older than the lookback: skipped (--rescan requests it again)\n", win)
				continue
			}
		}
		p, ok, err := a.Store.LastDonePackage(storeCtx(ctx), win.Begin, win.End)
		if err != nil {
			return a.storeErr("last done package", err)
		}
		fmt.Fprintf(w, "window %s: 1 queryBillData, downloadBillFile polls (first after %s, doubling up to %s, for at most %s)",
			win, a.pollInterval(), MaxPollInterval, a.readyTimeout())
		if !ok {
			fmt.Fprintf(w, "; calls and recordings unknown until the package is fetched: 1 download per recording-index row, 2 OIFDE lookups per call\n")
			continue
		}
		known++
		perCall := 2
		rows := p.Items - perCall*p.Calls
		if rows < 0 {
			rows = 0
		}
		calls += p.Calls
		recs += rows
		size += p.Size
		fmt.Fprintf(w, "; last package %s: %d bytes, %d calls → %d agent recording downloads, %d OIFDE lookups (+1 download per transfer/IVR recording found)\n",
			p.BillFileName, p.Size, p.Calls, rows, perCall*p.Calls)
	}
	fmt.Fprintf(w, "total: %d windows (%d skipped), %d queryBillData requests; known from %d earlier packages: %d calls, %d agent recordings, %d OIFDE lookups, %d package bytes\n",
		len(plan), skipped, len(plan)-skipped, known, calls, recs, 2*calls, size)
	return nil
}
