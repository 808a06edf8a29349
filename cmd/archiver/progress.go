package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// progressHelp is the paragraph of once's and backfill's -h on progress.
const progressHelp = "On a terminal (stderr) a status line, updated in place, shows the windows\n" +
	"done of the plan, the items done, pending and failed, the bytes stored, the\n" +
	"rates and the ETA of the current phase; log lines print above it. Elsewhere a\n" +
	"\"progress\" log line with the same fields is logged every --progress-interval\n" +
	"(log.progress_interval) and once at the end. --progress=false turns both off;\n" +
	"--quiet too, and logs only warnings and errors."

// progressFlags are the flags of once and backfill on progress.
type progressFlags struct {
	show     bool
	quiet    bool
	interval time.Duration // 0: log.progress_interval
}

func addProgressFlags(fs *flag.FlagSet) *progressFlags {
	pf := &progressFlags{}
	fs.BoolVar(&pf.show, "progress", true, "show progress: a status line on a terminal, else a \"progress\" log line every --progress-interval")
	fs.BoolVar(&pf.quiet, "quiet", false, "no progress, and no log line below warn (the summary and the problems are still printed)")
	fs.DurationVar(&pf.interval, "progress-interval", 0, "`interval` of the progress log lines when stderr is not a terminal (default log.progress_interval)")
	return pf
}

// check reports a flag value that cannot be used.
func (pf *progressFlags) check() error {
	if pf.interval < 0 {
		return fmt.Errorf("--progress-interval %s: must be positive", pf.interval)
	}
	return nil
}

// isTerminal reports whether w is a terminal (a character device such as
// a tty or pty).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// liveOut is stderr while a status line may be drawn on it: while one is,
// what is written goes through the line's container, which prints it above
// the line, so that log lines never tear it.
type liveOut struct {
	mu    sync.Mutex
	w     io.Writer
	above io.Writer // the status line's container while it is drawn
}

func (o *liveOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.above != nil {
		// A container that has stopped (it could not draw) refuses what
		// is written: it goes to stderr as it is, never lost.
		if n, err := o.above.Write(p); err == nil {
			return n, nil
		}
	}
	return o.w.Write(p)
}

func (o *liveOut) setAbove(w io.Writer) {
	o.mu.Lock()
	o.above = w
	o.mu.Unlock()
}

// showProgress shows the progress of prog while a run goes on, as pf and
// the terminal say: a status line drawn on out when tty, else a "progress"
// log line every interval and a final one. stop ends it (the final state
// shown) before the summary is printed.
func showProgress(cmd string, pf *progressFlags, interval time.Duration, log *zap.Logger, prog *jobs.Progress, out *liveOut, tty bool) (stop func()) {
	if pf.quiet || !pf.show {
		return func() {}
	}
	if pf.interval > 0 {
		interval = pf.interval
	}
	view := newProgressView(interval)
	if tty {
		return statusLine(cmd, view, prog, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		prog.Watch(ctx, interval, func(s jobs.ProgressSnapshot) {
			log.Info("progress", view.fields(s, time.Now(), ctx.Err() != nil)...)
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// statusRefresh is how often the status line is drawn again.
const statusRefresh = 200 * time.Millisecond

// statusLine draws the status line of prog on out's terminal (mpb: a bar
// with no bar, the line its decorator) until stop, which draws it a last
// time and leaves it on the screen.
func statusLine(cmd string, view *progressView, prog *jobs.Progress, out *liveOut) (stop func()) {
	p := mpb.New(mpb.WithOutput(out.w), mpb.WithRefreshRate(statusRefresh))
	bar := p.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(st decor.Statistics) string {
		return fit(view.line(cmd, prog.Snapshot(), time.Now()), st.AvailableWidth)
	})))
	out.setAbove(p)
	return func() {
		// Nothing more goes through p: Write after Wait would fail.
		out.setAbove(nil)
		bar.SetTotal(-1, true)
		p.Wait()
	}
}

// fit cuts s to width-1 columns (the line is ASCII): a line as wide as the
// terminal wraps on some, and the next redraw would then leave a copy.
func fit(s string, width int) string {
	if width > 1 && len(s) >= width {
		return s[:width-1]
	}
	return s
}

// progressView turns snapshots into what is shown: rates over the last
// window (at least rateWindow, at least the log interval) and the ETA of
// the current phase.
type progressView struct {
	mu      sync.Mutex
	window  time.Duration
	samples []progressSample // oldest first; the first may be older than window (the anchor)
}

type progressSample struct {
	at    time.Time
	items int // done and failed
	bytes int64
}

// rateWindow is the shortest span rates are measured over.
const rateWindow = 10 * time.Second

func newProgressView(interval time.Duration) *progressView {
	return &progressView{window: max(rateWindow, interval)}
}

// rates records s at now and returns the items and bytes per second: over
// the last window while the pass runs, over the whole pass once it is done.
func (v *progressView) rates(s jobs.ProgressSnapshot, now time.Time) (items, bytes float64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	cur := progressSample{at: now, items: s.ItemsDone + s.ItemsFailed, bytes: s.Bytes}
	first := progressSample{at: s.Started}
	if s.Phase != jobs.PhaseDone {
		if len(v.samples) == 0 && !s.Started.IsZero() {
			v.samples = append(v.samples, first)
		}
		v.samples = append(v.samples, cur)
		// Keep one sample older than the window: the rate spans it all.
		for len(v.samples) > 2 && now.Sub(v.samples[1].at) >= v.window {
			v.samples = v.samples[1:]
		}
		first = v.samples[0]
	}
	dt := now.Sub(first.at).Seconds()
	if first.at.IsZero() || dt <= 0 {
		return 0, 0
	}
	return float64(cur.items-first.items) / dt, float64(cur.bytes-first.bytes) / dt
}

// eta is how long the current phase should still take: the cdr windows
// left at the phase's pace so far, or the items pending at itemRate. ok is
// false when that cannot be said (nothing done yet, nothing left, or after
// the items: the ledgers).
func eta(s jobs.ProgressSnapshot, now time.Time, itemRate float64) (time.Duration, bool) {
	switch s.Phase {
	case jobs.PhaseCDR:
		left := s.WindowsTotal - s.WindowsDone
		if s.WindowsDone == 0 || left <= 0 {
			return 0, false
		}
		per := now.Sub(s.PhaseStarted).Seconds() / float64(s.WindowsDone)
		return wholeSeconds(per * float64(left)), true
	case jobs.PhaseItems:
		if s.ItemsPending == 0 || itemRate <= 0 {
			return 0, false
		}
		return wholeSeconds(float64(s.ItemsPending) / itemRate), true
	}
	return 0, false
}

// wholeSeconds is sec rounded up to a whole second: something left takes
// at least 1s.
func wholeSeconds(sec float64) time.Duration {
	return time.Duration(math.Ceil(sec)) * time.Second
}

// line is the status line of s at now:
//
//	backfill items: windows 2/2, items 12 done, 30 pending, 0 failed, 1.2 MB, 0.40 MB/s, 5.1 items/s, ETA 6s
func (v *progressView) line(cmd string, s jobs.ProgressSnapshot, now time.Time) string {
	items, bytes := v.rates(s, now)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: windows %d/%d, items %d done, %d pending, %d failed, %s, %.2f MB/s, %.1f items/s",
		cmd, orDash(s.Phase), s.WindowsDone, s.WindowsTotal, s.ItemsDone, s.ItemsPending, s.ItemsFailed,
		formatBytes(s.Bytes), bytes/1e6, items)
	if d, ok := eta(s, now, items); ok {
		fmt.Fprintf(&b, ", ETA %s", d)
	}
	return b.String()
}

// fields are the fields of the "progress" log line of s at now; final
// marks the last one of the run.
func (v *progressView) fields(s jobs.ProgressSnapshot, now time.Time, final bool) []zap.Field {
	items, bytes := v.rates(s, now)
	f := []zap.Field{
		zap.String("phase", s.Phase),
		zap.Int("windows_done", s.WindowsDone), zap.Int("windows_total", s.WindowsTotal),
		zap.Int("items_done", s.ItemsDone), zap.Int("items_pending", s.ItemsPending), zap.Int("items_failed", s.ItemsFailed),
		zap.Int64("bytes", s.Bytes),
		zap.Float64("mb_per_s", round(bytes/1e6, 2)), zap.Float64("items_per_s", round(items, 1)),
	}
	if !s.Started.IsZero() {
		f = append(f, zap.Duration("elapsed", now.Sub(s.Started).Round(time.Millisecond)))
	}
	if d, ok := eta(s, now, items); ok {
		f = append(f, zap.Duration("eta", d))
	}
	if final {
		f = append(f, zap.Bool("final", true))
	}
	return f
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// formatBytes writes n in decimal units: 950 B, 1.2 kB, 45.2 MB, 3.0 GB.
func formatBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	x := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		x /= 1000
		if x < 999.95 || u == "TB" {
			return fmt.Sprintf("%.1f %s", x, u)
		}
	}
	return "" // not reached
}
