package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer archiver than this one: running an old binary on it could lose data.
var ErrSchemaTooNew = errors.New("checkpoint: database schema is newer than this archiver supports")

// ErrSchemaTooOld is returned by a ReadOnly Open when the database has not
// been migrated to this binary's schema (or not at all); a read-write Open
// migrates it.
var ErrSchemaTooOld = errors.New("checkpoint: database schema is older than this archiver; open it read-write once to migrate")

// ErrNoSchema is returned by a ReadOnly Open when the database has no
// archiver tables at all (schema version 0): nothing was ever archived in
// it.
var ErrNoSchema = errors.New("checkpoint: the database has no archiver tables yet")

// migrateLockKey is the pg_advisory_xact_lock key migrations hold: one per
// database, whatever the schema (search_path) or the tenant.
const migrateLockKey int64 = 0x6365632d61726368 // "cec-arch"

// migration is one numbered schema change.
type migration struct {
	name string
	sql  string
}

// migrations returns the schema migrations; migration i+1 is at index i and
// schema_migrations has a row for each one applied. Append only: never edit
// a migration that has shipped.
//
// Every table has the tenant as the first column of its primary key and of
// every unique key and index. Times are bigint Unix nanoseconds UTC, 0 for
// the zero time; names and IDs compare and sort by their bytes (COLLATE
// "C").
func migrations() []migration {
	return []migration{
		{"initial schema", `
CREATE TABLE packages (
	tenant         text    NOT NULL COLLATE "C" CHECK (tenant <> ''),
	id             bigint  GENERATED ALWAYS AS IDENTITY,
	begin          bigint  NOT NULL,
	"end"          bigint  NOT NULL,
	response_id    text    NOT NULL DEFAULT '',
	bill_file_name text    NOT NULL DEFAULT '',
	requested_at   bigint  NOT NULL DEFAULT 0,
	state          text    NOT NULL CHECK (state IN ('pending','in_progress','done','absent','failed','dead')),
	attempts       integer NOT NULL DEFAULT 0,
	last_error     text    NOT NULL DEFAULT '',
	key            text    NOT NULL DEFAULT '',
	rows_key       text    NOT NULL DEFAULT '',
	size           bigint  NOT NULL DEFAULT 0,
	sha256         text    NOT NULL DEFAULT '',
	rows_sha256    text    NOT NULL DEFAULT '',
	quarantine_key text    NOT NULL DEFAULT '',
	calls          integer NOT NULL DEFAULT 0,
	items          integer NOT NULL DEFAULT 0,
	updated_at     bigint  NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, id)
);
CREATE INDEX packages_window ON packages (tenant, begin, "end", id);
CREATE INDEX packages_state ON packages (tenant, state);

CREATE TABLE calls (
	tenant     text   NOT NULL COLLATE "C" CHECK (tenant <> ''),
	call_id    text   NOT NULL COLLATE "C",
	day        text   NOT NULL COLLATE "C",
	begin      bigint NOT NULL DEFAULT 0,
	vdn        text   NOT NULL DEFAULT '',
	agent_id   text   NOT NULL DEFAULT '',
	created_at bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, call_id)
);
CREATE INDEX calls_day ON calls (tenant, day, call_id);

CREATE TABLE items (
	tenant          text    NOT NULL COLLATE "C" CHECK (tenant <> ''),
	id              bigint  GENERATED ALWAYS AS IDENTITY,
	kind            text    NOT NULL COLLATE "C",
	upstream_id     text    NOT NULL COLLATE "C",
	call_id         text    NOT NULL DEFAULT '' COLLATE "C",
	day             text    NOT NULL DEFAULT '' COLLATE "C",
	key             text    NOT NULL DEFAULT '',
	params          text    NOT NULL DEFAULT '',
	state           text    NOT NULL CHECK (state IN ('pending','in_progress','done','absent','failed','dead')),
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at bigint  NOT NULL DEFAULT 0,
	last_error      text    NOT NULL DEFAULT '',
	reason          text    NOT NULL DEFAULT '',
	evidence        text    NOT NULL DEFAULT '',
	attested_at     bigint  NOT NULL DEFAULT 0,
	size            bigint  NOT NULL DEFAULT 0,
	sha256          text    NOT NULL DEFAULT '',
	created_at      bigint  NOT NULL DEFAULT 0,
	updated_at      bigint  NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, id),
	UNIQUE (tenant, kind, upstream_id)
);
CREATE INDEX items_due ON items (tenant, state, next_attempt_at, id);
CREATE INDEX items_day ON items (tenant, day, id);

CREATE TABLE watermarks (
	tenant text   NOT NULL COLLATE "C" CHECK (tenant <> ''),
	job    text   NOT NULL COLLATE "C",
	t      bigint NOT NULL,
	PRIMARY KEY (tenant, job)
);

CREATE TABLE ledgers (
	tenant     text   NOT NULL COLLATE "C" CHECK (tenant <> ''),
	day        text   NOT NULL COLLATE "C",
	sha256     text   NOT NULL,
	key        text   NOT NULL,
	written_at bigint NOT NULL,
	PRIMARY KEY (tenant, day)
);
`},
		// An in_progress item carries its owner (a replica ID) and when its
		// lease expires (lease_until, 0: expired; items left in progress by
		// an older binary are due at once); leases holds the named leases of
		// singleton work (a CDR window, a day's ledger, the janitor).
		{"leases", `
ALTER TABLE items ADD COLUMN owner text NOT NULL DEFAULT '' COLLATE "C";
ALTER TABLE items ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;

CREATE TABLE leases (
	tenant text   NOT NULL COLLATE "C" CHECK (tenant <> ''),
	name   text   NOT NULL COLLATE "C",
	owner  text   NOT NULL COLLATE "C",
	until  bigint NOT NULL,
	PRIMARY KEY (tenant, name)
);
`},
		// When each job last finished a run without failures, so that
		// archiver_job_last_success_timestamp_seconds survives a restart and
		// every pass of a CronJob pushes it (SetLastSuccess).
		{"job successes", `
CREATE TABLE job_successes (
	tenant text   NOT NULL COLLATE "C" CHECK (tenant <> ''),
	job    text   NOT NULL COLLATE "C",
	t      bigint NOT NULL,
	PRIMARY KEY (tenant, job)
);
`},
		// Each job's last run, however it ended (SetLastRun): started and
		// finished (0 while it runs), result, a one-line error, what it did
		// and the replica that ran it, for archiver status.
		{"job runs", `
CREATE TABLE job_runs (
	tenant   text    NOT NULL COLLATE "C" CHECK (tenant <> ''),
	job      text    NOT NULL COLLATE "C",
	started  bigint  NOT NULL,
	finished bigint  NOT NULL DEFAULT 0,
	result   text    NOT NULL CHECK (result IN ('running','ok','failed','interrupted')),
	error    text    NOT NULL DEFAULT '',
	done     integer NOT NULL DEFAULT 0,
	failed   integer NOT NULL DEFAULT 0,
	bytes    bigint  NOT NULL DEFAULT 0,
	replica  text    NOT NULL DEFAULT '' COLLATE "C",
	PRIMARY KEY (tenant, job)
);
`},
		// The claim reads each (state, kind) in due order: with the kind
		// after next_attempt_at, a claim of one job's kinds read past every
		// due item of the kinds no job of the run claims (the lookups kept
		// while the transfer and ivr jobs are off).
		{"claim index", `
CREATE INDEX items_claim ON items (tenant, state, kind, next_attempt_at, id);
DROP INDEX items_due;
`},
	}
}

// SchemaVersion is the schema version this binary migrates databases to.
func SchemaVersion() int { return len(migrations()) }

// versionTooNew is the error for a database at version have.
func versionTooNew(have int) error {
	return fmt.Errorf("schema version %d, this archiver knows up to %d: upgrade the archiver (never run an older one on this database): %w",
		have, SchemaVersion(), ErrSchemaTooNew)
}

// schemaVersion returns the newest version schema_migrations records, 0 when
// the table does not exist in the schema tables are created in (the first
// of search_path that exists). It reads pg_class with a query, not
// to_regclass: a name lookup that takes no lock may use the session's
// catalog cache as it was before the advisory lock was granted, and miss a
// table the process that held the lock has just created.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relname = 'schema_migrations')`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// checkSchema is the ReadOnly Open's check: the schema must be at this
// binary's version.
func (s *Store) checkSchema(ctx context.Context) error {
	have, err := schemaVersion(ctx, s.pool)
	switch {
	case err != nil:
		return err
	case have > SchemaVersion():
		return versionTooNew(have)
	case have == 0:
		return fmt.Errorf("no schema_migrations table: %w", ErrNoSchema)
	case have < SchemaVersion():
		return fmt.Errorf("schema version %d, want %d: %w", have, SchemaVersion(), ErrSchemaTooOld)
	}
	return nil
}

// migrate applies the migrations the database lacks in one transaction,
// with a row of schema_migrations for each, so a crash leaves the database
// at the version it had or at the newest one. The transaction first takes
// the advisory lock: a second process migrating at the same moment waits,
// then finds the schema current. A current schema is not touched (no DDL,
// no lock).
func (s *Store) migrate(ctx context.Context) error {
	have, err := schemaVersion(ctx, s.pool)
	if err != nil {
		return err
	}
	if have > SchemaVersion() {
		return versionTooNew(have)
	}
	if have == SchemaVersion() {
		return nil
	}
	from, err := s.applyMigrations(ctx)
	if err != nil {
		return fmt.Errorf("migrate from version %d to %d: %w", have, SchemaVersion(), err)
	}
	if from < SchemaVersion() {
		s.log.Info("checkpoint schema migrated", zap.Int("from", from), zap.Int("version", SchemaVersion()))
	}
	return nil
}

// applyMigrations runs the missing migrations under the lock and returns
// the version it found there.
func (s *Store) applyMigrations(ctx context.Context) (from int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			rctx, cancel := s.detach(ctx)
			_ = tx.Rollback(rctx)
			cancel()
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return 0, fmt.Errorf("take the migration lock: %w", err)
	}
	// Another process may have migrated while we waited for the lock.
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return 0, err
	}
	if cur > SchemaVersion() {
		return cur, versionTooNew(cur)
	}
	if cur == 0 {
		if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return 0, fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	all := migrations()
	for v := cur + 1; v <= len(all); v++ {
		m := all[v-1]
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return cur, fmt.Errorf("version %d (%s): %w", v, m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, v, m.name); err != nil {
			return cur, fmt.Errorf("version %d (%s): %w", v, m.name, err)
		}
	}
	cctx, cancel := s.detach(ctx)
	defer cancel()
	if err := tx.Commit(cctx); err != nil {
		return cur, fmt.Errorf("commit: %w", err)
	}
	return cur, nil
}
