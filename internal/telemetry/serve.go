package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"
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

// Push gathers g and pushes it to the Pushgateway at url (its base URL, such as
// "http://pushgateway:9091") under the grouping key job=<job>, with an HTTP
// PUT: the group is replaced as a whole, so it always shows exactly the last
// run of a run-once process (a CronJob), and nothing from an earlier run
// lingers. A failed run therefore removes the previous last-success
// timestamp; the alert rules account for that (see docs/operations.md).
//
// The push is bounded by ctx and by a 30 s timeout. The gathered metrics must
// not carry a "job" label, which is why the archiver's metrics use "job_name".
func Push(ctx context.Context, url, job string, g prometheus.Gatherer) error {
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	err := push.New(url, job).
		Gatherer(g).
		Client(&http.Client{Timeout: pushTimeout}).
		PushContext(ctx)
	if err != nil {
		return fmt.Errorf("telemetry: push %s: %w", job, err)
	}
	return nil
}

// PushTimeout bounds a push (Push): a run-once process may spend its drain
// (shutdown.timeout) and then this long pushing, so a supervisor's grace
// period (terminationGracePeriodSeconds, TimeoutStopSec) must exceed both.
const PushTimeout = pushTimeout
