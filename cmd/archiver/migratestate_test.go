package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

// downloads counts the recording downloads the simulator answered.
func (e *testEnv) downloads() int {
	st := e.sim.Stats()
	return st.Requests[cecwire.PathDownloadRecordFile] + st.Requests[cecwire.PathDownloadRecord] +
		st.Requests[cecwire.PathDownloadOiapRecord] + st.Requests[cecwire.PathCMSDownloadRecordFile]
}

// archiveListing lists every object of the archive directory with its size
// and modification time: what a run that writes nothing leaves as it was.
func archiveListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %d %s\n", rel, fi.Size(), fi.ModTime())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ledgers returns each day's ledger record (digest and key) of a store.
func ledgers(t *testing.T, s checkpoint.Store) map[string]string {
	t.Helper()
	days, err := s.Days(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range days {
		sum, key, ok, err := s.Ledger(t.Context(), d.Day)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out[d.Day] = sum + " " + key
		}
	}
	return out
}

// dsnPassword returns the password of a URL DSN, the DSN itself otherwise:
// what must never be printed.
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		if pw, ok := u.User.Password(); ok {
			return pw
		}
	}
	return dsn
}

// row returns the fields of the first line of out whose first field is
// name and that has n fields, nil when there is none.
func row(out, name string, n int) []string {
	for l := range strings.Lines(out) {
		if f := strings.Fields(l); len(f) == n && f[0] == name {
			return f
		}
	}
	return nil
}

// TestCmdMigrateState: archiver migrate-state copies the SQLite state into
// PostgreSQL (needs the test server), refuses a locked state, and never
// prints the DSN's password.
func TestCmdMigrateState(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		t.Run("once finds nothing to do", func(t *testing.T) { testMigrateOnce(t) })
		t.Run("checkpoint.dsn", func(t *testing.T) { testMigrateConfigDSN(t) })
	})

	// An archiver holds the state: refused before anything is read, and
	// the password of --to is printed nowhere.
	t.Run("state locked", func(t *testing.T) {
		const canary = "canary-dsn-pw-77e1"
		e := newTestEnv(t, nil, "")
		held, err := sqlite.Open(e.state, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		code, out, errOut := e.run("migrate-state", "--config", e.config, "--to", "postgres://archiver:"+canary+"@127.0.0.1:1/archiver?connect_timeout=5")
		want := fmt.Sprintf("migrate-state: another archiver is running on %s (pid %d)", e.state, os.Getpid())
		if code != exitFailed || !strings.Contains(errOut, want) {
			t.Errorf("migrate-state = %d, want 1 and %q; stderr:\n%s", code, want, errOut)
		}
		if strings.Contains(out+errOut, canary) {
			t.Errorf("migrate-state printed the DSN's password:\n%s", out+errOut)
		}
	})

	t.Run("unreachable target", func(t *testing.T) {
		const canary = "canary-dsn-pw-90b2"
		e := newTestEnv(t, nil, "")
		if code, _, errOut := e.run("once", "--config", e.config, "--job", "cdr"); code != exitOK {
			t.Fatalf("once = %d\n%s", code, errOut)
		}
		e.env["ARCHIVER_LOG_LEVEL"] = "debug"
		code, out, errOut := e.run("migrate-state", "--config", e.config, "--to", "postgres://archiver:"+canary+"@127.0.0.1:1/archiver?connect_timeout=5")
		if code != exitFailed || !strings.Contains(errOut, "migrate-state: checkpoint: postgres: ") {
			t.Errorf("migrate-state = %d, want 1 and the store's error; stderr:\n%s", code, errOut)
		}
		if strings.Contains(out+errOut, canary) {
			t.Errorf("migrate-state printed the DSN's password:\n%s", out+errOut)
		}
	})

	t.Run("usage", func(t *testing.T) {
		e := newTestEnv(t, nil, "")
		dsnFile := filepath.Join(e.dir, "dsn")
		if err := os.WriteFile(dsnFile, []byte("postgres://x@127.0.0.1:1/x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"--to", "postgres://x@127.0.0.1:1/x", "--to-dsn-file", dsnFile}, exitConfig, "--to and --to-dsn-file: give one of them"},
			{nil, exitConfig, "migrate-state: no target: give --to-dsn-file FILE"},
			{[]string{"--to-dsn-file", filepath.Join(e.dir, "nope")}, exitConfig, "migrate-state: --to-dsn-file: cannot read "},
			{[]string{"--to-dsn-file", dsnFile}, exitFailed, "migrate-state: no state file at " + e.state + " (checkpoint.path)"},
			{[]string{"extra"}, exitConfig, `unexpected argument "extra"`},
		} {
			code, _, errOut := e.run(append([]string{"migrate-state", "--config", e.config}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("migrate-state %v = %d, want %d and %q; stderr:\n%s", tt.args, code, tt.code, tt.want, errOut)
			}
		}
		if _, err := os.Stat(e.state); err == nil {
			t.Error("migrate-state created a state file")
		}
	})
}

// testMigrateOnce is the acceptance point: migrate-state on the state of a
// finished SQLite run gives a PostgreSQL state on which once finds nothing
// to do: no recording downloaded again, no object written, the ledgers as
// they were.
func testMigrateOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	e := newTestEnv(t, nil, "")
	code, out, errOut := e.run("once", "--config", e.config)
	if code != exitOK {
		t.Fatalf("once on SQLite = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	src, err := sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	wantLedgers := ledgers(t, src)
	wantJobs := jobRecords(t, src)
	items, err := src.Items(t.Context())
	src.Close()
	if err != nil || len(wantLedgers) == 0 || len(items) == 0 {
		t.Fatalf("the SQLite run left %d items and %d ledgers (%v)", len(items), len(wantLedgers), err)
	}
	dsnFile := filepath.Join(e.dir, "target.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env["ARCHIVER_LOG_LEVEL"] = "debug"
	code, out, errOut = e.run("migrate-state", "--config", e.config, "--to-dsn-file", dsnFile)
	if code != exitOK {
		t.Fatalf("migrate-state = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, dsnPassword(dsn)) {
		t.Error("migrate-state printed the DSN or its password")
	}
	delete(e.env, "ARCHIVER_LOG_LEVEL")
	t.Logf("migrate-state:\n%s", out)
	for _, want := range []string{"migrate-state: " + e.state + " into tenant " + testTenant, "\nmigrate-state: verified\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	n := fmt.Sprint(len(items))
	if got, want := row(out, "items", 5), []string{"items", n, n, "0", n}; !slices.Equal(got, want) {
		t.Errorf("items row %q, want %q:\n%s", got, want, out)
	}
	if got, want := row(out, "done", 3), []string{"done", n, n}; !slices.Equal(got, want) {
		t.Errorf("done row %q, want %q (every item of the finished run is done):\n%s", got, want, out)
	}
	// Every job's last success and last run.
	for _, table := range []string{checkpoint.TableJobSuccesses, checkpoint.TableJobRuns} {
		if got, want := row(out, table, 5), []string{table, "4", "4", "0", "4"}; !slices.Equal(got, want) {
			t.Errorf("%s row %q, want %q:\n%s", table, got, want, out)
		}
	}
	copied, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := jobRecords(t, copied); got != wantJobs {
		t.Errorf("last successes and runs in PostgreSQL:\n%s\nwant the SQLite state's:\n%s", got, wantJobs)
	}
	copied.Close()

	// Again: nothing new, every row found; as JSON.
	code, out, errOut = e.run("migrate-state", "--config", e.config, "--to-dsn-file", dsnFile, "--json")
	if code != exitOK {
		t.Fatalf("migrate-state again = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var sum migrateSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if !sum.Verified || len(sum.Tables) != len(checkpoint.Tables()) || sum.Tenant != testTenant || sum.Problems == nil {
		t.Errorf("summary %+v", sum)
	}
	for _, ti := range sum.Tables {
		if ti.Inserted != 0 || ti.Present != ti.Source || ti.Target != ti.Source {
			t.Errorf("second run, %s: %+v; want every row present, none inserted", ti.Table, ti)
		}
	}

	// once on PostgreSQL, same simulator and sink.
	listing, downloads := archiveListing(t, e.archive), e.downloads()
	e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
	e.env["ARCHIVER_CHECKPOINT_DSN_FILE"] = dsnFile
	code, out, errOut = e.run("once", "--config", e.config)
	if code != exitOK {
		t.Fatalf("once on PostgreSQL = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, " 0 new items, 0 done (0 already stored), ") {
		t.Errorf("once on PostgreSQL did something:\n%s", out)
	}
	if n := e.downloads() - downloads; n != 0 {
		t.Errorf("once on PostgreSQL downloaded %d recordings again", n)
	}
	if after := archiveListing(t, e.archive); after != listing {
		t.Errorf("once on PostgreSQL wrote to the archive:\nbefore:\n%s\nafter:\n%s", listing, after)
	}
	dst, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Tenant: testTenant, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got := ledgers(t, dst)
	if fmt.Sprint(got) != fmt.Sprint(wantLedgers) {
		t.Errorf("ledgers after once on PostgreSQL:\n%v\nwant\n%v", got, wantLedgers)
	}

	// That run re-requested the lookback windows: the tenant's state
	// is its own now, and a copy over it is refused.
	delete(e.env, "ARCHIVER_CHECKPOINT_DRIVER")
	delete(e.env, "ARCHIVER_CHECKPOINT_DSN_FILE")
	code, out, errOut = e.run("migrate-state", "--config", e.config, "--to-dsn-file", dsnFile)
	if code != exitFailed || !strings.Contains(errOut, "migrate-state: refused: checkpoint: postgres: import into tenant \""+testTenant+"\": checkpoint: the tenant already has a different state") ||
		!strings.Contains(errOut, "packages: ") || out != "" {
		t.Errorf("migrate-state over a state that moved on = %d, want 1 and refused\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// jobRecords describes every job's last success and last run in st.
func jobRecords(t *testing.T, st checkpoint.Store) string {
	t.Helper()
	var b strings.Builder
	for _, job := range config.JobNames() {
		s, sok, err := st.LastSuccess(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		r, rok, err := st.LastRun(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		if !sok || !rok || r.Result != checkpoint.RunOK {
			t.Errorf("%s: last success %v, last run %+v (%v); want both, ok", job, sok, r, rok)
		}
		fmt.Fprintf(&b, "%s: success %s, run %+v\n", job, s, r)
	}
	return b.String()
}

// testMigrateConfigDSN: the target named by checkpoint.dsn; and a copy
// under another tenant of the same database, a state of its own.
func testMigrateConfigDSN(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	e := newTestEnv(t, nil, "")
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "cdr"); code != exitOK {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	e.env["ARCHIVER_CHECKPOINT_DSN"] = dsn
	code, out, errOut := e.run("migrate-state", "--config", e.config)
	if code != exitOK || !strings.Contains(out, "migrate-state: verified") {
		t.Fatalf("migrate-state = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	e.env["ARCHIVER_CEC_TENANT_ID"] = "another-tenant"
	code, out, errOut = e.run("migrate-state", "--config", e.config, "--to", dsn)
	if code != exitOK || !strings.Contains(out, "into tenant another-tenant") {
		t.Fatalf("migrate-state to another tenant = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, dsnPassword(dsn)) {
		t.Error("migrate-state printed the DSN or its password")
	}
}
