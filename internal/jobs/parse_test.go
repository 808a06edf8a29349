package jobs

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
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

// all returns every item, in the order first met.
func (p *packageItems) all() ([]checkpoint.Item, error) {
	if p == nil {
		return nil, nil
	}
	return p.part(0, math.MaxInt32)
}

// parseAll parses p and reads all its items; the files go with the test.
func parseAll(t *testing.T, a *Archiver, p *cdr.Package) ([]checkpoint.Call, []checkpoint.Item, *spooled) {
	t.Helper()
	calls, list, rows, err := a.parsePackage(p, "pkg.zip")
	if rows != nil {
		t.Cleanup(rows.remove)
	}
	if err != nil {
		t.Fatalf("parsePackage: %v", err)
	}
	t.Cleanup(list.remove)
	items, err := list.all()
	if err != nil {
		t.Fatal(err)
	}
	return calls, items, rows
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
		calls, items, rows := parseAll(t, a, p)
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
		_, list, rows, err := a.parsePackage(p, "pkg.zip")
		if rows != nil {
			rows.remove()
		}
		if list != nil {
			t.Error("the items of a failed parse are returned")
		}
		if err == nil || !strings.Contains(err.Error(), "2 unusable rows, first 20261101_record_1.csv line 2: no file_name") {
			t.Errorf("parsePackage: %v, want 2 unusable rows naming file and line", err)
		}
		if ents, err := os.ReadDir(a.SpoolDir); err != nil || len(ents) != 0 {
			t.Errorf("spool directory after a failed parse: %v, %v; want it empty", ents, err)
		}
	})
	t.Run("a recording after midnight is filed with its call", func(t *testing.T) {
		// c1's recording-index rows (10:00 on 1 November) come before its
		// call row, which begins at 23:59 the day before: the item, kept
		// with the day and key of its own row, is placed again by the
		// call's begin. c2's rows agree and are not.
		late := func(callID, file string) []string {
			r := recordRow(callID, file)
			r[slices.Index(cecwire.RecordColumns, "call_begin")] = "2026-11-01 00:00:30"
			return r
		}
		early := callRow("c1")
		early[slices.Index(cecwire.CallColumns, "call_begin")] = "2026-10-31 23:59:00"
		p := testPackage(t, map[string][][]string{
			"20261101_record_1.csv": {late("c1", "/1/a.wav"), late("c1", "/1/b.wav"), recordRow("c2", "/1/c.wav")},
			"20261101_call_1.csv":   {early, callRow("c2")},
		})
		calls, items, _ := parseAll(t, a, p)
		if len(calls) != 2 || calls[0].Day != "2026-10-31" || calls[1].Day != "2026-11-01" {
			t.Fatalf("calls %+v, want c1 on 31 October, c2 on 1 November", calls)
		}
		want := map[string]string{"/1/a.wav": "2026-10-31", "/1/b.wav": "2026-10-31", "/1/c.wav": "2026-11-01"}
		if len(items) != len(want) {
			t.Fatalf("%d items, want %d", len(items), len(want))
		}
		for _, it := range items {
			day := want[it.UpstreamID]
			if it.Day != day || !strings.HasPrefix(it.Key, "t/"+strings.ReplaceAll(day, "-", "/")+"/") {
				t.Errorf("item %s: day %s, key %s; want day %s and a key of that date", it.UpstreamID, it.Day, it.Key, day)
			}
			if it.State != checkpoint.StatePending || it.Kind != checkpoint.KindAgent || len(it.Args) == 0 {
				t.Errorf("item %s: %+v", it.UpstreamID, it)
			}
		}
	})
}

// bigPackage is a package of n calls, each with one recording-index row.
func bigPackage(b testing.TB, n int) *cdr.Package {
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
// and reads its items a part at a time, as completePackage commits them.
// Reported a call: peak-B/call, the most heap the parse and the reading of
// the parts held at any moment (sampled, with the collector kept close to
// the live heap); heap-B/call, the heap in use once parsed with one part of
// the items read; all-items-B/call, the same with all of them read at once,
// which is what holding a package's items costs (the baseline, measured in
// the same run); x-less-than-all the baseline over heap-B/call. B/op what
// was allocated on the way.
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
	var inUse, all, peak uint64
	for b.Loop() {
		base := heapInUse()
		stop := sampleHeap(b, &peak, base)
		cs, list, rows, err := a.parsePackage(p, "pkg.zip")
		if err != nil {
			b.Fatal(err)
		}
		rows.remove()
		n := 0
		for lo := 0; lo < len(cs); lo += partCalls {
			part, err := list.part(lo, min(lo+partCalls, len(cs)))
			if err != nil {
				b.Fatal(err)
			}
			n += len(part)
			if lo == 0 {
				inUse = max(inUse, heapInUse()-base)
			}
			runtime.KeepAlive(part)
		}
		stop()
		items, err := list.all()
		if err != nil || n != calls || len(items) != calls {
			b.Fatalf("%d items in parts, %d in all, %v; want %d", n, len(items), err, calls)
		}
		all = max(all, heapInUse()-base)
		runtime.KeepAlive(items)
		runtime.KeepAlive(cs)
		list.remove()
	}
	b.ReportMetric(float64(peak)/calls, "peak-B/call")
	b.ReportMetric(float64(inUse)/calls, "heap-B/call")
	b.ReportMetric(float64(all)/calls, "all-items-B/call")
	b.ReportMetric(float64(all)/float64(inUse), "x-less-than-all")
}

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// sampleHeap records in peak the most heap objects above base until the
// function it returns is called, the collector set to run at a tenth more
// than the live heap meanwhile so that garbage adds little to the samples.
func sampleHeap(b *testing.B, peak *uint64, base uint64) func() {
	b.Helper()
	old := debug.SetGCPercent(10)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > base && v-base > *peak {
				*peak = v - base
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		debug.SetGCPercent(old)
	}
}

// TestCreateSpool: a spool file is gone from its directory as soon as it
// is created (a process killed while it is open leaves nothing behind), is
// written and read through its descriptor, and is closed by drop.
func TestCreateSpool(t *testing.T) {
	dir := t.TempDir()
	f, drop, err := createSpool(dir, "x-*.bin")
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("directory holds %v, %v; want it empty", ents, err)
	}
	if _, err := f.WriteString("abc"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "abc" {
		t.Errorf("read back %q, %v", b, err)
	}
	drop()
	if _, err := f.WriteString("d"); err == nil {
		t.Error("the file is still open after drop")
	}
	if _, _, err := createSpool(filepath.Join(dir, "missing"), "x-*.bin"); err == nil {
		t.Error("a spool in a missing directory was created")
	}
}
