package jobs

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

func openTestStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// addPackage creates a package of [begin, end) and moves it to state.
func addPackage(t *testing.T, st checkpoint.Store, begin, end time.Time, name string, state checkpoint.State, attempts int, lastErr, quarantine string) {
	t.Helper()
	ctx := context.Background()
	p := checkpoint.Package{Begin: begin, End: end, ResponseID: "r-" + name, BillFileName: name, RequestedAt: begin}
	id, err := st.CreatePackage(ctx, p)
	if err != nil {
		t.Fatalf("CreatePackage: %v", err)
	}
	p.ID, p.State, p.Attempts, p.LastError, p.QuarantineKey = id, state, attempts, lastErr, quarantine
	if state == checkpoint.StateDone {
		if _, err := st.CompletePackage(ctx, p, nil, nil); err != nil {
			t.Fatalf("CompletePackage: %v", err)
		}
		return
	}
	if err := st.UpdatePackage(ctx, p); err != nil {
		t.Fatalf("UpdatePackage: %v", err)
	}
}

func TestProblemWindows(t *testing.T) {
	ctx := context.Background()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	st := openTestStore(t)
	h := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) }

	// 1 Nov 00–01: failed, then done: fine.
	addPackage(t, st, h(1, 0), h(1, 1), "a1", checkpoint.StateFailed, 1, "timeout", "")
	addPackage(t, st, h(1, 0), h(1, 1), "a2", checkpoint.StateDone, 0, "", "")
	// 1 Nov 01–02: done, then a lookback re-request that died: a problem.
	addPackage(t, st, h(1, 1), h(1, 2), "b1", checkpoint.StateDone, 0, "", "")
	addPackage(t, st, h(1, 1), h(1, 2), "b2", checkpoint.StateDead, 3, "zip bomb", "quarantine/b2-sha")
	// 1 Nov 02–03: only a failed package.
	addPackage(t, st, h(1, 2), h(1, 3), "c1", checkpoint.StateFailed, 2, "bad csv", "")
	// 1 Nov 23 – 2 Nov 01 UTC: pending; in Shanghai (UTC+8) it covers 2 Nov only.
	addPackage(t, st, h(1, 23), h(2, 1), "d1", checkpoint.StatePending, 0, "", "")
	// 2 Nov 12 – 4 Nov 12 UTC: failed; three days in UTC.
	addPackage(t, st, h(2, 12), h(4, 12), "e1", checkpoint.StateFailed, 1, "x", "")
	// 5 Nov: done only.
	addPackage(t, st, h(5, 0), h(6, 0), "f1", checkpoint.StateDone, 0, "", "")

	t.Run("utc", func(t *testing.T) {
		got, err := ProblemWindows(ctx, st, time.UTC)
		if err != nil {
			t.Fatalf("ProblemWindows: %v", err)
		}
		var names []string
		for _, w := range got {
			names = append(names, w.BillFileName)
		}
		if want := []string{"b2", "c1", "d1", "e1"}; !slices.Equal(names, want) {
			t.Fatalf("problem windows %v, want %v", names, want)
		}
		b := got[0]
		if !b.Begin.Equal(h(1, 1)) || !b.End.Equal(h(1, 2)) || b.State != checkpoint.StateDead || b.Attempts != 3 ||
			b.LastError != "zip bomb" || b.QuarantineKey != "quarantine/b2-sha" || !slices.Equal(b.Days, []string{"2026-11-01"}) {
			t.Errorf("b2 = %+v", b)
		}
		if got[1].State != checkpoint.StateFailed || got[1].LastError != "bad csv" || got[1].Attempts != 2 {
			t.Errorf("c1 = %+v", got[1])
		}
		if want := []string{"2026-11-01", "2026-11-02"}; !slices.Equal(got[2].Days, want) {
			t.Errorf("d1 days %v, want %v", got[2].Days, want)
		}
		if want := []string{"2026-11-02", "2026-11-03", "2026-11-04"}; !slices.Equal(got[3].Days, want) {
			t.Errorf("e1 days %v, want %v", got[3].Days, want)
		}
	})
	t.Run("tenant time zone", func(t *testing.T) {
		got, err := ProblemWindows(ctx, st, shanghai)
		if err != nil {
			t.Fatalf("ProblemWindows: %v", err)
		}
		if len(got) != 4 {
			t.Fatalf("%d problem windows, want 4", len(got))
		}
		if want := []string{"2026-11-02"}; !slices.Equal(got[2].Days, want) {
			t.Errorf("d1 days in Shanghai %v, want %v", got[2].Days, want)
		}
		if want := []string{"2026-11-02", "2026-11-03", "2026-11-04"}; !slices.Equal(got[3].Days, want) {
			t.Errorf("e1 days in Shanghai %v, want %v", got[3].Days, want)
		}
	})
	t.Run("empty store", func(t *testing.T) {
		got, err := ProblemWindows(ctx, openTestStore(t), nil)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("ProblemWindows on an empty store = %v, %v; want an empty, non-nil list", got, err)
		}
	})
}

// gauge returns the value of the series of family name whose labels
// include want, and whether it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

func TestArchiver_ExportState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wm := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	if err := st.SetWatermark(ctx, config.JobCDR, wm); err != nil {
		t.Fatal(err)
	}
	items := []checkpoint.Item{
		{Kind: checkpoint.KindAgent, UpstreamID: "a", CallID: "c1", Day: "2026-11-01", Key: "k/a"},
		{Kind: checkpoint.KindAgent, UpstreamID: "b", CallID: "c1", Day: "2026-11-01", Key: "k/b"},
		{Kind: checkpoint.KindIVRLookup, UpstreamID: "c1", CallID: "c1", Day: "2026-11-01"},
	}
	if _, err := st.AddItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// A fresh process: a new registry, the same state file.
	st, err = sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	a := testArchiver(t, st, telemetry.New(reg, "test", Labels()))
	if _, ok := gauge(t, reg, "archiver_watermark_timestamp_seconds", map[string]string{"job_name": "cdr"}); ok {
		t.Fatal("watermark exported before ExportState")
	}
	if err := a.ExportState(ctx); err != nil {
		t.Fatalf("ExportState: %v", err)
	}
	if v, ok := gauge(t, reg, "archiver_watermark_timestamp_seconds", map[string]string{"job_name": "cdr"}); !ok || v != float64(wm.Unix()) {
		t.Errorf("cdr watermark gauge %v (present %v), want %d", v, ok, wm.Unix())
	}
	for _, c := range []struct {
		kind, state string
		want        float64
	}{
		{checkpoint.KindAgent, "pending", 2},
		{checkpoint.KindIVRLookup, "pending", 1},
		{checkpoint.KindAgent, "done", 0},
	} {
		if v, ok := gauge(t, reg, "archiver_items", map[string]string{"kind": c.kind, "state": c.state}); !ok || v != c.want {
			t.Errorf("archiver_items{kind=%q,state=%q} = %v (present %v), want %v", c.kind, c.state, v, ok, c.want)
		}
	}
}

// testArchiver is an archiver on st that needs no CEC: enough for what
// reads the store.
func testArchiver(t *testing.T, st checkpoint.Store, m Metrics) *Archiver {
	t.Helper()
	ds, err := dir.New(dir.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	keys, err := sink.NewKeyBuilder(testPrefix, sink.DefaultKeyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return &Archiver{Sink: ds, Store: st, Keys: keys, Prefix: testPrefix, Metrics: m,
		Settings: Settings{Tenant: testTenant, Location: time.UTC, Window: 24 * time.Hour}}
}

// prefixFailingSink fails every Put of a key that starts with prefix.
type prefixFailingSink struct {
	sink.Sink
	prefix string
}

func (f *prefixFailingSink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if strings.HasPrefix(key, f.prefix) {
		return sink.Object{}, errors.New("test: disk says no")
	}
	return f.Sink.Put(ctx, key, body, size, meta)
}

func TestArchiver_RunMetricsOutcome(t *testing.T) {
	runs := func(t *testing.T, reg *prometheus.Registry, job, result string) float64 {
		v, _ := gauge(t, reg, "archiver_job_runs_total", map[string]string{"job_name": job, "result": result})
		return v
	}
	lastSuccess := func(t *testing.T, reg *prometheus.Registry, job string) bool {
		_, ok := gauge(t, reg, "archiver_job_last_success_timestamp_seconds", map[string]string{"job_name": job})
		return ok
	}
	t.Run("failed window", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := newEnv(t, envOptions{
			sink:     func(s sink.Sink) sink.Sink { return &prefixFailingSink{s, cdrDir} },
			archiver: func(a *Archiver) { a.Metrics = telemetry.New(reg, "test", Labels()) },
		})
		rep, err := e.a.Run(testCtx(t), config.JobCDR)
		if err != nil {
			t.Fatalf("Run cdr: %v", err)
		}
		if rep.PackagesFailed == 0 && len(rep.Errors) == 0 {
			t.Fatalf("report %+v: want failed packages", rep)
		}
		if s, f := runs(t, reg, config.JobCDR, "success"), runs(t, reg, config.JobCDR, "failure"); s != 0 || f != 1 {
			t.Errorf("cdr runs: success %v failure %v, want 0 1", s, f)
		}
		if lastSuccess(t, reg, config.JobCDR) {
			t.Error("a run with failed windows set the last-success time")
		}
	})
	t.Run("dead items", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := newEnv(t, envOptions{
			sink: func(s sink.Sink) sink.Sink { return &prefixFailingSink{s, testPrefix + "/" + testTenant + "/20"} },
			archiver: func(a *Archiver) {
				a.Metrics = telemetry.New(reg, "test", Labels())
				a.Recordings.MaxAttempts = 1
			},
		})
		ctx := testCtx(t)
		if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
			t.Fatalf("Run cdr: %v", err)
		}
		if s := runs(t, reg, config.JobCDR, "success"); s != 1 || !lastSuccess(t, reg, config.JobCDR) {
			t.Fatalf("a clean cdr run: success %v, last success set %v; want 1 true", s, lastSuccess(t, reg, config.JobCDR))
		}
		rep, err := e.a.Run(ctx, config.JobRecordings)
		if err != nil {
			t.Fatalf("Run recordings: %v", err)
		}
		if rep.Dead == 0 && rep.Failed == 0 {
			t.Fatalf("report %+v: want failed or dead items", rep)
		}
		if s, f := runs(t, reg, config.JobRecordings, "success"), runs(t, reg, config.JobRecordings, "failure"); s != 0 || f != 1 {
			t.Errorf("recordings runs: success %v failure %v, want 0 1", s, f)
		}
		if lastSuccess(t, reg, config.JobRecordings) {
			t.Error("a run with dead items set the last-success time")
		}
	})
}

func TestRunFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name string
		rep  *Report
		err  error
		want bool
	}{
		{"clean", &Report{Done: 3}, nil, false},
		{"nothing due", &Report{}, nil, false},
		{"error", &Report{}, boom, true},
		{"nil report", nil, nil, false},
		{"packages failed", &Report{PackagesFailed: 1}, nil, true},
		{"window errors", &Report{Errors: []string{"x"}}, nil, true},
		{"failed attempts", &Report{Failed: 1}, nil, true},
		{"dead", &Report{Dead: 1}, nil, true},
		{"deferred and released", &Report{Deferred: 2, Released: 1}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := RunFailure(c.rep, c.err)
			if (got != nil) != c.want {
				t.Errorf("RunFailure = %v, want failure %v", got, c.want)
			}
			if c.err != nil && !errors.Is(got, c.err) {
				t.Errorf("RunFailure = %v, want it to wrap %v", got, c.err)
			}
		})
	}
}
