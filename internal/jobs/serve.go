package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// Schedule says when Serve runs one job.
type Schedule struct {
	Job string // one of Jobs()
	// Spec gives the run times (config.ParseSchedule parses the
	// configured schedule).
	Spec cron.Schedule
	// Jitter, when positive, delays each run by a random duration in
	// [0, Jitter).
	Jitter time.Duration
	// AtStart runs the job once when Serve starts, besides Spec's times (a
	// scheduled time that comes while that run goes on is skipped, as any
	// overlap is).
	AtStart bool
}

// ServeOptions tune Serve. The zero value is valid.
type ServeOptions struct {
	// Log receives the lines of the loop: schedules, runs, skipped runs,
	// ledgers. nil: the archiver's Log.
	Log *zap.Logger
	// AbortGrace is how long Serve still waits for runs in flight once
	// Archiver.Abort is cancelled, to let them release their items.
	AbortGrace time.Duration
	// Started, when set, is called once every job is scheduled and the
	// scheduler runs.
	Started func()
	// AfterRun, when set, is called at the end of each run of a job, with
	// its report (never nil) and its error.
	AfterRun func(job string, rep *Report, err error)
}

// Serve runs each job on its schedule until ctx ends. A run waits its
// jitter, exports the state's metrics (ExportState), runs the job and then,
// unless ctx ended, writes the ledgers: one pass of the sequence Once
// follows, for that job alone. A run still going when its next time comes
// is skipped, not overlapped, and logged as a warning.
//
// ctx ending starts no new run. Serve then waits for the runs in flight to
// end; when Archiver.Abort is cancelled meanwhile it waits at most
// opts.AbortGrace more, and returns with runs still going (their items are
// released by the next start). It returns nil once ctx ended, or an error
// at once when a schedule is invalid.
func (a *Archiver) Serve(ctx context.Context, schedules []Schedule, opts ServeOptions) error {
	if len(schedules) == 0 {
		return errors.New("jobs: serve: no schedule")
	}
	for _, s := range schedules {
		if !slices.Contains(Jobs(), s.Job) {
			return fmt.Errorf("jobs: serve: unknown job %q", s.Job)
		}
		if s.Spec == nil {
			return fmt.Errorf("jobs: serve: job %s has no schedule", s.Job)
		}
	}
	log := opts.Log
	if log == nil {
		log = a.Log
	}
	if log == nil {
		log = zap.NewNop()
	}

	clog := cronLogger{log.Named("cron")}
	cr := cron.New(cron.WithLogger(clog))
	now := time.Now()
	var atStart []cron.Job
	for _, s := range schedules {
		// One wrapped job per schedule: its SkipIfStillRunning guard is
		// shared by the start run and the scheduled ones.
		job := cron.NewChain(cron.Recover(clog), cron.SkipIfStillRunning(clog)).
			Then(cron.FuncJob(func() { a.serveRun(ctx, log, s, opts.AfterRun) }))
		cr.Schedule(s.Spec, job)
		log.Info("job scheduled", zap.String("job", s.Job), zap.Time("next_run", s.Spec.Next(now)),
			zap.Duration("jitter", s.Jitter), zap.Bool("run_at_start", s.AtStart))
		if s.AtStart {
			atStart = append(atStart, job)
		}
	}
	cr.Start()
	// The start runs go as cron's own runs would, on their own goroutines,
	// and are waited for the same way (startRuns below).
	var startRuns sync.WaitGroup
	for _, job := range atStart {
		startRuns.Go(job.Run)
	}
	if opts.Started != nil {
		opts.Started()
	}

	<-ctx.Done()
	cronDone := cr.Stop() // no new runs; done when the running ones return
	running, allDone := context.WithCancel(context.Background())
	go func() {
		<-cronDone.Done()
		startRuns.Wait()
		allDone()
	}()
	var abort <-chan struct{}
	if a.Abort != nil {
		abort = a.Abort.Done()
	}
	select {
	case <-running.Done():
	case <-abort:
		// Budget over or forced: in-flight work is being cancelled and
		// released; give it a moment to write that down.
		t := time.NewTimer(opts.AbortGrace)
		select {
		case <-running.Done():
		case <-t.C:
			log.Warn("jobs still running after cancellation; exiting anyway, their items are released on the next start")
		}
		t.Stop()
	}
	return nil
}

// serveRun is one scheduled run of a job: jitter, the state's metrics, one
// pass for the job, the log lines, afterRun.
func (a *Archiver) serveRun(ctx context.Context, base *zap.Logger, s Schedule,
	afterRun func(job string, rep *Report, err error)) {
	job := s.Job
	log := base.With(zap.String("job", job))
	if s.Jitter > 0 {
		t := time.NewTimer(rand.N(s.Jitter))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	// A failure is logged: the run that follows meets the same store and
	// reports it.
	if err := a.ExportState(ctx); err != nil {
		base.Warn("export the state's metrics", zap.Error(err))
	}

	var cdrJob func(context.Context) (*Report, error)
	var items map[string]bool
	if job == config.JobCDR {
		cdrJob = func(ctx context.Context) (*Report, error) { return a.Run(ctx, config.JobCDR) }
	} else {
		items = map[string]bool{job: true}
	}
	start := time.Now()
	var (
		rep *Report
		err error
	)
	p := a.pass(ctx, cdrJob, items, func(r *Report, errs []error) {
		rep, err = r, joinErrors(errs)
		logRun(ctx, log, time.Since(start), rep, err)
	})
	if p.ledgers != nil {
		log.Error("write ledgers", zap.Error(p.ledgers))
	} else if p.days > 0 {
		log.Info("ledgers written", zap.Int("days", p.days))
	}
	if afterRun != nil {
		afterRun(job, rep, err)
	}
}

// logRun logs the end of a run: refused on an auth error, failed on an
// error that is not the cancellation of a stop, else finished; then every
// window that failed.
func logRun(ctx context.Context, log *zap.Logger, took time.Duration, rep *Report, err error) {
	fields := []zap.Field{
		zap.Duration("took", took), zap.Int("windows", rep.Windows), zap.Int("packages", rep.Packages),
		zap.Int("packages_failed", rep.PackagesFailed), zap.Int("added", rep.Added), zap.Int("done", rep.Done),
		zap.Int("existed", rep.Existed), zap.Int("absent", rep.Absent), zap.Int("deferred", rep.Deferred),
		zap.Int("failed", rep.Failed), zap.Int("dead", rep.Dead), zap.Int("released", rep.Released),
		zap.Int64("bytes", rep.Bytes),
	}
	// What other replicas took from this run, only when they did.
	if rep.LeaseLost > 0 {
		fields = append(fields, zap.Int("lease_lost", rep.LeaseLost))
	}
	if rep.WindowsHeld > 0 {
		fields = append(fields, zap.Int("windows_held", rep.WindowsHeld))
	}
	switch {
	case rep.AuthError != nil:
		log.Error("run refused: authentication or permission error; fix the credentials", append(fields, zap.Error(rep.AuthError))...)
	case err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)):
		log.Error("run failed", append(fields, zap.Error(err))...)
	default:
		log.Info("run finished", fields...)
	}
	for _, e := range rep.Errors {
		log.Warn("window failed", zap.String("error", e))
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
