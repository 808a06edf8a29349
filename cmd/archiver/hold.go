package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// cmdHold implements "archiver hold": place or lift the S3 legal hold of
// every object of a call, recorded in the ledger chain.
func (c *cli) cmdHold(args []string) int {
	fs, path := c.newFlagSet("hold", "hold [--config FILE] --call ID [--release] [--reason TEXT] [--day YYYY-MM-DD] [--json]",
		"Place an Object Lock legal hold on every archived object of a call (each\n"+
			"recording the state knows for it, and every key the day's ledger lists under\n"+
			"it), read each back, and record the event in a new link of the call's day in\n"+
			"the ledger chain (verify --chain checks it). --release lifts the hold, also\n"+
			"from objects a retention rule held. Recordings of the call not archived yet\n"+
			"are listed, not held: run hold again once they are. Needs the s3 sink on a\n"+
			"bucket with Object Lock and s3:PutObjectLegalHold. Takes the state lock:\n"+
			"stop the daemon first (SQLite).\n\n"+
			"exit codes: 0 done, 1 an object could not be held or the event could not be\n"+
			"recorded (run it again: it is idempotent), 2 usage error, unknown call or a\n"+
			"sink without Object Lock, 3 permission refused.")
	call := fs.String("call", "", "the CEC call `ID` (required)")
	release := fs.Bool("release", false, "lift the legal hold instead of placing it")
	reason := fs.String("reason", "", "why (a case number …), recorded in the ledger")
	day := fs.String("day", "", "the call's `day` (YYYY-MM-DD): look only there instead of the whole state")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	if strings.TrimSpace(*call) == "" {
		fmt.Fprintln(c.stderr, "hold: --call: a call ID is required")
		return exitConfig
	}
	if *day != "" {
		if _, err := time.Parse(dateLayout, *day); err != nil {
			fmt.Fprintf(c.stderr, "hold: --day %q: want a date YYYY-MM-DD\n", *day)
			return exitConfig
		}
	}
	cfg, log, ok := c.setup("hold", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	ctx := context.Background()
	a, err := wire(ctx, cfg, log.With(zap.String("cmd", "hold")), ctx, wireOptions{noClient: true})
	if err != nil {
		return c.startupError("hold", err)
	}
	defer a.close()
	rep, err := a.archiver.Hold(ctx, jobs.HoldOptions{CallID: *call, Day: *day, Release: *release, Reason: *reason})
	if rep != nil {
		if *asJSON {
			if !c.printJSON("hold", rep) {
				return exitFailed
			}
		} else {
			printHold(c.stdout, rep)
		}
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, sink.ErrAccessDenied):
		fmt.Fprintf(c.stderr, "hold: permission refused: %v\n", err)
		return exitPermission
	case rep == nil && (errors.Is(err, jobs.ErrUnknownCall) || errors.Is(err, sink.ErrLockUnsupported)):
		fmt.Fprintf(c.stderr, "hold: %v\n", err)
		return exitConfig
	}
	fmt.Fprintf(c.stderr, "hold: %v\n", err)
	return exitFailed
}

func printHold(w io.Writer, rep *jobs.HoldReport) {
	verb := "placed on"
	if rep.Action == jobs.HoldRelease {
		verb = "lifted from"
	}
	n := 0
	for _, o := range rep.Objects {
		if o.Error == "" {
			n++
		}
	}
	fmt.Fprintf(w, "hold: legal hold %s %d of %d objects of call %s (day %s)\n", verb, n, len(rep.Objects), rep.CallID, rep.Day)
	for _, o := range rep.Objects {
		state := "held"
		if !o.LegalHold {
			state = "not held"
		}
		if o.Error != "" {
			state = "FAILED: " + o.Error
		}
		fmt.Fprintf(w, "  %s  %s\n", o.Key, state)
	}
	for _, p := range rep.Pending {
		fmt.Fprintf(w, "  not archived yet, not held: %s\n", p)
	}
	if rep.LedgerKey != "" {
		fmt.Fprintf(w, "recorded in ledger link %d: %s\n", rep.LedgerSeq, rep.LedgerKey)
	}
}
