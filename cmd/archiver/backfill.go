package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// dateLayout is the format of --from and --to.
const dateLayout = "2006-01-02"

// cmdBackfill implements "archiver backfill": archive whole past days.
func (c *cli) cmdBackfill(args []string) int {
	fs, path := c.newFlagSet("backfill", "backfill [--config FILE] --from YYYY-MM-DD --to YYYY-MM-DD [--rescan] [--dry-run]",
		"Request the CDR packages of every window of the days --from to --to (both\n"+
			"included, calendar days in cec.time_zone), then download every recording they\n"+
			"list, like once. The cdr watermark is left as it is. Output and exit codes are\n"+
			"those of once. With --dry-run only the windows are printed: nothing is\n"+
			"requested and the state is not written (it may be in use by the daemon).\n"+
			"Backfill runs the cdr job and the enabled item jobs: one with\n"+
			"jobs.<name>.enabled = false is left out (a line on stderr names it).\n"+
			"A window whose package is done and that ended before the lookback\n"+
			"(jobs.cdr.lookback_windows before the current window) is not requested\n"+
			"again, so a killed backfill resumes where it stopped; --rescan requests\n"+
			"every window anyway.\n\n"+
			progressHelp)
	from := fs.String("from", "", "first `day` (YYYY-MM-DD), required")
	to := fs.String("to", "", "last `day` (YYYY-MM-DD), included, required")
	dry := fs.Bool("dry-run", false, "print the windows a backfill would request and exit")
	rescan := fs.Bool("rescan", false, "request every window again, also those done before and older than the lookback")
	pf := addProgressFlags(fs)
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	if err := pf.check(); err != nil {
		fmt.Fprintf(c.stderr, "backfill: %v\n", err)
		return exitConfig
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(c.stderr, "backfill: --from and --to are required")
		return exitConfig
	}
	cfg, ok := c.loadConfig(*path)
	if !ok {
		return exitConfig
	}
	loc, err := cfg.CEC.Location()
	if err != nil {
		fmt.Fprintf(c.stderr, "backfill: cec.time_zone: %v\n", err)
		return exitConfig
	}
	begin, err := time.ParseInLocation(dateLayout, *from, loc)
	if err != nil {
		fmt.Fprintf(c.stderr, "backfill: --from %q: want a date YYYY-MM-DD\n", *from)
		return exitConfig
	}
	last, err := time.ParseInLocation(dateLayout, *to, loc)
	if err != nil {
		fmt.Fprintf(c.stderr, "backfill: --to %q: want a date YYYY-MM-DD\n", *to)
		return exitConfig
	}
	if begin.After(last) {
		fmt.Fprintf(c.stderr, "backfill: --from %s is after --to %s\n", *from, *to)
		return exitConfig
	}
	end := last.AddDate(0, 0, 1) // --to is included
	if *dry {
		return c.dryRun(cfg, func(ctx context.Context, a *jobs.Archiver) error {
			return a.DryRun(ctx, begin, end, *rescan, c.stdout)
		})
	}
	// The item jobs that are enabled; a disabled one is left out (its keys,
	// such as cec.oifde_url, are not validated).
	var items, disabled []string
	cfg.Jobs.Each(func(name string, j *config.Job) {
		switch {
		case name == config.JobCDR:
		case j.Enabled:
			items = append(items, name)
		default:
			disabled = append(disabled, "jobs."+name+".enabled")
		}
	})
	if len(items) == 0 {
		fmt.Fprintf(c.stderr, "backfill: %s = false: no item job to run after the cdr job\n", strings.Join(disabled, ", "))
		return exitConfig
	}
	if len(disabled) > 0 {
		fmt.Fprintf(c.stderr, "backfill: %s = false: those jobs are left out\n", strings.Join(disabled, ", "))
	}
	return c.runArchiver("backfill", cfg, wireOptions{}, pf, func(ctx context.Context, a *jobs.Archiver) (*jobs.Report, error) {
		return a.Backfill(ctx, begin, end, jobs.BackfillOptions{Jobs: items, Rescan: *rescan})
	})
}

// dryRun wires a read-only archiver (no sink, the state read-only if it
// exists) and runs fn.
func (c *cli) dryRun(cfg *config.Config, fn func(ctx context.Context, a *jobs.Archiver) error) int {
	log, err := newLogger(cfg.Log, c.stderr)
	if err != nil {
		fmt.Fprintf(c.stderr, "backfill: %v\n", err)
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	ctx := context.Background()
	a, err := wire(ctx, cfg, log.With(zap.String("cmd", "backfill")), ctx, wireOptions{readOnly: true, optionalState: true})
	if err != nil {
		return c.startupError("backfill", err)
	}
	defer a.close()
	if err := fn(ctx, a.archiver); err != nil {
		fmt.Fprintf(c.stderr, "backfill: %v\n", err)
		return exitFailed
	}
	return exitOK
}
