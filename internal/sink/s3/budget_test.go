package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
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

// TestBufPool_Spool: with a spool directory, a body above SpoolAbove is held
// in an unlinked file charged to the spool budget, never to the memory
// budget; it reads back what was filled, hashed on the way in; a small body
// stays in memory. Returned files are reused, and a reused file reads back
// only what its new fill wrote.
func TestBufPool_Spool(t *testing.T) {
	const part = 4 << 20
	dir := t.TempDir()
	mem, disk := newBudget(2*SpoolAbove), newBudget(2*part)
	p := newBufPool(mem, part).withSpool(dir, disk, SpoolAbove)
	ctx := context.Background()

	src := bytes.Repeat([]byte("0123456789abcdef"), part/16)
	big, err := p.get(ctx, part)
	if err != nil {
		t.Fatal(err)
	}
	if big.f == nil || big.b != nil {
		t.Fatalf("a %d-byte buffer is in memory, want a spool file", part)
	}
	h := sha256.New()
	if n, err := big.fill(bytes.NewReader(src[:part-5]), h); n != part-5 || err != io.ErrUnexpectedEOF {
		t.Fatalf("fill of a short body = %d, %v; want %d, ErrUnexpectedEOF", n, err, part-5)
	}
	if want := sha256.Sum256(src[:part-5]); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("fill hashed other bytes than it read")
	}
	got, err := io.ReadAll(big.reader())
	if err != nil || !bytes.Equal(got, src[:part-5]) || big.len() != part-5 {
		t.Fatalf("spool file reads back %d bytes (%v), len %d; want the %d filled", len(got), err, big.len(), part-5)
	}
	if mem.inUse() != 0 || disk.inUse() != part {
		t.Errorf("in use: memory %d, spool %d; want 0 and %d", mem.inUse(), disk.inUse(), part)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spool file visible in the directory: %v", left)
	}
	small, err := p.get(ctx, 1000)
	if err != nil || small.f != nil || mem.inUse() != 1000 {
		t.Fatalf("a 1000-byte buffer: file %v, memory in use %d, %v; want memory, 1000", small.f != nil, mem.inUse(), err)
	}
	if n, err := small.fill(bytes.NewReader(src), nil); n != 1000 || err != nil || !bytes.Equal(small.b, src[:1000]) {
		t.Fatalf("fill of a full small buffer = %d, %v", n, err)
	}
	f := big.f
	p.put(big)
	p.put(small)
	again, err := p.get(ctx, part)
	if err != nil || again.f != f {
		t.Errorf("spool file not reused (%v)", err)
	}
	if n, err := again.fill(bytes.NewReader(nil), nil); n != 0 || err != io.EOF {
		t.Errorf("fill of an empty body = %d, %v; want 0, EOF", n, err)
	}
	if got, err := io.ReadAll(again.reader()); err != nil || len(got) != 0 {
		t.Errorf("a reused file refilled with nothing reads back %d bytes, %v", len(got), err)
	}
	if n, err := again.fill(bytes.NewReader([]byte("new")), nil); n != 3 || err != io.ErrUnexpectedEOF {
		t.Errorf("fill = %d, %v", n, err)
	}
	if got, _ := io.ReadAll(again.reader()); string(got) != "new" {
		t.Errorf("a reused file reads back %q, want only its new content", got)
	}
	p.put(again)
	if mem.inUse() != 0 || disk.inUse() != 0 {
		t.Errorf("after all puts: memory %d, spool %d in use", mem.inUse(), disk.inUse())
	}
}

// TestBufPool_SpoolBestFit: a spool buffer takes the largest free file that
// holds no more than it needs (so that, filled, the file holds exactly the
// body and can be sent from it), else one of the others.
func TestBufPool_SpoolBestFit(t *testing.T) {
	const part = 4 << 20
	p := newBufPool(newBudget(2*SpoolAbove), part).withSpool(t.TempDir(), newBudget(4*part), SpoolAbove)
	ctx := context.Background()
	filled := map[int64]*os.File{}
	var bufs []*buffer
	for _, n := range []int64{1 << 20, 3 << 20, 2 << 20} {
		b, err := p.get(ctx, part)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.fill(bytes.NewReader(make([]byte, n)), nil); err != io.ErrUnexpectedEOF {
			t.Fatal(err)
		}
		filled[n] = b.f
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		p.put(b)
	}
	for _, tc := range []struct {
		need int64
		want int64 // the size of the file it gets
	}{{2<<20 + 1, 2 << 20}, {4 << 20, 3 << 20}, {1 << 20, 1 << 20}} {
		b, err := p.get(ctx, tc.need)
		if err != nil {
			t.Fatal(err)
		}
		if b.f != filled[tc.want] || b.fsize != tc.want {
			t.Errorf("a %d-byte buffer got a file of %d bytes, want the one of %d", tc.need, b.fsize, tc.want)
		}
		defer p.put(b)
	}
}

// TestBufPool_SmallClasses: a small memory body (above minSmallClass, up to
// smallExact) gets a buffer of the smallest size class that holds it,
// charged that class; the buffer is reused after put and reads back only
// what its new fill wrote; bodies outside the classes are exact.
func TestBufPool_SmallClasses(t *testing.T) {
	const part = 4 << 20
	mem := newBudget(2 * SpoolAbove)
	p := newBufPool(mem, part).withSpool(t.TempDir(), newBudget(part), SpoolAbove)
	ctx := context.Background()
	for _, tc := range []struct {
		n, cost int64
		class   int
	}{
		{minSmallClass, minSmallClass, -1},
		{minSmallClass + 1, 4 << 10, 0},
		{4 << 10, 4 << 10, 0},
		{4<<10 + 1, 8 << 10, 1},
		{8 << 10, 8 << 10, 1},
		{33 << 10, 64 << 10, 4},
		{smallExact, smallExact, 4},
	} {
		buf, err := p.get(ctx, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if buf.class != tc.class && tc.class >= 0 || (tc.class < 0) != (buf.small == nil) {
			t.Errorf("%d bytes: class %d (pooled %v), want %d", tc.n, buf.class, buf.small != nil, tc.class)
		}
		if got := mem.inUse(); got != tc.cost || buf.cost != tc.cost {
			t.Errorf("%d bytes: charged %d (budget %d), want %d", tc.n, buf.cost, got, tc.cost)
		}
		if int64(len(buf.b)) != tc.n || int64(cap(buf.b)) < tc.n {
			t.Errorf("%d bytes: len %d cap %d", tc.n, len(buf.b), cap(buf.b))
		}
		p.put(buf)
		if got := mem.inUse(); got != 0 {
			t.Errorf("%d bytes: %d still charged after put", tc.n, got)
		}
	}

	src := bytes.Repeat([]byte("abcdefgh"), 1<<10)
	first, _ := p.get(ctx, 8<<10)
	if n, err := first.fill(bytes.NewReader(src), nil); n != 8<<10 || err != nil {
		t.Fatalf("fill = %d, %v", n, err)
	}
	p.put(first)
	// sync.Pool may drop what it holds; the class must still read back
	// exactly what the new fill wrote, whichever buffer it hands out.
	again, _ := p.get(ctx, 6<<10)
	if n, err := again.fill(bytes.NewReader([]byte("short")), nil); n != 5 || err != io.ErrUnexpectedEOF {
		t.Fatalf("fill = %d, %v; want 5, ErrUnexpectedEOF", n, err)
	}
	if got, _ := io.ReadAll(again.reader()); string(got) != "short" || again.len() != 5 {
		t.Errorf("a reused small buffer reads back %q (len %d), want only its new content", got, again.len())
	}
	p.put(again)

	allocs := testing.AllocsPerRun(200, func() {
		b, err := p.get(ctx, 8<<10)
		if err != nil {
			t.Fatal(err)
		}
		p.put(b)
	})
	if allocs > 1.5 { // the buffer struct; not the 8 KiB
		t.Errorf("%.1f allocations a get and put of a small body, want the buffer reused", allocs)
	}
}
