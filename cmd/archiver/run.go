package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// cmdRun implements "archiver run", the daemon.
func (c *cli) cmdRun(args []string) int {
	fs, path := c.newFlagSet("run", "run [--config FILE]",
		"Run every enabled job on its schedule until SIGTERM or SIGINT. A run that is\n"+
			"still going when its next time comes is skipped. Serves /metrics on\n"+
			"metrics.listen and CC-FS callbacks on cec.callback_listen. On the first signal\n"+
			"no new work starts and in-flight work may finish within shutdown.timeout;\n"+
			"a second signal stops at once.")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	cfg, log, ok := c.setup("run", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()

	// Parse every schedule before anything starts.
	type scheduled struct {
		name   string
		sched  cron.Schedule
		jitter time.Duration
	}
	var sched []scheduled
	var problems []error
	cfg.Jobs.Each(func(name string, j *config.Job) {
		if !j.Enabled {
			return
		}
		s, err := config.ParseSchedule(j.Schedule)
		if err != nil {
			problems = append(problems, &config.FieldError{Field: "jobs." + name + ".schedule", Msg: err.Error()})
			return
		}
		sched = append(sched, scheduled{name, s, j.Jitter.Duration})
	})
	if len(problems) > 0 {
		return c.startupError("run", &configError{errors.Join(problems...)})
	}
	if len(sched) == 0 {
		fmt.Fprintln(c.stderr, "run: no job is enabled; nothing to do")
		return exitConfig
	}

	sh, release := c.watch(cfg.Shutdown.Timeout.Duration, log)
	defer release()
	a, err := wire(sh.Stop, cfg, log, sh.Abort, wireOptions{})
	if err != nil {
		return c.startupError("run", err)
	}
	defer a.close()
	// The gauges read from the state are right from the first scrape, not
	// only after the first run.
	a.exportState(sh.Stop)

	// Servers live until the drain is over.
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	var servers sync.WaitGroup
	if cfg.Metrics.Listen != "" {
		ready := make(chan error, 1)
		servers.Add(1)
		go func() {
			defer servers.Done()
			err := telemetry.Serve(serveCtx, cfg.Metrics.Listen, a.reg, log, func(net.Addr) { ready <- nil })
			ready <- err
			if err != nil && serveCtx.Err() == nil {
				log.Error("metrics server stopped", zap.Error(err))
			}
		}()
		if err := <-ready; err != nil {
			stopServing()
			servers.Wait()
			return c.startupError("run", err)
		}
	}
	stopCallbacks, err := a.serveCallbacks()
	if err != nil {
		stopServing()
		servers.Wait()
		return c.startupError("run", err)
	}
	defer stopCallbacks()

	clog := cronLogger{log.Named("cron")}
	cr := cron.New(cron.WithLogger(clog), cron.WithChain(cron.Recover(clog), cron.SkipIfStillRunning(clog)))
	now := time.Now()
	for _, s := range sched {
		job, jitter := s.name, s.jitter
		cr.Schedule(s.sched, cron.FuncJob(func() { c.runJob(sh, a, job, jitter) }))
		log.Info("job scheduled", zap.String("job", job), zap.Time("next_run", s.sched.Next(now)),
			zap.Duration("jitter", jitter))
	}
	cr.Start()
	log.Info("archiver running", zap.String("version", version), zap.Int("jobs", len(sched)))

	<-sh.Stop.Done()
	running := cr.Stop() // no new runs; done when the running ones return
	select {
	case <-running.Done():
	case <-sh.Abort.Done():
		// Budget over or forced: in-flight work is being cancelled and
		// released; give it a moment to write that down.
		t := time.NewTimer(c.forcedGrace)
		select {
		case <-running.Done():
		case <-t.C:
			log.Warn("jobs still running after cancellation; exiting anyway, their items are released on the next start")
		}
		t.Stop()
	}
	result := sh.Result()
	a.metrics.Shutdown(result)
	log.Info("archiver stopped", zap.String("shutdown", result))
	stopServing()
	servers.Wait()
	if result == shutdownForced {
		return exitFailed
	}
	return exitOK
}

// runJob is one scheduled run of a job: jitter, the run, the ledgers.
func (c *cli) runJob(sh *shutdown, a *app, job string, jitter time.Duration) {
	log := a.log.With(zap.String("job", job))
	if jitter > 0 {
		d := rand.N(jitter)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-sh.Stop.Done():
			t.Stop()
			return
		}
	}
	if sh.Stop.Err() != nil {
		return
	}
	a.exportState(sh.Stop)
	start := time.Now()
	rep, err := a.archiver.Run(sh.Stop, job)
	if rep == nil {
		rep = &jobs.Report{}
	}
	fields := []zap.Field{
		zap.Duration("took", time.Since(start)), zap.Int("windows", rep.Windows), zap.Int("packages", rep.Packages),
		zap.Int("packages_failed", rep.PackagesFailed), zap.Int("added", rep.Added), zap.Int("done", rep.Done),
		zap.Int("existed", rep.Existed), zap.Int("absent", rep.Absent), zap.Int("deferred", rep.Deferred),
		zap.Int("failed", rep.Failed), zap.Int("dead", rep.Dead), zap.Int("released", rep.Released),
		zap.Int64("bytes", rep.Bytes),
	}
	switch {
	case rep.AuthError != nil:
		log.Error("run refused: authentication or permission error; fix the credentials", append(fields, zap.Error(rep.AuthError))...)
	case err != nil && !(sh.Stop.Err() != nil && errors.Is(err, context.Canceled)):
		log.Error("run failed", append(fields, zap.Error(err))...)
	default:
		log.Info("run finished", fields...)
	}
	for _, e := range rep.Errors {
		log.Warn("window failed", zap.String("error", e))
	}
	if sh.Stop.Err() == nil {
		if n, err := a.archiver.WriteLedgers(sh.Stop); err != nil {
			log.Error("write ledgers", zap.Error(err))
		} else if n > 0 {
			log.Info("ledgers written", zap.Int("days", n))
		}
	}
	if c.afterRun != nil {
		c.afterRun(job, rep, err)
	}
}

// cronLogger adapts zap to cron.Logger. cron's chatter is debug; a skipped
// run is a warning (the previous one is too slow for the schedule).
type cronLogger struct{ log *zap.Logger }

func (l cronLogger) Info(msg string, keysAndValues ...any) {
	s := l.log.Sugar()
	if msg == "skip" {
		s.Warnw("run skipped: the previous run of this job is still going", keysAndValues...)
		return
	}
	s.Debugw(msg, keysAndValues...)
}

func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Sugar().Errorw(msg, append(keysAndValues, "error", err)...)
}

// exportState sets the metrics read from the state (the cdr watermark, the
// items per kind and state). A failure is logged: the run that follows meets
// the same store and reports it.
func (a *app) exportState(ctx context.Context) {
	if err := a.archiver.ExportState(ctx); err != nil {
		a.log.Warn("export the state's metrics", zap.Error(err))
	}
}
