package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap/zaptest"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
	"github.com/cec-archiver/cec-archiver/internal/sink/sinktest"
)

// TestSink_StoreChecksum checks that the store reports the checksum the
// sink computed, full for one PutObject and composite for multipart, so
// the read-back verification really compares something.
func TestSink_StoreChecksum(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()
	for _, alg := range []s3.ChecksumAlgorithm{s3.ChecksumSHA256, s3.ChecksumCRC32C, s3.ChecksumCRC32} {
		t.Run(string(alg), func(t *testing.T) {
			opts := testOptions(t, srv, bucket)
			opts.Checksum = alg
			s := newSink(t, opts)
			for _, tc := range []struct {
				n      int64
				suffix string
			}{{1000, ""}, {12 << 20, "-3"}} {
				k := "checksum/" + string(alg) + "/" + sinktest.Digest(uint64(tc.n), 1)[:8]
				obj, err := s.Put(ctx, k, sinktest.Stream(1, tc.n), -1, sink.Meta{})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(obj.Checksum, string(alg)+":") || !strings.HasSuffix(obj.Checksum, tc.suffix) ||
					(tc.suffix == "" && strings.Contains(obj.Checksum, "-")) {
					t.Errorf("%d bytes: checksum %q, want %s:…%s", tc.n, obj.Checksum, alg, tc.suffix)
				}
				if obj.Multipart != (tc.suffix != "") {
					t.Errorf("%d bytes: multipart = %v", tc.n, obj.Multipart)
				}
			}
		})
	}
}

// wrongChecksum is a checksum of alg that no test body has: that of the
// empty body.
func wrongChecksum(alg s3.ChecksumAlgorithm) string {
	if alg == s3.ChecksumSHA256 {
		return "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" // sha256("")
	}
	return "AAAAAA==" // crc32("") and crc32c("")
}

// checksumHeader is the request and response header of alg.
func checksumHeader(alg s3.ChecksumAlgorithm) string {
	return http.CanonicalHeaderKey("X-Amz-Checksum-" + string(alg))
}

// corruptChecksum rewrites the checksum header of alg after serialisation
// and before signing: the request is validly signed, but the body no longer
// matches, as if it had been damaged on the way.
func corruptChecksum(alg s3.ChecksumAlgorithm, onlyParts bool) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("cecCorrupt",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok && req.Header.Get(checksumHeader(alg)) != "" &&
					(!onlyParts || req.URL.Query().Has("partNumber")) {
					req.Header.Set(checksumHeader(alg), wrongChecksum(alg))
				}
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	}
}

// checksumAlgorithms are the algorithms the store verifies.
var checksumAlgorithms = []s3.ChecksumAlgorithm{s3.ChecksumCRC32C, s3.ChecksumSHA256, s3.ChecksumCRC32}

func TestSink_StoreRejectsDamagedBody(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	for _, alg := range checksumAlgorithms {
		for _, tc := range []struct {
			name string
			n    int64
		}{{"PutObject", 1000}, {"UploadPart", 12 << 20}} {
			t.Run(string(alg)+"/"+tc.name, func(t *testing.T) {
				damagedBody(t, srv, bucket, alg, tc.name, tc.n)
			})
		}
	}
}

func damagedBody(t *testing.T, srv *s3test.Server, bucket string, alg s3.ChecksumAlgorithm, name string, n int64) {
	t.Helper()
	ctx := context.Background()
	opts := testOptions(t, srv, bucket)
	opts.ConditionalWrite = s3.ConditionalOn
	opts.Checksum = alg
	opts.APIOptions = append(opts.APIOptions, corruptChecksum(alg, name == "UploadPart"))
	s := newSink(t, opts)
	k := "damaged/" + string(alg) + "/" + name
	_, err := s.Put(ctx, k, sinktest.Stream(1, n), n, sink.Meta{})
	if err == nil {
		t.Fatal("Put with a damaged body succeeded")
	}
	// The store, not the sink, detects this damage: the rejection
	// must be its checksum error (BadDigest), not any failure.
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "BadDigest" {
		t.Fatalf("Put with a damaged body = %v, want the store's BadDigest rejection", err)
	}
	t.Logf("rejected: %v", err)
	h := harness(t, srv, s, 0)
	if _, err := s.Stat(ctx, k); !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("Stat = %v, want ErrNotFound", err)
	}
	if left := h.Leftovers(t, k); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestSink_Janitor(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()
	s := newSink(t, testOptions(t, srv, bucket))
	c := srv.Client()
	start := func(key string) {
		if _, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	start(s.ObjectKey("crashed/one.wav")) // ours, as a killed process leaves it (F2)
	start("other-prefix/theirs.wav")      // not ours
	if n, err := s.Janitor(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("Janitor(1h) = %d, %v; want 0 (the upload is fresh)", n, err)
	}
	if n, err := s.Janitor(ctx, 0); err != nil || n != 1 {
		t.Errorf("Janitor(0) = %d, %v; want 1", n, err)
	}
	out, err := c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 1 || aws.ToString(out.Uploads[0].Key) != "other-prefix/theirs.wav" {
		t.Errorf("uploads after janitor: %+v", out.Uploads)
	}
}

// TestSink_CAFile talks HTTPS to a server whose certificate a private CA
// signed. AWS_CA_BUNDLE is set on CI machines; with it the SDK refuses a
// plain *http.Client, which is why the sink configures a BuildableClient.
func TestSink_CAFile(t *testing.T) {
	if os.Getenv("AWS_CA_BUNDLE") == "" {
		for _, p := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"} {
			if _, err := os.Stat(p); err == nil {
				t.Setenv("AWS_CA_BUNDLE", p)
				break
			}
		}
	}
	srv := s3test.StartTLS(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()

	opts := testOptions(t, srv, bucket)
	if _, err := s3.New(ctx, opts); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("New without the CA = %v, want a certificate error", err)
	}
	opts.CAFile = srv.CAFile
	s := newSink(t, opts)
	for _, n := range []int64{1000, 12 << 20} {
		if _, err := s.Put(ctx, "tls/"+sinktest.Digest(uint64(n), 1)[:8], sinktest.Stream(1, n), -1, sink.Meta{}); err != nil {
			t.Errorf("Put %d bytes over TLS: %v", n, err)
		}
	}
}

// tamperResponse rewrites the answer to op before the SDK reads it: its
// headers with header, its body with body (either may be nil).
func tamperResponse(op string, header func(http.Header), body func([]byte) []byte) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cecTamper",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				resp, ok := out.RawResponse.(*smithyhttp.Response)
				if !ok || err != nil || awsmiddleware.GetOperationName(ctx) != op || resp.StatusCode != http.StatusOK {
					return out, md, err
				}
				if header != nil {
					header(resp.Header)
				}
				if body != nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr != nil {
						return out, md, rerr
					}
					b = body(b)
					resp.Body = io.NopCloser(bytes.NewReader(b))
					resp.ContentLength = int64(len(b))
				}
				return out, md, err
			}), middleware.After)
	}
}

// TestSink_VerifiesWriteResponse: a new object is verified from the write's
// own response, without a HEAD; a response reporting another checksum or
// size than the sink wrote fails the Put.
func TestSink_VerifiesWriteResponse(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t, false)
	ctx := context.Background()
	for _, alg := range checksumAlgorithms {
		wrong := wrongChecksum(alg)
		tag := "Checksum" + string(alg)
		checksumXML := regexp.MustCompile(`<` + tag + `>[^<]*</` + tag + `>`)
		for _, tc := range []struct {
			name   string
			n      int64
			tamper func(*middleware.Stack) error
			want   error
		}{
			{"PutObjectChecksum", 1000, tamperResponse("PutObject",
				func(h http.Header) { h.Set(checksumHeader(alg), wrong) }, nil), sink.ErrChecksumMismatch},
			{"PutObjectSize", 1000, tamperResponse("PutObject",
				func(h http.Header) { h.Set("X-Amz-Object-Size", "999") }, nil), sink.ErrSizeMismatch},
			{"CompleteChecksum", 12 << 20, tamperResponse("CompleteMultipartUpload", nil,
				func(b []byte) []byte {
					return checksumXML.ReplaceAll(b, []byte("<"+tag+">"+wrong+"-3</"+tag+">"))
				}), sink.ErrChecksumMismatch},
		} {
			t.Run(string(alg)+"/"+tc.name, func(t *testing.T) {
				opts := testOptions(t, srv, bucket)
				opts.ConditionalWrite = s3.ConditionalOn
				opts.Checksum = alg
				s := newSink(t, opts)
				k := "response/" + string(alg) + "/" + tc.name
				obj, err := s.Put(ctx, k+"-intact", sinktest.Stream(1, tc.n), -1, sink.Meta{})
				if err != nil || !strings.HasPrefix(obj.Checksum, string(alg)+":") {
					t.Fatalf("untampered Put = %+v, %v; want success with the store's %s", obj, err, alg)
				}
				opts.APIOptions = append(opts.APIOptions, tc.tamper)
				s = newSink(t, opts)
				if _, err := s.Put(ctx, k, sinktest.Stream(1, tc.n), -1, sink.Meta{}); !errors.Is(err, tc.want) {
					t.Fatalf("Put with a tampered response = %v, want %v", err, tc.want)
				} else {
					t.Logf("refused: %v", err)
				}
			})
		}
	}
}

// TestSink_ErrorIn200IsNotTrusted: a store answering a PutObject with 200
// and an error document (the answer S3 documents for some operations), no
// checksum and nothing stored, fails the Put: the sink does not search a
// PutObject's body for an error (its success has none), it verifies every
// write by the answer's checksum or, lacking one, by a HEAD, which finds
// nothing here.
func TestSink_ErrorIn200IsNotTrusted(t *testing.T) {
	var puts, heads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.Method {
		case http.MethodPut:
			puts.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
				`<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`)
		case http.MethodHead:
			heads.Add(1)
			w.WriteHeader(http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	t.Cleanup(srv.Close)
	opts := s3.Options{
		SpoolDir: t.TempDir(), Endpoint: srv.URL, Region: "us-east-1", Bucket: "b", PathStyle: true,
		AccessKey: "AK", SecretKey: "SK", ConditionalWrite: s3.ConditionalOn, Checksum: s3.ChecksumSHA256,
		Logger: zaptest.NewLogger(t),
	}
	s := newSink(t, opts)
	obj, err := s.Put(context.Background(), "error-in-200", sinktest.Stream(1, 1000), -1, sink.Meta{})
	if err == nil {
		t.Fatalf("Put against a store that answered 200 with an error document = %+v, nil; want an error", obj)
	}
	t.Logf("refused: %v", err)
	if puts.Load() == 0 || heads.Load() == 0 {
		t.Errorf("%d PUTs, %d HEADs: want the write verified by a HEAD", puts.Load(), heads.Load())
	}
}
