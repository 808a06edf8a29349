package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// every is a schedule firing every d, finer than cron's one second.
type every struct{ d time.Duration }

func (e every) Next(t time.Time) time.Time { return t.Add(e.d) }

// serve runs e.a.Serve in the background; wait returns its error, or ok
// false when it has not returned within limit.
func (e *env) serve(ctx context.Context, schedules []Schedule, opts ServeOptions) (wait func(limit time.Duration) (err error, ok bool)) {
	done := make(chan error, 1)
	go func() { done <- e.a.Serve(ctx, schedules, opts) }()
	return func(limit time.Duration) (error, bool) {
		select {
		case err := <-done:
			return err, true
		case <-time.After(limit):
			return nil, false
		}
	}
}

// mustWait is wait, failing the test when Serve does not return within limit.
func mustWait(t *testing.T, wait func(time.Duration) (error, bool), limit time.Duration) error {
	t.Helper()
	err, ok := wait(limit)
	if !ok {
		t.Fatalf("Serve did not return within %v", limit)
	}
	return err
}

func parseSchedule(t *testing.T, spec string) Schedule {
	t.Helper()
	s, err := config.ParseSchedule(spec)
	if err != nil {
		t.Fatalf("ParseSchedule(%q): %v", spec, err)
	}
	return Schedule{Spec: s}
}

// waitLog waits until logs holds an entry with message msg.
func waitLog(logs *observer.ObservedLogs, msg string, limit time.Duration) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if logs.FilterMessage(msg).Len() > 0 {
			return true
		}
	}
	return false
}

func TestArchiver_Serve(t *testing.T) {
	t.Run("two jobs run on their schedules", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		core, logs := observer.New(zapcore.DebugLevel)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		cdr, rec := parseSchedule(t, "@every 1s"), parseSchedule(t, "@every 1s")
		cdr.Job, rec.Job, rec.Jitter = config.JobCDR, config.JobRecordings, 10*time.Millisecond
		var (
			mu      sync.Mutex
			ran     = map[string]int{}
			started atomic.Bool
		)
		wait := e.serve(ctx, []Schedule{cdr, rec}, ServeOptions{
			Log:     zap.New(core),
			Started: func() { started.Store(true) },
			AfterRun: func(job string, rep *Report, err error) {
				if rep == nil {
					t.Errorf("%s: nil report", job)
				}
				if err != nil && ctx.Err() == nil {
					t.Errorf("%s: %v", job, err)
				}
				mu.Lock()
				defer mu.Unlock()
				ran[job]++
				if ran[config.JobCDR] > 0 && ran[config.JobRecordings] > 0 {
					cancel()
				}
			},
		})
		if err := mustWait(t, wait, 30*time.Second); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if !started.Load() {
			t.Error("Started was not called")
		}
		mu.Lock()
		defer mu.Unlock()
		if ran[config.JobCDR] == 0 || ran[config.JobRecordings] == 0 {
			t.Errorf("runs %v, want both jobs", ran)
		}
		if n := logs.FilterMessage("job scheduled").Len(); n != 2 {
			t.Errorf("%d job scheduled lines, want 2", n)
		}
		if n := logs.FilterMessage("run finished").Len(); n == 0 {
			t.Error("no run finished line")
		}
		if n := logs.FilterMessage("ledgers written").FilterField(zap.String("job", config.JobCDR)).Len(); n == 0 {
			t.Error("the cdr run wrote no ledgers")
		}
		if len(e.objects()) == 0 {
			t.Error("nothing archived")
		}
	})

	t.Run("a job runs at start, not only on its schedule", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		var runs atomic.Int32
		// Next in an hour: only the start run can happen in this test.
		hourly := Schedule{Job: config.JobCDR, Spec: every{time.Hour}, AtStart: true}
		later := Schedule{Job: config.JobRecordings, Spec: every{time.Hour}}
		wait := e.serve(ctx, []Schedule{hourly, later}, ServeOptions{
			AfterRun: func(job string, rep *Report, err error) {
				if job != config.JobCDR {
					t.Errorf("%s ran: it has no start run", job)
				}
				runs.Add(1)
				cancel()
			},
		})
		if err := mustWait(t, wait, 30*time.Second); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs, want the one start run of cdr", n)
		}
		if len(e.objects()) == 0 {
			t.Error("the start run archived nothing")
		}
	})

	t.Run("a scheduled time during the start run is skipped", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		core, logs := observer.New(zapcore.DebugLevel)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		var inFlight, runs atomic.Int32
		wait := e.serve(ctx, []Schedule{{Job: config.JobCDR, Spec: every{20 * time.Millisecond}, AtStart: true}}, ServeOptions{
			Log: zap.New(core),
			AfterRun: func(job string, rep *Report, err error) {
				if inFlight.Add(1) > 1 {
					t.Error("two runs of cdr at once")
				}
				defer inFlight.Add(-1)
				if runs.Add(1) == 1 && !waitLog(logs, "run skipped: the previous run of this job is still going", 10*time.Second) {
					t.Error("no scheduled run was skipped while the start run went on")
				}
				cancel()
			},
		})
		if err := mustWait(t, wait, 30*time.Second); err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})

	t.Run("a long run is skipped, not overlapped", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		core, logs := observer.New(zapcore.DebugLevel)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		var inFlight, runs atomic.Int32
		wait := e.serve(ctx, []Schedule{{Job: config.JobCDR, Spec: every{20 * time.Millisecond}}}, ServeOptions{
			Log: zap.New(core),
			AfterRun: func(job string, rep *Report, err error) {
				if inFlight.Add(1) > 1 {
					t.Error("two runs of cdr at once")
				}
				defer inFlight.Add(-1)
				if runs.Add(1) == 1 && !waitLog(logs, "run skipped: the previous run of this job is still going", 10*time.Second) {
					t.Error("no run was skipped while the first one went on")
				}
			},
		})
		for end := time.Now().Add(20 * time.Second); runs.Load() < 2 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := mustWait(t, wait, 30*time.Second); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if runs.Load() < 2 {
			t.Errorf("%d runs, want the schedule to go on after the long one", runs.Load())
		}
	})

	t.Run("cancel waits for the run in flight", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		entered, release := make(chan struct{}), make(chan struct{})
		var runs atomic.Int32
		wait := e.serve(ctx, []Schedule{{Job: config.JobCDR, Spec: every{20 * time.Millisecond}}}, ServeOptions{
			AfterRun: func(string, *Report, error) {
				if runs.Add(1) == 1 {
					close(entered)
					<-release
				}
			},
		})
		<-entered
		cancel()
		if err, ok := wait(200 * time.Millisecond); ok {
			t.Fatalf("Serve returned (%v) while a run was going on", err)
		}
		close(release)
		if err := mustWait(t, wait, 30*time.Second); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		n := runs.Load()
		time.Sleep(100 * time.Millisecond)
		if runs.Load() != n {
			t.Error("a run started after Serve returned")
		}
	})

	t.Run("abort waits only the grace", func(t *testing.T) {
		aborted, abort := context.WithCancel(context.Background())
		abort()
		e := newEnv(t, envOptions{archiver: func(a *Archiver) { a.Abort = aborted }})
		core, logs := observer.New(zapcore.DebugLevel)
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		entered, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		var once sync.Once
		wait := e.serve(ctx, []Schedule{{Job: config.JobRecordings, Spec: every{20 * time.Millisecond}}}, ServeOptions{
			Log:        zap.New(core),
			AbortGrace: 50 * time.Millisecond,
			AfterRun: func(string, *Report, error) {
				once.Do(func() { close(entered) })
				<-release
			},
		})
		<-entered
		cancel()
		if err := mustWait(t, wait, 10*time.Second); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		if logs.FilterMessage("jobs still running after cancellation; exiting anyway, their items are released on the next start").Len() != 1 {
			t.Error("no warning about the run left going")
		}
	})

	t.Run("invalid schedules", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		for name, s := range map[string][]Schedule{
			"none":        nil,
			"unknown job": {{Job: "nope", Spec: every{time.Second}}},
			"no spec":     {{Job: config.JobCDR}},
		} {
			if err := e.a.Serve(t.Context(), s, ServeOptions{}); err == nil {
				t.Errorf("%s: Serve returned nil", name)
			}
		}
	})
}
