package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/zap/zapcore"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// newSlowEnv is a test environment whose recordings (24-40 KiB) arrive in
// 8 KiB chunks 150 ms apart: a backfill of its two days takes seconds.
// Windows of 6h make eight of them; the logs are at level info in the
// format log.format = "auto" picks.
func newSlowEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnvSim(t, func(o *cecsim.Options) {
		o.MinRecordingBytes, o.MaxRecordingBytes = 24<<10, 40<<10
		o.Faults = []cecsim.Fault{{Kind: cecsim.FaultSlow, DelayMS: 150}}
	}, "")
	e.env["ARCHIVER_JOBS_CDR_WINDOW"] = "6h"
	e.env["ARCHIVER_LOG_FORMAT"] = "auto"
	e.env["ARCHIVER_LOG_LEVEL"] = "info"
	return e
}

// backfillArgs are the arguments of a backfill of e's two days.
func (e *testEnv) backfillArgs(extra ...string) []string {
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format(dateLayout) }
	return append([]string{"backfill", "--config", e.config, "--from", day(-2), "--to", day(-1)}, extra...)
}

// controlBytes lists the bytes below 0x20 other than \n (ESC among them)
// that s holds, with the first one's position.
func controlBytes(s string) (n, first int) {
	first = -1
	for i := range len(s) {
		if c := s[i]; c < 0x20 && c != '\n' || c == 0x7f {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	return n, first
}

// progressLines decodes every line of a JSON log, failing on one that is
// not JSON, and returns those whose msg is "progress".
func progressLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("stderr line %d is not JSON: %v\n%s", i+1, err, l)
			continue
		}
		if m["msg"] == "progress" {
			out = append(out, m)
		}
	}
	return out
}

// TestCmdBackfill_ProgressLog: without a terminal, a backfill logs a JSON
// "progress" line every --progress-interval, with counters that move, and
// a final one; nothing else but JSON on stderr and no control character.
func TestCmdBackfill_ProgressLog(t *testing.T) {
	e := newSlowEnv(t)
	start := time.Now()
	code, out, errOut := e.run(e.backfillArgs("--progress-interval", "200ms")...)
	took := time.Since(start)
	if code != exitOK {
		t.Fatalf("backfill = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for name, s := range map[string]string{"stdout": out, "stderr": errOut} {
		if n, i := controlBytes(s); n > 0 {
			t.Errorf("%s holds %d control bytes, the first %q at %d", name, n, s[i], i)
		}
	}
	lines := progressLines(t, errOut)
	if len(lines) < 3 {
		t.Fatalf("%d progress lines in a run of %s with --progress-interval 200ms, want at least 3 (two and the final)\n%s",
			len(lines), took, errOut)
	}
	num := func(m map[string]any, k string) float64 {
		v, ok := m[k].(float64)
		if !ok {
			t.Fatalf("progress line without a number %s: %v", k, m)
		}
		return v
	}
	moved := false
	for i, m := range lines {
		if m["cmd"] != "backfill" || m["level"] != "info" {
			t.Errorf("progress line %d: %v", i, m)
		}
		if num(m, "windows_total") != 8 {
			t.Errorf("progress line %d: windows_total %v, want 8", i, m["windows_total"])
		}
		if i == 0 {
			continue
		}
		prev := lines[i-1]
		for _, k := range []string{"windows_done", "items_done", "bytes"} {
			if num(m, k) < num(prev, k) {
				t.Errorf("progress line %d: %s went back from %v to %v", i, k, prev[k], m[k])
			}
		}
		if num(m, "items_done") > num(prev, "items_done") && i < len(lines)-1 {
			moved = true
		}
	}
	if !moved {
		t.Errorf("items_done never increased between two periodic progress lines:\n%s", errOut)
	}
	last := lines[len(lines)-1]
	if last["final"] != true || last["phase"] != jobs.PhaseDone || num(last, "windows_done") != 8 || num(last, "items_pending") != 0 {
		t.Errorf("final progress line: %v", last)
	}
	for _, m := range lines[:len(lines)-1] {
		if _, ok := m["final"]; ok {
			t.Errorf("a periodic progress line says final: %v", m)
		}
	}
}

// TestCmdBackfill_Quiet: --quiet logs no progress and nothing below warn;
// --progress=false logs no progress but the rest as configured.
func TestCmdBackfill_Quiet(t *testing.T) {
	for _, tt := range []struct {
		flag     string
		infoLogs bool
	}{
		{"--quiet", false},
		{"--progress=false", true},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			e := newSlowEnv(t)
			code, out, errOut := e.run(e.backfillArgs(tt.flag, "--progress-interval", "100ms")...)
			if code != exitOK || !strings.HasPrefix(out, "backfill: 8 windows, 8 packages,") {
				t.Fatalf("backfill %s = %d\nstdout:\n%s\nstderr:\n%s", tt.flag, code, out, errOut)
			}
			if lines := progressLines(t, errOut); len(lines) > 0 {
				t.Errorf("%d progress lines with %s:\n%s", len(lines), tt.flag, errOut)
			}
			if got := strings.Contains(errOut, `"level":"info"`); got != tt.infoLogs {
				t.Errorf("info log lines with %s: %v, want %v\n%s", tt.flag, got, tt.infoLogs, errOut)
			}
		})
	}
	t.Run("bad interval", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, _, errOut := e.run(e.backfillArgs("--progress-interval", "-1s")...)
		if code != exitConfig || !strings.Contains(errOut, "--progress-interval") {
			t.Errorf("backfill --progress-interval -1s = %d, want 2; stderr:\n%s", code, errOut)
		}
	})
}

// buildArchiver builds the archiver binary into a test directory.
func buildArchiver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "archiver")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var (
	ansiSeq    = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	statusItem = regexp.MustCompile(`backfill (\w+): windows (\d+)/(\d+), items (\d+) done, (\d+) pending, (\d+) failed`)
	consoleLog = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT[0-9:.]+[-+Z0-9:]*\tINFO\t`)
)

// TestCmdBackfill_ProgressTTY runs the archiver binary on a pseudo-terminal:
// it draws one status line that moves in place (the cursor goes back up
// over it), and logs in the console format above it.
func TestCmdBackfill_ProgressTTY(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 220}); err != nil {
		t.Fatal(err)
	}
	bin := buildArchiver(t)
	e := newSlowEnv(t)
	cmd := exec.Command(bin, e.backfillArgs()...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir, "TZ=UTC"}
	for k, v := range e.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var screen bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(&screen, ptmx)
		read <- err
	}()
	waitErr := cmd.Wait()
	select {
	case err := <-read:
		// The terminal reads EIO once the process and its copies of it are gone.
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Errorf("read the terminal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close after the archiver exited")
	}
	raw := screen.String()
	if waitErr != nil {
		t.Fatalf("backfill: %v\n%q", waitErr, raw)
	}
	if !strings.Contains(raw, "\x1b[") {
		t.Errorf("no escape sequence: the status line is not redrawn in place\n%q", raw)
	}
	plain := ansiSeq.ReplaceAllString(strings.ReplaceAll(raw, "\r", ""), "")

	type state struct{ phase, windows, done, pending, failed string }
	var states []state
	for _, m := range statusItem.FindAllStringSubmatch(plain, -1) {
		s := state{m[1], m[2], m[4], m[5], m[6]}
		if m[3] != "8" {
			t.Errorf("status line with %s windows in all, want 8: %q", m[3], m[0])
		}
		if len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
	}
	doneRose := false
	for i := 1; i < len(states); i++ {
		a, _ := strconv.Atoi(states[i-1].done)
		b, _ := strconv.Atoi(states[i].done)
		if b < a {
			t.Errorf("items done went back: %+v after %+v", states[i], states[i-1])
		}
		if b > a && a > 0 {
			doneRose = true
		}
	}
	if len(states) < 2 || !doneRose {
		t.Errorf("the status line did not move (%d states, items done rising between two of them with some done: %v): %+v\n%s",
			len(states), doneRose, states, plain)
	}
	if last := states[len(states)-1]; last.phase != jobs.PhaseDone || last.windows != "8" || last.pending != "0" {
		t.Errorf("the last status line: %+v, want the pass done with 8 windows and nothing pending", last)
	}
	if !consoleLog.MatchString(plain) || strings.Contains(plain, `"level":`) {
		t.Errorf("the logs are not in the console format on a terminal:\n%s", plain)
	}
	if !strings.Contains(plain, "backfill: 8 windows, 8 packages,") {
		t.Errorf("no summary:\n%s", plain)
	}
}

func TestETA(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		s    jobs.ProgressSnapshot
		now  time.Time
		rate float64
		want time.Duration
		ok   bool
	}{
		{"cdr: 2 of 8 windows in 10s", jobs.ProgressSnapshot{Phase: jobs.PhaseCDR, PhaseStarted: t0, WindowsTotal: 8, WindowsDone: 2}, t0.Add(10 * time.Second), 0, 30 * time.Second, true},
		{"cdr: no window done yet", jobs.ProgressSnapshot{Phase: jobs.PhaseCDR, PhaseStarted: t0, WindowsTotal: 8}, t0.Add(time.Minute), 5, 0, false},
		{"cdr: every window done", jobs.ProgressSnapshot{Phase: jobs.PhaseCDR, PhaseStarted: t0, WindowsTotal: 8, WindowsDone: 8}, t0.Add(time.Minute), 5, 0, false},
		{"items: 100 pending at 4/s", jobs.ProgressSnapshot{Phase: jobs.PhaseItems, ItemsPending: 100}, t0, 4, 25 * time.Second, true},
		{"items: rounded up", jobs.ProgressSnapshot{Phase: jobs.PhaseItems, ItemsPending: 1}, t0, 16, time.Second, true},
		{"items: no rate yet", jobs.ProgressSnapshot{Phase: jobs.PhaseItems, ItemsPending: 100}, t0, 0, 0, false},
		{"items: nothing pending", jobs.ProgressSnapshot{Phase: jobs.PhaseItems}, t0, 4, 0, false},
		{"ledgers", jobs.ProgressSnapshot{Phase: jobs.PhaseLedgers, ItemsPending: 3}, t0, 4, 0, false},
		{"done", jobs.ProgressSnapshot{Phase: jobs.PhaseDone, ItemsPending: 3}, t0, 4, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := eta(tt.s, tt.now, tt.rate)
			if got != tt.want || ok != tt.ok {
				t.Errorf("eta = %s, %v; want %s, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 1234: "1.2 kB", 45_200_000: "45.2 MB",
		999_960_000: "1.0 GB", 3_000_000_000: "3.0 GB", 5_000_000_000_000_000: "5000.0 TB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFit(t *testing.T) {
	for _, tt := range []struct {
		s     string
		width int
		want  string
	}{
		{"abcdef", 80, "abcdef"},
		{"abcdef", 6, "abcde"},
		{"abcdef", 4, "abc"},
		{"abcdef", 0, "abcdef"}, // width unknown
	} {
		if got := fit(tt.s, tt.width); got != tt.want {
			t.Errorf("fit(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
}

// TestProgressView: the rates span the last window while the pass runs
// and the whole pass at its end; the line and the log fields say the same.
func TestProgressView(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	v := newProgressView(time.Second) // window: rateWindow, 10s
	s := jobs.ProgressSnapshot{Phase: jobs.PhaseItems, Started: t0, PhaseStarted: t0, WindowsTotal: 8, WindowsDone: 8}
	at := func(sec int, done, failed, pending int, bytes int64) (jobs.ProgressSnapshot, time.Time) {
		s.ItemsDone, s.ItemsFailed, s.ItemsPending, s.Bytes = done, failed, pending, bytes
		return s, t0.Add(time.Duration(sec) * time.Second)
	}

	// 10 items and 5 MB in the first 5s.
	if items, bytes := v.rates(at(5, 9, 1, 90, 5_000_000)); items != 2 || bytes != 1e6 {
		t.Errorf("rates after 5s = %v items/s, %v B/s; want 2, 1e6", items, bytes)
	}
	// Then 40 more in 5s: over the whole 10s window.
	if items, _ := v.rates(at(10, 50, 0, 50, 10_000_000)); items != 5 {
		t.Errorf("rate after 10s = %v, want 5", items)
	}
	// 20s: the window is 10s-20s (the sample at 10s is its anchor).
	if items, _ := v.rates(at(20, 70, 0, 30, 12_000_000)); items != 2 {
		t.Errorf("rate after 20s = %v, want 2 (over the last 10s)", items)
	}
	snap, now := at(22, 74, 0, 26, 12_300_000)
	got := v.line("backfill", snap, now)
	want := "backfill items: windows 8/8, items 74 done, 26 pending, 0 failed, 12.3 MB, 0.19 MB/s, 2.0 items/s, ETA 13s"
	if got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}

	// Done: the averages of the pass, no ETA.
	s.Phase = jobs.PhaseDone
	done, now := at(40, 100, 0, 0, 20_000_000)
	if got, want := v.line("once", done, now), "once done: windows 8/8, items 100 done, 0 pending, 0 failed, 20.0 MB, 0.50 MB/s, 2.5 items/s"; got != want {
		t.Errorf("final line:\n got %q\nwant %q", got, want)
	}
	f := map[string]any{}
	enc := zapcore.NewMapObjectEncoder()
	for _, fl := range v.fields(done, now, true) {
		fl.AddTo(enc)
	}
	for k, v := range enc.Fields {
		f[k] = v
	}
	wantFields := map[string]any{
		"phase": "done", "windows_done": int64(8), "windows_total": int64(8), "items_done": int64(100), "items_pending": int64(0),
		"items_failed": int64(0), "bytes": int64(20_000_000), "mb_per_s": 0.5, "items_per_s": 2.5, "elapsed": 40 * time.Second, "final": true,
	}
	if len(f) != len(wantFields) {
		t.Errorf("fields %v, want %v", f, wantFields)
	}
	for k, w := range wantFields {
		if f[k] != w {
			t.Errorf("field %s = %v (%T), want %v", k, f[k], f[k], w)
		}
	}
}

// TestBuildLogger: log.format auto is console on a terminal and JSON
// elsewhere; quiet drops what is below warn.
func TestBuildLogger(t *testing.T) {
	for _, tt := range []struct {
		name, format string
		tty, quiet   bool
		json, info   bool
	}{
		{"auto on a terminal", "auto", true, false, false, true},
		{"auto elsewhere", "auto", false, false, true, true},
		{"json on a terminal", "json", true, false, true, true},
		{"console elsewhere", "console", false, false, false, true},
		{"quiet", "auto", false, true, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			log, err := buildLogger(config.Log{Level: "debug", Format: tt.format}, &b, tt.tty, tt.quiet)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("an info line")
			log.Warn("a warning")
			out := b.String()
			if got := strings.HasPrefix(out, "{"); got != tt.json {
				t.Errorf("JSON %v, want %v:\n%s", got, tt.json, out)
			}
			if got := strings.Contains(out, "an info line"); got != tt.info {
				t.Errorf("info logged %v, want %v:\n%s", got, tt.info, out)
			}
			if !strings.Contains(out, "a warning") {
				t.Errorf("no warning:\n%s", out)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("stopped") }

// TestLiveOut: writes go above the status line while it is drawn, to
// stderr otherwise, and to stderr when the line's container refuses them.
func TestLiveOut(t *testing.T) {
	var stderr, above bytes.Buffer
	o := &liveOut{w: &stderr}
	io.WriteString(o, "a\n")
	o.setAbove(&above)
	io.WriteString(o, "b\n")
	o.setAbove(failWriter{})
	io.WriteString(o, "c\n")
	o.setAbove(nil)
	io.WriteString(o, "d\n")
	if stderr.String() != "a\nc\nd\n" || above.String() != "b\n" {
		t.Errorf("stderr %q, above the line %q; want %q, %q", stderr.String(), above.String(), "a\nc\nd\n", "b\n")
	}
}
