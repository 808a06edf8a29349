package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// TestCmdHold_Refused: hold without --call is a usage error; with the
// dir sink it is refused (exit 2) naming the missing Object Lock.
func TestCmdHold_Refused(t *testing.T) {
	inTempDir(t)
	cfg := writeConfig(t, validCEC)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"hold", "--config", cfg}, "hold: --call: a call ID is required"},
		{[]string{"hold", "--config", cfg, "--call", "1-2", "--day", "2026-13-01"}, `hold: --day "2026-13-01"`},
		{[]string{"hold", "--config", cfg, "--call", "1-2"}, "has no Object Lock legal hold"},
	} {
		var out, errOut bytes.Buffer
		cl := newCLI(&out, &errOut)
		cl.env = func(string) (string, bool) { return "", false }
		if code := cl.main(c.args); code != exitConfig || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), exitConfig, c.want)
		}
	}
}

// TestCheckConfig_BucketLock: with retention rules, check-config reads the
// bucket's Object Lock configuration from versitygw: a bucket without
// Object Lock and a rule shorter than the bucket's default retention are
// errors naming the key; an unreachable bucket is a warning.
func TestCheckConfig_BucketLock(t *testing.T) {
	srv := s3test.Start(t) // before inTempDir: it finds versitygw from the module
	inTempDir(t)
	locked, plain := srv.NewBucket(t, true), srv.NewBucket(t, false)
	if _, err := srv.Client().PutObjectLockConfiguration(context.Background(), &awss3.PutObjectLockConfigurationInput{
		Bucket: aws.String(locked),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(10)}}},
	}); err != nil {
		t.Fatal(err)
	}
	conf := func(endpoint, bucket string) string {
		return validCEC + `
[sink]
type = "s3"

[sink.s3]
endpoint = "` + endpoint + `"
bucket = "` + bucket + `"
path_style = true
access_key = "` + srv.AccessKey + `"
secret_key = "` + srv.SecretKey + `"
object_lock_mode = "GOVERNANCE"
retention_days = 30

[[retention.rules]]
name = "short"
vdn = ["12"]
retention_days = 5

[[retention.rules]]
name = "long"
vdn = ["13"]
retention_days = 3650
legal_hold = true
`
	}
	for _, c := range []struct {
		name, endpoint, bucket string
		code                   int
		want                   string
	}{
		{"Shorter", srv.Endpoint, locked, exitConfig, `retention.rules[1].retention_days: 5 days is shorter than the default retention of bucket "` + locked + `" (GOVERNANCE, 10 days)`},
		{"NoLock", srv.Endpoint, plain, exitConfig, `retention.rules: bucket "` + plain + `" has no Object Lock enabled`},
		{"Unreachable", "http://127.0.0.1:1", locked, exitOK, "warning: sink.s3.bucket: the Object Lock configuration of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCheckConfig(t, "--config", writeConfig(t, conf(c.endpoint, c.bucket)))
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, c.code, c.want)
			}
			if c.name == "NoLock" && strings.Contains(stderr, "retention_days") {
				t.Errorf("stderr names retention_days without a lock configuration:\n%s", stderr)
			}
		})
	}
}

// TestCmdHold_S3: as an operator would: `once` archives two days into a
// versitygw bucket with Object Lock, `hold --call` places a legal hold on
// every object of one call (read back from versitygw, object by object),
// `hold --release` lifts it, and `verify --chain --locks` passes after
// each, with the two events in the chain; a hold changed behind the
// archiver's back is then a `verify --locks` problem naming the key.
func TestCmdHold_S3(t *testing.T) {
	srv := s3test.Start(t) // before the simulator's temp dirs: it finds versitygw from the module
	bucket := srv.NewBucket(t, true)
	e := newTestEnv(t, nil, "")
	if err := os.WriteFile(e.config, e.s3Config(t, srv, bucket, srv.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := e.run("once", "--config", e.config, "--quiet"); code != exitOK {
		t.Fatalf("once: exit %d\n%s", code, stderr)
	}
	call := ""
	for _, r := range e.sim.Manifest().Recordings {
		if r.Kind == "agent" && !r.Late && !r.Unavailable {
			call = r.CallID
			break
		}
	}
	if call == "" {
		t.Fatal("the simulator's manifest has no agent recording")
	}
	c := srv.Client()
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		hold bool
	}{{nil, true}, {[]string{"--release"}, false}} {
		args := append([]string{"hold", "--config", e.config, "--call", call, "--reason", "case 42", "--json"}, tc.args...)
		code, stdout, stderr := e.run(args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d\n%s%s", args, code, stdout, stderr)
		}
		var rep struct {
			Objects []struct {
				Key       string `json:"key"`
				LegalHold bool   `json:"legal_hold"`
			} `json:"objects"`
			LedgerKey string `json:"ledger_key"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("%q: --json output: %v\n%s", args, err, stdout)
		}
		if len(rep.Objects) == 0 || rep.LedgerKey == "" {
			t.Fatalf("%q: %d objects, ledger %q; want the call's objects and a ledger link", args, len(rep.Objects), rep.LedgerKey)
		}
		for _, o := range rep.Objects {
			out, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
			on := err == nil && out.LegalHold != nil && out.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
			if o.LegalHold != tc.hold || on != tc.hold {
				t.Errorf("%q: %s: reported hold %v, versitygw says %v (%v); want %v", args, o.Key, o.LegalHold, on, err, tc.hold)
			}
		}
		// The link that records the event carries it in the call's entry.
		want := regexp.MustCompile(`"action":\s*"place"`)
		if !tc.hold {
			want = regexp.MustCompile(`"action":\s*"release"`)
		}
		lo, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(rep.LedgerKey)})
		if err != nil {
			t.Fatalf("ledger %s: %v", rep.LedgerKey, err)
		}
		ledger, err := io.ReadAll(lo.Body)
		lo.Body.Close()
		if err != nil || !want.Match(ledger) || !regexp.MustCompile(`"reason":\s*"case 42"`).Match(ledger) {
			t.Errorf("ledger %s (%v) does not record the event %s with its reason", rep.LedgerKey, err, want)
		}
		code, stdout, stderr = e.run("verify", "--config", e.config, "--chain", "--locks", "--json")
		var vrep struct {
			Locks    bool `json:"locks"`
			Problems int  `json:"problems"`
		}
		if code != exitOK || json.Unmarshal([]byte(stdout), &vrep) != nil || !vrep.Locks || vrep.Problems != 0 {
			t.Fatalf("verify --chain --locks after %q: exit %d\n%s%s", args, code, stdout, stderr)
		}
		// An object whose hold is changed behind the archiver's back.
		key := rep.Objects[0].Key
		setHold(t, c, bucket, key, !tc.hold)
		kind := "legal hold mismatch "
		if !tc.hold {
			kind = "unexpected legal hold "
		}
		code, stdout, stderr = e.run("verify", "--config", e.config, "--locks")
		if code != exitFailed || !strings.Contains(stdout, kind+key+" ") || !strings.Contains(stdout, "LOCK") ||
			!strings.Contains(stdout, "with Object Lock: 1 problems found") {
			t.Errorf("verify --locks with the hold of %s set to %v: exit %d, want %d and %q\n%s%s", key, !tc.hold, code, exitFailed, kind+key, stdout, stderr)
		}
		setHold(t, c, bucket, key, tc.hold)
	}
}

// setHold sets the legal hold of key with the raw S3 client.
func setHold(t *testing.T, c *awss3.Client, bucket, key string, on bool) {
	t.Helper()
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	if _, err := c.PutObjectLegalHold(context.Background(), &awss3.PutObjectLegalHoldInput{Bucket: aws.String(bucket), Key: aws.String(key),
		LegalHold: &types.ObjectLockLegalHold{Status: status}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatalf("legal hold %v on %s: %v", on, key, err)
	}
}

// s3Config is the test configuration with its dir sink replaced by an s3
// sink on bucket of srv, signing with secret.
func (e *testEnv) s3Config(t *testing.T, srv *s3test.Server, bucket, secret string) []byte {
	t.Helper()
	raw, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	dirSink := fmt.Sprintf("[sink]\ntype = \"dir\"\ndir = %q\n", e.archive)
	if !strings.Contains(string(raw), dirSink) {
		t.Fatalf("the test configuration has no dir sink block to replace:\n%s", raw)
	}
	s3Sink := fmt.Sprintf("[sink]\ntype = \"s3\"\n\n[sink.s3]\nendpoint = %q\nbucket = %q\npath_style = true\naccess_key = %q\nsecret_key = %q\n",
		srv.Endpoint, bucket, srv.AccessKey, secret)
	return []byte(strings.Replace(string(raw), dirSink, s3Sink, 1))
}
