package s3_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
	"github.com/cec-archiver/cec-archiver/internal/sink/sinktest"
)

// payloadHashes records the X-Amz-Content-Sha256 header of every PutObject
// and UploadPart request as sent (after signing), with the operation name.
type payloadHashes struct {
	mu   sync.Mutex
	seen []string
}

func (p *payloadHashes) middleware(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cecPayloadHashes",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			if req, ok := in.Request.(*smithyhttp.Request); ok && (op == "PutObject" || op == "UploadPart") {
				p.mu.Lock()
				p.seen = append(p.seen, op+" "+req.Header.Get("X-Amz-Content-Sha256"))
				p.mu.Unlock()
			}
			return next.HandleDeserialize(ctx, in)
		}), middleware.After)
}

// TestSink_PayloadSigning: with an S3 checksum the body is sent as
// UNSIGNED-PAYLOAD (the signed checksum header binds it, and the store hashes
// it once); with Checksum NONE the body's SHA-256 is signed, per request,
// single and multipart alike. Every object is stored and verified either way.
func TestSink_PayloadSigning(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()
	const large = 11 << 20 // parts of 5 MiB, 5 MiB and 1 MiB
	for _, alg := range []s3.ChecksumAlgorithm{s3.ChecksumSHA256, s3.ChecksumCRC32C, s3.ChecksumCRC32, s3.ChecksumNone} {
		t.Run(string(alg), func(t *testing.T) {
			rec := &payloadHashes{}
			opts := testOptions(t, srv, bucket)
			opts.Prefix = "signing-" + strings.ToLower(string(alg))
			opts.Checksum = alg
			opts.APIOptions = append(opts.APIOptions, rec.middleware)
			s := newSink(t, opts)
			rec.mu.Lock()
			rec.seen = nil // the conditional-write probe
			rec.mu.Unlock()
			for i, n := range []int64{1000, large} {
				key := fmt.Sprintf("obj-%d", i)
				obj, err := s.Put(ctx, key, sinktest.OnlyReader(sinktest.Stream(uint64(i+1), n)), n, sink.Meta{})
				if err != nil || obj.SHA256 != sinktest.Digest(uint64(i+1), n) {
					t.Fatalf("Put %s: %+v, %v", key, obj, err)
				}
			}
			// What each request must have carried.
			want := map[string]bool{}
			body, _ := io.ReadAll(sinktest.Stream(1, 1000))
			parts, _ := io.ReadAll(sinktest.Stream(2, large))
			hexSum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
			if alg == s3.ChecksumNone {
				want["PutObject "+hexSum(body)] = true
				for off := 0; off < len(parts); off += 5 << 20 {
					want["UploadPart "+hexSum(parts[off:min(off+5<<20, len(parts))])] = true
				}
			} else {
				want["PutObject UNSIGNED-PAYLOAD"] = true
				want["UploadPart UNSIGNED-PAYLOAD"] = true
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.seen) != 4 {
				t.Errorf("%d PutObject/UploadPart requests %q, want 4", len(rec.seen), rec.seen)
			}
			for _, got := range rec.seen {
				if !want[got] {
					t.Errorf("request sent %q; want one of %v", got, want)
				}
			}
		})
	}
}
