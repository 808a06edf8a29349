package jobs

import (
	"errors"
	"fmt"
	"time"
)

// Metrics is what the jobs report to telemetry: outcomes only the jobs know
// (items, packages, bytes, watermarks, runs), and what the chokepoints
// report: failed sink operations (ObserveSink) and CEC requests
// (UpstreamObserver), and how the process stopped (RecordShutdown).
// *telemetry.Metrics implements it (and a nil *telemetry.Metrics is a no-op); a nil Metrics
// reports nothing.
type Metrics interface {
	// JobStarted marks a run of job; done records its outcome and duration.
	JobStarted(job string) (done func(error))
	// LastPass records what a job's run that is ending handled (items by
	// result, bytes stored); it is called before the run's done.
	LastPass(job string, items map[string]int, bytes int64)
	// LastSuccess exports a job's last success as the store recorded it
	// (the gauge keeps the later of it and the process's own runs).
	LastSuccess(job string, t time.Time)
	// Item counts one item outcome: done, existed, absent, failed, dead,
	// deferred or released.
	Item(kind, result string)
	// Bytes counts bytes stored for kind.
	Bytes(kind string, n int64)
	// Package counts one CDR package outcome: done, unchanged or failed.
	Package(result string)
	// Watermark exports a job's watermark.
	Watermark(job string, t time.Time)
	// SetItems exports the items per kind and state.
	SetItems(counts map[string]map[string]int)
	// CheckpointError counts a failed checkpoint store call.
	CheckpointError()
	// Ledger counts a ledger object written.
	Ledger()
	// UpstreamError counts a failed CEC request by error class. The client
	// counts its own failures (cecclient.Options.Observer, wired in main);
	// the jobs report only "content": a download the client handed over
	// whose bytes are not a recording, which only the jobs can tell.
	UpstreamError(class string)
	// SinkError counts a failed sink operation (put, stat, list, open).
	SinkError(op string)
	// Shutdown counts how the process stopped.
	Shutdown(result string)
	// LeaseLost counts one piece of job's work given up because another
	// replica took over its lease (an item abandoned, a CDR window left to
	// that replica).
	LeaseLost(job string)
}

// nopMetrics is used when Archiver.Metrics is nil.
type nopMetrics struct{}

func (nopMetrics) JobStarted(string) func(error)          { return func(error) {} }
func (nopMetrics) LastPass(string, map[string]int, int64) {}
func (nopMetrics) LastSuccess(string, time.Time)          {}
func (nopMetrics) Item(string, string)                    {}
func (nopMetrics) Bytes(string, int64)                    {}
func (nopMetrics) Package(string)                         {}
func (nopMetrics) Watermark(string, time.Time)            {}
func (nopMetrics) SetItems(map[string]map[string]int)     {}
func (nopMetrics) CheckpointError()                       {}
func (nopMetrics) Ledger()                                {}
func (nopMetrics) UpstreamError(string)                   {}
func (nopMetrics) SinkError(string)                       {}
func (nopMetrics) Shutdown(string)                        {}
func (nopMetrics) LeaseLost(string)                       {}

// ErrRunFailures is what RunFailure returns for a run that ended without an
// error but recorded failures.
var ErrRunFailures = errors.New("jobs: run recorded failures")

// RunFailure is the outcome a job run reports to Metrics.JobStarted's done:
// err when it is not nil; else an error wrapping ErrRunFailures when rep
// records an authentication error, a failed window or package, a failed
// attempt or a dead item; else
// nil. A run that archived nothing because nothing was due is a success; one
// that met failures is not, so that archiver_job_runs_total{result="failure"}
// counts it and archiver_job_last_success_timestamp_seconds stays where it
// was and the staleness alert can fire.
func RunFailure(rep *Report, err error) error {
	if err != nil || rep == nil {
		return err
	}
	if rep.AuthError != nil {
		return rep.AuthError
	}
	if rep.PackagesFailed > 0 || len(rep.Errors) > 0 || rep.Failed > 0 || rep.Dead > 0 {
		return fmt.Errorf("%w: %d windows or packages failed, %d attempts failed, %d items dead",
			ErrRunFailures, max(rep.PackagesFailed, len(rep.Errors)), rep.Failed, rep.Dead)
	}
	return nil
}
