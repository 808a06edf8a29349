package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// TestCmdParquetBackfill_S3: as an operator would, on a versitygw bucket:
// `once` archives two days; a Parquet file deleted (as for a package
// archived before Parquet) makes verify fail naming it and the command;
// `parquet-backfill --dry-run --json` lists it and writes nothing;
// `parquet-backfill` writes it and verify (fast and deep) passes; a package
// whose ZIP was altered in the bucket makes the command exit 1 naming it.
// Bad dates are exit 2, a refused secret key exit 3.
func TestCmdParquetBackfill_S3(t *testing.T) {
	srv := s3test.Start(t) // before the simulator's temp dirs: it finds versitygw from the module
	bucket := srv.NewBucket(t, false)
	e := newTestEnv(t, nil, "")
	bad := e.s3Config(t, srv, bucket, "not-the-secret")
	if err := os.WriteFile(e.config, e.s3Config(t, srv, bucket, srv.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := e.run("once", "--config", e.config, "--quiet"); code != exitOK {
		t.Fatalf("once: exit %d\n%s", code, stderr)
	}
	c, ctx := srv.Client(), context.Background()
	backfill := func(args ...string) (int, jobs.ParquetBackfillReport, string) {
		t.Helper()
		code, stdout, stderr := e.run(append([]string{"parquet-backfill", "--config", e.config, "--json"}, args...)...)
		var rep jobs.ParquetBackfillReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("parquet-backfill %q --json: %v\n%s\n%s", args, err, stdout, stderr)
		}
		return code, rep, stderr
	}

	code, rep, stderr := backfill()
	if code != exitOK || rep.Packages != 2 || rep.Present != 4 || len(rep.Files) != 0 {
		t.Fatalf("parquet-backfill on a complete archive: exit %d, %+v\n%s", code, rep, stderr)
	}

	// With the state held, as by a running daemon: a dry run reads anyway,
	// the real run wants the state lock.
	held, err := sqlite.Open(e.state, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := backfill("--dry-run"); code != exitOK {
		t.Errorf("--dry-run with the state held: exit %d, want 0\n%s", code, stderr)
	}
	if code, _, stderr := e.run("parquet-backfill", "--config", e.config); code != exitFailed || !strings.Contains(stderr, "another archiver is running") {
		t.Errorf("parquet-backfill with the state held: exit %d, want 1 naming the lock\n%s", code, stderr)
	}
	held.Close()

	// One package's files and ZIP.
	st, err := sqlite.Open(e.state, sqlite.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := st.Packages(ctx, checkpoint.StateDone)
	st.Close()
	if err != nil || len(pkgs) == 0 || pkgs[0].Key == "" {
		t.Fatalf("packages %+v (%v)", pkgs, err)
	}
	p := pkgs[0]
	name := strings.TrimSuffix(p.BillFileName, ".zip")
	var key string
	list, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("parquet/cdr/calls/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		if strings.HasSuffix(aws.ToString(o.Key), "/"+name+".parquet") {
			key = aws.ToString(o.Key)
		}
	}
	if key == "" {
		t.Fatalf("no calls Parquet file of %s in the bucket", name)
	}
	remove := func() {
		t.Helper()
		if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func() bool {
		_, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err != nil
	}
	remove()

	if code, stdout, stderr := e.run("verify", "--config", e.config); code != exitFailed ||
		!strings.Contains(stdout, "parquet missing "+key) || !strings.Contains(stdout, "archiver parquet-backfill") {
		t.Errorf("verify with a Parquet file missing: exit %d, want 1 naming %s and the command\n%s%s", code, key, stdout, stderr)
	}

	code, rep, stderr = backfill("--dry-run")
	if code != exitOK || !rep.DryRun || rep.Missing != 1 || rep.Present != 3 || len(rep.Files) != 1 ||
		rep.Files[0].Key != key || rep.Files[0].State != jobs.ParquetMissing || rep.Files[0].Package != p.BillFileName {
		t.Errorf("--dry-run: exit %d, %+v\n%s", code, rep, stderr)
	}
	if !gone() {
		t.Errorf("--dry-run wrote %s", key)
	}
	// The range is the days of the packages' windows.
	day := p.Begin.UTC().Format(dateLayout)
	if code, rep, stderr := backfill("--dry-run", "--from", day, "--to", day); code != exitOK || rep.Packages != 1 || rep.Missing != 1 {
		t.Errorf("--dry-run --from/--to %s: exit %d, %+v\n%s", day, code, rep, stderr)
	}

	code, stdout, stderr := e.run("parquet-backfill", "--config", e.config)
	if code != exitOK || !strings.Contains(stdout, "1 written") || !strings.Contains(stdout, "written  "+day+"  "+key) {
		t.Errorf("parquet-backfill: exit %d, want 0 and %s written\n%s%s", code, key, stdout, stderr)
	}
	if gone() {
		t.Errorf("parquet-backfill did not write %s", key)
	}
	for _, args := range [][]string{{}, {"--deep"}} {
		if code, stdout, stderr := e.run(append([]string{"verify", "--config", e.config}, args...)...); code != exitOK {
			t.Errorf("verify %q after the backfill: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}

	t.Run("altered package", func(t *testing.T) {
		obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(p.Key)})
		if err != nil {
			t.Fatal(err)
		}
		zip, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		zip = append(zip, 0) // trailing garbage: another size and digest
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(p.Key), Body: bytes.NewReader(zip)}); err != nil {
			t.Fatal(err)
		}
		remove()
		code, rep, stderr := backfill()
		if code != exitFailed || rep.Failed != 1 || len(rep.Files) != 1 || rep.Files[0].State != jobs.ParquetFailed ||
			!strings.Contains(rep.Files[0].Error, p.Key) || !strings.Contains(stderr, "parquet-backfill: jobs: parquet backfill: 1 of 1 files failed") {
			t.Errorf("altered ZIP: exit %d, %+v\n%s", code, rep, stderr)
		}
		if !gone() {
			t.Errorf("%s written from an altered ZIP", key)
		}
		code, stdout, _ := e.run("parquet-backfill", "--config", e.config)
		if code != exitFailed || !strings.Contains(stdout, "failed   "+day+"  "+key+": package "+p.BillFileName+": read "+p.Key+" back: the object is not the package archived") {
			t.Errorf("altered ZIP, text: exit %d\n%s", code, stdout)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"--from", "2026-13-01"}, {"--from", "2026-11-02", "--to", "2026-11-01"}, {"extra"}} {
			if code, _, stderr := e.run(append([]string{"parquet-backfill", "--config", e.config}, args...)...); code != exitConfig {
				t.Errorf("parquet-backfill %q: exit %d, want 2\n%s", args, code, stderr)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		if err := os.WriteFile(e.config, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{}, {"--dry-run"}} {
			code, _, stderr := e.run(append([]string{"parquet-backfill", "--config", e.config}, args...)...)
			if code != exitPermission {
				t.Errorf("parquet-backfill %q with a wrong secret key: exit %d, want 3\n%s", args, code, stderr)
			}
		}
	})
}
