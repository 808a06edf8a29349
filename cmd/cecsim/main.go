// Command cecsim serves the CEC simulator (internal/cecsim): CC-FS, CC-CMS and
// OIFDE on one listener, over TLS or plain HTTP, with faults on demand.
//
//	cecsim --self-signed-dir ./tls --admin --fault http500:0.05 --fault 429:0.05@/CCFS/resource/ccfs/downloadRecord
//
// --late-recordings N and --unavailable-files N withhold agent recordings until
// POST /_sim/release-late and POST /_sim/release-unavailable (with --admin);
// --start today-N places the dataset N days before today in --tz.
// --missing-transfer-files N, --colliding-base-names, --multi-agent-calls N and
// --after-midnight-recordings N shape the dataset (see cecsim.Options).
//
// Besides transport faults, --fault injects upstream misbehaviours (text_body,
// json_no_code, riff_short, riff_long, gzip, endless, huge, trickle,
// huge_total, zip_bomb, bad_package, expired_package, unauthorized, param_rejected); -h lists
// every kind and cecsim.FaultKind documents each.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // --tz works on hosts without a zoneinfo database

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

// faultFlags collects repeated --fault values.
type faultFlags []cecsim.Fault

func (f *faultFlags) String() string { return fmt.Sprint(len(*f)) }

func (f *faultFlags) Set(s string) error {
	fault, err := cecsim.ParseFault(s)
	if err != nil {
		return err
	}
	*f = append(*f, fault)
	return nil
}

// faultKindList names every fault kind for the --fault help.
func faultKindList() string {
	kinds := cecsim.FaultKinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// config is the parsed command line.
type config struct {
	listen, tlsCert, tlsKey, selfSignedDir string
	plainHTTP, admin                       bool
	manifestOut, callbackCA, logLevel      string
	opts                                   cecsim.Options
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("cecsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		start, tz, ak, sk string
		faults            faultFlags
	)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8443", "address to listen on")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key (with --tls-cert)")
	fs.StringVar(&c.selfSignedDir, "self-signed-dir", "", "generate (or reuse) a CA and a server certificate for 127.0.0.1 and localhost in `DIR`; clients trust DIR/ca.pem")
	fs.BoolVar(&c.plainHTTP, "plain-http", false, "serve plain HTTP instead of TLS")
	fs.Int64Var(&c.opts.Seed, "seed", 1, "dataset seed")
	fs.IntVar(&c.opts.Calls, "calls", 50, "calls in the dataset")
	fs.IntVar(&c.opts.Days, "days", 1, "days the calls are spread over")
	fs.StringVar(&start, "start", "2026-11-01", "first day of the dataset, `YYYY-MM-DD` or today-N (midnight N days before today) in --tz")
	fs.StringVar(&tz, "tz", "UTC", "tenant time zone (IANA name)")
	fs.StringVar(&ak, "ak", "exampleAK", "developer AK")
	fs.StringVar(&sk, "sk", "", "developer SK (default $CECSIM_SK, else exampleSK)")
	fs.StringVar(&c.opts.TenantID, "tenant-id", "tenant-sim", "OIFDE tenant ID (gettoken appKey)")
	fs.StringVar(&c.opts.APIPassword, "api-password", "", "OIFDE API password (default $CECSIM_API_PASSWORD, else sim-api-password)")
	fs.DurationVar(&c.opts.BillReadyDelay, "bill-ready-delay", 2*time.Second, "delay before a CDR package is ready (negative: at once)")
	fs.DurationVar(&c.opts.TokenTTL, "token-ttl", time.Hour, "OIFDE token lifetime")
	fs.Int64Var(&c.opts.MaxRecordingBytes, "max-recording-bytes", 256<<10, "largest recording")
	fs.IntVar(&c.opts.LateRecordings, "late-recordings", 0, "agent recordings missing from the index and downloads until POST /_sim/release-late")
	fs.IntVar(&c.opts.UnavailableFiles, "unavailable-files", 0, "indexed agent recordings whose download fails (0300012) until POST /_sim/release-unavailable")
	fs.IntVar(&c.opts.MissingTransferFiles, "missing-transfer-files", 0, "transfer records with recordResult N/A and a recordFilePath whose download answers 0300012 for good")
	fs.BoolVar(&c.opts.CollidingBaseNames, "colliding-base-names", false, "name agent recordings 1.wav, 2.wav … per agent and day, so base names repeat")
	fs.IntVar(&c.opts.MultiAgentCalls, "multi-agent-calls", 0, "calls that get a second agent recording by another agent (a ZIP when downloaded by call)")
	fs.IntVar(&c.opts.AfterMidnightRecordings, "after-midnight-recordings", 0, "calls that begin before midnight whose agent recording begins after it")
	fs.Var(&faults, "fault", "inject a fault, `kind[:rate][@path]` (repeatable), e.g. http500:0.05; kinds: "+faultKindList())
	fs.StringVar(&c.manifestOut, "manifest-out", "", "write the manifest (JSON) to `FILE`")
	fs.BoolVar(&c.admin, "admin", false, "serve the unsigned /_sim/ admin endpoints")
	fs.StringVar(&c.callbackCA, "callback-ca", "", "PEM bundle trusted for https callbacks (default: system roots)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	modes := 0
	for _, on := range []bool{c.plainHTTP, c.selfSignedDir != "", c.tlsCert != "" || c.tlsKey != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return nil, errors.New("choose exactly one of --plain-http, --self-signed-dir, or --tls-cert with --tls-key")
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("--tz: %w", err)
	}
	c.opts.Location = loc
	if c.opts.Start, err = parseStart(start, loc, time.Now()); err != nil {
		return nil, fmt.Errorf("--start: %w", err)
	}
	if sk == "" {
		sk = envOr("CECSIM_SK", "exampleSK")
	}
	if c.opts.APIPassword == "" {
		c.opts.APIPassword = envOr("CECSIM_API_PASSWORD", "sim-api-password")
	}
	c.opts.Credentials = map[string]string{ak: sk}
	c.opts.Faults = faults
	c.opts.Admin = c.admin
	if c.opts.Calls <= 0 || c.opts.Days <= 0 {
		return nil, errors.New("--calls and --days must be positive")
	}
	if c.opts.LateRecordings < 0 || c.opts.UnavailableFiles < 0 {
		return nil, errors.New("--late-recordings and --unavailable-files must not be negative")
	}
	if c.opts.MissingTransferFiles < 0 || c.opts.MultiAgentCalls < 0 || c.opts.AfterMidnightRecordings < 0 {
		return nil, errors.New("--missing-transfer-files, --multi-agent-calls and --after-midnight-recordings must not be negative")
	}
	return c, nil
}

// parseStart reads --start: YYYY-MM-DD, or today-N for midnight N days before
// the day of now in loc.
func parseStart(s string, loc *time.Location, now time.Time) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "today-"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || strconv.Itoa(n) != rest {
			return time.Time{}, fmt.Errorf("want today-N with N a non-negative integer, got %q", s)
		}
		y, m, d := now.In(loc).Date()
		return time.Date(y, m, d-n, 0, 0, 0, 0, loc), nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DD or today-N: %w", err)
	}
	return t, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newLogger(w io.Writer, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// run serves until ctx is cancelled. ready, if set, is told the listening address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "cecsim:", err)
		return exitUsage
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "cecsim:", err)
		return exitUsage
	}
	defer log.Sync() //nolint:errcheck // stderr
	if err := serve(ctx, cfg, log, ready); err != nil {
		log.Error("cecsim stopped", zap.Error(err))
		return exitFailed
	}
	return exitOK
}

func serve(ctx context.Context, cfg *config, log *zap.Logger, ready func(net.Addr)) error {
	cfg.opts.Logger = log
	if cfg.callbackCA != "" {
		client, err := callbackClient(cfg.callbackCA)
		if err != nil {
			return err
		}
		cfg.opts.CallbackClient = client
	}
	sim, err := cecsim.New(cfg.opts)
	if err != nil {
		return err
	}
	defer sim.Close()
	if cfg.manifestOut != "" {
		if err := writeManifest(cfg.manifestOut, sim.Manifest()); err != nil {
			return err
		}
	}

	var tlsConfig *tls.Config
	switch {
	case cfg.selfSignedDir != "":
		certFile, keyFile, err := ensureSelfSigned(cfg.selfSignedDir, time.Now())
		if err != nil {
			return err
		}
		cfg.tlsCert, cfg.tlsKey = certFile, keyFile
		log.Info("self-signed certificate", zap.String("ca", filepath.Join(cfg.selfSignedDir, caFile)))
		fallthrough
	case cfg.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	// HTTP/1.1 only: the reset fault hijacks the connection.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Protocols:         &protocols,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	scheme := "https"
	if tlsConfig == nil {
		scheme = "http"
	}
	log.Info("cecsim listening", zap.String("url", scheme+"://"+ln.Addr().String()),
		zap.Int("faults", len(cfg.opts.Faults)), zap.Bool("admin", cfg.admin))
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func callbackClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--callback-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--callback-ca: no certificate in %s", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}, nil
}

// writeManifest writes the manifest atomically.
func writeManifest(path string, m *cecsim.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// writeFileAtomic writes to a temporary file in the same directory, syncs it and renames it.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
