package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

func TestArchiver_Once(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	m := e.sim.Manifest()

	rep, err := e.a.Once(ctx)
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	t.Run("report", func(t *testing.T) {
		if rep.Windows != 2 || rep.Packages != 2 || rep.PackagesFailed != 0 || len(rep.Errors) != 0 {
			t.Errorf("windows %d packages %d failed %d errors %v, want 2 2 0 none", rep.Windows, rep.Packages, rep.PackagesFailed, rep.Errors)
		}
		if rep.Failed != 0 || rep.Dead != 0 || rep.Released != 0 || rep.AuthError != nil {
			t.Errorf("failed %d dead %d released %d auth %v, want none", rep.Failed, rep.Dead, rep.Released, rep.AuthError)
		}
		wantDone := len(m.Recordings) + 2*len(m.Calls) // recordings + lookups
		if rep.Done != wantDone || rep.Existed != 0 {
			t.Errorf("done %d existed %d, want %d 0", rep.Done, rep.Existed, wantDone)
		}
		if rep.Absent != len(m.Absent) {
			t.Errorf("absent %d, want %d", rep.Absent, len(m.Absent))
		}
		var agent int
		for _, r := range m.Recordings {
			if r.Kind == cecsim.KindAgent {
				agent++
			}
		}
		if want := agent + 2*len(m.Calls) + (len(m.Recordings) - agent) + len(m.Absent); rep.Added != want {
			t.Errorf("added %d, want %d", rep.Added, want)
		}
	})
	t.Run("archive", func(t *testing.T) { e.checkArchive(m) })
	t.Run("ledgers", func(t *testing.T) { e.checkLedgers(m, true) })
	t.Run("packages", func(t *testing.T) {
		objs := e.objects()
		if n := countPrefix(objs, cdrDir); n != 4 {
			t.Errorf("%d CDR objects, want 2 ZIPs + 2 rows files", n)
		}
		wm, ok, err := e.store.Watermark(ctx, config.JobCDR)
		if want := simStart.AddDate(0, 0, 2); err != nil || !ok || !wm.Equal(want) {
			t.Errorf("cdr watermark %v %v %v, want %v", wm, ok, err, want)
		}
	})
	t.Run("no phone numbers in params", func(t *testing.T) {
		numbers := e.phoneNumbers()
		for _, it := range e.items() {
			for _, n := range numbers {
				if strings.Contains(string(it.Args), n) {
					t.Errorf("item %s %s: params %s hold phone number %s", it.Kind, it.UpstreamID, it.Args, n)
				}
			}
		}
	})

	before := e.objects()
	e.clock.Add(time.Minute)
	rep2, err := e.a.Once(ctx)
	if err != nil {
		t.Fatalf("second Once: %v", err)
	}
	t.Run("second run", func(t *testing.T) {
		if rep2.Added != 0 || rep2.Done != 0 || rep2.Failed != 0 || rep2.Bytes != 0 || rep2.Packages != 2 {
			t.Errorf("second run: %+v, want nothing added, done or stored and both packages seen unchanged", rep2)
		}
		after := e.objects()
		if a, b := recordingObjects(after), recordingObjects(before); len(a) != len(b) {
			t.Errorf("second run stored %d recording objects more", len(a)-len(b))
		}
		if n, m := countPrefix(after, ledgerDir), countPrefix(before, ledgerDir); n != m {
			t.Errorf("second run wrote %d ledgers, want 0 (nothing changed)", n-m)
		}
		e.checkArchive(m)
	})
}

func TestArchiver_OnceFaults(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	var faults []cecsim.Fault
	for _, s := range []string{"http500:0.05", "reset:0.05", "truncate:0.05", "flow_control:0.05"} {
		f, err := cecsim.ParseFault(s)
		if err != nil {
			t.Fatal(err)
		}
		faults = append(faults, f)
	}
	faults = append(faults, cecsim.Fault{Kind: cecsim.FaultTokenExpiry, AfterUses: 15})
	e.sim.SetFaults(faults...)
	for run := 1; run <= 3; run++ {
		rep, err := e.a.Once(ctx)
		if err != nil {
			t.Fatalf("Once %d: %v", run, err)
		}
		t.Logf("run %d: %+v", run, *rep)
		if rep.Dead != 0 {
			t.Errorf("run %d: %d dead items", run, rep.Dead)
		}
		if len(e.items(checkpoint.StatePending, checkpoint.StateFailed, checkpoint.StateInProgress)) == 0 && rep.PackagesFailed == 0 {
			break
		}
		e.clock.Add(time.Minute)
	}
	if st := e.sim.Stats(); len(st.Faults) == 0 {
		t.Fatalf("no fault was injected: %+v", st)
	}
	e.checkArchive(m)
	e.checkLedgers(m, true)
}

// failingSink fails every Put of one key with a permanent error.
type failingSink struct {
	sink.Sink
	key string
}

func (f *failingSink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if key == f.key {
		return sink.Object{}, fmt.Errorf("test: put %s: %w", key, errors.New("disk says no"))
	}
	return f.Sink.Put(ctx, key, body, size, meta)
}

func TestArchiver_Dead(t *testing.T) {
	fs := &failingSink{}
	e := newEnv(t, envOptions{
		sink:     func(s sink.Sink) sink.Sink { fs.Sink = s; return fs },
		archiver: func(a *Archiver) { a.Recordings.MaxAttempts = 2 },
	})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	// The first agent recording's key is known once the cdr job ran.
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatalf("Run cdr: %v", err)
	}
	var victim checkpoint.Item
	for _, it := range e.items(checkpoint.StatePending) {
		if it.Kind == checkpoint.KindAgent {
			victim = it
			break
		}
	}
	if victim.Key == "" {
		t.Fatal("no pending agent item")
	}
	fs.key = victim.Key
	var dead int
	for run := 1; run <= 3; run++ {
		rep, err := e.a.Once(ctx)
		if err != nil {
			t.Fatalf("Once %d: %v", run, err)
		}
		dead += rep.Dead
		e.clock.Add(time.Minute)
	}
	t.Run("dead item", func(t *testing.T) {
		deadItems := e.items(checkpoint.StateDead)
		if len(deadItems) != 1 || deadItems[0].ID != victim.ID || deadItems[0].Attempts != 2 || !strings.Contains(deadItems[0].LastError, "disk says no") {
			t.Fatalf("dead items %+v, want only %d after 2 attempts", deadItems, victim.ID)
		}
		if dead != 1 {
			t.Errorf("reports counted %d dead, want 1", dead)
		}
	})
	t.Run("others done", func(t *testing.T) {
		done := e.items(checkpoint.StateDone)
		var recs int
		for _, it := range done {
			if it.Kind == checkpoint.KindAgent || it.Kind == checkpoint.KindTransfer || it.Kind == checkpoint.KindIVR {
				recs++
			}
		}
		if recs != len(m.Recordings)-1 {
			t.Errorf("%d recordings done, want %d", recs, len(m.Recordings)-1)
		}
		wm, _, _ := e.store.Watermark(ctx, config.JobCDR)
		if want := simStart.AddDate(0, 0, 2); !wm.Equal(want) {
			t.Errorf("watermark %v, want %v", wm, want)
		}
	})
	t.Run("ledger", func(t *testing.T) {
		l := e.ledgers()[victim.Day]
		if l.Complete || l.Totals.Dead != 1 {
			t.Fatalf("ledger of %s: complete %v totals %+v, want incomplete with 1 dead", victim.Day, l.Complete, l.Totals)
		}
		found := false
		for _, c := range l.Calls {
			for _, r := range c.Recordings {
				if r.ID == victim.UpstreamID {
					found = r.State == "dead" && r.Attempts == 2 && strings.Contains(r.Error, "disk says no")
				}
			}
		}
		if !found {
			t.Errorf("ledger does not show %s as dead with its error", victim.UpstreamID)
		}
	})
}

func TestArchiver_Settle(t *testing.T) {
	e := newEnv(t, envOptions{archiver: func(a *Archiver) {
		a.TransferSettleMaxAge = 100 * time.Hour
		a.Transfer.Backoff = time.Hour
	}})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	unsettled := map[string]string{} // transfer id → manifest reason
	calls := map[string]bool{}
	for _, ab := range m.Absent {
		if ab.Kind == cecsim.KindTransfer && !strings.HasPrefix(ab.Reason, "opResult FAIL") {
			unsettled[ab.ID] = ab.Reason
			calls[ab.CallID] = true
		}
	}
	if len(unsettled) == 0 {
		t.Fatal("the dataset has no INIT or N/A transfer record")
	}
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatalf("Once: %v", err)
	}
	t.Run("deferred", func(t *testing.T) {
		items := itemsByID(e.items())
		for id := range unsettled {
			if it, ok := items[checkpoint.KindTransfer+"\x00"+id]; ok {
				t.Errorf("transfer %s: item %s (%s) before it settled", id, it.State, it.Reason)
			}
		}
		for call := range calls {
			it := items[checkpoint.KindTransferLookup+"\x00"+call]
			if it.State != checkpoint.StatePending || !strings.Contains(it.LastError, "to settle") || it.Attempts != 0 {
				t.Errorf("lookup %s: %s %q attempts %d, want pending waiting to settle", call, it.State, it.LastError, it.Attempts)
			}
		}
	})
	e.clock.Add(100 * time.Hour)
	if _, err := e.a.Run(ctx, config.JobTransfer); err != nil {
		t.Fatalf("Run transfer: %v", err)
	}
	t.Run("absent after max age", func(t *testing.T) {
		items := itemsByID(e.items())
		for id, why := range unsettled {
			it := items[checkpoint.KindTransfer+"\x00"+id]
			if it.State != checkpoint.StateAbsent || !strings.Contains(it.Reason, "after settle_max_age 100h") {
				t.Errorf("transfer %s (%s): %s %q, want absent after settle_max_age", id, why, it.State, it.Reason)
			}
		}
		for call := range calls {
			if it := items[checkpoint.KindTransferLookup+"\x00"+call]; it.State != checkpoint.StateDone {
				t.Errorf("lookup %s: %s, want done", call, it.State)
			}
		}
	})
}

// signalSink reports the start of every Put of a recording on started.
type signalSink struct {
	sink.Sink
	started chan string
}

func (s *signalSink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if !strings.HasPrefix(key, cdrDir) && !strings.HasPrefix(key, ledgerDir) && !strings.HasPrefix(key, parquetDir) {
		select {
		case s.started <- key:
		default:
		}
	}
	return s.Sink.Put(ctx, key, body, size, meta)
}

func TestArchiver_Abort(t *testing.T) {
	ss := &signalSink{started: make(chan string, 100)}
	abort, cancelAbort := context.WithCancel(context.Background())
	defer cancelAbort()
	e := newEnv(t, envOptions{
		sink:     func(s sink.Sink) sink.Sink { ss.Sink = s; return ss },
		archiver: func(a *Archiver) { a.Abort = abort; a.InPassAttempts = 1 },
		sim: func(o *cecsim.Options) {
			// Every recording is larger than the first chunk a slow answer sends.
			o.MinRecordingBytes, o.MaxRecordingBytes = 16<<10, 24<<10
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultSlow, Path: cecwire.PathDownloadRecordFile, DelayMS: 60_000}}
		},
	})
	ctx, cancel := context.WithCancel(testCtx(t))
	var (
		rep  *Report
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		rep, err = e.a.Once(ctx, config.JobCDR, config.JobRecordings)
	}()
	<-ss.started // an agent recording is being transferred
	cancel()
	select {
	case <-done:
		t.Fatal("Once returned while a transfer was in flight and Abort was not cancelled")
	case <-time.After(50 * time.Millisecond):
	}
	cancelAbort()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Once: %v, want context.Canceled", err)
	}
	if rep.Released == 0 || rep.Done != 0 || rep.Failed != 0 {
		t.Errorf("report %+v, want released items, none done or failed", *rep)
	}
	if n := len(e.items(checkpoint.StateInProgress)); n != 0 {
		t.Errorf("%d items left in progress", n)
	}
	for _, it := range e.items() {
		if it.Kind == checkpoint.KindAgent && (it.State != checkpoint.StatePending || it.Attempts != 0) {
			t.Errorf("agent item %s: %s attempts %d, want pending 0", it.UpstreamID, it.State, it.Attempts)
		}
	}
	if recs := recordingObjects(e.objects()); len(recs) != 0 {
		t.Errorf("sink holds %d recordings after the abort", len(recs))
	}
	if tmp, err := e.dir.TempFiles(); err != nil || len(tmp) > 0 {
		t.Errorf("sink temp files %v (%v), want none", tmp, err)
	}
}

func TestArchiver_PlanAndDryRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	from := simStart.Add(3 * time.Hour)
	to := from.Add(5*24*time.Hour + 90*time.Minute)
	for _, w := range []time.Duration{time.Hour, 24 * time.Hour, 72 * time.Hour} {
		t.Run(fmt.Sprintf("plan %s", w), func(t *testing.T) {
			e.a.Window = w
			plan := e.a.Plan(from, to)
			if len(plan) == 0 || !plan[0].Begin.Equal(from) || !plan[len(plan)-1].End.Equal(to) {
				t.Fatalf("plan %v does not cover [%v, %v)", plan, from, to)
			}
			for i, win := range plan {
				if d := win.End.Sub(win.Begin); d <= 0 || d > MaxWindow || d > w {
					t.Errorf("window %d: %v long", i, d)
				}
				if i > 0 && !win.Begin.Equal(plan[i-1].End) {
					t.Errorf("window %d starts at %v, the previous ended at %v", i, win.Begin, plan[i-1].End)
				}
			}
		})
	}
	e.a.Window = 24 * time.Hour

	var out strings.Builder
	before, objs := e.sim.Stats(), len(e.objects())
	if err := e.a.DryRun(ctx, simStart, simStart.AddDate(0, 0, 2), false, &out); err != nil {
		t.Fatalf("DryRun: %v", err)
	}
	t.Run("no requests, no writes", func(t *testing.T) {
		if after := e.sim.Stats(); fmt.Sprint(after.Requests) != fmt.Sprint(before.Requests) {
			t.Errorf("DryRun made requests: %v → %v", before.Requests, after.Requests)
		}
		if n := len(e.objects()); n != objs {
			t.Errorf("DryRun wrote %d objects", n-objs)
		}
		if _, ok, _ := e.store.Watermark(ctx, config.JobCDR); ok {
			t.Error("DryRun set a watermark")
		}
		if strings.Count(out.String(), "\nwindow ") != 2 || !strings.Contains(out.String(), "unknown until the package is fetched") {
			t.Errorf("DryRun output:\n%s", out.String())
		}
	})
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatalf("Once: %v", err)
	}
	out.Reset()
	if err := e.a.DryRun(ctx, simStart, simStart.AddDate(0, 0, 2), true, &out); err != nil {
		t.Fatalf("DryRun: %v", err)
	}
	t.Run("known packages", func(t *testing.T) {
		m := e.sim.Manifest()
		want := fmt.Sprintf("%d calls", len(m.Calls))
		if !strings.Contains(out.String(), "known from 2 earlier packages: "+want) {
			t.Errorf("DryRun output does not say %q:\n%s", want, out.String())
		}
	})
	// A day later, without --rescan, the first day, done and older than the
	// lookback (from 2 windows before the current day 4), is skipped; the
	// second is not.
	e.clock.Add(24 * time.Hour)
	out.Reset()
	if err := e.a.DryRun(ctx, simStart, simStart.AddDate(0, 0, 2), false, &out); err != nil {
		t.Fatalf("DryRun: %v", err)
	}
	t.Run("settled windows skipped", func(t *testing.T) {
		if !strings.Contains(out.String(), "total: 2 windows (1 skipped), 1 queryBillData requests") ||
			strings.Count(out.String(), ": skipped (--rescan requests it again)") != 1 {
			t.Errorf("DryRun output:\n%s", out.String())
		}
	})
}

func TestArchiver_Backfill(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	rep, err := e.a.Backfill(ctx, simStart, simStart.AddDate(0, 0, 2), BackfillOptions{})
	if err != nil {
		t.Fatalf("Backfill: %v", err)
	}
	if rep.Windows != 2 || rep.Packages != 2 {
		t.Errorf("report %+v, want 2 windows and packages", *rep)
	}
	if _, ok, _ := e.store.Watermark(ctx, config.JobCDR); ok {
		t.Error("Backfill set the cdr watermark")
	}
	e.checkArchive(m)
	e.checkLedgers(m, true)
}
