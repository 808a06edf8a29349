package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// counterValue is the value of the series of family name with the one label
// l=v, or -1 when there is none.
func counterValue(t *testing.T, reg *prometheus.Registry, name, l, v string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lp := m.GetLabel(); len(lp) == 1 && lp[0].GetName() == l && lp[0].GetValue() == v {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func TestUpstreamObserver_Request(t *testing.T) {
	t.Run("the last attempt of a failed call counts", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		o := UpstreamObserver(telemetry.New(reg, "test", Labels()))
		transient := errors.New("boom")
		for _, ri := range []cecclient.RequestInfo{
			{Attempt: 1, HTTPStatus: 200}, // success
			{Attempt: 1, HTTPStatus: 500, Err: transient, Class: cecclient.Transient, Retry: true}, // retried
			{Attempt: 2, HTTPStatus: 500, Err: transient, Class: cecclient.Transient},              // given up
			{Attempt: 1, Err: transient, Class: cecclient.NotFound},
			{Attempt: 1, HTTPStatus: 401, Err: &cecclient.APIError{HTTPStatus: 401}, Retry: true},
			{Attempt: 2, HTTPStatus: 401, Err: &cecclient.APIError{HTTPStatus: 401}},
			{Attempt: 1, HTTPStatus: 200, Err: fmt.Errorf("x: %w", cecclient.ErrUnexpectedContent), Class: cecclient.Permanent},
			{Attempt: 1, HTTPStatus: 200, Err: &cecclient.APIError{HTTPStatus: 200, ResultCode: "0300004"}, Class: cecclient.Permanent},
		} {
			o.Request(ri)
		}
		for class, want := range map[string]float64{"transient": 1, "not-found": 1, "auth": 1, "permanent": 1, "content": 1} {
			if got := counterValue(t, reg, "archiver_upstream_errors_total", "class", class); got != want {
				t.Errorf("archiver_upstream_errors_total{class=%q} = %v, want %v", class, got, want)
			}
		}
	})
	t.Run("wired into a client", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/fail/") {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusUnauthorized)
		}))
		defer srv.Close()
		reg := prometheus.NewRegistry()
		c, err := cecclient.New(cecclient.Options{
			FSURL: srv.URL + "/fail", CMSURL: srv.URL, AK: "ak", SK: "sk-secret",
			MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, RateLimit: 1000,
			Observer: UpstreamObserver(telemetry.New(reg, "test", Labels())),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DownloadBillFile(context.Background(), "a.zip"); !cecclient.IsTransient(err) {
			t.Fatalf("DownloadBillFile: %v, want a transient error", err)
		}
		if _, err := c.CMSDownloadRecordFile(context.Background(), cecclient.CMSRecordRequest{CallID: "1-2"}); !cecclient.IsAuth(err) {
			t.Fatalf("CMSDownloadRecordFile: %v, want an auth error", err)
		}
		if got := counterValue(t, reg, "archiver_upstream_errors_total", "class", "transient"); got != 1 {
			t.Errorf("transient = %v, want 1 (three attempts, one failed call)", got)
		}
		if got := counterValue(t, reg, "archiver_upstream_errors_total", "class", "auth"); got != 1 {
			t.Errorf("auth = %v, want 1 (two attempts, one failed call)", got)
		}
	})
}

// observedSink fails Put with putErr and Stat with statErr.
type observedSink struct{ putErr, statErr error }

func (s observedSink) Put(context.Context, string, io.Reader, int64, sink.Meta) (sink.Object, error) {
	return sink.Object{}, s.putErr
}
func (s observedSink) Stat(context.Context, string) (sink.Object, error) {
	return sink.Object{}, s.statErr
}

func TestObserveSink(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name          string
		s             observedSink
		wantPut, stat float64
	}{
		{"success", observedSink{}, 0, 0},
		{"failures", observedSink{errors.New("disk full"), errors.New("timeout")}, 1, 1},
		{"answers are not failures",
			observedSink{fmt.Errorf("body: %w", recording.ErrNotRecording), fmt.Errorf("stat k: %w", sink.ErrNotFound)}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			s := ObserveSink(tc.s, telemetry.New(reg, "test", Labels()))
			s.Put(ctx, "k", strings.NewReader(""), 0, sink.Meta{})
			s.Stat(ctx, "k")
			if got := counterValue(t, reg, "archiver_sink_errors_total", "op", "put"); got != tc.wantPut {
				t.Errorf(`archiver_sink_errors_total{op="put"} = %v, want %v`, got, tc.wantPut)
			}
			if got := counterValue(t, reg, "archiver_sink_errors_total", "op", "stat"); got != tc.stat {
				t.Errorf(`archiver_sink_errors_total{op="stat"} = %v, want %v`, got, tc.stat)
			}
		})
	}
}
