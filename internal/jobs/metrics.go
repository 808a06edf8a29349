package jobs

import (
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
)

// Metrics is what the jobs report to telemetry. *telemetry.Metrics
// implements it (and a nil *telemetry.Metrics is a no-op); a nil Metrics
// reports nothing.
type Metrics interface {
	// JobStarted marks a run of job; done records its outcome and duration.
	JobStarted(job string) (done func(error))
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
	// SinkError counts a failed sink operation.
	SinkError(op string)
	// UpstreamError counts a failed CEC request by error class.
	UpstreamError(class string)
}

// nopMetrics is used when Archiver.Metrics is nil.
type nopMetrics struct{}

func (nopMetrics) JobStarted(string) func(error)      { return func(error) {} }
func (nopMetrics) Item(string, string)                {}
func (nopMetrics) Bytes(string, int64)                {}
func (nopMetrics) Package(string)                     {}
func (nopMetrics) Watermark(string, time.Time)        {}
func (nopMetrics) SetItems(map[string]map[string]int) {}
func (nopMetrics) CheckpointError()                   {}
func (nopMetrics) Ledger()                            {}
func (nopMetrics) SinkError(string)                   {}
func (nopMetrics) UpstreamError(string)               {}

// upstreamClass is the UpstreamError label of a CEC error.
func upstreamClass(err error) string {
	if cecclient.IsAuth(err) {
		return "auth"
	}
	return cecclient.Classify(err).String()
}
