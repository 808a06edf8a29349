package telemetry_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

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

// pushRecorder is a fake Pushgateway that records every push: the
// Pushgateway itself is run by cmd/archiver's tests.
type pushRecorder struct {
	mu     sync.Mutex
	pushes map[string]string // path → body
	method string
	status int
}

func (p *pushRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pushes == nil {
		p.pushes = map[string]string{}
	}
	p.pushes[r.URL.Path], p.method = string(b), r.Method
	w.WriteHeader(p.status)
}

// families decodes a pushed body (protobuf delimited, as push sends it)
// into metric family names and their series' label sets.
func families(t *testing.T, body string) map[string][]map[string]string {
	t.Helper()
	out := map[string][]map[string]string{}
	dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("decode a push: %v", err)
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], l)
		}
	}
}

// groupingKey parses a push path, /metrics/job/<job>{/<label>/<value>}.
func groupingKey(t *testing.T, path string) map[string]string {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
	if len(parts)%2 != 0 {
		t.Fatalf("push path %s: odd number of parts", path)
	}
	key := map[string]string{}
	for i := 0; i < len(parts); i += 2 {
		key[parts[i]] = parts[i+1]
	}
	return key
}

func TestPush(t *testing.T) {
	gk := telemetry.Grouping{Job: "cec-archiver", Instance: "host-1", TenantLabel: "tenant", Tenant: "t1"}
	t.Run("a group per job that ran and one for the process", func(t *testing.T) {
		rec := &pushRecorder{status: http.StatusOK}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		m, reg := newMetrics(t)
		m.JobStarted("ivr")(nil)
		m.Item("ivr", "done")
		m.Item("agent", "done")
		m.Package("done")
		m.Watermark("cdr", time.Unix(1_700_000_000, 0))
		m.CheckpointError()
		if err := telemetry.Push(context.Background(), srv.URL, gk, known(), reg); err != nil {
			t.Fatalf("Push: %v", err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.method != http.MethodPut {
			t.Errorf("method = %s, want PUT", rec.method)
		}
		groups := map[string]string{} // archiver_job → body
		for path, body := range rec.pushes {
			key := groupingKey(t, path)
			job := key["archiver_job"]
			delete(key, "archiver_job")
			if want := map[string]string{"job": "cec-archiver", "instance": "host-1", "tenant": "t1"}; !maps.Equal(key, want) {
				t.Errorf("pushed to %s: grouping key %v, want %v", path, key, want)
			}
			groups[job] = body
		}
		if got := slices.Sorted(maps.Keys(groups)); !slices.Equal(got, []string{"", "ivr"}) {
			t.Fatalf("pushed groups archiver_job = %q, want the job that ran and the process's (\"\")", got)
		}
		job, proc := families(t, groups["ivr"]), families(t, groups[""])
		for _, n := range []string{"archiver_job_runs_total", "archiver_last_pass_timestamp_seconds"} {
			for _, l := range job[n] {
				if l["job_name"] != "ivr" {
					t.Errorf("ivr's group has %s%v", n, l)
				}
			}
			if len(job[n]) == 0 || len(proc[n]) != 0 {
				t.Errorf("%s: %d series in ivr's group, %d in the process's; want it with the job only", n, len(job[n]), len(proc[n]))
			}
		}
		for _, l := range job["archiver_items_processed_total"] {
			if l["kind"] != "ivr" && l["kind"] != "ivr_lookup" {
				t.Errorf("ivr's group has items_processed_total%v", l)
			}
		}
		if n := len(job["archiver_cdr_packages_total"]) + len(proc["archiver_cdr_packages_total"]); n != 0 {
			t.Errorf("archiver_cdr_packages_total of the cdr job, which did not run, was pushed (%d series)", n)
		}
		// The gauges read from the state go with the process, every job's.
		for _, n := range []string{"archiver_build_info", "archiver_checkpoint_errors_total", "archiver_items", "archiver_shutdowns_total",
			"archiver_job_last_success_timestamp_seconds", "archiver_watermark_timestamp_seconds"} {
			if len(proc[n]) == 0 || len(job[n]) != 0 {
				t.Errorf("%s: %d series in the process's group, %d in ivr's; want it with the process only", n, len(proc[n]), len(job[n]))
			}
		}
	})
	t.Run("no tenant label", func(t *testing.T) {
		rec := &pushRecorder{status: http.StatusOK}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		_, reg := newMetrics(t)
		gk := gk
		gk.TenantLabel = ""
		if err := telemetry.Push(context.Background(), srv.URL, gk, known(), reg); err != nil {
			t.Fatalf("Push: %v", err)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if paths := slices.Collect(maps.Keys(rec.pushes)); !slices.Equal(paths, []string{"/metrics/job/cec-archiver/instance/host-1"}) { // one label: no order to it
			t.Errorf("pushed to %v: no job ran, so the process's group only, without a tenant", paths)
		}
	})
	t.Run("gateway error", func(t *testing.T) {
		rec := &pushRecorder{status: http.StatusInternalServerError}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		_, reg := newMetrics(t)
		err := telemetry.Push(context.Background(), srv.URL, gk, known(), reg)
		if err == nil || !strings.HasPrefix(err.Error(), "telemetry: push the process's group: ") {
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
		if err := telemetry.Push(ctx, srv.URL, gk, known(), reg); err == nil {
			t.Error("Push with a cancelled context succeeded")
		}
	})
}
