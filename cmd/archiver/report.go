package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// summary is the one-line account of a run, on stdout.
func summary(w io.Writer, cmd string, r *jobs.Report) {
	settled := ""
	if r.WindowsSettled > 0 {
		settled = fmt.Sprintf(" (%d done before, skipped)", r.WindowsSettled)
	}
	fmt.Fprintf(w, "%s: %d windows%s, %d packages, %d new items, %d done (%d already stored), %d absent, %d deferred, %d failed, %d dead, %d bytes\n",
		cmd, r.Windows, settled, r.Packages, r.Added, r.Done+r.Existed, r.Existed, r.Absent, r.Deferred, r.Failed, r.Dead, r.Bytes)
}

// replicas says what other replicas of the tenant took from this run, when
// they did: items abandoned because another replica took over their lease
// (this one stalled past it), and CDR windows skipped because another
// replica was processing them. Neither is a failure: that replica does the
// work.
func replicas(w io.Writer, cmd string, r *jobs.Report) {
	if r.LeaseLost > 0 {
		fmt.Fprintf(w, "%s: %d items abandoned to other replicas (their lease was lost); those replicas finish them\n", cmd, r.LeaseLost)
	}
	if r.WindowsHeld > 0 {
		fmt.Fprintf(w, "%s: %d windows held by other replicas, skipped; those replicas process them\n", cmd, r.WindowsHeld)
	}
}

// outcome turns the result of a run (once, backfill) into output and an exit
// code: the summary on stdout; every failed and dead item of the state, the
// window failures and the run's error on stderr. self is this process's
// replica ID: items left in progress under another's lease are named too.
func (c *cli) outcome(ctx context.Context, cmd string, store checkpoint.Store, self string, rep *jobs.Report, runErr error, sh *shutdown) int {
	if rep == nil {
		rep = &jobs.Report{}
	}
	summary(c.stdout, cmd, rep)
	code := exitOK
	fail := func(n int) {
		if n > code {
			code = n
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(c.stderr, "%s: failed window: %s\n", cmd, e)
		fail(exitFailed)
	}
	if rep.PackagesFailed > 0 && len(rep.Errors) == 0 {
		fmt.Fprintf(c.stderr, "%s: %d packages could not be obtained\n", cmd, rep.PackagesFailed)
		fail(exitFailed)
	}
	if store != nil {
		bad, err := store.Items(ctx, checkpoint.StateFailed, checkpoint.StateDead)
		if err != nil {
			fmt.Fprintf(c.stderr, "%s: list failed items: %v\n", cmd, err)
			fail(exitFailed)
		}
		if len(bad) > 0 {
			fmt.Fprintf(c.stderr, "%s: %d items failed or dead:\n", cmd, len(bad))
			printItems(c.stderr, bad)
			fail(exitFailed)
		}
		if waiting := pendingItems(ctx, store); waiting > 0 {
			fmt.Fprintf(c.stdout, "%s: %d items waiting for a later run (pending or deferred, not failures)\n", cmd, waiting)
		}
		heldElsewhere(ctx, c.stdout, cmd, store, self)
	}
	if rep.Released > 0 {
		fmt.Fprintf(c.stdout, "%s: %d items released at shutdown; the next run does them\n", cmd, rep.Released)
	}
	replicas(c.stdout, cmd, rep)
	for _, e := range flatten(runErr) {
		if e == nil || sh.Signalled() && errors.Is(e, context.Canceled) {
			continue // a drain after SIGTERM is a clean end (reliability F17)
		}
		fmt.Fprintf(c.stderr, "%s: %v\n", cmd, e)
		fail(exitFailed)
	}
	if rep.AuthError != nil || cecclient.IsAuth(runErr) {
		if rep.AuthError != nil {
			fmt.Fprintf(c.stderr, "%s: authentication or permission refused: %v\n", cmd, rep.AuthError)
		}
		fail(exitPermission)
	}
	if sh.Result() == shutdownForced {
		fail(exitFailed)
	}
	return code
}

// heldElsewhere says how many items are left in progress under other
// replicas' leases, and until when: this run did not do them (another
// replica is at work on them, or one that stopped without releasing them,
// until its lease ends), so the days they belong to stay incomplete.
// Not a failure of this run.
func heldElsewhere(ctx context.Context, w io.Writer, cmd string, store checkpoint.Store, self string) {
	items, err := store.Items(ctx, checkpoint.StateInProgress)
	if err != nil {
		fmt.Fprintf(w, "%s: cannot list the items in progress: %v\n", cmd, err)
		return
	}
	n, owners, until := 0, map[string]bool{}, time.Time{}
	for _, it := range items {
		if it.Owner == self {
			continue
		}
		n++
		owners[it.Owner] = true
		if it.LeaseUntil.After(until) {
			until = it.LeaseUntil
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "%s: %d items in progress under the leases of %d other replicas (until %s at the latest), not done by this run: "+
			"those replicas finish them, or the next run takes them once the lease ends (archiver status lists them)\n",
			cmd, n, len(owners), until.UTC().Format(time.RFC3339))
	}
}

// printItems lists items, one per line: kind, upstream ID, call ID, state,
// attempts and the last error. Phone numbers never appear: the IDs are file
// names and record IDs, and errors are masked where they are made.
func printItems(w io.Writer, items []checkpoint.Item) {
	for _, it := range items {
		fmt.Fprintf(w, "  %s %s %s call=%s attempts=%d: %s\n",
			it.State, it.Kind, it.UpstreamID, orDash(it.CallID), it.Attempts, orDash(oneLine(it.LastError)))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// pendingItems counts the pending items from the day summaries the store
// keeps, without reading the items (0 when they cannot be read).
func pendingItems(ctx context.Context, store checkpoint.Store) int {
	days, err := store.Days(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, d := range days {
		for _, states := range d.Counts {
			n += states[checkpoint.StatePending]
		}
	}
	return n
}
