package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// startServe runs Serve on a free port and returns its base URL, the function
// that stops it, and the channel Serve's result arrives on.
func startServe(t *testing.T) (base string, stop context.CancelFunc, result <-chan error) {
	t.Helper()
	m, reg := newMetrics(t)
	exercise(m)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- telemetry.Serve(ctx, "127.0.0.1:0", reg, zap.NewNop(), func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		t.Cleanup(cancel)
		return "http://" + a.String(), cancel, errc
	case err := <-errc:
		cancel()
		t.Fatalf("Serve returned before listening: %v", err)
	}
	return "", nil, nil
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestServe(t *testing.T) {
	base, stop, result := startServe(t)

	t.Run("metrics", func(t *testing.T) {
		code, body := get(t, http.MethodGet, base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics: status %d", code)
		}
		for _, name := range telemetry.Names() {
			if !strings.Contains(body, "\n# TYPE "+name+" ") {
				t.Errorf("scrape lacks %s", name)
			}
		}
		problems, err := promlint.New(strings.NewReader(body)).Lint()
		if err != nil {
			t.Fatalf("promlint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	})
	t.Run("healthz", func(t *testing.T) {
		code, body := get(t, http.MethodGet, base+"/healthz")
		if code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET /healthz = %d %q, want 200 \"ok\\n\"", code, body)
		}
	})
	t.Run("landing page", func(t *testing.T) {
		code, body := get(t, http.MethodGet, base+"/")
		if code != http.StatusOK || !strings.Contains(body, `href="metrics"`) || !strings.Contains(body, `href="healthz"`) {
			t.Errorf("GET / = %d %q, want 200 and links to metrics and healthz", code, body)
		}
		// Only "/" itself: other paths stay unknown.
		if code, _ := get(t, http.MethodGet, base+"/metricz"); code != http.StatusNotFound {
			t.Errorf("GET /metricz: status %d, want 404", code)
		}
	})
	t.Run("other method", func(t *testing.T) {
		if code, _ := get(t, http.MethodPost, base+"/metrics"); code != http.StatusMethodNotAllowed {
			t.Errorf("POST /metrics: status %d, want 405", code)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		if code, _ := get(t, http.MethodGet, base+"/debug/pprof/"); code != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/: status %d, want 404", code)
		}
	})
	t.Run("stops when ctx ends", func(t *testing.T) {
		stop()
		if err := <-result; err != nil {
			t.Fatalf("Serve after cancel = %v, want nil", err)
		}
		if _, err := http.Get(base + "/healthz"); err == nil {
			t.Error("server still answers after Serve returned")
		}
	})
}

func TestServe_ListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	called := false
	_, reg := newMetrics(t)
	// The context never ends: Serve must return on its own.
	err = telemetry.Serve(context.Background(), ln.Addr().String(), reg, nil, func(net.Addr) { called = true })
	if err == nil || !strings.HasPrefix(err.Error(), "telemetry: listen ") {
		t.Errorf("Serve on a busy port = %v, want a telemetry: listen error", err)
	}
	if called {
		t.Error("ready was called although listening failed")
	}
}

// pushRecorder is a fake Pushgateway that records the last request.
type pushRecorder struct {
	mu     sync.Mutex
	method string
	path   string
	body   string
	status int
}

func (p *pushRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.method, p.path, p.body = r.Method, r.URL.Path, string(b)
	w.WriteHeader(p.status)
}

func TestPush(t *testing.T) {
	t.Run("puts the group", func(t *testing.T) {
		rec := &pushRecorder{status: http.StatusOK}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		m, reg := newMetrics(t)
		exercise(m)
		if err := telemetry.Push(context.Background(), srv.URL, "cec-archiver", reg); err != nil {
			t.Fatalf("Push: %v", err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.method != http.MethodPut {
			t.Errorf("method = %s, want PUT", rec.method)
		}
		if rec.path != "/metrics/job/cec-archiver" {
			t.Errorf("path = %s, want /metrics/job/cec-archiver", rec.path)
		}
		if !strings.Contains(rec.body, "archiver_job_runs_total") {
			t.Errorf("body lacks archiver_job_runs_total (%d bytes)", len(rec.body))
		}
	})
	t.Run("gateway error", func(t *testing.T) {
		rec := &pushRecorder{status: http.StatusInternalServerError}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		_, reg := newMetrics(t)
		err := telemetry.Push(context.Background(), srv.URL, "cec-archiver", reg)
		if err == nil || !strings.HasPrefix(err.Error(), "telemetry: push cec-archiver: ") {
			t.Errorf("Push to a failing gateway = %v, want a telemetry: push error", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		rec := &pushRecorder{status: http.StatusOK}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		_, reg := newMetrics(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := telemetry.Push(ctx, srv.URL, "cec-archiver", reg); err == nil {
			t.Error("Push with a cancelled context succeeded")
		}
	})
}
