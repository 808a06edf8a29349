package telemetry_test

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// newMetrics returns Metrics registered on a fresh registry.
func newMetrics(t *testing.T) (*telemetry.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	return telemetry.New(reg, "1.2.3", known()), reg
}

// labels is a shorthand for a label set.
type labels map[string]string

// find returns the sample of family name whose labels are exactly want.
func find(t *testing.T, g prometheus.Gatherer, name string, want labels) (*dto.Metric, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			match := true
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
					match = false
					break
				}
			}
			if match {
				return m, true
			}
		}
	}
	return nil, false
}

// value returns the counter or gauge value of a series, failing the test if
// the series does not exist.
func value(t *testing.T, g prometheus.Gatherer, name string, l labels) float64 {
	t.Helper()
	m, ok := find(t, g, name, l)
	if !ok {
		t.Fatalf("series %s%v does not exist", name, l)
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("series %s%v is neither a counter nor a gauge", name, l)
	return 0
}

// familyNames returns the names of the families g exposes, sorted.
func familyNames(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	slices.Sort(names)
	return names
}

// exercise calls every method once, so that every family has a series.
func exercise(m *telemetry.Metrics) {
	m.JobStarted("cdr")(nil)
	m.LastPass("recordings", map[string]int{"done": 2, "failed": 1}, 2048)
	m.JobStarted("recordings")(errors.New("boom"))
	m.LastSuccess("recordings", time.Unix(1_600_000_000, 0))
	m.Item("agent", "done")
	m.Bytes("agent", 1024)
	m.Package("done")
	m.Watermark("cdr", time.Unix(1_700_000_000, 0))
	m.SetItems(map[string]map[string]int{"agent": {"done": 3}})
	m.CheckpointError()
	m.Ledger()
	m.SinkError("put")
	m.UpstreamError("transient")
	m.Shutdown("clean")
	m.LeaseLost("recordings")
}

func TestNames(t *testing.T) {
	names := telemetry.Names()
	t.Run("sorted unique and prefixed", func(t *testing.T) {
		if !slices.IsSorted(names) {
			t.Errorf("Names() is not sorted: %v", names)
		}
		if len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("Names() has duplicates: %v", names)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, "archiver_") {
				t.Errorf("%s: missing the archiver_ prefix", n)
			}
		}
	})
	t.Run("equal to the registered families", func(t *testing.T) {
		m, reg := newMetrics(t)
		exercise(m)
		if got := familyNames(t, reg); !slices.Equal(got, names) {
			t.Errorf("registered families = %v\nNames() = %v", got, names)
		}
	})
}

func TestNew(t *testing.T) {
	t.Run("build info", func(t *testing.T) {
		_, reg := newMetrics(t)
		if v := value(t, reg, "archiver_build_info", labels{"version": "1.2.3", "goversion": runtime.Version(),
			"commit": "0123abc", "date": "2026-03-01T10:00:00Z"}); v != 1 {
			t.Errorf("archiver_build_info = %v, want 1", v)
		}
	})
	t.Run("build info without a stamp", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		k := known()
		k.Build = telemetry.Build{}
		telemetry.New(reg, "dev", k)
		if v := value(t, reg, "archiver_build_info", labels{"version": "dev", "goversion": runtime.Version(),
			"commit": "unknown", "date": "unknown"}); v != 1 {
			t.Errorf("archiver_build_info = %v, want 1", v)
		}
	})
	t.Run("known series exist at zero", func(t *testing.T) {
		_, reg := newMetrics(t)
		zero := []struct {
			name string
			l    labels
		}{
			{"archiver_job_running", labels{"job_name": "ivr"}},
			{"archiver_job_runs_total", labels{"job_name": "cdr", "result": "failure"}},
			{"archiver_job_runs_total", labels{"job_name": "transfer", "result": "success"}},
			{"archiver_items_processed_total", labels{"kind": "ivr_lookup", "result": "released"}},
			{"archiver_items_processed_total", labels{"kind": "cdr", "result": "dead"}},
			{"archiver_archived_bytes_total", labels{"kind": "transfer"}},
			{"archiver_cdr_packages_total", labels{"result": "unchanged"}},
			{"archiver_items", labels{"kind": "agent", "state": "dead"}},
			{"archiver_items", labels{"kind": "transfer_lookup", "state": "in_progress"}},
			{"archiver_checkpoint_errors_total", labels{}},
			{"archiver_ledger_objects_written_total", labels{}},
			{"archiver_sink_errors_total", labels{"op": "stat"}},
			{"archiver_upstream_errors_total", labels{"class": "not-found"}},
			{"archiver_shutdowns_total", labels{"result": "forced"}},
		}
		for _, z := range zero {
			if v := value(t, reg, z.name, z.l); v != 0 {
				t.Errorf("%s%v = %v, want 0", z.name, z.l, v)
			}
		}
	})
	t.Run("no timestamp before the event", func(t *testing.T) {
		_, reg := newMetrics(t)
		got := familyNames(t, reg)
		for _, n := range []string{"archiver_job_last_success_timestamp_seconds", "archiver_watermark_timestamp_seconds"} {
			if slices.Contains(got, n) {
				t.Errorf("%s is exposed before any value was set; a zero timestamp would fire staleness alerts", n)
			}
		}
	})
	t.Run("duplicate registration panics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		telemetry.New(reg, "a", known())
		defer func() {
			if recover() == nil {
				t.Error("second New on the same registry did not panic")
			}
		}()
		telemetry.New(reg, "b", known())
	})
}

// TestMetrics_LastPass: a run's counts, duration, time and success are
// gauges of the job that only a finished run sets; every known result is
// set, at 0 when the run had none.
func TestMetrics_LastPass(t *testing.T) {
	m, reg := newMetrics(t)
	for _, n := range []string{"archiver_last_pass_items", "archiver_last_pass_timestamp_seconds", "archiver_last_pass_success"} {
		if slices.Contains(familyNames(t, reg), n) {
			t.Errorf("%s is exposed before a run finished", n)
		}
	}
	before := time.Now()
	done := m.JobStarted("ivr")
	m.LastPass("ivr", map[string]int{"done": 3, "deferred": 2}, 4096)
	done(errors.New("boom"))
	for l, want := range map[string]float64{"done": 3, "deferred": 2, "failed": 0, "released": 0} {
		if v := value(t, reg, "archiver_last_pass_items", labels{"job_name": "ivr", "result": l}); v != want {
			t.Errorf("last_pass_items{result=%q} = %v, want %v", l, v, want)
		}
	}
	if v := value(t, reg, "archiver_last_pass_bytes", labels{"job_name": "ivr"}); v != 4096 {
		t.Errorf("last_pass_bytes = %v, want 4096", v)
	}
	if v := value(t, reg, "archiver_last_pass_success", labels{"job_name": "ivr"}); v != 0 {
		t.Errorf("last_pass_success after a failure = %v, want 0", v)
	}
	if v := value(t, reg, "archiver_last_pass_timestamp_seconds", labels{"job_name": "ivr"}); v < float64(before.Unix()) {
		t.Errorf("last_pass_timestamp = %v, want after %v", v, before.Unix())
	}
	if v := value(t, reg, "archiver_last_pass_duration_seconds", labels{"job_name": "ivr"}); v < 0 || v > 60 {
		t.Errorf("last_pass_duration = %v", v)
	}
	m.JobStarted("ivr")(nil)
	if v := value(t, reg, "archiver_last_pass_success", labels{"job_name": "ivr"}); v != 1 {
		t.Errorf("last_pass_success after a success = %v, want 1", v)
	}
}

// TestMetrics_LastSuccess: the gauge keeps the latest of the runs' and the
// store's times; an older time (the store's, read after a run) is ignored.
func TestMetrics_LastSuccess(t *testing.T) {
	m, reg := newMetrics(t)
	t1 := time.Unix(1_700_000_000, 0)
	m.LastSuccess("cdr", t1)
	if v := value(t, reg, "archiver_job_last_success_timestamp_seconds", labels{"job_name": "cdr"}); v != 1_700_000_000 {
		t.Errorf("restored last success = %v, want %v", v, 1_700_000_000)
	}
	m.LastSuccess("cdr", t1.Add(-time.Hour))
	if v := value(t, reg, "archiver_job_last_success_timestamp_seconds", labels{"job_name": "cdr"}); v != 1_700_000_000 {
		t.Errorf("after an older time = %v, want it kept", v)
	}
	m.JobStarted("cdr")(nil)
	now := float64(time.Now().Unix())
	if v := value(t, reg, "archiver_job_last_success_timestamp_seconds", labels{"job_name": "cdr"}); v < now-5 {
		t.Errorf("after a success = %v, want about %v", v, now)
	}
	m.LastSuccess("cdr", t1)
	if v := value(t, reg, "archiver_job_last_success_timestamp_seconds", labels{"job_name": "cdr"}); v < now-5 {
		t.Errorf("the store's older time replaced the run's: %v", v)
	}
}

func TestMetrics_JobStarted(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		m, reg := newMetrics(t)
		before := time.Now()
		done := m.JobStarted("cdr")
		if v := value(t, reg, "archiver_job_running", labels{"job_name": "cdr"}); v != 1 {
			t.Errorf("running during the run = %v, want 1", v)
		}
		done(nil)
		after := time.Now()
		if v := value(t, reg, "archiver_job_running", labels{"job_name": "cdr"}); v != 0 {
			t.Errorf("running after the run = %v, want 0", v)
		}
		if v := value(t, reg, "archiver_job_runs_total", labels{"job_name": "cdr", "result": "success"}); v != 1 {
			t.Errorf("success runs = %v, want 1", v)
		}
		if v := value(t, reg, "archiver_job_runs_total", labels{"job_name": "cdr", "result": "failure"}); v != 0 {
			t.Errorf("failure runs = %v, want 0", v)
		}
		ts := value(t, reg, "archiver_job_last_success_timestamp_seconds", labels{"job_name": "cdr"})
		if ts < float64(before.Unix()) || ts > float64(after.Unix()+1) {
			t.Errorf("last success = %v, want between %d and %d", ts, before.Unix(), after.Unix()+1)
		}
		h, ok := find(t, reg, "archiver_job_duration_seconds", labels{"job_name": "cdr"})
		if !ok || h.GetHistogram().GetSampleCount() != 1 || h.GetHistogram().GetSampleSum() < 0 {
			t.Errorf("duration histogram = %v, want one non-negative sample", h)
		}
	})
	t.Run("failure", func(t *testing.T) {
		m, reg := newMetrics(t)
		m.JobStarted("transfer")(errors.New("upstream down"))
		if v := value(t, reg, "archiver_job_runs_total", labels{"job_name": "transfer", "result": "failure"}); v != 1 {
			t.Errorf("failure runs = %v, want 1", v)
		}
		if v := value(t, reg, "archiver_job_runs_total", labels{"job_name": "transfer", "result": "success"}); v != 0 {
			t.Errorf("success runs = %v, want 0", v)
		}
		if _, ok := find(t, reg, "archiver_job_last_success_timestamp_seconds", labels{"job_name": "transfer"}); ok {
			t.Error("a failed run set the last-success time")
		}
		if v := value(t, reg, "archiver_job_running", labels{"job_name": "transfer"}); v != 0 {
			t.Errorf("running after the run = %v, want 0", v)
		}
	})
	t.Run("done twice counts once", func(t *testing.T) {
		m, reg := newMetrics(t)
		done := m.JobStarted("ivr")
		done(nil)
		done(errors.New("late"))
		if v := value(t, reg, "archiver_job_runs_total", labels{"job_name": "ivr", "result": "success"}); v != 1 {
			t.Errorf("success runs = %v, want 1", v)
		}
		if v := value(t, reg, "archiver_job_runs_total", labels{"job_name": "ivr", "result": "failure"}); v != 0 {
			t.Errorf("failure runs = %v, want 0", v)
		}
	})
}

func TestMetrics_Counters(t *testing.T) {
	tests := []struct {
		name   string
		call   func(m *telemetry.Metrics)
		metric string
		l      labels
		want   float64
	}{
		{"Item", func(m *telemetry.Metrics) { m.Item("transfer", "existed"); m.Item("transfer", "existed") },
			"archiver_items_processed_total", labels{"kind": "transfer", "result": "existed"}, 2},
		{"Bytes", func(m *telemetry.Metrics) { m.Bytes("ivr", 100); m.Bytes("ivr", 23) },
			"archiver_archived_bytes_total", labels{"kind": "ivr"}, 123},
		{"Bytes ignores negative", func(m *telemetry.Metrics) { m.Bytes("ivr", 5); m.Bytes("ivr", -1) },
			"archiver_archived_bytes_total", labels{"kind": "ivr"}, 5},
		{"Package", func(m *telemetry.Metrics) { m.Package("failed") },
			"archiver_cdr_packages_total", labels{"result": "failed"}, 1},
		{"Watermark", func(m *telemetry.Metrics) { m.Watermark("recordings", time.Unix(1_700_000_000, 500_000_000)) },
			"archiver_watermark_timestamp_seconds", labels{"job_name": "recordings"}, 1_700_000_000.5},
		{"CheckpointError", func(m *telemetry.Metrics) { m.CheckpointError() },
			"archiver_checkpoint_errors_total", labels{}, 1},
		{"Ledger", func(m *telemetry.Metrics) { m.Ledger(); m.Ledger(); m.Ledger() },
			"archiver_ledger_objects_written_total", labels{}, 3},
		{"SinkError", func(m *telemetry.Metrics) { m.SinkError("stat") },
			"archiver_sink_errors_total", labels{"op": "stat"}, 1},
		{"UpstreamError", func(m *telemetry.Metrics) { m.UpstreamError("auth") },
			"archiver_upstream_errors_total", labels{"class": "auth"}, 1},
		{"Shutdown", func(m *telemetry.Metrics) { m.Shutdown("abandoned") },
			"archiver_shutdowns_total", labels{"result": "abandoned"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			tt.call(m)
			if v := value(t, reg, tt.metric, tt.l); v != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.l, v, tt.want)
			}
		})
	}
}

func TestMetrics_SetItems(t *testing.T) {
	m, reg := newMetrics(t)
	m.SetItems(map[string]map[string]int{
		"agent":   {"done": 10, "dead": 2},
		"unknown": {"weird": 7},
	})
	t.Run("sets given pairs", func(t *testing.T) {
		for _, c := range []struct {
			l    labels
			want float64
		}{
			{labels{"kind": "agent", "state": "done"}, 10},
			{labels{"kind": "agent", "state": "dead"}, 2},
			{labels{"kind": "unknown", "state": "weird"}, 7},
			{labels{"kind": "agent", "state": "pending"}, 0},
		} {
			if v := value(t, reg, "archiver_items", c.l); v != c.want {
				t.Errorf("archiver_items%v = %v, want %v", c.l, v, c.want)
			}
		}
	})
	t.Run("replaces earlier counts", func(t *testing.T) {
		m.SetItems(map[string]map[string]int{"agent": {"done": 11}})
		if v := value(t, reg, "archiver_items", labels{"kind": "agent", "state": "done"}); v != 11 {
			t.Errorf("agent/done = %v, want 11", v)
		}
		if v := value(t, reg, "archiver_items", labels{"kind": "agent", "state": "dead"}); v != 0 {
			t.Errorf("agent/dead = %v, want 0 after it left the counts", v)
		}
		if _, ok := find(t, reg, "archiver_items", labels{"kind": "unknown", "state": "weird"}); ok {
			t.Error("a pair of unknown labels that left the counts is still exposed")
		}
	})
}

func TestMetrics_NilReceiver(t *testing.T) {
	var m *telemetry.Metrics
	done := m.JobStarted("cdr")
	if done == nil {
		t.Fatal("JobStarted on nil returned a nil done")
	}
	done(nil)
	done(errors.New("x"))
	m.Item("agent", "done")
	m.Bytes("agent", 1)
	m.Package("done")
	m.Watermark("cdr", time.Now())
	m.SetItems(map[string]map[string]int{"agent": {"done": 1}})
	m.CheckpointError()
	m.Ledger()
	m.SinkError("put")
	m.UpstreamError("auth")
	m.Shutdown("clean")
}

func TestMetrics_Lint(t *testing.T) {
	m, reg := newMetrics(t)
	exercise(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "job" || l.GetName() == "instance" {
					t.Errorf("%s has the reserved label %q", mf.GetName(), l.GetName())
				}
			}
		}
	}
}

// known are the label values main passes in (jobs.Jobs, checkpoint.Kinds
// with jobs.KindPackage, checkpoint.States; cmd/archiver tests that tie).
func known() telemetry.Known {
	return telemetry.Known{
		Jobs:   []string{"cdr", "recordings", "transfer", "ivr"},
		Kinds:  []string{"agent", "transfer", "ivr", "transfer_lookup", "ivr_lookup", "cdr"},
		States: []string{"pending", "in_progress", "done", "absent", "failed", "dead"},
		JobKinds: map[string][]string{
			"cdr": {"cdr"}, "recordings": {"agent"},
			"transfer": {"transfer_lookup", "transfer"}, "ivr": {"ivr_lookup", "ivr"},
		},
		PackageJob: "cdr",
		Build:      telemetry.Build{Commit: "0123abc", Date: "2026-03-01T10:00:00Z"},
	}
}
