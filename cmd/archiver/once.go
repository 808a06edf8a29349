package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// jobNames lists the jobs in the order they run.
func jobNames() []string {
	return []string{config.JobCDR, config.JobRecordings, config.JobTransfer, config.JobIVR}
}

// cmdOnce implements "archiver once": run the jobs once, write the ledgers,
// push the metrics if configured, report and exit.
func (c *cli) cmdOnce(args []string) int {
	fs, path := c.newFlagSet("once", "once [--config FILE] [--job NAME]...",
		"Run the jobs once (all four, or those named by --job) in this order: cdr, then\n"+
			"recordings, transfer and ivr together; then write the per-day ledgers and exit.\n"+
			"Prints a summary on stdout and every failed or dead item on stderr.\n\n"+
			"exit codes: 0 everything done or absent by rule (items waiting for a later run\n"+
			"are not failures), 1 items failed or dead, a window failed, or another archiver\n"+
			"holds the state, 2 configuration or usage error, 3 authentication or permission error.")
	var only listFlag
	fs.Var(&only, "job", "run only this `job` (cdr, recordings, transfer, ivr); repeatable or comma-separated")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	for _, j := range only {
		if !slices.Contains(jobNames(), j) {
			fmt.Fprintf(c.stderr, "once: --job: unknown job %q; jobs are %s\n", j, strings.Join(jobNames(), ", "))
			return exitConfig
		}
	}
	cfg, ok := c.loadConfig(*path)
	if !ok {
		return exitConfig
	}
	return c.runArchiver("once", cfg, wireOptions{}, func(ctx context.Context, a *jobs.Archiver) (*jobs.Report, error) {
		return a.Once(ctx, only...)
	})
}

// runArchiver is the common body of once and backfill: wire, run fn under
// the shutdown contexts, report, push metrics.
func (c *cli) runArchiver(cmd string, cfg *config.Config, o wireOptions,
	fn func(ctx context.Context, a *jobs.Archiver) (*jobs.Report, error)) int {
	log, err := newLogger(cfg.Log, c.stderr)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", cmd, err)
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("cmd", cmd))

	sh, release := c.watch(cfg.Shutdown.Timeout.Duration, log)
	defer release()
	a, err := wire(sh.Stop, cfg, log, sh.Abort, o)
	if err != nil {
		return c.startupError(cmd, err)
	}
	defer a.close()
	a.exportState(sh.Stop)
	stopCallbacks, err := a.serveCallbacks()
	if err != nil {
		return c.startupError(cmd, err)
	}
	defer stopCallbacks()

	type result struct {
		rep *jobs.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := fn(sh.Stop, a.archiver)
		done <- result{rep, err}
	}()
	res, finished := await(sh, c.forcedGrace, done)
	a.metrics.Shutdown(sh.Result())
	if !finished {
		fmt.Fprintf(c.stderr, "%s: forced: stopped without waiting for in-flight work; it is redone next time\n", cmd)
		return exitFailed
	}
	// The state is still open: list what failed before it is closed.
	code := c.outcome(context.WithoutCancel(sh.Stop), cmd, a.store, res.rep, res.err, sh)
	c.push(cmd, cfg, a, log)
	return code
}

// push sends the metrics to the Pushgateway when one is configured. A
// failure is a warning: the archive itself is fine.
func (c *cli) push(cmd string, cfg *config.Config, a *app, log *zap.Logger) {
	if cfg.Metrics.PushgatewayURL == "" {
		return
	}
	if err := telemetry.Push(context.Background(), cfg.Metrics.PushgatewayURL, "cec-archiver", a.reg); err != nil {
		log.Warn("push metrics failed", zap.Error(err))
		fmt.Fprintf(c.stderr, "%s: warning: push metrics: %v\n", cmd, err)
	}
}

// startupError reports a failure to start and returns its exit code.
func (c *cli) startupError(cmd string, err error) int {
	var (
		locked *checkpoint.LockedError
		cfgErr *configError
		auth   *authError
	)
	switch {
	case errors.As(err, &locked):
		msg := "another archiver is running on " + locked.Path
		if locked.PID > 0 {
			msg += fmt.Sprintf(" (pid %d)", locked.PID)
		}
		fmt.Fprintf(c.stderr, "%s: %s; only one may use a state file at a time\n", cmd, msg)
		return exitFailed
	case errors.As(err, &cfgErr):
		for _, e := range flatten(cfgErr.err) {
			fmt.Fprintln(c.stderr, e)
		}
		return exitConfig
	case errors.As(err, &auth), cecclient.IsAuth(err):
		fmt.Fprintf(c.stderr, "%s: authentication or permission refused: %v\n", cmd, err)
		return exitPermission
	default:
		fmt.Fprintf(c.stderr, "%s: %v\n", cmd, err)
		return exitFailed
	}
}
