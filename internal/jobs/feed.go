package jobs

import (
	"context"
	"sync"
)

// feed tells the item jobs of a pass that its cdr job is still adding
// items. Once and Backfill start the item jobs with the cdr job instead of
// after it: the recordings of a window's package are archived while the
// next windows are requested, and those of a large package while the rest
// of it is stored (storePackage commits its items in chunks). An item run
// that finds nothing due waits for the next addition instead of ending,
// until the cdr job has ended.
//
// A nil *feed is a pass without a cdr job (or an item job run alone):
// nothing more is coming.
type feed struct {
	mu    sync.Mutex
	next  chan struct{} // closed at the next addition, or at the end
	ended bool
}

func newFeed() *feed { return &feed{next: make(chan struct{})} }

// wait returns a channel closed at the next addition after this call (or
// at the end), and whether the producer still runs. Take it before the
// claim that may find nothing: an addition committed after the claim's
// snapshot closes it. Once the producer has ended it returns nil, a
// channel that never fires: nothing more is coming, and a run waiting for
// its items in flight must not find a closed channel and claim again at
// once (each claim is a write transaction).
func (f *feed) wait() (<-chan struct{}, bool) {
	if f == nil {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return nil, false
	}
	return f.next, true
}

// added says the producer committed items.
func (f *feed) added() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return
	}
	close(f.next)
	f.next = make(chan struct{})
}

// end says the producer adds nothing more.
func (f *feed) end() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ended {
		f.ended = true
		close(f.next)
	}
}

type feedKey struct{}

// withFeed is ctx carrying f to the cdr job of the pass (storePackage
// announces its commits there).
func withFeed(ctx context.Context, f *feed) context.Context {
	if f == nil {
		return ctx
	}
	return context.WithValue(ctx, feedKey{}, f)
}

// feedOf is the feed ctx carries, or nil.
func feedOf(ctx context.Context) *feed {
	f, _ := ctx.Value(feedKey{}).(*feed)
	return f
}
