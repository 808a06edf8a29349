package main

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// TestCmdOnce_PushesForcedShutdown: the archiver binary runs once against
// a real Pushgateway and gets two SIGTERMs while its recordings download;
// its in-flight work cannot end within the grace of a forced stop (the test
// holds the state's write lock, as a stalled disk would), so once exits
// without waiting for it, and still pushes first: the Pushgateway holds
// archiver_shutdowns_total{result="forced"} while the work is still stuck,
// with archiver_build_info carrying the commit and date the binary was
// stamped with, as archiver version prints them. Afterwards status shows the runs it cut short as interrupted,
// none as running.
func TestCmdOnce_PushesForcedShutdown(t *testing.T) {
	gw := startServer(t, "prometheus-pushgateway", "scripts/gates.sh install-pushgateway", "/-/ready",
		"--web.listen-address=ADDR", "--persistence.file=")
	// Stamped as a release build is (scripts/image.sh), so that the build
	// info has a commit and a date to carry.
	const wantCommit, wantDate = "0123456789abcdef0123456789abcdef01234567", "2026-03-01T10:00:00Z"
	bin := filepath.Join(t.TempDir(), "archiver")
	if out, err := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.commit="+wantCommit+" -X main.date="+wantDate, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Every recording trickles a byte every 200ms: the downloads are in
	// flight when the signals come.
	e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultTrickle, Path: cecwire.PathDownloadRecordFile, DelayMS: 200}}, "")
	const instance = "forced-test"
	e.env["ARCHIVER_METRICS_PUSHGATEWAY_URL"] = gw.url
	e.env["ARCHIVER_METRICS_PUSH_INSTANCE"] = instance
	e.env["ARCHIVER_LOG_FORMAT"] = "json"
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir, "TZ=UTC"}
	for k, v := range e.env {
		env = append(env, k+"="+v)
	}

	if out, err := exec.Command(bin, "version").Output(); err != nil ||
		!strings.Contains(string(out), "\ncommit: "+wantCommit+"\ndate: "+wantDate+"\n") {
		t.Fatalf("archiver version = %v\n%s\nwant commit %s and date %s", err, out, wantCommit, wantDate)
	}

	cmd := exec.Command(bin, "once", "--config", e.config)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for e.sim.Stats().Requests[cecwire.PathDownloadRecordFile] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no recording download after 30s\nstderr:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Hold the state's write lock: from now on every checkpoint write of
	// the archiver waits, so the work it abandons cannot be released.
	db, err := sql.Open("sqlite", "file:"+e.state+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the state's write lock: %v", err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
				t.Errorf("release the state's write lock: %v", err)
			}
		}
	}
	defer unlock()

	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// The forced shutdown reaches the Pushgateway while the work is stuck.
	var group pushedGroup
	for deadline := time.Now().Add(15 * time.Second); ; {
		group = pushedGroups(t, gw)[testTenant+"/"]
		if v := seriesValue(group.series["archiver_shutdowns_total"], "result", shutdownForced); v == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no archiver_shutdowns_total{result=\"forced\"} 1 pushed 15s after the signals (process group: %v)\nstderr:\n%s",
				group.series["archiver_shutdowns_total"], stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("forced shutdown pushed %v after the first signal", time.Since(signalled).Round(time.Millisecond))
	if group.labels["instance"] != instance {
		t.Errorf("pushed group labels %v, want instance %s", group.labels, instance)
	}
	for _, r := range []string{shutdownClean, shutdownAbandoned} {
		if v := seriesValue(group.series["archiver_shutdowns_total"], "result", r); v != "0" {
			t.Errorf("pushed archiver_shutdowns_total{result=%q} = %s, want 0", r, v)
		}
	}
	if bi := group.series["archiver_build_info"]; len(bi) != 1 || bi[0].Labels["commit"] != wantCommit || bi[0].Labels["date"] != wantDate {
		t.Errorf("pushed archiver_build_info %v, want commit %q and date %q as archiver version prints them", bi, wantCommit, wantDate)
	}

	unlock()
	select {
	case <-exited:
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || ee.ExitCode() != exitFailed {
			t.Errorf("once exited with %v, want exit code 1 (forced)", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("once did not exit 30s after the lock was released\nstderr:\n%s", stderr.String())
	}
	errOut := stderr.String()
	if !strings.Contains(errOut, "once: forced: stopped without waiting for in-flight work") ||
		!strings.Contains(errOut, `"msg":"forced: exiting without waiting for in-flight work; pushing the metrics first"`) {
		t.Errorf("once did not take the forced path (exit before the work ended) or did not log it:\n%s", errOut)
	}

	rep, _ := e.statusJSON(t)
	for _, j := range rep.Jobs {
		if j.LastRun != nil && j.LastRun.Result == checkpoint.RunRunning {
			t.Errorf("job %s: last run %+v still running after the process exited", j.Job, j.LastRun)
		}
		if j.Job == "recordings" && (j.LastRun == nil || j.LastRun.Result != checkpoint.RunInterrupted) {
			t.Errorf("recordings: last run %+v, want interrupted", j.LastRun)
		}
	}
}

// seriesValue is the value of the series of a pushed family whose label
// name is value, "" when there is none.
func seriesValue(series []pushedSeries, name, value string) string {
	for _, s := range series {
		if s.Labels[name] == value {
			return s.Value
		}
	}
	return ""
}
