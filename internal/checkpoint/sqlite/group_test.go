package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
)

// TestStore_ConformanceNoGroupCommit runs the suite with group commit off:
// every transition its own transaction, as before group commit.
func TestStore_ConformanceNoGroupCommit(t *testing.T) {
	checkpointtest.Run(t, checkpointtest.Backend{Open: func(t *testing.T, now func() time.Time) checkpoint.Store {
		s, err := Open(dbPath(t), Options{MaxBatch: 1, Now: now})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if s.group != nil {
			t.Fatal("MaxBatch 1 started a committer")
		}
		return s
	}})
}

// claimed adds n items and claims them; it returns their IDs in order.
func claimed(t *testing.T, s *Store, prefix string, n int) []int64 {
	t.Helper()
	items := make([]checkpoint.Item, n)
	for i := range items {
		up := fmt.Sprintf("%s%d", prefix, i)
		items[i] = checkpoint.Item{Kind: prefix, UpstreamID: up, Day: "2026-03-01", Key: "k/" + up}
	}
	if _, err := s.AddItems(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	got, err := s.Claim(t.Context(), testClaimer, []string{prefix}, time.Now(), 0)
	if err != nil || len(got) != n {
		t.Fatalf("Claim = %d, %v; want %d", len(got), err, n)
	}
	ids := make([]int64, n)
	for i, it := range got {
		ids[i] = it.ID
	}
	return ids
}

// stacks returns the stacks of every goroutine, one per element.
func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// parked counts the callers blocked in submit until the committer takes
// their op.
func parked() int {
	n := 0
	for _, g := range stacks() {
		if strings.Contains(g, "[select") && strings.Contains(g, ".(*Store).submit(") {
			n++
		}
	}
	return n
}

// committers counts running committer goroutines.
func committers() int {
	n := 0
	for _, g := range stacks() {
		if strings.Contains(g, ".(*committer).run(") {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds. It orders the steps of a test; it
// times nothing (the bound only turns a hang into a failure).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdDB takes the store's only connection, so that the committer's next
// transaction waits for it; release gives it back.
func holdDB(t *testing.T, s *Store) (release func()) {
	t.Helper()
	conn, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { conn.Close() }) }
	t.Cleanup(release)
	return release
}

// async runs fn in a goroutine and returns a channel with its error.
func async(fn func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- fn() }()
	return c
}

// stuckBatch holds the database, submits Done(first) and waits until the
// committer has taken it and is blocked on the database: the ops submitted
// next all wait to be taken together once release is called.
func stuckBatch(t *testing.T, s *Store, first int64) (done <-chan error, release func()) {
	t.Helper()
	release = holdDB(t, s)
	taken := s.group.stats.taken.Load()
	done = async(func() error { return s.Done(context.Background(), testOwner, first, "k", 1, "s") })
	waitFor(t, "the first op to be taken", func() bool { return s.group.stats.taken.Load() == taken+1 })
	return done, release
}

func TestGroupCommit_ManyDurable(t *testing.T) {
	const workers, per = 16, 40
	path := dbPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := claimed(t, s, "agent", workers*per)
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += workers {
				errs[i] = s.Done(context.Background(), testOwner, ids[i], fmt.Sprint("k/", ids[i]), ids[i], digest(strconv.FormatInt(ids[i], 10)))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Done(%d): %v", ids[i], err)
		}
	}
	t.Logf("%d transitions in %d commits", s.group.stats.ops.Load(), s.group.stats.commits.Load())
	check := func(t *testing.T, r *Store) {
		t.Helper()
		for _, id := range ids {
			it, err := r.Item(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if it.State != checkpoint.StateDone || it.Key != fmt.Sprint("k/", id) || it.Size != id || it.SHA256 != digest(strconv.FormatInt(id, 10)) {
				t.Fatalf("item %d = %+v, want done with its fields", id, it)
			}
		}
	}
	t.Run("seen by another connection", func(t *testing.T) {
		// Committed once Done returned: visible to another reader of the
		// file while the writer is still open.
		check(t, mustOpen(t, path, Options{ReadOnly: true}))
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("after reopen", func(t *testing.T) {
		check(t, mustOpen(t, path, Options{}))
	})
}

// TestGroupCommit_Crash kills a child whose workers mark items done
// concurrently, at arbitrary points: every Done that returned before the
// kill is in the database.
func TestGroupCommit_Crash(t *testing.T) {
	path := dbPath(t)
	reported := map[int64]bool{}
	for i := range 8 {
		cmd, lines := startHelper(t, "groupchurn", path)
		for range 5 + (i*37)%120 {
			line, ok := <-lines
			if !ok {
				t.Fatalf("child %d exited early: %v", i, cmd.Wait())
			}
			if f := strings.Fields(line); len(f) == 2 && f[0] == "done" {
				id, _ := strconv.ParseInt(f[1], 10, 64)
				reported[id] = true
			}
		}
		// Only places the kill anywhere in a commit or between two.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		kill(t, cmd)
	}
	if len(reported) == 0 {
		t.Fatal("the children reported nothing done")
	}
	s := mustOpen(t, path, Options{})
	var check string
	if err := s.db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	items, err := s.Items(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.State == checkpoint.StateDone {
			if it.Key != "k/"+it.UpstreamID || it.SHA256 != digest(it.UpstreamID) || it.Size != int64(len(it.UpstreamID)) {
				t.Errorf("done item without its key/size/digest: %+v", it)
			}
			delete(reported, it.ID)
		}
	}
	if len(reported) != 0 {
		t.Errorf("items whose Done returned are not done: %v", reported)
	}
}

// groupChurn is the child of TestGroupCommit_Crash: rounds of 16 items,
// each marked done (printing "done <id>" once Done returned) or failed by
// 8 concurrent workers, until it is killed.
func groupChurn(s *Store, die func(error)) {
	ctx := context.Background()
	if _, err := s.RecoverInProgress(ctx, testOwner); err != nil {
		die(err)
	}
	var out sync.Mutex
	pid := os.Getpid()
	for n := 0; ; n++ {
		batch := make([]checkpoint.Item, 16)
		for j := range batch {
			batch[j] = checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: fmt.Sprintf("g%d-%d-%d", pid, n, j), Day: "2026-03-01"}
		}
		if _, err := s.AddItems(ctx, batch); err != nil {
			die(err)
		}
		got, err := s.Claim(ctx, testClaimer, nil, time.Now(), 0)
		if err != nil {
			die(err)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(got); i += 8 {
					it := got[i]
					if it.ID%3 == 0 {
						if _, err := s.Fail(ctx, testOwner, it.ID, "transient", time.Now(), churnMaxAttempts); err != nil {
							die(err)
						}
						continue
					}
					if err := s.Done(ctx, testOwner, it.ID, "k/"+it.UpstreamID, int64(len(it.UpstreamID)), digest(it.UpstreamID)); err != nil {
						die(err)
					}
					out.Lock()
					fmt.Println("done", it.ID)
					out.Unlock()
				}
			}()
		}
		wg.Wait()
	}
}

// TestGroupCommit_Refusals: ops refused for their own item, in the same
// batch as ops that succeed, get their error alone; the others commit.
func TestGroupCommit_Refusals(t *testing.T) {
	s := mustOpen(t, dbPath(t), Options{})
	ctx := context.Background()
	ids := claimed(t, s, "agent", 5)
	if _, err := s.AddItems(t.Context(), []checkpoint.Item{{Kind: "ivr", UpstreamID: "p1"}, {Kind: "ivr", UpstreamID: "p2"}}); err != nil {
		t.Fatal(err)
	}
	pending, err := s.Items(t.Context(), checkpoint.StatePending)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending = %d, %v", len(pending), err)
	}
	p1, p2 := pending[0].ID, pending[1].ID
	first, release := stuckBatch(t, s, ids[0])
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	calls := []struct {
		name string
		do   func() error
		want error // nil: allowed
	}{
		{"Done in_progress", func() error { return s.Done(ctx, testOwner, ids[1], "k/1", 11, "d1") }, nil},
		{"Done pending", func() error { return s.Done(ctx, testOwner, p1, "k", 1, "s") }, checkpoint.ErrState},
		{"Done unknown", func() error { return s.Done(ctx, testOwner, 987654, "k", 1, "s") }, checkpoint.ErrNotFound},
		{"Fail with a time it cannot store", func() error { _, err := s.Fail(ctx, testOwner, ids[2], "m", far, 3); return err }, errors.New("out of the storable range")},
		{"Defer in_progress", func() error { return s.Defer(ctx, testOwner, ids[3], time.Time{}, "later") }, nil},
		{"Absent pending", func() error { return s.Absent(ctx, testOwner, p2, "no recording", "evidence") }, nil},
		{"Release in_progress", func() error { return s.Release(ctx, testOwner, ids[4]) }, nil},
	}
	results := make([]<-chan error, len(calls))
	for i, c := range calls {
		results[i] = async(c.do)
	}
	waitFor(t, "every call to wait for the committer", func() bool { return parked() == len(calls) })
	release()
	if err := <-first; err != nil {
		t.Fatalf("first Done: %v", err)
	}
	for i, c := range calls {
		err := <-results[i]
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s = %v, want nil", c.name, err)
		case c.want == checkpoint.ErrState || c.want == checkpoint.ErrNotFound:
			if !errors.Is(err, c.want) {
				t.Errorf("%s = %v, want %v", c.name, err, c.want)
			}
		case c.want != nil && (err == nil || !strings.Contains(err.Error(), c.want.Error())):
			t.Errorf("%s = %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if c, o := s.group.stats.commits.Load(), s.group.stats.ops.Load(); c != 2 || o != int64(1+len(calls)) {
		t.Fatalf("%d commits of %d ops, want the first alone, then all %d calls in one", c, o, len(calls))
	}
	for id, want := range map[int64]checkpoint.State{
		ids[0]: checkpoint.StateDone, ids[1]: checkpoint.StateDone, ids[2]: checkpoint.StateInProgress,
		ids[3]: checkpoint.StatePending, ids[4]: checkpoint.StatePending, p1: checkpoint.StatePending, p2: checkpoint.StateAbsent,
	} {
		it, err := s.Item(t.Context(), id)
		if err != nil || it.State != want {
			t.Errorf("item %d = %s, %v; want %s", id, it.State, err, want)
		}
		if id == ids[2] && (it.Attempts != 0 || it.LastError != "") {
			t.Errorf("refused Fail changed the item: %+v", it)
		}
	}
}

// TestGroupCommit_FailedBatch: when the batch's transaction fails (here the
// database is full), every caller in it gets the error and nothing of the
// batch is applied.
func TestGroupCommit_FailedBatch(t *testing.T) {
	s := mustOpen(t, dbPath(t), Options{})
	ids := claimed(t, s, "agent", 3)
	// No page may be added to the database: a Done whose digest needs
	// overflow pages fails with SQLITE_FULL, as on a full disk.
	var pages int
	if err := s.db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", 1<<20)
	first, release := stuckBatch(t, s, ids[0])
	small := async(func() error { return s.Done(context.Background(), testOwner, ids[1], "k/1", 1, "s") })
	big := async(func() error { return s.Done(context.Background(), testOwner, ids[2], "k/2", 1, huge) })
	waitFor(t, "both calls to wait for the committer", func() bool { return parked() == 2 })
	release()
	if err := <-first; err != nil {
		t.Fatalf("first Done: %v", err)
	}
	errSmall, errBig := <-small, <-big
	if errSmall == nil || errBig == nil {
		t.Fatalf("Done in a failed batch = %v and %v, want both to fail", errSmall, errBig)
	}
	if !strings.Contains(errSmall.Error(), "full") || !strings.Contains(errSmall.Error(), "commit of 2 transitions") {
		t.Errorf("error %q does not say the batch's commit failed on a full database", errSmall)
	}
	for _, id := range ids[1:] {
		if it, err := s.Item(t.Context(), id); err != nil || it.State != checkpoint.StateInProgress || it.Key != "k/agent"+strconv.Itoa(int(id-ids[0])) {
			t.Errorf("item %d of the failed batch = %+v, %v; want unchanged", id, it, err)
		}
	}
	if err := s.Done(t.Context(), testOwner, ids[1], "k/1", 1, "s"); err != nil {
		t.Fatalf("Done after the failed batch: %v", err)
	}
}

// TestGroupCommit_Context: a caller whose ctx ends while it waits for the
// committer gets ctx.Err() and its op is not applied; an op already taken
// into a batch has the batch's outcome, whatever its ctx does.
func TestGroupCommit_Context(t *testing.T) {
	s := mustOpen(t, dbPath(t), Options{})
	ids := claimed(t, s, "agent", 2)
	release := holdDB(t, s)
	ctx0, cancel0 := context.WithCancel(context.Background())
	taken := async(func() error { return s.Done(ctx0, testOwner, ids[0], "k", 1, "s") })
	waitFor(t, "the first op to be taken", func() bool { return s.group.stats.taken.Load() == 1 })
	cancel0()
	ctx1, cancel1 := context.WithCancel(context.Background())
	waiting := async(func() error { return s.Done(ctx1, testOwner, ids[1], "k", 1, "s") })
	waitFor(t, "the second call to wait", func() bool { return parked() == 1 })
	cancel1()
	// It returns while the committer is still stuck on the first op.
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("Done whose ctx ended before it was taken = %v, want context.Canceled", err)
	}
	release()
	if err := <-taken; err != nil {
		t.Fatalf("Done whose ctx ended after it was taken = %v, want the batch's nil", err)
	}
	for id, want := range map[int64]checkpoint.State{ids[0]: checkpoint.StateDone, ids[1]: checkpoint.StateInProgress} {
		if it, err := s.Item(t.Context(), id); err != nil || it.State != want {
			t.Errorf("item %d = %s, %v; want %s", id, it.State, err, want)
		}
	}
	if n := s.group.stats.ops.Load(); n != 1 {
		t.Errorf("%d ops committed, want 1", n)
	}
}

// TestGroupCommit_Close: Close commits the ops already submitted, answers
// their callers, refuses later ones and leaves no goroutine behind.
func TestGroupCommit_Close(t *testing.T) {
	before := committers()
	path := dbPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the committer to start", func() bool { return committers() == before+1 })
	ids := claimed(t, s, "agent", 6)
	first, release := stuckBatch(t, s, ids[0])
	var pending []<-chan error
	for _, id := range ids[1:5] {
		pending = append(pending, async(func() error { return s.Done(context.Background(), testOwner, id, "k", 1, "s") }))
	}
	waitFor(t, "the calls to wait for the committer", func() bool { return parked() == len(pending) })
	closed := async(s.Close)
	waitFor(t, "Close to refuse new ops", func() bool {
		s.group.mu.RLock()
		defer s.group.mu.RUnlock()
		return s.group.closed
	})
	if err := s.Done(context.Background(), testOwner, ids[5], "k", 1, "s"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Done during Close = %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("Done taken before Close: %v", err)
	}
	for i, c := range pending {
		if err := <-c; err != nil {
			t.Fatalf("Done pending at Close (item %d): %v", ids[1+i], err)
		}
	}
	if n := committers(); n != before {
		t.Fatalf("committers after Close = %d, want %d", n, before)
	}
	if err := s.Release(context.Background(), testOwner, ids[5]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Release after Close = %v, want ErrClosed", err)
	}
	r := mustOpen(t, path, Options{ReadOnly: true})
	for i, id := range ids {
		want := checkpoint.StateDone
		if i == 5 {
			want = checkpoint.StateInProgress
		}
		if it, err := r.Item(t.Context(), id); err != nil || it.State != want {
			t.Errorf("item %d after Close = %s, %v; want %s", id, it.State, err, want)
		}
	}
}

// TestGroupCommit_Lone: a lone caller's transitions are committed one by
// one, at once: no batch waits for company that is not there.
func TestGroupCommit_Lone(t *testing.T) {
	s := mustOpen(t, dbPath(t), Options{BatchWindow: time.Hour})
	ids := claimed(t, s, "agent", 20)
	for _, id := range ids {
		// With an hour's window, a wait would show as a hang.
		if err := s.Done(t.Context(), testOwner, id, "k", 1, "s"); err != nil {
			t.Fatal(err)
		}
	}
	if c := s.group.stats.commits.Load(); c != int64(len(ids)) {
		t.Fatalf("%d commits for %d lone calls", c, len(ids))
	}
}

// TestGroupCommit_Errors: errors keep naming the op and the item, and a
// read-only store refuses transitions without a committer.
func TestGroupCommit_Errors(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	err := s.Done(t.Context(), testOwner, 42, "k", 1, "s")
	if !errors.Is(err, checkpoint.ErrNotFound) || err.Error() != "checkpoint: done item 42: checkpoint: not found" {
		t.Fatalf("Done(unknown) = %q", err)
	}
	ro := mustOpen(t, path, Options{ReadOnly: true})
	if ro.group != nil {
		t.Fatal("read-only store started a committer")
	}
	if err := ro.Release(t.Context(), testOwner, 42); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Release on a read-only store = %v", err)
	}
}

// TestGroupCommit_Unhurried: unhurried transitions (checkpoint.Unhurried)
// arriving one by one share a commit until the batch is full (a caller
// waiting on its transition would see it committed alone, as
// TestGroupCommit_Lone); one that is not unhurried joining such a batch
// ends its wait; and a negative UnhurriedWindow makes them wait as the
// others do.
func TestGroupCommit_Unhurried(t *testing.T) {
	// arrive calls Done on each id, 3 ms apart, each in a goroutine of its
	// own (the caller does not wait for the previous one), and waits for all.
	arrive := func(t *testing.T, s *Store, ctx context.Context, ids []int64) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(ids))
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Done(ctx, testOwner, id, "k", 1, "s"); err != nil {
					errs <- err
				}
			}()
			time.Sleep(3 * time.Millisecond)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	t.Run("share a commit", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), Options{MaxBatch: 8, UnhurriedWindow: time.Hour})
		ids := claimed(t, s, "agent", 16)
		arrive(t, s, checkpoint.Unhurried(t.Context()), ids)
		if c, n := s.group.stats.commits.Load(), s.group.stats.ops.Load(); c != 2 || n != 16 {
			t.Fatalf("16 unhurried transitions 3 ms apart, batches of at most 8: %d commits of %d ops, want 2 of 16", c, n)
		}
		for _, id := range ids {
			if it, err := s.Item(t.Context(), id); err != nil || it.State != checkpoint.StateDone {
				t.Fatalf("item %d after its Done returned: %+v, %v", id, it, err)
			}
		}
	})
	t.Run("a hurried one ends the wait", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), Options{MaxBatch: 8, UnhurriedWindow: time.Hour})
		ids := claimed(t, s, "agent", 3)
		done := make(chan error, 2)
		for _, id := range ids[:2] {
			go func() { done <- s.Done(checkpoint.Unhurried(t.Context()), testOwner, id, "k", 1, "s") }()
		}
		deadline := time.Now().Add(10 * time.Second)
		for s.group.stats.taken.Load() < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the committer did not take the two unhurried transitions")
			}
			time.Sleep(time.Millisecond)
		}
		select {
		case err := <-done:
			t.Fatalf("an unhurried transition returned (%v) before its batch was full or a caller waited on it", err)
		case <-time.After(50 * time.Millisecond):
		}
		// With an hour's window, a wait would show as a hang.
		if err := s.Done(t.Context(), testOwner, ids[2], "k", 1, "s"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if c, n := s.group.stats.commits.Load(), s.group.stats.ops.Load(); c != 1 || n != 3 {
			t.Fatalf("%d commits of %d ops, want the three in one", c, n)
		}
	})
	t.Run("negative window", func(t *testing.T) {
		s := mustOpen(t, dbPath(t), Options{BatchWindow: time.Hour, UnhurriedWindow: -1})
		ids := claimed(t, s, "agent", 10)
		for _, id := range ids {
			// A lone caller: committed at once, as TestGroupCommit_Lone.
			if err := s.Done(checkpoint.Unhurried(t.Context()), testOwner, id, "k", 1, "s"); err != nil {
				t.Fatal(err)
			}
		}
		if c := s.group.stats.commits.Load(); c != int64(len(ids)) {
			t.Fatalf("%d commits for %d lone calls", c, len(ids))
		}
	})
}
