// Package config loads, checks and describes the archiver's configuration.
//
// Load builds a Config in a fixed order:
//
//  1. Default values (Default).
//  2. The TOML file, decoded strictly: a key or table the Config does not know
//     is an error naming the key and its line.
//  3. Environment overrides ARCHIVER_<SECTION>_<KEY>, the TOML path upper-cased
//     and joined with "_" (ARCHIVER_SINK_S3_ENDPOINT, ARCHIVER_JOBS_CDR_SCHEDULE).
//     Variables that match no key are ignored; a value that does not parse is an
//     error naming the variable.
//  4. Secrets: a secret key (cec.sk) and its *_file twin (cec.sk_file) are
//     mutually exclusive; a *_file is read once, with trailing newlines trimmed.
//  5. Validate, which reports every problem at once, each prefixed with the
//     field's TOML path ("cec.fs_url: must be an https:// or http:// URL").
//
// The key names are part of the product: config.toml.example and
// docs/configuration.md document every one of them, and tests keep both in step
// with the structs below.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Sink types.
const (
	SinkDir = "dir"
	SinkS3  = "s3"
)

// Checkpoint drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"

	// sink.s3.part_buffers
	PartBuffersFile   = "file"
	PartBuffersMemory = "memory"
)

// Recording download methods (jobs.recordings.method). config owns them,
// as it owns the job names: they are words of the configuration, and package
// jobs, which implements them, uses these constants (config is the lower
// floor and cannot import jobs).
const (
	MethodDownloadRecordFile = "downloadRecordFile" // CC-FS, one .wav per index file_name
	MethodDownloadRecord     = "downloadRecord"     // CC-FS extended, may return a zip per call
	MethodCMS                = "cms"                // CC-CMS hisindex/downloadRecordFile
)

// Methods lists the recording download methods jobs.recordings.method
// accepts.
func Methods() []string { return []string{MethodDownloadRecordFile, MethodDownloadRecord, MethodCMS} }

// Phone-number policies (sink.s3.phone_numbers).
const (
	PhoneOmit = "omit"
	PhoneHMAC = "hmac"
)

// Job names, the only tables allowed under [jobs]. They are the one
// spelling of the job names everywhere: package jobs runs the jobs under these
// names (and keeps the cdr watermark under JobCDR), metrics label them and
// the commands accept them. config owns them because it is the lowest package
// that needs them: jobs may import config, never the reverse.
const (
	JobCDR        = "cdr"
	JobRecordings = "recordings"
	JobTransfer   = "transfer"
	JobIVR        = "ivr"
)

// JobNames lists the jobs in the order they run: cdr first, then the item
// jobs.
func JobNames() []string { return []string{JobCDR, JobRecordings, JobTransfer, JobIVR} }

// MaxCDRWindow is the longest queryBillData range CC-FS accepts.
const MaxCDRWindow = cecwire.MaxQueryBillDataWindowDays * 24 * time.Hour

// Config is the whole archiver configuration. The toml tags are the key names
// users write; the environment override of a key is derived from its path.
type Config struct {
	CEC        CEC        `toml:"cec"`
	Sink       Sink       `toml:"sink"`
	Retention  Retention  `toml:"retention"`
	Checkpoint Checkpoint `toml:"checkpoint"`
	Jobs       Jobs       `toml:"jobs"`
	Metrics    Metrics    `toml:"metrics"`
	Log        Log        `toml:"log"`
	Shutdown   Shutdown   `toml:"shutdown"`
}

// CEC is the [cec] table: where the tenant's CEC services are, how to
// authenticate to them and how hard to push them.
type CEC struct {
	FSURL    string `toml:"fs_url"`    // CC-FS base URL (CDR packages, recordings)
	CMSURL   string `toml:"cms_url"`   // CC-CMS base URL (jobs.recordings.method = "cms")
	OIFDEURL string `toml:"oifde_url"` // OIFDE base URL (transfer and ivr jobs)

	AK              string `toml:"ak"`                // C2 (auth-v2) access key
	SK              Secret `toml:"sk"`                // C2 secret key
	SKFile          string `toml:"sk_file"`           // file holding the SK
	TenantID        string `toml:"tenant_id"`         // OIFDE appKey / tenantId
	APIPassword     Secret `toml:"api_password"`      // OIFDE appSecret
	APIPasswordFile string `toml:"api_password_file"` // file holding the API password

	CAFile             string `toml:"ca_file"`              // PEM bundle trusted for CEC, on top of the system pool
	ServerName         string `toml:"server_name"`          // TLS server name when it differs from the URL host
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"` // skip certificate verification (a warning)

	Concurrency   int      `toml:"concurrency"`    // parallel requests to CEC
	RateLimit     float64  `toml:"rate_limit"`     // requests per second to CEC, all services together
	SignedHeaders []string `toml:"signed_headers"` // headers covered by the auth-v2 signature
	MaxAttempts   int      `toml:"max_attempts"`   // attempts per request for transient failures

	DialTimeout           Duration `toml:"dial_timeout"`
	TLSHandshakeTimeout   Duration `toml:"tls_handshake_timeout"`
	ResponseHeaderTimeout Duration `toml:"response_header_timeout"`
	StallTimeout          Duration `toml:"stall_timeout"` // abort a body transfer that makes no progress for this long

	UploadMaxBytes Size   `toml:"upload_max_bytes"` // CC-FS third-party upload size limit
	TimeZone       string `toml:"time_zone"`        // tenant time zone (IANA) of CEC query times

	// MaxRecordingBytes is the largest recording download accepted; a
	// larger one is refused instead of filling the disk or the sink.
	MaxRecordingBytes Size `toml:"max_recording_bytes"`
	// MinRate is the slowest download (bytes per second, averaged over
	// MinRateWindow) tolerated before it is aborted as a stall; 0 disables.
	MinRate       Size     `toml:"min_rate"`
	MinRateWindow Duration `toml:"min_rate_window"`
	// OIFDEMaxPages bounds the pages read from one OIFDE history query, so a
	// server that keeps answering "more" cannot loop a job forever.
	OIFDEMaxPages int `toml:"oifde_max_pages"`

	CallbackURL      string `toml:"callback_url"`       // callBackURL sent to queryBillData
	CallbackListen   string `toml:"callback_listen"`    // host:port of the built-in callback receiver
	CallbackCertFile string `toml:"callback_cert_file"` // TLS certificate of the callback receiver
	CallbackKeyFile  string `toml:"callback_key_file"`  // TLS key of the callback receiver
}

// Sink is the [sink] table: where archived objects go.
type Sink struct {
	Type string `toml:"type"` // SinkDir or SinkS3
	Dir  string `toml:"dir"`  // root directory of the dir sink
	S3   S3     `toml:"s3"`
}

// S3 is the [sink.s3] table. It is only validated when sink.type = "s3".
type S3 struct {
	Endpoint      string `toml:"endpoint"` // empty = AWS
	Region        string `toml:"region"`
	Bucket        string `toml:"bucket"`
	Prefix        string `toml:"prefix"`
	PathStyle     bool   `toml:"path_style"`
	AccessKey     string `toml:"access_key"` // empty = the AWS SDK's default credential chain
	SecretKey     Secret `toml:"secret_key"`
	SecretKeyFile string `toml:"secret_key_file"`
	CAFile        string `toml:"ca_file"`

	Checksum       string `toml:"checksum"` // SHA256, CRC32C, CRC32 or none
	SSE            string `toml:"sse"`      // "", AES256 or aws:kms
	SSEKMSKeyID    string `toml:"sse_kms_key_id"`
	StorageClass   string `toml:"storage_class"`
	ObjectLockMode string `toml:"object_lock_mode"` // "", GOVERNANCE or COMPLIANCE
	RetentionDays  int    `toml:"retention_days"`
	LegalHold      bool   `toml:"legal_hold"`

	MultipartThreshold Size `toml:"multipart_threshold"`
	PartSize           Size `toml:"part_size"`
	UploadConcurrency  int  `toml:"upload_concurrency"`
	MaxInflightBytes   Size `toml:"max_inflight_bytes"` // with part_buffers = "memory"
	// PartBuffers: "file" (spool parts and bodies above 256 KiB to the temp
	// directory, within MaxSpoolBytes; smaller bodies in memory, within
	// MaxBufferedBytes) or "memory" (every buffer, within MaxInflightBytes).
	PartBuffers      string `toml:"part_buffers"`
	MaxSpoolBytes    Size   `toml:"max_spool_bytes"`
	MaxBufferedBytes Size   `toml:"max_buffered_bytes"`

	KeyTemplate      string `toml:"key_template"`
	PhoneNumbers     string `toml:"phone_numbers"` // PhoneOmit or PhoneHMAC
	PhoneHMACKey     Secret `toml:"phone_hmac_key"`
	PhoneHMACKeyFile string `toml:"phone_hmac_key_file"`
}

// Checkpoint is the [checkpoint] table: the state database.
type Checkpoint struct {
	Driver  string `toml:"driver"` // DriverSQLite or DriverPostgres
	Path    string `toml:"path"`   // SQLite database file
	DSN     Secret `toml:"dsn"`    // PostgreSQL connection string (may hold a password)
	DSNFile string `toml:"dsn_file"`
	// Lease is how long a claimed item, or singleton work (a CDR window, a
	// day's ledger, the janitor), stays this process's without renewal; it
	// is renewed every Lease/3, and another replica takes over work whose
	// lease expired.
	Lease Duration `toml:"lease"`
}

// Jobs is the [jobs] table. Its sub-tables are fixed: a [jobs.<name>] with any
// other name is an error.
type Jobs struct {
	CDR        CDRJob        `toml:"cdr"`
	Recordings RecordingsJob `toml:"recordings"`
	Transfer   OIFDEJob      `toml:"transfer"`
	IVR        OIFDEJob      `toml:"ivr"`
}

// Job holds the keys every [jobs.<name>] table has.
type Job struct {
	Schedule string   `toml:"schedule"` // 5-field cron spec or descriptor, optional CRON_TZ= prefix
	Enabled  bool     `toml:"enabled"`
	Jitter   Duration `toml:"jitter"` // random delay added to each run
	// RunAtStart runs the job once as soon as the daemon starts, besides
	// its schedule (default true: a new daemon does not wait up to an
	// interval for its first run).
	RunAtStart bool `toml:"run_at_start"`
}

// CDRJob is [jobs.cdr]: request CDR + recording-index packages per time window.
type CDRJob struct {
	Job
	Window          Duration `toml:"window"`           // queryBillData range, at most 72h
	LookbackWindows int      `toml:"lookback_windows"` // past windows re-requested on every run
	ReadyTimeout    Duration `toml:"ready_timeout"`    // how long to wait for a package before re-requesting it
	// MaxInflationRatio and MaxInflatedBytes bound what a CDR package ZIP
	// may expand to (uncompressed/compressed per entry, and in total):
	// a package beyond them is rejected as a ZIP bomb and quarantined.
	MaxInflationRatio int  `toml:"max_inflation_ratio"`
	MaxInflatedBytes  Size `toml:"max_inflated_bytes"`
}

// RecordingsJob is [jobs.recordings]: download the recordings listed in the
// recording index.
type RecordingsJob struct {
	Job
	Method       string   `toml:"method"`        // MethodDownloadRecordFile, MethodDownloadRecord or MethodCMS
	MaxAttempts  int      `toml:"max_attempts"`  // runs that may fail on one recording before it is dead
	RetryBackoff Duration `toml:"retry_backoff"` // delay before a failed recording is tried again (doubles per attempt)
	// AllowFormats lists the audio formats accepted besides WAV (always
	// accepted, as is a ZIP bundle where the download method returns one):
	// FormatMP3, FormatOGG, FormatFLAC. Empty: WAV (and ZIP) only.
	AllowFormats []string `toml:"allow_formats"`
}

// Audio formats jobs.recordings.allow_formats may list.
const (
	FormatMP3  = "mp3"
	FormatOGG  = "ogg"
	FormatFLAC = "flac"
)

// OIFDEJob is [jobs.transfer] and [jobs.ivr]: query OIFDE records and download
// their recordings.
type OIFDEJob struct {
	Job
	SettleMaxAge Duration `toml:"settle_max_age"` // how long a not-yet-final record is re-queried
	MaxAttempts  int      `toml:"max_attempts"`   // runs that may fail on one record before it is dead
	RetryBackoff Duration `toml:"retry_backoff"`  // delay before a failed record is tried again (doubles per attempt)
}

// Metrics is the [metrics] table.
type Metrics struct {
	Listen         string `toml:"listen"`          // host:port of /metrics; "" disables the server
	PushgatewayURL string `toml:"pushgateway_url"` // push at the end of a run (CronJob mode)
	// The Pushgateway grouping key: job=PushJob, instance=PushInstance (the
	// host name when ""), PushTenantLabel=cec.tenant_id (left out when ""),
	// and archiver_job per job (telemetry.Push).
	PushJob         string `toml:"push_job"`
	PushInstance    string `toml:"push_instance"`
	PushTenantLabel string `toml:"push_tenant_label"`
}

// Log is the [log] table.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn or error
	Format string `toml:"format"` // auto (console on a terminal, else json), json or console
	// ProgressInterval is how often once and backfill log a "progress" line
	// when stderr is not a terminal (on a terminal they draw a status line).
	ProgressInterval Duration `toml:"progress_interval"`
}

// Log formats (log.format).
const (
	LogAuto    = "auto"
	LogJSON    = "json"
	LogConsole = "console"
)

// Shutdown is the [shutdown] table.
type Shutdown struct {
	Timeout Duration `toml:"timeout"` // grace period for in-flight work after SIGTERM
}

// Default returns the built-in configuration. It validates except for the
// [cec] endpoints and credentials, which have no sensible default.
func Default() *Config {
	job := func(schedule string) Job { return Job{Schedule: schedule, Enabled: true, RunAtStart: true} }
	oifde := func() OIFDEJob {
		return OIFDEJob{
			Job: job("@every 1h"), SettleMaxAge: Duration{72 * time.Hour},
			MaxAttempts: 10, RetryBackoff: Duration{time.Minute},
		}
	}
	return &Config{
		CEC: CEC{
			Concurrency:           4,
			RateLimit:             10,
			SignedHeaders:         []string{"content-length", "content-type", "host"},
			MaxAttempts:           5,
			DialTimeout:           Duration{10 * time.Second},
			TLSHandshakeTimeout:   Duration{10 * time.Second},
			ResponseHeaderTimeout: Duration{60 * time.Second},
			StallTimeout:          Duration{60 * time.Second},
			UploadMaxBytes:        5 * MiB,
			TimeZone:              "UTC",
			MaxRecordingBytes:     2 * GiB,
			MinRate:               1 * KiB,
			MinRateWindow:         Duration{60 * time.Second},
			OIFDEMaxPages:         50,
		},
		Sink: Sink{
			Type: SinkDir,
			Dir:  "./archive",
			S3: S3{
				Region:             "us-east-1",
				Checksum:           "CRC32C",
				MultipartThreshold: 64 * MiB,
				PartSize:           16 * MiB,
				UploadConcurrency:  4,
				MaxInflightBytes:   128 * MiB,
				PartBuffers:        PartBuffersFile,
				MaxSpoolBytes:      1 * GiB,
				MaxBufferedBytes:   4 * MiB,
				KeyTemplate:        "{tenant}/{yyyy}/{mm}/{dd}/{vdn}/{call_id}/{kind}-{name}-{rid}",
				PhoneNumbers:       PhoneOmit,
			},
		},
		Checkpoint: Checkpoint{
			Driver: DriverSQLite,
			Path:   "./archiver-state.db",
			Lease:  Duration{2 * time.Minute},
		},
		Jobs: Jobs{
			CDR: CDRJob{
				Job:             job("@every 1h"),
				Window:          Duration{time.Hour},
				LookbackWindows: 3,
				ReadyTimeout:    Duration{30 * time.Minute},

				MaxInflationRatio: 50,
				MaxInflatedBytes:  4 * GiB,
			},
			Recordings: RecordingsJob{
				Job:          job("@every 15m"),
				Method:       MethodDownloadRecordFile,
				MaxAttempts:  10,
				RetryBackoff: Duration{time.Minute},
			},
			Transfer: oifde(),
			IVR:      oifde(),
		},
		Metrics:  Metrics{Listen: "127.0.0.1:10108", PushJob: "cec-archiver", PushTenantLabel: "tenant"},
		Log:      Log{Level: "info", Format: LogAuto, ProgressInterval: Duration{30 * time.Second}},
		Shutdown: Shutdown{Timeout: Duration{25 * time.Second}},
	}
}

// Load returns the configuration built from the defaults, the TOML file at path
// ("" = defaults only), the environment (env, normally os.LookupEnv; nil = no
// overrides) and the secret files, and validated. On failure it returns a nil
// Config and every problem it found, joined with errors.Join: unknown keys,
// environment values that do not parse, unreadable secret files and
// validation problems are reported together. A file that cannot be read, is
// not TOML, or has values of the wrong type stops before the later steps (all
// its type errors are still reported at once).
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	cfg := Default()
	var errs []error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		problems, err := decode(data, cfg)
		if err != nil {
			return nil, err
		}
		errs = append(errs, problems...)
	}
	if env != nil {
		errs = append(errs, applyEnv(cfg, env)...)
	}
	errs = append(errs, resolveSecrets(cfg)...)
	errs = append(errs, cfg.problems()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// Each calls fn for every job in a fixed order (cdr, recordings, transfer,
// ivr) with its name and its common keys.
func (j *Jobs) Each(fn func(name string, job *Job)) {
	fn(JobCDR, &j.CDR.Job)
	fn(JobRecordings, &j.Recordings.Job)
	fn(JobTransfer, &j.Transfer.Job)
	fn(JobIVR, &j.IVR.Job)
}

// Location returns the tenant time zone (cec.time_zone).
func (c *CEC) Location() (*time.Location, error) {
	return time.LoadLocation(c.TimeZone)
}
