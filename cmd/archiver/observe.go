package main

import (
	"errors"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/observe"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// upstreamObserver counts failed CEC calls in
// archiver_upstream_errors_total: the client reports every attempt, and the
// last attempt of a failed call (Retry false) is the call's failure. A
// retried attempt is not counted, so one refused signature that the client's
// own retry gets past does not read as an authentication failure.
type upstreamObserver struct{ m *telemetry.Metrics }

var _ cecclient.Observer = upstreamObserver{}

// Request implements cecclient.Observer.
func (o upstreamObserver) Request(ri cecclient.RequestInfo) {
	if ri.Err == nil || ri.Retry {
		return
	}
	o.m.UpstreamError(upstreamClass(ri))
}

// upstreamClass is the class label of a failed call: auth when CEC refused
// the credentials, else the client's classification.
func upstreamClass(ri cecclient.RequestInfo) string {
	if cecclient.IsAuth(ri.Err) {
		return "auth"
	}
	return ri.Class.String()
}

// observeSink wraps the sink in the decorator that counts its failed
// operations in archiver_sink_errors_total.
func (a *app) observeSink() {
	a.sink = observe.New(a.sink, sinkReport(a.metrics))
}

// sinkReport is the Report of the sink decorator: it counts failed
// operations, except those that are not the sink's failure (sinkFailure).
func sinkReport(m *telemetry.Metrics) func(op string, err error, d time.Duration) {
	return func(op string, err error, _ time.Duration) {
		if sinkFailure(op, err) {
			m.SinkError(op)
		}
	}
}

// sinkFailure tells a failed sink operation from an answer: a Stat or Open
// of a missing key is the sink saying so, and a Put whose body turned out
// not to be a recording is the upstream's fault (the jobs count it as a
// content error).
func sinkFailure(op string, err error) bool {
	switch {
	case err == nil:
		return false
	case (op == observe.OpStat || op == observe.OpOpen) && errors.Is(err, sink.ErrNotFound):
		return false
	case op == observe.OpPut && (errors.Is(err, recording.ErrNotRecording) || errors.Is(err, recording.ErrIsZip)):
		return false
	}
	return true
}
