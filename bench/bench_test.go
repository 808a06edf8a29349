// Package bench holds the throughput benchmark of issue 10 (bench/run.sh,
// bench/cmd/benchrun) and its smoke test, which runs in the normal
// `go test ./...`.
package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// manifestFile is one line of the harness's manifest.json.
type manifestFile struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// result is the part of results.json the smoke test checks.
type result struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	Runs  []struct {
		Variant       string  `json:"variant"`
		Round         int     `json:"round"`
		Bucket        string  `json:"bucket"`
		WallSeconds   float64 `json:"wall_seconds"`
		UserSeconds   float64 `json:"user_seconds"`
		SysSeconds    float64 `json:"sys_seconds"`
		MaxRSSKiB     int64   `json:"max_rss_kib"`
		Objects       int     `json:"objects"`
		Bytes         int64   `json:"bytes"`
		Verified      bool    `json:"verified"`
		RequestsTotal int     `json:"requests_total"`
	} `json:"runs"`
	Medians []struct {
		Variant           string  `json:"variant"`
		WallSeconds       float64 `json:"wall_seconds"`
		MBps              float64 `json:"mb_per_second"`
		ObjectsPerSecond  float64 `json:"objects_per_second"`
		CPUSeconds        float64 `json:"cpu_seconds"`
		CPUPerGB          float64 `json:"cpu_seconds_per_gb"`
		RSSMiB            float64 `json:"peak_rss_mib"`
		RequestsPerObject float64 `json:"s3_requests_per_object"`
	} `json:"medians"`
	Ratios  map[string]float64 `json:"ratios"`
	Targets []struct {
		Name string `json:"name"`
	} `json:"targets"`
}

// TestRun_Smoke runs bench/run.sh on the smoke dataset (20 calls × 64 KiB,
// one round) end to end and checks that the harness works: the three
// variants ran, each bucket holds every recording with its SHA-256 (read
// here from versitygw's posix backend, independently of the harness's own
// check), and every figure is a positive number. The numbers themselves are
// not judged. rclone is installed by run.sh when missing; if that fails,
// this test fails: it never skips.
func TestRun_Smoke(t *testing.T) {
	work := t.TempDir()
	out := filepath.Join(work, "results.json")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./run.sh", "--smoke", "--work", work, "--keep", "--json", out)
	cmd.Env = append(os.Environ(), "BENCH_BIN="+filepath.Join(work, "bin"))
	start := time.Now()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/run.sh --smoke: %v\n%s", err, b)
	}
	t.Logf("bench/run.sh --smoke took %s:\n%s", time.Since(start).Round(time.Millisecond), b)

	var res result
	readJSON(t, out, &res)
	var files []manifestFile
	readJSON(t, filepath.Join(work, "manifest.json"), &files)
	if len(files) == 0 || res.Files != len(files) {
		t.Fatalf("results: %d files, manifest %d", res.Files, len(files))
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	if res.Bytes != total {
		t.Errorf("results: %d bytes, manifest %d", res.Bytes, total)
	}

	ran := map[string]bool{}
	for _, r := range res.Runs {
		ran[r.Variant] = true
		if r.Round != 1 || !r.Verified || r.Objects != len(files) || r.Bytes != total {
			t.Errorf("run %s: round %d, verified %v, %d objects, %d bytes; want round 1, verified, %d objects, %d bytes",
				r.Variant, r.Round, r.Verified, r.Objects, r.Bytes, len(files), total)
		}
		if r.WallSeconds <= 0 || r.UserSeconds+r.SysSeconds <= 0 || r.MaxRSSKiB <= 0 || r.RequestsTotal <= 0 {
			t.Errorf("run %s: wall %v, cpu %v+%v, rss %d KiB, %d requests: want every figure positive",
				r.Variant, r.WallSeconds, r.UserSeconds, r.SysSeconds, r.MaxRSSKiB, r.RequestsTotal)
		}
		checkBucket(t, filepath.Join(work, "s3", "root", r.Bucket), r.Variant == "A", files)
	}
	for _, v := range []string{"A", "B", "C"} {
		if !ran[v] {
			t.Errorf("variant %s did not run", v)
		}
	}
	if len(res.Medians) != 3 {
		t.Errorf("%d medians, want 3", len(res.Medians))
	}
	for _, m := range res.Medians {
		for name, x := range map[string]float64{"wall": m.WallSeconds, "MB/s": m.MBps, "objects/s": m.ObjectsPerSecond,
			"CPU s": m.CPUSeconds, "CPU s/GB": m.CPUPerGB, "RSS": m.RSSMiB, "requests/object": m.RequestsPerObject} {
			if !(x > 0) {
				t.Errorf("median %s of %s is %v, want a positive number", name, m.Variant, x)
			}
		}
	}
	for _, k := range []string{"throughput_a_over_b", "throughput_a_over_c", "cpu_per_gb_a_over_b"} {
		if !(res.Ratios[k] > 0) {
			t.Errorf("ratio %s is %v, want a positive number", k, res.Ratios[k])
		}
	}
	if len(res.Targets) == 0 {
		t.Error("no targets reported")
	}
}

// TestRun_Resume runs the killed-backfill check (bench/run.sh --dataset
// resume): the real archiver's backfill over 12 days is SIGKILLed when it
// requests window k, and run again. The first run must have requested the
// windows 0..k in order, the second none before k − lookback but every one
// from k on, and the bucket (read here from versitygw's posix backend) must
// hold every recording once.
func TestRun_Resume(t *testing.T) {
	work := t.TempDir()
	out := filepath.Join(work, "results.json")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./run.sh", "--dataset", "resume", "--rounds", "1", "--work", work, "--keep", "--json", out)
	cmd.Env = append(os.Environ(), "BENCH_BIN="+filepath.Join(work, "bin"))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/run.sh --dataset resume: %v\n%s", err, b)
	}
	var res struct {
		result
		Resume []struct {
			Windows   int   `json:"windows"`
			KilledAt  int   `json:"killed_at_window"`
			FirstRun  []int `json:"first_run_windows"`
			SecondRun []int `json:"second_run_windows"`
			Lookback  int   `json:"lookback_windows"`
			Met       bool  `json:"met"`
		} `json:"resume"`
	}
	readJSON(t, out, &res)
	if len(res.Resume) != 1 || len(res.Runs) != 1 {
		t.Fatalf("%d resume results, %d runs; want 1 and 1\n%s", len(res.Resume), len(res.Runs), b)
	}
	r := res.Resume[0]
	t.Logf("killed at window %d of %d; first run %v, second run %v", r.KilledAt, r.Windows, r.FirstRun, r.SecondRun)
	for i, w := range r.FirstRun {
		if w != i {
			t.Errorf("the first run requested windows %v, want 0..%d in order", r.FirstRun, r.KilledAt)
			break
		}
	}
	if len(r.FirstRun) != r.KilledAt+1 {
		t.Errorf("the first run requested %d windows, want %d (killed at window %d)", len(r.FirstRun), r.KilledAt+1, r.KilledAt)
	}
	seen := map[int]bool{}
	for _, w := range r.SecondRun {
		seen[w] = true
		if w < r.KilledAt-r.Lookback {
			t.Errorf("the second run requested window %d, before k − lookback = %d", w, r.KilledAt-r.Lookback)
		}
	}
	for w := r.KilledAt; w < r.Windows; w++ {
		if !seen[w] {
			t.Errorf("the second run did not request window %d", w)
		}
	}
	if !r.Met {
		t.Error("the harness judged the target not met")
	}
	var files []manifestFile
	readJSON(t, filepath.Join(work, "manifest.json"), &files)
	checkBucket(t, filepath.Join(work, "s3", "root", res.Runs[0].Bucket), true, files)
}

// checkBucket hashes every file of a bucket's directory in the posix
// backend. B and C store each recording under its key; the archiver (A)
// under a key of its own layout, so its recordings are found by digest,
// and its other objects (CDR packages, ledgers, the probe) must be in their
// places.
func checkBucket(t *testing.T, dir string, archiver bool, files []manifestFile) {
	t.Helper()
	got := map[string]string{} // key → SHA-256
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".sgwtmp" {
				return filepath.SkipDir // versitygw's multipart staging
			}
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		got[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatalf("read bucket %s: %v", dir, err)
	}
	if !archiver {
		for _, f := range files {
			if got[f.Key] != f.SHA256 {
				t.Errorf("%s: %s has SHA-256 %q, want %s", filepath.Base(dir), f.Key, got[f.Key], f.SHA256)
			}
		}
		if len(got) != len(files) {
			t.Errorf("%s: %d objects, want %d", filepath.Base(dir), len(got), len(files))
		}
		return
	}
	bySHA := map[string]int{}
	for _, sum := range got {
		bySHA[sum]++
	}
	want := map[string]bool{}
	for _, f := range files {
		want[f.SHA256] = true
		if n := bySHA[f.SHA256]; n != 1 {
			t.Errorf("%s: %s %s stored %d times, want once", filepath.Base(dir), f.Kind, f.ID, n)
		}
	}
	for k, sum := range got {
		if !want[sum] && !strings.Contains(k, "/ledger/") && !strings.Contains(k, "/cdr/") && !strings.Contains(k, "/.cec-archiver/") {
			t.Errorf("%s: stray object %s", filepath.Base(dir), k)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
