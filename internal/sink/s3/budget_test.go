package s3

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBudget_FIFO(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	if err := b.acquire(ctx, 8); err != nil {
		t.Fatal(err)
	}
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	big := make(chan struct{})
	wg.Go(func() {
		_ = b.acquire(ctx, 10) // first in line, needs everything
		mu.Lock()
		order = append(order, 10)
		mu.Unlock()
		close(big)
	})
	waitWaiters(t, b, 1)
	wg.Go(func() {
		_ = b.acquire(ctx, 1) // fits now, but must not overtake
		mu.Lock()
		order = append(order, 1)
		mu.Unlock()
	})
	waitWaiters(t, b, 2)
	b.release(8)
	<-big
	b.release(10)
	wg.Wait()
	if len(order) != 2 || order[0] != 10 || order[1] != 1 {
		t.Errorf("grant order %v, want [10 1]", order)
	}
	b.release(1)
	if b.inUse() != 0 {
		t.Errorf("in use %d after releasing everything", b.inUse())
	}
}

func TestBudget_Cancel(t *testing.T) {
	b := newBudget(10)
	if err := b.acquire(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.acquire(ctx, 5) }()
	waitWaiters(t, b, 1)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("acquire after cancel succeeded")
	}
	b.release(10)
	if b.inUse() != 0 || b.waiters.Len() != 0 {
		t.Errorf("in use %d, waiters %d", b.inUse(), b.waiters.Len())
	}
	if err := b.acquire(ctx, 1); err == nil {
		t.Error("acquire on a cancelled context succeeded")
	}
}

// TestBufPool_Bounded hammers the pool from many goroutines and checks that
// the bytes handed out never exceed the budget.
func TestBufPool_Bounded(t *testing.T) {
	const part = 1 << 10
	p := newBufPool(newBudget(8*part), part)
	var out, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 50 {
				n := int64([]int{part, part / 8, part / 2, 3 * part}[(i+j)%4])
				buf, err := p.get(context.Background(), n)
				if err != nil {
					t.Error(err)
					return
				}
				cur := out.Add(int64(cap(buf.b)))
				for {
					old := peak.Load()
					if cur <= old || peak.CompareAndSwap(old, cur) {
						break
					}
				}
				time.Sleep(time.Microsecond)
				out.Add(-int64(cap(buf.b)))
				p.put(buf)
			}
		})
	}
	wg.Wait()
	if peak.Load() > 8*part {
		t.Errorf("peak %d bytes handed out, budget %d", peak.Load(), 8*part)
	}
	if p.budget.inUse() != 0 {
		t.Errorf("budget in use %d after all puts", p.budget.inUse())
	}
}

func waitWaiters(t *testing.T, b *budget, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b.mu.Lock()
		got := b.waiters.Len()
		b.mu.Unlock()
		if got >= n {
			return
		}
	}
	t.Fatalf("never saw %d waiters", n)
}
