package main

// The pushed metrics against the real thing: Debian's prometheus-pushgateway
// and prometheus, run by the test on 127.0.0.1 (scripts/gates.sh
// install-pushgateway and install-promtool install them). Without them the
// tests skip, saying so; .ci/required-tests makes that skip fail CI.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// server is a binary the test started; it is killed at cleanup.
type server struct {
	url string
	log string
}

// startServer runs bin with args (ADDR in them is replaced by a free
// 127.0.0.1 port) and waits until GET ready answers 200. A missing binary
// skips the test, naming what installs it.
func startServer(t *testing.T, bin, install, ready string, args ...string) *server {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s is not installed (%v): run %s", bin, err, install)
	}
	addr := freeAddr(t)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "ADDR", addr)
	}
	logf := filepath.Join(t.TempDir(), bin+".log")
	out, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	s := &server{url: "http://" + addr, log: logf}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf)
			t.Fatalf("%s did not get ready on %s: %v\n%s", bin, addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getJSON decodes the JSON answer to GET u into v.
func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", u, resp.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, b)
	}
}

// pushedGroup is one group of the Pushgateway's /api/v1/metrics.
type pushedGroup struct {
	labels   map[string]string
	pushTime float64
	series   map[string][]pushedSeries // family → series
}

type pushedSeries struct {
	Labels map[string]string `json:"labels"`
	Value  string            `json:"value"`
}

// pushedGroups reads every group the Pushgateway holds, keyed by
// "tenant/archiver_job" ("" for the process's group).
func pushedGroups(t *testing.T, gw *server) map[string]pushedGroup {
	t.Helper()
	var body struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	getJSON(t, gw.url+"/api/v1/metrics", &body)
	out := map[string]pushedGroup{}
	for _, g := range body.Data {
		pg := pushedGroup{series: map[string][]pushedSeries{}}
		if err := json.Unmarshal(g["labels"], &pg.labels); err != nil {
			t.Fatal(err)
		}
		for name, raw := range g {
			if !strings.HasPrefix(name, "archiver_") && name != "push_time_seconds" {
				continue
			}
			var fam struct {
				Metrics []pushedSeries `json:"metrics"`
			}
			if err := json.Unmarshal(raw, &fam); err != nil {
				t.Fatalf("family %s: %v", name, err)
			}
			if name == "push_time_seconds" {
				pg.pushTime, _ = strconv.ParseFloat(fam.Metrics[0].Value, 64)
				continue
			}
			pg.series[name] = fam.Metrics
		}
		key := pg.labels["tenant"] + "/" + pg.labels["archiver_job"]
		if _, dup := out[key]; dup {
			t.Errorf("two groups for %s", key)
		}
		out[key] = pg
	}
	return out
}

// TestCmdOnce_Pushgateway: two tenants push full passes of once to one
// real Pushgateway, then one tenant runs once --job ivr. Every job of each
// tenant keeps its own group with its series; only ivr's group and the
// process's are replaced. Then a real Prometheus scrapes the Pushgateway
// (honor_labels, as deploy/k8s/monitoring does) and every query of the
// Grafana dashboard, its variables set to the pushed job, instance and
// tenant, returns data.
func TestCmdOnce_Pushgateway(t *testing.T) {
	gw := startServer(t, "prometheus-pushgateway", "scripts/gates.sh install-pushgateway", "/-/ready",
		// Debian's build persists to /var/lib/prometheus by default: keep
		// this one's groups in memory, its own.
		"--web.listen-address=ADDR", "--persistence.file=")
	const instance = "archiver-cronjob"
	tenants := []string{testTenant, "tenant-b"}
	envs := map[string]*testEnv{}
	for _, tenant := range tenants {
		e := newTenantEnv(t, tenant, nil, "")
		e.env["ARCHIVER_METRICS_PUSHGATEWAY_URL"] = gw.url
		e.env["ARCHIVER_METRICS_PUSH_INSTANCE"] = instance
		envs[tenant] = e
		if code, out, errOut := e.run("once", "--config", e.config); code != exitOK {
			t.Fatalf("%s: once = %d\nstdout:\n%s\nstderr:\n%s", tenant, code, out, errOut)
		}
	}
	jobs := []string{"cdr", "recordings", "transfer", "ivr"}
	check := func(t *testing.T, groups map[string]pushedGroup) {
		t.Helper()
		for _, tenant := range tenants {
			for _, job := range append([]string{""}, jobs...) {
				g, ok := groups[tenant+"/"+job]
				if !ok {
					t.Errorf("no group for tenant %s, archiver_job %q", tenant, job)
					continue
				}
				if g.labels["job"] != "cec-archiver" || g.labels["instance"] != instance {
					t.Errorf("group %s/%s: labels %v", tenant, job, g.labels)
				}
				if job == "" {
					for _, n := range []string{"archiver_build_info", "archiver_items", "archiver_shutdowns_total", "archiver_watermark_timestamp_seconds"} {
						if len(g.series[n]) == 0 {
							t.Errorf("the process's group of %s has no %s", tenant, n)
						}
					}
					// Every job's last success, read from the state by
					// every pass, whichever jobs it ran.
					var succeeded []string
					for _, s := range g.series["archiver_job_last_success_timestamp_seconds"] {
						succeeded = append(succeeded, s.Labels["job_name"])
					}
					if slices.Sort(succeeded); !slices.Equal(succeeded, slices.Sorted(slices.Values(jobs))) {
						t.Errorf("the process's group of %s has the last success of %v, want every job's", tenant, succeeded)
					}
					continue
				}
				for _, n := range []string{"archiver_job_runs_total",
					"archiver_last_pass_items", "archiver_last_pass_timestamp_seconds", "archiver_last_pass_success"} {
					if len(g.series[n]) == 0 {
						t.Errorf("group %s/%s has no %s", tenant, job, n)
					}
					for _, s := range g.series[n] {
						if s.Labels["job_name"] != job {
							t.Errorf("group %s/%s holds %s%v", tenant, job, n, s.Labels)
						}
					}
				}
			}
		}
		if len(groups) != len(tenants)*(len(jobs)+1) {
			t.Errorf("%d groups, want %d: %v", len(groups), len(tenants)*(len(jobs)+1), slices.Sorted(maps.Keys(groups)))
		}
	}
	before := pushedGroups(t, gw)
	t.Run("full passes", func(t *testing.T) { check(t, before) })

	e := envs[testTenant]
	if code, out, errOut := e.run("once", "--config", e.config, "--job", "ivr"); code != exitOK {
		t.Fatalf("once --job ivr = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	after := pushedGroups(t, gw)
	t.Run("once --job ivr keeps the other jobs", func(t *testing.T) {
		check(t, after)
		for key, g := range after {
			replaced := g.pushTime > before[key].pushTime
			want := key == testTenant+"/ivr" || key == testTenant+"/"
			if replaced != want {
				t.Errorf("group %s: replaced %v, want %v (push time %v → %v)", key, replaced, want, before[key].pushTime, g.pushTime)
			}
		}
		// The cdr job's series are the full pass's, untouched.
		if !slices.EqualFunc(after[testTenant+"/cdr"].series["archiver_last_pass_timestamp_seconds"],
			before[testTenant+"/cdr"].series["archiver_last_pass_timestamp_seconds"],
			func(a, b pushedSeries) bool { return a.Value == b.Value }) {
			t.Error("the cdr job's last pass changed although only ivr ran")
		}
	})

	t.Run("dashboard queries", func(t *testing.T) {
		checkDashboard(t, gw, map[string]string{"job": "cec-archiver", "instance": instance, "tenant": testTenant})
	})
}

// checkDashboard starts Prometheus scraping gw every second and evaluates
// every query of the Grafana dashboard with vars substituted: each must
// return at least one sample.
func checkDashboard(t *testing.T, gw *server, vars map[string]string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: [%q]
`, strings.TrimPrefix(gw.url, "http://")), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := startServer(t, "prometheus", "scripts/gates.sh install-promtool (Debian's prometheus package)", "/-/ready",
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=ADDR")

	b, err := os.ReadFile("../../deploy/grafana/archiver-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, m := range regexp.MustCompile(`"expr": ("(?:[^"\\]|\\.)*")`).FindAllSubmatch(b, -1) {
		var e string
		if err := json.Unmarshal(m[1], &e); err != nil {
			t.Fatal(err)
		}
		exprs = append(exprs, e)
	}
	if len(exprs) < 20 {
		t.Fatalf("found %d dashboard queries, want the dashboard's", len(exprs))
	}
	subst := func(e string) string {
		e = strings.ReplaceAll(e, "$__rate_interval", "1m")
		for k, v := range vars {
			e = strings.ReplaceAll(e, "$"+k, regexp.QuoteMeta(v))
		}
		return e
	}
	query := func(e string) (n int, status string) {
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		getJSON(t, prom.url+"/api/v1/query?query="+url.QueryEscape(e), &r)
		return len(r.Data.Result), r.Status + r.Error
	}
	// Wait for a few scrapes: rate() needs two samples in its range.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := query(`count(archiver_build_info) and count(count_over_time(archiver_build_info[1m]) >= 3)`)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(prom.log)
			t.Fatalf("Prometheus has not scraped the Pushgateway three times in 30s\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, e := range exprs {
		q := subst(e)
		if n, status := query(q); n == 0 {
			t.Errorf("dashboard query returns no data for the pushed series (%s):\n%s", status, q)
		}
	}
	// The variables do filter: another tenant's value selects nothing.
	other := map[string]string{"job": vars["job"], "instance": vars["instance"], "tenant": "no-such-tenant"}
	for _, e := range exprs[:1] {
		q := e
		for k, v := range other {
			q = strings.ReplaceAll(q, "$"+k, v)
		}
		if n, _ := query(q); n != 0 {
			t.Errorf("%s with tenant no-such-tenant returns %d series", e, n)
		}
	}
}
