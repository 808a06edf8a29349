package jobs

import (
	"sync"
	"sync/atomic"
)

// workers runs functions on goroutines that live for more than one of
// them. A goroutine per item started each one on a small stack that then
// grew, copy by copy, through the S3 SDK's deep middleware: the copying was
// 6 % of the archiver's CPU on 8 KiB recordings. A worker keeps its grown
// stack for the next item (until a garbage collection finds it mostly
// unused and shrinks it).
type workers struct {
	work    chan func()
	wg      sync.WaitGroup
	started atomic.Int64 // workers started, for tests
}

func newWorkers() *workers { return &workers{work: make(chan func())} }

// run hands fn to an idle worker, or starts one. There are never more
// workers than functions running at once.
func (w *workers) run(fn func()) {
	select {
	case w.work <- fn:
		return
	default:
	}
	w.wg.Add(1)
	w.started.Add(1)
	go func() {
		defer w.wg.Done()
		fn()
		for fn := range w.work {
			fn()
		}
	}()
}

// close ends the workers once the functions they run return; run must not
// be called after it.
func (w *workers) close() {
	close(w.work)
	w.wg.Wait()
}
