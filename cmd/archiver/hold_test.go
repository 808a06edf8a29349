package main

import (
	"bytes"
	"context"
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
