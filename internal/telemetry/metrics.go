// Package telemetry defines the archiver's Prometheus metrics and exposes them:
// an HTTP server for a long-running daemon (Serve) and a Pushgateway push for a
// run-once process such as a Kubernetes CronJob (Push).
//
// Every metric is registered on a registry the caller builds and passes in,
// never on the global one. Label values are small enumerations (job names,
// item kinds, results, states, operations, error classes): never record IDs,
// URLs or phone numbers.
//
// The archiver's job name is exported in the label "job_name", not "job":
// Prometheus attaches its own "job" label (the scrape job) to every series, and
// the Pushgateway refuses pushed metrics that carry a "job" label.
package telemetry

import (
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "archiver"

// Metric family names. Names returns them all.
const (
	nameBuildInfo        = "archiver_build_info"
	nameJobRunning       = "archiver_job_running"
	nameJobRuns          = "archiver_job_runs_total"
	nameJobDuration      = "archiver_job_duration_seconds"
	nameJobLastSuccess   = "archiver_job_last_success_timestamp_seconds"
	nameItemsProcessed   = "archiver_items_processed_total"
	nameArchivedBytes    = "archiver_archived_bytes_total"
	nameCDRPackages      = "archiver_cdr_packages_total"
	nameWatermark        = "archiver_watermark_timestamp_seconds"
	nameItems            = "archiver_items"
	nameCheckpointErrors = "archiver_checkpoint_errors_total"
	nameLedgerObjects    = "archiver_ledger_objects_written_total"
	nameSinkErrors       = "archiver_sink_errors_total"
	nameUpstreamErrors   = "archiver_upstream_errors_total"
	nameShutdowns        = "archiver_shutdowns_total"
	nameLeaseLost        = "archiver_lease_lost_total"

	// The last pass of each job: what a pushed group shows whatever the
	// counters (which restart with every process) read.
	nameLastPassItems     = "archiver_last_pass_items"
	nameLastPassBytes     = "archiver_last_pass_bytes"
	nameLastPassDuration  = "archiver_last_pass_duration_seconds"
	nameLastPassTimestamp = "archiver_last_pass_timestamp_seconds"
	nameLastPassSuccess   = "archiver_last_pass_success"
)

// Names lists every metric family name New registers, sorted. Dashboards,
// alert rules and docs are checked against it.
func Names() []string {
	names := []string{
		nameBuildInfo, nameJobRunning, nameJobRuns, nameJobDuration, nameJobLastSuccess,
		nameItemsProcessed, nameArchivedBytes, nameCDRPackages, nameWatermark, nameItems,
		nameCheckpointErrors, nameLedgerObjects, nameSinkErrors, nameUpstreamErrors, nameShutdowns,
		nameLeaseLost,
		nameLastPassItems, nameLastPassBytes, nameLastPassDuration, nameLastPassTimestamp, nameLastPassSuccess,
	}
	slices.Sort(names)
	return names
}

// Label values known in advance. Their series are created at zero by New, so
// that rate() and absent-series alerts work before the first event. They are
// functions, not package variables, so that nothing can change them.

// Known are the label values other packages own, passed in by main:
// telemetry imports none of them (they are siblings or upper floors).
type Known struct {
	Jobs   []string // job names (jobs.Jobs, config.JobNames)
	Kinds  []string // item kinds (checkpoint.Kinds) and the CDR package's (jobs.KindPackage)
	States []string // item states (checkpoint.States)
	// JobKinds maps each job to the item kinds it works on (and the cdr job
	// to the CDR package's kind): Push sends a kind's series with its job.
	JobKinds map[string][]string
	// PackageJob is the job that handles the CDR packages (cdr).
	PackageJob string
	// Build is the binary's build stamp, for archiver_build_info.
	Build Build
}

// Build is what archiver_build_info says of the binary besides its version
// and Go version: what archiver version prints.
type Build struct {
	Commit string // the VCS revision; "unknown" when empty
	Date   string // the build (or commit) time, RFC 3339; "unknown" when empty
}

// orUnknown keeps archiver_build_info's label set the same whatever the
// build recorded.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// knownItemResults are the outcomes Item counts.
func knownItemResults() []string {
	return []string{"done", "existed", "absent", "failed", "dead", "deferred", "released", "resolved"}
}

// knownPassResults are the results archiver_last_pass_items counts: the
// item outcomes of a run (resolved is an operator's, never a run's).
func knownPassResults() []string {
	return []string{"done", "existed", "absent", "failed", "dead", "deferred", "released"}
}

// knownPackageResults are the outcomes Package counts.
func knownPackageResults() []string { return []string{"done", "unchanged", "failed"} }

// knownSinkOps are the sink operations SinkError counts.
func knownSinkOps() []string { return []string{"put", "stat", "list", "open"} }

// knownUpstreamClasses are the CEC error classes UpstreamError counts.
func knownUpstreamClasses() []string {
	return []string{"transient", "not-found", "permanent", "auth", "content"}
}

// How the process stopped, as Shutdown counts it.
const (
	ShutdownClean     = "clean"     // no signal, or in-flight work finished within the budget
	ShutdownAbandoned = "abandoned" // the drain budget ran out: in-flight work was cancelled and released
	ShutdownForced    = "forced"    // a second signal: everything cancelled at once
)

// knownShutdownResults are the outcomes Shutdown counts.
func knownShutdownResults() []string {
	return []string{ShutdownClean, ShutdownAbandoned, ShutdownForced}
}

// Job run results (the "result" label of archiver_job_runs_total).
const (
	resultSuccess = "success"
	resultFailure = "failure"
)

// jobDurationBuckets span one second to six hours: a quick incremental run to
// a large backfill.
func jobDurationBuckets() []float64 {
	return []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 21600}
}

// Metrics holds the archiver's Prometheus metrics. Every method is a no-op on
// a nil *Metrics, so code that runs without metrics (tests, check-config)
// passes nil. Label values must come from the documented enumerations.
type Metrics struct {
	jobRunning       *prometheus.GaugeVec
	jobRuns          *prometheus.CounterVec
	jobDuration      *prometheus.HistogramVec
	jobLastSuccess   *prometheus.GaugeVec
	itemsProcessed   *prometheus.CounterVec
	archivedBytes    *prometheus.CounterVec
	cdrPackages      *prometheus.CounterVec
	watermark        *prometheus.GaugeVec
	items            *prometheus.GaugeVec
	checkpointErrors prometheus.Counter
	ledgerObjects    prometheus.Counter
	sinkErrors       *prometheus.CounterVec
	upstreamErrors   *prometheus.CounterVec
	shutdowns        *prometheus.CounterVec
	leaseLost        *prometheus.CounterVec
	lastPassItems    *prometheus.GaugeVec
	lastPassBytes    *prometheus.GaugeVec
	lastPassDuration *prometheus.GaugeVec
	lastPassTime     *prometheus.GaugeVec
	lastPassSuccess  *prometheus.GaugeVec

	known   Known
	itemsMu sync.Mutex // serialises SetItems' reset and refill

	successMu   sync.Mutex
	lastSuccess map[string]time.Time // per job: the newest of runs and the store (LastSuccess)
}

// New creates the metrics, registers them on reg (it panics if a name is
// already registered there, as prometheus.MustRegister does), creates the
// series of the known label values at zero and sets
// archiver_build_info{version,goversion,commit,date} to 1 (commit and date
// from known.Build).
func New(reg prometheus.Registerer, version string, known Known) *Metrics {
	m := &Metrics{
		known: Known{Jobs: slices.Clone(known.Jobs), Kinds: slices.Clone(known.Kinds), States: slices.Clone(known.States),
			JobKinds: maps.Clone(known.JobKinds), PackageJob: known.PackageJob},
		lastSuccess: map[string]time.Time{},
		jobRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "job_running",
			Help: "1 while a run of the job is in progress, else 0.",
		}, []string{"job_name"}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "job_runs_total",
			Help: "Finished job runs by result: failure when the run stopped on an error or recorded failed windows, packages, attempts or dead items; else success.",
		}, []string{"job_name", "result"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "job_duration_seconds",
			Help:    "Duration of finished job runs.",
			Buckets: jobDurationBuckets(),
		}, []string{"job_name"}),
		jobLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "job_last_success_timestamp_seconds",
			Help: "Unix time the job last finished a run without errors or failures (absent until it has).",
		}, []string{"job_name"}),
		itemsProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "items_processed_total",
			Help: "Items handled by kind and outcome (done, existed, absent, failed, dead, deferred, released).",
		}, []string{"kind", "result"}),
		archivedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "archived_bytes_total",
			Help: "Bytes stored in the sink by item kind.",
		}, []string{"kind"}),
		cdrPackages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cdr_packages_total",
			Help: "CDR packages handled by outcome (done, unchanged, failed).",
		}, []string{"result"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "watermark_timestamp_seconds",
			Help: "Unix time up to which the job has archived everything.",
		}, []string{"job_name"}),
		items: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "items",
			Help: "Items in the checkpoint store by kind and state.",
		}, []string{"kind", "state"}),
		checkpointErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "checkpoint_errors_total",
			Help: "Failed writes or reads of the checkpoint store.",
		}),
		ledgerObjects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ledger_objects_written_total",
			Help: "Ledger objects written to the sink.",
		}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sink_errors_total",
			Help: "Failed sink operations by operation (put, stat, list, open).",
		}, []string{"op"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "upstream_errors_total",
			Help: "Failed CEC requests by class (transient, not-found, permanent, auth, content).",
		}, []string{"class"}),
		shutdowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "shutdowns_total",
			Help: "Shutdowns by outcome: clean (drained), abandoned (drain timeout), forced (second signal).",
		}, []string{"result"}),
		leaseLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "lease_lost_total",
			Help: "Work given up because another replica took over its lease (this one stalled past it): items abandoned, CDR windows left to the other replica.",
		}, []string{"job_name"}),
		lastPassItems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_pass_items",
			Help: "Items the job's last finished run handled, by outcome (done, existed, absent, failed, dead, deferred, released).",
		}, []string{"job_name", "result"}),
		lastPassBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_pass_bytes",
			Help: "Bytes the job's last finished run stored in the sink.",
		}, []string{"job_name"}),
		lastPassDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_pass_duration_seconds",
			Help: "Duration of the job's last finished run.",
		}, []string{"job_name"}),
		lastPassTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_pass_timestamp_seconds",
			Help: "Unix time the job's last run finished (absent until one has).",
		}, []string{"job_name"}),
		lastPassSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_pass_success",
			Help: "1 when the job's last finished run was a success, 0 when it failed (absent until one has finished).",
		}, []string{"job_name"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; labelled with the archiver version, the Go version that built it, and the commit and date of the build.",
	}, []string{"version", "goversion", "commit", "date"})
	buildInfo.WithLabelValues(version, runtime.Version(), orUnknown(known.Build.Commit), orUnknown(known.Build.Date)).Set(1)

	reg.MustRegister(
		buildInfo, m.jobRunning, m.jobRuns, m.jobDuration, m.jobLastSuccess,
		m.itemsProcessed, m.archivedBytes, m.cdrPackages, m.watermark, m.items,
		m.checkpointErrors, m.ledgerObjects, m.sinkErrors, m.upstreamErrors, m.shutdowns,
		m.leaseLost,
		m.lastPassItems, m.lastPassBytes, m.lastPassDuration, m.lastPassTime, m.lastPassSuccess,
	)
	m.preinit()
	return m
}

// preinit creates the series of every known label combination at zero. The
// last-success and watermark gauges are left out on purpose: a zero timestamp
// would read as "55 years ago" and fire the staleness alerts at start-up; so
// are the last-pass gauges, which describe a run that has not happened.
func (m *Metrics) preinit() {
	for _, j := range m.known.Jobs {
		m.jobRunning.WithLabelValues(j)
		m.jobDuration.WithLabelValues(j)
		m.jobRuns.WithLabelValues(j, resultSuccess)
		m.jobRuns.WithLabelValues(j, resultFailure)
		m.leaseLost.WithLabelValues(j)
	}
	for _, k := range m.known.Kinds {
		m.archivedBytes.WithLabelValues(k)
		for _, r := range knownItemResults() {
			m.itemsProcessed.WithLabelValues(k, r)
		}
	}
	m.zeroItems()
	for _, r := range knownPackageResults() {
		m.cdrPackages.WithLabelValues(r)
	}
	for _, op := range knownSinkOps() {
		m.sinkErrors.WithLabelValues(op)
	}
	for _, c := range knownUpstreamClasses() {
		m.upstreamErrors.WithLabelValues(c)
	}
	for _, r := range knownShutdownResults() {
		m.shutdowns.WithLabelValues(r)
	}
}

// zeroItems sets archiver_items to 0 for every known kind and state.
func (m *Metrics) zeroItems() {
	for _, k := range m.known.Kinds {
		for _, s := range m.known.States {
			m.items.WithLabelValues(k, s).Set(0)
		}
	}
}

// JobStarted marks a run of job as in progress (archiver_job_running = 1) and
// returns the function that ends it. done(nil) counts a success and sets the
// last-success time; done(err) with a non-nil err counts a failure and leaves
// the last-success time alone. The caller decides what a failure is: the jobs
// pass an error for a run that recorded failed windows or items, not only for
// one that stopped on an error (jobs.RunFailure). done
// records the run's duration and clears archiver_job_running; calls after the
// first do nothing. On a nil *Metrics, done is a no-op but never nil.
func (m *Metrics) JobStarted(job string) (done func(err error)) {
	if m == nil {
		return func(error) {}
	}
	start := time.Now()
	m.jobRunning.WithLabelValues(job).Set(1)
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			end := time.Now()
			m.jobRunning.WithLabelValues(job).Set(0)
			m.jobDuration.WithLabelValues(job).Observe(end.Sub(start).Seconds())
			m.lastPassDuration.WithLabelValues(job).Set(end.Sub(start).Seconds())
			m.lastPassTime.WithLabelValues(job).Set(unixSeconds(end))
			if err != nil {
				m.jobRuns.WithLabelValues(job, resultFailure).Inc()
				m.lastPassSuccess.WithLabelValues(job).Set(0)
				return
			}
			m.jobRuns.WithLabelValues(job, resultSuccess).Inc()
			m.lastPassSuccess.WithLabelValues(job).Set(1)
			m.LastSuccess(job, end)
		})
	}
}

// LastSuccess sets job's last-success time to t unless it already holds a
// later one: a run's success (JobStarted) or the time the checkpoint store
// recorded (read when the process starts and before every pass), so that
// the gauge survives a restart and every pushed pass carries it.
func (m *Metrics) LastSuccess(job string, t time.Time) {
	if m == nil {
		return
	}
	m.successMu.Lock()
	defer m.successMu.Unlock()
	if cur, ok := m.lastSuccess[job]; ok && !t.After(cur) {
		return
	}
	m.lastSuccess[job] = t
	m.jobLastSuccess.WithLabelValues(job).Set(unixSeconds(t))
}

// LastPass sets what job's run that is ending handled: items by result
// (the known results missing from items read 0) and the bytes it stored.
// Call it before the run's done; done sets the last pass's duration, time
// and success.
func (m *Metrics) LastPass(job string, items map[string]int, bytes int64) {
	if m == nil {
		return
	}
	for _, r := range knownPassResults() {
		m.lastPassItems.WithLabelValues(job, r).Set(float64(items[r]))
	}
	for r, n := range items {
		if !slices.Contains(knownPassResults(), r) {
			m.lastPassItems.WithLabelValues(job, r).Set(float64(n))
		}
	}
	m.lastPassBytes.WithLabelValues(job).Set(float64(max(bytes, 0)))
}

// unixSeconds is t as Unix seconds with a fraction.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Item counts one item of kind that ended with result: done, existed (already
// in the sink), absent (no recording, by rule), failed, dead, deferred or
// released.
func (m *Metrics) Item(kind, result string) {
	if m == nil {
		return
	}
	m.itemsProcessed.WithLabelValues(kind, result).Inc()
}

// Bytes adds n bytes stored in the sink for an item of kind. A negative n is
// ignored.
func (m *Metrics) Bytes(kind string, n int64) {
	if m == nil || n < 0 {
		return
	}
	m.archivedBytes.WithLabelValues(kind).Add(float64(n))
}

// Package counts one CDR package that ended with result: done, unchanged or
// failed.
func (m *Metrics) Package(result string) {
	if m == nil {
		return
	}
	m.cdrPackages.WithLabelValues(result).Inc()
}

// Watermark sets the time up to which job has archived everything.
func (m *Metrics) Watermark(job string, t time.Time) {
	if m == nil {
		return
	}
	m.watermark.WithLabelValues(job).Set(unixSeconds(t))
}

// SetItems replaces archiver_items with counts (kind → state → number of
// items), as read from the checkpoint store: every series is removed, the
// known kind and state pairs are set to 0, then every pair in counts is set.
// A pair that disappeared from the store therefore reads 0 or vanishes; it
// never keeps a stale count.
func (m *Metrics) SetItems(counts map[string]map[string]int) {
	if m == nil {
		return
	}
	m.itemsMu.Lock()
	defer m.itemsMu.Unlock()
	m.items.Reset()
	m.zeroItems()
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		for state, n := range counts[kind] {
			m.items.WithLabelValues(kind, state).Set(float64(n))
		}
	}
}

// CheckpointError counts one failed operation on the checkpoint store.
func (m *Metrics) CheckpointError() {
	if m == nil {
		return
	}
	m.checkpointErrors.Inc()
}

// Ledger counts one ledger object written to the sink.
func (m *Metrics) Ledger() {
	if m == nil {
		return
	}
	m.ledgerObjects.Inc()
}

// SinkError counts one failed sink operation: op is put, stat, list or open.
func (m *Metrics) SinkError(op string) {
	if m == nil {
		return
	}
	m.sinkErrors.WithLabelValues(op).Inc()
}

// UpstreamError counts one failed CEC request by class: transient, not-found,
// permanent or auth.
func (m *Metrics) UpstreamError(class string) {
	if m == nil {
		return
	}
	m.upstreamErrors.WithLabelValues(class).Inc()
}

// Shutdown counts how the process stopped: clean (in-flight work drained),
// abandoned (the drain timeout ran out) or forced (a second signal).
func (m *Metrics) Shutdown(result string) {
	if m == nil {
		return
	}
	m.shutdowns.WithLabelValues(result).Inc()
}

// LeaseLost counts one piece of job's work given up because another replica
// took over its lease: an item abandoned, or a CDR window left to that
// replica.
func (m *Metrics) LeaseLost(job string) {
	if m == nil {
		return
	}
	m.leaseLost.WithLabelValues(job).Inc()
}
