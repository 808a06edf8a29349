package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

const pkgCols = `id, begin, "end", response_id, bill_file_name, requested_at, state, attempts,
	last_error, key, rows_key, size, sha256, calls, items, updated_at, rows_sha256, quarantine_key`

const itemCols = `id, kind, upstream_id, call_id, day, key, params, state, attempts,
	next_attempt_at, last_error, reason, size, sha256, created_at, updated_at, evidence, attested_at, owner, lease_until`

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// begin refuses a change on a read-only store or when ctx has ended: the
// check before a change is begun.
func (s *Store) begin(ctx context.Context) error {
	if s.readOnly {
		return ErrReadOnly
	}
	return ctx.Err()
}

// write runs fn in one transaction: fn's statements run under ctx (its end
// rolls the transaction back), the commit under a detached context, so that
// the call reports the commit's outcome whatever becomes of ctx.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		rctx, cancel := s.detach(ctx)
		_ = tx.Rollback(rctx)
		cancel()
		return err
	}
	cctx, cancel := s.detach(ctx)
	defer cancel()
	return tx.Commit(cctx)
}

// single runs fn, which sends one state-changing statement (its own
// transaction), on a connection: the connection is taken under ctx (the
// change has not begun), the statement runs under dctx, which ctx no longer
// interrupts.
func (s *Store) single(ctx context.Context, fn func(dctx context.Context, c *pgxpool.Conn) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	dctx, cancel := s.detach(ctx)
	defer cancel()
	return fn(dctx, c)
}

// exec runs one state-changing statement (see single) and returns the rows
// it changed.
func (s *Store) exec(ctx context.Context, q string, args ...any) (int64, error) {
	var n int64
	err := s.single(ctx, func(dctx context.Context, c *pgxpool.Conn) error {
		tag, err := c.Exec(dctx, q, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// read runs fn in a read-only REPEATABLE READ transaction, so that its
// queries see one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := s.detach(ctx)
		_ = tx.Rollback(rctx)
		cancel()
	}()
	return fn(tx)
}

func knownState(st checkpoint.State) bool { return slices.Contains(checkpoint.States, st) }

func stateList(states []checkpoint.State) []string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return out
}

func scanPackage(r pgx.Row) (checkpoint.Package, error) {
	var p checkpoint.Package
	var state string
	var begin, end, requested, updated int64
	err := r.Scan(&p.ID, &begin, &end, &p.ResponseID, &p.BillFileName, &requested, &state, &p.Attempts,
		&p.LastError, &p.Key, &p.RowsKey, &p.Size, &p.SHA256, &p.Calls, &p.Items, &updated, &p.RowsSHA256, &p.QuarantineKey)
	if err != nil {
		return checkpoint.Package{}, err
	}
	p.State = checkpoint.State(state)
	p.Begin, p.End, p.RequestedAt, p.UpdatedAt = dec(begin), dec(end), dec(requested), dec(updated)
	return p, nil
}

func scanItem(r pgx.Row) (checkpoint.Item, error) {
	var it checkpoint.Item
	var params, state string
	var next, created, updated, attested, lease int64
	err := r.Scan(&it.ID, &it.Kind, &it.UpstreamID, &it.CallID, &it.Day, &it.Key, &params, &state, &it.Attempts,
		&next, &it.LastError, &it.Reason, &it.Size, &it.SHA256, &created, &updated, &it.Evidence, &attested, &it.Owner, &lease)
	if err != nil {
		return checkpoint.Item{}, err
	}
	it.State = checkpoint.State(state)
	if params != "" {
		if !json.Valid([]byte(params)) {
			return checkpoint.Item{}, fmt.Errorf("item %d: decode params: not JSON", it.ID)
		}
		it.Args = json.RawMessage(params)
	}
	it.NextAttemptAt, it.CreatedAt, it.UpdatedAt, it.AttestedAt = dec(next), dec(created), dec(updated), dec(attested)
	it.LeaseUntil = dec(lease)
	return it, nil
}

func collectItems(rows pgx.Rows) ([]checkpoint.Item, error) {
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
	if !utf8.Valid(args) {
		return "", errors.New("not valid UTF-8")
	}
	return string(args), nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// CreatePackage records a new package request in state pending, whatever
// p.State says, and returns its ID.
func (s *Store) CreatePackage(ctx context.Context, p checkpoint.Package) (int64, error) {
	id, err := func() (int64, error) {
		var e timeEnc
		begin, end, requested := e.enc(p.Begin), e.enc(p.End), e.enc(p.RequestedAt)
		if e.err != nil {
			return 0, e.err
		}
		var te textEnc
		args := []any{s.tenant, begin, end, te.check("response id", p.ResponseID), te.check("bill file name", p.BillFileName),
			requested, string(checkpoint.StatePending), p.Attempts, freeText(p.LastError), te.check("key", p.Key),
			te.check("rows key", p.RowsKey), p.Size, te.check("sha256", p.SHA256), p.Calls, p.Items, s.stamp(),
			te.check("rows sha256", p.RowsSHA256), te.check("quarantine key", p.QuarantineKey)}
		if te.err != nil {
			return 0, te.err
		}
		var id int64
		err := s.single(ctx, func(dctx context.Context, c *pgxpool.Conn) error {
			return c.QueryRow(dctx, `INSERT INTO packages (tenant, begin, "end", response_id, bill_file_name,
			requested_at, state, attempts, last_error, key, rows_key, size, sha256, calls, items, updated_at,
			rows_sha256, quarantine_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id`,
				args...).Scan(&id)
		})
		return id, err
	}()
	if err != nil {
		return 0, fmt.Errorf("checkpoint: create package %s–%s: %w", fmtTime(p.Begin), fmtTime(p.End), err)
	}
	return id, nil
}

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

func (s *Store) findPackage(ctx context.Context, begin, end time.Time, cond string) (checkpoint.Package, bool, error) {
	var e timeEnc
	b, en := e.enc(begin), e.enc(end)
	if e.err != nil {
		return checkpoint.Package{}, false, e.err
	}
	p, err := scanPackage(s.pool.QueryRow(ctx, `SELECT `+pkgCols+` FROM packages
		WHERE tenant = $1 AND begin = $2 AND "end" = $3 AND `+cond+` ORDER BY id DESC LIMIT 1`, s.tenant, b, en))
	if errors.Is(err, pgx.ErrNoRows) {
		return checkpoint.Package{}, false, nil
	}
	if err != nil {
		return checkpoint.Package{}, false, err
	}
	return p, true, nil
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
		WHERE p.tenant = $1 AND p.state IN ('pending', 'failed') AND p.begin < $2
		AND NOT EXISTS (SELECT 1 FROM packages AS q
			WHERE q.tenant = p.tenant AND q.begin = p.begin AND q."end" = p."end" AND q.id > p.id)
		ORDER BY p.begin, p.id`, s.tenant, b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: unfinished windows: %w", err)
	}
	return out, nil
}

// Packages returns the packages in any of the given states (all when none),
// by window begin, then ID.
func (s *Store) Packages(ctx context.Context, states ...checkpoint.State) ([]checkpoint.Package, error) {
	q := `SELECT ` + pkgCols + ` FROM packages WHERE tenant = $1`
	args := []any{s.tenant}
	if len(states) > 0 {
		q += ` AND state = ANY($2)`
		args = append(args, stateList(states))
	}
	out, err := s.queryPackages(ctx, q+` ORDER BY begin, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: packages: %w", err)
	}
	return out, nil
}

// queryPackages runs a query of pkgCols and scans its rows.
func (s *Store) queryPackages(ctx context.Context, q string, args ...any) ([]checkpoint.Package, error) {
	rows, err := s.pool.Query(ctx, q, args...)
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

// UpdatePackage saves every field of p except ID, Begin and End; UpdatedAt
// is set from the store clock. p.State must be one of checkpoint.States. An
// unknown ID is ErrNotFound.
func (s *Store) UpdatePackage(ctx context.Context, p checkpoint.Package) error {
	err := s.write(ctx, func(tx pgx.Tx) error { return s.updatePackage(ctx, tx, p) })
	if err != nil {
		return fmt.Errorf("checkpoint: update package %d: %w", p.ID, err)
	}
	return nil
}

func (s *Store) updatePackage(ctx context.Context, q querier, p checkpoint.Package) error {
	if !knownState(p.State) {
		return fmt.Errorf("unknown state %q", p.State)
	}
	var e timeEnc
	requested := e.enc(p.RequestedAt)
	if e.err != nil {
		return e.err
	}
	var te textEnc
	args := []any{s.tenant, p.ID, te.check("response id", p.ResponseID), te.check("bill file name", p.BillFileName),
		requested, string(p.State), p.Attempts, freeText(p.LastError), te.check("key", p.Key), te.check("rows key", p.RowsKey),
		p.Size, te.check("sha256", p.SHA256), p.Calls, p.Items, s.stamp(), te.check("rows sha256", p.RowsSHA256),
		te.check("quarantine key", p.QuarantineKey)}
	if te.err != nil {
		return te.err
	}
	tag, err := q.Exec(ctx, `UPDATE packages SET response_id = $3, bill_file_name = $4, requested_at = $5,
		state = $6, attempts = $7, last_error = $8, key = $9, rows_key = $10, size = $11, sha256 = $12, calls = $13,
		items = $14, updated_at = $15, rows_sha256 = $16, quarantine_key = $17 WHERE tenant = $1 AND id = $2`, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return checkpoint.ErrNotFound
	}
	return nil
}

// AddCalls adds calls and items (existing ones untouched) in one
// transaction, and returns how many items were new.
func (s *Store) AddCalls(ctx context.Context, calls []checkpoint.Call, items []checkpoint.Item) (int, error) {
	var added int
	err := s.write(ctx, func(tx pgx.Tx) error {
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
	err := s.write(ctx, func(tx pgx.Tx) error {
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

// insertCalls adds the calls whose ID is new, in one statement.
func (s *Store) insertCalls(ctx context.Context, q querier, calls []checkpoint.Call) error {
	if len(calls) == 0 {
		return nil
	}
	n := len(calls)
	ids, days, begins, vdns, agents := make([]string, n), make([]string, n), make([]int64, n), make([]string, n), make([]string, n)
	for i, c := range calls {
		if c.CallID == "" {
			return errors.New("call with empty CallID")
		}
		var e timeEnc
		begins[i] = e.enc(c.Begin)
		if e.err != nil {
			return fmt.Errorf("call %s: %w", c.CallID, e.err)
		}
		var te textEnc
		ids[i], days[i], vdns[i], agents[i] = te.check("call id", c.CallID), te.check("day", c.Day), te.check("vdn", c.VDN), te.check("agent id", c.AgentID)
		if te.err != nil {
			return fmt.Errorf("call %q: %w", c.CallID, te.err)
		}
	}
	_, err := q.Exec(ctx, `INSERT INTO calls (tenant, call_id, day, begin, vdn, agent_id, created_at)
		SELECT $1, u.call_id, u.day, u.b, u.vdn, u.agent_id, $2
		FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
			WITH ORDINALITY AS u(call_id, day, b, vdn, agent_id, ord)
		ORDER BY u.ord
		ON CONFLICT (tenant, call_id) DO NOTHING`,
		s.tenant, s.stamp(), ids, days, begins, vdns, agents)
	return err
}

// insertItems adds the items that are new, in one statement, and returns
// how many. An item's State may be empty (pending), pending or absent. New
// items get their IDs in the order given.
func (s *Store) insertItems(ctx context.Context, q querier, items []checkpoint.Item) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	n := len(items)
	var (
		kinds, ups, callIDs, days, keys, params, states = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		lastErrs, reasons, shas, evidence               = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		attempts, nexts, sizes                          = make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i, it := range items {
		st, err := checkpoint.AddedState(it)
		if err != nil {
			return 0, err
		}
		p, err := encodeParams(it.Args)
		if err != nil {
			return 0, fmt.Errorf("item %s/%s: encode params: %w", it.Kind, it.UpstreamID, err)
		}
		var e timeEnc
		nexts[i] = e.enc(it.NextAttemptAt)
		if e.err != nil {
			return 0, fmt.Errorf("item %s/%s: %w", it.Kind, it.UpstreamID, e.err)
		}
		var te textEnc
		kinds[i], ups[i], callIDs[i] = te.check("kind", it.Kind), te.check("upstream id", it.UpstreamID), te.check("call id", it.CallID)
		days[i], keys[i], shas[i] = te.check("day", it.Day), te.check("key", it.Key), te.check("sha256", it.SHA256)
		if te.err != nil {
			return 0, fmt.Errorf("item %q/%q: %w", it.Kind, it.UpstreamID, te.err)
		}
		params[i], states[i], attempts[i], sizes[i] = p, string(st), int64(it.Attempts), it.Size
		lastErrs[i], reasons[i], evidence[i] = freeText(it.LastError), freeText(it.Reason), freeText(it.Evidence)
	}
	// Rows that exist are left out before the insert, so that they draw no
	// ID; ON CONFLICT covers a row inserted meanwhile, or twice in the list.
	tag, err := q.Exec(ctx, `INSERT INTO items (tenant, kind, upstream_id, call_id, day, key, params, state,
			attempts, next_attempt_at, last_error, reason, size, sha256, created_at, updated_at, evidence)
		SELECT $1, u.kind, u.upstream_id, u.call_id, u.day, u.key, u.params, u.state,
			u.attempts, u.next_attempt_at, u.last_error, u.reason, u.size, u.sha256, $2, $2, u.evidence
		FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
				$10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::bigint[], $15::text[], $16::text[])
			WITH ORDINALITY AS u(kind, upstream_id, call_id, day, key, params, state,
				attempts, next_attempt_at, last_error, reason, size, sha256, evidence, ord)
		WHERE NOT EXISTS (SELECT 1 FROM items i
			WHERE i.tenant = $1 AND i.kind = u.kind AND i.upstream_id = u.upstream_id)
		ORDER BY u.ord
		ON CONFLICT (tenant, kind, upstream_id) DO NOTHING`,
		s.tenant, s.stamp(), kinds, ups, callIDs, days, keys, params, states,
		attempts, nexts, lastErrs, reasons, sizes, shas, evidence)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// AddItems adds the items whose (Kind, UpstreamID) is new, in one
// transaction, and returns how many. State may be empty (pending), pending,
// or absent (with Reason); any other state is refused with ErrState.
func (s *Store) AddItems(ctx context.Context, items []checkpoint.Item) (int, error) {
	var added int
	err := s.write(ctx, func(tx pgx.Tx) error {
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
// means no limit. The due items are selected FOR UPDATE SKIP LOCKED: an
// item another claim is taking at that moment is left to it, whatever
// process that claim is in, and one that claim has taken no longer matches
// when this one looks again at the row it locks.
func (s *Store) Claim(ctx context.Context, c checkpoint.Claimer, kinds []string, now time.Time, limit int) ([]checkpoint.Item, error) {
	out, err := func() ([]checkpoint.Item, error) {
		if err := checkClaimer(c); err != nil {
			return nil, err
		}
		var te textEnc
		te.check("owner", c.Owner)
		if te.err != nil {
			return nil, te.err
		}
		var e timeEnc
		n := e.enc(now)
		stamp := s.stamp()
		until := e.enc(dec(stamp).Add(c.Lease))
		if e.err != nil {
			return nil, e.err
		}
		var lim any // NULL: no limit
		if limit > 0 {
			lim = int64(limit)
		}
		// Candidates per claimable state and kind, each read in the order
		// of its index (items_claim: tenant, state, kind, next_attempt_at,
		// id) and cut at $7, so that a claim reads about that many rows per
		// branch however many items wait, of its kinds or of others: one
		// condition with an OR of the states has the planner sort every due
		// item on each claim (31 ms against 1.9 for 16 items among 20,000,
		// BenchmarkStore_Claim), and a kind filtered after the index reads
		// past every due item of the kinds no job of the run claims. The candidates are
		// then locked, SKIP LOCKED, and checked again on the locked rows
		// (by primary key: "= ANY (ARRAY(…))", as a join gets a generic
		// plan that hashes the whole table): 4× the limit leaves room for
		// what concurrent replicas lock or have just taken.
		var cand any // NULL: no limit
		if limit > 0 {
			cand = int64(4*limit + 16)
		}
		args := []any{s.tenant, stamp, n, lim, c.Owner, until, cand}
		kindConds := []string{""} // without kinds (tests): one branch per state, sorted
		if len(kinds) > 0 {
			kindConds = kindConds[:0]
			for i := range kinds {
				kindConds = append(kindConds, fmt.Sprintf(` AND kind = ($8::text[])[%d]`, i+1))
			}
			args = append(args, kinds)
		}
		branch := func(cond string) string {
			var b []string
			for _, k := range kindConds {
				b = append(b, `(SELECT id FROM items WHERE tenant = $1 AND `+cond+k+`
				ORDER BY next_attempt_at, id LIMIT $7)`)
			}
			return strings.Join(b, ` UNION ALL
				`)
		}
		var out []checkpoint.Item
		err := s.single(ctx, func(dctx context.Context, c *pgxpool.Conn) error {
			// The due rows are chosen once (MATERIALIZED): a subquery under
			// "id IN (…)" may be scanned again by the plan, each scan skipping
			// other rows, and so hand out more than the limit.
			rows, err := c.Query(dctx, `WITH cand AS MATERIALIZED (
				`+branch(`state = 'pending' AND next_attempt_at <= $3`)+` UNION ALL
				`+branch(`state = 'failed' AND next_attempt_at <= $3`)+` UNION ALL
				`+branch(`state = 'in_progress' AND lease_until <= $2`)+`
			), due AS MATERIALIZED (
				SELECT items.id FROM items
				WHERE items.tenant = $1 AND items.id = ANY (ARRAY(SELECT id FROM cand)) AND ((items.state IN ('pending', 'failed') AND items.next_attempt_at <= $3)
					OR (items.state = 'in_progress' AND items.lease_until <= $2))
				ORDER BY items.next_attempt_at, items.id LIMIT $4
				FOR UPDATE OF items SKIP LOCKED)
			UPDATE items SET state = 'in_progress', owner = $5, lease_until = $6, updated_at = $2
			FROM due WHERE items.tenant = $1 AND items.id = due.id
			RETURNING `+qualified("items", itemCols), args...)
			if err != nil {
				return err
			}
			out, err = collectItems(rows)
			return err
		})
		return out, err
	}()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: claim %s: %w", kindsString(kinds), err)
	}
	// RETURNING gives rows in no defined order.
	slices.SortFunc(out, func(a, b checkpoint.Item) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
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

// Renew extends to the store clock plus c.Lease the leases of the items
// that c.Owner holds, in one statement, and returns the others in the order
// given. UpdatedAt is left alone: a renewal is no change of state.
func (s *Store) Renew(ctx context.Context, c checkpoint.Claimer, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	held := map[int64]bool{}
	err := func() error {
		if err := checkClaimer(c); err != nil {
			return err
		}
		var e timeEnc
		until := e.enc(s.now().Add(c.Lease))
		if e.err != nil {
			return e.err
		}
		return s.single(ctx, func(dctx context.Context, conn *pgxpool.Conn) error {
			rows, err := conn.Query(dctx, `UPDATE items SET lease_until = $4
				WHERE tenant = $1 AND id = ANY($2) AND state = 'in_progress' AND owner = $3 RETURNING id`,
				s.tenant, ids, c.Owner, until)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return err
				}
				held[id] = true
			}
			return rows.Err()
		})
	}()
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

// qualified prefixes each column of cols with table.
func qualified(table, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = table + "." + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

func kindsString(kinds []string) string {
	if len(kinds) == 0 {
		return "all kinds"
	}
	return strings.Join(kinds, ",")
}

// transition runs one item transition as one conditional UPDATE: set (SQL
// assignments, whose arguments are $6 on) applies when the item is in one of
// the from states and, when it is in_progress, owner's; it ends the claim
// (owner and lease_until cleared). It returns the item as changed. An
// unknown item is ErrNotFound; one in another state ErrState, naming it; an
// in_progress one of another owner ErrLeaseLost, naming the holder. Once the
// statement is sent, ctx no longer interrupts it.
func (s *Store) transition(ctx context.Context, name, owner string, id int64, from []checkpoint.State, set string, args ...any) (checkpoint.Item, error) {
	it, err := s.transit(ctx, owner, id, from, set, args...)
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("checkpoint: %s item %d: %w", name, id, err)
	}
	return it, nil
}

func (s *Store) transit(ctx context.Context, owner string, id int64, from []checkpoint.State, set string, args ...any) (checkpoint.Item, error) {
	q := `UPDATE items SET ` + set + `, owner = '', lease_until = 0, updated_at = $3
		WHERE tenant = $1 AND id = $2 AND state = ANY($4) AND (state <> 'in_progress' OR owner = $5) RETURNING ` + itemCols
	all := append([]any{s.tenant, id, s.stamp(), stateList(from), owner}, args...)
	var it checkpoint.Item
	err := s.single(ctx, func(dctx context.Context, c *pgxpool.Conn) error {
		for attempt := 1; ; attempt++ {
			var err error
			it, err = scanItem(c.QueryRow(dctx, q, all...))
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			// Changed nothing: say why.
			var st, holder string
			err = c.QueryRow(dctx, `SELECT state, owner FROM items WHERE tenant = $1 AND id = $2`, s.tenant, id).Scan(&st, &holder)
			if errors.Is(err, pgx.ErrNoRows) {
				return checkpoint.ErrNotFound
			}
			if err != nil {
				return err
			}
			state := checkpoint.State(st)
			lost := state == checkpoint.StateInProgress && holder != owner
			// A concurrent change may have moved the item into a state the
			// transition applies to after the UPDATE looked: then try again.
			if !slices.Contains(from, state) || lost || attempt == 3 {
				if lost && slices.Contains(from, state) {
					return fmt.Errorf("item is %s, claimed by %q: %w", st, holder, checkpoint.ErrLeaseLost)
				}
				return fmt.Errorf("item is %s: %w", st, checkpoint.ErrState)
			}
		}
	})
	if err != nil {
		return checkpoint.Item{}, err
	}
	return it, nil
}

var (
	fromInProgress = []checkpoint.State{checkpoint.StateInProgress}
	fromAbsent     = []checkpoint.State{checkpoint.StateInProgress, checkpoint.StatePending, checkpoint.StateFailed}
	fromResolve    = []checkpoint.State{checkpoint.StateFailed, checkpoint.StateDead}
)

// Done marks an in_progress item done with the key, size and digest the
// sink verified, and clears LastError.
func (s *Store) Done(ctx context.Context, owner string, id int64, key string, size int64, sha256 string) error {
	var te textEnc
	te.check("key", key)
	te.check("sha256", sha256)
	if te.err != nil {
		return fmt.Errorf("checkpoint: done item %d: %w", id, te.err)
	}
	_, err := s.transition(ctx, "done", owner, id, fromInProgress,
		`state = 'done', key = $6, size = $7, sha256 = $8, last_error = ''`, key, size, sha256)
	return err
}

// DoneArgs is Done that also replaces the item's arguments.
func (s *Store) DoneArgs(ctx context.Context, owner string, id int64, key string, size int64, sha256 string, args json.RawMessage) error {
	var te textEnc
	te.check("key", key)
	te.check("sha256", sha256)
	if te.err != nil {
		return fmt.Errorf("checkpoint: done item %d: %w", id, te.err)
	}
	params, err := encodeParams(args)
	if err != nil {
		return fmt.Errorf("checkpoint: done item %d: args: %w", id, err)
	}
	_, err = s.transition(ctx, "done", owner, id, fromInProgress,
		`state = 'done', key = $6, size = $7, sha256 = $8, params = $9, last_error = ''`, key, size, sha256, params)
	return err
}

// Absent marks an item absent with the reason and the source's evidence.
// Unlike the other transitions it also applies to pending and failed items:
// a job may rule an item absent without claiming it.
func (s *Store) Absent(ctx context.Context, owner string, id int64, reason, evidence string) error {
	_, err := s.transition(ctx, "absent", owner, id, fromAbsent,
		`state = 'absent', reason = $6, evidence = $7`, freeText(reason), freeText(evidence))
	return err
}

// Resolve records an operator's decision that a failed or dead item has no
// recording, and returns the item as it is now.
func (s *Store) Resolve(ctx context.Context, id int64, reason string, at time.Time) (checkpoint.Item, error) {
	if strings.TrimSpace(reason) == "" {
		return checkpoint.Item{}, fmt.Errorf("checkpoint: resolve item %d: empty reason", id)
	}
	var e timeEnc
	when := e.enc(at)
	if e.err != nil || when == 0 {
		return checkpoint.Item{}, fmt.Errorf("checkpoint: resolve item %d: bad time %v", id, at)
	}
	return s.transition(ctx, "resolve", "", id, fromResolve,
		`state = 'absent', reason = $6, attested_at = $7`, freeText(reason), when)
}

// Fail records a failed attempt of an in_progress item: Attempts+1,
// LastError = msg; the item becomes dead when Attempts reaches maxAttempts
// (maxAttempts > 0), else failed and due at next. It returns the new state.
func (s *Store) Fail(ctx context.Context, owner string, id int64, msg string, next time.Time, maxAttempts int) (checkpoint.State, error) {
	var e timeEnc
	n := e.enc(next)
	if e.err != nil {
		return "", fmt.Errorf("checkpoint: fail item %d: %w", id, e.err)
	}
	it, err := s.transition(ctx, "fail", owner, id, fromInProgress,
		`state = CASE WHEN $6::integer > 0 AND attempts + 1 >= $6::integer THEN 'dead' ELSE 'failed' END,
		attempts = attempts + 1, last_error = $7, next_attempt_at = $8`, maxAttempts, freeText(msg), n)
	if err != nil {
		return "", err
	}
	return it.State, nil
}

// Defer puts an in_progress item back to pending, due at next, without
// counting an attempt; note replaces LastError.
func (s *Store) Defer(ctx context.Context, owner string, id int64, next time.Time, note string) error {
	var e timeEnc
	n := e.enc(next)
	if e.err != nil {
		return fmt.Errorf("checkpoint: defer item %d: %w", id, e.err)
	}
	_, err := s.transition(ctx, "defer", owner, id, fromInProgress,
		`state = 'pending', next_attempt_at = $6, last_error = $7`, n, freeText(note))
	return err
}

// Release puts an in_progress item back to pending, due at once, without
// counting an attempt.
func (s *Store) Release(ctx context.Context, owner string, id int64) error {
	_, err := s.transition(ctx, "release", owner, id, fromInProgress, `state = 'pending', next_attempt_at = 0`)
	return err
}

// RecoverInProgress releases (pending, due at once) the tenant's
// in_progress items that owner holds and those whose lease has expired on
// the store clock, and returns how many; other owners' live claims stay.
func (s *Store) RecoverInProgress(ctx context.Context, owner string) (int, error) {
	n, err := s.exec(ctx, `UPDATE items SET state = 'pending', next_attempt_at = 0, owner = '', lease_until = 0, updated_at = $2
		WHERE tenant = $1 AND state = 'in_progress' AND (owner = $3 OR lease_until <= $2)`, s.tenant, s.stamp(), owner)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: recover in-progress items: %w", err)
	}
	return int(n), nil
}

// Requeue moves every dead item of the given kinds (all when none) back to
// pending, due at once, with Attempts 0, and returns how many. LastError is
// kept for the record.
func (s *Store) Requeue(ctx context.Context, kinds ...string) (int, error) {
	q := `UPDATE items SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = $2
		WHERE tenant = $1 AND state = 'dead'`
	args := []any{s.tenant, s.stamp()}
	if len(kinds) > 0 {
		q += ` AND kind = ANY($3)`
		args = append(args, kinds)
	}
	n, err := s.exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: requeue dead items of %s: %w", kindsString(kinds), err)
	}
	return int(n), nil
}

// Item returns one item by ID, or an error wrapping ErrNotFound.
func (s *Store) Item(ctx context.Context, id int64) (checkpoint.Item, error) {
	it, err := scanItem(s.pool.QueryRow(ctx, `SELECT `+itemCols+` FROM items WHERE tenant = $1 AND id = $2`, s.tenant, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	q := `SELECT ` + itemCols + ` FROM items WHERE tenant = $1`
	args := []any{s.tenant}
	if len(states) > 0 {
		q += ` AND state = ANY($2)`
		args = append(args, stateList(states))
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY id`, args...)
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
		rows, err := s.pool.Query(ctx, `SELECT call_id, day, begin, vdn, agent_id FROM calls
			WHERE tenant = $1 AND day = $2 ORDER BY call_id`, s.tenant, day)
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
	rows, err := s.pool.Query(ctx, `SELECT `+itemCols+` FROM items WHERE tenant = $1 AND day = $2 ORDER BY id`, s.tenant, day)
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
	err := s.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT day, count(*), max(created_at) FROM calls WHERE tenant = $1 GROUP BY day`, s.tenant)
		if err != nil {
			return err
		}
		for rows.Next() {
			var day string
			var n, upd int64
			if err := rows.Scan(&day, &n, &upd); err != nil {
				rows.Close()
				return err
			}
			d := get(day)
			d.Calls = int(n)
			later(d, upd)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT day, kind, state, count(*), max(greatest(created_at, updated_at))
			FROM items WHERE tenant = $1 GROUP BY day, kind, state`, s.tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var day, kind, st string
			var n, upd int64
			if err := rows.Scan(&day, &kind, &st, &n, &upd); err != nil {
				return err
			}
			d := get(day)
			if d.Counts[kind] == nil {
				d.Counts[kind] = map[checkpoint.State]int{}
			}
			d.Counts[kind][checkpoint.State(st)] = int(n)
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
	return s.jobTime(ctx, `SELECT t FROM watermarks WHERE tenant = $1 AND job = $2`, "watermark", job)
}

// jobTime reads a job's time of the tenant with query (one row, one
// column t; the tenant and the job its parameters); ok false when there is
// no row. what names it in errors.
func (s *Store) jobTime(ctx context.Context, query, what, job string) (time.Time, bool, error) {
	var n int64
	err := s.pool.QueryRow(ctx, query, s.tenant, job).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("checkpoint: %s of %s: %w", what, job, err)
	}
	return dec(n), true, nil
}

// encJobTime checks a job's name and encodes its time, for the tables
// keyed by job.
func encJobTime(job string, t time.Time) (int64, error) {
	var e timeEnc
	n := e.enc(t)
	if e.err != nil {
		return 0, e.err
	}
	var te textEnc
	te.check("job", job)
	return n, te.err
}

// SetWatermark moves a job's watermark forward to t; a t before the stored
// one is refused with ErrConflict. The comparison and the change are one
// statement, so concurrent callers keep the latest.
func (s *Store) SetWatermark(ctx context.Context, job string, t time.Time) error {
	err := func() error {
		n, err := encJobTime(job, t)
		if err != nil {
			return err
		}
		changed, err := s.exec(ctx, `INSERT INTO watermarks (tenant, job, t) VALUES ($1, $2, $3)
			ON CONFLICT (tenant, job) DO UPDATE SET t = excluded.t WHERE excluded.t >= watermarks.t`, s.tenant, job, n)
		if err != nil || changed > 0 {
			return err
		}
		cur, _, err := s.Watermark(ctx, job)
		if err != nil {
			return err
		}
		return fmt.Errorf("%s is before the stored %s: %w", fmtTime(t), fmtTime(cur), checkpoint.ErrConflict)
	}()
	if err != nil {
		return fmt.Errorf("checkpoint: set watermark of %s: %w", job, err)
	}
	return nil
}

// LastSuccess returns when a job last finished a run without failures.
func (s *Store) LastSuccess(ctx context.Context, job string) (time.Time, bool, error) {
	return s.jobTime(ctx, `SELECT t FROM job_successes WHERE tenant = $1 AND job = $2`, "last success", job)
}

// SetLastSuccess records a job's successful run at t, keeping the latest:
// the comparison and the change are one statement, so concurrent replicas
// leave the newest.
func (s *Store) SetLastSuccess(ctx context.Context, job string, t time.Time) error {
	err := func() error {
		n, err := encJobTime(job, t)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, `INSERT INTO job_successes (tenant, job, t) VALUES ($1, $2, $3)
			ON CONFLICT (tenant, job) DO UPDATE SET t = excluded.t WHERE excluded.t > job_successes.t`, s.tenant, job, n)
		return err
	}()
	if err != nil {
		return fmt.Errorf("checkpoint: set last success of %s: %w", job, err)
	}
	return nil
}

// Ledger returns the digest and key of the last ledger written for a day.
func (s *Store) Ledger(ctx context.Context, day string) (string, string, bool, error) {
	var sum, key string
	err := s.pool.QueryRow(ctx, `SELECT sha256, key FROM ledgers WHERE tenant = $1 AND day = $2`, s.tenant, day).Scan(&sum, &key)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("checkpoint: ledger of %s: %w", day, err)
	}
	return sum, key, true, nil
}

// SetLedger records the ledger object written for a day, replacing the
// record whose digest is prev ("" for none), in one statement; another
// record is refused with ErrConflict.
func (s *Store) SetLedger(ctx context.Context, day, prev, sha256, key string) error {
	err := func() error {
		var te textEnc
		te.check("day", day)
		te.check("sha256", sha256)
		te.check("key", key)
		if te.err != nil {
			return te.err
		}
		var changed int64
		var err error
		if prev == "" {
			changed, err = s.exec(ctx, `INSERT INTO ledgers (tenant, day, sha256, key, written_at) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (tenant, day) DO NOTHING`, s.tenant, day, sha256, key, s.stamp())
		} else {
			changed, err = s.exec(ctx, `UPDATE ledgers SET sha256 = $3, key = $4, written_at = $5
				WHERE tenant = $1 AND day = $2 AND sha256 = $6`, s.tenant, day, sha256, key, s.stamp(), prev)
		}
		if err != nil || changed > 0 {
			return err
		}
		cur, _, ok, err := s.Ledger(ctx, day)
		if err != nil {
			return err
		}
		if !ok {
			cur = "none"
		}
		if prev == "" {
			prev = "none"
		}
		return fmt.Errorf("the record is %s, expected %s: %w", cur, prev, checkpoint.ErrConflict)
	}()
	if err != nil {
		return fmt.Errorf("checkpoint: set ledger of %s: %w", day, err)
	}
	return nil
}

// TryLease takes or extends the named lease for owner until the store
// clock plus ttl, unless another owner holds it unexpired: one statement,
// whose conflict clause decides between concurrent takers.
func (s *Store) TryLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	ok, err := func() (bool, error) {
		switch {
		case name == "":
			return false, errors.New("no lease name")
		case owner == "":
			return false, errors.New("no owner")
		case ttl <= 0:
			return false, fmt.Errorf("lease %s: not positive", ttl)
		}
		var te textEnc
		te.check("lease name", name)
		te.check("owner", owner)
		if te.err != nil {
			return false, te.err
		}
		stamp := s.stamp()
		var e timeEnc
		until := e.enc(dec(stamp).Add(ttl))
		if e.err != nil {
			return false, e.err
		}
		n, err := s.exec(ctx, `INSERT INTO leases (tenant, name, owner, until) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant, name) DO UPDATE SET owner = excluded.owner, until = excluded.until
			WHERE leases.owner = excluded.owner OR leases.until <= $5`, s.tenant, name, owner, until, stamp)
		return n > 0, err
	}()
	if err != nil {
		return false, fmt.Errorf("checkpoint: take lease %s for %s: %w", name, owner, err)
	}
	return ok, nil
}

// Leases returns the tenant's leases held now (until after the store
// clock), by name.
func (s *Store) Leases(ctx context.Context) ([]checkpoint.Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, owner, until FROM leases WHERE tenant = $1 AND until > $2 ORDER BY name`, s.tenant, s.stamp())
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
	// Expired rather than deleted: the row is reused by the next TryLease,
	// and the role needs no DELETE.
	if _, err := s.exec(ctx, `UPDATE leases SET until = 0 WHERE tenant = $1 AND name = $2 AND owner = $3`, s.tenant, name, owner); err != nil {
		return fmt.Errorf("checkpoint: release lease %s of %s: %w", name, owner, err)
	}
	return nil
}
