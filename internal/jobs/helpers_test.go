package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
)

const (
	testAK, testSK      = "testAK", "test-secret-key"
	testTenant          = "tenant-test"
	testAPIPassword     = "test-api-password"
	testPrefix          = "rec"
	ledgerDir           = testPrefix + "/" + testTenant + "/ledger/"
	cdrDir              = testPrefix + "/" + testTenant + "/cdr/"
	quarantineDir       = testPrefix + "/" + testTenant + "/quarantine/"
	parquetDir          = testPrefix + "/parquet/cdr/"
	defaultTestCalls    = 60
	defaultTestDays     = 2
	defaultTestMaxBytes = 24 << 10
)

// testClock is a settable clock shared by the simulator, the client, the
// store and the archiver, so that every party agrees on "now".
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one simulator, client, dir sink, SQLite store and archiver.
type env struct {
	t     *testing.T
	clock *testClock
	sim   *cecsim.Server
	store *sqlite.Store
	dir   *dir.Sink
	root  string
	cb    *Callbacks
	co    cecclient.Options
	a     *Archiver
}

// simStart is the first day of the simulated calls; the clock starts two
// and a half days later, so both days are complete windows.
var simStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

type envOptions struct {
	sim      func(*cecsim.Options)
	client   func(*cecclient.Options)
	archiver func(*Archiver)
	sink     func(sink.Sink) sink.Sink
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	clock := &testClock{t: simStart.Add(60 * time.Hour)}
	log := zap.NewNop()
	so := cecsim.Options{
		Seed: 7, Calls: defaultTestCalls, Days: defaultTestDays, Start: simStart, Location: time.UTC,
		Credentials: map[string]string{testAK: testSK}, TenantID: testTenant, APIPassword: testAPIPassword,
		BillReadyDelay: -1, MinRecordingBytes: 4 << 10, MaxRecordingBytes: defaultTestMaxBytes,
		Now: clock.Now, Logger: log,
	}
	if o.sim != nil {
		o.sim(&so)
	}
	sim, err := cecsim.New(so)
	if err != nil {
		t.Fatalf("cecsim.New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	co := cecclient.Options{
		FSURL: srv.URL, CMSURL: srv.URL, OIFDEURL: srv.URL, AK: testAK, SK: testSK,
		TenantID: testTenant, APIPassword: testAPIPassword, RateLimit: 5000, Burst: 100,
		BaseBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, StallTimeout: 20 * time.Second,
		Logger: log, Now: clock.Now,
	}
	if o.client != nil {
		o.client(&co)
	}
	client, err := cecclient.New(co)
	if err != nil {
		t.Fatalf("cecclient.New: %v", err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"), sqlite.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	root := t.TempDir()
	ds, err := dir.New(dir.Options{Root: root})
	if err != nil {
		t.Fatalf("dir.New: %v", err)
	}
	t.Cleanup(func() { ds.Close() })
	var sk sink.Sink = ds
	if o.sink != nil {
		sk = o.sink(ds)
	}
	keys, err := sink.NewKeyBuilder(testPrefix, sink.DefaultKeyTemplate)
	if err != nil {
		t.Fatalf("NewKeyBuilder: %v", err)
	}
	cb := NewCallbacks(func(ak string) (string, bool) { return testSK, ak == testAK }, log)
	cb.now = clock.Now
	cbSrv := httptest.NewServer(cb)
	t.Cleanup(cbSrv.Close)
	a := &Archiver{
		Client: client, Sink: sk, Store: store, Keys: keys, Prefix: testPrefix,
		Settings: Settings{
			Tenant: testTenant, Location: time.UTC, Window: 24 * time.Hour, Lookback: 2,
			ReadyTimeout: time.Minute, PollInterval: 5 * time.Millisecond, CallbackURL: cbSrv.URL + "/cdr-callback",
			Recordings:           Retry{MaxAttempts: 10, Backoff: time.Millisecond},
			Transfer:             Retry{MaxAttempts: 10, Backoff: time.Millisecond},
			IVR:                  Retry{MaxAttempts: 10, Backoff: time.Millisecond},
			TransferSettleMaxAge: time.Hour, IVRSettleMaxAge: time.Hour,
			Concurrency: 4, SpoolDir: t.TempDir(),
		},
		Callbacks: cb, Log: log, Now: clock.Now,
	}
	if o.archiver != nil {
		o.archiver(a)
	}
	return &env{t: t, clock: clock, sim: sim, store: store, dir: ds, root: root, cb: cb, co: co, a: a}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// objects walks the sink's directory: key → SHA-256 of the content,
// leaving out the sink's own dot-prefixed files.
func (e *env) objects() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.root, p)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		e.t.Fatalf("walk sink: %v", err)
	}
	return out
}

// phoneNumbers returns every caller and callee number in the rows of the
// CDR packages the sink holds: the numbers the simulator's dataset really
// uses, which a check for leaked numbers must search for.
func (e *env) phoneNumbers() []string {
	e.t.Helper()
	seen := map[string]bool{}
	for k := range e.objects() {
		if !strings.HasPrefix(k, cdrDir) || !strings.HasSuffix(k, ".zip") {
			continue
		}
		f, err := os.Open(filepath.Join(e.root, filepath.FromSlash(k)))
		if err != nil {
			e.t.Fatal(err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			e.t.Fatal(err)
		}
		p, err := cdr.Open(f, st.Size(), cdr.DefaultLimits())
		if err == nil {
			for _, kind := range []cdr.Kind{cdr.KindCall, cdr.KindRecord} {
				err = p.Walk(kind, func(r cdr.Row) error {
					for _, col := range []string{"caller_no", "callee_no"} {
						if n := r.Get(kind, col); n != "" {
							seen[n] = true
						}
					}
					return nil
				})
				if err != nil {
					break
				}
			}
		}
		f.Close()
		if err != nil {
			e.t.Fatalf("read CDR package %s: %v", k, err)
		}
	}
	if len(seen) == 0 {
		e.t.Fatal("no caller or callee numbers in the archived CDR packages")
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// recordingObjects are the objects that are neither CDR packages (nor their
// Parquet files) nor ledgers.
func recordingObjects(objs map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range objs {
		if !strings.HasPrefix(k, ledgerDir) && !strings.HasPrefix(k, cdrDir) && !strings.HasPrefix(k, quarantineDir) &&
			!strings.HasPrefix(k, parquetDir) {
			out[k] = v
		}
	}
	return out
}

// archivedByCall returns the archived recordings (done items with a key)
// by call.
func (e *env) archivedByCall() map[string][]checkpoint.Item {
	byCall := map[string][]checkpoint.Item{}
	for _, it := range e.items(checkpoint.StateDone) {
		if it.Key != "" {
			byCall[it.CallID] = append(byCall[it.CallID], it)
		}
	}
	return byCall
}

func (e *env) items(states ...checkpoint.State) []checkpoint.Item {
	e.t.Helper()
	items, err := e.store.Items(context.Background(), states...)
	if err != nil {
		e.t.Fatalf("Items: %v", err)
	}
	return items
}

// itemsByID indexes items by kind and upstream id.
func itemsByID(items []checkpoint.Item) map[string]checkpoint.Item {
	out := map[string]checkpoint.Item{}
	for _, it := range items {
		out[it.Kind+"\x00"+it.UpstreamID] = it
	}
	return out
}

// ledgers reads the newest ledger of each day.
func (e *env) ledgers() map[string]Ledger {
	e.t.Helper()
	newest := map[string]string{}
	for k := range e.objects() {
		if !strings.HasPrefix(k, ledgerDir) || strings.HasPrefix(k, ledgerDir+"head/") {
			continue
		}
		day := strings.Join(strings.Split(strings.TrimPrefix(k, ledgerDir), "/")[:3], "-")
		if k > newest[day] {
			newest[day] = k
		}
	}
	out := map[string]Ledger{}
	for day, k := range newest {
		b, err := os.ReadFile(filepath.Join(e.root, filepath.FromSlash(k)))
		if err != nil {
			e.t.Fatalf("read ledger: %v", err)
		}
		var l Ledger
		if err := json.Unmarshal(b, &l); err != nil {
			e.t.Fatalf("ledger %s: %v", k, err)
		}
		out[day] = l
	}
	return out
}

// countPrefix counts the objects whose key starts with prefix.
func countPrefix(objs map[string]string, prefix string) int {
	n := 0
	for k := range objs {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// checkArchive asserts the archive matches the simulator's manifest: every
// recording done and stored once under its key with the manifest's digest,
// every absent record absent with a reason, every call recorded, nothing
// else stored.
func (e *env) checkArchive(m *cecsim.Manifest) {
	t := e.t
	t.Helper()
	items := itemsByID(e.items())
	objs := e.objects()
	recs := recordingObjects(objs)
	bySum := map[string][]string{}
	for k, sum := range recs {
		bySum[sum] = append(bySum[sum], k)
	}
	for _, r := range m.Recordings {
		it, ok := items[r.Kind+"\x00"+r.ID]
		switch {
		case !ok:
			t.Errorf("%s %s: no item", r.Kind, r.ID)
			continue
		case it.State != checkpoint.StateDone:
			t.Errorf("%s %s: state %s (%s), want done", r.Kind, r.ID, it.State, it.LastError)
			continue
		case it.SHA256 != r.SHA256 || it.Size != r.Size:
			t.Errorf("%s %s: item %d bytes %s, manifest %d bytes %s", r.Kind, r.ID, it.Size, it.SHA256, r.Size, r.SHA256)
		}
		if got := bySum[r.SHA256]; len(got) != 1 || got[0] != it.Key {
			t.Errorf("%s %s: stored under %v, want exactly [%s]", r.Kind, r.ID, got, it.Key)
		}
	}
	if len(recs) != len(m.Recordings) {
		t.Errorf("sink holds %d recording objects, the manifest has %d", len(recs), len(m.Recordings))
	}
	for _, ab := range m.Absent {
		it, ok := items[ab.Kind+"\x00"+ab.ID]
		if !ok || it.State != checkpoint.StateAbsent || it.Reason == "" {
			t.Errorf("absent %s %s (%s): item %+v", ab.Kind, ab.ID, ab.Reason, it)
		}
	}
	for _, c := range m.Calls {
		calls, err := e.store.DayCalls(context.Background(), c.Day)
		if err != nil {
			t.Fatalf("DayCalls: %v", err)
		}
		found := false
		for _, got := range calls {
			found = found || got.CallID == c.CallID
		}
		if !found {
			t.Errorf("call %s (%s): no call row", c.CallID, c.Day)
		}
	}
	if tmp, err := e.dir.TempFiles(); err != nil || len(tmp) > 0 {
		t.Errorf("sink temp files %v (%v), want none", tmp, err)
	}
}

// checkLedgers asserts one parseable ledger per manifest day whose totals
// match the manifest.
func (e *env) checkLedgers(m *cecsim.Manifest, wantComplete bool) {
	t := e.t
	t.Helper()
	want := map[string]*LedgerTotals{}
	callDay := map[string]string{}
	for _, c := range m.Calls {
		if want[c.Day] == nil {
			want[c.Day] = &LedgerTotals{}
		}
		want[c.Day].Calls++
		callDay[c.CallID] = c.Day
	}
	for _, r := range m.Recordings {
		want[callDay[r.CallID]].Archived++
	}
	for _, ab := range m.Absent {
		want[callDay[ab.CallID]].Absent++
	}
	got := e.ledgers()
	if len(got) != len(want) {
		t.Errorf("ledgers for %d days, want %d", len(got), len(want))
	}
	for day, w := range want {
		l, ok := got[day]
		switch {
		case !ok:
			t.Errorf("day %s: no ledger", day)
		case l.Totals != *w:
			t.Errorf("day %s: ledger totals %+v, want %+v", day, l.Totals, *w)
		case l.Complete != wantComplete:
			t.Errorf("day %s: complete %v, want %v", day, l.Complete, wantComplete)
		case len(l.Calls) != w.Calls || l.GeneratedAt == nil || l.Tenant != testTenant || l.Version != 1:
			t.Errorf("day %s: ledger header %+v with %d calls", day, l, len(l.Calls))
		}
	}
}
