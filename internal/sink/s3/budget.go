package s3

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
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

// bufPool hands out body buffers charged against a budget.
//
// In memory (no spool directory), part-size buffers are reused, so a busy
// sink settles at budget bytes of buffers instead of churning the garbage
// collector; other sizes are allocated exactly.
//
// With a spool directory, a body above spoolAbove bytes is held in a file
// (created there and unlinked at once, so a crash leaves nothing behind)
// charged against the spool budget: its bytes live in the kernel's page
// cache, not in the process, which keeps the archiver's memory flat however
// large or many the recordings. Only the small bodies stay in memory, in
// the small memory budget: those up to smallExact in reused size-class
// buffers (smallClasses), the others in reused spoolAbove-size buffers.
type bufPool struct {
	budget   *budget // memory buffers
	partSize int64

	dir        string  // "" : everything in memory
	spool      *budget // file buffers, with dir
	spoolAbove int64

	mu        sync.Mutex
	free      [][]byte
	freeFiles []spoolFile
	freeBytes int64 // stale bytes the free files hold on disk
}

// smallExact: memory bodies up to this size are not taken from the part
// (or spoolAbove) buffers; above minSmallClass they come from the size
// classes, smaller ones are allocated exactly.
const smallExact = 64 << 10

// minSmallClass: bodies of up to this many bytes are allocated exactly;
// larger ones up to smallExact are taken from smallClasses.
const minSmallClass = 1 << 10

// smallClasses hold the reused buffers of small bodies, by size: 4, 8, 16,
// 32 and 64 KiB. A body gets the smallest class that holds it and is
// charged that class's size. Allocated exactly, the buffers of 20,000 8 KiB
// recordings were 160 MB of the 2.4 GB a pass allocated.
var smallClasses [5]sync.Pool

// smallClass returns the class of a body of n bytes, or -1.
func smallClass(n int64) int {
	if n <= minSmallClass || n > smallExact {
		return -1
	}
	c := 0
	for size := int64(4 << 10); size < n; size <<= 1 {
		c++
	}
	return c
}

// getSmall returns a buffer of class c holding n bytes.
func getSmall(c int, n int64) (pb *[]byte) {
	if v, ok := smallClasses[c].Get().(*[]byte); ok {
		pb = v
	} else {
		b := make([]byte, 4<<10<<c)
		pb = &b
	}
	*pb = (*pb)[:n]
	return pb
}

// maxFreeFiles bounds the spool files kept open for reuse.
const maxFreeFiles = 32

// spoolFile is a free spool file and the bytes it holds on disk.
type spoolFile struct {
	f    *os.File
	size int64
}

// scratchSize is the read size when filling a file buffer.
const scratchSize = 128 << 10

var scratchPool = sync.Pool{New: func() any { b := make([]byte, scratchSize); return &b }}

// buffer is one body buffer: memory (b) or a spool file (f, n bytes).
type buffer struct {
	b     []byte
	f     *os.File
	fsize int64 // bytes f held on disk before this use
	n     int64
	cap   int64
	cost  int64
	from  *budget
	small *[]byte // a buffer of smallClasses[class], returned by put
	class int
	held  bool // the transport may still read b: put drops it (membody.go)
}

func newBufPool(b *budget, partSize int64) *bufPool {
	return &bufPool{budget: b, partSize: partSize}
}

// withSpool makes the pool hold bodies above above bytes in files under dir,
// up to spool bytes of them at once.
func (p *bufPool) withSpool(dir string, spool *budget, above int64) *bufPool {
	p.dir, p.spool, p.spoolAbove = dir, spool, above
	return p
}

// get returns a buffer of capacity n (empty: fill it), charged at its real
// size: in memory a pooled buffer when n is at least a quarter part (or
// above smallExact with a spool), a size-class one above minSmallClass up
// to smallExact, an exact one otherwise; a spool file
// charged n.
func (p *bufPool) get(ctx context.Context, n int64) (*buffer, error) {
	if p.dir != "" && n > p.spoolAbove {
		return p.getFile(ctx, n)
	}
	poolSize := p.partSize
	pooled := n <= p.partSize && n >= p.partSize/4
	if p.dir != "" {
		poolSize, pooled = p.spoolAbove, n > smallExact
	}
	class := -1
	if !pooled {
		class = smallClass(n)
	}
	cost := n
	switch {
	case pooled:
		cost = poolSize
	case class >= 0:
		cost = 4 << 10 << class
	}
	if err := p.budget.acquire(ctx, cost); err != nil {
		return nil, err
	}
	if class >= 0 {
		pb := getSmall(class, n)
		return &buffer{b: *pb, small: pb, class: class, cap: n, cost: cost, from: p.budget}, nil
	}
	if !pooled {
		return &buffer{b: make([]byte, n), cap: n, cost: cost, from: p.budget}, nil
	}
	p.mu.Lock()
	var b []byte
	if k := len(p.free); k > 0 {
		b, p.free = p.free[k-1], p.free[:k-1]
	}
	p.mu.Unlock()
	if b == nil {
		b = make([]byte, poolSize)
	}
	return &buffer{b: b[:n], cap: n, cost: cost, from: p.budget}, nil
}

func (p *bufPool) getFile(ctx context.Context, n int64) (*buffer, error) {
	if err := p.spool.acquire(ctx, n); err != nil {
		return nil, err
	}
	p.mu.Lock()
	var sf spoolFile
	if k := len(p.freeFiles); k > 0 {
		// The largest file that holds no more than n bytes: once filled it
		// holds exactly the body, which can then be sent from it
		// (withFileBody); else the newest.
		i := k - 1
		for j, f := range p.freeFiles {
			if f.size <= n && (p.freeFiles[i].size > n || f.size > p.freeFiles[i].size) {
				i = j
			}
		}
		sf = p.freeFiles[i]
		p.freeFiles = slices.Delete(p.freeFiles, i, i+1)
		p.freeBytes -= sf.size
	}
	p.mu.Unlock()
	f := sf.f
	if f == nil {
		var err error
		if f, err = os.CreateTemp(p.dir, "cec-archiver-part-*"); err != nil {
			p.spool.release(n)
			return nil, fmt.Errorf("spool: %w", err)
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			p.spool.release(n)
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	return &buffer{f: f, fsize: sf.size, cap: n, cost: n, from: p.spool}, nil
}

// put returns buf to the pool and its cost to its budget. buf must not be
// used afterwards.
func (p *bufPool) put(buf *buffer) {
	if buf == nil {
		return
	}
	if buf.held {
		buf.from.release(buf.cost) // b is the transport's until it drops it
		return
	}
	if buf.small != nil {
		*buf.small = buf.b[:0]
		smallClasses[buf.class].Put(buf.small)
		buf.from.release(buf.cost)
		return
	}
	if buf.f != nil {
		// Kept as they are where the disk allows: overwriting a file's
		// cached pages costs a copy, emptying it and filling it again a page
		// allocation per 4 KiB (a third of the sink's CPU). The free files
		// hold at most one budget of stale bytes (a file that would exceed
		// it is emptied first), so the spool stays within twice the budget.
		sf := spoolFile{f: buf.f, size: max(buf.fsize, buf.n)}
		p.mu.Lock()
		switch {
		case len(p.freeFiles) >= maxFreeFiles:
			sf.f.Close()
		case p.freeBytes+sf.size > p.spool.size && sf.f.Truncate(0) != nil:
			sf.f.Close()
		default:
			if p.freeBytes+sf.size > p.spool.size {
				sf.size = 0 // emptied above
			}
			p.freeFiles = append(p.freeFiles, sf)
			p.freeBytes += sf.size
		}
		p.mu.Unlock()
	} else if size := int64(cap(buf.b)); size == buf.cost && (size == p.partSize || (p.dir != "" && size == p.spoolAbove)) {
		p.mu.Lock()
		p.free = append(p.free, buf.b[:cap(buf.b)])
		p.mu.Unlock()
	}
	buf.from.release(buf.cost)
}

// len returns the bytes the buffer holds.
func (b *buffer) len() int64 {
	if b.f != nil {
		return b.n
	}
	return int64(len(b.b))
}

// reader reads what the buffer holds, from the start, seekable (the SDK
// rewinds it to retry).
func (b *buffer) reader() io.ReadSeeker {
	if b.f != nil {
		return io.NewSectionReader(b.f, 0, b.n)
	}
	return bytes.NewReader(b.b)
}

// fill reads r into the buffer up to its capacity, writing every byte also
// to w (nil: nowhere). Like io.ReadFull it returns io.EOF when nothing was
// read and io.ErrUnexpectedEOF when r ended before the buffer was full.
func (b *buffer) fill(r io.Reader, w io.Writer) (int64, error) {
	if b.f == nil {
		b.b = b.b[:b.cap]
		n, err := io.ReadFull(r, b.b)
		b.b = b.b[:n]
		if w != nil {
			w.Write(b.b)
		}
		return int64(n), err
	}
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	scratch := *sp
	b.n = 0
	for b.n < b.cap {
		m, err := io.ReadFull(r, scratch[:min(int64(len(scratch)), b.cap-b.n)])
		if m > 0 {
			if w != nil {
				w.Write(scratch[:m])
			}
			if _, werr := b.f.WriteAt(scratch[:m], b.n); werr != nil {
				return b.n, fmt.Errorf("spool: %w", werr)
			}
			b.n += int64(m)
		}
		switch {
		case err == io.ErrUnexpectedEOF || (err == io.EOF && b.n > 0):
			return b.n, io.ErrUnexpectedEOF
		case err != nil:
			return b.n, err
		}
	}
	return b.n, nil
}

// hashWriter is an io.MultiWriter over the non-nil hashes.
func hashWriter(hs ...hash.Hash) io.Writer {
	var ws []io.Writer
	for _, h := range hs {
		if h != nil {
			ws = append(ws, h)
		}
	}
	switch len(ws) {
	case 0:
		return nil
	case 1:
		return ws[0]
	}
	return io.MultiWriter(ws...)
}
