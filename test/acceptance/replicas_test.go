package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// replicaLease is checkpoint.lease in the replica tests: the shortest the
// configuration takes (config.MinLease), so that the items of a killed
// replica are claimed again soon.
const replicaLease = "10s"

// slotServer serves the simulator to one replica slot (every process
// started in that slot, across its restarts) on a listener of its own, and
// counts the recording downloads it answers: the simulator's side of who
// downloaded what, whatever the archivers say of themselves.
type slotServer struct {
	*httptest.Server
	sim http.Handler

	mu        sync.Mutex
	requests  int            // recording download requests
	completed map[string]int // recording → downloads answered in full
}

func newSlotServer(t *testing.T, sim http.Handler) *slotServer {
	s := &slotServer{sim: sim, completed: map[string]int{}}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

// recordingPaths are the interfaces that answer a recording's bytes.
var recordingPaths = []string{
	cecwire.PathDownloadRecordFile, cecwire.PathDownloadRecord,
	cecwire.PathDownloadOiapRecord, cecwire.PathCMSDownloadRecordFile,
}

func (s *slotServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !slices.Contains(recordingPaths, r.URL.Path) {
		s.sim.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// CC-FS bodies are {"request": …, "msgBody": {…}}; CC-CMS names the
	// file at the top level.
	type names struct {
		FileName string `json:"fileName"`
		CallID   string `json:"callId"`
	}
	var b struct {
		names
		MsgBody names `json:"msgBody"`
	}
	_ = json.Unmarshal(body, &b) // a body the simulator refuses is not counted as complete anyway
	id := fmt.Sprintf("%s?%s %s %s %s %s", r.URL.Path, r.URL.RawQuery, b.MsgBody.FileName, b.MsgBody.CallID, b.FileName, b.CallID)
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	cw := &countingWriter{ResponseWriter: w}
	defer func() {
		// A reset fault aborts the handler with a panic: not complete.
		if v := recover(); v != nil {
			panic(v)
		}
		size, err := strconv.ParseInt(cw.Header().Get("Content-Length"), 10, 64)
		if cw.status == http.StatusOK && cw.Header().Get("Content-Type") == cecwire.ContentTypeOctetStream && err == nil && cw.n == size {
			s.mu.Lock()
			s.completed[id]++
			s.mu.Unlock()
		}
	}()
	s.sim.ServeHTTP(cw, r)
}

// counts returns the requests, the complete downloads and the recordings.
func (s *slotServer) counts() (requests, complete int, recordings map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recordings = map[string]int{}
	for id, n := range s.completed {
		recordings[id] = n
		complete += n
	}
	return s.requests, complete, recordings
}

// countingWriter counts the body bytes written without an error and keeps
// the status. Unwrap lets http.ResponseController reach the connection
// (flushes of trickled bodies, the reset fault's hijack).
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	if err == nil {
		w.n += int64(n)
	}
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// replicaSlot is one of the replicas: its own address of the simulator and
// of its callback receiver, and the process running in it now.
type replicaSlot struct {
	n       int
	srv     *slotServer
	env     map[string]string
	p       *proc
	replica string // the running process's replica ID, once logged
	runs    int
	kills   int
	held    int // items the slot's processes held when they were killed
}

func newReplicaSlot(t *testing.T, e *env, n int) *replicaSlot {
	srv := newSlotServer(t, e.sim)
	cb := freeAddr(t)
	return &replicaSlot{n: n, srv: srv, env: map[string]string{
		"ARCHIVER_CEC_FS_URL": srv.URL, "ARCHIVER_CEC_CMS_URL": srv.URL, "ARCHIVER_CEC_OIFDE_URL": srv.URL,
		"ARCHIVER_CEC_CALLBACK_LISTEN": cb, "ARCHIVER_CEC_CALLBACK_URL": "http://" + cb + "/cdr-callback",
	}}
}

var replicaLogRE = regexp.MustCompile(`"replica":\s*"([^"]+)"`)

// replicaID is the replica ID the slot's process logged, "" before it has.
func (s *replicaSlot) replicaID() string {
	if s.replica == "" && s.p != nil {
		_, stderr := s.p.output()
		if m := replicaLogRE.FindStringSubmatch(stderr); m != nil {
			s.replica = m[1]
		}
	}
	return s.replica
}

func (s *replicaSlot) start(e *env) {
	s.p = e.startWith(s.env, "once")
	s.replica = ""
	s.runs++
}

// ended checks the exit of the slot's process, which has ended: 0 or 1
// (some items failed, retried later), or SIGKILL when killed is true. It
// returns the exit code and adds the run's summary to lost and held.
func (s *replicaSlot) ended(t *testing.T, killed bool, sum *runTotals) int {
	t.Helper()
	code := s.p.wait(t, 10*time.Second)
	switch {
	case killed && code == -int(syscall.SIGKILL):
	case code == 0 || code == 1:
		out, _ := s.p.output()
		sum.add(out)
	default:
		t.Fatalf("replica %d run %d: exit %d\n%s", s.n, s.runs, code, s.p.tail())
	}
	return code
}

// runTotals adds up what the summaries of the runs that ended by
// themselves say about the other replicas.
type runTotals struct{ leaseLost, windowsHeld int }

var (
	leaseLostRE   = regexp.MustCompile(`(\d+) items abandoned to other replicas`)
	windowsHeldRE = regexp.MustCompile(`(\d+) windows held by other replicas`)
)

func (r *runTotals) add(stdout string) {
	for _, m := range leaseLostRE.FindAllStringSubmatch(stdout, -1) {
		n, _ := strconv.Atoi(m[1])
		r.leaseLost += n
	}
	for _, m := range windowsHeldRE.FindAllStringSubmatch(stdout, -1) {
		n, _ := strconv.Atoi(m[1])
		r.windowsHeld += n
	}
}

// unfinished returns the items not done or absent, and the cdr windows
// whose newest package is not done.
func (e *env) unfinished() ([]checkpoint.Item, []jobs.WindowProblem) {
	e.t.Helper()
	st := e.openState()
	defer st.Close()
	ctx := e.t.Context()
	items, err := st.Items(ctx, checkpoint.StatePending, checkpoint.StateInProgress, checkpoint.StateFailed, checkpoint.StateDead)
	if err != nil {
		e.t.Fatal(err)
	}
	wins, err := jobs.ProblemWindows(ctx, st, time.UTC)
	if err != nil {
		e.t.Fatal(err)
	}
	return items, wins
}

// TestReplicas_SIGKILL: three archivers of one tenant share one PostgreSQL
// state, one simulator (every body trickling, some downloads failing) and
// one bucket. They are SIGKILLed one after another at random
// instants, at least 12 times, and restarted at once with a new replica ID,
// as a crash-looping pod is; the items a killed one held wait for their
// lease and are claimed again by another. In the end every recording of the
// manifest is stored once under one key with one version, the ledgers are
// complete, archiver verify --deep agrees, and each replica slot downloaded
// at least 15% of the recordings. The downloads are counted by the
// simulator's side: each slot talks to the simulator on its own listener,
// which counts the recording downloads it answered in full.
func TestReplicas_SIGKILL(t *testing.T) {
	const (
		replicas  = 3
		wantKills = 12
		minShare  = 0.15
	)
	began := time.Now()
	dsn := pgtest.NewDatabase(t)
	e := newEnv(t, envOptions{Calls: 240, MaxRecording: 96 << 10, DSN: dsn,
		Env: map[string]string{"ARCHIVER_CHECKPOINT_LEASE": replicaLease}})
	// Every body trickles in 8 KiB chunks 150 ms apart (a 96 KiB recording
	// takes 1.8 s), so the kills land mid-transfer; a few agent recording
	// downloads answer HTTP 500 and are retried.
	e.sim.SetFaults(
		cecsim.Fault{Kind: cecsim.FaultSlow, Rate: 1, DelayMS: 150},
		cecsim.Fault{Kind: cecsim.FaultHTTP500, Rate: 0.03, Path: cecwire.PathDownloadRecordFile},
	)
	slots := make([]*replicaSlot, replicas)
	for i := range slots {
		slots[i] = newReplicaSlot(t, e, i)
		slots[i].start(e)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var totals runTotals

	// Kill phase: a kill every 0.4–2 s, the slots in a shuffled round-robin
	// so that the kills are spread over them; a process that ends by itself
	// is started again at once.
	kills, withItems := 0, 0
	order := rng.Perm(replicas)
	next := time.Now().Add(time.Second + time.Duration(rng.Int64N(int64(time.Second))))
	deadline := time.Now().Add(90 * time.Second)
	for kills < wantKills {
		if time.Now().After(deadline) {
			t.Fatalf("only %d kills in 90 s", kills)
		}
		for _, s := range slots {
			if !s.p.running() {
				s.ended(t, false, &totals)
				s.start(e)
			}
		}
		if time.Now().Before(next) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		s := slots[order[kills%replicas]]
		replica := s.replicaID()
		if err := s.p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		if s.ended(t, true, &totals) != -int(syscall.SIGKILL) {
			t.Logf("replica %d ended by itself before its kill", s.n)
			s.start(e)
			continue
		}
		held := 0
		if replica != "" {
			for _, it := range e.itemsIn(checkpoint.StateInProgress) {
				if it.Owner == replica {
					held++
				}
			}
		}
		kills++
		s.kills++
		s.held += held
		if held > 0 {
			withItems++
		}
		t.Logf("%5.1fs: killed replica %d (run %d, %s) holding %d items", time.Since(began).Seconds(), s.n, s.runs, orDash(replica), held)
		s.start(e)
		next = time.Now().Add(400*time.Millisecond + time.Duration(rng.Int64N(int64(1600*time.Millisecond))))
	}
	killPhase := time.Since(began)

	// Drain: no more kills. A slot whose run ends with exit 1, or while
	// items are left (the killed replicas' ones, waiting for their lease),
	// is started again; one that ends with exit 0 and no item left stops.
	// The work is done when every slot has stopped and no cdr window's
	// newest package is unfinished (a run skips a window a killed replica
	// still holds: then all start again).
	deadline = time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			items, wins := e.unfinished()
			var last string
			for _, s := range slots {
				if s.p != nil {
					last = s.p.tail()
				}
			}
			t.Fatalf("the replicas did not finish within 60 s of the last kill: %d items, %d windows left (first: %+v; %+v)\nlast run:\n%s",
				len(items), len(wins), items[:min(len(items), 3)], wins, last)
		}
		stopped := 0
		for _, s := range slots {
			if s.p == nil {
				stopped++
				continue
			}
			if s.p.running() {
				continue
			}
			code := s.ended(t, false, &totals)
			items, wins := e.unfinished()
			t.Logf("%5.1fs: replica %d run %d (%s) exit %d: %d items, %d windows unfinished",
				time.Since(began).Seconds(), s.n, s.runs, orDash(s.replicaID()), code, len(items), len(wins))
			if code == 0 && len(items) == 0 {
				s.p = nil
				stopped++
				continue
			}
			time.Sleep(300 * time.Millisecond) // not at once: what is left may be waiting for a lease
			s.start(e)
		}
		if stopped == replicas {
			_, wins := e.unfinished()
			if len(wins) == 0 {
				break
			}
			t.Logf("%5.1fs: every replica stopped, %d windows unfinished (%+v): all start again", time.Since(began).Seconds(), len(wins), wins)
			time.Sleep(time.Second)
			for _, s := range slots {
				s.start(e)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A last pass on one replica writes the ledgers of the finished state
	// (the last runs may have written theirs while another replica was
	// still finishing an item), as the next scheduled pass would.
	slots[0].start(e)
	if code := slots[0].ended(t, false, &totals); code != 0 {
		t.Fatalf("last pass: exit %d\n%s", code, slots[0].p.tail())
	}
	worked := time.Since(began)

	e.verify()

	// Who downloaded what, as the simulator saw it.
	m := e.sim.Manifest()
	total, requests := 0, 0
	perRecording := map[string]int{}
	shares := make([]string, replicas)
	complete := make([]int, replicas)
	for i, s := range slots {
		req, n, recs := s.srv.counts()
		requests += req
		total += n
		complete[i] = n
		for id, k := range recs {
			perRecording[id] += k
		}
	}
	again := 0
	for _, n := range perRecording {
		if n > 1 {
			again++
		}
	}
	for i, s := range slots {
		share := float64(complete[i]) / float64(max(total, 1))
		shares[i] = fmt.Sprintf("replica %d: %d runs, %d kills (holding %d items), %d downloads (%.0f%%)",
			i, s.runs, s.kills, s.held, complete[i], 100*share)
		if share < minShare {
			t.Errorf("replica %d did %d of %d downloads (%.1f%%), want ≥ %.0f%%", i, complete[i], total, 100*share, 100*minShare)
		}
	}
	st := e.sim.Stats()
	t.Logf("%d kills (%d holding items) in %v; done after %v; %d recordings in the manifest, %d distinct downloaded",
		kills, withItems, killPhase.Round(100*time.Millisecond), worked.Round(100*time.Millisecond), len(m.Recordings), len(perRecording))
	t.Logf("downloads answered in full: %d, so %d beyond one per recording; %d recordings downloaded more than once; "+
		"%d download requests in all (%d answered HTTP 500 by fault injection, the rest of the surplus cut off by kills)",
		total, total-len(perRecording), again, requests, st.Faults[cecsim.FaultHTTP500])
	t.Logf("runs that ended by themselves report %d items abandoned to other replicas (lease lost) and %d windows held by others", totals.leaseLost, totals.windowsHeld)
	for _, l := range shares {
		t.Log(l)
	}
	if len(perRecording) != len(m.Recordings) {
		t.Errorf("%d distinct recordings downloaded, the manifest has %d", len(perRecording), len(m.Recordings))
	}
	if withItems < wantKills/2 {
		t.Errorf("only %d of %d kills landed while the replica held items: the test hardly exercised a takeover", withItems, kills)
	}
	for _, s := range slots {
		if s.kills < wantKills/replicas {
			t.Errorf("replica %d was killed %d times, want ≥ %d", s.n, s.kills, wantKills/replicas)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stateTables are the tables of the PostgreSQL state that hold a tenant's
// rows (every one but schema_migrations).
var stateTables = []string{"packages", "calls", "items", "watermarks", "ledgers", "leases"}

// tenantRows dumps every row of tenant in the state tables, each as its
// JSON text, sorted: two dumps are equal only when nothing of the tenant's
// changed, not even a time stamp.
func tenantRows(t *testing.T, dsn, tenant string) []string {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var out []string
	for _, table := range stateTables {
		rows, err := conn.Query(ctx, "SELECT to_jsonb(r)::text FROM "+pgx.Identifier{table}.Sanitize()+" r WHERE tenant = $1", tenant)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		for _, s := range texts {
			out = append(out, table+" "+s)
		}
	}
	slices.Sort(out)
	return out
}

// tenantCounts runs query, which returns (tenant, count) rows, and adds
// up the counts per tenant.
func tenantCounts(ctx context.Context, dsn string, query string) (map[string]int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for rows.Next() {
		var tenant string
		var n int
		if err := rows.Scan(&tenant, &n); err != nil {
			return nil, err
		}
		out[tenant] += n
	}
	return out, rows.Err()
}

// TestReplicas_TwoTenants: two tenants' archivers share one PostgreSQL
// database, each with its own simulator (the same dataset: the same call
// IDs and recording IDs in both tenants) and its own bucket. They archive
// side by side, each completes its own manifest and ledgers, and a run of B
// alone (archiving the late recordings B's CDR now lists) changes no row of
// A's, not even a time stamp, while it changes B's.
func TestReplicas_TwoTenants(t *testing.T) {
	const tenantA, tenantB = "tenant-acc-a", "tenant-acc-b"
	dsn := pgtest.NewDatabase(t)
	slow := func(o *cecsim.Options) {
		o.Faults = []cecsim.Fault{{Kind: cecsim.FaultSlow, Rate: 1, DelayMS: 20}}
	}
	a := newEnv(t, envOptions{Calls: 120, DSN: dsn, Tenant: tenantA, Sim: slow})
	b := newEnv(t, envOptions{Calls: 120, DSN: dsn, Tenant: tenantB, Late: 3, Sim: slow})

	// Side by side: both run at once, and at some instant both have items
	// in progress.
	pa, pb := a.start("once"), b.start("once")
	both := waitFor(2*time.Minute, func() bool {
		// An error before the first process has created the tables is no answer yet.
		n, _ := tenantCounts(t.Context(), dsn, "SELECT tenant, count(*) FROM items WHERE state = 'in_progress' GROUP BY tenant")
		return n[tenantA] > 0 && n[tenantB] > 0 || !pa.running() || !pb.running()
	})
	overlap := pa.running() && pb.running()
	if ca, cb := pa.wait(t, 3*time.Minute), pb.wait(t, 3*time.Minute); ca != 0 || cb != 0 {
		t.Fatalf("once: tenant A exit %d, tenant B exit %d, want 0 and 0\nA:\n%s\nB:\n%s", ca, cb, pa.tail(), pb.tail())
	}
	if !both || !overlap {
		t.Errorf("the tenants' runs never had items in progress at the same time: the test did not run them side by side")
	}
	a.verify()

	// Every row belongs to one of the two tenants, and each tenant's items
	// are its own manifest's (the same IDs in both: no row was shared).
	var counts []string
	for _, table := range stateTables {
		n, err := tenantCounts(t.Context(), dsn, "SELECT tenant, count(*) FROM "+pgx.Identifier{table}.Sanitize()+" GROUP BY tenant")
		if err != nil {
			t.Fatalf("count the rows of %s: %v", table, err)
		}
		for tenant, n := range n {
			if tenant != tenantA && tenant != tenantB {
				t.Errorf("%s: %d rows of tenant %q", table, n, tenant)
			}
			counts = append(counts, fmt.Sprintf("%s %s %d", table, tenant, n))
		}
	}
	slices.Sort(counts)
	t.Logf("rows per table and tenant after the side-by-side runs: %v", counts)

	// B alone: its late recordings appear in its CDR; A's rows stay as they are.
	beforeA, beforeB := tenantRows(t, dsn, tenantA), tenantRows(t, dsn, tenantB)
	if n := b.sim.ReleaseLate(); n != 3 {
		t.Fatalf("released %d late recordings of tenant B, want 3", n)
	}
	if code, p := b.once(); code != 0 {
		t.Fatalf("tenant B's second once: exit %d\n%s", code, p.tail())
	}
	afterA, afterB := tenantRows(t, dsn, tenantA), tenantRows(t, dsn, tenantB)
	if !slices.Equal(beforeA, afterA) {
		added, removed := rowDiff(beforeA, afterA)
		t.Errorf("tenant B's run changed tenant A's rows: %d rows now, %d before; new or changed (first 3): %v; gone or changed (first 3): %v",
			len(afterA), len(beforeA), added[:min(3, len(added))], removed[:min(3, len(removed))])
	}
	if slices.Equal(beforeB, afterB) {
		t.Errorf("tenant B's run changed none of B's rows: the test proves nothing")
	}
	added, _ := rowDiff(beforeB, afterB)
	t.Logf("tenant A: %d rows, unchanged by tenant B's run; tenant B: %d rows, %d new or changed", len(afterA), len(afterB), len(added))
	b.verify()
}

// rowDiff returns the rows of after not in before, and of before not in after.
func rowDiff(before, after []string) (added, removed []string) {
	in := func(rows []string, r string) bool { _, ok := slices.BinarySearch(rows, r); return ok }
	for _, r := range after {
		if !in(before, r) {
			added = append(added, r)
		}
	}
	for _, r := range before {
		if !in(after, r) {
			removed = append(removed, r)
		}
	}
	return added, removed
}
