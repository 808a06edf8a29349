package cecclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Vector A of cec-api.md §1.5.
const (
	vecAK   = "exampleAK"
	vecSK   = "exampleSK"
	vecTS   = "2018-07-02T02:45:50Z"
	vecHost = "10.0.0.1:28443"
	vecPath = "/CCFS/resource/ccfs/downloadBillFile"
	vecBody = `{"request":{"version":"2.0"},"msgBody":{"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip"}}`
	vecKey  = "15da3faa4ff70104067ff5be538d2c14ed774d7b79ef695c4b69826af677706c"
	vecAuth = "auth-v2/exampleAK/2018-07-02T02:45:50Z/content-length;content-type;host/55250d9fc43b78932de18bb8ddaeff3288d000368a9ffb20e428337cb9d28bdd"
)

var vecCanonical = strings.Join([]string{
	"POST",
	"/CCFS/resource/ccfs/downloadBillFile",
	"content-length;content-type;host",
	"content-length:104",
	"content-type:application%2Fjson%3Bcharset%3DUTF-8",
	"host:10.0.0.1%3A28443",
	"%7B%22request%22%3A%7B%22version%22%3A%222.0%22%7D%2C%22msgBody%22%3A%7B%22billFileName%22%3A%2220180702_9239cb50a8384bb0ab503441bf089446.zip%22%7D%7D",
}, "\n")

func TestSigner_VectorA(t *testing.T) {
	ts, err := time.Parse(cecwire.SignTimeLayout, vecTS)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecBody) != 104 {
		t.Fatalf("vector body is %d bytes, want 104", len(vecBody))
	}
	t.Run("ComputeSignature", func(t *testing.T) {
		sig := ComputeSignature(vecAK, vecSK, SignInput{
			Method: "POST", Path: vecPath,
			Headers: map[string]string{"Host": vecHost, "Content-Type": "application/json;charset=UTF-8", "Content-Length": "104"},
			Body:    []byte(vecBody), Time: ts,
		})
		if sig.SigningKey != vecKey {
			t.Errorf("SigningKey\n got %s\nwant %s", sig.SigningKey, vecKey)
		}
		if sig.CanonicalRequest != vecCanonical {
			t.Errorf("CanonicalRequest\n got %q\nwant %q", sig.CanonicalRequest, vecCanonical)
		}
		if sig.Authorization != vecAuth {
			t.Errorf("Authorization\n got %s\nwant %s", sig.Authorization, vecAuth)
		}
	})
	t.Run("Sign", func(t *testing.T) {
		s, err := NewSigner(vecAK, vecSK, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "https://"+vecHost+vecPath, nil)
		req.Header.Set("Content-Type", cecwire.ContentTypeJSON)
		if err := s.Sign(req, []byte(vecBody), ts); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization"); got != vecAuth {
			t.Errorf("Authorization\n got %s\nwant %s", got, vecAuth)
		}
		if req.Host != vecHost || req.ContentLength != 104 {
			t.Errorf("Host %q ContentLength %d, want %q 104", req.Host, req.ContentLength, vecHost)
		}
		sent, _ := io.ReadAll(req.Body)
		if string(sent) != vecBody {
			t.Errorf("body sent differs from body signed")
		}
	})
	t.Run("VerifyRequest", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "https://"+vecHost+vecPath, strings.NewReader(vecBody))
		r.Header.Set("Content-Type", " application/json;charset=UTF-8 ") // receivers trim
		r.Header.Set("Authorization", vecAuth)
		ak, err := VerifyRequest(r, []byte(vecBody), func(ak string) (string, bool) { return vecSK, ak == vecAK }, ts.Add(time.Minute), 0)
		if err != nil || ak != vecAK {
			t.Fatalf("VerifyRequest = %q, %v", ak, err)
		}
	})
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"AZaz09-._~", "AZaz09-._~"},
		{"a b", "a%20b"},
		{"/:{}\"", "%2F%3A%7B%7D%22"},
		{"+=&;,", "%2B%3D%26%3B%2C"},
		{"é", "%C3%A9"},
		{"\x00\xff", "%00%FF"},
	} {
		if got := Normalize(c.in); got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestComputeSignature_Query(t *testing.T) {
	ts := time.Date(2018, 7, 2, 2, 45, 50, 0, time.UTC)
	sig := ComputeSignature("ak", "sk", SignInput{
		Method: "POST", Path: "/p",
		Query:   map[string][]string{"vdnId": {"53"}, "a b": {""}},
		Headers: map[string]string{"host": "h:1"},
		Time:    ts,
	})
	want := "POST\n/p\na%20b=&vdnId=53\nhost\nhost:h%3A1\n"
	if sig.CanonicalRequest != want {
		t.Errorf("canonical %q, want %q", sig.CanonicalRequest, want)
	}
	// No query: the line is left out; no body: nothing after the headers' newline.
	sig = ComputeSignature("ak", "sk", SignInput{Method: "POST", Path: "/p", Headers: map[string]string{"host": "h"}, Time: ts})
	if want := "POST\n/p\nhost\nhost:h\n"; sig.CanonicalRequest != want {
		t.Errorf("canonical %q, want %q", sig.CanonicalRequest, want)
	}
	if !strings.HasPrefix(sig.Authorization, "auth-v2/ak/2018-07-02T02:45:50Z/host/") {
		t.Errorf("Authorization %q", sig.Authorization)
	}
}

func TestNewSigner(t *testing.T) {
	for _, c := range []struct {
		name    string
		headers []string
		want    string
		wantErr bool
	}{
		{"default", nil, "content-length;content-type;host", false},
		{"host only", []string{"Host"}, "host", false},
		{"sorted and unique", []string{"host", "X-B", "content-type", "host"}, "content-type;host;x-b", false},
		{"no host", []string{"content-type"}, "", true},
		{"authorization", []string{"host", "authorization"}, "", true},
		{"bad name", []string{"host", "a b"}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSigner("ak", "sk", c.headers)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, c.wantErr)
			}
			if err == nil && s.SignedHeaders() != c.want {
				t.Errorf("SignedHeaders = %q, want %q", s.SignedHeaders(), c.want)
			}
			if err == nil && strings.Contains(s.String()+s.GoString(), "sk") && !strings.Contains(c.want, "sk") {
				t.Errorf("String leaks the SK: %s", s)
			}
		})
	}
}

func TestSigner_SignRejects(t *testing.T) {
	s, _ := NewSigner("ak", "sk", []string{"host", "content-type", "x-extra"})
	now := time.Now()
	for _, c := range []struct {
		name string
		mod  func(r *http.Request)
	}{
		{"missing header", func(r *http.Request) { r.Header.Del("X-Extra") }},
		{"untrimmed value", func(r *http.Request) { r.Header.Set("X-Extra", " v") }},
		{"control char", func(r *http.Request) { r.Header.Set("X-Extra", "a\x01b") }},
		{"twice", func(r *http.Request) { r.Header.Add("X-Extra", "w") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", "http://h/p", nil)
			r.Header.Set("Content-Type", "a/b")
			r.Header.Set("X-Extra", "v")
			c.mod(r)
			if err := s.Sign(r, nil, now); err == nil {
				t.Error("Sign succeeded")
			}
		})
	}
}

func signedRequest(t *testing.T, body string, at time.Time) *http.Request {
	t.Helper()
	s, _ := NewSigner("ak", "sk", nil)
	r, _ := http.NewRequest("POST", "http://10.0.0.1:28443/CCFS/x?locationId=5", nil)
	r.Header.Set("Content-Type", cecwire.ContentTypeJSON)
	if err := s.Sign(r, []byte(body), at); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifyRequest_Rejects(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lookup := func(ak string) (string, bool) { return "sk", ak == "ak" }
	for _, c := range []struct {
		name string
		at   time.Time
		mod  func(r *http.Request) []byte
	}{
		{"body changed", now, func(r *http.Request) []byte { return []byte(`{"a":2}`) }},
		{"content-length differs", now, func(r *http.Request) []byte { r.ContentLength = 99; return []byte(`{"a":1}`) }},
		{"host changed", now, func(r *http.Request) []byte { r.Host = "10.0.0.1"; return []byte(`{"a":1}`) }},
		{"query changed", now, func(r *http.Request) []byte { r.URL.RawQuery = "locationId=6"; return []byte(`{"a":1}`) }},
		{"path changed", now, func(r *http.Request) []byte { r.URL.Path = "/CCFS/y"; return []byte(`{"a":1}`) }},
		{"method changed", now, func(r *http.Request) []byte { r.Method = "PUT"; return []byte(`{"a":1}`) }},
		{"skew", now.Add(-16 * time.Minute), func(r *http.Request) []byte { return []byte(`{"a":1}`) }},
		{"future", now.Add(16 * time.Minute), func(r *http.Request) []byte { return []byte(`{"a":1}`) }},
		{"unknown AK", now, func(r *http.Request) []byte {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/ak/", "/other/", 1))
			return []byte(`{"a":1}`)
		}},
		{"no host signed", now, func(r *http.Request) []byte {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";host/", "/", 1))
			return []byte(`{"a":1}`)
		}},
		{"not auth-v2", now, func(r *http.Request) []byte { r.Header.Set("Authorization", "Bearer x"); return []byte(`{"a":1}`) }},
		{"missing", now, func(r *http.Request) []byte { r.Header.Del("Authorization"); return []byte(`{"a":1}`) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := signedRequest(t, `{"a":1}`, c.at)
			body := c.mod(r)
			_, err := VerifyRequest(r, body, lookup, now, 15*time.Minute)
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			if strings.Contains(err.Error(), "sk") {
				t.Errorf("error mentions the SK: %v", err)
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		r := signedRequest(t, `{"a":1}`, now.Add(-time.Minute))
		if ak, err := VerifyRequest(r, []byte(`{"a":1}`), lookup, now, 15*time.Minute); err != nil || ak != "ak" {
			t.Fatalf("= %q, %v", ak, err)
		}
	})
}

// TestSigner_Attempts checks the properties of what goes on the wire: a fresh
// timestamp on every attempt, Host sent == host signed, Content-Length signed
// == bytes sent, no chunking.
func TestSigner_Attempts(t *testing.T) {
	var mu sync.Mutex
	var seen []struct {
		auth, host string
		clen       int64
		te         []string
		n          int
	}
	ts := newTestServer(t, map[string]handlerFunc{
		cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			mu.Lock()
			seen = append(seen, struct {
				auth, host string
				clen       int64
				te         []string
				n          int
			}{r.Header.Get("Authorization"), r.Host, r.ContentLength, r.TransferEncoding, len(body)})
			mu.Unlock()
			if hit == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			writeFile(w, "", wavBytes(100))
		},
	})
	var clock atomic.Int64
	clock.Store(time.Now().Add(-time.Minute).Unix())
	c := newTestClient(t, ts.URL, func(o *Options) {
		o.Now = func() time.Time { return time.Unix(clock.Add(1), 0) } // the clock moves a second per call
	})
	d, err := c.DownloadRecordFile(context.Background(), "/10/1/record/100/13533/0903379.wav")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, d.Body)
	d.Body.Close()
	if len(seen) != 2 {
		t.Fatalf("%d attempts, want 2", len(seen))
	}
	if seen[0].auth == seen[1].auth {
		t.Error("the retry replayed the signed request")
	}
	ts0, ts1 := strings.Split(seen[0].auth, "/")[2], strings.Split(seen[1].auth, "/")[2]
	if ts0 == ts1 {
		t.Errorf("both attempts carry timestamp %s", ts0)
	}
	wantHost := strings.TrimPrefix(ts.URL, "http://")
	for i, s := range seen {
		if s.host != wantHost {
			t.Errorf("attempt %d: Host %q, want %q", i, s.host, wantHost)
		}
		if !strings.Contains(s.auth, "/content-length;content-type;host/") {
			t.Errorf("attempt %d: signed headers in %q", i, s.auth)
		}
		if s.clen != int64(s.n) || len(s.te) != 0 {
			t.Errorf("attempt %d: Content-Length %d, body %d bytes, Transfer-Encoding %v", i, s.clen, s.n, s.te)
		}
	}
}

func TestDecodeBillCallback(t *testing.T) {
	good := `{"request":{"version":"2.0"},"msgBody":{"responseId":"9239cb50-a838-4bb0-ab50-3441bf089446","billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip","accountId":"acc"}}`
	cb, err := DecodeBillCallback([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cb.BillFileName != "20180702_9239cb50a8384bb0ab503441bf089446.zip" || cb.AccountID != "acc" ||
		cb.ResponseID != "9239cb50-a838-4bb0-ab50-3441bf089446" {
		t.Errorf("got %+v", cb)
	}
	for name, body := range map[string]string{
		"not json":       `{`,
		"no file name":   `{"msgBody":{"responseId":"x"}}`,
		"invalid utf-8":  "{\"msgBody\":{\"billFileName\":\"a\xffb\"}}",
		"control char":   `{"msgBody":{"billFileName":"a\nb"}}`,
		"wrong type":     `{"msgBody":{"billFileName":5}}`,
		"bad responseId": `{"msgBody":{"billFileName":"a.zip","responseId":"\u0000"}}`,
	} {
		if _, err := DecodeBillCallback([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSign_EmptyBody(t *testing.T) {
	s, _ := NewSigner("ak", "sk", nil)
	r, _ := http.NewRequest("POST", "http://h:1/p", bytes.NewReader(nil))
	r.Header.Set("Content-Type", "a/b")
	now := time.Now()
	if err := s.Sign(r, nil, now); err != nil {
		t.Fatal(err)
	}
	if r.Body != http.NoBody || r.ContentLength != 0 {
		t.Errorf("empty body: Body %v, ContentLength %d", r.Body, r.ContentLength)
	}
	if _, err := VerifyRequest(r, nil, func(string) (string, bool) { return "sk", true }, now, 0); err != nil {
		t.Fatal(err)
	}
}
