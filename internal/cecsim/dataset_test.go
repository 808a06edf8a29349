package cecsim

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

func TestNew_Deterministic(t *testing.T) {
	a, err := New(Options{Seed: 42, Calls: 60, Days: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Seed: 42, Calls: 60, Days: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Seed: 43, Calls: 60, Days: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Manifest(), b.Manifest()) {
		t.Fatal("same seed, different manifests")
	}
	if reflect.DeepEqual(a.Manifest().Recordings, c.Manifest().Recordings) {
		t.Fatal("different seeds, same recordings")
	}
	// The size bounds change sizes and content, not the structure.
	d, err := New(Options{Seed: 42, Calls: 60, Days: 2, MinRecordingBytes: 100, MaxRecordingBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Recordings of one size are still distinct: each carries its seed.
	shas := map[string]bool{}
	for i, r := range d.Manifest().Recordings {
		if r.FileName != a.Manifest().Recordings[i].FileName || r.Size != 100 {
			t.Fatalf("recording %d: %+v", i, r)
		}
		if shas[r.SHA256] {
			t.Fatalf("recording %d has the bytes of an earlier one", i)
		}
		shas[r.SHA256] = true
	}
	// Manifest returns a copy.
	m := a.Manifest()
	m.Recordings[0].SHA256 = "changed"
	if a.Manifest().Recordings[0].SHA256 == "changed" {
		t.Fatal("Manifest shares its slices")
	}
}

func TestNew_Options(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	if len(m.Calls) != defaultCalls || m.TenantID != defaultTenantID {
		t.Fatalf("defaults: %d calls, tenant %q", len(m.Calls), m.TenantID)
	}
	for _, c := range m.Calls {
		if c.Day != "2026-11-01" {
			t.Fatalf("call %s on %s, want 2026-11-01", c.CallID, c.Day)
		}
	}
	small, err := New(Options{Calls: 3, MaxRecordingBytes: 1000})
	if err != nil {
		t.Fatalf("MaxRecordingBytes below the default minimum: %v", err)
	}
	for _, r := range small.Manifest().Recordings {
		if r.Size != 1000 {
			t.Fatalf("size %d, want 1000", r.Size)
		}
	}
	bad := []Options{
		{Calls: -1},
		{Days: -1},
		{MinRecordingBytes: 10},
		{MinRecordingBytes: 8192, MaxRecordingBytes: 4096},
		{MaxRecordingBytes: 1 << 33},
		{Credentials: map[string]string{"a/b": "x"}},
		{Credentials: map[string]string{"ak": ""}},
		{TokenTTL: -time.Second},
		{Faults: []Fault{{Kind: "nope"}}},
		{Faults: []Fault{{Kind: FaultFlowControl, Path: cecwire.PathGetToken}}},
		{Faults: []Fault{{Kind: FaultHTTP500, Rate: 2}}},
		{Faults: []Fault{{Kind: FaultTooMany, RetryAfter: "soon"}}},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("case %d: New(%+v) succeeded", i, o)
		}
	}
}

func TestManifest_Dataset(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	s, err := New(Options{Seed: 3, Calls: 300, Days: 3, Location: loc, MaxRecordingBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	callID := regexp.MustCompile(`^[0-9]{10}-[0-9]{5}$`)
	agentFile := regexp.MustCompile(`^/[0-9]+/1/record/(39|61)/(2026110[1-4])/[0-9]+/[0-9]+\.wav$`)
	days := map[string]int{}
	ids := map[string]bool{}
	perCall := map[string]int{}
	for _, c := range m.Calls {
		if !callID.MatchString(c.CallID) || len(c.CallID) > 25 || ids[c.CallID] {
			t.Fatalf("bad or duplicate call ID %q", c.CallID)
		}
		ids[c.CallID] = true
		days[c.Day]++
		if got := c.Begin.In(loc).Format("2006-01-02"); got != c.Day {
			t.Fatalf("call %s begins %s, day %s", c.CallID, got, c.Day)
		}
		if d := c.End.Sub(c.Begin); d < 10*time.Second || d > 30*time.Minute {
			t.Fatalf("call %s lasts %s", c.CallID, d)
		}
		if c.VDN != "39" && c.VDN != "61" {
			t.Fatalf("call %s VDN %s", c.CallID, c.VDN)
		}
	}
	if len(days) != 3 {
		t.Fatalf("calls over days %v, want 3 days", days)
	}
	kinds := map[string]int{}
	shapes := map[int]bool{}
	shapeRE := []*regexp.Regexp{
		regexp.MustCompile(`^Y:/record/[0-9]+/odfsrecord/[0-9]{8}/[0-9]+\.wav$`),
		regexp.MustCompile(`^Y:/[0-9]+/odfsrecord/[0-9]{8}/[0-9]+\.wav$`),
		regexp.MustCompile(`^Y:/record/[0-9]+/[0-9]{8}/[0-9]+\.wav$`),
		regexp.MustCompile(`^Y:/[0-9]+/transferrecord/[0-9]{8}/[0-9]+\.wav$`),
	}
	files := map[string]bool{}
	locations := map[string]bool{}
	for _, r := range m.Recordings {
		kinds[r.Kind]++
		perCall[r.CallID]++
		if files[r.FileName] {
			t.Fatalf("duplicate file %s", r.FileName)
		}
		files[r.FileName] = true
		if r.Size < defaultMinRecording || r.Size > 16<<10 || r.Size%2 != 0 || len(r.SHA256) != 64 {
			t.Fatalf("recording %+v", r)
		}
		switch r.Kind {
		case KindAgent:
			if !agentFile.MatchString(r.FileName) || r.ID != r.FileName || !strings.HasSuffix(r.OriginalFileName, ".V3") ||
				!strings.HasPrefix(r.OriginalFileName, "X:/") {
				t.Fatalf("agent recording %+v", r)
			}
		case KindTransfer, KindIVR:
			id, err := strconv.ParseUint(r.ID, 10, 64)
			if err != nil || id <= 1<<53 {
				t.Fatalf("%s ID %s should be above 2^53", r.Kind, r.ID)
			}
			if uint64(float64(id)) == id {
				t.Fatalf("%s ID %s survives float64", r.Kind, r.ID)
			}
			locations[r.LocationID] = true
			for i, re := range shapeRE {
				if re.MatchString(r.FileName) {
					if r.Kind == KindIVR {
						shapes[i] = true
					}
					break
				}
			}
		default:
			t.Fatalf("kind %q", r.Kind)
		}
	}
	for _, c := range m.Calls {
		if perCall[c.CallID] != c.Recordings {
			t.Fatalf("call %s: Recordings %d, manifest has %d", c.CallID, c.Recordings, perCall[c.CallID])
		}
	}
	if kinds[KindAgent] < 200 || kinds[KindTransfer] == 0 || kinds[KindIVR] == 0 {
		t.Fatalf("kinds %v", kinds)
	}
	if len(shapes) != 4 {
		t.Fatalf("IVR path shapes used: %v, want all four", shapes)
	}
	if len(locations) < 3 {
		t.Fatalf("locations %v", locations)
	}
	reasons := map[string]bool{}
	for _, a := range m.Absent {
		reasons[strings.Fields(a.Reason)[0]+" "+strings.Fields(a.Reason)[1]] = true
		if !ids[a.CallID] || a.ID == "" {
			t.Fatalf("absent %+v", a)
		}
	}
	// recordResult N/A means "no feedback", not "no file" (cec-api.md A.5):
	// without MissingTransferFiles those records have recordings.
	for _, want := range []string{"opResult INIT:", "opResult FAIL:", "no recordFilePath:"} {
		if !reasons[want] {
			t.Errorf("no absent record with reason %q (have %v)", want, reasons)
		}
	}
	if reasons["recordResult N/A"] {
		t.Errorf("absent records with recordResult N/A by default: %v", reasons)
	}
}

func TestWAVStream(t *testing.T) {
	bank := newAudioBank(99)
	w := newWAVStream(bank, 10_000, 99)
	b, err := io.ReadAll(w)
	if err != nil || len(b) != 10_000 {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	if err := checkUploadWAV(b); err != nil {
		t.Fatalf("generated WAV rejected: %v", err)
	}
	le := binary.LittleEndian
	if le.Uint16(b[20:]) != wavFormatALaw || le.Uint32(b[40:]) != 10_000-44 || le.Uint32(b[4:]) != 10_000-8 {
		t.Fatalf("header % x", b[:44])
	}
	t.Run("small reads", func(t *testing.T) {
		w2 := newWAVStream(bank, 10_000, 99)
		var small []byte
		buf := make([]byte, 7)
		for {
			n, err := w2.Read(buf)
			small = append(small, buf[:n]...)
			if err == io.EOF {
				break
			}
		}
		if string(small) != string(b) {
			t.Fatal("stream depends on the read size")
		}
	})
	t.Run("WriteTo", func(t *testing.T) {
		var out bytes.Buffer
		n, err := newWAVStream(bank, 10_000, 99).WriteTo(&out)
		if err != nil || n != 10_000 || out.String() != string(b) {
			t.Fatalf("WriteTo: %d bytes, %v, same bytes %v", n, err, out.String() == string(b))
		}
		// A stream read partly, then written, goes on where it was.
		w3 := newWAVStream(bank, 10_000, 99)
		head := make([]byte, 50)
		_, _ = io.ReadFull(w3, head)
		out.Reset()
		_, _ = w3.WriteTo(&out)
		if string(head)+out.String() != string(b) {
			t.Fatal("WriteTo after Read differs")
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		again, _ := io.ReadAll(newWAVStream(newAudioBank(99), 10_000, 99))
		if string(again) != string(b) {
			t.Fatal("the same bank seed and stream seed gave other bytes")
		}
	})
	t.Run("seed in the samples", func(t *testing.T) {
		const seed = 0x0123456789abcdef
		s, _ := io.ReadAll(newWAVStream(bank, 1000, seed))
		var got uint64
		for i := range seedSamples {
			got |= uint64(s[wavHeaderSize+i]&0x0F) << (4 * i)
		}
		if got != seed {
			t.Fatalf("seed %#x in the first samples, want %#x", got, uint64(seed))
		}
		// Neighbouring seeds: other bytes, also when the draws are alike.
		other, _ := io.ReadAll(newWAVStream(bank, 1000, seed+2))
		if string(other) == string(s) {
			t.Fatal("two seeds gave the same recording")
		}
	})
	t.Run("segments", func(t *testing.T) {
		// The audio is not one repeated block: many distinct 800-sample windows.
		long, _ := io.ReadAll(newWAVStream(bank, 1<<20, 3))
		seen := map[string]bool{}
		for off := wavHeaderSize + seedSamples; off+minSegment <= len(long); off += minSegment {
			seen[string(long[off:off+minSegment])] = true
		}
		if n := (len(long) - wavHeaderSize) / minSegment; len(seen) < n*9/10 {
			t.Fatalf("%d distinct windows of %d", len(seen), n)
		}
	})
	if got := []byte{alawEncode(0), alawEncode(math.MaxInt16), alawEncode(math.MinInt16)}; string(got) != "\xd5\xaa\x2a" {
		t.Fatalf("alaw(0, max, min) = % x", got)
	}
}

func TestWAVStream_LargeWithoutMemory(t *testing.T) {
	const size = 40 << 20
	bank := newAudioBank(1)
	for _, tc := range []struct {
		name string
		copy func(io.Writer, *wavStream) (int64, error)
	}{
		{"WriteTo", func(w io.Writer, s *wavStream) (int64, error) { return io.Copy(w, s) }},
		{"Read", func(w io.Writer, s *wavStream) (int64, error) { return io.Copy(w, struct{ io.Reader }{s}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n, err := tc.copy(io.Discard, newWAVStream(bank, size, 1))
			runtime.ReadMemStats(&after)
			if err != nil || n != size {
				t.Fatalf("copied %d, %v", n, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Fatalf("streaming %d bytes allocated %d bytes", size, alloc)
			}
		})
	}
}

func TestNew_LargeRecordings(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes tens of MB")
	}
	// Seed 7 with one call gives a single agent recording.
	s, ts := newSim(t, Options{Seed: 7, Calls: 1, MinRecordingBytes: 16 << 20, MaxRecordingBytes: 24 << 20, Now: testNow})
	m := s.Manifest()
	if len(m.Recordings) == 0 {
		t.Fatal("the dataset has no recording")
	}
	r := m.Recordings[0]
	if r.Size < 20<<20 {
		t.Fatalf("size %d", r.Size)
	}
	c := newClient(t, ts)
	var resp = c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName})
	if r.Kind != KindAgent {
		resp.Body.Close()
		resp = c.ccfs(cecwire.PathDownloadOiapRecord, "", cecwire.FileNameBody{FileName: r.FileName})
	}
	b, _ := readFile(t, resp)
	if sha(b) != r.SHA256 {
		t.Fatal("SHA-256 differs from the manifest")
	}
}
