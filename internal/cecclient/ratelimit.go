package cecclient

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Adaptive rate limiting (reliability.md F10): one limiter per Client.
const (
	minRate       = 0.5             // req/s floor after repeated throttling
	recoverAfter  = 10              // consecutive successes before speeding up
	recoverFactor = 1.5             // speed-up per step, up to the configured rate
	cutInterval   = 1 * time.Second // at most one halving per interval
)

// limiter wraps rate.Limiter with a client-wide pause (Retry-After) and
// multiplicative decrease / gradual increase of the rate.
type limiter struct {
	rl    *rate.Limiter
	max   rate.Limit
	floor rate.Limit
	log   *zap.Logger

	mu         sync.Mutex
	pauseUntil time.Time
	successes  int
	lastCut    time.Time
}

func newLimiter(r float64, burst int, log *zap.Logger) *limiter {
	floor := rate.Limit(minRate)
	if rate.Limit(r) < floor {
		floor = rate.Limit(r)
	}
	return &limiter{rl: rate.NewLimiter(rate.Limit(r), burst), max: rate.Limit(r), floor: floor, log: log}
}

// wait blocks until the client-wide pause is over and a token is available.
func (l *limiter) wait(ctx context.Context) error {
	for {
		d := l.pauseRemaining()
		if d <= 0 {
			break
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	r := l.rl.Reserve()
	if d := r.Delay(); d > 0 {
		if err := sleep(ctx, d); err != nil {
			r.Cancel()
			return err
		}
	}
	return nil
}

func (l *limiter) pauseRemaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.pauseUntil)
}

// throttle records a throttling answer: it pauses every request of the client
// for retryAfter (if > 0) and, when halve is set, halves the rate.
func (l *limiter) throttle(retryAfter time.Duration, halve bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.successes = 0
	if retryAfter > 0 {
		if until := now.Add(retryAfter); until.After(l.pauseUntil) {
			l.pauseUntil = until
		}
	}
	if !halve || now.Sub(l.lastCut) < cutInterval {
		return
	}
	l.lastCut = now
	cur := l.rl.Limit()
	next := max(cur/2, l.floor)
	if next != cur {
		l.rl.SetLimit(next)
		l.log.Info("cec: throttled, lowering request rate",
			zap.Float64("rate", float64(next)), zap.Duration("retry_after", retryAfter))
	}
}

// success records an answered request; after recoverAfter of them in a row
// the rate rises again by recoverFactor, up to the configured rate.
func (l *limiter) success() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.rl.Limit()
	if cur >= l.max {
		l.successes = 0
		return
	}
	l.successes++
	if l.successes < recoverAfter {
		return
	}
	l.successes = 0
	next := min(cur*recoverFactor, l.max)
	l.rl.SetLimit(next)
	l.log.Debug("cec: raising request rate", zap.Float64("rate", float64(next)))
}

func (l *limiter) limit() float64 { return float64(l.rl.Limit()) }

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
