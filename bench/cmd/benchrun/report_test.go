package main

import (
	"io"
	"math"
	"strings"
	"testing"
)

// TestFinish_PairedRatios: the ratios of the medians take A and B from
// different rounds; the _paired ratios are the median of each round's own
// ratio. A round whose B is missing has no pair.
func TestFinish_PairedRatios(t *testing.T) {
	res := &results{Runs: []runResult{
		testRun(variantArchiver, 1, 10, 4), testRun(variantLoop, 1, 5, 2), testRun(variantRclone, 1, 30, 8),
		testRun(variantArchiver, 2, 22, 5), testRun(variantLoop, 2, 10, 2), testRun(variantRclone, 2, 30, 8),
		testRun(variantArchiver, 3, 14, 6), testRun(variantLoop, 3, 10, 3), testRun(variantRclone, 3, 30, 8),
		testRun(variantArchiver, 4, 50, 9), // B of round 4 failed to run: no pair
	}}
	res.finish(dataset{Name: "8kb"})
	for _, c := range []struct {
		name string
		want float64
	}{
		// Medians: A 18 CPU-s (of 10, 14, 22, 50), B 10 → 1.8; rounds: 2, 2.2, 1.4 → 2.
		{"cpu_per_gb_a_over_b", 1.8},
		{"cpu_per_gb_a_over_b_paired", 2},
		// Throughput (MB/s): A 250, 200, 167, 111 → 183.3, B 500, 500, 333 →
		// 500; rounds: 0.5, 0.4, 0.5 → 0.5.
		{"throughput_a_over_b", (1e3/5 + 1e3/6) / 2 / 500},
		{"throughput_a_over_b_paired", 0.5},
	} {
		if got, ok := res.Ratios[c.name]; !ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", c.name, got, ok, c.want)
		}
	}
	if md := markdown(res); !strings.Contains(md, "cpu_per_gb_a_over_b_paired 2.00") {
		t.Errorf("the markdown lacks the paired CPU ratio:\n%s", md)
	}
}

// TestFinish_Baseline: with --baseline, A0's runs give the A over A0 ratios
// (of the medians and paired by round) next to A over B.
func TestFinish_Baseline(t *testing.T) {
	var runs []runResult
	// A machine that slows down round by round: each round's A0 takes 1.25×
	// A's CPU, whatever the round's speed.
	for i, speed := range []float64{1, 2, 4} {
		round := i + 1
		runs = append(runs, testRun(variantArchiver, round, 8*speed, 2*speed), testRun(variantBaseline, round, 10*speed, 2*speed),
			testRun(variantLoop, round, 4*speed, speed), testRun(variantRclone, round, 16*speed, 4*speed))
	}
	res := &results{Runs: runs}
	res.finish(dataset{Name: "1mb"})
	for _, c := range []struct {
		name string
		want float64
	}{
		{"cpu_per_gb_a_over_a0", 0.8},
		{"cpu_per_gb_a_over_a0_paired", 0.8},
		{"throughput_a_over_a0", 1},
		{"throughput_a_over_a0_paired", 1},
		{"cpu_per_gb_a_over_b_paired", 2},
	} {
		if got, ok := res.Ratios[c.name]; !ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", c.name, got, ok, c.want)
		}
	}
	if len(res.Medians) != 4 || res.Medians[1].Variant != variantBaseline {
		t.Errorf("medians %+v: want A, A0, B, C", res.Medians)
	}
}

// TestParseFlags_Baseline: --baseline adds A0 to the A B C datasets and is
// refused for those that run the archiver alone.
func TestParseFlags_Baseline(t *testing.T) {
	base := []string{"--archiver", "/bin/true", "--versitygw", "/bin/true", "--baseline", "/bin/false"}
	o, err := parseFlags(append(base, "--dataset", "8kb"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{o: o}
	b.d, _ = datasetByName(o.dataset)
	if got := strings.Join(b.variants(), " "); got != "A A0 B C" {
		t.Errorf("variants %q, want A A0 B C", got)
	}
	for _, d := range []string{"store1m", "resume"} {
		if _, err := parseFlags(append(base, "--dataset", d), io.Discard); err == nil || !strings.Contains(err.Error(), "--baseline") {
			t.Errorf("--dataset %s --baseline: %v, want an error naming --baseline", d, err)
		}
	}
}

// testRun is a run of 10 recordings, 1 GB, of cpu CPU-seconds in wall
// seconds.
func testRun(variant string, round int, cpu, wall float64) runResult {
	r := runResult{Variant: variant, Round: round, Objects: 10, Bytes: 1e9}
	r.UserSeconds, r.WallSeconds = cpu, wall
	return r
}
