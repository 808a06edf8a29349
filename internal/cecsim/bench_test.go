//go:build unix

package cecsim

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// serveHelperEnv makes the test binary (TestMain) a server for BenchmarkServe:
// "cecsim <calls> <size>" serves the benchmark dataset, "static <dir>" serves
// dir with http.FileServer.
const serveHelperEnv = "CECSIM_SERVE_HELPER"

// serveProfileEnv names a directory: each server process of BenchmarkServe
// writes its CPU profile there (cecsim.pprof, static.pprof), for
// go tool pprof -top <test binary> <file>.
const serveProfileEnv = "CECSIM_BENCH_PROFILE_DIR"

// benchOptions is the dataset of BenchmarkServe: calls calls whose recordings
// all have size bytes.
func benchOptions(calls int, size int64) Options {
	return Options{Seed: 11, Calls: calls, MinRecordingBytes: size, MaxRecordingBytes: size, Now: testNow}
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // RUSAGE_SELF with a valid pointer cannot fail
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMain runs the test binary as BenchmarkServe's server process when
// serveHelperEnv is set (see runServeHelper), else the tests.
func TestMain(m *testing.M) {
	if spec := strings.Fields(os.Getenv(serveHelperEnv)); len(spec) > 0 {
		if err := runServeHelper(spec); err != nil {
			fmt.Fprintln(os.Stderr, "serve helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runServeHelper is BenchmarkServe's server process. It prints
// "addr=host:port", serves until its stdin closes, and answers GET /_rusage
// with its CPU time in nanoseconds.
func runServeHelper(spec []string) error {
	var h http.Handler
	switch {
	case spec[0] == "cecsim" && len(spec) == 3:
		calls, err1 := strconv.Atoi(spec[1])
		size, err2 := strconv.ParseInt(spec[2], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bad spec %q", spec)
		}
		s, err := New(benchOptions(calls, size))
		if err != nil {
			return err
		}
		defer s.Close()
		h = s
	case spec[0] == "static" && len(spec) == 2:
		h = http.FileServer(http.Dir(spec[1]))
	default:
		return fmt.Errorf("bad spec %q", spec)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_rusage" {
			fmt.Fprint(w, int64(processCPU()))
			return
		}
		h.ServeHTTP(w, r)
	})}
	if dir := os.Getenv(serveProfileEnv); dir != "" {
		f, err := os.Create(filepath.Join(dir, spec[0]+".pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("addr=%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// serveHelper is a running server process (runServeHelper).
type serveHelper struct {
	base string // http://host:port
	http *http.Client
}

func startServeHelper(b *testing.B, spec string) *serveHelper {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), serveHelperEnv+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "addr="); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return &serveHelper{
				base: "http://" + addr,
				http: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}},
			}
		}
	}
	b.Fatalf("server %q did not start", spec)
	return nil
}

// cpu is the server process's CPU time.
func (h *serveHelper) cpu(b *testing.B) time.Duration {
	resp, err := h.http.Get(h.base + "/_rusage")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	ns, err := strconv.ParseInt(string(body), 10, 64)
	if err != nil {
		b.Fatalf("rusage %q: %v", body, err)
	}
	return time.Duration(ns)
}

// benchRequest is one download of BenchmarkServe, built before the timed loop.
type benchRequest struct {
	method, path string
	header       http.Header
	body         []byte
	size         int64
}

// fetch downloads every request once, reading with a 256 KiB buffer, and
// returns the bytes received.
func (h *serveHelper) fetch(b *testing.B, reqs []benchRequest, buf []byte) int64 {
	var total int64
	for _, rq := range reqs {
		req, err := http.NewRequest(rq.method, h.base+rq.path, bytes.NewReader(rq.body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header = rq.header.Clone()
		req.ContentLength = int64(len(rq.body))
		resp, err := h.http.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for {
			m, err := resp.Body.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != rq.size {
			b.Fatalf("%s: HTTP %d, %d bytes, want %d", rq.path, resp.StatusCode, n, rq.size)
		}
		total += n
	}
	return total
}

// BenchmarkServe downloads every recording of a dataset (all of one size)
// over loopback HTTP, once from cecsim and once from http.FileServer serving
// the same bytes from files written beforehand, and reports
//
//   - sim-cpu-s/GB: CPU seconds the cecsim server process used per GB served;
//   - static-cpu-s/GB: the same for the file server;
//   - x-cpu-vs-static: the ratio of the two (the target is at most 2);
//   - client-sim-cpu-s/GB, client-static-cpu-s/GB: the CPU the downloading
//     benchmark process used per GB, for each server.
//
// Each server is a process of its own (this test binary, re-executed as
// runServeHelper) that reports its own getrusage CPU time before and
// after the downloads, so the server figures contain no client work. The
// cecsim requests are signed as the archiver signs them (auth-v2 over
// content-length, content-type and host), ahead of the timed loop; the
// file server gets plain GETs.
//
// Run: go test -run '^$' -bench Serve -benchtime 3x ./internal/cecsim/
func BenchmarkServe(b *testing.B) {
	for _, tc := range []struct {
		name  string
		calls int
		size  int64
	}{
		{"1MiB", 40, 1 << 20},
		{"8KiB", 1500, 8 << 10},
	} {
		b.Run(tc.name, func(b *testing.B) { benchServe(b, tc.calls, tc.size) })
	}
}

func benchServe(b *testing.B, calls int, size int64) {
	s, err := New(benchOptions(calls, size))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dir := b.TempDir()
	var static []benchRequest
	for i, r := range s.ds.recs {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)+".wav"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, r.open()); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		static = append(static, benchRequest{method: http.MethodGet, path: "/" + strconv.Itoa(i) + ".wav", header: http.Header{}, size: r.size})
	}
	sim := startServeHelper(b, fmt.Sprintf("cecsim %d %d", calls, size))
	files := startServeHelper(b, "static "+dir)

	host := strings.TrimPrefix(sim.base, "http://")
	ts := testNow().UTC().Format(cecwire.SignTimeLayout)
	var signed []benchRequest
	for _, r := range s.ds.recs {
		p := cecwire.PathDownloadRecordFile
		if r.kind != KindAgent {
			p = cecwire.PathDownloadOiapRecord
		}
		body, err := json.Marshal(cecwire.NewEnvelope(cecwire.FileNameBody{FileName: r.fileName}))
		if err != nil {
			b.Fatal(err)
		}
		h := http.Header{}
		h.Set("Content-Type", cecwire.ContentTypeJSON)
		h.Set("Authorization", testSign(http.MethodPost, p, "", map[string]string{
			"content-length": strconv.Itoa(len(body)), "content-type": cecwire.ContentTypeJSON, "host": host,
		}, body, testAK, testSK, ts))
		signed = append(signed, benchRequest{method: http.MethodPost, path: p, header: h, body: body, size: r.size})
	}

	// The same bytes from both, before measuring anything.
	buf := make([]byte, 256<<10)
	sim.fetch(b, signed[:1], buf)
	files.fetch(b, static[:1], buf)
	want := s.manifest.Recordings[0].SHA256
	got, err := os.ReadFile(filepath.Join(dir, "0.wav"))
	if err != nil || fmt.Sprintf("%x", sha256.Sum256(got)) != want {
		b.Fatalf("static file 0 is not manifest recording 0 (%v)", err)
	}

	var simBytes, staticBytes int64
	var simCPU, staticCPU, simClient, staticClient time.Duration
	b.ResetTimer()
	for range b.N {
		c0, s0 := processCPU(), sim.cpu(b)
		simBytes += sim.fetch(b, signed, buf)
		c1, s1 := processCPU(), sim.cpu(b)
		f0 := files.cpu(b)
		staticBytes += files.fetch(b, static, buf)
		c2, f1 := processCPU(), files.cpu(b)
		simCPU += s1 - s0
		staticCPU += f1 - f0
		simClient += c1 - c0
		staticClient += c2 - c1
	}
	b.StopTimer()
	perGB := func(cpu time.Duration, n int64) float64 { return cpu.Seconds() / (float64(n) / 1e9) }
	b.ReportMetric(perGB(simCPU, simBytes), "sim-cpu-s/GB")
	b.ReportMetric(perGB(staticCPU, staticBytes), "static-cpu-s/GB")
	b.ReportMetric(perGB(simCPU, simBytes)/perGB(staticCPU, staticBytes), "x-cpu-vs-static")
	b.ReportMetric(perGB(simClient, simBytes), "client-sim-cpu-s/GB")
	b.ReportMetric(perGB(staticClient, staticBytes), "client-static-cpu-s/GB")
	b.ReportMetric(float64(len(signed)), "recordings")
}

// BenchmarkNew builds a dataset of about 20,000 recordings (New: the
// dataset, then the SHA-256 and CRC-32 of every recording), and reports
//
//   - recordings, GB: the dataset's size;
//   - new-cpu-s, new-wall-s: the CPU (all threads) and wall time of New;
//   - hash-cpu-s: the CPU time of SHA-256 and CRC-32 over as many bytes
//     from memory, on one thread, measured in the same run;
//   - x-cpu-vs-hashing: new-cpu-s over hash-cpu-s, what New costs beyond
//     hashing the bytes it serves (at least 1: the digests are needed).
//
// Run: go test -run '^$' -bench New -benchtime 1x ./internal/cecsim/
func BenchmarkNew(b *testing.B) {
	for _, tc := range []struct {
		name     string
		min, max int64
	}{
		{"default-sizes", 0, 0}, // 4 KiB to 256 KiB
		{"8KiB", 8 << 10, 8 << 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := Options{Seed: 11, Calls: 11_100, MinRecordingBytes: tc.min, MaxRecordingBytes: tc.max, Now: testNow}
			var cpu, wall time.Duration
			var recs int
			var total int64
			for range b.N {
				c0, t0 := processCPU(), time.Now()
				s, err := New(o)
				cpu, wall = cpu+processCPU()-c0, wall+time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				recs, total = len(s.ds.recs), 0
				for _, r := range s.ds.recs {
					total += r.size
				}
				s.Close()
			}
			buf := bytes.Repeat([]byte{0xd5}, 256<<10)
			c0 := processCPU()
			for range b.N {
				sh, cr := sha256.New(), crc32.NewIEEE()
				for left := total; left > 0; left -= int64(len(buf)) {
					p := buf[:min(left, int64(len(buf)))]
					sh.Write(p)
					cr.Write(p)
				}
				_, _ = sh.Sum(nil), cr.Sum32()
			}
			hash := processCPU() - c0
			n := float64(b.N)
			b.ReportMetric(float64(recs), "recordings")
			b.ReportMetric(float64(total)/1e9, "GB")
			b.ReportMetric(cpu.Seconds()/n, "new-cpu-s")
			b.ReportMetric(wall.Seconds()/n, "new-wall-s")
			b.ReportMetric(hash.Seconds()/n, "hash-cpu-s")
			b.ReportMetric(cpu.Seconds()/hash.Seconds(), "x-cpu-vs-hashing")
		})
	}
}
