package cecsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// firstAgent returns the first agent recording of the manifest.
func firstAgent(t *testing.T, s *Server) ManifestRecording {
	t.Helper()
	for _, r := range s.Manifest().Recordings {
		if r.Kind == KindAgent {
			return r
		}
	}
	t.Fatal("no agent recording")
	return ManifestRecording{}
}

func TestFault_HTTPErrors(t *testing.T) {
	s, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	rec := firstAgent(t, s)
	download := func() *http.Response {
		return c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName})
	}
	cases := []struct {
		fault      Fault
		status     int
		retryAfter string
	}{
		{Fault{Kind: FaultHTTP500}, http.StatusInternalServerError, ""},
		{Fault{Kind: FaultHTTP503}, http.StatusServiceUnavailable, ""},
		{Fault{Kind: FaultTooMany}, http.StatusTooManyRequests, "1"},
		{Fault{Kind: FaultTooMany, RetryAfter: "2"}, http.StatusTooManyRequests, "2"},
		{Fault{Kind: FaultTooMany, RetryAfter: "Wed, 04 Nov 2026 10:00:00 GMT"}, http.StatusTooManyRequests, "Wed, 04 Nov 2026 10:00:00 GMT"},
	}
	for _, tc := range cases {
		t.Run(string(tc.fault.Kind)+tc.retryAfter, func(t *testing.T) {
			s.SetFaults(tc.fault)
			resp := download()
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || len(b) == 0 {
				t.Fatalf("HTTP %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
		})
	}

	t.Run("count", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultHTTP503, Count: 2})
		for i, want := range []int{503, 503, 200, 200} {
			resp := download()
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("request %d: HTTP %d, want %d", i, resp.StatusCode, want)
			}
		}
	})
	t.Run("path", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultHTTP500, Path: cecwire.PathGetToken})
		resp := download()
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("download hit by a gettoken fault: HTTP %d", resp.StatusCode)
		}
		resp = c.oifde(cecwire.PathGetToken, cecwire.GetTokenRequest{AppKey: defaultTenantID, AppSecret: defaultAPIPassword})
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Fatalf("gettoken: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("rate", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultHTTP500, Rate: 0.5})
		hits := 0
		for range 40 {
			resp := download()
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 500 {
				hits++
			}
		}
		if hits < 5 || hits > 35 {
			t.Fatalf("rate 0.5: %d of 40", hits)
		}
	})
	t.Run("after signature verification", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultHTTP500})
		before := s.Stats().Faults[FaultHTTP500]
		req := c.signedRequest(cecwire.PathDownloadRecordFile, "", []byte(`{}`))
		req.Header.Set("Authorization", "auth-v2/x")
		resp := c.do(req)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || s.Stats().Faults[FaultHTTP500] != before {
			t.Fatalf("HTTP %d, faults %d -> %d", resp.StatusCode, before, s.Stats().Faults[FaultHTTP500])
		}
	})
	s.ClearFaults()
}

func TestFault_FlowControl(t *testing.T) {
	s, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	s.SetFaults(Fault{Kind: FaultFlowControl})
	rec := firstAgent(t, s)
	wantResult(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName}), cecwire.CodeDownloadFlowCtl, "")
	wantResult(t, c.ccfs(cecwire.PathQueryBillData, "", cecwire.QueryBillDataBody{}), cecwire.CodeQueryFlowCtl, "")
	// Not on OIFDE.
	c.token()
	if got := s.Stats().Faults[FaultFlowControl]; got != 2 {
		t.Fatalf("flow_control injected %d times", got)
	}
}

func TestFault_Reset(t *testing.T) {
	s, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	rec := firstAgent(t, s)
	s.SetFaults(Fault{Kind: FaultReset, Path: cecwire.PathDownloadRecordFile})
	resp := c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName})
	if resp.ContentLength != rec.Size {
		t.Fatalf("Content-Length %d, want %d", resp.ContentLength, rec.Size)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || int64(len(b)) >= rec.Size {
		t.Fatalf("read %d of %d bytes, err %v", len(b), rec.Size, err)
	}
	t.Logf("reset: %d of %d bytes, %v", len(b), rec.Size, err)
	// JSON answers too.
	s.SetFaults(Fault{Kind: FaultReset, Path: cecwire.PathGetToken})
	resp = c.oifde(cecwire.PathGetToken, cecwire.GetTokenRequest{AppKey: defaultTenantID, AppSecret: defaultAPIPassword})
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("gettoken: no read error")
	}
	resp.Body.Close()
	// The server keeps serving.
	s.ClearFaults()
	b, _ = readFile(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName}))
	if sha(b) != rec.SHA256 {
		t.Fatal("download after reset differs")
	}
}

func TestFault_Truncate(t *testing.T) {
	s, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	rec := firstAgent(t, s)
	s.SetFaults(Fault{Kind: FaultTruncate, Count: 2})
	for _, resp := range []*http.Response{
		c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName}),
		c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: "bad"}),
	} {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) || int64(len(b)) != resp.ContentLength/2 {
			t.Fatalf("read %d of %d bytes, err %v", len(b), resp.ContentLength, err)
		}
	}
	if got := s.Stats().Faults[FaultTruncate]; got != 2 {
		t.Fatalf("truncate injected %d times", got)
	}
}

func TestFault_Slow(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 7, Calls: 40, Now: testNow, MinRecordingBytes: 20 << 10, MaxRecordingBytes: 24 << 10})
	c := newClient(t, ts)
	rec := firstAgent(t, s)
	s.SetFaults(Fault{Kind: FaultSlow, DelayMS: 60})
	start := time.Now()
	b, _ := readFile(t, c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName}))
	if el := time.Since(start); el < 120*time.Millisecond || sha(b) != rec.SHA256 {
		t.Fatalf("slow download took %s", el)
	}
	// A stalled body trips a client watchdog (here: a timeout).
	s.SetFaults(Fault{Kind: FaultSlow, DelayMS: 5000})
	c.http = &http.Client{Timeout: 200 * time.Millisecond}
	resp := c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: rec.FileName})
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) != slowChunk {
		t.Fatalf("stalled body: %d bytes, err %v", len(b), err)
	}
}

func TestAdmin(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 1, Calls: 5, Admin: true, Faults: []Fault{{Kind: FaultHTTP503, Count: 1}}})
	do := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	var faults []Fault
	code, b := do(http.MethodGet, "/_sim/faults", "")
	if json.Unmarshal(b, &faults); code != 200 || len(faults) != 1 || faults[0].Kind != FaultHTTP503 {
		t.Fatalf("GET faults: %d %s", code, b)
	}
	code, b = do(http.MethodPost, "/_sim/faults", `[{"kind":"429","rate":0.5,"retryAfter":"3"},{"kind":"slow","path":"/oifde/rest/api/gettoken","delayMs":10}]`)
	if code != 200 || !bytes.Contains(b, []byte(`"retryAfter":"3"`)) || len(s.currentFaults()) != 2 {
		t.Fatalf("POST faults: %d %s", code, b)
	}
	for _, bad := range []string{`{}`, `[{"kind":"nope"}]`, `[{"kind":"flow_control","path":"/oifde/rest/api/gettoken"}]`, `[{"kind":"http500","bogus":1}]`} {
		if code, b := do(http.MethodPost, "/_sim/faults", bad); code != http.StatusBadRequest {
			t.Fatalf("POST %s: %d %s", bad, code, b)
		}
	}
	if len(s.currentFaults()) != 2 {
		t.Fatal("a bad POST changed the faults")
	}
	if code, b := do(http.MethodDelete, "/_sim/faults", ""); code != 200 || string(b) != "[]" || len(s.currentFaults()) != 0 {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	var m Manifest
	code, b = do(http.MethodGet, "/_sim/manifest", "")
	if err := json.Unmarshal(b, &m); err != nil || code != 200 || len(m.Calls) != 5 || m.TenantID != defaultTenantID {
		t.Fatalf("manifest: %d %v", code, err)
	}
	newClient(t, ts).token()
	var st Stats
	code, b = do(http.MethodGet, "/_sim/stats", "")
	if err := json.Unmarshal(b, &st); err != nil || code != 200 || st.TokensIssued != 1 || st.Requests[cecwire.PathGetToken] != 1 {
		t.Fatalf("stats: %d %s", code, b)
	}
	if code, _ := do(http.MethodPut, "/_sim/faults", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", code)
	}
	if code, _ := do(http.MethodPost, "/_sim/stats", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST stats: %d", code)
	}
	if code, b := do(http.MethodGet, "/_sim/uploads", ""); code != 200 || string(b) != "[]" {
		t.Fatalf("uploads: %d %s", code, b)
	}
	if code, _ := do(http.MethodPost, "/_sim/uploads", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST uploads: %d", code)
	}
	if code, _ := do(http.MethodGet, "/_sim/other", ""); code != http.StatusNotFound {
		t.Fatalf("other: %d", code)
	}
}

func TestParseFault(t *testing.T) {
	cases := []struct {
		in   string
		want Fault
	}{
		{"http500", Fault{Kind: FaultHTTP500}},
		{"http500:0.05", Fault{Kind: FaultHTTP500, Rate: 0.05}},
		{"429:0.05", Fault{Kind: FaultTooMany, Rate: 0.05}},
		{"reset@" + cecwire.PathDownloadRecordFile, Fault{Kind: FaultReset, Path: cecwire.PathDownloadRecordFile}},
		{"flow_control:1@" + cecwire.PathQueryBillData, Fault{Kind: FaultFlowControl, Rate: 1, Path: cecwire.PathQueryBillData}},
	}
	for _, tc := range cases {
		got, err := ParseFault(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseFault(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "nope", "http500:x", "http500:2", "http500@", "http500@/nowhere", "token_expiry@" + cecwire.PathGetToken} {
		if _, err := ParseFault(bad); err == nil {
			t.Errorf("ParseFault(%q) succeeded", bad)
		}
	}
}
