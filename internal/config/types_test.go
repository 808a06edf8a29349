package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const canarySecret = "canary-S3CR3T-value"

func configWithSecrets() *Config {
	c := Default()
	c.CEC.SK = NewSecret(canarySecret)
	c.CEC.APIPassword = NewSecret(canarySecret)
	c.Sink.S3.SecretKey = NewSecret(canarySecret)
	c.Sink.S3.PhoneHMACKey = NewSecret(canarySecret)
	c.Checkpoint.DSN = NewSecret("postgres://u:" + canarySecret + "@db/archiver")
	return c
}

func TestSecret_Redaction(t *testing.T) {
	cfg := configWithSecrets()
	s := cfg.CEC.SK
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		outputs["Secret "+verb] = fmt.Sprintf(verb, s)
		outputs["*Secret "+verb] = fmt.Sprintf(verb, &s)
		outputs["Config "+verb] = fmt.Sprintf(verb, cfg)
		outputs["Config value "+verb] = fmt.Sprintf(verb, *cfg)
		outputs["CEC "+verb] = fmt.Sprintf(verb, cfg.CEC)
	}
	outputs["Sprint"] = fmt.Sprint(s, cfg)
	outputs["Sprintln"] = fmt.Sprintln(s, cfg)
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()

	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(j)
	tm, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs["toml"] = string(tm)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "sk", s, "config", cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "sk", s)
	outputs["slog"] = buf.String()
	if err := fmt.Errorf("wrapped: %v", s); err != nil {
		outputs["error"] = err.Error()
	}

	for name, out := range outputs {
		if strings.Contains(out, canarySecret) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
	}
	for _, name := range []string{"Secret %v", "Secret %s", "String", "GoString", "Config %+v", "json", "toml", "slog"} {
		if !strings.Contains(outputs[name], "redacted") {
			t.Errorf("%s does not say <redacted>: %s", name, outputs[name])
		}
	}
	if got := outputs["Secret %q"]; got != `"<redacted>"` {
		t.Errorf("%%q = %s", got)
	}
	if s.Reveal() != canarySecret {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}

func TestSecret_Unmarshal(t *testing.T) {
	var c Config
	if err := toml.Unmarshal([]byte("[cec]\nsk = \"abc\"\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.CEC.SK.Reveal() != "abc" || !c.CEC.SK.IsSet() {
		t.Errorf("sk = %q", c.CEC.SK.Reveal())
	}
	if (Secret{}).IsSet() {
		t.Error("zero Secret IsSet")
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]string{"30s": "30s", "1h": "1h", "72h": "72h", "1h30m": "1h30m", "90s": "1m30s", "250ms": "250ms", "0s": "0s", "1h0m1s": "1h0m1s"} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil {
			t.Errorf("UnmarshalText(%q): %v", in, err)
			continue
		}
		if got := d.String(); got != want {
			t.Errorf("Duration(%q).String() = %q, want %q", in, got, want)
		}
		b, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Errorf("round trip of %q: %v %v", in, back, err)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("10 seconds")); err == nil {
		t.Error("accepted \"10 seconds\"")
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{
		"0": 0, "1048576": MiB, "512KiB": 512 * KiB, "8MiB": 8 * MiB, "8 MiB": 8 * MiB, "1GiB": GiB,
		"1gib": GiB, "5MB": 5_000_000, "1kB": 1000, "10B": 10, "2TiB": 2 * TiB,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "8 MiBs", "-", "9999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
	for z, want := range map[Size]string{16 * MiB: "16MiB", 5 * GiB: "5GiB", 1000: "1000", 0: "0", 1536: "1536", 3 * KiB: "3KiB"} {
		if got := z.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(z), got, want)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	valid := []string{
		"0 * * * *", "*/15 * * * *", "5 2 * * 1-5", "CRON_TZ=Asia/Shanghai 0 2 * * *",
		"CRON_TZ=UTC @daily", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
		"@annually", "@every 1h", "@every 90s", "  0 * * * *  ",
	}
	for _, spec := range valid {
		if _, err := ParseSchedule(spec); err != nil {
			t.Errorf("ParseSchedule(%q): %v", spec, err)
		}
	}
	invalid := map[string]string{
		"":                                   "empty schedule",
		"0 * * *":                            "has 4 fields",
		"0 0 * * * *":                        "has 6 fields",
		"61 * * * *":                         "above maximum",
		"CRON_TZ=Mars/Base 0 * * * *":        `unknown time zone "Mars/Base"`,
		"CRON_TZ=UTC":                        "not followed by a schedule",
		"CRON_TZ= 0 * * * *":                 "needs a time zone",
		"TZ=UTC 0 * * * *":                   "CRON_TZ=",
		"@every":                             "unknown descriptor",
		"@every 0s":                          "at least 1s",
		"@every -1h":                         "at least 1s",
		"@every soon":                        "invalid duration",
		"@fortnightly":                       "unknown descriptor",
		"CRON_TZ=Local 0 * * * *":            "unknown time zone",
		"CRON_TZ=Asia/Shanghai 0 * * * * *":  "has 6 fields",
		"CRON_TZ=Asia/Shanghai @every 1x":    "invalid duration",
		"0 * * * MON-XYZ":                    "",
		"CRON_TZ=Europe/Berlin 0 25 * * *":   "above maximum",
		"CRON_TZ=Europe/Berlin\t0 2 * * * *": "unknown time zone",
	}
	for spec, want := range invalid {
		_, err := ParseSchedule(spec)
		if err == nil {
			t.Errorf("ParseSchedule(%q) succeeded", spec)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSchedule(%q) = %v, want it to mention %q", spec, err, want)
		}
	}
}

func TestParseSchedule_Zone(t *testing.T) {
	s, err := ParseSchedule("CRON_TZ=Asia/Shanghai 0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before; the next one after
	// midnight UTC is 18:00 UTC the same day.
	if got, want := s.Next(from).UTC(), time.Date(2024, 1, 1, 18, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
}

func TestConfig_Warnings(t *testing.T) {
	c := Default()
	c.CEC.FSURL = "http://cec.example.com"
	c.CEC.OIFDEURL = "https://cec.example.com"
	c.CEC.InsecureSkipVerify = true
	c.Sink.Type = SinkS3
	c.Sink.S3.Endpoint = "http://minio:9000"
	c.Sink.S3.Checksum = "none"
	c.Jobs.Each(func(_ string, j *Job) { j.Enabled = false })
	want := []string{
		"cec.fs_url: plain http:// sends signed requests and recordings unencrypted; use https://",
		"cec.insecure_skip_verify: the TLS certificates of CEC are not verified; use ca_file instead",
		"sink.s3.endpoint: plain http:// sends recordings unencrypted; use https://",
		"sink.s3.checksum: objects are stored without an end-to-end checksum",
		"jobs: no job is enabled; the archiver has nothing to do",
	}
	got := c.Warnings()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Warnings() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// http is a warning, not an error.
	c.Jobs.CDR.Enabled = true
	c.CEC.AK, c.CEC.SK, c.CEC.TenantID, c.Sink.S3.Bucket = "ak", NewSecret("sk"), "tenant", "bucket"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// validConfig is the defaults plus CEC credentials: it validates.
func validConfig() *Config {
	c := Default()
	c.CEC.FSURL = "https://cec.example.com:28443"
	c.CEC.OIFDEURL = "https://cec.example.com:28090"
	c.CEC.AK = "ak"
	c.CEC.SK = NewSecret("sk")
	c.CEC.TenantID = "tenant"
	c.CEC.APIPassword = NewSecret("password")
	return c
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // "" = valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"sk_file counts as set", func(c *Config) { c.CEC.SK = Secret{}; c.CEC.SKFile = "/run/secrets/sk" }, ""},
		{"only cdr needs no OIFDE", func(c *Config) {
			c.CEC.OIFDEURL, c.CEC.APIPassword = "", Secret{}
			c.Jobs.Transfer.Enabled, c.Jobs.IVR.Enabled = false, false
		}, ""},
		{"only cdr still needs the tenant", func(c *Config) {
			c.CEC.OIFDEURL, c.CEC.TenantID, c.CEC.APIPassword = "", "", Secret{}
			c.Jobs.Transfer.Enabled, c.Jobs.IVR.Enabled = false, false
		}, "cec.tenant_id: required: it is the {tenant} of every object key and the OIFDE tenant"},
		{"cms needs cms_url", func(c *Config) { c.Jobs.Recordings.Method = MethodCMS },
			`cec.cms_url: required when jobs.recordings.method = "cms"`},
		{"nothing enabled needs nothing", func(c *Config) {
			*c = *Default()
			c.Jobs.Each(func(_ string, j *Job) { j.Enabled = false })
		}, ""},
		{"url with password", func(c *Config) { c.CEC.FSURL = "https://u:p@cec.example.com" }, "cec.fs_url: must not contain a user name or password"},
		{"url with query", func(c *Config) { c.CEC.FSURL = "https://cec.example.com/?a=b" }, "cec.fs_url: must not have a query or fragment"},
		{"ak with space", func(c *Config) { c.CEC.AK = "a k" }, "cec.ak: must not contain whitespace or '/'"},
		{"server_name with port", func(c *Config) { c.CEC.ServerName = "cec:443" }, `cec.server_name: must be a host name, without scheme or port (got "cec:443")`},
		{"concurrency", func(c *Config) { c.CEC.Concurrency = 65 }, "cec.concurrency: must be between 1 and 64 (got 65)"},
		{"rate_limit", func(c *Config) { c.CEC.RateLimit = 0 }, "cec.rate_limit: must be a positive number of requests per second (got 0)"},
		{"signed_headers", func(c *Config) { c.CEC.SignedHeaders = []string{"host", "Host", "host"} },
			"cec.signed_headers: \"Host\" is not a lower-case header name\ncec.signed_headers: \"host\" is listed twice"},
		{"timeouts", func(c *Config) { c.CEC.StallTimeout = Duration{}; c.Shutdown.Timeout = Duration{-time.Second} },
			"cec.stall_timeout: must be positive (got 0s)\nshutdown.timeout: must be positive (got -1s)"},
		{"time_zone Local", func(c *Config) { c.CEC.TimeZone = "Local" }, `cec.time_zone: must be an IANA time zone name such as "Asia/Shanghai", not "Local"`},
		{"callback_listen without url", func(c *Config) { c.CEC.CallbackListen = ":8443" }, "cec.callback_url: required when cec.callback_listen is set"},
		{"callback cert without key", func(c *Config) {
			c.CEC.CallbackURL, c.CEC.CallbackListen, c.CEC.CallbackCertFile = "https://a.example.com/cb", ":8443", "testdata/secrets/cec-sk"
		}, "cec.callback_key_file: required when cec.callback_cert_file is set"},
		{"dir required", func(c *Config) { c.Sink.Dir = "" }, `sink.dir: required when sink.type = "dir"`},
		{"s3 ignored for dir", func(c *Config) { c.Sink.S3.PartSize = 1 }, ""},
		{"s3 bucket name", func(c *Config) { c.Sink.Type = SinkS3; c.Sink.S3.Bucket = "Bad_Bucket" },
			`sink.s3.bucket: "Bad_Bucket" is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')`},
		{"s3 access key without secret", func(c *Config) { c.Sink.Type = SinkS3; c.Sink.S3.Bucket = "b-1"; c.Sink.S3.AccessKey = "AK" },
			"sink.s3.secret_key: required when sink.s3.access_key is set (set sink.s3.secret_key_file or ARCHIVER_SINK_S3_SECRET_KEY)"},
		{"s3 secret without access key", func(c *Config) { c.Sink.Type = SinkS3; c.Sink.S3.Bucket = "b-1"; c.Sink.S3.SecretKeyFile = "/x" },
			"sink.s3.access_key: required when sink.s3.secret_key is set"},
		{"s3 inflight", func(c *Config) {
			c.Sink.Type = SinkS3
			c.Sink.S3.Bucket = "b-1"
			c.Sink.S3.PartBuffers = PartBuffersMemory
			c.Sink.S3.MaxInflightBytes = 6 * MiB
		}, `sink.s3.max_inflight_bytes: must hold one part and one single-put body: at least max(sink.s3.part_size, sink.s3.multipart_threshold) = 64MiB with part_buffers = "memory" (got 6MiB)`},
		{"s3 inflight unused with spool", func(c *Config) { c.Sink.Type = SinkS3; c.Sink.S3.Bucket = "b-1"; c.Sink.S3.MaxInflightBytes = 6 * MiB }, ""},
		{"s3 spool", func(c *Config) {
			c.Sink.Type = SinkS3
			c.Sink.S3.Bucket = "b-1"
			c.Sink.S3.MultipartThreshold = 2 * GiB
		},
			`sink.s3.max_spool_bytes: must hold one part and one single-put body: at least max(sink.s3.part_size, sink.s3.multipart_threshold) = 2GiB with part_buffers = "file" (got 1GiB)`},
		{"s3 retention without lock", func(c *Config) { c.Sink.Type = SinkS3; c.Sink.S3.Bucket = "b-1"; c.Sink.S3.RetentionDays = 30 },
			"sink.s3.retention_days: only used with sink.s3.object_lock_mode"},
		{"s3 short hmac key", func(c *Config) {
			c.Sink.Type = SinkS3
			c.Sink.S3.Bucket = "b-1"
			c.Sink.S3.PhoneNumbers = PhoneHMAC
			c.Sink.S3.PhoneHMACKey = NewSecret("short")
		}, "sink.s3.phone_hmac_key: must be at least 16 bytes long"},
		{"s3 prefix", func(c *Config) { c.Sink.Type = SinkS3; c.Sink.S3.Bucket = "b-1"; c.Sink.S3.Prefix = "/x" },
			`sink.s3.prefix: must not start with '/' (got "/x")`},
		{"checkpoint driver", func(c *Config) { c.Checkpoint.Driver = "mysql" }, `checkpoint.driver: must be "sqlite" or "postgres" (got "mysql")`},
		{"sqlite path", func(c *Config) { c.Checkpoint.Path = "" }, `checkpoint.path: required when checkpoint.driver = "sqlite"`},
		{"schedule required", func(c *Config) { c.Jobs.IVR.Schedule = "" }, "jobs.ivr.schedule: required when the job is enabled"},
		{"disabled job needs no schedule", func(c *Config) { c.Jobs.IVR.Schedule = ""; c.Jobs.IVR.Enabled = false }, ""},
		{"negative jitter", func(c *Config) { c.Jobs.Transfer.Jitter = Duration{-time.Minute} }, "jobs.transfer.jitter: must not be negative (got -1m)"},
		{"window fraction", func(c *Config) { c.Jobs.CDR.Window = Duration{90*time.Second + time.Millisecond} }, "jobs.cdr.window: must be a whole number of seconds (got 1m30.001s)"},
		{"window 7m", func(c *Config) { c.Jobs.CDR.Window = Duration{7 * time.Minute} }, "jobs.cdr.window: must divide 24h (such as 15m, 1h, 6h) or be a whole number of days (got 7m)"},
		{"window 36h", func(c *Config) { c.Jobs.CDR.Window = Duration{36 * time.Hour} }, "jobs.cdr.window: must divide 24h (such as 15m, 1h, 6h) or be a whole number of days (got 36h)"},
		{"window 48h", func(c *Config) { c.Jobs.CDR.Window = Duration{48 * time.Hour} }, ""},
		{"window 90s", func(c *Config) { c.Jobs.CDR.Window = Duration{90 * time.Second} }, ""},
		{"retry", func(c *Config) {
			c.Jobs.Recordings.RetryBackoff = Duration{}
			c.Jobs.IVR.MaxAttempts = 0
			c.Jobs.Transfer.RetryBackoff = Duration{-time.Second}
		}, "jobs.recordings.retry_backoff: must be positive (got 0s)\njobs.transfer.retry_backoff: must be positive (got -1s)\njobs.ivr.max_attempts: must be between 1 and 1000 (got 0)"},
		{"method", func(c *Config) { c.Jobs.Recordings.Method = "ftp" }, `jobs.recordings.method: must be one of "downloadRecordFile", "downloadRecord", "cms" (got "ftp")`},
		{"settle", func(c *Config) { c.Jobs.IVR.SettleMaxAge = Duration{} }, "jobs.ivr.settle_max_age: must be positive (got 0s)"},
		{"metrics disabled", func(c *Config) { c.Metrics.Listen = "" }, ""},
		{"metrics port", func(c *Config) { c.Metrics.Listen = ":http" }, `metrics.listen: port must be a number between 0 and 65535 (got "http")`},
		{"pushgateway", func(c *Config) { c.Metrics.PushgatewayURL = "pushgateway:9091" }, "metrics.pushgateway_url: must be an https:// or http:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestCheckKeyTemplate(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{tenant}/{yyyy}/{mm}/{dd}/{vdn}/{call_id}/{kind}-{name}-{rid}": "",
		"{record_id}":             "",
		"raw/{hh}/{rid}":          "",
		"":                        "required",
		"{tenant}/{call_id}":      "must contain {record_id} or {rid}",
		"{call_id}/{kind}-{name}": "must contain {record_id} or {rid}",
		"{agent_id}/{record_id}":  "",
		"{tenant}/{yyyy}":         "must contain {record_id} or {rid}",
		"{rid":                    "unclosed '{'",
		"name}/{rid}":             "character '}' not allowed",
		"a b/{rid}":               "character ' ' not allowed",
		"{yyyy}/{rid}/":           "empty, '.' or '..'",
		"/{rid}":                  "must not start with '/'",
		"a//{rid}":                "empty, '.' or '..'",
		"../{rid}":                "empty, '.' or '..'",
		"{Name}":                  "unknown placeholder {Name}",
	} {
		err := CheckKeyTemplate(tmpl)
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckKeyTemplate(%q) = %v", tmpl, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("CheckKeyTemplate(%q) = %v, want %q", tmpl, err, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"ak", "akk", 1}, {"sink", "sinks", 1}, {"window", "windw", 1}, {"abc", "xyz", 3}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	if got := closest("zz", []string{"ak", "sk"}); got != "" {
		t.Errorf("closest suggested %q for an unrelated name", got)
	}
}
