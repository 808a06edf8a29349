package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/invalid")

// mapEnv returns an env lookup backed by m, so tests never see the real
// environment.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// TestLoad_Invalid loads every testdata/invalid/*.toml and compares the error
// with the .golden file beside it. Run with -update to rewrite the golden files
// after an intended change of wording, and review the diff.
func TestLoad_Invalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d invalid configs, want at least 12", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".toml")
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(file, nil)
			if err == nil {
				t.Fatalf("Load succeeded, want an error")
			}
			if cfg != nil {
				t.Errorf("Load returned a Config together with an error")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text differs from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestLoad_Valid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no valid configs in testdata/valid")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".toml"), func(t *testing.T) {
			cfg, err := Load(file, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if w := cfg.Warnings(); len(w) > 0 {
				t.Errorf("unexpected warnings: %q", w)
			}
		})
	}
}

func TestLoad_Files(t *testing.T) {
	cfg, err := Load("testdata/valid/files.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.CEC.SK.Reveal(); got != "sk-from-file" {
		t.Errorf("cec.sk = %q, want the trimmed file content", got)
	}
	if got := cfg.CEC.APIPassword.Reveal(); got != "password-from-file" {
		t.Errorf("cec.api_password = %q, want CRLF trimmed", got)
	}
	if cfg.CEC.SKFile != "testdata/secrets/cec-sk" {
		t.Errorf("cec.sk_file = %q, want the path kept for re-reading", cfg.CEC.SKFile)
	}
	if cfg.Sink.S3.PartSize != 16*MiB {
		t.Errorf("sink.s3.part_size = %d, want 16MiB from an integer", cfg.Sink.S3.PartSize)
	}
	if cfg.Jobs.CDR.Window.Duration != 24*time.Hour {
		t.Errorf("jobs.cdr.window = %v", cfg.Jobs.CDR.Window)
	}
	if cfg.Jobs.IVR.Enabled || !cfg.Jobs.Transfer.Enabled {
		t.Errorf("enabled: ivr %v transfer %v, want false true", cfg.Jobs.IVR.Enabled, cfg.Jobs.Transfer.Enabled)
	}
	// Keys the file does not set keep their defaults.
	if cfg.Jobs.CDR.LookbackWindows != 3 || cfg.Sink.S3.UploadConcurrency != 4 {
		t.Errorf("defaults lost: lookback_windows %d upload_concurrency %d",
			cfg.Jobs.CDR.LookbackWindows, cfg.Sink.S3.UploadConcurrency)
	}
}

// TestLoad_PostgresDSN: the DSN of the postgres driver comes from the file,
// from checkpoint.dsn_file or from ARCHIVER_CHECKPOINT_DSN, and no printed
// form of the configuration shows it.
func TestLoad_PostgresDSN(t *testing.T) {
	const fromFile = "postgres://archiver:dsn-password-from-file@db.example.com/archiver?sslmode=verify-full"
	cfg, err := Load("testdata/valid/postgres_dsn_file.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Checkpoint.DSN.Reveal(); got != fromFile {
		t.Errorf("checkpoint.dsn = %q, want the file's content without its newline", got)
	}
	for _, form := range []string{fmt.Sprint(cfg.Checkpoint), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg.Checkpoint)} {
		if strings.Contains(form, "dsn-password-from-file") {
			t.Errorf("a printed configuration shows the DSN: %s", form)
		}
	}
	const fromEnv = "host=db.example.com user=archiver password=dsn-password-from-env sslmode=verify-full"
	cfg, err = Load("testdata/valid/minimal.toml", mapEnv(map[string]string{
		"ARCHIVER_CHECKPOINT_DRIVER": "postgres", "ARCHIVER_CHECKPOINT_DSN": fromEnv,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Checkpoint.Driver != DriverPostgres || cfg.Checkpoint.DSN.Reveal() != fromEnv {
		t.Errorf("checkpoint = %s %q, want postgres and the environment's DSN", cfg.Checkpoint.Driver, cfg.Checkpoint.DSN.Reveal())
	}
	_, err = Load("testdata/valid/postgres_dsn_file.toml", mapEnv(map[string]string{"ARCHIVER_CHECKPOINT_DSN": fromEnv}))
	if err == nil || !strings.Contains(err.Error(), "checkpoint.dsn: set together with checkpoint.dsn_file") {
		t.Errorf("a DSN and a DSN file together = %v", err)
	}
}

func TestLoad_ReadError(t *testing.T) {
	_, err := Load("testdata/does-not-exist.toml", nil)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}

func TestDefault_Validate(t *testing.T) {
	err := Default().Validate()
	if err == nil {
		t.Fatal("the default config validated, but CEC endpoints and credentials are required")
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"cec.fs_url", "cec.oifde_url", "cec.ak", "cec.sk", "cec.tenant_id", "cec.api_password"}
	if !slices.Equal(fields, want) {
		t.Errorf("problems with the default config are about %q, want only %q", fields, want)
	}
	if !strings.Contains(err.Error(), "cec.ak: required\n") {
		t.Errorf("error does not say %q:\n%v", "cec.ak: required", err)
	}
}

func TestDefault_WithCredentials(t *testing.T) {
	cfg, err := Load("", mapEnv(map[string]string{
		"ARCHIVER_CEC_FS_URL":       "https://cec.example.com:28443",
		"ARCHIVER_CEC_OIFDE_URL":    "https://cec.example.com:28090",
		"ARCHIVER_CEC_AK":           "ak",
		"ARCHIVER_CEC_SK":           "sk",
		"ARCHIVER_CEC_TENANT_ID":    "tenant",
		"ARCHIVER_CEC_API_PASSWORD": "password",
	}))
	if err != nil {
		t.Fatalf("defaults plus CEC credentials do not validate: %v", err)
	}
	// The only warning: CC-FS needs a callback URL, which has no default.
	want := []string{"cec.callback_url: empty, but CC-FS requires a callBackURL in every package request: the cdr job will fail; set callback_url and callback_listen"}
	if w := cfg.Warnings(); strings.Join(w, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings for the defaults: %q, want %q", w, want)
	}
}

func TestDefault_Fresh(t *testing.T) {
	a := Default()
	a.CEC.SignedHeaders[0] = "changed"
	if b := Default(); b.CEC.SignedHeaders[0] != "content-length" {
		t.Error("Default shares state between calls")
	}
}

func TestLoad_Env(t *testing.T) {
	creds := map[string]string{
		"ARCHIVER_CEC_AK":           "ak",
		"ARCHIVER_CEC_SK":           "sk",
		"ARCHIVER_CEC_TENANT_ID":    "tenant",
		"ARCHIVER_CEC_API_PASSWORD": "password",
	}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range creds {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{"env overrides the file", map[string]string{"ARCHIVER_CEC_FS_URL": "https://other.example.com"}, func(t *testing.T, c *Config) {
			if c.CEC.FSURL != "https://other.example.com" {
				t.Errorf("cec.fs_url = %q", c.CEC.FSURL)
			}
		}},
		{"nested table", map[string]string{"ARCHIVER_SINK_TYPE": "s3", "ARCHIVER_SINK_S3_BUCKET": "b-u-c", "ARCHIVER_SINK_S3_ENDPOINT": "https://s3.example.com"}, func(t *testing.T, c *Config) {
			if c.Sink.Type != SinkS3 || c.Sink.S3.Bucket != "b-u-c" || c.Sink.S3.Endpoint != "https://s3.example.com" {
				t.Errorf("sink = %+v", c.Sink)
			}
		}},
		{"job keys", map[string]string{"ARCHIVER_JOBS_CDR_SCHEDULE": "CRON_TZ=Asia/Shanghai 0 2 * * *", "ARCHIVER_JOBS_IVR_ENABLED": "false", "ARCHIVER_JOBS_CDR_WINDOW": "2h"}, func(t *testing.T, c *Config) {
			if c.Jobs.CDR.Schedule != "CRON_TZ=Asia/Shanghai 0 2 * * *" || c.Jobs.IVR.Enabled || c.Jobs.CDR.Window.Duration != 2*time.Hour {
				t.Errorf("jobs = %+v", c.Jobs)
			}
		}},
		{"types", map[string]string{"ARCHIVER_CEC_CONCURRENCY": "8", "ARCHIVER_CEC_RATE_LIMIT": "2.5", "ARCHIVER_CEC_INSECURE_SKIP_VERIFY": "true", "ARCHIVER_SINK_S3_PART_SIZE": "16MiB", "ARCHIVER_SINK_S3_MULTIPART_THRESHOLD": "33554432"}, func(t *testing.T, c *Config) {
			if c.CEC.Concurrency != 8 || c.CEC.RateLimit != 2.5 || !c.CEC.InsecureSkipVerify || c.Sink.S3.PartSize != 16*MiB || c.Sink.S3.MultipartThreshold != 32*MiB {
				t.Errorf("cec = %+v, s3 part_size %v threshold %v", c.CEC, c.Sink.S3.PartSize, c.Sink.S3.MultipartThreshold)
			}
		}},
		{"list", map[string]string{"ARCHIVER_CEC_SIGNED_HEADERS": "host, content-type"}, func(t *testing.T, c *Config) {
			if !slices.Equal(c.CEC.SignedHeaders, []string{"host", "content-type"}) {
				t.Errorf("cec.signed_headers = %q", c.CEC.SignedHeaders)
			}
		}},
		{"empty value sets the empty string", map[string]string{"ARCHIVER_METRICS_LISTEN": ""}, func(t *testing.T, c *Config) {
			if c.Metrics.Listen != "" {
				t.Errorf("metrics.listen = %q, want disabled", c.Metrics.Listen)
			}
		}},
		{"unknown variables are ignored", map[string]string{"ARCHIVER_NOPE": "x", "ARCHIVER_CEC_NOPE": "x", "ARCHIVER_CONFIG": "/etc/archiver.toml"}, func(t *testing.T, c *Config) {}},
		{"secret from env", map[string]string{"ARCHIVER_SINK_S3_PHONE_HMAC_KEY": "0123456789abcdef"}, func(t *testing.T, c *Config) {
			if c.Sink.S3.PhoneHMACKey.Reveal() != "0123456789abcdef" {
				t.Error("sink.s3.phone_hmac_key not set from the environment")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load("testdata/valid/minimal.toml", mapEnv(with(tt.env)))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestLoad_EnvErrors(t *testing.T) {
	env := mapEnv(map[string]string{
		"ARCHIVER_CEC_CONCURRENCY":   "four",
		"ARCHIVER_JOBS_CDR_ENABLED":  "maybe",
		"ARCHIVER_SHUTDOWN_TIMEOUT":  "30",
		"ARCHIVER_SINK_S3_PART_SIZE": "big",
		"ARCHIVER_CEC_RATE_LIMIT":    "fast",
	})
	_, err := Load("testdata/valid/minimal.toml", env)
	want := `ARCHIVER_CEC_CONCURRENCY: invalid integer "four"
ARCHIVER_CEC_RATE_LIMIT: invalid number "fast"
ARCHIVER_SINK_S3_PART_SIZE: invalid size "big": want bytes or a number with a unit, such as "512KiB", "8MiB" or "1GiB"
ARCHIVER_JOBS_CDR_ENABLED: invalid boolean "maybe": want true or false
ARCHIVER_SHUTDOWN_TIMEOUT: invalid duration "30": want a number with a unit, such as "30s", "5m" or "1h"`
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}

func TestEnvNames(t *testing.T) {
	names := EnvNames()
	seen := map[string]string{}
	for path, env := range names {
		if other, dup := seen[env]; dup {
			t.Errorf("%s and %s share the variable %s", path, other, env)
		}
		seen[env] = path
	}
	for path, want := range map[string]string{
		"sink.s3.endpoint":       "ARCHIVER_SINK_S3_ENDPOINT",
		"jobs.cdr.schedule":      "ARCHIVER_JOBS_CDR_SCHEDULE",
		"cec.sk":                 "ARCHIVER_CEC_SK",
		"jobs.ivr.enabled":       "ARCHIVER_JOBS_IVR_ENABLED",
		"checkpoint.dsn":         "ARCHIVER_CHECKPOINT_DSN",
		"cec.sk_file":            "ARCHIVER_CEC_SK_FILE",
		"metrics.listen":         "ARCHIVER_METRICS_LISTEN",
		"jobs.recordings.method": "ARCHIVER_JOBS_RECORDINGS_METHOD",
	} {
		if got := names[path]; got != want {
			t.Errorf("EnvNames()[%q] = %q, want %q", path, got, want)
		}
	}
}

func TestLoad_SecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const canary = "canary-secret-7f3a9c"
	base := map[string]string{
		"ARCHIVER_CEC_AK":           "ak",
		"ARCHIVER_CEC_TENANT_ID":    "tenant",
		"ARCHIVER_CEC_API_PASSWORD": "password",
	}
	env := func(m map[string]string) func(string) (string, bool) {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return mapEnv(out)
	}

	t.Run("trailing newlines trimmed", func(t *testing.T) {
		p := write("sk", canary+"\n\n")
		cfg, err := Load("testdata/valid/cms_only.toml", env(map[string]string{"ARCHIVER_CEC_SK_FILE": p, "ARCHIVER_CEC_SK": ""}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.CEC.SK.Reveal() != canary {
			t.Errorf("sk = %q", cfg.CEC.SK.Reveal())
		}
	})
	t.Run("inner whitespace kept", func(t *testing.T) {
		p := write("pw", " a b \n")
		cfg, err := Load("", env(map[string]string{
			"ARCHIVER_CEC_FS_URL": "https://a.example.com", "ARCHIVER_CEC_OIFDE_URL": "https://b.example.com",
			"ARCHIVER_CEC_SK": "sk", "ARCHIVER_CEC_API_PASSWORD": "", "ARCHIVER_CEC_API_PASSWORD_FILE": p,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.CEC.APIPassword.Reveal() != " a b " {
			t.Errorf("api_password = %q", cfg.CEC.APIPassword.Reveal())
		}
	})

	failures := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"secret and file both set", map[string]string{"ARCHIVER_CEC_SK_FILE": write("sk2", canary)},
			"cec.sk: set together with cec.sk_file; use one of them"},
		{"missing file", map[string]string{"ARCHIVER_CHECKPOINT_DSN_FILE": filepath.Join(dir, "nope")},
			"checkpoint.dsn_file: cannot read " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"directory", map[string]string{"ARCHIVER_SINK_S3_SECRET_KEY_FILE": dir},
			"sink.s3.secret_key_file: cannot read " + dir + ": is a directory"},
		{"empty file", map[string]string{"ARCHIVER_SINK_S3_PHONE_HMAC_KEY_FILE": write("empty", "\n")},
			"sink.s3.phone_hmac_key_file: " + filepath.Join(dir, "empty") + ": file is empty"},
		{"too large", map[string]string{"ARCHIVER_SINK_S3_PHONE_HMAC_KEY_FILE": write("big", strings.Repeat(canary, 10000))},
			"sink.s3.phone_hmac_key_file: " + filepath.Join(dir, "big") + ": larger than 65536 bytes"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]string{"ARCHIVER_CEC_SK": "sk"}
			for k, v := range tt.env {
				m[k] = v
			}
			_, err := Load("testdata/valid/cms_only.toml", env(m))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("err = %q\nwant  %q", err, tt.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// TestSecretKeys checks that every Secret field has a *_file twin and takes
// part in file resolution.
func TestSecretKeys(t *testing.T) {
	cfg := Default()
	listed := map[string]bool{}
	for _, k := range secretKeys(cfg) {
		listed[k.path] = true
	}
	keys := map[string]reflect.Type{}
	for _, l := range leaves() {
		keys[l.name()] = l.typ
	}
	for _, l := range leaves() {
		if l.typ != reflect.TypeFor[Secret]() {
			continue
		}
		if !listed[l.name()] {
			t.Errorf("secret %s is missing from secretKeys", l.name())
		}
		if keys[l.name()+"_file"] != reflect.TypeFor[string]() {
			t.Errorf("secret %s has no string key %s_file", l.name(), l.name())
		}
	}
}

func TestJobs_Each(t *testing.T) {
	var names []string
	Default().Jobs.Each(func(name string, _ *Job) { names = append(names, name) })
	want := keysAt([]string{"jobs"})
	if !slices.Equal(names, want) {
		t.Errorf("Each visits %q, the [jobs] tables are %q", names, want)
	}
}

func TestDefault_Limits(t *testing.T) {
	c := Default()
	if c.CEC.MaxRecordingBytes != 2*GiB || c.CEC.MinRate != KiB || c.CEC.MinRateWindow.Duration != time.Minute || c.CEC.OIFDEMaxPages != 50 {
		t.Errorf("cec limits %v %v %v %d, want 2GiB 1KiB 1m 50", c.CEC.MaxRecordingBytes, c.CEC.MinRate, c.CEC.MinRateWindow, c.CEC.OIFDEMaxPages)
	}
	if c.Jobs.CDR.MaxInflationRatio != 50 || c.Jobs.CDR.MaxInflatedBytes != 4*GiB {
		t.Errorf("cdr limits %d %v, want 50 4GiB", c.Jobs.CDR.MaxInflationRatio, c.Jobs.CDR.MaxInflatedBytes)
	}
	if len(c.Jobs.Recordings.AllowFormats) != 0 {
		t.Errorf("allow_formats %q, want none", c.Jobs.Recordings.AllowFormats)
	}
	t.Run("environment", func(t *testing.T) {
		cfg, err := Load("testdata/valid/minimal.toml", mapEnv(map[string]string{
			"ARCHIVER_JOBS_RECORDINGS_ALLOW_FORMATS": "flac,mp3",
			"ARCHIVER_CEC_MIN_RATE":                  "0",
			"ARCHIVER_JOBS_CDR_MAX_INFLATED_BYTES":   "1GiB",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Jobs.Recordings.AllowFormats; !slices.Equal(got, []string{"flac", "mp3"}) {
			t.Errorf("allow_formats %q", got)
		}
		if cfg.CEC.MinRate != 0 || cfg.Jobs.CDR.MaxInflatedBytes != GiB {
			t.Errorf("min_rate %v max_inflated_bytes %v", cfg.CEC.MinRate, cfg.Jobs.CDR.MaxInflatedBytes)
		}
	})
}
