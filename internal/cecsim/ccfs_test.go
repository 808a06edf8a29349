package cecsim

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// callsWith returns the manifest calls having n agent recordings.
func callsWith(m *Manifest, n int) []ManifestCall {
	count := map[string]int{}
	for _, r := range m.Recordings {
		if r.Kind == KindAgent {
			count[r.CallID]++
		}
	}
	var out []ManifestCall
	for _, c := range m.Calls {
		if count[c.CallID] == n {
			out = append(out, c)
		}
	}
	return out
}

func agentRecordings(m *Manifest, callID string) []ManifestRecording {
	var out []ManifestRecording
	for _, r := range m.Recordings {
		if r.Kind == KindAgent && r.CallID == callID {
			out = append(out, r)
		}
	}
	return out
}

// unzip returns the SHA-256 of each entry.
func unzip(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("zip entry %s: %v", f.Name, err)
		}
		out[f.Name] = sha(data)
	}
	return out
}

func TestServer_Routing(t *testing.T) {
	_, ts := newSim(t, Options{Seed: 1, Calls: 3, UploadLimitBytes: 1000, Now: testNow})
	c := newClient(t, ts)
	cases := []struct {
		name   string
		method string
		path   string
		ct     string
		body   []byte
		want   int
	}{
		{"unknown path", http.MethodPost, "/CCFS/resource/ccfs/nothing", cecwire.ContentTypeJSON, nil, http.StatusNotFound},
		{"admin disabled", http.MethodGet, "/_sim/manifest", "", nil, http.StatusNotFound},
		{"GET", http.MethodGet, cecwire.PathDownloadRecordFile, "", nil, http.StatusMethodNotAllowed},
		{"too large", http.MethodPost, cecwire.PathDownloadRecordFile, cecwire.ContentTypeJSON, bytes.Repeat([]byte(" "), maxRequestBody+1), http.StatusRequestEntityTooLarge},
		{"upload too large", http.MethodPost, cecwire.PathUploadFile, cecwire.ContentTypeJSON, bytes.Repeat([]byte(" "), 70<<10), http.StatusRequestEntityTooLarge},
		{"content type", http.MethodPost, cecwire.PathDownloadRecordFile, "text/plain", []byte(`{}`), http.StatusUnsupportedMediaType},
		{"charset", http.MethodPost, cecwire.PathGetToken, "application/json; charset=GBK", []byte(`{}`), http.StatusUnsupportedMediaType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := c.signedRequest(tc.path, "", tc.body)
			req.Method = tc.method
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
				req.Header.Set("Authorization", c.signedRequestWithType(tc.path, tc.body, tc.ct))
			}
			resp := c.do(req)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.want, b)
			}
			var r cecwire.Result
			if err := json.Unmarshal(b, &r); err != nil || r.ResultDesc == "" {
				t.Fatalf("body %s: %v", b, err)
			}
		})
	}
}

// signedRequestWithType signs a body sent with another Content-Type.
func (c *client) signedRequestWithType(p string, body []byte, ct string) string {
	return testSign(http.MethodPost, p, "", map[string]string{
		"content-length": strconv.Itoa(len(body)), "content-type": ct, "host": strings.TrimPrefix(c.base, "http://"),
	}, body, c.ak, c.sk, c.now().UTC().Format(cecwire.SignTimeLayout))
}

// TestCCFS_Envelope checks the generic CC-FS request rules on downloadRecordFile.
func TestCCFS_Envelope(t *testing.T) {
	_, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	long := "/" + strings.Repeat("1", 225) + ".wav"
	cases := []struct {
		name, body, query, code, desc string
	}{
		{"empty body", ``, "", cecwire.CodeBodyNull, "null"},
		{"not JSON", `{"request":`, "", cecwire.CodeParamFormat, "request body format wrong"},
		{"array", `[]`, "", cecwire.CodeParamFormat, "request body format wrong"},
		{"trailing data", `{"request":{"version":"2.0"},"msgBody":{"fileName":"a"}} {}`, "", cecwire.CodeParamFormat, "request body format wrong"},
		{"no request", `{"msgBody":{"fileName":"a"}}`, "", cecwire.CodeWrongVersion, "2.0"},
		{"wrong version", `{"request":{"version":"1.0"},"msgBody":{"fileName":"a"}}`, "", cecwire.CodeWrongVersion, "2.0"},
		{"numeric version", `{"request":{"version":2.0},"msgBody":{"fileName":"a"}}`, "", cecwire.CodeWrongVersion, "2.0"},
		{"no msgBody", `{"request":{"version":"2.0"}}`, "", cecwire.CodeBodyNull, "msgBody is null"},
		{"null msgBody", `{"request":{"version":"2.0"},"msgBody":null}`, "", cecwire.CodeBodyNull, "msgBody is null"},
		{"msgBody string", `{"request":{"version":"2.0"},"msgBody":"x"}`, "", cecwire.CodeParamFormat, "msgBody format wrong"},
		{"unknown envelope field", `{"request":{"version":"2.0"},"msgBody":{},"x":1}`, "", cecwire.CodeParamFormat, "x format wrong"},
		{"missing field", `{"request":{"version":"2.0"},"msgBody":{}}`, "", cecwire.CodeParamNull, "fileName is null"},
		{"null field", `{"request":{"version":"2.0"},"msgBody":{"fileName":null}}`, "", cecwire.CodeParamNull, "fileName is null"},
		{"empty field", `{"request":{"version":"2.0"},"msgBody":{"fileName":""}}`, "", cecwire.CodeParamEmpty, "fileName is empty"},
		{"too long", `{"request":{"version":"2.0"},"msgBody":{"fileName":"` + long + `"}}`, "", cecwire.CodeParamTooLong, "fileName too long"},
		{"number field", `{"request":{"version":"2.0"},"msgBody":{"fileName":12}}`, "", cecwire.CodeParamFormat, "fileName format wrong"},
		{"unknown field", `{"request":{"version":"2.0"},"msgBody":{"fileName":"a","other":"b"}}`, "", cecwire.CodeParamFormat, "other format wrong"},
		{"query parameter", `{"request":{"version":"2.0"},"msgBody":{"fileName":"a"}}`, "locationId=1", cecwire.CodeParamFormat, "locationId format wrong"},
		{"invalid UTF-8", "{\"request\":{\"version\":\"2.0\"},\"msgBody\":{\"fileName\":\"\xff\"}}", "", cecwire.CodeParamFormat, "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := wantResult(t, c.raw(cecwire.PathDownloadRecordFile, tc.query, []byte(tc.body)), tc.code, tc.desc)
			if string(r.ResultData) != `""` || r.Response == nil || r.Response.ResultCode != tc.code || r.Response.Version != "2.0" {
				t.Fatalf("error shape: %+v", r)
			}
		})
	}
}

func TestDownloadRecordFile(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 7, Calls: 40, Now: testNow,
		Credentials: map[string]string{testAK: testSK, "otherAK": "otherSK"}})
	c := newClient(t, ts)
	m := s.Manifest()
	n := 0
	var other ManifestRecording
	for _, r := range m.Recordings {
		if r.Kind != KindAgent {
			continue
		}
		var call ManifestCall
		for _, x := range m.Calls {
			if x.CallID == r.CallID {
				call = x
			}
		}
		if call.VDN != "39" && call.VDN != "61" {
			other = r
			continue
		}
		b, name := readFile(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: r.FileName}))
		if sha(b) != r.SHA256 || int64(len(b)) != r.Size || name != path.Base(r.FileName) {
			t.Fatalf("%s: %d bytes named %s, manifest %+v", r.FileName, len(b), name, r)
		}
		n++
	}
	if n == 0 || other.FileName == "" {
		t.Fatalf("dataset: %d own recordings, other %q", n, other.FileName)
	}
	errCases := []struct{ name, fileName, code string }{
		{"shape", "/10/1/39/20261101/3901/123.wav", cecwire.CodeParamFormat},
		{"not wav", "/10/1/record/39/20261101/3901/123.mp3", cecwire.CodeParamFormat},
		{"bad date", "/10/1/record/39/20261301/3901/123.wav", cecwire.CodeFileNameDate},
		{"foreign VDN", "/10/1/record/40/20261101/3901/123.wav", cecwire.CodeParamError},
		{"other developer", other.FileName, cecwire.CodeParamError},
		{"unknown", "/10/1/record/39/20261101/3901/123.wav", cecwire.CodeNoData},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			wantResult(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: tc.fileName}), tc.code, "")
		})
	}
	// The other developer downloads its own file.
	c2 := newClient(t, ts)
	c2.ak, c2.sk = "otherAK", "otherSK"
	b, _ := readFile(t, c2.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: other.FileName}))
	if sha(b) != other.SHA256 {
		t.Fatal("other developer's file differs")
	}
}

func TestDownloadRecord(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 11, Calls: 80, Now: testNow})
	c := newClient(t, ts)
	m := s.Manifest()
	one, two, none := callsWith(m, 1), callsWith(m, 2), callsWith(m, 0)
	if len(one) == 0 || len(two) == 0 || len(none) == 0 {
		t.Fatalf("dataset: %d/%d/%d calls with 1/2/0 recordings", len(one), len(two), len(none))
	}
	t.Run("by original file name", func(t *testing.T) {
		r := agentRecordings(m, two[0].CallID)[1]
		b, name := readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: r.OriginalFileName}))
		if sha(b) != r.SHA256 || name != path.Base(r.OriginalFileName) {
			t.Fatalf("got %s %s", name, sha(b))
		}
		b, _ = readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: r.OriginalFileName, CallID: r.CallID, CcID: "1"}))
		if sha(b) != r.SHA256 {
			t.Fatal("with callId and ccId: different bytes")
		}
	})
	t.Run("by call, one recording", func(t *testing.T) {
		r := agentRecordings(m, one[0].CallID)[0]
		b, _ := readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: one[0].CallID}))
		if sha(b) != r.SHA256 {
			t.Fatal("different bytes")
		}
	})
	t.Run("by call, zip", func(t *testing.T) {
		resp := c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: two[0].CallID})
		b, name := readFile(t, resp)
		if name != two[0].CallID+".zip" {
			t.Fatalf("name %s", name)
		}
		got := unzip(t, b)
		recs := agentRecordings(m, two[0].CallID)
		if len(got) != 2 {
			t.Fatalf("zip entries %v", got)
		}
		for _, r := range recs {
			if got[path.Base(r.FileName)] != r.SHA256 {
				t.Fatalf("entry %s: %s, want %s", path.Base(r.FileName), got[path.Base(r.FileName)], r.SHA256)
			}
		}
		// Deterministic bytes.
		b2, _ := readFile(t, c.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: two[0].CallID}))
		if !bytes.Equal(b, b2) {
			t.Fatal("the zip differs between downloads")
		}
	})
	r1 := agentRecordings(m, one[0].CallID)[0]
	errCases := []struct {
		name string
		body cecwire.DownloadRecordBody
		code string
	}{
		{"nothing", cecwire.DownloadRecordBody{}, cecwire.CodeParamNull},
		{"only ccId", cecwire.DownloadRecordBody{CcID: "1"}, cecwire.CodeParamNull},
		{"file shape", cecwire.DownloadRecordBody{FileName: r1.FileName}, cecwire.CodeParamFormat},
		{"file date", cecwire.DownloadRecordBody{FileName: "X:/10/1/20260230/3901/1.V3"}, cecwire.CodeFileNameDate},
		{"unknown file", cecwire.DownloadRecordBody{FileName: "X:/10/1/20261101/3901/1.V3"}, cecwire.CodeNoData},
		{"wrong ccId", cecwire.DownloadRecordBody{FileName: r1.OriginalFileName, CcID: "2"}, cecwire.CodeNoData},
		{"file of another call", cecwire.DownloadRecordBody{FileName: r1.OriginalFileName, CallID: two[0].CallID}, cecwire.CodeNoData},
		{"unknown call", cecwire.DownloadRecordBody{CallID: "1-1"}, cecwire.CodeNoData},
		{"call without recordings", cecwire.DownloadRecordBody{CallID: none[0].CallID}, cecwire.CodeNoData},
		{"callId too long", cecwire.DownloadRecordBody{CallID: strings.Repeat("1", 26)}, cecwire.CodeParamTooLong},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			wantResult(t, c.ccfs(cecwire.PathDownloadRecord, "", tc.body), tc.code, "")
		})
	}
	t.Run("other developer", func(t *testing.T) {
		s2, ts2 := newSim(t, Options{Seed: 11, Calls: 80, Now: testNow,
			Credentials: map[string]string{testAK: testSK, "zzAK": "zzSK"}})
		c2 := newClient(t, ts2)
		c2.ak, c2.sk = "zzAK", "zzSK"
		for _, r := range s2.Manifest().Recordings {
			if r.Kind == KindAgent && !strings.Contains(r.FileName, "/record/1") {
				wantResult(t, c2.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{FileName: r.OriginalFileName}), cecwire.CodeParamError, "fileName")
				wantResult(t, c2.ccfs(cecwire.PathDownloadRecord, "", cecwire.DownloadRecordBody{CallID: r.CallID}), cecwire.CodeParamError, "callId")
				return
			}
		}
		t.Fatal("no recording of the first developer")
	})
}

func TestDownloadOiapRecord(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 5, Calls: 60, Now: testNow})
	c := newClient(t, ts)
	m := s.Manifest()
	seen := map[string]bool{}
	var any ManifestRecording
	for _, r := range m.Recordings {
		if r.Kind == KindAgent {
			continue
		}
		any = r
		seen[r.Kind] = true
		b, name := readFile(t, c.ccfs(cecwire.PathDownloadOiapRecord, "", cecwire.FileNameBody{FileName: r.FileName}))
		if sha(b) != r.SHA256 || name != path.Base(r.FileName) {
			t.Fatalf("%s: wrong bytes", r.FileName)
		}
		b, _ = readFile(t, c.ccfs(cecwire.PathDownloadOiapRecord, "locationId="+r.LocationID, cecwire.FileNameBody{FileName: r.FileName}))
		if sha(b) != r.SHA256 {
			t.Fatalf("%s with locationId: wrong bytes", r.FileName)
		}
	}
	if !seen[KindTransfer] || !seen[KindIVR] {
		t.Fatalf("kinds seen %v", seen)
	}
	wrongLoc := "7"
	cases := []struct{ name, query, fileName, code string }{
		{"wrong location", "locationId=" + wrongLoc, any.FileName, cecwire.CodeNoData},
		{"location not integer", "locationId=abc", any.FileName, cecwire.CodeParamFormat},
		{"location negative", "locationId=-1", any.FileName, cecwire.CodeParamFormat},
		{"location empty", "locationId=", any.FileName, cecwire.CodeParamEmpty},
		{"location twice", "locationId=1&locationId=2", any.FileName, cecwire.CodeParamFormat},
		{"other parameter", "vdnId=39", any.FileName, cecwire.CodeParamFormat},
		{"shape", "", "Y:/39/other/20261101/1.wav", cecwire.CodeParamFormat},
		{"agent path", "", "/10/1/record/39/20261101/3901/1.wav", cecwire.CodeParamFormat},
		{"date", "", "Y:/39/odfsrecord/20261132/1.wav", cecwire.CodeFileNameDate},
		{"foreign VDN", "", "Y:/record/40/odfsrecord/20261101/1.wav", cecwire.CodeParamError},
		{"unknown", "", "Y:/record/39/20261101/1.wav", cecwire.CodeNoData},
		{"too long", "", "Y:/39/odfsrecord/20261101/" + strings.Repeat("1", 110) + ".wav", cecwire.CodeParamTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantResult(t, c.ccfs(cecwire.PathDownloadOiapRecord, tc.query, cecwire.FileNameBody{FileName: tc.fileName}), tc.code, "")
		})
	}
}

func TestCMSDownloadRecordFile(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 11, Calls: 80, Now: testNow})
	c := newClient(t, ts)
	m := s.Manifest()
	one, two, none := callsWith(m, 1)[0], callsWith(m, 2)[0], callsWith(m, 0)[0]
	post := func(v any) *http.Response {
		b, _ := json.Marshal(v)
		return c.raw(cecwire.PathCMSDownloadRecordFile, "", b)
	}
	r := agentRecordings(m, one.CallID)[0]
	b, name := readFile(t, post(cecwire.CMSDownloadRecordFileBody{CallID: one.CallID}))
	if sha(b) != r.SHA256 || name != path.Base(r.FileName) {
		t.Fatal("single recording differs")
	}
	b, _ = readFile(t, post(cecwire.CMSDownloadRecordFileBody{CallID: one.CallID, WorkNo: one.AgentID,
		BeginTime: one.Begin.Format(cecwire.CMSTimeLayout)}))
	if sha(b) != r.SHA256 {
		t.Fatal("with filters: differs")
	}
	b, name = readFile(t, post(cecwire.CMSDownloadRecordFileBody{CallID: two.CallID}))
	if len(unzip(t, b)) != 2 || name != two.CallID+".zip" {
		t.Fatal("two recordings: want a zip of two")
	}
	recs2 := agentRecordings(m, two.CallID)
	b, _ = readFile(t, post(map[string]string{"callID": two.CallID, "workNo": strings.Split(recs2[1].FileName, "/")[6]}))
	if sha(b) != recs2[1].SHA256 {
		t.Fatal("workNo filter")
	}
	empty := []any{
		cecwire.CMSDownloadRecordFileBody{CallID: none.CallID},
		cecwire.CMSDownloadRecordFileBody{CallID: "1-1"},
		cecwire.CMSDownloadRecordFileBody{CallID: one.CallID, WorkNo: "nobody"},
		cecwire.CMSDownloadRecordFileBody{CallID: one.CallID, BeginTime: "20200101000000"},
		cecwire.CMSDownloadRecordFileBody{CallID: one.CallID, CallerNo: "1"},
	}
	for i, body := range empty {
		var res cecwire.Result
		readJSON(t, post(body), &res)
		if res.ResultCode != "1" || res.ResultDesc != cecwire.CMSRecordListEmptyDesc || string(res.ResultData) != `""` || res.Response != nil {
			t.Fatalf("case %d: %+v", i, res)
		}
	}
	bad := []struct{ body, desc string }{
		{`{}`, "callID is null"},
		{`{"callID":""}`, "callID is empty"},
		{`{"callID":1}`, "callID format wrong"},
		{`{"callID":"x","beginTime":"2026-11-01"}`, "beginTime"},
		{`{"callID":"x","request":{}}`, "request format wrong"},
		{`{"request":{"version":"2.0"},"msgBody":{"callID":"x"}}`, "format wrong"},
		{`nope`, "format wrong"},
	}
	for _, tc := range bad {
		wantResult(t, c.raw(cecwire.PathCMSDownloadRecordFile, "", []byte(tc.body)), "1", tc.desc)
	}
}

// wavBytes builds a WAV file with the given fmt fields.
func wavBytes(format, channels uint16, rate uint32, bits uint16, dataLen int) []byte {
	le := binary.LittleEndian
	blockAlign := channels * bits / 8
	b := make([]byte, 44+dataLen)
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(len(b)-8))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], format)
	le.PutUint16(b[22:], channels)
	le.PutUint32(b[24:], rate)
	le.PutUint32(b[28:], rate*uint32(blockAlign))
	le.PutUint16(b[32:], blockAlign)
	le.PutUint16(b[34:], bits)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(dataLen))
	return b
}

func TestUploadFile(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 1, Calls: 5, Now: testNow, UploadLimitBytes: 4000})
	c := newClient(t, ts)
	up := func(query string, data []byte) *http.Response {
		return c.ccfs(cecwire.PathUploadFile, query, cecwire.UploadFileBody{Data: base64.StdEncoding.EncodeToString(data)})
	}
	good := wavBytes(1, 1, 8000, 8, 2000)
	var res cecwire.Result
	readJSON(t, up("vdnId=39", good), &res)
	var data cecwire.UploadFileData
	if err := json.Unmarshal(res.ResultData, &data); err != nil || res.ResultCode != "0" || res.ResultDesc != "success" {
		t.Fatalf("upload: %+v %v", res, err)
	}
	if !strings.HasPrefix(data.FileName, "Y:/3rdfile/39/thirdvoicebotfile/") || !strings.HasSuffix(data.FileName, ".wav") ||
		len(data.LocationID) != 2 || data.LocationID[0] != "0" || data.LocationID[1] != "256" {
		t.Fatalf("resultData %+v", data)
	}
	b, _ := readFile(t, c.ccfs(cecwire.PathDownloadOiapRecord, "locationId=256", cecwire.FileNameBody{FileName: data.FileName}))
	if !bytes.Equal(b, good) {
		t.Fatal("downloaded upload differs")
	}
	wantResult(t, c.ccfs(cecwire.PathDownloadOiapRecord, "locationId=1", cecwire.FileNameBody{FileName: data.FileName}), cecwire.CodeNoData, "")
	alaw := newWAVStream(newAudioBank(5), 3000, 5)
	ab, _ := io.ReadAll(alaw)
	wantResult(t, up("vdnId=61", ab), cecwire.CodeSuccess, "success")

	wrongRIFF := wavBytes(1, 1, 8000, 8, 100)
	binary.LittleEndian.PutUint32(wrongRIFF[4:], 10)
	cases := []struct {
		name, query string
		data        []byte
		raw         string
		code, desc  string
	}{
		{"no vdnId", "", good, "", cecwire.CodeParamNull, "vdnId is null"},
		{"empty vdnId", "vdnId=", good, "", cecwire.CodeParamEmpty, "vdnId"},
		{"vdnId not integer", "vdnId=3a", good, "", cecwire.CodeParamFormat, "vdnId"},
		{"foreign vdnId", "vdnId=40", good, "", cecwire.CodeParamError, "vdnId"},
		{"not base64", "vdnId=39", nil, "@@@", cecwire.CodeParamFormat, "base64"},
		{"too large", "vdnId=39", wavBytes(1, 1, 8000, 8, 4000), "", cecwire.CodeParamFormat, "limit"},
		{"not wav", "vdnId=39", []byte("hello, this is not a wav file at all"), "", cecwire.CodeParamFormat, "RIFF"},
		{"stereo", "vdnId=39", wavBytes(1, 2, 8000, 8, 100), "", cecwire.CodeParamFormat, "channels"},
		{"16 kHz", "vdnId=39", wavBytes(1, 1, 16000, 8, 100), "", cecwire.CodeParamFormat, "sample rate"},
		{"16 bit", "vdnId=39", wavBytes(1, 1, 8000, 16, 100), "", cecwire.CodeParamFormat, "bits"},
		{"float", "vdnId=39", wavBytes(3, 1, 8000, 8, 100), "", cecwire.CodeParamFormat, "audio format"},
		{"riff size", "vdnId=39", wrongRIFF, "", cecwire.CodeParamFormat, "RIFF size"},
		{"no data", "vdnId=39", wavBytes(1, 1, 8000, 8, 0)[:36], "", cecwire.CodeParamFormat, "RIFF size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := cecwire.UploadFileBody{Data: tc.raw}
			if tc.data != nil {
				body.Data = base64.StdEncoding.EncodeToString(tc.data)
			}
			wantResult(t, c.ccfs(cecwire.PathUploadFile, tc.query, body), tc.code, tc.desc)
		})
	}

	// Uploads lists the two accepted files, in order, and none of the refused.
	ups := s.Uploads()
	if len(ups) != 2 {
		t.Fatalf("Uploads: %d files, want 2: %+v", len(ups), ups)
	}
	for i, want := range []struct {
		vdn  string
		data []byte
	}{{"39", good}, {"61", ab}} {
		up := ups[i]
		sum := sha256.Sum256(want.data)
		if up.VDN != want.vdn || up.Size != int64(len(want.data)) || up.SHA256 != hex.EncodeToString(sum[:]) ||
			up.AK != defaultAK || !up.Time.Equal(testNow()) || len(up.LocationID) != 2 ||
			!strings.HasPrefix(up.FileName, "Y:/3rdfile/"+want.vdn+"/thirdvoicebotfile/") {
			t.Errorf("upload %d: %+v", i, up)
		}
	}
	if ups[0].FileName != data.FileName {
		t.Errorf("first upload %q, the answer named %q", ups[0].FileName, data.FileName)
	}
}
