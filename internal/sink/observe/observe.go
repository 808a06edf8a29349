// Package observe is a sink decorator that reports every operation, its
// error and its duration to a callback. The business code never holds a
// metrics object: main wraps the real sink and turns the reports into
// metrics.
package observe

import (
	"context"
	"io"
	"iter"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Operations, as passed to Report.
const (
	OpPut  = "put"
	OpStat = "stat"
	OpList = "list"
	OpOpen = "open"
)

// Sink wraps a sink.Sink and calls Report once per Put and Stat, after the
// wrapped call returned, with its error (nil on success) and duration.
// Report must be safe for concurrent use; a nil Report reports nothing.
type Sink struct {
	sink.Sink
	Report func(op string, err error, d time.Duration)
}

var _ sink.Sink = (*Sink)(nil)

// ReadSink is a Sink whose wrapped sink is also a sink.Reader: List and
// Open are reported as well.
type ReadSink struct {
	*Sink
	r sink.Reader
}

var (
	_ sink.Sink   = (*ReadSink)(nil)
	_ sink.Reader = (*ReadSink)(nil)
)

// New wraps s. The result is a *ReadSink when s implements sink.Reader, so
// that callers asserting sink.Reader still find it; else a *Sink.
func New(s sink.Sink, report func(op string, err error, d time.Duration)) sink.Sink {
	o := &Sink{Sink: s, Report: report}
	if r, ok := s.(sink.Reader); ok {
		return &ReadSink{Sink: o, r: r}
	}
	return o
}

func (s *Sink) report(op string, err error, start time.Time) {
	if s.Report != nil {
		s.Report(op, err, time.Since(start))
	}
}

// Put calls the wrapped Put and reports it.
func (s *Sink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	start := time.Now()
	obj, err := s.Sink.Put(ctx, key, body, size, meta)
	s.report(OpPut, err, start)
	return obj, err
}

// Stat calls the wrapped Stat and reports it.
func (s *Sink) Stat(ctx context.Context, key string) (sink.Object, error) {
	start := time.Now()
	obj, err := s.Sink.Stat(ctx, key)
	s.report(OpStat, err, start)
	return obj, err
}

// List calls the wrapped List and reports it once the iteration ends: with
// the error yielded last, if any, or nil (also when the caller stopped
// early); the duration is the whole iteration's.
func (s *ReadSink) List(ctx context.Context, prefix string) iter.Seq2[sink.Object, error] {
	return func(yield func(sink.Object, error) bool) {
		start := time.Now()
		var last error
		for obj, err := range s.r.List(ctx, prefix) {
			last = err
			if !yield(obj, err) {
				break
			}
		}
		s.report(OpList, last, start)
	}
}

// Open calls the wrapped Open and reports it; reading the body is not part
// of the operation.
func (s *ReadSink) Open(ctx context.Context, key string) (io.ReadCloser, sink.Object, error) {
	start := time.Now()
	rc, obj, err := s.r.Open(ctx, key)
	s.report(OpOpen, err, start)
	return rc, obj, err
}
