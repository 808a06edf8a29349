package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// DefaultLease is how long a claim or a named lease holds without renewal
// when Settings.Lease is zero (config checkpoint.lease).
const DefaultLease = 2 * time.Minute

// Names of the store leases that make singleton work run on one replica at
// a time.
const (
	// LeaseJanitor is held while the sink janitor runs (cmd runs it at
	// start, through Exclusive).
	LeaseJanitor = "janitor"
	leaseCDR     = "cdr:"    // + the window's begin (RFC 3339, UTC)
	leaseLedger  = "ledger:" // + the day
)

func cdrLease(w Window) string { return leaseCDR + w.Begin.UTC().Format(time.RFC3339) }

func ledgerLease(day string) string { return leaseLedger + day }

// errLeaseLost: a lease (or a claim) this replica held was taken by another
// one, or could not be renewed before it expired.
var errLeaseLost = errors.New("lease lost to another replica")

// NewReplicaID returns an ID for this process, the owner of its claims and
// leases in the checkpoint store: the host name, the process ID and 8
// random hex digits (another process, or this one started again, has
// another ID even on the same host with the same PID).
func NewReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// Exclusive runs fn while owner holds the store lease name, and reports
// whether it ran: false (and nil) when another replica holds the lease, so
// the work is theirs this time. The lease is taken for ttl and renewed every
// ttl/3 while fn runs, then released. When a renewal finds the lease taken
// by another replica, or renewals fail until the lease has expired, fn's ctx
// is cancelled and the returned error wraps errLeaseLost (joined with fn's).
// A failure to take the lease is a checkpoint store error.
func Exclusive(ctx context.Context, store checkpoint.Store, name, owner string, ttl time.Duration, log *zap.Logger,
	fn func(ctx context.Context) error) (ran bool, err error) {
	sctx := storeCtx(ctx)
	ok, err := store.TryLease(sctx, name, owner, ttl)
	if err != nil || !ok {
		return false, err
	}
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop, renewed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(max(ttl/3, time.Millisecond))
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ok, err := store.TryLease(sctx, name, owner, ttl)
			switch {
			case err == nil && ok:
				last = time.Now()
				continue
			case err == nil:
				cancel(errLeaseLost)
				return
			case time.Since(last) >= ttl:
				log.Warn("lease not renewed before it expired", zap.String("lease", name), zap.Error(err))
				cancel(errLeaseLost)
				return
			default:
				log.Warn("lease renewal failed, trying again", zap.String("lease", name), zap.Error(err))
			}
		}
	}()
	err = fn(lctx)
	close(stop)
	<-renewed
	if errors.Is(context.Cause(lctx), errLeaseLost) {
		log.Warn("lease lost while working: another replica may redo the work", zap.String("lease", name))
		return true, errors.Join(err, fmt.Errorf("jobs: lease %s: %w", name, errLeaseLost))
	}
	if rerr := store.ReleaseLease(sctx, name, owner); rerr != nil {
		// Not the work's failure: the lease expires on its own.
		log.Warn("lease not released; it expires on its own", zap.String("lease", name), zap.Duration("ttl", ttl), zap.Error(rerr))
	}
	return true, err
}

// exclusive is Exclusive with the archiver's store, replica and lease;
// a failure to take the lease is a checkpoint store error (storeError).
func (a *Archiver) exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	ran, err := Exclusive(ctx, a.Store, name, a.owner, a.lease(), a.log, fn)
	if !ran && err != nil {
		return false, a.storeErr("take lease "+name, err)
	}
	return ran, err
}

// claimer is who the item jobs claim as.
func (a *Archiver) claimer() checkpoint.Claimer {
	return checkpoint.Claimer{Owner: a.owner, Lease: a.lease()}
}

func (a *Archiver) lease() time.Duration {
	if a.Lease <= 0 {
		return DefaultLease
	}
	return a.Lease
}

// setWatermark moves job's watermark forward to t. A watermark another
// replica has moved further is no failure: moved is false and err nil.
func (a *Archiver) setWatermark(sctx context.Context, job string, t time.Time) (moved bool, err error) {
	err = a.Store.SetWatermark(sctx, job, t)
	if errors.Is(err, checkpoint.ErrConflict) {
		a.log.Debug("watermark already further", zap.String("watermark", job), zap.Time("t", t), zap.Error(err))
		return false, nil
	}
	if err != nil {
		return false, a.storeErr("set "+job+" watermark", err)
	}
	return true, nil
}
