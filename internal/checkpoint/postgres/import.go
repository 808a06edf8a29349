package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// ErrStateDiffers is returned by Import when the tenant already has rows in
// the database that are not those of the source: rows whose content
// differs, or rows the source does not have. A previous copy of the same
// source is not a different state.
var ErrStateDiffers = errors.New("checkpoint: the tenant already has a different state in the database")

// ImportReport says what Import did, and what the source and the tenant's
// state count after it.
type ImportReport struct {
	Tenant string        `json:"tenant"`
	Tables []TableImport `json:"tables"` // in checkpoint.Tables order
	// Released counts the items in_progress in the source: they are
	// pending in the tenant's state.
	Released int64             `json:"released"`
	Source   checkpoint.Counts `json:"source"`
	Target   checkpoint.Counts `json:"target"`
	// Problems lists the counts of Target that differ from the source's
	// with its in_progress items released (Source.Released()); empty when
	// the copy is verified.
	Problems []string `json:"problems"`
}

// TableImport is what Import did with one table.
type TableImport struct {
	Table    string `json:"table"`
	Source   int64  `json:"source"`   // rows the source has
	Inserted int64  `json:"inserted"` // rows new to the tenant's state
	Present  int64  `json:"present"`  // rows the tenant's state had already, identical (an earlier copy)
	Target   int64  `json:"target"`   // rows of the tenant's state after the import
}

// OK reports whether the counts were verified.
func (r ImportReport) OK() bool { return len(r.Problems) == 0 }

// importTable is how one table is copied: its columns (tenant first, then
// the key's), its key, and whether the key is an identity the rows keep.
type importTable struct {
	name     string
	cols     []string
	key      string
	identity bool
}

var (
	importItems = importTable{checkpoint.TableItems, []string{"tenant", "id", "kind", "upstream_id", "call_id", "day", "key", "params",
		"state", "attempts", "next_attempt_at", "last_error", "reason", "evidence", "attested_at", "size", "sha256",
		"created_at", "updated_at", "owner", "lease_until"}, "id", true}
	importPackages = importTable{checkpoint.TablePackages, []string{"tenant", "id", "begin", "end", "response_id", "bill_file_name",
		"requested_at", "state", "attempts", "last_error", "key", "rows_key", "size", "sha256", "rows_sha256",
		"quarantine_key", "calls", "items", "updated_at"}, "id", true}
	importCalls      = importTable{checkpoint.TableCalls, []string{"tenant", "call_id", "day", "begin", "vdn", "agent_id", "created_at"}, "call_id", false}
	importWatermarks = importTable{checkpoint.TableWatermarks, []string{"tenant", "job", "t"}, "job", false}
	importLedgers    = importTable{checkpoint.TableLedgers, []string{"tenant", "day", "sha256", "key", "written_at"}, "day", false}
	importSuccesses  = importTable{checkpoint.TableJobSuccesses, []string{"tenant", "job", "t"}, "job", false}
	importRuns       = importTable{checkpoint.TableJobRuns, []string{"tenant", "job", "started", "finished", "result", "error",
		"done", "failed", "bytes", "replica"}, "job", false}
)

// importLockKey names the transaction-level advisory lock an import holds,
// per tenant: imports into one tenant run one after the other.
const importLockKey = "cec-archiver import "

// Import copies the state d into the tenant's state, in one transaction,
// and verifies it by counting. It is idempotent: a row the tenant's state
// has already, identical, is left as it is, so that importing the same
// source again changes nothing, and an import that was interrupted (rolled
// back) is done anew. Any other row is refused before anything is written:
// when the tenant has a row whose content differs from the source's row of
// the same key, or a row the source does not have, Import returns an error
// wrapping ErrStateDiffers that counts them per table and names the first
// key of each.
//
// Every column is copied as it is, IDs included: an item or a package
// keeps its ID (what status lists and resolve --id takes), the identity
// sequences are moved past the highest ID imported, and a tenant's IDs may
// then coincide with another tenant's, which is harmless (every key
// includes the tenant). Watermarks, ledger records and their times are
// exact, and so are the jobs' last successes and last runs (a run that
// was running in the source stays so: its process is gone, and the next
// run of the job replaces it). An item in_progress in the source becomes pending, due at once,
// without owner or lease, as RecoverInProgress releases the claim of a
// process that is gone; its attempts and its UpdatedAt are kept, so that a
// second import finds the same row. Free text (errors, reasons, evidence)
// is made storable as the store's own methods make it; an identifying value
// PostgreSQL text cannot hold fails the import.
//
// Rows are streamed from d into temporary tables (COPY) and inserted from
// there, so that memory does not grow with the state. The rows are read
// from d once; d.Counts counts the source. After the commit the tenant's
// rows are counted and compared with the source's (Problems). Moving the
// sequences needs the UPDATE privilege on them, besides INSERT on the
// tables.
func (s *Store) Import(ctx context.Context, d checkpoint.Dump) (ImportReport, error) {
	rep, err := s.importDump(ctx, d)
	if err != nil {
		return rep, fmt.Errorf("checkpoint: postgres: import into tenant %q: %w", s.tenant, err)
	}
	return rep, nil
}

func (s *Store) importDump(ctx context.Context, d checkpoint.Dump) (ImportReport, error) {
	rep := ImportReport{Tenant: s.tenant, Problems: []string{}}
	src, err := d.Counts()
	if err != nil {
		return rep, fmt.Errorf("count the source: %w", err)
	}
	rep.Source = src
	rep.Released = src.ItemStates[checkpoint.StateInProgress]
	err = s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, importLockKey+s.tenant); err != nil {
			return fmt.Errorf("take the import lock: %w", err)
		}
		steps := []struct {
			t   importTable
			src func() (pgx.CopyFromSource, func())
		}{
			{importItems, rowSource(d.Items, s.itemValues)},
			{importPackages, rowSource(d.Packages, s.packageValues)},
			{importCalls, rowSource(d.Calls, s.callValues)},
			{importWatermarks, rowSource(d.Watermarks, s.watermarkValues)},
			{importLedgers, rowSource(d.Ledgers, s.ledgerValues)},
			{importSuccesses, rowSource(d.Successes, s.successValues)},
			{importRuns, rowSource(d.Runs, s.runValues)},
		}
		for _, st := range steps {
			if err := s.stage(ctx, tx, st.t, st.src); err != nil {
				return err
			}
		}
		var diffs []string
		for _, st := range steps {
			d, err := s.differences(ctx, tx, st.t)
			if err != nil {
				return err
			}
			diffs = append(diffs, d...)
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%w (it is not a copy of this source): %s; nothing was copied", ErrStateDiffers, strings.Join(diffs, "; "))
		}
		rep.Tables = nil
		for _, st := range steps {
			ti, err := s.insertStaged(ctx, tx, st.t)
			if err != nil {
				return err
			}
			rep.Tables = append(rep.Tables, ti)
		}
		for _, t := range []importTable{importItems, importPackages} {
			if err := s.advanceSequence(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if rep.Target, err = s.counts(ctx); err != nil {
		return rep, fmt.Errorf("count the tenant's state: %w", err)
	}
	for i := range rep.Tables {
		rep.Tables[i].Target = rep.Target.Tables[rep.Tables[i].Table]
	}
	rep.Problems = append(rep.Problems, src.Released().Diff(rep.Target)...)
	return rep, nil
}

// rowSource returns a function that starts a COPY source reading seq, each
// row made into its values by values, and the function that stops the
// iterator, to call once the COPY is over.
func rowSource[T any](seq iter.Seq2[T, error], values func(T) ([]any, error)) func() (pgx.CopyFromSource, func()) {
	return func() (pgx.CopyFromSource, func()) {
		next, stop := iter.Pull2(seq)
		return pgx.CopyFromFunc(func() ([]any, error) {
			v, err, ok := next()
			switch {
			case !ok:
				return nil, nil
			case err != nil:
				return nil, fmt.Errorf("read the source: %w", err)
			}
			return values(v)
		}), stop
	}
}

// staged is the temporary table that holds the rows of t to import.
func staged(t importTable) string { return "import_" + t.name }

// stage copies the source rows of t into its temporary table, dropped at
// the end of the transaction.
func (s *Store) stage(ctx context.Context, tx pgx.Tx, t importTable, start func() (pgx.CopyFromSource, func())) error {
	tmp := pgx.Identifier{staged(t)}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE `+tmp+` (LIKE `+pgx.Identifier{t.name}.Sanitize()+` INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("%s: create the staging table: %w", t.name, err)
	}
	src, stop := start()
	_, err := tx.CopyFrom(ctx, pgx.Identifier{staged(t)}, t.cols, src)
	stop()
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if _, err := tx.Exec(ctx, `ANALYZE `+tmp); err != nil {
		return fmt.Errorf("%s: analyze the staging table: %w", t.name, err)
	}
	return nil
}

// columns returns the columns of t, each prefixed by alias.
func columns(t importTable, alias string) string {
	out := make([]string, len(t.cols))
	for i, c := range t.cols {
		out[i] = alias + pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(out, ", ")
}

// differences describes the tenant's rows of t that are not in the staging
// table as they are there: rows of the same key whose content differs, and
// rows whose key the source does not have.
func (s *Store) differences(ctx context.Context, tx pgx.Tx, t importTable) ([]string, error) {
	tbl, tmp, key := pgx.Identifier{t.name}.Sanitize(), pgx.Identifier{staged(t)}.Sanitize(), pgx.Identifier{t.key}.Sanitize()
	var differ, extra int64
	var firstDiffer, firstExtra *string
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM `+tbl+` t JOIN `+tmp+` m ON m.`+key+` = t.`+key+`
			WHERE t.tenant = $1 AND ROW(`+columns(t, "t.")+`) IS DISTINCT FROM ROW(`+columns(t, "m.")+`)),
		(SELECT min(t.`+key+`)::text FROM `+tbl+` t JOIN `+tmp+` m ON m.`+key+` = t.`+key+`
			WHERE t.tenant = $1 AND ROW(`+columns(t, "t.")+`) IS DISTINCT FROM ROW(`+columns(t, "m.")+`)),
		(SELECT count(*) FROM `+tbl+` t WHERE t.tenant = $1 AND NOT EXISTS (SELECT 1 FROM `+tmp+` m WHERE m.`+key+` = t.`+key+`)),
		(SELECT min(t.`+key+`)::text FROM `+tbl+` t WHERE t.tenant = $1 AND NOT EXISTS (SELECT 1 FROM `+tmp+` m WHERE m.`+key+` = t.`+key+`))`,
		s.tenant).Scan(&differ, &firstDiffer, &extra, &firstExtra)
	if err != nil {
		return nil, fmt.Errorf("%s: compare with the tenant's rows: %w", t.name, err)
	}
	var out []string
	if differ > 0 {
		out = append(out, fmt.Sprintf("%s: %d differ from the source's (first %s %s)", t.name, differ, t.key, deref(firstDiffer)))
	}
	if extra > 0 {
		out = append(out, fmt.Sprintf("%s: %d are not in the source (first %s %s)", t.name, extra, t.key, deref(firstExtra)))
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// insertStaged inserts the staged rows of t that the tenant's state does
// not have yet.
func (s *Store) insertStaged(ctx context.Context, tx pgx.Tx, t importTable) (TableImport, error) {
	tbl, tmp, key := pgx.Identifier{t.name}.Sanitize(), pgx.Identifier{staged(t)}.Sanitize(), pgx.Identifier{t.key}.Sanitize()
	ti := TableImport{Table: t.name}
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+tmp).Scan(&ti.Source); err != nil {
		return ti, fmt.Errorf("%s: count the staged rows: %w", t.name, err)
	}
	override := ""
	if t.identity {
		override = " OVERRIDING SYSTEM VALUE"
	}
	tag, err := tx.Exec(ctx, `INSERT INTO `+tbl+` (`+columns(t, "")+`)`+override+`
		SELECT `+columns(t, "m.")+` FROM `+tmp+` m
		WHERE NOT EXISTS (SELECT 1 FROM `+tbl+` t WHERE t.tenant = m.tenant AND t.`+key+` = m.`+key+`)
		ORDER BY m.`+key)
	if err != nil {
		return ti, fmt.Errorf("%s: insert: %w", t.name, err)
	}
	ti.Inserted = tag.RowsAffected()
	ti.Present = ti.Source - ti.Inserted
	return ti, nil
}

// advanceSequence moves the identity sequence of t past the tenant's
// highest ID, so that the IDs it hands out next are new to the tenant. It
// draws one value first and sets the sequence only when that one is not
// past the highest ID already: a sequence is never moved back, whatever
// the other tenants' archivers draw meanwhile.
func (s *Store) advanceSequence(ctx context.Context, tx pgx.Tx, t importTable) error {
	tbl, key := pgx.Identifier{t.name}.Sanitize(), pgx.Identifier{t.key}.Sanitize()
	_, err := tx.Exec(ctx, `SELECT setval(seq, top) FROM
		(SELECT pg_get_serial_sequence($2, $3) AS seq, (SELECT max(`+key+`) FROM `+tbl+` WHERE tenant = $1) AS top) a
		WHERE top IS NOT NULL AND top > nextval(seq)`, s.tenant, t.name, t.key)
	if err != nil {
		return fmt.Errorf("%s: move the ID sequence past the imported IDs: %w", t.name, err)
	}
	return nil
}

// counts counts the tenant's rows of every table of the persistent state,
// and its items per state, in one snapshot.
func (s *Store) counts(ctx context.Context) (checkpoint.Counts, error) {
	c := checkpoint.Counts{Tables: map[string]int64{}, ItemStates: map[checkpoint.State]int64{}}
	err := s.read(ctx, func(tx pgx.Tx) error {
		for _, t := range checkpoint.Tables() {
			var n int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t}.Sanitize()+` WHERE tenant = $1`, s.tenant).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", t, err)
			}
			c.Tables[t] = n
		}
		rows, err := tx.Query(ctx, `SELECT state, count(*) FROM items WHERE tenant = $1 GROUP BY state`, s.tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var st string
			var n int64
			if err := rows.Scan(&st, &n); err != nil {
				return err
			}
			c.ItemStates[checkpoint.State(st)] = n
		}
		return rows.Err()
	})
	return c, err
}

// itemValues is the row of an item to import; an in_progress item is
// released (see Import).
func (s *Store) itemValues(it checkpoint.Item) ([]any, error) {
	if !knownState(it.State) {
		return nil, fmt.Errorf("item %d: unknown state %q", it.ID, it.State)
	}
	if it.State == checkpoint.StateInProgress {
		it.State = checkpoint.StatePending
		it.NextAttemptAt = time.Time{}
		it.Owner, it.LeaseUntil = "", time.Time{}
	}
	params, err := encodeParams(it.Args)
	if err != nil {
		return nil, fmt.Errorf("item %d: encode params: %w", it.ID, err)
	}
	var e timeEnc
	next, attested, created, updated, lease := e.enc(it.NextAttemptAt), e.enc(it.AttestedAt), e.enc(it.CreatedAt), e.enc(it.UpdatedAt), e.enc(it.LeaseUntil)
	if e.err != nil {
		return nil, fmt.Errorf("item %d: %w", it.ID, e.err)
	}
	var te textEnc
	row := []any{s.tenant, it.ID, te.check("kind", it.Kind), te.check("upstream id", it.UpstreamID), te.check("call id", it.CallID),
		te.check("day", it.Day), te.check("key", it.Key), params, string(it.State), it.Attempts, next,
		freeText(it.LastError), freeText(it.Reason), freeText(it.Evidence), attested, it.Size, te.check("sha256", it.SHA256),
		created, updated, te.check("owner", it.Owner), lease}
	if te.err != nil {
		return nil, fmt.Errorf("item %d: %w", it.ID, te.err)
	}
	return row, nil
}

// packageValues is the row of a package to import.
func (s *Store) packageValues(p checkpoint.Package) ([]any, error) {
	if !knownState(p.State) {
		return nil, fmt.Errorf("package %d: unknown state %q", p.ID, p.State)
	}
	var e timeEnc
	begin, end, requested, updated := e.enc(p.Begin), e.enc(p.End), e.enc(p.RequestedAt), e.enc(p.UpdatedAt)
	if e.err != nil {
		return nil, fmt.Errorf("package %d: %w", p.ID, e.err)
	}
	var te textEnc
	row := []any{s.tenant, p.ID, begin, end, te.check("response id", p.ResponseID), te.check("bill file name", p.BillFileName),
		requested, string(p.State), p.Attempts, freeText(p.LastError), te.check("key", p.Key), te.check("rows key", p.RowsKey),
		p.Size, te.check("sha256", p.SHA256), te.check("rows sha256", p.RowsSHA256), te.check("quarantine key", p.QuarantineKey),
		p.Calls, p.Items, updated}
	if te.err != nil {
		return nil, fmt.Errorf("package %d: %w", p.ID, te.err)
	}
	return row, nil
}

// callValues is the row of a call to import.
func (s *Store) callValues(c checkpoint.CallRow) ([]any, error) {
	var e timeEnc
	begin, created := e.enc(c.Begin), e.enc(c.CreatedAt)
	if e.err != nil {
		return nil, fmt.Errorf("call %q: %w", c.CallID, e.err)
	}
	var te textEnc
	row := []any{s.tenant, te.check("call id", c.CallID), te.check("day", c.Day), begin, te.check("vdn", c.VDN),
		te.check("agent id", c.AgentID), created}
	if te.err != nil {
		return nil, fmt.Errorf("call %q: %w", c.CallID, te.err)
	}
	return row, nil
}

// watermarkValues is the row of a watermark to import.
func (s *Store) watermarkValues(w checkpoint.WatermarkRow) ([]any, error) {
	var e timeEnc
	t := e.enc(w.T)
	var te textEnc
	row := []any{s.tenant, te.check("job", w.Job), t}
	if err := errors.Join(e.err, te.err); err != nil {
		return nil, fmt.Errorf("watermark %q: %w", w.Job, err)
	}
	return row, nil
}

// ledgerValues is the row of a ledger record to import.
func (s *Store) ledgerValues(l checkpoint.LedgerRow) ([]any, error) {
	var e timeEnc
	written := e.enc(l.WrittenAt)
	var te textEnc
	row := []any{s.tenant, te.check("day", l.Day), te.check("sha256", l.SHA256), te.check("key", l.Key), written}
	if err := errors.Join(e.err, te.err); err != nil {
		return nil, fmt.Errorf("ledger %q: %w", l.Day, err)
	}
	return row, nil
}

// successValues is the row of a job's last success to import.
func (s *Store) successValues(r checkpoint.SuccessRow) ([]any, error) {
	t, err := encJobTime(r.Job, r.T)
	if err != nil {
		return nil, fmt.Errorf("last success %q: %w", r.Job, err)
	}
	return []any{s.tenant, r.Job, t}, nil
}

// runValues is the row of a job's last run to import.
func (s *Store) runValues(r checkpoint.JobRun) ([]any, error) {
	row, err := s.jobRunValues(r)
	if err != nil {
		return nil, fmt.Errorf("last run %q: %w", r.Job, err)
	}
	return row, nil
}
