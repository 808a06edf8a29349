package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// pushgateway is a Pushgateway stand-in that keeps the last push (the
// real one runs in TestCmdOnce_Pushgateway).
type pushgateway struct {
	mu     sync.Mutex
	method string
	path   string
	header http.Header
	body   []byte
	pushes int
}

func newPushgateway(t *testing.T) (*pushgateway, string) {
	t.Helper()
	g := &pushgateway{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.method, g.path, g.header, g.body = r.Method, r.URL.Path, r.Header.Clone(), body
		g.pushes++
		g.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return g, srv.URL
}

// shutdowns decodes the last push (in the exposition format its
// Content-Type names) and returns archiver_shutdowns_total by result.
func (g *pushgateway) shutdowns(t *testing.T) map[string]float64 {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pushes == 0 {
		t.Fatal("nothing was pushed")
	}
	// The process's group, pushed last: the key without archiver_job.
	if g.method != http.MethodPut || !strings.HasPrefix(g.path, "/metrics/job/cec-archiver/") || strings.Contains(g.path, "/archiver_job/") {
		t.Errorf("push %s %s, want PUT /metrics/job/cec-archiver/... (the process's group)", g.method, g.path)
	}
	dec := expfmt.NewDecoder(bytes.NewReader(g.body), expfmt.ResponseFormat(g.header))
	var out map[string]float64
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode the push (Content-Type %q): %v", g.header.Get("Content-Type"), err)
		}
		if mf.GetName() != "archiver_shutdowns_total" {
			continue
		}
		out = map[string]float64{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if out == nil {
		t.Fatal("the push holds no archiver_shutdowns_total")
	}
	return out
}

// TestCmdOnce_PushesShutdown: once counts how it stopped
// (archiver_shutdowns_total) before it pushes, so the Pushgateway shows
// clean for a plain run and abandoned for one whose drain budget ran out.
// forced, pushed even when once exits without waiting for its work, is
// TestCmdOnce_PushesForcedShutdown's.
func TestCmdOnce_PushesShutdown(t *testing.T) {
	for _, c := range []struct {
		name   string
		faults []cecsim.Fault
		extra  string
		signal bool
		want   string
	}{
		{name: "clean", want: shutdownClean},
		{
			// The download trickles a byte every 200ms; SIGTERM leaves it a
			// budget of 50ms.
			name:   "abandoned",
			faults: []cecsim.Fault{{Kind: cecsim.FaultTrickle, Path: cecwire.PathDownloadRecordFile, DelayMS: 200}},
			extra:  "\n[shutdown]\ntimeout = \"50ms\"\n",
			signal: true,
			want:   shutdownAbandoned,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, c.faults, c.extra)
			gw, url := newPushgateway(t)
			e.env["ARCHIVER_METRICS_PUSHGATEWAY_URL"] = url
			sigs := make(chan os.Signal, 1)
			if c.signal {
				go func() {
					// Signal once the first recording download is under way.
					for e.sim.Stats().Requests[cecwire.PathDownloadRecordFile] == 0 {
						time.Sleep(5 * time.Millisecond)
					}
					sigs <- syscall.SIGTERM
				}()
			}
			code, out, errOut := e.runWith(func(c *cli) { c.signals = sigs }, "once", "--config", e.config)
			if code == exitConfig || code == exitPermission {
				t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			t.Logf("once = %d", code)
			got := gw.shutdowns(t)
			for _, r := range []string{shutdownClean, shutdownAbandoned, shutdownForced} {
				want := 0.0
				if r == c.want {
					want = 1
				}
				if got[r] != want {
					t.Errorf("pushed archiver_shutdowns_total{result=%q} = %v, want %v (once = %d)\nstderr:\n%s", r, got[r], want, code, errOut)
				}
			}
		})
	}
}
