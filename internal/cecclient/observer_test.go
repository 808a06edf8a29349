package cecclient

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// recorder is an Observer that keeps every RequestInfo.
type recorder struct {
	mu  sync.Mutex
	got []RequestInfo
}

func (r *recorder) Request(ri RequestInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ri)
}

func (r *recorder) infos() []RequestInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RequestInfo(nil), r.got...)
}

// attempt is what TestClient_Observer checks of one RequestInfo.
type attempt struct {
	status    int
	code      string
	failed    bool
	class     Class
	throttled bool
	retry     bool
}

func TestClient_Observer(t *testing.T) {
	cases := []struct {
		name    string
		handler handlerFunc
		want    []attempt
	}{
		{
			name:    "success",
			handler: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) { writeFile(w, "", wavBytes(64)) },
			want:    []attempt{{status: 200}},
		},
		{
			name: "500 retried",
			handler: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				if hit == 1 {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				writeFile(w, "", wavBytes(64))
			},
			want: []attempt{{status: 500, failed: true, class: Transient, retry: true}, {status: 200}},
		},
		{
			name: "500 until attempts run out",
			handler: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.WriteHeader(http.StatusInternalServerError)
			},
			want: []attempt{
				{status: 500, failed: true, class: Transient, retry: true},
				{status: 500, failed: true, class: Transient, retry: true},
				{status: 500, failed: true, class: Transient},
			},
		},
		{
			name: "401 twice",
			handler: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.WriteHeader(http.StatusUnauthorized)
			},
			want: []attempt{
				{status: 401, failed: true, class: Permanent, retry: true},
				{status: 401, failed: true, class: Permanent},
			},
		},
		{
			name: "flow control then success",
			handler: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				if hit == 1 {
					writeResult(w, cecwire.CodeDownloadFlowCtl, "download flow control")
					return
				}
				writeFile(w, "", wavBytes(64))
			},
			want: []attempt{
				{status: 200, code: cecwire.CodeDownloadFlowCtl, failed: true, class: Transient, throttled: true, retry: true},
				{status: 200},
			},
		},
		{
			name:    "not found",
			handler: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) { notFound(ServiceFS, w) },
			want:    []attempt{{status: 200, code: "0300012", failed: true, class: NotFound}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: tc.handler})
			var rec recorder
			c := newTestClient(t, ts.URL, func(o *Options) { o.Observer = &rec; o.MaxAttempts = 3 })
			d, err := c.DownloadRecordFile(context.Background(), "Y:/1/rec.wav")
			if err == nil {
				d.Body.Close()
			}
			got := rec.infos()
			if len(got) != len(tc.want) {
				t.Fatalf("%d attempts observed, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, ri := range got {
				w := tc.want[i]
				if ri.Service != ServiceFS || ri.Op != "download record file" || ri.Attempt != i+1 {
					t.Errorf("attempt %d: service %q op %q attempt %d", i+1, ri.Service, ri.Op, ri.Attempt)
				}
				if ri.HTTPStatus != w.status || ri.ResultCode != w.code || (ri.Err != nil) != w.failed ||
					ri.Throttled != w.throttled || ri.Retry != w.retry || (w.failed && ri.Class != w.class) {
					t.Errorf("attempt %d: status %d code %q err %v class %v throttled %v retry %v, want %+v",
						i+1, ri.HTTPStatus, ri.ResultCode, ri.Err, ri.Class, ri.Throttled, ri.Retry, w)
				}
				if ri.Duration <= 0 {
					t.Errorf("attempt %d: duration %v", i+1, ri.Duration)
				}
			}
			if last := got[len(got)-1]; (last.Err == nil) != (err == nil) {
				t.Errorf("last attempt err %v, call err %v", last.Err, err)
			}
		})
	}

	t.Run("OIFDE token refresh is a retry", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				if hit == 1 {
					writeJSON(w, map[string]any{"errorCode": 900001, "errorMessage": "token expired"})
					return
				}
				transferPage(w, 1, "1")
			},
		})
		var rec recorder
		c := newTestClient(t, ts.URL, func(o *Options) { o.Observer = &rec })
		if _, errs := collectTransfers(t, c, OIFDEQuery{CallID: "c", PageSize: 5}); len(errs) > 0 {
			t.Fatalf("errs = %v", errs)
		}
		var ops []string
		for _, ri := range rec.infos() {
			ops = append(ops, ri.Op)
			if ri.Service != ServiceOIFDE {
				t.Errorf("%s: service %q", ri.Op, ri.Service)
			}
			if ri.Err != nil && !ri.Retry {
				t.Errorf("%s: failed attempt %v not marked Retry", ri.Op, ri.Err)
			}
		}
		if len(ops) != 4 || ops[0] != opGetToken || ops[2] != opGetToken {
			t.Errorf("observed ops %q, want get token, query, get token, query", ops)
		}
	})
}

func TestClient_ObserverPaging(t *testing.T) {
	var calls atomic.Int32
	ts := newTestServer(t, map[string]handlerFunc{
		cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
		cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			transferPage(w, 1000, "1", "2", "3", "4", "5") // a total beyond MaxPages
		},
	})
	var rec recorder
	c := newTestClient(t, ts.URL, func(o *Options) { o.Observer = &rec; o.MaxPages = 2 })
	if _, errs := collectTransfers(t, c, OIFDEQuery{CallID: "c", PageSize: 5}); len(errs) != 1 || !errors.Is(errs[0], ErrInvalidAnswer) {
		t.Fatalf("errs = %v", errs)
	}
	var final []RequestInfo
	for _, ri := range rec.infos() {
		if ri.Err != nil && !ri.Retry {
			final = append(final, ri)
		}
	}
	if len(final) != 1 || final[0].Attempt != 0 || !IsContentError(final[0].Err) || final[0].Class != Permanent {
		t.Errorf("final failures observed: %+v, want one refusal with Attempt 0", final)
	}
}
