// Command benchrun is the throughput benchmark of issue 10: on one dataset
// and one versitygw server it runs, round after round, three ways of moving
// the same recordings into S3, each into a fresh bucket:
//
//	A  the archiver: the simulator (internal/cecsim, in this process, plain
//	   HTTP) → the built `archiver once` → S3
//	B  a bare Go loop: GET from a static file server holding the same bytes
//	   → PutObject, no checkpoint, no checksum (benchrun loop, a child process)
//	C  rclone copy of that directory → S3
//
// and reports per variant the medians of wall time, MB/s, objects/s,
// CPU-seconds of the measured process (wait4 rusage: the archiver, the loop,
// rclone; never the simulator or versitygw), CPU-seconds per GB, peak RSS and
// S3 requests per object (versitygw's access log), the ratios A/B and A/C,
// and the issue-10 targets, met or not. The dataset store1m runs instead the
// archiver's incremental pass over a state of 1,000,000 done items against
// the same pass on an empty state.
//
// Every bucket is checked after its run: every recording present once with
// the SHA-256 of the simulator's manifest. bench/run.sh builds the binaries
// and calls this program; see docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if len(os.Args) > 1 && os.Args[1] == "loop" {
		code = runLoop(ctx, os.Args[2:], os.Stdout, os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// options is the parsed command line of a benchmark run.
type options struct {
	dataset     string
	rounds      int
	concurrency int
	work        string
	jsonOut     string
	markdown    string
	archiver    string
	baseline    string // a second archiver binary, run as A0 after A in every round
	versitygw   string
	rclone      string
	keep        bool
	verify      bool
	profile     bool
	sinkS3      []string // KEY = VALUE lines added to A's [sink.s3]
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smoke := fs.Bool("smoke", false, "the tiny dataset (smoke) and 1 round, unless --dataset/--rounds say otherwise")
	fs.StringVar(&o.dataset, "dataset", "", "dataset: "+datasetNames()+" (default 1mb)")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds of A B C (default 3, 1 with --smoke)")
	fs.IntVar(&o.concurrency, "concurrency", 16, "transfers in flight in every variant")
	fs.StringVar(&o.work, "work", "", "work `DIR` (data, buckets, logs); default a new temporary directory, removed at the end unless --keep")
	fs.StringVar(&o.jsonOut, "json", "", "write the results as JSON to `FILE` (default WORK/results.json with --work or --keep, else $TMPDIR/cec-bench-DATASET-TIME.json)")
	fs.StringVar(&o.markdown, "markdown", "", "write the results table and targets as Markdown to `FILE`")
	fs.StringVar(&o.archiver, "archiver", "", "the archiver binary (required)")
	fs.StringVar(&o.baseline, "baseline", "", "a second archiver `BINARY` (an older build), run as variant A0 right after A in every round on the same files and server; the report adds A over A0 (medians and paired by round), to tell a change from this machine's drift")
	fs.StringVar(&o.versitygw, "versitygw", "", "the versitygw binary (required; scripts/s3-server.sh build)")
	fs.StringVar(&o.rclone, "rclone", "rclone", "the rclone binary")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory and the buckets' contents")
	fs.Func("sink-s3", "add `KEY=VALUE` (TOML, e.g. 'multipart_threshold=\"16MiB\"') to the archiver's [sink.s3], to measure a setting other than the default; repeatable", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(val) == "" || strings.ContainsAny(v, "\n[") {
			return fmt.Errorf("want KEY=VALUE, one TOML key of [sink.s3]")
		}
		o.sinkS3 = append(o.sinkS3, strings.TrimSpace(k)+" = "+strings.TrimSpace(val))
		return nil
	})
	fs.BoolVar(&o.verify, "verify", true, "read every object back and check its SHA-256 after each run")
	fs.BoolVar(&o.profile, "profile", false, "the archiver writes a CPU and a heap profile of each A run into its run directory (archiver.cpu.pprof, archiver.heap.pprof), and the bare loop a CPU profile into its own (loop.cpu.pprof); use with --keep")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.dataset == "" {
		o.dataset = "1mb"
		if *smoke {
			o.dataset = "smoke"
		}
	}
	if _, ok := datasetByName(o.dataset); !ok {
		return nil, fmt.Errorf("--dataset: unknown %q; datasets are %s", o.dataset, datasetNames())
	}
	if o.rounds == 0 {
		o.rounds = 3
		if *smoke {
			o.rounds = 1
		}
	}
	if o.rounds < 1 || o.concurrency < 1 || o.concurrency > 64 {
		return nil, fmt.Errorf("--rounds must be at least 1 and --concurrency 1-64")
	}
	if o.archiver == "" || o.versitygw == "" {
		return nil, fmt.Errorf("--archiver and --versitygw are required (bench/run.sh sets them)")
	}
	if d, _ := datasetByName(o.dataset); o.baseline != "" && (d.StoreItems > 0 || d.Resume) {
		return nil, fmt.Errorf("--baseline: only for the datasets run as A B C, not %s", o.dataset)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return exitUsage
	}
	b, err := newBench(o, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return exitFailed
	}
	err = b.run(ctx)
	if cerr := b.close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return exitFailed
	}
	return exitOK
}
