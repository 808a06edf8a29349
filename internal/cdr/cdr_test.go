package cdr

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

type entry struct {
	name   string
	body   string
	method uint16
}

func makeZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func recordRow(callID, fileName string) string {
	f := make([]string, len(cecwire.RecordColumns))
	for i, c := range cecwire.RecordColumns {
		f[i] = c + "-v"
	}
	f[4], f[9] = callID, fileName
	return strings.Join(f, ",")
}

func callRow(callID string, extra ...string) string {
	f := make([]string, len(cecwire.CallColumns))
	for i := range f {
		f[i] = "1"
	}
	f[4] = callID
	return strings.Join(append(f, extra...), ",")
}

func open(t *testing.T, b []byte) (*Package, error) {
	t.Helper()
	return Open(bytes.NewReader(b), int64(len(b)), DefaultLimits())
}

func collect(t *testing.T, p *Package, kind Kind) ([]Row, error) {
	t.Helper()
	var rows []Row
	err := p.Walk(kind, func(r Row) error { rows = append(rows, r); return nil })
	return rows, err
}

func TestPackage_Walk(t *testing.T) {
	header := strings.Join(cecwire.RecordColumns, ",")
	z := makeZip(t,
		entry{name: "20260101000000000123_record_2.csv", body: recordRow("c3", "/f/3.wav") + "\n", method: zip.Deflate},
		entry{name: "20260101000000000123_record_1.csv", body: "\xEF\xBB\xBF" + header + "\n" + recordRow("c1", "/f/1.wav") + "\n" + recordRow("c2", "/f/2.wav") + "\n", method: zip.Deflate},
		entry{name: "20260101000000000123_call_1.csv", body: callRow("c1", "x22", "x23") + "\n" + callRow("c2") + "\n", method: zip.Store},
		entry{name: "readme.txt", body: "hello"},
		entry{name: "dir/", body: ""},
	)
	p, err := open(t, z)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Files(KindRecord); len(got) != 2 || !strings.HasSuffix(got[0], "_record_1.csv") {
		t.Errorf("Files(record) = %v", got)
	}
	if len(p.Ignored) != 1 || p.Ignored[0] != "readme.txt" {
		t.Errorf("Ignored = %v", p.Ignored)
	}
	rows, err := collect(t, p, KindRecord)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.Get(KindRecord, "call_id")+"="+r.Get(KindRecord, "file_name"))
	}
	if got := strings.Join(ids, " "); got != "c1=/f/1.wav c2=/f/2.wav c3=/f/3.wav" {
		t.Errorf("record rows = %s", got)
	}
	if rows[0].Line != 2 {
		t.Errorf("first data row line = %d, want 2 (after the header)", rows[0].Line)
	}
	calls, err := collect(t, p, KindCall)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || len(calls[0].Fields) != len(cecwire.CallColumns)+2 || calls[0].Fields[len(cecwire.CallColumns)+1] != "x23" {
		t.Errorf("call rows keep extra columns: %+v", calls)
	}
}

func TestOpen_Rejects(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"traversal", []entry{{name: "../../etc/x_call_1.csv", body: "a"}}, `entry "../../etc/x_call_1.csv": unsafe name`},
		{"absolute", []entry{{name: "/x_call_1.csv", body: "a"}}, "unsafe name"},
		{"backslash", []entry{{name: `..\x_call_1.csv`, body: "a"}}, "unsafe name"},
		{"nul", []entry{{name: "a\x00_call_1.csv", body: "a"}}, "unsafe name"},
		{"not zip", nil, "zip: not a valid zip file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte("this is not a zip file at all")
			if tt.entries != nil {
				b = makeZip(t, tt.entries...)
			}
			_, err := open(t, b)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
	t.Run("too many entries", func(t *testing.T) {
		var es []entry
		for i := 0; i < 5; i++ {
			es = append(es, entry{name: fmt.Sprintf("x_call_%d.csv", i), body: "a"})
		}
		b := makeZip(t, es...)
		l := DefaultLimits()
		l.MaxEntries = 4
		_, err := Open(bytes.NewReader(b), int64(len(b)), l)
		if err == nil || !strings.Contains(err.Error(), "5 entries, limit 4") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWalk_Bomb(t *testing.T) {
	// 64 MiB of one byte deflates to ~64 KiB: far over a 50:1 ratio. Open
	// refuses it at inflation speed, before any row is parsed.
	body := strings.Repeat("a", 64<<20)
	b := makeZip(t, entry{name: "x_record_1.csv", body: body, method: zip.Deflate})
	_, err := open(t, b)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "x_record_1.csv: inflates past a 50:1 compression ratio") {
		t.Fatalf("Open = %v, want the ratio refusal", err)
	}
	t.Run("ratio is configurable", func(t *testing.T) {
		l := DefaultLimits()
		l.MaxRatio = 2000
		_, err := Open(bytes.NewReader(b), int64(len(b)), l)
		if err != nil {
			t.Fatalf("Open with a 2000:1 ratio: %v", err)
		}
	})
	t.Run("entry limit", func(t *testing.T) {
		l := DefaultLimits()
		l.MaxEntryBytes = 1 << 20
		b := makeZip(t, entry{name: "x_record_1.csv", body: strings.Repeat(recordRow("c", "f")+"\n", 20000), method: zip.Store})
		p, err := Open(bytes.NewReader(b), int64(len(b)), l)
		if err == nil {
			_, err = collect(t, p, KindRecord)
		}
		if err == nil || !strings.Contains(err.Error(), "1048576") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWalk_BadRows(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"short row", recordRow("c1", "f") + "\na,b,c\n", "x_record_1.csv line 2: 3 columns, want at least 18"},
		{"bad quote", recordRow("c1", "f") + "\n" + `a,"b` + "\n", "x_record_1.csv"},
		{"invalid utf8", strings.Replace(recordRow("c1", "f"), "c1", "c\xff", 1) + "\n", "line 1: column call_id: invalid UTF-8"},
		{"huge field", strings.Replace(recordRow("c1", "f"), "c1", strings.Repeat("z", 5000), 1) + "\n", "column call_id: 5000 bytes, limit 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := open(t, makeZip(t, entry{name: "x_record_1.csv", body: tt.body, method: zip.Deflate}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = collect(t, p, KindRecord)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzOpenWalk(f *testing.F) {
	f.Add(makeZip(f, entry{name: "x_record_1.csv", body: recordRow("c1", "/a.wav") + "\n", method: zip.Deflate}))
	f.Add(makeZip(f, entry{name: "x_call_1.csv", body: callRow("c1") + "\n" + callRow("c2", "extra"), method: zip.Store}))
	f.Add([]byte("PK\x03\x04garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := DefaultLimits()
		l.MaxEntryBytes, l.MaxTotalBytes = 1<<20, 2<<20
		p, err := Open(bytes.NewReader(b), int64(len(b)), l)
		if err != nil {
			return
		}
		for _, k := range []Kind{KindCall, KindRecord} {
			_ = p.Walk(k, func(r Row) error {
				if len(r.Fields) < minColumns(k) || r.File == "" {
					t.Fatalf("row %+v passed validation", r)
				}
				return nil
			})
		}
	})
}
