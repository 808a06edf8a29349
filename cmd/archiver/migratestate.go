package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

// migrateSummary is what migrate-state prints (--json: as it is).
type migrateSummary struct {
	Source     string                 `json:"source"` // checkpoint.path
	Tenant     string                 `json:"tenant"`
	Tables     []postgres.TableImport `json:"tables"`
	ItemStates []migrateStateCount    `json:"item_states"`
	Released   int64                  `json:"released"` // in_progress items made pending
	Verified   bool                   `json:"verified"`
	Problems   []string               `json:"problems"`
}

// migrateStateCount is the number of items in one state, in the source and
// in the target.
type migrateStateCount struct {
	State  checkpoint.State `json:"state"`
	Source int64            `json:"source"`
	Target int64            `json:"target"`
}

// cmdMigrateState implements "archiver migrate-state": copy the SQLite
// state into PostgreSQL. postgres.Store.Import does the work; this opens
// both stores and prints.
func (c *cli) cmdMigrateState(args []string) int {
	fs, path := c.newFlagSet("migrate-state", "migrate-state [--config FILE] [--to DSN | --to-dsn-file FILE] [--json]",
		"Copy the SQLite state (checkpoint.path) into a PostgreSQL database, as the\n"+
			"state of tenant cec.tenant_id: every item with all it records, the CDR\n"+
			"packages, calls, watermarks, ledger records, and each job's last success and\n"+
			"last run (what status shows), IDs kept. Items in progress\n"+
			"become pending (their claims were a process's that is gone); named leases\n"+
			"are not copied. It takes the state lock, so that no archiver runs on the\n"+
			"file meanwhile: stop the daemon first. It is one transaction, and running it\n"+
			"again changes nothing; it refuses a tenant that already has another state\n"+
			"in the database. Afterwards it counts the rows of both, per table and per\n"+
			"item state, and prints them.\n\n"+
			"The target is --to, --to-dsn-file or else checkpoint.dsn (checkpoint.dsn_file):\n"+
			"a libpq connection string, never printed. Prefer a file: a password on the\n"+
			"command line is seen by every user of the machine.\n\n"+
			"exit codes: 0 copied and verified, 1 refused, failed or the counts disagree\n"+
			"(or another archiver holds the state), 2 configuration or usage error.")
	to := fs.String("to", "", "the PostgreSQL connection string (`DSN`) to copy into")
	toFile := fs.String("to-dsn-file", "", "a `file` holding the PostgreSQL connection string")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	if *to != "" && *toFile != "" {
		fmt.Fprintln(c.stderr, "migrate-state: --to and --to-dsn-file: give one of them")
		return exitConfig
	}
	cfg, log, ok := c.setup("migrate-state", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("cmd", "migrate-state"))
	dsn, err := migrateTarget(cfg, *to, *toFile)
	if err != nil {
		fmt.Fprintf(c.stderr, "migrate-state: %v\n", err)
		return exitConfig
	}
	if cfg.CEC.TenantID == "" {
		fmt.Fprintln(c.stderr, "migrate-state: cec.tenant_id: required: the state is copied as this tenant's")
		return exitConfig
	}
	src := cfg.Checkpoint.Path
	if _, err := os.Stat(src); err != nil {
		fmt.Fprintf(c.stderr, "migrate-state: %v at %s (checkpoint.path): %v\n", errNoState, src, err)
		return exitFailed
	}
	sh, release := c.watch(cfg.Shutdown.Timeout.Duration, log)
	defer release()
	ctx := sh.Stop

	// Read-write, for its lock: an archiver running on the file makes this
	// fail, and none can start until the copy is over.
	from, err := sqlite.Open(src, sqlite.Options{Logger: log.Named("checkpoint")})
	if err != nil {
		return c.startupError("migrate-state", err)
	}
	defer from.Close()
	into, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Tenant: cfg.CEC.TenantID, Logger: log.Named("checkpoint")})
	if err != nil {
		return c.startupError("migrate-state", err)
	}
	defer into.Close()
	log.Info("copying the state", zap.String("source", src), zap.String("tenant", cfg.CEC.TenantID))
	var rep postgres.ImportReport
	err = from.Export(ctx, func(d checkpoint.Dump) error {
		var err error
		rep, err = into.Import(ctx, d)
		return err
	})
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(c.stderr, "migrate-state: interrupted; nothing was copied")
		return exitFailed
	case errors.Is(err, postgres.ErrStateDiffers):
		fmt.Fprintf(c.stderr, "migrate-state: refused: %v\n", err)
		return exitFailed
	case err != nil:
		fmt.Fprintf(c.stderr, "migrate-state: %v\n", err)
		return exitFailed
	}
	sum := summarize(src, rep)
	if *asJSON {
		if !c.printJSON("migrate-state", sum) {
			return exitFailed
		}
	} else {
		printMigrate(c.stdout, sum)
	}
	if !sum.Verified {
		for _, p := range sum.Problems {
			fmt.Fprintf(c.stderr, "migrate-state: count mismatch: %s\n", p)
		}
		return exitFailed
	}
	return exitOK
}

// migrateTarget is the DSN to copy into: --to, the content of
// --to-dsn-file, or checkpoint.dsn.
func migrateTarget(cfg *config.Config, to, toFile string) (string, error) {
	switch {
	case to != "":
		return to, nil
	case toFile != "":
		s, err := config.ReadSecretFile(toFile)
		if err != nil {
			return "", fmt.Errorf("--to-dsn-file: %w", err)
		}
		return s.Reveal(), nil
	case cfg.Checkpoint.DSN.IsSet():
		return cfg.Checkpoint.DSN.Reveal(), nil
	}
	return "", errors.New("no target: give --to-dsn-file FILE (or --to DSN), or set checkpoint.dsn")
}

// summarize makes the summary of an import of the state at src.
func summarize(src string, rep postgres.ImportReport) migrateSummary {
	sum := migrateSummary{Source: src, Tenant: rep.Tenant, Tables: rep.Tables, Released: rep.Released,
		Verified: rep.OK(), Problems: rep.Problems}
	for _, st := range checkpoint.States {
		sum.ItemStates = append(sum.ItemStates, migrateStateCount{State: st, Source: rep.Source.ItemStates[st], Target: rep.Target.ItemStates[st]})
	}
	return sum
}

func printMigrate(w io.Writer, s migrateSummary) {
	fmt.Fprintf(w, "migrate-state: %s into tenant %s\n\n", s.Source, s.Tenant)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "table\tsource\tinserted\tpresent\ttarget")
	for _, t := range s.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", t.Table, t.Source, t.Inserted, t.Present, t.Target)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "item state\tsource\ttarget")
	for _, st := range s.ItemStates {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", st.State, st.Source, st.Target)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	switch {
	case !s.Verified:
		fmt.Fprintf(w, "migrate-state: the counts disagree (%d problems)\n", len(s.Problems))
	case s.Released > 0:
		fmt.Fprintf(w, "migrate-state: verified; %d items in progress are pending in the target\n", s.Released)
	default:
		fmt.Fprintln(w, "migrate-state: verified")
	}
}
