package cecclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Sync() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestClient_LogsNoSecrets drives every method, success and error paths, at
// DEBUG level with canary credentials and a canary phone number, and checks
// that no log line and no error string carries any of them.
func TestClient_LogsNoSecrets(t *testing.T) {
	var sink syncBuffer
	enc := zap.NewDevelopmentEncoderConfig()
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), &sink, zap.DebugLevel))

	var tokCalls atomic.Int32
	stale := atomic.Bool{}
	stale.Store(true)
	ts := newTestServer(t, map[string]handlerFunc{
		cecwire.PathGetToken: tokenHandler(&tokCalls, 0, 3600),
		cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			if stale.CompareAndSwap(true, false) {
				writeJSON(w, map[string]any{"errorCode": 900001, "errorMessage": "token " + testToken + "-1 expired"})
				return
			}
			if hit == 3 {
				writeJSON(w, map[string]any{"errorCode": 100002, "errorMessage": "bad userMobile " + testPhone})
				return
			}
			w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
			w.Write([]byte(`{"errorCode":0,"total":2,"transferRecordList":[{"id":"ok","callingNumber":"` + testPhone + `"},{"id":"x","startTime":"` + testPhone + `"}]}`))
		},
		cecwire.PathQueryRecordHistory: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"errorCode": 0, "total": 1, "recordList": []any{map[string]any{"logId": "L1", "callSorId": testPhone}}})
		},
		cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			switch hit {
			case 1:
				writeResult(w, cecwire.CodeQueryFlowCtl, "flow control")
			case 2:
				writeJSON(w, map[string]any{"resultCode": "0", "resultData": map[string]any{"responseId": "r-1"}})
			default:
				writeResult(w, cecwire.CodeParamFormat, "callId "+testPhone+" format wrong")
			}
		},
		cecwire.PathDownloadBillFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeFile(w, "", []byte("PK\x03\x04zip"))
		},
		cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			switch hit {
			case 1:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
			case 2:
				writeFile(w, testPhone+".wav", wavBytes(100))
			default:
				writeResult(w, cecwire.CodeNoData, "No data found for "+testPhone)
			}
		},
		cecwire.PathDownloadRecord: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			if hit == 1 {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			writeFile(w, "", wavBytes(10))
		},
		cecwire.PathDownloadOiapRecord: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
			w.Header().Set("Content-Length", "100000")
			w.Write(wavBytes(1000))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		},
		cecwire.PathCMSDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"resultData": "", "resultCode": "1", "resultDesc": "Record List is empty"})
		},
		cecwire.PathUploadFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeJSON(w, map[string]any{"resultCode": "0", "resultData": map[string]any{"fileName": "Y:/3rdfile/53/x.wav"}})
		},
	})
	c := newTestClient(t, ts.URL, func(o *Options) {
		o.Logger = logger
		o.StallTimeout = 150 * time.Millisecond
	})
	ctx := context.Background()
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	drain := func(d *Download, err error) {
		note(err)
		if d != nil {
			_, err := io.Copy(io.Discard, d.Body)
			note(err)
			d.Body.Close()
		}
	}

	_, err := c.GetToken(ctx)
	note(err)
	for _, q := range []OIFDEQuery{{UserMobile: testPhone}, {UserMobile: testPhone, PageSize: 3}, {UserMobile: testPhone}} {
		for _, err := range c.QueryTransferRecords(ctx, q) {
			note(err)
		}
	}
	for _, err := range c.QueryRecordHistory(ctx, OIFDEQuery{UserMobile: testPhone}) {
		note(err)
	}
	bq := BillQuery{Begin: time.Now().Add(-time.Hour), End: time.Now(), CallBackURL: "https://cb.example/", CallID: testPhone}
	for range 2 {
		_, err := c.QueryBillData(ctx, bq)
		note(err)
	}
	drain(c.DownloadBillFile(ctx, "20260301_abc.zip"))
	drain(c.DownloadRecordFile(ctx, "/10/1/record/100/20260301/1/"+testPhone+".wav"))
	drain(c.DownloadRecordFile(ctx, "/10/1/record/100/20260301/1/"+testPhone+".wav"))
	drain(c.DownloadRecord(ctx, DownloadRecordRequest{CallID: testPhone}))
	drain(c.DownloadOiapRecord(ctx, "Y:/39/odfsrecord/20201015/"+testPhone+".wav", testPhone))
	drain(c.CMSDownloadRecordFile(ctx, CMSRecordRequest{CallID: "1748587841-77268", CallerNo: testPhone, CalleeNo: testPhone}))
	_, err = c.UploadFile(ctx, 53, makeWAV(WAVFormatALaw, 100))
	note(err)
	_, err = c.UploadFile(ctx, 53, []byte(testPhone))
	note(err)

	// A server that is gone: transport errors carry the URL, never the query.
	dead := newTestClient(t, "http://127.0.0.1:1", func(o *Options) { o.Logger = logger; o.MaxAttempts = 1 })
	drain(dead.DownloadOiapRecord(ctx, "f.wav", testPhone))
	_, err = dead.GetToken(ctx)
	note(err)

	// Construction errors and the printed forms of the configuration.
	bad := testOptions("ftp://" + testAK + ":" + testSK + "@host")
	_, err = New(bad)
	note(err)
	printed := fmt.Sprintf("%v %+v %#v %v %s", c.o, c.o, c.o, c, c.String())

	logs := sink.String()
	if !strings.Contains(logs, `"op":"download record file"`) || !strings.Contains(logs, `"result_code":"0300009"`) {
		t.Fatalf("debug attempt logs missing:\n%s", logs)
	}
	if len(errs) < 8 {
		t.Fatalf("only %d errors collected; the error paths did not run: %v", len(errs), errs)
	}
	var all strings.Builder
	all.WriteString(logs)
	all.WriteString(printed)
	for _, e := range errs {
		all.WriteString(e.Error())
		all.WriteByte('\n')
	}
	text := all.String()
	for name, canary := range map[string]string{
		"AK": testAK, "SK": testSK, "API password": testPassword, "token": testToken,
		"phone number": testPhone, "Authorization": "auth-v2",
	} {
		if strings.Contains(text, canary) {
			i := strings.Index(text, canary)
			t.Errorf("%s leaked: …%s…", name, text[max(0, i-200):min(len(text), i+100)])
		}
	}
	// The log is valid JSON, one entry per line.
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %s", line)
		}
	}
}
