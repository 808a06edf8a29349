package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// Group commit of item transitions.
//
// Done, Absent, Fail, Defer and Release are the calls a job's workers make,
// one per item, concurrently. One IMMEDIATE transaction with its own fsync
// per call made the checkpoint a quarter of the archiver's CPU on small
// files. The calls hand their op to one committer goroutine instead, which
// applies the ops waiting at that moment in one transaction and then answers
// every caller: a call still returns only after its own change is committed
// and durable.
//
// The committer waits for more ops only when callers are seen to be
// concurrent: the target size of a batch is the number of callers that
// waited on the previous one (its ops not marked unhurried), and a smaller
// batch waits for more until its oldest such op has waited
// Options.BatchWindow since its call. A lone caller, whose batches are all
// of one, never waits; ops that arrive while a batch commits are taken
// together as soon as it is done.
//
// Ops whose ctx is checkpoint.Unhurried (a job's Done after its worker
// has moved on) wait longer: a batch of nothing but those waits for more
// until it is full (MaxBatch) or its oldest op has waited
// Options.UnhurriedWindow. Their callers keep no slot busy meanwhile, and
// the ops arrive whatever the commits do, so batches grow to what arrives in
// the window: one commit and its fsync for many recordings instead of a
// handful. An op that is not unhurried joining such a batch ends that wait
// (the batch then follows the rule above).

// Defaults of Options.MaxBatch, Options.BatchWindow and
// Options.UnhurriedWindow.
const (
	DefaultMaxBatch        = 64
	DefaultBatchWindow     = 2 * time.Millisecond
	DefaultUnhurriedWindow = 20 * time.Millisecond
)

// ErrClosed is returned by a transition called after Close.
var ErrClosed = errors.New("checkpoint: store is closed")

// op is one item transition: the item must exist and be in one of the from
// states, then apply changes it.
type op struct {
	ctx   context.Context // the caller's; consulted only until the op is taken
	owner string          // who calls: an in_progress item must be theirs
	id    int64
	from  []checkpoint.State
	apply func(ctx context.Context, tx *batchTx, attempts int) error
	// update, when not "", is apply as one statement: an UPDATE of the
	// item ending in "WHERE id = ?", with its arguments (id last). It runs
	// guarded by the checks (guarded), without reading the item first; the
	// item is read only when it changed nothing, to name the refusal.
	update    string
	args      []any
	start     time.Time  // when the caller submitted it
	unhurried bool       // ctx is checkpoint.Unhurried
	done      chan error // the outcome; buffered, written once
}

// refusal marks an error of the op itself (a value that cannot be stored)
// raised before it wrote anything.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// batchTx is the transaction of a batch. It prepares each statement once
// for all the ops that run it.
type batchTx struct {
	tx     *sql.Tx
	cache  *stmtCache
	stmts  map[string]*sql.Stmt // closed with tx
	missed []string             // statements the cache did not have
}

func newBatchTx(tx *sql.Tx, cache *stmtCache) *batchTx {
	return &batchTx{tx: tx, cache: cache, stmts: map[string]*sql.Stmt{}}
}

func (b *batchTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := b.stmts[q]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if c := b.cache.get(q); c != nil {
		st = b.tx.StmtContext(ctx, c)
	} else {
		var err error
		if st, err = b.tx.PrepareContext(ctx, q); err != nil {
			return nil, err
		}
		b.missed = append(b.missed, q)
	}
	b.stmts[q] = st
	return st, nil
}

// exec runs one statement.
func (b *batchTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := b.execN(ctx, q, args...)
	return err
}

// execN runs one statement and returns the rows it changed.
func (b *batchTx) execN(ctx context.Context, q string, args ...any) (int64, error) {
	st, err := b.stmt(ctx, q)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// transition applies o inside tx. refused is the op's own error (unknown
// item, wrong state, a value that cannot be stored, a constraint): the op
// changed nothing and the transaction can go on. err is a failure of the
// database: the transaction must be rolled back.
func (s *Store) transition(ctx context.Context, tx *batchTx, o *op) (refused, err error) {
	if o.update != "" && !s.selectFirst {
		args := append(s.opArgs(o), statesArgs(o.from)...)
		n, err := tx.execN(ctx, guarded(o.update, len(o.from)), append(args, o.owner)...)
		if refused, err := classify(err); refused != nil || err != nil {
			return refused, err
		}
		if n == 1 {
			return nil, nil
		}
		// Nothing changed: the item is missing, or refused below.
	}
	sel, err := tx.stmt(ctx, `SELECT state, attempts, owner FROM items WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	var st checkpoint.State
	var attempts int
	var owner string
	err = sel.QueryRowContext(ctx, o.id).Scan(&st, &attempts, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpoint.ErrNotFound, nil
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(o.from, st) {
		return fmt.Errorf("item is %s: %w", st, checkpoint.ErrState), nil
	}
	if st == checkpoint.StateInProgress && owner != o.owner {
		return fmt.Errorf("item is %s, claimed by %q: %w", st, owner, checkpoint.ErrLeaseLost), nil
	}
	if o.update != "" {
		_, err = tx.execN(ctx, o.update, s.opArgs(o)...)
	} else {
		err = o.apply(ctx, tx, attempts)
	}
	return classify(err)
}

// classify splits the error of an op's change: refused is the op's own (a
// refusal, a constraint), err a failure of the database.
func classify(err error) (refused, _ error) {
	var r refusal
	var se *msqlite.Error
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &r):
		return r.err, nil
	case errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT:
		// A constraint aborts only its statement (ON CONFLICT ABORT, the
		// default); the transaction and the other ops' changes stay.
		return err, nil
	default:
		// Anything else (disk full, I/O error, busy) may have ended the
		// transaction already; nothing more may run in it.
		return nil, err
	}
}

// stampNow is, among an op's args, the store's clock (stamp) at the moment
// the op is applied in its transaction.
type stampNow struct{}

// opArgs is a copy of o's args with stampNow replaced.
func (s *Store) opArgs(o *op) []any {
	out := make([]any, len(o.args), len(o.args)+len(o.from)+1)
	for i, a := range o.args {
		if _, ok := a.(stampNow); ok {
			a = s.stamp()
		}
		out[i] = a
	}
	return out
}

// guarded is update (ending in "WHERE id = ?") that changes the item only
// if it is in one of nfrom states and, in_progress, the caller's: the checks
// transition makes on the row it reads. Its arguments are update's, the
// states, then the owner.
func guarded(update string, nfrom int) string {
	return update + ` AND state IN (?` + strings.Repeat(`, ?`, nfrom-1) + `) AND (state <> 'in_progress' OR owner = ?)`
}

func statesArgs(states []checkpoint.State) []any {
	out := make([]any, len(states))
	for i, st := range states {
		out[i] = st
	}
	return out
}

// submit runs o and returns its outcome, unwrapped. With group commit off it
// is its own transaction, run here; otherwise the committer takes it into a
// batch. A ctx that ends before then makes submit return ctx.Err() with
// nothing applied; once taken, the op's outcome is its batch's, whatever
// happens to ctx.
func (s *Store) submit(o *op) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if err := o.ctx.Err(); err != nil {
		return err
	}
	g := s.group
	if g == nil {
		var missed []string
		err := s.write(o.ctx, func(tx *sql.Tx) error {
			btx := newBatchTx(tx, &s.stmts)
			refused, err := s.transition(o.ctx, btx, o)
			missed = btx.missed
			if err != nil {
				return err
			}
			return refused
		})
		s.stmts.learn(o.ctx, s.db, missed)
		return err
	}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrClosed
	}
	g.submitters.Add(1)
	g.mu.RUnlock()
	o.start = time.Now()
	o.unhurried = checkpoint.IsUnhurried(o.ctx)
	o.done = make(chan error, 1)
	select {
	case g.ops <- o:
		g.submitters.Done()
	case <-o.ctx.Done():
		g.submitters.Done()
		return o.ctx.Err()
	}
	return <-o.done
}

// committer batches the ops it is handed.
type committer struct {
	s         *Store
	maxBatch  int
	window    time.Duration // ≤ 0: never wait for more ops
	unhurried time.Duration // the wait of a batch of unhurried ops alone (≤ 0: as the others)

	ops    chan *op      // unbuffered: an op is taken when it is received
	quit   chan struct{} // closed by stop once no submitter is left
	exited chan struct{} // closed when run returns

	mu         sync.RWMutex // guards closed against new submitters
	closed     bool
	submitters sync.WaitGroup // callers of submit handing an op over

	stats groupStats
}

// groupStats counts what the committer did, for tests and benchmarks.
type groupStats struct {
	taken   atomic.Int64 // ops taken into a batch (cancelled ones included)
	commits atomic.Int64 // batch transactions, committed or not
	ops     atomic.Int64 // ops in those transactions
}

func newCommitter(s *Store, maxBatch int, window, unhurried time.Duration) *committer {
	g := &committer{
		s: s, maxBatch: maxBatch, window: window, unhurried: unhurried,
		ops: make(chan *op), quit: make(chan struct{}), exited: make(chan struct{}),
	}
	go g.run()
	return g
}

// stop refuses new ops, waits until every op already submitted is taken
// (and so committed or failed) or given up by its caller, and stops the
// committer.
func (g *committer) stop() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.submitters.Wait()
	close(g.quit)
	<-g.exited
}

func (g *committer) run() {
	defer close(g.exited)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	target := 1 // the callers waiting on the previous batch: how many seem concurrent
	batch := make([]*op, 0, g.maxBatch)
	for {
		select {
		case o := <-g.ops:
			batch = g.take(batch, o)
		case <-g.quit:
			return
		}
		batch = g.drain(batch)
	wait:
		for {
			want, until := g.wanted(batch, target)
			if len(batch) >= want {
				break
			}
			d := time.Until(until)
			if d <= 0 {
				break
			}
			timer.Reset(d)
			select {
			case o := <-g.ops:
				timer.Stop()
				batch = g.drain(g.take(batch, o))
			case <-timer.C:
				break wait
			case <-g.quit:
				timer.Stop()
				break wait
			}
		}
		if len(batch) == 0 {
			continue // every op taken had been cancelled
		}
		g.commit(batch)
		target = 0
		for _, o := range batch {
			if !o.unhurried {
				target++
			}
		}
		target = max(target, 1)
		clear(batch)
		batch = batch[:0]
	}
}

// wanted is how many ops batch waits for and until when: up to target
// until its oldest op that is not unhurried has waited the window; a batch
// of unhurried ops alone, until it is full or its oldest has waited the
// unhurried window. An empty batch, or a committer that never waits,
// wants nothing.
func (g *committer) wanted(batch []*op, target int) (int, time.Time) {
	if len(batch) == 0 || g.window <= 0 {
		return 0, time.Time{}
	}
	for _, o := range batch {
		if !o.unhurried {
			return target, o.start.Add(g.window)
		}
	}
	if g.unhurried <= 0 {
		return target, batch[0].start.Add(g.window)
	}
	return g.maxBatch, batch[0].start.Add(g.unhurried)
}

// take adds o to the batch, unless its caller's ctx has ended: then o is
// answered with ctx.Err() and not applied.
func (g *committer) take(batch []*op, o *op) []*op {
	g.stats.taken.Add(1)
	if err := o.ctx.Err(); err != nil {
		o.done <- err
		return batch
	}
	return append(batch, o)
}

// drain takes the ops already waiting, up to maxBatch.
func (g *committer) drain(batch []*op) []*op {
	for len(batch) < g.maxBatch {
		select {
		case o := <-g.ops:
			batch = g.take(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// commit applies the batch in one IMMEDIATE transaction and answers every
// op: with its own refusal (the others are applied regardless), or with the
// transaction's error (nothing of the batch is applied), or nil once the
// transaction is committed.
func (g *committer) commit(batch []*op) {
	g.stats.commits.Add(1)
	g.stats.ops.Add(int64(len(batch)))
	// Not any caller's ctx: one caller giving up must not abort the others.
	ctx := context.Background()
	refused := make([]error, len(batch))
	var missed []string
	err := g.s.write(ctx, func(tx *sql.Tx) error {
		btx := newBatchTx(tx, &g.s.stmts)
		defer func() { missed = btx.missed }()
		for i, o := range batch {
			var err error
			if refused[i], err = g.s.transition(ctx, btx, o); err != nil {
				return err
			}
		}
		return nil
	})
	g.s.stmts.learn(ctx, g.s.db, missed)
	if err != nil {
		err = fmt.Errorf("commit of %d transitions: %w", len(batch), err)
	}
	for i, o := range batch {
		if err != nil {
			o.done <- err
		} else {
			o.done <- refused[i]
		}
	}
}
