package sqlite

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
)

// recount is what day_items and day_calls must hold: the GROUP BY over
// every row that Days ran before migration 4, one line per group.
func recount(t *testing.T, db *sql.DB) (want, got []string) {
	t.Helper()
	q := func(query string) []string {
		rows, err := db.Query(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var a, b, c string
			var n, upd int64
			if err := rows.Scan(&a, &b, &c, &n, &upd); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s/%s/%s n=%d updated=%d", a, b, c, n, upd))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	want = append(q(`SELECT day, kind, state, COUNT(*), MAX(MAX(created_at, updated_at)) FROM items GROUP BY day, kind, state`),
		q(`SELECT day, 'calls', '', COUNT(*), MAX(created_at) FROM calls GROUP BY day`)...)
	got = append(q(`SELECT day, kind, state, n, updated FROM day_items`),
		q(`SELECT day, 'calls', '', n, updated FROM day_calls`)...)
	return want, got
}

// TestDaySummary_MatchesRecount runs the whole conformance suite and, after
// every test, compares the trigger-kept day summaries with a recount of the
// rows: every transition the suite makes keeps them exact.
func TestDaySummary_MatchesRecount(t *testing.T) {
	checkpointtest.Run(t, checkpointtest.Backend{Open: func(t *testing.T, now func() time.Time) checkpoint.Store {
		path := dbPath(t)
		s, err := Open(path, Options{Now: now})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			// The suite may have closed s: read the file on a connection of
			// its own.
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			want, got := recount(t, db)
			if !slices.Equal(want, got) {
				t.Errorf("day summaries differ from a recount:\nrecount:\n  %s\ntables:\n  %s",
					strings.Join(want, "\n  "), strings.Join(got, "\n  "))
			}
		})
		return s
	}})
}

// TestOpen_MigrateFillsDaySummary: a state written before migration 4 gets
// its day summaries from its rows, and Days reads the same as before.
func TestOpen_MigrateFillsDaySummary(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Back to version 3: no job runs (7), no job successes (6), no leases
	// (5), no summary tables, no triggers (4).
	for _, stmt := range []string{
		`DROP INDEX items_claim`, `CREATE INDEX items_due ON items (state, next_attempt_at)`,
		`DROP TABLE job_runs`, `DROP TABLE job_successes`, `DROP TABLE leases`, `ALTER TABLE items DROP COLUMN owner`, `ALTER TABLE items DROP COLUMN lease_until`,
		`DROP TRIGGER day_items_insert`, `DROP TRIGGER day_items_update`, `DROP TRIGGER day_items_delete`,
		`DROP TRIGGER day_calls_insert`, `DROP TRIGGER day_calls_update`, `DROP TRIGGER day_calls_delete`,
		`DROP TABLE day_items`, `DROP TABLE day_calls`, `PRAGMA user_version = 3`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC).UnixNano()
	for i := range 300 {
		day := fmt.Sprintf("2026-11-%02d", 1+i%7)
		state := []string{"pending", "done", "failed", "absent", "dead"}[i%5]
		if _, err := db.Exec(`INSERT INTO items (kind, upstream_id, call_id, day, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			checkpoint.Kinds()[i%len(checkpoint.Kinds())], fmt.Sprint("u", i), fmt.Sprint("c", i), day, state, t0+int64(i), t0+int64(2*i)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := db.Exec(`INSERT INTO calls (call_id, day, created_at) VALUES (?, ?, ?)`, fmt.Sprint("c", i), day, t0+int64(3*i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()

	s = mustOpen(t, path, Options{})
	want, got := recount(t, s.db)
	if len(want) == 0 || !slices.Equal(want, got) {
		t.Fatalf("after migration 4:\nrecount:\n  %s\ntables:\n  %s", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
	}
	days, err := s.Days(t.Context())
	if err != nil || len(days) != 7 {
		t.Fatalf("Days = %d days, %v; want 7", len(days), err)
	}
	total := 0
	for _, d := range days {
		for _, states := range d.Counts {
			for _, n := range states {
				total += n
			}
		}
	}
	if total != 300 {
		t.Errorf("Days counts %d items, want 300", total)
	}
}
