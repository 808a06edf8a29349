package jobs

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// testPackage builds a package ZIP from CSV rows.
func testPackage(t testing.TB, files map[string][][]string) *cdr.Package {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, rows := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		cw := csv.NewWriter(w)
		if err := cw.WriteAll(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := cdr.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), cdr.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func recordRow(callID, fileName string) []string {
	r := make([]string, len(cecwire.RecordColumns))
	set := map[string]string{
		"developer": "dev", "cc_id": "1", "agent_id": "3901", "call_id": callID, "caller_no": "13800138000",
		"call_begin": "2026-11-01 10:00:00", "call_end": "2026-11-01 10:05:00", "file_name": fileName, "vdn_id": "39",
	}
	for i, c := range cecwire.RecordColumns {
		r[i] = set[c]
	}
	return r
}

func callRow(callID string, extra ...string) []string {
	r := make([]string, len(cecwire.CallColumns))
	set := map[string]string{"call_id": callID, "call_begin": "2026-11-01 09:59:00", "vdn_id": "39", "caller_no": "13800138000"}
	for i, c := range cecwire.CallColumns {
		r[i] = set[c]
	}
	return append(r, extra...)
}

func TestArchiver_parsePackage(t *testing.T) {
	keys, err := sink.NewKeyBuilder("", sink.DefaultKeyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	a := &Archiver{Keys: keys, Settings: Settings{Tenant: "t", Location: time.UTC, SpoolDir: t.TempDir()}}
	t.Run("good package", func(t *testing.T) {
		p := testPackage(t, map[string][][]string{
			"20261101_call_1.csv":   {cecwire.CallColumns, callRow("c1", "x1", "x2"), callRow("c2")},
			"20261101_record_1.csv": {recordRow("c1", "/1/a.wav"), recordRow("c1", "/1/b.wav"), recordRow("c1", "/1/a.wav")},
		})
		calls, items, rows, err := a.parsePackage(p, "pkg.zip")
		if rows != nil {
			defer rows.remove()
		}
		if err != nil {
			t.Fatalf("parsePackage: %v", err)
		}
		if len(calls) != 2 || calls[0].CallID != "c1" || calls[0].Day != "2026-11-01" || !calls[0].Begin.Equal(time.Date(2026, 11, 1, 9, 59, 0, 0, time.UTC)) {
			t.Errorf("calls %+v", calls)
		}
		lookups, err := lookupItems(calls)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, it := range append(items, lookups...) {
			kinds[it.Kind]++
			if strings.Contains(string(it.Args), "13800138000") {
				t.Errorf("item %s params %s hold the phone number", it.UpstreamID, it.Args)
			}
		}
		if kinds[checkpoint.KindAgent] != 2 || kinds[checkpoint.KindTransferLookup] != 2 || kinds[checkpoint.KindIVRLookup] != 2 || len(items) != 2 {
			t.Errorf("items by kind %v (%d from the parse), want 2 agent (deduplicated) from the parse, 2+2 lookups from the calls", kinds, len(items))
		}
		for i, l := range lookups {
			if c := calls[i/lookupsPerCall]; l.CallID != c.CallID || l.UpstreamID != c.CallID || l.Day != c.Day {
				t.Errorf("lookup %d: %s/%s of call %s day %s, want call %s's", i, l.Kind, l.UpstreamID, l.CallID, l.Day, c.CallID)
			}
		}
		zr, err := gzip.NewReader(rows.f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 5 {
			t.Fatalf("%d rows, want 5 (the header is not a row)", len(lines))
		}
		var first rowJSON
		if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
			t.Fatal(err)
		}
		if first.Kind != "call" || first.Line != 2 || first.Fields["call_id"] != "c1" || first.Fields["col_22"] != "x1" || first.Fields["col_23"] != "x2" {
			t.Errorf("first row %+v", first)
		}
	})
	t.Run("bad rows fail the package", func(t *testing.T) {
		p := testPackage(t, map[string][][]string{
			"20261101_call_1.csv":   {callRow("c1")},
			"20261101_record_1.csv": {recordRow("c1", "/1/a.wav"), recordRow("c1", ""), recordRow("", "/1/c.wav")},
		})
		_, _, rows, err := a.parsePackage(p, "pkg.zip")
		if rows != nil {
			rows.remove()
		}
		if err == nil || !strings.Contains(err.Error(), "2 unusable rows, first 20261101_record_1.csv line 2: no file_name") {
			t.Errorf("parsePackage: %v, want 2 unusable rows naming file and line", err)
		}
	})
}

// bigPackage is a package of n calls, each with one recording-index row.
func bigPackage(b *testing.B, n int) *cdr.Package {
	b.Helper()
	calls, records := make([][]string, n), make([][]string, n)
	for i := range n {
		id := fmt.Sprintf("17620000%08d", i)
		calls[i], records[i] = callRow(id), recordRow(id, "/1/"+id+".wav")
	}
	return testPackage(b, map[string][][]string{"20261101_call_1.csv": calls, "20261101_record_1.csv": records})
}

// BenchmarkParsePackage parses a package of 20,000 calls (20,000 recording
// items; the 40,000 lookups are made part by part as they are committed)
// and splits it into the parts completePackage commits.
// heap-B/call is the heap still in use afterwards, with the calls, items
// and parts alive (what a package costs the process while it is
// committed); B/op what was allocated on the way.
//
// Run: go test -run '^$' -bench 'ParsePackage$' -benchtime 3x -benchmem ./internal/jobs/
func BenchmarkParsePackage(b *testing.B) {
	const calls = 20000
	keys, err := sink.NewKeyBuilder("", sink.DefaultKeyTemplate)
	if err != nil {
		b.Fatal(err)
	}
	a := &Archiver{Keys: keys, Settings: Settings{Tenant: "t", Location: time.UTC, SpoolDir: b.TempDir()}}
	p := bigPackage(b, calls)
	b.ReportAllocs()
	var inUse uint64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		cs, items, rows, err := a.parsePackage(p, "pkg.zip")
		if err != nil {
			b.Fatal(err)
		}
		rows.remove()
		parts := callParts(cs, items, partCalls)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if len(items) != calls || len(parts) != calls/partCalls {
			b.Fatalf("%d items in %d parts, want %d in %d", len(items), len(parts), calls, calls/partCalls)
		}
		inUse = max(inUse, m1.HeapAlloc-m0.HeapAlloc)
		runtime.KeepAlive(parts)
		runtime.KeepAlive(cs)
		runtime.KeepAlive(items)
	}
	b.ReportMetric(float64(inUse)/calls, "heap-B/call")
}
