package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// ErrReadOnly is returned by every state-changing method of a Store opened
// with Options.ReadOnly.
var ErrReadOnly = errors.New("checkpoint: store is open read-only")

const pkgCols = `id, begin, "end", response_id, bill_file_name, requested_at, state, attempts,
	last_error, key, rows_key, size, sha256, calls, items, updated_at, rows_sha256, quarantine_key`

const itemCols = `id, kind, upstream_id, call_id, day, key, params, state, attempts,
	next_attempt_at, last_error, reason, size, sha256, created_at, updated_at, evidence, attested_at, owner, lease_until`

type scanner interface{ Scan(dest ...any) error }

// write runs fn in one IMMEDIATE transaction: it commits when fn returns
// nil and rolls back otherwise.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if s.readOnly {
		return ErrReadOnly
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// read runs fn in a read transaction, so its queries see one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// in returns "(?,?,…)" for n values and the values as arguments.
func in[T any](vals []T) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "(" + strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",") + ")", args
}

func knownState(st checkpoint.State) bool { return slices.Contains(checkpoint.States, st) }

func scanPackage(r scanner) (checkpoint.Package, error) {
	var p checkpoint.Package
	var begin, end, requested, updated int64
	err := r.Scan(&p.ID, &begin, &end, &p.ResponseID, &p.BillFileName, &requested, &p.State, &p.Attempts,
		&p.LastError, &p.Key, &p.RowsKey, &p.Size, &p.SHA256, &p.Calls, &p.Items, &updated, &p.RowsSHA256, &p.QuarantineKey)
	if err != nil {
		return checkpoint.Package{}, err
	}
	p.Begin, p.End, p.RequestedAt, p.UpdatedAt = dec(begin), dec(end), dec(requested), dec(updated)
	return p, nil
}

func scanItem(r scanner) (checkpoint.Item, error) {
	var it checkpoint.Item
	var params []byte // one copy of the column, kept as the item's Args
	var next, created, updated, attested, lease int64
	err := r.Scan(&it.ID, &it.Kind, &it.UpstreamID, &it.CallID, &it.Day, &it.Key, &params, &it.State, &it.Attempts,
		&next, &it.LastError, &it.Reason, &it.Size, &it.SHA256, &created, &updated, &it.Evidence, &attested, &it.Owner, &lease)
	if err != nil {
		return checkpoint.Item{}, err
	}
	if len(params) > 0 {
		if !json.Valid(params) {
			return checkpoint.Item{}, fmt.Errorf("item %d: decode params: not JSON", it.ID)
		}
		it.Args = json.RawMessage(params)
	}
	it.NextAttemptAt, it.CreatedAt, it.UpdatedAt, it.AttestedAt = dec(next), dec(created), dec(updated), dec(attested)
	it.LeaseUntil = dec(lease)
	return it, nil
}

func collectItems(rows *sql.Rows) ([]checkpoint.Item, error) {
	defer rows.Close()
	var out []checkpoint.Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// encodeParams stores an item's arguments as their JSON text; none as ""
// (read back as nil).
func encodeParams(args json.RawMessage) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	if !json.Valid(args) {
		return "", errors.New("not JSON")
	}
	return string(args), nil
}

// CreatePackage records a new package request in state pending, whatever
// p.State says, and returns its ID.
func (s *Store) CreatePackage(ctx context.Context, p checkpoint.Package) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var e timeEnc
		begin, end, requested := e.enc(p.Begin), e.enc(p.End), e.enc(p.RequestedAt)
		if e.err != nil {
			return e.err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO packages (begin, "end", response_id, bill_file_name, requested_at,
			state, attempts, last_error, key, rows_key, size, sha256, calls, items, updated_at, rows_sha256, quarantine_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			begin, end, p.ResponseID, p.BillFileName, requested, checkpoint.StatePending, p.Attempts, p.LastError,
			p.Key, p.RowsKey, p.Size, p.SHA256, p.Calls, p.Items, s.stamp(), p.RowsSHA256, p.QuarantineKey)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint: create package %s–%s: %w", fmtTime(p.Begin), fmtTime(p.End), err)
	}
	return id, nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// OpenPackage returns the newest package of [begin, end) that is neither
// done nor dead.
func (s *Store) OpenPackage(ctx context.Context, begin, end time.Time) (checkpoint.Package, bool, error) {
	p, ok, err := s.findPackage(ctx, begin, end, `state NOT IN ('done', 'dead')`)
	if err != nil {
		return p, ok, fmt.Errorf("checkpoint: open package %s–%s: %w", fmtTime(begin), fmtTime(end), err)
	}
	return p, ok, nil
}

// LastDonePackage returns the newest done package of [begin, end).
func (s *Store) LastDonePackage(ctx context.Context, begin, end time.Time) (checkpoint.Package, bool, error) {
	p, ok, err := s.findPackage(ctx, begin, end, `state = 'done'`)
	if err != nil {
		return p, ok, fmt.Errorf("checkpoint: last done package %s–%s: %w", fmtTime(begin), fmtTime(end), err)
	}
	return p, ok, nil
}

// UnfinishedWindows returns the newest package of every window beginning
// before before whose newest package is pending or failed, by window begin
// (packages_window finds the newer packages of a window).
func (s *Store) UnfinishedWindows(ctx context.Context, before time.Time) ([]checkpoint.Package, error) {
	var e timeEnc
	b := e.enc(before)
	if e.err != nil {
		return nil, fmt.Errorf("checkpoint: unfinished windows: %w", e.err)
	}
	out, err := s.queryPackages(ctx, `SELECT `+pkgCols+` FROM packages AS p
		WHERE p.state IN ('pending', 'failed') AND p.begin < ?
		AND NOT EXISTS (SELECT 1 FROM packages AS q WHERE q.begin = p.begin AND q."end" = p."end" AND q.id > p.id)
		ORDER BY p.begin, p.id`, b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: unfinished windows: %w", err)
	}
	return out, nil
}

// Packages returns the packages in any of the given states (all when none),
// by window begin, then ID.
func (s *Store) Packages(ctx context.Context, states ...checkpoint.State) ([]checkpoint.Package, error) {
	q := `SELECT ` + pkgCols + ` FROM packages`
	var args []any
	if len(states) > 0 {
		var list string
		list, args = in(states)
		q += ` WHERE state IN ` + list
	}
	out, err := s.queryPackages(ctx, q+` ORDER BY begin, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: packages: %w", err)
	}
	return out, nil
}

// queryPackages runs a query of pkgCols and scans its rows.
func (s *Store) queryPackages(ctx context.Context, q string, args ...any) ([]checkpoint.Package, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []checkpoint.Package
	for rows.Next() {
		p, err := scanPackage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s *Store) findPackage(ctx context.Context, begin, end time.Time, cond string) (checkpoint.Package, bool, error) {
	var e timeEnc
	b, en := e.enc(begin), e.enc(end)
	if e.err != nil {
		return checkpoint.Package{}, false, e.err
	}
	row := s.db.QueryRowContext(ctx, `SELECT `+pkgCols+` FROM packages
		WHERE begin = ? AND "end" = ? AND `+cond+` ORDER BY id DESC LIMIT 1`, b, en)
	p, err := scanPackage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return checkpoint.Package{}, false, nil
	}
	if err != nil {
		return checkpoint.Package{}, false, err
	}
	return p, true, nil
}

// UpdatePackage saves every field of p except ID, Begin and End; UpdatedAt
// is set from the store clock. p.State must be one of checkpoint.States. An
// unknown ID is ErrNotFound.
func (s *Store) UpdatePackage(ctx context.Context, p checkpoint.Package) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return s.updatePackage(ctx, tx, p) })
	if err != nil {
		return fmt.Errorf("checkpoint: update package %d: %w", p.ID, err)
	}
	return nil
}

func (s *Store) updatePackage(ctx context.Context, tx *sql.Tx, p checkpoint.Package) error {
	if !knownState(p.State) {
		return fmt.Errorf("unknown state %q", p.State)
	}
	var e timeEnc
	requested := e.enc(p.RequestedAt)
	if e.err != nil {
		return e.err
	}
	res, err := tx.ExecContext(ctx, `UPDATE packages SET response_id = ?, bill_file_name = ?, requested_at = ?,
		state = ?, attempts = ?, last_error = ?, key = ?, rows_key = ?, size = ?, sha256 = ?, calls = ?, items = ?,
		updated_at = ?, rows_sha256 = ?, quarantine_key = ? WHERE id = ?`,
		p.ResponseID, p.BillFileName, requested, p.State, p.Attempts, p.LastError, p.Key, p.RowsKey, p.Size,
		p.SHA256, p.Calls, p.Items, s.stamp(), p.RowsSHA256, p.QuarantineKey, p.ID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return checkpoint.ErrNotFound
	}
	return nil
}

// AddCalls adds calls and items (existing ones untouched) in one
// transaction, and returns how many items were new.
func (s *Store) AddCalls(ctx context.Context, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	var added int
	if len(calls)+len(items) > 0 {
		if err := s.prepareInserts(ctx); err != nil {
			return 0, fmt.Errorf("checkpoint: prepare inserts: %w", err)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.insertCalls(ctx, tx, calls); err != nil {
			return err
		}
		var err error
		added, err = s.insertItems(ctx, tx, items)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint: add %d calls: %w", len(calls), err)
	}
	return added, nil
}

// CompletePackage adds calls and items (existing ones untouched) and saves p
// as done, in one transaction. It returns how many items were new.
func (s *Store) CompletePackage(ctx context.Context, p checkpoint.Package, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	var added int
	if len(calls)+len(items) > 0 {
		if err := s.prepareInserts(ctx); err != nil {
			return 0, fmt.Errorf("checkpoint: prepare inserts: %w", err)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.insertCalls(ctx, tx, calls); err != nil {
			return err
		}
		var err error
		if added, err = s.insertItems(ctx, tx, items); err != nil {
			return err
		}
		p.State = checkpoint.StateDone
		return s.updatePackage(ctx, tx, p)
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint: complete package %d: %w", p.ID, err)
	}
	return added, nil
}

func (s *Store) insertCalls(ctx context.Context, tx *sql.Tx, calls []checkpoint.Call) error {
	if len(calls) == 0 {
		return nil
	}
	now := s.stamp()
	rows := s.rowsPerInsert()
	args := make([]any, 0, min(len(calls), rows)*callValues)
	for start := 0; start < len(calls); start += rows {
		part := calls[start:min(start+rows, len(calls))]
		args = args[:0]
		for _, c := range part {
			if c.CallID == "" {
				return errors.New("call with empty CallID")
			}
			var e timeEnc
			begin := e.enc(c.Begin)
			if e.err != nil {
				return fmt.Errorf("call %s: %w", c.CallID, e.err)
			}
			args = append(args, c.CallID, c.Day, begin, c.VDN, c.AgentID, now)
		}
		stmt, err := s.insertStmt(ctx, tx, insertCallsSQL, callValues, len(part))
		if err != nil {
			return err
		}
		_, err = stmt.ExecContext(ctx, args...)
		stmt.Close()
		if err != nil {
			return fmt.Errorf("calls %s to %s: %w", part[0].CallID, part[len(part)-1].CallID, err)
		}
	}
	return nil
}

// Rows are added in statements of up to insertRows rows (items, calls): a
// statement's fixed cost (database/sql and the driver per call, binding,
// the VDBE's start and end) is then shared by that many rows instead of
// paid by each. Each row still fires the day-summary triggers, and ON
// CONFLICT DO NOTHING still skips a known row (also one met earlier in the
// same statement); the statement's changes count only the rows it added.
// 64 rows of 16 values stay far below SQLite's limit of bound parameters.
const insertRows = 64

// rowsPerInsert is insertRows, or the store's own setting (a benchmark's
// baseline of one row a statement).
func (s *Store) rowsPerInsert() int {
	if s.insertRows > 0 {
		return s.insertRows
	}
	return insertRows
}

// Multi-row INSERT statements: the head, then n tuples of cols values.
const (
	insertCallsSQL = `INSERT INTO calls (call_id, day, begin, vdn, agent_id, created_at) VALUES `
	callValues     = 6
	insertItemsSQL = `INSERT INTO items (kind, upstream_id, call_id, day, key, params, state,
		attempts, next_attempt_at, last_error, reason, size, sha256, created_at, updated_at, evidence) VALUES `
	itemValues = 16
)

// insertSQL is head with n tuples of cols placeholders, skipping known rows.
func insertSQL(head string, cols, n int) string {
	tuple := "(?" + strings.Repeat(", ?", cols-1) + ")"
	conflict := " ON CONFLICT (kind, upstream_id) DO NOTHING"
	if head == insertCallsSQL {
		conflict = " ON CONFLICT (call_id) DO NOTHING"
	}
	return head + tuple + strings.Repeat(", "+tuple, n-1) + conflict
}

// insertStmt returns the statement adding n rows in tx: one prepared
// earlier from the cache (prepareInserts), else one prepared in tx. The
// caller closes it (which leaves a cached statement open).
func (s *Store) insertStmt(ctx context.Context, tx *sql.Tx, head string, cols, n int) (*sql.Stmt, error) {
	q := insertSQL(head, cols, n)
	if c := s.stmts.get(q); c != nil {
		return tx.StmtContext(ctx, c), nil
	}
	return tx.PrepareContext(ctx, q)
}

// prepareInserts prepares the full-size insert statements, outside any
// transaction (the one connection is the transaction's while it lasts).
func (s *Store) prepareInserts(ctx context.Context) error {
	rows := s.rowsPerInsert()
	if _, err := s.stmts.prepare(ctx, s.db, insertSQL(insertCallsSQL, callValues, rows)); err != nil {
		return err
	}
	_, err := s.stmts.prepare(ctx, s.db, insertSQL(insertItemsSQL, itemValues, rows))
	return err
}

// insertItems adds the items that are new and returns how many. An item's
// State may be empty (pending), pending or absent.
func (s *Store) insertItems(ctx context.Context, tx *sql.Tx, items []checkpoint.Item) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	now := s.stamp()
	rows := s.rowsPerInsert()
	args := make([]any, 0, min(len(items), rows)*itemValues)
	added := 0
	for start := 0; start < len(items); start += rows {
		part := items[start:min(start+rows, len(items))]
		args = args[:0]
		for _, it := range part {
			st, err := checkpoint.AddedState(it)
			if err != nil {
				return 0, err
			}
			params, err := encodeParams(it.Args)
			if err != nil {
				return 0, fmt.Errorf("item %s/%s: encode params: %w", it.Kind, it.UpstreamID, err)
			}
			var e timeEnc
			next := e.enc(it.NextAttemptAt)
			if e.err != nil {
				return 0, fmt.Errorf("item %s/%s: %w", it.Kind, it.UpstreamID, e.err)
			}
			args = append(args, it.Kind, it.UpstreamID, it.CallID, it.Day, it.Key, params, st,
				it.Attempts, next, it.LastError, it.Reason, it.Size, it.SHA256, now, now, it.Evidence)
		}
		stmt, err := s.insertStmt(ctx, tx, insertItemsSQL, itemValues, len(part))
		if err != nil {
			return 0, err
		}
		res, err := stmt.ExecContext(ctx, args...)
		stmt.Close()
		if err != nil {
			first, last := part[0], part[len(part)-1]
			return 0, fmt.Errorf("items %s/%s to %s/%s: %w", first.Kind, first.UpstreamID, last.Kind, last.UpstreamID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		added += int(n)
	}
	return added, nil
}

// AddItems adds the items whose (Kind, UpstreamID) is new, in one
// transaction, and returns how many. State may be empty (pending), pending,
// or absent (with Reason); any other state is refused with ErrState.
func (s *Store) AddItems(ctx context.Context, items []checkpoint.Item) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	var added int
	// A lookup adds the few recordings it found: the statement is prepared
	// once for all of them (it must be, outside the transaction).
	_, err := s.stmts.prepare(ctx, s.db, insertSQL(insertItemsSQL, itemValues, min(len(items), s.rowsPerInsert())))
	if err != nil {
		return 0, fmt.Errorf("checkpoint: add %d items: %w", len(items), err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var err error
		added, err = s.insertItems(ctx, tx, items)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint: add %d items: %w", len(items), err)
	}
	return added, nil
}

// Claim moves up to limit due items of the given kinds (all kinds when
// none) to in_progress, owned by c.Owner until the store clock plus
// c.Lease, and returns them, oldest NextAttemptAt first, then by ID. Due are
// pending and failed items whose NextAttemptAt is not after now, and
// in_progress items whose lease has expired on the store clock. A limit ≤ 0
// means no limit.
func (s *Store) Claim(ctx context.Context, c checkpoint.Claimer, kinds []string, now time.Time, limit int) ([]checkpoint.Item, error) {
	var out []checkpoint.Item
	if err := checkClaimer(c); err != nil {
		return nil, fmt.Errorf("checkpoint: claim %s: %w", kindsString(kinds), err)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	stmt, err := s.stmts.prepare(ctx, s.db, claimSQL(len(kinds), limit))
	if err == nil {
		err = s.write(ctx, func(tx *sql.Tx) error {
			var e timeEnc
			n := e.enc(now)
			stamp := s.stamp()
			until := e.enc(dec(stamp).Add(c.Lease))
			if e.err != nil {
				return e.err
			}
			args := []any{c.Owner, until, stamp}
			for _, bound := range []int64{n, n, stamp} { // the branches of claimSQL: per state, per kind
				if len(kinds) == 0 {
					args = append(args, bound)
				}
				for _, k := range kinds {
					args = append(args, bound, k)
				}
			}
			rows, err := tx.StmtContext(ctx, stmt).QueryContext(ctx, args...)
			if err != nil {
				return err
			}
			out, err = collectItems(rows)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: claim %s: %w", kindsString(kinds), err)
	}
	// RETURNING gives rows in no defined order.
	slices.SortFunc(out, func(a, b checkpoint.Item) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// claimSQL is the claim's statement for nkinds kinds (all kinds when 0)
// and a limit (-1: none).
// One branch per claimable state and kind, each read in the order of its
// index (items_claim: state, kind, next_attempt_at, then the rowid) and cut
// at the limit, so a claim reads about limit rows per branch however many
// items wait, of its kinds or of others: one query with an OR of the states
// would sort every due item on each claim, and a kind filtered after the
// index read past every due item of the other kinds. Without kinds (tests)
// a branch per state sorts its due items.
// Its arguments: owner, lease_until, updated_at, then for each branch its
// bound and its kind. The limit is written into the text: SQLite reads a
// LIMIT's bound parameter while planning and then prepares the statement
// again each time the parameter is bound, which was a third of a claim's
// CPU.
func claimSQL(nkinds, limit int) string {
	lim := " LIMIT " + strconv.Itoa(limit)
	var branches []string
	for _, cond := range []string{`state = 'pending' AND next_attempt_at <= ?`, `state = 'failed' AND next_attempt_at <= ?`,
		`state = 'in_progress' AND lease_until <= ?`} {
		for k := 0; k < max(nkinds, 1); k++ {
			kind := ""
			if nkinds > 0 {
				kind = ` AND kind = ?`
			}
			branches = append(branches, `SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM items
			WHERE `+cond+kind+` ORDER BY next_attempt_at, id`+lim+`)`)
		}
	}
	return `UPDATE items SET state = 'in_progress', owner = ?, lease_until = ?, updated_at = ?
		WHERE id IN (SELECT id FROM (` + strings.Join(branches, ` UNION ALL `) + `) ORDER BY next_attempt_at, id` + lim + `)
		RETURNING ` + itemCols
}

// checkClaimer refuses a claim without an owner or a lease.
func checkClaimer(c checkpoint.Claimer) error {
	if c.Owner == "" {
		return errors.New("no owner")
	}
	if c.Lease <= 0 {
		return fmt.Errorf("lease %s: not positive", c.Lease)
	}
	return nil
}

// renewBatch bounds the IDs of one Renew statement (SQLite's limit on
// parameters is far above it).
const renewBatch = 500

// Renew extends to the store clock plus c.Lease the leases of the items
// that c.Owner holds, and returns the others in the order given. UpdatedAt
// is left alone: a renewal is no change of state.
func (s *Store) Renew(ctx context.Context, c checkpoint.Claimer, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	held := map[int64]bool{}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := checkClaimer(c); err != nil {
			return err
		}
		var e timeEnc
		until := e.enc(s.now().Add(c.Lease))
		if e.err != nil {
			return e.err
		}
		for chunk := range slices.Chunk(ids, renewBatch) {
			list, args := in(chunk)
			rows, err := tx.QueryContext(ctx, `UPDATE items SET lease_until = ?
				WHERE id IN `+list+` AND state = 'in_progress' AND owner = ? RETURNING id`,
				append(append([]any{until}, args...), c.Owner)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				held[id] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: renew %d leases of %s: %w", len(ids), c.Owner, err)
	}
	var lost []int64
	for _, id := range ids {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

func kindsString(kinds []string) string {
	if len(kinds) == 0 {
		return "all kinds"
	}
	return strings.Join(kinds, ",")
}

// change runs one item transition (see op): through the group committer, or
// as its own transaction when group commit is off. The item must exist
// (else ErrNotFound), be in one of the from states (else ErrState) and, when
// it is in_progress, be owner's (else ErrLeaseLost), all checked inside the
// transaction; then fn applies the change, which must end the claim (clear
// owner and lease_until). An error fn
// raises before writing, about a value it cannot store, must be a refusal,
// so that the batch it shares goes on without it.
func (s *Store) change(ctx context.Context, name, owner string, id int64, from []checkpoint.State, fn func(ctx context.Context, tx *batchTx, attempts int) error) error {
	return s.submitOp(name, &op{ctx: ctx, owner: owner, id: id, from: from, apply: fn})
}

// changeTo is change when the change is one UPDATE of the item, q ending
// in "WHERE id = ?", with args (id last; stampNow{} for the store's clock
// when the change is applied): it runs guarded by the checks, and the item
// is read only when it is refused (op.update).
func (s *Store) changeTo(ctx context.Context, name, owner string, id int64, from []checkpoint.State, q string, args ...any) error {
	return s.submitOp(name, &op{ctx: ctx, owner: owner, id: id, from: from, update: q, args: args})
}

func (s *Store) submitOp(name string, o *op) error {
	if err := s.submit(o); err != nil {
		return fmt.Errorf("checkpoint: %s item %d: %w", name, o.id, err)
	}
	return nil
}

// Done marks an in_progress item done with the key, size and digest the
// sink verified, and clears LastError.
func (s *Store) Done(ctx context.Context, owner string, id int64, key string, size int64, sha256 string) error {
	return s.changeTo(ctx, "done", owner, id, []checkpoint.State{checkpoint.StateInProgress}, `UPDATE items SET state = ?, key = ?,
		size = ?, sha256 = ?, last_error = '', owner = '', lease_until = 0, updated_at = ? WHERE id = ?`,
		checkpoint.StateDone, key, size, sha256, stampNow{}, id)
}

// DoneArgs is Done that also replaces the item's arguments.
func (s *Store) DoneArgs(ctx context.Context, owner string, id int64, key string, size int64, sha256 string, args json.RawMessage) error {
	params, err := encodeParams(args)
	if err != nil {
		return fmt.Errorf("checkpoint: done item %d: args: %w", id, err)
	}
	return s.changeTo(ctx, "done", owner, id, []checkpoint.State{checkpoint.StateInProgress}, `UPDATE items SET state = ?, key = ?,
		size = ?, sha256 = ?, params = ?, last_error = '', owner = '', lease_until = 0, updated_at = ? WHERE id = ?`,
		checkpoint.StateDone, key, size, sha256, params, stampNow{}, id)
}

// Absent marks an item absent with the reason and the source's evidence.
// Unlike the other transitions it also applies to pending and failed items:
// a job may rule an item absent without claiming it.
func (s *Store) Absent(ctx context.Context, owner string, id int64, reason, evidence string) error {
	from := []checkpoint.State{checkpoint.StateInProgress, checkpoint.StatePending, checkpoint.StateFailed}
	return s.changeTo(ctx, "absent", owner, id, from, `UPDATE items SET state = ?, reason = ?, evidence = ?, owner = '',
		lease_until = 0, updated_at = ? WHERE id = ?`, checkpoint.StateAbsent, reason, evidence, stampNow{}, id)
}

// Resolve records an operator's decision that a failed or dead item has no
// recording.
func (s *Store) Resolve(ctx context.Context, id int64, reason string, at time.Time) (checkpoint.Item, error) {
	if strings.TrimSpace(reason) == "" {
		return checkpoint.Item{}, fmt.Errorf("checkpoint: resolve item %d: empty reason", id)
	}
	var e timeEnc
	when := e.enc(at)
	if e.err != nil || when == 0 {
		return checkpoint.Item{}, fmt.Errorf("checkpoint: resolve item %d: bad time %v", id, at)
	}
	from := []checkpoint.State{checkpoint.StateFailed, checkpoint.StateDead}
	err := s.change(ctx, "resolve", "", id, from, func(ctx context.Context, tx *batchTx, _ int) error {
		return tx.exec(ctx, `UPDATE items SET state = ?, reason = ?, attested_at = ?, updated_at = ? WHERE id = ?`,
			checkpoint.StateAbsent, reason, when, s.stamp(), id)
	})
	if err != nil {
		return checkpoint.Item{}, err
	}
	return s.Item(ctx, id)
}

// Fail records a failed attempt of an in_progress item: Attempts+1,
// LastError = msg; the item becomes dead when Attempts reaches maxAttempts
// (maxAttempts > 0), else failed and due at next. It returns the new state.
func (s *Store) Fail(ctx context.Context, owner string, id int64, msg string, next time.Time, maxAttempts int) (checkpoint.State, error) {
	var st checkpoint.State
	err := s.change(ctx, "fail", owner, id, []checkpoint.State{checkpoint.StateInProgress}, func(ctx context.Context, tx *batchTx, attempts int) error {
		var e timeEnc
		n := e.enc(next)
		if e.err != nil {
			return refusal{e.err}
		}
		attempts++
		st = checkpoint.StateFailed
		if maxAttempts > 0 && attempts >= maxAttempts {
			st = checkpoint.StateDead
		}
		return tx.exec(ctx, `UPDATE items SET state = ?, attempts = ?, last_error = ?, next_attempt_at = ?,
			owner = '', lease_until = 0, updated_at = ? WHERE id = ?`, st, attempts, msg, n, s.stamp(), id)
	})
	if err != nil {
		return "", err
	}
	return st, nil
}

// Defer puts an in_progress item back to pending, due at next, without
// counting an attempt; note replaces LastError.
func (s *Store) Defer(ctx context.Context, owner string, id int64, next time.Time, note string) error {
	return s.change(ctx, "defer", owner, id, []checkpoint.State{checkpoint.StateInProgress}, func(ctx context.Context, tx *batchTx, _ int) error {
		var e timeEnc
		n := e.enc(next)
		if e.err != nil {
			return refusal{e.err}
		}
		return tx.exec(ctx, `UPDATE items SET state = ?, next_attempt_at = ?, last_error = ?, owner = '', lease_until = 0,
			updated_at = ? WHERE id = ?`, checkpoint.StatePending, n, note, s.stamp(), id)
	})
}

// Release puts an in_progress item back to pending, due at once, without
// counting an attempt.
func (s *Store) Release(ctx context.Context, owner string, id int64) error {
	return s.changeTo(ctx, "release", owner, id, []checkpoint.State{checkpoint.StateInProgress},
		`UPDATE items SET state = ?, next_attempt_at = 0, owner = '', lease_until = 0, updated_at = ? WHERE id = ?`,
		checkpoint.StatePending, stampNow{}, id)
}

// RecoverInProgress releases (pending, due at once) the in_progress items
// owner holds and those whose lease has expired on the store clock, and
// returns how many. The claims of earlier processes expired at Open.
func (s *Store) RecoverInProgress(ctx context.Context, owner string) (int, error) {
	stamp := s.stamp()
	n, err := s.exec(ctx, `UPDATE items SET state = ?, next_attempt_at = 0, owner = '', lease_until = 0, updated_at = ?
		WHERE state = ? AND (owner = ? OR lease_until <= ?)`,
		checkpoint.StatePending, stamp, checkpoint.StateInProgress, owner, stamp)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: recover in-progress items: %w", err)
	}
	return n, nil
}

// Requeue moves every dead item of the given kinds (all when none) back to
// pending, due at once, with Attempts 0, and returns how many. LastError is
// kept for the record.
func (s *Store) Requeue(ctx context.Context, kinds ...string) (int, error) {
	q := `UPDATE items SET state = ?, attempts = 0, next_attempt_at = 0, updated_at = ? WHERE state = ?`
	args := []any{checkpoint.StatePending, s.stamp(), checkpoint.StateDead}
	if len(kinds) > 0 {
		list, kargs := in(kinds)
		q += ` AND kind IN ` + list
		args = append(args, kargs...)
	}
	n, err := s.exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: requeue dead items of %s: %w", kindsString(kinds), err)
	}
	return n, nil
}

// exec runs one statement in a write transaction and returns the rows it
// changed.
func (s *Store) exec(ctx context.Context, q string, args ...any) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// Item returns one item by ID, or an error wrapping ErrNotFound.
func (s *Store) Item(ctx context.Context, id int64) (checkpoint.Item, error) {
	it, err := scanItem(s.db.QueryRowContext(ctx, `SELECT `+itemCols+` FROM items WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = checkpoint.ErrNotFound
	}
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("checkpoint: item %d: %w", id, err)
	}
	return it, nil
}

// Items returns the items in any of the given states (all when none),
// ordered by ID.
func (s *Store) Items(ctx context.Context, states ...checkpoint.State) ([]checkpoint.Item, error) {
	q := `SELECT ` + itemCols + ` FROM items`
	var args []any
	if len(states) > 0 {
		var list string
		list, args = in(states)
		q += ` WHERE state IN ` + list
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err == nil {
		var out []checkpoint.Item
		if out, err = collectItems(rows); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("checkpoint: items %v: %w", states, err)
}

// DayCalls returns one day's calls ordered by CallID.
func (s *Store) DayCalls(ctx context.Context, day string) ([]checkpoint.Call, error) {
	out, err := func() ([]checkpoint.Call, error) {
		rows, err := s.db.QueryContext(ctx, `SELECT call_id, day, begin, vdn, agent_id FROM calls
			WHERE day = ? ORDER BY call_id`, day)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []checkpoint.Call
		for rows.Next() {
			var c checkpoint.Call
			var begin int64
			if err := rows.Scan(&c.CallID, &c.Day, &begin, &c.VDN, &c.AgentID); err != nil {
				return nil, err
			}
			c.Begin = dec(begin)
			out = append(out, c)
		}
		return out, rows.Err()
	}()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: calls of %s: %w", day, err)
	}
	return out, nil
}

// DayItems returns one day's items ordered by ID.
func (s *Store) DayItems(ctx context.Context, day string) ([]checkpoint.Item, error) {
	var out []checkpoint.Item
	err := s.EachDayItem(ctx, day, func(it checkpoint.Item) error {
		out = append(out, it)
		return nil
	})
	return out, err
}

// EachDayItem implements checkpoint.Store.
func (s *Store) EachDayItem(ctx context.Context, day string, fn func(checkpoint.Item) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+itemCols+` FROM items WHERE day = ? ORDER BY id`, day)
	if err != nil {
		return fmt.Errorf("checkpoint: items of %s: %w", day, err)
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return fmt.Errorf("checkpoint: items of %s: %w", day, err)
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkpoint: items of %s: %w", day, err)
	}
	return nil
}

// Days summarises every day that has calls or items, oldest first, from one
// snapshot of the database.
func (s *Store) Days(ctx context.Context) ([]checkpoint.DaySummary, error) {
	byDay := map[string]*checkpoint.DaySummary{}
	get := func(day string) *checkpoint.DaySummary {
		d, ok := byDay[day]
		if !ok {
			d = &checkpoint.DaySummary{Day: day, Counts: map[string]map[checkpoint.State]int{}}
			byDay[day] = d
		}
		return d
	}
	later := func(d *checkpoint.DaySummary, n int64) {
		if t := dec(n); t.After(d.Updated) {
			d.Updated = t
		}
	}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT day, n, updated FROM day_calls WHERE n > 0`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var day string
			var n int
			var upd int64
			if err := rows.Scan(&day, &n, &upd); err != nil {
				rows.Close()
				return err
			}
			d := get(day)
			d.Calls = n
			later(d, upd)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT day, kind, state, n, updated FROM day_items WHERE n > 0`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var day, kind string
			var st checkpoint.State
			var n int
			var upd int64
			if err := rows.Scan(&day, &kind, &st, &n, &upd); err != nil {
				return err
			}
			d := get(day)
			if d.Counts[kind] == nil {
				d.Counts[kind] = map[checkpoint.State]int{}
			}
			d.Counts[kind][st] = n
			later(d, upd)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: days: %w", err)
	}
	out := make([]checkpoint.DaySummary, 0, len(byDay))
	for _, d := range byDay {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b checkpoint.DaySummary) int { return strings.Compare(a.Day, b.Day) })
	return out, nil
}

// Watermark returns a job's watermark, ok false when it has none.
func (s *Store) Watermark(ctx context.Context, job string) (time.Time, bool, error) {
	return s.jobTime(ctx, `SELECT t FROM watermarks WHERE job = ?`, "watermark", job)
}

// jobTime reads a job's time with query (one row, one column t, the job
// its parameter); ok false when there is no row. what names it in errors.
func (s *Store) jobTime(ctx context.Context, query, what, job string) (time.Time, bool, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, query, job).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("checkpoint: %s of %s: %w", what, job, err)
	}
	return dec(n), true, nil
}

// SetWatermark moves a job's watermark forward to t; a t before the stored
// one is refused with ErrConflict.
func (s *Store) SetWatermark(ctx context.Context, job string, t time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var e timeEnc
		n := e.enc(t)
		if e.err != nil {
			return e.err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO watermarks (job, t) VALUES (?, ?)
			ON CONFLICT (job) DO UPDATE SET t = excluded.t WHERE excluded.t >= watermarks.t`, job, n)
		if err != nil {
			return err
		}
		if changed, err := res.RowsAffected(); err != nil || changed > 0 {
			return err
		}
		var cur int64
		if err := tx.QueryRowContext(ctx, `SELECT t FROM watermarks WHERE job = ?`, job).Scan(&cur); err != nil {
			return err
		}
		return fmt.Errorf("%s is before the stored %s: %w", fmtTime(t), fmtTime(dec(cur)), checkpoint.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("checkpoint: set watermark of %s: %w", job, err)
	}
	return nil
}

// LastSuccess returns when a job last finished a run without failures.
func (s *Store) LastSuccess(ctx context.Context, job string) (time.Time, bool, error) {
	return s.jobTime(ctx, `SELECT t FROM job_successes WHERE job = ?`, "last success", job)
}

// SetLastSuccess records a job's successful run at t, keeping the latest.
func (s *Store) SetLastSuccess(ctx context.Context, job string, t time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var e timeEnc
		n := e.enc(t)
		if e.err != nil {
			return e.err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO job_successes (job, t) VALUES (?, ?)
			ON CONFLICT (job) DO UPDATE SET t = excluded.t WHERE excluded.t > job_successes.t`, job, n)
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint: set last success of %s: %w", job, err)
	}
	return nil
}

// Ledger returns the digest and key of the last ledger written for a day.
func (s *Store) Ledger(ctx context.Context, day string) (string, string, bool, error) {
	var sum, key string
	err := s.db.QueryRowContext(ctx, `SELECT sha256, key FROM ledgers WHERE day = ?`, day).Scan(&sum, &key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("checkpoint: ledger of %s: %w", day, err)
	}
	return sum, key, true, nil
}

// SetLedger records the ledger object written for a day, replacing the
// record whose digest is prev ("" for none); another record is refused with
// ErrConflict.
func (s *Store) SetLedger(ctx context.Context, day, prev, sha256, key string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if prev == "" {
			res, err = tx.ExecContext(ctx, `INSERT INTO ledgers (day, sha256, key, written_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (day) DO NOTHING`, day, sha256, key, s.stamp())
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE ledgers SET sha256 = ?, key = ?, written_at = ? WHERE day = ? AND sha256 = ?`,
				sha256, key, s.stamp(), day, prev)
		}
		if err != nil {
			return err
		}
		if changed, err := res.RowsAffected(); err != nil || changed > 0 {
			return err
		}
		var cur string
		err = tx.QueryRowContext(ctx, `SELECT sha256 FROM ledgers WHERE day = ?`, day).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no record, expected %s: %w", prev, checkpoint.ErrConflict)
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("the record is %s, expected %s: %w", cur, orNone(prev), checkpoint.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("checkpoint: set ledger of %s: %w", day, err)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// TryLease takes or extends the named lease for owner until the store
// clock plus ttl, unless another owner holds it unexpired.
func (s *Store) TryLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := checkLease(name, owner, ttl); err != nil {
			return err
		}
		stamp := s.stamp()
		var e timeEnc
		until := e.enc(dec(stamp).Add(ttl))
		if e.err != nil {
			return e.err
		}
		var got string
		err := tx.QueryRowContext(ctx, `INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
			WHERE leases.owner = excluded.owner OR leases.until <= ?
			RETURNING owner`, name, owner, until, stamp).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("checkpoint: take lease %s for %s: %w", name, owner, err)
	}
	return ok, nil
}

// checkLease refuses a lease without a name, an owner or a duration.
func checkLease(name, owner string, ttl time.Duration) error {
	switch {
	case name == "":
		return errors.New("no lease name")
	case owner == "":
		return errors.New("no owner")
	case ttl <= 0:
		return fmt.Errorf("lease %s: not positive", ttl)
	}
	return nil
}

// Leases returns the leases held now (until after the store clock), by name.
func (s *Store) Leases(ctx context.Context) ([]checkpoint.Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, owner, until FROM leases WHERE until > ? ORDER BY name`, s.stamp())
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list leases: %w", err)
	}
	defer rows.Close()
	out := []checkpoint.Lease{}
	for rows.Next() {
		var l checkpoint.Lease
		var until int64
		if err := rows.Scan(&l.Name, &l.Owner, &until); err != nil {
			return nil, fmt.Errorf("checkpoint: list leases: %w", err)
		}
		l.Until = dec(until)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checkpoint: list leases: %w", err)
	}
	return out, nil
}

// ReleaseLease gives up owner's lease of name; a lease owner does not hold
// is left alone.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	// Expired rather than deleted, as in the PostgreSQL store.
	if _, err := s.exec(ctx, `UPDATE leases SET until = 0 WHERE name = ? AND owner = ?`, name, owner); err != nil {
		return fmt.Errorf("checkpoint: release lease %s of %s: %w", name, owner, err)
	}
	return nil
}
