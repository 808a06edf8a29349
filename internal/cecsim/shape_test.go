package cecsim

import (
	"encoding/json"
	"net/http"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// packageRows downloads a call_record package (the server must have a
// negative BillReadyDelay) of [begin, end) (Location) and
// returns its CDR and recording-index rows without the header rows.
func packageRows(t *testing.T, c *client, begin, end string) (cdr, rec [][]string) {
	t.Helper()
	id := queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: begin, EndTime: end, DataType: cecwire.DataTypeCallRecord, CallBackURL: "none://x"})
	name := c.now().Format("20060102") + "_" + strings.ReplaceAll(id, "-", "") + ".zip"
	b, _ := readFile(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: name}))
	for fn, rows := range csvFiles(t, b) {
		switch {
		case strings.Contains(fn, "_call_"):
			cdr = append(cdr, rows[1:]...)
		case strings.Contains(fn, "_record_"):
			rec = append(rec, rows[1:]...)
		}
	}
	return cdr, rec
}

// checkManifest downloads every recording of m through its interface and
// compares the SHA-256, and checks that every absent transfer record with a
// path answers 0300012.
func checkManifest(t *testing.T, s *Server, c *client) {
	t.Helper()
	m := s.Manifest()
	for _, r := range m.Recordings {
		var resp *http.Response
		if r.Kind == KindAgent {
			resp = c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName})
		} else {
			resp = c.ccfs(cecwire.PathDownloadOiapRecord, "locationId="+r.LocationID, cecwire.FileNameBody{FileName: r.FileName})
		}
		if b, _ := readFile(t, resp); sha(b) != r.SHA256 || int64(len(b)) != r.Size {
			t.Fatalf("%s %s: %d bytes, sha %s; manifest %d %s", r.Kind, r.ID, len(b), sha(b), r.Size, r.SHA256)
		}
		if r.Kind == KindAgent {
			b, _ := readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: r.OriginalFileName}))
			if sha(b) != r.SHA256 {
				t.Fatalf("%s by original_file_name: wrong bytes", r.ID)
			}
		}
	}
	days := map[string]string{}
	for _, mc := range m.Calls {
		days[mc.CallID] = mc.Day
	}
	for _, r := range m.Recordings {
		if r.Day != days[r.CallID] || (r.Kind == KindAgent) != (r.AgentID != "") {
			t.Fatalf("recording %+v: call day %s", r, days[r.CallID])
		}
	}
}

// transferRecords returns every transfer record of the dataset by id.
func transferRecords(t *testing.T, c *client, m *Manifest) map[string]cecwire.TransferRecord {
	t.Helper()
	tok := c.token()
	out := map[string]cecwire.TransferRecord{}
	for _, mc := range m.Calls {
		p, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CtiCallID: mc.CallID})
		for _, r := range p.Records {
			out[string(r.ID)] = r
		}
	}
	return out
}

func TestDataset_NATransfersHaveRecordings(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 4, Calls: 300, Now: testNow, MaxRecordingBytes: 4 << 10})
	c := newClient(t, ts)
	m := s.Manifest()
	recs := map[string]ManifestRecording{}
	for _, r := range m.Recordings {
		recs[r.ID] = r
	}
	na := 0
	for id, r := range transferRecords(t, c, m) {
		if r.OpResult != cecwire.OpResultSuccess || r.RecordResult != cecwire.RecordResultNA {
			continue
		}
		na++
		mr, ok := recs[id]
		if !ok || r.RecordFilePath == "" || mr.FileName != r.RecordFilePath || mr.Kind != KindTransfer {
			t.Fatalf("N/A record %s: path %q, manifest %+v", id, r.RecordFilePath, mr)
		}
	}
	if na == 0 {
		t.Fatal("no transfer record with recordResult N/A")
	}
	checkManifest(t, s, c)
}

func TestDataset_MissingTransferFiles(t *testing.T) {
	base, err := New(Options{Seed: 4, Calls: 300, MaxRecordingBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s, ts := newSim(t, Options{Seed: 4, Calls: 300, Now: testNow, MaxRecordingBytes: 4 << 10, MissingTransferFiles: 4})
	c := newClient(t, ts)
	m := s.Manifest()
	missing := map[string]bool{}
	for _, a := range m.Absent {
		if strings.Contains(a.Reason, "0300012") {
			if a.Kind != KindTransfer {
				t.Fatalf("absent %+v", a)
			}
			missing[a.ID] = true
		}
	}
	if len(missing) != 4 || len(m.Recordings) != len(base.Manifest().Recordings)-4 {
		t.Fatalf("%d missing, %d recordings, %d without the option", len(missing), len(m.Recordings), len(base.Manifest().Recordings))
	}
	for id, r := range transferRecords(t, c, m) {
		if !missing[id] {
			continue
		}
		if r.OpResult != cecwire.OpResultSuccess || r.RecordResult != cecwire.RecordResultNA || r.RecordFilePath == "" {
			t.Fatalf("missing file record %+v", r)
		}
		delete(missing, id)
		for _, q := range []string{"", "locationId=" + string(r.LocationID)} {
			wantResult(t, c.ccfs(cecwire.PathDownloadOiapRecord, strings.ReplaceAll(q, `"`, ""), cecwire.FileNameBody{FileName: r.RecordFilePath}), cecwire.CodeNoData, "No data found")
		}
	}
	if len(missing) != 0 {
		t.Fatalf("records not on the wire: %v", missing)
	}
	checkManifest(t, s, c)

	all, err := New(Options{Seed: 4, Calls: 300, MaxRecordingBytes: 4 << 10, MissingTransferFiles: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all.Manifest().Recordings {
		if r.Kind == KindTransfer {
			t.Fatal("a transfer recording is left although every one should be missing")
		}
	}
}

func TestDataset_CollidingBaseNames(t *testing.T) {
	o := Options{Seed: 11, Calls: 80, Now: testNow, MaxRecordingBytes: 4 << 10, CollidingBaseNames: true, BillReadyDelay: -1}
	s, ts := newSim(t, o)
	c := newClient(t, ts)
	m := s.Manifest()
	shape := regexp.MustCompile(`^/[0-9]+/1/record/[0-9]+/([0-9]{8})/([0-9]+)/([0-9]+)\.wav$`)
	perAgentDay := map[string][]string{}
	bases := map[string]int{}
	for _, r := range m.Recordings {
		if r.Kind != KindAgent {
			continue
		}
		g := shape.FindStringSubmatch(r.FileName)
		if g == nil || g[2] != r.AgentID {
			t.Fatalf("file_name %s", r.FileName)
		}
		if want := "X:/" + strings.Join(strings.Split(r.FileName, "/")[1:3], "/") + "/" + g[1] + "/" + g[2] + "/" + g[3] + ".V3"; r.OriginalFileName != want {
			t.Fatalf("original %s, want %s", r.OriginalFileName, want)
		}
		perAgentDay[g[2]+"/"+g[1]] = append(perAgentDay[g[2]+"/"+g[1]], g[3])
		bases[g[3]+".wav"]++
	}
	for k, ns := range perAgentDay {
		seen := map[string]bool{}
		for _, n := range ns {
			seen[n] = true
		}
		for i := 1; i <= len(ns); i++ {
			if !seen[strconv.Itoa(i)] {
				t.Fatalf("agent/day %s: names %v, want 1..%d", k, ns, len(ns))
			}
		}
	}
	if bases["1.wav"] < 5 {
		t.Fatalf("base names %v: 1.wav should repeat", bases)
	}
	// The guaranteed collision: one call, two agents, both 1.wav.
	var call string
	for _, mc := range callsWith(m, 2) {
		recs := agentRecordings(m, mc.CallID)
		if path.Base(recs[0].FileName) == "1.wav" && path.Base(recs[1].FileName) == "1.wav" && recs[0].AgentID != recs[1].AgentID {
			call = mc.CallID
		}
	}
	if call == "" {
		t.Fatal("no call with two recordings named 1.wav")
	}
	recs := agentRecordings(m, call)
	want := map[string]string{recs[0].AgentID + "_1.wav": recs[0].SHA256, recs[1].AgentID + "_1.wav": recs[1].SHA256}
	cms, _ := json.Marshal(cecwire.CMSDownloadRecordFileBody{CallID: call})
	for name, resp := range map[string]*http.Response{
		"cms":            c.raw(cecwire.PathCMSDownloadRecordFile, "", cms),
		"downloadRecord": c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: call}),
	} {
		b, _ := readFile(t, resp)
		if got := unzip(t, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: zip members %v, want %v", name, got, want)
		}
	}
	// The index lists the same names.
	_, rows := packageRows(t, c, "2026-11-01 00:00:00", "2026-11-02 00:00:00")
	files := map[string]bool{}
	for _, row := range rows {
		files[row[9]+" "+row[12]] = true
	}
	for _, r := range m.Recordings {
		if r.Kind == KindAgent && !files[r.FileName+" "+r.OriginalFileName] {
			t.Fatalf("%s not in the index", r.FileName)
		}
	}
	checkManifest(t, s, c)

	// A dataset without a call of two agents gets one.
	small, err := New(Options{Seed: 1, Calls: 2, CollidingBaseNames: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(callsWith(small.Manifest(), 2)) == 0 && len(callsWith(small.Manifest(), 0)) != 2 {
		t.Fatal("no call with two recordings in a small dataset")
	}
}

func TestDataset_MultiAgentCalls(t *testing.T) {
	multi := func(m *Manifest) []string {
		agents := map[string]map[string]bool{}
		for _, r := range m.Recordings {
			if r.Kind == KindAgent {
				if agents[r.CallID] == nil {
					agents[r.CallID] = map[string]bool{}
				}
				agents[r.CallID][r.AgentID] = true
			}
		}
		var out []string
		for _, mc := range m.Calls {
			if len(agents[mc.CallID]) >= 2 {
				out = append(out, mc.CallID)
			}
		}
		return out
	}
	base, err := New(Options{Seed: 11, Calls: 80})
	if err != nil {
		t.Fatal(err)
	}
	s, ts := newSim(t, Options{Seed: 11, Calls: 80, Now: testNow, MultiAgentCalls: 6, BillReadyDelay: -1})
	c := newClient(t, ts)
	m := s.Manifest()
	calls := multi(m)
	if len(calls) != len(multi(base.Manifest()))+6 {
		t.Fatalf("%d calls with two agents, %d without the option", len(calls), len(multi(base.Manifest())))
	}
	// The index has rows of two agents for each of those calls.
	_, rows := packageRows(t, c, "2026-11-01 00:00:00", "2026-11-02 00:00:00")
	rowAgents := map[string]map[string]bool{}
	for _, row := range rows {
		if rowAgents[row[4]] == nil {
			rowAgents[row[4]] = map[string]bool{}
		}
		rowAgents[row[4]][row[3]] = true
	}
	for _, id := range calls {
		if len(rowAgents[id]) < 2 {
			t.Fatalf("call %s: index agents %v", id, rowAgents[id])
		}
		recs := agentRecordings(m, id)
		want := map[string]string{}
		for _, r := range recs {
			want[path.Base(r.FileName)] = r.SHA256
		}
		body, _ := json.Marshal(cecwire.CMSDownloadRecordFileBody{CallID: id})
		b, _ := readFile(t, c.raw(cecwire.PathCMSDownloadRecordFile, "", body))
		if got := unzip(t, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("cms %s: %v, want %v", id, got, want)
		}
		b, _ = readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: id}))
		if got := unzip(t, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("downloadRecord %s: %v, want %v", id, got, want)
		}
		body, _ = json.Marshal(cecwire.CMSDownloadRecordFileBody{CallID: id, WorkNo: recs[1].AgentID})
		if b, _ := readFile(t, c.raw(cecwire.PathCMSDownloadRecordFile, "", body)); sha(b) != recs[1].SHA256 {
			t.Fatalf("cms %s workNo %s: not the agent's recording", id, recs[1].AgentID)
		}
	}
	checkManifest(t, s, c)
}

func TestDataset_AfterMidnightRecordings(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	s, ts := newSim(t, Options{Seed: 5, Calls: 60, Days: 2, Location: loc, Now: testNow, AfterMidnightRecordings: 3, BillReadyDelay: -1})
	c := newClient(t, ts)
	m := s.Manifest()
	calls := map[string]ManifestCall{}
	for _, mc := range m.Calls {
		calls[mc.CallID] = mc
	}
	var late []ManifestRecording
	for _, r := range m.Recordings {
		if r.AfterMidnight {
			late = append(late, r)
		}
	}
	if len(late) != 3 {
		t.Fatalf("%d recordings after midnight, want 3", len(late))
	}
	cdr, rows := packageRows(t, c, "2026-11-01 00:00:00", "2026-11-04 00:00:00")
	for _, r := range late {
		mc := calls[r.CallID]
		next := mc.Begin.In(loc).AddDate(0, 0, 1).Format("20060102")
		if r.Kind != KindAgent || r.Day != mc.Day || mc.Begin.In(loc).Format("2006-01-02") != mc.Day ||
			mc.End.In(loc).Format("2006-01-02") == mc.Day || !strings.Contains(r.FileName, "/"+next+"/") {
			t.Fatalf("recording %+v of call %+v", r, mc)
		}
		var cdrBegin, recBegin string
		for _, row := range cdr {
			if row[4] == r.CallID {
				cdrBegin = row[11]
			}
		}
		for _, row := range rows {
			if row[4] == r.CallID && row[9] == r.FileName {
				recBegin = row[7]
			}
		}
		if !strings.HasPrefix(cdrBegin, mc.Day+" 23:") || !strings.HasPrefix(recBegin, mc.End.In(loc).Format("2006-01-02")+" 00:") {
			t.Fatalf("call %s day %s: CDR call_begin %q, index call_begin %q", r.CallID, mc.Day, cdrBegin, recBegin)
		}
	}
	checkManifest(t, s, c)
}

func TestDataset_ShapesTogether(t *testing.T) {
	o := Options{Seed: 21, Calls: 120, Days: 2, MaxRecordingBytes: 4 << 10, Now: testNow,
		MissingTransferFiles: 3, CollidingBaseNames: true, MultiAgentCalls: 5, AfterMidnightRecordings: 4,
		LateRecordings: 2, UnavailableFiles: 2}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Manifest(), b.Manifest()) {
		t.Fatal("same options, different manifests")
	}
	for _, bad := range []Options{{MissingTransferFiles: -1}, {MultiAgentCalls: -1}, {AfterMidnightRecordings: -1}} {
		if _, err := New(bad); err == nil {
			t.Fatalf("New(%+v) succeeded", bad)
		}
	}
	s, ts := newSim(t, o)
	s.ReleaseLate()
	s.ReleaseUnavailable()
	checkManifest(t, s, newClient(t, ts))
	files := map[string]bool{}
	for _, r := range s.Manifest().Recordings {
		if files[r.FileName] {
			t.Fatalf("duplicate file_name %s", r.FileName)
		}
		files[r.FileName] = true
	}
	missing := 0
	for _, a := range s.Manifest().Absent {
		if strings.Contains(a.Reason, "0300012") {
			missing++
		}
	}
	if missing != 3 {
		t.Fatalf("%d absent records for missing files, want 3", missing)
	}
}
