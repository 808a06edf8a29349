// Package acceptance holds the end-to-end acceptance tests of the archival
// pipeline: the real archiver binary, run as a separate process, against the
// CEC simulator and a real S3 server (versitygw), checked against the
// simulator's ground-truth manifest.
package acceptance

import (
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// A clean once over two days of 500 calls archives every recording once.
func TestOnce_Clean(t *testing.T) {
	e := newEnv(t, envOptions{Calls: 500})
	code, p := e.once()
	if code != 0 {
		t.Fatalf("once: exit %d, want 0\n%s", code, p.tail())
	}
	e.verify()

	// A second run re-scans both days (lookback), finds the same CDR and
	// stores nothing new: no recording, no package, no ledger.
	before := e.objects()
	if code, p := e.once(); code != 0 {
		t.Fatalf("second once: exit %d\n%s", code, p.tail())
	}
	for k := range e.objects() {
		if before[k] == nil {
			t.Errorf("second once stored %s", k)
		}
	}
	e.verify()
}

// The same with 500s, resets, truncations and flow control at 5% each and
// expiring OIFDE tokens: the same outcome, possibly after more runs.
func TestOnce_Faults(t *testing.T) {
	e := newEnv(t, envOptions{Calls: 500})
	faults := []cecsim.Fault{
		{Kind: cecsim.FaultHTTP500, Rate: 0.05},
		{Kind: cecsim.FaultReset, Rate: 0.05},
		{Kind: cecsim.FaultTruncate, Rate: 0.05},
		{Kind: cecsim.FaultFlowControl, Rate: 0.05},
		{Kind: cecsim.FaultTokenExpiry, AfterUses: 25},
	}
	e.sim.SetFaults(faults...)
	runs := e.onceUntilClean(4)
	st := e.sim.Stats()
	t.Logf("clean after %d run(s); faults injected: %v", runs, st.Faults)
	for _, k := range []cecsim.FaultKind{cecsim.FaultHTTP500, cecsim.FaultReset, cecsim.FaultTruncate, cecsim.FaultFlowControl, cecsim.FaultTokenExpiry} {
		if st.Faults[k] == 0 {
			t.Errorf("fault %s was never injected: the test proves nothing about it", k)
		}
	}
	e.verify()
}

// The archiver is SIGKILLed at random instants of its runs and restarted;
// in the end nothing is missing, nothing is stored twice, and no item is done
// without its object.
func TestOnce_CrashRestart(t *testing.T) {
	e := newEnv(t, envOptions{Calls: 500, MaxRecording: 128 << 10})
	// Every body trickles in 8 KiB chunks 40 ms apart (a 128 KiB recording
	// takes 0.6 s), so the work spans the kills and most land mid-transfer.
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultSlow, Rate: 1, DelayMS: 40})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	jobsets := [][]string{nil, {"--job", "recordings"}, {"--job", "transfer,ivr"}}
	kills, midTransfer := 0, 0
	// Kill instants are uniform over the length of a run, which shrinks as
	// the work gets done: a run that ends before its kill sets the range for
	// its set of jobs.
	maxDelay := map[int]time.Duration{}
	for cycle := 0; kills < 22 && cycle < 80; cycle++ {
		p := e.start(append([]string{"once"}, jobsets[cycle%len(jobsets)]...)...)
		began := time.Now()
		set := cycle % len(jobsets)
		if maxDelay[set] == 0 {
			maxDelay[set] = 1500 * time.Millisecond
		}
		delay := 30*time.Millisecond + time.Duration(rng.Int64N(int64(maxDelay[set])))
		select {
		case <-p.done:
		case <-time.After(delay):
		}
		if !p.running() {
			code := p.wait(t, time.Second)
			if code != 0 && code != 1 {
				t.Fatalf("cycle %d: exit %d\n%s", cycle, code, p.tail())
			}
			maxDelay[set] = max(100*time.Millisecond, time.Since(began)*9/10)
			t.Logf("cycle %d (%v): ended by itself with exit %d after %v", cycle, jobsets[cycle%len(jobsets)], code, time.Since(began).Round(time.Millisecond))
			if code == 1 {
				_, stderr := p.output()
				t.Logf("stderr: %.2000s", stderr)
			}
			continue
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 10*time.Second); code != -int(syscall.SIGKILL) {
			t.Logf("cycle %d: process ended with %d before the kill landed", cycle, code)
			continue
		}
		kills++
		inflight := 0
		if _, err := os.Stat(e.state); err == nil {
			inflight = len(e.itemsIn(checkpoint.StateInProgress))
		}
		if inflight > 0 {
			midTransfer++
		}
		t.Logf("cycle %d (%v): killed after %v with %d items in progress", cycle, jobsets[set], delay.Round(time.Millisecond), inflight)
	}
	if kills < 20 {
		t.Fatalf("only %d kills landed during runs, want ≥ 20", kills)
	}
	if midTransfer == 0 {
		t.Errorf("no kill landed while items were in progress: the test did not exercise a crash mid-transfer")
	}
	e.sim.ClearFaults()
	runs := e.onceUntilClean(3)
	t.Logf("%d kills (%d with items in progress); clean after %d more run(s)", kills, midTransfer, runs)
	e.verify()
}

// A recording that appears after its window was first processed (late in the
// CDR), and one listed before its file can be downloaded, are archived by a
// later run.
func TestOnce_LateRecordings(t *testing.T) {
	e := newEnv(t, envOptions{Calls: 120, Late: 3, Unavailable: 2})
	code, p := e.once()
	if code != 1 {
		t.Fatalf("first once: exit %d, want 1 (unavailable files fail)\n%s", code, p.tail())
	}
	_, stderr := p.output()
	failed := e.itemsIn(checkpoint.StateFailed)
	if len(failed) != 2 {
		t.Errorf("after the first run %d items failed, want the 2 unavailable files: %+v", len(failed), failed)
	}
	for _, it := range failed {
		if !strings.Contains(stderr, it.UpstreamID) {
			t.Errorf("failed item %s is not listed on stderr", it.UpstreamID)
		}
	}
	if n := e.sim.ReleaseLate(); n != 3 {
		t.Fatalf("released %d late recordings, want 3", n)
	}
	if n := e.sim.ReleaseUnavailable(); n != 2 {
		t.Fatalf("released %d unavailable files, want 2", n)
	}
	time.Sleep(1500 * time.Millisecond) // past retry_backoff
	code, p = e.once()
	if code != 0 {
		t.Fatalf("second once: exit %d, want 0\n%s", code, p.tail())
	}
	e.verify()
}

// A second once on the same state refuses cleanly while the first runs, and
// the first is not disturbed.
func TestOnce_SecondProcessRefused(t *testing.T) {
	e := newEnv(t, envOptions{Calls: 60})
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultSlow, Rate: 0.3, DelayMS: 50})
	first := e.start("once")
	if !waitFor(30*time.Second, func() bool { return fileContains(first.stderr.Name(), "package") || !first.running() }) || !first.running() {
		t.Fatalf("first once is not running\n%s", first.tail())
	}
	code, second := e.once()
	_, stderr := second.output()
	if code != 1 {
		t.Errorf("second once: exit %d, want 1\n%s", code, second.tail())
	}
	if !strings.Contains(stderr, "another archiver") {
		t.Errorf("second once does not say why it refused:\n%s", stderr)
	}
	if !first.running() {
		t.Errorf("the first run ended while the second was refused")
	}
	if code := first.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("first once: exit %d\n%s", code, first.tail())
	}
	e.verify()
}

// SIGTERM mid-run: the archiver exits within shutdown_timeout + 5 s and leaves
// a consistent checkpoint that the next run completes.
func TestOnce_SIGTERM(t *testing.T) {
	const shutdown = 3 * time.Second
	e := newEnv(t, envOptions{Calls: 200, ShutdownTimeout: shutdown})
	// Downloads trickle: 8 KiB every 400 ms, so transfers are in flight when the signal lands.
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultSlow, Path: cecwire.PathDownloadRecordFile, DelayMS: 400})
	p := e.start("once")
	if !waitFor(60*time.Second, func() bool {
		return e.sim.Stats().Requests[cecwire.PathDownloadRecordFile] >= 8 || !p.running()
	}) || !p.running() {
		t.Fatalf("no recording downloads under way\n%s", p.tail())
	}
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, shutdown+30*time.Second)
	took := time.Since(sent)
	t.Logf("exit %d %v after SIGTERM", code, took.Round(time.Millisecond))
	if took > shutdown+5*time.Second {
		t.Errorf("exit took %v after SIGTERM, want ≤ shutdown_timeout %v + 5s", took, shutdown)
	}
	if code < 0 {
		t.Errorf("archiver died of signal %d instead of exiting", -code)
	}
	if inflight := e.itemsIn(checkpoint.StateInProgress); len(inflight) != 0 {
		t.Errorf("%d items still in_progress after a graceful shutdown", len(inflight))
	}
	e.sim.ClearFaults()
	e.onceUntilClean(2)
	e.verify()
}
