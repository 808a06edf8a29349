package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, the archiver's own
)

// storeDays is how many past days the big state's items are spread over.
const storeDays = 365

// prepareStore builds the big state of store1m. A priming `archiver once`
// archives the dataset into a bucket of its own on a fresh state, so the
// file has the archiver's own schema and rows of its own making. Into a
// copy of it SQL then inserts StoreItems done items (one call, one agent
// recording each) cloned from one of those rows, spread over the storeDays
// days before the dataset's day, with a done package and a ledger per
// day; the primed rows of the dataset's day go, and so do the watermarks
// but the ledger's, set to now: the days of the old items are settled, and
// the next pass finds the dataset's recordings new, as the pass on an
// empty state does.
func (b *bench) prepareStore(ctx context.Context) error {
	dir := filepath.Join(b.work, "prime")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bucket := "bench-prime-" + randHex(3)
	if err := b.s3.createBucket(ctx, bucket); err != nil {
		return err
	}
	state, err := newState(dir, "")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := b.runArchiver(ctx, b.o.archiver, dir, bucket, state); err != nil {
		return fmt.Errorf("priming run: %w", err)
	}
	b.used = append(b.used, bucket)
	b.bigState = filepath.Join(b.work, "state-1m.db")
	if err := copyFile(state, b.bigState); err != nil {
		return err
	}
	b.logf("priming run done in %s; filling %s with %d done items", time.Since(t0).Round(time.Millisecond), b.bigState, b.d.StoreItems)
	t0 = time.Now()
	if err := fillStore(ctx, b.bigState, b.d.StoreItems, b.sim.Start); err != nil {
		return fmt.Errorf("fill %s: %w", b.bigState, err)
	}
	st, err := os.Stat(b.bigState)
	if err != nil {
		return err
	}
	b.logf("big state ready in %s (%.0f MB)", time.Since(t0).Round(time.Millisecond), float64(st.Size())/1e6)
	return nil
}

// fillStore turns the primed state at path into the big state (see
// prepareStore).
func fillStore(ctx context.Context, path string, items int, day time.Time) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	perDay := (items + storeDays - 1) / storeDays
	first := day.AddDate(0, 0, -storeDays)
	firstDay := first.Format(time.DateOnly)
	dayNS := int64(24 * time.Hour)
	old := first.UnixNano()
	now := time.Now().UnixNano()
	stmts := []struct {
		what string
		sql  string
		args []any
	}{
		{"template", `CREATE TEMP TABLE tpl_item AS SELECT * FROM items WHERE state = 'done' AND key <> '' LIMIT 1`, nil},
		{"template call", `CREATE TEMP TABLE tpl_call AS SELECT * FROM calls LIMIT 1`, nil},
		{"template package", `CREATE TEMP TABLE tpl_pkg AS SELECT * FROM packages WHERE state = 'done' LIMIT 1`, nil},
		{"template ledger", `CREATE TEMP TABLE tpl_led AS SELECT * FROM ledgers LIMIT 1`, nil},
		{"drop the primed rows", `DELETE FROM items`, nil},
		{"", `DELETE FROM calls`, nil},
		{"", `DELETE FROM packages`, nil},
		{"", `DELETE FROM ledgers`, nil},
		{"", `DELETE FROM watermarks`, nil},
		{"numbers", `CREATE TEMP TABLE n AS WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < ?) SELECT i FROM c`,
			[]any{items - 1}},
		{"calls", `INSERT INTO calls (call_id, day, begin, vdn, agent_id, created_at)
			SELECT 'bench-' || n.i, date(?, '+' || (n.i / ?) || ' days'), ? + (n.i / ?) * ? + (n.i % ?) * 1000000000,
			       t.vdn, t.agent_id, ?
			FROM n, tpl_call t`,
			[]any{firstDay, perDay, old, perDay, dayNS, perDay, old}},
		{"items", `INSERT INTO items (kind, upstream_id, call_id, day, key, params, state, attempts, next_attempt_at,
			       last_error, reason, size, sha256, created_at, updated_at, evidence, attested_at)
			SELECT t.kind, 'bench/' || n.i || t.upstream_id, 'bench-' || n.i, date(?, '+' || (n.i / ?) || ' days'),
			       'bench/' || n.i || '/' || t.key, t.params, 'done', 1, 0, '', '', t.size, t.sha256, ?, ?, '', 0
			FROM n, tpl_item t`,
			[]any{firstDay, perDay, old, old}},
		{"packages", `INSERT INTO packages (begin, "end", response_id, bill_file_name, requested_at, state, attempts, last_error,
			       key, rows_key, size, sha256, calls, items, updated_at, rows_sha256, quarantine_key)
			SELECT ? + n.i * ?, ? + (n.i + 1) * ?, t.response_id || n.i, t.bill_file_name || n.i, ?, 'done', 1, '',
			       t.key || n.i, t.rows_key || n.i, t.size, t.sha256, ?, ?, ?, t.rows_sha256 || n.i, ''
			FROM n, tpl_pkg t WHERE n.i < ?`,
			[]any{old, dayNS, old, dayNS, old, perDay, perDay, old, storeDays}},
		{"ledgers", `INSERT INTO ledgers (day, sha256, key, written_at)
			SELECT date(?, '+' || n.i || ' days'), t.sha256, t.key || n.i, ? FROM n, tpl_led t WHERE n.i < ?`,
			[]any{firstDay, old, storeDays}},
		{"ledger watermark", `INSERT INTO watermarks (job, t) VALUES ('ledger', ?)`, []any{now}},
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tpl_item`).Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("the priming run left no done recording item to clone (%d, %v)", n, err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE state = 'done'`).Scan(&n); err != nil {
		return err
	}
	if n != items {
		return fmt.Errorf("%d done items, want %d", n, items)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return err
	}
	return db.Close()
}
