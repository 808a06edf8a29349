package cecclient

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Canary secrets: TestClient_LogsNoSecrets asserts none of them ever shows up
// in a log line or an error string.
const (
	testAK       = "canaryAK7Qx"
	testSK       = "canarySK9Zp"
	testTenant   = "tenant42"
	testPassword = "canaryPW3Lm"
	testToken    = "canaryTOKEN1Kd"
	testPhone    = "13800138000"
)

// handlerFunc serves one path of the test server; hit counts from 1.
type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte, hit int)

// testServer is a small CEC stand-in: it checks auth-v2 on CC-FS and CC-CMS
// paths exactly like a server would (VerifyRequest), counts hits per path and
// dispatches to per-path handlers.
type testServer struct {
	*httptest.Server
	t      testing.TB
	mu     sync.Mutex
	hits   map[string]int
	routes map[string]handlerFunc
	auths  []string // Authorization headers seen, in order
}

func newTestServer(t testing.TB, routes map[string]handlerFunc) *testServer {
	ts := &testServer{t: t, hits: map[string]int{}, routes: routes}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	ts.mu.Lock()
	ts.hits[r.URL.Path]++
	hit := ts.hits[r.URL.Path]
	ts.auths = append(ts.auths, r.Header.Get("Authorization"))
	h := ts.routes[r.URL.Path]
	ts.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, "/oifde/") {
		lookup := func(ak string) (string, bool) { return testSK, ak == testAK }
		if _, err := VerifyRequest(r, body, lookup, time.Now(), 0); err != nil {
			ts.t.Errorf("%s: signature rejected: %v", r.URL.Path, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if h == nil {
		ts.t.Errorf("unexpected request to %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	h(w, r, body, hit)
}

func (ts *testServer) hitCount(path string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.hits[path]
}

// testOptions are fast options pointing every service at url.
func testOptions(url string) Options {
	return Options{
		FSURL: url, CMSURL: url, OIFDEURL: url,
		AK: testAK, SK: testSK, TenantID: testTenant, APIPassword: testPassword,
		RateLimit:    1000,
		Burst:        10,
		BaseBackoff:  time.Millisecond,
		MaxBackoff:   5 * time.Millisecond,
		StallTimeout: 5 * time.Second,
		Logger:       zap.NewNop(),
	}
}

func newTestClient(t testing.TB, url string, mod ...func(*Options)) *Client {
	t.Helper()
	o := testOptions(url)
	for _, m := range mod {
		m(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.authRetryWait = 0
	return c
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
	json.NewEncoder(w).Encode(v)
}

func writeResult(w http.ResponseWriter, code, desc string) {
	writeJSON(w, cecwire.Result{ResultCode: code, ResultDesc: desc, ResultData: json.RawMessage(`""`),
		Response: &cecwire.LegacyResponse{Version: "2.0", ResultCode: code, ResultMsg: desc}})
}

func writeFile(w http.ResponseWriter, name string, data []byte) {
	w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if name != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	w.Write(data)
}

// tokenHandler answers gettoken with testToken+n and counts the calls.
func tokenHandler(calls *atomic.Int32, delay time.Duration, expire int) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
		var req cecwire.GetTokenRequest
		json.Unmarshal(body, &req)
		if req.AppKey != testTenant || req.AppSecret != testPassword {
			writeJSON(w, map[string]any{"errorCode": 1001, "errorMsg": "wrong appKey or appSecret"})
			return
		}
		n := calls.Add(1)
		time.Sleep(delay)
		writeJSON(w, cecwire.GetTokenResponse{AuthToken: testToken + "-" + strconv.Itoa(int(n)), ExpireTime: int64(expire)})
	}
}

// makeWAV builds a valid upload WAV: 8 kHz mono 8-bit with format tag tag
// and n samples, plus a LIST chunk of odd size after the data.
func makeWAV(tag uint16, n int) []byte {
	le16 := func(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
	le32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	var b []byte
	b = append(b, "RIFF\x00\x00\x00\x00WAVE"...)
	b = append(b, "fmt "...)
	b = le32(b, 16)
	b = le16(b, tag)
	b = le16(b, 1)
	b = le32(b, 8000)
	b = le32(b, 8000)
	b = le16(b, 1)
	b = le16(b, 8)
	b = append(b, "data"...)
	b = le32(b, uint32(n))
	for i := 0; i < n; i++ {
		b = append(b, byte(0x55^i))
	}
	if n%2 == 1 {
		b = append(b, 0)
	}
	b = append(b, "LIST"...)
	b = le32(b, 3)
	b = append(b, "abc\x00"...)
	binary.LittleEndian.PutUint32(b[4:8], uint32(len(b)-8))
	return b
}

// wavBytes is a recording body that is clearly a WAV.
func wavBytes(n int) []byte { return makeWAV(WAVFormatALaw, n) }
