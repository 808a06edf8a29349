// Package sqlite implements checkpoint.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go).
//
// The database runs in WAL mode with synchronous=FULL: every state change is
// committed and fsynced before its method returns. Every method is one
// IMMEDIATE transaction of its own, except the item transitions (Done,
// Absent, Resolve, Fail, Defer, Release), which a job's workers call
// concurrently, one per item: they are committed in groups (group.go). One
// committer goroutine applies the transitions waiting at that moment, up to
// Options.MaxBatch, in one transaction, so that one fsync serves them all,
// and answers each caller once that transaction is committed. A transition
// refused for its own item (unknown, wrong state) is refused to its caller
// alone and the rest of its group is committed; when the transaction fails,
// every caller in the group gets the error and nothing of the group is
// applied. A transition whose ctx ends before the committer takes it returns
// ctx.Err() and is not applied; once taken, its outcome is its group's,
// whatever becomes of ctx. A lone caller is committed at once: the committer
// waits for more transitions (at most Options.BatchWindow) only while
// callers are concurrent. Transitions marked checkpoint.Unhurried, whose
// callers have moved on, wait longer to share a commit (at most
// Options.UnhurriedWindow, or until the group is full).
//
// A read-write store holds an exclusive flock on path+".lock" for its
// lifetime, so a second daemon on the same state file is refused with a
// *checkpoint.LockedError; a ReadOnly store (archiver status) takes no lock
// and can read while a daemon runs.
//
// Claims and named leases work as the checkpoint contract says, within the
// process (the replicas of a test, or several owners sharing the store).
// Since the lock admits one process, the claims and leases Open finds in
// the file are a dead process's: Open expires them, so that
// RecoverInProgress releases at once what a killed archiver left in
// progress, as before leases existed.
//
// Times are stored as integer Unix nanoseconds UTC and come back in UTC. The
// zero time is stored as 0, so the instant 1970-01-01T00:00:00Z reads back as
// the zero time; times outside the years 1678–2262 cannot be stored and are
// refused with an error.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// DefaultBusyTimeout is how long a statement waits for another connection's
// lock before failing with SQLITE_BUSY, when Options.BusyTimeout is zero.
const DefaultBusyTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// ReadOnly opens an existing database for reading only and takes no
	// lock; every state-changing method fails.
	ReadOnly bool
	// BusyTimeout bounds waits on another connection's lock (default
	// DefaultBusyTimeout).
	BusyTimeout time.Duration
	// Logger receives migrations and lock events (default zap.NewNop()).
	Logger *zap.Logger
	// Now stamps CreatedAt, UpdatedAt and ledger times, and is the clock of
	// leases (default time.Now).
	Now func() time.Time
	// MaxBatch caps how many item transitions one group commit applies
	// (default DefaultMaxBatch). 1 turns group commit off: every transition
	// is its own transaction, run by its caller.
	MaxBatch int
	// BatchWindow is the longest a transition waits for others to share its
	// commit, counted from its call (default DefaultBatchWindow; negative:
	// never wait, group only the transitions already waiting). The
	// committer waits only while more than one caller waited on the
	// previous group, and only until the group has as many.
	BatchWindow time.Duration
	// UnhurriedWindow is the longest a group of unhurried transitions
	// alone (checkpoint.Unhurried) waits for more, counted from the oldest
	// one's call (default DefaultUnhurriedWindow; negative: as the others,
	// BatchWindow).
	UnhurriedWindow time.Duration
}

// Store is a checkpoint.Store backed by one SQLite database file. It is safe
// for concurrent use; a read-write Store serialises all statements on one
// connection, which also serialises writers.
type Store struct {
	db       *sql.DB
	path     string
	readOnly bool
	log      *zap.Logger
	now      func() time.Time
	group    *committer // nil when ReadOnly or MaxBatch is 1
	stmts    stmtCache  // statements of the hot paths, prepared once
	// insertRows is the rows one INSERT adds (0: the insertRows constant).
	insertRows int
	// selectFirst makes every transition read its item before it changes
	// it, as they all did before the guarded UPDATE (a benchmark's baseline).
	selectFirst bool

	mu   sync.Mutex // guards lock and done
	lock *os.File   // nil for ReadOnly
	done bool
}

var _ checkpoint.Store = (*Store)(nil)

// Open opens (creating and migrating when needed) the state database at path.
//
// Unless o.ReadOnly, it first takes an exclusive non-blocking flock on
// path+".lock"; when another process (or another Store in this process)
// holds it, Open returns a *checkpoint.LockedError (errors.Is ErrLocked) with
// the holder's PID when readable. It creates the parent directory (0700) and
// the database file (0600) if missing, and applies pending migrations. A
// database migrated by a newer archiver is refused (ErrSchemaTooNew).
//
// With o.ReadOnly the database must exist and be at this binary's schema
// version; nothing is created, locked or migrated.
func Open(path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("checkpoint: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.BatchWindow == 0 {
		o.BatchWindow = DefaultBatchWindow
	}
	if o.UnhurriedWindow == 0 {
		o.UnhurriedWindow = DefaultUnhurriedWindow
	}
	s := &Store{path: path, readOnly: o.ReadOnly, log: o.Logger, now: o.Now}
	ctx := context.Background()

	if o.ReadOnly {
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("checkpoint: open %s read-only: %w", path, err)
		}
		db, err := sql.Open("sqlite", dsn(abs, o))
		if err != nil {
			return nil, fmt.Errorf("checkpoint: open %s read-only: %w", path, err)
		}
		v, err := schemaVersion(ctx, db)
		if err == nil {
			err = checkVersion(path, v)
		}
		if err == nil && v < len(migrations()) {
			err = fmt.Errorf("checkpoint: open %s read-only: schema version %d, want %d: %w", path, v, len(migrations()), ErrSchemaTooOld)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("checkpoint: open %s read-only: %w", path, err)
		}
		s.db = db
		return s, nil
	}

	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	lock, err := lockFile(path, abs+".lock")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Store, error) {
		unlockFile(lock)
		return nil, err
	}
	// A new state file appears only fully initialised: it is built under a
	// temporary name and renamed into place, so that a process killed while
	// creating it leaves no file a reader would find half-made.
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		if err := s.initFile(ctx, abs, o); err != nil {
			return fail(fmt.Errorf("checkpoint: create %s: %w", path, err))
		}
	}
	db, err := sql.Open("sqlite", dsn(abs, o))
	if err != nil {
		return fail(fmt.Errorf("checkpoint: open %s: %w", path, err))
	}
	// One connection: writers queue in database/sql instead of meeting
	// SQLITE_BUSY, and transactions never interleave.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := migrate(ctx, db, path, s.log); err != nil {
		db.Close()
		return fail(err)
	}
	if err := expireLeases(ctx, db); err != nil {
		db.Close()
		return fail(fmt.Errorf("checkpoint: open %s: expire the leases of earlier processes: %w", path, err))
	}
	s.db = db
	s.lock = lock
	if o.MaxBatch > 1 {
		s.group = newCommitter(s, o.MaxBatch, o.BatchWindow, o.UnhurriedWindow)
	}
	return s, nil
}

// expireLeases ends the claims and named leases of earlier processes: the
// caller holds the state lock, so their holders are gone.
func expireLeases(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE items SET lease_until = 0 WHERE state = 'in_progress' AND lease_until <> 0`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE leases SET until = 0`); err != nil {
		return err
	}
	return tx.Commit()
}

// initFile creates the database at abs+".init", migrates it to the newest
// schema, closes it (folding the WAL into the file), fsyncs it and renames
// it to abs. The caller holds the state lock.
func (s *Store) initFile(ctx context.Context, abs string, o Options) error {
	tmp := abs + ".init"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// Create the file ourselves so that it (and the -wal and -shm files
	// SQLite derives from it) is private to the daemon's user.
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	db, err := sql.Open("sqlite", dsn(tmp, o))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db, tmp, s.log); err != nil {
		db.Close()
		return err
	}
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	// Everything must be in the main file before it is renamed.
	if fi, err := os.Stat(tmp + "-wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("%s-wal still holds %d bytes after close", tmp, fi.Size())
	}
	if err := syncPath(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		return err
	}
	return syncPath(filepath.Dir(abs))
}

// syncPath fsyncs a file or directory.
func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// dsn builds a file: URI (so that any byte of the path survives) with the
// driver's pragmas.
func dsn(abs string, o Options) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(o.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	// Statement journals (and any temporary table) in memory: with the day
	// summaries' triggers every insert and state change writes one, and in a
	// file that was a pwrite per page, half of a package's insert. The
	// store's queries read in index order, so no large sort spills there.
	q.Add("_pragma", "temp_store(MEMORY)")
	if o.ReadOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Close stops the group committer, closes the database and releases the
// lock. Transitions already submitted are committed (or fail) first, and
// their callers answered; a transition called after Close returns
// ErrClosed. Closing twice is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	if s.group != nil {
		s.group.stop()
	}
	s.stmts.close()
	err := s.db.Close()
	if err != nil {
		err = fmt.Errorf("checkpoint: close %s: %w", s.path, err)
	}
	if s.lock != nil {
		if lerr := unlockFile(s.lock); lerr != nil && err == nil {
			err = fmt.Errorf("checkpoint: unlock %s: %w", s.path, lerr)
		}
		s.lock = nil
	}
	return err
}

// Path returns the database path Open was given.
func (s *Store) Path() string { return s.path }

// stamp returns the store clock as Unix nanoseconds UTC.
func (s *Store) stamp() int64 { return s.now().UnixNano() }

// timeEnc converts times to stored integers, remembering the first that does
// not fit so a method can check once.
type timeEnc struct{ err error }

func (e *timeEnc) enc(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	// Unix nanoseconds in an int64 span the years 1677 to 2262.
	if t.Before(time.Unix(0, math.MinInt64+1)) || t.After(time.Unix(0, math.MaxInt64)) {
		if e.err == nil {
			e.err = fmt.Errorf("time %s out of the storable range", t.Format(time.RFC3339Nano))
		}
		return 0
	}
	return t.UnixNano()
}

// dec converts a stored integer back to a UTC time.
func dec(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
