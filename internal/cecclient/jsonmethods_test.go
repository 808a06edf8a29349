package cecclient

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// jsonMethod is one of the interfaces that answer JSON, with a success answer.
type jsonMethod struct {
	name    string
	path    string
	call    func(c *Client) error
	success handlerFunc
}

func firstErr[T any](seq func(func(T, error) bool)) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

var jsonMethods = []jsonMethod{
	{
		name: "GetToken", path: cecwire.PathGetToken,
		call: func(c *Client) error { _, err := c.GetToken(context.Background()); return err },
		success: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, cecwire.GetTokenResponse{AuthToken: testToken, ExpireTime: 3600})
		},
	},
	{
		name: "QueryTransferRecords", path: cecwire.PathQueryTransferRecords,
		call: func(c *Client) error {
			return firstErr(c.QueryTransferRecords(context.Background(), OIFDEQuery{CallID: "c"}))
		},
		success: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) { transferPage(w, 1, "t1") },
	},
	{
		name: "QueryRecordHistory", path: cecwire.PathQueryRecordHistory,
		call: func(c *Client) error {
			return firstErr(c.QueryRecordHistory(context.Background(), OIFDEQuery{CallID: "c"}))
		},
		success: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"errorCode": 0, "total": 1, "recordList": []any{map[string]any{"logId": "l1"}}})
		},
	},
	{
		name: "QueryBillData", path: cecwire.PathQueryBillData,
		call: func(c *Client) error {
			_, err := c.QueryBillData(context.Background(), BillQuery{Begin: time.Now().Add(-time.Hour), End: time.Now(), CallBackURL: "https://cb.example/"})
			return err
		},
		success: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"resultCode": "0", "resultData": map[string]any{"responseId": "r"}})
		},
	},
	{
		name: "UploadFile", path: cecwire.PathUploadFile,
		call: func(c *Client) error {
			_, err := c.UploadFile(context.Background(), 53, makeWAV(WAVFormatMuLaw, 10))
			return err
		},
		success: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"resultCode": "0", "resultData": map[string]any{"fileName": "Y:/3rdfile/53/a.wav", "locationId": []string{"0"}}})
		},
	},
}

func TestClient_JSONMethodFaults(t *testing.T) {
	cases := []struct {
		name      string
		fail      func(w http.ResponseWriter) // the answer of the first attempt
		wantClass Class                       // class of the error; -1: the second attempt succeeds
		wantHits  int
	}{
		// A 401 is retried once: with a fresh signature (CC-FS) or a fresh
		// token (OIFDE queries); gettoken sends no signature or token.
		{"401 then success", func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) }, -1, 2},
		{"403 WAF", func(w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) }, Permanent, 1},
		{"500 then success", func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }, -1, 2},
		{"418 WAF then success", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, -1, 2},
		{"429 then success", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }, -1, 2},
		{"truncated JSON then success", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte(`{"resultCode":"0"`))
		}, -1, 2},
		{"malformed JSON", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
			w.Write([]byte(`{"resultCode":`))
		}, Permanent, 1},
	}
	for _, m := range jsonMethods {
		t.Run(m.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if tc.name == "401 then success" && m.path == cecwire.PathGetToken {
						tc.wantClass, tc.wantHits = Permanent, 1
					}
					var tokCalls atomic.Int32
					routes := map[string]handlerFunc{
						m.path: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
							if hit == 1 {
								tc.fail(w)
								return
							}
							m.success(w, r, body, hit)
						},
					}
					if m.path != cecwire.PathGetToken {
						routes[cecwire.PathGetToken] = tokenHandler(&tokCalls, 0, 3600)
					}
					ts := newTestServer(t, routes)
					err := m.call(newTestClient(t, ts.URL))
					if tc.wantClass < 0 {
						if err != nil {
							t.Fatalf("err = %v", err)
						}
					} else {
						if err == nil || Classify(err) != tc.wantClass {
							t.Fatalf("err = %v (%v), want %v", err, Classify(err), tc.wantClass)
						}
						var ae *APIError
						if tc.name[0] == '4' && (!errors.As(err, &ae) || ae.HTTPStatus == 200) {
							t.Errorf("err = %#v", ae)
						}
					}
					if n := ts.hitCount(m.path); n != tc.wantHits {
						t.Errorf("%d attempts, want %d", n, tc.wantHits)
					}
				})
			}
		})
	}
}
