// Package s3test runs a real S3 server for tests and benchmarks: versitygw
// (pinned in tools/versitygw/go.mod) with its posix backend in a temporary
// directory, a versioning directory so Object Lock works, on a free port of
// 127.0.0.1.
//
// The binary is built once per tools/versitygw/go.sum into the user cache
// directory (set CEC_VERSITYGW_BIN to use a prebuilt one). When it cannot be
// built or started, Start fails the test if CI=true and skips it otherwise,
// so CI never passes on a silently skipped storage test.
package s3test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the versitygw release the harness runs; tools/versitygw/go.mod
// pins the same one.
const Version = "v1.8.0"

const pkgPath = "github.com/versity/versitygw/cmd/versitygw"

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Dir       string // backend root; buckets are its subdirectories
	CAFile    string // with StartTLS: PEM of the CA that signed the server certificate

	cmd     *exec.Cmd
	logPath string
	done    chan error
}

// Start builds (once) and starts versitygw, and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return startT(t, false)
}

// StartTLS is Start with HTTPS: a throw-away CA (Server.CAFile) signs a
// certificate for 127.0.0.1.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return startT(t, true)
}

func startT(t testing.TB, withTLS bool) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		unavailable(t, "build versitygw: %v", err)
	}
	dir := t.TempDir()
	var tlsFiles *tlsFiles
	if withTLS {
		tlsFiles, err = writeTLSFiles(dir)
		if err != nil {
			t.Fatalf("s3test: tls files: %v", err)
		}
	}
	s, err := start(bin, dir, tlsFiles)
	if err != nil {
		unavailable(t, "start versitygw: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("s3test: stop versitygw: %v", err)
		}
		if t.Failed() {
			t.Logf("versitygw log (tail):\n%s", s.logTail(4096))
		}
	})
	return s
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("s3test: "+format+" (CI=true: storage tests must run)", args...)
	}
	t.Skipf("s3test: "+format+" (skipping outside CI)", args...)
}

func start(bin, dir string, tf *tlsFiles) (*Server, error) {
	var lastErr error
	for range 3 { // the free port may be taken between probe and listen
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		scheme := "http"
		if tf != nil {
			scheme = "https"
		}
		s := &Server{
			Endpoint:  fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
			Region:    "us-east-1",
			AccessKey: "cectest" + randHex(4),
			SecretKey: randHex(16),
			Dir:       filepath.Join(dir, "root"),
			logPath:   filepath.Join(dir, "versitygw.log"),
			done:      make(chan error, 1),
		}
		versions := filepath.Join(dir, "versions")
		for _, d := range []string{s.Dir, versions} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		logf, err := os.Create(s.logPath)
		if err != nil {
			return nil, err
		}
		args := []string{"--port", fmt.Sprintf("127.0.0.1:%d", port), "--region", s.Region, "--quiet"}
		if tf != nil {
			args = append(args, "--cert", tf.cert, "--key", tf.key)
			s.CAFile = tf.ca
		}
		args = append(args, "posix", "--versioning-dir", versions, s.Dir)
		s.cmd = exec.Command(bin, args...)
		// Credentials go through the environment, not argv (visible in /proc).
		s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
		if err := s.cmd.Start(); err != nil {
			logf.Close()
			return nil, err
		}
		go func() { s.done <- s.cmd.Wait(); logf.Close() }()
		if err := s.waitReady(20 * time.Second); err != nil {
			_ = s.Stop()
			lastErr = fmt.Errorf("%w; log: %s", err, s.logTail(1024))
			continue
		}
		return s, nil
	}
	return nil, lastErr
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client, err := s.httpClient()
	if err != nil {
		return err
	}
	client.Timeout = time.Second
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil // any HTTP answer (403 unsigned) means it serves
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("versitygw not ready in time")
}

// Stop terminates the server and waits for it.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
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

func (s *Server) logTail(n int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// Client returns an S3 client for the server, for setting up and inspecting
// state behind the sink's back.
func (s *Server) Client() *s3.Client {
	hc := awshttp.NewBuildableClient()
	if s.CAFile != "" {
		pool, err := s.caPool()
		if err != nil {
			panic(err) // written by StartTLS a moment ago
		}
		hc = hc.WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		})
	}
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   hc,
		// Leave checksums to the caller: versitygw handles the SDK's trailing
		// checksums, but tests want to see exactly what they send.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// NewBucket creates a bucket with a unique name. With objectLock, the bucket
// has Object Lock enabled (and so versioning).
func (s *Server) NewBucket(t testing.TB, objectLock bool) string {
	t.Helper()
	name := "cec-" + randHex(6)
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if objectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, in); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	return name
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary returns the path of a versitygw binary, building it on first use.
// Builds are cached under the user cache directory, keyed by the tools
// module's go.sum, and serialised across test processes with a file lock.
func Binary() (string, error) {
	buildOnce.Do(func() { buildBin, buildErr = binary() })
	return buildBin, buildErr
}

func binary() (string, error) {
	if p := os.Getenv("CEC_VERSITYGW_BIN"); p != "" {
		return p, nil
	}
	toolsDir, err := ToolsDir()
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(toolsDir, "go.sum"))
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(toolsDir, "go.mod"))
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(append(mod, sum...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "cec-archiver", "versitygw-"+Version+"-"+hex.EncodeToString(h[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	cmd := exec.Command(goBin, "build", "-C", toolsDir, "-o", tmp, pkgPath)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkgPath, err, out.String())
	}
	return bin, os.Rename(tmp, bin)
}

// ToolsDir finds tools/versitygw by walking up from the working directory
// (go test runs in the package directory) to the main module's go.mod.
func ToolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isMainModule(filepath.Join(dir, "go.mod")) {
			return filepath.Join(dir, "tools", "versitygw"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("main module go.mod not found above the working directory")
		}
		dir = parent
	}
}

func isMainModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "module ")) == "github.com/cec-archiver/cec-archiver"
		}
	}
	return false
}
