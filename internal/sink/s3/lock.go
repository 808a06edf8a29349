package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

var (
	_ sink.LegalHolder = (*Sink)(nil)
	_ sink.LockReader  = (*Sink)(nil)
)

// objectLock is the Object Lock of a new object: the per-object lock
// (sink.Meta.Lock) where it gives a retention, else the configured one;
// a legal hold when either asks for it.
func (s *Sink) objectLock(l *sink.ObjectLock) (types.ObjectLockMode, *time.Time, types.ObjectLockLegalHoldStatus) {
	var (
		mode  types.ObjectLockMode
		until *time.Time
		hold  types.ObjectLockLegalHoldStatus
	)
	switch {
	case l != nil && l.Mode != "":
		mode = types.ObjectLockMode(l.Mode)
		u := l.RetainUntil.UTC().Truncate(time.Second)
		until = &u
	case s.opts.ObjectLockMode != "":
		mode = types.ObjectLockMode(s.opts.ObjectLockMode)
		u := time.Now().UTC().Add(time.Duration(s.opts.RetentionDays) * 24 * time.Hour).Truncate(time.Second)
		until = &u
	}
	if s.opts.LegalHold || (l != nil && l.LegalHold) {
		hold = types.ObjectLockLegalHoldStatusOn
	}
	return mode, until, hold
}

// SetLegalHold places (on) or lifts the legal hold of the object at key
// (PutObjectLegalHold on its current version).
func (s *Sink) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := sink.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: legal hold %s: %w", key, err)
	}
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	in := &s3.PutObjectLegalHoldInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.ObjectKey(key)),
		LegalHold: &types.ObjectLockLegalHold{Status: status},
	}
	// S3 requires a checksum (Content-MD5 or x-amz-checksum-*) on
	// PutObjectLegalHold; the SDK adds CRC32 when asked.
	in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	if _, err := s.client.PutObjectLegalHold(ctx, in); err != nil {
		return fmt.Errorf("s3: legal hold %s: %w", key, lockError(err))
	}
	return nil
}

// LegalHold reads the legal hold status of the object at key.
func (s *Sink) LegalHold(ctx context.Context, key string) (bool, error) {
	if err := sink.ValidateKey(key); err != nil {
		return false, fmt.Errorf("s3: legal hold %s: %w", key, err)
	}
	out, err := s.client.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.ObjectKey(key)),
	})
	if code, _ := apiCode(err); code == "NoSuchObjectLockConfiguration" {
		return false, nil // an object never held (versitygw says so)
	}
	if err != nil {
		return false, fmt.Errorf("s3: legal hold %s: %w", key, lockError(err))
	}
	return out.LegalHold != nil && out.LegalHold.Status == types.ObjectLockLegalHoldStatusOn, nil
}

// ObjectLock reads the retention (GetObjectRetention) and the legal hold
// (GetObjectLegalHold) of the object at key: two requests. An object
// without a retention has Mode "".
func (s *Sink) ObjectLock(ctx context.Context, key string) (sink.ObjectLock, error) {
	if err := sink.ValidateKey(key); err != nil {
		return sink.ObjectLock{}, fmt.Errorf("s3: object lock %s: %w", key, err)
	}
	out, err := s.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.ObjectKey(key)),
	})
	var l sink.ObjectLock
	switch code, _ := apiCode(err); {
	case code == "NoSuchObjectLockConfiguration":
		// No retention on the object (AWS and versitygw say so).
	case err != nil:
		return sink.ObjectLock{}, fmt.Errorf("s3: object lock %s: retention: %w", key, lockError(err))
	case out.Retention != nil:
		l.Mode, l.RetainUntil = string(out.Retention.Mode), aws.ToTime(out.Retention.RetainUntilDate)
	}
	if l.Mode != "" && l.RetainUntil.IsZero() {
		return sink.ObjectLock{}, fmt.Errorf("s3: object lock %s: retention %s without a retain-until date", key, l.Mode)
	}
	held, err := s.LegalHold(ctx, key)
	if err != nil {
		return sink.ObjectLock{}, err // names the key
	}
	l.LegalHold = held
	return l, nil
}

// LockConfig is a bucket's Object Lock configuration.
type LockConfig struct {
	Enabled bool
	// Mode and Days are the bucket's default retention ("" and 0: none);
	// a default given in years counts 365 days a year.
	Mode string
	Days int
}

// LockConfiguration reads the bucket's Object Lock configuration
// (GetObjectLockConfiguration). A bucket without Object Lock returns
// Enabled false and no error.
func (s *Sink) LockConfiguration(ctx context.Context) (LockConfig, error) {
	out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.opts.Bucket)})
	if err != nil {
		if errors.Is(lockError(err), sink.ErrLockUnsupported) {
			return LockConfig{}, nil
		}
		return LockConfig{}, fmt.Errorf("s3: object lock configuration of %s: %w", s.opts.Bucket, classify(err))
	}
	c := out.ObjectLockConfiguration
	if c == nil || c.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return LockConfig{}, nil
	}
	lc := LockConfig{Enabled: true}
	if c.Rule != nil && c.Rule.DefaultRetention != nil {
		d := c.Rule.DefaultRetention
		lc.Mode = string(d.Mode)
		lc.Days = int(aws.ToInt32(d.Days)) + 365*int(aws.ToInt32(d.Years))
	}
	return lc, nil
}

// lockError classifies the errors of the Object Lock calls: a missing
// key (ErrNotFound), a bucket without Object Lock (ErrLockUnsupported), a
// refused permission (ErrAccessDenied).
func lockError(err error) error {
	code, status := apiCode(err)
	switch {
	case isNotFound(err) && code != "ObjectLockConfigurationNotFoundError":
		return fmt.Errorf("%w: %w", sink.ErrNotFound, err)
	case code == "ObjectLockConfigurationNotFoundError", code == "InvalidRequest" && status == http.StatusBadRequest,
		code == "InvalidBucketObjectLockConfiguration":
		return fmt.Errorf("%w (the bucket has no Object Lock configuration): %w", sink.ErrLockUnsupported, err)
	}
	return classify(err)
}
