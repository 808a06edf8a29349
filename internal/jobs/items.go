package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// jobSpec is what an item job claims and how it retries.
type jobSpec struct {
	name   string
	kinds  []string
	retry  Retry
	settle time.Duration
}

func (a *Archiver) spec(job string) jobSpec {
	switch job {
	case config.JobTransfer:
		return jobSpec{job, jobKinds(job), a.Transfer.withDefaults(), settleMaxAge(a.TransferSettleMaxAge)}
	case config.JobIVR:
		return jobSpec{job, jobKinds(job), a.IVR.withDefaults(), settleMaxAge(a.IVRSettleMaxAge)}
	}
	return jobSpec{config.JobRecordings, jobKinds(config.JobRecordings), a.Recordings.withDefaults(), 0}
}

// jobKinds are the item kinds an item job claims, lookups first; the cdr
// job's is the CDR package's kind (KindPackage), under which its bytes are
// counted.
func jobKinds(job string) []string {
	switch job {
	case config.JobCDR:
		return []string{KindPackage}
	case config.JobTransfer:
		return []string{checkpoint.KindTransferLookup, checkpoint.KindTransfer}
	case config.JobIVR:
		return []string{checkpoint.KindIVRLookup, checkpoint.KindIVR}
	}
	return []string{checkpoint.KindAgent}
}

// itemRun is the state of one run of an item job.
type itemRun struct {
	a       *Archiver
	spec    jobSpec
	log     *zap.Logger
	rep     syncReport
	claimAt time.Time // items due at the start of the run; a failure is due again on a later run

	stopOnce sync.Once
	stopped  chan struct{}
	mu       sync.Mutex
	err      error // what stopped the job (store failure, or refused credentials for every kind)
	// authStopped holds the kinds whose interface refused the credentials:
	// only the work that needs that interface stops (a refused OIFDE token
	// stops the lookups, not the downloads of transfer recordings already
	// found, which go to CC-FS).
	authStopped map[string]error

	// held are the items this run has claimed and not finished (queued or
	// in flight): their leases are renewed, and a lost one is cancelled.
	held map[int64]*claim
}

// claim is an item the run holds.
type claim struct {
	cancel context.CancelCauseFunc // of its transfers; nil until it starts
	tctx   context.Context
	lost   bool // another replica has it now (Renew said so)
}

// hold records claimed items; it returns those the run does not hold
// already (an item of its own whose lease expired under a stalled renewal
// comes back from Claim: it is in flight, not claimed twice).
func (r *itemRun) hold(items []checkpoint.Item) []checkpoint.Item {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := items[:0]
	for _, it := range items {
		if _, ok := r.held[it.ID]; ok {
			continue
		}
		r.held[it.ID] = &claim{}
		out = append(out, it)
	}
	return out
}

// start gives a held item the context its transfers run under: tctx,
// cancelled when its lease is lost. It reports false when the item was
// lost while it waited in the queue.
func (r *itemRun) start(it checkpoint.Item, tctx context.Context) (context.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.held[it.ID]
	if c == nil || c.lost {
		return nil, false
	}
	c.tctx, c.cancel = context.WithCancelCause(tctx)
	return c.tctx, true
}

// transferCtx is the context of it's transfers: its own once started (see
// start), else the archiver's.
func (r *itemRun) transferCtx(ctx context.Context, it checkpoint.Item) context.Context {
	r.mu.Lock()
	c := r.held[it.ID]
	r.mu.Unlock()
	if c != nil && c.tctx != nil {
		return c.tctx
	}
	return r.a.transferCtx(ctx)
}

// unhold forgets a finished item.
func (r *itemRun) unhold(id int64) {
	r.mu.Lock()
	c := r.held[id]
	delete(r.held, id)
	r.mu.Unlock()
	if c != nil && c.cancel != nil {
		c.cancel(nil)
	}
}

// isLost reports whether a renewal found that another replica has it.
func (r *itemRun) isLost(id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.held[id]
	return c != nil && c.lost
}

// heldIDs lists the held items, for renewal.
func (r *itemRun) heldIDs() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]int64, 0, len(r.held))
	for id := range r.held {
		ids = append(ids, id)
	}
	return ids
}

// renew extends the leases of the held items every Lease/3 until stop is
// closed. An item the store says is no longer this replica's is marked
// lost and its transfers cancelled: its outcome is not recorded (the store
// would refuse it anyway). A failed renewal is tried again at the next
// tick; the store's refusals fence the items if the leases expire
// meanwhile.
func (r *itemRun) renew(c checkpoint.Claimer, stop <-chan struct{}) {
	tick := time.NewTicker(max(c.Lease/3, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ids := r.heldIDs()
		if len(ids) == 0 {
			continue
		}
		lost, err := r.a.Store.Renew(context.Background(), c, ids)
		if err != nil {
			r.a.met.CheckpointError()
			r.log.Warn("lease renewal failed, trying again", zap.Int("items", len(ids)), zap.Error(err))
			continue
		}
		r.mu.Lock()
		for _, id := range lost {
			// An item that ended meanwhile is no longer held.
			if cl := r.held[id]; cl != nil {
				cl.lost = true
				if cl.cancel != nil {
					cl.cancel(errLeaseLost)
				}
			}
		}
		r.mu.Unlock()
	}
}

// abandon gives up an item whose claim another replica has taken over (its
// lease expired): nothing of this run's work on it is recorded.
func (r *itemRun) abandon(it checkpoint.Item, why error) {
	r.rep.add(func(rep *Report) { rep.LeaseLost++ })
	r.a.met.LeaseLost(r.spec.name)
	r.log.Warn("item abandoned: another replica has taken it over (its lease expired); this run's outcome is not recorded",
		zap.String("kind", it.Kind), zap.String("upstream_id", it.UpstreamID), zap.Int64("item", it.ID), zap.Error(why))
}

// recorded handles the outcome of a transition of a claimed item: true
// when it was recorded; a refusal because the claim is no longer this
// replica's abandons the item; any other failure stops the job.
func (r *itemRun) recorded(op string, it checkpoint.Item, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, checkpoint.ErrState):
		r.abandon(it, err)
	default:
		r.stop(r.a.storeErr(op, err))
	}
	return false
}

// stopKind stops claiming items of kind after its interface refused the
// credentials; when every kind of the job is stopped, the job stops.
func (r *itemRun) stopKind(kind string, err error) {
	r.mu.Lock()
	if r.authStopped == nil {
		r.authStopped = map[string]error{}
	}
	if _, ok := r.authStopped[kind]; !ok {
		r.authStopped[kind] = err
	}
	all := true
	for _, k := range r.spec.kinds {
		if _, ok := r.authStopped[k]; !ok {
			all = false
		}
	}
	r.mu.Unlock()
	if all {
		r.stop(fmt.Errorf("jobs: %s: %w", r.spec.name, err))
	}
}

// kindStopped reports whether kind's interface refused the credentials.
func (r *itemRun) kindStopped(kind string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.authStopped[kind]
	return ok
}

// liveKinds are the job's kinds whose interface has not refused the credentials.
func (r *itemRun) liveKinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, k := range r.spec.kinds {
		if _, ok := r.authStopped[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

func (r *itemRun) stop(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.stopOnce.Do(func() { close(r.stopped) })
}

func (r *itemRun) isStopped() bool {
	select {
	case <-r.stopped:
		return true
	default:
		return false
	}
}

// runItems claims the job's due items and processes them, at most
// Concurrency at a time across all jobs, until none is due, ctx ends or the
// job stops (auth error, checkpoint failure). It is a continuous pool: a
// freed slot takes the next claimed item at once, so one slow download never
// idles the others, and a bounded number of items is claimed ahead of the
// slots (claimed items are in_progress in the store: a crash releases them
// at the next start): Concurrency, doubled up to 4 × Concurrency while a
// claimed batch lasts less than fastBatch (small recordings: one claim, a
// transaction with its fsync, per 16 items was the claim's cost), back to
// Concurrency as soon as one lasts longer (large ones stay claimable by
// other replicas); after a full batch the next one is claimed while the
// second half of this one starts, so at most two batches are held ahead.
// Items are claimed as due at the start of the run, so
// an item failing or deferred in this run waits for a later run, while items
// that lookups add are processed now: when nothing is due but work is in
// flight, the pool claims again after each item ends. So are those the cdr
// job of the same pass adds (a feed in ctx): while it runs, the pool waits
// for its next commit instead of ending.
func (a *Archiver) runItems(ctx context.Context, job string) (*Report, error) {
	r := &itemRun{a: a, spec: a.spec(job), log: a.log.With(zap.String("job", job)), claimAt: a.now(),
		stopped: make(chan struct{}), held: map[int64]*claim{}}
	r.rep.prog = a.Progress
	sctx := storeCtx(ctx)
	fd := feedOf(ctx) // the cdr job of the pass, adding items while it runs
	minAhead := a.concurrency()
	ahead, claimed := minAhead, time.Time{}
	c := a.claimer()
	stopRenew, renewed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(renewed)
		r.renew(c, stopRenew)
	}()
	defer func() {
		close(stopRenew)
		<-renewed
	}()
	var (
		wg       sync.WaitGroup
		inflight atomic.Int64
		ends     atomic.Int64             // items ended so far
		ended    = make(chan struct{}, 1) // an item ended: claim again
		queue    []checkpoint.Item
		full     bool // the last claim filled its batch
		pool     = newWorkers()
	)
	defer pool.close()
	// claim starts a claim of the next batch (nil: no kind is live). It
	// runs beside the loop: the next batch is claimed while the queue's
	// last items start (a claim waits for the store's writer and its sync,
	// and the slots that freed meanwhile idled: 5.6 of the 25 s of a pass
	// over 20,000 recordings of 8 KiB).
	claim := func() chan claimResult {
		kinds := r.liveKinds()
		if len(kinds) == 0 {
			return nil
		}
		ahead, claimed = nextAhead(ahead, minAhead, claimed, time.Now())
		// An item that ends while the claim runs may have added items
		// (a lookup's recordings) the claim did not see: its store
		// transaction began before they were committed. Likewise a
		// package the cdr job commits during the claim.
		res := claimResult{before: ends.Load(), limit: ahead}
		res.more, res.coming = fd.wait()
		ch := make(chan claimResult, 1)
		go func() {
			res.items, res.err = a.Store.Claim(sctx, c, kinds, r.claimAt, res.limit)
			if res.err == nil {
				res.items = r.hold(res.items)
			}
			ch <- res
		}()
		return ch
	}
	var next chan claimResult // the claim under way, if any
	for ctx.Err() == nil && !r.isStopped() {
		if len(queue) == 0 {
			if next == nil {
				if next = claim(); next == nil {
					break
				}
			}
			res := <-next
			next = nil
			if res.err != nil {
				r.stop(a.storeErr("claim", res.err))
				break
			}
			if len(res.items) == 0 {
				if inflight.Load() == 0 {
					if ends.Load() != res.before {
						continue // claim again: it will see them
					}
					if !res.coming {
						break
					}
				}
				select {
				case <-ended:
				case <-res.more:
				case <-ctx.Done():
				case <-r.stopped:
				}
				continue
			}
			queue = res.items
			// A full batch: more are likely due. The next is claimed once
			// half of this one has started.
			full = len(res.items) == res.limit
		}
		if full && next == nil && len(queue) <= max(1, ahead/2) {
			next = claim()
		}
		select {
		case a.sem <- struct{}{}:
		case <-ctx.Done():
			continue
		case <-r.stopped:
			continue
		}
		if ctx.Err() != nil || r.isStopped() {
			<-a.sem
			break
		}
		it := queue[0]
		queue = queue[1:]
		if _, ok := r.start(it, a.transferCtx(ctx)); !ok {
			<-a.sem
			r.abandon(it, errLeaseLost)
			r.unhold(it.ID)
			continue
		}
		inflight.Add(1)
		wg.Add(1)
		pool.run(func() {
			defer wg.Done()
			// The slot is freed once the item's transfers end, before the
			// checkpoint records their outcome: the next item downloads
			// while this one's Done waits for its group commit (an item is
			// still counted done only once that commit is durable).
			record := r.process(ctx, it)
			<-a.sem
			ends.Add(1) // before inflight: see the claim loop
			inflight.Add(-1)
			select {
			case ended <- struct{}{}:
			default:
			}
			if record != nil {
				record()
			}
			r.unhold(it.ID)
		})
	}
	if next != nil {
		// The claim under way when the run stopped: its items go back.
		if res := <-next; res.err == nil {
			queue = append(queue, res.items...)
		}
	}
	r.release(sctx, queue)
	wg.Wait()
	rep := r.rep.snapshot()
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err == nil {
		err = ctx.Err()
	}
	return rep, err
}

// claimResult is a claim of runItems and what the loop knew as it began.
type claimResult struct {
	items  []checkpoint.Item
	err    error
	limit  int
	before int64           // items ended before it
	more   <-chan struct{} // closed at the feed's next addition
	coming bool            // the feed was open
}

// fastBatch: a claimed batch used up sooner than this makes the next claim
// larger (runItems).
const fastBatch = time.Second

// nextAhead is the size of the next claim, made at now, when the previous
// one (of ahead items, at last; zero: none yet) has been used up.
func nextAhead(ahead, minAhead int, last, now time.Time) (int, time.Time) {
	switch {
	case last.IsZero():
		return minAhead, now
	case now.Sub(last) < fastBatch:
		return min(2*ahead, 4*minAhead), now
	}
	return minAhead, now
}

// release puts claimed items back without counting an attempt; those
// another replica has taken over are left to it.
func (r *itemRun) release(sctx context.Context, items []checkpoint.Item) {
	for _, it := range items {
		if r.isLost(it.ID) {
			r.abandon(it, errLeaseLost)
			r.unhold(it.ID)
			continue
		}
		err := r.a.Store.Release(sctx, r.a.owner, it.ID)
		r.unhold(it.ID)
		if !r.recorded("release", it, err) {
			continue
		}
		r.a.met.Item(it.Kind, "released")
		r.rep.add(func(rep *Report) { rep.Released++ })
	}
}

// process works on one item. The outcome of a recording's fetch is
// recorded by the function it returns (nil: already recorded), which the
// caller runs once the item's transfer slot is free.
func (r *itemRun) process(ctx context.Context, it checkpoint.Item) (record func()) {
	if r.kindStopped(it.Kind) {
		r.release(storeCtx(ctx), []checkpoint.Item{it})
		return nil
	}
	switch it.Kind {
	case checkpoint.KindTransferLookup, checkpoint.KindIVRLookup:
		return r.lookup(ctx, it)
	default:
		return r.fetch(ctx, it)
	}
}

// backoff is the wait before the next try after attempts failures: Backoff
// doubling per attempt, capped at 64×Backoff, with full jitter (never 0).
func (r *itemRun) backoff(attempts int) time.Duration {
	b := r.spec.retry.Backoff
	d := b << min(max(attempts-1, 0), 6)
	return time.Duration(rand.Int64N(int64(d))) + 1
}

// failed records a failed attempt, or releases the item when the failure
// is shutdown or refused credentials.
func (r *itemRun) failed(ctx context.Context, it checkpoint.Item, err error) {
	a, sctx, tctx := r.a, storeCtx(ctx), r.transferCtx(ctx, it)
	log := r.log.With(zap.String("kind", it.Kind), zap.String("upstream_id", it.UpstreamID), zap.String("call_id", it.CallID))
	switch {
	case r.isLost(it.ID):
		r.abandon(it, err)
		return
	case tctx.Err() != nil:
		r.release(sctx, []checkpoint.Item{it})
		log.Info("item abandoned at shutdown")
		return
	case authError(err):
		r.release(sctx, []checkpoint.Item{it})
		r.rep.add(func(rep *Report) {
			if rep.AuthError == nil {
				rep.AuthError = err
			}
		})
		log.Error("credentials refused, stopping the work that needs this interface", zap.Error(err))
		r.stopKind(it.Kind, err)
		return
	}
	msg := err.Error()
	maxAttempts := r.spec.retry.MaxAttempts
	if cecclient.IsNotFound(err) {
		if r.absentOnEvidence(ctx, it, err) {
			return
		}
		msg = "not found upstream (not yet available?): " + msg
		if settling(it) {
			// A transfer or IVR recording not found before settle_max_age is
			// waited for, never given up: it becomes absent on that evidence
			// once the age is reached, not dead before.
			maxAttempts = 0
		}
	}
	st, serr := a.Store.Fail(sctx, a.owner, it.ID, msg, a.now().Add(r.backoff(it.Attempts+1)), maxAttempts)
	if !r.recorded("fail", it, serr) {
		return
	}
	if st == checkpoint.StateDead {
		a.met.Item(it.Kind, "dead")
		r.rep.add(func(rep *Report) { rep.Dead++ })
		log.Error("item is dead", zap.Int("attempts", it.Attempts+1), zap.Error(err))
		return
	}
	a.met.Item(it.Kind, "failed")
	r.rep.add(func(rep *Report) { rep.Failed++ })
	log.Warn("item failed", zap.Int("attempts", it.Attempts+1), zap.Error(err))
}

// fetch downloads one recording and stores it under its key. Transient
// failures are tried again InPassAttempts times within the run.
// fetch downloads and stores one recording; on success it returns the
// function that records it done (the object is in the sink, verified).
func (r *itemRun) fetch(ctx context.Context, it checkpoint.Item) (record func()) {
	a, tctx := r.a, r.transferCtx(ctx, it)
	var obj stored
	var err error
	wait := inPassBackoff
	for attempt := 1; ; attempt++ {
		obj, err = r.fetchOnce(tctx, it)
		if err == nil || attempt >= a.inPassAttempts() || tctx.Err() != nil || authError(err) ||
			errors.Is(err, sink.ErrConflict) || !cecclient.IsTransient(err) {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-tctx.Done():
		case <-t.C:
		}
		t.Stop()
		wait *= 2
	}
	if err != nil {
		r.failed(ctx, it, err)
		return nil
	}
	return func() { r.done(ctx, it, obj) }
}

// stored is a recording in the sink: the object, and the item's
// arguments to keep with its done mark when the write changed them (the
// retention rule it was stored under), nil when it did not.
type stored struct {
	sink.Object
	args Args
}

// done records a fetched recording done and counts it. It runs after the
// item's slot is freed (runItems), so the store may take its time to group
// the mark with others (checkpoint.Unhurried): the item counts done once
// the mark is durable, whenever that is.
func (r *itemRun) done(ctx context.Context, it checkpoint.Item, s stored) {
	a, obj := r.a, s.Object
	sctx := checkpoint.Unhurried(storeCtx(ctx))
	var serr error
	if s.args != nil {
		var b []byte
		if b, serr = json.Marshal(s.args); serr == nil {
			serr = a.Store.DoneArgs(sctx, a.owner, it.ID, it.Key, obj.Size, obj.SHA256, b)
		}
	} else {
		serr = a.Store.Done(sctx, a.owner, it.ID, it.Key, obj.Size, obj.SHA256)
	}
	if !r.recorded("done", it, serr) {
		return
	}
	if obj.Existed {
		// Stored by an earlier run that crashed before its checkpoint (F3).
		a.met.Item(it.Kind, "existed")
		r.rep.add(func(rep *Report) { rep.Existed++ })
		return
	}
	a.met.Item(it.Kind, "done")
	a.met.Bytes(it.Kind, obj.Size)
	r.rep.add(func(rep *Report) { rep.Done++; rep.Bytes += obj.Size })
}

func (r *itemRun) fetchOnce(ctx context.Context, it checkpoint.Item) (stored, error) {
	a := r.a
	args, err := decodeArgs(it)
	if err != nil {
		return stored{}, err
	}
	d, err := r.open(ctx, it, args)
	if err != nil {
		return stored{}, err
	}
	defer d.Body.Close()
	om := meta(args)
	c := a.retentionAt(it, om)
	var obj sink.Object
	if cms, ok := args.(CMSArgs); ok {
		obj, err = r.storeBundle(ctx, it, d, cms, c)
	} else {
		// One recording: validated while it streams into the sink. A body
		// that is not a recording fails on its first bytes or at its end,
		// and the sink keeps nothing of a body whose reader failed.
		body := recording.NewReader(d.Body, d.Length, a.Formats)
		obj, err = a.Sink.Put(ctx, it.Key, body, d.Length, om.sinkMeta("audio/wav", "", c))
		if err != nil {
			err = r.putError(it, err)
		}
	}
	if err != nil {
		return stored{}, err
	}
	if obj.Existed && (c != nil || om.Retention != nil || len(a.Retention.Rules) > 0) {
		c = a.storedRetention(ctx, it.Key, obj, c)
	}
	s := stored{Object: obj}
	if !c.equal(om.Retention) {
		s.args = withRetention(args, c)
	}
	return s, nil
}

// putError names a failed Put of it: a body that is not a recording, or a
// sink failure.
func (r *itemRun) putError(it checkpoint.Item, err error) error {
	if errors.Is(err, recording.ErrNotRecording) || errors.Is(err, recording.ErrIsZip) {
		r.a.met.UpstreamError("content")
		return fmt.Errorf("jobs: %s %s: %w", it.Kind, it.UpstreamID, err)
	}
	return fmt.Errorf("jobs: store %s %s: %w", it.Kind, it.Key, err)
}

// storeBundle stores a call-level download (CC-CMS by call ID): a WAV when
// the index lists one recording for the call, else a ZIP that must hold a
// member for every index row (matched by name). A ZIP is spooled to disk,
// checked (every member a valid recording, sizes bounded) and then stored
// with its digest; a download lacking any row fails naming it, and nothing
// is stored.
func (r *itemRun) storeBundle(ctx context.Context, it checkpoint.Item, d *cecclient.Download, args CMSArgs, c *RetentionChoice) (sink.Object, error) {
	a := r.a
	want := args.Members
	if len(want) == 0 {
		return sink.Object{}, fmt.Errorf("jobs: %s %s: members %q: not a list of index rows", it.Kind, it.UpstreamID, want)
	}
	if !d.Zip {
		if len(want) > 1 {
			return sink.Object{}, fmt.Errorf("jobs: %s %s: %w: the download is one recording (%s) but the index lists %d for the call; missing: %s",
				it.Kind, it.UpstreamID, recording.ErrNotRecording, orNone(d.FileName), len(want), strings.Join(want[1:], ", "))
		}
		obj, err := a.Sink.Put(ctx, it.Key, recording.NewReader(d.Body, d.Length, a.Formats), d.Length, args.sinkMeta("audio/wav", "", c))
		if err != nil {
			return sink.Object{}, r.putError(it, err)
		}
		return obj, nil
	}
	f, drop, err := createSpool(a.SpoolDir, "bundle-*.zip")
	if err != nil {
		return sink.Object{}, fmt.Errorf("jobs: spool %s %s: %w", it.Kind, it.UpstreamID, err)
	}
	defer drop()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), d.Body)
	if err != nil {
		return sink.Object{}, fmt.Errorf("jobs: download %s %s: %w", it.Kind, it.UpstreamID, err)
	}
	if d.Length >= 0 && n != d.Length {
		return sink.Object{}, fmt.Errorf("jobs: download %s %s: %d bytes, Content-Length %d: %w", it.Kind, it.UpstreamID, n, d.Length, io.ErrUnexpectedEOF)
	}
	got, err := recording.CheckZip(f, n, a.Formats, maxBundleEntries, a.maxRecordingBytes())
	if err != nil {
		return sink.Object{}, fmt.Errorf("jobs: %s %s: %w", it.Kind, it.UpstreamID, err)
	}
	if missing := matchMembers(want, got); len(missing) > 0 {
		names := make([]string, len(got))
		for i, m := range got {
			names[i] = m.Name
		}
		return sink.Object{}, fmt.Errorf("jobs: %s %s: %w: the bundle lacks %d of the call's %d index rows: %s (members: %s)",
			it.Kind, it.UpstreamID, recording.ErrNotRecording, len(missing), len(want), strings.Join(missing, ", "), strings.Join(names, ", "))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return sink.Object{}, err
	}
	obj, err := a.Sink.Put(ctx, it.Key, f, n, args.sinkMeta("application/zip", hex.EncodeToString(h.Sum(nil)), c))
	if err != nil {
		return sink.Object{}, r.putError(it, err)
	}
	return obj, nil
}

// maxBundleEntries bounds the members of a call-level ZIP.
const maxBundleEntries = 1000

// matchMembers pairs every index row (a file_name) with a distinct member
// of the bundle whose name is the row's base name, or ends with it after a
// "_" or "-" (a member named after the agent and the file, say), and
// returns the rows left without one.
func matchMembers(rows []string, members []recording.Member) []string {
	used := make([]bool, len(members))
	var missing []string
	for _, row := range rows {
		base := pathBase(row)
		found := false
		for i, m := range members {
			if used[i] {
				continue
			}
			if m.Name == base || strings.HasSuffix(m.Name, "_"+base) || strings.HasSuffix(m.Name, "-"+base) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, row)
		}
	}
	return missing
}

// open starts the download of an item with the interface its kind needs.
func (r *itemRun) open(ctx context.Context, it checkpoint.Item, args Args) (*cecclient.Download, error) {
	a := r.a
	switch p := args.(type) {
	case OIAPArgs:
		return a.Client.DownloadOiapRecord(ctx, p.RecordPath, p.LocationID)
	case CMSArgs:
		// By call ID alone: workNo and beginTime are filters, and a call
		// whose index lists recordings of two agents (or one that starts
		// after midnight) would come back short.
		return a.Client.CMSDownloadRecordFile(ctx, cecclient.CMSRecordRequest{CallID: it.CallID})
	case AgentArgs:
		if a.method() == config.MethodDownloadRecord {
			name := p.OriginalFileName
			if name == "" {
				name = p.FileName
			}
			return a.Client.DownloadRecord(ctx, cecclient.DownloadRecordRequest{FileName: name, CcID: p.CcID})
		}
		return a.Client.DownloadRecordFile(ctx, p.FileName)
	}
	return nil, fmt.Errorf("jobs: item %d: unknown kind %q", it.ID, it.Kind)
}

// lookup queries OIFDE for one call's transfer or IVR records and adds an
// item per recording (or an absent item with the reason). Transfer records
// that have not settled (opResult INIT, recordResult N/A, …) are waited for
// until SettleMaxAge after the call began: the lookup is deferred by
// Retry.Backoff; past that age they are absent with the reason. A lookup
// that found everything returns its Done, made once its slot is freed;
// any other outcome is recorded before it returns nil.
func (r *itemRun) lookup(ctx context.Context, it checkpoint.Item) (record func()) {
	a, sctx, tctx := r.a, storeCtx(ctx), r.transferCtx(ctx, it)
	now := a.now()
	args, err := decodeArgs(it)
	if err == nil && args.(LookupArgs).CallBegin.IsZero() {
		err = errors.New("no call_begin")
	}
	if err != nil {
		r.failed(ctx, it, fmt.Errorf("jobs: lookup %s: %w", it.CallID, err))
		return nil
	}
	largs := args.(LookupArgs)
	callBegin := largs.CallBegin
	var (
		pending, absent []checkpoint.Item
		unsettled       int
		invalid         []string
		qerr            error
	)
	addAbsent := func(kind, id, reason, evidence string) {
		ab, err := r.absentItem(it, largs, kind, id, reason, evidence)
		if err != nil {
			invalid = append(invalid, err.Error())
			return
		}
		absent = append(absent, ab)
	}
	q := cecclient.OIFDEQuery{CtiCallID: it.CallID}
	if it.Kind == checkpoint.KindTransferLookup {
		for tr, err := range a.Client.QueryTransferRecords(tctx, q) {
			if err != nil {
				if errors.Is(err, cecclient.ErrInvalidRecord) {
					invalid = append(invalid, err.Error())
					continue
				}
				qerr = err
				break
			}
			id, path := tr.ID.String(), tr.RecordFilePath
			// A record with a path is downloaded, whatever opResult and
			// recordResult say: recordResult N/A means "no feedback", not "no
			// file" (cec-api.md A.5). Only the download's own answer proves a
			// recording absent.
			switch {
			case path != "":
				rec, err := r.recordingItem(it, largs, checkpoint.KindTransfer, id, path, tr.LocationID.String(),
					msTime(tr.StartTime), msTime(tr.EndTime), tr.CallingNumber, tr.CalledNumber, callBegin)
				if err != nil {
					invalid = append(invalid, err.Error())
					continue
				}
				pending = append(pending, rec)
			case tr.OpResult == cecwire.OpResultFail:
				addAbsent(checkpoint.KindTransfer, id, "opResult FAIL, no recordFilePath",
					fmt.Sprintf("queryTransferRecordHistory at %s: record %s opResult FAIL, recordResult %q, no recordFilePath",
						now.UTC().Format(time.RFC3339), id, tr.RecordResult))
			default:
				why := "opResult " + tr.OpResult
				if tr.OpResult == "" {
					why = "no opResult"
				}
				if now.Sub(callBegin) > r.spec.settle {
					addAbsent(checkpoint.KindTransfer, id,
						fmt.Sprintf("%s and no recordFilePath after settle_max_age %s", why, r.spec.settle),
						fmt.Sprintf("queryTransferRecordHistory at %s: record %s still %s, recordResult %q, no recordFilePath, %s after the call began",
							now.UTC().Format(time.RFC3339), id, why, tr.RecordResult, now.Sub(callBegin).Round(time.Minute)))
				} else {
					unsettled++
				}
			}
		}
	} else {
		for sr, err := range a.Client.QueryRecordHistory(tctx, q) {
			if err != nil {
				if errors.Is(err, cecclient.ErrInvalidRecord) {
					invalid = append(invalid, err.Error())
					continue
				}
				qerr = err
				break
			}
			id := sr.LogID.String()
			if sr.RecordFilePath == "" {
				addAbsent(checkpoint.KindIVR, id, "no recordFilePath",
					fmt.Sprintf("queryRecordHistory at %s: session record %s has no recordFilePath", now.UTC().Format(time.RFC3339), id))
				continue
			}
			rec, err := r.recordingItem(it, largs, checkpoint.KindIVR, id, sr.RecordFilePath, sr.LocationID.String(),
				time.Time{}, time.Time{}, sr.CallingNumber, sr.CalledNumber, callBegin)
			if err != nil {
				invalid = append(invalid, err.Error())
				continue
			}
			pending = append(pending, rec)
		}
	}
	// What was found is recorded even when the query broke off: adding is
	// idempotent, and the lookup is tried again.
	for _, list := range [][]checkpoint.Item{pending, absent} {
		if len(list) == 0 {
			continue
		}
		added, err := a.Store.AddItems(sctx, list)
		if err != nil {
			r.stop(a.storeErr("add items", err))
			return nil
		}
		isAbsent := list[0].State == checkpoint.StateAbsent
		r.rep.add(func(rep *Report) {
			rep.Added += added
			if isAbsent {
				rep.Absent += added
			}
		})
		if isAbsent {
			for range added {
				a.met.Item(list[0].Kind, "absent")
			}
		}
	}
	switch {
	case qerr != nil:
		r.failed(ctx, it, fmt.Errorf("jobs: lookup %s: %w", it.CallID, qerr))
		return nil
	case len(invalid) > 0:
		r.failed(ctx, it, fmt.Errorf("jobs: lookup %s: %d unusable records, first: %s", it.CallID, len(invalid), invalid[0]))
		return nil
	case unsettled > 0:
		note := fmt.Sprintf("waiting for %d records to settle", unsettled)
		if unsettled == 1 {
			note = "waiting for 1 record to settle"
		}
		if err := a.Store.Defer(sctx, a.owner, it.ID, now.Add(r.spec.retry.Backoff), note); !r.recorded("defer", it, err) {
			return nil
		}
		a.met.Item(it.Kind, "deferred")
		r.rep.add(func(rep *Report) { rep.Deferred++ })
		return nil
	}
	// Done once the slot is freed, as a recording's (itemRun.done): what the
	// lookup found is committed already.
	return func() {
		if err := a.Store.Done(checkpoint.Unhurried(sctx), a.owner, it.ID, "", 0, ""); !r.recorded("done", it, err) {
			return
		}
		a.met.Item(it.Kind, "done")
		r.rep.add(func(rep *Report) { rep.Done++ })
	}
}

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// recordingItem is a transfer or IVR recording found by a lookup. Its key
// uses the call's begin, so that every recording of a call shares a day.
func (r *itemRun) recordingItem(lookup checkpoint.Item, p LookupArgs, kind, id, path, location string, begin, end time.Time, caller, callee string, callBegin time.Time) (checkpoint.Item, error) {
	a := r.a
	key, err := a.Keys.Build(sink.KeyFields{
		Tenant: a.Tenant, VDN: orNone(p.VDN), CallID: lookup.CallID, AgentID: orNone(p.AgentID), RecordID: id,
		Kind: kind, Name: orNone(pathBase(path)), Time: wallUTC(callBegin, a.loc()),
	})
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("%s %s: key: %w", kind, id, err)
	}
	if begin.IsZero() {
		begin = callBegin
	}
	m, err := a.Meta.Meta(sink.RecordAttrs{
		CallID: lookup.CallID, RecordID: id, AgentID: p.AgentID, VDN: p.VDN, Begin: begin, End: end,
		CallerNo: caller, CalleeNo: callee,
	}, "")
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("%s %s: metadata: %w", kind, id, err)
	}
	om := objectMeta(m)
	callData(&om, kind, p.VDN, p.AgentID, nil)
	return withArgs(checkpoint.Item{
		UpstreamID: id, CallID: lookup.CallID, Day: lookup.Day, Key: key, State: checkpoint.StatePending, NextAttemptAt: r.claimAt,
	}, OIAPArgs{kind: kind, RecordPath: path, LocationID: location, CallBegin: p.CallBegin, VDN: p.VDN, AgentID: p.AgentID, ObjectMeta: om})
}

func (r *itemRun) absentItem(lookup checkpoint.Item, p LookupArgs, kind, id, reason, evidence string) (checkpoint.Item, error) {
	return withArgs(checkpoint.Item{
		UpstreamID: id, CallID: lookup.CallID, Day: lookup.Day, State: checkpoint.StateAbsent, Reason: reason, Evidence: evidence,
	}, OIAPArgs{kind: kind, CallBegin: p.CallBegin})
}

// settling reports whether a not-found answer for it may still turn into an
// absence: transfer and IVR recordings.
func settling(it checkpoint.Item) bool {
	return it.Kind == checkpoint.KindTransfer || it.Kind == checkpoint.KindIVR
}

// absentOnEvidence marks a transfer or IVR recording absent when its
// download answered "no such file" (0300012 and its kin) and the call is
// older than settle_max_age: the source's own evidence, recorded with the
// interface, the result code and the time. Before that age the item is
// failed as usual and tried again. Agent recordings are listed by the CDR
// index itself, so a not-found never closes them: they stay failed, then
// dead, visible, until they appear or an operator resolves them.
func (r *itemRun) absentOnEvidence(ctx context.Context, it checkpoint.Item, err error) bool {
	if !settling(it) {
		return false
	}
	a := r.a
	now := a.now()
	args, perr := decodeArgs(it)
	if perr != nil {
		return false
	}
	p, ok := args.(OIAPArgs)
	if !ok || p.CallBegin.IsZero() || now.Sub(p.CallBegin) <= r.spec.settle {
		return false
	}
	begin := p.CallBegin
	code, service, desc := "not found", cecclient.ServiceFS, ""
	var ae *cecclient.APIError
	if errors.As(err, &ae) {
		if ae.ResultCode != "" {
			code = ae.ResultCode
		}
		if ae.Service != "" {
			service = ae.Service
		}
		desc = oneLine(ae.Desc)
	}
	if desc != "" {
		if len(desc) > 80 {
			desc = desc[:80] + "…"
		}
		desc = " (" + desc + ")"
	}
	evidence := fmt.Sprintf("%s downloadOiapRecord answered %s%s for %q at %s (attempt %d, %s after the call began)",
		service, code, desc, p.RecordPath, now.UTC().Format(time.RFC3339), it.Attempts+1, now.Sub(begin).Round(time.Minute))
	reason := fmt.Sprintf("the download answers %s (no such file) past settle_max_age %s", code, r.spec.settle)
	if serr := a.Store.Absent(storeCtx(ctx), a.owner, it.ID, reason, evidence); !r.recorded("absent", it, serr) {
		return true
	}
	a.met.Item(it.Kind, "absent")
	r.rep.add(func(rep *Report) { rep.Absent++ })
	r.log.Info("recording absent on the source's evidence", zap.String("kind", it.Kind), zap.String("upstream_id", it.UpstreamID),
		zap.String("call_id", it.CallID), zap.String("evidence", evidence))
	return true
}
