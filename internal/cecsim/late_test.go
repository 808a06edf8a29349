package cecsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// lateOptions is a one-day dataset with small recordings and packages ready at once.
func lateOptions(late, unavailable int) Options {
	return Options{Seed: 7, Calls: 60, MaxRecordingBytes: 4096, BillReadyDelay: -1, Now: testNow,
		LateRecordings: late, UnavailableFiles: unavailable}
}

// requestPackage asks for the call_record package of 2026-11-01 and returns its billFileName.
func requestPackage(t *testing.T, c *client) string {
	t.Helper()
	id := queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00",
		DataType: "call_record", CallBackURL: "none"})
	return "20261103_" + strings.ReplaceAll(id, "-", "") + ".zip"
}

// packageIndex downloads a package and returns its bytes, the file_name of
// every recording-index row and the call_id of every CDR row.
func packageIndex(t *testing.T, c *client, name string) (data []byte, files, calls map[string]bool) {
	t.Helper()
	data, _ = readFile(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: name}))
	files, calls = map[string]bool{}, map[string]bool{}
	for fn, rows := range csvFiles(t, data) {
		set, col := calls, slices.Index(cecwire.CallColumns, "call_id")
		if strings.Contains(fn, "_record_") {
			set, col = files, slices.Index(cecwire.RecordColumns, "file_name")
		}
		for _, row := range rows[1:] {
			set[row[col]] = true
		}
	}
	return data, files, calls
}

// flagged returns the manifest's recordings with Late (late) or Unavailable (!late) set.
func flagged(m *Manifest, late bool) []ManifestRecording {
	var out []ManifestRecording
	for _, r := range m.Recordings {
		if (late && r.Late) || (!late && r.Unavailable) {
			out = append(out, r)
		}
	}
	return out
}

// wantDownloads checks every way to download r: its bytes when ok, else 0300012
// (CC-FS) or a ZIP / WAV without it / "Record List is empty" (by call).
func wantDownloads(t *testing.T, c *client, m *Manifest, r ManifestRecording, ok bool) {
	t.Helper()
	if !ok {
		wantResult(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName}), cecwire.CodeNoData, "")
		wantResult(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: r.OriginalFileName}), cecwire.CodeNoData, "")
	} else {
		b, _ := readFile(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName}))
		if sha(b) != r.SHA256 || int64(len(b)) != r.Size {
			t.Fatalf("downloadRecordFile %s: %d bytes, sha %s; manifest %d %s", r.FileName, len(b), sha(b), r.Size, r.SHA256)
		}
		b, _ = readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: r.OriginalFileName}))
		if sha(b) != r.SHA256 {
			t.Fatalf("downloadRecord %s: sha differs", r.OriginalFileName)
		}
	}
	// By call: the call's other recordings come, this one only when ok.
	siblings := agentRecordings(m, r.CallID)
	cmsBody, _ := json.Marshal(cecwire.CMSDownloadRecordFileBody{CallID: r.CallID})
	for _, by := range []struct {
		resp            *http.Response
		emptyCode, desc string // the answer when the call has no recording to give
	}{
		{c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: r.CallID}), cecwire.CodeNoData, "No data found"},
		{c.raw(cecwire.PathCMSDownloadRecordFile, "", cmsBody), cecwire.CodeCMSFailure, cecwire.CMSRecordListEmptyDesc},
	} {
		resp := by.resp
		if len(siblings) == 1 && !ok {
			var res cecwire.Result
			readJSON(t, resp, &res)
			if res.ResultCode != by.emptyCode || res.ResultDesc != by.desc {
				t.Fatalf("%s by call %s: %+v", resp.Request.URL.Path, r.CallID, res)
			}
			continue
		}
		b, name := readFile(t, resp)
		got := map[string]bool{sha(b): true}
		if strings.HasSuffix(name, ".zip") {
			got = map[string]bool{}
			for _, h := range unzip(t, b) {
				got[h] = true
			}
		}
		if got[r.SHA256] != ok {
			t.Fatalf("%s by call %s: recording present %v, want %v", resp.Request.URL.Path, r.CallID, got[r.SHA256], ok)
		}
	}
}

func TestServer_ReleaseLate(t *testing.T) {
	s, ts := newSim(t, lateOptions(4, 0))
	c := newClient(t, ts)
	m := s.Manifest()
	late := flagged(m, true)
	if len(late) != 4 || len(flagged(m, false)) != 0 {
		t.Fatalf("%d late, %d unavailable recordings in the manifest, want 4 and 0", len(late), len(flagged(m, false)))
	}
	isLate := map[string]bool{}
	for _, r := range late {
		isLate[r.FileName] = true
		if r.Kind != KindAgent {
			t.Fatalf("late recording of kind %s", r.Kind)
		}
	}

	before := requestPackage(t, c)
	unread := requestPackage(t, c) // requested before the release, downloaded after it
	data, files, calls := packageIndex(t, c, before)
	for _, r := range m.Recordings {
		if r.Kind == KindAgent && files[r.FileName] == isLate[r.FileName] {
			t.Fatalf("recording %s (late %v) listed %v before the release", r.FileName, isLate[r.FileName], files[r.FileName])
		}
	}
	for _, r := range late {
		if !calls[r.CallID] {
			t.Fatalf("the CDR rows of call %s of a late recording are missing", r.CallID)
		}
	}
	t.Run("before release", func(t *testing.T) {
		for _, r := range late {
			wantDownloads(t, c, m, r, false)
		}
	})

	if n := s.ReleaseLate(); n != 4 {
		t.Fatalf("ReleaseLate released %d, want 4", n)
	}
	if n := s.ReleaseLate(); n != 0 {
		t.Fatalf("second ReleaseLate released %d, want 0", n)
	}

	t.Run("old packages keep their content", func(t *testing.T) {
		again, _, _ := packageIndex(t, c, before)
		if !bytes.Equal(data, again) {
			t.Fatal("a package requested before the release changed")
		}
		_, files, _ := packageIndex(t, c, unread)
		for _, r := range late {
			if files[r.FileName] {
				t.Fatalf("package requested before the release lists %s", r.FileName)
			}
		}
	})
	t.Run("after release", func(t *testing.T) {
		_, files, _ := packageIndex(t, c, requestPackage(t, c))
		for _, r := range m.Recordings {
			if r.Kind == KindAgent && !files[r.FileName] {
				t.Fatalf("recording %s not listed after the release", r.FileName)
			}
		}
		for _, r := range late {
			wantDownloads(t, c, m, r, true)
		}
	})
	if got := flagged(s.Manifest(), true); len(got) != 4 {
		t.Fatalf("after the release the manifest marks %d late, want 4", len(got))
	}
}

func TestServer_ReleaseUnavailable(t *testing.T) {
	s, ts := newSim(t, lateOptions(2, 3))
	c := newClient(t, ts)
	m := s.Manifest()
	unavailable := flagged(m, false)
	if len(unavailable) != 3 || len(flagged(m, true)) != 2 {
		t.Fatalf("%d unavailable, %d late, want 3 and 2", len(unavailable), len(flagged(m, true)))
	}
	for _, r := range unavailable {
		if r.Late || r.Kind != KindAgent {
			t.Fatalf("unavailable recording %+v", r)
		}
	}
	_, files, _ := packageIndex(t, c, requestPackage(t, c))
	for _, r := range unavailable {
		if !files[r.FileName] {
			t.Fatalf("unavailable recording %s not listed", r.FileName)
		}
	}
	t.Run("before release", func(t *testing.T) {
		for _, r := range unavailable {
			wantDownloads(t, c, m, r, false)
		}
	})
	if n := s.ReleaseUnavailable(); n != 3 {
		t.Fatalf("ReleaseUnavailable released %d, want 3", n)
	}
	if n := s.ReleaseUnavailable(); n != 0 {
		t.Fatalf("second ReleaseUnavailable released %d, want 0", n)
	}
	t.Run("after release", func(t *testing.T) {
		for _, r := range unavailable {
			wantDownloads(t, c, m, r, true)
		}
	})
	t.Run("late ones stay late", func(t *testing.T) {
		for _, r := range flagged(m, true) {
			wantResult(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName}), cecwire.CodeNoData, "")
		}
	})
}

func TestNew_DelayedRecordings(t *testing.T) {
	base, err := New(lateOptions(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	var agents []ManifestRecording
	for _, r := range base.Manifest().Recordings {
		if r.Kind == KindAgent {
			agents = append(agents, r)
		}
	}
	total := len(agents)
	if total < 20 {
		t.Fatalf("only %d agent recordings", total)
	}
	cases := []struct {
		name                      string
		late, unavailable         int
		wantLate, wantUnavailable int
		wantErr                   bool
	}{
		{"none", 0, 0, 0, 0, false},
		{"some", 5, 7, 5, 7, false},
		{"late capped", total + 10, 3, total, 0, false},
		{"unavailable capped", 4, total, 4, total - 4, false},
		{"negative late", -1, 0, 0, 0, true},
		{"negative unavailable", 0, -2, 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(lateOptions(tc.late, tc.unavailable))
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("New succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m := s.Manifest()
			if l, u := len(flagged(m, true)), len(flagged(m, false)); l != tc.wantLate || u != tc.wantUnavailable {
				t.Fatalf("%d late, %d unavailable; want %d, %d", l, u, tc.wantLate, tc.wantUnavailable)
			}
			// The rest of the dataset does not depend on the counts.
			want := base.Manifest()
			for i := range m.Recordings {
				m.Recordings[i].Late, m.Recordings[i].Unavailable = false, false
			}
			a, _ := json.Marshal(m)
			b, _ := json.Marshal(want)
			if !bytes.Equal(a, b) {
				t.Fatal("the counts changed the dataset")
			}
		})
	}

	t.Run("deterministic and spread", func(t *testing.T) {
		picks := func(seed int64) (late, unavailable []int) {
			o := lateOptions(4, 4)
			o.Seed = seed
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			i := 0
			for _, r := range s.Manifest().Recordings {
				if r.Kind != KindAgent {
					continue
				}
				if r.Late {
					late = append(late, i)
				}
				if r.Unavailable {
					unavailable = append(unavailable, i)
				}
				i++
			}
			// One in each quarter of the agent recordings (in call order).
			n := i
			for _, set := range [][]int{late, unavailable} {
				quarters := map[int]bool{}
				for _, k := range set {
					quarters[k*4/n] = true
				}
				if len(set) != 4 || len(quarters) != 4 {
					t.Fatalf("seed %d: picks %v of %d are not one per quarter", seed, set, n)
				}
			}
			return late, unavailable
		}
		l1, u1 := picks(7)
		l2, u2 := picks(7)
		if !slices.Equal(l1, l2) || !slices.Equal(u1, u2) {
			t.Fatalf("same seed, different picks: %v %v / %v %v", l1, u1, l2, u2)
		}
		l3, u3 := picks(8)
		if slices.Equal(l1, l3) && slices.Equal(u1, u3) {
			t.Fatalf("seeds 7 and 8 pick the same recordings %v %v", l1, u1)
		}
	})
}

func TestAdmin_Release(t *testing.T) {
	o := lateOptions(3, 2)
	o.Admin = true
	s, ts := newSim(t, o)
	c := newClient(t, ts)
	do := func(method, path string) (int, []byte) {
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	m := s.Manifest()
	for _, tc := range []struct {
		path string
		want int
		recs []ManifestRecording
	}{
		{"/_sim/release-late", 3, flagged(m, true)},
		{"/_sim/release-unavailable", 2, flagged(m, false)},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if code, _ := do(http.MethodGet, tc.path); code != http.StatusMethodNotAllowed {
				t.Fatalf("GET: %d", code)
			}
			wantResult(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: tc.recs[0].FileName}), cecwire.CodeNoData, "")
			for _, want := range []int{tc.want, 0} {
				code, b := do(http.MethodPost, tc.path)
				var rep struct {
					Released *int `json:"released"`
				}
				if err := json.Unmarshal(b, &rep); err != nil || code != http.StatusOK || rep.Released == nil || *rep.Released != want {
					t.Fatalf("POST: %d %s, want released %d", code, b, want)
				}
			}
			for _, r := range tc.recs {
				b, _ := readFile(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName}))
				if sha(b) != r.SHA256 {
					t.Fatalf("%s differs after the release", r.FileName)
				}
			}
		})
	}
}

// TestServer_ReleaseConcurrent releases while downloads and package requests
// run; under -race it checks the locking, and every answer must be either
// "no data" or the right bytes.
func TestServer_ReleaseConcurrent(t *testing.T) {
	s, ts := newSim(t, lateOptions(3, 3))
	m := s.Manifest()
	recs := append(flagged(m, true), flagged(m, false)...)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, ts)
			for i := range 10 {
				r := recs[(g+i)%len(recs)]
				body, _ := json.Marshal(cecwire.NewEnvelope(cecwire.FileNameBody{FileName: r.FileName}))
				// Not c.ccfs: it calls t.Fatal, which must not run outside the test goroutine.
				resp, err := c.http.Do(c.signedRequest(cecwire.PathDownloadRecordFile, "", body))
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					errs <- err.Error()
				case resp.Header.Get("Content-Type") == cecwire.ContentTypeOctetStream:
					if sha(b) != r.SHA256 {
						errs <- r.FileName + ": wrong bytes"
					}
				case !bytes.Contains(b, []byte(cecwire.CodeNoData)):
					errs <- r.FileName + ": " + string(b)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.ReleaseLate()
		s.ReleaseUnavailable()
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	c := newClient(t, ts)
	_, files, _ := packageIndex(t, c, requestPackage(t, c))
	for _, r := range recs {
		if !files[r.FileName] {
			t.Fatalf("%s not listed after both releases", r.FileName)
		}
	}
}
