package jobs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// file is the path of key in the dir sink; sidecar that of its sidecar.
func (e *env) file(key string) string { return filepath.Join(e.root, filepath.FromSlash(key)) }
func (e *env) sidecar(key string) string {
	return filepath.Join(e.root, sink.ReservedPrefix, "meta", filepath.FromSlash(key)+".json")
}

// keep saves the object and sidecar of key and restores them when the
// subtest ends, so that every subtest starts from the clean archive.
func (e *env) keep(t *testing.T, key string) {
	t.Helper()
	for _, p := range []string{e.file(key), e.sidecar(key)} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(p, b, 0o640); err != nil {
				t.Error(err)
			}
		})
	}
}

func (e *env) verify(t *testing.T, o VerifyOptions) *VerifyReport {
	t.Helper()
	rep, err := e.a.Verify(testCtx(t), o)
	if err != nil {
		t.Fatalf("Verify(%+v): %v", o, err)
	}
	return rep
}

// problems returns every problem line of rep.
func problems(rep *VerifyReport) []string {
	var out []string
	for _, d := range rep.Days {
		out = append(out, d.Problems...)
	}
	return append(out, rep.Strays...)
}

// wantProblem asserts rep has exactly n problems and one naming key that
// starts with what.
func wantProblem(t *testing.T, rep *VerifyReport, n int, what, key string) {
	t.Helper()
	all := problems(rep)
	if rep.Problems != n || len(all) != n {
		t.Errorf("Problems = %d (%d lines), want %d:\n%s", rep.Problems, len(all), n, strings.Join(all, "\n"))
	}
	if !slices.ContainsFunc(all, func(p string) bool { return strings.HasPrefix(p, what) && strings.Contains(p, key) }) {
		t.Errorf("no problem %q naming %s among:\n%s", what, key, strings.Join(all, "\n"))
	}
}

// totals sums the day counters of rep.
func totals(rep *VerifyReport) VerifyDay {
	var s VerifyDay
	for _, d := range rep.Days {
		s.Entries += d.Entries
		s.OK += d.OK
		s.Missing += d.Missing
		s.SizeMismatch += d.SizeMismatch
		s.DigestMismatch += d.DigestMismatch
		s.Invalid += d.Invalid
		s.LedgerMismatch = append(s.LedgerMismatch, d.LedgerMismatch...)
	}
	return s
}

func TestArchiver_Verify(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatalf("Once: %v", err)
	}
	var recs []checkpoint.Item // archived recordings, one per test that damages one
	for _, it := range e.items(checkpoint.StateDone) {
		if it.Key != "" {
			recs = append(recs, it)
		}
	}
	if len(recs) != len(m.Recordings) || len(recs) < 6 {
		t.Fatalf("%d archived recordings, manifest %d; want at least 6", len(recs), len(m.Recordings))
	}

	for _, deep := range []bool{false, true} {
		name := map[bool]string{false: "clean", true: "clean deep"}[deep]
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int64
			orig := validateObject
			validateObject = func(a *Archiver, kind string, r io.Reader, size int64) error {
				calls.Add(1)
				return orig(a, kind, r, size)
			}
			t.Cleanup(func() { validateObject = orig })
			rep := e.verify(t, VerifyOptions{Deep: deep})
			if rep.Problems != 0 || !rep.StraysChecked || len(rep.Strays) != 0 {
				t.Errorf("Problems %d strays %v (checked %v), want none:\n%s", rep.Problems, rep.Strays, rep.StraysChecked,
					strings.Join(problems(rep), "\n"))
			}
			if len(rep.Days) != defaultTestDays {
				t.Errorf("%d days checked, want %d", len(rep.Days), defaultTestDays)
			}
			for _, d := range rep.Days {
				if d.Ledger != LedgerOK || d.LedgerKey == "" || !strings.HasPrefix(d.LedgerKey, ledgerDir) {
					t.Errorf("day %s: ledger %s %q", d.Day, d.Ledger, d.LedgerKey)
				}
			}
			tot := totals(rep)
			if tot.Entries != len(recs) || tot.OK != len(recs) {
				t.Errorf("entries %d ok %d, want %d", tot.Entries, tot.OK, len(recs))
			}
			if want := map[bool]int{false: 0, true: len(recs)}[deep]; int(calls.Load()) != want {
				t.Errorf("validator called %d times, want %d", calls.Load(), want)
			}
		})
	}

	t.Run("deleted object", func(t *testing.T) {
		it := recs[0]
		e.keep(t, it.Key)
		if err := os.Remove(e.file(it.Key)); err != nil {
			t.Fatal(err)
		}
		for _, deep := range []bool{false, true} {
			rep := e.verify(t, VerifyOptions{Deep: deep})
			wantProblem(t, rep, 1, "missing "+it.Key, it.UpstreamID)
			if tot := totals(rep); tot.Missing != 1 || tot.OK != len(recs)-1 {
				t.Errorf("deep %v: missing %d ok %d, want 1 and %d", deep, tot.Missing, tot.OK, len(recs)-1)
			}
		}
	})

	t.Run("modified object", func(t *testing.T) {
		// Same size, other bytes, the recorded digest left as it was: only
		// a re-read notices.
		it := recs[1]
		e.keep(t, it.Key)
		b, err := os.ReadFile(e.file(it.Key))
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(e.file(it.Key), b, 0o640); err != nil {
			t.Fatal(err)
		}
		if rep := e.verify(t, VerifyOptions{}); rep.Problems != 0 {
			t.Errorf("the fast pass trusts the recorded digest, yet found:\n%s", strings.Join(problems(rep), "\n"))
		}
		rep := e.verify(t, VerifyOptions{Deep: true})
		wantProblem(t, rep, 1, "digest "+it.Key, "read sha256")
		if tot := totals(rep); tot.DigestMismatch != 1 {
			t.Errorf("digest mismatches %d, want 1", tot.DigestMismatch)
		}
		// Once the digest is recorded again (here: the dir sink re-hashes an
		// object without sidecar), the fast pass sees it too.
		if err := os.Remove(e.sidecar(it.Key)); err != nil {
			t.Fatal(err)
		}
		rep = e.verify(t, VerifyOptions{})
		wantProblem(t, rep, 1, "digest "+it.Key, "the store recorded sha256")
	})

	t.Run("truncated object", func(t *testing.T) {
		it := recs[2]
		e.keep(t, it.Key)
		if err := os.Truncate(e.file(it.Key), it.Size/2); err != nil {
			t.Fatal(err)
		}
		for _, deep := range []bool{false, true} {
			rep := e.verify(t, VerifyOptions{Deep: deep})
			wantProblem(t, rep, 1, "size "+it.Key, it.UpstreamID)
			if tot := totals(rep); tot.SizeMismatch != 1 {
				t.Errorf("deep %v: size mismatches %d, want 1", deep, tot.SizeMismatch)
			}
		}
	})

	t.Run("stray object", func(t *testing.T) {
		stray := testPrefix + "/" + testTenant + "/2026/11/01/stray.wav"
		if _, err := e.dir.Put(ctx, stray, strings.NewReader("not archived by us"), -1, sink.Meta{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(e.file(stray)); os.Remove(e.sidecar(stray)) })
		// Outside the tenant's prefix, or where quarantined bytes go: not strays.
		for _, k := range []string{testPrefix + "/other-tenant/x.wav", testPrefix + "/" + testTenant + "/quarantine/x.zip"} {
			if _, err := e.dir.Put(ctx, k, strings.NewReader("x"), 1, sink.Meta{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(e.file(k)); os.Remove(e.sidecar(k)) })
		}
		rep := e.verify(t, VerifyOptions{})
		if !slices.Equal(rep.Strays, []string{stray}) || rep.Problems != 1 {
			t.Errorf("strays %v, problems %d; want [%s] and 1", rep.Strays, rep.Problems, stray)
		}
		// A date range checks those days only: no stray listing.
		day := rep.Days[0].Day
		rep = e.verify(t, VerifyOptions{From: day, To: day})
		if rep.StraysChecked || rep.Problems != 0 || len(rep.Days) != 1 || rep.Days[0].Day != day {
			t.Errorf("with a range: strays checked %v, problems %d, days %d", rep.StraysChecked, rep.Problems, len(rep.Days))
		}
	})

	t.Run("invalid container", func(t *testing.T) {
		it := recs[3]
		orig := validateObject
		validateObject = func(a *Archiver, kind string, r io.Reader, size int64) error {
			if size == it.Size && kind == it.Kind {
				// Read part only: Verify still hashes the whole object.
				_, _ = io.CopyN(io.Discard, r, 10)
				return errors.New("not a RIFF/WAVE file")
			}
			return orig(a, kind, r, size)
		}
		t.Cleanup(func() { validateObject = orig })
		rep := e.verify(t, VerifyOptions{Deep: true})
		all := problems(rep)
		if tot := totals(rep); tot.Invalid == 0 || tot.Invalid != rep.Problems || tot.DigestMismatch != 0 {
			t.Errorf("invalid %d digest %d problems %d:\n%s", tot.Invalid, tot.DigestMismatch, rep.Problems, strings.Join(all, "\n"))
		}
		if !slices.ContainsFunc(all, func(p string) bool { return strings.HasPrefix(p, "invalid "+it.Key) }) {
			t.Errorf("%s not reported invalid:\n%s", it.Key, strings.Join(all, "\n"))
		}
	})

	t.Run("ledger differs from checkpoint", func(t *testing.T) {
		// The checkpoint moves on after the ledger was written: a new item.
		it := recs[4]
		extra := checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "verify-extra.wav", CallID: it.CallID, Day: it.Day,
			Key: it.Key + ".extra"}
		if _, err := e.store.AddItems(ctx, []checkpoint.Item{extra}); err != nil {
			t.Fatal(err)
		}
		rep := e.verify(t, VerifyOptions{From: it.Day, To: it.Day})
		if rep.Problems != 1 || len(rep.Days) != 1 || rep.Days[0].Ledger != LedgerDiffers {
			t.Fatalf("problems %d, want 1:\n%s", rep.Problems, strings.Join(problems(rep), "\n"))
		}
		d := rep.Days[0]
		want := "call " + it.CallID + " agent verify-extra.wav: in the checkpoint (pending), not in the ledger"
		if len(d.LedgerMismatch) != 1 || d.LedgerMismatch[0] != want {
			t.Errorf("ledger mismatch %q, want %q", d.LedgerMismatch, want)
		}
		if !strings.Contains(d.Problems[0], d.LedgerKey) || !strings.Contains(d.Problems[0], "the checkpoint changed since") {
			t.Errorf("problem %q: want the ledger key and a note that the ledger is behind", d.Problems[0])
		}
		// The next ledger pass catches up: clean again.
		e.clock.Add(2 * ledgerMargin)
		if _, err := e.a.WriteLedgers(ctx); err != nil {
			t.Fatal(err)
		}
		if rep := e.verify(t, VerifyOptions{From: it.Day, To: it.Day}); rep.Problems != 0 {
			t.Errorf("after WriteLedgers: %s", strings.Join(problems(rep), "\n"))
		}
	})

	t.Run("ledger edited", func(t *testing.T) {
		day := recs[5].Day
		_, key, ok, err := e.store.Ledger(ctx, day)
		if !ok || err != nil {
			t.Fatalf("Ledger(%s) = %v, %v", day, ok, err)
		}
		e.keep(t, key)
		b, err := os.ReadFile(e.file(key))
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(b), `"sha256": "`+recs[5].SHA256+`"`, `"sha256": "`+strings.Repeat("0", 64)+`"`, 1)
		if edited == string(b) {
			t.Fatalf("%s not found in the ledger %s", recs[5].SHA256, key)
		}
		if err := os.WriteFile(e.file(key), []byte(edited), 0o640); err != nil {
			t.Fatal(err)
		}
		rep := e.verify(t, VerifyOptions{From: day, To: day})
		all := strings.Join(problems(rep), "\n")
		d := rep.Days[0]
		// The object no longer matches its recorded digest, the ledger
		// disagrees with the checkpoint, and the entry with the ledger.
		if rep.Problems != 3 || d.Ledger != LedgerDiffers || len(d.LedgerMismatch) != 1 || d.DigestMismatch != 1 {
			t.Errorf("problems %d ledger %s mismatches %q digest %d:\n%s", rep.Problems, d.Ledger, d.LedgerMismatch, d.DigestMismatch, all)
		}
		if !strings.Contains(all, "ledger "+key+": read ") || strings.Contains(all, "the checkpoint changed since") {
			t.Errorf("want the ledger object's own digest mismatch and no stale-ledger note:\n%s", all)
		}
	})

	t.Run("ledger object missing", func(t *testing.T) {
		day := recs[0].Day
		_, key, _, _ := e.store.Ledger(ctx, day)
		e.keep(t, key)
		if err := os.Remove(e.file(key)); err != nil {
			t.Fatal(err)
		}
		rep := e.verify(t, VerifyOptions{From: day, To: day})
		d := rep.Days[0]
		if rep.Problems != 1 || d.Ledger != LedgerUnreadable || d.Entries == 0 || d.OK != d.Entries {
			t.Errorf("problems %d ledger %s entries %d ok %d:\n%s", rep.Problems, d.Ledger, d.Entries, d.OK, strings.Join(problems(rep), "\n"))
		}
		wantProblem(t, rep, 1, "ledger "+key, "object missing")
	})

	t.Run("bad options", func(t *testing.T) {
		for _, o := range []VerifyOptions{{From: "2026-13-01"}, {From: "2026-11-02", To: "2026-11-01"}} {
			if _, err := e.a.Verify(ctx, o); err == nil {
				t.Errorf("Verify(%+v) = nil error", o)
			}
		}
	})
}
