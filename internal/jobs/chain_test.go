package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres/pgtest"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// chainDays is how many simulated days the chain tests archive.
const chainDays = 4

// tamperer changes the archive behind the archiver's back, as someone with
// write access to the store would; every change is undone when the
// subtest ends.
type tamperer interface {
	// put stores body at key: a new version of an existing key on a
	// versioned bucket, other bytes in place elsewhere.
	put(t *testing.T, key string, body []byte)
	// remove deletes key (a delete marker on a versioned bucket).
	remove(t *testing.T, key string)
}

// dirTamperer tampers with the dir sink's files.
type dirTamperer struct{ e *env }

func (d dirTamperer) put(t *testing.T, key string, body []byte) {
	t.Helper()
	p := d.e.file(key)
	if _, err := os.Stat(p); err == nil {
		d.e.keep(t, key)
	} else {
		t.Cleanup(func() { os.Remove(p) })
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, body, 0o640); err != nil {
		t.Fatal(err)
	}
}

func (d dirTamperer) remove(t *testing.T, key string) {
	t.Helper()
	d.e.keep(t, key)
	if err := os.Remove(d.e.file(key)); err != nil {
		t.Fatal(err)
	}
}

// buildChain archives chainDays days the way a running archiver does: day
// by day, with an older day updated after newer ones, so that the chain
// has superseding links and links of earlier days after later ones.
func buildChain(t *testing.T, e *env) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := e.a.Once(ctx); err != nil { // days 0 and 1
		t.Fatal(err)
	}
	for day := 2; day < chainDays; day++ {
		// A late change to day 0, then the next day.
		e.clock.Add(time.Minute)
		late := checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: fmt.Sprintf("late-%d", day), Day: simStart.Format(time.DateOnly),
			State: checkpoint.StateAbsent, Reason: "late record"}
		if _, err := e.store.AddItems(ctx, []checkpoint.Item{late}); err != nil {
			t.Fatal(err)
		}
		if n, err := e.a.WriteLedgers(ctx); err != nil || n != 1 {
			t.Fatalf("WriteLedgers after a change to day 0 = %d, %v; want 1", n, err)
		}
		e.clock.Add(24 * time.Hour)
		if _, err := e.a.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// chainEnv is an env whose simulator has chainDays days.
func chainEnv(t *testing.T, o envOptions) *env {
	o.sim = func(so *cecsim.Options) { so.Days = chainDays; so.Calls = 40 }
	return newEnv(t, o)
}

func (e *env) verifyChain(t *testing.T) *ChainReport {
	t.Helper()
	rep := e.verify(t, VerifyOptions{Chain: true})
	if rep.Chain == nil {
		t.Fatal("Verify(Chain) returned no chain report")
	}
	return rep.Chain
}

// chainLinks reads the links of a verified chain from the sink, by seq.
func chainLinks(t *testing.T, r sink.Reader, rep *ChainReport) map[uint64]ChainRef {
	t.Helper()
	out := map[uint64]ChainRef{}
	ref := rep.Head
	for ref != nil {
		out[ref.Seq] = *ref
		var l Ledger
		if err := json.Unmarshal(readKey(t, r, ref.Key), &l); err != nil || l.Chain == nil {
			t.Fatalf("link %s: %v (chain %v)", ref.Key, err, l.Chain)
		}
		ref = l.Chain.Prev
	}
	return out
}

func readKey(t *testing.T, r sink.Reader, key string) []byte {
	t.Helper()
	rc, _, err := r.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkCleanChain asserts the chain spans every day, with superseding
// links, and verifies.
func checkCleanChain(t *testing.T, e *env, r sink.Reader) (*ChainReport, map[uint64]ChainRef) {
	t.Helper()
	rep := e.verifyChain(t)
	if len(rep.Problems) != 0 {
		t.Fatalf("a clean chain has problems:\n%s", chainProblems(rep))
	}
	links := chainLinks(t, r, rep)
	if rep.Head == nil || rep.Links < chainDays+2 || rep.Verified != rep.Links || len(links) != rep.Links || rep.Heads != rep.Links {
		t.Fatalf("chain: head %v, %d links, %d verified, %d heads, %d walked; want every one of more than %d", rep.Head, rep.Links,
			rep.Verified, rep.Heads, len(links), chainDays+1)
	}
	if len(rep.Days) != chainDays || rep.Days[0].Links < 2 || len(rep.PreChain) != 0 {
		t.Fatalf("chain days %+v, pre-chain %v; want %d days, day 0 superseded", rep.Days, rep.PreChain, chainDays)
	}
	// Day 0's last link follows a later day's: the chain is in write order.
	if last := rep.Days[0].Current; last.Seq < rep.Days[chainDays-2].Current.Seq {
		t.Fatalf("day 0's current link %d is older than day %d's %d: the chain was not built as meant", last.Seq, chainDays-2,
			rep.Days[chainDays-2].Current.Seq)
	}
	return rep, links
}

func chainProblems(rep *ChainReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// wantChainProblem asserts rep names a problem of kind about key (and day
// and seq; an empty key or day, a zero seq match any).
func wantChainProblem(t *testing.T, rep *ChainReport, kind, key, day string, seq uint64) {
	t.Helper()
	if !slices.ContainsFunc(rep.Problems, func(p ChainProblem) bool {
		return p.Kind == kind && (key == "" || p.Key == key) && (day == "" || p.Day == day) && (seq == 0 || p.Seq == seq)
	}) {
		t.Errorf("no %s problem naming %s (day %q, seq %d) among:\n%s", kind, key, day, seq, chainProblems(rep))
	}
}

// forgeLedger returns link ref's ledger with one call fewer (and the
// chain fields of ref's), re-serialised as the archiver does: what someone
// who wants a call gone would write.
func forgeLedger(t *testing.T, r sink.Reader, ref ChainRef, edit func(*Ledger)) []byte {
	t.Helper()
	var l Ledger
	if err := json.Unmarshal(readKey(t, r, ref.Key), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Calls) > 0 {
		l.Calls = l.Calls[1:]
		l.Totals.Calls--
	}
	if edit != nil {
		edit(&l)
	}
	b, err := json.MarshalIndent(&l, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func headBody(t *testing.T, tenant string, ref ChainRef) []byte {
	t.Helper()
	b, err := json.MarshalIndent(ChainHead{Schema: ChainHeadSchema, Version: ChainVersion, Tenant: tenant, Seq: ref.Seq, Link: ref,
		WrittenAt: time.Now().UTC()}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgedKey is a ledger key of day for seq, as the archiver names them.
func forgedKey(t *testing.T, like ChainRef, seq uint64, body []byte) string {
	t.Helper()
	name, err := sink.LedgerName(time.Now(), seq, sha256Hex(body))
	if err != nil {
		t.Fatal(err)
	}
	return like.Key[:strings.LastIndexByte(like.Key, '/')+1] + name
}

// runTampering runs every tampering case on a clean chain: each is
// detected and named, and the chain verifies again once it is undone.
func runTampering(t *testing.T, e *env, r sink.Reader, tm tamperer) {
	_, links := checkCleanChain(t, e, r)
	keys, err := e.a.chainKeys()
	if err != nil {
		t.Fatal(err)
	}
	newest := uint64(len(links))
	mid := links[newest/2]
	// rewriteNewest rewrites the newest link's chain fields and its head
	// to match: the hashes agree, the fields do not.
	rewriteNewest := func(t *testing.T, edit func(*Ledger)) {
		f := forgeLedger(t, r, links[newest], func(l *Ledger) {
			l.Calls, l.Totals = nil, LedgerTotals{}
			edit(l)
		})
		tm.put(t, links[newest].Key, f)
		ref := links[newest]
		ref.SHA256 = sha256Hex(f)
		tm.put(t, keys.head(newest), headBody(t, testTenant, ref))
	}
	// appendForged appends a forged link newest+1 whose prev is prev, and
	// its head.
	appendForged := func(t *testing.T, prev ChainRef) {
		f := forgeLedger(t, r, links[newest], func(l *Ledger) {
			l.Chain.Seq = newest + 1
			l.Chain.Prev = &prev
		})
		ref := ChainRef{Seq: newest + 1, Day: links[newest].Day, SHA256: sha256Hex(f)}
		ref.Key = forgedKey(t, links[newest], newest+1, f)
		tm.put(t, ref.Key, f)
		tm.put(t, keys.head(newest+1), headBody(t, testTenant, ref))
	}
	cases := []struct {
		name  string
		run   func(t *testing.T)
		check func(t *testing.T, rep *ChainReport)
	}{
		{"DeletedLink", func(t *testing.T) { tm.remove(t, mid.Key) }, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainMissing, mid.Key, mid.Day, mid.Seq)
		}},
		{"DeletedNewestLink", func(t *testing.T) { tm.remove(t, links[newest].Key) }, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainMissing, links[newest].Key, links[newest].Day, newest)
		}},
		{"DeletedFirstLink", func(t *testing.T) { tm.remove(t, links[1].Key) }, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainMissing, links[1].Key, links[1].Day, 1)
		}},
		{"AlteredLink", func(t *testing.T) {
			// A new version (other bytes) of the same key: one byte more.
			tm.put(t, mid.Key, append(readKey(t, r, mid.Key), '\n'))
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainAltered, mid.Key, mid.Day, mid.Seq)
		}},
		{"ReplacedLink", func(t *testing.T) {
			// A well-formed ledger with a call removed, chain fields kept.
			tm.put(t, mid.Key, forgeLedger(t, r, mid, nil))
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainAltered, mid.Key, mid.Day, mid.Seq)
		}},
		{"ReplacedNewestLink", func(t *testing.T) {
			tm.put(t, links[newest].Key, forgeLedger(t, r, links[newest], nil))
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainAltered, links[newest].Key, links[newest].Day, newest)
		}},
		{"ForgedHeadHash", func(t *testing.T) {
			// The newest head names the link by its key with the forged
			// ledger's hash, the forged ledger in place.
			f := forgeLedger(t, r, links[newest], nil)
			tm.put(t, links[newest].Key, f)
			ref := links[newest]
			ref.SHA256 = sha256Hex(f)
			tm.put(t, keys.head(newest), headBody(t, testTenant, ref))
		}, func(t *testing.T, rep *ChainReport) {
			// Consistent hashes (the newest link and its head were both
			// rewritten): the state's digest of the day's content tells.
			wantChainProblem(t, rep, ChainState, links[newest].Key, links[newest].Day, 0)
		}},
		{"ForgedHeadWrongHash", func(t *testing.T) {
			ref := links[newest]
			ref.SHA256 = strings.Repeat("0", 64)
			tm.put(t, keys.head(newest), headBody(t, testTenant, ref))
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainAltered, links[newest].Key, links[newest].Day, newest)
		}},
		{"ForgedOlderHead", func(t *testing.T) {
			ref := mid
			ref.SHA256 = strings.Repeat("1", 64)
			tm.put(t, keys.head(mid.Seq), headBody(t, testTenant, ref))
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainHeadProblem, keys.head(mid.Seq), mid.Day, mid.Seq)
		}},
		{"ForgedHeadOtherLink", func(t *testing.T) {
			// A new ledger claiming the newest seq, with the right prev,
			// and the newest head (a new version) naming it.
			f := forgeLedger(t, r, links[newest], nil)
			ref := links[newest]
			ref.Key = forgedKey(t, ref, newest, f)
			ref.SHA256 = sha256Hex(f)
			tm.put(t, ref.Key, f)
			tm.put(t, keys.head(newest), headBody(t, testTenant, ref))
		}, func(t *testing.T, rep *ChainReport) {
			// The original link is still there: a fork.
			wantChainProblem(t, rep, ChainForked, links[newest].Key, links[newest].Day, newest)
		}},
		{"NewerHeadOffChain", func(t *testing.T) {
			// A head past the newest naming a ledger that follows an
			// older link: the links after it are cut off.
			appendForged(t, links[newest-2])
		}, func(t *testing.T, rep *ChainReport) {
			if rep.Links != int(newest)+1 {
				t.Errorf("chain length %d, want %d (the newer head counts)", rep.Links, newest+1)
			}
			wantChainProblem(t, rep, ChainForked, "", links[newest].Day, newest+1)
		}},
		{"NewerHeadOnForgedHash", func(t *testing.T) {
			// A head past the newest whose ledger's prev names the newest
			// link by a wrong hash.
			prev := links[newest]
			prev.SHA256 = strings.Repeat("2", 64)
			appendForged(t, prev)
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainForked, "", links[newest].Day, newest+1)
		}},
		{"DeletedHead", func(t *testing.T) { tm.remove(t, keys.head(mid.Seq)) }, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainHeadProblem, keys.head(mid.Seq), "", mid.Seq)
		}},
		{"OrphanedLedger", func(t *testing.T) {
			f := forgeLedger(t, r, mid, func(l *Ledger) { l.Chain.Seq = newest + 7 })
			tm.put(t, forgedKey(t, mid, newest+7, f), f)
		}, func(t *testing.T, rep *ChainReport) {
			if !slices.ContainsFunc(rep.Problems, func(p ChainProblem) bool { return p.Kind == ChainOrphaned && p.Seq == newest+7 }) {
				t.Errorf("no orphaned problem for seq %d among:\n%s", newest+7, chainProblems(rep))
			}
		}},
		{"InconsistentSupersedes", func(t *testing.T) {
			// The newest link rewritten (and its head) to supersede
			// another day's link than its day's history.
			first := links[1]
			rewriteNewest(t, func(l *Ledger) { l.Chain.Supersedes = &first })
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainInconsistent, links[newest].Key, links[newest].Day, newest)
		}},
		{"InconsistentPreviousDay", func(t *testing.T) {
			rewriteNewest(t, func(l *Ledger) { l.Chain.PreviousDay = nil })
		}, func(t *testing.T, rep *ChainReport) {
			wantChainProblem(t, rep, ChainInconsistent, links[newest].Key, links[newest].Day, newest)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Run("tampered", func(t *testing.T) {
				c.run(t)
				rep := e.verifyChain(t)
				if len(rep.Problems) == 0 {
					t.Fatalf("%s: not detected", c.name)
				}
				t.Logf("%s:\n%s", c.name, chainProblems(rep))
				c.check(t, rep)
			})
			if rep := e.verifyChain(t); len(rep.Problems) != 0 {
				t.Fatalf("after undoing %s the chain has problems:\n%s", c.name, chainProblems(rep))
			}
		})
	}
}

// TestChain_Dir: a chain over several days on the dir sink verifies, and
// each tampering case is detected and named.
func TestChain_Dir(t *testing.T) {
	e := chainEnv(t, envOptions{})
	buildChain(t, e)
	runTampering(t, e, e.dir, dirTamperer{e})
}

// TestChain_PreChain: ledgers written before the chain are reported as
// pre-chain, not as problems; the day's first chained link anchors the
// day's pre-chain ledger, whose alteration is then detected.
func TestChain_PreChain(t *testing.T) {
	e := chainEnv(t, envOptions{})
	ctx := testCtx(t)
	// An archiver of before the chain: its sink cannot be read back, so
	// it writes ledgers without the chain fields.
	e.a.Sink = struct{ sink.Sink }{e.dir}
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	e.a.Sink = e.dir
	rep := e.verifyChain(t)
	if len(rep.Problems) != 0 || len(rep.PreChain) != 2 || rep.Head != nil {
		t.Fatalf("pre-chain ledgers only: problems\n%s pre-chain %v head %v; want 2 pre-chain ledgers, no problem", chainProblems(rep),
			rep.PreChain, rep.Head)
	}
	day0 := simStart.Format(time.DateOnly)
	_, preKey, _, _ := e.store.Ledger(ctx, day0)
	e.clock.Add(time.Minute)
	if _, err := e.store.AddItems(ctx, []checkpoint.Item{{Kind: checkpoint.KindAgent, UpstreamID: "late", Day: day0,
		State: checkpoint.StateAbsent, Reason: "r"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.a.WriteLedgers(ctx); err != nil || n != 1 {
		t.Fatalf("WriteLedgers = %d, %v", n, err)
	}
	rep = e.verifyChain(t)
	if len(rep.Problems) != 0 || rep.Links != 1 || rep.Anchored != 1 || len(rep.PreChain) != 1 {
		t.Fatalf("after the first chained ledger: problems\n%s links %d anchored %d pre-chain %v; want 1 link anchoring day 0's pre-chain ledger",
			chainProblems(rep), rep.Links, rep.Anchored, rep.PreChain)
	}
	var l Ledger
	if err := json.Unmarshal(readKey(t, e.dir, rep.Head.Key), &l); err != nil || l.Chain.PreChain == nil || l.Chain.PreChain.Key != preKey {
		t.Fatalf("link 1: pre_chain %v (%v), want %s", l.Chain, err, preKey)
	}
	t.Run("AlteredAnchor", func(t *testing.T) {
		dirTamperer{e}.put(t, preKey, append(readKey(t, e.dir, preKey), ' '))
		rep := e.verifyChain(t)
		wantChainProblem(t, rep, ChainAltered, preKey, day0, 0)
	})
	t.Run("DeletedAnchor", func(t *testing.T) {
		dirTamperer{e}.remove(t, preKey)
		rep := e.verifyChain(t)
		wantChainProblem(t, rep, ChainMissing, preKey, day0, 0)
	})
}

// interruptedSink fails the first head Put (after its ledger was stored).
type interruptedSink struct {
	sink.Sink
	sink.Reader
	failed bool
}

func (s *interruptedSink) Put(ctx context.Context, key string, body io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	if m.Metadata["kind"] == "ledger-head" && !s.failed {
		s.failed = true
		return sink.Object{}, errors.New("connection reset (test)")
	}
	return s.Sink.Put(ctx, key, body, size, m)
}

// failingSetLedger fails the first SetLedger: a pass interrupted after the
// head, before the state's record.
type failingSetLedger struct {
	checkpoint.Store
	failed bool
}

func (s *failingSetLedger) SetLedger(ctx context.Context, day, prev, sum, key string) error {
	if !s.failed {
		s.failed = true
		return errors.New("database went away (test)")
	}
	return s.Store.SetLedger(ctx, day, prev, sum, key)
}

// TestChain_Interrupted: a pass interrupted between a ledger and its head,
// or between the head and the state's record, leaves no fork and no
// missing link: the next pass completes the append.
func TestChain_Interrupted(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(e *env)
	}{
		{"BeforeHead", func(e *env) { e.a.Sink = &interruptedSink{Sink: e.dir, Reader: e.dir} }},
		{"BeforeRecord", func(e *env) { e.a.Store = &failingSetLedger{Store: e.store} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := chainEnv(t, envOptions{})
			ctx := testCtx(t)
			c.setup(e)
			if _, err := e.a.Once(ctx); err == nil {
				t.Fatal("Once succeeded through an interrupted ledger append")
			}
			// Later: the next pass's ledger of the day would get another key.
			e.clock.Add(time.Minute)
			if _, err := e.a.WriteLedgers(ctx); err != nil {
				t.Fatalf("the next pass: %v", err)
			}
			e.a.Sink, e.a.Store = e.dir, e.store
			rep := e.verifyChain(t)
			if len(rep.Problems) != 0 || rep.Links != 2 || len(rep.Days) != 2 {
				t.Fatalf("after the next pass: %d links over %d days, problems:\n%s; want 2 links, none", rep.Links, len(rep.Days),
					chainProblems(rep))
			}
		})
	}
}

// slowHeadSink delays every head Put a little, so that two writers that
// were not serialised would both read the same head before either wrote
// the next.
type slowHeadSink struct {
	sink.Sink
	sink.Reader
}

func (s slowHeadSink) Put(ctx context.Context, key string, body io.Reader, size int64, m sink.Meta) (sink.Object, error) {
	if m.Metadata["kind"] == "ledger-head" {
		time.Sleep(20 * time.Millisecond)
	}
	return s.Sink.Put(ctx, key, body, size, m)
}

// TestChain_Replicas: two replicas (on SQLite one store with two owners,
// on PostgreSQL two stores) run ledger passes at the same time, round
// after round, each round changing every day: the chain lease serialises
// them, so the chain has one link per ledger written and no fork.
func TestChain_Replicas(t *testing.T) {
	for _, driver := range []string{config.DriverSQLite, config.DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			e := chainEnv(t, envOptions{archiver: func(a *Archiver) { a.Replica = replicaA }})
			ctx := testCtx(t)
			var stA, stB checkpoint.Store = e.store, e.store
			if driver == config.DriverPostgres {
				dsn := pgtest.NewDatabase(t)
				stA, stB = openPostgres(t, dsn, e.clock.Now), openPostgres(t, dsn, e.clock.Now)
			}
			e.a.Store = stA
			if _, err := e.a.Once(ctx); err != nil {
				t.Fatal(err)
			}
			sk := slowHeadSink{Sink: e.dir, Reader: e.dir}
			e.a.Sink = sk
			b := e.replica(replicaB, stB, sk)
			days, err := stA.Days(ctx)
			if err != nil || len(days) < 2 {
				t.Fatalf("Days = %v, %v", days, err)
			}
			written := e.verifyChain(t).Links // the Once's
			for round := range 4 {
				var add []checkpoint.Item
				for _, d := range days {
					add = append(add, checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: fmt.Sprintf("late-%d-%s", round, d.Day),
						Day: d.Day, State: checkpoint.StateAbsent, Reason: "late"})
				}
				if _, err := stA.AddItems(ctx, add); err != nil {
					t.Fatal(err)
				}
				e.clock.Add(time.Minute)
				var wg sync.WaitGroup
				ns, errs := make([]int, 2), make([]error, 2)
				for i, a := range []*Archiver{e.a, b} {
					wg.Go(func() { ns[i], errs[i] = a.WriteLedgers(ctx) })
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d: replica %d: WriteLedgers: %v", round, i, err)
					}
				}
				written += ns[0] + ns[1]
				// A replica that skipped the pass leaves its days to the
				// next; one more pass of each catches up.
				for _, a := range []*Archiver{e.a, b} {
					n, err := a.WriteLedgers(ctx)
					if err != nil {
						t.Fatalf("round %d: catch-up pass: %v", round, err)
					}
					written += n
				}
			}
			rep := e.verifyChain(t)
			if len(rep.Problems) != 0 {
				t.Fatalf("chain after concurrent passes:\n%s", chainProblems(rep))
			}
			if rep.Links != written || written < 4*len(days) {
				t.Errorf("chain of %d links, %d ledgers written; want one link per ledger, at least %d", rep.Links, written, 4*len(days))
			}
		})
	}
}

// TestChain_Schema: the members of real head and ledger objects are those
// docs/ledger-chain.schema.json describes, required ones present, each
// constant as documented, so that the schema a third party checks against
// cannot drift from what the archiver writes.
func TestChain_Schema(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger-chain.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type def struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var schema struct {
		Defs map[string]def `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	e := chainEnv(t, envOptions{})
	buildChain(t, e)
	rep := e.verifyChain(t)
	if len(rep.Problems) != 0 || rep.Head == nil {
		t.Fatalf("chain:\n%s", chainProblems(rep))
	}
	keys, err := e.a.chainKeys()
	if err != nil {
		t.Fatal(err)
	}
	check := func(what, name string, obj map[string]json.RawMessage) {
		t.Helper()
		d, ok := schema.Defs[name]
		if !ok {
			t.Fatalf("schema has no $defs.%s", name)
		}
		for _, r := range d.Required {
			if _, ok := obj[r]; !ok {
				t.Errorf("%s: no %q, which $defs.%s requires", what, r, name)
			}
		}
		for m, v := range obj {
			p, ok := d.Properties[m]
			if !ok {
				if name != "ledger" { // a ledger's content is documented elsewhere
					t.Errorf("%s: member %q is not in $defs.%s", what, m, name)
				}
				continue
			}
			var c struct {
				Const json.RawMessage `json:"const"`
			}
			if json.Unmarshal(p, &c) == nil && c.Const != nil && string(c.Const) != string(v) {
				t.Errorf("%s: %s is %s, the schema's const %s", what, m, v, c.Const)
			}
		}
	}
	members := func(b []byte) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	head := members(readKey(t, e.dir, keys.head(rep.Head.Seq)))
	check("head", "head", head)
	check("head.link", "link", members(head["link"]))
	ledger := members(readKey(t, e.dir, rep.Head.Key))
	check("ledger", "ledger", ledger)
	chain := members(ledger["chain"])
	check("ledger.chain", "chain", chain)
	for _, m := range []string{"prev", "supersedes", "previous_day"} {
		if string(chain[m]) != "null" {
			check("ledger.chain."+m, "link", members(chain[m]))
		}
	}
}
