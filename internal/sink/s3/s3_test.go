package s3_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap/zaptest"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
	"github.com/cec-archiver/cec-archiver/internal/sink/sinktest"
)

// testOptions are the sink's options for tests: small parts, and part
// buffers spooled to a directory of the test's, as the archiver runs it
// (checked empty at the end: spool files are unlinked when created).
func testOptions(t testing.TB, srv *s3test.Server, bucket string) s3.Options {
	spool := t.TempDir()
	t.Cleanup(func() {
		if left, err := os.ReadDir(spool); err != nil || len(left) > 0 {
			t.Errorf("spool directory holds %d entries (%v), want none", len(left), err)
		}
	})
	return s3.Options{
		SpoolDir:           spool,
		Endpoint:           srv.Endpoint,
		Region:             srv.Region,
		Bucket:             bucket,
		Prefix:             "archive",
		PathStyle:          true,
		AccessKey:          srv.AccessKey,
		SecretKey:          srv.SecretKey,
		PartSize:           5 << 20,
		MultipartThreshold: 5 << 20,
		UploadConcurrency:  4,
		MaxInflightBytes:   32 << 20, // the MemoryBuffers variant's budget
		MaxSpoolBytes:      32 << 20,
		Logger:             zaptest.NewLogger(t),
	}
}

func newSink(t testing.TB, opts s3.Options) *s3.Sink {
	t.Helper()
	s, err := s3.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	return s
}

// harness builds the conformance harness for a sink on srv.
func harness(t *testing.T, srv *s3test.Server, s *s3.Sink, large int64) sinktest.Harness {
	c := srv.Client()
	ctx := context.Background()
	bucket := s.Bucket()
	return sinktest.Harness{
		Sink:           s,
		LargeSize:      large,
		WeakCreateOnly: !s.Conditional(),
		Read: func(t *testing.T, key string) []byte {
			out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(key))})
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			defer out.Body.Close()
			b, err := io.ReadAll(out.Body)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Attributes: func(t *testing.T, key string) (map[string]string, map[string]string) {
			head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(key))})
			if err != nil {
				t.Fatalf("head %s: %v", key, err)
			}
			tags, err := c.GetObjectTagging(ctx, &awss3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(key))})
			if err != nil {
				t.Fatalf("tagging %s: %v", key, err)
			}
			tm := map[string]string{}
			for _, tag := range tags.TagSet {
				tm[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			return head.Metadata, tm
		},
		Leftovers: func(t *testing.T, key string) []string {
			out, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(s.ObjectKey(key))})
			if err != nil {
				t.Fatalf("list uploads: %v", err)
			}
			var left []string
			for _, u := range out.Uploads {
				left = append(left, "multipart upload "+aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
			}
			return left
		},
		Multipart: func(t *testing.T, key string) bool {
			head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(key)), PartNumber: aws.Int32(1)})
			if err != nil {
				t.Fatalf("head part 1 of %s: %v", key, err)
			}
			t.Logf("etag %s, parts %d", aws.ToString(head.ETag), aws.ToInt32(head.PartsCount))
			return aws.ToInt32(head.PartsCount) > 1 || strings.Contains(aws.ToString(head.ETag), "-")
		},
	}
}

func TestSink_Conformance(t *testing.T) {
	srv := s3test.Start(t)
	plain := srv.NewBucket(t, false)
	locked := srv.NewBucket(t, true)
	s := newSink(t, testOptions(t, srv, plain))
	if !s.Conditional() {
		t.Fatal("versitygw should honour If-None-Match")
	}
	h := harness(t, srv, s, 100<<20)
	h.Lock = func(t *testing.T) sinktest.LockHarness {
		opts := testOptions(t, srv, locked)
		opts.ObjectLockMode = "GOVERNANCE"
		opts.RetentionDays = 1
		opts.LegalHold = true
		ls := newSink(t, opts)
		c := srv.Client()
		ctx := context.Background()
		return sinktest.LockHarness{
			Sink: ls, Mode: "GOVERNANCE", RetentionDays: 1, LegalHold: true,
			Retention: func(t *testing.T, key string) (string, time.Time, bool) {
				r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String(locked), Key: aws.String(ls.ObjectKey(key))})
				if err != nil {
					t.Fatalf("get retention: %v", err)
				}
				lh, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String(locked), Key: aws.String(ls.ObjectKey(key))})
				if err != nil {
					t.Fatalf("get legal hold: %v", err)
				}
				return string(r.Retention.Mode), aws.ToTime(r.Retention.RetainUntilDate),
					lh.LegalHold != nil && lh.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
			},
			DeleteVersion: func(t *testing.T, key string) error {
				head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(locked), Key: aws.String(ls.ObjectKey(key))})
				if err != nil {
					t.Fatalf("head: %v", err)
				}
				if aws.ToString(head.VersionId) == "" {
					t.Fatalf("locked object has no version id")
				}
				_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(locked), Key: aws.String(ls.ObjectKey(key)), VersionId: head.VersionId})
				return err
			},
		}
	}
	h.SSE = func(t *testing.T) sinktest.SSEHarness {
		rec := &recorder{}
		opts := testOptions(t, srv, plain)
		opts.SSE = "aws:kms"
		opts.SSEKMSKeyID = "arn:aws:kms:us-east-1:111122223333:key/cec-test"
		opts.ConditionalWrite = s3.ConditionalOn
		opts.APIOptions = append(opts.APIOptions, rec.middleware)
		return sinktest.SSEHarness{Sink: newSink(t, opts), KMSKeyID: opts.SSEKMSKeyID, Requests: rec.requests}
	}
	sinktest.Run(t, h)
}

// TestSink_ConformanceVariants runs the suite with the other checksum
// algorithms and with conditional writes off (HEAD-then-PUT), on smaller
// bodies.
func TestSink_ConformanceVariants(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	for _, tc := range []struct {
		name string
		mod  func(*s3.Options)
	}{
		{"SHA256", func(o *s3.Options) { o.Checksum = s3.ChecksumSHA256 }},
		{"MemoryBuffers", func(o *s3.Options) { o.SpoolDir = "" }},
		{"CRC32", func(o *s3.Options) { o.Checksum = s3.ChecksumCRC32 }},
		{"NoChecksum", func(o *s3.Options) { o.Checksum = s3.ChecksumNone }},
		{"HeadThenPut", func(o *s3.Options) { o.ConditionalWrite = s3.ConditionalOff }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t, srv, bucket)
			opts.Prefix = "variant-" + strings.ToLower(tc.name)
			tc.mod(&opts)
			s := newSink(t, opts)
			sinktest.Run(t, harness(t, srv, s, 24<<20))
		})
	}
}

// recorder keeps the final form of every request the client sends.
type recorder struct {
	mu   sync.Mutex
	reqs []sinktest.Request
}

func (r *recorder) middleware(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cecRecorder",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				r.mu.Lock()
				r.reqs = append(r.reqs, sinktest.Request{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone()})
				r.mu.Unlock()
			}
			return next.HandleDeserialize(ctx, in)
		}), middleware.After)
}

func (r *recorder) requests() []sinktest.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sinktest.Request(nil), r.reqs...)
}

// TestSink_AccessDenied: a store refusing the credentials fails every
// method with an error that errors.Is sink.ErrAccessDenied.
func TestSink_AccessDenied(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()

	bad := testOptions(t, srv, bucket)
	bad.SecretKey = "wrong" + bad.SecretKey
	if _, err := s3.New(ctx, bad); !errors.Is(err, sink.ErrAccessDenied) {
		t.Fatalf("New with a wrong secret key = %v, want sink.ErrAccessDenied", err)
	}

	bad.ConditionalWrite = s3.ConditionalOn // no probe: New succeeds
	s := newSink(t, bad)
	if _, err := s.Stat(ctx, "a/b"); !errors.Is(err, sink.ErrAccessDenied) {
		t.Errorf("Stat = %v, want sink.ErrAccessDenied", err)
	}
	if _, err := s.Put(ctx, "a/b", strings.NewReader("x"), 1, sink.Meta{}); !errors.Is(err, sink.ErrAccessDenied) {
		t.Errorf("Put = %v, want sink.ErrAccessDenied", err)
	}
	if _, _, err := s.Open(ctx, "a/b"); !errors.Is(err, sink.ErrAccessDenied) {
		t.Errorf("Open = %v, want sink.ErrAccessDenied", err)
	}
	for _, err := range s.List(ctx, "") {
		if !errors.Is(err, sink.ErrAccessDenied) {
			t.Errorf("List = %v, want sink.ErrAccessDenied", err)
		}
	}
	if _, err := s.Janitor(ctx, time.Hour); !errors.Is(err, sink.ErrAccessDenied) {
		t.Errorf("Janitor = %v, want sink.ErrAccessDenied", err)
	}

	good := newSink(t, testOptions(t, srv, bucket))
	if _, err := good.Stat(ctx, "a/b"); errors.Is(err, sink.ErrAccessDenied) || !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("Stat with the right credentials = %v, want sink.ErrNotFound only", err)
	}
}
