package main

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// TestEnumerations_Agree ties the enumerations each package owns to the
// packages that use them: config's job names and methods to what jobs runs
// and accepts, checkpoint's kinds and states to what telemetry exports and
// status counts.
func TestEnumerations_Agree(t *testing.T) {
	t.Run("jobs", func(t *testing.T) {
		if got, want := jobs.Jobs(), config.JobNames(); !slices.Equal(got, want) {
			t.Errorf("jobs.Jobs() = %v, config.JobNames() = %v: every job the configuration knows must be one jobs runs, in the same order", got, want)
		}
	})
	t.Run("methods", func(t *testing.T) {
		for _, m := range config.Methods() {
			if !slices.Contains(jobs.Methods(), m) {
				t.Errorf("config accepts method %q, jobs does not (jobs.Methods() = %v)", m, jobs.Methods())
			}
		}
		if d := config.Default().Jobs.Recordings.Method; !slices.Contains(jobs.Methods(), d) {
			t.Errorf("config's default method %q is not one jobs accepts", d)
		}
	})
	t.Run("telemetry", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		telemetry.New(reg, "test", jobs.Labels())
		series := gatherLabels(t, reg)
		for _, j := range config.JobNames() {
			if !series["archiver_job_runs_total"]["job_name="+j+",result=success"] {
				t.Errorf("no archiver_job_runs_total series for job %q", j)
			}
		}
		for _, k := range append(checkpoint.Kinds(), jobs.KindPackage) {
			if !series["archiver_archived_bytes_total"]["kind="+k] {
				t.Errorf("no archiver_archived_bytes_total series for kind %q", k)
			}
		}
		for _, k := range checkpoint.Kinds() {
			for _, s := range checkpoint.States {
				if !series["archiver_items"]["kind="+k+",state="+string(s)] {
					t.Errorf("no archiver_items series for kind %q state %q", k, s)
				}
			}
		}
	})
	t.Run("status", func(t *testing.T) {
		for _, s := range checkpoint.States {
			var row dayStatus
			if !row.count(checkpoint.KindAgent, s, 1) {
				t.Errorf("status does not count state %q", s)
			}
			if n := row.Archived + row.Absent + row.Pending + row.Failed + row.Dead; n != 1 {
				t.Errorf("status counts an agent item in state %q %d times, want once", s, n)
			}
		}
		for _, k := range checkpoint.Kinds() {
			var row dayStatus
			row.count(k, checkpoint.StateDead, 1)
			if row.Dead != 1 {
				t.Errorf("status does not count dead items of kind %q", k)
			}
		}
	})
}

// gatherLabels returns, per metric family, the set of its series' labels
// as "name=value,name=value" in the registry's label order.
func gatherLabels(t *testing.T, reg *prometheus.Registry) map[string]map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, mf := range mfs {
		set := map[string]bool{}
		for _, m := range mf.GetMetric() {
			key := ""
			for i, lp := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += lp.GetName() + "=" + lp.GetValue()
			}
			set[key] = true
		}
		out[mf.GetName()] = set
	}
	return out
}
