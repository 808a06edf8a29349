package cdr

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// awkward are CSV values a Parquet round trip must keep byte for byte:
// empty, blanks, non-ASCII in several scripts, CSV quoting, a newline.
var awkward = []string{
	"", " ", "  padded  ", "Zoë Ñúñez", "张伟", "مرحبا", "😀 emoji", "e\u0301 combining", "a,b", `say "hi"`, "line1\nline2",
	"\u00a0nbsp", "tab\there",
}

// parquetPackage is a package whose rows hold every awkward value, a row
// that stops before the optional call column, rows with extra columns, a
// header and a BOM, split over two files of each kind. rows are the data
// rows as written, per kind, in Walk's order.
func parquetPackage(t testing.TB, n int) (zipBytes []byte, rows map[Kind][][]string) {
	t.Helper()
	rows = map[Kind][][]string{}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, kind := range []Kind{KindCall, KindRecord} {
		known := cecwire.RecordColumns
		if kind == KindCall {
			known = cecwire.CallColumns
		}
		for file := 1; file <= 2; file++ {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("20261101000000000123_%s_%d.csv", kind, file), Method: zip.Deflate})
			if err != nil {
				t.Fatal(err)
			}
			if file == 1 {
				if _, err := w.Write([]byte("\xEF\xBB\xBF")); err != nil {
					t.Fatal(err)
				}
			}
			cw := csv.NewWriter(w)
			if err := cw.Write(known); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				k := (file-1)*n + i
				r := make([]string, len(known))
				for j := range r {
					r[j] = awkward[(k+j)%len(awkward)]
				}
				switch {
				case kind == KindCall && k%7 == 3:
					r = r[:minColumns(KindCall)] // no pre_device_no: null
				case k%5 == 1:
					r = append(r, "extra ü", "")
				case k%5 == 2:
					r = append(r, awkward...)
				}
				if err := cw.Write(r); err != nil {
					t.Fatal(err)
				}
				rows[kind] = append(rows[kind], r)
			}
			cw.Flush()
			if err := cw.Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), rows
}

var testSource = ParquetSource{
	BillFile: "20261102_0123456789abcdef0123456789abcdef.zip", PackageSHA256: strings.Repeat("ab", 32),
	WindowBegin: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), WindowEnd: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
	RequestedAt: time.Date(2026, 11, 2, 0, 5, 1, 123456789, time.FixedZone("CST", 8*3600)),
}

func writeParquet(t testing.TB, p *Package, kind Kind, lim ParquetLimits) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := p.WriteParquet(&buf, kind, testSource, lim); err != nil {
		t.Fatalf("WriteParquet %s: %v", kind, err)
	}
	return buf.Bytes()
}

// writtenRows reads a file back with parquet-go's reader.
func writtenRows(t testing.TB, b []byte, kind Kind) []ParquetRow {
	t.Helper()
	var out []ParquetRow
	if err := ReadParquet(bytes.NewReader(b), int64(len(b)), kind, func(r ParquetRow) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("ReadParquet %s: %v", kind, err)
	}
	return out
}

// TestWriteParquet_RoundTrip: every row of every CSV file comes back from
// the Parquet file, every column byte for byte, in order, with its file,
// line and the package's provenance; an empty field stays an empty string
// and a missing optional column is null (not ""); the rows are cut into row
// groups by either limit.
func TestWriteParquet_RoundTrip(t *testing.T) {
	const n = 300
	z, want := parquetPackage(t, n)
	p, err := open(t, z)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		lim    ParquetLimits
		groups int // per file of 2n rows
	}{
		{"defaults", ParquetLimits{}, 1},
		{"by rows", ParquetLimits{RowGroupRows: 64}, (2*n + 63) / 64},
		{"by bytes", ParquetLimits{RowGroupBytes: 4 << 10}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range []Kind{KindCall, KindRecord} {
				b := writeParquet(t, p, kind, tc.lim)
				f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				groups := len(f.RowGroups())
				switch {
				case tc.groups > 0 && groups != tc.groups:
					t.Errorf("%s: %d row groups, want %d", kind, groups, tc.groups)
				case tc.groups == 0 && groups < 10:
					t.Errorf("%s: %d row groups with a %d-byte bound, want the rows cut into many", kind, groups, tc.lim.RowGroupBytes)
				}
				got := writtenRows(t, b, kind)
				if len(got) != len(want[kind]) {
					t.Fatalf("%s: %d rows read back, %d written", kind, len(got), len(want[kind]))
				}
				var nulls, extras int
				for i, r := range got {
					w := want[kind][i]
					if !slices.Equal(r.Fields, w) {
						t.Fatalf("%s row %d (%s):\n got %q\nwant %q", kind, i, r, r.Fields, w)
					}
					wantFile := fmt.Sprintf("20261101000000000123_%s_%d.csv", kind, 1+i/n)
					if r.File != wantFile || r.Line < 2 {
						t.Errorf("%s row %d: file %s line %d, want %s after the header", kind, i, r.File, r.Line, wantFile)
					}
					src := testSource
					src.RequestedAt = src.RequestedAt.UTC().Truncate(time.Microsecond)
					if r.Source != src {
						t.Errorf("%s row %d: source %+v, want %+v", kind, i, r.Source, src)
					}
					if len(w) < len(cecwire.CallColumns) {
						nulls++
					}
					if len(w) > len(cecwire.CallColumns) {
						extras++
					}
				}
				if kind == KindCall && (nulls == 0 || extras == 0) {
					t.Errorf("%d rows without pre_device_no, %d with extra columns: the test proves little", nulls, extras)
				}
			}
		})
	}
}

// TestWriteParquet_Deterministic: the same package and source give the same
// bytes, whatever the run (a rerun after a crash must find the stored object
// equal, not conflicting), and the bytes are those of the golden digest:
// a change of parquet-go or of the schema that changes them shows here
// (go test -run Deterministic -update rewrites testdata/parquet.sha256).
func TestWriteParquet_Deterministic(t *testing.T) {
	z, _ := parquetPackage(t, 40)
	var lines []string
	for _, kind := range []Kind{KindCall, KindRecord} {
		p, err := open(t, z)
		if err != nil {
			t.Fatal(err)
		}
		first := writeParquet(t, p, kind, ParquetLimits{RowGroupRows: 16})
		for range 3 {
			p, err := open(t, z)
			if err != nil {
				t.Fatal(err)
			}
			if again := writeParquet(t, p, kind, ParquetLimits{RowGroupRows: 16}); !bytes.Equal(first, again) {
				t.Fatalf("%s: two writes of the same rows differ (%d and %d bytes)", kind, len(first), len(again))
			}
		}
		sum := sha256.Sum256(first)
		lines = append(lines, fmt.Sprintf("%s %s", hex.EncodeToString(sum[:]), ParquetTable(kind)))
	}
	golden := filepath.Join("testdata", "parquet.sha256")
	got := strings.Join(lines, "\n") + "\n"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run Deterministic -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("Parquet bytes changed:\n got %s\nwant %s"+
			"the same package now makes other bytes than the archiver wrote before: a rerun of a package stored by the "+
			"previous version would conflict. If intended, say so in docs/parquet.md and run with -update.", got, want)
	}
}

// TestParquetCreatedBy: created_by names the parquet-go version the binary
// is built with (go.mod's), and the file carries it and the schema version.
func TestParquetCreatedBy(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var version string
	if m := regexp.MustCompile(`(?m)^\s*github\.com/parquet-go/parquet-go (v\S+)`).FindSubmatch(mod); m != nil {
		version = string(m[1])
	}
	if version == "" || !strings.HasSuffix(parquetCreatedBy, " "+version+")") {
		t.Errorf("created_by %q does not name parquet-go %q of go.mod", parquetCreatedBy, version)
	}
	z, _ := parquetPackage(t, 2)
	p, err := open(t, z)
	if err != nil {
		t.Fatal(err)
	}
	b := writeParquet(t, p, KindRecord, ParquetLimits{})
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Metadata().CreatedBy; got != parquetCreatedBy {
		t.Errorf("created_by %q, want %q", got, parquetCreatedBy)
	}
	if v, _ := f.Lookup("cec-archiver.table"); v != "recordings" {
		t.Errorf("table %q", v)
	}
}

// TestParquetSchema: the schema is the golden one (testdata/parquet-schema-*.txt,
// -update rewrites them) and docs/parquet.md names every column.
func TestParquetSchema(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "parquet.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []Kind{KindCall, KindRecord} {
		s, err := ParquetSchema(kind)
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "parquet-schema-"+ParquetTable(kind)+".txt")
		if *update {
			if err := os.WriteFile(golden, []byte(s+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if s+"\n" != string(want) {
			t.Errorf("%s schema:\n%s\nwant (%s):\n%s", kind, s, golden, want)
		}
		cols, err := ParquetColumns(kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			if !bytes.Contains(doc, []byte("`"+c+"`")) {
				t.Errorf("docs/parquet.md does not name the %s column `%s`", ParquetTable(kind), c)
			}
		}
	}
}

// TestWriteParquet_BadInput: a row Walk refuses stops the write with Walk's
// error, naming the file, the line and, for a bad value, the column; nothing
// is written for the table as if the rows were fine.
func TestWriteParquet_BadInput(t *testing.T) {
	good := callRow("c1")
	for _, tc := range []struct {
		name, body, want string
	}{
		{"too few columns", good + "\n" + "a,b,c\n", "x_call_1.csv line 2: 3 columns, want at least 20"},
		{"invalid UTF-8", good + "\n" + strings.Replace(callRow("c2"), "1", "\xff\xfe", 1) + "\n", "x_call_1.csv line 2: column developer: invalid UTF-8"},
		{"bare quote", good + "\n" + `1,"a"b` + "\n", "x_call_1.csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := open(t, makeZip(t, entry{name: "x_call_1.csv", body: tc.body, method: zip.Deflate}))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = p.WriteParquet(&buf, KindCall, testSource, ParquetLimits{})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		p, err := open(t, makeZip(t, entry{name: "x_call_1.csv", body: good + "\n"}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.WriteParquet(io.Discard, Kind("other"), testSource, ParquetLimits{}); err == nil || !strings.Contains(err.Error(), `unknown kind "other"`) {
			t.Errorf("error %v, want unknown kind", err)
		}
	})
}

// TestReadParquet_Refuses: a file of the other table, or not Parquet at all,
// is refused naming why.
func TestReadParquet_Refuses(t *testing.T) {
	z, _ := parquetPackage(t, 3)
	p, err := open(t, z)
	if err != nil {
		t.Fatal(err)
	}
	calls := writeParquet(t, p, KindCall, ParquetLimits{})
	err = ReadParquet(bytes.NewReader(calls), int64(len(calls)), KindRecord, func(ParquetRow) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "schema differs from the recordings schema") {
		t.Errorf("calls read as recordings: %v", err)
	}
	junk := []byte("PAR1 not really")
	if err := ReadParquet(bytes.NewReader(junk), int64(len(junk)), KindCall, func(ParquetRow) error { return nil }); err == nil {
		t.Error("junk read as Parquet")
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(b)
	return len(b), nil
}

// TestWriteParquet_WriteError: a failing output is reported, not swallowed.
func TestWriteParquet_WriteError(t *testing.T) {
	z, _ := parquetPackage(t, 200)
	p, err := open(t, z)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1 << 10, 20 << 10} {
		_, err := p.WriteParquet(&failingWriter{n: n}, KindCall, testSource, ParquetLimits{RowGroupRows: 32})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("after %d bytes: error %v, want disk full", n, err)
		}
	}
}
