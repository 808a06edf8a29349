package jobs

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// snapshotSink takes a snapshot of a Progress before every Put: what a
// display would see while the pass runs.
type snapshotSink struct {
	sink.Sink
	prog *Progress
	mu   sync.Mutex
	seen []ProgressSnapshot
}

func (s *snapshotSink) Put(ctx context.Context, key string, r io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	// Taken and kept under one lock: concurrent Puts would otherwise append
	// their snapshots in another order than they took them.
	s.mu.Lock()
	s.seen = append(s.seen, s.prog.Snapshot())
	s.mu.Unlock()
	return s.Sink.Put(ctx, key, r, size, m)
}

// TestProgress_Backfill: the counts move while a backfill runs, phase by
// phase, and end as the Report's.
func TestProgress_Backfill(t *testing.T) {
	prog := &Progress{}
	ss := &snapshotSink{prog: prog}
	e := newEnv(t, envOptions{
		archiver: func(a *Archiver) { a.Progress = prog },
		sink:     func(s sink.Sink) sink.Sink { ss.Sink = s; return ss },
	})
	if s := prog.Snapshot(); s.Phase != "" || s.WindowsTotal != 0 {
		t.Fatalf("before the pass: %+v", s)
	}
	rep, err := e.a.Backfill(testCtx(t), simStart, simStart.AddDate(0, 0, 2), BackfillOptions{})
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}

	end := prog.Snapshot()
	if end.Phase != PhaseDone || end.WindowsTotal != 2 || end.WindowsDone != 2 {
		t.Errorf("at the end: phase %q, windows %d/%d; want %q, 2/2", end.Phase, end.WindowsDone, end.WindowsTotal, PhaseDone)
	}
	if want := rep.Done + rep.Existed + rep.Absent; end.ItemsDone != want || want == 0 {
		t.Errorf("items done %d, the report's %d", end.ItemsDone, want)
	}
	if end.ItemsFailed != rep.Failed+rep.Dead || end.Bytes != rep.Bytes {
		t.Errorf("failed %d, bytes %d; the report's %d, %d", end.ItemsFailed, end.Bytes, rep.Failed+rep.Dead, rep.Bytes)
	}
	waiting := len(e.items(checkpoint.StatePending, checkpoint.StateInProgress))
	if end.ItemsPending != waiting {
		t.Errorf("items pending %d at the end, the store holds %d", end.ItemsPending, waiting)
	}
	if end.Started.IsZero() || end.PhaseStarted.Before(end.Started) {
		t.Errorf("started %v, phase started %v", end.Started, end.PhaseStarted)
	}

	ss.mu.Lock()
	defer ss.mu.Unlock()
	var cdrSeen, itemsMoving bool
	for i, s := range ss.seen {
		switch s.Phase {
		case PhaseCDR:
			// The item jobs run with the cdr job: items may be done already.
			cdrSeen = true
			if s.WindowsTotal != 2 || s.ItemsDone > end.ItemsDone {
				t.Errorf("snapshot %d in the cdr phase: %+v", i, s)
			}
		case PhaseItems:
			if s.WindowsDone != 2 {
				t.Errorf("snapshot %d in the items phase: windows %d/%d", i, s.WindowsDone, s.WindowsTotal)
			}
			if s.ItemsDone > 0 && s.ItemsDone < end.ItemsDone && s.ItemsPending > 0 {
				itemsMoving = true
			}
		case PhaseLedgers:
			if s.ItemsDone != end.ItemsDone {
				t.Errorf("snapshot %d in the ledgers phase: items done %d, want the final %d", i, s.ItemsDone, end.ItemsDone)
			}
		default:
			t.Errorf("snapshot %d: phase %q while storing", i, s.Phase)
		}
		if i > 0 {
			p := ss.seen[i-1]
			if s.ItemsDone < p.ItemsDone || s.Bytes < p.Bytes || s.WindowsDone < p.WindowsDone {
				t.Errorf("snapshot %d went back: %+v after %+v", i, s, p)
			}
		}
	}
	if !cdrSeen || !itemsMoving {
		t.Errorf("%d snapshots: cdr phase seen %v, items done moving with items pending %v", len(ss.seen), cdrSeen, itemsMoving)
	}

	t.Run("once counts again", func(t *testing.T) {
		if _, err := e.a.Once(testCtx(t), config.JobCDR, config.JobRecordings); err != nil {
			t.Fatalf("once: %v", err)
		}
		s := prog.Snapshot()
		// Lookback 2: the two windows again, every recording stored already.
		if s.Phase != PhaseDone || s.WindowsTotal != 2 || s.WindowsDone != 2 || s.ItemsFailed != 0 {
			t.Errorf("after once: %+v", s)
		}
		// Only the recordings job ran: the lookups left pending are not its.
		if s.ItemsPending != 0 {
			t.Errorf("items pending %d after a pass with the recordings job only, want 0", s.ItemsPending)
		}
	})
}

// TestProgress_Nil: a nil Progress counts nothing and says so.
func TestProgress_Nil(t *testing.T) {
	var p *Progress
	p.begin(time.Now(), true, true)
	p.planned(3)
	p.moved(&Report{}, &Report{Done: 1})
	if s := p.Snapshot(); s != (ProgressSnapshot{}) {
		t.Errorf("nil Progress snapshot %+v", s)
	}
}

// TestProgress_Pending: items pending are those counted in the store plus
// those added, less those ended; only when the pass runs item jobs.
func TestProgress_Pending(t *testing.T) {
	for _, tt := range []struct {
		name  string
		items bool
		base  int
		rep   Report
		want  int
	}{
		{"added", true, 0, Report{Added: 10, Done: 3, Existed: 1}, 6},
		{"counted", true, 20, Report{Done: 5, Failed: 2, Dead: 1, Deferred: 1, Released: 1}, 10},
		{"absent on arrival", true, 0, Report{Added: 4, Absent: 4}, 0},
		{"more ended than known", true, 1, Report{Done: 5}, 0},
		{"no item job", false, 0, Report{Added: 10}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Progress{}
			p.begin(time.Now(), true, tt.items)
			p.rebase(tt.base)
			p.moved(&Report{}, &tt.rep)
			if got := p.Snapshot().ItemsPending; got != tt.want {
				t.Errorf("pending %d, want %d", got, tt.want)
			}
		})
	}
}

// TestProgress_Watch: Watch reports every interval and once more at the end.
func TestProgress_Watch(t *testing.T) {
	p := &Progress{}
	p.begin(time.Now(), true, true)
	ctx, cancel := context.WithCancel(context.Background())
	var got []ProgressSnapshot
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Watch(ctx, time.Millisecond, func(s ProgressSnapshot) {
			got = append(got, s)
			if len(got) == 2 {
				p.planned(7)
				cancel()
			}
		})
	}()
	<-done
	if n := len(got); n < 3 || got[n-1].WindowsTotal != 7 {
		t.Errorf("%d reports, the last %+v; want at least 3, the last with the final counts", n, got[len(got)-1])
	}
}
