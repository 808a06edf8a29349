package cecsim

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// download is one way to fetch one recording.
type download struct {
	name string
	path string
	send func(c *client) *http.Response
	want ManifestRecording
}

// downloads returns one single-WAV download per recording interface.
func downloads(t *testing.T, m *Manifest) []download {
	t.Helper()
	one := callsWith(m, 1)
	if len(one) == 0 {
		t.Fatal("no call with one agent recording")
	}
	agent := agentRecordings(m, one[0].CallID)[0]
	var oiap ManifestRecording
	for _, r := range m.Recordings {
		if r.Kind == KindTransfer {
			oiap = r
			break
		}
	}
	if oiap.ID == "" {
		t.Fatal("no transfer recording")
	}
	return []download{
		{"downloadRecordFile", cecwire.PathDownloadRecordFile, func(c *client) *http.Response {
			return c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: agent.FileName})
		}, agent},
		{"downloadRecord", cecwire.PathDownloadRecord, func(c *client) *http.Response {
			return c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: agent.OriginalFileName})
		}, agent},
		{"downloadOiapRecord", cecwire.PathDownloadOiapRecord, func(c *client) *http.Response {
			return c.ccfs(cecwire.PathDownloadOiapRecord, "locationId="+oiap.LocationID, cecwire.FileNameBody{FileName: oiap.FileName})
		}, oiap},
		{"cms", cecwire.PathCMSDownloadRecordFile, func(c *client) *http.Response {
			b, _ := json.Marshal(cecwire.CMSDownloadRecordFileBody{CallID: agent.CallID})
			return c.raw(cecwire.PathCMSDownloadRecordFile, "", b)
		}, agent},
	}
}

// rawClient is a client whose transport neither asks for nor undoes gzip.
func rawClient(t *testing.T, o Options) (*client, *Server) {
	t.Helper()
	s2, ts := newSim(t, o)
	c := newClient(t, ts)
	c.http = &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(c.http.CloseIdleConnections)
	return c, s2
}

// riffSize returns the RIFF size field of a WAV header.
func riffSize(t *testing.T, b []byte) int64 {
	t.Helper()
	if len(b) < wavHeaderSize || string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" {
		t.Fatalf("not a WAV header: %q", b[:min(len(b), wavHeaderSize)])
	}
	return int64(binary.LittleEndian.Uint32(b[4:]))
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

func TestFault_Misbehaviour(t *testing.T) {
	// Small recordings: trickle sends one byte per millisecond.
	c, s := rawClient(t, Options{Seed: 7, Calls: 40, Now: testNow, MaxRecordingBytes: 600})
	m := s.Manifest()
	cases := []struct {
		kind  FaultKind
		check func(t *testing.T, resp *http.Response, body, wav []byte)
	}{
		{FaultTextBody, func(t *testing.T, resp *http.Response, body, wav []byte) {
			if string(body) != "ERROR: record service unavailable, caller 13800138000\n" {
				t.Fatalf("body %q", body)
			}
		}},
		{FaultJSONNoCode, func(t *testing.T, resp *http.Response, body, wav []byte) {
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil || len(obj) == 0 {
				t.Fatalf("body %q: %v", body, err)
			}
			for k := range obj {
				if strings.Contains(strings.ToLower(k), "code") {
					t.Fatalf("body %q has a code", body)
				}
			}
		}},
		{FaultRIFFShort, func(t *testing.T, resp *http.Response, body, wav []byte) {
			if len(body) != len(wav)/2 || !bytes.Equal(body, wav[:len(wav)/2]) {
				t.Fatalf("%d bytes, want the first %d of the WAV", len(body), len(wav)/2)
			}
			if riffSize(t, body)+8 <= int64(len(body)) {
				t.Fatal("the RIFF size does not claim more than was sent")
			}
		}},
		{FaultRIFFLong, func(t *testing.T, resp *http.Response, body, wav []byte) {
			if len(body) != len(wav)+4096 || !bytes.Equal(body[:len(wav)], wav) {
				t.Fatalf("%d bytes, want the WAV and 4096 more", len(body))
			}
			if riffSize(t, body)+8 >= int64(len(body)) {
				t.Fatal("no bytes past the RIFF size")
			}
		}},
		{FaultGzip, func(t *testing.T, resp *http.Response, body, wav []byte) {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, wav) || bytes.Equal(body, wav) {
				t.Fatalf("gunzipped %d bytes (%v), want the WAV", len(plain), err)
			}
		}},
		{FaultTrickle, func(t *testing.T, resp *http.Response, body, wav []byte) {
			if !bytes.Equal(body, wav) {
				t.Fatal("trickled bytes differ")
			}
		}},
	}
	for _, d := range downloads(t, m) {
		s.ClearFaults()
		wav := readAll(t, d.send(c))
		if sha(wav) != d.want.SHA256 {
			t.Fatalf("%s: no fault, wrong bytes", d.name)
		}
		for _, tc := range cases {
			t.Run(d.name+"/"+string(tc.kind), func(t *testing.T) {
				s.SetFaults(Fault{Kind: tc.kind, Path: d.path, Count: 1, DelayMS: 1})
				before := s.Stats().Faults[tc.kind]
				start := time.Now()
				resp := d.send(c)
				body := readAll(t, resp)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != cecwire.ContentTypeOctetStream {
					t.Fatalf("HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				if resp.ContentLength != int64(len(body)) {
					t.Fatalf("Content-Length %d, %d bytes received", resp.ContentLength, len(body))
				}
				tc.check(t, resp, body, wav)
				if tc.kind == FaultTrickle && time.Since(start) < time.Duration(len(wav)-1)*time.Millisecond {
					t.Fatalf("%d bytes in %s: not one per millisecond", len(wav), time.Since(start))
				}
				if s.Stats().Faults[tc.kind] != before+1 {
					t.Fatal("fault not counted")
				}
				// Count 1: the next download is clean.
				if b := readAll(t, d.send(c)); sha(b) != d.want.SHA256 {
					t.Fatal("second download still faulty")
				}
			})
		}
	}

	t.Run("not on a zip or an error", func(t *testing.T) {
		two := callsWith(m, 2)[0]
		body, _ := json.Marshal(cecwire.CMSDownloadRecordFileBody{CallID: two.CallID})
		for _, k := range []FaultKind{FaultRIFFShort, FaultRIFFLong, FaultGzip, FaultEndless, FaultHuge, FaultTrickle} {
			s.SetFaults(Fault{Kind: k})
			before := s.Stats().Faults[k]
			b, _ := readFile(t, c.raw(cecwire.PathCMSDownloadRecordFile, "", body))
			if len(unzip(t, b)) != 2 {
				t.Fatalf("%s: zip broken", k)
			}
			if s.Stats().Faults[k] != before {
				t.Fatalf("%s fired on a zip", k)
			}
		}
		for _, k := range []FaultKind{FaultTextBody, FaultJSONNoCode} {
			s.SetFaults(Fault{Kind: k})
			wantResult(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: "/10/1/record/39/20261101/3901/1.wav"}), cecwire.CodeNoData, "")
			resp := c.raw(cecwire.PathCMSDownloadRecordFile, "", body)
			if b := readAll(t, resp); resp.Header.Get("Content-Type") != cecwire.ContentTypeOctetStream || bytes.HasPrefix(b, []byte("PK")) {
				t.Fatalf("%s: the zip answer was not replaced: %.40q", k, b)
			}
		}
		s.ClearFaults()
	})
}

// waitStreams waits until the server sends no endless body any more.
func waitStreams(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.streams.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server still streams after the client went away")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFault_EndlessAndHuge(t *testing.T) {
	c, s := rawClient(t, Options{Seed: 7, Calls: 40, Now: testNow})
	for _, d := range downloads(t, s.Manifest()) {
		for _, k := range []FaultKind{FaultEndless, FaultHuge} {
			t.Run(d.name+"/"+string(k), func(t *testing.T) {
				s.SetFaults(Fault{Kind: k, Path: d.path})
				defer s.ClearFaults()
				resp := d.send(c)
				wantLen := int64(-1)
				if k == FaultHuge {
					wantLen = 5368709120
				}
				if resp.StatusCode != 200 || resp.ContentLength != wantLen || resp.Header.Get("Content-Type") != cecwire.ContentTypeOctetStream {
					t.Fatalf("HTTP %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
				}
				if k == FaultEndless && (len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
					t.Fatalf("Transfer-Encoding %v", resp.TransferEncoding)
				}
				// Read well past what the recording and the RIFF header would allow… up to 8 MiB.
				b := make([]byte, 8<<20)
				if _, err := io.ReadFull(resp.Body, b); err != nil {
					t.Fatalf("read: %v", err)
				}
				if riffSize(t, b) != 0xFFFFFFFF || int64(len(b)) <= d.want.Size {
					t.Fatalf("RIFF size %d", riffSize(t, b))
				}
				if waveform := b[wavHeaderSize:]; bytes.Count(waveform, waveform[:1]) == len(waveform) {
					t.Fatal("no audio after the header")
				}
				resp.Body.Close()
				waitStreams(t, s)
			})
		}
	}
}

func TestFault_TrickleDefaultDelay(t *testing.T) {
	c, s := rawClient(t, Options{Seed: 7, Calls: 10, Now: testNow, MaxRecordingBytes: 100})
	s.SetFaults(Fault{Kind: FaultTrickle})
	resp := downloads(t, s.Manifest())[0].send(c)
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 16)
	if _, err := r.ReadByte(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := r.ReadByte(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("second byte after %s, want about 2s", d)
	}
	resp.Body.Close()
	waitStreams(t, s)
}

func TestFault_HugeTotal(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 4, Calls: 300, Now: testNow, MaxRecordingBytes: 4 << 10})
	c := newClient(t, ts)
	tok := c.token()
	m := s.Manifest()
	var callID string
	ids := map[string]bool{}
	for _, r := range m.Recordings {
		if r.Kind == KindTransfer && callID == "" {
			callID = r.CallID
		}
	}
	real, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CtiCallID: callID})
	for _, r := range real.Records {
		ids[string(r.ID)] = true
	}
	realIVR := historyQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: real.Records[0].CallID})
	s.SetFaults(Fault{Kind: FaultHugeTotal})
	defer s.ClearFaults()
	for _, page := range []string{"1", "2", "1000000", "9999999999"} {
		q := cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CtiCallID: callID, PageSize: "5", PageNum: page}
		p, raw := transferQuery(t, c, q)
		if p.Total != 1_000_000_000_000_000 || len(p.Records) != 5 || !bytes.Contains(raw, []byte(`"total":1000000000000000`)) {
			t.Fatalf("page %s: total %d, %d records", page, p.Total, len(p.Records))
		}
		for _, r := range p.Records {
			if !ids[string(r.ID)] {
				t.Fatalf("page %s: record %s is not one of the call's", page, r.ID)
			}
		}
	}
	if len(realIVR.Records) > 0 {
		h := historyQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: real.Records[0].CallID, PageSize: "10", PageNum: "77"})
		if h.Total != 1_000_000_000_000_000 || len(h.Records) != 10 {
			t.Fatalf("history: total %d, %d records", h.Total, len(h.Records))
		}
	}
	if err := (Fault{Kind: FaultHugeTotal, Path: cecwire.PathDownloadRecord}).Validate(); err == nil {
		t.Fatal("huge_total accepted on a download path")
	}
}

// billName queries a package of every record of the test day that is ready at once.
func billName(t *testing.T, c *client, dataType string) string {
	t.Helper()
	id := queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00",
		DataType: dataType, CallBackURL: "none://no-callback"})
	return testNow().Format("20060102") + "_" + strings.ReplaceAll(id, "-", "") + ".zip"
}

func TestFault_BillPackages(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 7, Calls: 40, Now: testNow, BillReadyDelay: -1})
	c := newClient(t, ts)
	get := func(name string) *http.Response {
		return c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: name})
	}

	t.Run("expired_package", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultExpiredPackage, Count: 1})
		defer s.ClearFaults()
		name := billName(t, c, cecwire.DataTypeCallRecord)
		wantResult(t, get(name), cecwire.CodeNoData, "No data found")
		wantResult(t, get(name), cecwire.CodeNoData, "No data found") // for good
		s.ClearFaults()
		wantResult(t, get(name), cecwire.CodeNoData, "No data found")
		fresh := billName(t, c, cecwire.DataTypeCallRecord)
		if b, _ := readFile(t, get(fresh)); len(csvFiles(t, b)) == 0 {
			t.Fatal("a fresh package is empty")
		}
	})

	t.Run("bad_package", func(t *testing.T) {
		for _, dt := range []string{cecwire.DataTypeRecord, cecwire.DataTypeCall, cecwire.DataTypeCallRecord} {
			name := billName(t, c, dt)
			good, _ := readFile(t, get(name))
			s.SetFaults(Fault{Kind: FaultBadPackage, Count: 1})
			bad, _ := readFile(t, get(name))
			s.ClearFaults()
			g, b := csvFiles(t, good), csvFiles(t, bad)
			if len(g) != len(b) {
				t.Fatalf("%s: %d files, want %d", dt, len(b), len(g))
			}
			extra := 0
			for fn, rows := range b {
				want := g[fn]
				switch {
				case len(rows) == len(want):
				case len(rows) == len(want)+1 && (strings.Contains(fn, "_record_") || dt == cecwire.DataTypeCall):
					last := rows[len(rows)-1]
					if last[4] != "" || len(last) != len(want[0]) {
						t.Fatalf("%s: extra row %q", fn, last)
					}
					extra++
				default:
					t.Fatalf("%s: %d rows, good package %d", fn, len(rows), len(want))
				}
			}
			if extra != 1 {
				t.Fatalf("%s: %d bad rows", dt, extra)
			}
		}
	})

	t.Run("zip_bomb", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultZipBomb, Count: 2})
		defer s.ClearFaults()
		name := billName(t, c, cecwire.DataTypeCallRecord)
		start := time.Now()
		b, _ := readFile(t, get(name))
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the bomb took %s", d)
		}
		b2, _ := readFile(t, get(name))
		if !bytes.Equal(b, b2) || len(b) > 8<<20 {
			t.Fatalf("bomb of %d bytes, or not cached", len(b))
		}
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil || len(zr.File) != 1 {
			t.Fatalf("zip: %v", err)
		}
		f := zr.File[0]
		if !regexp.MustCompile(`^[0-9]{17}[0-9]{3}_record_1\.csv$`).MatchString(f.Name) || f.Method != zip.Deflate ||
			f.UncompressedSize64 < 4<<30 || f.UncompressedSize64/f.CompressedSize64 < 500 {
			t.Fatalf("entry %s method %d: %d -> %d", f.Name, f.Method, f.CompressedSize64, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		head := make([]byte, 4<<20)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatal(err)
		}
		cr := csv.NewReader(bytes.NewReader(head))
		cr.FieldsPerRecord = -1
		row, err := cr.Read()
		if err != nil || len(row) < 18 || row[4] == "" || !strings.HasSuffix(row[9], ".wav") {
			t.Fatalf("first row %.20q: %v", row, err)
		}
		// Inflating it all checks the deflate stream and the CRC (archive/zip verifies it at EOF).
		n, err := io.Copy(io.Discard, rc)
		if err != nil || uint64(n)+4<<20 != f.UncompressedSize64 {
			t.Fatalf("inflated %d bytes: %v", n, err)
		}
		// Not after Count.
		b3, _ := readFile(t, get(name))
		if len(csvFiles(t, b3)) < 2 {
			t.Fatal("the bomb outlived its count")
		}
	})
}

func TestFault_Unauthorized(t *testing.T) {
	s, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	rec := firstAgent(t, s)
	for _, p := range []string{cecwire.PathDownloadRecordFile, cecwire.PathQueryBillData, cecwire.PathCMSDownloadRecordFile, cecwire.PathGetToken, cecwire.PathQueryTransferRecords} {
		t.Run(p, func(t *testing.T) {
			s.SetFaults(Fault{Kind: FaultUnauthorized, Count: 1})
			defer s.ClearFaults()
			send := func() *http.Response {
				switch p {
				case cecwire.PathDownloadRecordFile:
					return c.ccfs(p, "", cecwire.FileNameBody{FileName: rec.FileName})
				case cecwire.PathQueryBillData:
					return c.ccfs(p, "", cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00", DataType: "call", CallBackURL: "none://x"})
				case cecwire.PathCMSDownloadRecordFile:
					return c.raw(p, "", []byte(`{"callID":"`+rec.CallID+`"}`))
				case cecwire.PathGetToken:
					return c.oifde(p, cecwire.GetTokenRequest{AppKey: defaultTenantID, AppSecret: defaultAPIPassword})
				}
				return c.oifde(p, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: "x", CtiCallID: rec.CallID})
			}
			resp := send()
			b := readAll(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || (len(b) > 0 && !json.Valid(b)) {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
			}
			resp = send()
			readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("one-off: second answer HTTP %d", resp.StatusCode)
			}
		})
	}
}

func TestParseFault_Misbehaviour(t *testing.T) {
	for _, k := range FaultKinds() {
		if f, err := ParseFault(string(k)); err != nil || f.Kind != k {
			t.Errorf("ParseFault(%q) = %+v, %v", k, f, err)
		}
	}
	good := []string{
		"text_body@" + cecwire.PathCMSDownloadRecordFile, "gzip:0.5@" + cecwire.PathDownloadOiapRecord,
		"huge_total@" + cecwire.PathQueryRecordHistory, "zip_bomb@" + cecwire.PathDownloadBillFile,
		"unauthorized@" + cecwire.PathGetToken, "unauthorized@" + cecwire.PathUploadFile,
	}
	for _, s := range good {
		if _, err := ParseFault(s); err != nil {
			t.Errorf("ParseFault(%q): %v", s, err)
		}
	}
	bad := []string{
		"text_body@" + cecwire.PathDownloadBillFile, "riff_short@" + cecwire.PathQueryBillData, "endless@" + cecwire.PathGetToken,
		"huge_total@" + cecwire.PathDownloadRecordFile, "zip_bomb@" + cecwire.PathDownloadRecord,
		"expired_package@" + cecwire.PathQueryBillData, "bad_package@" + cecwire.PathQueryTransferRecords,
	}
	for _, s := range bad {
		if _, err := ParseFault(s); err == nil {
			t.Errorf("ParseFault(%q) succeeded", s)
		}
	}
}
