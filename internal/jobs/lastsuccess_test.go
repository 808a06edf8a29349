package jobs

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// TestArchiver_LastSuccessSurvivesRestart: a successful run records its
// time in the store; with the metrics of a new process (a fresh registry,
// the same store) ExportState exports it before any run of their own. This
// is what lets every pushed CronJob pass, failed ones included, carry the
// last success.
func TestArchiver_LastSuccessSurvivesRestart(t *testing.T) {
	e := newEnv(t, envOptions{sim: withSmallDataset(nil)})
	ctx := testCtx(t)
	before := time.Now()
	if rep, err := e.a.Once(ctx); err != nil || RunFailure(rep, nil) != nil {
		t.Fatalf("Once: %+v, %v; want a clean run", rep, err)
	}
	for _, job := range Jobs() {
		got, ok, err := e.store.LastSuccess(ctx, job)
		if err != nil || !ok || got.Before(before.Add(-time.Second)) {
			t.Errorf("store: LastSuccess(%s) = %v, %v, %v; want the run's end", job, got, ok, err)
		}
	}

	reg := prometheus.NewRegistry()
	e.a.Metrics = telemetry.New(reg, "test", Labels())
	e.a.met = e.a.Metrics // init ran: swap what it resolved, as a new process would start with
	if err := e.a.ExportState(ctx); err != nil {
		t.Fatalf("ExportState: %v", err)
	}
	for _, job := range Jobs() {
		stored, _, _ := e.store.LastSuccess(ctx, job)
		got := seriesSum(t, reg, "archiver_job_last_success_timestamp_seconds", map[string]string{"job_name": job})
		if want := float64(stored.UnixNano()) / 1e9; got != want {
			t.Errorf("after a restart, archiver_job_last_success_timestamp_seconds{job_name=%q} = %v, want the stored %v", job, got, want)
		}
	}
}
