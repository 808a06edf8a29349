package jobs

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// hookSink calls put before each Put of the sink it wraps.
type hookSink struct {
	sink.Sink
	put func()
}

func (s *hookSink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	s.put()
	return s.Sink.Put(ctx, key, body, size, meta)
}

// lastRun returns job's last run, failing the test when there is none.
func (e *env) lastRun(job string) checkpoint.JobRun {
	e.t.Helper()
	r, ok, err := e.store.LastRun(testCtx(e.t), job)
	if err != nil || !ok {
		e.t.Fatalf("LastRun(%s) = ok %v, %v; want a run", job, ok, err)
	}
	return r
}

// TestArchiver_LastRun: every run records its job's last run in the store,
// from the chokepoint that measures it: running while it goes on, then ok
// with what it did, failed with a one-line summary of its failures, or
// interrupted when the stop of new work came during it; RecordInterrupted
// closes the runs still going for a forced shutdown.
func TestArchiver_LastRun(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		e := newEnv(t, envOptions{sim: withSmallDataset(nil)})
		before := time.Now()
		if rep, err := e.a.Once(testCtx(t)); err != nil || RunFailure(rep, nil) != nil {
			t.Fatalf("Once: %+v, %v; want a clean run", rep, err)
		}
		after := time.Now()
		for _, job := range Jobs() {
			r := e.lastRun(job)
			if r.Result != checkpoint.RunOK || r.Error != "" || r.Replica != e.a.ReplicaID() || r.Failed != 0 ||
				r.Started.Before(before.Add(-time.Millisecond)) || r.Finished.Before(r.Started) || r.Finished.After(after) {
				t.Errorf("%s: %+v; want ok, between %v and %v, by %s", job, r, before, after, e.a.ReplicaID())
			}
		}
		if r := e.lastRun(config.JobRecordings); r.Done == 0 || r.Bytes == 0 {
			t.Errorf("recordings: %+v; want the recordings it stored counted", r)
		}
		if r := e.lastRun(config.JobCDR); r.Bytes == 0 {
			t.Errorf("cdr: %+v; want the package bytes counted", r)
		}
	})
	t.Run("failed", func(t *testing.T) {
		e := newEnv(t, envOptions{sim: withSmallDataset(func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}
		})})
		rep, err := e.a.Once(testCtx(t))
		if err != nil || rep.Failed+rep.Dead == 0 {
			t.Fatalf("Once: %+v, %v; want failed attempts", rep, err)
		}
		r := e.lastRun(config.JobRecordings)
		if r.Result != checkpoint.RunFailed || r.Failed != rep.Failed+rep.Dead || r.Finished.IsZero() ||
			!strings.HasPrefix(r.Error, "jobs: run recorded failures: ") || strings.Contains(r.Error, "\n") {
			t.Errorf("recordings: %+v; want failed, %d failed attempts, the summary on one line", r, rep.Failed+rep.Dead)
		}
		if r := e.lastRun(config.JobCDR); r.Result != checkpoint.RunOK {
			t.Errorf("cdr: %+v; want ok (only the recordings failed)", r)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		ctx, stop := context.WithCancel(testCtx(t))
		defer stop()
		// The stop of new work comes as the cdr job stores its first
		// package, as a SIGTERM would.
		e := newEnv(t, envOptions{sim: withSmallDataset(nil), sink: func(s sink.Sink) sink.Sink {
			return &hookSink{Sink: s, put: stop}
		}})
		if _, err := e.a.Once(ctx); err == nil {
			t.Fatal("Once after the stop returned no error")
		}
		if r := e.lastRun(config.JobCDR); r.Result != checkpoint.RunInterrupted || r.Error != "" || r.Finished.IsZero() {
			t.Errorf("cdr: %+v; want interrupted, and no error but the cancellation", r)
		}
		if r, ok, _ := e.store.LastRun(ctx, config.JobRecordings); ok {
			t.Errorf("recordings: %+v; it never started", r)
		}
	})
	t.Run("forced", func(t *testing.T) {
		var once sync.Once
		blocked, release := make(chan struct{}), make(chan struct{})
		e := newEnv(t, envOptions{sim: withSmallDataset(nil), sink: func(s sink.Sink) sink.Sink {
			return &hookSink{Sink: s, put: func() {
				once.Do(func() { close(blocked) })
				<-release
			}}
		}})
		done := make(chan error, 1)
		go func() {
			_, err := e.a.Run(testCtx(t), config.JobCDR)
			done <- err
		}()
		<-blocked
		r := e.lastRun(config.JobCDR)
		if r.Result != checkpoint.RunRunning || !r.Finished.IsZero() || r.Replica != e.a.ReplicaID() {
			t.Errorf("during the run: %+v; want running, not finished", r)
		}
		e.a.RecordInterrupted(testCtx(t))
		got := e.lastRun(config.JobCDR)
		if got.Result != checkpoint.RunInterrupted || !got.Started.Equal(r.Started) || got.Finished.IsZero() ||
			!strings.Contains(got.Error, "forced shutdown") {
			t.Errorf("after RecordInterrupted: %+v; want the same run interrupted by a forced shutdown", got)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := e.lastRun(config.JobCDR); got.Result != checkpoint.RunOK || !got.Started.Equal(r.Started) {
			t.Errorf("after the run ended by itself: %+v; want its own end, ok", got)
		}
		// Nothing left to close.
		e.a.RecordInterrupted(testCtx(t))
		if got := e.lastRun(config.JobCDR); got.Result != checkpoint.RunOK {
			t.Errorf("RecordInterrupted with no run going changed the last run: %+v", got)
		}
	})
}

func TestRunErrorSummary(t *testing.T) {
	long := strings.Repeat("通", 200) // 600 bytes
	for _, c := range []struct{ in, want string }{
		{"a\n  b\tc", "a b c"},
		{long, strings.Repeat("通", 99) + "…"},
	} {
		got := runErrorSummary(errString(c.in))
		if got != c.want || len(got) > maxRunError {
			t.Errorf("runErrorSummary(%.20q) = %.40q (%d bytes), want %.40q", c.in, got, len(got), c.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
