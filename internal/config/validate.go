package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Validate checks the configuration and returns every problem it finds,
// joined with errors.Join; each is a *FieldError whose Field is the key's TOML
// path. It reads no secret files (Load does that) but does check that the
// ca_file and callback certificate files exist.
//
// Which [cec] keys are required depends on the enabled jobs: every job needs
// CC-FS, the C2 AK/SK and the tenant ID (recordings with method "cms" needs
// CC-CMS instead of CC-FS); the transfer and ivr jobs also need OIFDE and its
// API password.
// The defaults lack exactly those keys.
func (c *Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c *Config) problems() []error {
	v := &validator{}
	v.cec(c)
	v.sink(&c.Sink)
	v.retention(&c.Retention, &c.Sink)
	v.checkpoint(&c.Checkpoint, c.CEC.TenantID, jobNeeds(&c.Jobs))
	v.jobs(&c.Jobs)
	v.metrics(&c.Metrics)
	v.log(&c.Log)
	v.positive("shutdown.timeout", c.Shutdown.Timeout)
	return v.errs
}

// Warnings returns what is allowed but unsafe or probably unintended, such as
// plain-http endpoints or disabled certificate checks, one "path: message"
// string each. Callers print them; they do not stop the archiver.
func (c *Config) Warnings() []string {
	var w []string
	httpWarn := func(field, u, what string) {
		if strings.HasPrefix(strings.ToLower(u), "http://") {
			w = append(w, field+": plain http:// "+what+"; use https://")
		}
	}
	httpWarn("cec.fs_url", c.CEC.FSURL, "sends signed requests and recordings unencrypted")
	httpWarn("cec.cms_url", c.CEC.CMSURL, "sends signed requests and recordings unencrypted")
	httpWarn("cec.oifde_url", c.CEC.OIFDEURL, "sends the API password and recordings unencrypted")
	httpWarn("cec.callback_url", c.CEC.CallbackURL, "is normally refused by CC-FS, which calls back over HTTPS")
	if c.CEC.CallbackURL == "" && c.Jobs.CDR.Enabled {
		// queryBillData requires a callBackURL (the client refuses to send
		// the request without one); the archiver polls as well, so the URL
		// only has to be accepted, but the cdr job cannot run without it.
		w = append(w, "cec.callback_url: empty, but CC-FS requires a callBackURL in every package request: the cdr job will fail; set callback_url and callback_listen")
	}
	if c.CEC.InsecureSkipVerify {
		w = append(w, "cec.insecure_skip_verify: the TLS certificates of CEC are not verified; use ca_file instead")
	}
	if c.Sink.Type == SinkS3 {
		httpWarn("sink.s3.endpoint", c.Sink.S3.Endpoint, "sends recordings unencrypted")
		if c.Sink.S3.Checksum == "none" {
			w = append(w, "sink.s3.checksum: objects are stored without an end-to-end checksum")
		}
	}
	enabled := false
	c.Jobs.Each(func(_ string, j *Job) { enabled = enabled || j.Enabled })
	if !enabled {
		w = append(w, "jobs: no job is enabled; the archiver has nothing to do")
	}
	return w
}

// validator collects problems.
type validator struct {
	errs []error
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// needs says which CEC services the enabled jobs use.
type needs struct {
	fs, cms, oifde bool
}

func (n needs) c2() bool { return n.fs || n.cms }

func jobNeeds(j *Jobs) needs {
	var n needs
	if j.CDR.Enabled || j.Transfer.Enabled || j.IVR.Enabled {
		n.fs = true // CDR packages; OIFDE recordings are downloaded from CC-FS
	}
	if j.Recordings.Enabled {
		if j.Recordings.Method == MethodCMS {
			n.cms = true
		} else {
			n.fs = true
		}
	}
	n.oifde = j.Transfer.Enabled || j.IVR.Enabled
	return n
}

func (v *validator) cec(c *Config) {
	e := &c.CEC
	n := jobNeeds(&c.Jobs)
	const oifdeWhy = "required when jobs.transfer or jobs.ivr is enabled"

	v.serviceURL("cec.fs_url", e.FSURL, n.fs, "required")
	v.serviceURL("cec.cms_url", e.CMSURL, n.cms, `required when jobs.recordings.method = "cms"`)
	v.serviceURL("cec.oifde_url", e.OIFDEURL, n.oifde, oifdeWhy)

	if n.c2() {
		if e.AK == "" {
			v.add("cec.ak", "required")
		}
		if !e.SK.IsSet() && e.SKFile == "" {
			v.add("cec.sk", "required (set cec.sk_file or ARCHIVER_CEC_SK)")
		}
	}
	if strings.ContainsAny(e.AK, " \t\r\n/") {
		v.add("cec.ak", "must not contain whitespace or '/'")
	}
	if e.TenantID == "" && (n.c2() || n.oifde) {
		// Every object key starts with the tenant; OIFDE also needs it as appKey.
		v.add("cec.tenant_id", "required: it is the {tenant} of every object key and the OIFDE tenant")
	}
	if n.oifde {
		if !e.APIPassword.IsSet() && e.APIPasswordFile == "" {
			v.add("cec.api_password", oifdeWhy+" (set cec.api_password_file or ARCHIVER_CEC_API_PASSWORD)")
		}
	}

	v.fileExists("cec.ca_file", e.CAFile)
	if e.ServerName != "" && strings.ContainsAny(e.ServerName, ":/ ") {
		v.add("cec.server_name", "must be a host name, without scheme or port (got %q)", e.ServerName)
	}
	v.intRange("cec.concurrency", e.Concurrency, 1, 64)
	if !(e.RateLimit > 0) || math.IsInf(e.RateLimit, 0) {
		v.add("cec.rate_limit", "must be a positive number of requests per second (got %v)", e.RateLimit)
	}
	v.signedHeaders(e.SignedHeaders)
	v.intRange("cec.max_attempts", e.MaxAttempts, 1, 100)
	v.positive("cec.dial_timeout", e.DialTimeout)
	v.positive("cec.tls_handshake_timeout", e.TLSHandshakeTimeout)
	v.positive("cec.response_header_timeout", e.ResponseHeaderTimeout)
	v.positive("cec.stall_timeout", e.StallTimeout)
	if e.UploadMaxBytes <= 0 {
		v.add("cec.upload_max_bytes", "must be positive (got %d)", e.UploadMaxBytes)
	}
	if e.MaxRecordingBytes <= 0 {
		v.add("cec.max_recording_bytes", "must be positive (got %d)", e.MaxRecordingBytes)
	}
	if e.MinRate < 0 {
		v.add("cec.min_rate", "must not be negative; 0 disables the check (got %d)", e.MinRate)
	}
	if e.MinRateWindow.Duration < time.Second {
		v.add("cec.min_rate_window", "must be at least 1s (got %s)", e.MinRateWindow)
	}
	v.intRange("cec.oifde_max_pages", e.OIFDEMaxPages, 1, 10000)
	switch {
	case e.TimeZone == "":
		v.add("cec.time_zone", "required")
	case e.TimeZone == "Local":
		v.add("cec.time_zone", `must be an IANA time zone name such as "Asia/Shanghai", not "Local"`)
	default:
		if _, err := time.LoadLocation(e.TimeZone); err != nil {
			v.add("cec.time_zone", "unknown time zone %q", e.TimeZone)
		}
	}

	if e.CallbackURL != "" {
		v.url("cec.callback_url", e.CallbackURL)
		if e.CallbackListen == "" {
			v.add("cec.callback_listen", "required when cec.callback_url is set")
		}
	}
	if e.CallbackListen != "" {
		v.hostPort("cec.callback_listen", e.CallbackListen)
		if e.CallbackURL == "" {
			v.add("cec.callback_url", "required when cec.callback_listen is set")
		}
	}
	switch {
	case e.CallbackCertFile != "" && e.CallbackKeyFile == "":
		v.add("cec.callback_key_file", "required when cec.callback_cert_file is set")
	case e.CallbackCertFile == "" && e.CallbackKeyFile != "":
		v.add("cec.callback_cert_file", "required when cec.callback_key_file is set")
	}
	v.fileExists("cec.callback_cert_file", e.CallbackCertFile)
	v.fileExists("cec.callback_key_file", e.CallbackKeyFile)
}

// isHeaderToken matches a lower-case HTTP header name.
func isHeaderToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (v *validator) signedHeaders(h []string) {
	const field = "cec.signed_headers"
	seen := make(map[string]bool)
	for _, name := range h {
		switch {
		case !isHeaderToken(name):
			v.add(field, "%q is not a lower-case header name", name)
		case seen[name]:
			v.add(field, "%q is listed twice", name)
		}
		seen[name] = true
	}
	if !seen["host"] {
		v.add(field, `must include "host"`)
	}
}

func (v *validator) sink(s *Sink) {
	switch s.Type {
	case SinkDir:
		if s.Dir == "" {
			v.add("sink.dir", `required when sink.type = "dir"`)
		}
	case SinkS3:
		v.s3(&s.S3)
	default:
		v.add("sink.type", `must be "dir" or "s3" (got %q)`, s.Type)
	}
}

// isBucketName applies the S3 bucket naming rule: 3-63 characters of a-z,
// 0-9, '.' and '-', starting and ending with a letter or digit.
func isBucketName(s string) bool {
	if len(s) < 3 || len(s) > 63 || strings.Contains(s, "..") {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && ((r != '.' && r != '-') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isStorageClass matches the S3 storage class names (STANDARD, GLACIER_IR, ...).
func isStorageClass(s string) bool {
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return s != ""
}

func (v *validator) s3(s *S3) {
	if s.Endpoint != "" {
		v.url("sink.s3.endpoint", s.Endpoint)
	}
	if s.Region == "" {
		v.add("sink.s3.region", `required when sink.type = "s3"`)
	}
	switch {
	case s.Bucket == "":
		v.add("sink.s3.bucket", `required when sink.type = "s3"`)
	case !isBucketName(s.Bucket):
		v.add("sink.s3.bucket", "%q is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')", s.Bucket)
	}
	if strings.HasPrefix(s.Prefix, "/") {
		v.add("sink.s3.prefix", "must not start with '/' (got %q)", s.Prefix)
	}
	hasSecret := s.SecretKey.IsSet() || s.SecretKeyFile != ""
	switch {
	case s.AccessKey != "" && !hasSecret:
		v.add("sink.s3.secret_key", "required when sink.s3.access_key is set (set sink.s3.secret_key_file or ARCHIVER_SINK_S3_SECRET_KEY)")
	case s.AccessKey == "" && hasSecret:
		v.add("sink.s3.access_key", "required when sink.s3.secret_key is set")
	}
	v.fileExists("sink.s3.ca_file", s.CAFile)
	v.oneOf("sink.s3.checksum", s.Checksum, "SHA256", "CRC32C", "CRC32", "none")
	v.oneOf("sink.s3.sse", s.SSE, "", "AES256", "aws:kms")
	if s.SSEKMSKeyID != "" && s.SSE != "aws:kms" {
		v.add("sink.s3.sse_kms_key_id", `only used with sink.s3.sse = "aws:kms"`)
	}
	if s.StorageClass != "" && !isStorageClass(s.StorageClass) {
		v.add("sink.s3.storage_class", "%q is not a storage class name (such as STANDARD or GLACIER_IR)", s.StorageClass)
	}
	v.oneOf("sink.s3.object_lock_mode", s.ObjectLockMode, "", "GOVERNANCE", "COMPLIANCE")
	switch {
	case s.RetentionDays < 0:
		v.add("sink.s3.retention_days", "must not be negative (got %d)", s.RetentionDays)
	case s.ObjectLockMode != "" && s.RetentionDays == 0:
		v.add("sink.s3.retention_days", "required when sink.s3.object_lock_mode is set")
	case s.ObjectLockMode == "" && s.RetentionDays > 0:
		v.add("sink.s3.retention_days", "only used with sink.s3.object_lock_mode")
	}
	const maxPut = 5 * GiB // largest single PUT and largest part
	if s.MultipartThreshold <= 0 || s.MultipartThreshold > maxPut {
		v.add("sink.s3.multipart_threshold", "must be between 1 and %s (got %s)", maxPut, s.MultipartThreshold)
	}
	if s.PartSize < 5*MiB || s.PartSize > maxPut {
		v.add("sink.s3.part_size", "must be between 5MiB and 5GiB (got %s)", s.PartSize)
	}
	v.intRange("sink.s3.upload_concurrency", s.UploadConcurrency, 1, 64)
	v.oneOf("sink.s3.part_buffers", s.PartBuffers, PartBuffersFile, PartBuffersMemory)
	// The budget of the buffers in use must hold one part and one single-put
	// body; the other one is not used.
	budget, name := s.MaxInflightBytes, "max_inflight_bytes"
	if s.PartBuffers == PartBuffersFile {
		budget, name = s.MaxSpoolBytes, "max_spool_bytes"
	}
	if need := max(s.PartSize, s.MultipartThreshold); budget < need {
		v.add("sink.s3."+name, "must hold one part and one single-put body: at least max(sink.s3.part_size, sink.s3.multipart_threshold) = %s with part_buffers = %q (got %s)", need, s.PartBuffers, budget)
	}
	if s.PartBuffers == PartBuffersFile && s.MaxBufferedBytes < 256*KiB {
		v.add("sink.s3.max_buffered_bytes", "must be at least 256KiB with part_buffers = \"file\" (got %s)", s.MaxBufferedBytes)
	}
	if err := CheckKeyTemplate(s.KeyTemplate); err != nil {
		v.add("sink.s3.key_template", "%v", err)
	}
	v.oneOf("sink.s3.phone_numbers", s.PhoneNumbers, PhoneOmit, PhoneHMAC)
	if s.PhoneNumbers == PhoneHMAC {
		switch {
		case !s.PhoneHMACKey.IsSet() && s.PhoneHMACKeyFile == "":
			v.add("sink.s3.phone_hmac_key", `required when sink.s3.phone_numbers = "hmac" (set sink.s3.phone_hmac_key_file or ARCHIVER_SINK_S3_PHONE_HMAC_KEY)`)
		case s.PhoneHMACKey.IsSet() && len(s.PhoneHMACKey.Reveal()) < 16:
			v.add("sink.s3.phone_hmac_key", "must be at least 16 bytes long")
		}
	}
}

// KeyTemplatePlaceholders are the names a key template may use in braces.
// They are the placeholders of the sink's key builder, which has the final
// say when the sink is built (it also rejects templates whose keys could
// collide); a test keeps the two lists in step.
func KeyTemplatePlaceholders() []string {
	return []string{"tenant", "yyyy", "mm", "dd", "hh", "vdn", "call_id", "record_id", "rid", "agent_id", "kind", "name"}
}

// CheckKeyTemplate checks an object key template: only known {placeholders},
// closed braces, literal text of A-Z a-z 0-9 . _ - / only, {record_id} or
// {rid} (so that two recordings of one call never share a key: {name} is a
// base name, which they may share), and no leading '/' or empty, '.' or '..'
// segment.
func CheckKeyTemplate(t string) error {
	if t == "" {
		return errors.New("required")
	}
	known := KeyTemplatePlaceholders()
	used := map[string]bool{}
	var shape strings.Builder // t with every placeholder replaced by "x"
	for rest := t; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		lit := rest[:open]
		if i := strings.IndexFunc(lit, func(r rune) bool { return !isKeyLiteral(r) }); i >= 0 {
			r, _ := utf8.DecodeRuneInString(lit[i:])
			return fmt.Errorf("character %q not allowed outside placeholders (only A-Z a-z 0-9 . _ - /)", r)
		}
		shape.WriteString(lit)
		if open == len(rest) {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return errors.New("unclosed '{'")
		}
		name := rest[open+1 : open+end]
		if !slices.Contains(known, name) {
			return fmt.Errorf("unknown placeholder {%s}; known: {%s}", name, strings.Join(known, "}, {"))
		}
		used[name] = true
		shape.WriteString("x")
		rest = rest[open+end+1:]
	}
	if !used["record_id"] && !used["rid"] {
		return errors.New("must contain {record_id} or {rid}, or two recordings of one call whose file names share a base name would share a key")
	}
	if strings.HasPrefix(t, "/") {
		return errors.New("must not start with '/'")
	}
	for seg := range strings.SplitSeq(shape.String(), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("must not contain an empty, '.' or '..' path segment")
		}
	}
	return nil
}

func isKeyLiteral(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)
}

// checkpoint checks [checkpoint]; tenant and n are cec.tenant_id and what
// the enabled jobs need, as cec checked them.
func (v *validator) checkpoint(c *Checkpoint, tenant string, n needs) {
	switch c.Driver {
	case DriverSQLite:
		if c.Path == "" {
			v.add("checkpoint.path", `required when checkpoint.driver = "sqlite"`)
		}
	case DriverPostgres:
		// The DSN is parsed when the store connects (pgx reads it as libpq
		// does, environment and password file included); the tenant is
		// cec.tenant_id, required above.
		if !c.DSN.IsSet() && c.DSNFile == "" {
			v.add("checkpoint.dsn", `required when checkpoint.driver = "postgres" (set checkpoint.dsn_file or ARCHIVER_CHECKPOINT_DSN)`)
		}
		// A database may hold several tenants' state, each kept apart by
		// its tenant ID; cec already requires it when a job is enabled.
		if tenant == "" && !n.c2() && !n.oifde {
			v.add("cec.tenant_id", `required when checkpoint.driver = "postgres": it keeps this tenant's state apart from the others' in the database`)
		}
	default:
		v.add("checkpoint.driver", `must be "sqlite" or "postgres" (got %q)`, c.Driver)
	}
	// Renewed every third of it: a shorter lease lets another replica take
	// over work whose process merely paused (GC, a slow database), a longer
	// one leaves a killed replica's items waiting that long.
	if c.Lease.Duration < MinLease || c.Lease.Duration > MaxLease {
		v.add("checkpoint.lease", "must be between %s and %s (got %s)", Duration{MinLease}, Duration{MaxLease}, c.Lease)
	}
}

// Bounds of checkpoint.lease.
const (
	MinLease = 10 * time.Second
	MaxLease = time.Hour
)

func (v *validator) jobs(j *Jobs) {
	j.Each(func(name string, job *Job) {
		prefix := "jobs." + name + "."
		switch {
		case job.Schedule == "" && job.Enabled:
			v.add(prefix+"schedule", "required when the job is enabled")
		case job.Schedule != "":
			if _, err := ParseSchedule(job.Schedule); err != nil {
				v.add(prefix+"schedule", "%v", err)
			}
		}
		if job.Jitter.Duration < 0 {
			v.add(prefix+"jitter", "must not be negative (got %s)", job.Jitter)
		}
	})

	w := j.CDR.Window.Duration
	switch {
	case w < time.Minute:
		v.add("jobs.cdr.window", "must be at least 1m (got %s)", j.CDR.Window)
	case w > MaxCDRWindow:
		v.add("jobs.cdr.window", "must be at most %s, the longest range CC-FS accepts (got %s)", Duration{MaxCDRWindow}, j.CDR.Window)
	case w%time.Second != 0:
		v.add("jobs.cdr.window", "must be a whole number of seconds (got %s)", j.CDR.Window)
	case w < 24*time.Hour && (24*time.Hour)%w != 0, w > 24*time.Hour && w%(24*time.Hour) != 0:
		// Windows are aligned to the tenant's midnight: each day splits into whole windows.
		v.add("jobs.cdr.window", "must divide 24h (such as 15m, 1h, 6h) or be a whole number of days (got %s)", j.CDR.Window)
	}
	v.intRange("jobs.cdr.lookback_windows", j.CDR.LookbackWindows, 0, 100)
	v.positive("jobs.cdr.ready_timeout", j.CDR.ReadyTimeout)
	v.intRange("jobs.cdr.max_inflation_ratio", j.CDR.MaxInflationRatio, 2, 1000)
	if j.CDR.MaxInflatedBytes <= 0 {
		v.add("jobs.cdr.max_inflated_bytes", "must be positive (got %d)", j.CDR.MaxInflatedBytes)
	}

	v.oneOf("jobs.recordings.method", j.Recordings.Method, Methods()...)
	v.intRange("jobs.recordings.max_attempts", j.Recordings.MaxAttempts, 1, 1000)
	v.positive("jobs.recordings.retry_backoff", j.Recordings.RetryBackoff)
	seen := map[string]bool{}
	for _, f := range j.Recordings.AllowFormats {
		switch {
		case f == "wav" || f == "zip":
			v.add("jobs.recordings.allow_formats", "%q is always accepted; list only %q, %q or %q", f, FormatMP3, FormatOGG, FormatFLAC)
		case f != FormatMP3 && f != FormatOGG && f != FormatFLAC:
			v.add("jobs.recordings.allow_formats", "must list only %q, %q or %q (got %q)", FormatMP3, FormatOGG, FormatFLAC, f)
		case seen[f]:
			v.add("jobs.recordings.allow_formats", "%q is listed twice", f)
		}
		seen[f] = true
	}

	for _, o := range []struct {
		name string
		*OIFDEJob
	}{{JobTransfer, &j.Transfer}, {JobIVR, &j.IVR}} {
		prefix := "jobs." + o.name + "."
		v.positive(prefix+"settle_max_age", o.SettleMaxAge)
		v.intRange(prefix+"max_attempts", o.MaxAttempts, 1, 1000)
		v.positive(prefix+"retry_backoff", o.RetryBackoff)
	}
}

func (v *validator) metrics(m *Metrics) {
	if m.Listen != "" {
		v.hostPort("metrics.listen", m.Listen)
	}
	if m.PushgatewayURL != "" {
		v.url("metrics.pushgateway_url", m.PushgatewayURL)
	}
	if m.PushJob == "" {
		v.add("metrics.push_job", "must not be empty (the Pushgateway's job label)")
	}
	if l := m.PushTenantLabel; l != "" {
		switch {
		case !isLabelName(l) || strings.HasPrefix(l, "__"):
			v.add("metrics.push_tenant_label", "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __), or \"\" to leave the tenant out (got %q)", l)
		case slices.Contains(ReservedPushLabels(), l):
			v.add("metrics.push_tenant_label", "must not be %q: the grouping key or the metrics use that label already", l)
		}
	}
}

// isLabelName reports whether s is a Prometheus label name:
// [a-zA-Z_][a-zA-Z0-9_]*.
func isLabelName(s string) bool {
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}

// ReservedPushLabels are the label names metrics.push_tenant_label may not
// take: the other labels of the Pushgateway grouping key and those of the
// archiver's metrics. telemetry's tests check the list against the metrics.
func ReservedPushLabels() []string {
	return []string{"job", "instance", "archiver_job", "job_name", "kind", "result", "state", "op", "class", "version", "goversion"}
}

func (v *validator) log(l *Log) {
	v.oneOf("log.level", l.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", l.Format, LogAuto, LogJSON, LogConsole)
	v.positive("log.progress_interval", l.ProgressInterval)
}

// serviceURL checks a CEC base URL that may be required.
func (v *validator) serviceURL(field, s string, required bool, why string) {
	if s == "" {
		if required {
			v.add(field, "%s", why)
		}
		return
	}
	v.url(field, s)
}

// url checks an absolute http(s) URL. Its value is not echoed: it could carry
// a password.
func (v *validator) url(field, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.add(field, "must be an https:// or http:// URL")
		return
	}
	if u.User != nil {
		v.add(field, "must not contain a user name or password")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		v.add(field, "must not have a query or fragment")
	}
}

func (v *validator) hostPort(field, s string) {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(field, "must be host:port, such as 127.0.0.1:10108 or :10108 (got %q)", s)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(field, "port must be a number between 0 and 65535 (got %q)", port)
	}
}

func (v *validator) fileExists(field, path string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		v.add(field, "%v", describeFileError(path, err))
	case st.IsDir():
		v.add(field, "%s is a directory", path)
	}
}

func (v *validator) intRange(field string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(field, "must be between %d and %d (got %d)", lo, hi, n)
	}
}

func (v *validator) positive(field string, d Duration) {
	if d.Duration <= 0 {
		v.add(field, "must be positive (got %s)", d)
	}
}

func (v *validator) oneOf(field, s string, allowed ...string) {
	if slices.Contains(allowed, s) {
		return
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	v.add(field, "must be one of %s (got %q)", strings.Join(quoted, ", "), s)
}
