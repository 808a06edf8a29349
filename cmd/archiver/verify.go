package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
)

// cmdVerify implements "archiver verify": check the archive against the
// state, like restic check. jobs.Archiver.Verify does the work; this prints.
func (c *cli) cmdVerify(args []string) int {
	fs, path := c.newFlagSet("verify", "verify [--config FILE] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--deep] [--chain] [--locks] [--json]",
		"Check the archive against the state database: for every day (cec.time_zone) the\n"+
			"day's newest ledger object must agree with the state, and every recording it\n"+
			"lists as archived must exist in the sink with the recorded size and SHA-256.\n"+
			"By default the store's recorded digest is trusted (one metadata request per\n"+
			"object); --deep re-reads every object, re-hashes it and re-validates it.\n"+
			"The Parquet files of every CDR package stored in full must be there as the\n"+
			"cdr job stores them (a missing one: archiver parquet-backfill writes it);\n"+
			"--deep also reads them back, row by row, against the package's ZIP.\n"+
			"Without --from/--to the tenant's prefix is also listed for strays: objects\n"+
			"nothing in the state expects. --chain also checks the ledger chain: from the\n"+
			"newest head back to the first link, every ledger's SHA-256 against its stored\n"+
			"bytes, reporting missing, altered, forked and orphaned links by key and day\n"+
			"(the whole chain, whatever --from/--to; see docs/operations.md). --locks also\n"+
			"reads back each recording's S3 Object Lock (two requests an object; needs\n"+
			"s3:GetObjectRetention and s3:GetObjectLegalHold) and reports a retention, a\n"+
			"legal hold or a retention-rule metadata that is not what the ledger records:\n"+
			"its rule, and the hold and release events of its call. Reads only:\n"+
			"the state is opened read-only (it works while the daemon runs) and nothing is\n"+
			"written to the sink.\n\n"+
			"exit codes: 0 no problem, 1 problems found (or the check could not finish),\n"+
			"2 configuration or usage error, 3 authentication or permission error.")
	from := fs.String("from", "", "first `day` to check (YYYY-MM-DD); default: the first the state knows")
	to := fs.String("to", "", "last `day` to check (YYYY-MM-DD), included; default: the last the state knows")
	deep := fs.Bool("deep", false, "re-read, re-hash and re-validate every archived object")
	chain := fs.Bool("chain", false, "also walk and check the hash chain of the ledgers")
	locks := fs.Bool("locks", false, "also check each recording's Object Lock retention and legal hold against the ledger (s3 sink)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	if !c.dayRange("verify", *from, *to) {
		return exitConfig
	}
	cfg, log, ok := c.setup("verify", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("cmd", "verify"))
	sh, release := c.watch(cfg.Shutdown.Timeout.Duration, log)
	defer release()
	ctx := sh.Stop

	a, err := wire(ctx, cfg, log, ctx, wireOptions{readOnly: true, noClient: true})
	if err != nil {
		return c.startupError("verify", err)
	}
	defer a.close()
	if err := a.openReadSink(ctx); err != nil {
		return c.startupError("verify", err)
	}
	rep, err := a.archiver.Verify(ctx, jobs.VerifyOptions{From: *from, To: *to, Deep: *deep, Chain: *chain, Locks: *locks})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(c.stderr, "verify: interrupted; the check is incomplete")
			return exitFailed
		}
		if errors.Is(err, sink.ErrAccessDenied) {
			fmt.Fprintf(c.stderr, "verify: authentication or permission refused: %v\n", err)
			return exitPermission
		}
		if *locks && errors.Is(err, sink.ErrLockUnsupported) {
			fmt.Fprintf(c.stderr, "verify: --locks: %v\n", err)
			return exitConfig
		}
		fmt.Fprintf(c.stderr, "verify: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		if !c.printJSON("verify", rep) {
			return exitFailed
		}
	} else {
		printVerify(c.stdout, rep, locking(cfg))
	}
	if rep.Problems > 0 {
		return exitFailed
	}
	return exitOK
}

// openReadSink replaces the read-only placeholder sink of wire with the
// configured sink, built to read only: no janitor, no conditional-write
// probe, no directory created.
func (a *app) openReadSink(ctx context.Context) error {
	cfg := a.cfg
	switch cfg.Sink.Type {
	case config.SinkDir:
		if fi, err := os.Stat(cfg.Sink.Dir); err != nil || !fi.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return fmt.Errorf("sink.dir %s: %w", cfg.Sink.Dir, err)
		}
		d, err := dir.New(dir.Options{Root: cfg.Sink.Dir, Logger: a.log})
		if err != nil {
			return err
		}
		a.closers = append(a.closers, func() { _ = d.Close() })
		a.sink = d
	case config.SinkS3:
		opts := s3Options(cfg, a.log)
		// Verify never writes: "on" skips the probe that "auto" writes.
		opts.ConditionalWrite = s3.ConditionalOn
		s, err := s3.New(ctx, opts)
		if err != nil {
			if errors.Is(err, sink.ErrAccessDenied) {
				return &authError{err}
			}
			return err
		}
		a.sink = s
	default:
		return &configError{fmt.Errorf("sink.type: unknown type %q", cfg.Sink.Type)}
	}
	a.sink = jobs.ObserveSink(a.sink, a.metrics)
	a.archiver.Sink = a.sink
	return nil
}

// locking reports whether the configuration locks objects (retention
// rules, or the s3 sink's default retention or legal hold): verify then
// says when --locks was not given.
func locking(cfg *config.Config) bool {
	s := cfg.Sink.S3
	return cfg.Sink.Type == config.SinkS3 && (len(cfg.Retention.Rules) > 0 || s.ObjectLockMode != "" || s.LegalHold)
}

// printVerify prints rep as a table and the problems; locking: the
// configuration locks objects (a note when the locks were not checked).
func printVerify(w io.Writer, rep *jobs.VerifyReport, locking bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DAY\tENTRIES\tOK\tMISSING\tSIZE\tDIGEST\tINVALID\tLOCK\tLEDGER\t")
	for _, d := range rep.Days {
		ledger := d.Ledger
		if d.Ledger == jobs.LedgerDiffers {
			ledger = fmt.Sprintf("%d differ", len(d.LedgerMismatch))
		}
		lock := "-" // not checked
		if rep.Locks {
			lock = fmt.Sprint(d.LockMismatch)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n",
			d.Day, d.Entries, d.OK, d.Missing, d.SizeMismatch, d.DigestMismatch, d.Invalid, lock, ledger)
	}
	_ = tw.Flush()
	if len(rep.Days) == 0 {
		fmt.Fprintln(w, "(no days to check)")
	}
	n := 0
	for _, d := range rep.Days {
		n += len(d.Problems)
	}
	if n > 0 {
		fmt.Fprintf(w, "\nproblems: %d\n", n)
		for _, d := range rep.Days {
			for _, p := range d.Problems {
				fmt.Fprintf(w, "  %s %s\n", d.Day, p)
			}
		}
	}
	switch {
	case !rep.StraysChecked:
		fmt.Fprintln(w, "\nstrays: not checked (a --from/--to range checks those days only)")
	case len(rep.Strays) == 0:
		fmt.Fprintln(w, "\nstrays: none")
	default:
		fmt.Fprintf(w, "\nstrays: %d\n", len(rep.Strays))
		for _, k := range rep.Strays {
			fmt.Fprintf(w, "  %s\n", k)
		}
	}
	if rep.Chain != nil {
		printChain(w, rep.Chain)
	}
	if !rep.Locks && locking {
		fmt.Fprintln(w, "\nlocks: not checked (the configuration locks objects; --locks reads each object's retention and legal hold back)")
	}
	mode := "fast (recorded size and digest)"
	if rep.Deep {
		mode = "deep (every object re-read)"
	}
	if rep.Locks {
		mode += " with Object Lock"
	}
	if rep.Problems == 0 {
		fmt.Fprintf(w, "\nverify %s: no problems found\n", mode)
	} else {
		fmt.Fprintf(w, "\nverify %s: %d problems found\n", mode, rep.Problems)
	}
}

func printChain(w io.Writer, c *jobs.ChainReport) {
	switch {
	case c.Head == nil:
		fmt.Fprintf(w, "\nchain: no head, no link")
	default:
		fmt.Fprintf(w, "\nchain: %d links over %d days, %d verified; head seq %d %s", c.Links, len(c.Days), c.Verified, c.Head.Seq, c.Head.Key)
	}
	fmt.Fprintf(w, "; %d pre-chain ledgers (%d anchored)\n", len(c.PreChain)+c.Anchored, c.Anchored)
	if len(c.Days) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  DAY\tLINKS\tCURRENT SEQ\tCURRENT LEDGER")
		for _, d := range c.Days {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", d.Day, d.Links, d.Current.Seq, d.Current.Key)
		}
		_ = tw.Flush()
	}
	if len(c.PreChain) > 0 {
		fmt.Fprintf(w, "pre-chain ledgers not covered by the chain: %d\n", len(c.PreChain))
		for _, k := range c.PreChain {
			fmt.Fprintf(w, "  %s\n", k)
		}
	}
	if len(c.Problems) == 0 {
		fmt.Fprintln(w, "chain problems: none")
		return
	}
	fmt.Fprintf(w, "chain problems: %d\n", len(c.Problems))
	for _, p := range c.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

// dayRange checks a command's --from and --to days (YYYY-MM-DD, either
// empty), and reports a bad one on stderr.
func (c *cli) dayRange(cmd, from, to string) bool {
	for _, f := range []struct{ name, v string }{{"from", from}, {"to", to}} {
		if f.v == "" {
			continue
		}
		if _, err := time.Parse(dateLayout, f.v); err != nil {
			fmt.Fprintf(c.stderr, "%s: --%s %q: want a date YYYY-MM-DD\n", cmd, f.name, f.v)
			return false
		}
	}
	if from != "" && to != "" && from > to {
		fmt.Fprintf(c.stderr, "%s: --from %s is after --to %s\n", cmd, from, to)
		return false
	}
	return true
}
