package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap/zaptest"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// TestSink_SendsSpoolFiles: bodies and parts that wait in a spool file are
// sent from it (fileBodyClient), and the store holds exactly their bytes; a
// small body held in memory goes the SDK's way. Run with a checksum and
// with none (the payload's SHA-256 signed instead).
func TestSink_SendsSpoolFiles(t *testing.T) {
	if !canDup {
		t.Skipf("no second open of a spool file on %s: bodies go through the SDK", runtime.GOOS)
	}
	srv := s3test.Start(t)
	for _, checksum := range []ChecksumAlgorithm{ChecksumCRC32C, ChecksumNone} {
		t.Run(string(checksum), func(t *testing.T) {
			ctx := context.Background()
			bucket := srv.NewBucket(t, false)
			s, err := New(ctx, Options{
				SpoolDir: t.TempDir(), Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket, PathStyle: true,
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Checksum: checksum,
				PartSize: 5 << 20, MultipartThreshold: 6 << 20, UploadConcurrency: 2, MaxSpoolBytes: 64 << 20,
				Logger: zaptest.NewLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			c := srv.Client()
			for _, tc := range []struct {
				name          string
				size          int64
				minFiles, max int64 // requests sent from a spool file
			}{
				{"memory", 1 << 10, 0, 0},
				{"spooled", 1<<20 + 17, 1, 1},
				// Three parts of a 5 MiB part size; the last one's file may be
				// one a larger part used before (its tail is stale: not sent).
				{"multipart", 11<<20 + 5, 2, 3},
			} {
				body := make([]byte, tc.size)
				rand.Read(body)
				sum := sha256.Sum256(body)
				before := s.files.sent.Load()
				key := "t/" + tc.name
				if _, err := s.Put(ctx, key, bytes.NewReader(body), tc.size, sink.Meta{SHA256: hex.EncodeToString(sum[:])}); err != nil {
					t.Fatalf("%s: put: %v", tc.name, err)
				}
				if got := s.files.sent.Load() - before; got < tc.minFiles || got > tc.max {
					t.Errorf("%s: %d requests sent from a spool file, want %d to %d", tc.name, got, tc.minFiles, tc.max)
				}
				out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(s.ObjectKey(key))})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(out.Body)
				out.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("%s: stored %d bytes (%v), want the %d put", tc.name, len(got), err, len(body))
				}
			}
		})
	}
}
