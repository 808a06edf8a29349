package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// The killed-backfill check (dataset "resume"): `archiver backfill` over the
// dataset's days is SIGKILLed the moment its request for window k reaches
// the simulator, then run again over the same days to its end. The second
// run must request no window before k − lookback_windows (issue 10's
// target), and the bucket must then hold every recording once.

// resumeLookback is lookback_windows in the archiver's configuration.
const resumeLookback = 2

// resumeResult is what one killed-and-resumed backfill did.
type resumeResult struct {
	Windows       int   `json:"windows"`
	KilledAt      int   `json:"killed_at_window"` // 0-based index of the window in flight
	FirstRun      []int `json:"first_run_windows"`
	SecondRun     []int `json:"second_run_windows"`
	Lookback      int   `json:"lookback_windows"`
	EarliestAgain int   `json:"earliest_window_requested_again"`
	Met           bool  `json:"met"`
}

// queryWatch sits in front of the simulator and records the window of
// every queryBillData request (its beginTime), calling onQuery, when set,
// with the request's window before the simulator answers it.
type queryWatch struct {
	mu      sync.Mutex
	begins  []time.Time
	onQuery func(begin time.Time)
}

func (q *queryWatch) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == cecwire.PathQueryBillData {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err == nil {
				r.Body = io.NopCloser(bytes.NewReader(body))
				var env cecwire.Envelope[cecwire.QueryBillDataBody]
				if json.Unmarshal(body, &env) == nil {
					if t, err := time.ParseInLocation(cecwire.TimeLayout, env.MsgBody.BeginTime, time.UTC); err == nil {
						q.mu.Lock()
						q.begins = append(q.begins, t)
						hook := q.onQuery
						q.mu.Unlock()
						if hook != nil {
							hook(t)
						}
					}
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// take returns the windows requested since the last take, as day indexes
// from start, and sets the hook for what follows.
func (q *queryWatch) take(start time.Time, hook func(time.Time)) []int {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []int
	for _, t := range q.begins {
		out = append(out, int(t.Sub(start)/(24*time.Hour)))
	}
	q.begins, q.onQuery = nil, hook
	return out
}

// runResume is variant A-resume: the killed backfill, then the whole one
// (measured), into bucket on the state at path state.
func (b *bench) runResume(ctx context.Context, dir, bucket, state string) (measure, error) {
	cfg, err := b.writeArchiverConfig(dir, bucket, state)
	if err != nil {
		return measure{}, err
	}
	n := b.d.Days
	k := n/2 + 1
	start := b.sim.Start
	args := []string{"backfill", "--config", cfg, "--from", start.Format(time.DateOnly), "--to", start.AddDate(0, 0, n-1).Format(time.DateOnly)}
	env := append(withoutEnv(os.Environ(), "ARCHIVER_"), "ARCHIVER_CONFIG=")

	// First run: killed when window k is requested.
	first := exec.CommandContext(ctx, b.o.archiver, args...)
	first.Env = env
	logf, err := os.Create(filepath.Join(dir, "killed.err"))
	if err != nil {
		return measure{}, err
	}
	defer logf.Close()
	first.Stdout, first.Stderr = logf, logf
	first.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	killAt := start.AddDate(0, 0, k)
	b.sim.queries.take(start, func(begin time.Time) {
		if begin.Equal(killAt) && first.Process != nil {
			_ = first.Process.Signal(syscall.SIGKILL)
		}
	})
	if err := first.Start(); err != nil {
		return measure{}, err
	}
	werr := first.Wait()
	if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return measure{}, fmt.Errorf("the first backfill was not killed at window %d (%v); see %s", k, werr, logf.Name())
	}
	res := resumeResult{Windows: n, KilledAt: k, Lookback: resumeLookback, FirstRun: b.sim.queries.take(start, nil)}

	// Second run, to its end.
	second := exec.CommandContext(ctx, b.o.archiver, args...)
	second.Env = env
	m, err := measureCmd(ctx, second, dir, "archiver")
	if err != nil {
		return m, err
	}
	res.SecondRun = b.sim.queries.take(start, nil)
	res.EarliestAgain = slices.Min(append([]int{n}, res.SecondRun...))
	res.Met = res.EarliestAgain >= k-resumeLookback
	b.res.Resume = append(b.res.Resume, res)
	b.logf("killed at window %d of %d (first run requested %v); the second requested %v", k, n, res.FirstRun, res.SecondRun)
	return m, nil
}
