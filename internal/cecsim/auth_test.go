package cecsim

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Vector A of cec-api.md §1.5.
const (
	vectorABody      = `{"request":{"version":"2.0"},"msgBody":{"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip"}}`
	vectorATimestamp = "2018-07-02T02:45:50Z"
	vectorASigningKy = "15da3faa4ff70104067ff5be538d2c14ed774d7b79ef695c4b69826af677706c"
	vectorAAuth      = "auth-v2/exampleAK/2018-07-02T02:45:50Z/content-length;content-type;host/55250d9fc43b78932de18bb8ddaeff3288d000368a9ffb20e428337cb9d28bdd"
)

var vectorACanonical = strings.Join([]string{
	"POST",
	"/CCFS/resource/ccfs/downloadBillFile",
	"content-length;content-type;host",
	"content-length:104",
	"content-type:application%2Fjson%3Bcharset%3DUTF-8",
	"host:10.0.0.1%3A28443",
	"%7B%22request%22%3A%7B%22version%22%3A%222.0%22%7D%2C%22msgBody%22%3A%7B%22billFileName%22%3A%2220180702_9239cb50a8384bb0ab503441bf089446.zip%22%7D%7D",
}, "\n")

func vectorARequest(auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, cecwire.PathDownloadBillFile, strings.NewReader(vectorABody))
	r.Host = "10.0.0.1:28443"
	r.Header.Set("Content-Type", "application/json;charset=UTF-8")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func lookupExample(ak string) (string, bool) {
	if ak == testAK {
		return testSK, true
	}
	return "", false
}

func vectorANow() time.Time { return time.Date(2018, time.July, 2, 2, 45, 50, 0, time.UTC) }

func TestVerifyAuthV2_VectorA(t *testing.T) {
	if len(vectorABody) != 104 {
		t.Fatalf("body is %d bytes, the vector says 104", len(vectorABody))
	}
	prefix := authStringPrefix(testAK, vectorATimestamp, "content-length;content-type;host")
	t.Run("SigningKey", func(t *testing.T) {
		if got := hexHMAC(testSK, prefix); got != vectorASigningKy {
			t.Errorf("SigningKey = %s, want %s", got, vectorASigningKy)
		}
	})
	t.Run("CanonicalRequest", func(t *testing.T) {
		got := canonicalRequest(http.MethodPost, cecwire.PathDownloadBillFile, nil, "content-length;content-type;host",
			map[string]string{"content-length": "104", "content-type": "application/json;charset=UTF-8", "host": "10.0.0.1:28443"},
			[]byte(vectorABody))
		if got != vectorACanonical {
			t.Errorf("canonical request:\n%s\nwant:\n%s", got, vectorACanonical)
		}
	})
	t.Run("Authorization", func(t *testing.T) {
		got := signAuthV2(testAK, testSK, vectorANow(), http.MethodPost, cecwire.PathDownloadBillFile, nil,
			map[string]string{"content-length": "104", "content-type": "application/json;charset=UTF-8", "host": "10.0.0.1:28443"},
			[]byte(vectorABody))
		if got != vectorAAuth {
			t.Errorf("signAuthV2 = %s\nwant %s", got, vectorAAuth)
		}
		test := testSign(http.MethodPost, cecwire.PathDownloadBillFile, "",
			map[string]string{"content-length": "104", "content-type": "application/json;charset=UTF-8", "host": "10.0.0.1:28443"},
			[]byte(vectorABody), testAK, testSK, vectorATimestamp)
		if test != vectorAAuth {
			t.Errorf("test signer = %s\nwant %s", test, vectorAAuth)
		}
	})
	t.Run("Verify", func(t *testing.T) {
		ak, err := VerifyAuthV2(vectorARequest(vectorAAuth), []byte(vectorABody), lookupExample, vectorANow(), 15*time.Minute)
		if err != nil || ak != testAK {
			t.Fatalf("VerifyAuthV2 = %q, %v; want %q", ak, err, testAK)
		}
	})
}

func TestVerifyAuthV2_Rejections(t *testing.T) {
	body := []byte(vectorABody)
	host := "10.0.0.1:28443"
	std := map[string]string{"content-length": "104", "content-type": "application/json;charset=UTF-8", "host": host}
	sign := func(headers map[string]string, ts string) string {
		return testSign(http.MethodPost, cecwire.PathDownloadBillFile, "", headers, body, testAK, testSK, ts)
	}
	prefixed := func(signed, sig string) string {
		return "auth-v2/" + testAK + "/" + vectorATimestamp + "/" + signed + "/" + sig
	}
	validSig := vectorAAuth[strings.LastIndexByte(vectorAAuth, '/')+1:]
	cases := []struct {
		name   string
		auth   string
		mutate func(r *http.Request)
		body   []byte
		want   error
	}{
		{name: "missing", auth: "", want: errAuthMissing},
		{name: "other scheme", auth: strings.Replace(vectorAAuth, "auth-v2", "auth-v1", 1), want: errAuthMalformed},
		{name: "four parts", auth: "auth-v2/exampleAK/2018-07-02T02:45:50Z/" + validSig, want: errAuthMalformed},
		{name: "uppercase signature", auth: prefixed("content-length;content-type;host", strings.ToUpper(validSig)), want: errAuthMalformed},
		{name: "short signature", auth: prefixed("content-length;content-type;host", validSig[:63]), want: errAuthMalformed},
		{name: "unknown AK", auth: strings.Replace(vectorAAuth, testAK, "otherAK", 1), want: errAuthUnknownAK},
		{name: "milliseconds", auth: strings.Replace(vectorAAuth, "50Z", "50.123Z", 1), want: errAuthTimestamp},
		{name: "no Z", auth: strings.Replace(vectorAAuth, "50Z", "50", 1), want: errAuthTimestamp},
		{name: "skew", auth: sign(std, "2018-07-02T02:30:49Z"), want: errAuthSkew},
		{name: "future skew", auth: sign(std, "2018-07-02T03:00:51Z"), want: errAuthSkew},
		{name: "no host", auth: sign(map[string]string{"content-length": "104", "content-type": "application/json;charset=UTF-8"}, vectorATimestamp), want: errAuthNoHost},
		{name: "unsorted", auth: prefixed("host;content-type", validSig), want: errAuthHeaderOrder},
		{name: "uppercase name", auth: prefixed("Content-Type;host", validSig), want: errAuthHeaderOrder},
		{name: "duplicate name", auth: prefixed("host;host", validSig), want: errAuthHeaderOrder},
		{name: "empty name", auth: prefixed("content-type;;host", validSig), want: errAuthHeaderOrder},
		{name: "signed header absent", auth: sign(map[string]string{"host": host, "x-trace": "1"}, vectorATimestamp), want: errAuthHeaderAbsent},
		{name: "chunked with content-length signed", auth: vectorAAuth, mutate: func(r *http.Request) { r.ContentLength = -1 }, want: errAuthHeaderAbsent},
		{name: "body changed", auth: vectorAAuth, body: bytes.Replace(body, []byte("2018"), []byte("2019"), 1), mutate: func(r *http.Request) { r.ContentLength = 104 }, want: errAuthMismatch},
		{name: "host changed", auth: vectorAAuth, mutate: func(r *http.Request) { r.Host = "10.0.0.1" }, want: errAuthMismatch},
		{name: "content-type changed", auth: vectorAAuth, mutate: func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=UTF-8") }, want: errAuthMismatch},
		{name: "query added", auth: vectorAAuth, mutate: func(r *http.Request) { r.URL.RawQuery = "locationId=1" }, want: errAuthMismatch},
		{name: "wrong SK", auth: testSign(http.MethodPost, cecwire.PathDownloadBillFile, "", std, body, testAK, "otherSK", vectorATimestamp), want: errAuthMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := vectorARequest(tc.auth)
			if tc.mutate != nil {
				tc.mutate(r)
			}
			b := body
			if tc.body != nil {
				b = tc.body
			}
			_, err := VerifyAuthV2(r, b, lookupExample, vectorANow(), 15*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("host only and a query", func(t *testing.T) {
		// hpsdemo signs only host; the query string is part of the canonical request.
		r := vectorARequest("")
		r.URL.RawQuery = "locationId=256&a=%2F+b"
		r.Header.Set("Authorization", testSign(http.MethodPost, cecwire.PathDownloadBillFile, r.URL.RawQuery,
			map[string]string{"host": host}, body, testAK, testSK, vectorATimestamp))
		if _, err := VerifyAuthV2(r, body, lookupExample, vectorANow(), 15*time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("empty body", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, cecwire.PathDownloadBillFile, http.NoBody)
		r.Host = host
		r.Header.Set("Authorization", testSign(http.MethodPost, cecwire.PathDownloadBillFile, "",
			map[string]string{"host": host, "content-length": "0"}, nil, testAK, testSK, vectorATimestamp))
		if _, err := VerifyAuthV2(r, nil, lookupExample, vectorANow(), 15*time.Minute); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServer_AuthFailure(t *testing.T) {
	s, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	for _, p := range []string{cecwire.PathDownloadRecordFile, cecwire.PathCMSDownloadRecordFile} {
		req := c.signedRequest(p, "", []byte(`{}`))
		req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), testAK, "nobody", 1))
		resp := c.do(req)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "unknown AK") ||
			resp.Header.Get("Content-Type") != cecwire.ContentTypeJSON {
			t.Fatalf("%s: HTTP %d %s", p, resp.StatusCode, b)
		}
	}
	// A signature made 20 minutes ago.
	c.now = func() time.Time { return testNow().Add(-20 * time.Minute) }
	resp := c.ccfs(cecwire.PathDownloadRecordFile, "", cecwire.FileNameBody{FileName: "x"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("skewed: HTTP %d", resp.StatusCode)
	}
	if got := s.Stats().AuthFailures; got != 3 {
		t.Fatalf("AuthFailures = %d, want 3", got)
	}
	// OIFDE is not signed.
	resp = c.oifde(cecwire.PathGetToken, cecwire.GetTokenRequest{AppKey: "x", AppSecret: "y"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gettoken: HTTP %d", resp.StatusCode)
	}
}
