package checkpoint

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"time"
)

// The rows of a store's persistent state, table by table, for copying a
// state from one store to another (archiver migrate-state). Items and
// packages are whole rows as Item and Package; the other tables have the
// row types below, which hold what the Store interface does not return
// (when a call or a ledger was recorded).

// Table names of the persistent state, in the order a copy goes through
// them. The named leases are not among them: they are transient.
const (
	TableItems      = "items"
	TablePackages   = "packages"
	TableCalls      = "calls"
	TableWatermarks = "watermarks"
	TableLedgers    = "ledgers"
	// TableJobSuccesses holds each job's last success (SetLastSuccess).
	TableJobSuccesses = "job_successes"
	// TableJobRuns holds each job's last run (SetLastRun).
	TableJobRuns = "job_runs"
)

// Tables lists the tables of the persistent state, in copy order.
func Tables() []string {
	return []string{TableItems, TablePackages, TableCalls, TableWatermarks, TableLedgers, TableJobSuccesses, TableJobRuns}
}

// CallRow is a row of the calls table: the call and when the store first
// recorded it (which Days reports as the day's Updated).
type CallRow struct {
	Call
	CreatedAt time.Time
}

// WatermarkRow is a job's watermark.
type WatermarkRow struct {
	Job string
	T   time.Time
}

// SuccessRow is a job's last success.
type SuccessRow struct {
	Job string
	T   time.Time
}

// LedgerRow is the record of a day's last ledger.
type LedgerRow struct {
	Day       string
	SHA256    string
	Key       string
	WrittenAt time.Time
}

// Dump is a store's persistent state read from one snapshot. Each iterator
// yields one table's rows in key order (items and packages by ID, calls by
// CallID, watermarks, successes and runs by job, ledgers by day) and stops at the first error,
// which it yields. The iterators run the snapshot's queries: use them one
// at a time (never one inside another's loop), and only while the export
// that handed the Dump out runs.
type Dump struct {
	Items      iter.Seq2[Item, error]
	Packages   iter.Seq2[Package, error]
	Calls      iter.Seq2[CallRow, error]
	Watermarks iter.Seq2[WatermarkRow, error]
	Ledgers    iter.Seq2[LedgerRow, error]
	// Successes and Runs are each job's last success and last run.
	Successes iter.Seq2[SuccessRow, error]
	Runs      iter.Seq2[JobRun, error]
	// Counts counts the rows of the same snapshot.
	Counts func() (Counts, error)
}

// Counts is how many rows a state holds: per table (keyed by the Table*
// names), and its items per state.
type Counts struct {
	Tables     map[string]int64 `json:"tables"`
	ItemStates map[State]int64  `json:"item_states"`
}

// Released is what a state's counts become once its in_progress items are
// released (RecoverInProgress): they count as pending.
func (c Counts) Released() Counts {
	out := Counts{Tables: maps.Clone(c.Tables), ItemStates: maps.Clone(c.ItemStates)}
	if out.ItemStates == nil {
		out.ItemStates = map[State]int64{}
	}
	if n := out.ItemStates[StateInProgress]; n > 0 {
		out.ItemStates[StatePending] += n
	}
	delete(out.ItemStates, StateInProgress)
	return out
}

// Diff lists, one line each, the tables and item states whose counts in got
// differ from c's; none when they agree.
func (c Counts) Diff(got Counts) []string {
	var out []string
	for _, t := range Tables() {
		if w, g := c.Tables[t], got.Tables[t]; w != g {
			out = append(out, fmt.Sprintf("%s: %d rows, want %d", t, g, w))
		}
	}
	states := slices.Clone(States)
	var other []State
	for _, m := range []map[State]int64{c.ItemStates, got.ItemStates} {
		for st := range m {
			if !slices.Contains(states, st) && !slices.Contains(other, st) {
				other = append(other, st)
			}
		}
	}
	slices.Sort(other)
	for _, st := range append(states, other...) {
		if w, g := c.ItemStates[st], got.ItemStates[st]; w != g {
			out = append(out, fmt.Sprintf("items %s: %d, want %d", st, g, w))
		}
	}
	return out
}
