package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// archiverBin is the archiver binary built once by TestMain.
var archiverBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "archiver-acceptance-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		archiverBin = filepath.Join(dir, "archiver")
		build := exec.Command("go", "build", "-o", archiverBin, "github.com/cec-archiver/cec-archiver/cmd/archiver")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "acceptance: build archiver:", err)
			return 1
		}
		return m.Run()
	}())
}

// Credentials shared by the simulator and the archiver's configuration.
const (
	simAK          = "acceptanceAK"
	simSK          = "acceptance-secret-key"
	simTenant      = "tenant-acc"
	simAPIPassword = "acceptance-api-password"
)

// env is one simulator, one bucket on a real S3 server and one archiver
// configuration with its own state file, or its tenant's rows in a
// PostgreSQL database.
type env struct {
	t      *testing.T
	sim    *cecsim.Server
	s3     *s3test.Server
	url    string // the simulator's
	bucket string
	dir    string
	config string
	state  string
	dsn    string // the PostgreSQL state's, when not ""
	tenant string
	runs   int
	// extraEnv holds ARCHIVER_* overrides for every process.
	extraEnv map[string]string
}

// envOptions are the knobs a test turns.
type envOptions struct {
	Calls           int
	Late            int // recordings missing from the CDR until released
	Unavailable     int // recordings listed but not downloadable until released
	ShutdownTimeout time.Duration
	MaxRecording    int64 // largest recording, bytes (default 48 KiB)
	// Sim changes the simulator's options (dataset shapes, faults at start).
	Sim func(*cecsim.Options)
	// Env holds ARCHIVER_* overrides for every archiver process.
	Env map[string]string
	// DSN puts the state in this PostgreSQL database (checkpoint.driver
	// "postgres") instead of a state file.
	DSN string
	// Tenant is cec.tenant_id and the simulator's tenant (default simTenant).
	Tenant string
}

// newEnv starts a simulator holding a dataset of the two complete days before
// today (UTC) and writes an archiver configuration that archives into a new
// versioned bucket.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if o.MaxRecording == 0 {
		o.MaxRecording = 48 << 10
	}
	if o.Tenant == "" {
		o.Tenant = simTenant
	}
	so := cecsim.Options{
		Seed: 7, Calls: o.Calls, Days: 2, Start: today.AddDate(0, 0, -2), Location: time.UTC,
		Credentials: map[string]string{simAK: simSK}, TenantID: o.Tenant, APIPassword: simAPIPassword,
		BillReadyDelay: 300 * time.Millisecond, MinRecordingBytes: 2 << 10, MaxRecordingBytes: o.MaxRecording,
		LateRecordings: o.Late, UnavailableFiles: o.Unavailable,
		Logger: zap.NewNop(),
	}
	if o.Sim != nil {
		o.Sim(&so)
	}
	sim, err := cecsim.New(so)
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(func() {
		hs.Close()
		sim.Close()
	})
	srv := s3test.Start(t)
	e := &env{t: t, sim: sim, s3: srv, url: hs.URL, bucket: srv.NewBucket(t, true), dir: t.TempDir(), dsn: o.DSN, tenant: o.Tenant, extraEnv: o.Env}
	if o.DSN != "" {
		e.extraEnv = map[string]string{"ARCHIVER_CHECKPOINT_DRIVER": "postgres", "ARCHIVER_CHECKPOINT_DSN": o.DSN}
		for k, v := range o.Env {
			e.extraEnv[k] = v
		}
	}
	e.state = filepath.Join(e.dir, "state", "archiver.db")
	e.config = filepath.Join(e.dir, "config.toml")
	shutdown := o.ShutdownTimeout
	if shutdown == 0 {
		shutdown = 10 * time.Second
	}
	cfg := fmt.Sprintf(`
[cec]
fs_url = %[1]q
cms_url = %[1]q
oifde_url = %[1]q
ak = %[2]q
sk = %[3]q
tenant_id = %[4]q
api_password = %[5]q
concurrency = 6
rate_limit = 2000
time_zone = "UTC"
callback_url = "http://%[13]s/cdr-callback"
callback_listen = %[13]q

[sink]
type = "s3"

[sink.s3]
endpoint = %[6]q
region = %[7]q
bucket = %[8]q
path_style = true
access_key = %[9]q
secret_key = %[10]q
prefix = "archive"

[checkpoint]
path = %[11]q

[jobs.cdr]
window = "24h"
lookback_windows = 2
ready_timeout = "2m"

[jobs.recordings]
max_attempts = 10
retry_backoff = "1s"

[jobs.transfer]
settle_max_age = "1h"
retry_backoff = "1s"

[jobs.ivr]
settle_max_age = "1h"
retry_backoff = "1s"

[metrics]
listen = ""

[log]
level = "info"
format = "json"

[shutdown]
timeout = %[12]q
`, hs.URL, simAK, simSK, o.Tenant, simAPIPassword, srv.Endpoint, srv.Region, e.bucket,
		srv.AccessKey, srv.SecretKey, e.state, shutdown.String(), freeAddr(t))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one archiver process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File
	done           chan struct{}
	err            error
}

// start runs "archiver <args> --config FILE" in the background.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	return e.startWith(nil, args...)
}

// startWith is start with more ARCHIVER_* overrides for this process.
func (e *env) startWith(extra map[string]string, args ...string) *proc {
	e.t.Helper()
	e.runs++
	base := filepath.Join(e.dir, fmt.Sprintf("run%03d", e.runs))
	stdout, err := os.Create(base + ".out")
	if err != nil {
		e.t.Fatal(err)
	}
	stderr, err := os.Create(base + ".err")
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(archiverBin, append(args, "--config", e.config)...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), "ARCHIVER_CONFIG=")
	for k, v := range e.extraEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start archiver: %v", err)
	}
	p := &proc{cmd: cmd, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		stdout.Close()
		stderr.Close()
	})
	return p
}

// wait waits for the process (at most limit) and returns its exit code.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("archiver %v did not exit within %v\nstderr:\n%s", p.cmd.Args[1:], limit, p.tail())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("archiver: %v", p.err)
	}
	return 0
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) output() (string, string) {
	o, _ := os.ReadFile(p.stdout.Name())
	e, _ := os.ReadFile(p.stderr.Name())
	return string(o), string(e)
}

// tail is the end of the process's output, for failure messages.
func (p *proc) tail() string {
	o, e := p.output()
	const n = 4000
	if len(e) > n {
		e = "…" + e[len(e)-n:]
	}
	return "stdout:\n" + o + "\nstderr:\n" + e
}

// once runs "archiver once" to its end and returns the exit code.
func (e *env) once(args ...string) (int, *proc) {
	e.t.Helper()
	p := e.start(append([]string{"once"}, args...)...)
	return p.wait(e.t, 5*time.Minute), p
}

// onceUntilClean runs "archiver once" until it exits 0, at most max times,
// pausing past the configured retry backoff between runs.
func (e *env) onceUntilClean(max int) int {
	e.t.Helper()
	for i := 1; i <= max; i++ {
		code, p := e.once()
		if code == 0 {
			return i
		}
		if code != 1 {
			e.t.Fatalf("once #%d: exit %d, want 0 or 1\n%s", i, code, p.tail())
		}
		e.t.Logf("once #%d: exit 1 (some items failed); running again", i)
		time.Sleep(1500 * time.Millisecond)
	}
	e.t.Fatalf("archiver once did not complete cleanly in %d runs", max)
	return 0
}

// object is a stored object, read back and hashed by the test itself.
type object struct {
	Key      string
	Size     int64
	SHA256   string
	Versions int
}

// objects lists every object version in the bucket, and reads and hashes the
// current version of each key.
func (e *env) objects() map[string]*object {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := e.s3.Client()
	out := map[string]*object{}
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket)}, func(o *s3.ListObjectVersionsPaginatorOptions) {})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			e.t.Fatalf("list object versions: %v", err)
		}
		for _, dm := range page.DeleteMarkers {
			e.t.Errorf("delete marker on %s: something deleted an archived object", aws.ToString(dm.Key))
		}
		for _, v := range page.Versions {
			k := aws.ToString(v.Key)
			if strings.Contains(k, "/.cec-archiver/") {
				continue // the sink's own probe of conditional writes
			}
			if out[k] == nil {
				out[k] = &object{Key: k}
			}
			out[k].Versions++
		}
	}
	for k, o := range out {
		r, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k)})
		if err != nil {
			e.t.Fatalf("get %s: %v", k, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		r.Body.Close()
		if err != nil {
			e.t.Fatalf("read %s: %v", k, err)
		}
		o.Size, o.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// ledger is the part of a day's ledger object the tests check.
type ledger struct {
	Version     int       `json:"version"`
	Tenant      string    `json:"tenant"`
	Day         string    `json:"day"`
	GeneratedAt time.Time `json:"generated_at"`
	Complete    bool      `json:"complete"`
	Totals      struct {
		Calls    int `json:"calls"`
		Archived int `json:"archived"`
		Absent   int `json:"absent"`
		Pending  int `json:"pending"`
		Failed   int `json:"failed"`
		Dead     int `json:"dead"`
	} `json:"totals"`
	Calls []struct {
		CallID     string `json:"call_id"`
		Recordings []struct {
			Kind   string `json:"kind"`
			ID     string `json:"id"`
			State  string `json:"state"`
			Key    string `json:"key"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
			Reason string `json:"reason"`
		} `json:"recordings"`
	} `json:"calls"`
}

// isLedger and isCDR tell the archiver's own objects from recordings by
// their place in the layout ({prefix}/{tenant}/ledger/…, …/cdr/…), whatever
// the tenant.
func isLedger(key string) bool     { return layoutDir(key) == "ledger" }
func isCDR(key string) bool        { return layoutDir(key) == "cdr" }
func isQuarantine(key string) bool { return layoutDir(key) == "quarantine" }

// layoutDir is the directory under {prefix}/{tenant}/ that key is in.
func layoutDir(key string) string {
	parts := strings.SplitN(key, "/", 4)
	if len(parts) < 4 {
		return ""
	}
	return parts[2]
}

// verify is the acceptance check: every recording of the manifest (late and
// unavailable ones included, once released) is stored exactly once, under
// one key, with its SHA-256; no object was overwritten; every done item of
// the checkpoint has its object; and the newest ledger of each day accounts
// for every call, recording and absent record.
func (e *env) verify() {
	e.t.Helper()
	m := e.sim.Manifest()
	objs := e.objects()

	bySHA := map[string][]string{}
	for k, o := range objs {
		if o.Versions != 1 {
			e.t.Errorf("%s has %d versions: an object was overwritten", k, o.Versions)
		}
		if !isLedger(k) && !isCDR(k) && !isQuarantine(k) {
			bySHA[o.SHA256] = append(bySHA[o.SHA256], k)
		}
	}
	want := map[string]bool{}
	missing, dup := 0, 0
	for _, r := range m.Recordings {
		want[r.SHA256] = true
		switch keys := bySHA[r.SHA256]; len(keys) {
		case 1:
		case 0:
			missing++
			if missing <= 10 {
				e.t.Errorf("missing: %s recording %s of call %s (late %v, unavailable %v)", r.Kind, r.ID, r.CallID, r.Late, r.Unavailable)
			}
		default:
			dup++
			e.t.Errorf("stored %d times: %s recording %s under %v", len(keys), r.Kind, r.ID, keys)
		}
	}
	stray := 0
	for sha, keys := range bySHA {
		if !want[sha] {
			stray++
			e.t.Errorf("object(s) %v hold no recording of the manifest", keys)
		}
	}

	// Every done item of the checkpoint has its object, with the recorded size and digest.
	store := e.openState()
	defer store.Close()
	ctx := context.Background()
	done, err := store.Items(ctx, checkpoint.StateDone)
	if err != nil {
		e.t.Fatal(err)
	}
	doneWithout := 0
	recordingItems := 0
	for _, it := range done {
		if it.Key == "" {
			continue // a lookup
		}
		recordingItems++
		o := objs["archive/"+it.Key]
		if o == nil {
			o = objs[it.Key]
		}
		switch {
		case o == nil:
			doneWithout++
			e.t.Errorf("item %d (%s %s) is done but %s is not in the bucket", it.ID, it.Kind, it.UpstreamID, it.Key)
		case o.SHA256 != it.SHA256 || o.Size != it.Size:
			doneWithout++
			e.t.Errorf("item %d (%s %s): checkpoint says %d bytes %s, bucket holds %d bytes %s", it.ID, it.Kind, it.UpstreamID, it.Size, it.SHA256, o.Size, o.SHA256)
		}
	}
	if recordingItems != len(m.Recordings) {
		e.t.Errorf("checkpoint has %d done recording items, manifest %d recordings", recordingItems, len(m.Recordings))
	}
	bad, err := store.Items(ctx, checkpoint.StatePending, checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, it := range bad {
		if i < 10 {
			e.t.Errorf("item %d (%s %s of call %s) is %s: %s", it.ID, it.Kind, it.UpstreamID, it.CallID, it.State, it.LastError)
		}
	}

	e.checkLedgers(m, objs)
	e.verifyDeep()
	e.t.Logf("verified: %d recordings, %d absent records, %d calls; missing %d, duplicates %d, stray %d, done-without-object %d, unfinished items %d",
		len(m.Recordings), len(m.Absent), len(m.Calls), missing, dup, stray, doneWithout, len(bad))
}

// verifyDeep runs "archiver verify --deep": the archive's own check must
// agree that nothing is missing, altered or unexpected.
func (e *env) verifyDeep() {
	e.t.Helper()
	p := e.start("verify", "--deep")
	if code := p.wait(e.t, 5*time.Minute); code != 0 {
		e.t.Errorf("archiver verify --deep: exit %d, want 0\n%s", code, p.tail())
	}
}

// checkLedgers reads the newest ledger of each day and compares it with the manifest.
func (e *env) checkLedgers(m *cecsim.Manifest, objs map[string]*object) {
	e.t.Helper()
	ctx := context.Background()
	newest := map[string]*ledger{}
	for k := range objs {
		if !isLedger(k) {
			continue
		}
		r, err := e.s3.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k)})
		if err != nil {
			e.t.Fatalf("get %s: %v", k, err)
		}
		var l ledger
		err = json.NewDecoder(r.Body).Decode(&l)
		r.Body.Close()
		if err != nil {
			e.t.Fatalf("ledger %s: %v", k, err)
		}
		if cur := newest[l.Day]; cur == nil || l.GeneratedAt.After(cur.GeneratedAt) {
			newest[l.Day] = &l
		}
	}
	recByID := map[string]cecsim.ManifestRecording{}
	for _, r := range m.Recordings {
		recByID[r.Kind+"/"+r.ID] = r
	}
	absentByID := map[string]cecsim.ManifestAbsent{}
	for _, a := range m.Absent {
		absentByID[a.Kind+"/"+a.ID] = a
	}
	days := map[string][]cecsim.ManifestCall{}
	for _, c := range m.Calls {
		days[c.Day] = append(days[c.Day], c)
	}
	var dayNames []string
	for d := range days {
		dayNames = append(dayNames, d)
	}
	sort.Strings(dayNames)
	for _, day := range dayNames {
		l := newest[day]
		if l == nil {
			e.t.Errorf("no ledger for %s", day)
			continue
		}
		if !l.Complete {
			e.t.Errorf("ledger %s is not complete: %+v", day, l.Totals)
		}
		if l.Totals.Calls != len(days[day]) || len(l.Calls) != len(days[day]) {
			e.t.Errorf("ledger %s: %d calls (totals %d), manifest %d", day, len(l.Calls), l.Totals.Calls, len(days[day]))
		}
		inLedger := map[string]bool{}
		archived, absent := 0, 0
		for _, c := range l.Calls {
			inLedger[c.CallID] = true
			for _, r := range c.Recordings {
				id := r.Kind + "/" + r.ID
				switch r.State {
				case "done":
					archived++
					mr, ok := recByID[id]
					if !ok {
						e.t.Errorf("ledger %s: archived %s is not in the manifest", day, id)
					} else if mr.SHA256 != r.SHA256 || mr.Size != r.Size {
						e.t.Errorf("ledger %s: %s has %d bytes %s, manifest %d bytes %s", day, id, r.Size, r.SHA256, mr.Size, mr.SHA256)
					}
				case "absent":
					absent++
					if _, ok := absentByID[id]; !ok {
						e.t.Errorf("ledger %s: %s is absent (%s) but the manifest has a recording for it", day, id, r.Reason)
					}
					if r.Reason == "" {
						e.t.Errorf("ledger %s: %s is absent without a reason", day, id)
					}
				default:
					e.t.Errorf("ledger %s: %s is %s", day, id, r.State)
				}
			}
		}
		for _, c := range days[day] {
			if !inLedger[c.CallID] {
				e.t.Errorf("ledger %s: call %s missing", day, c.CallID)
			}
		}
		wantArchived, wantAbsent := 0, 0
		for _, r := range m.Recordings {
			if dayOf(m, r.CallID) == day {
				wantArchived++
			}
		}
		for _, a := range m.Absent {
			if dayOf(m, a.CallID) == day {
				wantAbsent++
			}
		}
		if archived != wantArchived || absent != wantAbsent {
			e.t.Errorf("ledger %s: %d archived, %d absent; manifest %d recordings, %d absent", day, archived, absent, wantArchived, wantAbsent)
		}
	}
}

func dayOf(m *cecsim.Manifest, callID string) string {
	for _, c := range m.Calls {
		if c.CallID == callID {
			return c.Day
		}
	}
	return ""
}

// openState opens the checkpoint read-only: the state file, or the
// tenant's rows in the PostgreSQL database.
func (e *env) openState() checkpoint.Store {
	e.t.Helper()
	var (
		store checkpoint.Store
		err   error
	)
	if e.dsn != "" {
		store, err = postgres.Open(context.Background(), postgres.Options{DSN: e.dsn, Tenant: e.tenant, ReadOnly: true})
	} else {
		store, err = sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
	}
	if err != nil {
		e.t.Fatalf("open checkpoint: %v", err)
	}
	return store
}

// itemsIn returns the checkpoint's items in the given states (read-only open).
func (e *env) itemsIn(states ...checkpoint.State) []checkpoint.Item {
	e.t.Helper()
	store := e.openState()
	defer store.Close()
	items, err := store.Items(context.Background(), states...)
	if err != nil {
		e.t.Fatal(err)
	}
	return items
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// contains is strings.Contains on a file's content.
func fileContains(path, s string) bool {
	b, _ := os.ReadFile(path)
	return bytes.Contains(b, []byte(s))
}
