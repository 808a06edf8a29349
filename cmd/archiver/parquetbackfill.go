package main

import (
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// cmdParquetBackfill implements "archiver parquet-backfill": write the
// Parquet files of the CDR packages stored before the cdr job wrote them
// (or whose files were lost). jobs.Archiver.BackfillParquet does the work;
// this prints.
func (c *cli) cmdParquetBackfill(args []string) int {
	fs, path := c.newFlagSet("parquet-backfill", "parquet-backfill [--config FILE] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--dry-run] [--json]",
		"Write the Parquet files (docs/parquet.md) that CDR packages stored in full lack:\n"+
			"packages archived by a version before Parquet, or whose files were lost. For\n"+
			"every done package whose window begins on a day (cec.time_zone) in the range,\n"+
			"each Parquet key is looked up; for a missing one the package's ZIP is read back\n"+
			"from the sink, checked against its recorded SHA-256 (a ZIP that differs is\n"+
			"refused and named: nothing is written from it), and the file is written as\n"+
			"the cdr job writes it: the same bytes. Files present are left alone (verify\n"+
			"checks them). Running it again is safe. --dry-run only lists the missing files:\n"+
			"it opens the state read-only and works while the daemon runs; without it the\n"+
			"command takes the state lock: stop the daemon first (SQLite).\n\n"+
			"exit codes: 0 every file present or written (dry run: looked up), 1 a file\n"+
			"could not be written or looked up (the others are done; run it again), 2\n"+
			"configuration or usage error, 3 authentication or permission error.")
	from := fs.String("from", "", "first `day` of package windows (YYYY-MM-DD); default: the first")
	to := fs.String("to", "", "last `day` of package windows (YYYY-MM-DD), included; default: the last")
	dryRun := fs.Bool("dry-run", false, "only list the missing files; write nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	if !c.dayRange("parquet-backfill", *from, *to) {
		return exitConfig
	}
	cfg, log, ok := c.setup("parquet-backfill", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("cmd", "parquet-backfill"))
	sh, release := c.watch(cfg.Shutdown.Timeout.Duration, log)
	defer release()
	ctx := sh.Stop

	// A dry run reads, like verify; the real run writes to the sink, like
	// hold, and takes the state lock.
	a, err := wire(ctx, cfg, log, ctx, wireOptions{readOnly: *dryRun, noClient: true, noCallbacks: true})
	if err != nil {
		return c.startupError("parquet-backfill", err)
	}
	defer a.close()
	if *dryRun {
		if err := a.openReadSink(ctx); err != nil {
			return c.startupError("parquet-backfill", err)
		}
	}
	rep, err := a.archiver.BackfillParquet(ctx, jobs.ParquetBackfillOptions{From: *from, To: *to, DryRun: *dryRun})
	if rep != nil {
		if *asJSON {
			if !c.printJSON("parquet-backfill", rep) {
				return exitFailed
			}
		} else {
			printParquetBackfill(c.stdout, rep)
		}
	}
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		fmt.Fprintln(c.stderr, "parquet-backfill: interrupted; run it again to finish")
		return exitFailed
	case errors.Is(err, sink.ErrAccessDenied):
		fmt.Fprintf(c.stderr, "parquet-backfill: authentication or permission refused: %v\n", err)
		return exitPermission
	}
	fmt.Fprintf(c.stderr, "parquet-backfill: %v\n", err)
	return exitFailed
}

func printParquetBackfill(w io.Writer, rep *jobs.ParquetBackfillReport) {
	if rep.DryRun {
		fmt.Fprintf(w, "parquet-backfill (dry run): %d packages, %d Parquet files present, %d missing, %d could not be looked up; nothing written\n",
			rep.Packages, rep.Present, rep.Missing, rep.Failed)
	} else {
		fmt.Fprintf(w, "parquet-backfill: %d packages, %d Parquet files present, %d written (%d bytes), %d failed\n",
			rep.Packages, rep.Present+rep.Existed, rep.Written, rep.Bytes, rep.Failed)
	}
	for _, f := range rep.Files {
		if f.Error != "" { // the error names the package
			fmt.Fprintf(w, "  %-7s  %s  %s: %s\n", f.State, f.Day, orDash(f.Key), f.Error)
			continue
		}
		fmt.Fprintf(w, "  %-7s  %s  %s (package %s)\n", f.State, f.Day, f.Key, f.Package)
	}
}
