package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// ParquetBackfillOptions select what BackfillParquet does.
type ParquetBackfillOptions struct {
	// From and To bound the days of the packages' windows (yyyy-mm-dd in
	// the tenant's calendar, both included, as in VerifyOptions); "" leaves
	// that side open.
	From, To string
	// DryRun only looks: it reports the missing files and writes nothing.
	DryRun bool
}

// States of a ParquetBackfillFile.
const (
	ParquetWritten = "written" // missing, now written
	ParquetMissing = "missing" // missing, and a dry run: not written
	ParquetExisted = "existed" // missing when looked up, found when written (stored meanwhile, by another writer)
	ParquetFailed  = "failed"  // missing, and could not be written; or could not be looked up
)

// ParquetBackfillReport is the outcome of BackfillParquet.
type ParquetBackfillReport struct {
	DryRun bool `json:"dry_run"`
	// Packages counts the packages checked: done and stored in full (their
	// ZIP in the sink), their window's day in the range.
	Packages int `json:"packages"`
	// Present counts the files found in the sink, left alone; Written,
	// Missing (dry run), Existed and Failed the others, by state.
	Present int   `json:"present"`
	Written int   `json:"written"`
	Missing int   `json:"missing"`
	Existed int   `json:"existed"`
	Failed  int   `json:"failed"`
	Bytes   int64 `json:"bytes"` // bytes newly stored
	// Files lists every file not present, with what became of it.
	Files []ParquetBackfillFile `json:"files"`
}

// ParquetBackfillFile is one Parquet file that was not in the sink.
type ParquetBackfillFile struct {
	Day     string `json:"day"`
	Package string `json:"package"` // the package's bill file name
	Table   string `json:"table"`   // cdr.ParquetTable
	Key     string `json:"key"`
	State   string `json:"state"` // ParquetWritten, ParquetMissing, ParquetExisted or ParquetFailed
	Error   string `json:"error,omitempty"`
}

// BackfillParquet writes the Parquet files (docs/parquet.md) that the
// packages stored in full lack: packages archived before the cdr job wrote
// Parquet, or whose files were lost. For every done package with a ZIP in
// the sink whose window's day is in From..To, each of its Parquet keys is
// looked up (Stat); for a missing one the ZIP is read back from the sink
// into a temp file in SpoolDir, checked against the package's recorded
// size and SHA-256 (a ZIP that differs is refused: nothing is written from
// it), opened with the limits the cdr job applies to a download, and the
// missing tables are written with the same provenance as the cdr job's
// (parquetSource), so the bytes are those the cdr job would have stored.
// Files found are left alone (the sink is create-only anyway; verify checks
// them).
//
// A package that fails is recorded in the report and the others go on;
// the error is non-nil when any file failed (it wraps the first failure),
// and for what stops the run: the checkpoint failing, ctx ending, bad
// options, a sink that cannot read objects back.
func (a *Archiver) BackfillParquet(ctx context.Context, o ParquetBackfillOptions) (*ParquetBackfillReport, error) {
	if err := a.init(); err != nil {
		return nil, err
	}
	if err := checkDayRange("parquet backfill", o.From, o.To); err != nil {
		return nil, err
	}
	r, ok := a.Sink.(sink.Reader)
	if !ok {
		return nil, fmt.Errorf("jobs: parquet backfill: the sink (%T) cannot read objects back, and the Parquet files are written from the package ZIPs it holds", a.Sink)
	}
	pkgs, err := a.fullPackages(ctx, o.From, o.To)
	if err != nil {
		return nil, err
	}
	rep := &ParquetBackfillReport{DryRun: o.DryRun, Files: []ParquetBackfillFile{}}
	var first error
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Packages++
		if err := a.backfillPackage(ctx, r, p, o.DryRun, rep); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if first == nil {
				first = err
			}
		}
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("jobs: parquet backfill: %d of %d files failed, the first: %w", rep.Failed, rep.Failed+rep.Written+rep.Existed+rep.Missing, first)
	}
	return rep, nil
}

// backfillPackage writes the missing Parquet files of package p and notes
// each file not present in rep; it returns the first failure.
func (a *Archiver) backfillPackage(ctx context.Context, r sink.Reader, p checkpoint.Package, dryRun bool, rep *ParquetBackfillReport) error {
	day := a.packageDay(p)
	keys, err := a.parquetKeys(p)
	if err != nil {
		// No key: nothing to look up or write; the package is named.
		rep.Failed++
		rep.Files = append(rep.Files, ParquetBackfillFile{Day: day, Package: p.BillFileName, State: ParquetFailed, Error: err.Error()})
		return err
	}
	file := func(kind cdr.Kind, state string, err error) {
		f := ParquetBackfillFile{Day: day, Package: p.BillFileName, Table: cdr.ParquetTable(kind), Key: keys[kind], State: state}
		if err != nil {
			f.Error = err.Error()
		}
		rep.Files = append(rep.Files, f)
	}
	var first error
	fail := func(kind cdr.Kind, err error) {
		rep.Failed++
		file(kind, ParquetFailed, err)
		if first == nil {
			first = err
		}
	}
	var missing []cdr.Kind
	for _, kind := range parquetKinds {
		_, err := a.Sink.Stat(ctx, keys[kind])
		switch {
		case err == nil:
			rep.Present++
		case errors.Is(err, sink.ErrNotFound):
			missing = append(missing, kind)
		default:
			fail(kind, fmt.Errorf("package %s: look up %s: %w", p.BillFileName, keys[kind], err))
		}
	}
	if len(missing) == 0 {
		return first
	}
	if dryRun {
		for _, kind := range missing {
			rep.Missing++
			file(kind, ParquetMissing, nil)
		}
		return first
	}
	s, err := a.readPackage(ctx, r, p)
	if err != nil {
		for _, kind := range missing {
			fail(kind, err)
		}
		return first
	}
	defer s.remove()
	pkg, err := cdr.Open(s.f, s.size, a.limits())
	if err != nil {
		err = fmt.Errorf("package %s: open %s: %w", p.BillFileName, p.Key, err)
		for _, kind := range missing {
			fail(kind, err)
		}
		return first
	}
	src := parquetSource(p, p.SHA256)
	for _, kind := range missing {
		n, err := a.putParquet(a.transferCtx(ctx), pkg, kind, keys[kind], src)
		switch {
		case err != nil:
			fail(kind, fmt.Errorf("package %s: write %s: %w", p.BillFileName, keys[kind], err))
		case n == 0:
			rep.Existed++
			file(kind, ParquetExisted, nil)
		default:
			rep.Written++
			rep.Bytes += n
			file(kind, ParquetWritten, nil)
			a.log.Info("parquet written", zap.String("bill_file", p.BillFileName), zap.String("key", keys[kind]), zap.Int64("bytes", n))
		}
	}
	return first
}

// errNotArchived: the object at a package's key is not the ZIP archived
// (another size or SHA-256). Nothing is derived from such bytes.
var errNotArchived = errors.New("the object is not the package archived")

// readPackage reads the ZIP of package p back from the sink into a temp
// file in SpoolDir, bounded by MaxPackageBytes like a download, and checks
// it against the package's recorded size and SHA-256: the bytes returned
// are those the cdr job archived; others fail wrapping errNotArchived. The
// caller removes the spool.
func (a *Archiver) readPackage(ctx context.Context, r sink.Reader, p checkpoint.Package) (_ *spooled, err error) {
	fail := func(err error) error {
		return fmt.Errorf("package %s: read %s back: %w", p.BillFileName, p.Key, err)
	}
	if p.Size > a.maxPackageBytes() {
		return nil, fail(fmt.Errorf("%w: %d bytes recorded, more than the %d a package may have", errNotArchived, p.Size, a.maxPackageBytes()))
	}
	rc, _, err := r.Open(ctx, p.Key)
	if err != nil {
		return nil, fail(err)
	}
	defer rc.Close()
	s, err := newSpooled(a.SpoolDir, "cdr-*.zip")
	if err != nil {
		return nil, fail(err)
	}
	f := s.f
	defer func() {
		if err != nil {
			s.remove()
		}
	}()
	h := sha256.New()
	max := a.maxPackageBytes()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fail(err)
	}
	if err := f.Sync(); err != nil {
		return nil, fail(err)
	}
	s.size, s.sha256 = n, hex.EncodeToString(h.Sum(nil))
	if n != p.Size || s.sha256 != p.SHA256 {
		return nil, fail(fmt.Errorf("%w: read %d bytes sha256 %s, the package was archived with %d bytes sha256 %s",
			errNotArchived, n, s.sha256, p.Size, verifyOrNone(p.SHA256)))
	}
	return s, nil
}

// fullPackages returns the done packages stored in full (their ZIP in the
// sink: Key set) whose window's day is in from..to ("" = open), in the
// store's order (window begin, then ID).
func (a *Archiver) fullPackages(ctx context.Context, from, to string) ([]checkpoint.Package, error) {
	pkgs, err := a.Store.Packages(ctx, checkpoint.StateDone)
	if err != nil {
		return nil, a.storeErr("packages", err)
	}
	out := pkgs[:0]
	for _, p := range pkgs {
		d := a.packageDay(p)
		if p.Key == "" || (from != "" && d < from) || (to != "" && d > to) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// packageDay is the calendar day (tenant time zone) of package p's window
// begin: the day of its ZIP key and of its Parquet partition.
func (a *Archiver) packageDay(p checkpoint.Package) string {
	return p.Begin.In(a.loc()).Format(time.DateOnly)
}

// checkDayRange checks a From..To range of days as Verify takes it.
func checkDayRange(op, from, to string) error {
	for _, d := range []string{from, to} {
		if d == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return fmt.Errorf("jobs: %s: day %q: want yyyy-mm-dd", op, d)
		}
	}
	if from != "" && to != "" && from > to {
		return fmt.Errorf("jobs: %s: from %s is after to %s", op, from, to)
	}
	return nil
}
