package jobs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Replica IDs of the tests' two archivers.
const (
	replicaA = "host-a-1-aaaaaaaa"
	replicaB = "host-b-2-bbbbbbbb"
)

// replica builds a second archiver on e's simulator, with a client of its
// own, the given store and sink, e's settings and the replica ID id.
func (e *env) replica(id string, st checkpoint.Store, sk sink.Sink) *Archiver {
	e.t.Helper()
	client, err := cecclient.New(e.co)
	if err != nil {
		e.t.Fatalf("cecclient.New: %v", err)
	}
	s := e.a.Settings
	s.Replica = id
	return &Archiver{
		Client: client, Sink: sk, Store: st, Keys: e.a.Keys, Prefix: e.a.Prefix, Meta: e.a.Meta,
		Settings: s, Callbacks: e.a.Callbacks, Log: e.a.Log, Now: e.a.Now,
	}
}

// tally counts, across replicas, the transitions to done each item got
// and the objects each key was created with.
type tally struct {
	mu      sync.Mutex
	done    map[int64][]string // item → the owners whose Done succeeded
	created map[string]int     // key → Puts that created the object
}

func newTally() *tally { return &tally{done: map[int64][]string{}, created: map[string]int{}} }

// tallyStore counts the successful Done calls of one replica.
type tallyStore struct {
	checkpoint.Store
	t *tally
}

func (s *tallyStore) Done(ctx context.Context, owner string, id int64, key string, size int64, sha string) error {
	err := s.Store.Done(ctx, owner, id, key, size, sha)
	if err == nil {
		s.t.mu.Lock()
		s.t.done[id] = append(s.t.done[id], owner)
		s.t.mu.Unlock()
	}
	return err
}

// tallySink counts the Puts that created an object.
type tallySink struct {
	sink.Sink
	t *tally
}

func (s *tallySink) Put(ctx context.Context, key string, body io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	obj, err := s.Sink.Put(ctx, key, body, size, m)
	if err == nil && !obj.Existed {
		s.t.mu.Lock()
		s.t.created[key]++
		s.t.mu.Unlock()
	}
	return obj, err
}

// checkOnce asserts that every item was done at most once, by one owner,
// and every object created once; it returns how many items each owner did.
func (tl *tally) checkOnce(t *testing.T) map[string]int {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	per := map[string]int{}
	for id, owners := range tl.done {
		if len(owners) != 1 {
			t.Errorf("item %d done %d times, by %v", id, len(owners), owners)
		}
		per[owners[0]]++
	}
	for key, n := range tl.created {
		if n != 1 {
			t.Errorf("%s created %d times", key, n)
		}
	}
	return per
}

// checkStored asserts that every recording of the manifest is done in st,
// with the manifest's digest, and stored under its key.
func checkStored(t *testing.T, st checkpoint.Store, objs map[string]string, m *cecsim.Manifest) {
	t.Helper()
	all, err := st.Items(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	items := itemsByID(all)
	for _, r := range m.Recordings {
		it, ok := items[r.Kind+"\x00"+r.ID]
		switch {
		case !ok:
			t.Errorf("%s %s: no item", r.Kind, r.ID)
		case it.State != checkpoint.StateDone || it.SHA256 != r.SHA256:
			t.Errorf("%s %s: %s %s (%s), want done %s", r.Kind, r.ID, it.State, it.SHA256, it.LastError, r.SHA256)
		case objs[it.Key] != r.SHA256:
			t.Errorf("%s %s: object %s holds %q, want %s", r.Kind, r.ID, it.Key, objs[it.Key], r.SHA256)
		}
	}
	if recs := recordingObjects(objs); len(recs) != len(m.Recordings) {
		t.Errorf("sink holds %d recordings, the manifest %d", len(recs), len(m.Recordings))
	}
	for _, st := range []checkpoint.State{checkpoint.StatePending, checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead} {
		for _, it := range all {
			if it.State == st {
				t.Errorf("item %s %s left %s (%s)", it.Kind, it.UpstreamID, st, it.LastError)
			}
		}
	}
}

// openPostgres opens a store on dsn for the test tenant with the clock now.
func openPostgres(t *testing.T, dsn string, now func() time.Time) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant, Now: now})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestReplicas_ClaimConcurrently: two archivers with their own replica IDs
// run every job at once against one simulator, one sink and one state (on
// SQLite one store with two owners; on PostgreSQL two stores, as two
// processes have): every recording is stored once, no item is done twice,
// the watermark reaches the end, and the ledgers are complete.
func TestReplicas_ClaimConcurrently(t *testing.T) {
	for _, driver := range []string{config.DriverSQLite, config.DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			e := newEnv(t, envOptions{
				sim:      func(o *cecsim.Options) { o.Calls = 150 },
				archiver: func(a *Archiver) { a.Replica = replicaA },
			})
			var stA, stB checkpoint.Store = e.store, e.store
			if driver == config.DriverPostgres {
				dsn := pgtest.NewDatabase(t)
				stA, stB = openPostgres(t, dsn, e.clock.Now), openPostgres(t, dsn, e.clock.Now)
			}
			tl := newTally()
			sk := &tallySink{Sink: e.a.Sink, t: tl}
			e.a.Store, e.a.Sink = &tallyStore{Store: stA, t: tl}, sk
			b := e.replica(replicaB, &tallyStore{Store: stB, t: tl}, sk)
			ctx := testCtx(t)
			m := e.sim.Manifest()

			var wg sync.WaitGroup
			reps, errs := make([]*Report, 2), make([]error, 2)
			for i, a := range []*Archiver{e.a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					reps[i], errs[i] = a.Once(ctx)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("replica %d: Once: %v", i, err)
				}
				if r := reps[i]; r.Failed != 0 || r.Dead != 0 || r.PackagesFailed != 0 || r.LeaseLost != 0 {
					t.Errorf("replica %d: %+v", i, r)
				}
			}
			per := tl.checkOnce(t)
			t.Logf("items done: %v; windows: A %d (%d held by B), B %d (%d held by A)", per,
				reps[0].Windows, reps[0].WindowsHeld, reps[1].Windows, reps[1].WindowsHeld)
			if reps[0].Done+reps[1].Done+reps[0].Existed+reps[1].Existed != len(m.Recordings)+2*len(m.Calls) {
				t.Errorf("done %d+%d, existed %d+%d; want %d items in all, each once", reps[0].Done, reps[1].Done,
					reps[0].Existed, reps[1].Existed, len(m.Recordings)+2*len(m.Calls))
			}
			checkStored(t, stA, e.objects(), m)
			if wm, ok, err := stA.Watermark(ctx, config.JobCDR); err != nil || !ok || !wm.Equal(simStart.AddDate(0, 0, 2)) {
				t.Errorf("cdr watermark %v %v %v, want %v", wm, ok, err, simStart.AddDate(0, 0, 2))
			}
			for _, it := range mustItems(t, stA) {
				if it.Owner != "" || !it.LeaseUntil.IsZero() {
					t.Errorf("item %d keeps a claim: %q until %v", it.ID, it.Owner, it.LeaseUntil)
				}
			}
			// Both passes wrote ledgers at the same (simulated) instant; one
			// more pass writes the final state's, newest.
			e.clock.Add(time.Minute)
			if _, err := e.a.WriteLedgers(ctx); err != nil {
				t.Fatal(err)
			}
			e.checkLedgers(m, true)
		})
	}
}

func mustItems(t *testing.T, st checkpoint.Store) []checkpoint.Item {
	t.Helper()
	all, err := st.Items(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// blockingSink holds the first Put, with its body read, until release is
// closed.
type blockingSink struct {
	sink.Sink
	once    sync.Once
	key     string
	blocked chan struct{}
	release chan struct{}
}

func newBlockingSink(s sink.Sink) *blockingSink {
	return &blockingSink{Sink: s, blocked: make(chan struct{}), release: make(chan struct{})}
}

func (s *blockingSink) Put(ctx context.Context, key string, body io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	first := false
	s.once.Do(func() { first = true })
	if !first {
		return s.Sink.Put(ctx, key, body, size, m)
	}
	// Read the body first: the download is over, the process hangs after.
	b, err := io.ReadAll(body)
	if err != nil {
		return sink.Object{}, err
	}
	s.key = key
	close(s.blocked)
	<-s.release
	return s.Sink.Put(ctx, key, bytes.NewReader(b), size, m)
}

// frozenStore makes Claim wait from frozen's closing until thaw's: the
// store calls of a process that has stopped running.
type frozenStore struct {
	checkpoint.Store
	frozen, thaw <-chan struct{}
}

func (s *frozenStore) Claim(ctx context.Context, c checkpoint.Claimer, kinds []string, now time.Time, limit int) ([]checkpoint.Item, error) {
	select {
	case <-s.frozen:
		<-s.thaw
	default:
	}
	return s.Store.Claim(ctx, c, kinds, now, limit)
}

// TestReplicas_TakeOverAStalledItem: replica A hangs in the middle of an
// item, past its lease (as a killed or frozen process does); replica B takes
// the item over and finishes it once; when A wakes up its outcome is not
// recorded (the store refuses its Done: the lease was lost), A reports the
// item abandoned, and each recording is stored once.
func TestReplicas_TakeOverAStalledItem(t *testing.T) {
	e := newEnv(t, envOptions{archiver: func(a *Archiver) {
		a.Replica = replicaA
		a.Lease = time.Hour // no renewal within the test: A is as good as frozen
	}})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatal(err)
	}
	tl := newTally()
	bs := newBlockingSink(&tallySink{Sink: e.a.Sink, t: tl})
	// Once its sink hangs, A hangs all over: its claims wait too.
	e.a.Sink, e.a.Store = bs, &frozenStore{Store: &tallyStore{Store: e.store, t: tl}, frozen: bs.blocked, thaw: bs.release}
	b := e.replica(replicaB, &tallyStore{Store: e.store, t: tl}, &tallySink{Sink: e.dir, t: tl})
	b.Lease = time.Hour

	var repA *Report
	var errA error
	doneA := make(chan struct{})
	go func() {
		defer close(doneA)
		repA, errA = e.a.Run(ctx, config.JobRecordings)
	}()
	<-bs.blocked
	var stalled checkpoint.Item
	for _, it := range e.items(checkpoint.StateInProgress) {
		if it.Key == bs.key {
			stalled = it
		}
	}
	if stalled.ID == 0 || stalled.Owner != replicaA {
		t.Fatalf("the stalled item (%s) is not in progress under %s: %+v", bs.key, replicaA, stalled)
	}
	// While A's lease holds, B cannot take it.
	repB, err := b.Run(ctx, config.JobRecordings)
	if err != nil {
		t.Fatal(err)
	}
	if got := wantState(t, e, stalled.ID, checkpoint.StateInProgress); got.Owner != replicaA {
		t.Fatalf("B took the item while A's lease held: %+v (B's run %+v)", got, repB)
	}
	// A stays frozen past its lease; B takes the item over and finishes it.
	e.clock.Add(2 * time.Hour)
	repB, err = b.Run(ctx, config.JobRecordings)
	if err != nil || repB.Done+repB.Existed == 0 {
		t.Fatalf("B after A's lease expired: %+v, %v; want the stalled item done", repB, err)
	}
	if got := wantState(t, e, stalled.ID, checkpoint.StateDone); got.Owner != "" {
		t.Fatalf("done item keeps an owner: %+v", got)
	}
	// A wakes up: its Put finds the object B stored, its Done is refused.
	close(bs.release)
	<-doneA
	if errA != nil {
		t.Fatalf("A: %v (a lost lease must not stop the job)", errA)
	}
	if repA.LeaseLost != 1 {
		t.Errorf("A: %d items abandoned, want the stalled one: %+v", repA.LeaseLost, repA)
	}
	tl.mu.Lock()
	owners := tl.done[stalled.ID]
	tl.mu.Unlock()
	if len(owners) != 1 || owners[0] != replicaB {
		t.Errorf("the stalled item was done by %v, want by %s alone", owners, replicaB)
	}
	tl.checkOnce(t)
	if _, err := e.a.Run(ctx, config.JobTransfer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Run(ctx, config.JobIVR); err != nil {
		t.Fatal(err)
	}
	e.checkArchive(m)
}

// wantState returns item id, failing unless it is in state st.
func wantState(t *testing.T, e *env, id int64, st checkpoint.State) checkpoint.Item {
	t.Helper()
	it, err := e.store.Item(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if it.State != st {
		t.Fatalf("item %d is %s, want %s: %+v", id, it.State, st, it)
	}
	return it
}

// TestReplicas_RenewalKeepsTheClaim: a replica working on an item for
// longer than its lease renews it, so that no other replica takes it over
// however long the work takes.
func TestReplicas_RenewalKeepsTheClaim(t *testing.T) {
	const lease = 3 * time.Second // renewed every second
	e := newEnv(t, envOptions{archiver: func(a *Archiver) {
		a.Replica = replicaA
		a.Lease = lease
	}})
	ctx := testCtx(t)
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatal(err)
	}
	bs := newBlockingSink(e.a.Sink)
	e.a.Sink = bs
	doneA := make(chan struct{})
	var repA *Report
	go func() {
		defer close(doneA)
		repA, _ = e.a.Run(ctx, config.JobRecordings)
	}()
	<-bs.blocked
	var stalled checkpoint.Item
	for _, it := range e.items(checkpoint.StateInProgress) {
		if it.Key == bs.key {
			stalled = it
		}
	}
	probe := checkpoint.Claimer{Owner: replicaB, Lease: time.Minute}
	// Twice the lease in simulated time, one second at a time, while the
	// renewals (every lease/3 of real time) keep up.
	for i := 0; i < 6; i++ {
		time.Sleep(1200 * time.Millisecond)
		e.clock.Add(time.Second)
		got, err := e.store.Claim(ctx, probe, []string{checkpoint.KindAgent}, e.clock.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range got {
			if it.ID == stalled.ID {
				t.Fatalf("after %d s another replica took the item A is working on (its lease was not renewed)", i+1)
			}
			// Anything else B got, it gives back.
			if err := e.store.Release(ctx, replicaB, it.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(bs.release)
	<-doneA
	if got := wantState(t, e, stalled.ID, checkpoint.StateDone); got.Owner != "" {
		t.Fatalf("%+v", got)
	}
	if repA.LeaseLost != 0 {
		t.Errorf("A lost %d leases: %+v", repA.LeaseLost, repA)
	}
}

// TestReplicas_WindowHeldElsewhere: a CDR window whose lease another
// replica holds is skipped, and holds the watermark back while it is not
// settled; once the store finds it settled at the end of the run (the other
// replica finished it), the watermark moves over it.
func TestReplicas_WindowHeldElsewhere(t *testing.T) {
	e := newEnv(t, envOptions{archiver: func(a *Archiver) { a.Replica = replicaA }})
	ctx := testCtx(t)
	plan := e.a.scheduled(time.Time{}, false, e.clock.Now())
	if len(plan) != 2 {
		t.Fatalf("plan %v, want 2 windows", plan)
	}
	w1, w2 := plan[0], plan[1]
	take := func(w Window) {
		t.Helper()
		if ok, err := e.store.TryLease(ctx, cdrLease(w), replicaB, time.Hour); err != nil || !ok {
			t.Fatalf("TryLease(%s) = %v, %v", cdrLease(w), ok, err)
		}
	}
	release := func(w Window) {
		t.Helper()
		if err := e.store.ReleaseLease(ctx, cdrLease(w), replicaB); err != nil {
			t.Fatal(err)
		}
	}
	watermark := func() (time.Time, bool) {
		t.Helper()
		wm, ok, err := e.store.Watermark(ctx, config.JobCDR)
		if err != nil {
			t.Fatal(err)
		}
		return wm, ok
	}

	t.Run("first window held", func(t *testing.T) {
		take(w1)
		rep, err := e.a.Run(ctx, config.JobCDR)
		if err != nil || rep.WindowsHeld != 1 || rep.Windows != 1 || rep.Packages != 1 {
			t.Fatalf("Run(cdr) = %+v, %v; want w1 skipped, w2 done", rep, err)
		}
		if _, open, _ := e.store.OpenPackage(ctx, w1.Begin, w1.End); open {
			t.Error("the held window was requested")
		}
		if wm, ok := watermark(); ok {
			t.Errorf("watermark %v, want none: the first window is not done", wm)
		}
		release(w1)
	})
	t.Run("settled by the other replica meanwhile", func(t *testing.T) {
		// B does w1 (a backfill leaves the watermark alone) and, as far as
		// A can tell, is still at it when A runs.
		b := e.replica(replicaB, e.store, e.dir)
		if rep, err := b.Backfill(ctx, w1.Begin, w1.End, BackfillOptions{Jobs: []string{config.JobRecordings}}); err != nil || rep.Packages != 1 {
			t.Fatalf("B: Backfill(w1) = %+v, %v", rep, err)
		}
		take(w1)
		e.clock.Add(time.Minute)
		rep, err := e.a.Run(ctx, config.JobCDR)
		if err != nil || rep.WindowsHeld != 1 {
			t.Fatalf("Run(cdr) = %+v, %v; want w1 skipped", rep, err)
		}
		if wm, ok := watermark(); !ok || !wm.Equal(w2.End) {
			t.Errorf("watermark %v (%v), want %v: w1 settled, w2 done", wm, ok, w2.End)
		}
		release(w1)
	})
	t.Run("a later window held", func(t *testing.T) {
		// Past the watermark now: the lookback windows are behind it, held
		// or not; a new day is planned after them.
		e.clock.Add(24 * time.Hour)
		plan := e.a.scheduled(w2.End, true, e.clock.Now())
		last := plan[len(plan)-1]
		take(last)
		rep, err := e.a.Run(ctx, config.JobCDR)
		if err != nil || rep.WindowsHeld != 1 {
			t.Fatalf("Run(cdr) = %+v, %v; want the newest window skipped", rep, err)
		}
		if wm, _ := watermark(); !wm.Equal(last.Begin) {
			t.Errorf("watermark %v, want %v (up to the held window)", wm, last.Begin)
		}
		release(last)
	})
}

// racingLedgerStore records another replica's ledger of each day just
// before this replica's SetLedger: the lost update SetLedger must refuse.
type racingLedgerStore struct {
	checkpoint.Store
	mu    sync.Mutex
	raced map[string]bool
}

func (s *racingLedgerStore) SetLedger(ctx context.Context, day, prev, sum, key string) error {
	s.mu.Lock()
	first := !s.raced[day]
	s.raced[day] = true
	s.mu.Unlock()
	if first {
		if err := s.Store.SetLedger(ctx, day, prev, "theirs-"+day, "their/key/"+day); err != nil {
			return fmt.Errorf("the other replica's SetLedger: %w", err)
		}
	}
	return s.Store.SetLedger(ctx, day, prev, sum, key)
}

// TestReplicas_Ledgers: a day whose ledger lease another replica holds is
// skipped, and the pass leaves the ledger watermark alone; a day's ledger
// record another replica wrote since it was read is kept (not overwritten
// by the slower one), and the pass goes on.
func TestReplicas_Ledgers(t *testing.T) {
	e := newEnv(t, envOptions{archiver: func(a *Archiver) { a.Replica = replicaA }})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	day0 := simStart.Format(time.DateOnly)
	if ok, err := e.store.TryLease(ctx, ledgerLease(day0), replicaB, time.Hour); err != nil || !ok {
		t.Fatalf("TryLease = %v, %v", ok, err)
	}
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := e.store.Ledger(ctx, day0); ok {
		t.Errorf("the held day %s got a ledger", day0)
	}
	if day1 := simStart.AddDate(0, 0, 1).Format(time.DateOnly); !hasLedger(t, e, day1) {
		t.Errorf("day %s got no ledger", day1)
	}
	if wm, ok, _ := e.store.Watermark(ctx, JobLedger); ok {
		t.Errorf("ledger watermark %v after a pass that skipped a day, want none", wm)
	}
	if err := e.store.ReleaseLease(ctx, ledgerLease(day0), replicaB); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if n, err := e.a.WriteLedgers(ctx); err != nil || n != 1 {
		t.Fatalf("WriteLedgers = %d, %v; want the skipped day", n, err)
	}
	if _, ok, _ := e.store.Watermark(ctx, JobLedger); !ok {
		t.Error("no ledger watermark after a full pass")
	}
	e.checkLedgers(m, true)

	t.Run("lost update", func(t *testing.T) {
		rs := &racingLedgerStore{Store: e.store, raced: map[string]bool{}}
		e.a.Store = rs
		t.Cleanup(func() { e.a.Store = e.store })
		// A change to every day, so that each gets a new ledger.
		add := []checkpoint.Item{
			{Kind: checkpoint.KindAgent, UpstreamID: "late-0", Day: day0, State: checkpoint.StateAbsent, Reason: "r"},
			{Kind: checkpoint.KindAgent, UpstreamID: "late-1", Day: simStart.AddDate(0, 0, 1).Format(time.DateOnly), State: checkpoint.StateAbsent, Reason: "r"},
		}
		if _, err := e.store.AddItems(ctx, add); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Minute)
		n, err := e.a.WriteLedgers(ctx)
		if err != nil || n != 0 {
			t.Fatalf("WriteLedgers = %d, %v; want no ledger recorded (each day lost the race), no error", n, err)
		}
		for _, it := range add {
			if sum, key, _, _ := e.store.Ledger(ctx, it.Day); sum != "theirs-"+it.Day || key != "their/key/"+it.Day {
				t.Errorf("day %s: ledger record %s %s, want the other replica's", it.Day, sum, key)
			}
		}
	})
}

func hasLedger(t *testing.T, e *env, day string) bool {
	t.Helper()
	_, _, ok, err := e.store.Ledger(context.Background(), day)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestItemRun_HoldsEachItemOnce: an item of the run's own that a claim
// hands back (its lease had expired while it was in flight, under a
// stalled renewal) is not queued a second time.
func TestItemRun_HoldsEachItemOnce(t *testing.T) {
	r := &itemRun{held: map[int64]*claim{}}
	if got := r.hold([]checkpoint.Item{{ID: 1}, {ID: 2}}); len(got) != 2 {
		t.Fatalf("hold(1, 2) = %v", got)
	}
	if got := r.hold([]checkpoint.Item{{ID: 2}, {ID: 3}}); len(got) != 1 || got[0].ID != 3 {
		t.Fatalf("hold(2, 3) with 2 held = %v, want [3]", got)
	}
	r.unhold(2)
	if got := r.hold([]checkpoint.Item{{ID: 2}}); len(got) != 1 {
		t.Fatalf("hold(2) after it ended = %v, want [2]", got)
	}
}
