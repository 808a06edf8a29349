package cecclient

import "time"

// Observer is told about every HTTP attempt the Client makes. The caller
// measures: the client holds no metrics of its own, and main wires an
// Observer that counts what it needs.
//
// Request is called once per attempt, from the goroutine that made the
// call, once the client knows whether it sends the request again: before
// the call returns, and for a retried attempt after the wait before the
// next one. It is called concurrently for concurrent calls, so it must be
// safe for concurrent use, quick, and never block.
type Observer interface {
	Request(RequestInfo)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(RequestInfo)

// Request calls f(ri).
func (f ObserverFunc) Request(ri RequestInfo) { f(ri) }

// RequestInfo describes one HTTP attempt. A failed call ends with exactly
// one RequestInfo whose Err is not nil and whose Retry is false; counting
// those counts failed calls, each once.
type RequestInfo struct {
	Service string // ServiceFS, ServiceCMS or ServiceOIFDE
	Op      string // the operation, as in errors: "download record", "get token"
	// Attempt is 1 for the first attempt of a call and counts every retry.
	// It is 0 for an OIFDE query whose pages all arrived but do not add up
	// (ErrTooManyPages, a total beyond Options.MaxPages): no HTTP attempt,
	// but the end of a failed call all the same.
	Attempt int

	// HTTPStatus is the status of the answer; 0 when none arrived (a network
	// fault, the rate limiter's wait ended by the context).
	HTTPStatus int
	// ResultCode is the CEC result code of a refused request (an *APIError),
	// else "".
	ResultCode string
	// Err is what failed the attempt, nil for a success. For a download a
	// success means the body was handed to the caller; what happens while
	// the caller reads it is not an attempt.
	Err error
	// Class is Classify(Err); meaningful only when Err is not nil.
	Class Class
	// Throttled reports a flow-control answer (0300008/0300009, HTTP 429 or
	// 503, or any answer with Retry-After): the shared limiter slowed down.
	Throttled bool
	// Retry reports that the client sends the request again after this
	// failed attempt (a transient failure with attempts left, one 401, one
	// OIFDE token refresh). A failed attempt with Retry false is the end of
	// the call: its error is what the caller gets.
	Retry bool
	// Duration is the time from the start of the attempt, the rate limiter's
	// wait included, to its answer being judged.
	Duration time.Duration
}

// observe reports one attempt to the Observer, if there is one.
func (c *Client) observe(ri RequestInfo) {
	if c.o.Observer == nil {
		return
	}
	if ri.Err != nil {
		ri.Class = Classify(ri.Err)
	}
	c.o.Observer.Request(ri)
}
