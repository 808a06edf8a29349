package jobs

import (
	"errors"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/observe"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// Labels are the label values the metrics create at zero, from the packages
// that own them: the jobs' names, checkpoint's kinds (and the CDR package's)
// and states, and which job works on which kinds (what telemetry.Push
// sends with each job). main passes them to telemetry.New.
func Labels() telemetry.Known {
	k := telemetry.Known{Jobs: Jobs(), Kinds: append(checkpoint.Kinds(), KindPackage),
		JobKinds: map[string][]string{}, PackageJob: config.JobCDR}
	for _, j := range Jobs() {
		k.JobKinds[j] = jobKinds(j)
	}
	for _, s := range checkpoint.States {
		k.States = append(k.States, string(s))
	}
	return k
}

// The chokepoints: every CEC request passes through the client's Observer,
// every sink operation through the observe decorator. What they report is
// turned into metrics here, once, so that neither main nor the job code
// counts failures inline.

// UpstreamObserver returns the cecclient.Observer that counts failed CEC
// calls in m (archiver_upstream_errors_total): the client reports every
// attempt, and the last attempt of a failed call (Retry false) is the call's
// failure. A retried attempt is not counted, so one refused signature that
// the client's own retry gets past does not read as an authentication
// failure. A nil m counts nothing.
func UpstreamObserver(m Metrics) cecclient.Observer {
	if m == nil {
		m = nopMetrics{}
	}
	return upstreamObserver{m}
}

type upstreamObserver struct{ m Metrics }

// Request implements cecclient.Observer.
func (o upstreamObserver) Request(ri cecclient.RequestInfo) {
	if ri.Err == nil || ri.Retry {
		return
	}
	o.m.UpstreamError(upstreamClass(ri))
}

// upstreamClass is the class label of a failed call: auth when CEC refused
// the credentials; content when it answered with something unusable (an
// HTML page, a Content-Encoding, an oversized body, an invalid OIFDE answer:
// cecclient.IsContentError), like the bodies the jobs find not to be a
// recording; else the client's classification.
func upstreamClass(ri cecclient.RequestInfo) string {
	switch {
	case cecclient.IsAuth(ri.Err):
		return "auth"
	case cecclient.IsContentError(ri.Err):
		return "content"
	}
	return ri.Class.String()
}

// ObserveSink wraps s in the decorator that counts its failed operations in
// m (archiver_sink_errors_total). The result implements sink.Reader when s
// does. A nil m counts nothing.
func ObserveSink(s sink.Sink, m Metrics) sink.Sink {
	if m == nil {
		m = nopMetrics{}
	}
	return observe.New(s, func(op string, err error, _ time.Duration) {
		if sinkFailure(op, err) {
			m.SinkError(op)
		}
	})
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

// RecordShutdown counts how the process stopped (archiver_shutdowns_total):
// result is one of telemetry's shutdown results (clean, abandoned, forced).
func (a *Archiver) RecordShutdown(result string) {
	if a.Metrics != nil {
		a.Metrics.Shutdown(result)
	}
}
