package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// cmdOnce implements "archiver once": run the jobs once, write the ledgers,
// push the metrics if configured, report and exit.
func (c *cli) cmdOnce(args []string) int {
	fs, path := c.newFlagSet("once", "once [--config FILE] [--job NAME]...",
		"Run the jobs once (every enabled one, or those named by --job) in this order:\n"+
			"cdr, then recordings, transfer and ivr together; then write the per-day\n"+
			"ledgers and exit. A job with jobs.<name>.enabled = false is not run; naming it\n"+
			"with --job is a usage error (exit 2): enable it in the file, or for one run\n"+
			"with ARCHIVER_JOBS_<NAME>_ENABLED=true, so that its keys are validated.\n"+
			"Prints a summary on stdout and every failed or dead item on stderr.\n\n"+
			"exit codes: 0 everything done or absent by rule (items waiting for a later run\n"+
			"are not failures), 1 items failed or dead, a window failed, or another archiver\n"+
			"holds the state, 2 configuration or usage error, 3 authentication or permission error.\n\n"+
			progressHelp)
	var only listFlag
	fs.Var(&only, "job", "run only this `job` (cdr, recordings, transfer, ivr); repeatable or comma-separated")
	pf := addProgressFlags(fs)
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	if err := pf.check(); err != nil {
		fmt.Fprintf(c.stderr, "once: %v\n", err)
		return exitConfig
	}
	for _, j := range only {
		if !slices.Contains(config.JobNames(), j) {
			fmt.Fprintf(c.stderr, "once: --job: unknown job %q; jobs are %s\n", j, strings.Join(config.JobNames(), ", "))
			return exitConfig
		}
	}
	cfg, ok := c.loadConfig(*path)
	if !ok {
		return exitConfig
	}
	run, err := onceJobs(cfg, only)
	if err != nil {
		fmt.Fprintf(c.stderr, "once: %v\n", err)
		return exitConfig
	}
	o := wireOptions{noCallbacks: !slices.Contains(run, config.JobCDR)}
	return c.runArchiver("once", cfg, o, pf, func(ctx context.Context, a *jobs.Archiver) (*jobs.Report, error) {
		return a.Once(ctx, run...)
	})
}

// onceJobs returns the jobs once runs: the enabled ones when only is empty,
// else only, each of which must be enabled. A disabled job is not run even
// when named: the keys it needs (cec.oifde_url, ...) are only validated for
// enabled jobs, so running it could fail on a configuration never checked.
func onceJobs(cfg *config.Config, only []string) ([]string, error) {
	enabled := map[string]bool{}
	var all []string
	cfg.Jobs.Each(func(name string, j *config.Job) {
		if j.Enabled {
			enabled[name] = true
			all = append(all, name)
		}
	})
	if len(only) == 0 {
		if len(all) == 0 {
			return nil, errors.New("no job is enabled (jobs.<name>.enabled); nothing to do")
		}
		return all, nil
	}
	var errs []error
	for _, j := range only {
		if !enabled[j] {
			errs = append(errs, fmt.Errorf("--job %s: jobs.%s.enabled = false; enable it (for one run: ARCHIVER_JOBS_%s_ENABLED=true) to run it",
				j, j, strings.ToUpper(j)))
		}
	}
	return only, errors.Join(errs...)
}

// runArchiver is the common body of once and backfill: wire, run fn under
// the shutdown contexts showing its progress as pf says, report, push
// metrics.
func (c *cli) runArchiver(cmd string, cfg *config.Config, o wireOptions, pf *progressFlags,
	fn func(ctx context.Context, a *jobs.Archiver) (*jobs.Report, error)) int {
	tty := isTerminal(c.stderr)
	out := &liveOut{w: c.stderr}
	log, err := buildLogger(cfg.Log, out, tty, pf.quiet)
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
	prog := &jobs.Progress{}
	a.archiver.Progress = prog

	type result struct {
		rep *jobs.Report
		err error
	}
	done := make(chan result, 1)
	stopProgress := showProgress(cmd, pf, cfg.Log.ProgressInterval.Duration, log, prog, out, tty)
	go func() {
		rep, err := fn(sh.Stop, a.archiver)
		done <- result{rep, err}
	}()
	res, finished := await(sh, c.forcedGrace, done)
	stopProgress()
	how := sh.Result()
	a.archiver.RecordShutdown(how)
	// After a second signal the push is still made, so that the
	// Pushgateway shows the forced shutdown, but bounded by a short
	// timeout: the operator wants the process gone.
	pushTimeout := telemetry.PushTimeout
	if how == shutdownForced {
		pushTimeout = forcedPushTimeout
	}
	if !finished {
		fmt.Fprintf(c.stderr, "%s: forced: stopped without waiting for in-flight work; it is redone next time\n", cmd)
		log.Warn("forced: exiting without waiting for in-flight work; pushing the metrics first",
			zap.Bool("push", cfg.Metrics.PushgatewayURL != ""), zap.Duration("push_timeout", pushTimeout))
		c.push(cmd, cfg, a, log, pushTimeout)
		ctx, cancel := context.WithTimeout(context.Background(), forcedPushTimeout)
		a.archiver.RecordInterrupted(ctx)
		cancel()
		return exitFailed
	}
	// The state is still open: list what failed before it is closed.
	code := c.outcome(context.WithoutCancel(sh.Stop), cmd, a.store, a.replica, res.rep, res.err, sh)
	c.push(cmd, cfg, a, log, pushTimeout)
	return code
}

// forcedPushTimeout bounds the Pushgateway push after a second signal (and
// the recording of the runs it interrupts), instead of
// telemetry.PushTimeout.
const forcedPushTimeout = 5 * time.Second

// push sends the metrics to the Pushgateway when one is configured, within
// timeout. A failure is a warning: the archive itself is fine.
func (c *cli) push(cmd string, cfg *config.Config, a *app, log *zap.Logger, timeout time.Duration) {
	if cfg.Metrics.PushgatewayURL == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := telemetry.Push(ctx, cfg.Metrics.PushgatewayURL, pushGrouping(cfg), jobs.Labels(), a.reg); err != nil {
		log.Warn("push metrics failed", zap.Error(err))
		fmt.Fprintf(c.stderr, "%s: warning: push metrics: %v\n", cmd, err)
	}
}

// pushGrouping is the Pushgateway grouping key of cfg (metrics.push_job,
// push_instance, push_tenant_label = cec.tenant_id); telemetry.Push adds
// archiver_job for each job's group.
func pushGrouping(cfg *config.Config) telemetry.Grouping {
	m := cfg.Metrics
	return telemetry.Grouping{Job: m.PushJob, Instance: m.PushInstance, TenantLabel: m.PushTenantLabel, Tenant: cfg.CEC.TenantID}
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
