package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// Shutdown results, as jobs.Archiver.RecordShutdown counts them; telemetry
// owns their names.
const (
	shutdownClean     = telemetry.ShutdownClean
	shutdownAbandoned = telemetry.ShutdownAbandoned
	shutdownForced    = telemetry.ShutdownForced
)

// shutdown turns termination signals into the two contexts a run obeys
// (reliability F17):
//
//   - Stop is cancelled by the first SIGTERM/SIGINT: no new work starts.
//   - Abort is cancelled when the drain budget (shutdown.timeout) has passed
//     since the first signal, or at once by a second signal: in-flight
//     transfers are cancelled and their items released.
//
// Forced is closed by the second signal; the command then returns promptly
// whatever its work is doing.
type shutdown struct {
	Stop, Abort context.Context
	Forced      <-chan struct{}

	cancelStop, cancelAbort context.CancelFunc
	forced                  chan struct{}
	done                    chan struct{} // closes the watcher
	wg                      sync.WaitGroup

	mu     sync.Mutex
	result string
}

// watchSignals starts watching sigs. Call close when the command is done
// with the contexts.
func watchSignals(sigs <-chan os.Signal, budget time.Duration, log *zap.Logger) *shutdown {
	s := &shutdown{forced: make(chan struct{}), done: make(chan struct{}), result: shutdownClean}
	s.Forced = s.forced
	s.Stop, s.cancelStop = context.WithCancel(context.Background())
	s.Abort, s.cancelAbort = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.watch(sigs, budget, log)
	return s
}

func (s *shutdown) watch(sigs <-chan os.Signal, budget time.Duration, log *zap.Logger) {
	defer s.wg.Done()
	var sig os.Signal
	select {
	case sig = <-sigs:
	case <-s.done:
		return
	}
	log.Info("draining: no new work starts; in-flight work may finish",
		zap.Stringer("signal", sig), zap.Duration("timeout", budget))
	s.cancelStop()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case <-timer.C:
		s.setResult(shutdownAbandoned)
		log.Warn("shutdown timeout reached: cancelling in-flight work; its items are released and redone next time",
			zap.Duration("timeout", budget))
		s.cancelAbort()
	case sig = <-sigs:
		s.setResult(shutdownForced)
		log.Warn("forced: second signal, cancelling in-flight work now", zap.Stringer("signal", sig))
		s.cancelAbort()
		close(s.forced)
	case <-s.done:
	}
}

func (s *shutdown) setResult(r string) {
	s.mu.Lock()
	s.result = r
	s.mu.Unlock()
}

// Result says how the shutdown went: clean, abandoned or forced.
func (s *shutdown) Result() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result
}

// Signalled reports whether a termination signal arrived.
func (s *shutdown) Signalled() bool { return s.Stop.Err() != nil }

// close stops the watcher and cancels both contexts.
func (s *shutdown) close() {
	close(s.done)
	s.wg.Wait()
	s.cancelStop()
	s.cancelAbort()
}

// processSignals delivers the process's SIGINT and SIGTERM; stop undoes it.
func processSignals() (sigs <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// watch starts a shutdown watcher on c.signals, or on the process's signals
// when c.signals is nil. The returned function releases it.
func (c *cli) watch(budget time.Duration, log *zap.Logger) (*shutdown, func()) {
	sigs, stop := c.signals, func() {}
	if sigs == nil {
		sigs, stop = processSignals()
	}
	sh := watchSignals(sigs, budget, log)
	return sh, func() {
		stop()
		sh.close()
	}
}

// await waits for work to finish and returns its result. After a second
// signal it waits at most grace more for the work to release its items, then
// returns ok false without a result.
func await[T any](sh *shutdown, grace time.Duration, result <-chan T) (v T, ok bool) {
	select {
	case v = <-result:
		return v, true
	case <-sh.Forced:
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case v = <-result:
		return v, true
	case <-t.C:
		return v, false
	}
}
