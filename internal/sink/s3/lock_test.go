package s3_test

import (
	"bytes"
	"context"
	"errors"
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

// TestSink_PerObjectLock: on a versitygw bucket with Object Lock, a Put's
// own lock (sink.Meta.Lock) replaces the sink's default retention and
// adds a legal hold, in one PutObject and in a multipart upload; a Put
// without one gets the defaults; SetLegalHold lifts and places a hold;
// the bucket's lock configuration reads back. Without Object Lock, or
// with checksum NONE, a lock is refused with ErrLockUnsupported.
func TestSink_PerObjectLock(t *testing.T) {
	srv := s3test.Start(t)
	locked := srv.NewBucket(t, true)
	c := srv.Client()
	ctx := context.Background()
	opts := testOptions(t, srv, locked)
	opts.ObjectLockMode, opts.RetentionDays = "GOVERNANCE", 1
	s := newSink(t, opts)
	readBack := func(t *testing.T, key string) (string, time.Time, bool) {
		t.Helper()
		r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String(locked), Key: aws.String(s.ObjectKey(key))})
		if err != nil {
			t.Fatalf("retention of %s: %v", key, err)
		}
		lh, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String(locked), Key: aws.String(s.ObjectKey(key))})
		if err != nil && !strings.Contains(err.Error(), "NoSuchObjectLockConfiguration") { // never held
			t.Fatalf("legal hold of %s: %v", key, err)
		}
		return string(r.Retention.Mode), aws.ToTime(r.Retention.RetainUntilDate), err == nil && lh.LegalHold != nil && lh.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
	}
	until := time.Now().Add(400 * 24 * time.Hour).UTC().Truncate(time.Second)
	lock := &sink.ObjectLock{Mode: sink.LockCompliance, RetainUntil: until, LegalHold: true}
	for _, c := range []struct {
		name string
		size int
	}{{"SinglePut", 1000}, {"Multipart", 6 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			key := "lock/" + c.name
			body := bytes.Repeat([]byte("r"), c.size)
			obj, err := s.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sink.Meta{Lock: lock})
			if err != nil {
				t.Fatal(err)
			}
			if c.size > 5<<20 && !obj.Multipart {
				t.Fatalf("a %d-byte body was not a multipart upload", c.size)
			}
			mode, got, hold := readBack(t, key)
			if mode != sink.LockCompliance || !got.Equal(until) || !hold {
				t.Errorf("lock = %s until %v hold %v, want COMPLIANCE until %v, held", mode, got, hold, until)
			}
		})
	}
	t.Run("Defaults", func(t *testing.T) {
		before := time.Now()
		if _, err := s.Put(ctx, "lock/default", strings.NewReader("d"), 1, sink.Meta{}); err != nil {
			t.Fatal(err)
		}
		mode, got, hold := readBack(t, "lock/default")
		lo, hi := before.Add(24*time.Hour-time.Second), time.Now().Add(24*time.Hour+time.Second)
		if mode != "GOVERNANCE" || got.Before(lo) || got.After(hi) || hold {
			t.Errorf("lock = %s until %v hold %v, want the defaults: GOVERNANCE for a day, no hold", mode, got, hold)
		}
		// A hold alone keeps the default retention.
		if _, err := s.Put(ctx, "lock/hold-only", strings.NewReader("h"), 1, sink.Meta{Lock: &sink.ObjectLock{LegalHold: true}}); err != nil {
			t.Fatal(err)
		}
		if mode, got, hold := readBack(t, "lock/hold-only"); mode != "GOVERNANCE" || got.Before(lo) || !hold {
			t.Errorf("hold-only lock = %s until %v hold %v, want GOVERNANCE for a day, held", mode, got, hold)
		}
	})
	t.Run("SetLegalHold", func(t *testing.T) {
		key := "lock/SinglePut"
		for _, on := range []bool{false, false, true, true, false} {
			if err := s.SetLegalHold(ctx, key, on); err != nil {
				t.Fatalf("SetLegalHold(%v): %v", on, err)
			}
			got, err := s.LegalHold(ctx, key)
			if err != nil || got != on {
				t.Fatalf("LegalHold after SetLegalHold(%v) = %v, %v", on, got, err)
			}
			if _, _, hold := readBack(t, key); hold != on {
				t.Fatalf("versitygw says hold %v after SetLegalHold(%v)", hold, on)
			}
		}
		if err := s.SetLegalHold(ctx, "lock/missing", true); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("SetLegalHold of a missing key = %v, want ErrNotFound", err)
		}
	})
	t.Run("ObjectLock", func(t *testing.T) {
		// SinglePut: COMPLIANCE until, its hold lifted by SetLegalHold.
		// hold-only: the defaults, held.
		for key, want := range map[string]struct {
			mode string
			hold bool
		}{"lock/SinglePut": {sink.LockCompliance, false}, "lock/hold-only": {"GOVERNANCE", true}} {
			got, err := s.ObjectLock(ctx, key)
			mode, until, hold := readBack(t, key)
			if err != nil || got.Mode != want.mode || got.Mode != mode || !got.RetainUntil.Equal(until) || got.LegalHold != want.hold || hold != want.hold {
				t.Errorf("ObjectLock(%s) = %+v, %v; want %s, hold %v (versitygw: %s until %v, hold %v)", key, got, err, want.mode, want.hold, mode, until, hold)
			}
		}
		// No retention at all: a sink without defaults.
		bare := newSink(t, testOptions(t, srv, locked))
		if _, err := bare.Put(ctx, "lock/bare", strings.NewReader("b"), 1, sink.Meta{}); err != nil {
			t.Fatal(err)
		}
		if got, err := bare.ObjectLock(ctx, "lock/bare"); err != nil || got != (sink.ObjectLock{}) {
			t.Errorf("ObjectLock of an object without retention or hold = %+v, %v; want none", got, err)
		}
		if _, err := s.ObjectLock(ctx, "lock/missing"); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("ObjectLock of a missing key = %v, want ErrNotFound", err)
		}
	})
	t.Run("LockConfiguration", func(t *testing.T) {
		if _, err := c.PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String(locked),
			ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
				Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(5)}}},
		}); err != nil {
			t.Fatal(err)
		}
		lc, err := s.LockConfiguration(ctx)
		if err != nil || !lc.Enabled || lc.Mode != "GOVERNANCE" || lc.Days != 5 {
			t.Errorf("LockConfiguration = %+v, %v; want enabled, GOVERNANCE 5 days", lc, err)
		}
	})
	t.Run("Unsupported", func(t *testing.T) {
		plain := newSink(t, testOptions(t, srv, srv.NewBucket(t, false)))
		if _, err := plain.Put(ctx, "x", strings.NewReader("x"), 1, sink.Meta{}); err != nil {
			t.Fatal(err)
		}
		if err := plain.SetLegalHold(ctx, "x", true); !errors.Is(err, sink.ErrLockUnsupported) {
			t.Errorf("SetLegalHold without Object Lock = %v, want ErrLockUnsupported", err)
		}
		if _, err := plain.ObjectLock(ctx, "x"); !errors.Is(err, sink.ErrLockUnsupported) {
			t.Errorf("ObjectLock without Object Lock = %v, want ErrLockUnsupported", err)
		}
		if lc, err := plain.LockConfiguration(ctx); err != nil || lc.Enabled {
			t.Errorf("LockConfiguration without Object Lock = %+v, %v; want not enabled", lc, err)
		}
		o := testOptions(t, srv, locked)
		o.Checksum = s3.ChecksumNone
		none := newSink(t, o)
		if _, err := none.Put(ctx, "lock/none", strings.NewReader("n"), 1, sink.Meta{Lock: lock}); !errors.Is(err, sink.ErrLockUnsupported) {
			t.Errorf("Put with a lock and checksum NONE = %v, want ErrLockUnsupported", err)
		}
		if _, err := none.Stat(ctx, "lock/none"); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("refused Put left an object: %v", err)
		}
	})
}
