// Package jobs holds the checkpointed archival jobs.
//
//   - cdr requests, per time window, the CDR and recording-index package of
//     CC-FS (queryBillData), waits until it is ready (callback or polling
//     downloadBillFile), archives the ZIP as-is with its rows as gzipped JSON
//     Lines, and records every call and every item the package lists in the
//     checkpoint store, in one transaction.
//   - recordings downloads the agent recordings the index listed.
//   - transfer and ivr look the calls up in OIFDE, add the transfer and IVR
//     recordings they find (or record why there is none), and download them.
//
// Every item goes pending → in_progress → done | absent | failed → … → dead;
// nothing is dropped: a failure is recorded in the store, retried with
// backoff on later runs and, after MaxAttempts, kept as dead and reported in
// the per-day ledger objects (WriteLedgers).
package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Defaults of Settings and Retry.
const (
	DefaultWindow          = time.Hour
	DefaultReadyTimeout    = 30 * time.Minute
	DefaultPollInterval    = 5 * time.Second
	MaxPollInterval        = time.Minute
	DefaultSettleMaxAge    = 72 * time.Hour
	DefaultConcurrency     = 4
	DefaultInPassAttempts  = 3
	DefaultMaxPackageBytes = 1 << 30
	DefaultMaxAttempts     = 10
	DefaultBackoff         = time.Minute
	// MaxWindow is the longest window queryBillData accepts.
	MaxWindow = 72 * time.Hour
	// inPassBackoff is the first wait between quick in-run retries.
	inPassBackoff = 200 * time.Millisecond
)

// Settings tune the jobs. Zero values take the defaults above.
type Settings struct {
	Tenant       string         // {tenant} in keys
	Location     *time.Location // tenant time zone: CDR times, window alignment, calendar days (nil = UTC)
	Window       time.Duration  // cdr window: divides 24h, or is a whole number of days ≤ 72h
	Lookback     int            // past windows re-requested every run
	ReadyTimeout time.Duration  // wait for a package before giving up on this request (re-requested next run)
	PollInterval time.Duration  // first downloadBillFile poll interval (doubles, capped at 1 min); default 5s
	CallbackURL  string         // callBackURL sent to queryBillData
	Method       string         // config.MethodDownloadRecordFile (default) | config.MethodDownloadRecord | config.MethodCMS

	Recordings, Transfer, IVR Retry // per job: agent items / transfer lookups+items / ivr lookups+items

	TransferSettleMaxAge, IVRSettleMaxAge time.Duration // default 72h

	Concurrency     int    // parallel downloads across all jobs (default 4)
	InPassAttempts  int    // quick in-run tries of a transient download failure (default 3, 200ms doubling)
	SpoolDir        string // temp dir for CDR packages and call-level ZIP bundles ("" = os.TempDir())
	MaxPackageBytes int64  // default 1 GiB
	// MaxRecordingBytes bounds the inflated members of a call-level ZIP
	// bundle (the client bounds the bytes received); default 2 GiB.
	MaxRecordingBytes int64
	// Formats says which recording formats are accepted besides WAV (and ZIP
	// bundles where the interface returns them).
	Formats recording.Policy
	Limits  cdr.Limits
	// Retention gives recordings their Object Lock from their call data
	// (retention.go); no rules: the sink's own settings.
	Retention Retention

	// Replica is this process's replica ID (NewReplicaID), the owner of
	// every claim and lease it takes in the store; "" takes a new one. Give
	// every process its own: replicas sharing a store (PostgreSQL) tell
	// their work apart by it.
	Replica string
	// Lease is how long a claim of an item, or the lease of singleton work
	// (a CDR window, a day's ledger), holds without renewal; the jobs renew
	// what they hold every Lease/3, and an item or a window whose lease
	// expired (its replica killed or stalled) is taken over by another
	// replica. Default DefaultLease.
	Lease time.Duration
}

// Retry says how a job's failed items are retried across runs.
type Retry struct {
	MaxAttempts int // failed attempts before an item is dead (default 10)
	// Backoff is the first wait after a failure; it doubles per attempt,
	// capped at 64×Backoff, with full jitter; default 1m. It is also the
	// re-query interval of a lookup waiting for OIFDE records to settle.
	Backoff time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.Backoff <= 0 {
		r.Backoff = DefaultBackoff
	}
	return r
}

// Archiver runs the jobs. Set its fields, then call its methods; it may be
// used by several goroutines (Once runs the item jobs concurrently) but the
// fields must not change meanwhile.
type Archiver struct {
	Client *cecclient.Client
	Sink   sink.Sink
	Store  checkpoint.Store
	Keys   *sink.KeyBuilder // recording keys (configured template)
	Prefix string           // key prefix for CDR packages and ledgers (same as the KeyBuilder's prefix)
	Meta   sink.MetaPolicy
	Settings
	Callbacks *Callbacks // nil: poll only
	Metrics   Metrics    // *telemetry.Metrics; nil ok
	Log       *zap.Logger
	Now       func() time.Time // nil = time.Now
	// Abort, when non-nil, bounds in-flight work: the ctx passed to a Run
	// method only stops NEW work (no new windows, no new claims); transfers
	// already started continue until they finish or Abort is cancelled.
	// Abandoned items are Released (not counted as attempts) with a context
	// that is not cancelled. When nil, the ctx of the Run method bounds both.
	Abort context.Context
	// Progress, when non-nil, counts what each pass does while it runs
	// (Once, Backfill, the runs of Serve), for a display.
	Progress *Progress

	initOnce sync.Once
	initErr  error
	sem      chan struct{} // download slots shared by every job
	cdrKeys  *sink.KeyBuilder
	ledKeys  *sink.KeyBuilder
	quarKeys *sink.KeyBuilder
	chain    chainState // the ledger writer's view of the chain (chain.go)
	met      Metrics
	log      *zap.Logger
	owner    string // Replica, or the ID init made
	runs     runs   // started, not ended (RecordInterrupted)
	parts    int    // calls per committed part of a large package; 0: partCalls (tests set it)
}

// Window is a time window [Begin, End) of the cdr job.
type Window struct{ Begin, End time.Time }

// String formats the window in its own location.
func (w Window) String() string {
	return w.Begin.Format("2006-01-02 15:04") + " – " + w.End.Format("2006-01-02 15:04 MST")
}

// Report counts what one run did; Merge aggregates reports of several jobs.
type Report struct {
	Windows        int   // windows processed (requested or resumed)
	WindowsSettled int   // backfill windows skipped: done before, older than the lookback
	Packages       int   // packages completed (including unchanged)
	PackagesFailed int   // packages that could not be obtained or parsed this run
	Added          int   // new items recorded (by packages and lookups)
	Done           int   // items completed by this run: recordings newly written, lookups done
	Existed        int   // recordings the sink already held with the same content, marked done (not in Done)
	Absent         int   // items marked absent (lookups) this run
	Deferred       int   // lookups deferred (OIFDE records not settled)
	Failed         int   // failed attempts recorded (the item will be retried)
	Dead           int   // items that became dead this run
	Released       int   // items abandoned at shutdown or on an auth error, not counted as attempts
	LeaseLost      int   // items abandoned because another replica took them over (their lease had expired): that replica's now
	WindowsHeld    int   // cdr windows skipped because another replica was processing them
	Bytes          int64 // bytes newly stored: recordings, CDR packages and their rows files
	// Errors lists window/package-level failures, human readable.
	Errors []string
	// AuthError is the first authentication/permission error met
	// (cecclient.IsAuth, or sink.ErrAccessDenied).
	AuthError error
}

// Merge adds o's counts to r.
func (r *Report) Merge(o *Report) {
	if o == nil {
		return
	}
	r.Windows += o.Windows
	r.WindowsSettled += o.WindowsSettled
	r.Packages += o.Packages
	r.PackagesFailed += o.PackagesFailed
	r.Added += o.Added
	r.Done += o.Done
	r.Existed += o.Existed
	r.Absent += o.Absent
	r.Deferred += o.Deferred
	r.Failed += o.Failed
	r.Dead += o.Dead
	r.Released += o.Released
	r.LeaseLost += o.LeaseLost
	r.WindowsHeld += o.WindowsHeld
	r.Bytes += o.Bytes
	r.Errors = append(r.Errors, o.Errors...)
	if r.AuthError == nil {
		r.AuthError = o.AuthError
	}
}

// syncReport is a Report shared by the workers of one run. What add
// changes also moves prog.
type syncReport struct {
	mu   sync.Mutex
	r    Report
	prog *Progress
}

func (s *syncReport) add(f func(r *Report)) {
	s.mu.Lock()
	before := s.r
	f(&s.r)
	after := s.r
	s.mu.Unlock()
	s.prog.moved(&before, &after)
}

func (s *syncReport) snapshot() *Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.r
	r.Errors = append([]string(nil), s.r.Errors...)
	return &r
}

// init checks the settings once and builds what every method shares.
func (a *Archiver) init() error {
	a.initOnce.Do(func() {
		a.log = a.Log
		if a.log == nil {
			a.log = zap.NewNop()
		}
		a.met = a.Metrics
		if a.met == nil {
			a.met = nopMetrics{}
		}
		a.sem = make(chan struct{}, a.concurrency())
		a.owner = a.Replica
		if a.owner == "" {
			a.owner = NewReplicaID()
		}
		var errs []error
		if a.Store == nil {
			errs = append(errs, errors.New("no checkpoint store"))
		}
		if a.Sink == nil {
			errs = append(errs, errors.New("no sink"))
		}
		if a.Keys == nil {
			errs = append(errs, errors.New("no key builder"))
		}
		if a.Tenant == "" {
			errs = append(errs, errors.New("no tenant"))
		}
		if err := checkWindow(a.window()); err != nil {
			errs = append(errs, err)
		}
		var err error
		if a.cdrKeys, err = sink.NewKeyBuilder(a.Prefix, "{tenant}/cdr/{yyyy}/{mm}/{dd}/{record_id}"); err != nil {
			errs = append(errs, err)
		}
		if a.ledKeys, err = sink.NewKeyBuilder(a.Prefix, "{tenant}/ledger/{yyyy}/{mm}/{dd}/{record_id}"); err != nil {
			errs = append(errs, err)
		}
		if a.quarKeys, err = sink.NewKeyBuilder(a.Prefix, "{tenant}/quarantine/{yyyy}/{mm}/{dd}/{record_id}"); err != nil {
			errs = append(errs, err)
		}
		if err := a.Meta.Validate(); err != nil {
			errs = append(errs, err)
		}
		if err := a.Formats.Validate(); err != nil {
			errs = append(errs, err)
		}
		if a.Method != "" && !slices.Contains(Methods(), a.Method) {
			errs = append(errs, fmt.Errorf("unknown recording method %q", a.Method))
		}
		if err := errors.Join(errs...); err != nil {
			a.initErr = fmt.Errorf("jobs: archiver: %w", err)
		}
	})
	return a.initErr
}

// ReplicaID returns the replica ID the archiver claims as (Replica, or the
// one it made), once a method has run.
func (a *Archiver) ReplicaID() string {
	if err := a.init(); err != nil {
		return a.Replica
	}
	return a.owner
}

func (a *Archiver) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Archiver) loc() *time.Location {
	if a.Location == nil {
		return time.UTC
	}
	return a.Location
}

func (a *Archiver) window() time.Duration {
	if a.Window <= 0 {
		return DefaultWindow
	}
	return a.Window
}

func (a *Archiver) readyTimeout() time.Duration {
	if a.ReadyTimeout <= 0 {
		return DefaultReadyTimeout
	}
	return a.ReadyTimeout
}

func (a *Archiver) pollInterval() time.Duration {
	if a.PollInterval <= 0 {
		return DefaultPollInterval
	}
	return a.PollInterval
}

func (a *Archiver) concurrency() int {
	if a.Concurrency <= 0 {
		return DefaultConcurrency
	}
	return a.Concurrency
}

func (a *Archiver) inPassAttempts() int {
	if a.InPassAttempts <= 0 {
		return DefaultInPassAttempts
	}
	return a.InPassAttempts
}

func (a *Archiver) maxPackageBytes() int64 {
	if a.MaxPackageBytes <= 0 {
		return DefaultMaxPackageBytes
	}
	return a.MaxPackageBytes
}

func (a *Archiver) maxRecordingBytes() int64 {
	if a.MaxRecordingBytes <= 0 {
		return cecclient.DefaultMaxRecordingBytes
	}
	return a.MaxRecordingBytes
}

func (a *Archiver) limits() cdr.Limits {
	if a.Limits == (cdr.Limits{}) {
		return cdr.DefaultLimits()
	}
	return a.Limits
}

func (a *Archiver) method() string {
	if a.Method == "" {
		return config.MethodDownloadRecordFile
	}
	return a.Method
}

func settleMaxAge(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultSettleMaxAge
	}
	return d
}

// transferCtx is the context of work already started: Abort when set, else ctx.
func (a *Archiver) transferCtx(ctx context.Context) context.Context {
	if a.Abort != nil {
		return a.Abort
	}
	return ctx
}

// Run runs one job once: "cdr", "recordings", "transfer" or "ivr".
// Window-level failures are in Report.Errors; the error is for what stops
// the job (a checkpoint store failure, an auth error, ctx ended). Metrics
// count the run as a failure, and keep the last-success time, when it
// returns an error or its Report has failures (RunFailure).
func (a *Archiver) Run(ctx context.Context, job string) (*Report, error) {
	if err := a.init(); err != nil {
		return &Report{}, err
	}
	switch job {
	case config.JobCDR:
		return a.measure(ctx, job, func() (*Report, error) { return a.runCDR(ctx, nil, false) })
	case config.JobRecordings, config.JobTransfer, config.JobIVR:
		return a.measure(ctx, job, func() (*Report, error) { return a.runItems(ctx, job) })
	}
	return &Report{}, fmt.Errorf("jobs: run: unknown job %q", job)
}

// measure runs one run of job (run) between Metrics.JobStarted and its
// done, the chokepoint of every run's metrics: the last pass's counts
// (LastPass), its outcome (RunFailure) and, for a success, the last-success
// time recorded in the store (SetLastSuccess), from which ExportState
// restores the gauge after a restart; and of the last run the store keeps
// for status (SetLastRun): recorded running as it starts, then ok, failed
// or, when ctx (the stop of new work) ended meanwhile, interrupted. A
// failure to record either is counted and logged; it does not make the run
// a failure.
func (a *Archiver) measure(ctx context.Context, job string, run func() (*Report, error)) (*Report, error) {
	done := a.met.JobStarted(job)
	started := a.startRun(job)
	rep, err := run()
	if rep != nil {
		a.met.LastPass(job, passItems(rep), rep.Bytes)
	}
	failure := RunFailure(rep, err)
	if failure == nil {
		if serr := a.Store.SetLastSuccess(storeCtx(context.Background()), job, time.Now()); serr != nil {
			a.log.Warn("recording the last success failed", zap.String("job", job), zap.Error(a.storeErr("set last success", serr)))
		}
	}
	a.endRun(ctx, started, rep, failure)
	done(failure)
	return rep, err
}

// passItems are a run's item outcomes as LastPass counts them.
func passItems(rep *Report) map[string]int {
	return map[string]int{
		"done": rep.Done, "existed": rep.Existed, "absent": rep.Absent, "failed": rep.Failed,
		"dead": rep.Dead, "deferred": rep.Deferred, "released": rep.Released,
	}
}

// Jobs lists the jobs Run runs, in the order Once runs them: cdr, then the
// item jobs. The names are config's (config.JobNames); a test in
// cmd/archiver checks that every job the configuration knows is one of these.
func Jobs() []string {
	return []string{config.JobCDR, config.JobRecordings, config.JobTransfer, config.JobIVR}
}

// Methods lists the recording download methods Settings.Method accepts
// ("" is the default, config.MethodDownloadRecordFile).
func Methods() []string {
	return []string{config.MethodDownloadRecordFile, config.MethodDownloadRecord, config.MethodCMS}
}

// KindPackage is the kind of CDR packages where they are counted next to
// the items (the "kind" label of metrics) and the "kind" metadata of their
// objects. It is no item kind: packages are not items.
const KindPackage = "cdr"

// Once runs the given jobs (all four when none): cdr, and concurrently
// recordings, transfer and ivr (taking each package's items as the cdr job
// commits them), then WriteLedgers.
func (a *Archiver) Once(ctx context.Context, jobs ...string) (*Report, error) {
	if err := a.init(); err != nil {
		return &Report{}, err
	}
	if len(jobs) == 0 {
		jobs = Jobs()
	}
	want := map[string]bool{}
	for _, j := range jobs {
		if !slices.Contains(Jobs(), j) {
			return &Report{}, fmt.Errorf("jobs: once: unknown job %q", j)
		}
		want[j] = true
	}
	var cdrJob func(context.Context) (*Report, error)
	if want[config.JobCDR] {
		cdrJob = func(ctx context.Context) (*Report, error) { return a.Run(ctx, config.JobCDR) }
	}
	return a.pass(ctx, cdrJob, want, nil).result(ctx)
}

// passResult is what one pass did: the jobs' report and errors, and the
// ledgers apart.
type passResult struct {
	rep     *Report
	errs    []error // of the jobs, in their order: cdr, then the item jobs
	days    int     // days whose ledger WriteLedgers wrote
	ledgers error   // of WriteLedgers; nil when ctx ended before it
}

// result is the pass as Once and Backfill return it: the report, and every
// error (the jobs', the ledgers', ctx's) joined without repeated context
// errors.
func (p passResult) result(ctx context.Context) (*Report, error) {
	errs := p.errs
	if p.ledgers != nil {
		errs = append(errs, p.ledgers)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return p.rep, dedupeErrors(errs)
}

// pass is the sequence every run of the jobs follows: cdrJob when it is
// not nil and, concurrently with it, the item jobs want names (each taking
// the items the cdr job commits as it goes: feed), then, unless ctx ended,
// WriteLedgers. Once, Backfill and each scheduled run of Serve are
// one pass. ran, when not nil, is called between the jobs and the ledgers.
func (a *Archiver) pass(ctx context.Context, cdrJob func(context.Context) (*Report, error), want map[string]bool,
	ran func(rep *Report, errs []error)) passResult {
	p := passResult{rep: &Report{}}
	kinds := a.itemKinds(want)
	a.Progress.begin(a.now(), cdrJob != nil, len(kinds) > 0)
	var (
		items    = make(chan itemsResult, 1)
		startJob = func(ctx context.Context) {
			go func() {
				rep, err := a.itemJobs(ctx, want)
				items <- itemsResult{rep, err}
			}()
		}
	)
	if cdrJob != nil {
		a.countPending(ctx, kinds)
		// The item jobs start with the cdr job when there are any: they
		// take each package's items as it commits them (feed).
		var f *feed
		if len(kinds) > 0 {
			f = newFeed()
			startJob(withFeed(ctx, f))
		}
		rep, err := cdrJob(withFeed(ctx, f))
		f.end()
		p.rep.Merge(rep)
		if err != nil {
			p.errs = append(p.errs, err)
		}
		a.Progress.phase(PhaseItems, a.now())
		// Counted again: the packages have added items, some of kinds that
		// no job of this pass claims.
		a.countPending(ctx, kinds)
		if f == nil {
			startJob(ctx)
		}
	} else {
		a.countPending(ctx, kinds)
		startJob(ctx)
	}
	res := <-items
	p.rep.Merge(res.rep)
	if res.err != nil {
		p.errs = append(p.errs, res.err)
	}
	if ran != nil {
		ran(p.rep, p.errs)
	}
	if ctx.Err() == nil {
		a.Progress.phase(PhaseLedgers, a.now())
		p.days, p.ledgers = a.WriteLedgers(ctx)
	}
	a.Progress.phase(PhaseDone, a.now())
	return p
}

// itemsResult is what itemJobs returned.
type itemsResult struct {
	rep *Report
	err error
}

// itemJobs runs the wanted item jobs concurrently.
func (a *Archiver) itemJobs(ctx context.Context, want map[string]bool) (*Report, error) {
	total := &Report{}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, j := range Jobs()[1:] {
		if !want[j] || ctx.Err() != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := a.Run(ctx, j)
			mu.Lock()
			defer mu.Unlock()
			total.Merge(rep)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return total, joinErrors(errs)
}

// joinErrors is errors.Join, except that one error is returned as it is.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// dedupeErrors joins errs, leaving out repeats of context errors.
func dedupeErrors(errs []error) error {
	var out []error
	ctxSeen := false
	for _, e := range errs {
		if e == nil {
			continue
		}
		if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) {
			if ctxSeen {
				continue
			}
			ctxSeen = true
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// BackfillOptions are the choices of one Backfill.
type BackfillOptions struct {
	// Jobs are the item jobs run after the cdr job: recordings, transfer
	// and ivr when empty.
	Jobs []string
	// Rescan requests every window of the plan again, also the settled ones
	// (done before and older than the lookback) that a backfill skips.
	Rescan bool
}

// Backfill runs the cdr job over Plan(from, to) (the watermark is left as
// it is; settled windows are skipped unless o.Rescan, see runCDR), then the
// item jobs of o, then WriteLedgers.
func (a *Archiver) Backfill(ctx context.Context, from, to time.Time, o BackfillOptions) (*Report, error) {
	if err := a.init(); err != nil {
		return &Report{}, err
	}
	want := map[string]bool{}
	for _, j := range o.Jobs {
		switch j {
		case config.JobRecordings, config.JobTransfer, config.JobIVR:
			want[j] = true
		default:
			return &Report{}, fmt.Errorf("jobs: backfill: %q is not an item job", j)
		}
	}
	if len(want) == 0 {
		want = map[string]bool{config.JobRecordings: true, config.JobTransfer: true, config.JobIVR: true}
	}
	cdrJob := func(ctx context.Context) (*Report, error) {
		return a.measure(ctx, config.JobCDR, func() (*Report, error) { return a.runCDR(ctx, a.Plan(from, to), o.Rescan) })
	}
	return a.pass(ctx, cdrJob, want, nil).result(ctx)
}

// authError reports whether err means the credentials are refused:
// cecclient.IsAuth (HTTP 401/403, OIFDE gettoken refused) or
// sink.ErrAccessDenied (each sink classifies its own refusals).
func authError(err error) bool {
	return err != nil && (cecclient.IsAuth(err) || errors.Is(err, sink.ErrAccessDenied))
}

// storeCtx is a context for checkpoint writes: never cancelled by ctx, so a
// checkpoint is always written.
func storeCtx(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
