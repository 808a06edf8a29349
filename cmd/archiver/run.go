package main

import (
	"context"
	"errors"
	"net"
	"sync"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// cmdRun implements "archiver run", the daemon.
func (c *cli) cmdRun(args []string) int {
	fs, path := c.newFlagSet("run", "run [--config FILE]",
		"Run every enabled job once at start (jobs.<job>.run_at_start) and then on its\n"+
			"schedule until SIGTERM or SIGINT. A run that is still going when its next\n"+
			"time comes is skipped. Serves /metrics on metrics.listen and,\n"+
			"with the cdr job, CC-FS callbacks on cec.callback_listen. On the first signal\n"+
			"no new work starts and in-flight work may finish within shutdown.timeout;\n"+
			"a second signal stops at once.")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	// A SIGHUP with a configuration that loads drains the daemon, which
	// then starts again in this process with the new configuration: every
	// key is reloaded (the state lock, the servers and the sink are opened
	// anew). One that does not load is refused and the daemon goes on.
	for {
		code, reload := c.serveDaemon(*path)
		if !reload {
			return code
		}
	}
}

// schedules parses the schedules of the enabled jobs; problems name the key.
func schedules(cfg *config.Config) ([]jobs.Schedule, error) {
	var sched []jobs.Schedule
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
		sched = append(sched, jobs.Schedule{Job: name, Spec: s, Jitter: j.Jitter.Duration, AtStart: j.RunAtStart})
	})
	if len(problems) > 0 {
		return nil, &configError{errors.Join(problems...)}
	}
	if len(sched) == 0 {
		return nil, &configError{errors.New("no job is enabled; nothing to do")}
	}
	return sched, nil
}

// serveDaemon is one life of the daemon, from loading the configuration to
// the end of the drain; reload says a SIGHUP asked for another.
func (c *cli) serveDaemon(path string) (code int, reload bool) {
	cfg, log, ok := c.setup("run", path)
	if !ok {
		return exitConfig, false
	}
	defer func() { _ = log.Sync() }()

	// Parse every schedule before anything starts.
	sched, err := schedules(cfg)
	if err != nil {
		return c.startupError("run", err), false
	}

	sh, release := c.watchReload(cfg.Shutdown.Timeout.Duration, log, func() error {
		next, err := config.Load(c.configPath(path), c.env)
		if err == nil {
			_, err = schedules(next)
		}
		return err
	})
	defer release()
	a, err := wire(sh.Stop, cfg, log, sh.Abort, wireOptions{noCallbacks: !cfg.Jobs.CDR.Enabled})
	if err != nil {
		return c.startupError("run", err), false
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
			return c.startupError("run", err), false
		}
	}
	stopCallbacks, err := a.serveCallbacks()
	if err != nil {
		stopServing()
		servers.Wait()
		return c.startupError("run", err), false
	}
	defer stopCallbacks()

	// Serve returns once the first signal came and the runs in flight ended,
	// or, after the budget or a second signal (a.archiver.Abort), at most
	// forcedGrace later.
	err = a.archiver.Serve(sh.Stop, sched, jobs.ServeOptions{
		Log:        log,
		AbortGrace: c.forcedGrace,
		Started: func() {
			log.Info("archiver running", zap.String("version", version), zap.Int("jobs", len(sched)))
		},
		AfterRun: c.afterRun,
	})
	if err != nil {
		stopServing()
		servers.Wait()
		return c.startupError("run", err), false
	}
	result := sh.Result()
	a.archiver.RecordShutdown(result)
	// Serve may have returned with runs still going (forced, or the drain
	// budget spent): status shows them interrupted, not running.
	rctx, cancel := context.WithTimeout(context.Background(), forcedPushTimeout)
	a.archiver.RecordInterrupted(rctx)
	cancel()
	if result == shutdownClean {
		log.Info("archiver stopped", zap.String("shutdown", result))
	} else {
		log.Warn("archiver stopped", zap.String("shutdown", result))
	}
	stopServing()
	servers.Wait()
	if result == shutdownForced {
		return exitFailed, false
	}
	if sh.Reloading() {
		log.Info("reloading: starting again with the new configuration")
		return exitOK, true
	}
	return exitOK, false
}

// exportState sets the metrics read from the state (the cdr watermark, the
// items per kind and state). A failure is logged: the run that follows meets
// the same store and reports it.
func (a *app) exportState(ctx context.Context) {
	if err := a.archiver.ExportState(ctx); err != nil {
		a.log.Warn("export the state's metrics", zap.Error(err))
	}
}
