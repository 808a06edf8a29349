package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer archiver than this one: running an old binary on it could lose data.
var ErrSchemaTooNew = errors.New("checkpoint: database schema is newer than this archiver supports")

// ErrSchemaTooOld is returned by a ReadOnly Open when the database has not
// been migrated to this binary's schema; a read-write Open migrates it.
var ErrSchemaTooOld = errors.New("checkpoint: database schema is older than this archiver; open it read-write once to migrate")

// migrations returns the schema migrations; migration i+1 is at index i and
// PRAGMA user_version records the last one applied. Append only: never edit
// a migration that has shipped.
func migrations() []string {
	return []string{
		// 1: the initial schema. Times are integer Unix nanoseconds UTC, 0 for
		// the zero time.
		`
CREATE TABLE packages (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	begin          INTEGER NOT NULL,
	"end"          INTEGER NOT NULL,
	response_id    TEXT    NOT NULL DEFAULT '',
	bill_file_name TEXT    NOT NULL DEFAULT '',
	requested_at   INTEGER NOT NULL DEFAULT 0,
	state          TEXT    NOT NULL CHECK (state IN ('pending','in_progress','done','absent','failed','dead')),
	attempts       INTEGER NOT NULL DEFAULT 0,
	last_error     TEXT    NOT NULL DEFAULT '',
	key            TEXT    NOT NULL DEFAULT '',
	rows_key       TEXT    NOT NULL DEFAULT '',
	size           INTEGER NOT NULL DEFAULT 0,
	sha256         TEXT    NOT NULL DEFAULT '',
	calls          INTEGER NOT NULL DEFAULT 0,
	items          INTEGER NOT NULL DEFAULT 0,
	updated_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX packages_window ON packages (begin, "end");

CREATE TABLE calls (
	call_id    TEXT    PRIMARY KEY,
	day        TEXT    NOT NULL,
	begin      INTEGER NOT NULL DEFAULT 0,
	vdn        TEXT    NOT NULL DEFAULT '',
	agent_id   TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX calls_day ON calls (day);

CREATE TABLE items (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	kind            TEXT    NOT NULL,
	upstream_id     TEXT    NOT NULL,
	call_id         TEXT    NOT NULL DEFAULT '',
	day             TEXT    NOT NULL DEFAULT '',
	key             TEXT    NOT NULL DEFAULT '',
	params          TEXT    NOT NULL DEFAULT '',
	state           TEXT    NOT NULL CHECK (state IN ('pending','in_progress','done','absent','failed','dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	reason          TEXT    NOT NULL DEFAULT '',
	size            INTEGER NOT NULL DEFAULT 0,
	sha256          TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL DEFAULT 0,
	updated_at      INTEGER NOT NULL DEFAULT 0,
	UNIQUE (kind, upstream_id)
);
CREATE INDEX items_due ON items (state, next_attempt_at);
CREATE INDEX items_day ON items (day);

CREATE TABLE watermarks (
	job TEXT    PRIMARY KEY,
	t   INTEGER NOT NULL
);

CREATE TABLE ledgers (
	day        TEXT    PRIMARY KEY,
	sha256     TEXT    NOT NULL,
	key        TEXT    NOT NULL,
	written_at INTEGER NOT NULL
);
`,
		// 2: the content digest of a package's rows, to recognise a re-scanned
		// window whose CDR did not change although CC-FS zipped it anew.
		`ALTER TABLE packages ADD COLUMN rows_sha256 TEXT NOT NULL DEFAULT '';`,
		// 3: verdicts carry their proof: the source's evidence of an absence,
		// the time an operator attested one, and where a package rejected for
		// its content was quarantined.
		`ALTER TABLE items ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN attested_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE packages ADD COLUMN quarantine_key TEXT NOT NULL DEFAULT '';`,
		// 4: per-day counts kept by triggers, so that Days (read by every
		// pass: the ledgers, the item gauges) costs the number of days, not
		// a scan of every item ever archived. updated is the latest
		// created_at/updated_at the group has seen; a row whose count falls
		// to 0 is removed.
		`
CREATE TABLE day_items (
	day     TEXT    NOT NULL,
	kind    TEXT    NOT NULL,
	state   TEXT    NOT NULL,
	n       INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (day, kind, state)
) WITHOUT ROWID;
CREATE TABLE day_calls (
	day     TEXT    PRIMARY KEY,
	n       INTEGER NOT NULL,
	updated INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO day_items (day, kind, state, n, updated)
	SELECT day, kind, state, COUNT(*), MAX(MAX(created_at, updated_at)) FROM items GROUP BY day, kind, state;
INSERT INTO day_calls (day, n, updated)
	SELECT day, COUNT(*), MAX(created_at) FROM calls GROUP BY day;

CREATE TRIGGER day_items_insert AFTER INSERT ON items BEGIN
	INSERT OR IGNORE INTO day_items (day, kind, state, n, updated) VALUES (NEW.day, NEW.kind, NEW.state, 0, 0);
	UPDATE day_items SET n = n + 1, updated = MAX(updated, NEW.created_at, NEW.updated_at)
		WHERE day = NEW.day AND kind = NEW.kind AND state = NEW.state;
END;
CREATE TRIGGER day_items_update AFTER UPDATE OF day, kind, state, created_at, updated_at ON items BEGIN
	UPDATE day_items SET n = n - 1 WHERE day = OLD.day AND kind = OLD.kind AND state = OLD.state;
	DELETE FROM day_items WHERE day = OLD.day AND kind = OLD.kind AND state = OLD.state AND n <= 0;
	INSERT OR IGNORE INTO day_items (day, kind, state, n, updated) VALUES (NEW.day, NEW.kind, NEW.state, 0, 0);
	UPDATE day_items SET n = n + 1, updated = MAX(updated, NEW.created_at, NEW.updated_at)
		WHERE day = NEW.day AND kind = NEW.kind AND state = NEW.state;
END;
CREATE TRIGGER day_items_delete AFTER DELETE ON items BEGIN
	UPDATE day_items SET n = n - 1 WHERE day = OLD.day AND kind = OLD.kind AND state = OLD.state;
	DELETE FROM day_items WHERE day = OLD.day AND kind = OLD.kind AND state = OLD.state AND n <= 0;
END;
CREATE TRIGGER day_calls_insert AFTER INSERT ON calls BEGIN
	INSERT OR IGNORE INTO day_calls (day, n, updated) VALUES (NEW.day, 0, 0);
	UPDATE day_calls SET n = n + 1, updated = MAX(updated, NEW.created_at) WHERE day = NEW.day;
END;
CREATE TRIGGER day_calls_update AFTER UPDATE OF day, created_at ON calls BEGIN
	UPDATE day_calls SET n = n - 1 WHERE day = OLD.day;
	DELETE FROM day_calls WHERE day = OLD.day AND n <= 0;
	INSERT OR IGNORE INTO day_calls (day, n, updated) VALUES (NEW.day, 0, 0);
	UPDATE day_calls SET n = n + 1, updated = MAX(updated, NEW.created_at) WHERE day = NEW.day;
END;
CREATE TRIGGER day_calls_delete AFTER DELETE ON calls BEGIN
	UPDATE day_calls SET n = n - 1 WHERE day = OLD.day;
	DELETE FROM day_calls WHERE day = OLD.day AND n <= 0;
END;
`,
		// 5: leases. An in_progress item carries its owner (a replica ID) and
		// when its lease expires (lease_until, 0: expired); the items left in
		// progress by a binary before this one have none, so they are due at
		// once. leases holds the named leases of singleton work (a CDR
		// window, a day's ledger, the janitor).
		`ALTER TABLE items ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
CREATE TABLE leases (
	name  TEXT    PRIMARY KEY,
	owner TEXT    NOT NULL,
	until INTEGER NOT NULL
);`,
		// 6: when each job last finished a run without failures, so that
		// archiver_job_last_success_timestamp_seconds survives a restart and
		// every pass of a CronJob pushes it (SetLastSuccess).
		`CREATE TABLE job_successes (
	job TEXT    PRIMARY KEY,
	t   INTEGER NOT NULL
);`,
		// 7: each job's last run, however it ended (SetLastRun): started and
		// finished (0 while it runs), result, a one-line error, what it did
		// and the replica that ran it, for archiver status.
		`CREATE TABLE job_runs (
	job      TEXT    PRIMARY KEY,
	started  INTEGER NOT NULL,
	finished INTEGER NOT NULL DEFAULT 0,
	result   TEXT    NOT NULL CHECK (result IN ('running','ok','failed','interrupted')),
	error    TEXT    NOT NULL DEFAULT '',
	done     INTEGER NOT NULL DEFAULT 0,
	failed   INTEGER NOT NULL DEFAULT 0,
	bytes    INTEGER NOT NULL DEFAULT 0,
	replica  TEXT    NOT NULL DEFAULT ''
);`,
		// 8: the claim reads each (state, kind) in due order. With the kind
		// after next_attempt_at, a claim of one job's kinds read past every
		// due item of the kinds no job of the run claims (the lookups kept
		// while the transfer and ivr jobs are off): O(n) rows a claim.
		`CREATE INDEX items_claim ON items (state, kind, next_attempt_at);
DROP INDEX items_due;`,
	}
}

// schemaVersion reads PRAGMA user_version.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// checkVersion refuses a database from a newer binary.
func checkVersion(path string, have int) error {
	if want := len(migrations()); have > want {
		return fmt.Errorf("checkpoint: open %s: schema version %d, this archiver knows up to %d: %w", path, have, want, ErrSchemaTooNew)
	}
	return nil
}

// migrate applies the migrations the database lacks in one transaction
// together with the user_version bump, so a crash leaves the database at the
// version it had or at the newest one, never in between (a reader never
// meets a half-upgraded state).
func migrate(ctx context.Context, db *sql.DB, path string, log *zap.Logger) error {
	have, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("checkpoint: read schema version of %s: %w", path, err)
	}
	if err := checkVersion(path, have); err != nil {
		return err
	}
	all := migrations()
	if have >= len(all) {
		return nil
	}
	if err := applyMigrations(ctx, db, all); err != nil {
		return fmt.Errorf("checkpoint: migrate %s from version %d to %d: %w", path, have, len(all), err)
	}
	log.Info("checkpoint schema migrated", zap.Int("from", have), zap.Int("version", len(all)))
	return nil
}

func applyMigrations(ctx context.Context, db *sql.DB, all []string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// Re-read inside the write transaction: another connection may have
	// migrated meanwhile (it cannot in this process, but be exact).
	var cur int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
		return err
	}
	for v := cur + 1; v <= len(all); v++ {
		if _, err := tx.ExecContext(ctx, all[v-1]); err != nil {
			return fmt.Errorf("version %d: %w", v, err)
		}
	}
	if cur >= len(all) {
		return tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(all))); err != nil {
		return err
	}
	return tx.Commit()
}
