package cecsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

const (
	testAK = "exampleAK"
	testSK = "exampleSK"
)

// testSign is the tests' own auth-v2 signer (cec-api.md §1.2), written apart
// from the simulator's so that a shared mistake does not go unnoticed.
func testSign(method, uri, rawQuery string, headers map[string]string, body []byte, ak, sk, ts string) string {
	enc := func(s string) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	mac := func(key, msg string) string {
		h := hmac.New(sha256.New, []byte(key))
		io.WriteString(h, msg)
		return hex.EncodeToString(h.Sum(nil))
	}
	var names []string
	for n := range headers {
		names = append(names, strings.ToLower(n))
	}
	sort.Strings(names)
	signed := strings.Join(names, ";")
	prefix := "auth-v2/" + ak + "/" + ts + "/" + signed
	lines := []string{method, uri}
	if rawQuery != "" {
		q, _ := url.ParseQuery(rawQuery)
		var pairs []string
		for k, vs := range q {
			for _, v := range vs {
				pairs = append(pairs, enc(k)+"="+enc(v))
			}
		}
		sort.Strings(pairs)
		lines = append(lines, strings.Join(pairs, "&"))
	}
	lines = append(lines, signed)
	var hl []string
	for n, v := range headers {
		hl = append(hl, enc(strings.ToLower(n))+":"+enc(v))
	}
	sort.Strings(hl)
	lines = append(lines, hl...)
	canonical := strings.Join(lines, "\n") + "\n" + enc(string(body))
	return prefix + "/" + mac(mac(sk, prefix), canonical)
}

// testNow is the fixed clock of most tests.
func testNow() time.Time { return time.Date(2026, time.November, 3, 10, 0, 0, 0, time.UTC) }

func testOptions() Options {
	return Options{Seed: 7, Calls: 40, Now: testNow}
}

// newSim builds a simulator and an HTTP server in front of it.
func newSim(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// client sends requests to a test server.
type client struct {
	t      *testing.T
	base   string
	ak, sk string
	now    func() time.Time
	http   *http.Client
}

func newClient(t *testing.T, ts *httptest.Server) *client {
	return &client{t: t, base: ts.URL, ak: testAK, sk: testSK, now: testNow, http: ts.Client()}
}

// signedRequest builds a POST signing content-length;content-type;host.
func (c *client) signedRequest(path, rawQuery string, body []byte) *http.Request {
	c.t.Helper()
	u := c.base + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", cecwire.ContentTypeJSON)
	req.ContentLength = int64(len(body))
	headers := map[string]string{
		"content-length": strconv.Itoa(len(body)),
		"content-type":   cecwire.ContentTypeJSON,
		"host":           req.URL.Host,
	}
	req.Header.Set("Authorization", testSign(http.MethodPost, path, rawQuery, headers, body, c.ak, c.sk, c.now().UTC().Format("2006-01-02T15:04:05Z")))
	return req
}

func (c *client) do(req *http.Request) *http.Response {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", req.URL.Path, err)
	}
	return resp
}

// ccfs posts a CC-FS envelope around msgBody.
func (c *client) ccfs(path, rawQuery string, msgBody any) *http.Response {
	c.t.Helper()
	b, err := json.Marshal(cecwire.NewEnvelope(msgBody))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(c.signedRequest(path, rawQuery, b))
}

// raw posts body as is, signed.
func (c *client) raw(path, rawQuery string, body []byte) *http.Response {
	c.t.Helper()
	return c.do(c.signedRequest(path, rawQuery, body))
}

// oifde posts an unsigned JSON body.
func (c *client) oifde(path string, body any) *http.Response {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	return c.do(req)
}

// token gets an OIFDE token.
func (c *client) token() string {
	c.t.Helper()
	var tr cecwire.GetTokenResponse
	readJSON(c.t, c.oifde(cecwire.PathGetToken, cecwire.GetTokenRequest{AppKey: defaultTenantID, AppSecret: defaultAPIPassword}), &tr)
	if tr.ErrorCode != 0 || tr.AuthToken == "" {
		c.t.Fatalf("gettoken: %+v", tr)
	}
	return tr.AuthToken
}

// readJSON decodes a JSON answer, checking HTTP 200 and the content type.
func readJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != cecwire.ContentTypeJSON {
		t.Fatalf("Content-Type %q, want JSON; body %.200s", ct, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// wantResult checks a CC-FS JSON answer's resultCode and that resultDesc contains desc.
func wantResult(t *testing.T, resp *http.Response, code, desc string) cecwire.Result {
	t.Helper()
	var r cecwire.Result
	readJSON(t, resp, &r)
	if r.ResultCode != code || !strings.Contains(r.ResultDesc, desc) {
		t.Fatalf("got %s %q, want %s containing %q", r.ResultCode, r.ResultDesc, code, desc)
	}
	return r
}

// readFile reads a binary success and checks its headers.
func readFile(t *testing.T, resp *http.Response) ([]byte, string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != cecwire.ContentTypeOctetStream {
		t.Fatalf("HTTP %d %s: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if resp.ContentLength != int64(len(b)) {
		t.Fatalf("Content-Length %d, got %d bytes", resp.ContentLength, len(b))
	}
	cd := resp.Header.Get("Content-Disposition")
	name, ok := strings.CutPrefix(cd, "attachment; filename=")
	if !ok {
		t.Fatalf("Content-Disposition %q", cd)
	}
	return b, strings.Trim(name, `"`)
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
