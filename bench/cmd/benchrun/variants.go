package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// archiverConfig is the archiver's configuration for one A run: the
// simulator, a fresh bucket and state, cec.concurrency at the benchmark's
// concurrency, no rate limit to speak of, one 24h cdr window (and one of
// lookback, in case the run crosses midnight), the lookups as the dataset
// says, no metrics server; --sink-s3 adds settings to [sink.s3].
func (b *bench) archiverConfig(bucket, state, callback string) string {
	lookups := strconv.FormatBool(b.d.Lookups)
	return fmt.Sprintf(`# benchrun: variant A
[cec]
fs_url = %[1]q
cms_url = %[1]q
oifde_url = %[1]q
ak = %[2]q
sk = %[3]q
tenant_id = %[4]q
api_password = %[5]q
concurrency = %[6]d
rate_limit = 100000
time_zone = "UTC"
callback_url = "http://%[7]s/cdr-callback"
callback_listen = %[7]q

[sink]
type = "s3"

[sink.s3]
endpoint = %[8]q
region = %[9]q
bucket = %[10]q
path_style = true
access_key = %[11]q
secret_key = %[12]q
prefix = "archive"
%[15]s
[checkpoint]
path = %[13]q

[jobs.cdr]
window = "24h"
lookback_windows = 2
ready_timeout = "2m"

[jobs.transfer]
enabled = %[14]s

[jobs.ivr]
enabled = %[14]s

[metrics]
listen = ""

[log]
level = "info"
format = "json"
`, b.sim.URL, simAK, simSK, simTenant, simAPIPassword, b.o.concurrency, callback,
		b.s3.Endpoint, b.s3.Region, bucket, b.s3.AccessKey, b.s3.SecretKey, state, lookups, sinkS3Lines(b.o.sinkS3))
}

// sinkS3Lines renders the --sink-s3 settings as lines of [sink.s3].
func sinkS3Lines(kv []string) string {
	var b strings.Builder
	for _, s := range kv {
		b.WriteString(s + "\n")
	}
	return b.String()
}

// newState returns the path of the archiver's state for a run in dir: a
// file that does not exist yet, or with seed (store1m) a copy of seed.
func newState(dir, seed string) (string, error) {
	state := filepath.Join(dir, "state", "archiver.db")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		return "", err
	}
	if seed != "" {
		if err := copyFile(seed, state); err != nil {
			return "", err
		}
	}
	return state, nil
}

// writeArchiverConfig writes the archiver's configuration for a run in dir
// (callbacks on a free port) and returns its path.
func (b *bench) writeArchiverConfig(dir, bucket, state string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	cfg := filepath.Join(dir, "config.toml")
	return cfg, os.WriteFile(cfg, []byte(b.archiverConfig(bucket, state, addr)), 0o600)
}

// runArchiver is variant A: `archiver once` on the state at path state
// (see newState) into bucket. It must exit 0.
func (b *bench) runArchiver(ctx context.Context, bin, dir, bucket, state string) (measure, error) {
	cfg, err := b.writeArchiverConfig(dir, bucket, state)
	if err != nil {
		return measure{}, err
	}
	cmd := exec.CommandContext(ctx, bin, "once", "--config", cfg)
	cmd.Env = append(withoutEnv(os.Environ(), "ARCHIVER_"), "ARCHIVER_CONFIG=")
	if b.o.profile {
		cmd.Env = append(cmd.Env,
			"ARCHIVER_CPUPROFILE="+filepath.Join(dir, "archiver.cpu.pprof"),
			"ARCHIVER_MEMPROFILE="+filepath.Join(dir, "archiver.heap.pprof"))
	}
	return measureCmd(ctx, cmd, dir, "archiver")
}

// runLoop is variant B: `benchrun loop`, this binary as a child process.
func (b *bench) runLoop(ctx context.Context, dir, bucket string) (measure, error) {
	self, err := os.Executable()
	if err != nil {
		return measure{}, err
	}
	cmd := exec.CommandContext(ctx, self, "loop", "--src", b.filesURL, "--list", b.keysFile,
		"--endpoint", b.s3.Endpoint, "--region", b.s3.Region, "--bucket", bucket,
		"--concurrency", strconv.Itoa(b.o.concurrency))
	if b.o.profile {
		cmd.Args = append(cmd.Args, "--cpuprofile", filepath.Join(dir, "loop.cpu.pprof"))
	}
	cmd.Env = append(os.Environ(), "BENCH_S3_ACCESS_KEY="+b.s3.AccessKey, "BENCH_S3_SECRET_KEY="+b.s3.SecretKey)
	return measureCmd(ctx, cmd, dir, "loop")
}

// runRclone is variant C: rclone copy of the data directory, the S3 remote
// defined by environment variables (no config file), AWS_CA_BUNDLE unset
// (rclone would try to load it for a plain-HTTP endpoint).
func (b *bench) runRclone(ctx context.Context, dir, bucket string) (measure, error) {
	conf := filepath.Join(dir, "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return measure{}, err
	}
	cmd := exec.CommandContext(ctx, b.o.rclone, "copy", b.dataDir, "benchs3:"+bucket,
		"--transfers", strconv.Itoa(b.o.concurrency), "--s3-no-check-bucket", "-q")
	cmd.Env = append(withoutEnv(os.Environ(), "AWS_CA_BUNDLE", "RCLONE_"),
		"RCLONE_CONFIG="+conf,
		"RCLONE_CONFIG_BENCHS3_TYPE=s3",
		"RCLONE_CONFIG_BENCHS3_PROVIDER=Other",
		"RCLONE_CONFIG_BENCHS3_ENDPOINT="+b.s3.Endpoint,
		"RCLONE_CONFIG_BENCHS3_REGION="+b.s3.Region,
		"RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID="+b.s3.AccessKey,
		"RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY="+b.s3.SecretKey,
		"RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE=true",
	)
	return measureCmd(ctx, cmd, dir, "rclone")
}

// withoutEnv drops the variables whose names equal or start with any of prefixes.
func withoutEnv(env []string, prefixes ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, p := range prefixes {
			if name == p || (strings.HasSuffix(p, "_") && strings.HasPrefix(name, p)) {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
