package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// parquetEnv is the simulator's two days archived (Once) into a versitygw
// bucket without Object Lock, so that the test can delete and replace
// objects behind the archiver's back with the S3 client.
type parquetEnv struct {
	*env
	s    *s3.Sink
	c    *awss3.Client
	pkgs []checkpoint.Package // done, stored in full
	keys []map[cdr.Kind]string
	sums map[string]string // Parquet key → SHA-256 of the bytes the cdr job stored
}

func newParquetEnv(t *testing.T) *parquetEnv {
	t.Helper()
	srv := s3test.Start(t)
	s, err := s3.New(context.Background(), s3.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.NewBucket(t, false), PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, SpoolDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	e := newEnv(t, envOptions{
		// Awkward values, short rows and extra columns: bytes worth comparing.
		client: func(co *cecclient.Options) { co.FSURL = rewritePackages(t, co.FSURL) },
		sink:   func(sink.Sink) sink.Sink { return s },
	})
	if _, err := e.a.Once(testCtx(t)); err != nil {
		t.Fatalf("Once: %v", err)
	}
	pe := &parquetEnv{env: e, s: s, c: srv.Client(), sums: map[string]string{}}
	pkgs, err := e.store.Packages(context.Background(), checkpoint.StateDone)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if p.Key == "" {
			continue
		}
		keys, err := e.a.parquetKeys(p)
		if err != nil {
			t.Fatal(err)
		}
		pe.pkgs, pe.keys = append(pe.pkgs, p), append(pe.keys, keys)
		for _, k := range keys {
			pe.sums[k] = pe.readSum(t, k)
		}
	}
	if len(pe.pkgs) != defaultTestDays || pe.pkgs[0].Begin.Equal(pe.pkgs[1].Begin) {
		t.Fatalf("%d packages stored in full, want one for each of %d days", len(pe.pkgs), defaultTestDays)
	}
	return pe
}

// readSum reads key back and hashes it.
func (pe *parquetEnv) readSum(t *testing.T, key string) string {
	t.Helper()
	sum := sha256.Sum256(readKey(t, pe.s, key))
	return hex.EncodeToString(sum[:])
}

// remove deletes key from the bucket, as a lost object or a package
// archived before Parquet existed.
func (pe *parquetEnv) remove(t *testing.T, key string) {
	t.Helper()
	if _, err := pe.c.DeleteObject(context.Background(), &awss3.DeleteObjectInput{
		Bucket: aws.String(pe.s.Bucket()), Key: aws.String(pe.s.ObjectKey(key)),
	}); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	if _, err := pe.s.Stat(context.Background(), key); !errors.Is(err, sink.ErrNotFound) {
		t.Fatalf("%s still there after its deletion: %v", key, err)
	}
}

// replace puts body under key through the sink with meta, where the cdr
// job's object was.
func (pe *parquetEnv) replace(t *testing.T, key string, body []byte, meta sink.Meta) {
	t.Helper()
	pe.remove(t, key)
	sum := sha256.Sum256(body)
	meta.SHA256 = hex.EncodeToString(sum[:])
	if _, err := pe.s.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), meta); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (pe *parquetEnv) backfill(t *testing.T, o ParquetBackfillOptions) *ParquetBackfillReport {
	t.Helper()
	rep, err := pe.a.BackfillParquet(testCtx(t), o)
	if err != nil {
		t.Fatalf("BackfillParquet(%+v): %v", o, err)
	}
	return rep
}

// wantClean asserts verify (fast and deep) finds no problem and checked
// every Parquet file, and that each holds the bytes the cdr job stored.
func (pe *parquetEnv) wantClean(t *testing.T) {
	t.Helper()
	for _, deep := range []bool{false, true} {
		rep := pe.verify(t, VerifyOptions{Deep: deep})
		files := 0
		for _, d := range rep.Days {
			files += d.Parquet
		}
		if rep.Problems != 0 || files != 2*len(pe.pkgs) {
			t.Errorf("verify (deep %v): %d problems, %d Parquet files checked (want %d):\n%s",
				deep, rep.Problems, files, 2*len(pe.pkgs), strings.Join(problems(rep), "\n"))
		}
	}
	for k, want := range pe.sums {
		if got := pe.readSum(t, k); got != want {
			t.Errorf("%s: sha256 %s, the cdr job stored %s", k, got, want)
		}
	}
}

// fileStates lists "state key" for each file of rep.
func fileStates(rep *ParquetBackfillReport) []string {
	var out []string
	for _, f := range rep.Files {
		out = append(out, f.State+" "+f.Key)
	}
	slices.Sort(out)
	return out
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestParquetBackfill_S3 on cecsim and versitygw: Parquet files deleted
// behind the archiver's back (as for packages archived before Parquet
// existed) are reported by verify as missing, listed by a dry run (which
// writes nothing), and written again by BackfillParquet byte for byte as
// the cdr job wrote them (the same SHA-256), after which verify, fast and
// deep, is clean. Files stored wrong (metadata, or another package's bytes
// under the key) are reported by verify, by deep verify for the bytes. A
// package whose ZIP in the sink was altered is refused, named, and nothing
// is written from it; the other packages are done.
func TestParquetBackfill_S3(t *testing.T) {
	pe := newParquetEnv(t)
	p0, p1 := pe.pkgs[0], pe.pkgs[1]
	calls0, recs1 := pe.keys[0][cdr.KindCall], pe.keys[1][cdr.KindRecord]
	day1 := pe.a.packageDay(p1)

	t.Run("clean", func(t *testing.T) {
		pe.wantClean(t)
		rep := pe.backfill(t, ParquetBackfillOptions{})
		if rep.Packages != len(pe.pkgs) || rep.Present != 2*len(pe.pkgs) || len(rep.Files) != 0 || rep.Written+rep.Missing+rep.Failed+rep.Existed != 0 {
			t.Errorf("backfill of a complete archive: %+v, want every file present", rep)
		}
	})

	pe.remove(t, calls0)
	pe.remove(t, recs1)

	t.Run("verify missing", func(t *testing.T) {
		rep := pe.verify(t, VerifyOptions{})
		all := problems(rep)
		if rep.Problems != 2 || len(all) != 2 {
			t.Fatalf("%d problems, want the 2 missing files:\n%s", rep.Problems, strings.Join(all, "\n"))
		}
		for _, k := range []string{calls0, recs1} {
			if !slices.ContainsFunc(all, func(p string) bool {
				return strings.HasPrefix(p, "parquet missing "+k) && strings.Contains(p, "archiver parquet-backfill")
			}) {
				t.Errorf("no problem \"parquet missing %s … archiver parquet-backfill\" among:\n%s", k, strings.Join(all, "\n"))
			}
		}
		// A range checks the days it covers only.
		rep = pe.verify(t, VerifyOptions{From: day1, To: day1})
		if all := problems(rep); rep.Problems != 1 || !strings.Contains(all[0], recs1) {
			t.Errorf("verify %s: %d problems, want the one of that day:\n%s", day1, rep.Problems, strings.Join(all, "\n"))
		}
	})

	t.Run("dry run", func(t *testing.T) {
		rep := pe.backfill(t, ParquetBackfillOptions{DryRun: true})
		want := sortedStrings(ParquetMissing+" "+calls0, ParquetMissing+" "+recs1)
		if got := fileStates(rep); !slices.Equal(got, want) || rep.Missing != 2 || rep.Written != 0 || rep.Present != 2*len(pe.pkgs)-2 || !rep.DryRun {
			t.Errorf("dry run: %+v, files %q; want %q", rep, got, want)
		}
		rep = pe.backfill(t, ParquetBackfillOptions{DryRun: true, From: day1})
		if got := fileStates(rep); rep.Packages != 1 || !slices.Equal(got, []string{ParquetMissing + " " + recs1}) {
			t.Errorf("dry run --from %s: %d packages, files %q; want 1 and %s", day1, rep.Packages, got, recs1)
		}
		for _, k := range []string{calls0, recs1} {
			if _, err := pe.s.Stat(context.Background(), k); !errors.Is(err, sink.ErrNotFound) {
				t.Errorf("%s after a dry run: %v, want not found", k, err)
			}
		}
	})

	t.Run("backfill", func(t *testing.T) {
		rep := pe.backfill(t, ParquetBackfillOptions{})
		want := sortedStrings(ParquetWritten+" "+calls0, ParquetWritten+" "+recs1)
		if got := fileStates(rep); !slices.Equal(got, want) || rep.Written != 2 || rep.Present != 2*len(pe.pkgs)-2 || rep.Bytes <= 0 {
			t.Errorf("backfill: %+v, files %q; want %q", rep, got, want)
		}
		pe.wantClean(t) // the same bytes as the cdr job's
		for _, k := range []string{calls0, recs1} {
			obj, err := pe.s.Stat(context.Background(), k)
			if err != nil || obj.SHA256 != pe.sums[k] {
				t.Errorf("%s: recorded sha256 %q (%v), want %s", k, obj.SHA256, err, pe.sums[k])
			}
		}
		if rep := pe.backfill(t, ParquetBackfillOptions{}); rep.Written != 0 || rep.Present != 2*len(pe.pkgs) {
			t.Errorf("second backfill: %+v, want every file present", rep)
		}
	})

	t.Run("verify wrong", func(t *testing.T) {
		body := readKey(t, pe.s, calls0)
		pe.replace(t, calls0, body, sink.Meta{ContentType: "application/octet-stream",
			Metadata: map[string]string{"kind": "cdr-rows", "package-sha256": p1.SHA256}})
		rep := pe.verify(t, VerifyOptions{})
		all := problems(rep)
		for _, want := range []string{`content type "application/octet-stream"`, `metadata kind "cdr-rows"`,
			`metadata table ""`, `metadata package-sha256 "` + p1.SHA256 + `"`} {
			if !slices.ContainsFunc(all, func(p string) bool { return strings.HasPrefix(p, "parquet wrong "+calls0) && strings.Contains(p, want) }) {
				t.Errorf("no problem \"parquet wrong %s: %s\" among:\n%s", calls0, want, strings.Join(all, "\n"))
			}
		}
		if rep.Problems != 4 {
			t.Errorf("%d problems, want 4:\n%s", rep.Problems, strings.Join(all, "\n"))
		}

		pe.replace(t, calls0, nil, sink.Meta{ContentType: parquetContentType,
			Metadata: map[string]string{"kind": parquetObjectKind, "table": "calls", "package-sha256": p0.SHA256}})
		rep = pe.verify(t, VerifyOptions{})
		if all := problems(rep); rep.Problems != 1 || !strings.Contains(all[0], "empty object") {
			t.Errorf("empty file: %d problems, want one naming it empty:\n%s", rep.Problems, strings.Join(all, "\n"))
		}

		// The other package's calls under this key, with this package's
		// metadata: only reading the rows back tells.
		other := readKey(t, pe.s, pe.keys[1][cdr.KindCall])
		pe.replace(t, calls0, other, sink.Meta{ContentType: parquetContentType,
			Metadata: map[string]string{"kind": parquetObjectKind, "table": "calls", "package-sha256": p0.SHA256}})
		if rep := pe.verify(t, VerifyOptions{}); rep.Problems != 0 {
			t.Errorf("fast verify: %d problems, want none (the metadata is right):\n%s", rep.Problems, strings.Join(problems(rep), "\n"))
		}
		rep = pe.verify(t, VerifyOptions{Deep: true})
		if all := problems(rep); rep.Problems != 1 || !strings.HasPrefix(all[0], "parquet invalid "+calls0) ||
			!strings.Contains(all[0], `bill_file "`+p1.BillFileName+`", want "`+p0.BillFileName+`"`) {
			t.Errorf("deep verify: %d problems, want one naming %s and the provenance of %s:\n%s",
				rep.Problems, calls0, p1.BillFileName, strings.Join(all, "\n"))
		}

		// Backfill leaves what is there; deleted, it is written again.
		if rep := pe.backfill(t, ParquetBackfillOptions{}); rep.Written != 0 {
			t.Errorf("backfill wrote over a present file: %+v", rep)
		}
		pe.remove(t, calls0)
		if rep := pe.backfill(t, ParquetBackfillOptions{}); rep.Written != 1 {
			t.Errorf("backfill after the deletion: %+v, want 1 written", rep)
		}
		pe.wantClean(t)
	})

	t.Run("altered package", func(t *testing.T) {
		zip := readKey(t, pe.s, p0.Key)
		zip[len(zip)/2] ^= 0xff
		if _, err := pe.c.PutObject(context.Background(), &awss3.PutObjectInput{
			Bucket: aws.String(pe.s.Bucket()), Key: aws.String(pe.s.ObjectKey(p0.Key)), Body: bytes.NewReader(zip),
		}); err != nil {
			t.Fatal(err)
		}
		pe.remove(t, calls0)
		pe.remove(t, recs1)
		rep, err := pe.a.BackfillParquet(testCtx(t), ParquetBackfillOptions{})
		if err == nil || !strings.Contains(err.Error(), "1 of 2 files failed") {
			t.Errorf("BackfillParquet: %v, want 1 of 2 files failed", err)
		}
		if rep == nil {
			t.Fatal("no report")
		}
		var failed []ParquetBackfillFile
		for _, f := range rep.Files {
			if f.State == ParquetFailed {
				failed = append(failed, f)
			}
		}
		if len(failed) != 1 || rep.Failed != 1 || failed[0].Key != calls0 || failed[0].Package != p0.BillFileName ||
			!strings.Contains(failed[0].Error, p0.Key) || !strings.Contains(failed[0].Error, "not the package archived") {
			t.Errorf("failures %+v, want one for %s naming package %s and its ZIP %s", failed, calls0, p0.BillFileName, p0.Key)
		}
		if rep.Written != 1 || !slices.Contains(fileStates(rep), ParquetWritten+" "+recs1) {
			t.Errorf("the other package: %+v, want %s written", rep, recs1)
		}
		if _, err := pe.s.Stat(context.Background(), calls0); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("%s after the refusal: %v, want nothing written", calls0, err)
		}
		v := pe.verify(t, VerifyOptions{Deep: true})
		all := problems(v)
		if !slices.ContainsFunc(all, func(p string) bool { return strings.HasPrefix(p, "parquet missing "+calls0) }) ||
			!slices.ContainsFunc(all, func(p string) bool {
				return strings.HasPrefix(p, "parquet of package "+p0.BillFileName+" not re-read") && strings.Contains(p, "not the package archived")
			}) {
			t.Errorf("deep verify does not name the missing file and the altered package:\n%s", strings.Join(all, "\n"))
		}
	})
}

// TestParquetBackfill_Refused: a sink that cannot read objects back, and a
// bad range, are errors before anything is looked at.
func TestParquetBackfill_Refused(t *testing.T) {
	e := newEnv(t, envOptions{sink: func(s sink.Sink) sink.Sink { return struct{ sink.Sink }{s} }})
	for _, c := range []struct {
		o    ParquetBackfillOptions
		want string
	}{
		{ParquetBackfillOptions{}, "cannot read objects back"},
		{ParquetBackfillOptions{From: "2026-11-31"}, `day "2026-11-31": want yyyy-mm-dd`},
		{ParquetBackfillOptions{From: "2026-11-02", To: "2026-11-01"}, "from 2026-11-02 is after to 2026-11-01"},
	} {
		if _, err := e.a.BackfillParquet(testCtx(t), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("BackfillParquet(%+v): %v, want %q", c.o, err, c.want)
		}
	}
}
