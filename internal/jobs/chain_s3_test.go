package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// s3Tamperer tampers with a bucket through the raw S3 API. On a versioned
// (Object Lock) bucket a put is a new version and a remove a delete
// marker, undone by deleting that version; on a plain bucket the object
// is copied aside first and copied back.
type s3Tamperer struct {
	c         *awss3.Client
	s         *s3.Sink
	versioned bool
}

func (m s3Tamperer) key(key string) *string { return aws.String(m.s.ObjectKey(key)) }

// aside copies key out of the sink's prefix and restores it at cleanup
// (or deletes key, when it did not exist).
func (m s3Tamperer) aside(t *testing.T, key string) {
	t.Helper()
	ctx := context.Background()
	bucket := aws.String(m.s.Bucket())
	var b [6]byte
	_, _ = rand.Read(b[:])
	backup := "tamper-backup/" + hex.EncodeToString(b[:])
	_, err := m.c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: bucket, Key: aws.String(backup),
		CopySource: aws.String(m.s.Bucket() + "/" + m.s.ObjectKey(key))})
	existed := err == nil
	t.Cleanup(func() {
		if !existed {
			if _, err := m.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: bucket, Key: m.key(key)}); err != nil {
				t.Errorf("undo: delete %s: %v", key, err)
			}
			return
		}
		if _, err := m.c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: bucket, Key: m.key(key),
			CopySource: aws.String(m.s.Bucket() + "/" + backup)}); err != nil {
			t.Errorf("undo: restore %s: %v", key, err)
		}
		_, _ = m.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: bucket, Key: aws.String(backup)})
	})
}

// undoVersion deletes the version (or delete marker) a tampering made.
func (m s3Tamperer) undoVersion(t *testing.T, key string, version *string) {
	t.Helper()
	if aws.ToString(version) == "" {
		t.Fatalf("%s: the versioned bucket returned no version ID", key)
	}
	t.Cleanup(func() {
		if _, err := m.c.DeleteObject(context.Background(), &awss3.DeleteObjectInput{Bucket: aws.String(m.s.Bucket()), Key: m.key(key),
			VersionId: version}); err != nil {
			t.Errorf("undo: delete version %s of %s: %v", aws.ToString(version), key, err)
		}
	})
}

func (m s3Tamperer) put(t *testing.T, key string, body []byte) {
	t.Helper()
	if !m.versioned {
		m.aside(t, key)
	}
	out, err := m.c.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(m.s.Bucket()), Key: m.key(key),
		Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	if m.versioned {
		m.undoVersion(t, key, out.VersionId)
	}
}

func (m s3Tamperer) remove(t *testing.T, key string) {
	t.Helper()
	if !m.versioned {
		m.aside(t, key)
	}
	out, err := m.c.DeleteObject(context.Background(), &awss3.DeleteObjectInput{Bucket: aws.String(m.s.Bucket()), Key: m.key(key)})
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	if m.versioned {
		if !aws.ToBool(out.DeleteMarker) {
			t.Fatalf("delete %s on a versioned bucket made no delete marker", key)
		}
		m.undoVersion(t, key, out.VersionId)
	}
}

// TestChain_S3: on versitygw, without and with Object Lock, a chain over
// several days verifies and every tampering case (deleting, altering,
// replacing a link, forging a head …) is detected and named; with Object
// Lock every ledger and head is written under the configured retention
// and legal hold, and a locked version cannot be deleted.
func TestChain_S3(t *testing.T) {
	srv := s3test.Start(t)
	for _, lock := range []bool{false, true} {
		name := "Plain"
		if lock {
			name = "ObjectLock"
		}
		t.Run(name, func(t *testing.T) {
			bucket := srv.NewBucket(t, lock)
			opts := s3.Options{
				Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket, Prefix: "archive", PathStyle: true,
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, SpoolDir: t.TempDir(),
			}
			if lock {
				opts.ObjectLockMode, opts.RetentionDays, opts.LegalHold = "GOVERNANCE", 2, true
			}
			s, err := s3.New(context.Background(), opts)
			if err != nil {
				t.Fatalf("s3.New: %v", err)
			}
			if !s.Conditional() {
				t.Fatal("versitygw should honour If-None-Match: the head's create-only Put depends on it")
			}
			e := chainEnv(t, envOptions{sink: func(sink.Sink) sink.Sink { return s }})
			before := time.Now()
			buildChain(t, e)
			after := time.Now()
			if lock {
				checkRetention(t, srv.Client(), s, e, before, after)
			}
			runTampering(t, e, s, s3Tamperer{c: srv.Client(), s: s, versioned: lock})
		})
	}
}

// checkRetention reads back the retention and legal hold of every ledger
// and head object, and shows a locked version cannot be deleted.
func checkRetention(t *testing.T, c *awss3.Client, s *s3.Sink, e *env, before, after time.Time) {
	t.Helper()
	ctx := context.Background()
	keys, err := e.a.chainKeys()
	if err != nil {
		t.Fatal(err)
	}
	n, heads := 0, 0
	for obj, err := range s.List(ctx, keys.prefix) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if strings.Contains(obj.Key, "/ledger/head/") {
			heads++
		}
		r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey(obj.Key))})
		if err != nil {
			t.Fatalf("retention of %s: %v", obj.Key, err)
		}
		until := aws.ToTime(r.Retention.RetainUntilDate)
		lo, hi := before.Add(48*time.Hour-time.Second).Truncate(time.Second), after.Add(48*time.Hour+time.Second)
		if r.Retention.Mode != types.ObjectLockRetentionModeGovernance || until.Before(lo) || until.After(hi) {
			t.Errorf("%s: retention %s until %v, want GOVERNANCE until %v – %v", obj.Key, r.Retention.Mode, until, lo, hi)
		}
		lh, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey(obj.Key))})
		if err != nil {
			t.Fatalf("legal hold of %s: %v", obj.Key, err)
		}
		if lh.LegalHold == nil || lh.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
			t.Errorf("%s: legal hold %+v, want ON", obj.Key, lh.LegalHold)
		}
	}
	if heads == 0 || n-heads < chainDays {
		t.Fatalf("%d ledgers and %d heads under %s, want at least %d and 1", n-heads, heads, keys.prefix, chainDays)
	}
	head := keys.head(uint64(heads))
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey(head))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey(head)),
		VersionId: h.VersionId}); err == nil {
		t.Fatalf("deleting the locked version of %s succeeded", head)
	}
}
