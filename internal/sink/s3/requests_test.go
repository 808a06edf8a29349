package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
	"github.com/cec-archiver/cec-archiver/internal/sink/sinktest"
)

// counter records every HTTP attempt the client makes, as the operation
// name, with ":status" when the answer was not 2xx. It sits next to the
// transport (innermost in the deserialize step), so SDK retries count too.
type counter struct {
	mu  sync.Mutex
	ops []string
}

func (c *counter) middleware(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cecCounter",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			op := awsmiddleware.GetOperationName(ctx)
			if resp, ok := out.RawResponse.(*smithyhttp.Response); !ok {
				op += ":no-response"
			} else if resp.StatusCode/100 != 2 {
				op += fmt.Sprintf(":%d", resp.StatusCode)
			}
			c.mu.Lock()
			c.ops = append(c.ops, op)
			c.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

// take returns the operations recorded since the last take.
func (c *counter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := c.ops
	c.ops = nil
	return ops
}

// stripChecksums removes the checksum headers from the responses to op, as
// a store would answer that does not echo them. It is added before the
// counter, so it runs between the transport and the SDK's deserializer.
func stripChecksums(op string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cecStripChecksums",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && awsmiddleware.GetOperationName(ctx) == op {
					for h := range resp.Header {
						if strings.HasPrefix(http.CanonicalHeaderKey(h), "X-Amz-Checksum-") {
							resp.Header.Del(h)
						}
					}
				}
				return out, md, err
			}), middleware.After)
	}
}

// dropIfNoneMatch removes If-None-Match from the requests of op before they
// are signed, as if the store ignored it.
func dropIfNoneMatch(op string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("cecDropIfNoneMatch",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok && awsmiddleware.GetOperationName(ctx) == op {
					req.Header.Del("If-None-Match")
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}

func parts(n int) []string { return slices.Repeat([]string{"UploadPart"}, n) }

func seq(groups ...[]string) []string { return slices.Concat(groups...) }

var (
	putNew   = []string{"PutObject"}
	create   = []string{"CreateMultipartUpload"}
	complete = []string{"CompleteMultipartUpload"}
)

// TestSink_RequestsPerPut counts the requests each kind of Put sends to the
// store: a new object costs one round trip (PutObject), or Create + parts +
// Complete for multipart; the existing-key and fallback paths pay for their
// HEAD only when they need it.
func TestSink_RequestsPerPut(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()
	const (
		small = 1000
		large = 12 << 20 // three 5 MiB parts (the last one short)
	)

	type step struct {
		name   string
		key    string
		seed   uint64
		n      int64
		size   int64 // -1: unknown
		digest bool  // pass Meta.SHA256
		want   []string
		err    error // errors.Is, nil: success
		exists bool  // Object.Existed
	}
	for _, tc := range []struct {
		name      string
		mod       func(*s3.Options)
		probe     []string // requests of New on a fresh prefix
		steps     []step
		debugOnce string // a debug message expected exactly once
	}{
		{
			name: "Conditional",
			mod:  func(o *s3.Options) {},
			probe: seq(putNew, []string{"PutObject:412"},
				create, parts(1), []string{"CompleteMultipartUpload:412", "AbortMultipartUpload"}),
			steps: []step{
				{name: "NewSmall", key: "a", seed: 1, n: small, size: small, want: putNew},
				{name: "NewSmallUnknownSize", key: "b", seed: 2, n: small, size: -1, want: putNew},
				{name: "NewEmpty", key: "c", seed: 3, n: 0, size: 0, want: putNew},
				{name: "ExistingSmall", key: "a", seed: 1, n: small, size: small, exists: true,
					want: []string{"PutObject:412", "HeadObject"}},
				{name: "ConflictSmall", key: "a", seed: 9, n: small, size: -1, err: sink.ErrConflict,
					want: []string{"PutObject:412", "HeadObject"}},
				{name: "NewMultipart", key: "m", seed: 4, n: large, size: -1, digest: true,
					want: seq(create, parts(3), complete)},
				{name: "NewMultipartKnownSize", key: "k", seed: 5, n: large, size: large, digest: true,
					want: seq(create, parts(3), complete)},
				// Without the caller's digest, it can only be recorded once
				// the body has been read: as a tag, after completion.
				{name: "NewMultipartUnknownDigest", key: "u", seed: 6, n: large, size: -1,
					want: seq(create, parts(3), complete, []string{"PutObjectTagging"})},
				{name: "ExistingMultipart", key: "m", seed: 4, n: large, size: -1, exists: true,
					want: seq(create, parts(3), []string{"CompleteMultipartUpload:412", "HeadObject", "AbortMultipartUpload"})},
				{name: "ExistingMultipartTaggedDigest", key: "u", seed: 6, n: large, size: -1, exists: true,
					want: seq(create, parts(3), []string{"CompleteMultipartUpload:412", "HeadObject", "GetObjectTagging", "AbortMultipartUpload"})},
			},
		},
		{
			name: "HeadThenPut",
			mod:  func(o *s3.Options) { o.ConditionalWrite = s3.ConditionalOff },
			steps: []step{
				{name: "NewSmall", key: "a", seed: 1, n: small, size: small, want: []string{"HeadObject:404", "PutObject"}},
				{name: "ExistingSmall", key: "a", seed: 1, n: small, size: -1, exists: true, want: []string{"HeadObject"}},
				{name: "NewMultipart", key: "m", seed: 4, n: large, size: -1, digest: true,
					want: seq([]string{"HeadObject:404"}, create, parts(3), complete)},
				{name: "ExistingMultipart", key: "m", seed: 4, n: large, size: -1, exists: true, want: []string{"HeadObject"}},
			},
		},
		{
			// A store that honours If-None-Match on PutObject but ignores it
			// on CompleteMultipartUpload: the probe finds out, and multipart
			// uploads HEAD first.
			name: "CompleteIgnoresIfNoneMatch",
			mod: func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, dropIfNoneMatch("CompleteMultipartUpload"))
			},
			probe: seq(putNew, []string{"PutObject:412"}, create, parts(1), complete),
			steps: []step{
				{name: "NewSmall", key: "a", seed: 1, n: small, size: small, want: putNew},
				{name: "NewMultipart", key: "m", seed: 4, n: large, size: -1, digest: true,
					want: seq([]string{"HeadObject:404"}, create, parts(3), complete)},
				{name: "ExistingMultipart", key: "m", seed: 4, n: large, size: -1, exists: true, want: []string{"HeadObject"}},
				{name: "ConflictMultipart", key: "m", seed: 5, n: large, size: large, err: sink.ErrConflict, want: []string{"HeadObject"}},
			},
		},
		{
			// Without a checksum there is nothing in the response to compare:
			// every write is verified with a HEAD.
			name: "ChecksumNone",
			mod:  func(o *s3.Options) { o.Checksum = s3.ChecksumNone; o.ConditionalWrite = s3.ConditionalOn },
			steps: []step{
				{name: "NewSmall", key: "a", seed: 1, n: small, size: small, want: []string{"PutObject", "HeadObject"}},
				{name: "NewMultipart", key: "m", seed: 4, n: large, size: -1, digest: true,
					want: seq(create, parts(3), complete, []string{"HeadObject"})},
			},
		},
		{
			// A store that does not echo the checksum: one verifying HEAD per
			// such response, logged once.
			name: "NoChecksumEcho",
			mod: func(o *s3.Options) {
				o.ConditionalWrite = s3.ConditionalOn
				o.APIOptions = append(o.APIOptions, stripChecksums("PutObject"))
			},
			steps: []step{
				{name: "NewSmall", key: "a", seed: 1, n: small, size: small, want: []string{"PutObject", "HeadObject"}},
				{name: "NewSmallAgain", key: "b", seed: 2, n: small, size: small, want: []string{"PutObject", "HeadObject"}},
				{name: "NewMultipart", key: "m", seed: 4, n: large, size: -1, digest: true,
					want: seq(create, parts(3), complete)},
			},
			debugOnce: "verifying with HEAD",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &counter{}
			core, logs := observer.New(zapcore.DebugLevel)
			opts := testOptions(t, srv, bucket)
			opts.Prefix = "requests-" + strings.ToLower(tc.name)
			opts.Logger = zap.New(core)
			tc.mod(&opts)
			opts.APIOptions = append(opts.APIOptions, c.middleware) // innermost
			s := newSink(t, opts)
			if got := c.take(); tc.probe != nil && !slices.Equal(got, tc.probe) {
				t.Errorf("New sent %d requests %v, want %d %v", len(got), got, len(tc.probe), tc.probe)
			}
			for _, st := range tc.steps {
				var meta sink.Meta
				if st.digest {
					meta.SHA256 = sinktest.Digest(st.seed, st.n)
				}
				obj, err := s.Put(ctx, st.key, sinktest.OnlyReader(sinktest.Stream(st.seed, st.n)), st.size, meta)
				got := c.take()
				switch {
				case st.err == nil && err != nil:
					t.Errorf("%s: Put: %v", st.name, err)
				case st.err != nil && !errors.Is(err, st.err):
					t.Errorf("%s: Put = %v, want %v", st.name, err, st.err)
				case err == nil && (obj.Existed != st.exists || obj.SHA256 != sinktest.Digest(st.seed, st.n) || obj.Size != st.n):
					t.Errorf("%s: Put = %+v, want existed %v, size %d", st.name, obj, st.exists, st.n)
				}
				if !slices.Equal(got, st.want) {
					t.Errorf("%s: %d requests %v, want %d %v", st.name, len(got), got, len(st.want), st.want)
				} else {
					t.Logf("%s: %d requests %v", st.name, len(got), got)
				}
			}
			if tc.debugOnce != "" {
				if n := logs.FilterMessageSnippet(tc.debugOnce).Len(); n != 1 {
					t.Errorf("debug message %q logged %d times, want once", tc.debugOnce, n)
				}
			}
		})
	}
}
