package cdr

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// ParquetSchemaVersion is the version of the Parquet schema written by
// WriteParquet (docs/parquet.md), stored in each file's key/value metadata
// under ParquetSchemaKey. It changes when a column is added, removed,
// renamed or retyped.
const ParquetSchemaVersion = "1"

// ParquetSchemaKey is the key/value metadata key that holds ParquetSchemaVersion.
const ParquetSchemaKey = "cec-archiver.schema"

// parquetCreatedBy is the files' created_by, in the Parquet convention
// "<application> version <version> (build <build>)": fixed, so that the bytes
// do not depend on the binary's build information (parquet-go's default
// reads it). The library version is the go.mod's (a test checks it).
const parquetCreatedBy = "cec-archiver parquet schema version " + ParquetSchemaVersion +
	" (build github.com/parquet-go/parquet-go v0.32.1)"

// ParquetSource is the provenance written into every row of a Parquet file:
// the package the rows come from. Times are stored in UTC, to the
// microsecond.
type ParquetSource struct {
	BillFile      string    // the package's bill file name
	PackageSHA256 string    // SHA-256 of the package ZIP as archived
	WindowBegin   time.Time // the cdr window the package was requested for
	WindowEnd     time.Time
	RequestedAt   time.Time // when the package was requested: the newest package of a window supersedes the others
}

// ParquetLimits bound the memory WriteParquet holds: a row group is written
// out once it has RowGroupRows rows or its fields add up to RowGroupBytes,
// whichever comes first.
type ParquetLimits struct {
	RowGroupRows  int64
	RowGroupBytes int64
}

// DefaultParquetLimits keep the writer's memory to about 10 MiB of heap for
// ordinary CDR rows, and bounded whatever the rows hold (the writer holds a
// few times a row group's field bytes: values, pages, compression); a row
// group of 4,096 rows is still large enough for query engines to skip by
// its statistics.
func DefaultParquetLimits() ParquetLimits {
	return ParquetLimits{RowGroupRows: 4096, RowGroupBytes: 4 << 20}
}

// The provenance columns, ahead of the CSV columns in every file.
const (
	colBillFile      = "bill_file"
	colPackageSHA256 = "package_sha256"
	colWindowBegin   = "window_begin"
	colWindowEnd     = "window_end"
	colRequestedAt   = "package_requested_at"
	colCSVFile       = "csv_file"
	colCSVLine       = "csv_line"
	colExtra         = "extra_columns"
)

// ParquetTable is the name of the table (the Parquet files of one kind):
// "calls" for the CDR rows (*_call_*.csv), "recordings" for the recording
// index (*_record_*.csv).
func ParquetTable(kind Kind) string {
	if kind == KindCall {
		return "calls"
	}
	return "recordings"
}

// parquetSchema is the row type and schema of one kind's files, built from
// the known columns (cecwire.CallColumns, cecwire.RecordColumns) so that the
// files follow the parser.
type parquetSchema struct {
	kind    Kind
	typ     reflect.Type // struct: provenance, one field per known column, extra columns
	schema  *parquet.Schema
	known   int // known CSV columns
	csvBase int // index of the first CSV column's field
}

func newParquetSchema(kind Kind) (*parquetSchema, error) {
	known := cecwire.RecordColumns
	if kind == KindCall {
		known = cecwire.CallColumns
	} else if kind != KindRecord {
		return nil, fmt.Errorf("cdr: parquet: unknown kind %q", kind)
	}
	ts := `,timestamp(microsecond:utc)`
	fields := []reflect.StructField{
		{Name: "BillFile", Type: reflect.TypeFor[string](), Tag: tag(colBillFile, "")},
		{Name: "PackageSHA256", Type: reflect.TypeFor[string](), Tag: tag(colPackageSHA256, "")},
		{Name: "WindowBegin", Type: reflect.TypeFor[time.Time](), Tag: tag(colWindowBegin, ts)},
		{Name: "WindowEnd", Type: reflect.TypeFor[time.Time](), Tag: tag(colWindowEnd, ts)},
		{Name: "RequestedAt", Type: reflect.TypeFor[time.Time](), Tag: tag(colRequestedAt, ts)},
		{Name: "CSVFile", Type: reflect.TypeFor[string](), Tag: tag(colCSVFile, "")},
		{Name: "CSVLine", Type: reflect.TypeFor[int64](), Tag: tag(colCSVLine, "")},
	}
	base := len(fields)
	seen := map[string]bool{}
	for _, f := range fields {
		seen[f.Tag.Get("parquet")] = true
	}
	seen[colExtra] = true
	for i, c := range known {
		name := c
		if seen[name] {
			return nil, fmt.Errorf("cdr: parquet: CSV column %q clashes with a provenance column", c)
		}
		seen[name] = true
		// A column that every row has (Walk refuses shorter rows) is
		// required; a later one is optional: null when the row stops
		// before it.
		typ := reflect.TypeFor[string]()
		if i >= minColumns(kind) {
			typ = reflect.TypeFor[*string]()
		}
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("C%d", i), Type: typ, Tag: tag(name, "")})
	}
	fields = append(fields, reflect.StructField{Name: "Extra", Type: reflect.TypeFor[[]string](), Tag: tag(colExtra, ",list")})
	typ := reflect.StructOf(fields)
	var schema *parquet.Schema
	err := func() (err error) {
		// parquet.SchemaOf panics on a type it cannot map; the type is ours,
		// so this only fires on a mistake here, reported instead of crashing.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("cdr: parquet: schema of %s: %v", kind, r)
			}
		}()
		schema = parquet.NewSchema(ParquetTable(kind), parquet.SchemaOf(reflect.New(typ).Interface()))
		return nil
	}()
	if err != nil {
		return nil, err
	}
	return &parquetSchema{kind: kind, typ: typ, schema: schema, known: len(known), csvBase: base}, nil
}

func tag(name, opts string) reflect.StructTag {
	return reflect.StructTag(`parquet:"` + name + opts + `"`)
}

// ParquetColumns lists the top-level columns of kind's files, in order.
func ParquetColumns(kind Kind) ([]string, error) {
	s, err := newParquetSchema(kind)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range s.schema.Fields() {
		out = append(out, f.Name())
	}
	return out, nil
}

// ParquetSchema is the schema of kind's files in Parquet's message notation.
func ParquetSchema(kind Kind) (string, error) {
	s, err := newParquetSchema(kind)
	if err != nil {
		return "", err
	}
	return s.schema.String(), nil
}

// fill sets v (a *typ) from one CSV row.
func (s *parquetSchema) fill(v reflect.Value, src *ParquetSource, r Row) {
	e := v.Elem()
	e.Field(0).SetString(src.BillFile)
	e.Field(1).SetString(src.PackageSHA256)
	e.Field(2).Set(reflect.ValueOf(utcMicro(src.WindowBegin)))
	e.Field(3).Set(reflect.ValueOf(utcMicro(src.WindowEnd)))
	e.Field(4).Set(reflect.ValueOf(utcMicro(src.RequestedAt)))
	e.Field(5).SetString(r.File)
	e.Field(6).SetInt(int64(r.Line))
	for i := 0; i < s.known; i++ {
		f := e.Field(s.csvBase + i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString(r.Fields[i]) // Walk guarantees the row has it
		case i < len(r.Fields):
			val := r.Fields[i]
			f.Set(reflect.ValueOf(&val))
		default:
			f.SetZero()
		}
	}
	extra := e.Field(s.csvBase + s.known)
	if len(r.Fields) > s.known {
		extra.Set(reflect.ValueOf(slices.Clone(r.Fields[s.known:])))
	} else {
		extra.Set(reflect.ValueOf([]string{}))
	}
}

func utcMicro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// WriteParquet writes every data row of kind's CSV files, in Walk's order,
// to w as one Parquet file (schema in docs/parquet.md) and returns the
// number of rows. Every CSV value is stored as it is, as a string: an
// empty CSV field is an empty string, never null; a known column the row
// stops before is null; columns past the known ones are kept, in order, in
// extra_columns.
//
// Memory is bounded by lim: w receives each row group as it is complete
// (Parquet writes its footer last, so w must keep everything: a file or a
// spool, not a pipe to a reader that needs the footer first). The bytes are
// deterministic: the same package and src give the same file (no clock, no
// random or host value is written, and the created_by string is fixed).
//
// A malformed row stops the write with Walk's error, naming the file and
// line.
func (p *Package) WriteParquet(w io.Writer, kind Kind, src ParquetSource, lim ParquetLimits) (int, error) {
	s, err := newParquetSchema(kind)
	if err != nil {
		return 0, err
	}
	def := DefaultParquetLimits()
	if lim.RowGroupRows <= 0 {
		lim.RowGroupRows = def.RowGroupRows
	}
	if lim.RowGroupBytes <= 0 {
		lim.RowGroupBytes = def.RowGroupBytes
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	pw := parquet.NewWriter(bw, s.schema,
		parquet.Compression(&parquet.Zstd),
		// Version 1 data pages: the ones every reader has (older Hive and
		// Athena readers among them).
		parquet.DataPageVersion(1),
		// 64 KiB pages: with 256 KiB (the default) the ZSTD state of the
		// columns' pages alone takes some 40 MiB; with these, the writer
		// holds about 10 MiB for a default row group of CDR rows.
		parquet.PageBufferSize(64<<10),
		parquet.MaxRowsPerRowGroup(lim.RowGroupRows),
		&parquet.WriterConfig{CreatedBy: parquetCreatedBy},
		parquet.KeyValueMetadata(ParquetSchemaKey, ParquetSchemaVersion),
		parquet.KeyValueMetadata("cec-archiver.table", ParquetTable(kind)),
	)
	v := reflect.New(s.typ)
	var rows int
	var groupBytes int64
	werr := p.Walk(kind, func(r Row) error {
		s.fill(v, &src, r)
		if err := pw.Write(v.Interface()); err != nil {
			return &parquetWriteError{err}
		}
		rows++
		for _, f := range r.Fields {
			groupBytes += int64(len(f))
		}
		if groupBytes >= lim.RowGroupBytes {
			groupBytes = 0
			if err := pw.Flush(); err != nil {
				return &parquetWriteError{err}
			}
		}
		return nil
	})
	if werr != nil {
		var pe *parquetWriteError
		if errors.As(werr, &pe) {
			return rows, fmt.Errorf("cdr: parquet %s: write: %w", ParquetTable(kind), pe.err)
		}
		return rows, werr
	}
	if err := pw.Close(); err != nil {
		return rows, fmt.Errorf("cdr: parquet %s: close: %w", ParquetTable(kind), err)
	}
	if err := bw.Flush(); err != nil {
		return rows, fmt.Errorf("cdr: parquet %s: write: %w", ParquetTable(kind), err)
	}
	return rows, nil
}

// parquetWriteError tells the writer's errors from Walk's.
type parquetWriteError struct{ err error }

func (e *parquetWriteError) Error() string { return e.err.Error() }

// ParquetRow is one row read back from a file WriteParquet wrote.
type ParquetRow struct {
	Source ParquetSource
	File   string
	Line   int
	// Fields are the known columns, up to the last non-null one, then the
	// extra columns: the CSV row as Walk gave it.
	Fields []string
}

// ReadParquet reads back a file WriteParquet wrote for kind, row by row, with
// parquet-go's reader: the inverse of WriteParquet. It checks the schema
// version and fails on a file of another kind or version.
func ReadParquet(r io.ReaderAt, size int64, kind Kind, fn func(ParquetRow) error) error {
	s, err := newParquetSchema(kind)
	if err != nil {
		return err
	}
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		return fmt.Errorf("cdr: read parquet: %w", err)
	}
	if v, _ := f.Lookup(ParquetSchemaKey); v != ParquetSchemaVersion {
		return fmt.Errorf("cdr: read parquet: schema version %q, want %q", v, ParquetSchemaVersion)
	}
	if !parquet.EqualNodes(f.Schema(), s.schema) {
		return fmt.Errorf("cdr: read parquet: schema differs from the %s schema:\n%s", ParquetTable(kind), f.Schema())
	}
	pr := parquet.NewReader(f, s.schema)
	defer pr.Close()
	v := reflect.New(s.typ)
	for {
		v.Elem().SetZero()
		if err := pr.Read(v.Interface()); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("cdr: read parquet: %w", err)
		}
		if err := fn(s.row(v.Elem())); err != nil {
			return err
		}
	}
}

func (s *parquetSchema) row(e reflect.Value) ParquetRow {
	out := ParquetRow{
		Source: ParquetSource{
			BillFile: e.Field(0).String(), PackageSHA256: e.Field(1).String(),
			WindowBegin: e.Field(2).Interface().(time.Time), WindowEnd: e.Field(3).Interface().(time.Time),
			RequestedAt: e.Field(4).Interface().(time.Time),
		},
		File: e.Field(5).String(), Line: int(e.Field(6).Int()),
	}
	for i := 0; i < s.known; i++ {
		f := e.Field(s.csvBase + i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				break
			}
			f = f.Elem()
		}
		out.Fields = append(out.Fields, f.String())
	}
	out.Fields = append(out.Fields, e.Field(s.csvBase+s.known).Interface().([]string)...)
	return out
}

// String names the row for error messages.
func (r ParquetRow) String() string {
	return fmt.Sprintf("%s line %d (%s)", r.File, r.Line, strings.TrimSuffix(r.Source.BillFile, ".zip"))
}
