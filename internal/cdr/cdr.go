// Package cdr reads the CDR and recording-index packages that CC-FS
// downloadBillFile returns: a ZIP of *_call_*.csv and *_record_*.csv files
// (cec-api.md §3.3). The ZIP comes from the network, so it is distrusted:
// it is read in place (never extracted), entry names are checked, and the
// number of entries, inflated bytes per entry and in total, the compression
// ratio and the size of every row are bounded.
package cdr

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Limits bound what a package may make the reader do.
type Limits struct {
	MaxEntries    int   // entries in the ZIP
	MaxEntryBytes int64 // inflated bytes of one entry
	MaxTotalBytes int64 // inflated bytes of all entries
	MaxRatio      int64 // inflated / compressed bytes of one entry
	MaxFieldBytes int   // bytes of one CSV field
	MaxColumns    int   // columns of one CSV row
}

// DefaultLimits are generous for real packages and small for bombs.
func DefaultLimits() Limits {
	return Limits{
		MaxEntries:    1000,
		MaxEntryBytes: 1 << 30,
		MaxTotalBytes: 4 << 30,
		MaxRatio:      50,
		MaxFieldBytes: 4096,
		MaxColumns:    256,
	}
}

// Kind is the kind of a CSV file in a package.
type Kind string

// The kinds of CSV file.
const (
	KindCall   Kind = "call"
	KindRecord Kind = "record"
)

// ErrInvalid is wrapped by every error about the package's content.
var ErrInvalid = errors.New("invalid CDR package")

var entryName = regexp.MustCompile(`^[^/\\]+_(call|record)_[0-9]+\.csv$`)

// Package is an opened CDR package.
type Package struct {
	zr      *zip.Reader
	limits  Limits
	files   []*zip.File // CSV entries, sorted by name
	Ignored []string    // regular entries that are not CDR CSV files (kept in the archived ZIP)
}

// Open checks the ZIP's directory: entry count, names (no paths, no
// traversal), no overlapping entries, declared sizes within the limits.
func Open(r io.ReaderAt, size int64, limits Limits) (*Package, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("cdr: open package: %w: %w", ErrInvalid, err)
	}
	if len(zr.File) > limits.MaxEntries {
		return nil, fmt.Errorf("cdr: %w: %d entries, limit %d", ErrInvalid, len(zr.File), limits.MaxEntries)
	}
	// The package's inflated total is bounded by its own size: no more than
	// MaxRatio times the bytes received, whatever MaxTotalBytes allows.
	if size > 0 && limits.MaxRatio > 0 && size <= limits.MaxTotalBytes/limits.MaxRatio {
		limits.MaxTotalBytes = size * limits.MaxRatio
	}
	p := &Package{zr: zr, limits: limits}
	type span struct {
		name       string
		start, end int64
	}
	var spans []span
	for _, f := range zr.File {
		name := f.Name
		if !utf8.ValidString(name) || strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") ||
			containsDotDotSegment(name) {
			return nil, fmt.Errorf("cdr: %w: entry %q: unsafe name", ErrInvalid, name)
		}
		if f.FileInfo().IsDir() {
			continue
		}
		if !f.Mode().IsRegular() {
			return nil, fmt.Errorf("cdr: %w: entry %q: not a regular file", ErrInvalid, name)
		}
		off, err := f.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("cdr: %w: entry %q: %w", ErrInvalid, name, err)
		}
		spans = append(spans, span{name, off, off + int64(f.CompressedSize64)})
		if !entryName.MatchString(name) {
			p.Ignored = append(p.Ignored, name)
			continue
		}
		if f.UncompressedSize64 > uint64(limits.MaxEntryBytes) {
			return nil, fmt.Errorf("cdr: %w: entry %q: declares %d bytes, limit %d", ErrInvalid, name, f.UncompressedSize64, limits.MaxEntryBytes)
		}
		p.files = append(p.files, f)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return nil, fmt.Errorf("cdr: %w: entries %q and %q overlap", ErrInvalid, spans[i-1].name, spans[i].name)
		}
	}
	sort.Slice(p.files, func(i, j int) bool { return p.files[i].Name < p.files[j].Name })
	if err := p.checkInflation(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkInflation inflates every CSV entry once, discarding the bytes, under
// the same limits Walk enforces: a zip bomb is refused at inflation speed,
// before a single row is parsed, and never makes Walk spend minutes in the
// CSV reader. The headers' sizes are not trusted: the limits apply to the
// decompressed stream.
func (p *Package) checkInflation() error {
	var total int64
	for _, f := range p.files {
		max, what := p.entryLimit(f, p.limits.MaxTotalBytes-total)
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("cdr: %w: %s: %w", ErrInvalid, f.Name, err)
		}
		n, err := io.Copy(io.Discard, &limitedReader{r: rc, max: max, what: what})
		rc.Close()
		total += n
		if err != nil {
			return fmt.Errorf("cdr: %w: %s: %w", ErrInvalid, f.Name, err)
		}
	}
	return nil
}

// entryLimit is how many inflated bytes entry f may produce with budget
// bytes of the package's total left, and how to say it was exceeded.
func (p *Package) entryLimit(f *zip.File, budget int64) (int64, string) {
	max := p.limits.MaxEntryBytes
	what := fmt.Sprintf("inflates past the %d-byte entry limit", max)
	if budget < max {
		max, what = budget, "inflates past the package's total byte limit"
	}
	if f.CompressedSize64 > 0 {
		if r := int64(f.CompressedSize64) * p.limits.MaxRatio; r < max {
			max, what = r, fmt.Sprintf("inflates past a %d:1 compression ratio", p.limits.MaxRatio)
		}
	}
	return max, what
}

func containsDotDotSegment(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// Files lists the CSV entries of a kind, sorted by name.
func (p *Package) Files(kind Kind) []string {
	var out []string
	for _, f := range p.files {
		if fileKind(f.Name) == kind {
			out = append(out, f.Name)
		}
	}
	return out
}

func fileKind(name string) Kind {
	m := entryName.FindStringSubmatch(path.Base(name))
	if m == nil {
		return ""
	}
	return Kind(m[1])
}

// Row is one CSV line of a package file.
type Row struct {
	File   string
	Line   int      // 1-based line of the row's start
	Fields []string // every column, extra trailing ones included
}

// Get returns the named known column, or "" if the row is short.
func (r Row) Get(kind Kind, column string) string {
	cols := cecwire.RecordColumns
	if kind == KindCall {
		cols = cecwire.CallColumns
	}
	for i, c := range cols {
		if c == column {
			if i < len(r.Fields) {
				return r.Fields[i]
			}
			return ""
		}
	}
	return ""
}

// minColumns is how many columns a row must have: all 18 documented columns
// of a record file; the 20 confirmed columns of a call file.
func minColumns(kind Kind) int {
	if kind == KindCall {
		return 20
	}
	return len(cecwire.RecordColumns)
}

// Walk calls fn for every data row of every file of kind, in file-name order.
// A header row (a first row equal to the known column names) is recognised and
// passed over. Any malformed row stops the walk with an error that names the
// file and line; fn's error stops it too.
func (p *Package) Walk(kind Kind, fn func(Row) error) error {
	var total int64
	for _, f := range p.files {
		if fileKind(f.Name) != kind {
			continue
		}
		n, err := p.walkFile(f, kind, p.limits.MaxTotalBytes-total, fn)
		total += n
		if err != nil {
			return err
		}
	}
	return nil
}

// errLimit is returned by limitedReader once its budget is spent.
type errLimit struct{ what string }

func (e errLimit) Error() string { return e.what }

type limitedReader struct {
	r    io.Reader
	n    int64 // bytes read so far
	max  int64
	what string
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n >= l.max {
		// Allow reading up to max; one more byte proves the limit is exceeded.
		var one [1]byte
		k, _ := l.r.Read(one[:])
		if k > 0 {
			return 0, errLimit{l.what}
		}
		return 0, io.EOF
	}
	if int64(len(b)) > l.max-l.n {
		b = b[:l.max-l.n]
	}
	k, err := l.r.Read(b)
	l.n += int64(k)
	return k, err
}

func (p *Package) walkFile(f *zip.File, kind Kind, budget int64, fn func(Row) error) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("cdr: %w: %s: %w", ErrInvalid, f.Name, err)
	}
	defer rc.Close()
	max, what := p.entryLimit(f, budget)
	lr := &limitedReader{r: rc, max: max, what: what}
	br := bufio.NewReaderSize(lr, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	known := cecwire.RecordColumns
	if kind == KindCall {
		known = cecwire.CallColumns
	}
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return lr.n, nil
		}
		if err != nil {
			var le errLimit
			if errors.As(err, &le) {
				return lr.n, fmt.Errorf("cdr: %w: %s: %s", ErrInvalid, f.Name, le.what)
			}
			return lr.n, fmt.Errorf("cdr: %w: %s: %w", ErrInvalid, f.Name, err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if isHeader(rec, known) {
				continue
			}
		}
		if len(rec) > p.limits.MaxColumns {
			return lr.n, fmt.Errorf("cdr: %w: %s line %d: %d columns, limit %d", ErrInvalid, f.Name, line, len(rec), p.limits.MaxColumns)
		}
		if len(rec) < minColumns(kind) {
			return lr.n, fmt.Errorf("cdr: %w: %s line %d: %d columns, want at least %d", ErrInvalid, f.Name, line, len(rec), minColumns(kind))
		}
		for i, v := range rec {
			if len(v) > p.limits.MaxFieldBytes {
				return lr.n, fmt.Errorf("cdr: %w: %s line %d: column %s: %d bytes, limit %d", ErrInvalid, f.Name, line, columnName(known, i), len(v), p.limits.MaxFieldBytes)
			}
			if !utf8.ValidString(v) {
				return lr.n, fmt.Errorf("cdr: %w: %s line %d: column %s: invalid UTF-8", ErrInvalid, f.Name, line, columnName(known, i))
			}
		}
		if err := fn(Row{File: f.Name, Line: line, Fields: rec}); err != nil {
			return lr.n, err
		}
	}
}

func columnName(known []string, i int) string {
	if i < len(known) {
		return known[i]
	}
	return fmt.Sprintf("#%d", i+1)
}

func isHeader(rec, known []string) bool {
	n := min(len(rec), len(known))
	if n < 5 {
		return false
	}
	for i := 0; i < n; i++ {
		if !strings.EqualFold(strings.TrimSpace(rec[i]), known[i]) {
			return false
		}
	}
	return true
}
