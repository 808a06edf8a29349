package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validCEC = `[cec]
fs_url = "https://cec.example.com:28443"
oifde_url = "https://cec.example.com:28090"
ak = "test-ak"
sk = "test-sk"
tenant_id = "test-tenant"
api_password = "test-password"
callback_url = "https://archiver.example.com:8443/ccfs/callback"
callback_listen = ":8443"
`

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCheckConfig(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cmdCheckConfig(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// inTempDir makes a temporary directory the working directory, so that the
// default relative sink.dir and checkpoint.path, which check-config
// creates, land there.
func inTempDir(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
}

func TestCmdCheckConfig(t *testing.T) {
	inTempDir(t)
	tests := []struct {
		name       string
		args       func(t *testing.T) []string
		wantCode   int
		wantStdout string
		wantStderr string
		prefixOnly bool // wantStderr is a prefix: the rest is system-specific
	}{
		{
			name:       "valid",
			args:       func(t *testing.T) []string { return []string{"--config", writeConfig(t, validCEC)} },
			wantCode:   exitOK,
			wantStdout: "config OK\n",
		},
		{
			name: "valid with warnings",
			args: func(t *testing.T) []string {
				return []string{"-config", writeConfig(t, strings.Replace(validCEC, "https://cec.example.com:28443", "http://cec.example.com:28443", 1)+"insecure_skip_verify = true\n")}
			},
			wantCode:   exitOK,
			wantStdout: "config OK\n",
			wantStderr: "warning: cec.fs_url: plain http:// sends signed requests and recordings unencrypted; use https://\n" +
				"warning: cec.insecure_skip_verify: the TLS certificates of CEC are not verified; use ca_file instead\n",
		},
		{
			name: "missing ak",
			args: func(t *testing.T) []string {
				return []string{"--config", writeConfig(t, strings.Replace(validCEC, "ak = \"test-ak\"\n", "", 1))}
			},
			wantCode:   exitConfig,
			wantStderr: "cec.ak: required\n",
		},
		{
			name: "every problem on its own line",
			args: func(t *testing.T) []string {
				return []string{"--config", writeConfig(t, validCEC+"akk = 1\nconcurrency = 0\n\n[log]\nlevel = \"verbose\"\n\n[jobs.cdr]\nwindow = \"96h\"\n")}
			},
			wantCode: exitConfig,
			wantStderr: "cec.akk: unknown key (line 10); did you mean \"ak\"?\n" +
				"cec.concurrency: must be between 1 and 64 (got 0)\n" +
				"jobs.cdr.window: must be at most 72h, the longest range CC-FS accepts (got 96h)\n" +
				"log.level: must be one of \"debug\", \"info\", \"warn\", \"error\" (got \"verbose\")\n",
		},
		{
			name: "type errors",
			args: func(t *testing.T) []string {
				return []string{"--config", writeConfig(t, validCEC+"concurrency = \"four\"\ndial_timeout = 10\n")}
			},
			wantCode: exitConfig,
			wantStderr: "cec.concurrency: want an integer, got a string (line 10)\n" +
				"cec.dial_timeout: want a duration string such as \"30s\", got an integer (line 11)\n",
		},
		{
			name:       "missing file",
			args:       func(t *testing.T) []string { return []string{"--config", filepath.Join(t.TempDir(), "nope.toml")} },
			wantCode:   exitConfig,
			wantStderr: "config: open ",
			prefixOnly: true,
		},
		{
			name:       "no config: defaults lack CEC credentials",
			args:       func(t *testing.T) []string { return nil },
			wantCode:   exitConfig,
			wantStderr: "cec.fs_url: required\n",
			prefixOnly: true,
		},
		{
			name:       "unexpected argument",
			args:       func(t *testing.T) []string { return []string{"config.toml"} },
			wantCode:   exitConfig,
			wantStderr: "check-config: unexpected argument \"config.toml\" (use --config FILE)\n",
		},
		{
			name:       "unknown flag",
			args:       func(t *testing.T) []string { return []string{"--nope"} },
			wantCode:   exitConfig,
			wantStderr: "flag provided but not defined: -nope\n",
			prefixOnly: true,
		},
		{
			name:       "help",
			args:       func(t *testing.T) []string { return []string{"-h"} },
			wantCode:   exitOK,
			wantStderr: "usage: archiver check-config [--config FILE]\n",
			prefixOnly: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCheckConfig(t, tt.args(t)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			switch {
			case tt.prefixOnly && !strings.HasPrefix(stderr, tt.wantStderr):
				t.Errorf("stderr =\n%s\nwant it to start with\n%s", stderr, tt.wantStderr)
			case !tt.prefixOnly && stderr != tt.wantStderr:
				t.Errorf("stderr =\n%s\nwant\n%s", stderr, tt.wantStderr)
			}
		})
	}
}

func TestCmdCheckConfig_Env(t *testing.T) {
	inTempDir(t)
	path := writeConfig(t, validCEC)
	t.Setenv("ARCHIVER_LOG_LEVEL", "verbose")
	t.Setenv("ARCHIVER_CEC_CONCURRENCY", "many")
	code, stdout, stderr := runCheckConfig(t, "--config", path)
	want := "ARCHIVER_CEC_CONCURRENCY: invalid integer \"many\"\n" +
		"log.level: must be one of \"debug\", \"info\", \"warn\", \"error\" (got \"verbose\")\n"
	if code != exitConfig || stdout != "" || stderr != want {
		t.Errorf("got %d %q\n%s\nwant %d\n%s", code, stdout, stderr, exitConfig, want)
	}
}

func TestCmdCheckConfig_Example(t *testing.T) {
	example, err := filepath.Abs("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	inTempDir(t)
	t.Setenv("ARCHIVER_CEC_SK", "example-sk")
	t.Setenv("ARCHIVER_CEC_API_PASSWORD", "example-password")
	code, stdout, stderr := runCheckConfig(t, "--config", example)
	if code != exitOK || stdout != "config OK\n" || stderr != "" {
		t.Errorf("check-config on config.toml.example: %d %q %q", code, stdout, stderr)
	}
}

func TestCmdCheckConfig_SecretNotPrinted(t *testing.T) {
	inTempDir(t)
	const canary = "canary-secret-in-file"
	dir := t.TempDir()
	skFile := filepath.Join(dir, "sk")
	if err := os.WriteFile(skFile, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Both sk and sk_file set: an error about the secret that must not show it.
	path := writeConfig(t, validCEC+"sk_file = \""+skFile+"\"\n")
	t.Setenv("ARCHIVER_CEC_SK", canary)
	code, stdout, stderr := runCheckConfig(t, "--config", path)
	if code != exitConfig {
		t.Errorf("exit code %d, want %d", code, exitConfig)
	}
	if strings.Contains(stdout+stderr, canary) {
		t.Errorf("output shows the secret:\n%s%s", stdout, stderr)
	}
	if stderr != "cec.sk: set together with cec.sk_file; use one of them\n" {
		t.Errorf("stderr = %q", stderr)
	}
}

func TestCmdCheckConfig_Dirs(t *testing.T) {
	inTempDir(t)
	// A path under a regular file cannot be created, not even by root.
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(file, "sub")
	t.Run("created and probed", func(t *testing.T) {
		root := t.TempDir()
		sinkDir, stateDir := filepath.Join(root, "archive", "deep"), filepath.Join(root, "state")
		path := writeConfig(t, validCEC+"[sink]\ndir = \""+sinkDir+"\"\n[checkpoint]\npath = \""+filepath.Join(stateDir, "state.db")+"\"\n")
		code, stdout, stderr := runCheckConfig(t, "--config", path)
		if code != exitOK || stdout != "config OK\n" || stderr != "" {
			t.Fatalf("got %d %q %q", code, stdout, stderr)
		}
		for _, d := range []string{sinkDir, stateDir} {
			entries, err := os.ReadDir(d)
			if err != nil {
				t.Errorf("%s not created: %v", d, err)
			} else if len(entries) != 0 {
				t.Errorf("%s: the probe left %v", d, entries)
			}
		}
	})
	for _, c := range []struct {
		name, extra, want string
	}{
		{"sink.dir", "[sink]\ndir = \"" + bad + "\"\n", "sink.dir: " + bad + ": cannot create: "},
		{"checkpoint.path", "[checkpoint]\npath = \"" + filepath.Join(bad, "state.db") + "\"\n", "checkpoint.path: directory " + bad + ": cannot create: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCheckConfig(t, "--config", writeConfig(t, validCEC+c.extra))
			if code != exitConfig || stdout != "" || !strings.HasPrefix(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("got %d %q %q, want 2 and one line starting %q", code, stdout, stderr, c.want)
			}
		})
	}
	t.Run("s3 sink: sink.dir not checked", func(t *testing.T) {
		t.Setenv("ARCHIVER_SINK_TYPE", "s3")
		t.Setenv("ARCHIVER_SINK_DIR", bad)
		t.Setenv("ARCHIVER_SINK_S3_BUCKET", "archive-bucket")
		code, stdout, stderr := runCheckConfig(t, "--config", writeConfig(t, validCEC))
		if code != exitOK || strings.Contains(stderr, "sink.dir") {
			t.Errorf("got %d %q %q", code, stdout, stderr)
		}
	})
}
