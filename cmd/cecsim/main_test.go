package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

func TestParseFlags(t *testing.T) {
	t.Setenv("CECSIM_SK", "fromEnv")
	c, err := parseFlags([]string{"--plain-http", "--tz", "Asia/Shanghai", "--start", "2026-12-01", "--ak", "myAK",
		"--fault", "http503:0.1", "--fault", "slow"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Credentials["myAK"] != "fromEnv" || len(c.opts.Faults) != 2 || c.opts.Start.Format(time.RFC3339) != "2026-12-01T00:00:00+08:00" {
		t.Fatalf("config %+v", c.opts)
	}
	if c.opts.LateRecordings != 0 || c.opts.UnavailableFiles != 0 {
		t.Fatalf("late %d, unavailable %d by default", c.opts.LateRecordings, c.opts.UnavailableFiles)
	}
	t.Run("delayed recordings", func(t *testing.T) {
		c, err := parseFlags([]string{"--plain-http", "--late-recordings", "3", "--unavailable-files", "2"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.opts.LateRecordings != 3 || c.opts.UnavailableFiles != 2 {
			t.Fatalf("late %d, unavailable %d", c.opts.LateRecordings, c.opts.UnavailableFiles)
		}
	})
	t.Run("dataset shapes", func(t *testing.T) {
		if c.opts.MissingTransferFiles != 0 || c.opts.CollidingBaseNames || c.opts.MultiAgentCalls != 0 || c.opts.AfterMidnightRecordings != 0 {
			t.Fatalf("shapes on by default: %+v", c.opts)
		}
		c, err := parseFlags([]string{"--plain-http", "--missing-transfer-files", "2", "--colliding-base-names",
			"--multi-agent-calls", "3", "--after-midnight-recordings", "4", "--fault", "trickle", "--fault", "zip_bomb@" + cecwire.PathDownloadBillFile}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.opts.MissingTransferFiles != 2 || !c.opts.CollidingBaseNames || c.opts.MultiAgentCalls != 3 || c.opts.AfterMidnightRecordings != 4 ||
			len(c.opts.Faults) != 2 || c.opts.Faults[1].Kind != cecsim.FaultZipBomb {
			t.Fatalf("config %+v", c.opts)
		}
	})
	t.Run("start today-N", func(t *testing.T) {
		before := time.Now()
		c, err := parseFlags([]string{"--plain-http", "--tz", "Asia/Shanghai", "--start", "today-2"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		// Midnight in --tz, 2 days before the day of a clock read during parseFlags.
		st := c.opts.Start
		if h, m, sec := st.Clock(); h != 0 || m != 0 || sec != 0 || st.Location().String() != "Asia/Shanghai" {
			t.Fatalf("start %s is not midnight in Asia/Shanghai", st)
		}
		if d := st.AddDate(0, 0, 3); !d.After(before) || st.AddDate(0, 0, 2).After(after) {
			t.Fatalf("start %s is not 2 days before today (%s)", st, before)
		}
	})
	for _, args := range [][]string{
		{},
		{"--plain-http", "--self-signed-dir", "x"},
		{"--tls-cert", "a"},
		{"--plain-http", "--tz", "Mars/Base"},
		{"--plain-http", "--start", "2026/12/01"},
		{"--plain-http", "--fault", "bogus"},
		{"--plain-http", "--calls", "0"},
		{"--plain-http", "extra"},
		{"--plain-http", "--late-recordings", "-1"},
		{"--plain-http", "--unavailable-files", "-1"},
		{"--plain-http", "--missing-transfer-files", "-1"},
		{"--plain-http", "--multi-agent-calls", "-1"},
		{"--plain-http", "--after-midnight-recordings", "-1"},
		{"--plain-http", "--fault", "zip_bomb@" + cecwire.PathDownloadRecord},
		{"--plain-http", "--start", "today-x"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
}

func TestParseStart(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, time.March, 10, 20, 0, 0, 0, time.UTC) // 04:00 on the 11th in Shanghai
	cases := []struct {
		in   string
		loc  *time.Location
		want string // RFC 3339, "" for an error
	}{
		{"2026-12-01", shanghai, "2026-12-01T00:00:00+08:00"},
		{"today-0", time.UTC, "2026-03-10T00:00:00Z"},
		{"today-0", shanghai, "2026-03-11T00:00:00+08:00"},
		{"today-2", shanghai, "2026-03-09T00:00:00+08:00"},
		{"today-11", shanghai, "2026-02-28T00:00:00+08:00"},
		{"today-3", ny, "2026-03-07T00:00:00-05:00"}, // across the DST change of 8 March
		{"today", time.UTC, ""},
		{"today-", time.UTC, ""},
		{"today--1", time.UTC, ""},
		{"today-+1", time.UTC, ""},
		{"today-01", time.UTC, ""},
		{"today-1d", time.UTC, ""},
		{"2026/12/01", time.UTC, ""},
	}
	for _, tc := range cases {
		t.Run(tc.in+"@"+tc.loc.String(), func(t *testing.T) {
			got, err := parseStart(tc.in, tc.loc, now)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("parsed as %s", got)
				}
				return
			}
			if err != nil || got.Format(time.RFC3339) != tc.want {
				t.Fatalf("got %s, %v; want %s", got.Format(time.RFC3339), err, tc.want)
			}
		})
	}
}

// startRun runs the command and returns its address and a stop function returning the exit code.
func startRun(t *testing.T, args ...string) (net.Addr, func() int, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan int, 1)
	var logs syncBuffer
	go func() { done <- run(ctx, args, &logs, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		return a, func() int { cancel(); return <-done }, &logs
	case code := <-done:
		cancel()
		t.Fatalf("run exited with %d: %s", code, logs.String())
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("run did not start")
	}
	return nil, nil, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func getToken(t *testing.T, client *http.Client, base string) cecwire.GetTokenResponse {
	t.Helper()
	body, _ := json.Marshal(cecwire.GetTokenRequest{AppKey: "tenant-sim", AppSecret: "pw"})
	resp, err := client.Post(base+cecwire.PathGetToken, cecwire.ContentTypeJSON, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr cecwire.GetTokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestRun_SelfSigned(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "manifest.json")
	tlsDir := filepath.Join(dir, "tls")
	addr, stop, logs := startRun(t, "--listen", "127.0.0.1:0", "--self-signed-dir", tlsDir, "--calls", "5",
		"--api-password", "pw", "--manifest-out", manifest, "--admin", "--fault", "http503@"+cecwire.PathQueryRecordHistory)
	caPEM, err := os.ReadFile(filepath.Join(tlsDir, caFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	port := addr.(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.1", "localhost"} {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		base := "https://" + net.JoinHostPort(host, strconv.Itoa(port))
		if tr := getToken(t, client, base); tr.ErrorCode != 0 || tr.AuthToken == "" {
			t.Fatalf("%s: gettoken %+v", host, tr)
		}
		resp, err := client.Get(base + "/_sim/stats")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: admin: %v", host, err)
		}
		resp.Body.Close()
		// Signed interfaces refuse unsigned requests.
		resp, err = client.Post(base+cecwire.PathDownloadRecordFile, cecwire.ContentTypeJSON, strings.NewReader("{}"))
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: unsigned download: %v %v", host, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	var m cecsim.Manifest
	b, err := os.ReadFile(manifest)
	if err != nil || json.Unmarshal(b, &m) != nil || len(m.Calls) != 5 {
		t.Fatalf("manifest: %v %.100s", err, b)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	if strings.Contains(logs.String(), "sim-api-password") || strings.Contains(logs.String(), `"pw"`) {
		t.Fatal("a secret in the logs")
	}
	// A second start reuses the CA.
	addr2, stop2, _ := startRun(t, "--listen", "127.0.0.1:0", "--self-signed-dir", tlsDir, "--calls", "1")
	caPEM2, _ := os.ReadFile(filepath.Join(tlsDir, caFile))
	if !bytes.Equal(caPEM, caPEM2) || addr2 == nil {
		t.Fatal("the CA changed on restart")
	}
	stop2()
}

func TestRun_PlainHTTP(t *testing.T) {
	addr, stop, _ := startRun(t, "--listen", "127.0.0.1:0", "--plain-http", "--calls", "20", "--api-password", "pw",
		"--admin", "--late-recordings", "2", "--unavailable-files", "1")
	base := "http://" + addr.String()
	if tr := getToken(t, http.DefaultClient, base); tr.ErrorCode != 0 {
		t.Fatalf("gettoken %+v", tr)
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/_sim/release-late", 2},
		{"/_sim/release-unavailable", 1},
	} {
		resp, err := http.Post(base+tc.path, cecwire.ContentTypeJSON, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `{"released":` + strconv.Itoa(tc.want) + `}`; resp.StatusCode != http.StatusOK || string(b) != want {
			t.Fatalf("POST %s: %d %s, want %s", tc.path, resp.StatusCode, b, want)
		}
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if code := run(context.Background(), []string{"--plain-http", "--listen", "256.0.0.1:1"}, io.Discard, nil); code != exitFailed {
		t.Fatalf("bad listen address: exit %d", code)
	}
	if code := run(context.Background(), []string{"--bogus"}, io.Discard, nil); code != exitUsage {
		t.Fatalf("bad flag: exit %d", code)
	}
}
