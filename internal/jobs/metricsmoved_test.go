package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

// operationsDoc is the operator documentation whose metrics table the test
// holds the code to.
const operationsDoc = "../../docs/operations.md"

// docMetric is one row of the metrics table of docs/operations.md.
type docMetric struct {
	name, typ string
	labels    []string
	// values are the enumerated values of the labels that list them
	// (`result` = success \| failure).
	values map[string][]string
}

var (
	docNameRE  = regexp.MustCompile("^`(archiver_[a-z0-9_]+)`$")
	docLabelRE = regexp.MustCompile("^`([a-z_]+)`(?:\\s*=\\s*(.+))?$")
	docValueRE = regexp.MustCompile("^[a-z][a-z0-9_-]*$")
	// docOneOfRE finds "`kind` is one of `a`, `b`" and "`job_name` one of `c`".
	docOneOfRE = regexp.MustCompile("`([a-z_]+)` (?:is )?one of ((?:`[a-z0-9_-]+`(?:, |,| or | and )?)+)")
	docTickRE  = regexp.MustCompile("`([a-z0-9_-]+)`")
)

// documentedMetrics parses the metrics table of the operations doc, and
// the sentence under it that lists the values of the labels the table
// names without values (kind, job_name). Anything it cannot read fails the
// test: a table the parser no longer understands must not pass as "no
// metrics documented".
func documentedMetrics(t *testing.T, path string) ([]docMetric, map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	lines := strings.Split(string(b), "\n")
	start := -1
	for i, l := range lines {
		if cells := tableCells(l); slices.Equal(cells, []string{"metric", "type", "labels", "meaning"}) {
			start = i
			break
		}
	}
	if start < 0 || start+1 >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[start+1]), "|---") {
		t.Fatalf("%s: no metrics table (a header row | metric | type | labels | meaning | and its |---| line)", path)
	}
	var out []docMetric
	i := start + 2
	for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
		cells := tableCells(lines[i])
		if len(cells) != 4 {
			t.Fatalf("%s:%d: metrics table row with %d cells, want 4: %s", path, i+1, len(cells), lines[i])
		}
		m := docMetric{values: map[string][]string{}}
		nm := docNameRE.FindStringSubmatch(cells[0])
		if nm == nil {
			t.Fatalf("%s:%d: metric cell %q is not one `archiver_…` name", path, i+1, cells[0])
		}
		m.name, m.typ = nm[1], cells[1]
		if !slices.Contains([]string{"counter", "gauge", "histogram"}, m.typ) {
			t.Fatalf("%s:%d: %s: type %q is not counter, gauge or histogram", path, i+1, m.name, m.typ)
		}
		if cells[2] != "" {
			for _, part := range strings.Split(cells[2], ",") {
				lm := docLabelRE.FindStringSubmatch(strings.TrimSpace(part))
				if lm == nil {
					t.Fatalf("%s:%d: %s: label %q is not `label` or `label` = a \\| b", path, i+1, m.name, part)
				}
				m.labels = append(m.labels, lm[1])
				if lm[2] == "" {
					continue
				}
				for _, v := range strings.Split(lm[2], "\x00") {
					v = strings.Trim(strings.TrimSpace(v), "`")
					if !docValueRE.MatchString(v) {
						t.Fatalf("%s:%d: %s: label %s: value %q is not a plain label value", path, i+1, m.name, lm[1], v)
					}
					m.values[lm[1]] = append(m.values[lm[1]], v)
				}
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatalf("%s: the metrics table has no rows", path)
	}
	// The paragraph after the table lists the values of kind and job_name.
	var para []string
	for ; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "" {
			if len(para) > 0 {
				break
			}
			continue
		}
		para = append(para, strings.TrimSpace(lines[i]))
	}
	oneOf := map[string][]string{}
	for _, mm := range docOneOfRE.FindAllStringSubmatch(strings.Join(para, " "), -1) {
		for _, v := range docTickRE.FindAllStringSubmatch(mm[2], -1) {
			oneOf[mm[1]] = append(oneOf[mm[1]], v[1])
		}
	}
	for _, l := range []string{"kind", "job_name"} {
		if len(oneOf[l]) == 0 {
			t.Fatalf("%s: the paragraph after the metrics table does not list the values of `%s` (\"`%s` is one of `a`, `b`\"): %q",
				path, l, l, strings.Join(para, " "))
		}
	}
	return out, oneOf
}

// tableCells splits a Markdown table row into its trimmed cells; an escaped
// \| inside a cell becomes "\x00".
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil
	}
	line = strings.ReplaceAll(line[1:len(line)-1], `\|`, "\x00")
	cells := strings.Split(line, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// movedSeries is one series of a gathered family.
type movedSeries struct {
	family string
	labels map[string]string
}

// movedRecorder remembers every series whose value was ever other than its
// zero: a counter or gauge not 0, a histogram with samples. It polls the
// registry in the background (so that a gauge that is 1 only while a run
// is in progress is seen) and whenever snap is called.
type movedRecorder struct {
	t   *testing.T
	reg *prometheus.Registry

	mu    sync.Mutex
	moved map[string]movedSeries // by family and sorted labels
	err   error

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newMovedRecorder(t *testing.T, reg *prometheus.Registry) *movedRecorder {
	r := &movedRecorder{t: t, reg: reg, moved: map[string]movedSeries{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
				r.gather()
			}
		}
	}()
	return r
}

// gather records the series that are off their zero now.
func (r *movedRecorder) gather() {
	mfs, err := r.reg.Gather()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if !offZero(m) {
				continue
			}
			s := movedSeries{family: mf.GetName(), labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			r.moved[seriesKey(s)] = s
		}
	}
}

func offZero(m *dto.Metric) bool {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue() != 0
	case m.Gauge != nil:
		return m.Gauge.GetValue() != 0
	case m.Histogram != nil:
		return m.Histogram.GetSampleCount() > 0
	}
	return false
}

func seriesKey(s movedSeries) string {
	names := make([]string, 0, len(s.labels))
	for n := range s.labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(s.family)
	for _, n := range names {
		fmt.Fprintf(&b, ",%s=%q", n, s.labels[n])
	}
	return b.String()
}

// snap records now; call it after each scenario.
func (r *movedRecorder) snap() { r.gather() }

// close stops the poller, takes a last snapshot and fails the test if a
// Gather failed.
func (r *movedRecorder) close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		r.gather()
		if r.err != nil {
			r.t.Errorf("Gather: %v", r.err)
		}
	})
}

// familyMoved reports whether some series of family moved.
func (r *movedRecorder) familyMoved(family string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.moved {
		if s.family == family {
			return true
		}
	}
	return false
}

// valueMoved reports whether some series of family with label=value moved.
func (r *movedRecorder) valueMoved(family, label, value string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.moved {
		if s.family == family && s.labels[label] == value {
			return true
		}
	}
	return false
}

// seriesSum adds the values of the series of family whose labels include want.
func seriesSum(t *testing.T, reg *prometheus.Registry, family string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			total += metricValue(m)
		}
	}
	return total
}

// errTestSink is what the test's failing sinks and stores answer.
var errTestSink = errors.New("test: the storage says no")

// readFailingSink is a sink.Reader whose Stat, Open or List fails while
// fail names it: a sink that fails under the verify command.
type readFailingSink struct {
	sink.Sink
	r    sink.Reader
	fail atomic.Value // string: "", observe's op names
}

func (s *readFailingSink) failing(op string) bool { v, _ := s.fail.Load().(string); return v == op }

func (s *readFailingSink) Stat(ctx context.Context, key string) (sink.Object, error) {
	if s.failing("stat") {
		return sink.Object{}, errTestSink
	}
	return s.Sink.Stat(ctx, key)
}

func (s *readFailingSink) Open(ctx context.Context, key string) (io.ReadCloser, sink.Object, error) {
	if s.failing("open") {
		return nil, sink.Object{}, errTestSink
	}
	return s.r.Open(ctx, key)
}

func (s *readFailingSink) List(ctx context.Context, prefix string) iter.Seq2[sink.Object, error] {
	if s.failing("list") {
		return func(yield func(sink.Object, error) bool) { yield(sink.Object{}, errTestSink) }
	}
	return s.r.List(ctx, prefix)
}

// doneFailingStore fails the first Done of a recording (an item with a
// key): the process that stored an object and died before its checkpoint.
type doneFailingStore struct {
	checkpoint.Store
	failed atomic.Bool
}

func (s *doneFailingStore) Done(ctx context.Context, owner string, id int64, key string, size int64, sha string) error {
	if key != "" && s.failed.CompareAndSwap(false, true) {
		return errTestSink
	}
	return s.Store.Done(ctx, owner, id, key, size, sha)
}

// takeoverStore lets another replica take an item over (takeover) just
// before the first Done of a recording: the replica that calls Done has
// stalled past its lease, and the store refuses it. The takeover (a jump
// of the clock past the lease, then the other replica's claim) excludes
// the stalled replica's own claims: one of its claim-ahead batches landing
// between the jump and the takeover would take its own expired items back
// (as the store rightly lets it), and nothing would be lost to anyone.
type takeoverStore struct {
	checkpoint.Store
	takeover func(ctx context.Context, id int64) error
	done     atomic.Bool
	mu       sync.Mutex // held by the takeover and by every Claim through this store
}

func (s *takeoverStore) Claim(ctx context.Context, c checkpoint.Claimer, kinds []string, now time.Time, limit int) ([]checkpoint.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store.Claim(ctx, c, kinds, now, limit)
}

func (s *takeoverStore) Done(ctx context.Context, owner string, id int64, key string, size int64, sha string) error {
	if key != "" && s.done.CompareAndSwap(false, true) {
		s.mu.Lock()
		err := s.takeover(ctx, id)
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return s.Store.Done(ctx, owner, id, key, size, sha)
}

// TestMetrics_EveryDocumentedSeriesMoves holds the code to the metrics
// table of docs/operations.md: one registry, wired as main wires it (the
// archiver's Metrics, the client's UpstreamObserver, the ObserveSink
// decorator around the sink), sees scenarios that go through the real code
// paths, and every documented family, and every documented value of its
// labels, must have moved off its zero in some series. A metric added to
// the doc without a scenario that moves it fails here.
func TestMetrics_EveryDocumentedSeriesMoves(t *testing.T) {
	documented, oneOf := documentedMetrics(t, operationsDoc)

	// Series this test cannot move through the jobs, and where they are
	// covered instead. A key is a family or family{label="value"}.
	elsewhere := map[string]string{
		// once pushes its metrics after RecordShutdown (cmd/archiver/once.go
		// runArchiver); the test reads the pushed body.
		`archiver_shutdowns_total{result="clean"}`:     "cmd/archiver TestCmdOnce_PushesShutdown/clean (the Pushgateway body of a plain once)",
		`archiver_shutdowns_total{result="abandoned"}`: "cmd/archiver TestCmdOnce_PushesShutdown/abandoned (SIGTERM, a tiny shutdown.timeout, a trickling download)",
		// After a second signal runArchiver returns before c.push, and run
		// counts the shutdown just before its metrics server stops: no
		// command shows it, so no command test can see it.
		// telemetry's tests cover Metrics.Shutdown itself.
		`archiver_shutdowns_total{result="forced"}`: "no command exports it: a forced once returns before the push (cmd/archiver/once.go runArchiver), run stops serving right after counting it",
	}

	reg := prometheus.NewRegistry()
	m := telemetry.New(reg, "test", Labels())
	rec := newMovedRecorder(t, reg)
	defer rec.close()

	// observed builds an env wired as main wires it. o.sink wraps the dir
	// sink inside the ObserveSink decorator, so that the decorator sees the
	// failures of the test's sinks.
	observed := func(t *testing.T, o envOptions) *env {
		t.Helper()
		client, archiver, inner := o.client, o.archiver, o.sink
		o.sim = withSmallDataset(o.sim)
		o.client = func(co *cecclient.Options) {
			co.Observer = UpstreamObserver(m)
			if client != nil {
				client(co)
			}
		}
		o.sink = func(s sink.Sink) sink.Sink {
			if inner != nil {
				s = inner(s)
			}
			return ObserveSink(s, m)
		}
		o.archiver = func(a *Archiver) {
			a.Metrics = m
			a.InPassAttempts = 1
			if archiver != nil {
				archiver(a)
			}
		}
		return newEnv(t, o)
	}
	upstream := func(t *testing.T, class string) float64 {
		return seriesSum(t, reg, "archiver_upstream_errors_total", map[string]string{"class": class})
	}

	// A clean run, a second pass, then verify against a sink that fails.
	// Moves: job runs success, duration, running, last success; items done
	// (agent, transfer, ivr, lookups) and absent (lookups' evidence); bytes;
	// packages done, then unchanged; watermark; ledgers; items gauge done
	// and absent; sink errors stat, open, list.
	t.Run("clean", func(t *testing.T) {
		rs := &readFailingSink{}
		e := observed(t, envOptions{sink: func(s sink.Sink) sink.Sink {
			rs.Sink, rs.r = s, s.(sink.Reader)
			return rs
		}})
		ctx := testCtx(t)
		if err := e.a.ExportState(ctx); err != nil {
			t.Fatalf("ExportState: %v", err)
		}
		rep, err := e.a.Once(ctx)
		if err != nil || RunFailure(rep, nil) != nil || rep.Done == 0 || rep.Absent == 0 {
			t.Fatalf("Once: %+v, %v; want a clean run with items done and absent", rep, err)
		}
		e.clock.Add(time.Hour)
		rep, err = e.a.Once(ctx)
		if err != nil || rep.Packages == 0 || rep.Added != 0 {
			t.Fatalf("second Once: %+v, %v; want the packages again, nothing new", rep, err)
		}
		if rep, err := e.a.Verify(ctx, VerifyOptions{}); err != nil || rep.Problems != 0 {
			t.Fatalf("Verify: %v, %v; want a clean archive", rep, err)
		}
		for _, op := range []string{"open", "stat", "list"} {
			rs.fail.Store(op)
			before := seriesSum(t, reg, "archiver_sink_errors_total", map[string]string{"op": op})
			if _, err := e.a.Verify(ctx, VerifyOptions{}); !errors.Is(err, errTestSink) {
				t.Errorf("Verify with %s failing: %v, want the sink's error", op, err)
			}
			if after := seriesSum(t, reg, "archiver_sink_errors_total", map[string]string{"op": op}); after <= before {
				t.Errorf("Verify with %s failing: archiver_sink_errors_total{op=%q} %v → %v", op, op, before, after)
			}
		}
		rs.fail.Store("")
		rec.snap()
	})

	// A process stores a recording and fails to record it done; the next
	// start (RecoverInProgress) finds the object in the sink. Moves:
	// checkpoint errors, items gauge in_progress (the ledger pass after the
	// failure sees the item still claimed), items existed.
	t.Run("crash before the checkpoint", func(t *testing.T) {
		var st *doneFailingStore
		e := observed(t, envOptions{archiver: func(a *Archiver) {
			st = &doneFailingStore{Store: a.Store}
			a.Store = st
		}})
		ctx := testCtx(t)
		before := seriesSum(t, reg, "archiver_checkpoint_errors_total", nil)
		if _, err := e.a.Once(ctx); !errors.Is(err, errTestSink) {
			t.Fatalf("Once: %v, want the store's error", err)
		}
		if after := seriesSum(t, reg, "archiver_checkpoint_errors_total", nil); after <= before {
			t.Errorf("a failed Done: archiver_checkpoint_errors_total %v → %v", before, after)
		}
		if seriesSum(t, reg, "archiver_items", map[string]string{"state": "in_progress"}) == 0 {
			t.Error("archiver_items{state=\"in_progress\"} is 0 after a run left an item claimed")
		}
		rec.snap()
		if n, err := e.store.RecoverInProgress(ctx, e.a.ReplicaID()); err != nil || n == 0 {
			t.Fatalf("RecoverInProgress = %d, %v; want the item the failed run left claimed", n, err)
		}
		rep, err := e.a.Once(ctx)
		if err != nil || rep.Existed == 0 {
			t.Fatalf("Once after the restart: %+v, %v; want an item found already stored", rep, err)
		}
		rec.snap()
	})

	// Downloads always fail (HTTP 500) with two attempts allowed; transfer
	// records not settled yet are waited for. Moves: upstream transient,
	// items failed then dead, deferred, resolved; items gauge pending,
	// failed, dead; job runs failure.
	t.Run("failures", func(t *testing.T) {
		e := observed(t, envOptions{
			sim: func(o *cecsim.Options) {
				o.Faults = []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}
			},
			client: func(co *cecclient.Options) { co.MaxAttempts = 2 },
			archiver: func(a *Archiver) {
				a.Recordings.MaxAttempts = 2
				a.TransferSettleMaxAge = 100 * time.Hour
			},
		})
		ctx := testCtx(t)
		transient := upstream(t, "transient")
		rep, err := e.a.Once(ctx)
		if err != nil || rep.Failed == 0 || rep.Deferred == 0 {
			t.Fatalf("Once: %+v, %v; want failed downloads and deferred lookups", rep, err)
		}
		if got := upstream(t, "transient"); got-transient < float64(rep.Failed) {
			t.Errorf("%d downloads failed on HTTP 500, archiver_upstream_errors_total{class=\"transient\"} rose by %v", rep.Failed, got-transient)
		}
		rec.snap()
		e.clock.Add(time.Hour)
		if rep, err = e.a.Once(ctx); err != nil || rep.Dead == 0 {
			t.Fatalf("second Once: %+v, %v; want dead items", rep, err)
		}
		rec.snap()
		dead := e.items(checkpoint.StateDead)
		if len(dead) == 0 {
			t.Fatal("no dead item to resolve")
		}
		if _, err := e.a.Resolve(ctx, dead[0].ID, "test: the index lists a file that never existed"); err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		rec.snap()
	})

	// The CDR packages cannot be stored. Moves: sink errors put, packages
	// failed.
	t.Run("sink refuses the packages", func(t *testing.T) {
		e := observed(t, envOptions{sink: func(s sink.Sink) sink.Sink { return &prefixFailingSink{s, cdrDir} }})
		rep, err := e.a.Run(testCtx(t), config.JobCDR)
		if err != nil || rep.PackagesFailed == 0 {
			t.Fatalf("Run cdr: %+v, %v; want failed packages", rep, err)
		}
		rec.snap()
	})

	// Two downloads answer text instead of a recording; two files are not
	// downloadable yet (0300012). Moves: upstream content, not-found.
	t.Run("content and not found", func(t *testing.T) {
		e := observed(t, envOptions{sim: func(o *cecsim.Options) {
			o.UnavailableFiles = 2
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultTextBody, Path: cecwire.PathDownloadRecordFile, Count: 2}}
		}})
		ctx := testCtx(t)
		content, notFound := upstream(t, "content"), upstream(t, "not-found")
		rep, err := e.a.Once(ctx, config.JobCDR, config.JobRecordings)
		if err != nil || rep.Failed != 4 {
			t.Fatalf("Once: %+v, %v; want 4 failed downloads", rep, err)
		}
		if got := upstream(t, "content") - content; got != 2 {
			t.Errorf("2 text bodies: archiver_upstream_errors_total{class=\"content\"} rose by %v", got)
		}
		if got := upstream(t, "not-found") - notFound; got != 2 {
			t.Errorf("2 files not there: archiver_upstream_errors_total{class=\"not-found\"} rose by %v", got)
		}
		rec.snap()
	})

	// CC-FS refuses a parameter of every download (resultCode 0300004).
	// Moves: upstream permanent.
	t.Run("parameter rejected", func(t *testing.T) {
		e := observed(t, envOptions{sim: func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultParamRejected, Path: cecwire.PathDownloadRecordFile}}
		}})
		permanent := upstream(t, "permanent")
		rep, err := e.a.Once(testCtx(t), config.JobCDR, config.JobRecordings)
		if err != nil || rep.Failed == 0 {
			t.Fatalf("Once: %+v, %v; want failed downloads", rep, err)
		}
		if got := upstream(t, "permanent") - permanent; got != float64(rep.Failed) {
			t.Errorf("%d downloads refused: archiver_upstream_errors_total{class=\"permanent\"} rose by %v", rep.Failed, got)
		}
		rec.snap()
	})

	// CC-FS refuses the signature of every download. Moves: upstream auth
	// (and released: the items go back, no attempt counted).
	t.Run("credentials refused", func(t *testing.T) {
		e := observed(t, envOptions{sim: func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultUnauthorized, Path: cecwire.PathDownloadRecordFile}}
		}})
		auth := upstream(t, "auth")
		rep, err := e.a.Once(testCtx(t), config.JobCDR, config.JobRecordings)
		if !cecclient.IsAuth(err) || rep.Released == 0 {
			t.Fatalf("Once: %+v, %v; want an auth error and released items", rep, err)
		}
		if upstream(t, "auth") <= auth {
			t.Error("refused downloads: archiver_upstream_errors_total{class=\"auth\"} did not rise")
		}
		rec.snap()
	})

	// OIFDE fails: the transfer query answers HTTP 500, the IVR query of a
	// call with records a total no client may page through, then gettoken
	// answers HTTP 500. Every failed lookup is one failed call. Moves:
	// upstream transient and content (an answer no client may page through),
	// from OIFDE alone.
	t.Run("OIFDE lookups fail", func(t *testing.T) {
		e := observed(t, envOptions{sim: func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{
				{Kind: cecsim.FaultHTTP500, Path: cecwire.PathQueryTransferRecords},
				{Kind: cecsim.FaultHugeTotal, Path: cecwire.PathQueryRecordHistory},
			}
		}})
		ctx := testCtx(t)
		if rep, err := e.a.Run(ctx, config.JobCDR); err != nil || RunFailure(rep, nil) != nil {
			t.Fatalf("Run cdr: %+v, %v", rep, err)
		}
		all := func() float64 { return seriesSum(t, reg, "archiver_upstream_errors_total", nil) }
		for _, c := range []struct{ job, class string }{{config.JobTransfer, "transient"}, {config.JobIVR, "content"}} {
			total, class := all(), upstream(t, c.class)
			rep, err := e.a.Run(ctx, c.job)
			if err != nil || rep.Failed == 0 {
				t.Fatalf("Run %s: %+v, %v; want failed lookups", c.job, rep, err)
			}
			if got := upstream(t, c.class) - class; got != float64(rep.Failed) {
				t.Errorf("%s: %d lookups failed, archiver_upstream_errors_total{class=%q} rose by %v", c.job, rep.Failed, c.class, got)
			}
			if got := all() - total; got != float64(rep.Failed) {
				t.Errorf("%s: %d lookups failed, archiver_upstream_errors_total rose by %v in all", c.job, rep.Failed, got)
			}
		}
		// The token has expired; gettoken fails. The lookups that fail on
		// it are counted through the token requests.
		e.clock.Add(2 * time.Hour)
		e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathGetToken})
		total := all()
		rep, err := e.a.Run(ctx, config.JobTransfer)
		if err != nil || rep.Failed == 0 {
			t.Fatalf("Run transfer without a token: %+v, %v; want failed lookups", rep, err)
		}
		if all() <= total {
			t.Errorf("gettoken failed for %d lookups, archiver_upstream_errors_total did not rise", rep.Failed)
		}
		rec.snap()
	})

	// Shutdown while a download trickles: Abort cancels it. Moves: items
	// released (at shutdown), job running (the run lasts).
	t.Run("abort in flight", func(t *testing.T) {
		ss := &signalSink{started: make(chan string, 100)}
		abort, cancelAbort := context.WithCancel(context.Background())
		defer cancelAbort()
		e := observed(t, envOptions{
			sim: func(o *cecsim.Options) {
				o.MinRecordingBytes, o.MaxRecordingBytes = 16<<10, 24<<10
				o.Faults = []cecsim.Fault{{Kind: cecsim.FaultSlow, Path: cecwire.PathDownloadRecordFile, DelayMS: 60_000}}
			},
			archiver: func(a *Archiver) { a.Abort = abort },
			sink:     func(s sink.Sink) sink.Sink { ss.Sink = s; return ss },
		})
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		done := make(chan struct{})
		var rep *Report
		go func() {
			defer close(done)
			rep, _ = e.a.Once(ctx, config.JobCDR, config.JobRecordings)
		}()
		select {
		case <-ss.started:
		case <-time.After(30 * time.Second):
			t.Fatal("no recording download started")
		}
		if v, _ := gauge(t, reg, "archiver_job_running", map[string]string{"job_name": config.JobRecordings}); v != 1 {
			t.Errorf("archiver_job_running{job_name=\"recordings\"} = %v while a download is in flight, want 1", v)
		}
		rec.snap()
		cancel()
		cancelAbort()
		<-done
		if rep.Released == 0 {
			t.Errorf("report %+v, want released items", *rep)
		}
		rec.snap()
	})

	// Replica A stalls past its lease before recording a recording done;
	// replica B claims it meanwhile, so the store refuses A's Done and A
	// abandons the item. Moves: lease lost.
	t.Run("lease lost", func(t *testing.T) {
		var e *env
		e = observed(t, envOptions{archiver: func(a *Archiver) {
			a.Replica = replicaA
			a.Store = &takeoverStore{Store: a.Store, takeover: func(ctx context.Context, id int64) error {
				it, err := e.store.Item(ctx, id)
				if err != nil {
					return err
				}
				e.clock.Add(time.Hour) // A's lease (2m) has long expired
				if _, err := e.store.Claim(ctx, checkpoint.Claimer{Owner: replicaB, Lease: time.Hour}, []string{it.Kind}, e.clock.Now(), 0); err != nil {
					return err
				}
				if it, err = e.store.Item(ctx, id); err == nil && it.Owner != replicaB {
					err = fmt.Errorf("takeover of item %d: %s by %q after replica B's claim, want in_progress by B", id, it.State, it.Owner)
				}
				return err
			}}
		}})
		ctx := testCtx(t)
		if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
			t.Fatal(err)
		}
		before := seriesSum(t, reg, "archiver_lease_lost_total", map[string]string{"job_name": config.JobRecordings})
		rep, err := e.a.Run(ctx, config.JobRecordings)
		if err != nil || rep.LeaseLost == 0 {
			t.Fatalf("Run recordings: %+v, %v; want items abandoned to replica B", rep, err)
		}
		if got := seriesSum(t, reg, "archiver_lease_lost_total", map[string]string{"job_name": config.JobRecordings}) - before; got != float64(rep.LeaseLost) {
			t.Errorf("%d items abandoned: archiver_lease_lost_total{job_name=\"recordings\"} rose by %v", rep.LeaseLost, got)
		}
		rec.snap()
	})

	rec.close()
	t.Run("every documented series moved", func(t *testing.T) {
		values := 0
		for _, d := range documented {
			for _, vs := range d.values {
				values += len(vs)
			}
		}
		t.Logf("%s: %d families, %d enumerated label values; kind and job_name: %v", operationsDoc, len(documented), values, oneOf)
		for _, d := range documented {
			if d.name == "archiver_build_info" {
				// Set to 1 by telemetry.New, once: moved when it is 1.
				if v := seriesSum(t, reg, d.name, nil); v != 1 {
					t.Errorf("%s = %v, want 1", d.name, v)
				}
				continue
			}
			if !rec.familyMoved(d.name) && !coveredElsewhere(elsewhere, d.name, "", "") {
				t.Errorf("%s: no series moved", d.name)
			}
			for _, l := range d.labels {
				for _, v := range d.values[l] {
					if !rec.valueMoved(d.name, l, v) && !coveredElsewhere(elsewhere, d.name, l, v) {
						t.Errorf("%s{%s=%q}: no series moved", d.name, l, v)
					}
				}
			}
		}
		// kind and job_name: each value moved in some family that has the label.
		for l, vals := range oneOf {
			for _, v := range vals {
				found := false
				for _, d := range documented {
					found = found || slices.Contains(d.labels, l) && rec.valueMoved(d.name, l, v)
				}
				if !found {
					t.Errorf("%s=%q: no series of any family with that label moved", l, v)
				}
			}
		}
		for k, where := range elsewhere {
			if !documentedSelector(documented, k) {
				t.Errorf("elsewhere names %s, which is no documented family or label value", k)
			}
			t.Logf("%s: covered by %s", k, where)
		}
	})
}

// coveredElsewhere reports whether elsewhere names family (label empty), or
// family{label="value"}, or family as a whole. A family is covered when any
// of its values is: the values are checked one by one.
func coveredElsewhere(elsewhere map[string]string, family, label, value string) bool {
	if _, ok := elsewhere[family]; ok {
		return true
	}
	if label == "" {
		for k := range elsewhere {
			if strings.HasPrefix(k, family+"{") {
				return true
			}
		}
		return false
	}
	_, ok := elsewhere[fmt.Sprintf("%s{%s=%q}", family, label, value)]
	return ok
}

// documentedSelector reports whether k is a documented family or
// family{label="value"} with a documented value.
func documentedSelector(documented []docMetric, k string) bool {
	for _, d := range documented {
		if k == d.name {
			return true
		}
		for l, vals := range d.values {
			for _, v := range vals {
				if k == fmt.Sprintf("%s{%s=%q}", d.name, l, v) {
					return true
				}
			}
		}
	}
	return false
}

// withSmallDataset shrinks the simulator's dataset to keep the scenarios
// quick, then applies o.
func withSmallDataset(o func(*cecsim.Options)) func(*cecsim.Options) {
	return func(so *cecsim.Options) {
		so.Calls = 12
		if o != nil {
			o(so)
		}
	}
}
