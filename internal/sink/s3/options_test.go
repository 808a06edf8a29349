package s3_test

import (
	"strings"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
)

func TestOptions_Validate(t *testing.T) {
	ok := s3.Options{Region: "us-east-1", Bucket: "b"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal options: %v", err)
	}
	for _, tc := range []struct {
		name  string
		mod   func(*s3.Options)
		field string
	}{
		{"NoRegion", func(o *s3.Options) { o.Region = "" }, "region"},
		{"NoBucket", func(o *s3.Options) { o.Bucket = "" }, "bucket"},
		{"BadPrefix", func(o *s3.Options) { o.Prefix = "a/../b" }, "prefix"},
		{"HalfCredentials", func(o *s3.Options) { o.AccessKey = "AK" }, "access_key"},
		{"Checksum", func(o *s3.Options) { o.Checksum = "MD5" }, "checksum"},
		{"LockWithoutChecksum", func(o *s3.Options) { o.Checksum = s3.ChecksumNone; o.LegalHold = true }, "checksum"},
		{"Conditional", func(o *s3.Options) { o.ConditionalWrite = "maybe" }, "conditional_write"},
		{"SSE", func(o *s3.Options) { o.SSE = "aws:kms:dsse" }, "sse"},
		{"KMSKeyWithoutKMS", func(o *s3.Options) { o.SSEKMSKeyID = "k" }, "sse_kms_key_id"},
		{"LockMode", func(o *s3.Options) { o.ObjectLockMode = "FOREVER"; o.RetentionDays = 1 }, "object_lock_mode"},
		{"LockWithoutDays", func(o *s3.Options) { o.ObjectLockMode = "COMPLIANCE" }, "retention_days"},
		{"DaysWithoutLock", func(o *s3.Options) { o.RetentionDays = 3 }, "retention_days"},
		{"SmallPart", func(o *s3.Options) { o.PartSize = 1 << 20 }, "part_size"},
		{"Concurrency", func(o *s3.Options) { o.UploadConcurrency = -1 }, "upload_concurrency"},
		{"Budget", func(o *s3.Options) { o.PartSize = 16 << 20; o.MaxInflightBytes = 8 << 20 }, "max_inflight_bytes"},
		{"SpoolBudget", func(o *s3.Options) { o.SpoolDir = "/tmp"; o.MaxSpoolBytes = 32 << 20 }, "max_spool_bytes"},
		{"SpoolBuffered", func(o *s3.Options) { o.SpoolDir = "/tmp"; o.MaxBufferedBytes = 1 << 10 }, "max_buffered_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mod(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), "s3: "+tc.field+":") {
				t.Errorf("Validate = %v, want an error on %s", err, tc.field)
			}
		})
	}
}
