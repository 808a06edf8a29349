package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// runResult is one measured run of one variant.
type runResult struct {
	Variant string `json:"variant"`
	Round   int    `json:"round"`
	Bucket  string `json:"bucket"`
	measure
	// SourceCPUSeconds is the harness process's CPU during the run: the
	// simulator serving A, the file server serving B (C reads the disk
	// itself). S3ServerCPUSeconds is versitygw's. Neither is in the
	// variant's own figures; both compete with it for the same CPUs.
	SourceCPUSeconds   float64 `json:"source_cpu_seconds"`
	S3ServerCPUSeconds float64 `json:"s3_server_cpu_seconds"`
	Objects            int     `json:"objects"` // recordings moved (checked in the bucket)
	Bytes              int64   `json:"bytes"`
	Verified           bool    `json:"verified"` // every object read back and its SHA-256 checked
	// OwnObjects counts the archiver's other objects (CDR packages, ledgers, probe).
	OwnObjects int `json:"own_objects"`
	// Requests counts the bucket's S3 requests by operation (versitygw's
	// access log, the harness's own left out).
	Requests map[string]int `json:"requests"`
	// RequestsTotal is every request on the bucket; RecordingRequests those
	// on the recordings' keys.
	RequestsTotal     int `json:"requests_total"`
	RecordingRequests int `json:"recording_requests"`

	RecordingKeys map[string]bool `json:"-"`
}

// CPUSeconds is the measured process's user and system time.
func (r *runResult) CPUSeconds() float64 { return r.UserSeconds + r.SysSeconds }

// MBps is the dataset's bytes (in 10^6) over the wall time.
func (r *runResult) MBps() float64 { return float64(r.Bytes) / 1e6 / r.WallSeconds }

// ObjectsPerSecond is the dataset's recordings over the wall time.
func (r *runResult) ObjectsPerSecond() float64 { return float64(r.Objects) / r.WallSeconds }

// CPUPerGB is CPUSeconds over the dataset's bytes in 10^9.
func (r *runResult) CPUPerGB() float64 { return r.CPUSeconds() / (float64(r.Bytes) / 1e9) }

// RSSMiB is the peak resident set in MiB.
func (r *runResult) RSSMiB() float64 { return float64(r.MaxRSSKiB) / 1024 }

// countRequests fills in the request counts from the access log's counts of
// the run's bucket (by operation, and by key).
func (r *runResult) countRequests(c *bucketRequests) {
	if c == nil {
		return
	}
	r.Requests = c.ops
	r.RequestsTotal, r.RecordingRequests = 0, 0
	for _, n := range c.ops {
		r.RequestsTotal += n
	}
	for k, n := range c.keys {
		if r.RecordingKeys[k] {
			r.RecordingRequests += n
		}
	}
}

// summary is the medians of one variant's runs.
type summary struct {
	Variant              string  `json:"variant"`
	Runs                 int     `json:"runs"`
	WallSeconds          float64 `json:"wall_seconds"`
	WallMin              float64 `json:"wall_seconds_min"`
	WallMax              float64 `json:"wall_seconds_max"`
	MBps                 float64 `json:"mb_per_second"`
	ObjectsPerSecond     float64 `json:"objects_per_second"`
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUPerGB             float64 `json:"cpu_seconds_per_gb"`
	RSSMiB               float64 `json:"peak_rss_mib"`
	RequestsPerObject    float64 `json:"s3_requests_per_object"`
	RecRequestsPerObject float64 `json:"s3_requests_per_object_on_recording_keys"`
	SourceCPUSeconds     float64 `json:"source_cpu_seconds"`
	S3ServerCPUSeconds   float64 `json:"s3_server_cpu_seconds"`
}

// target is one issue-10 target next to the figure it judges.
type target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// machine describes where the figures were taken.
type machine struct {
	NProc        int     `json:"nproc"`
	MemTotalKiB  int64   `json:"mem_total_kib"`
	CPUModel     string  `json:"cpu_model"`
	Kernel       string  `json:"kernel"`
	GoVersion    string  `json:"go_version"`
	Rclone       string  `json:"rclone,omitempty"`
	LoadStart    float64 `json:"loadavg1_start"`
	LoadEnd      float64 `json:"loadavg1_end"`
	VersitygwArg string  `json:"versitygw"`
}

// results is the JSON document of a run.
type results struct {
	Dataset     dataset            `json:"dataset"`
	Rounds      int                `json:"rounds"`
	Concurrency int                `json:"concurrency"`
	Started     time.Time          `json:"started"`
	Finished    time.Time          `json:"finished"`
	Machine     machine            `json:"machine"`
	Files       int                `json:"files"`
	Bytes       int64              `json:"bytes"`
	Runs        []runResult        `json:"runs"`
	Medians     []summary          `json:"medians"`
	Ratios      map[string]float64 `json:"ratios"`
	Targets     []target           `json:"targets"`
	Resume      []resumeResult     `json:"resume,omitempty"`
}

func newResults(o *options, d dataset) results {
	return results{
		Dataset: d, Rounds: o.rounds, Concurrency: o.concurrency, Started: time.Now().UTC(),
		Machine: machine{
			NProc: runtime.NumCPU(), MemTotalKiB: memTotalKiB(), CPUModel: cpuModel(), Kernel: kernel(),
			GoVersion: runtime.Version(), LoadStart: loadAvg(), VersitygwArg: "v1.8.0 posix --keep-alive",
		},
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// paired is the median over the rounds of f of a round's run of each
// variant (false: no round has both). This machine's speed drifts by up to
// 2× within minutes, more than between two runs of one round (alternated A
// B C): the ratio within each round drifts less than the ratio of the
// medians, which may take A and B from different rounds. The targets are
// judged on the medians (as the issue asks); the paired figure says how
// much of a miss is drift.
func paired(as, bs []runResult, f func(a, b *runResult) float64) (float64, bool) {
	var xs []float64
	for i := range as {
		for j := range bs {
			if as[i].Round == bs[j].Round {
				xs = append(xs, f(&as[i], &bs[j]))
			}
		}
	}
	return median(xs), len(xs) > 0
}

// finish computes the medians, the ratios and the targets.
func (res *results) finish(d dataset) {
	res.Finished = time.Now().UTC()
	res.Machine.LoadEnd = loadAvg()
	var order []string
	by := map[string][]runResult{}
	for _, r := range res.Runs {
		if by[r.Variant] == nil {
			order = append(order, r.Variant)
		}
		by[r.Variant] = append(by[r.Variant], r)
	}
	med := map[string]summary{}
	for _, v := range order {
		rs := by[v]
		col := func(f func(r *runResult) float64) float64 {
			xs := make([]float64, len(rs))
			for i := range rs {
				xs[i] = f(&rs[i])
			}
			return median(xs)
		}
		s := summary{
			Variant: v, Runs: len(rs),
			WallSeconds:      col(func(r *runResult) float64 { return r.WallSeconds }),
			MBps:             col((*runResult).MBps),
			ObjectsPerSecond: col((*runResult).ObjectsPerSecond),
			CPUSeconds:       col((*runResult).CPUSeconds),
			CPUPerGB:         col((*runResult).CPUPerGB),
			RSSMiB:           col((*runResult).RSSMiB),
			RequestsPerObject: col(func(r *runResult) float64 {
				return float64(r.RequestsTotal) / float64(r.Objects)
			}),
			RecRequestsPerObject: col(func(r *runResult) float64 {
				return float64(r.RecordingRequests) / float64(r.Objects)
			}),
			SourceCPUSeconds:   col(func(r *runResult) float64 { return r.SourceCPUSeconds }),
			S3ServerCPUSeconds: col(func(r *runResult) float64 { return r.S3ServerCPUSeconds }),
		}
		for i, r := range rs {
			if i == 0 || r.WallSeconds < s.WallMin {
				s.WallMin = r.WallSeconds
			}
			s.WallMax = max(s.WallMax, r.WallSeconds)
		}
		med[v] = s
		res.Medians = append(res.Medians, s)
	}
	res.Ratios = map[string]float64{}
	a, b, c := med[variantArchiver], med[variantLoop], med[variantRclone]
	if d.Resume {
		met, got := len(res.Resume) > 0, ""
		for _, r := range res.Resume {
			met = met && r.Met
			got += fmt.Sprintf("killed at window %d of %d: the next run's first window %d; ", r.KilledAt, r.Windows, r.EarliestAgain)
		}
		res.Targets = append(res.Targets, target{Name: "a killed backfill resumes", Want: fmt.Sprintf("no window before k − %d", resumeLookback),
			Got: strings.TrimSuffix(got, "; "), Met: met})
		a = med[variantResume]
	} else if d.StoreItems > 0 {
		e, f := med[variantEmpty], med[variantFull]
		res.Ratios["store_wall_full_over_empty"] = f.WallSeconds / e.WallSeconds
		res.Targets = append(res.Targets, target{
			Name: "store1m: pass over 1,000,000 done items vs empty state (wall)", Want: "≤ 1.1×",
			Got: fmt.Sprintf("%.2f×", f.WallSeconds/e.WallSeconds), Met: f.WallSeconds/e.WallSeconds <= 1.1,
		})
		a = f
	} else {
		res.Ratios["throughput_a_over_b"] = a.MBps / b.MBps
		res.Ratios["throughput_a_over_c"] = a.MBps / c.MBps
		res.Ratios["wall_a_over_b"] = a.WallSeconds / b.WallSeconds
		res.Ratios["wall_a_over_c"] = a.WallSeconds / c.WallSeconds
		res.Ratios["cpu_per_gb_a_over_b"] = a.CPUPerGB / b.CPUPerGB
		res.Ratios["cpu_per_gb_a_over_c"] = a.CPUPerGB / c.CPUPerGB
		pairs := map[string]string{"b": variantLoop}
		if a0, ok := med[variantBaseline]; ok {
			res.Ratios["throughput_a_over_a0"] = a.MBps / a0.MBps
			res.Ratios["cpu_per_gb_a_over_a0"] = a.CPUPerGB / a0.CPUPerGB
			res.Ratios["rss_a_over_a0"] = a.RSSMiB / a0.RSSMiB
			pairs["a0"] = variantBaseline
		}
		for other, v := range pairs {
			for name, f := range map[string]func(a, b *runResult) float64{
				"throughput_a_over_": func(a, b *runResult) float64 { return a.MBps() / b.MBps() },
				"cpu_per_gb_a_over_": func(a, b *runResult) float64 { return a.CPUPerGB() / b.CPUPerGB() },
			} {
				if r, ok := paired(by[variantArchiver], by[v], f); ok {
					res.Ratios[name+other+"_paired"] = r
				}
			}
		}
		switch d.Name {
		case "large", "100mb", "10mb":
			res.Targets = append(res.Targets, target{Name: "throughput vs bare loop, large files", Want: "≥ 0.9×",
				Got: fmt.Sprintf("%.2f×", a.MBps/b.MBps), Met: a.MBps/b.MBps >= 0.9})
		case "1mb":
			res.Targets = append(res.Targets, target{Name: "throughput vs bare loop, 1 MB files", Want: "≥ 0.7×",
				Got: fmt.Sprintf("%.2f×", a.MBps/b.MBps), Met: a.MBps/b.MBps >= 0.7})
		case "8kb":
			res.Targets = append(res.Targets, target{Name: "recordings per second, 8 KB", Want: "≥ 1,000/s",
				Got: fmt.Sprintf("%.0f/s", a.ObjectsPerSecond), Met: a.ObjectsPerSecond >= 1000})
		}
		res.Targets = append(res.Targets,
			target{Name: "throughput vs rclone", Want: "≥ 1.5×",
				Got: fmt.Sprintf("%.2f×", a.MBps/c.MBps), Met: a.MBps/c.MBps >= 1.5},
			target{Name: "CPU-seconds per GB vs bare loop", Want: "≤ 2×",
				Got: fmt.Sprintf("%.2f×", a.CPUPerGB/b.CPUPerGB), Met: a.CPUPerGB/b.CPUPerGB <= 2})
	}
	res.Targets = append(res.Targets, target{Name: "archiver peak RSS", Want: "≤ 64 MiB",
		Got: fmt.Sprintf("%.1f MiB", a.RSSMiB), Met: a.RSSMiB <= 64})
	// One request per new object: single-part uploads only (up to the
	// archiver's default multipart threshold).
	if d.MaxBytes <= int64(config.Default().Sink.S3.MultipartThreshold) && !d.Resume { // resume: two runs, one killed mid-put
		res.Targets = append(res.Targets, target{Name: "S3 requests per new recording (on its key)", Want: "1",
			Got: fmt.Sprintf("%.2f (all requests on the bucket: %.2f)", a.RecRequestsPerObject, a.RequestsPerObject),
			Met: a.RecRequestsPerObject <= 1.0001})
	}
}

// report prints the table and writes the JSON (and Markdown) files.
func (b *bench) report() error {
	res := &b.res
	md := markdown(res)
	fmt.Fprint(b.stdout, "\n"+md)
	bs, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(b.o.jsonOut, append(bs, '\n'), 0o644); err != nil {
		return err
	}
	b.logf("results: %s", b.o.jsonOut)
	if b.o.markdown != "" {
		if err := os.WriteFile(b.o.markdown, []byte(md), 0o644); err != nil {
			return err
		}
		b.logf("markdown: %s", b.o.markdown)
	}
	return nil
}

// markdown renders the medians, ratios and targets as Markdown tables.
func markdown(res *results) string {
	var sb strings.Builder
	m := res.Machine
	fmt.Fprintf(&sb, "Dataset `%s`: %s — %d recordings, %.1f MB; %d round(s), concurrency %d; %s.\n",
		res.Dataset.Name, res.Dataset.Description, res.Files, float64(res.Bytes)/1e6, res.Rounds, res.Concurrency,
		res.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&sb, "Machine: %d CPUs (%s), %.1f GiB RAM, %s, %s; load average %.2f at start, %.2f at end.\n\n",
		m.NProc, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.Kernel, m.GoVersion, m.LoadStart, m.LoadEnd)
	sb.WriteString("| variant | runs | wall s (min–max) | MB/s | objects/s | CPU s | CPU s/GB | peak RSS MiB | S3 requests/object | source CPU s | versitygw CPU s |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, s := range res.Medians {
		fmt.Fprintf(&sb, "| %s | %d | %.2f (%.2f–%.2f) | %.1f | %.0f | %.2f | %.2f | %.1f | %.2f (%.2f on recording keys) | %.2f | %.2f |\n",
			s.Variant, s.Runs, s.WallSeconds, s.WallMin, s.WallMax, s.MBps, s.ObjectsPerSecond, s.CPUSeconds, s.CPUPerGB, s.RSSMiB,
			s.RequestsPerObject, s.RecRequestsPerObject, s.SourceCPUSeconds, s.S3ServerCPUSeconds)
	}
	if len(res.Ratios) > 0 {
		keys := make([]string, 0, len(res.Ratios))
		for k := range res.Ratios {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		sb.WriteString("\nRatios (medians; _paired: the median of the ratios within each round): ")
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "%s %.2f", k, res.Ratios[k])
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\n| issue-10 target | want | got | met |\n|---|---|---|---|\n")
	for _, t := range res.Targets {
		met := "not met"
		if t.Met {
			met = "met"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, met)
	}
	return sb.String()
}

func memTotalKiB() int64 {
	var n int64
	readFields("/proc/meminfo", func(f []string) bool {
		if len(f) >= 2 && f[0] == "MemTotal:" {
			fmt.Sscan(f[1], &n)
			return false
		}
		return true
	})
	return n
}

func cpuModel() string {
	model := ""
	readLinesOf("/proc/cpuinfo", func(l string) bool {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			return false
		}
		return true
	})
	return model
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(b))
}

func loadAvg() float64 {
	var l float64
	b, err := os.ReadFile("/proc/loadavg")
	if err == nil {
		fmt.Sscan(string(b), &l)
	}
	return l
}

func readLinesOf(path string, fn func(string) bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() && fn(sc.Text()) {
	}
}

func readFields(path string, fn func([]string) bool) {
	readLinesOf(path, func(l string) bool { return fn(strings.Fields(l)) })
}
