package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// maxRunError bounds the error summary of a recorded run (bytes): status
// prints it on one line.
const maxRunError = 300

// runs are the runs of this process that have started and not ended, by
// job, for RecordInterrupted.
type runs struct {
	mu      sync.Mutex
	running map[string]checkpoint.JobRun
}

// startRun records that a run of job starts now (checkpoint.RunRunning)
// and returns it. A failure to record it is logged and counted; the run
// goes on.
func (a *Archiver) startRun(job string) checkpoint.JobRun {
	r := checkpoint.JobRun{Job: job, Started: time.Now(), Result: checkpoint.RunRunning, Replica: a.owner}
	a.runs.mu.Lock()
	if a.runs.running == nil {
		a.runs.running = map[string]checkpoint.JobRun{}
	}
	a.runs.running[job] = r
	a.runs.mu.Unlock()
	a.recordRun(storeCtx(context.Background()), r)
	return r
}

// endRun records how the run r ended: interrupted when ctx (the stop of
// new work) ended meanwhile, else failed when failure (RunFailure) is not
// nil, else ok; with the report's counts (items and CDR packages done,
// failed) and a one-line summary of failure.
func (a *Archiver) endRun(ctx context.Context, r checkpoint.JobRun, rep *Report, failure error) {
	a.runs.mu.Lock()
	delete(a.runs.running, r.Job)
	a.runs.mu.Unlock()
	r.Finished = time.Now()
	switch {
	case ctx.Err() != nil:
		r.Result = checkpoint.RunInterrupted
	case failure != nil:
		r.Result = checkpoint.RunFailed
	default:
		r.Result = checkpoint.RunOK
	}
	// The cancellation is what "interrupted" says; any other error is
	// the run's own.
	if failure != nil && !(ctx.Err() != nil && errors.Is(failure, context.Canceled)) {
		r.Error = runErrorSummary(failure)
	}
	if rep != nil {
		r.Done, r.Failed, r.Bytes = rep.Done+rep.Existed+rep.Packages, rep.Failed+rep.Dead+rep.PackagesFailed, rep.Bytes
	}
	a.recordRun(storeCtx(context.Background()), r)
}

// RecordInterrupted records every run of this process that has started
// and not ended as interrupted, ended now: for a command that returns
// without waiting for its runs (a forced shutdown), so that status does not
// show them running. A run that still ends afterwards records its own end
// over it. ctx bounds the writes: the process is about to exit.
func (a *Archiver) RecordInterrupted(ctx context.Context) {
	if err := a.init(); err != nil {
		return
	}
	a.runs.mu.Lock()
	var left []checkpoint.JobRun
	for _, r := range a.runs.running {
		left = append(left, r)
	}
	a.runs.mu.Unlock()
	for _, r := range left {
		r.Finished, r.Result = time.Now(), checkpoint.RunInterrupted
		r.Error = "forced shutdown: the process exited before the run ended"
		a.recordRun(ctx, r)
	}
}

// recordRun writes r as its job's last run; a failure is logged and
// counted, never the run's.
func (a *Archiver) recordRun(ctx context.Context, r checkpoint.JobRun) {
	if err := a.Store.SetLastRun(ctx, r); err != nil {
		a.log.Warn("recording the last run failed", zap.String("job", r.Job), zap.Error(a.storeErr("set last run", err)))
	}
}

// runErrorSummary is err on one line, cut to maxRunError bytes on a
// character boundary.
func runErrorSummary(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) <= maxRunError {
		return s
	}
	cut := maxRunError - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
