package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
)

// pgCluster is a PostgreSQL server of the test's own, made by
// scripts/postgres.sh, that the test may stop and start again: the shared
// test server (pgtest) serves other tests meanwhile.
type pgCluster struct {
	t   *testing.T
	dsn string
	dir string
}

// newPGCluster starts a private cluster, removed when the test ends. It
// skips where there is no test server, as pgtest does: a machine without one
// has no PostgreSQL to start either.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	pgtest.ServerDSN(t)
	script := filepath.Join("..", "..", "scripts", "postgres.sh")
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script, "start")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("postgres.sh start: %v\n%s", err, stderr.String())
	}
	c := &pgCluster{t: t}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		v = strings.Trim(v, "'")
		switch {
		case !ok:
		case k == "ARCHIVER_TEST_POSTGRES_DSN":
			c.dsn = v
		case k == "ARCHIVER_TEST_POSTGRES_DIR":
			c.dir = v
		}
	}
	if c.dir != "" {
		t.Cleanup(func() {
			if out, err := exec.Command("bash", script, "stop", c.dir).CombinedOutput(); err != nil {
				t.Errorf("postgres.sh stop: %v\n%s", err, out)
			}
		})
	}
	if c.dsn == "" || c.dir == "" {
		t.Fatalf("postgres.sh start printed no DSN or directory:\n%s", out)
	}
	return c
}

// pgCtl runs the cluster's pg_ctl (next to the postgres binary that
// postmaster.opts names) as the postgres user when the test runs as root,
// as postgres.sh does: the server refuses to run as root.
func (c *pgCluster) pgCtl(args ...string) {
	c.t.Helper()
	data := filepath.Join(c.dir, "data")
	opts, err := os.ReadFile(filepath.Join(data, "postmaster.opts"))
	if err != nil {
		c.t.Fatal(err)
	}
	bin, _, _ := strings.Cut(string(opts), " ")
	argv := append([]string{filepath.Join(filepath.Dir(bin), "pg_ctl"), "-D", data, "-w", "-t", "60", "-s"}, args...)
	if os.Getuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		c.t.Fatalf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// stop stops the server the way an operator's restart or a failover does:
// every session is ended and new connections are refused.
func (c *pgCluster) stop() { c.pgCtl("-m", "fast", "stop") }

// start starts the stopped server again, with the options it had
// (postmaster.opts): restart starts a server that is not running.
func (c *pgCluster) start() {
	c.pgCtl("-l", filepath.Join(c.dir, "server.log"), "restart")
}

// recordingDownloads counts the simulator's recording downloads so far.
func recordingDownloads(sim *cecsim.Server) int {
	n := 0
	for _, p := range []string{cecwire.PathDownloadRecordFile, cecwire.PathDownloadRecord,
		cecwire.PathDownloadOiapRecord, cecwire.PathCMSDownloadRecordFile} {
		n += sim.Stats().Requests[p]
	}
	return n
}

// TestCmdOnce_DatabaseDown stops the PostgreSQL server while once is
// archiving: the run must stop on its own with exit 1 and errors that name
// the checkpoint database, having recorded nothing it had not stored (no
// item done whose object is missing, no item absent). Once the server is
// back and the stopped run's leases have expired, a rerun archives every
// recording exactly once, downloading again only what the stopped run had
// not recorded as done.
func TestCmdOnce_DatabaseDown(t *testing.T) {
	pg := newPGCluster(t)
	const lease = 10 * time.Second // the shortest checkpoint.lease: the rerun waits for it
	slow := cecsim.Fault{Kind: cecsim.FaultSlow, Path: cecwire.PathDownloadRecordFile, DelayMS: 300}
	e := newTestEnv(t, []cecsim.Fault{slow}, "")
	e.env["ARCHIVER_CHECKPOINT_DRIVER"] = "postgres"
	e.env["ARCHIVER_CHECKPOINT_DSN"] = pg.dsn
	e.env["ARCHIVER_CHECKPOINT_LEASE"] = lease.String()
	u, err := url.Parse(pg.dsn)
	if err != nil {
		t.Fatal("the cluster's DSN is not a URL")
	}
	password, _ := u.User.Password()
	database := fmt.Sprintf("postgres database %q on %s as %q", strings.TrimPrefix(u.Path, "/"), u.Host, u.User.Username())
	m := e.sim.Manifest()
	if len(m.Absent) > 0 {
		t.Fatalf("the dataset has %d absent records: this test needs one where every record has its recording", len(m.Absent))
	}

	// The run, and the server stopped once a few recordings are stored.
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := e.run("once", "--config", e.config)
		done <- result{code, out, errOut}
	}()
	var (
		res     result
		stopped time.Time
	)
	deadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case res = <-done:
			break wait
		case <-deadline:
			t.Fatal("once did not end within 2 minutes of its start")
		case <-time.After(20 * time.Millisecond):
			if _, err := os.Stat(e.archive); err == nil && stopped.IsZero() && countFiles(t, e.archive) >= 2 {
				pg.stop()
				stopped = time.Now()
			}
		}
	}
	if stopped.IsZero() {
		t.Fatalf("once ended before the server was stopped (exit %d)\nstdout:\n%s\nstderr:\n%s", res.code, res.out, res.errOut)
	}
	t.Logf("once ended %s after the server stopped\nstdout:\n%s\nstderr:\n%s", time.Since(stopped).Round(time.Millisecond), res.out, res.errOut)
	if res.code != exitFailed {
		t.Errorf("once = %d, want 1: the checkpoint database is gone", res.code)
	}
	if !strings.Contains(res.errOut, "once: jobs: checkpoint ") || !strings.Contains(res.errOut, " on "+database+": ") {
		t.Errorf("stderr does not say that the checkpoint store call on %s failed", database)
	}
	if password != "" && strings.Contains(res.out+res.errOut, password) {
		t.Error("once printed the DSN's password")
	}

	// What the stopped run recorded is true of the archive.
	pg.start()
	st, err := postgres.Open(t.Context(), postgres.Options{DSN: pg.dsn, Tenant: testTenant, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	items, err := st.Items(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for _, it := range items {
		switch it.State {
		case checkpoint.StateDone:
			if it.Key == "" {
				continue // a lookup: nothing stored
			}
			recorded++
			b, err := os.ReadFile(filepath.Join(e.archive, filepath.FromSlash(it.Key)))
			sum := sha256.Sum256(b)
			if err != nil || int64(len(b)) != it.Size || hex.EncodeToString(sum[:]) != it.SHA256 {
				t.Errorf("item %d (%s %s) is done but its object %s is not the one recorded (%v)", it.ID, it.Kind, it.UpstreamID, it.Key, err)
			}
		case checkpoint.StateAbsent:
			t.Errorf("item %d (%s %s) was marked absent (%s) while the database went away", it.ID, it.Kind, it.UpstreamID, it.Reason)
		case checkpoint.StateInProgress:
			// Held by the stopped run until its lease expires.
			if it.LeaseUntil.After(stopped.Add(lease)) {
				t.Errorf("item %d is leased until %s, more than checkpoint.lease after the server stopped", it.ID, it.LeaseUntil)
			}
		}
	}
	if recorded == len(m.Recordings) {
		t.Fatalf("the stopped run recorded all %d recordings: stop the server earlier", recorded)
	}

	// The rerun, once the stopped run's leases (items, windows, ledger
	// days) have expired.
	e.sim.ClearFaults()
	time.Sleep(time.Until(stopped.Add(lease + time.Second)))
	before := recordingDownloads(e.sim)
	code, out, errOut := e.run("once", "--config", e.config)
	if code != exitOK || !strings.Contains(out, " 0 failed, 0 dead, ") {
		t.Fatalf("rerun = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got, want := recordingDownloads(e.sim)-before, len(m.Recordings)-recorded; got != want {
		t.Errorf("the rerun downloaded %d recordings, want %d: those the stopped run had not recorded as done", got, want)
	}
	if got := countFiles(t, e.archive); got != len(m.Recordings) {
		t.Errorf("%d files archived, the simulator has %d recordings", got, len(m.Recordings))
	}
	items, err = st.Items(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // upstream ID -> digest
	for _, r := range m.Recordings {
		want[r.ID] = r.SHA256
	}
	for _, it := range items {
		if it.Key == "" {
			continue
		}
		if it.State != checkpoint.StateDone || it.SHA256 != want[it.UpstreamID] {
			t.Errorf("item %d (%s %s): %s, digest %q, want done with the simulator's %q", it.ID, it.Kind, it.UpstreamID, it.State, it.SHA256, want[it.UpstreamID])
		}
		delete(want, it.UpstreamID)
	}
	for id := range want {
		t.Errorf("recording %s has no item", id)
	}
	if code, out, errOut := e.run("verify", "--config", e.config); code != exitOK {
		t.Errorf("verify = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
