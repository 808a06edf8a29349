package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

// statusJSON runs status --json and decodes it, failing the test unless
// it exits 0; it also returns the output.
func (e *testEnv) statusJSON(t *testing.T) (statusReport, string) {
	t.Helper()
	code, out, errOut := e.run("status", "--config", e.config, "--json")
	if code != exitOK {
		t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return rep, out
}

// lastRun is the last run of job that status --json shows.
func (e *testEnv) lastRun(t *testing.T, job string) *runStatus {
	t.Helper()
	rep, out := e.statusJSON(t)
	for _, j := range rep.Jobs {
		if j.Job == job && j.LastRun != nil {
			return j.LastRun
		}
	}
	t.Fatalf("no last run of %s:\n%s", job, out)
	return nil
}

// failedStateHeld runs once with every agent recording download failing,
// then holds the state open for writing (the closing is the test's
// cleanup), as a running daemon does.
func failedStateHeld(t *testing.T) (*testEnv, *sqlite.Store) {
	t.Helper()
	e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}, "")
	if code, out, errOut := e.run("once", "--config", e.config); code != exitFailed {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	held, err := sqlite.Open(e.state, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	return e, held
}

// TestCmdStatus_Replicas: status shows the named leases held now and the
// items in progress per replica, while another process holds the state and
// works; a released lease is not shown.
func TestCmdStatus_Replicas(t *testing.T) {
	const replica = "other-host-9-00000000"
	// Another replica is at work: a window, a ledger, and the failed items.
	e, held := failedStateHeld(t)
	ctx := t.Context()
	for _, name := range []string{"cdr:2026-03-01T00:00:00Z", "ledger:2026-03-01", "janitor"} {
		if ok, err := held.TryLease(ctx, name, replica, time.Hour); err != nil || !ok {
			t.Fatalf("TryLease(%s) = %v, %v", name, ok, err)
		}
	}
	if err := held.ReleaseLease(ctx, "janitor", replica); err != nil {
		t.Fatal(err)
	}
	claimed, err := held.Claim(ctx, checkpoint.Claimer{Owner: replica, Lease: time.Hour}, nil, time.Now().Add(24*time.Hour), 0)
	if err != nil || len(claimed) == 0 {
		t.Fatalf("Claim = %d items, %v; want the failed ones", len(claimed), err)
	}

	t.Run("json", func(t *testing.T) {
		rep, _ := e.statusJSON(t)
		var names []string
		for _, l := range rep.Leases {
			names = append(names, l.Name)
			if l.Replica != replica || l.Until.Before(time.Now().Add(50*time.Minute)) {
				t.Errorf("lease %+v, want held by %s for an hour", l, replica)
			}
		}
		if strings.Join(names, " ") != "cdr:2026-03-01T00:00:00Z ledger:2026-03-01" {
			t.Errorf("leases %v, want the cdr window and the ledger (the janitor's was released)", names)
		}
		if len(rep.Claims) != 1 || rep.Claims[0].Replica != replica || rep.Claims[0].InProgress != len(claimed) {
			t.Errorf("claims %+v, want %d items in progress under %s", rep.Claims, len(claimed), replica)
		}
	})
	t.Run("table", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config)
		if code != exitOK {
			t.Fatalf("status = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		t.Logf("status:\n%s", out)
		for _, want := range []string{
			"leases held (cdr windows, ledgers, janitor): 2\n",
			"  cdr:2026-03-01T00:00:00Z replica=" + replica + " until=",
			"  ledger:2026-03-01 replica=" + replica + " until=",
			fmt.Sprintf("items in progress: %d, by 1 replicas\n", len(claimed)),
			"  " + replica + " ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "janitor replica=") || strings.Contains(out, "(expired)") {
			t.Errorf("status lists a released lease or an expired claim:\n%s", out)
		}
	})
}

// TestCmdStatus_Jobs: status shows every configured job with its last run
// as the runs recorded it (ok, failed with its error, running while another
// replica runs it), duration, items and bytes, and the next run of its
// schedule; a disabled job has no next run (—), in the table and in JSON.
func TestCmdStatus_Jobs(t *testing.T) {
	const replica = "other-host-9-00000000"
	before := time.Now()
	e, held := failedStateHeld(t)
	// Another replica runs transfer now; ivr is disabled since its last run.
	running := checkpoint.JobRun{Job: "transfer", Started: time.Now(), Result: checkpoint.RunRunning, Replica: replica}
	if err := held.SetLastRun(t.Context(), running); err != nil {
		t.Fatal(err)
	}
	e.env["ARCHIVER_JOBS_IVR_ENABLED"] = "false"

	t.Run("json", func(t *testing.T) {
		rep, out := e.statusJSON(t)
		var names []string
		for _, j := range rep.Jobs {
			names = append(names, j.Job)
		}
		if strings.Join(names, " ") != "cdr recordings transfer ivr" {
			t.Fatalf("jobs %v, want every configured job in run order", names)
		}
		byJob := map[string]jobStatus{}
		for _, j := range rep.Jobs {
			byJob[j.Job] = j
			if j.LastRun == nil {
				t.Fatalf("%s: no last run:\n%s", j.Job, out)
			}
		}
		cdr := byJob["cdr"]
		if r := cdr.LastRun; r.Result != checkpoint.RunOK || r.Finished == nil || r.DurationSeconds == nil ||
			r.Started.Before(before.Add(-time.Second)) || r.Done < 2 || r.Bytes == 0 || r.Error != "" || cdr.LastSuccess == nil {
			t.Errorf("cdr: %+v, last success %v; want ok with its two packages and bytes", r, cdr.LastSuccess)
		}
		if spec, _ := config.ParseSchedule(cdr.Schedule); cdr.NextRun == nil || !cdr.Enabled ||
			!cdr.NextRun.Equal(spec.Next(cdr.LastRun.Started)) {
			t.Errorf("cdr: next run %v, want the schedule's next time after the last run's start", cdr.NextRun)
		}
		rec := byJob["recordings"]
		if r := rec.LastRun; r.Result != checkpoint.RunFailed || r.Failed == 0 || r.Done != 0 ||
			!strings.HasPrefix(r.Error, "jobs: run recorded failures: ") || rec.LastSuccess != nil || rec.NextRun == nil {
			t.Errorf("recordings: %+v, last success %v, next %v; want failed with the summary, never a success", r, rec.LastSuccess, rec.NextRun)
		}
		if r := byJob["transfer"].LastRun; r.Result != checkpoint.RunRunning || r.Finished != nil || r.DurationSeconds != nil ||
			r.Replica != replica || !r.Started.Equal(running.Started) {
			t.Errorf("transfer: %+v; want running under %s", r, replica)
		}
		if ivr := byJob["ivr"]; ivr.Enabled || ivr.NextRun != nil || ivr.LastRun.Result != checkpoint.RunOK {
			t.Errorf("ivr: %+v; want disabled, no next run, its last run kept", ivr)
		}
		if !strings.Contains(out, `"next_run": null`) || !strings.Contains(out, `"finished": null`) {
			t.Errorf("null next_run or finished not spelt out:\n%s", out)
		}
	})
	t.Run("table", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config)
		if code != exitOK {
			t.Fatalf("status = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		t.Logf("status:\n%s", out)
		lines := strings.Split(out, "\n")
		if f := strings.Fields(lines[0]); strings.Join(f, " ") != "JOB SCHEDULE LAST-RUN RESULT DURATION DONE FAILED BYTES NEXT-RUN" {
			t.Fatalf("first line %q, want the jobs table's header", lines[0])
		}
		// job, the schedule (@every D: two fields), last run, result,
		// duration, done, failed, bytes, next run.
		rows := map[string][]string{}
		for _, l := range lines[1:5] {
			f := strings.Fields(l)
			rows[f[0]] = f
		}
		if r := rows["cdr"]; len(r) != 10 || r[4] != "ok" || r[6] == "0" || r[9] == "—" {
			t.Errorf("cdr row %q: want ok, packages done, a next run", r)
		}
		if r := rows["recordings"]; len(r) != 10 || r[4] != "failed" || r[7] == "0" {
			t.Errorf("recordings row %q: want failed with failed attempts", r)
		}
		if r := rows["transfer"]; len(r) != 10 || r[4] != "running" || r[5] != "—" || r[6] != "—" {
			t.Errorf("transfer row %q: want running, no duration or counts yet", r)
		}
		if r := rows["ivr"]; len(r) != 10 || r[4] != "ok" || r[9] != "—" {
			t.Errorf("ivr row %q: want its last run and no next run (disabled)", r)
		}
		if !strings.Contains(out, "\n  recordings: last run failed: jobs: run recorded failures: ") || !strings.Contains(out, "(last success: never)\n") {
			t.Errorf("no error line for the failed recordings run:\n%s", out)
		}
		if strings.Contains(out, "  cdr: last run") || strings.Contains(out, "  transfer: last run") {
			t.Errorf("an error line for a run that did not fail:\n%s", out)
		}
	})
}

// TestCmdStatus_EndedRun: a run recorded as running whose process is gone
// (SIGKILL: nothing recorded its end) is shown interrupted, with the
// recorded result and why, once no process holds the state; while one
// does, it is running.
func TestCmdStatus_EndedRun(t *testing.T) {
	e, held := failedStateHeld(t)
	killed := checkpoint.JobRun{Job: "transfer", Started: time.Now(), Result: checkpoint.RunRunning, Replica: "gone-1-00000000"}
	if err := held.SetLastRun(t.Context(), killed); err != nil {
		t.Fatal(err)
	}
	transfer := func(t *testing.T) *runStatus { return e.lastRun(t, "transfer") }
	if r := transfer(t); r.Result != checkpoint.RunRunning || r.Recorded != "" {
		t.Fatalf("while a process holds the state: %+v, want running", r)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	r := transfer(t)
	if r.Result != checkpoint.RunInterrupted || r.Recorded != checkpoint.RunRunning || !strings.Contains(r.Error, "no archiver holds the state") ||
		r.Finished != nil || r.Replica != killed.Replica {
		t.Fatalf("after the process is gone: %+v, want interrupted, recorded running, the reason", r)
	}
	code, out, errOut := e.run("status", "--config", e.config)
	if code != exitOK {
		t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, "\n  transfer: last run interrupted: recorded as running, but no archiver holds the state") {
		t.Errorf("no interrupted line for the ended run:\n%s", out)
	}
}

// TestCmdStatus_EndedRunPostgres: with PostgreSQL, a run recorded as
// running by a replica whose process still holds its session reads
// running; once that session is gone (the process killed: its connection
// closes), status shows the run interrupted, naming the replica.
func TestCmdStatus_EndedRunPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	e := newTestEnv(t, nil, "")
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
	e.env["ARCHIVER_CHECKPOINT_DSN_FILE"] = dsnFile
	if code, out, errOut := e.run("once", "--config", e.config); code != exitOK {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	held, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	killed := checkpoint.JobRun{Job: "transfer", Started: time.Now(), Result: checkpoint.RunRunning, Replica: "gone-1-00000000"}
	if err := held.SetLastRun(t.Context(), killed); err != nil {
		t.Fatal(err)
	}
	transfer := func(t *testing.T) *runStatus { return e.lastRun(t, "transfer") }
	if r := transfer(t); r.Result != checkpoint.RunRunning || r.Recorded != "" || r.Replica != killed.Replica {
		t.Fatalf("while the replica's process holds its session: %+v, want running", r)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	var r *runStatus
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r = transfer(t); r.Result != checkpoint.RunRunning || time.Now().After(deadline) {
			break
		}
	}
	if r.Result != checkpoint.RunInterrupted || r.Recorded != checkpoint.RunRunning || r.Finished != nil ||
		!strings.Contains(r.Error, "replica "+killed.Replica+" holds no session on the database") {
		t.Fatalf("after the replica's session is gone: %+v, want interrupted, recorded running, the reason", r)
	}
	code, out, errOut := e.run("status", "--config", e.config)
	if code != exitOK {
		t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, "\n  transfer: last run interrupted: recorded as running, but replica "+killed.Replica+" holds no session") {
		t.Errorf("no interrupted line for the ended run:\n%s", out)
	}
}

func TestNextRun(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2026, 3, 1, h, m, s, 0, time.UTC) }
	every, err := config.ParseSchedule("@every 1h")
	if err != nil {
		t.Fatal(err)
	}
	hourly, err := config.ParseSchedule("CRON_TZ=UTC 0 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		spec schedule
		last time.Time // zero: no last run
		now  time.Time
		want time.Time
	}{
		{"every, from the last run", every, at(10, 0, 3), at(10, 30, 0), at(11, 0, 3)},
		{"every, the last run long ago", every, at(10, 0, 3), at(12, 30, 0), at(13, 30, 0)},
		{"every, never ran", every, time.Time{}, at(10, 30, 0), at(11, 30, 0)},
		{"cron, from the last run", hourly, at(10, 0, 3), at(10, 30, 0), at(11, 0, 0)},
		{"cron, a slot missed", hourly, at(8, 0, 3), at(10, 30, 0), at(11, 0, 0)},
	} {
		var last *runStatus
		if !c.last.IsZero() {
			last = &runStatus{Started: c.last}
		}
		if got := nextRun(c.spec, last, c.now); !got.Equal(c.want) {
			t.Errorf("%s: nextRun = %v, want %v", c.name, got, c.want)
		}
	}
}
