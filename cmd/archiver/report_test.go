package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// TestSummary_Replicas: a run's output says what other replicas took from
// it, and only when they did.
func TestSummary_Replicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  jobs.Report
		want []string
	}{
		{"none", jobs.Report{Done: 3}, nil},
		{"lease lost", jobs.Report{LeaseLost: 2}, []string{"once: 2 items abandoned to other replicas (their lease was lost)"}},
		{"windows held", jobs.Report{WindowsHeld: 1}, []string{"once: 1 windows held by other replicas, skipped"}},
		{"both", jobs.Report{LeaseLost: 4, WindowsHeld: 5}, []string{"4 items abandoned to other replicas", "5 windows held by other replicas"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			replicas(&b, "once", &tc.rep)
			out := b.String()
			if len(tc.want) == 0 && out != "" {
				t.Errorf("output %q, want none", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output %q lacks %q", out, w)
				}
			}
		})
	}
}
