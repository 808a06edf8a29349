package main

import (
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
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
