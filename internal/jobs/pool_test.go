package jobs

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// stallingSink blocks the first Put of an agent recording until release is
// closed, and counts the Puts that ended while it was blocked.
type stallingSink struct {
	sink.Sink
	once    sync.Once
	stalled chan struct{} // closed when the first Put blocks
	release chan struct{}

	mu     sync.Mutex
	during int // agent Puts that ended while the first was blocked
	held   bool
}

func (s *stallingSink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if !strings.Contains(key, "/"+checkpoint.KindAgent+"-") {
		return s.Sink.Put(ctx, key, body, size, meta)
	}
	first := false
	s.once.Do(func() { first = true })
	if first {
		s.mu.Lock()
		s.held = true
		s.mu.Unlock()
		close(s.stalled)
		select {
		case <-s.release:
		case <-ctx.Done():
			return sink.Object{}, ctx.Err()
		}
		s.mu.Lock()
		s.held = false
		s.mu.Unlock()
		return s.Sink.Put(ctx, key, body, size, meta)
	}
	obj, err := s.Sink.Put(ctx, key, body, size, meta)
	s.mu.Lock()
	if s.held {
		s.during++
	}
	s.mu.Unlock()
	return obj, err
}

// TestRunItems_NoBatchBarrier: with two slots, one download that does not
// end must not hold the others back: every other agent recording is stored
// while it hangs. A pool that claims a batch and waits for all of it would
// stop after the batch.
func TestRunItems_NoBatchBarrier(t *testing.T) {
	ss := &stallingSink{stalled: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, envOptions{
		archiver: func(a *Archiver) { a.Concurrency = 2 },
		sink:     func(s sink.Sink) sink.Sink { ss.Sink = s; return ss },
	})
	ctx := testCtx(t)
	if _, err := e.a.Once(ctx, config.JobCDR); err != nil {
		t.Fatalf("cdr: %v", err)
	}
	agents := 0
	for _, it := range e.items(checkpoint.StatePending) {
		if it.Kind == checkpoint.KindAgent {
			agents++
		}
	}
	if agents < 5*e.a.concurrency() {
		t.Fatalf("%d agent items: the test needs more than a few batches of %d", agents, e.a.concurrency())
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.a.Run(ctx, config.JobRecordings)
		done <- err
	}()
	select {
	case <-ss.stalled:
	case err := <-done:
		t.Fatalf("recordings ended before any agent Put: %v", err)
	}
	// Every item but the hanging one ends while it hangs (absent ones need
	// no Put): wait until only it is in progress, or give up after a
	// deadline far beyond what the work takes.
	deadline := time.Now().Add(time.Minute)
	for {
		open := 0
		for _, it := range e.items(checkpoint.StatePending, checkpoint.StateInProgress) {
			if it.Kind == checkpoint.KindAgent {
				open++
			}
		}
		if open == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d agent items still open while one download hangs: the others wait for it", open)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(ss.release)
	if err := <-done; err != nil {
		t.Fatalf("recordings: %v", err)
	}
	ss.mu.Lock()
	during := ss.during
	ss.mu.Unlock()
	if during == 0 {
		t.Error("no other agent recording was stored while the first hung")
	}
	for _, it := range e.items(checkpoint.StatePending, checkpoint.StateInProgress) {
		if it.Kind == checkpoint.KindAgent {
			t.Errorf("agent item %d is %s after the run", it.ID, it.State)
		}
	}
}

// staleClaims is a store whose claims, while lookups it handed out are in
// flight, answer as of their start: each waits until every such lookup is
// done (and its worker has ended), then answers nothing, as a PostgreSQL
// claim whose snapshot predates the lookups' added items does when those
// are all that is due. (It does not claim at all then: a real claim, made
// first, raced the lookups' commits and sometimes saw them.)
type staleClaims struct {
	checkpoint.Store
	mu      sync.Mutex
	lookups map[int64]bool // claimed, not done
	stale   int            // claims answered late, empty
}

func (s *staleClaims) Claim(ctx context.Context, c checkpoint.Claimer, kinds []string, now time.Time, limit int) ([]checkpoint.Item, error) {
	s.mu.Lock()
	waiting := len(s.lookups) > 0
	s.mu.Unlock()
	if waiting {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			s.mu.Lock()
			n := len(s.lookups)
			s.mu.Unlock()
			if n == 0 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond) // the lookup's worker ends meanwhile
		s.mu.Lock()
		s.stale++
		s.mu.Unlock()
		return nil, nil
	}
	items, err := s.Store.Claim(ctx, c, kinds, now, limit)
	s.mu.Lock()
	for _, it := range items {
		if it.Kind == checkpoint.KindIVRLookup || it.Kind == checkpoint.KindTransferLookup {
			s.lookups[it.ID] = true
		}
	}
	s.mu.Unlock()
	return items, err
}

func (s *staleClaims) Done(ctx context.Context, owner string, id int64, key string, size int64, sha256 string) error {
	err := s.Store.Done(ctx, owner, id, key, size, sha256)
	s.mu.Lock()
	delete(s.lookups, id)
	s.mu.Unlock()
	return err
}

// TestRunItems_ClaimDuringLookup: a claim that was already running when a
// lookup added its recordings, and answers nothing, does not end the run:
// the recordings the lookups found are all processed in the same run, none
// left pending (a once that said it was done with IVR recordings waiting
// for the next run, seen on PostgreSQL under load).
func TestRunItems_ClaimDuringLookup(t *testing.T) {
	// More slots than lookups: one claim takes them all (a batch that is
	// not full, so no claim ahead), and the next starts while they run.
	e := newEnv(t, envOptions{archiver: func(a *Archiver) { a.Concurrency = 4 * defaultTestCalls * defaultTestDays }})
	ctx := testCtx(t)
	if _, err := e.a.Once(ctx, config.JobCDR); err != nil {
		t.Fatal(err)
	}
	st := &staleClaims{Store: e.a.Store, lookups: map[int64]bool{}}
	e.a.Store = st
	if _, err := e.a.Run(ctx, config.JobIVR); err != nil {
		t.Fatal(err)
	}
	var ivr, left []string
	for _, it := range e.items() {
		switch it.Kind {
		case checkpoint.KindIVR:
			ivr = append(ivr, it.UpstreamID)
			if it.State != checkpoint.StateDone && it.State != checkpoint.StateAbsent {
				left = append(left, it.UpstreamID+" "+string(it.State))
			}
		case checkpoint.KindIVRLookup:
			if it.State != checkpoint.StateDone {
				left = append(left, "lookup "+it.UpstreamID+" "+string(it.State))
			}
		}
	}
	if len(ivr) == 0 || st.stale == 0 {
		t.Fatalf("%d IVR recordings, %d stale empty claims: the test proves nothing", len(ivr), st.stale)
	}
	if len(left) > 0 {
		t.Errorf("the run ended with %d of %d IVR items not done: %s", len(left), len(ivr), strings.Join(left, ", "))
	}
}
