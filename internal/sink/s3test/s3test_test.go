package s3test_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

func TestStart(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c := srv.Client()
	for _, lock := range []bool{false, true} {
		bucket := srv.NewBucket(t, lock)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("a/b"), Body: strings.NewReader("hello"),
		}); err != nil {
			t.Fatalf("put (lock=%v): %v", lock, err)
		}
		out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b")})
		if err != nil {
			t.Fatalf("head: %v", err)
		}
		if got := aws.ToInt64(out.ContentLength); got != 5 {
			t.Errorf("size = %d, want 5", got)
		}
		if lock {
			cfg, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
			if err != nil {
				t.Fatalf("object lock configuration: %v", err)
			}
			if cfg.ObjectLockConfiguration == nil || cfg.ObjectLockConfiguration.ObjectLockEnabled != "Enabled" {
				t.Errorf("object lock not enabled: %+v", cfg.ObjectLockConfiguration)
			}
		}
	}
}
