package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// reflectRow is how the rows file's lines were written before rowEncoder:
// the bytes it must keep writing.
func reflectRow(t testing.TB, kind cdr.Kind, cols []string, r cdr.Row) []byte {
	fields := make(map[string]string, len(r.Fields))
	for i, v := range r.Fields {
		if i < len(cols) {
			fields[cols[i]] = v
		} else {
			fields["col_"+strconv.Itoa(i+1)] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rowJSON{File: r.File, Kind: string(kind), Line: r.Line, Fields: fields}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reflectContent is the content digest's share of a row as it was written.
func reflectContent(kind cdr.Kind, fields []string) []byte {
	var b bytes.Buffer
	b.WriteString(string(kind))
	for _, v := range fields {
		fmt.Fprintf(&b, "\x00%d:%s", len(v), v)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

func checkRowEncoder(t testing.TB, kind cdr.Kind, cols []string, r cdr.Row) {
	t.Helper()
	var got bytes.Buffer
	if err := newRowEncoder(&got).encode(kind, cols, r); err != nil {
		t.Fatal(err)
	}
	if want := reflectRow(t, kind, cols, r); !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("row %q:\n got %s\nwant %s", r.Fields, got.Bytes(), want)
	}
	if got, want := appendContent(nil, kind, r.Fields), reflectContent(kind, r.Fields); !bytes.Equal(got, want) {
		t.Fatalf("content of %q: %q, want %q", r.Fields, got, want)
	}
}

// TestRowEncoder_AsEncodingJSON: the rows file keeps its bytes (its key and
// digest depend on them) for plain, escaped, non-ASCII and invalid values,
// short rows, extra columns and repeated column names.
func TestRowEncoder_AsEncodingJSON(t *testing.T) {
	values := []string{"", "plain", "a\\\\b", "with \"quotes\"", `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"<html>&amp;", "中文 éàü", "\u2028\u2029", "bad \xff\xfe utf8", "emoji 😀", strings.Repeat("x", 300)}
	for _, kind := range []cdr.Kind{cdr.KindCall, cdr.KindRecord} {
		cols := cecwire.CallColumns
		if kind == cdr.KindRecord {
			cols = cecwire.RecordColumns
		}
		for _, n := range []int{0, 1, len(cols) - 1, len(cols), len(cols) + 3, len(cols) + 12} {
			fields := make([]string, n)
			for i := range fields {
				fields[i] = values[(i+n)%len(values)]
			}
			checkRowEncoder(t, kind, cols, cdr.Row{File: "20261101_" + string(kind) + "_1.csv", Line: n + 2, Fields: fields})
		}
	}
	// A name given twice keeps its last value, as in a map.
	checkRowEncoder(t, cdr.KindCall, []string{"b", "a", "b"}, cdr.Row{File: "f\"1", Line: 7, Fields: []string{"1", "2", "3", "4"}})
	// One encoder, rows of different shapes in turn.
	var got, want bytes.Buffer
	enc := newRowEncoder(&got)
	for i := range 40 {
		kind, cols := cdr.KindCall, cecwire.CallColumns
		if i%3 == 0 {
			kind, cols = cdr.KindRecord, cecwire.RecordColumns
		}
		r := cdr.Row{File: "f.csv", Line: i, Fields: make([]string, len(cols)+i%4-1)}
		for j := range r.Fields {
			r.Fields[j] = values[(i*7+j)%len(values)]
		}
		if err := enc.encode(kind, cols, r); err != nil {
			t.Fatal(err)
		}
		want.Write(reflectRow(t, kind, cols, r))
	}
	if sha256.Sum256(got.Bytes()) != sha256.Sum256(want.Bytes()) {
		t.Fatalf("a stream of rows differs from encoding/json's:\n got %s\nwant %s", got.Bytes(), want.Bytes())
	}
}

// FuzzRowEncoder: any values, any count of fields (run with -fuzztime=Nx).
func FuzzRowEncoder(f *testing.F) {
	f.Add("file.csv", 3, "a", "b\"c", "\xff", 2)
	f.Add("", 0, "", "", "", 40)
	f.Fuzz(func(t *testing.T, file string, line int, a, b, c string, n int) {
		n = min(max(n, 0), 64)
		fields := make([]string, n)
		for i := range fields {
			fields[i] = []string{a, b, c}[i%3]
		}
		checkRowEncoder(t, cdr.KindRecord, cecwire.RecordColumns, cdr.Row{File: file, Line: line, Fields: fields})
	})
}
