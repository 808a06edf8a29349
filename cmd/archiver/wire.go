package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/postgres"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// Settings without a configuration key: sensible constants instead of knobs.
const (
	maxPackageBytes   = 1 << 30        // largest CDR package ZIP accepted
	janitorAge        = 24 * time.Hour // multipart uploads older than this are ours and dead
	minPollInterval   = 250 * time.Millisecond
	maxPollInterval   = 15 * time.Second // first downloadBillFile poll interval, at most
	callbackMaxHeader = 16 << 10
)

// wireOptions say what a command needs built.
type wireOptions struct {
	// readOnly opens the state read-only (no lock; the daemon may be running)
	// and builds no sink: for status and dry runs.
	readOnly bool
	// optionalState tolerates a missing state file in readOnly mode: an empty
	// state is read instead.
	optionalState bool
	// noClient builds no CEC client (status, requeue).
	noClient bool
	// noCallbacks serves no CC-FS callbacks: the cdr job does not run, so
	// nothing waits for a package (cec.callback_listen is left unbound).
	noCallbacks bool
}

// app is the archiver wired from the configuration, in one place. close
// releases everything it opened, in reverse order.
type app struct {
	cfg       *config.Config
	log       *zap.Logger
	client    *cecclient.Client
	sink      sink.Sink
	store     checkpoint.Store
	reg       *prometheus.Registry
	metrics   *telemetry.Metrics
	callbacks *jobs.Callbacks
	archiver  *jobs.Archiver
	closers   []func()
	// replica is this process's replica ID, the owner of its claims and
	// leases in the checkpoint store (jobs.NewReplicaID, made once by wire).
	replica string
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// configError is a configuration problem found while wiring (exit 2).
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// authError is an authentication or permission failure found while wiring
// (exit 3).
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// errNoState: a read-only command found no state file.
var errNoState = errors.New("no state file")

// wire builds the parts the configuration describes. abort bounds in-flight
// work of the archiver (see jobs.Archiver.Abort).
func wire(ctx context.Context, cfg *config.Config, log *zap.Logger, abort context.Context, o wireOptions) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, replica: jobs.NewReplicaID()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	loc, err := cfg.CEC.Location()
	if err != nil {
		return nil, &configError{fmt.Errorf("cec.time_zone: %w", err)}
	}

	// Metrics: a private registry, never the global one.
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := buildInfo(debug.ReadBuildInfo)
	known := jobs.Labels()
	known.Build = telemetry.Build{Commit: build.Commit, Date: build.Date}
	a.metrics = telemetry.New(a.reg, build.Version, known)

	if !o.noClient {
		co := clientOptions(cfg, log)
		co.Observer = jobs.UpstreamObserver(a.metrics)
		if a.client, err = cecclient.New(co); err != nil {
			return nil, &configError{err}
		}
	}

	// Keys. With S3 the sink puts sink.s3.prefix in front of every key, so the
	// key builders get none: the prefix appears once.
	keys, err := sink.NewKeyBuilder("", cfg.Sink.S3.KeyTemplate)
	if err != nil {
		return nil, &configError{fmt.Errorf("sink.s3.key_template: %w", err)}
	}
	meta, err := metaPolicy(cfg)
	if err != nil {
		return nil, &configError{err}
	}

	if err := a.openStore(ctx, o); err != nil {
		return nil, err
	}
	if o.readOnly {
		a.sink = readOnlySink{}
	} else if err := a.openSink(ctx); err != nil {
		return nil, err
	} else {
		a.sink = jobs.ObserveSink(a.sink, a.metrics)
	}

	if cfg.CEC.CallbackListen != "" && !o.readOnly && !o.noCallbacks {
		a.callbacks = jobs.NewCallbacks(func(ak string) (string, bool) {
			if ak != cfg.CEC.AK {
				return "", false
			}
			return cfg.CEC.SK.Reveal(), true
		}, log.Named("callback"))
	}

	a.archiver = &jobs.Archiver{
		Client:    a.client,
		Sink:      a.sink,
		Store:     a.store,
		Keys:      keys,
		Prefix:    "",
		Meta:      meta,
		Settings:  settings(cfg, loc, a.replica),
		Callbacks: a.callbacks,
		Metrics:   a.metrics,
		Log:       log.Named("jobs"),
		Now:       time.Now,
		Abort:     abort,
	}
	return a, nil
}

// openStore opens the checkpoint store and, read-write, releases the items a
// dead process left in progress.
func (a *app) openStore(ctx context.Context, o wireOptions) error {
	var (
		st  checkpoint.Store
		err error
	)
	switch c := a.cfg.Checkpoint; c.Driver {
	case config.DriverSQLite:
		st, err = a.openSQLite(o)
	case config.DriverPostgres:
		st, err = a.openPostgres(ctx, o)
	default:
		return &configError{fmt.Errorf("checkpoint.driver: unknown driver %q", c.Driver)}
	}
	if err != nil {
		return err
	}
	a.store = st
	a.closers = append(a.closers, func() {
		if err := st.Close(); err != nil {
			a.log.Error("close the state database", zap.Error(err))
		}
	})
	if o.readOnly {
		return nil
	}
	a.log.Info("checkpoint replica", zap.String("replica", a.replica), zap.String("driver", a.cfg.Checkpoint.Driver),
		zap.Duration("lease", a.cfg.Checkpoint.Lease.Duration))
	// The replica ID is new, so what this process holds is nothing yet:
	// this releases the items whose lease has expired, a killed process's
	// (with SQLite, whose lock admits one process, every item left in
	// progress; see checkpoint.Store).
	n, err := st.RecoverInProgress(ctx, a.replica)
	if err != nil {
		return fmt.Errorf("checkpoint: recover in-progress items: %w", err)
	}
	if n > 0 {
		a.log.Info("released items left in progress by a process that is gone", zap.Int("items", n))
	}
	return nil
}

// openSQLite opens the state file checkpoint.path.
func (a *app) openSQLite(o wireOptions) (checkpoint.Store, error) {
	path := a.cfg.Checkpoint.Path
	if o.readOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if !o.optionalState {
				return nil, fmt.Errorf("%w at %s (checkpoint.path): nothing has been archived with this configuration yet", errNoState, path)
			}
			return a.emptyState()
		}
	}
	return sqlite.Open(path, sqlite.Options{ReadOnly: o.readOnly, Logger: a.log.Named("checkpoint")})
}

// openPostgres opens the state of tenant cec.tenant_id in the PostgreSQL
// database of checkpoint.dsn. Read-only, a database the archiver never
// migrated is no state, like a missing state file.
func (a *app) openPostgres(ctx context.Context, o wireOptions) (checkpoint.Store, error) {
	st, err := postgres.Open(ctx, postgres.Options{
		DSN:      a.cfg.Checkpoint.DSN.Reveal(),
		Tenant:   a.cfg.CEC.TenantID,
		ReadOnly: o.readOnly,
		Logger:   a.log.Named("checkpoint"),
	})
	if o.readOnly && errors.Is(err, postgres.ErrNoSchema) {
		if !o.optionalState {
			return nil, fmt.Errorf("%w in the database of checkpoint.dsn (it has no archiver tables): nothing has been archived with this configuration yet", errNoState)
		}
		return a.emptyState()
	}
	return st, err
}

// emptyState opens an empty state, created aside and removed on close, for
// a read-only command that finds none: the real state is not created by a
// command that only reads.
func (a *app) emptyState() (checkpoint.Store, error) {
	tmp, err := os.MkdirTemp("", "archiver-empty-state-")
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { _ = os.RemoveAll(tmp) })
	path := filepath.Join(tmp, "state.db")
	empty, err := sqlite.Open(path, sqlite.Options{Logger: a.log.Named("checkpoint")})
	if err != nil {
		return nil, err
	}
	if err := empty.Close(); err != nil {
		return nil, err
	}
	return sqlite.Open(path, sqlite.Options{ReadOnly: true, Logger: a.log.Named("checkpoint")})
}

// readOnlySink is the sink of read-only commands (dry runs): nothing is
// stored and nothing is looked up.
type readOnlySink struct{}

var _ sink.Sink = readOnlySink{}

// errReadOnly: a read-only command tried to use the sink.
var errReadOnly = errors.New("sink: read-only command: nothing is stored")

func (readOnlySink) Put(context.Context, string, io.Reader, int64, sink.Meta) (sink.Object, error) {
	return sink.Object{}, errReadOnly
}

func (readOnlySink) Stat(context.Context, string) (sink.Object, error) {
	return sink.Object{}, errReadOnly
}

// openSink builds the sink and clears what a dead process left in it.
func (a *app) openSink(ctx context.Context) error {
	cfg := a.cfg
	switch cfg.Sink.Type {
	case config.SinkDir:
		d, err := dir.New(dir.Options{Root: cfg.Sink.Dir, Logger: a.log})
		if err != nil {
			return err
		}
		a.sink = d
		a.closers = append(a.closers, func() { _ = d.Close() })
		a.janitor(ctx, func(ctx context.Context) error {
			n, err := d.Janitor(ctx, janitorAge)
			if err != nil {
				a.log.Warn("sink janitor failed; stale temp files stay until the next start", zap.Error(err))
			} else if n > 0 {
				a.log.Info("sink janitor removed stale temp files", zap.Int("files", n))
			}
			return nil
		})
	case config.SinkS3:
		s, err := s3.New(ctx, s3Options(cfg, a.log))
		if err != nil {
			if errors.Is(err, sink.ErrAccessDenied) {
				return &authError{err}
			}
			return err
		}
		a.sink = s
		a.janitor(ctx, func(ctx context.Context) error {
			n, err := s.Janitor(ctx, janitorAge)
			if err != nil {
				a.log.Warn("sink janitor failed; stale multipart uploads stay until the next start", zap.Error(err))
			} else {
				a.log.Info("sink janitor done", zap.Int("aborted_uploads", n), zap.Duration("older_than", janitorAge))
			}
			return nil
		})
	default:
		return &configError{fmt.Errorf("sink.type: unknown type %q", cfg.Sink.Type)}
	}
	return nil
}

// janitor runs the sink janitor under the store lease jobs.LeaseJanitor:
// of replicas starting together, one runs it. Its failures are logged by
// run and cost nothing but stale files: the start goes on.
func (a *app) janitor(ctx context.Context, run func(ctx context.Context) error) {
	ran, err := jobs.Exclusive(ctx, a.store, jobs.LeaseJanitor, a.replica, a.cfg.Checkpoint.Lease.Duration, a.log, run)
	switch {
	case err != nil && !ran:
		a.log.Warn("sink janitor not run: its lease could not be taken", zap.Error(err))
	case !ran:
		a.log.Info("sink janitor skipped: another replica is running it")
	}
}

func clientOptions(cfg *config.Config, log *zap.Logger) cecclient.Options {
	c := cfg.CEC
	return cecclient.Options{
		FSURL: c.FSURL, CMSURL: c.CMSURL, OIFDEURL: c.OIFDEURL,
		AK: c.AK, SK: c.SK.Reveal(), TenantID: c.TenantID, APIPassword: c.APIPassword.Reveal(),
		CAFile: c.CAFile, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify,
		SignedHeaders:         c.SignedHeaders,
		RateLimit:             c.RateLimit,
		Burst:                 c.Concurrency,
		MaxIdleConnsPerHost:   c.Concurrency,
		MaxAttempts:           c.MaxAttempts,
		DialTimeout:           c.DialTimeout.Duration,
		TLSHandshakeTimeout:   c.TLSHandshakeTimeout.Duration,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout.Duration,
		StallTimeout:          c.StallTimeout.Duration,
		UploadMaxBytes:        int64(c.UploadMaxBytes),
		MaxRecordingBytes:     int64(c.MaxRecordingBytes),
		MinRate:               minRate(int64(c.MinRate)),
		MinRateWindow:         c.MinRateWindow.Duration,
		MaxPages:              c.OIFDEMaxPages,
		UserAgent:             "cec-archiver/" + version,
		Logger:                log,
	}
}

// minRate maps cec.min_rate (0 disables) onto cecclient.Options.MinRate
// (0 is the default, negative disables).
func minRate(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

func s3Options(cfg *config.Config, log *zap.Logger) s3.Options {
	s := cfg.Sink.S3
	checksum := s3.ChecksumAlgorithm(s.Checksum)
	if s.Checksum == "none" {
		checksum = s3.ChecksumNone
	}
	spoolDir := "" // part_buffers = "memory"
	if s.PartBuffers == config.PartBuffersFile {
		spoolDir = os.TempDir()
	}
	return s3.Options{
		Endpoint: s.Endpoint, Region: s.Region, Bucket: s.Bucket, Prefix: s.Prefix, PathStyle: s.PathStyle,
		AccessKey: s.AccessKey, SecretKey: s.SecretKey.Reveal(), CAFile: s.CAFile,
		Checksum: checksum,
		SSE:      s.SSE, SSEKMSKeyID: s.SSEKMSKeyID, StorageClass: s.StorageClass,
		ObjectLockMode: s.ObjectLockMode, RetentionDays: s.RetentionDays, LegalHold: s.LegalHold,
		MultipartThreshold: int64(s.MultipartThreshold),
		PartSize:           int64(s.PartSize),
		UploadConcurrency:  s.UploadConcurrency,
		MaxInflightBytes:   int64(s.MaxInflightBytes),
		SpoolDir:           spoolDir,
		MaxSpoolBytes:      int64(s.MaxSpoolBytes),
		MaxBufferedBytes:   int64(s.MaxBufferedBytes),
		Logger:             log,
	}
}

func metaPolicy(cfg *config.Config) (sink.MetaPolicy, error) {
	s := cfg.Sink.S3
	p := sink.MetaPolicy{Phone: sink.PhoneMode(s.PhoneNumbers)}
	if p.Phone == sink.PhoneHMAC {
		p.HMACKey = []byte(s.PhoneHMACKey.Reveal())
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("sink.s3.phone_numbers: %w", err)
	}
	return p, nil
}

// settings maps [jobs.*], [cec] and checkpoint.lease onto jobs.Settings;
// replica is the process's replica ID.
func settings(cfg *config.Config, loc *time.Location, replica string) jobs.Settings {
	j := cfg.Jobs
	ready := j.CDR.ReadyTimeout.Duration
	return jobs.Settings{
		Tenant:       cfg.CEC.TenantID,
		Location:     loc,
		Window:       j.CDR.Window.Duration,
		Lookback:     j.CDR.LookbackWindows,
		ReadyTimeout: ready,
		// Poll a package a few dozen times within ready_timeout at first
		// (the interval doubles from there).
		PollInterval: min(max((ready/30).Round(time.Millisecond), minPollInterval), maxPollInterval),
		CallbackURL:  cfg.CEC.CallbackURL,
		Method:       j.Recordings.Method,
		Recordings:   jobs.Retry{MaxAttempts: j.Recordings.MaxAttempts, Backoff: j.Recordings.RetryBackoff.Duration},
		Transfer:     jobs.Retry{MaxAttempts: j.Transfer.MaxAttempts, Backoff: j.Transfer.RetryBackoff.Duration},
		IVR:          jobs.Retry{MaxAttempts: j.IVR.MaxAttempts, Backoff: j.IVR.RetryBackoff.Duration},

		TransferSettleMaxAge: j.Transfer.SettleMaxAge.Duration,
		IVRSettleMaxAge:      j.IVR.SettleMaxAge.Duration,

		Concurrency:       cfg.CEC.Concurrency,
		SpoolDir:          os.TempDir(),
		MaxPackageBytes:   maxPackageBytes,
		MaxRecordingBytes: int64(cfg.CEC.MaxRecordingBytes),
		Formats:           formats(j.Recordings.AllowFormats),
		Limits:            cdrLimits(j.CDR),
		Replica:           replica,
		Lease:             cfg.Checkpoint.Lease.Duration,
		Retention:         retention(cfg),
	}
}

// retention is the per-recording Object Lock policy: the rules, and the
// s3 sink's defaults they fall back on.
func retention(cfg *config.Config) jobs.Retention {
	return jobs.Retention{Rules: cfg.Retention.Rules, DefaultMode: cfg.Sink.S3.ObjectLockMode,
		DefaultLegalHold: cfg.Sink.Type == config.SinkS3 && cfg.Sink.S3.LegalHold}
}

// formats is the recording policy of jobs.recordings.allow_formats (WAV is
// always accepted, ZIP bundles where the interface returns them).
func formats(allow []string) recording.Policy {
	var p recording.Policy
	for _, f := range allow {
		p.Allow = append(p.Allow, recording.Format(f))
	}
	return p
}

// cdrLimits are the package reader's limits with jobs.cdr's ratio and
// inflated-size cap.
func cdrLimits(j config.CDRJob) cdr.Limits {
	l := cdr.DefaultLimits()
	if j.MaxInflationRatio > 0 {
		l.MaxRatio = int64(j.MaxInflationRatio)
	}
	if j.MaxInflatedBytes > 0 {
		l.MaxTotalBytes = int64(j.MaxInflatedBytes)
		l.MaxEntryBytes = min(l.MaxEntryBytes, l.MaxTotalBytes)
	}
	return l
}

// serveCallbacks starts the CC-FS callback receiver on cec.callback_listen
// (HTTPS when a certificate is configured). It returns a function that shuts
// it down.
func (a *app) serveCallbacks() (stop func(), err error) {
	if a.callbacks == nil {
		return func() {}, nil
	}
	c := a.cfg.CEC
	log := a.log.Named("callback")
	ln, err := net.Listen("tcp", c.CallbackListen)
	if err != nil {
		return nil, fmt.Errorf("callback: listen %s: %w", c.CallbackListen, err)
	}
	srv := &http.Server{
		Handler:           a.callbacks,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    callbackMaxHeader,
		ErrorLog:          zap.NewStdLog(log),
	}
	tlsOn := c.CallbackCertFile != ""
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(c.CallbackCertFile, c.CallbackKeyFile)
		if err != nil {
			ln.Close()
			return nil, &configError{fmt.Errorf("cec.callback_cert_file: %w", err)}
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("callback receiver stopped", zap.Error(err))
		}
	}()
	log.Info("receiving CC-FS callbacks", zap.Stringer("addr", ln.Addr()), zap.Bool("tls", tlsOn))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
