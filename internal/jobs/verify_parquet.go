package jobs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// verifyParquet adds the check of the Parquet files (docs/parquet.md) to
// rep: for every package stored in full whose window's day is in
// o.From..o.To, each of its files must be in the sink as the cdr job stores
// it: not empty, its digest recorded, content type, kind and table as
// written, and tied to the package's ZIP by its package-sha256. With Deep,
// the package's ZIP and each file are read back: the ZIP must be the one
// archived, and each file must open as Parquet of its table with one row
// per CSV row of the package, every row naming the package.
//
// The problems go to the day of the package (a day the checkpoint knows no
// call or item of is added to rep.Days for them).
func (a *Archiver) verifyParquet(ctx context.Context, r sink.Reader, rep *VerifyReport, o VerifyOptions) error {
	pkgs, err := a.fullPackages(ctx, o.From, o.To)
	if err != nil {
		return err
	}
	index := map[string]int{}
	for i, d := range rep.Days {
		index[d.Day] = i
	}
	added := false
	for _, p := range pkgs {
		day := a.packageDay(p)
		i, ok := index[day]
		if !ok {
			rep.Days = append(rep.Days, VerifyDay{Day: day, Ledger: LedgerNone, LedgerMismatch: []string{}, Problems: []string{}})
			i = len(rep.Days) - 1
			index[day] = i
			added = true
		}
		files, problems, err := a.checkParquet(ctx, r, p, o.Deep)
		if err != nil {
			return err
		}
		vd := &rep.Days[i]
		vd.Parquet += files
		vd.Problems = append(vd.Problems, problems...)
		rep.Problems += len(problems)
	}
	if added {
		sort.SliceStable(rep.Days, func(i, j int) bool { return rep.Days[i].Day < rep.Days[j].Day })
	}
	return nil
}

// checkParquet checks the Parquet files of package p: it returns how many
// files it checked and the problems found. The error is for a sink failure
// that says nothing about the objects.
func (a *Archiver) checkParquet(ctx context.Context, r sink.Reader, p checkpoint.Package, deep bool) (int, []string, error) {
	keys, err := a.parquetKeys(p)
	if err != nil {
		return 0, []string{err.Error()}, nil
	}
	var problems []string
	found := map[cdr.Kind]sink.Object{}
	for _, kind := range parquetKinds {
		key := keys[kind]
		obj, err := a.Sink.Stat(ctx, key)
		switch {
		case errors.Is(err, sink.ErrNotFound):
			problems = append(problems, fmt.Sprintf("parquet missing %s (package %s): archiver parquet-backfill writes it from the package", key, p.BillFileName))
			continue
		case errors.Is(err, sink.ErrConflict), errors.Is(err, sink.ErrInvalidKey):
			problems = append(problems, fmt.Sprintf("parquet invalid %s (package %s): %v", key, p.BillFileName, err))
			continue
		case err != nil:
			return 0, nil, fmt.Errorf("jobs: verify: %w", err)
		}
		found[kind] = obj
		for _, what := range parquetObjectProblems(obj, p, kind) {
			problems = append(problems, fmt.Sprintf("parquet wrong %s (package %s): %s", key, p.BillFileName, what))
		}
	}
	if !deep || len(found) == 0 {
		return len(parquetKinds), problems, nil
	}
	more, err := a.rereadParquet(ctx, r, p, found)
	return len(parquetKinds), append(problems, more...), err
}

// parquetObjectProblems compares what the store holds for a Parquet file
// of package p with what putParquet stores.
func parquetObjectProblems(obj sink.Object, p checkpoint.Package, kind cdr.Kind) []string {
	var out []string
	if obj.Size == 0 {
		out = append(out, "empty object (0 bytes)")
	}
	if obj.SHA256 == "" {
		out = append(out, "the store has no sha256 recorded")
	}
	if obj.ContentType != parquetContentType {
		out = append(out, fmt.Sprintf("content type %q, want %q", obj.ContentType, parquetContentType))
	}
	for _, m := range []struct{ key, want string }{
		{"kind", parquetObjectKind},
		{"table", cdr.ParquetTable(kind)},
		{"package-sha256", p.SHA256},
	} {
		if got := obj.Metadata[m.key]; got != m.want {
			out = append(out, fmt.Sprintf("metadata %s %q, want %q", m.key, got, m.want))
		}
	}
	return out
}

// rereadParquet is the Deep part of checkParquet: it reads p's ZIP back,
// counts its CSV rows of each kind, and reads each file found back (found:
// the objects Stat described).
func (a *Archiver) rereadParquet(ctx context.Context, r sink.Reader, p checkpoint.Package, found map[cdr.Kind]sink.Object) ([]string, error) {
	s, err := a.readPackage(ctx, r, p)
	switch {
	case err == nil:
		defer s.remove()
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, errNotArchived), errors.Is(err, sink.ErrNotFound), errors.Is(err, sink.ErrInvalidKey), errors.Is(err, sink.ErrConflict):
		return []string{fmt.Sprintf("parquet of package %s not re-read: %v", p.BillFileName, err)}, nil
	default:
		return nil, fmt.Errorf("jobs: verify: %w", err)
	}
	pkg, err := cdr.Open(s.f, s.size, a.limits())
	if err != nil {
		return []string{fmt.Sprintf("parquet of package %s not re-read: open %s: %v", p.BillFileName, p.Key, err)}, nil
	}
	var problems []string
	for _, kind := range parquetKinds {
		obj, ok := found[kind]
		if !ok {
			continue
		}
		want := 0
		if err := pkg.Walk(kind, func(cdr.Row) error { want++; return nil }); err != nil {
			problems = append(problems, fmt.Sprintf("parquet of package %s not re-read: %s rows of %s: %v", p.BillFileName, kind, p.Key, err))
			continue
		}
		problem, err := a.rereadParquetFile(ctx, r, p, kind, obj, want)
		if err != nil {
			return nil, err
		}
		if problem != "" {
			problems = append(problems, fmt.Sprintf("parquet invalid %s (package %s): %s", obj.Key, p.BillFileName, problem))
		}
	}
	return problems, nil
}

// rereadParquetFile reads one Parquet file back into a temp file in
// SpoolDir (the reader needs its footer, at the end) and checks it: its
// bytes against the recorded size and digest, then as Parquet of kind's
// table with want rows, each naming package p. It returns the problem
// found, "" for none; the error is for a sink failure.
func (a *Archiver) rereadParquetFile(ctx context.Context, r sink.Reader, p checkpoint.Package, kind cdr.Kind, obj sink.Object, want int) (string, error) {
	max := 2 * a.limits().MaxTotalBytes // what putParquet writes at most
	if obj.Size > max {
		return fmt.Sprintf("%d bytes, more than the %d a Parquet file of a package may have", obj.Size, max), nil
	}
	rc, _, err := r.Open(ctx, obj.Key)
	switch {
	case errors.Is(err, sink.ErrNotFound), errors.Is(err, sink.ErrInvalidKey), errors.Is(err, sink.ErrConflict):
		return err.Error(), nil
	case err != nil:
		return "", fmt.Errorf("jobs: verify: read %s: %w", obj.Key, err)
	}
	defer rc.Close()
	f, drop, err := createSpool(a.SpoolDir, "verify-*.parquet")
	if err != nil {
		return "", fmt.Errorf("jobs: verify: spool: %w", err)
	}
	defer drop()
	h := sha256.New()
	cr := &countingReader{r: io.LimitReader(rc, max+1)}
	if _, err := io.Copy(io.MultiWriter(f, h), cr); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if cr.err != nil {
			return "", fmt.Errorf("jobs: verify: read %s: %w", obj.Key, cr.err)
		}
		return "", fmt.Errorf("jobs: verify: spool %s: %w", obj.Key, err)
	}
	if sum := hashHex(h); cr.n != obj.Size || (obj.SHA256 != "" && sum != obj.SHA256) {
		return fmt.Sprintf("read %d bytes sha256 %s, the store recorded %d bytes sha256 %s", cr.n, sum, obj.Size, verifyOrNone(obj.SHA256)), nil
	}
	src := parquetSource(p, p.SHA256)
	rows := 0
	err = cdr.ReadParquet(f, cr.n, kind, func(row cdr.ParquetRow) error {
		if d := sourceDiff(row.Source, src); d != "" {
			return fmt.Errorf("row %s: not of this package: %s", row, d)
		}
		rows++
		return nil
	})
	switch {
	case err != nil:
		return err.Error(), nil
	case rows != want:
		return fmt.Sprintf("%d rows, the package's %s CSV files have %d", rows, kind, want), nil
	}
	return "", nil
}

// sourceDiff describes how the provenance read from a row differs from
// the one the cdr job writes (times as stored: UTC, to the microsecond);
// "" when it does not.
func sourceDiff(got, want cdr.ParquetSource) string {
	var d []string
	str := func(col, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s %q, want %q", col, g, w))
		}
	}
	tm := func(col string, g, w time.Time) {
		w = w.UTC().Truncate(time.Microsecond)
		if !g.Equal(w) {
			d = append(d, fmt.Sprintf("%s %s, want %s", col, g.UTC().Format(time.RFC3339Nano), w.Format(time.RFC3339Nano)))
		}
	}
	str("bill_file", got.BillFile, want.BillFile)
	str("package_sha256", got.PackageSHA256, want.PackageSHA256)
	tm("window_begin", got.WindowBegin, want.WindowBegin)
	tm("window_end", got.WindowEnd, want.WindowEnd)
	tm("package_requested_at", got.RequestedAt, want.RequestedAt)
	return strings.Join(d, "; ")
}
