package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
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

	// reload, when set (archiver run), is called on SIGHUP: nil means the
	// configuration file loads and the run drains to start again with it
	// (Reloading); an error keeps the run going as it is.
	reload    func() error
	reloading atomic.Bool

	mu     sync.Mutex
	result string
}

// watchSignals starts watching sigs. Call close when the command is done
// with the contexts.
func watchSignals(sigs <-chan os.Signal, budget time.Duration, log *zap.Logger, reload func() error) *shutdown {
	s := &shutdown{forced: make(chan struct{}), done: make(chan struct{}), result: shutdownClean, reload: reload}
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
	for {
		select {
		case sig = <-sigs:
		case <-s.done:
			return
		}
		if sig != syscall.SIGHUP || s.reload == nil {
			break
		}
		// A reload: only with a configuration that loads.
		if err := s.reload(); err != nil {
			log.Error("reload refused: the configuration does not load; the running configuration is kept", zap.Error(err))
			continue
		}
		s.reloading.Store(true)
		log.Info("reloading: draining, then starting again with the new configuration", zap.Duration("timeout", budget))
		break
	}
	log.Info("draining: no new work starts; in-flight work may finish",
		zap.Stringer("signal", sig), zap.Duration("timeout", budget))
	s.cancelStop()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			s.setResult(shutdownAbandoned)
			log.Warn("shutdown timeout reached: cancelling in-flight work; its items are released and redone next time",
				zap.Duration("timeout", budget))
			s.cancelAbort()
		case sig = <-sigs:
			if sig == syscall.SIGHUP && s.reload != nil {
				continue // already draining; a reload then loads the file again
			}
			s.setResult(shutdownForced)
			log.Warn("forced: second signal, cancelling in-flight work now", zap.Stringer("signal", sig))
			s.cancelAbort()
			close(s.forced)
		case <-s.done:
		}
		return
	}
}

// Reloading reports whether the drain is a reload's (SIGHUP with a
// configuration that loads): the command starts again once it is over.
func (s *shutdown) Reloading() bool { return s.reloading.Load() }

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

// processSignals delivers the process's SIGINT and SIGTERM, and SIGHUP
// with hup; stop undoes it.
func processSignals(hup bool) (sigs <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 2)
	which := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if hup {
		which = append(which, syscall.SIGHUP)
	}
	signal.Notify(ch, which...)
	return ch, func() { signal.Stop(ch) }
}

// watch starts a shutdown watcher on c.signals, or on the process's signals
// when c.signals is nil. The returned function releases it.
func (c *cli) watch(budget time.Duration, log *zap.Logger) (*shutdown, func()) {
	return c.watchReload(budget, log, nil)
}

// watchReload is watch that also takes SIGHUP: reload checks the new
// configuration (see shutdown.reload).
func (c *cli) watchReload(budget time.Duration, log *zap.Logger, reload func() error) (*shutdown, func()) {
	sigs, stop := c.signals, func() {}
	if sigs == nil {
		sigs, stop = processSignals(reload != nil)
	}
	sh := watchSignals(sigs, budget, log, reload)
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
