package jobs

import (
	"sync"
	"sync/atomic"
)

// workers runs functions on goroutines that live for more than one of
// them. A goroutine per item started each one on a small stack that then
// grew, copy by copy, through the S3 SDK's deep middleware: the copying was
// 6 % of the archiver's CPU on 8 KiB recordings. A worker keeps its grown
// stack for the next item: it waits for work below a frame of ballast (see
// next), so that a garbage collection does not find the stack mostly unused
// and shrink it, to be grown again by the next item (another 4–8 % of the
// CPU on 8 KiB recordings, more while a CDR package is parsed alongside).
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
		for {
			fn, ok := w.next()
			if !ok {
				return
			}
			fn()
		}
	}()
}

// stackBallast is the stack a waiting worker keeps in use. The collector
// halves a goroutine's stack when it uses less than a quarter of it: with
// this much in use while it waits, a worker keeps a stack of up to four
// times as much: the SDK's PutObject grows one to 128 KiB, which 16 KiB let
// every collection halve (the copying back up was still 3 % of the CPU on
// 8 KiB recordings; under 1 % with 32 KiB).
const stackBallast = 32 << 10

// next waits for the next function, below a frame of stackBallast bytes
// (false: the workers are closed).
//
//go:noinline
func (w *workers) next() (func(), bool) {
	var ballast [stackBallast]byte
	keep(ballast[:])
	fn, ok := <-w.work
	return fn, ok
}

// keep uses b, so that the compiler keeps the ballast of next on the
// stack.
//
//go:noinline
func keep(b []byte) { b[0] = 1 }

// close ends the workers once the functions they run return; run must not
// be called after it.
func (w *workers) close() {
	close(w.work)
	w.wg.Wait()
}
