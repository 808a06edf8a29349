package cecclient_test

// Acceptance tests: the real client against the real, strict simulator
// (internal/cecsim) over TLS and HTTP/1.1. They never skip. Every subtest
// builds its own simulator, so its Stats and faults belong to it alone; the
// dataset is deterministic (Seed), so the expectations come from the
// simulator's Manifest and never from hard-coded values.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

const (
	simAK       = "devA"
	simSK       = "devA-SK-3kf9q"
	otherAK     = "devB" // a second developer of the same tenant
	otherSK     = "devB-SK-7mq2w"
	simTenant   = "tenant-it"
	simPassword = "api-pw-5tz8r"
	simSeed     = 2
	// simRate is high so that the shared limiter never slows the suite;
	// throttling tests check that it drops below this.
	simRate = 1000.0
)

// simVDNOwner: cecsim gives the i-th AK in lexical order VDNs 39+100i and
// 61+100i (cecsim.sortedAKs), so devA owns 39 and 61, devB 139 and 161.
var simVDNOwner = map[string]string{"39": simAK, "61": simAK, "139": otherAK, "161": otherAK}

// simStart is cecsim's default first day; with Days 1 every call is on it.
var simStart = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// standardSim is the dataset of most tests: 120 calls of two developers,
// recordings of 4–20 KiB, bill packages ready after 100ms.
func standardSim() cecsim.Options {
	return cecsim.Options{
		Seed:              simSeed,
		Calls:             120,
		MaxRecordingBytes: 20 << 10,
		Credentials:       map[string]string{simAK: simSK, otherAK: otherSK},
		TenantID:          simTenant,
		APIPassword:       simPassword,
		BillReadyDelay:    100 * time.Millisecond,
		Logger:            zap.NewNop(),
	}
}

// pagingSim has enough calls that the busiest caller has many OIFDE records
// (seed 6: 46 transfer and 40 IVR records). At PageSize 5 the drift of
// duplicate_rows (one repeated row per page boundary) then pushes rows more
// than one page past ceil(total/5): reading them all takes 12 and 10 pages.
// Recordings are the smallest valid WAV: only paging is tested on it.
func pagingSim() cecsim.Options {
	o := standardSim()
	o.Seed = 6
	o.Calls = 1000
	o.MinRecordingBytes, o.MaxRecordingBytes = 46, 46
	return o
}

// simEnv is one simulator behind an HTTPS test server.
type simEnv struct {
	sim    *cecsim.Server
	srv    *httptest.Server
	caFile string
	m      *cecsim.Manifest
	owner  map[string]string // callId -> AK owning the call's VDN
}

func newSimEnv(t testing.TB, o cecsim.Options) *simEnv {
	t.Helper()
	e, err := startSim(o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

func startSim(o cecsim.Options, dir string) (*simEnv, error) {
	sim, err := cecsim.New(o)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.EnableHTTP2 = false // the reset fault hijacks HTTP/1.1 connections
	srv.StartTLS()
	e := &simEnv{sim: sim, srv: srv, caFile: filepath.Join(dir, "sim-ca.pem"), m: sim.Manifest(), owner: map[string]string{}}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(e.caFile, pemCert, 0o600); err != nil {
		e.close()
		return nil, err
	}
	for _, c := range e.m.Calls {
		e.owner[c.CallID] = simVDNOwner[c.VDN]
		if e.owner[c.CallID] == "" {
			e.close()
			return nil, fmt.Errorf("call %s has VDN %s, which belongs to no configured AK", c.CallID, c.VDN)
		}
	}
	return e, nil
}

func (e *simEnv) close() {
	e.srv.Close()
	e.sim.Close()
}

// options are fast client options: short backoffs, a high rate, the test
// server's certificate as the only extra CA (verification stays on).
func (e *simEnv) options() cecclient.Options {
	return cecclient.Options{
		FSURL: e.srv.URL, CMSURL: e.srv.URL, OIFDEURL: e.srv.URL,
		AK: simAK, SK: simSK, TenantID: simTenant, APIPassword: simPassword,
		CAFile:       e.caFile,
		RateLimit:    simRate,
		Burst:        50,
		BaseBackoff:  10 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		StallTimeout: 10 * time.Second,
		Logger:       zap.NewNop(),
	}
}

func (e *simEnv) client(t testing.TB, mod ...func(*cecclient.Options)) *cecclient.Client {
	t.Helper()
	o := e.options()
	for _, m := range mod {
		m(&o)
	}
	c, err := cecclient.New(o)
	if err != nil {
		t.Fatalf("cecclient.New: %v", err)
	}
	return c
}

// addFault validates f first: AddFault drops an invalid fault silently.
func (e *simEnv) addFault(t testing.TB, f cecsim.Fault) {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatalf("fault %+v: %v", f, err)
	}
	e.sim.AddFault(f)
}

func (e *simEnv) requests(p string) int { return e.sim.Stats().Requests[p] }

func (e *simEnv) totalRequests() int {
	n := 0
	for _, v := range e.sim.Stats().Requests {
		n += v
	}
	return n
}

// recordings returns the manifest's recordings of kind whose call belongs to ak.
func (e *simEnv) recordings(kind, ak string) []cecsim.ManifestRecording {
	var out []cecsim.ManifestRecording
	for _, r := range e.m.Recordings {
		if r.Kind == kind && e.owner[r.CallID] == ak {
			out = append(out, r)
		}
	}
	return out
}

// callWithAgentRecordings returns a call of ak with exactly n agent recordings.
func (e *simEnv) callWithAgentRecordings(t testing.TB, ak string, n int) (string, []cecsim.ManifestRecording) {
	t.Helper()
	byCall := map[string][]cecsim.ManifestRecording{}
	for _, r := range e.recordings(cecsim.KindAgent, ak) {
		byCall[r.CallID] = append(byCall[r.CallID], r)
	}
	for _, c := range e.m.Calls {
		if recs := byCall[c.CallID]; len(recs) == n {
			return c.CallID, recs
		}
	}
	t.Fatalf("the dataset has no call of %s with %d agent recordings; change the seed", ak, n)
	return "", nil
}

// largestAgentRecording is the biggest agent recording of devA; body faults
// cut or stall it after the first half or the first 8 KiB.
func (e *simEnv) largestAgentRecording(t testing.TB) cecsim.ManifestRecording {
	t.Helper()
	recs := e.recordings(cecsim.KindAgent, simAK)
	if len(recs) == 0 {
		t.Fatal("devA has no agent recording")
	}
	best := slices.MaxFunc(recs, func(a, b cecsim.ManifestRecording) int { return int(a.Size - b.Size) })
	if best.Size < 16<<10 {
		t.Fatalf("largest recording has %d bytes; the body-fault tests need at least 16 KiB", best.Size)
	}
	return best
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// readDownload reads a whole download and closes it.
func readDownload(t testing.TB, d *cecclient.Download) []byte {
	t.Helper()
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	if err != nil {
		t.Fatalf("read %s: %v", d.FileName, err)
	}
	return b
}

// checkRecording compares downloaded bytes with the manifest.
func checkRecording(t testing.TB, what string, b []byte, want cecsim.ManifestRecording) {
	t.Helper()
	if int64(len(b)) != want.Size || sha256Hex(b) != want.SHA256 {
		t.Errorf("%s: %d bytes sha256 %s, want %d bytes sha256 %s", what, len(b), sha256Hex(b), want.Size, want.SHA256)
	}
}

// checkWAVDownload checks a single-recording download: headers and bytes.
func checkWAVDownload(t testing.TB, what string, d *cecclient.Download, want cecsim.ManifestRecording, wantName string) {
	t.Helper()
	b := readDownload(t, d)
	if d.Zip || d.Length != want.Size || d.FileName != wantName || !bytes.HasPrefix(b, []byte("RIFF")) {
		t.Errorf("%s: Zip %v Length %d FileName %q, want a WAV of %d bytes named %q", what, d.Zip, d.Length, d.FileName, want.Size, wantName)
	}
	checkRecording(t, what, b, want)
}

// checkZipDownload opens a ZIP of several recordings and checks every entry
// (archive/zip also checks each entry's CRC-32).
func checkZipDownload(t testing.TB, what string, d *cecclient.Download, want []cecsim.ManifestRecording) {
	t.Helper()
	b := readDownload(t, d)
	if !d.Zip || d.Length != int64(len(b)) {
		t.Errorf("%s: Zip %v Length %d, want a ZIP of %d bytes", what, d.Zip, d.Length, len(b))
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("%s: open ZIP: %v", what, err)
	}
	byName := map[string]cecsim.ManifestRecording{}
	for _, r := range want {
		byName[path.Base(r.FileName)] = r
	}
	if len(zr.File) != len(want) {
		t.Errorf("%s: %d entries, want %d", what, len(zr.File), len(want))
	}
	for _, f := range zr.File {
		r, ok := byName[f.Name]
		if !ok {
			t.Errorf("%s: unexpected entry %q", what, f.Name)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("%s: open %s: %v", what, f.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: read %s: %v", what, f.Name, err)
		}
		checkRecording(t, what+" entry "+f.Name, data, r)
	}
}

// wantClass checks err's classification and, when code is not empty, its result code.
func wantClass(t testing.TB, what string, err error, class cecclient.Class, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want a %s error", what, class)
	}
	if got := cecclient.Classify(err); got != class {
		t.Errorf("%s: classified %s, want %s: %v", what, got, class, err)
	}
	if code != "" {
		var ae *cecclient.APIError
		if !errors.As(err, &ae) || ae.ResultCode != code {
			t.Errorf("%s: want result code %s: %v", what, code, err)
		}
	}
}

// alawWAV is a valid upload: 8 kHz mono 8-bit A-law, n samples (n even).
func alawWAV(n int) []byte {
	le16 := binary.LittleEndian.AppendUint16
	le32 := binary.LittleEndian.AppendUint32
	b := []byte("RIFF")
	b = le32(b, uint32(36+n))
	b = append(b, "WAVEfmt "...)
	b = le32(b, 16)
	b = le16(b, cecclient.WAVFormatALaw)
	b = le16(b, 1)    // mono
	b = le32(b, 8000) // sample rate
	b = le32(b, 8000) // byte rate: 64 kbit/s
	b = le16(b, 1)    // block align
	b = le16(b, 8)    // bits per sample
	b = append(b, "data"...)
	b = le32(b, uint32(n))
	for i := range n {
		b = append(b, byte(0xD5^(i*7)%64)) // A-law bytes near silence
	}
	return b
}

func TestSim_GetToken(t *testing.T) {
	t.Run("success, cached", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		c := e.client(t)
		ctx := testCtx(t)
		tok, err := c.GetToken(ctx)
		if err != nil || tok == "" {
			t.Fatalf("GetToken = %q, %v", tok, err)
		}
		again, err := c.GetToken(ctx)
		if err != nil || again != tok {
			t.Fatalf("second GetToken = %q, %v; want the cached %q", again, err, tok)
		}
		if st := e.sim.Stats(); st.TokensIssued != 1 || st.Requests[cecwire.PathGetToken] != 1 {
			t.Errorf("stats %+v, want one gettoken", st)
		}
	})
	t.Run("wrong API password is permanent", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		c := e.client(t, func(o *cecclient.Options) { o.APIPassword = "not-the-password" })
		_, err := c.GetToken(testCtx(t))
		wantClass(t, "GetToken", err, cecclient.Permanent, "")
		if n := e.requests(cecwire.PathGetToken); n != 1 {
			t.Errorf("%d gettoken requests, want 1 (no retry)", n)
		}
		if strings.Contains(err.Error(), "not-the-password") {
			t.Errorf("error shows the password: %v", err)
		}
	})
}

// oifdeRow is what the tests compare of a transfer or session record.
type oifdeRow struct {
	id, ctiCallID, mobile, file, location string
}

// oifdeKind is one of the two OIFDE record queries.
type oifdeKind struct {
	kind string // cecsim.KindTransfer or cecsim.KindIVR
	path string
	rows func(ctx context.Context, c *cecclient.Client, q cecclient.OIFDEQuery) ([]oifdeRow, error)
}

var (
	transferKind = oifdeKind{
		kind: cecsim.KindTransfer,
		path: cecwire.PathQueryTransferRecords,
		rows: func(ctx context.Context, c *cecclient.Client, q cecclient.OIFDEQuery) ([]oifdeRow, error) {
			var out []oifdeRow
			for r, err := range c.QueryTransferRecords(ctx, q) {
				if err != nil {
					return out, err
				}
				out = append(out, oifdeRow{string(r.ID), r.CtiCallID, r.CallingNumber, r.RecordFilePath, string(r.LocationID)})
			}
			return out, nil
		},
	}
	ivrKind = oifdeKind{
		kind: cecsim.KindIVR,
		path: cecwire.PathQueryRecordHistory,
		rows: func(ctx context.Context, c *cecclient.Client, q cecclient.OIFDEQuery) ([]oifdeRow, error) {
			var out []oifdeRow
			for r, err := range c.QueryRecordHistory(ctx, q) {
				if err != nil {
					return out, err
				}
				out = append(out, oifdeRow{string(r.LogID), r.CtiCallID, r.CallingNumber, r.RecordFilePath, string(r.LocationID)})
			}
			return out, nil
		},
	}
)

func TestSim_QueryTransferRecords(t *testing.T) { testOIFDEQuery(t, transferKind) }

func TestSim_QueryRecordHistory(t *testing.T) { testOIFDEQuery(t, ivrKind) }

func testOIFDEQuery(t *testing.T, k oifdeKind) {
	t.Run("every call matches the manifest", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		c := e.client(t)
		ctx := testCtx(t)
		got := map[string]oifdeRow{}
		for _, call := range e.m.Calls {
			rows, err := k.rows(ctx, c, cecclient.OIFDEQuery{CtiCallID: call.CallID})
			if err != nil {
				t.Fatalf("ctiCallId %s: %v", call.CallID, err)
			}
			for _, r := range rows {
				if r.ctiCallID != call.CallID {
					t.Errorf("ctiCallId %s: record %s has ctiCallId %s", call.CallID, r.id, r.ctiCallID)
				}
				if _, dup := got[r.id]; dup {
					t.Errorf("record %s returned twice", r.id)
				}
				got[r.id] = r
			}
		}
		want := map[string]oifdeRow{}
		for _, r := range e.m.Recordings {
			if r.Kind == k.kind {
				want[r.ID] = oifdeRow{id: r.ID, ctiCallID: r.CallID, file: r.FileName, location: r.LocationID}
			}
		}
		absent := map[string]oifdeRow{}
		for _, a := range e.m.Absent {
			if a.Kind == k.kind {
				absent[a.ID] = oifdeRow{id: a.ID, ctiCallID: a.CallID}
			}
		}
		if len(want) == 0 || len(absent) == 0 {
			t.Fatalf("dataset has %d %s recordings and %d without one; both are needed", len(want), k.kind, len(absent))
		}
		for id, w := range want {
			g, ok := got[id]
			if !ok {
				t.Errorf("recording %s (%s) not returned", id, w.file)
				continue
			}
			if g.file != w.file || g.location != w.location {
				t.Errorf("record %s: file %q location %q, want %q %q", id, g.file, g.location, w.file, w.location)
			}
		}
		for id := range absent {
			g, ok := got[id]
			if !ok {
				t.Errorf("absent record %s not returned", id)
			} else if g.file != "" {
				t.Errorf("record %s has file %q, the manifest lists it without recording", id, g.file)
			}
		}
		if len(got) != len(want)+len(absent) {
			t.Errorf("%d records returned, manifest has %d with and %d without recording", len(got), len(want), len(absent))
		}
		for id := range got {
			// The IDs lie above 2^53: exact equality above proves no float64 on the way.
			if n, err := strconv.ParseUint(id, 10, 64); err != nil || n <= 1<<53 {
				t.Errorf("id %s is not an integer above 2^53", id)
			}
		}
	})

	t.Run("paging with page size 5", func(t *testing.T) {
		ref := getPagingRef(t)
		mobile, want := ref.mobile[k.kind], ref.ids[k.kind]
		e := newSimEnv(t, pagingSim())
		rows, err := k.rows(testCtx(t), e.client(t), cecclient.OIFDEQuery{UserMobile: mobile, PageSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		checkSameIDs(t, rows, want)
		for _, r := range rows {
			if r.mobile != mobile {
				t.Errorf("record %s has callingNumber %s, want %s", r.id, r.mobile, mobile)
			}
		}
		// One request per page, none after the short last page.
		if n, pages := e.requests(k.path), (len(want)+4)/5; n != pages {
			t.Errorf("%d page requests for %d records, want %d", n, len(want), pages)
		}
	})

	t.Run("invalid page size sends nothing", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		_, err := k.rows(testCtx(t), e.client(t), cecclient.OIFDEQuery{CtiCallID: e.m.Calls[0].CallID, PageSize: 7})
		if !errors.Is(err, cecclient.ErrInvalidArgument) || !cecclient.IsPermanent(err) {
			t.Errorf("err = %v, want a permanent ErrInvalidArgument", err)
		}
		if n := e.totalRequests(); n != 0 {
			t.Errorf("%d requests sent, want none", n)
		}
	})

	t.Run("http503 is retried", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		e.addFault(t, cecsim.Fault{Kind: cecsim.FaultHTTP503, Path: k.path, Count: 2})
		call := e.m.Calls[0].CallID
		rows, err := k.rows(testCtx(t), e.client(t), cecclient.OIFDEQuery{CtiCallID: call})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, r := range e.m.Recordings {
			if r.Kind == k.kind && r.CallID == call {
				want++
			}
		}
		for _, a := range e.m.Absent {
			if a.Kind == k.kind && a.CallID == call {
				want++
			}
		}
		if len(rows) != want {
			t.Errorf("%d records, want %d", len(rows), want)
		}
		if st := e.sim.Stats(); st.Requests[k.path] != 3 || st.Faults[cecsim.FaultHTTP503] != 2 {
			t.Errorf("%d requests, %d faults; want 3 requests after 2 injected 503s", st.Requests[k.path], st.Faults[cecsim.FaultHTTP503])
		}
	})

	t.Run("token expiry mid-query", func(t *testing.T) {
		ref := getPagingRef(t)
		e := newSimEnv(t, pagingSim())
		// The token dies on its third use: page 3 is answered 900001 once.
		e.addFault(t, cecsim.Fault{Kind: cecsim.FaultTokenExpiry, Path: k.path, AfterUses: 2, Count: 1})
		rows, err := k.rows(testCtx(t), e.client(t), cecclient.OIFDEQuery{UserMobile: ref.mobile[k.kind], PageSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		checkSameIDs(t, rows, ref.ids[k.kind])
		if st := e.sim.Stats(); st.TokensIssued != 2 || st.Faults[cecsim.FaultTokenExpiry] != 1 {
			t.Errorf("%d tokens issued, %d expiries injected; want 2 and 1", st.TokensIssued, st.Faults[cecsim.FaultTokenExpiry])
		}
	})

	t.Run("duplicate rows", func(t *testing.T) {
		ref := getPagingRef(t)
		e := newSimEnv(t, pagingSim())
		// Every page from the second on repeats the last row of the one
		// before, and the rows pushed out are served on extra pages.
		e.addFault(t, cecsim.Fault{Kind: cecsim.FaultDuplicateRows, Path: k.path})
		rows, err := k.rows(testCtx(t), e.client(t), cecclient.OIFDEQuery{UserMobile: ref.mobile[k.kind], PageSize: 5})
		if err != nil {
			t.Fatal(err)
		}
		want := ref.ids[k.kind]
		checkSameIDs(t, rows, want)
		// The case this dataset was chosen for: the drift needs more than
		// one page beyond ceil(total/5).
		if n, bound := e.requests(k.path), (len(want)+4)/5+1; n <= bound {
			t.Errorf("%d page requests for %d records; the dataset should need more than %d", n, len(want), bound)
		}
	})
}

// checkSameIDs: rows hold every ID of want exactly once, nothing else.
func checkSameIDs(t testing.TB, rows []oifdeRow, want []string) {
	t.Helper()
	got := make([]string, 0, len(rows))
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.id] {
			t.Errorf("record %s yielded twice", r.id)
		}
		seen[r.id] = true
		got = append(got, r.id)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		var missing []string
		for _, id := range want {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		t.Errorf("got %d records, want %d; missing %v", len(got), len(want), missing)
	}
}

// pagingRef is the fault-free truth for the paging tests: for each kind, the
// caller with the most records and the sorted IDs of those records, read in
// one page of 100. The callers come from where an archiver gets them: the
// CDR packages of both developers (caller_no).
type pagingRef struct {
	mobile map[string]string
	ids    map[string][]string
}

var pagingRefOnce struct {
	sync.Once
	ref *pagingRef
	err error
}

func getPagingRef(t testing.TB) *pagingRef {
	t.Helper()
	pagingRefOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cecsim-paging")
		if err != nil {
			pagingRefOnce.err = err
			return
		}
		defer os.RemoveAll(dir)
		pagingRefOnce.ref, pagingRefOnce.err = buildPagingRef(dir)
	})
	if pagingRefOnce.err != nil {
		t.Fatalf("paging reference: %v", pagingRefOnce.err)
	}
	return pagingRefOnce.ref
}

func buildPagingRef(dir string) (*pagingRef, error) {
	e, err := startSim(pagingSim(), dir)
	if err != nil {
		return nil, err
	}
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := make(chan cecwire.BillCallbackBody, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if msg, err := cecclient.DecodeBillCallback(body); err == nil {
			names <- msg
		}
		io.WriteString(w, "ok")
	}))
	defer cb.Close()

	callsOf := map[string]map[string]bool{} // caller_no -> call_ids
	for _, cred := range [][2]string{{simAK, simSK}, {otherAK, otherSK}} {
		o := e.options()
		o.AK, o.SK = cred[0], cred[1]
		c, err := cecclient.New(o)
		if err != nil {
			return nil, err
		}
		q := dayQuery(cb.URL + "/cec/bill")
		q.DataType = cecwire.DataTypeCall
		if _, err := c.QueryBillData(ctx, q); err != nil {
			return nil, err
		}
		var msg cecwire.BillCallbackBody
		select {
		case msg = <-names:
		case <-ctx.Done():
			return nil, errors.New("no bill callback")
		}
		d, err := c.DownloadBillFile(ctx, msg.BillFileName)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(d.Body)
		d.Body.Close()
		if err != nil {
			return nil, err
		}
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, err
		}
		callID, caller := slices.Index(cecwire.CallColumns, "call_id"), slices.Index(cecwire.CallColumns, "caller_no")
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			rows, err := csv.NewReader(rc).ReadAll()
			rc.Close()
			if err != nil {
				return nil, err
			}
			for _, row := range rows[1:] {
				if callsOf[row[caller]] == nil {
					callsOf[row[caller]] = map[string]bool{}
				}
				callsOf[row[caller]][row[callID]] = true
			}
		}
	}
	callers := slices.Collect(maps.Keys(callsOf))
	slices.SortFunc(callers, func(a, b string) int {
		if n := len(callsOf[b]) - len(callsOf[a]); n != 0 {
			return n
		}
		return strings.Compare(a, b)
	})
	callers = callers[:min(5, len(callers))] // the repeat callers

	c, err := cecclient.New(e.options())
	if err != nil {
		return nil, err
	}
	ref := &pagingRef{mobile: map[string]string{}, ids: map[string][]string{}}
	for _, k := range []oifdeKind{transferKind, ivrKind} {
		for _, mobile := range callers {
			rows, err := k.rows(ctx, c, cecclient.OIFDEQuery{UserMobile: mobile, PageSize: 100})
			if err != nil {
				return nil, err
			}
			if len(rows) > len(ref.ids[k.kind]) {
				ids := make([]string, 0, len(rows))
				for _, r := range rows {
					ids = append(ids, r.id)
				}
				slices.Sort(ids)
				ref.mobile[k.kind], ref.ids[k.kind] = mobile, ids
			}
		}
		if n := len(ref.ids[k.kind]); n <= 30 || n > 100 {
			return nil, fmt.Errorf("the busiest caller has %d %s records; the paging tests need 31 to 100 (change the seed)", n, k.kind)
		}
	}
	return ref, nil
}

// billCallbacks receives CC-FS bill callbacks and checks their signature
// with the client's own VerifyRequest.
type billCallbacks struct {
	url string
	ch  chan cecwire.BillCallbackBody
}

func newBillCallbacks(t testing.TB) *billCallbacks {
	t.Helper()
	cb := &billCallbacks{ch: make(chan cecwire.BillCallbackBody, 8)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		lookup := func(ak string) (string, bool) { return simSK, ak == simAK }
		if _, err := cecclient.VerifyRequest(r, body, lookup, time.Now(), 0); err != nil {
			t.Errorf("callback %s: %v", r.URL.RequestURI(), err)
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		msg, err := cecclient.DecodeBillCallback(body)
		if err != nil {
			t.Errorf("callback: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		select {
		case cb.ch <- msg:
		default:
		}
		io.WriteString(w, `{"resultCode":"0","resultDesc":"success"}`)
	}))
	t.Cleanup(srv.Close)
	cb.url = srv.URL
	return cb
}

// wait returns the callback of responseID.
func (cb *billCallbacks) wait(t testing.TB, responseID string) cecwire.BillCallbackBody {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case msg := <-cb.ch:
			if msg.ResponseID == responseID {
				return msg
			}
		case <-timeout:
			t.Fatalf("no callback for %s", responseID)
		}
	}
}

// queryBill asks for a package and derives its name, which carries the UTC
// date of the request: if the call straddled midnight it asks again.
func queryBill(t testing.TB, ctx context.Context, c *cecclient.Client, q cecclient.BillQuery) (id, name string) {
	t.Helper()
	for range 2 {
		day := time.Now().UTC()
		id, err := c.QueryBillData(ctx, q)
		if err != nil {
			t.Fatalf("QueryBillData: %v", err)
		}
		if time.Now().UTC().Format("20060102") == day.Format("20060102") {
			return id, cecclient.BillFileName(day, id)
		}
	}
	t.Fatal("QueryBillData straddled midnight twice")
	return "", ""
}

// dayQuery is a bill query for the whole simulated day.
func dayQuery(callbackURL string) cecclient.BillQuery {
	return cecclient.BillQuery{Begin: simStart, End: simStart.Add(24 * time.Hour), CallBackURL: callbackURL}
}

var (
	callCSVName   = regexp.MustCompile(`^[0-9]{20}_call_[0-9]+\.csv$`)
	recordCSVName = regexp.MustCompile(`^[0-9]{20}_record_[0-9]+\.csv$`)
)

func TestSim_QueryBillData(t *testing.T) {
	t.Run("package via callback and polling", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		cb := newBillCallbacks(t)
		c := e.client(t)
		ctx := testCtx(t)
		// An escaped character in the callback path: the callback's
		// signature must cover the path exactly as it is sent.
		id, name := queryBill(t, ctx, c, dayQuery(cb.url+"/cec/bill%20ready?tenant="+simTenant))

		var d *cecclient.Download
		for polls := 0; ; polls++ {
			var err error
			d, err = c.DownloadBillFile(ctx, name)
			if err == nil {
				break
			}
			if !cecclient.IsNotFound(err) {
				t.Fatalf("DownloadBillFile: %v", err)
			}
			if polls > 400 {
				t.Fatalf("package %s still not ready: %v", name, err)
			}
			time.Sleep(25 * time.Millisecond)
		}
		b := readDownload(t, d)
		if !d.Zip || d.FileName != name {
			t.Errorf("Zip %v FileName %q, want the ZIP %s", d.Zip, d.FileName, name)
		}
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("open package: %v", err)
		}
		var callFiles, recordFiles int
		calls, recs := map[string]bool{}, map[string]string{} // call_id; file_name -> original_file_name
		for _, f := range zr.File {
			isCall := callCSVName.MatchString(f.Name)
			header := cecwire.CallColumns
			switch {
			case isCall:
				callFiles++
			case recordCSVName.MatchString(f.Name):
				recordFiles++
				header = cecwire.RecordColumns
			default:
				t.Errorf("unexpected file %q in the package", f.Name)
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			rows, err := csv.NewReader(rc).ReadAll()
			rc.Close()
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			if len(rows) == 0 || !slices.Equal(rows[0], header) {
				t.Fatalf("%s: header %v", f.Name, rows[:min(1, len(rows))])
			}
			col := func(name string) int { return slices.Index(header, name) }
			for _, row := range rows[1:] {
				if isCall {
					calls[row[col("call_id")]] = true
				} else {
					recs[row[col("file_name")]] = row[col("original_file_name")]
				}
			}
		}
		if callFiles == 0 || recordFiles == 0 {
			t.Errorf("%d call and %d record files, want both kinds", callFiles, recordFiles)
		}
		wantCalls := 0
		for _, call := range e.m.Calls {
			if e.owner[call.CallID] == simAK {
				wantCalls++
				if !calls[call.CallID] {
					t.Errorf("call %s missing from the CDR files", call.CallID)
				}
			}
		}
		if len(calls) != wantCalls {
			t.Errorf("%d calls in the CDR files, want devA's %d", len(calls), wantCalls)
		}
		want := e.recordings(cecsim.KindAgent, simAK)
		for _, r := range want {
			if orig, ok := recs[r.FileName]; !ok || orig != r.OriginalFileName {
				t.Errorf("recording %s: index has %q (present %v), want original %s", r.FileName, orig, ok, r.OriginalFileName)
			}
		}
		if len(recs) != len(want) {
			t.Errorf("%d recordings in the index, want devA's %d", len(recs), len(want))
		}

		msg := cb.wait(t, id)
		if msg.BillFileName != name {
			t.Errorf("callback names %s, polling found %s", msg.BillFileName, name)
		}
	})

	t.Run("window over 3 days is rejected before sending", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		q := dayQuery("https://archiver.example/cec/bill")
		q.End = q.Begin.Add(3*24*time.Hour + time.Second)
		_, err := e.client(t).QueryBillData(testCtx(t), q)
		if !errors.Is(err, cecclient.ErrInvalidArgument) {
			t.Errorf("err = %v, want ErrInvalidArgument", err)
		}
		wantClass(t, "QueryBillData", err, cecclient.Permanent, "")
		if n := e.totalRequests(); n != 0 {
			t.Errorf("%d requests sent, want none", n)
		}
	})

	t.Run("flow control slows the client down", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		cb := newBillCallbacks(t)
		e.addFault(t, cecsim.Fault{Kind: cecsim.FaultFlowControl, Path: cecwire.PathQueryBillData, Count: 1})
		c := e.client(t)
		id, err := c.QueryBillData(testCtx(t), dayQuery(cb.url+"/cec/bill"))
		if err != nil || id == "" {
			t.Fatalf("QueryBillData = %q, %v", id, err)
		}
		if st := e.sim.Stats(); st.Requests[cecwire.PathQueryBillData] != 2 || st.Faults[cecsim.FaultFlowControl] != 1 {
			t.Errorf("stats %+v, want 2 requests after one 0300009", st)
		}
		if r := c.RateLimit(); r >= simRate {
			t.Errorf("rate %v after flow control, want below %v", r, simRate)
		}
		cb.wait(t, id) // the package is made all the same
	})
}

func TestSim_DownloadBillFile(t *testing.T) {
	t.Run("not ready is NotFound", func(t *testing.T) {
		o := standardSim()
		o.BillReadyDelay = time.Hour
		e := newSimEnv(t, o)
		cb := newBillCallbacks(t)
		ctx := testCtx(t)
		_, name := queryBill(t, ctx, e.client(t), dayQuery(cb.url+"/cec/bill"))
		_, err := e.client(t).DownloadBillFile(ctx, name)
		wantClass(t, "DownloadBillFile", err, cecclient.NotFound, cecwire.CodeNoData)
		if n := e.requests(cecwire.PathDownloadBillFile); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		// The name is right: another developer is refused the package
		// (0300028) rather than told that it does not exist.
		other := e.client(t, func(o *cecclient.Options) { o.AK, o.SK = otherAK, otherSK })
		_, err = other.DownloadBillFile(ctx, name)
		wantClass(t, "DownloadBillFile by devB", err, cecclient.Permanent, cecwire.CodeParamError)
	})
}

func TestSim_DownloadRecordFile(t *testing.T) {
	t.Run("every agent recording", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		c := e.client(t)
		ctx := testCtx(t)
		recs := e.recordings(cecsim.KindAgent, simAK)
		for _, r := range recs {
			d, err := c.DownloadRecordFile(ctx, r.FileName)
			if err != nil {
				t.Fatalf("%s: %v", r.FileName, err)
			}
			checkWAVDownload(t, r.FileName, d, r, path.Base(r.FileName))
		}
		if n := e.requests(cecwire.PathDownloadRecordFile); n != len(recs) {
			t.Errorf("%d requests for %d recordings", n, len(recs))
		}
	})

	t.Run("unknown file is NotFound", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		_, err := e.client(t).DownloadRecordFile(testCtx(t), "/10/1/record/39/20261101/3901/1000000001.wav")
		wantClass(t, "DownloadRecordFile", err, cecclient.NotFound, cecwire.CodeNoData)
		if n := e.requests(cecwire.PathDownloadRecordFile); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})

	t.Run("file of another developer is permanent", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		theirs := e.recordings(cecsim.KindAgent, otherAK)[0]
		_, err := e.client(t).DownloadRecordFile(testCtx(t), theirs.FileName)
		wantClass(t, "DownloadRecordFile", err, cecclient.Permanent, cecwire.CodeParamError)
		if n := e.requests(cecwire.PathDownloadRecordFile); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})

	for _, tc := range []struct {
		name string
		mod  func(*cecclient.Options)
	}{
		{"wrong SK is permanent, retried once", func(o *cecclient.Options) { o.SK = "not-the-SK" }},
		{"clock 20 minutes behind is permanent", func(o *cecclient.Options) {
			o.Now = func() time.Time { return time.Now().Add(-20 * time.Minute) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSimEnv(t, standardSim())
			rec := e.recordings(cecsim.KindAgent, simAK)[0]
			_, err := e.client(t, tc.mod).DownloadRecordFile(testCtx(t), rec.FileName)
			wantClass(t, "DownloadRecordFile", err, cecclient.Permanent, "")
			var ae *cecclient.APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized {
				t.Errorf("err = %v, want HTTP 401", err)
			}
			// One retry with a fresh signature, then the 401 is returned.
			if st := e.sim.Stats(); st.Requests[cecwire.PathDownloadRecordFile] != 2 || st.AuthFailures != 2 {
				t.Errorf("%d requests, %d auth failures; want 2 and 2", st.Requests[cecwire.PathDownloadRecordFile], st.AuthFailures)
			}
		})
	}

	// Faults that the retry loop absorbs: the download succeeds.
	for _, tc := range []struct {
		name     string
		fault    func() cecsim.Fault
		requests int
		minWait  time.Duration // a loose lower bound: the client honoured Retry-After
		slower   bool          // the shared rate dropped
	}{
		{name: "http500 twice", requests: 3,
			fault: func() cecsim.Fault { return cecsim.Fault{Kind: cecsim.FaultHTTP500, Count: 2} }},
		{name: "429 with Retry-After seconds", requests: 2, minWait: 900 * time.Millisecond, slower: true,
			fault: func() cecsim.Fault { return cecsim.Fault{Kind: cecsim.FaultTooMany, Count: 1, RetryAfter: "1"} }},
		{name: "429 with Retry-After date", requests: 2, minWait: 900 * time.Millisecond, slower: true,
			fault: func() cecsim.Fault {
				// Truncated to the second: 1 to 2 seconds from now.
				at := time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
				return cecsim.Fault{Kind: cecsim.FaultTooMany, Count: 1, RetryAfter: at}
			}},
		{name: "flow control", requests: 2, slower: true,
			fault: func() cecsim.Fault { return cecsim.Fault{Kind: cecsim.FaultFlowControl, Count: 1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.minWait > 0 {
				t.Parallel() // these wait for a second or two
			}
			e := newSimEnv(t, standardSim())
			rec := e.recordings(cecsim.KindAgent, simAK)[0]
			c := e.client(t)
			start := time.Now()
			f := tc.fault()
			f.Path = cecwire.PathDownloadRecordFile
			e.addFault(t, f)
			d, err := c.DownloadRecordFile(testCtx(t), rec.FileName)
			if err != nil {
				t.Fatalf("DownloadRecordFile: %v", err)
			}
			checkWAVDownload(t, rec.FileName, d, rec, path.Base(rec.FileName))
			if elapsed := time.Since(start); elapsed < tc.minWait {
				t.Errorf("succeeded after %s, want at least %s (Retry-After)", elapsed, tc.minWait)
			}
			if st := e.sim.Stats(); st.Requests[cecwire.PathDownloadRecordFile] != tc.requests || st.Faults[f.Kind] != tc.requests-1 {
				t.Errorf("%d requests, %d faults; want %d requests", st.Requests[cecwire.PathDownloadRecordFile], st.Faults[f.Kind], tc.requests)
			}
			if r := c.RateLimit(); tc.slower != (r < simRate) {
				t.Errorf("rate %v, configured %v; want lowered: %v", r, simRate, tc.slower)
			}
		})
	}

	// Faults inside the body: the Download has been handed out, so the
	// client cannot retry; the Body's Read reports them.
	for _, tc := range []struct {
		name   string
		fault  cecsim.Fault
		mod    func(*cecclient.Options)
		target error // errors.Is; nil = any
	}{
		{name: "reset mid-body", fault: cecsim.Fault{Kind: cecsim.FaultReset, Count: 1}},
		{name: "truncated body", fault: cecsim.Fault{Kind: cecsim.FaultTruncate, Count: 1}, target: io.ErrUnexpectedEOF},
		{name: "stalled body", fault: cecsim.Fault{Kind: cecsim.FaultSlow, Count: 1, DelayMS: 1500}, target: cecclient.ErrStalled,
			mod: func(o *cecclient.Options) { o.StallTimeout = 300 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSimEnv(t, standardSim())
			rec := e.largestAgentRecording(t)
			var mods []func(*cecclient.Options)
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			c := e.client(t, mods...)
			f := tc.fault
			f.Path = cecwire.PathDownloadRecordFile
			e.addFault(t, f)
			d, err := c.DownloadRecordFile(testCtx(t), rec.FileName)
			if err != nil {
				t.Fatalf("DownloadRecordFile: %v (the headers and the start of the body were sent)", err)
			}
			b, err := io.ReadAll(d.Body)
			d.Body.Close()
			if err == nil {
				t.Fatalf("read %d of %d bytes without an error", len(b), rec.Size)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("read error %v, want %v", err, tc.target)
			}
			if cls := cecclient.Classify(err); cls != cecclient.Transient {
				t.Errorf("read error classified %s, want transient: %v", cls, err)
			}
			if int64(len(b)) >= rec.Size {
				t.Errorf("read %d bytes, the whole file is %d", len(b), rec.Size)
			}
			if st := e.sim.Stats(); st.Requests[cecwire.PathDownloadRecordFile] != 1 || st.Faults[f.Kind] != 1 {
				t.Errorf("%d requests, %d faults; want 1 and 1", st.Requests[cecwire.PathDownloadRecordFile], st.Faults[f.Kind])
			}
		})
	}
}

func TestSim_DownloadRecord(t *testing.T) {
	t.Run("every agent recording by original file name", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		c := e.client(t)
		ctx := testCtx(t)
		for _, r := range e.recordings(cecsim.KindAgent, simAK) {
			d, err := c.DownloadRecord(ctx, cecclient.DownloadRecordRequest{FileName: r.OriginalFileName})
			if err != nil {
				t.Fatalf("%s: %v", r.OriginalFileName, err)
			}
			checkWAVDownload(t, r.OriginalFileName, d, r, path.Base(r.OriginalFileName))
		}
	})

	t.Run("call with two recordings is a ZIP", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		callID, recs := e.callWithAgentRecordings(t, simAK, 2)
		d, err := e.client(t).DownloadRecord(testCtx(t), cecclient.DownloadRecordRequest{CallID: callID})
		if err != nil {
			t.Fatal(err)
		}
		checkZipDownload(t, "callId "+callID, d, recs)
	})

	t.Run("call with one recording is a WAV", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		callID, recs := e.callWithAgentRecordings(t, simAK, 1)
		d, err := e.client(t).DownloadRecord(testCtx(t), cecclient.DownloadRecordRequest{CallID: callID, CcID: "1"})
		if err != nil {
			t.Fatal(err)
		}
		checkWAVDownload(t, "callId "+callID, d, recs[0], path.Base(recs[0].OriginalFileName))
	})

	t.Run("call of another developer is permanent", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		callID, _ := e.callWithAgentRecordings(t, otherAK, 1)
		_, err := e.client(t).DownloadRecord(testCtx(t), cecclient.DownloadRecordRequest{CallID: callID})
		wantClass(t, "DownloadRecord", err, cecclient.Permanent, cecwire.CodeParamError)
	})
}

func TestSim_DownloadOiapRecord(t *testing.T) {
	for _, kind := range []string{cecsim.KindTransfer, cecsim.KindIVR} {
		t.Run("every "+kind+" recording with locationId", func(t *testing.T) {
			e := newSimEnv(t, standardSim())
			c := e.client(t)
			ctx := testCtx(t)
			recs := e.recordings(kind, simAK)
			if len(recs) == 0 {
				t.Fatalf("devA has no %s recording", kind)
			}
			for _, r := range recs {
				d, err := c.DownloadOiapRecord(ctx, r.FileName, r.LocationID)
				if err != nil {
					t.Fatalf("%s (locationId %s): %v", r.FileName, r.LocationID, err)
				}
				checkWAVDownload(t, r.FileName, d, r, path.Base(r.FileName))
			}
		})
	}

	t.Run("without locationId", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		r := e.recordings(cecsim.KindIVR, simAK)[0]
		d, err := e.client(t).DownloadOiapRecord(testCtx(t), r.FileName, "")
		if err != nil {
			t.Fatal(err)
		}
		checkWAVDownload(t, r.FileName, d, r, path.Base(r.FileName))
	})

	t.Run("recording of another developer is permanent", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		r := e.recordings(cecsim.KindTransfer, otherAK)[0]
		_, err := e.client(t).DownloadOiapRecord(testCtx(t), r.FileName, r.LocationID)
		wantClass(t, "DownloadOiapRecord", err, cecclient.Permanent, cecwire.CodeParamError)
	})
}

func TestSim_CMSDownloadRecordFile(t *testing.T) {
	t.Run("one recording is a WAV", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		callID, recs := e.callWithAgentRecordings(t, simAK, 1)
		d, err := e.client(t).CMSDownloadRecordFile(testCtx(t), cecclient.CMSRecordRequest{CallID: callID})
		if err != nil {
			t.Fatal(err)
		}
		checkWAVDownload(t, "callID "+callID, d, recs[0], path.Base(recs[0].FileName))
	})

	t.Run("several recordings are a ZIP", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		callID, recs := e.callWithAgentRecordings(t, simAK, 2)
		d, err := e.client(t).CMSDownloadRecordFile(testCtx(t), cecclient.CMSRecordRequest{CallID: callID})
		if err != nil {
			t.Fatal(err)
		}
		if d.FileName != callID+".zip" {
			t.Errorf("FileName %q, want %s.zip", d.FileName, callID)
		}
		checkZipDownload(t, "callID "+callID, d, recs)
	})

	t.Run("unknown callID is NotFound", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		_, err := e.client(t).CMSDownloadRecordFile(testCtx(t), cecclient.CMSRecordRequest{CallID: "1700000000-12345"})
		wantClass(t, "CMSDownloadRecordFile", err, cecclient.NotFound, cecwire.CodeCMSFailure)
		if n := e.requests(cecwire.PathCMSDownloadRecordFile); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})

	t.Run("http503 twice", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		callID, recs := e.callWithAgentRecordings(t, simAK, 1)
		e.addFault(t, cecsim.Fault{Kind: cecsim.FaultHTTP503, Path: cecwire.PathCMSDownloadRecordFile, Count: 2})
		d, err := e.client(t).CMSDownloadRecordFile(testCtx(t), cecclient.CMSRecordRequest{CallID: callID})
		if err != nil {
			t.Fatal(err)
		}
		checkWAVDownload(t, "callID "+callID, d, recs[0], path.Base(recs[0].FileName))
		if st := e.sim.Stats(); st.Requests[cecwire.PathCMSDownloadRecordFile] != 3 || st.Faults[cecsim.FaultHTTP503] != 2 {
			t.Errorf("stats %+v, want 3 requests after two 503s", st)
		}
	})
}

func TestSim_UploadFile(t *testing.T) {
	t.Run("upload, then download the same bytes", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		c := e.client(t)
		ctx := testCtx(t)
		wav := alawWAV(8000)
		if err := cecclient.ValidateUploadWAV(wav, 0); err != nil {
			t.Fatalf("test WAV is invalid: %v", err)
		}
		res, err := c.UploadFile(ctx, 39, wav)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.FileName, "Y:/3rdfile/39/thirdvoicebotfile/") || len(res.LocationIDs) == 0 {
			t.Fatalf("upload result %+v", res)
		}
		d, err := c.DownloadOiapRecord(ctx, res.FileName, res.LocationIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := readDownload(t, d); !bytes.Equal(got, wav) {
			t.Errorf("downloaded %d bytes (sha256 %s), uploaded %d (sha256 %s)", len(got), sha256Hex(got), len(wav), sha256Hex(wav))
		}
	})

	t.Run("invalid WAV fails before any request", func(t *testing.T) {
		e := newSimEnv(t, standardSim())
		wav := alawWAV(8000)
		binary.LittleEndian.PutUint32(wav[24:], 16000) // 16 kHz
		_, err := e.client(t).UploadFile(testCtx(t), 39, wav)
		if !errors.Is(err, cecclient.ErrInvalidWAV) || !cecclient.IsPermanent(err) {
			t.Errorf("err = %v, want a permanent ErrInvalidWAV", err)
		}
		if n := e.totalRequests(); n != 0 {
			t.Errorf("%d requests sent, want none", n)
		}
	})
}

// FuzzSignVerifySim: a request signed by the client's Signer, written to the
// wire and read back as a server reads it, is accepted by the simulator's
// independent auth-v2 implementation (cecsim.VerifyAuthV2); changing one
// byte of the body makes it reject the request.
func FuzzSignVerifySim(f *testing.F) {
	f.Add("CCFS", "resource/ccfs/downloadOiapRecord", "locationId", "256", cecwire.ContentTypeJSON,
		[]byte(`{"request":{"version":"2.0"},"msgBody":{"fileName":"Y:/39/transferrecord/20261101/77448039.wav"}}`), uint16(9))
	f.Add("CCFS", "resource/ccfs/ivr/uploadFile", "vdnId", "39", "application/json; charset=UTF-8", []byte(`{"msgBody":{"data":"UklGRg=="}}`), uint16(1))
	f.Add("rest", "cmsapp/v1/openapi/hisindex/downloadRecordFile", "", "", "application/json", []byte(`{"callID":"1748587841-77268"}`), uint16(0))
	f.Add("a b", "ü/%41/~x", "k k", "v&v=+", "text/plain; q=1", []byte("\x00\xff body"), uint16(300))
	f.Add("", "", "=", "", "", []byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, seg1, seg2, qk, qv, ctype string, body []byte, flip uint16) {
		const ak, sk = "fuzzAK", "fuzzSK"
		s, err := cecclient.NewSigner(ak, sk, nil)
		if err != nil {
			t.Fatal(err)
		}
		u := &url.URL{Scheme: "http", Host: "10.0.0.1:28443", Path: "/" + seg1 + "/" + seg2}
		if qk != "" || qv != "" {
			u.RawQuery = url.Values{qk: {qv}}.Encode()
		}
		req, err := http.NewRequest(http.MethodPost, u.String(), nil)
		if err != nil {
			return // not a request a client can make
		}
		req.Header.Set("Content-Type", ctype)
		now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
		if err := s.Sign(req, body, now); err != nil {
			// Only a value that cannot be sent exactly as signed may be refused.
			if ctype == strings.TrimSpace(ctype) && !strings.ContainsFunc(ctype, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				t.Fatalf("Sign refused a sendable Content-Type %q: %v", ctype, err)
			}
			return
		}
		var wire bytes.Buffer
		if err := req.Write(&wire); err != nil {
			return // not expressible on the wire
		}
		r, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			return // not expressible on the wire
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body did not survive the wire: %v", err)
		}
		lookup := func(k string) (string, bool) { return sk, k == ak }
		if who, err := cecsim.VerifyAuthV2(r, got, lookup, now.Add(time.Second), time.Minute); err != nil || who != ak {
			t.Fatalf("VerifyAuthV2 rejected a signed request: %q %v\nAuthorization: %s\nrequest line path %q, query %q",
				who, err, req.Header.Get("Authorization"), r.URL.EscapedPath(), r.URL.RawQuery)
		}
		if len(got) > 0 {
			bad := bytes.Clone(got)
			i := int(flip) % len(bad)
			bad[i] ^= byte(flip>>8) | 1
			if _, err := cecsim.VerifyAuthV2(r, bad, lookup, now.Add(time.Second), time.Minute); err == nil {
				t.Fatalf("VerifyAuthV2 accepted a body changed at byte %d", i)
			}
		}
	})
}
