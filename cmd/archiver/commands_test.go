package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

const (
	testAK       = "cmdAK"
	testSK       = "cmd-secret-key"
	testTenant   = "tenant-cmd"
	testPassword = "cmd-api-password"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is one simulator, a directory sink and a state file, with a
// configuration file pointing at them.
type testEnv struct {
	t        *testing.T
	sim      *cecsim.Server
	url      string
	tenant   string // cec.tenant_id, the simulator's
	dir      string
	state    string
	archive  string
	config   string
	callback string // host:port of the callback receiver
	env      map[string]string
}

// newTestEnv starts a simulator with two days of calls ending yesterday, and
// writes a configuration for it: window 24h, lookback 2 (both days), short
// settle ages, fast retries. extra is appended to the configuration.
func newTestEnv(t *testing.T, faults []cecsim.Fault, extra string) *testEnv {
	t.Helper()
	return newTenantEnv(t, testTenant, faults, extra)
}

// newTenantEnv is newTestEnv for the tenant tenant.
func newTenantEnv(t *testing.T, tenant string, faults []cecsim.Fault, extra string) *testEnv {
	t.Helper()
	return newTestEnvSim(t, func(o *cecsim.Options) { o.Faults, o.TenantID = faults, tenant }, extra)
}

// newTestEnvSim is newTestEnv with the simulator's options changed by sim.
func newTestEnvSim(t *testing.T, sim func(*cecsim.Options), extra string) *testEnv {
	t.Helper()
	now := time.Now().UTC()
	so := cecsim.Options{
		Seed: 3, Calls: 12, Days: 2, Start: now.AddDate(0, 0, -2), Location: time.UTC,
		Credentials: map[string]string{testAK: testSK}, TenantID: testTenant, APIPassword: testPassword,
		BillReadyDelay: -1, MaxRecordingBytes: 8 << 10, Logger: zap.NewNop(),
	}
	sim(&so)
	s, err := cecsim.New(so)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() { srv.Close(); s.Close() })
	dir := t.TempDir()
	e := &testEnv{t: t, sim: s, url: srv.URL, tenant: so.TenantID, dir: dir,
		state: filepath.Join(dir, "state.db"), archive: filepath.Join(dir, "archive"), env: map[string]string{}}
	e.config = filepath.Join(dir, "config.toml")
	e.callback = freeAddr(t)
	e.writeConfig(extra)
	return e
}

func (e *testEnv) writeConfig(extra string) {
	e.t.Helper()
	cfg := fmt.Sprintf(`[cec]
fs_url = %[1]q
oifde_url = %[1]q
ak = %[2]q
sk = %[3]q
tenant_id = %[4]q
api_password = %[5]q
callback_url = "http://%[8]s/ccfs/callback"
callback_listen = %[8]q
rate_limit = 1000.0
max_attempts = 1
concurrency = 4

[sink]
type = "dir"
dir = %[6]q

[checkpoint]
path = %[7]q

[jobs.cdr]
window = "24h"
lookback_windows = 2
ready_timeout = "10s"

[jobs.recordings]
retry_backoff = "1s"

[jobs.transfer]
settle_max_age = "1h"

[jobs.ivr]
settle_max_age = "1h"

[metrics]
listen = ""

[log]
level = "warn"
format = "console"
`, e.url, testAK, testSK, e.tenant, testPassword, e.archive, e.state, e.callback)
	if err := os.WriteFile(e.config, []byte(cfg+extra), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run runs the archiver in-process with the test's environment.
func (e *testEnv) run(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	return e.runWith(nil, args...)
}

func (e *testEnv) runWith(setup func(c *cli), args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errOut syncBuffer
	c := &cli{stdout: &out, stderr: &errOut, env: mapEnv(e.env), signals: make(chan os.Signal), forcedGrace: time.Second}
	if setup != nil {
		setup(c)
	}
	code = c.main(args)
	return code, out.String(), errOut.String()
}

// freeAddr returns a local address no one listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func (e *testEnv) requests() int {
	n := 0
	for _, c := range e.sim.Stats().Requests {
		n += c
	}
	return n
}

func TestCmdOnce(t *testing.T) {
	t.Run("clean dataset", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, out, errOut := e.run("once", "--config", e.config)
		if code != exitOK {
			t.Fatalf("once = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.HasPrefix(out, "once: 2 windows, 2 packages, ") || !strings.Contains(out, " 0 failed, 0 dead, ") {
			t.Errorf("summary:\n%s", out)
		}
		m := e.sim.Manifest()
		if got := countFiles(t, e.archive); got != len(m.Recordings) {
			t.Errorf("%d files archived, the simulator has %d recordings", got, len(m.Recordings))
		}
		// A second run stores nothing new and still exits 0.
		code, out, errOut = e.run("once", "--config", e.config)
		if code != exitOK || !strings.Contains(out, " 0 new items,") {
			t.Errorf("second once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
	t.Run("config from ARCHIVER_CONFIG", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		e.env[configEnv] = e.config
		if code, out, errOut := e.run("once", "--job", "cdr"); code != exitOK {
			t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
	t.Run("a recording always fails", func(t *testing.T) {
		e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}, "")
		code, out, errOut := e.run("once", "--config", e.config)
		if code != exitFailed {
			t.Fatalf("once = %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		agents := 0
		for _, r := range e.sim.Manifest().Recordings {
			if r.Kind == cecsim.KindAgent {
				agents++
				if !strings.Contains(errOut, " agent "+r.ID+" ") {
					t.Errorf("failed recording %s not listed on stderr", r.ID)
				}
			}
		}
		if agents == 0 {
			t.Fatal("the dataset has no agent recording; change the seed")
		}
		if !strings.Contains(errOut, fmt.Sprintf("once: %d items failed or dead:", agents)) {
			t.Errorf("stderr does not count %d failed items:\n%s", agents, errOut)
		}
	})
	t.Run("SIGTERM drains and exits 0", func(t *testing.T) {
		slow := cecsim.Fault{Kind: cecsim.FaultSlow, Path: cecwire.PathDownloadRecordFile, DelayMS: 300}
		e := newTestEnv(t, []cecsim.Fault{slow}, "")
		e.env["ARCHIVER_LOG_LEVEL"] = "info"
		sigs := make(chan os.Signal, 1)
		go func() {
			// Signal once the first recording download is under way.
			for e.sim.Stats().Requests[cecwire.PathDownloadRecordFile] == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			sigs <- syscall.SIGTERM
		}()
		code, out, errOut := e.runWith(func(c *cli) { c.signals = sigs }, "once", "--config", e.config)
		if code != exitOK {
			t.Fatalf("once after SIGTERM = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "draining") {
			t.Errorf("no drain logged:\n%s", errOut)
		}
		st, err := sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for _, state := range []checkpoint.State{checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead} {
			if items, err := st.Items(t.Context(), state); err != nil || len(items) > 0 {
				t.Errorf("%d items %s after a drain (%v)", len(items), state, err)
			}
		}
	})
	t.Run("wrong SK", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		e.env["ARCHIVER_CEC_SK"] = "not-the-secret-key"
		code, out, errOut := e.run("once", "--config", e.config)
		if code != exitPermission {
			t.Fatalf("once = %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if e.sim.Stats().AuthFailures == 0 {
			t.Error("the simulator saw no authentication failure")
		}
		if strings.Contains(out+errOut, "not-the-secret-key") {
			t.Error("the SK was printed")
		}
		noStutter(t, errOut)
	})
	t.Run("wrong API password", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		e.env["ARCHIVER_CEC_API_PASSWORD"] = "not-the-password"
		code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr,transfer")
		if code != exitPermission {
			t.Fatalf("once = %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, "not-the-password") {
			t.Error("the password was printed")
		}
		noStutter(t, errOut)
	})
	t.Run("bad config", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		e.env["ARCHIVER_JOBS_CDR_WINDOW"] = "7m"
		code, _, errOut := e.run("once", "--config", e.config)
		if code != exitConfig || !strings.Contains(errOut, "jobs.cdr.window: must divide 24h") {
			t.Errorf("once = %d, want 2; stderr:\n%s", code, errOut)
		}
		if n := e.requests(); n != 0 {
			t.Errorf("%d requests to CEC with a bad configuration", n)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		// No server there: refused before any request to CEC, and the
		// DSN's password is printed nowhere.
		t.Run("unreachable", func(t *testing.T) {
			const canary = "canary-dsn-pw-41c7"
			e := newTestEnv(t, nil, "")
			e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
			e.env["ARCHIVER_CHECKPOINT_DSN"] = "postgres://archiver:" + canary + "@127.0.0.1:1/archiver?connect_timeout=5"
			e.env["ARCHIVER_LOG_LEVEL"] = "debug"
			for _, cmd := range []string{"once", "status"} {
				code, out, errOut := e.run(cmd, "--config", e.config)
				if code != exitFailed || !strings.Contains(errOut, cmd+": checkpoint: postgres: ") {
					t.Errorf("%s = %d, want 1 and the store's error; stderr:\n%s", cmd, code, errOut)
				}
				if strings.Contains(out+errOut, canary) {
					t.Errorf("%s printed the DSN's password:\n%s", cmd, out+errOut)
				}
			}
			if n := e.requests(); n != 0 {
				t.Errorf("%d requests to CEC without a state database", n)
			}
		})
		// A real server (scripts/postgres.sh; required in CI): once
		// archives the dataset with its state in PostgreSQL, under the
		// tenant, and status reads it.
		t.Run("server", func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			e := newTestEnv(t, nil, "")
			e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
			e.env["ARCHIVER_CHECKPOINT_DSN"] = dsn
			secret := dsn
			if u, err := url.Parse(dsn); err == nil {
				if pw, ok := u.User.Password(); ok {
					secret = pw
				}
			}
			code, _, errOut := e.run("status", "--config", e.config)
			if code != exitFailed || !strings.Contains(errOut, "no state file in the database of checkpoint.dsn") {
				t.Errorf("status before any run = %d, want 1 and no state; stderr:\n%s", code, errOut)
			}
			e.env["ARCHIVER_LOG_LEVEL"] = "debug"
			code, out, errOut := e.run("once", "--config", e.config)
			if code != exitOK {
				t.Fatalf("once = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			if strings.Contains(out+errOut, secret) {
				t.Error("once printed the DSN or its password")
			}
			if !strings.Contains(errOut, "checkpoint store opened") {
				t.Errorf("once did not log the store it opened:\n%s", errOut)
			}
			delete(e.env, "ARCHIVER_LOG_LEVEL")
			if !strings.HasPrefix(out, "once: 2 windows, 2 packages, ") || !strings.Contains(out, " 0 failed, 0 dead, ") {
				t.Errorf("summary:\n%s", out)
			}
			m := e.sim.Manifest()
			if got := countFiles(t, e.archive); got != len(m.Recordings) {
				t.Errorf("%d files archived, the simulator has %d recordings; the state's other items: %s\nonce's stdout:\n%s",
					got, len(m.Recordings), notDone(t, dsn), out)
			}
			if _, err := os.Stat(e.state); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("checkpoint.path %s exists (%v): the state went to SQLite", e.state, err)
			}
			code, out, errOut = e.run("once", "--config", e.config)
			if code != exitOK || !strings.Contains(out, " 0 new items,") {
				t.Errorf("second once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			code, out, errOut = e.run("status", "--config", e.config, "--json")
			if code != exitOK {
				t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
			}
			var rep statusReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			calls := 0
			for _, d := range rep.Days {
				calls += d.Calls
				if !d.Complete {
					t.Errorf("day %s is not complete: %+v", d.Day, d)
				}
			}
			if calls != len(m.Calls) {
				t.Errorf("status shows %d calls, the simulator has %d", calls, len(m.Calls))
			}
			// Each job's last run, recorded in PostgreSQL: the second once's.
			for _, j := range rep.Jobs {
				if j.LastRun == nil || j.LastRun.Result != checkpoint.RunOK || j.LastSuccess == nil || j.NextRun == nil {
					t.Errorf("job %s: %+v; want its last run ok, a last success and a next run", j.Job, j)
				}
			}
			if len(rep.Jobs) != 4 {
				t.Errorf("status shows %d jobs, want 4", len(rep.Jobs))
			}
			// The rows are the tenant's (cec.tenant_id): another tenant's
			// store on the same database sees none of them.
			for tenant, want := range map[string]bool{testTenant: true, "another-tenant": false} {
				st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: tenant, ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				items, err := st.Items(t.Context(), checkpoint.StateDone)
				st.Close()
				if err != nil || (len(items) > 0) != want {
					t.Errorf("tenant %s: %d done items (%v), want some: %v", tenant, len(items), err, want)
				}
			}
		})
	})
	t.Run("unknown job", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, _, errOut := e.run("once", "--config", e.config, "--job", "cdr,calls")
		if code != exitConfig || !strings.Contains(errOut, `unknown job "calls"`) {
			t.Errorf("once = %d, want 2; stderr:\n%s", code, errOut)
		}
	})
	t.Run("state locked", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		held, err := sqlite.Open(e.state, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		code, _, errOut := e.run("once", "--config", e.config)
		want := fmt.Sprintf("another archiver is running on %s (pid %d)", e.state, os.Getpid())
		if code != exitFailed || !strings.Contains(errOut, want) {
			t.Errorf("once = %d, want 1 and %q; stderr:\n%s", code, want, errOut)
		}
		if n := e.requests(); n != 0 {
			t.Errorf("%d requests to CEC while the state is locked", n)
		}
	})
}

func TestCmdBackfill(t *testing.T) {
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format(dateLayout) }
	t.Run("dry run", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, out, errOut := e.run("backfill", "--config", e.config, "--from", day(-2), "--to", day(-1), "--dry-run")
		if code != exitOK {
			t.Fatalf("backfill --dry-run = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(out, day(-2)) || !strings.Contains(out, day(-1)) {
			t.Errorf("the plan does not show both days:\n%s", out)
		}
		if n := e.requests(); n != 0 {
			t.Errorf("a dry run made %d requests", n)
		}
		if _, err := os.Stat(e.state); err == nil {
			t.Error("a dry run created the state file")
		}
	})
	t.Run("real run", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, out, errOut := e.run("backfill", "--config", e.config, "--from", day(-2), "--to", day(-1))
		if code != exitOK || !strings.HasPrefix(out, "backfill: 2 windows, 2 packages,") {
			t.Fatalf("backfill = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
	t.Run("from after to", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, _, errOut := e.run("backfill", "--config", e.config, "--from", day(-1), "--to", day(-2))
		if code != exitConfig || !strings.Contains(errOut, "is after --to") {
			t.Errorf("backfill = %d, want 2; stderr:\n%s", code, errOut)
		}
	})
	t.Run("bad date", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, _, _ := e.run("backfill", "--config", e.config, "--from", "2026-13-01", "--to", day(-1))
		if code != exitConfig {
			t.Errorf("backfill = %d, want 2", code)
		}
	})
}

func TestCmdStatus(t *testing.T) {
	t.Run("no state", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		code, _, errOut := e.run("status", "--config", e.config)
		if code != exitFailed || !strings.Contains(errOut, "no state file at "+e.state) {
			t.Errorf("status = %d, want 1; stderr:\n%s", code, errOut)
		}
	})
	// The state is held open, as by a running daemon: status reads anyway.
	e, _ := failedStateHeld(t)
	m := e.sim.Manifest()
	days := map[string]int{}
	for _, c := range m.Calls {
		days[c.Day]++
	}
	t.Run("table", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config, "--failed")
		if code != exitOK {
			t.Fatalf("status = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(out, "DAY") || !strings.Contains(out, "COMPLETE") || !strings.Contains(out, "cdr watermark: ") {
			t.Errorf("no table:\n%s", out)
		}
		for d := range days {
			if !strings.Contains(out, d) {
				t.Errorf("day %s missing:\n%s", d, out)
			}
		}
		if !strings.Contains(out, "failed and dead items: ") || !strings.Contains(out, " agent ") {
			t.Errorf("--failed lists no agent item:\n%s", out)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config, "--json", "--failed")
		if code != exitOK {
			t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		calls := 0
		for _, d := range rep.Days {
			calls += d.Calls
			if d.Complete || d.Failed == 0 {
				t.Errorf("day %s: complete %v with %d failed; every agent recording failed", d.Day, d.Complete, d.Failed)
			}
		}
		if calls != len(m.Calls) || len(rep.Days) != len(days) {
			t.Errorf("status shows %d calls over %d days, the simulator has %d over %d", calls, len(rep.Days), len(m.Calls), len(days))
		}
		if len(rep.Failed) == 0 {
			t.Error("no failed items in JSON")
		}
	})
}

func TestCmdStatus_ProblemWindows(t *testing.T) {
	t.Run("empty state", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		held, err := sqlite.Open(e.state, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		held.Close()
		code, out, errOut := e.run("status", "--config", e.config, "--json")
		if code != exitOK {
			t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
		}
		for _, key := range []string{`"days": []`, `"windows": []`, `"failed": []`} {
			if !strings.Contains(out, key) {
				t.Errorf("status --json of an empty state lacks %s:\n%s", key, out)
			}
		}
	})
	// Every package download fails: the windows are requested, their
	// packages never obtained, and no call is known.
	e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadBillFile}}, "")
	if code, out, errOut := e.run("once", "--config", e.config); code != exitFailed {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Run("json", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config, "--json")
		if code != exitOK {
			t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if len(rep.Windows) == 0 {
			t.Fatalf("no problem windows:\n%s", out)
		}
		days := map[string]bool{}
		for _, w := range rep.Windows {
			if w.State == checkpoint.StateDone || w.BillFileName == "" || len(w.Days) == 0 {
				t.Errorf("window %+v: want a bill file, a state other than done and days", w)
			}
			for _, d := range w.Days {
				days[d] = true
			}
		}
		for _, d := range rep.Days {
			if days[d.Day] && (d.Complete || d.ProblemWindows == 0) {
				t.Errorf("day %s: complete %v, %d problem windows; want incomplete", d.Day, d.Complete, d.ProblemWindows)
			}
			delete(days, d.Day)
		}
		if len(days) > 0 {
			t.Errorf("days covered by failed windows but not listed: %v\n%s", days, out)
		}
		if rep.Failed == nil {
			t.Error("failed is null, want a list")
		}
	})
	t.Run("table", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config)
		if code != exitOK {
			t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
		}
		if !strings.Contains(out, "cdr windows not archived") || !strings.Contains(out, "bill=") || strings.Contains(out, "(no days recorded yet)") {
			t.Errorf("the table does not show the failed windows and their days:\n%s", out)
		}
		if strings.Contains(out, " yes") {
			t.Errorf("a day is complete:\n%s", out)
		}
	})
}

func TestCmdOnce_DisabledJobs(t *testing.T) {
	e := newTestEnv(t, nil, "")
	e.env["ARCHIVER_JOBS_TRANSFER_ENABLED"] = "false"
	e.env["ARCHIVER_JOBS_IVR_ENABLED"] = "false"
	t.Run("named disabled job", func(t *testing.T) {
		code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr,transfer")
		if code != exitConfig || !strings.Contains(errOut, "jobs.transfer.enabled = false") || strings.Contains(errOut, "jobs.cdr") {
			t.Errorf("once --job cdr,transfer = %d, want 2 naming jobs.transfer.enabled\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if n := e.requests(); n != 0 {
			t.Errorf("a usage error sent %d requests", n)
		}
	})
	t.Run("enabled jobs only", func(t *testing.T) {
		code, out, errOut := e.run("once", "--config", e.config)
		if code != exitOK {
			t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		st := e.sim.Stats()
		if n := st.Requests[cecwire.PathDownloadRecordFile]; n == 0 {
			t.Error("the recordings job did not run")
		}
		for _, p := range []string{cecwire.PathGetToken, cecwire.PathQueryTransferRecords, cecwire.PathQueryRecordHistory} {
			if n := st.Requests[p]; n != 0 {
				t.Errorf("%d requests to %s: transfer and ivr are disabled", n, p)
			}
		}
	})
	t.Run("explicitly enabled for one run", func(t *testing.T) {
		e.env["ARCHIVER_JOBS_TRANSFER_ENABLED"] = "true"
		defer func() { e.env["ARCHIVER_JOBS_TRANSFER_ENABLED"] = "false" }()
		code, out, errOut := e.run("once", "--config", e.config, "--job", "transfer")
		if code != exitOK {
			t.Fatalf("once --job transfer = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if n := e.sim.Stats().Requests[cecwire.PathQueryTransferRecords]; n == 0 {
			t.Error("once --job transfer made no transfer lookup")
		}
	})
	t.Run("none enabled", func(t *testing.T) {
		for _, j := range []string{"CDR", "RECORDINGS"} {
			e.env["ARCHIVER_JOBS_"+j+"_ENABLED"] = "false"
		}
		code, _, errOut := e.run("once", "--config", e.config)
		if code != exitConfig || !strings.Contains(errOut, "no job is enabled") {
			t.Errorf("once with every job disabled = %d, want 2\nstderr:\n%s", code, errOut)
		}
	})
}

// TestCmdOnce_ExportsState: a fresh process that runs no cdr job still
// exports the cdr watermark and the item gauges, read from the state.
func TestCmdOnce_ExportsState(t *testing.T) {
	e := newTestEnv(t, nil, "")
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr"); code != exitOK {
		t.Fatalf("once --job cdr = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var (
		mu     sync.Mutex
		pushed []byte
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed = append(pushed, body...)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	e.env["ARCHIVER_METRICS_PUSHGATEWAY_URL"] = gw.URL
	// The recordings fail at once: their run records no watermark.
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile})
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "recordings"); code != exitFailed {
		t.Fatalf("once --job recordings = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"archiver_watermark_timestamp_seconds", "archiver_items"} {
		if !bytes.Contains(pushed, []byte(want)) {
			t.Errorf("the push of a fresh process lacks %s", want)
		}
	}
}

func TestCmdRequeue(t *testing.T) {
	e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}, "")
	e.env["ARCHIVER_JOBS_RECORDINGS_MAX_ATTEMPTS"] = "1"
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr,recordings"); code != exitFailed {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	st, err := sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := st.Items(t.Context(), checkpoint.StateDead)
	st.Close()
	if err != nil || len(dead) == 0 {
		t.Fatalf("no dead items after a failed run with max_attempts 1 (%v)", err)
	}
	if code, _, errOut := e.run("requeue", "--config", e.config, "--kind", "bogus"); code != exitConfig {
		t.Errorf("requeue --kind bogus = %d, want 2; stderr:\n%s", code, errOut)
	}
	code, out, errOut := e.run("requeue", "--config", e.config, "--kind", "agent")
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("requeue: %d dead items are pending again", len(dead))) {
		t.Errorf("requeue = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// daemon sets the environment of a test of archiver run: cdr due in an
// hour, so that its run at start (jobs.cdr.run_at_start, the default) is the
// one the test sees; recordings without a start run, later; transfer and
// ivr off; metrics on a free port; JSON logs at info.
func (e *testEnv) daemon() {
	e.env["ARCHIVER_JOBS_CDR_SCHEDULE"] = "@every 1h"
	e.env["ARCHIVER_JOBS_RECORDINGS_SCHEDULE"] = "CRON_TZ=Asia/Shanghai 5 * * * *"
	e.env["ARCHIVER_JOBS_RECORDINGS_RUN_AT_START"] = "false"
	e.env["ARCHIVER_JOBS_TRANSFER_ENABLED"] = "false"
	e.env["ARCHIVER_JOBS_IVR_ENABLED"] = "false"
	e.env["ARCHIVER_METRICS_LISTEN"] = "127.0.0.1:0"
	e.env["ARCHIVER_LOG_LEVEL"] = "info"
	e.env["ARCHIVER_LOG_FORMAT"] = "json"
}

func TestCmdRun(t *testing.T) {
	e := newTestEnv(t, nil, "")
	e.daemon()

	sigs := make(chan os.Signal, 1)
	ran := make(chan *jobs.Report, 8)
	code, out, errOut := e.runWith(func(c *cli) {
		c.signals = sigs
		c.afterRun = func(job string, rep *jobs.Report, err error) {
			if job != "cdr" {
				t.Errorf("job %s ran; only cdr is due within the test", job)
			}
			if err != nil {
				t.Errorf("cdr run: %v", err)
			}
			select {
			case ran <- rep:
			default:
			}
			select {
			case sigs <- os.Interrupt:
			default:
			}
		}
	}, "run", "--config", e.config)
	if code != exitOK {
		t.Fatalf("run = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	select {
	case rep := <-ran:
		if rep.Windows != 2 {
			t.Errorf("the cdr run did %d windows, want 2", rep.Windows)
		}
	default:
		t.Fatal("no cdr run happened")
	}
	for _, want := range []string{`"job":"recordings"`, `"next_run"`, `"draining`, `"shutdown":"clean"`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("log lacks %s:\n%s", want, errOut)
		}
	}
	// The daemon's run is the cdr job's last run, as status shows it.
	rep, _ := e.statusJSON(t)
	if len(rep.Jobs) == 0 || rep.Jobs[0].Job != "cdr" || rep.Jobs[0].LastRun == nil || rep.Jobs[0].LastRun.Result != checkpoint.RunOK {
		t.Errorf("status jobs %+v; want the daemon's cdr run, ok", rep.Jobs)
	}
}

func TestCmdRun_BadSchedule(t *testing.T) {
	e := newTestEnv(t, nil, "")
	e.env["ARCHIVER_JOBS_CDR_SCHEDULE"] = "CRON_TZ=Mars/Olympus 5 * * * *"
	code, _, errOut := e.run("run", "--config", e.config)
	if code != exitConfig || !strings.Contains(errOut, "jobs.cdr.schedule") {
		t.Errorf("run = %d, want 2; stderr:\n%s", code, errOut)
	}
}

func TestMain_Usage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, exitConfig},
		{[]string{"help"}, exitOK},
		{[]string{"nope"}, exitConfig},
		{[]string{"once", "extra"}, exitConfig},
		{[]string{"status", "-h"}, exitOK},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut syncBuffer
			c := &cli{stdout: &out, stderr: &errOut, env: mapEnv(nil)}
			if code := c.main(tt.args); code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, out.String(), errOut.String())
			}
		})
	}
}

// noStutter fails when an error line of the command's stderr names a layer
// twice ("jobs: cdr: jobs: cdr: …", "query bill data: cec: query bill data"):
// each layer wraps the error once, naming itself. It also wants at least
// one such line, so that it checks something.
func noStutter(t *testing.T, stderr string) {
	t.Helper()
	checked := 0
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "once: ") && !strings.HasPrefix(line, "backfill: ") {
			continue
		}
		checked++
		seen := map[string]bool{}
		for _, part := range strings.Split(line, ": ") {
			// Only the wrapping prefixes: short, lower-case words.
			if len(part) > 24 || strings.ContainsAny(part, "\"=(),0123456789") {
				break
			}
			if seen[part] {
				t.Errorf("error names %q twice: %s", part, line)
			}
			seen[part] = true
		}
	}
	if checked == 0 {
		t.Errorf("no error line in stderr:\n%s", stderr)
	}
}

// TestCmdOnce_CallbacksOnlyWithCDR: the callback receiver is started only
// when the cdr job runs. With cec.callback_listen taken by another process,
// once --job ivr (no package to wait for) runs; once with cdr says the port
// is taken.
func TestCmdOnce_CallbacksOnlyWithCDR(t *testing.T) {
	e := newTestEnv(t, nil, "")
	ln, err := net.Listen("tcp", e.callback)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "ivr"); code != exitOK {
		t.Errorf("once --job ivr with the callback port taken = %d, want 0 (it needs no callbacks)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, _, errOut := e.run("once", "--config", e.config, "--job", "cdr")
	if code == exitOK || !strings.Contains(errOut, "callback: listen "+e.callback) {
		t.Errorf("once --job cdr with the callback port taken = %d, want a failure naming the callback listener\nstderr:\n%s", code, errOut)
	}
}

// TestCmdRun_Reload: SIGHUP with a configuration that does not load is
// refused and logged, and the daemon goes on with the old one; SIGHUP with
// one that loads drains the daemon, which starts again in the same process
// with the new configuration (its start run, its drain budget).
func TestCmdRun_Reload(t *testing.T) {
	e := newTestEnv(t, nil, "")
	e.daemon()

	sigs := make(chan os.Signal, 1)
	ran := make(chan struct{}, 8)
	var live *syncBuffer
	waitLive := func(s string) bool {
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if strings.Contains(live.String(), s) {
				return true
			}
		}
		return false
	}
	orchestrated := make(chan struct{})
	go func() {
		defer close(orchestrated)
		<-ran // the first life's start run of cdr
		good, err := os.ReadFile(e.config)
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(e.config, append(good, "\nno_such_key = 1\n"...), 0o600); err != nil {
			t.Error(err)
			return
		}
		sigs <- syscall.SIGHUP
		if !waitLive("reload refused") {
			t.Error("no reload refused line after SIGHUP with a bad file")
		}
		// A loadable one: a drain budget of 7s tells the second life.
		if err := os.WriteFile(e.config, append(good, "\n[shutdown]\ntimeout = \"7s\"\n"...), 0o600); err != nil {
			t.Error(err)
			return
		}
		sigs <- syscall.SIGHUP
		<-ran // the second life's start run
		sigs <- os.Interrupt
	}()
	code, out, errOut := e.runWith(func(c *cli) {
		c.signals = sigs
		live = c.stderr.(*syncBuffer)
		c.afterRun = func(job string, rep *jobs.Report, err error) {
			if job == "cdr" {
				ran <- struct{}{}
			}
		}
	}, "run", "--config", e.config)
	<-orchestrated
	if code != exitOK {
		t.Fatalf("run = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"reload refused", "no_such_key", "reloading: draining", "reloading: starting again", `"timeout":7`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("log lacks %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, `"msg":"archiver running"`); n != 2 {
		t.Errorf("%d archiver running lines, want 2 (one per life)", n)
	}
}

// notDone lists the items of testTenant's PostgreSQL state that are not
// done, with their state and last error: what a failure explains itself
// with.
func notDone(t *testing.T, dsn string) string {
	st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant, ReadOnly: true})
	if err != nil {
		return err.Error()
	}
	defer st.Close()
	items, err := st.Items(t.Context())
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, it := range items {
		if it.State != checkpoint.StateDone {
			out = append(out, fmt.Sprintf("%s %s (call %s): %s after %d attempts, next %s: %s",
				it.Kind, it.UpstreamID, it.CallID, it.State, it.Attempts, it.NextAttemptAt.Format(time.RFC3339Nano), it.LastError))
		}
	}
	return fmt.Sprintf("%d of %d not done: %s", len(out), len(items), strings.Join(out, "; "))
}
