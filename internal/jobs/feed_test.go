package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// gateSink holds the Put of the CDR package of one window until a
// recording has been stored, or until the gate gives up.
type gateSink struct {
	sink.Sink
	window string // window-begin metadata of the held package
	stored chan struct{}
	once   sync.Once
	waited time.Duration // how long the held package waited
	gaveUp bool
	mu     sync.Mutex
}

func (g *gateSink) Put(ctx context.Context, key string, r io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	if m.Metadata["kind"] == KindPackage && m.Metadata["window-begin"] == g.window {
		t0 := time.Now()
		select {
		case <-g.stored:
		case <-time.After(10 * time.Second):
			g.mu.Lock()
			g.gaveUp = true
			g.mu.Unlock()
		}
		g.mu.Lock()
		g.waited = time.Since(t0)
		g.mu.Unlock()
	}
	obj, err := g.Sink.Put(ctx, key, r, size, m)
	if err == nil && m.Metadata["call-id"] != "" { // a recording
		g.once.Do(func() { close(g.stored) })
	}
	return obj, err
}

// TestPass_ItemsWhileCDR: the item jobs of a backfill take the first
// window's recordings while the cdr job is still storing the second
// window's package; the pass still ends with every recording done.
func TestPass_ItemsWhileCDR(t *testing.T) {
	g := &gateSink{window: simStart.AddDate(0, 0, 1).UTC().Format(time.RFC3339), stored: make(chan struct{})}
	e := newEnv(t, envOptions{sink: func(s sink.Sink) sink.Sink { g.Sink = s; return g }})
	rep, err := e.a.Backfill(testCtx(t), simStart, simStart.AddDate(0, 0, 2), BackfillOptions{})
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	g.mu.Lock()
	gaveUp, waited := g.gaveUp, g.waited
	g.mu.Unlock()
	if gaveUp {
		t.Fatalf("the second window's package waited %s for a recording of the first to be stored: none was (the item jobs wait for the cdr job)", waited)
	}
	if rep.Packages != 2 || rep.Done == 0 {
		t.Fatalf("report %+v: want 2 packages and recordings done", rep)
	}
	for _, it := range e.items(checkpoint.StatePending, checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead) {
		t.Errorf("%s item %s left %s after the pass", it.Kind, it.UpstreamID, it.State)
	}
}

// partsStore counts AddCalls and holds CompletePackage until an item is
// done (or gives up).
type partsStore struct {
	checkpoint.Store
	mu        sync.Mutex
	parts     int
	doneFirst chan struct{}
	once      sync.Once
	gaveUp    bool
}

func (s *partsStore) AddCalls(ctx context.Context, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	s.mu.Lock()
	s.parts++
	s.mu.Unlock()
	return s.Store.AddCalls(ctx, calls, items)
}

func (s *partsStore) CompletePackage(ctx context.Context, p checkpoint.Package, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	if len(calls) > 0 {
		select {
		case <-s.doneFirst:
		case <-time.After(10 * time.Second):
			s.mu.Lock()
			s.gaveUp = true
			s.mu.Unlock()
		}
	}
	return s.Store.CompletePackage(ctx, p, calls, items)
}

func (s *partsStore) DoneArgs(ctx context.Context, owner string, id int64, key string, size int64, sha string, args json.RawMessage) error {
	err := s.Store.DoneArgs(ctx, owner, id, key, size, sha, args)
	if err == nil {
		s.once.Do(func() { close(s.doneFirst) })
	}
	return err
}

func (s *partsStore) Done(ctx context.Context, owner string, id int64, key string, size int64, sha string) error {
	err := s.Store.Done(ctx, owner, id, key, size, sha)
	if err == nil && key != "" {
		s.once.Do(func() { close(s.doneFirst) })
	}
	return err
}

// TestPass_PackageInParts: a package of more calls than a part holds is
// committed in parts while the item jobs run: recordings of its first parts
// are done before the package is (its CompletePackage waits for one), and
// the pass ends with the package done and every item archived, as in one
// transaction.
func TestPass_PackageInParts(t *testing.T) {
	var st *partsStore
	e := newEnv(t, envOptions{archiver: func(a *Archiver) {
		a.parts = 7
		st = &partsStore{Store: a.Store, doneFirst: make(chan struct{})}
		a.Store = st
	}})
	rep, err := e.a.Once(testCtx(t))
	if err != nil {
		t.Fatalf("once: %v", err)
	}
	st.mu.Lock()
	parts, gaveUp := st.parts, st.gaveUp
	st.mu.Unlock()
	if parts == 0 {
		t.Fatalf("no package was committed in parts (%d calls a part, %d calls)", e.a.parts, defaultTestCalls)
	}
	if gaveUp {
		t.Fatalf("%d parts committed, but no recording was done before the package was completed", parts)
	}
	pkgs, err := e.store.Packages(context.Background(), checkpoint.StateDone)
	if err != nil || len(pkgs) == 0 || rep.Done == 0 {
		t.Fatalf("done packages %d (%v), report %+v", len(pkgs), err, rep)
	}
	for _, it := range e.items(checkpoint.StatePending, checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead) {
		t.Errorf("%s item %s left %s after the pass", it.Kind, it.UpstreamID, it.State)
	}
	checkPackageItems(t, e, pkgs)
}

// checkPackageItems: every call has its two lookups (made part by part),
// and the done packages pkgs count every item they added (the lookups add
// the transfer and IVR recordings).
func checkPackageItems(t *testing.T, e *env, pkgs []checkpoint.Package) {
	t.Helper()
	days, err := e.store.Days(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	calls, lookups, fromPackages := 0, map[string]map[string]bool{}, 0
	for _, d := range days {
		calls += d.Calls
	}
	for _, it := range e.items() {
		if it.Kind == checkpoint.KindAgent || it.Kind == checkpoint.KindTransferLookup || it.Kind == checkpoint.KindIVRLookup {
			fromPackages++
		}
		if it.Kind == checkpoint.KindTransferLookup || it.Kind == checkpoint.KindIVRLookup {
			if lookups[it.Kind] == nil {
				lookups[it.Kind] = map[string]bool{}
			}
			lookups[it.Kind][it.CallID] = true
		}
	}
	if calls == 0 || len(lookups[checkpoint.KindTransferLookup]) != calls || len(lookups[checkpoint.KindIVRLookup]) != calls {
		t.Errorf("%d calls, %d with a transfer lookup, %d with an IVR lookup; want every call with both",
			calls, len(lookups[checkpoint.KindTransferLookup]), len(lookups[checkpoint.KindIVRLookup]))
	}
	counted := 0
	for _, p := range pkgs {
		counted += p.Items
	}
	if counted != fromPackages {
		t.Errorf("done packages count %d items, the store holds %d agent recordings and lookups", counted, fromPackages)
	}
}

// countingStore counts the parts committed with AddCalls.
type countingStore struct {
	checkpoint.Store
	parts atomic.Int64
}

func (s *countingStore) AddCalls(ctx context.Context, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	s.parts.Add(1)
	return s.Store.AddCalls(ctx, calls, items)
}

// TestRunCDR_PackageInParts: the cdr job run alone (no item jobs, no feed)
// commits a package of more calls than a part holds in parts too, read
// back from its items file, and loses none of its items or lookups.
func TestRunCDR_PackageInParts(t *testing.T) {
	var st *countingStore
	e := newEnv(t, envOptions{archiver: func(a *Archiver) {
		a.parts = 7
		st = &countingStore{Store: a.Store}
		a.Store = st
	}})
	if _, err := e.a.Run(testCtx(t), config.JobCDR); err != nil {
		t.Fatalf("cdr job: %v", err)
	}
	if st.parts.Load() == 0 {
		t.Fatalf("no package was committed in parts (%d calls a part, %d calls)", e.a.parts, defaultTestCalls)
	}
	pkgs, err := e.store.Packages(context.Background(), checkpoint.StateDone)
	if err != nil || len(pkgs) == 0 {
		t.Fatalf("done packages %d (%v)", len(pkgs), err)
	}
	checkPackageItems(t, e, pkgs)
	if n := len(e.items(checkpoint.StatePending)); n == 0 || n != len(e.items()) {
		t.Errorf("%d items pending of %d: the cdr job alone archives none", n, len(e.items()))
	}
}

// TestPackageItems: a package's items kept in their file come back whole,
// each once, a part of calls at a time in the order first met (they come
// interleaved: every call's first item, then every call's second, as the
// recording-index rows do), renumbered to the calls' final order; a placed
// item is written again only when its call began before the begin it was
// keyed with; an item with a field the file does not hold is refused.
func TestPackageItems(t *testing.T) {
	dir := t.TempDir()
	list, err := newPackageItems(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer list.remove()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("directory after the file was created: %v, %v; want it empty: nothing left if the process is killed", ents, err)
	}
	begin := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	// Calls met in the order g, f, …, a; their final order is a … g.
	ids := []string{"g", "f", "e", "d", "c", "b", "a"}
	for round := 1; round <= 2; round++ {
		for i, id := range ids {
			it := checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: fmt.Sprintf("%s%d", id, round), CallID: id,
				Day: "2026-11-01", Key: "k/" + id, State: checkpoint.StatePending, Args: json.RawMessage(`{"n":"` + id + `"}`)}
			if _, err := list.add(it, i, &agentPlace{begin: begin, vdn: "v" + id, agent: "a" + id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := list.add(checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "x", Attempts: 1}, 0, nil); err == nil ||
		!strings.Contains(err.Error(), "does not hold") {
		t.Errorf("an item with attempts: %v, want a refusal", err)
	}
	begins := make([]time.Time, len(ids))
	for i := range begins {
		begins[i] = begin
	}
	begins[1] = begin.Add(-time.Hour) // f began earlier than its rows said
	var placed []string
	err = list.place(begins, func(it *checkpoint.Item, at agentPlace) error {
		if at.vdn != "v"+it.CallID || at.agent != "a"+it.CallID {
			t.Errorf("item %s placed with VDN %q, agent %q; want its own", it.UpstreamID, at.vdn, at.agent)
		}
		placed = append(placed, it.UpstreamID)
		it.Day, it.Key = at.begin.Format(time.DateOnly), "k/"+it.CallID+"/"+at.begin.Format("15")
		return nil
	})
	if err != nil || fmt.Sprint(placed) != "[f1 f2]" {
		t.Errorf("placed %v, %v; want f1 f2", placed, err)
	}
	pos := make([]int, len(ids))
	for i := range ids {
		pos[i] = len(ids) - 1 - i
	}
	list.order(pos)
	if err := list.done(); err != nil {
		t.Fatal(err)
	}
	var order []string
	for lo := 0; lo < len(ids); lo += 3 {
		part, err := list.part(lo, min(lo+3, len(ids)))
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range part {
			order = append(order, it.UpstreamID)
			if want := `{"n":"` + it.CallID + `"}`; string(it.Args) != want || it.Kind != checkpoint.KindAgent || it.State != checkpoint.StatePending {
				t.Errorf("item %s came back as %+v", it.UpstreamID, it)
			}
			wantKey := "k/" + it.CallID
			if it.CallID == "f" {
				wantKey += "/09"
			}
			if it.Key != wantKey {
				t.Errorf("item %s: key %s, want %s", it.UpstreamID, it.Key, wantKey)
			}
		}
	}
	if want := "[c1 b1 a1 c2 b2 a2 f1 e1 d1 f2 e2 d2 g1 g2]"; fmt.Sprint(order) != want {
		t.Errorf("items by part %v, want %s", order, want)
	}
	if all, err := list.all(); err != nil || len(all) != list.Len() || list.Len() != 2*len(ids) {
		t.Errorf("all: %d items, %v; Len %d; want %d", len(all), err, list.Len(), 2*len(ids))
	}
	var empty *packageItems
	if empty.Len() != 0 {
		t.Error("a nil list has items")
	}
	empty.remove()
}

// failPackageSink fails the Put of every CDR package ZIP while fail is set.
type failPackageSink struct {
	sink.Sink
	mu   sync.Mutex
	fail bool
}

func (f *failPackageSink) Put(ctx context.Context, key string, r io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail && m.Metadata["kind"] == KindPackage {
		return sink.Object{}, errors.New("injected: package store fails")
	}
	return f.Sink.Put(ctx, key, r, size, m)
}

// TestPass_PackageInParts_StoreFails: when the package itself cannot be
// stored while its parts are committed, it is not done (the pass fails the
// window, the days stay incomplete); the next pass stores it and marks it
// done, and no recording is archived twice.
func TestPass_PackageInParts_StoreFails(t *testing.T) {
	fs := &failPackageSink{fail: true}
	e := newEnv(t, envOptions{
		archiver: func(a *Archiver) { a.parts = 7 },
		sink:     func(s sink.Sink) sink.Sink { fs.Sink = s; return fs },
	})
	rep, err := e.a.Once(testCtx(t))
	if err == nil && rep.PackagesFailed == 0 {
		t.Fatalf("once with the package store failing: no error, no failed package (%+v)", rep)
	}
	if done, err := e.store.Packages(context.Background(), checkpoint.StateDone); err != nil || len(done) > 0 {
		t.Fatalf("done packages after the failed store: %d (%v), want none", len(done), err)
	}
	fs.mu.Lock()
	fs.fail = false
	fs.mu.Unlock()
	if _, err := e.a.Once(testCtx(t)); err != nil {
		t.Fatalf("second once: %v", err)
	}
	open, err := e.store.Packages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range open {
		if p.Calls > 0 && p.State != checkpoint.StateDone {
			t.Errorf("package %d (%d calls) %s after the second pass, want done", p.ID, p.Calls, p.State)
		}
	}
	for _, it := range e.items(checkpoint.StatePending, checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead) {
		t.Errorf("%s item %s left %s after the second pass", it.Kind, it.UpstreamID, it.State)
	}
	seen := map[string]string{}
	for k, sum := range e.objects() {
		if strings.HasPrefix(k, cdrDir) {
			continue
		}
		if other, ok := seen[sum]; ok {
			t.Errorf("the same recording stored twice: %s and %s", k, other)
		}
		seen[sum] = k
	}
	if len(seen) == 0 {
		t.Fatal("no recording stored")
	}
}

// completeFailStore fails the CompletePackage of packages with calls while
// fail is set, as a database lost after the package's objects are stored.
type completeFailStore struct {
	checkpoint.Store
	mu   sync.Mutex
	fail bool
	n    int
}

func (s *completeFailStore) CompletePackage(ctx context.Context, p checkpoint.Package, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	s.mu.Lock()
	fail := s.fail && len(calls) > 0
	if fail {
		s.n++
	}
	s.mu.Unlock()
	if fail {
		return 0, errors.New("database lost")
	}
	return s.Store.CompletePackage(ctx, p, calls, items)
}

// TestPass_PackageStoredNotCompleted: a package whose ZIP and rows are
// stored but whose completion is lost, and that a later run requests anew
// (its request too old to resume: a new bill file, new keys), leaves its
// objects known: verify finds every day complete and no stray, and the
// superseded package keeps its keys on record.
func TestPass_PackageStoredNotCompleted(t *testing.T) {
	var st *completeFailStore
	e := newEnv(t, envOptions{archiver: func(a *Archiver) {
		st = &completeFailStore{Store: a.Store, fail: true}
		a.Store = st
	}})
	if _, err := e.a.Once(testCtx(t)); err == nil {
		t.Fatal("once with every package's completion failing: no error")
	}
	st.mu.Lock()
	failed := st.n
	st.fail = false
	st.mu.Unlock()
	if failed == 0 {
		t.Fatal("no package completion failed")
	}
	e.clock.Add(e.a.readyTimeout() + time.Minute) // the open requests are too old to resume: requested anew
	if _, err := e.a.Once(testCtx(t)); err != nil {
		t.Fatalf("second once: %v", err)
	}
	pkgs, err := e.store.Packages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	superseded := 0
	for _, p := range pkgs {
		if p.State != checkpoint.StateDone && p.Key != "" {
			superseded++
			if _, ok := e.objects()[p.Key]; !ok {
				t.Errorf("superseded package %d names %s, not in the sink", p.ID, p.Key)
			}
		}
	}
	if superseded == 0 {
		t.Errorf("no package stored and superseded keeps its keys (of %d)", len(pkgs))
	}
	rep := e.verify(t, VerifyOptions{})
	if rep.Problems != 0 || !rep.StraysChecked || len(rep.Strays) != 0 {
		t.Errorf("verify: %d problems, strays %v (checked %v), want none:\n%s", rep.Problems, rep.Strays, rep.StraysChecked,
			strings.Join(problems(rep), "\n"))
	}
}

// countClaims counts the store's claims that found nothing.
type countClaims struct {
	checkpoint.Store
	empty atomic.Int64
}

func (s *countClaims) Claim(ctx context.Context, c checkpoint.Claimer, kinds []string, now time.Time, limit int) ([]checkpoint.Item, error) {
	items, err := s.Store.Claim(ctx, c, kinds, now, limit)
	if err == nil && len(items) == 0 {
		s.empty.Add(1)
	}
	return items, err
}

// slowOneSink holds the first recording put for a while, after the others.
type slowOneSink struct {
	sink.Sink
	once sync.Once
	hold time.Duration
}

func (s *slowOneSink) Put(ctx context.Context, key string, r io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	if m.Metadata["call-id"] != "" {
		s.once.Do(func() { time.Sleep(s.hold) })
	}
	return s.Sink.Put(ctx, key, r, size, m)
}

// TestPass_NoClaimWhileWaiting: once the cdr job of a pass has ended, an
// item run that finds nothing due while an item is still in flight waits
// for it to end; it does not claim again and again (each claim a write
// transaction with its fsync: a pass over 8 recordings of 64 MiB spent a
// quarter of its CPU in such claims).
func TestPass_NoClaimWhileWaiting(t *testing.T) {
	var st *countClaims
	e := newEnv(t, envOptions{
		archiver: func(a *Archiver) { st = &countClaims{Store: a.Store}; a.Store = st },
		sink:     func(s sink.Sink) sink.Sink { return &slowOneSink{Sink: s, hold: 2 * time.Second} },
	})
	if _, err := e.a.Once(testCtx(t)); err != nil {
		t.Fatalf("once: %v", err)
	}
	// Without spinning, a claim finds nothing at the end of each item job,
	// while the cdr job is between packages, or after an item ended that
	// made nothing due: a handful.
	t.Logf("%d claims found nothing", st.empty.Load())
	if n := st.empty.Load(); n > 40 {
		t.Errorf("%d claims found nothing, want at most 40: the run claimed while it waited for the held recording", n)
	}
}
