package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// parquetKinds are the CSV kinds written as Parquet, each a table
// (cdr.ParquetTable): the CDR rows and the recording index.
var parquetKinds = []cdr.Kind{cdr.KindCall, cdr.KindRecord}

// The content type and the metadata "kind" of every Parquet object (verify
// checks both).
const (
	parquetContentType = "application/vnd.apache.parquet"
	parquetObjectKind  = "cdr-parquet"
)

// parquetKeys are the keys of package p's Parquet files, one per table
// (docs/parquet.md): they follow from the package's window and bill file
// alone, so a rerun of the same package computes the same keys and the
// sink finds the objects there. Only a package stored in full (Key set) has
// them; an unchanged package's rows are the previous package's files.
func (a *Archiver) parquetKeys(p checkpoint.Package) (map[cdr.Kind]string, error) {
	day := wallUTC(p.Begin, a.loc())
	name := strings.TrimSuffix(p.BillFileName, ".zip")
	keys := make(map[cdr.Kind]string, len(parquetKinds))
	for _, kind := range parquetKinds {
		k, err := sink.ParquetKey(a.Prefix, cdr.ParquetTable(kind), a.Tenant, day, name)
		if err != nil {
			return nil, fmt.Errorf("jobs: cdr: package %s: parquet %s key: %w", p.BillFileName, cdr.ParquetTable(kind), err)
		}
		keys[kind] = k
	}
	return keys, nil
}

// storeParquet writes the rows of package p (its ZIP opened as pkg, whose
// SHA-256 is pkgSHA) as one Parquet file per table and stores each through
// the sink like the package's other objects: spooled to a temp file in
// SpoolDir (Parquet's footer comes last, and the sink wants size and digest
// first), then put create-only with its SHA-256. The bytes depend only on
// the package and p (cdr.Package.WriteParquet), so a rerun after a crash
// finds the same object (Existed) instead of a second one. Any failure is
// returned: the package is then not completed and is retried.
func (a *Archiver) storeParquet(ctx context.Context, pkg *cdr.Package, p *checkpoint.Package, pkgSHA string, rep *Report) error {
	keys, err := a.parquetKeys(*p)
	if err != nil {
		return err
	}
	src := parquetSource(*p, pkgSHA)
	for _, kind := range parquetKinds {
		n, err := a.putParquet(ctx, pkg, kind, keys[kind], src)
		if err != nil {
			return fmt.Errorf("jobs: cdr: store parquet %s of %s: %w", cdr.ParquetTable(kind), p.BillFileName, err)
		}
		rep.Bytes += n
	}
	return nil
}

// parquetSource is the provenance written into the Parquet rows of package
// p, whose ZIP has SHA-256 pkgSHA: the cdr job and BackfillParquet build it
// here alone, so that both write the same bytes for the same package.
func parquetSource(p checkpoint.Package, pkgSHA string) cdr.ParquetSource {
	return cdr.ParquetSource{
		BillFile: p.BillFileName, PackageSHA256: pkgSHA,
		WindowBegin: p.Begin, WindowEnd: p.End, RequestedAt: p.RequestedAt,
	}
}

// putParquet writes one table's file to a spool and puts it under key. It
// returns the bytes newly stored: 0 when the sink held the object already.
func (a *Archiver) putParquet(ctx context.Context, pkg *cdr.Package, kind cdr.Kind, key string, src cdr.ParquetSource) (int64, error) {
	s, err := newSpooled(a.SpoolDir, "cdr-*.parquet")
	if err != nil {
		return 0, err
	}
	defer s.remove()
	f := s.f
	h := sha256.New()
	lw := &limitWriter{w: io.MultiWriter(f, h), max: 2 * a.limits().MaxTotalBytes}
	if _, err := pkg.WriteParquet(lw, kind, src, cdr.DefaultParquetLimits()); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	s.size, s.sha256 = lw.n, hex.EncodeToString(h.Sum(nil))
	obj, err := a.Sink.Put(ctx, key, f, s.size, sink.Meta{SHA256: s.sha256, ContentType: parquetContentType,
		Metadata: map[string]string{
			"kind": parquetObjectKind, "table": cdr.ParquetTable(kind), "schema": cdr.ParquetSchemaVersion,
			"package-sha256": src.PackageSHA256,
		}})
	if err != nil {
		return 0, err
	}
	if obj.Existed {
		return 0, nil
	}
	a.met.Bytes(KindPackage, obj.Size)
	return obj.Size, nil
}
