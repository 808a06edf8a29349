package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// harnessApp is the SDK application ID of the harness's own S3 requests
// (bucket creation, read-back checks); the access-log count leaves them out.
const harnessApp = "benchharness"

// s3Server is one versitygw (posix backend) on a loopback port, with
// keep-alive on, as any production S3 endpoint has it, and an access log.
type s3Server struct {
	Endpoint, Region     string
	AccessKey, SecretKey string
	Root                 string // the posix backend: bucket/key are files under it
	AccessLog            string
	cmd                  *exec.Cmd
	done                 chan error
	logPath              string
}

func startS3(bin, dir string) (*s3Server, error) {
	s := &s3Server{
		Region: "us-east-1", AccessKey: "bench" + randHex(4), SecretKey: randHex(16),
		Root: filepath.Join(dir, "root"), AccessLog: filepath.Join(dir, "access.log"),
		logPath: filepath.Join(dir, "versitygw.log"), done: make(chan error, 1),
	}
	versions := filepath.Join(dir, "versions")
	for _, d := range []string{s.Root, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	s.Endpoint = "http://" + addr
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "--port", addr, "--region", s.Region, "--quiet", "--keep-alive",
		"--access-log", s.AccessLog, "posix", "--versioning-dir", versions, s.Root)
	// Credentials through the environment, not argv.
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(20 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-s.done:
			s.done <- err
			b, _ := os.ReadFile(s.logPath)
			return nil, fmt.Errorf("versitygw exited: %v: %s", err, b)
		default:
		}
		if resp, err := hc.Get(s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return nil, errors.New("versitygw not ready within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends versitygw (SIGTERM, then SIGKILL after 10 s) and waits for it,
// so the access log is complete.
func (s *s3Server) stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// client returns an S3 client for the harness (or, with another app ID,
// for the bare loop). Checksums only when required: the loop is bare.
// cpu is versitygw's user+system CPU time so far, in seconds, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).
func (s *s3Server) cpu() float64 {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st float64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return (ut + st) / 100
}

func (s *s3Server) client(app string, conns int) *s3.Client {
	return newS3Client(s.Endpoint, s.Region, s.AccessKey, s.SecretKey, app, conns)
}

func newS3Client(endpoint, region, ak, sk, app string, conns int) *s3.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 2 * conns
		tr.MaxIdleConnsPerHost = 2 * conns
	})
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint), Region: region, UsePathStyle: true, AppID: app,
		Credentials:                credentials.NewStaticCredentialsProvider(ak, sk, ""),
		HTTPClient:                 hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (s *s3Server) createBucket(ctx context.Context, name string) error {
	_, err := s.client(harnessApp, 1).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// removeBucket drops a bucket's contents behind versitygw's back (the
// posix backend is a directory per bucket), to free the disk after the
// rounds (bench.removeBuckets); the bucket is never used again.
func (s *s3Server) removeBucket(name string) error {
	return os.RemoveAll(filepath.Join(s.Root, name))
}

// object is one object of a bucket as read back by the harness.
type object struct {
	Key    string
	Size   int64
	SHA256 string
}

// objects lists a bucket and, with deep, reads every object back and hashes it.
func (s *s3Server) objects(ctx context.Context, bucket string, deep bool) (map[string]*object, error) {
	c := s.client(harnessApp, 8)
	out := map[string]*object{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			out[k] = &object{Key: k, Size: aws.ToInt64(o.Size)}
		}
	}
	if !deep {
		return out, nil
	}
	work := make(chan *object)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := hashObject(ctx, c, bucket, o); err != nil {
					errc <- err
					for range work {
					}
					return
				}
			}
		}()
	}
	for _, o := range out {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return out, nil
}

func hashObject(ctx context.Context, c *s3.Client, bucket string, o *object) error {
	r, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
	if err != nil {
		return fmt.Errorf("get %s/%s: %w", bucket, o.Key, err)
	}
	defer r.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		return fmt.Errorf("read %s/%s: %w", bucket, o.Key, err)
	}
	o.Size, o.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// bucketRequests counts one bucket's S3 requests by operation and by key.
type bucketRequests struct {
	ops  map[string]int
	keys map[string]int
}

// requests counts the S3 requests of the access log per bucket, leaving
// out the harness's own (its app ID is in the user agent). The log's first
// fields: owner bucket [time zone] ip requester request-id operation key …
func requests(path string) (map[string]*bucketRequests, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]*bucketRequests{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "app/"+harnessApp) {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 9 || !strings.HasPrefix(fields[2], "[") {
			continue // the "log starts" line
		}
		bucket, op, key := fields[1], strings.TrimPrefix(fields[7], "s3_"), fields[8]
		c := out[bucket]
		if c == nil {
			c = &bucketRequests{ops: map[string]int{}, keys: map[string]int{}}
			out[bucket] = c
		}
		c.ops[op]++
		if key != "-" {
			c.keys[key]++
		}
	}
	return out, sc.Err()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
