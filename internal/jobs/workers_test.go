package jobs

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkers runs every function once, on no more goroutines than ran at
// once, and close waits for them.
func TestWorkers(t *testing.T) {
	w := newWorkers()
	before := runtime.NumGoroutine()
	var ran, running, peak atomic.Int64
	var wg sync.WaitGroup
	gate := make(chan struct{})
	const n, width = 200, 4
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		w.run(func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := running.Add(1)
			for {
				p := peak.Load()
				if c <= p || peak.CompareAndSwap(p, c) {
					break
				}
			}
			if i == 0 {
				<-gate // the first one holds its worker for a while
			}
			running.Add(-1)
			ran.Add(1)
		})
		if i == n/2 {
			close(gate)
		}
	}
	wg.Wait()
	// A function's slot is free just before its worker is idle again, so
	// the next may find none idle and start one: a few more than width,
	// far fewer than one per function.
	if got := w.started.Load(); got > n/4 {
		t.Errorf("%d workers started for %d functions run at most %d at a time", got, n, width)
	}
	w.close()
	if got := ran.Load(); got != n {
		t.Errorf("ran %d functions, want %d", got, n)
	}
	if peak.Load() > width {
		t.Errorf("%d ran at once, want ≤ %d", peak.Load(), width)
	}
	// A worker's goroutine ends just after close has seen it done, and a
	// goroutine of an earlier test may still be ending too: allow a moment.
	got := runtime.NumGoroutine() - before
	for deadline := time.Now().Add(5 * time.Second); got > 0 && time.Now().Before(deadline); got = runtime.NumGoroutine() - before {
		time.Sleep(10 * time.Millisecond)
	}
	if got > 0 {
		t.Errorf("%d workers left 5 s after close", got)
	}
}

// TestNextAhead: the claim grows while batches go fast, up to four times the
// concurrency, and falls back at once after a slow one.
func TestNextAhead(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	ahead, last := nextAhead(0, 16, time.Time{}, t0)
	if ahead != 16 || !last.Equal(t0) {
		t.Fatalf("first claim: %d at %v, want 16 at %v", ahead, last, t0)
	}
	for _, want := range []int{32, 64, 64} {
		t0 = t0.Add(100 * time.Millisecond)
		if ahead, last = nextAhead(ahead, 16, last, t0); ahead != want {
			t.Fatalf("after a fast batch: %d, want %d", ahead, want)
		}
	}
	t0 = t0.Add(fastBatch)
	if ahead, _ = nextAhead(ahead, 16, last, t0); ahead != 16 {
		t.Errorf("after a slow batch: %d, want 16", ahead)
	}
}

// TestWorkers_KeepStacks: a worker waiting for its next function keeps the
// stack its last one grew to (up to four times stackBallast), through
// garbage collections, instead of having it halved and grown again, copy by
// copy, by the next item. Fails when the ballast is too small for the stack
// (with 16 KiB and a 128 KiB stack: 64 KiB less for each worker).
func TestWorkers_KeepStacks(t *testing.T) {
	w := newWorkers()
	defer w.close()
	const n = 32
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(n)
	for range n {
		w.run(func() {
			defer wg.Done()
			<-start             // all n at once: n workers
			growStack(96 << 10) // a stack of 128 KiB, like the S3 SDK's PutObject
		})
	}
	close(start)
	wg.Wait()
	if got := w.started.Load(); got != n {
		t.Fatalf("%d workers started, want %d", got, n)
	}
	time.Sleep(10 * time.Millisecond) // all of them back in next
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Shrinking one worker's 128 KiB stack frees 64 KiB: allow a quarter of
	// that for each (other goroutines of the test).
	if lost := int64(before.StackInuse) - int64(after.StackInuse); lost >= n*16<<10 {
		t.Errorf("stacks in use fell by %d KiB across two collections (%d idle workers): their stacks were shrunk", lost>>10, n)
	}
}

// growStack uses about n bytes of stack.
//
//go:noinline
func growStack(n int) byte {
	var frame [1 << 10]byte
	frame[0] = byte(n)
	if n <= len(frame) {
		return frame[0]
	}
	return growStack(n-len(frame)) + frame[len(frame)-1]
}
