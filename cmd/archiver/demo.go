package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
)

// faultFlags collects repeated --fault flags.
type faultFlags []cecsim.Fault

func (f *faultFlags) String() string { return fmt.Sprint(*f) }

func (f *faultFlags) Set(s string) error {
	fault, err := cecsim.ParseFault(s)
	if err != nil {
		return err
	}
	*f = append(*f, fault)
	return nil
}

// cmdDemo runs the archiver end to end on embedded defaults: an in-process CEC
// simulator over TLS with a private CA, the real client, and a directory sink.
// It checks every archived recording against the simulator's ground truth.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("dir", "demo-archive", "directory the recordings are archived to")
	calls := fs.Int("calls", 60, "calls in the simulated dataset")
	days := fs.Int("days", 1, "days the calls are spread over")
	seed := fs.Int64("seed", 1, "dataset seed")
	conc := fs.Int("concurrency", 4, "parallel recording downloads")
	level := fs.String("log-level", "warn", "log level (debug, info, warn, error)")
	var faults faultFlags
	fs.Var(&faults, "fault", "simulator fault kind[:rate][@path], repeatable (e.g. http500:0.05)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "archiver demo: --log-level: %v\n", err)
		return exitConfig
	}
	logCfg := zap.NewDevelopmentConfig()
	logCfg.Level = zap.NewAtomicLevelAt(lvl)
	logCfg.OutputPaths = []string{"stderr"}
	log, err := logCfg.Build()
	if err != nil {
		fmt.Fprintf(stderr, "archiver demo: %v\n", err)
		return exitConfig
	}
	defer log.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, demoOptions{
		Dir: *out, Calls: *calls, Days: *days, Seed: *seed, Concurrency: *conc, Faults: faults,
	}, stdout, log); err != nil {
		fmt.Fprintf(stderr, "archiver demo: %v\n", err)
		return exitFailed
	}
	return exitOK
}

type demoOptions struct {
	Dir         string
	Calls, Days int
	Seed        int64
	Concurrency int
	Faults      []cecsim.Fault
}

func demo(ctx context.Context, o demoOptions, stdout io.Writer, log *zap.Logger) error {
	const ak, sk, tenant, apiPassword = "demoAK", "demo-secret-key", "tenant-demo", "demo-api-password"
	loc := time.UTC
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, loc)

	tmp, err := os.MkdirTemp("", "archiver-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The simulator, over TLS with a private CA: the way real CEC servers on ip:port are reached.
	sim, err := cecsim.New(cecsim.Options{
		Seed: o.Seed, Calls: o.Calls, Days: o.Days, Start: start, Location: loc,
		Credentials: map[string]string{ak: sk}, TenantID: tenant, APIPassword: apiPassword,
		BillReadyDelay: 500 * time.Millisecond, Faults: o.Faults, Logger: log.Named("cecsim"),
	})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	defer sim.Close()
	caFile := filepath.Join(tmp, "ca.pem")
	serverTLS, err := demoTLS(caFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log.Named("cecsim.http"))}
	go srv.Serve(ln)
	defer srv.Close()
	base := "https://" + ln.Addr().String()
	fmt.Fprintf(stdout, "CEC simulator on %s (private CA %s): %d calls over %d day(s)\n", base, caFile, o.Calls, o.Days)

	// CC-FS posts a signed callback when a package is ready: the archiver's
	// receiver verifies it and wakes up the waiting cdr job.
	callbacks := jobs.NewCallbacks(func(k string) (string, bool) { return sk, k == ak }, log)
	var verified atomic.Int64
	cbLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cbSrv := &http.Server{Handler: countAccepted(callbacks, &verified), ReadHeaderTimeout: 10 * time.Second}
	go cbSrv.Serve(cbLn)
	defer cbSrv.Close()

	client, err := cecclient.New(cecclient.Options{
		FSURL: base, CMSURL: base, OIFDEURL: base, AK: ak, SK: sk,
		TenantID: tenant, APIPassword: apiPassword, CAFile: caFile, RateLimit: 200, Burst: 20,
		BaseBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, StallTimeout: 10 * time.Second,
		Logger: log.Named("cecclient"),
	})
	if err != nil {
		return err
	}
	out, err := dir.New(dir.Options{Root: o.Dir, Logger: log})
	if err != nil {
		return err
	}
	defer out.Close()
	keys, err := sink.NewKeyBuilder("", sink.DefaultKeyTemplate)
	if err != nil {
		return err
	}
	store, err := sqlite.Open(filepath.Join(tmp, "state.db"), sqlite.Options{Logger: log.Named("checkpoint")})
	if err != nil {
		return err
	}
	defer store.Close()
	a := &jobs.Archiver{
		Client: client, Sink: out, Store: store, Keys: keys,
		Settings: jobs.Settings{
			Tenant: tenant, Location: loc, Window: 24 * time.Hour,
			ReadyTimeout: time.Minute, PollInterval: 200 * time.Millisecond,
			CallbackURL: "http://" + cbLn.Addr().String() + "/cdr-callback",
			Concurrency: o.Concurrency, SpoolDir: tmp, MaxPackageBytes: 256 << 20, Limits: cdr.DefaultLimits(),
		},
		Callbacks: callbacks,
		Log:       log.Named("jobs"),
	}

	end := start.AddDate(0, 0, o.Days)
	rep, err := a.Backfill(ctx, start, end, jobs.BackfillOptions{})
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	callsSeen := 0
	for _, w := range a.Plan(start, end) {
		p, ok, err := store.LastDonePackage(ctx, w.Begin, w.End)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(stdout, "%s: no package\n", w.Begin.Format("2006-01-02"))
			continue
		}
		fmt.Fprintf(stdout, "%s: package %s, %d calls\n", w.Begin.Format("2006-01-02"), p.BillFileName, p.Calls)
		callsSeen += p.Calls
	}
	fmt.Fprintf(stdout, "signed CC-FS callbacks received and verified: %d\n", verified.Load())
	items, err := store.Items(ctx)
	if err != nil {
		return err
	}
	return demoVerify(stdout, sim.Manifest(), rep, items, callsSeen, o.Dir)
}

// countAccepted counts the requests h answers with 200: for the callback
// receiver, callbacks whose signature it verified.
func countAccepted(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status == http.StatusOK {
			n.Add(1)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// demoVerify compares what the state says was archived with the simulator's
// ground truth.
func demoVerify(w io.Writer, m *cecsim.Manifest, rep *jobs.Report, items []checkpoint.Item, calls int, root string) error {
	got := map[string]checkpoint.Item{}
	gotAbsent := map[string]bool{}
	var failed []string
	var bytes int64
	cdrPackages := rep.Packages
	for _, it := range items {
		switch it.State {
		case checkpoint.StateDone:
			got[it.Kind+"\x00"+it.UpstreamID] = it
			bytes += it.Size
		case checkpoint.StateAbsent:
			gotAbsent[it.Kind+"\x00"+it.UpstreamID] = true
		default:
			failed = append(failed, fmt.Sprintf("%s %s (%s): %s", it.Kind, it.UpstreamID, it.State, it.LastError))
		}
	}
	var unaccounted []string
	for _, a := range m.Absent {
		if !gotAbsent[a.Kind+"\x00"+a.ID] {
			unaccounted = append(unaccounted, a.Kind+" "+a.ID+" ("+a.Reason+")")
		}
	}
	var missing, mismatched []string
	perKind := map[string]int{}
	for _, r := range m.Recordings {
		it, ok := got[r.Kind+"\x00"+r.ID]
		switch {
		case !ok:
			missing = append(missing, r.Kind+" "+r.ID)
		case it.SHA256 != r.SHA256 || it.Size != r.Size:
			mismatched = append(mismatched, fmt.Sprintf("%s %s: got %d bytes sha256 %s, want %d bytes %s", r.Kind, r.ID, it.Size, it.SHA256, r.Size, r.SHA256))
		default:
			perKind[r.Kind]++
		}
	}
	fmt.Fprintf(w, "archived to %s: %d recordings, %d bytes (agent %d, transfer %d, ivr %d), %d CDR packages\n",
		root, perKind[checkpoint.KindAgent]+perKind[checkpoint.KindTransfer]+perKind[checkpoint.KindIVR], bytes,
		perKind[checkpoint.KindAgent], perKind[checkpoint.KindTransfer], perKind[checkpoint.KindIVR], cdrPackages)
	fmt.Fprintf(w, "calls in CDR packages: %d of %d in the simulator; records without a recording: %d (simulator: %d)\n",
		calls, len(m.Calls), len(m.Absent)-len(unaccounted), len(m.Absent))
	var errs []string
	if calls != len(m.Calls) {
		errs = append(errs, fmt.Sprintf("%d calls enumerated, the simulator has %d", calls, len(m.Calls)))
	}
	for _, e := range rep.Errors {
		errs = append(errs, "window: "+e)
	}
	for _, list := range []struct {
		what  string
		items []string
	}{{"failed", failed}, {"missing", missing}, {"mismatched", mismatched}, {"absent records not accounted for", unaccounted}} {
		if len(list.items) > 0 {
			errs = append(errs, fmt.Sprintf("%d %s: %s", len(list.items), list.what, strings.Join(first(list.items, 5), "; ")))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	fmt.Fprintf(w, "OK: all %d recordings match the simulator's manifest (size and SHA-256)\n", len(m.Recordings))
	return nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// demoTLS makes a private CA and a server certificate for 127.0.0.1, writes
// the CA to caFile and returns the server's TLS configuration.
func demoTLS(caFile string) (*tls.Config, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cec-archiver demo CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cecsim"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}, nil
}
