package s3_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
	"github.com/cec-archiver/cec-archiver/internal/sink/sinktest"
)

const (
	benchStreams = 16
	benchSize    = 100 << 20
	benchBudget  = 64 << 20
)

// BenchmarkS3Put16x100MB streams 16 concurrent 100 MiB bodies of unknown
// size through one Sink (multipart, CRC32C checksums, conditional writes,
// parts spooled to a temp dir as the archiver does)
// into versitygw, and reports
//
//   - MB/s: body bytes per second through the sink;
//   - baseline-MB/s: the same 16 streams as plain unconditional PutObject
//     calls without checksums or payload signing, in the same run: what
//     this machine and server can take;
//   - vs-baseline: the ratio of the two;
//   - peak-RSS-MiB: the process's peak resident set during the sink phase
//     (VmHWM, reset before the phase), against rss-limit-MiB = 64 MiB,
//     which the benchmark fails above.
//
// Run: go test -run '^$' -bench S3Put16x100MB -benchtime 1x ./internal/sink/s3/
func BenchmarkS3Put16x100MB(b *testing.B) {
	srv := s3test.Start(b)
	bucket := srv.NewBucket(b, false)
	ctx := context.Background()
	opts := s3.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket, Prefix: "bench", PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		PartSize: 8 << 20, MultipartThreshold: 8 << 20, UploadConcurrency: 4, MaxSpoolBytes: benchBudget,
		ConditionalWrite: s3.ConditionalOn, SpoolDir: b.TempDir(), // as the archiver runs it
		Logger: zap.NewNop(),
	}
	s, err := s3.New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	client := srv.Client()
	total := int64(benchStreams * benchSize)
	b.SetBytes(total)
	b.ReportAllocs()

	var sinkDur, baseDur time.Duration
	var peak int64
	for i := range b.N {
		resetPeakRSS(b)
		start := time.Now()
		err := parallel(benchStreams, func(j int) error {
			body := sinktest.OnlyReader(newPattern(uint64(i*benchStreams+j), benchSize))
			_, err := s.Put(ctx, fmt.Sprintf("run%d/stream%02d.bin", i, j), body, -1, sink.Meta{})
			return err
		})
		sinkDur += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		peak = max(peak, peakRSS(b))

		b.StopTimer()
		start = time.Now()
		err = parallel(benchStreams, func(j int) error {
			_, err := client.PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("baseline/run%d/stream%02d.bin", i, j)),
				Body: newPattern(uint64(1000+j), benchSize), ContentLength: aws.Int64(benchSize),
			}, awss3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
			return err
		})
		baseDur += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		cleanBucket(b, client, bucket) // keep the disk from filling over iterations
		b.StartTimer()
	}
	mbps := float64(total) * float64(b.N) / 1e6 / sinkDur.Seconds()
	base := float64(total) * float64(b.N) / 1e6 / baseDur.Seconds()
	// The buffers are spooled: the process itself stays within 64 MiB
	// whatever the budget (which bounds the spool on disk).
	limit := 64.0
	b.ReportMetric(mbps, "MB/s")
	b.ReportMetric(base, "baseline-MB/s")
	b.ReportMetric(mbps/base, "vs-baseline")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(limit, "rss-limit-MiB")
	if float64(peak)/(1<<20) > limit {
		b.Errorf("peak RSS %d MiB exceeds 64 MiB (buffers spooled, %d MiB budget)", peak>>20, benchBudget>>20)
	}
}

func parallel(n int, f func(int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for j := range n {
		wg.Go(func() { errs[j] = f(j) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func cleanBucket(b *testing.B, c *awss3.Client, bucket string) {
	ctx := context.Background()
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range page.Contents {
			if strings.Contains(aws.ToString(o.Key), sink.ReservedPrefix) {
				continue
			}
			if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// resetPeakRSS resets VmHWM (Linux: "5" > /proc/self/clear_refs).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset peak RSS (%v); reporting the process's peak so far", err)
	}
}

// peakRSS reads VmHWM from /proc/self/status, in bytes.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("VmHWM not found")
	return 0
}

// noise is the block every pattern repeats; one shared block keeps the
// benchmark's own memory out of the RSS it measures.
var noise = sync.OnceValue(func() []byte { return sinktest.Bytes(42, 1<<20+1) })

// pattern is a seekable body of n bytes repeating a block of noise from a
// seed-dependent start: cheap to produce, so both phases measure the upload
// path, not the source, and distinct seeds give distinct bodies.
type pattern struct {
	start int64
	off   int64
	n     int64
}

func newPattern(seed uint64, n int64) *pattern {
	return &pattern{start: int64(seed*7919) % int64(len(noise())), n: n}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	block := noise()
	k := copy(b[:min(int64(len(b)), p.n-p.off)], block[(p.start+p.off)%int64(len(block)):])
	p.off += int64(k)
	return k, nil
}

func (p *pattern) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += p.off
	case io.SeekEnd:
		offset += p.n
	}
	if offset < 0 {
		return 0, errors.New("pattern: negative offset")
	}
	p.off = offset
	return offset, nil
}

var _ io.ReadSeeker = (*pattern)(nil)
