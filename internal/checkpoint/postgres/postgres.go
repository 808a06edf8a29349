// Package postgres implements checkpoint.Store on a PostgreSQL database
// (github.com/jackc/pgx/v5 and its pool, pgxpool), for archivers whose
// state must outlive the machine they run on: an ephemeral pod, or several
// tenants sharing one database server.
//
// # Connection
//
// Options.DSN is a libpq connection string, as a URL
// (postgres://user:password@host:5432/db?sslmode=verify-full) or as
// keyword=value pairs (host=db user=archiver dbname=archiver
// sslmode=verify-full). pgx reads it as libpq does: sslmode (disable,
// allow, prefer, require, verify-ca, verify-full; prefer when absent, as in
// libpq), sslrootcert (the CA bundle that verifies the server),
// sslcert and sslkey (a client certificate), sslpassword, connect_timeout,
// target_session_attrs, several hosts for failover, and the PG* environment
// variables (PGHOST, PGSSLMODE, PGSSLROOTCERT, …) and the password file
// (~/.pgpass, PGPASSFILE) for what the string leaves out. Outside a
// loopback test, use sslmode=verify-full with sslrootcert: prefer and
// require encrypt but accept any server certificate. pgxpool reads its own
// keys from the same string (pool_max_conns, pool_max_conn_lifetime, …);
// Options.MaxConns overrides pool_max_conns. search_path chooses the
// schema the tables are created in and read from (the first one of it;
// public by default). Behind PgBouncer in transaction mode, add
// default_query_exec_mode=exec: the store prepares its statements
// otherwise. The DSN is never logged nor put in an error: it usually holds
// a password.
//
// # Tenants
//
// One database holds the state of any number of tenants. Options.Tenant (the
// archiver's cec.tenant_id) is stored in every row of every table, is part of
// every primary and unique key ((tenant, kind, upstream_id) for items,
// (tenant, day) for ledgers, …), and every statement filters by it: a store
// never reads, counts, claims or changes another tenant's rows, and an ID of
// another tenant's item or package is unknown to it (ErrNotFound). IDs are
// drawn from one sequence per table, shared by the tenants. The schema
// itself (schema_migrations) is shared.
//
// # Schema
//
// Open applies the numbered migrations the database lacks (migrate.go), all
// in one transaction under a transaction-level advisory lock, so that
// processes started at once migrate it once and wait for each other; each
// applied version is a row of schema_migrations. A database whose schema
// version is newer than this binary's is refused (ErrSchemaTooNew). Once
// the schema is current Open runs no DDL, so an archiver may run as a role
// that may only read and write the tables, when a more privileged one
// migrated them.
//
// # Changes
//
// Every method that changes state is one statement, or one transaction of
// several, committed before it returns; durability is the server's
// (synchronous_commit, on by default). A change is begun when its first
// statement is sent: a ctx that has ended before then returns ctx.Err() and
// changes nothing; a ctx that ends while the statements of a transaction
// run rolls it back; the commit (or the single statement that is one) is
// not interrupted by ctx and reports its own outcome, bounded by
// Options.CommitTimeout. There is no group commit: the server commits
// concurrent transactions together on its own.
//
// Claim is one UPDATE whose subquery selects the due items FOR UPDATE SKIP
// LOCKED: concurrent claims, from this process or from others on the same
// database and tenant, never hand out one item twice and never wait for
// each other. The item transitions (Done, Absent, Fail, …) are one
// conditional UPDATE each: the state and the owner they require are
// checked by the statement that changes it.
//
// # Processes
//
// Unlike the SQLite store, Open takes no lock: several archivers (replicas)
// of one tenant may share the database. Each claims with its own replica ID
// (checkpoint.Claimer) and a lease it renews while it works (Renew); an
// item whose lease expired, its replica killed or stalled, is due again for
// any replica, and the transitions of the replica that lost it are refused
// (checkpoint.ErrLeaseLost). RecoverInProgress releases only the caller's
// own items and the expired ones. The singleton work of the jobs takes
// named leases (TryLease, ReleaseLease: the leases table, one row per name,
// taken by one INSERT … ON CONFLICT DO UPDATE … WHERE the holder is the
// caller or expired). Lease times are each replica's clock (Options.Now),
// so the replicas' clocks must agree to well within a lease.
//
// # Values
//
// Times are stored as integer Unix nanoseconds UTC (bigint), exactly as the
// SQLite store stores them, and come back in UTC: every nanosecond round
// trips (timestamptz keeps microseconds). The zero time is stored as 0, so
// the instant 1970-01-01T00:00:00Z reads back as the zero time; times
// outside the years 1678–2262 are refused with an error. Item arguments
// (Args) are stored as their JSON text, byte for byte. PostgreSQL text holds
// valid UTF-8 without NUL bytes only: a key, an ID, a name or a digest that
// is not such text is refused with an error naming it, and in the free text
// of errors and reasons (LastError, Reason, Evidence, a Defer note) invalid
// bytes are replaced with U+FFFD and NUL bytes with a space. Names and IDs
// sort by their bytes (COLLATE "C"), as in SQLite.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// DefaultCommitTimeout bounds a change once begun, when
// Options.CommitTimeout is zero.
const DefaultCommitTimeout = 30 * time.Second

// Options configure Open.
type Options struct {
	// DSN is the libpq connection string (see the package doc). Required.
	DSN string
	// Tenant is the tenant whose state the store reads and writes (the
	// archiver's cec.tenant_id). Required.
	Tenant string
	// MaxConns caps the pool's connections; 0 keeps pool_max_conns from the
	// DSN, else pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32
	// ReadOnly opens a store that changes nothing: no migration (the schema
	// must be at this binary's version), every state-changing method fails
	// with ErrReadOnly, and the sessions are read-only on the server
	// (default_transaction_read_only) as well.
	ReadOnly bool
	// CommitTimeout bounds a change once begun, which the caller's ctx no
	// longer interrupts (default DefaultCommitTimeout).
	CommitTimeout time.Duration
	// Logger receives migrations and the connection's description, never
	// the DSN (default zap.NewNop()).
	Logger *zap.Logger
	// Now stamps CreatedAt, UpdatedAt and ledger times, and is the clock of
	// leases (default time.Now).
	Now func() time.Time
}

// ErrReadOnly is returned by every state-changing method of a Store opened
// with Options.ReadOnly.
var ErrReadOnly = errors.New("checkpoint: store is open read-only")

// Store is a checkpoint.Store on a PostgreSQL database, for one tenant. It is
// safe for concurrent use; its statements run on a pool of connections.
type Store struct {
	pool          *pgxpool.Pool
	where         string // the database, server and user, for String
	tenant        string
	readOnly      bool
	commitTimeout time.Duration
	log           *zap.Logger
	now           func() time.Time

	mu       sync.Mutex
	isClosed bool

	// The run lock (alive.go).
	connConfig *pgx.ConnConfig
	runMu      sync.Mutex
	runConn    *pgx.Conn
	runReplica string
	runStop    chan struct{}
	runDone    chan struct{}
}

// closed reports whether Close was called.
func (s *Store) closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isClosed
}

var _ checkpoint.Store = (*Store)(nil)

// Open connects to the database o.DSN names and, unless o.ReadOnly,
// migrates its schema to this binary's version. It fails when the server
// cannot be reached, when the schema is newer than this binary knows
// (ErrSchemaTooNew) and, read-only, when it is older (ErrSchemaTooOld) or
// absent (ErrNoSchema).
// Errors never quote the DSN.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.DSN == "" {
		return nil, errors.New("checkpoint: postgres: empty DSN")
	}
	if o.Tenant == "" {
		return nil, errors.New("checkpoint: postgres: empty tenant")
	}
	if err := storable(o.Tenant); err != nil {
		return nil, fmt.Errorf("checkpoint: postgres: tenant %q: %w", o.Tenant, err)
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		return nil, dsnError(o.DSN, err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	params := cfg.ConnConfig.RuntimeParams
	if params["application_name"] == "" {
		params["application_name"] = "cec-archiver"
	}
	if o.ReadOnly {
		params["default_transaction_read_only"] = "on"
	}
	where := fmt.Sprintf("database %q on %s:%d as %q", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.User)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: postgres: %s: %w", where, err)
	}
	s := &Store{
		pool: pool, where: where, tenant: o.Tenant, readOnly: o.ReadOnly, commitTimeout: o.CommitTimeout,
		log: o.Logger, now: o.Now, connConfig: cfg.ConnConfig.Copy(),
	}
	if o.ReadOnly {
		err = s.checkSchema(ctx)
	} else {
		err = s.migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("checkpoint: postgres: %s: %w", where, err)
	}
	s.log.Info("checkpoint store opened", zap.String("database", cfg.ConnConfig.Database),
		zap.String("host", cfg.ConnConfig.Host), zap.Uint16("port", cfg.ConnConfig.Port),
		zap.String("user", cfg.ConnConfig.User), zap.String("tenant", o.Tenant),
		zap.Int32("max_conns", cfg.MaxConns), zap.Bool("tls", cfg.ConnConfig.TLSConfig != nil),
		zap.Bool("read_only", o.ReadOnly), zap.Int("schema_version", SchemaVersion()))
	return s, nil
}

// dsnError describes a DSN that does not parse without quoting it: pgx's
// error repeats the string (with the password masked only where it can
// tell), and the cause it wraps may quote it whole. Only pgx's own
// description of the problem is kept.
func dsnError(dsn string, err error) error {
	what := "not a connection URL nor keyword=value pairs"
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// "cannot parse `REDACTED`: MESSAGE (CAUSE)": the prefix is what
		// the same error with an empty message prints.
		prefix := pgconn.NewParseConfigError(dsn, "", nil).Error()
		if msg, ok := strings.CutPrefix(pe.Error(), prefix); ok {
			msg, _, _ = strings.Cut(msg, " (")
			if msg = strings.TrimSpace(msg); msg != "" {
				what = msg
			}
		}
	}
	return fmt.Errorf("checkpoint: postgres: the DSN does not parse: %s (the DSN is not shown: it may hold a password)", what)
}

// Close closes the pool, waiting for the connections in use to be
// released. Closing twice is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	was := s.isClosed
	s.isClosed = true
	s.mu.Unlock()
	if !was {
		s.closeRunLock()
		s.pool.Close()
	}
	return nil
}

// String names the database the store uses, its server and its user (never
// the password): `postgres database "archiver" on db.example.com:5432 as
// "archiver"`. The jobs put it in the errors of failed store calls, so that
// an operator sees which database went away.
func (s *Store) String() string { return "postgres " + s.where }

// Tenant returns the tenant the store reads and writes.
func (s *Store) Tenant() string { return s.tenant }

// stamp returns the store clock as Unix nanoseconds UTC.
func (s *Store) stamp() int64 { return s.now().UnixNano() }

// detach returns the context a begun change runs under: ctx's values
// without its cancellation, bounded by the commit timeout.
func (s *Store) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.commitTimeout)
}

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

// errNotText: a value PostgreSQL text cannot hold.
var errNotText = errors.New("not valid UTF-8 or holds a NUL byte, which PostgreSQL text cannot store")

// storable checks that s can be stored in a text column as it is.
func storable(s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return errNotText
	}
	return nil
}

// textEnc checks identifying values (keys, IDs, names, digests), which must
// be stored as they are, remembering the first that cannot.
type textEnc struct{ err error }

func (e *textEnc) check(field, v string) string {
	if e.err == nil {
		if err := storable(v); err != nil {
			e.err = fmt.Errorf("%s %q: %w", field, v, err)
		}
	}
	return v
}

// freeText makes diagnostic text (errors, reasons, evidence) storable:
// invalid UTF-8 becomes U+FFFD and a NUL byte a space.
func freeText(s string) string {
	if storable(s) == nil {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", " ")
}
