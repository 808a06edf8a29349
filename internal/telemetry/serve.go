package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
)

// Server limits. A scrape is small and local: generous but finite bounds keep
// a slow or stuck client from holding a connection or a goroutine forever.
const (
	readHeaderTimeout   = 5 * time.Second
	readTimeout         = 10 * time.Second
	writeTimeout        = 30 * time.Second
	idleTimeout         = 60 * time.Second
	gatherTimeout       = 20 * time.Second // below writeTimeout, so the 503 reaches the client
	maxRequestsInFlight = 4
	shutdownTimeout     = 5 * time.Second
	pushTimeout         = 30 * time.Second
)

// Serve runs the metrics server on addr until ctx ends, then shuts it down
// gracefully (at most 5 s for requests in progress). It serves
//
//	GET /         a small page that links the two below (as exporters have)
//	GET /metrics  the metrics gathered from g, in any format promhttp negotiates
//	GET /healthz  "ok": the process is up and serving
//
// Gathering errors are logged; the metrics that could be gathered are still
// served. ready, if non-nil, is called with the bound address once the server
// is listening (addr may be "127.0.0.1:0"). Serve returns a listen error at
// once, an error if the server stopped for another reason, and nil after a
// clean shutdown. A nil log logs nothing.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, log *zap.Logger, ready func(net.Addr)) error {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("metrics")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("telemetry: listen %s: %w", addr, err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxRequestsInFlight,
		Timeout:             gatherTimeout,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, landingPage)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          zap.NewStdLog(log),
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving metrics", zap.Stringer("addr", ln.Addr()))
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err := <-served:
		return fmt.Errorf("telemetry: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("telemetry: shut down %s: %w", ln.Addr(), err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("telemetry: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// landingPage is what GET / answers: where to look, as node_exporter's
// landing page says it. Nothing in it depends on the configuration.
const landingPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>cec-archiver</title></head>
<body>
<h1>cec-archiver</h1>
<p>Archives Huawei Cloud CEC call recordings and CDR packages into S3-compatible storage.</p>
<ul>
<li><a href="metrics">metrics</a>: the archiver's metrics, for Prometheus</li>
<li><a href="healthz">healthz</a>: "ok" while the process is up</li>
</ul>
</body>
</html>
`

// promLogger lets promhttp report gathering and encoding errors through zap.
type promLogger struct{ log *zap.Logger }

// Println implements promhttp.Logger.
func (l promLogger) Println(v ...any) {
	l.log.Error("serving metrics", zap.String("error", fmt.Sprint(v...)))
}

// Grouping is the Pushgateway grouping key of a run-once process's pushes
// (Push): job=Job, instance=Instance, and TenantLabel=Tenant when
// TenantLabel is not "".
type Grouping struct {
	Job         string // the "job" label; required
	Instance    string // the "instance" label; "" is the host name
	TenantLabel string // the label that carries Tenant; "" leaves the tenant out
	Tenant      string
}

// JobLabel is the grouping label of a job's own group (Push).
const JobLabel = "archiver_job"

// Push gathers g once and pushes it to the Pushgateway at url (its base
// URL, such as "http://pushgateway:9091") in groups under the grouping key
// gk, each with an HTTP PUT, which replaces the group as a whole. The jobs
// that ran are those with a last pass (archiver_last_pass_timestamp_seconds)
// in g; known says which kinds are whose (Known.JobKinds, PackageJob).
//
//   - one group per job that ran, gk plus archiver_job=<job>: the series of
//     its runs (those labelled job_name=<job>: runs, duration, running, last
//     pass) and those of the item kinds it works on (Known.JobKinds: items
//     processed, bytes archived; and the CDR packages with the cdr job);
//   - the process's group, gk alone: the gauges read from the state, of
//     every job (last success, watermark, items by state: the state's
//     newest view, whichever jobs ran), and the process's series (build
//     info, errors, ledgers, shutdowns).
//
// A run of some jobs (archiver once --job ivr) therefore replaces the
// groups of the jobs it ran and the process's, and never touches another
// job's group: each job's group always shows that job's last run. The
// series of jobs that did not run are not pushed. A PUT, not a POST: a POST
// replaces only the families it carries, so series a newer run no longer
// has (a label value gone) would linger.
//
// The pushes are bounded by ctx and by a 30 s timeout in all. The gathered
// metrics must not carry the grouping labels (job, instance, the tenant
// label, archiver_job), which is why the archiver's metrics use "job_name".
// Push stops at the first failed push.
func Push(ctx context.Context, url string, gk Grouping, known Known, g prometheus.Gatherer) error {
	if gk.Instance == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("telemetry: push: instance: %w", err)
		}
		gk.Instance = h
	}
	fams, err := g.Gather()
	if err != nil {
		return fmt.Errorf("telemetry: push: gather: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	client := &http.Client{Timeout: pushTimeout}
	ran := ranJobs(fams)
	groups := split(fams, ran, known)
	for _, job := range append(slices.Clone(ran), "") {
		p := push.New(url, gk.Job).Grouping("instance", gk.Instance).Client(client).
			Gatherer(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return groups[job], nil }))
		if gk.TenantLabel != "" {
			p = p.Grouping(gk.TenantLabel, gk.Tenant)
		}
		what := "the process's group"
		if job != "" {
			p = p.Grouping(JobLabel, job)
			what = "the group of job " + job
		}
		if err := p.PushContext(ctx); err != nil {
			return fmt.Errorf("telemetry: push %s: %w", what, err)
		}
	}
	return nil
}

// PushTimeout bounds a push (Push): a run-once process may spend its drain
// (shutdown.timeout) and then this long pushing, so a supervisor's grace
// period (terminationGracePeriodSeconds, TimeoutStopSec) must exceed both.
const PushTimeout = pushTimeout

// ranJobs are the jobs with a last pass in fams, sorted.
func ranJobs(fams []*dto.MetricFamily) []string {
	var ran []string
	for _, f := range fams {
		if f.GetName() != nameLastPassTimestamp {
			continue
		}
		for _, s := range f.GetMetric() {
			if job, ok := seriesJob(f.GetName(), s, nil, ""); ok {
				ran = append(ran, job)
			}
		}
	}
	slices.Sort(ran)
	return slices.Compact(ran)
}

// split sorts the series of fams into the groups Push sends: by job name
// for the jobs in ran, "" for the process's. The series of other jobs are
// left out.
func split(fams []*dto.MetricFamily, ran []string, known Known) map[string][]*dto.MetricFamily {
	kindJob := map[string]string{}
	for job, kinds := range known.JobKinds {
		for _, k := range kinds {
			kindJob[k] = job
		}
	}
	out := map[string][]*dto.MetricFamily{}
	for _, f := range fams {
		byGroup := map[string]*dto.MetricFamily{}
		for _, s := range f.GetMetric() {
			job, ok := seriesJob(f.GetName(), s, kindJob, known.PackageJob)
			if ok && !slices.Contains(ran, job) {
				continue
			}
			if !ok {
				job = ""
			}
			if byGroup[job] == nil {
				byGroup[job] = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
				out[job] = append(out[job], byGroup[job])
			}
			byGroup[job].Metric = append(byGroup[job].Metric, s)
		}
	}
	return out
}

// seriesJob is the job a series belongs to: its job_name label; for the
// per-kind counters, the job of its kind; packageJob for the CDR
// packages. ok false: it belongs to the process, as the gauges read from
// the state do.
func seriesJob(family string, s *dto.Metric, kindJob map[string]string, packageJob string) (job string, ok bool) {
	if family == nameJobLastSuccess || family == nameWatermark {
		return "", false
	}
	for _, l := range s.GetLabel() {
		switch {
		case l.GetName() == "job_name":
			return l.GetValue(), true
		case l.GetName() == "kind" && (family == nameItemsProcessed || family == nameArchivedBytes):
			job, ok := kindJob[l.GetValue()]
			return job, ok
		}
	}
	if family == nameCDRPackages && packageJob != "" {
		return packageJob, true
	}
	return "", false
}
