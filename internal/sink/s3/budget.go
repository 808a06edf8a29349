package s3

import (
	"container/list"
	"context"
	"sync"
)

// budget is a weighted FIFO semaphore over bytes: the one in-flight budget
// that every Put of a Sink draws its buffers from. FIFO keeps a large
// request from starving behind a stream of small ones.
type budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters list.List // of *waiter
}

type waiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(size int64) *budget { return &budget{size: size} }

// acquire takes n bytes, waiting until they are free or ctx ends.
func (b *budget) acquire(ctx context.Context, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.size-b.used >= n && b.waiters.Len() == 0 {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	if n > b.size {
		b.mu.Unlock()
		<-ctx.Done() // can never be satisfied; callers validate sizes
		return ctx.Err()
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while giving up: hand it back.
			b.used -= n
			b.notify()
		default:
			isFront := b.waiters.Front() == elem
			b.waiters.Remove(elem)
			if isFront {
				b.notify() // the next waiter may fit now
			}
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

// release returns n bytes.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.mu.Unlock()
		panic("s3: budget released more than acquired")
	}
	b.notify()
	b.mu.Unlock()
}

// notify grants waiting requests in order while they fit. b.mu is held.
func (b *budget) notify() {
	for {
		front := b.waiters.Front()
		if front == nil {
			return
		}
		w := front.Value.(*waiter)
		if b.size-b.used < w.n {
			return
		}
		b.used += w.n
		b.waiters.Remove(front)
		close(w.ready)
	}
}

// inUse returns the bytes currently taken (for metrics and tests).
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// bufPool hands out body buffers charged against a budget. Part-size buffers
// are reused, so a busy sink settles at budget bytes of buffers instead of
// churning the garbage collector; other sizes are allocated exactly.
type bufPool struct {
	budget   *budget
	partSize int64

	mu   sync.Mutex
	free [][]byte
}

type buffer struct {
	b    []byte
	cost int64
}

func newBufPool(b *budget, partSize int64) *bufPool {
	return &bufPool{budget: b, partSize: partSize}
}

// get returns a buffer of length n, charged at its real size: a pooled
// part-size buffer when n is at least a quarter part, an exact one below
// (so a small body does not pin a whole part), an exact one above.
func (p *bufPool) get(ctx context.Context, n int64) (*buffer, error) {
	pooled := n <= p.partSize && n >= p.partSize/4
	cost := n
	if pooled {
		cost = p.partSize
	}
	if err := p.budget.acquire(ctx, cost); err != nil {
		return nil, err
	}
	if !pooled {
		return &buffer{b: make([]byte, n), cost: cost}, nil
	}
	p.mu.Lock()
	var b []byte
	if k := len(p.free); k > 0 {
		b, p.free = p.free[k-1], p.free[:k-1]
	}
	p.mu.Unlock()
	if b == nil {
		b = make([]byte, p.partSize)
	}
	return &buffer{b: b[:n], cost: cost}, nil
}

// put returns buf to the pool and its cost to the budget. buf must not be
// used afterwards.
func (p *bufPool) put(buf *buffer) {
	if buf == nil {
		return
	}
	if int64(cap(buf.b)) == p.partSize && buf.cost == p.partSize {
		p.mu.Lock()
		p.free = append(p.free, buf.b[:cap(buf.b)])
		p.mu.Unlock()
	}
	p.budget.release(buf.cost)
}
