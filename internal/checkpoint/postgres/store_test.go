package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

func agent(up string) checkpoint.Item {
	return checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: up, CallID: "c-" + up, Day: "2026-03-01", Key: "k/" + up}
}

// TestStore_Tenants: two tenants on one database, with the same upstream
// IDs, call IDs, jobs and days, each see and change only their own state.
func TestStore_Tenants(t *testing.T) {
	dsn := freshDB(t)
	a, b := open(t, dsn, "tenant-a"), open(t, dsn, "tenant-b")
	ctx := t.Context()
	for _, s := range []*Store{a, b} {
		if n, err := s.AddItems(ctx, []checkpoint.Item{agent("x"), agent("y"), agent("z")}); err != nil || n != 3 {
			t.Fatalf("%s: AddItems = %d, %v; want 3 (the same upstream IDs are another tenant's items)", s.Tenant(), n, err)
		}
		id, err := s.CreatePackage(ctx, checkpoint.Package{Begin: t0, End: t0.Add(time.Hour), ResponseID: s.Tenant()})
		if err != nil {
			t.Fatal(err)
		}
		calls := []checkpoint.Call{{CallID: "c-x", Day: "2026-03-01", VDN: s.Tenant()}}
		if n, err := s.CompletePackage(ctx, checkpoint.Package{ID: id, ResponseID: s.Tenant()}, calls, []checkpoint.Item{agent("w")}); err != nil || n != 1 {
			t.Fatalf("%s: CompletePackage = %d, %v", s.Tenant(), n, err)
		}
		if err := s.SetWatermark(ctx, "cdr", t0.Add(time.Duration(len(s.Tenant()))*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLedger(ctx, "2026-03-01", "", "sum-"+s.Tenant(), "key-"+s.Tenant()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetWatermark(ctx, "cdr", t0.Add(20*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Named leases are per tenant too: each tenant's janitor runs.
	for i, s := range []*Store{a, b} {
		if ok, err := s.TryLease(ctx, "janitor", fmt.Sprint("owner-", i), time.Hour); err != nil || !ok {
			t.Fatalf("%s: TryLease(janitor) = %v, %v; want it (the other tenant's lease is not this one's)", s.Tenant(), ok, err)
		}
	}
	// a claims and finishes some of its items; b's stay pending.
	got, err := a.Claim(ctx, testClaimer, nil, t0, 0)
	if err != nil || len(got) != 4 {
		t.Fatalf("a: Claim = %d, %v; want its 4 items", len(got), err)
	}
	if err := a.Done(ctx, testOwner, got[0].ID, "k", 1, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Fail(ctx, testOwner, got[1].ID, "e", t0, 1); err != nil {
		t.Fatal(err)
	}
	bItems, err := b.Items(ctx)
	if err != nil || len(bItems) != 4 {
		t.Fatalf("b: Items = %d, %v", len(bItems), err)
	}
	for _, it := range bItems {
		if it.State != checkpoint.StatePending {
			t.Errorf("b's item %s is %s after a's claim", it.UpstreamID, it.State)
		}
		if _, err := a.Item(ctx, it.ID); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Errorf("a: Item(b's %d) = %v, want ErrNotFound", it.ID, err)
		}
		if err := a.Absent(ctx, testOwner, it.ID, "r", "e"); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Errorf("a: Absent(b's %d) = %v, want ErrNotFound", it.ID, err)
		}
	}
	if _, err := b.Claim(ctx, testClaimer, nil, t0, 2); err != nil {
		t.Fatal(err)
	}
	if n, err := a.RecoverInProgress(ctx, testOwner); err != nil || n != 2 {
		t.Errorf("a: RecoverInProgress = %d, %v; want its own 2", n, err)
	}
	if ip, _ := b.Items(ctx, checkpoint.StateInProgress); len(ip) != 2 {
		t.Errorf("b has %d items in progress after a's recovery, want 2", len(ip))
	}
	if n, err := b.Requeue(ctx); err != nil || n != 0 {
		t.Errorf("b: Requeue = %d, %v; a's dead item is not b's", n, err)
	}
	for _, s := range []*Store{a, b} {
		w, ok, err := s.Watermark(ctx, "cdr")
		want := t0.Add(time.Duration(len(s.Tenant())) * time.Hour)
		if s == b {
			want = t0.Add(20 * time.Hour)
		}
		if err != nil || !ok || !w.Equal(want) {
			t.Errorf("%s: Watermark = %v %v %v, want %v", s.Tenant(), w, ok, err, want)
		}
		if sum, key, ok, err := s.Ledger(ctx, "2026-03-01"); err != nil || !ok || sum != "sum-"+s.Tenant() || key != "key-"+s.Tenant() {
			t.Errorf("%s: Ledger = %s %s %v %v", s.Tenant(), sum, key, ok, err)
		}
		calls, err := s.DayCalls(ctx, "2026-03-01")
		if err != nil || len(calls) != 1 || calls[0].VDN != s.Tenant() {
			t.Errorf("%s: DayCalls = %+v, %v", s.Tenant(), calls, err)
		}
		pkgs, err := s.Packages(ctx)
		if err != nil || len(pkgs) != 1 || pkgs[0].ResponseID != s.Tenant() {
			t.Errorf("%s: Packages = %+v, %v", s.Tenant(), pkgs, err)
		}
		if p, ok, err := s.LastDonePackage(ctx, t0, t0.Add(time.Hour)); err != nil || !ok || p.ResponseID != s.Tenant() {
			t.Errorf("%s: LastDonePackage = %+v %v %v", s.Tenant(), p, ok, err)
		}
		days, err := s.Days(ctx)
		if err != nil || len(days) != 1 || days[0].Calls != 1 {
			t.Fatalf("%s: Days = %+v, %v", s.Tenant(), days, err)
		}
		n := 0
		for _, c := range days[0].Counts[checkpoint.KindAgent] {
			n += c
		}
		if n != 4 {
			t.Errorf("%s: Days counts %d items, want 4: %v", s.Tenant(), n, days[0].Counts)
		}
	}
	aPkgs, err := a.Packages(ctx)
	if err != nil || len(aPkgs) != 1 {
		t.Fatalf("a: Packages = %d, %v", len(aPkgs), err)
	}
	if err := b.UpdatePackage(ctx, checkpoint.Package{ID: aPkgs[0].ID, State: checkpoint.StateDead}); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("b: UpdatePackage(a's package) = %v, want ErrNotFound", err)
	}
	if p, _, _ := a.LastDonePackage(ctx, t0, t0.Add(time.Hour)); p.ID != aPkgs[0].ID {
		t.Errorf("a's package changed: %+v", p)
	}
}

// TestStore_ConcurrentClaimTwoStores: two stores on one tenant, with a pool
// each, as two processes would have, claim from 8 goroutines each at once:
// every item is handed out exactly once.
func TestStore_ConcurrentClaimTwoStores(t *testing.T) {
	const total, workers = 500, 8
	dsn := freshDB(t)
	stores := []*Store{open(t, dsn, "tenant-a"), open(t, dsn, "tenant-a")}
	items := make([]checkpoint.Item, total)
	for i := range items {
		items[i] = agent(fmt.Sprint("i", i))
	}
	if n, err := stores[0].AddItems(t.Context(), items); err != nil || n != total {
		t.Fatalf("AddItems = %d, %v", n, err)
	}
	var (
		mu     sync.Mutex
		seen   = map[int64]int{}
		by     = [2]int{}
		wg     sync.WaitGroup
		errs   = make(chan error, 2*workers)
		start  = make(chan struct{})
		ctx    = context.Background()
		limits = []int{1, 3, 7}
	)
	for si, s := range stores {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					got, err := s.Claim(ctx, testClaimer, nil, t0, limits[w%len(limits)])
					if err != nil {
						errs <- err
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, it := range got {
						seen[it.ID]++
					}
					by[si] += len(got)
					mu.Unlock()
					for _, it := range got {
						if err := s.Done(ctx, testOwner, it.ID, it.Key, 1, "s"); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	if len(seen) != total {
		t.Fatalf("claimed %d distinct items, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("item %d claimed %d times", id, n)
		}
	}
	if by[0] == 0 || by[1] == 0 {
		t.Logf("one store claimed nothing (%v): the claims did not overlap this time", by)
	}
	if done, err := stores[1].Items(t.Context(), checkpoint.StateDone); err != nil || len(done) != total {
		t.Fatalf("done items = %d, %v; want %d", len(done), err, total)
	}
}

// TestOpen_SchemaTooNew: a database migrated by a newer archiver is
// refused, read-write and read-only, naming both versions.
func TestOpen_SchemaTooNew(t *testing.T) {
	dsn := freshDB(t)
	open(t, dsn, "tenant-a").Close()
	future := SchemaVersion() + 5
	sql(t, dsn, fmt.Sprintf(`INSERT INTO schema_migrations (version, name) VALUES (%d, 'from the future')`, future))
	for _, ro := range []bool{false, true} {
		s, err := Open(t.Context(), Options{DSN: dsn, Tenant: "tenant-a", ReadOnly: ro})
		if err == nil {
			s.Close()
			t.Fatalf("Open(read-only %v) of a version %d database succeeded", ro, future)
		}
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open(read-only %v) = %v, want ErrSchemaTooNew", ro, err)
		}
		want := fmt.Sprintf("schema version %d, this archiver knows up to %d", future, SchemaVersion())
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(read-only %v) = %q, want it to say %q", ro, err, want)
		}
	}
}

// TestOpen_ConcurrentMigration: archivers started at once on an empty
// database migrate it once between them, and all of them open.
func TestOpen_ConcurrentMigration(t *testing.T) {
	const opens = 4
	for round := range 3 {
		dsn := freshDB(t)
		var wg sync.WaitGroup
		errs := make([]error, opens)
		start := make(chan struct{})
		for i := range opens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, err := Open(context.Background(), Options{DSN: dsn, Tenant: fmt.Sprint("tenant-", i)})
				if err == nil {
					_, err = s.AddItems(context.Background(), []checkpoint.Item{agent("x")})
					s.Close()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: Open %d: %v", round, i, err)
			}
		}
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var versions []int
		rows, err := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
		if err == nil {
			versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
		}
		conn.Close(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := make([]int, SchemaVersion())
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(versions, want) {
			t.Errorf("round %d: schema_migrations = %v, want %v", round, versions, want)
		}
	}
}

// TestOpen_ReadOnly: a read-only store needs a current schema, creates
// nothing, refuses every change itself, and its sessions are read-only on
// the server too.
func TestOpen_ReadOnly(t *testing.T) {
	dsn := freshDB(t)
	if s, err := Open(t.Context(), Options{DSN: dsn, Tenant: "tenant-a", ReadOnly: true}); !errors.Is(err, ErrNoSchema) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("read-only Open of an empty database = %v, want ErrNoSchema", err)
	}
	rw := open(t, dsn, "tenant-a")
	if _, err := rw.AddItems(t.Context(), []checkpoint.Item{agent("x")}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), Options{DSN: dsn, Tenant: "tenant-a", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if items, err := s.Items(t.Context()); err != nil || len(items) != 1 {
		t.Fatalf("read-only Items = %d, %v", len(items), err)
	}
	if days, err := s.Days(t.Context()); err != nil || len(days) != 1 {
		t.Fatalf("read-only Days = %d, %v", len(days), err)
	}
	id := idOf(t, rw, "x")
	changes := map[string]func() error{
		"AddItems":          func() error { _, err := s.AddItems(t.Context(), []checkpoint.Item{agent("y")}); return err },
		"Claim":             func() error { _, err := s.Claim(t.Context(), testClaimer, nil, t0, 0); return err },
		"Absent":            func() error { return s.Absent(t.Context(), testOwner, id, "r", "e") },
		"RecoverInProgress": func() error { _, err := s.RecoverInProgress(t.Context(), testOwner); return err },
		"SetWatermark":      func() error { return s.SetWatermark(t.Context(), "cdr", t0) },
		"SetLedger":         func() error { return s.SetLedger(t.Context(), "2026-03-01", "", "s", "k") },
		"CreatePackage":     func() error { _, err := s.CreatePackage(t.Context(), checkpoint.Package{}); return err },
		"UpdatePackage": func() error {
			return s.UpdatePackage(t.Context(), checkpoint.Package{ID: 1, State: checkpoint.StateDone})
		},
	}
	for name, fn := range changes {
		if err := fn(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only %s = %v, want ErrReadOnly", name, err)
		}
	}
	if wantState(t, rw, id) != checkpoint.StatePending {
		t.Error("a read-only call changed the item")
	}
	_, err = s.pool.Exec(t.Context(), `UPDATE items SET state = 'done' WHERE tenant = 'tenant-a'`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25006" {
		t.Errorf("an UPDATE on a read-only store's session = %v, want SQLSTATE 25006 (read_only_sql_transaction)", err)
	}
}

func idOf(t *testing.T, s *Store, up string) int64 {
	t.Helper()
	items, err := s.Items(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.UpstreamID == up {
			return it.ID
		}
	}
	t.Fatalf("no item %s", up)
	return 0
}

func wantState(t *testing.T, s *Store, id int64) checkpoint.State {
	t.Helper()
	it, err := s.Item(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return it.State
}

// TestOpen_Options: what Open refuses before connecting, and that neither
// its errors nor its log show the DSN's password.
func TestOpen_Options(t *testing.T) {
	const canary = "canary-pw-5e1d"
	if _, err := Open(t.Context(), Options{Tenant: "t"}); err == nil || !strings.Contains(err.Error(), "empty DSN") {
		t.Errorf("Open without a DSN = %v", err)
	}
	if _, err := Open(t.Context(), Options{DSN: "postgres://u@127.0.0.1/db"}); err == nil || !strings.Contains(err.Error(), "empty tenant") {
		t.Errorf("Open without a tenant = %v", err)
	}
	if _, err := Open(t.Context(), Options{DSN: "postgres://u@127.0.0.1/db", Tenant: "a\x00b"}); !errors.Is(err, errNotText) {
		t.Errorf("Open with a NUL in the tenant = %v", err)
	}
	for _, dsn := range []string{
		"postgres://archiver:" + canary + "@db.example.com:notaport/archiver",
		"postgres://archiver:" + canary + "@db.example.com/archiver?sslmode=sometimes",
		"postgres://archiver:" + canary + "@db.example.com/archiver?pool_max_conns=many",
		"host=db.example.com user=archiver password=" + canary + " sslmode=sometimes",
		"host=db.example.com user=archiver password='" + canary + " dbname=x",
		"postgres://archiver:" + canary + "@[db.example.com/archiver",
	} {
		_, err := Open(t.Context(), Options{DSN: dsn, Tenant: "t"})
		if err == nil {
			t.Errorf("Open(malformed DSN %d) succeeded", len(dsn))
			continue
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("the error of a malformed DSN shows its password: %v", err)
		}
		if !strings.Contains(err.Error(), "the DSN does not parse") {
			t.Errorf("Open(malformed DSN) = %v", err)
		}
	}
	// A well-formed DSN with the wrong password, on the real server.
	u, err := url.Parse(serverDSN(t))
	if err != nil {
		t.Skip("the test DSN is not a URL")
	}
	u.User = url.UserPassword(u.User.Username(), canary)
	core, logs := observer.New(zap.DebugLevel)
	_, err = Open(t.Context(), Options{DSN: u.String(), Tenant: "t", Logger: zap.New(core)})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), canary) {
		t.Errorf("the error of a refused login shows the password: %v", err)
	}
	// And a store that opens logs where it is, never the DSN.
	dsn := freshDB(t)
	s, err := Open(t.Context(), Options{DSN: dsn, Tenant: "tenant-a", Logger: zap.New(core), MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns 3 gave a pool of %d", got)
	}
	pu, _ := url.Parse(dsn)
	pw, _ := pu.User.Password()
	var opened bool
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, canary) || (pw != "" && strings.Contains(line, pw)) || strings.Contains(line, dsn) {
			t.Errorf("a log line shows the DSN or its password: %s", line)
		}
		opened = opened || e.Message == "checkpoint store opened"
	}
	if !opened {
		t.Error("Open logged nothing about the store it opened")
	}
}

// TestStore_Text: what PostgreSQL text cannot hold is refused in names and
// IDs, and replaced in the free text of errors and reasons.
func TestStore_Text(t *testing.T) {
	s := open(t, freshDB(t), "tenant-a")
	ctx := t.Context()
	for name, it := range map[string]checkpoint.Item{
		"upstream id": {Kind: checkpoint.KindAgent, UpstreamID: "a\x00b"},
		"key":         {Kind: checkpoint.KindAgent, UpstreamID: "k", Key: "k/\xff"},
		"day":         {Kind: checkpoint.KindAgent, UpstreamID: "d", Day: "2026-03-01\x00"},
	} {
		_, err := s.AddItems(ctx, []checkpoint.Item{agent("fine-" + name), it})
		if !errors.Is(err, errNotText) || !strings.Contains(err.Error(), name) {
			t.Errorf("AddItems with a bad %s = %v, want an error naming it", name, err)
		}
	}
	bad := agent("args")
	bad.Args = []byte(`{"file_name":"` + "\xff" + `"}`)
	if _, err := s.AddItems(ctx, []checkpoint.Item{bad}); err == nil {
		t.Error("AddItems with arguments that are not UTF-8 succeeded")
	}
	if items, _ := s.Items(ctx); len(items) != 0 {
		t.Fatalf("refused AddItems left %d items", len(items))
	}
	ev := agent("ev")
	ev.State, ev.Reason, ev.Evidence = checkpoint.StateAbsent, "no\x00file", "body \xfe\xff"
	if n, err := s.AddItems(ctx, []checkpoint.Item{agent("f"), ev}); err != nil || n != 2 {
		t.Fatalf("AddItems = %d, %v", n, err)
	}
	if got := mustGet(t, s, idOf(t, s, "ev")); got.Reason != "no file" || got.Evidence != "body \uFFFD" {
		t.Errorf("absent item reason %q evidence %q", got.Reason, got.Evidence)
	}
	id := idOf(t, s, "f")
	if _, err := s.Claim(ctx, testClaimer, nil, t0, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx, testOwner, id, "k/\x00", 1, "s"); !errors.Is(err, errNotText) {
		t.Errorf("Done with a NUL in the key = %v", err)
	}
	if st, err := s.Fail(ctx, testOwner, id, "upstream said \x00\xc3(", t0, 0); err != nil || st != checkpoint.StateFailed {
		t.Fatalf("Fail with a message that is not text = %s, %v", st, err)
	}
	if got := mustGet(t, s, id); got.LastError != "upstream said  \uFFFD(" {
		t.Errorf("LastError = %q", got.LastError)
	}
}

func mustGet(t *testing.T, s *Store, id int64) checkpoint.Item {
	t.Helper()
	it, err := s.Item(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// TestStore_CtxEndsDuringChange: a ctx that ends while a change is under
// way either stops it before it was begun (an error wrapping ctx.Err(),
// nothing changed) or leaves it to finish, and the call reports what was
// committed: never an error for a change that was made, never nil for one
// that was not.
func TestStore_CtxEndsDuringChange(t *testing.T) {
	s := open(t, freshDB(t), "tenant-a")
	const n = 150
	items := make([]checkpoint.Item, n)
	for i := range items {
		items[i] = agent(strconv.Itoa(i))
	}
	if _, err := s.AddItems(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(t.Context(), testClaimer, nil, t0, 0)
	if err != nil || len(claimed) != n {
		t.Fatalf("Claim = %d, %v", len(claimed), err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var cancelled, made int
	for _, it := range claimed {
		ctx, cancel := context.WithCancel(context.Background())
		delay := time.Duration(rng.IntN(400)) * time.Microsecond
		timer := time.AfterFunc(delay, cancel)
		err := s.Done(ctx, testOwner, it.ID, "k/done", 1, "s")
		timer.Stop()
		cancel()
		st := wantState(t, s, it.ID)
		switch {
		case err == nil && st != checkpoint.StateDone:
			t.Errorf("Done(%d) returned nil, the item is %s", it.ID, st)
		case err != nil && st != checkpoint.StateInProgress:
			t.Errorf("Done(%d) = %v, yet the item is %s", it.ID, err, st)
		case err != nil && !errors.Is(err, context.Canceled):
			t.Errorf("Done(%d) = %v, want context.Canceled", it.ID, err)
		case err != nil:
			cancelled++
		default:
			made++
		}
	}
	t.Logf("%d changes made, %d stopped before they began", made, cancelled)
	// A transaction stopped by ctx in the middle changes nothing.
	big := make([]checkpoint.Item, 20000)
	for i := range big {
		big[i] = agent(fmt.Sprint("big-", i))
	}
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(20))*time.Millisecond)
		added, err := s.AddItems(ctx, big)
		cancel()
		all, lerr := s.Items(t.Context())
		if lerr != nil {
			t.Fatal(lerr)
		}
		switch {
		case err == nil && (added != len(big) || len(all) != n+len(big)):
			t.Fatalf("AddItems = %d, nil; the store has %d items", added, len(all))
		case err == nil:
			return // committed before the deadline: nothing more to learn
		case len(all) != n:
			t.Fatalf("AddItems = %v, yet the store has %d items, want %d", err, len(all), n)
		case !errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("AddItems = %v, want context.DeadlineExceeded", err)
		}
	}
}

// TestOpen_SearchPath: the tables are created in, and read from, the first
// schema of the DSN's search_path: two schemas of one database are two
// separate states.
func TestOpen_SearchPath(t *testing.T) {
	dsn := freshDB(t)
	sql(t, dsn, `CREATE SCHEMA one`, `CREATE SCHEMA two`)
	with := func(schema string) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Skip("the test DSN is not a URL")
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	one, two := open(t, with("one"), "tenant-a"), open(t, with("two"), "tenant-a")
	if _, err := one.AddItems(t.Context(), []checkpoint.Item{agent("x")}); err != nil {
		t.Fatal(err)
	}
	if items, err := two.Items(t.Context()); err != nil || len(items) != 0 {
		t.Errorf("schema two sees %d items of schema one (%v)", len(items), err)
	}
	var public bool
	if err := one.pool.QueryRow(t.Context(), `SELECT to_regclass('public.items') IS NOT NULL`).Scan(&public); err != nil || public {
		t.Errorf("tables were created in public (%v)", err)
	}
}

// TestOpen_CurrentSchemaNeedsNoDDL: once migrated, the store runs as a role
// that may only read and write the tables (PostgreSQL 15 lets no other
// role create in public).
func TestOpen_CurrentSchemaNeedsNoDDL(t *testing.T) {
	dsn := freshDB(t)
	open(t, dsn, "tenant-a").Close()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Skip("the test DSN is not a URL")
	}
	role := "cprw_" + strings.TrimPrefix(strings.TrimPrefix(u.Path, "/"), "cptest_")
	sql(t, dsn,
		`CREATE ROLE `+role+` LOGIN PASSWORD 'rw-password'`,
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO `+role,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO `+role)
	t.Cleanup(func() {
		// After freshDB's cleanup has dropped the database (cleanups run
		// last registered first, and this one was registered after it, so
		// it runs first: drop what the role owns privileges on first).
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := conn.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u.User = url.UserPassword(role, "rw-password")
	s := open(t, u.String(), "tenant-a")
	if n, err := s.AddItems(t.Context(), []checkpoint.Item{agent("x")}); err != nil || n != 1 {
		t.Fatalf("AddItems as a role without DDL = %d, %v", n, err)
	}
	got, err := s.Claim(t.Context(), testClaimer, nil, t0, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("Claim as a role without DDL = %d, %v", len(got), err)
	}
	// Leases need no more than SELECT, INSERT and UPDATE either.
	if lost, err := s.Renew(t.Context(), testClaimer, []int64{got[0].ID}); err != nil || len(lost) != 0 {
		t.Fatalf("Renew as a role without DDL = %v, %v", lost, err)
	}
	if ok, err := s.TryLease(t.Context(), "janitor", testOwner, time.Minute); err != nil || !ok {
		t.Fatalf("TryLease as a role without DDL = %v, %v", ok, err)
	}
	if err := s.ReleaseLease(t.Context(), "janitor", testOwner); err != nil {
		t.Fatalf("ReleaseLease as a role without DDL: %v", err)
	}
	if err := s.SetWatermark(t.Context(), "cdr", t0); err != nil {
		t.Fatalf("SetWatermark as a role without DDL: %v", err)
	}
	if err := s.SetLedger(t.Context(), "2026-03-01", "", "s", "k"); err != nil {
		t.Fatalf("SetLedger as a role without DDL: %v", err)
	}
}
