package postgres

import (
	"context"
	"errors"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
)

// filledSQLite returns a SQLite store filled by checkpointtest.Fill, open
// read-write (holding its lock) until the test ends.
func filledSQLite(t *testing.T) (*sqlite.Store, checkpointtest.Filled) {
	t.Helper()
	src, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, checkpointtest.Fill(t, src)
}

// importFrom exports src and imports it into dst, as migrate-state does;
// wrap, when not nil, changes the dump on the way.
func importFrom(t *testing.T, src *sqlite.Store, dst *Store, wrap func(checkpoint.Dump) checkpoint.Dump) (ImportReport, error) {
	t.Helper()
	var rep ImportReport
	err := src.Export(t.Context(), func(d checkpoint.Dump) error {
		if wrap != nil {
			d = wrap(d)
		}
		var err error
		rep, err = dst.Import(t.Context(), d)
		return err
	})
	return rep, err
}

// TestStore_Import: a SQLite state with every table and column set is
// copied whole, under the tenant, beside another tenant's state whose IDs
// it shares; the in_progress item is released; watermarks, ledger records,
// the jobs' last successes and last runs, and the times only the tables
// hold are exact; the counts are verified; a
// second import changes nothing; the store then hands out new IDs.
func TestStore_Import(t *testing.T) {
	dsn := freshDB(t)
	other := open(t, dsn, "tenant-other")
	checkpointtest.Fill(t, other)
	otherBefore := snapshot(t, other)
	src, f := filledSQLite(t)
	dst := open(t, dsn, "tenant-a")
	ctx := t.Context()

	rep, err := importFrom(t, src, dst, nil)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if !rep.OK() || rep.Released != 1 || rep.Tenant != "tenant-a" {
		t.Errorf("report: ok %v, released %d, tenant %s, problems %v; want ok, 1 released", rep.OK(), rep.Released, rep.Tenant, rep.Problems)
	}
	wantTables := map[string]int64{checkpoint.TableItems: 13, checkpoint.TablePackages: 5, checkpoint.TableCalls: 4,
		checkpoint.TableWatermarks: 2, checkpoint.TableLedgers: 3, checkpoint.TableJobSuccesses: 2, checkpoint.TableJobRuns: 3}
	if got := tableNames(rep.Tables); !slices.Equal(got, checkpoint.Tables()) {
		t.Errorf("report tables %v, want %v", got, checkpoint.Tables())
	}
	for _, ti := range rep.Tables {
		if n := wantTables[ti.Table]; ti.Source != n || ti.Inserted != n || ti.Present != 0 || ti.Target != n {
			t.Errorf("%s: %+v, want %d copied", ti.Table, ti, n)
		}
	}
	if rep.Source.ItemStates[checkpoint.StateInProgress] != 1 || rep.Target.ItemStates[checkpoint.StateInProgress] != 0 ||
		rep.Target.ItemStates[checkpoint.StatePending] != rep.Source.ItemStates[checkpoint.StatePending]+1 {
		t.Errorf("item states: source %v, target %v", rep.Source.ItemStates, rep.Target.ItemStates)
	}
	checkpointtest.SameState(t, src, dst, f)
	// What the Store interface does not return: when calls and ledgers
	// were recorded.
	stored := func(what, q, key string, want time.Time) {
		t.Helper()
		var n int64
		if err := dst.pool.QueryRow(ctx, q, dst.tenant, key).Scan(&n); err != nil {
			t.Fatalf("%s %s: %v", what, key, err)
		}
		if !dec(n).Equal(want) || want.IsZero() {
			t.Errorf("%s %s: %v, want %v", what, key, dec(n), want)
		}
	}
	err = src.Export(ctx, func(d checkpoint.Dump) error {
		for c, err := range d.Calls {
			if err != nil {
				return err
			}
			stored("call created", `SELECT created_at FROM calls WHERE tenant = $1 AND call_id = $2`, c.CallID, c.CreatedAt)
		}
		for l, err := range d.Ledgers {
			if err != nil {
				return err
			}
			stored("ledger written", `SELECT written_at FROM ledgers WHERE tenant = $1 AND day = $2`, l.Day, l.WrittenAt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var leases int
	if err := dst.pool.QueryRow(ctx, `SELECT count(*) FROM leases WHERE tenant = $1`, dst.tenant).Scan(&leases); err != nil || leases != 0 {
		t.Errorf("%d leases copied (%v), want none: they are transient", leases, err)
	}

	t.Run("again", func(t *testing.T) {
		before := snapshot(t, dst)
		rep, err := importFrom(t, src, dst, nil)
		if err != nil {
			t.Fatalf("second Import: %v", err)
		}
		for _, ti := range rep.Tables {
			if n := wantTables[ti.Table]; ti.Inserted != 0 || ti.Present != n || ti.Target != n {
				t.Errorf("%s: %+v, want all %d present, none inserted", ti.Table, ti, n)
			}
		}
		if !rep.OK() {
			t.Errorf("problems: %v", rep.Problems)
		}
		if after := snapshot(t, dst); after != before {
			t.Errorf("the second import changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	t.Run("new IDs", func(t *testing.T) {
		items, err := src.Items(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := dst.AddItems(ctx, []checkpoint.Item{agent("after-import")}); err != nil || n != 1 {
			t.Fatalf("AddItems after the import = %d, %v", n, err)
		}
		if id := idOf(t, dst, "after-import"); id <= items[len(items)-1].ID {
			t.Errorf("new item ID %d, not past the imported ones (up to %d)", id, items[len(items)-1].ID)
		}
		pkgs, err := src.Packages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		id, err := dst.CreatePackage(ctx, checkpoint.Package{Begin: t0, End: t0.Add(time.Hour)})
		if err != nil {
			t.Fatalf("CreatePackage after the import: %v", err)
		}
		for _, p := range pkgs {
			if id <= p.ID {
				t.Errorf("new package ID %d, not past the imported %d", id, p.ID)
			}
		}
	})
	if after := snapshot(t, other); after != otherBefore {
		t.Errorf("the import changed another tenant's state:\nbefore:\n%s\nafter:\n%s", otherBefore, after)
	}
}

func tableNames(ts []TableImport) []string {
	var out []string
	for _, ti := range ts {
		out = append(out, ti.Table)
	}
	return out
}

// TestStore_ImportRefusesDifferentState: an import into a tenant whose
// state is not a copy of the source (changed since, extra rows, another
// state altogether) is refused, names what differs and writes nothing.
func TestStore_ImportRefusesDifferentState(t *testing.T) {
	for _, tt := range []struct {
		name  string
		after func(t *testing.T, src *sqlite.Store, dst *Store) // after a first import
		want  string
	}{
		{"item changed in the target", func(t *testing.T, _ *sqlite.Store, dst *Store) {
			if err := dst.Absent(t.Context(), "", idOf(t, dst, "a-new"), "gone", "op"); err != nil {
				t.Fatal(err)
			}
		}, "items: 1 differ from the source's (first id "},
		{"item added in the target", func(t *testing.T, _ *sqlite.Store, dst *Store) {
			if _, err := dst.AddItems(t.Context(), []checkpoint.Item{agent("extra")}); err != nil {
				t.Fatal(err)
			}
		}, "items: 1 are not in the source (first id "},
		{"package added in the target", func(t *testing.T, _ *sqlite.Store, dst *Store) {
			if _, err := dst.CreatePackage(t.Context(), checkpoint.Package{Begin: t0, End: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}, "packages: 1 are not in the source (first id "},
		{"source moved on", func(t *testing.T, src *sqlite.Store, _ *Store) {
			if err := src.SetWatermark(t.Context(), "cdr", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			if err := src.SetLedger(t.Context(), "2026-03-02", "f3", "f5", "ledger/2026-03-02/2.json"); err != nil {
				t.Fatal(err)
			}
		}, "watermarks: 1 differ from the source's (first job cdr); ledgers: 1 differ from the source's (first day 2026-03-02)"},
		{"source ran since", func(t *testing.T, src *sqlite.Store, _ *Store) {
			at := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := src.SetLastSuccess(t.Context(), "recordings", at); err != nil {
				t.Fatal(err)
			}
			if err := src.SetLastRun(t.Context(), checkpoint.JobRun{Job: "transfer", Started: at, Result: checkpoint.RunRunning}); err != nil {
				t.Fatal(err)
			}
		}, "job_successes: 1 differ from the source's (first job recordings)"},
		{"target ran since", func(t *testing.T, _ *sqlite.Store, dst *Store) {
			at := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := dst.SetLastRun(t.Context(), checkpoint.JobRun{Job: "transfer", Started: at, Result: checkpoint.RunOK}); err != nil {
				t.Fatal(err)
			}
		}, "job_runs: 1 are not in the source (first job transfer)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dsn := freshDB(t)
			src, _ := filledSQLite(t)
			dst := open(t, dsn, "tenant-a")
			if _, err := importFrom(t, src, dst, nil); err != nil {
				t.Fatal(err)
			}
			tt.after(t, src, dst)
			before := snapshot(t, dst)
			_, err := importFrom(t, src, dst, nil)
			if !errors.Is(err, ErrStateDiffers) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import = %v, want ErrStateDiffers and %q", err, tt.want)
			}
			if after := snapshot(t, dst); after != before {
				t.Errorf("a refused import changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	t.Run("another state", func(t *testing.T) {
		dsn := freshDB(t)
		src, _ := filledSQLite(t)
		dst := open(t, dsn, "tenant-a")
		// The same story told to the target directly: the same natural
		// keys, but other times.
		checkpointtest.Fill(t, dst)
		before := snapshot(t, dst)
		_, err := importFrom(t, src, dst, nil)
		if !errors.Is(err, ErrStateDiffers) || !strings.Contains(err.Error(), "items: 13 differ") {
			t.Fatalf("Import = %v, want ErrStateDiffers for every item", err)
		}
		if after := snapshot(t, dst); after != before {
			t.Error("a refused import changed the state")
		}
	})
}

// failAfter yields seq's first n rows, then an error.
func failAfter[T any](seq iter.Seq2[T, error], n int) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		i := 0
		for v, err := range seq {
			if i == n {
				var zero T
				yield(zero, errors.New("source read failed"))
				return
			}
			i++
			if !yield(v, err) {
				return
			}
		}
	}
}

// TestStore_ImportInterrupted: an import that fails midway (the source
// fails while the calls are copied, after the items) leaves the tenant
// without a row; the next one copies everything.
func TestStore_ImportInterrupted(t *testing.T) {
	dsn := freshDB(t)
	src, f := filledSQLite(t)
	dst := open(t, dsn, "tenant-a")
	_, err := importFrom(t, src, dst, func(d checkpoint.Dump) checkpoint.Dump {
		d.Calls = failAfter(d.Calls, 2)
		return d
	})
	if err == nil || !strings.Contains(err.Error(), "source read failed") {
		t.Fatalf("Import = %v, want the source's error", err)
	}
	c, err := dst.counts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range c.Tables {
		if n != 0 {
			t.Errorf("%s: %d rows after a failed import, want none", table, n)
		}
	}
	rep, err := importFrom(t, src, dst, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("Import after the failed one = %v, problems %v", err, rep.Problems)
	}
	checkpointtest.SameState(t, src, dst, f)
}

// TestStore_ImportVerifies: counts that do not agree (a source that
// counts one item more than it yields) are reported as problems.
func TestStore_ImportVerifies(t *testing.T) {
	dsn := freshDB(t)
	src, _ := filledSQLite(t)
	dst := open(t, dsn, "tenant-a")
	rep, err := importFrom(t, src, dst, func(d checkpoint.Dump) checkpoint.Dump {
		counts := d.Counts
		d.Counts = func() (checkpoint.Counts, error) {
			c, err := counts()
			c.Tables[checkpoint.TableItems]++
			c.ItemStates[checkpoint.StateDone]++
			return c, err
		}
		return d
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"items: 13 rows, want 14", "items done: 2, want 3"}
	if rep.OK() || !slices.Equal(rep.Problems, want) {
		t.Errorf("problems %q, want %q", rep.Problems, want)
	}
}

// TestStore_ImportRefused: a read-only store imports nothing, and a value
// PostgreSQL text cannot hold fails the import, naming it.
func TestStore_ImportRefused(t *testing.T) {
	dsn := freshDB(t)
	open(t, dsn, "tenant-a") // migrates
	ro, err := Open(context.Background(), Options{DSN: dsn, Tenant: "tenant-a", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	src, _ := filledSQLite(t)
	if _, err := importFrom(t, src, ro, nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Import on a read-only store = %v, want ErrReadOnly", err)
	}
	if _, err := src.AddItems(t.Context(), []checkpoint.Item{{Kind: checkpoint.KindAgent, UpstreamID: "nul\x00byte"}}); err != nil {
		t.Fatal(err)
	}
	dst := open(t, dsn, "tenant-a")
	if _, err := importFrom(t, src, dst, nil); err == nil || !strings.Contains(err.Error(), `upstream id "nul\x00byte": not valid UTF-8 or holds a NUL byte`) {
		t.Errorf("Import of a NUL byte = %v", err)
	}
}
