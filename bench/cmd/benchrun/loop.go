package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// loopApp is the SDK application ID of the bare loop's requests.
const loopApp = "benchloop"

// loopResult is what `benchrun loop` prints on stdout.
type loopResult struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// runLoop is variant B, run as a child process so that its rusage is its
// own: for every key of --list, GET it from --src and stream the body into
// PutObject, --concurrency at a time. Nothing else: no checkpoint, no
// checksum (UNSIGNED-PAYLOAD), no retry. It is the floor the archiver is
// compared with. Credentials come from BENCH_S3_ACCESS_KEY and
// BENCH_S3_SECRET_KEY.
func runLoop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchrun loop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := fs.String("src", "", "base URL of the file server")
	list := fs.String("list", "", "file with one key a line")
	endpoint := fs.String("endpoint", "", "S3 endpoint")
	region := fs.String("region", "us-east-1", "S3 region")
	bucket := fs.String("bucket", "", "S3 bucket")
	conc := fs.Int("concurrency", 16, "transfers in flight")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the copy to `FILE`")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *src == "" || *list == "" || *endpoint == "" || *bucket == "" || *conc < 1 {
		fmt.Fprintln(stderr, "benchrun loop: --src, --list, --endpoint and --bucket are required")
		return exitUsage
	}
	keys, err := readLines(*list)
	if err != nil {
		fmt.Fprintln(stderr, "benchrun loop:", err)
		return exitFailed
	}
	c := newS3Client(*endpoint, *region, os.Getenv("BENCH_S3_ACCESS_KEY"), os.Getenv("BENCH_S3_SECRET_KEY"), loopApp, *conc)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * *conc, DisableCompression: true}}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "benchrun loop: --cpuprofile:", err)
			return exitFailed
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	res, err := copyAll(ctx, hc, c, strings.TrimSuffix(*src, "/"), *bucket, keys, *conc)
	if err != nil {
		fmt.Fprintln(stderr, "benchrun loop:", err)
		return exitFailed
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return exitFailed
	}
	return exitOK
}

func copyAll(ctx context.Context, hc *http.Client, c *s3.Client, src, bucket string, keys []string, conc int) (loopResult, error) {
	var objects, bytes atomic.Int64
	work := make(chan string)
	errc := make(chan error, conc)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				n, err := copyOne(ctx, hc, c, src, bucket, k)
				if err != nil {
					errc <- err
					cancel()
					return
				}
				objects.Add(1)
				bytes.Add(n)
			}
		}()
	}
feed:
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return loopResult{}, err
	}
	return loopResult{Objects: int(objects.Load()), Bytes: bytes.Load()}, ctx.Err()
}

// onlyReader hides every method but Read, so the SDK streams the body.
type onlyReader struct{ io.Reader }

func copyOne(ctx context.Context, hc *http.Client, c *s3.Client, src, bucket, key string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src+"/"+(&url.URL{Path: key}).EscapedPath(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
		return 0, fmt.Errorf("get %s: %s, length %d", key, resp.Status, resp.ContentLength)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		Body: onlyReader{resp.Body}, ContentLength: aws.Int64(resp.ContentLength),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return resp.ContentLength, nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New(path + ": no keys")
	}
	return out, nil
}

// waitTimeout is how long one measured process may run.
const waitTimeout = 60 * time.Minute
