package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Variant names.
const (
	variantArchiver = "A"        // the archiver
	variantBaseline = "A0"       // --baseline: another archiver binary, right after A
	variantLoop     = "B"        // the bare Go loop
	variantRclone   = "C"        // rclone copy
	variantEmpty    = "A-empty"  // store1m: the archiver on an empty state
	variantResume   = "A-resume" // resume: a killed backfill, then the whole one (measured)
	variantFull     = "A-1m"     // store1m: the archiver on the big state
)

// bench is one benchmark run: a dataset on disk and in the simulator, one
// S3 server, the rounds and their results.
type bench struct {
	o              *options
	d              dataset
	stdout, stderr io.Writer
	work           string
	removeWork     bool

	sim      *simulator
	s3       *s3Server
	fileSrv  *http.Server
	filesURL string
	dataDir  string
	keysFile string
	files    []file
	bigState string // store1m: the state of StoreItems done items
	// used are the buckets filled so far, removed after the last round
	// (without --keep): see removeBuckets.
	used []string
	// warnedCache: a run's files could not all be dropped from the page
	// cache (logged once).
	warnedCache bool

	res results
}

func newBench(o *options, stdout, stderr io.Writer) (*bench, error) {
	d, _ := datasetByName(o.dataset)
	b := &bench{o: o, d: d, stdout: stdout, stderr: stderr, work: o.work}
	if b.work == "" {
		dir, err := os.MkdirTemp("", "cec-bench-")
		if err != nil {
			return nil, err
		}
		b.work, b.removeWork = dir, !o.keep
	} else if err := os.MkdirAll(b.work, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(b.work)
	if err != nil {
		return nil, err
	}
	b.work = abs
	if b.o.jsonOut == "" {
		// The work directory goes at the end unless kept: the results stay.
		b.o.jsonOut = filepath.Join(b.work, "results.json")
		if b.removeWork {
			b.o.jsonOut = filepath.Join(os.TempDir(), fmt.Sprintf("cec-bench-%s-%s.json", d.Name, time.Now().Format("20060102T150405")))
		}
	}
	return b, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) variants() []string {
	if b.d.StoreItems > 0 {
		return []string{variantEmpty, variantFull}
	}
	if b.d.Resume {
		return []string{variantResume}
	}
	if b.o.baseline != "" {
		return []string{variantArchiver, variantBaseline, variantLoop, variantRclone}
	}
	return []string{variantArchiver, variantLoop, variantRclone}
}

func (b *bench) run(ctx context.Context) error {
	b.res = newResults(b.o, b.d)
	b.logf("dataset %s (%s), %d round(s), work dir %s", b.d.Name, b.d.Description, b.o.rounds, b.work)
	if b.d.StoreItems == 0 && !b.d.Resume {
		v, err := exec.Command(b.o.rclone, "version").Output()
		if err != nil {
			return fmt.Errorf("rclone (%s) does not run: %v; bench/run.sh installs it", b.o.rclone, err)
		}
		b.res.Machine.Rclone = strings.TrimSpace(strings.SplitN(string(v), "\n", 2)[0])
	}

	var err error
	if b.s3, err = startS3(b.o.versitygw, filepath.Join(b.work, "s3")); err != nil {
		return err
	}
	t0 := time.Now()
	if b.sim, err = startSimulator(b.d, zap.NewNop()); err != nil {
		return err
	}
	b.logf("simulator ready in %s", time.Since(t0).Round(time.Millisecond))
	if b.files, err = b.sim.files(b.d); err != nil {
		return err
	}
	b.dataDir = filepath.Join(b.work, "data")
	t0 = time.Now()
	if err := b.sim.fetch(ctx, b.dataDir, b.files, 8); err != nil {
		return err
	}
	b.res.Files, b.res.Bytes = len(b.files), totalBytes(b.files)
	b.logf("fetched %d recordings (%.1f MB) into %s in %s, every SHA-256 checked", len(b.files),
		float64(b.res.Bytes)/1e6, b.dataDir, time.Since(t0).Round(time.Millisecond))
	if err := writeManifest(filepath.Join(b.work, "manifest.json"), b.files); err != nil {
		return err
	}
	b.keysFile = filepath.Join(b.work, "keys.txt")
	var keys strings.Builder
	for _, f := range b.files {
		keys.WriteString(f.Key + "\n")
	}
	if err := os.WriteFile(b.keysFile, []byte(keys.String()), 0o644); err != nil {
		return err
	}
	if err := b.serveFiles(); err != nil {
		return err
	}
	if b.d.StoreItems > 0 {
		if err := b.prepareStore(ctx); err != nil {
			return err
		}
	}

	for round := 1; round <= b.o.rounds; round++ {
		for _, v := range b.variants() {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := b.runVariant(ctx, round, v)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, v, err)
			}
			b.logf("round %d %-7s %7.2fs %8.1f MB/s %8.0f obj/s  cpu %6.2fs  rss %6.1f MiB (anon %.1f, file %.1f)  %s",
				round, v, r.WallSeconds, r.MBps(), r.ObjectsPerSecond(), r.CPUSeconds(), r.RSSMiB(),
				float64(r.MaxRSSAnonKiB)/1024, float64(r.MaxRSSFileKiB)/1024, r.Bucket)
			b.res.Runs = append(b.res.Runs, r)
		}
	}

	// The access log is complete once versitygw has stopped.
	if err := b.s3.stop(); err != nil {
		return err
	}
	counts, err := requests(b.s3.AccessLog)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	if err := b.removeBuckets(); err != nil {
		return err
	}
	for i := range b.res.Runs {
		b.res.Runs[i].countRequests(counts[b.res.Runs[i].Bucket])
	}
	b.res.finish(b.d)
	return b.report()
}

// serveFiles serves the data directory over plain HTTP for the bare loop.
func (b *bench) serveFiles() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.filesURL = "http://" + ln.Addr().String()
	b.fileSrv = &http.Server{Handler: http.FileServer(http.Dir(b.dataDir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.fileSrv.Serve(ln) }()
	return nil
}

// runVariant runs one variant of one round into a new bucket and checks
// the bucket afterwards.
func (b *bench) runVariant(ctx context.Context, round int, v string) (runResult, error) {
	bucket := fmt.Sprintf("bench-r%d-%s-%s", round, strings.ToLower(v), randHex(3))
	if err := b.s3.createBucket(ctx, bucket); err != nil {
		return runResult{}, err
	}
	dir := filepath.Join(b.work, fmt.Sprintf("round%d", round), strings.ToLower(v))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return runResult{}, err
	}
	r := runResult{Variant: v, Round: round, Bucket: bucket}
	var state string
	if v == variantArchiver || v == variantBaseline || v == variantEmpty || v == variantFull || v == variantResume {
		seed := ""
		if v == variantFull {
			seed = b.bigState
		}
		var err error
		if state, err = newState(dir, seed); err != nil {
			return r, err
		}
	}
	// Nothing written before the run (the copied state, the buckets of
	// earlier runs, the data files) is left for the kernel to write back
	// while it is timed: writeback of a 1.2 GB state copy behind the
	// archiver's own fsyncs made store1m's A-1m look slower than it is.
	syscall.Sync()
	self0, s3cpu0 := selfCPU(), b.s3.cpu()
	var err error
	switch v {
	case variantArchiver, variantEmpty, variantFull:
		r.measure, err = b.runArchiver(ctx, b.o.archiver, dir, bucket, state)
	case variantBaseline:
		r.measure, err = b.runArchiver(ctx, b.o.baseline, dir, bucket, state)
	case variantResume:
		r.measure, err = b.runResume(ctx, dir, bucket, state)
	case variantLoop:
		r.measure, err = b.runLoop(ctx, dir, bucket)
	case variantRclone:
		r.measure, err = b.runRclone(ctx, dir, bucket)
	default:
		err = fmt.Errorf("unknown variant %q", v)
	}
	if err != nil {
		return r, err
	}
	r.SourceCPUSeconds, r.S3ServerCPUSeconds = selfCPU()-self0, b.s3.cpu()-s3cpu0
	r.Objects, r.Bytes = len(b.files), b.res.Bytes
	if err := b.check(ctx, &r, v != variantLoop && v != variantRclone); err != nil {
		return r, err
	}
	b.used = append(b.used, bucket)
	// The run's objects and its run directory (a copied state) leave the
	// page cache, so that the rounds do not add up there: on this class of
	// VM (Firecracker), once the cache has grown by a gigabyte or two a new
	// page-cache page costs some 20 µs of system time, which fell on
	// whichever runs came later, and most on the archiver's, the one
	// variant that puts its bodies in the page cache (the spool) before
	// sending them: its CPU tripled from the third round of `large` on. The
	// dataset's own files stay cached for every round.
	n := dropCached(filepath.Join(b.s3.Root, bucket)) + dropCached(dir)
	if n > 0 && !b.warnedCache {
		b.warnedCache = true
		b.logf("page cache: %d files of run %s not dropped (later runs may meet a larger page cache)", n, bucket)
	}
	return r, nil
}

// removeBuckets removes the buckets filled so far, unless --keep. Not
// between runs: this machine's root is ext4 without a journal, which does
// not reuse an inode freed in the last 60 s (360 s while its inode table
// block is dirty) and has every new file's inode search step past those
// freed recently; versitygw creates a file per PUT, so the 20,000 files of
// one run's bucket removed before the next made that run's PUTs cost
// versitygw up to 3× the kernel time, whichever variant came next.
func (b *bench) removeBuckets() error {
	if b.o.keep {
		return nil
	}
	for _, bucket := range b.used {
		if err := b.s3.removeBucket(bucket); err != nil {
			return err
		}
	}
	b.used = nil
	return nil
}

// check reads the bucket back: every recording of the dataset must be
// there once with its size and SHA-256 (B and C: under its key; A: under
// the archiver's key, found by digest), and any other object must be one of
// the archiver's own (CDR package, ledger, probe).
func (b *bench) check(ctx context.Context, r *runResult, archiver bool) error {
	objs, err := b.s3.objects(ctx, r.Bucket, b.o.verify)
	if err != nil {
		return err
	}
	r.Verified = b.o.verify
	r.RecordingKeys = map[string]bool{}
	var problems []string
	if !archiver {
		for _, f := range b.files {
			o := objs[f.Key]
			switch {
			case o == nil:
				problems = append(problems, "missing "+f.Key)
			case o.Size != f.Size || (b.o.verify && o.SHA256 != f.SHA256):
				problems = append(problems, fmt.Sprintf("%s: %d bytes %s, want %d bytes %s", f.Key, o.Size, o.SHA256, f.Size, f.SHA256))
			}
			r.RecordingKeys[f.Key] = true
		}
		if len(objs) != len(b.files) {
			problems = append(problems, fmt.Sprintf("%d objects, want %d", len(objs), len(b.files)))
		}
		return checkProblems(r.Bucket, problems)
	}
	bySHA := map[string][]string{}
	for k, o := range objs {
		bySHA[o.SHA256] = append(bySHA[o.SHA256], k)
	}
	if !b.o.verify {
		// Listing only: count what is not the archiver's own.
		n := 0
		for k := range objs {
			if !ownObject(k) {
				n++
				r.RecordingKeys[k] = true
			} else {
				r.OwnObjects++
			}
		}
		if n != len(b.files) {
			problems = append(problems, fmt.Sprintf("%d recording objects, want %d", n, len(b.files)))
		}
		return checkProblems(r.Bucket, problems)
	}
	for _, f := range b.files {
		switch keys := bySHA[f.SHA256]; len(keys) {
		case 0:
			problems = append(problems, "missing "+f.Kind+" "+f.ID)
		case 1:
			r.RecordingKeys[keys[0]] = true
			if objs[keys[0]].Size != f.Size {
				problems = append(problems, fmt.Sprintf("%s: %d bytes, want %d", keys[0], objs[keys[0]].Size, f.Size))
			}
		default:
			problems = append(problems, fmt.Sprintf("%s %s stored %d times: %v", f.Kind, f.ID, len(keys), keys))
		}
	}
	for k := range objs {
		if r.RecordingKeys[k] {
			continue
		}
		if !ownObject(k) {
			problems = append(problems, "stray object "+k)
		}
		r.OwnObjects++
	}
	return checkProblems(r.Bucket, problems)
}

// ownObject says whether a key is one of the archiver's own objects rather
// than a recording, by its place in the layout.
func ownObject(key string) bool {
	for _, s := range []string{"/ledger/", "/cdr/", "/.cec-archiver/"} {
		if strings.Contains(key, s) {
			return true
		}
	}
	return false
}

func checkProblems(bucket string, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
	}
	return fmt.Errorf("bucket %s:\n  %s", bucket, strings.Join(problems, "\n  "))
}

// measure is what the rusage of one measured process says.
type measure struct {
	WallSeconds float64 `json:"wall_seconds"`
	UserSeconds float64 `json:"user_seconds"`
	SysSeconds  float64 `json:"sys_seconds"`
	// MaxRSSKiB is the process's peak resident set (VmHWM, sampled; see
	// watchHWM). RusageMaxRSSKiB is what wait4 said, which includes the
	// harness's own peak and is kept only for comparison.
	MaxRSSKiB       int64 `json:"max_rss_kib"`
	RusageMaxRSSKiB int64 `json:"rusage_max_rss_kib"`
	// The largest RssAnon (heap, stacks) and RssFile (the binary's pages)
	// samples: what of the peak is the process's own memory.
	MaxRSSAnonKiB int64 `json:"max_rss_anon_kib"`
	MaxRSSFileKiB int64 `json:"max_rss_file_kib"`
}

// measureCmd runs cmd to its end and returns its wall time and its own
// rusage (wait4): user and system CPU and peak RSS of that process.
// stdout and stderr go to files under dir named after name.
func measureCmd(ctx context.Context, cmd *exec.Cmd, dir, name string) (measure, error) {
	outf, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		return measure{}, err
	}
	defer outf.Close()
	errf, err := os.Create(filepath.Join(dir, name+".err"))
	if err != nil {
		return measure{}, err
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = outf, errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measure{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	hwm := watchHWM(cmd.Process.Pid)
	werr := cmd.Wait()
	wall := time.Since(start)
	stop()
	peak, anon, file := hwm()
	if werr != nil {
		tail := func(f *os.File) string {
			bs, _ := os.ReadFile(f.Name())
			if len(bs) > 3000 {
				bs = append([]byte("…"), bs[len(bs)-3000:]...)
			}
			return string(bs)
		}
		if ctx.Err() != nil {
			werr = errors.Join(werr, ctx.Err())
		}
		return measure{}, fmt.Errorf("%s: %w\nstdout:\n%s\nstderr:\n%s", name, werr, tail(outf), tail(errf))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return measure{}, errors.New("no rusage for " + name)
	}
	m := measure{
		WallSeconds:     wall.Seconds(),
		UserSeconds:     time.Duration(ru.Utime.Nano()).Seconds(),
		SysSeconds:      time.Duration(ru.Stime.Nano()).Seconds(),
		MaxRSSKiB:       peak,
		RusageMaxRSSKiB: ru.Maxrss, // kilobytes on Linux
		MaxRSSAnonKiB:   anon,
		MaxRSSFileKiB:   file,
	}
	if m.MaxRSSKiB == 0 {
		m.MaxRSSKiB = ru.Maxrss // exited before the first sample
	}
	return m, nil
}

// hwmInterval is how often watchHWM samples.
const hwmInterval = 10 * time.Millisecond

// watchHWM samples the VmHWM (peak resident set) of process pid until the
// returned function is called, which returns the largest sample in KiB.
//
// The rusage of wait4 cannot be used for this: Go starts children with
// clone(CLONE_VM|CLONE_VFORK), so until its exec the child runs in this
// process's memory, and Linux folds that memory's high-water mark into the
// child's ru_maxrss at exec. Every child would then report at least the
// harness's own peak (the simulator's dataset, the manifest). VmHWM belongs
// to the memory the child got at exec. Growth in the last interval before
// the exit can be missed; the peak of a transfer is not there.
func watchHWM(pid int) func() (peak, anon, file int64) {
	var peak, anon, file int64
	done, stopped := make(chan struct{}), make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	sample := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(b), "\n") {
			name, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			var to *int64
			switch name {
			case "VmHWM":
				to = &peak
			case "RssAnon":
				to = &anon
			case "RssFile":
				to = &file
			default:
				continue
			}
			var kib int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib); err == nil {
				*to = max(*to, kib)
			}
		}
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(hwmInterval)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int64, int64) {
		close(done)
		<-stopped
		return peak, anon, file
	}
}

// selfCPU is this process's user+system CPU time so far, in seconds: the
// simulator (A's source) and the file server (B's) run here.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func (b *bench) close() error {
	var errs []error
	if b.fileSrv != nil {
		_ = b.fileSrv.Close()
	}
	if b.sim != nil {
		b.sim.close()
	}
	if b.s3 != nil {
		errs = append(errs, b.s3.stop())
	}
	if b.removeWork {
		errs = append(errs, os.RemoveAll(b.work))
	}
	return errors.Join(errs...)
}
