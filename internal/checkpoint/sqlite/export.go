package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// Export reads the store's persistent state (items, packages, calls,
// watermarks, ledgers, the jobs' last successes and last runs; not the named leases, nor the per-day counts
// day_items and day_calls, which the triggers derive from the items and
// calls) from one snapshot, a read transaction, and hands it to fn. The
// Dump's iterators stream the rows from the database, never all of a table
// at once, and work only until fn returns. fn must not call the store's
// other methods: on a read-write store, which has one connection, they
// wait for the snapshot's, which fn holds. Export returns fn's error as it
// is.
//
// Export changes nothing. To copy a state no archiver is changing, export
// from a read-write store: it holds the state lock, so that no archiver
// runs on the file until it is closed.
func (s *Store) Export(ctx context.Context, fn func(checkpoint.Dump) error) error {
	var fnErr error
	err := s.read(ctx, func(tx *sql.Tx) error {
		fnErr = fn(checkpoint.Dump{
			Items:      rowsOf(ctx, tx, s.path, `SELECT `+itemCols+` FROM items ORDER BY id`, scanItem),
			Packages:   rowsOf(ctx, tx, s.path, `SELECT `+pkgCols+` FROM packages ORDER BY id`, scanPackage),
			Calls:      rowsOf(ctx, tx, s.path, `SELECT call_id, day, begin, vdn, agent_id, created_at FROM calls ORDER BY call_id`, scanCallRow),
			Watermarks: rowsOf(ctx, tx, s.path, `SELECT job, t FROM watermarks ORDER BY job`, scanWatermarkRow),
			Ledgers:    rowsOf(ctx, tx, s.path, `SELECT day, sha256, key, written_at FROM ledgers ORDER BY day`, scanLedgerRow),
			Successes:  rowsOf(ctx, tx, s.path, `SELECT job, t FROM job_successes ORDER BY job`, scanSuccessRow),
			Runs:       rowsOf(ctx, tx, s.path, `SELECT `+jobRunCols+` FROM job_runs ORDER BY job`, scanJobRun),
			Counts: func() (checkpoint.Counts, error) {
				c, err := counts(ctx, tx)
				if err != nil {
					return c, fmt.Errorf("checkpoint: export %s: %w", s.path, err)
				}
				return c, nil
			},
		})
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return fmt.Errorf("checkpoint: export %s: %w", s.path, err)
	}
	return nil
}

// rowsOf streams the rows of query q, scanned by scan, in tx. Its errors
// name the store's file: whoever reads the dump reports them.
func rowsOf[T any](ctx context.Context, tx *sql.Tx, path, q string, scan func(scanner) (T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		fail := func(err error) { yield(zero, fmt.Errorf("checkpoint: export %s: %w", path, err)) }
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			fail(err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				fail(err)
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			fail(err)
		}
	}
}

func scanCallRow(r scanner) (checkpoint.CallRow, error) {
	var c checkpoint.CallRow
	var begin, created int64
	if err := r.Scan(&c.CallID, &c.Day, &begin, &c.VDN, &c.AgentID, &created); err != nil {
		return checkpoint.CallRow{}, err
	}
	c.Begin, c.CreatedAt = dec(begin), dec(created)
	return c, nil
}

func scanWatermarkRow(r scanner) (checkpoint.WatermarkRow, error) {
	var w checkpoint.WatermarkRow
	var t int64
	if err := r.Scan(&w.Job, &t); err != nil {
		return checkpoint.WatermarkRow{}, err
	}
	w.T = dec(t)
	return w, nil
}

func scanSuccessRow(r scanner) (checkpoint.SuccessRow, error) {
	w, err := scanWatermarkRow(r)
	return checkpoint.SuccessRow(w), err
}

func scanLedgerRow(r scanner) (checkpoint.LedgerRow, error) {
	var l checkpoint.LedgerRow
	var written int64
	if err := r.Scan(&l.Day, &l.SHA256, &l.Key, &written); err != nil {
		return checkpoint.LedgerRow{}, err
	}
	l.WrittenAt = dec(written)
	return l, nil
}

// counts counts the rows of every table of the persistent state, and the
// items per state, in tx.
func counts(ctx context.Context, tx *sql.Tx) (checkpoint.Counts, error) {
	c := checkpoint.Counts{Tables: map[string]int64{}, ItemStates: map[checkpoint.State]int64{}}
	for _, t := range checkpoint.Tables() {
		var n int64
		// The names are the package's constants, not input.
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return checkpoint.Counts{}, fmt.Errorf("count %s: %w", t, err)
		}
		c.Tables[t] = n
	}
	rows, err := tx.QueryContext(ctx, `SELECT state, count(*) FROM items GROUP BY state`)
	if err != nil {
		return checkpoint.Counts{}, fmt.Errorf("count items per state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st checkpoint.State
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return checkpoint.Counts{}, fmt.Errorf("count items per state: %w", err)
		}
		c.ItemStates[st] = n
	}
	if err := rows.Err(); err != nil {
		return checkpoint.Counts{}, fmt.Errorf("count items per state: %w", err)
	}
	return c, nil
}
