package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
)

// inProgress adds n items to s and claims them all.
func inProgress(b *testing.B, s *Store, n int) []int64 {
	b.Helper()
	ctx := context.Background()
	batch := make([]checkpoint.Item, 0, 1000)
	for i := range n {
		batch = append(batch, checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: strconv.Itoa(i), Day: "2026-03-01"})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.AddItems(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	got, err := s.Claim(ctx, testClaimer, nil, time.Now(), 0)
	if err != nil || len(got) != n {
		b.Fatalf("Claim = %d, %v; want %d", len(got), err, n)
	}
	ids := make([]int64, n)
	for i, it := range got {
		ids[i] = it.ID
	}
	return ids
}

// doneRun is what one pass of Done calls measured.
type doneRun struct {
	wall, cpu time.Duration
	cpuOK     bool
}

// measureDone times start, which launches its Done calls on wg and sends
// their failures to errs (buffered for n), until every call has returned.
func measureDone(b *testing.B, n int, start func(wg *sync.WaitGroup, errs chan<- error)) doneRun {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	cpu0, ok0 := cpuTime()
	began := time.Now()
	start(&wg, errs)
	wg.Wait()
	r := doneRun{wall: time.Since(began)}
	cpu1, ok1 := cpuTime()
	r.cpu, r.cpuOK = cpu1-cpu0, ok0 && ok1
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return r
}

// runDone marks every id done from workers goroutines, each pausing think
// between its calls (the work a job's worker does between two items).
func runDone(b *testing.B, s *Store, ids []int64, workers int, think time.Duration) doneRun {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	return measureDone(b, workers, func(wg *sync.WaitGroup, errs chan<- error) {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(len(ids)) {
						return
					}
					if think > 0 {
						time.Sleep(think)
					}
					if err := s.Done(ctx, testOwner, ids[i], "k", 1, "s"); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	})
}

// BenchmarkStore_Done measures Done from concurrent workers with group
// commit (the default), against one transaction per call (MaxBatch 1)
// measured in the same run on the same number of items. ns/op is the
// grouped path's; x-vs-single is its throughput over the baseline's, and
// cpu-x-vs-single the baseline's CPU time per call over the grouped one's.
func BenchmarkStore_Done(b *testing.B) {
	for _, bc := range []struct {
		workers int
		think   time.Duration
	}{{1, 0}, {4, 0}, {16, 0}, {16, time.Millisecond}} {
		name := fmt.Sprintf("workers=%d", bc.workers)
		if bc.think > 0 {
			name += fmt.Sprintf("/think=%s", bc.think)
		}
		b.Run(name, func(b *testing.B) {
			b.StopTimer()
			single := mustOpen(b, dbPath(b), Options{MaxBatch: 1})
			grouped := mustOpen(b, dbPath(b), Options{})
			sids, gids := inProgress(b, single, b.N), inProgress(b, grouped, b.N)
			base := runDone(b, single, sids, bc.workers, bc.think)
			b.StartTimer()
			g := runDone(b, grouped, gids, bc.workers, bc.think)
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(n/g.wall.Seconds(), "grouped-ops/s")
			b.ReportMetric(n/base.wall.Seconds(), "single-ops/s")
			b.ReportMetric(base.wall.Seconds()/g.wall.Seconds(), "x-vs-single")
			if commits := grouped.group.stats.commits.Load(); commits > 0 {
				b.ReportMetric(float64(grouped.group.stats.ops.Load())/float64(commits), "ops/commit")
			}
			if g.cpuOK && base.cpuOK && g.cpu > 0 {
				b.ReportMetric(float64(g.cpu.Microseconds())/n, "grouped-cpu-µs/op")
				b.ReportMetric(float64(base.cpu.Microseconds())/n, "single-cpu-µs/op")
				b.ReportMetric(base.cpu.Seconds()/g.cpu.Seconds(), "cpu-x-vs-single")
			}
		})
	}
}

// arriveDone calls Done on every id, one call every interval, each from a
// goroutine of its own: the job's workers hand their Done over and take
// their next item, so the calls arrive at the pace of the downloads,
// whatever the commits do.
func arriveDone(b *testing.B, s *Store, ctx context.Context, ids []int64, interval time.Duration) doneRun {
	b.Helper()
	return measureDone(b, len(ids), func(wg *sync.WaitGroup, errs chan<- error) {
		began := time.Now()
		for i, id := range ids {
			// Paced against the start, so that the sleeps' overshoot does not add up.
			if d := time.Until(began.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Done(ctx, testOwner, id, "k", 1, "s"); err != nil {
					errs <- err
				}
			}()
		}
	})
}

// BenchmarkStore_DoneUnhurried measures Done calls arriving at a steady
// pace (one every interval, as 16 workers downloading small recordings
// hand them over), marked checkpoint.Unhurried as the jobs mark theirs,
// against the same calls unmarked, measured in the same run on the same
// number of items. cpu-x-vs-hurried is the unmarked calls' CPU time a call
// over the unhurried ones'; ops/commit is the batches' size each way.
//
// Run: go test -run '^$' -bench 'Store_DoneUnhurried$' -benchtime 5000x ./internal/checkpoint/sqlite/
func BenchmarkStore_DoneUnhurried(b *testing.B) {
	for _, interval := range []time.Duration{250 * time.Microsecond, time.Millisecond} {
		b.Run(fmt.Sprintf("interval=%s", interval), func(b *testing.B) {
			b.StopTimer()
			hurried := mustOpen(b, dbPath(b), Options{})
			unhurried := mustOpen(b, dbPath(b), Options{})
			hids, uids := inProgress(b, hurried, b.N), inProgress(b, unhurried, b.N)
			base := arriveDone(b, hurried, context.Background(), hids, interval)
			b.StartTimer()
			u := arriveDone(b, unhurried, checkpoint.Unhurried(context.Background()), uids, interval)
			b.StopTimer()
			n := float64(b.N)
			for _, st := range []struct {
				name string
				s    *Store
			}{{"hurried", hurried}, {"unhurried", unhurried}} {
				if commits := st.s.group.stats.commits.Load(); commits > 0 {
					b.ReportMetric(float64(st.s.group.stats.ops.Load())/float64(commits), st.name+"-ops/commit")
				}
			}
			if u.cpuOK && base.cpuOK && u.cpu > 0 {
				b.ReportMetric(float64(u.cpu.Microseconds())/n, "unhurried-cpu-µs/op")
				b.ReportMetric(float64(base.cpu.Microseconds())/n, "hurried-cpu-µs/op")
				b.ReportMetric(base.cpu.Seconds()/u.cpu.Seconds(), "cpu-x-vs-hurried")
			}
		})
	}
}

// BenchmarkStore_DoneGuarded measures Done from 16 workers, grouped, as
// one guarded UPDATE an item (op.update), against reading each item first
// and then updating it (selectFirst: every transition before), measured in
// the same run on the same number of items. cpu-x-vs-select is the
// baseline's CPU time a call over the guarded one's.
//
// Run: go test -run '^$' -bench 'Store_DoneGuarded$' -benchtime 20000x ./internal/checkpoint/sqlite/
func BenchmarkStore_DoneGuarded(b *testing.B) {
	for _, think := range []time.Duration{0, time.Millisecond} {
		b.Run(fmt.Sprintf("think=%s", think), func(b *testing.B) {
			b.StopTimer()
			sel := mustOpen(b, dbPath(b), Options{})
			sel.selectFirst = true
			guarded := mustOpen(b, dbPath(b), Options{})
			sids, gids := inProgress(b, sel, b.N), inProgress(b, guarded, b.N)
			base := runDone(b, sel, sids, 16, think)
			b.StartTimer()
			g := runDone(b, guarded, gids, 16, think)
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(base.wall.Seconds()/g.wall.Seconds(), "x-vs-select")
			if g.cpuOK && base.cpuOK && g.cpu > 0 {
				b.ReportMetric(float64(g.cpu.Microseconds())/n, "guarded-cpu-µs/op")
				b.ReportMetric(float64(base.cpu.Microseconds())/n, "select-cpu-µs/op")
				b.ReportMetric(base.cpu.Seconds()/g.cpu.Seconds(), "cpu-x-vs-select")
			}
			for _, st := range []*Store{sel, guarded} {
				if got, err := st.Items(context.Background(), checkpoint.StateDone); err != nil || len(got) != b.N {
					b.Fatalf("%d items done, %v; want %d", len(got), err, b.N)
				}
			}
		})
	}
}

// BenchmarkStore_Claim is checkpointtest.BenchmarkClaim on SQLite.
//
// Run: go test -run '^$' -bench 'Store_Claim$' -benchtime 100x ./internal/checkpoint/sqlite/
func BenchmarkStore_Claim(b *testing.B) {
	checkpointtest.BenchmarkClaim(b, mustOpen(b, dbPath(b), Options{}), mustOpen(b, dbPath(b), Options{}))
}

// packagePart is a part of a CDR package as the cdr job commits it: calls
// calls, each with an agent recording and its two lookups, the arguments
// about the size the jobs give them.
func packagePart(part, calls int) ([]checkpoint.Call, []checkpoint.Item) {
	cs := make([]checkpoint.Call, 0, calls)
	items := make([]checkpoint.Item, 0, 3*calls)
	begin := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for i := range calls {
		id := fmt.Sprintf("1772%06d-%05d", part, i)
		cs = append(cs, checkpoint.Call{CallID: id, Day: "2026-03-01", Begin: begin, VDN: "1", AgentID: "1001"})
		args := fmt.Sprintf(`{"call_id":%q,"call_begin":"2026-03-01T08:00:00Z","vdn":"1","agent_id":"1001","file_name":"/rec/2026/03/01/%s.wav","call":{"caller":"138****0000","callee":"2000"}}`, id, id)
		items = append(items,
			checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "/rec/2026/03/01/" + id + ".wav", CallID: id, Day: "2026-03-01",
				Key: "tenant/agent/2026/03/01/" + id + ".wav", Args: []byte(args)},
			checkpoint.Item{Kind: checkpoint.KindTransferLookup, UpstreamID: id, CallID: id, Day: "2026-03-01", Args: []byte(args)},
			checkpoint.Item{Kind: checkpoint.KindIVRLookup, UpstreamID: id, CallID: id, Day: "2026-03-01", Args: []byte(args)})
	}
	return cs, items
}

// BenchmarkStore_AddCalls measures AddCalls of package parts of 1,000
// calls and 3,000 items (the cdr job's commits), in statements of
// insertRows rows, against one row a statement (the baseline) measured in
// the same run on the same parts. x-vs-single is the baseline's wall time
// over the multi-row one's; cpu-x-vs-single the same for CPU time.
//
// Run: go test -run '^$' -bench 'Store_AddCalls$' -benchtime 20x ./internal/checkpoint/sqlite/
func BenchmarkStore_AddCalls(b *testing.B) {
	ctx := context.Background()
	b.StopTimer()
	single := mustOpen(b, dbPath(b), Options{})
	single.insertRows = 1
	multi := mustOpen(b, dbPath(b), Options{})
	run := func(s *Store) doneRun {
		cpu0, ok0 := cpuTime()
		start := time.Now()
		for i := range b.N {
			calls, items := packagePart(i, 1000)
			n, err := s.AddCalls(ctx, calls, items)
			if err != nil || n != len(items) {
				b.Fatalf("AddCalls = %d, %v; want %d", n, err, len(items))
			}
		}
		r := doneRun{wall: time.Since(start)}
		cpu1, ok1 := cpuTime()
		r.cpu, r.cpuOK = cpu1-cpu0, ok0 && ok1
		return r
	}
	base := run(single)
	b.StartTimer()
	m := run(multi)
	b.StopTimer()
	b.ReportMetric(base.wall.Seconds()/m.wall.Seconds(), "x-vs-single")
	if m.cpuOK && base.cpuOK && m.cpu > 0 {
		b.ReportMetric(float64(m.cpu.Microseconds())/float64(3000*b.N), "cpu-µs/item")
		b.ReportMetric(float64(base.cpu.Microseconds())/float64(3000*b.N), "single-cpu-µs/item")
		b.ReportMetric(base.cpu.Seconds()/m.cpu.Seconds(), "cpu-x-vs-single")
	}
}

// packagePartOf is packagePart(0, calls) for tests.
func packagePartOf(calls int) ([]checkpoint.Call, []checkpoint.Item) { return packagePart(0, calls) }
