// Package checkpoint records what the archiver has requested, found and
// stored, so that a run killed at any instant resumes without losing or
// duplicating a recording.
//
// The Store interface is the contract; package sqlite implements it on an
// embedded SQLite database, package postgres on PostgreSQL (one tenant's
// rows of a shared database), and package checkpointtest holds the
// conformance suite every implementation must pass.
//
// Every method that changes state is atomic and durable: after a crash the
// store holds either the state before the call or the state after it, and a
// call that returned nil is not undone by a crash. An implementation may
// commit the changes of concurrent calls together, in one transaction (group
// commit), provided that each call still returns only after its own change
// is committed, and that a call refused for its own reasons (ErrState,
// ErrNotFound) leaves the changes of the calls committed with it alone.
//
// # Claims, leases and replicas
//
// Several processes (replicas) may share one store's state, each with its
// own replica ID, the owner of what it claims. A claimed item carries its
// owner and a lease expiry (Item.Owner, Item.LeaseUntil): the owner renews
// the lease while it works (Renew); the item transitions that end a claim
// (Done, Fail, Defer, Release, Absent) are refused with ErrLeaseLost when
// the caller no longer owns the item, so a replica whose lease expired and
// was taken over can never record the outcome of an item another replica
// is working on. An in_progress item whose lease has expired is due again:
// any replica may claim it, and RecoverInProgress releases it.
//
// The singleton work of the jobs (a CDR window, a day's ledger, the sink
// janitor) is coordinated with named leases (TryLease, ReleaseLease): one
// owner at a time holds a name until it releases it or its lease expires.
// Watermarks only move forward (SetWatermark) and a day's ledger record is
// replaced only by a caller that read the record it replaces (SetLedger):
// a replica working from a stale view gets ErrConflict instead of undoing
// another's newer update.
//
// Lease times are the store's clock (its Options.Now, time.Now by default),
// never the now Claim takes for due times: replicas sharing a database must
// keep their clocks within a small part of a lease of each other (NTP). A
// store that admits one process only (SQLite, by its file lock) knows that
// the claims and leases it finds when it opens are a dead process's: it
// treats them as expired at once.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is the life-cycle state of an item or a package.
type State string

// States. An item moves pending → in_progress → done | absent | failed;
// failed → in_progress again when due; failed → dead after MaxAttempts.
const (
	StatePending    State = "pending"     // waiting to be tried (never tried, deferred, or released)
	StateInProgress State = "in_progress" // claimed by a worker of a running replica (Owner), until its lease expires
	StateDone       State = "done"        // stored and verified by the sink
	StateAbsent     State = "absent"      // has no recording: on the source's own evidence (Evidence) or by an operator's decision (AttestedAt); Reason says why
	StateFailed     State = "failed"      // the last attempt failed; tried again from NextAttemptAt
	StateDead       State = "dead"        // failed MaxAttempts times; kept and reported, no longer tried
)

// States lists every state, in life-cycle order.
var States = []State{StatePending, StateInProgress, StateDone, StateAbsent, StateFailed, StateDead}

// Package is one CDR package request: a window passed to queryBillData and
// what became of the package CC-FS built for it. A window may have several
// packages over time (lookback re-requests); each has its own responseId.
type Package struct {
	ID           int64     // assigned by CreatePackage
	Begin, End   time.Time // the window [Begin, End)
	ResponseID   string    // from queryBillData
	BillFileName string    // the name downloadBillFile is asked for
	RequestedAt  time.Time
	State        State  // pending (requested, not yet complete), done, failed, dead
	Attempts     int    // failed tries to obtain or parse this package
	LastError    string // last failure, for status and logs
	Key          string // object key of the archived ZIP ("" until stored, or when identical to an earlier package's ZIP)
	RowsKey      string // object key of the gzipped JSON Lines CDR rows
	Size         int64  // ZIP bytes
	SHA256       string // ZIP digest (hex)
	RowsSHA256   string // digest of the CSV rows' content, independent of entry names and ZIP bytes: a re-scan that finds the same rows is not stored again
	// QuarantineKey is where the bytes of a package rejected for its content
	// were kept (a key that includes their SHA-256), "" when none. A rejected
	// package never takes its final key.
	QuarantineKey string
	Calls         int // calls found in the package
	Items         int // items the package listed (new or already known)
	UpdatedAt     time.Time
}

// Call is one call enumerated by a CDR package.
type Call struct {
	CallID  string
	Day     string    // yyyy-mm-dd: the call's calendar day in the tenant time zone; the ledger groups by it
	Begin   time.Time // call start
	VDN     string
	AgentID string
}

// Item kinds. The lookups are per call; they discover transfer and IVR items.
const (
	KindAgent          = "agent"           // a recording-index row; UpstreamID = file_name
	KindTransfer       = "transfer"        // a transfer record; UpstreamID = record id
	KindIVR            = "ivr"             // an IVR session record; UpstreamID = logId
	KindTransferLookup = "transfer_lookup" // queryTransferRecordHistory for a call; UpstreamID = call id
	KindIVRLookup      = "ivr_lookup"      // queryRecordHistory for a call; UpstreamID = call id
)

// Kinds lists every item kind: the recordings, then the lookups.
func Kinds() []string {
	return []string{KindAgent, KindTransfer, KindIVR, KindTransferLookup, KindIVRLookup}
}

// Item is one unit of work: a recording to archive, or a per-call lookup.
// (Kind, UpstreamID) is unique: adding an item that exists is a no-op, which
// is how re-scanned windows and repeated rows are deduplicated.
type Item struct {
	ID         int64 // assigned by the store
	Kind       string
	UpstreamID string
	CallID     string
	Day        string // calendar day of the call (ledger)
	Key        string // object key, fixed when the item is added ("" for lookups)
	// Args is what the job needs to fetch it (file name, location id, …):
	// the JSON of the typed arguments of its kind, stored as is (column
	// params). The store does not interpret it; nil when there are none.
	Args          json.RawMessage
	State         State
	Attempts      int       // failed attempts so far (a crash or a release does not count)
	NextAttemptAt time.Time // a pending or failed item is not due before this
	LastError     string
	Reason        string // why the item is absent
	// Evidence is what the source said that proves the absence (interface,
	// result code, when), for an item absent on the source's evidence.
	Evidence string
	// AttestedAt is when an operator declared the item absent (Resolve); zero
	// unless the absence is the operator's decision, then Reason is theirs.
	AttestedAt time.Time
	Size       int64  // stored bytes (done)
	SHA256     string // stored digest, hex (done)
	// Owner and LeaseUntil are the claim of an in_progress item: the replica
	// that holds it and when its lease expires, on the store's clock (Claim,
	// Renew). Once LeaseUntil has passed the item is due again, whoever
	// holds it. Both are empty in every other state.
	Owner      string
	LeaseUntil time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// AddedState is the state it is added in (AddItems, AddCalls,
// CompletePackage): pending when it has none, pending or absent as given;
// any other state, or an item without kind or upstream ID, is an error
// naming it (ErrState for a state).
func AddedState(it Item) (State, error) {
	if it.Kind == "" || it.UpstreamID == "" {
		return "", fmt.Errorf("item %q/%q: empty kind or upstream id", it.Kind, it.UpstreamID)
	}
	switch it.State {
	case "":
		return StatePending, nil
	case StatePending, StateAbsent:
		return it.State, nil
	}
	return "", fmt.Errorf("item %s/%s: cannot be added as %s: %w", it.Kind, it.UpstreamID, it.State, ErrState)
}

// Claimer is who claims items and how long a claim holds.
type Claimer struct {
	// Owner identifies the claimer: a replica ID, unique to one process
	// (hostname, pid and random bytes). Required.
	Owner string
	// Lease is how long a claim (or a renewal) holds, from the store's
	// clock at the call. Required, > 0.
	Lease time.Duration
}

// DaySummary counts one calendar day's calls and items.
type DaySummary struct {
	Day     string
	Calls   int
	Counts  map[string]map[State]int // kind → state → items
	Updated time.Time                // latest UpdatedAt/CreatedAt among the day's items and calls
}

// unhurriedKey marks a context of Unhurried.
type unhurriedKey struct{}

// Unhurried marks ctx for item transitions whose caller waits for nothing
// but their outcome (the worker has moved on to its next item): a store
// that commits transitions in groups may hold such a one a little longer,
// so that more share its commit. The outcome, and that it is durable once
// the call returns, are the same; only when the call returns differs.
func Unhurried(ctx context.Context) context.Context {
	return context.WithValue(ctx, unhurriedKey{}, true)
}

// IsUnhurried reports whether ctx was marked by Unhurried.
func IsUnhurried(ctx context.Context) bool {
	v, _ := ctx.Value(unhurriedKey{}).(bool)
	return v
}

// Store is the checkpoint store. Implementations are safe for concurrent use
// by the goroutines of one process; the PostgreSQL store is also shared by
// processes (replicas, see the package doc), and the SQLite store refuses a
// second process on the same state at Open (ErrLocked).
//
// Done, Absent, Fail, Defer and Release require an in_progress item (Absent
// also accepts pending and failed ones); otherwise they return an error
// wrapping ErrState, or ErrNotFound for an unknown ID, and change nothing.
// On an in_progress item they also require the caller to be its Owner: an
// item claimed by another owner (after the caller's lease expired) is
// refused with an error wrapping ErrLeaseLost (and so ErrState) that names
// the holder. The caller's own item whose lease has expired but that no one
// has claimed since is still the caller's. Each of them ends the claim:
// Owner and LeaseUntil are cleared.
// Called concurrently, as a job's workers do, each gets its own outcome
// whatever the store commits together. A call whose ctx has ended before
// its change was begun returns an error wrapping ctx.Err() and changes
// nothing; once the store has begun committing the change, the call reports
// that commit's outcome, whatever becomes of ctx.
type Store interface {
	// CreatePackage records a new package request (State pending) and returns
	// its ID.
	CreatePackage(ctx context.Context, p Package) (int64, error)
	// OpenPackage returns the newest package of the window [begin, end) that is
	// neither done nor dead, if any: a request to keep polling after a restart
	// instead of asking CC-FS again.
	OpenPackage(ctx context.Context, begin, end time.Time) (Package, bool, error)
	// Packages returns the packages in any of the given states (all when
	// none), ordered by window begin, then ID.
	Packages(ctx context.Context, states ...State) ([]Package, error)
	// LastDonePackage returns the newest done package of the window, if any.
	LastDonePackage(ctx context.Context, begin, end time.Time) (Package, bool, error)
	// UnfinishedWindows returns, for every window that begins before before
	// and whose newest package is pending or failed, that package, ordered
	// by window begin: the requests a run left unfinished (killed, or failed)
	// that no longer fall in the scheduled windows, to be taken up again.
	// A window whose newest package is done or dead is not one.
	UnfinishedWindows(ctx context.Context, before time.Time) ([]Package, error)
	// UpdatePackage saves every field of p (by p.ID) except ID and Begin/End.
	// An unknown ID is an error wrapping ErrNotFound.
	UpdatePackage(ctx context.Context, p Package) error
	// CompletePackage, in one transaction, adds the calls (existing call IDs
	// are kept as they are) and the items (existing (Kind, UpstreamID) pairs
	// are kept as they are, whatever their state) and saves p with State done.
	// It returns how many items were new.
	CompletePackage(ctx context.Context, p Package, calls []Call, items []Item) (added int, err error)
	// AddCalls, in one transaction, adds calls and items as CompletePackage
	// does, without saving a package: a large package's calls and their
	// items are committed in parts, so that its recordings can be claimed
	// while the rest is stored, before CompletePackage adds the last part
	// and marks it done. It returns how many items were new.
	AddCalls(ctx context.Context, calls []Call, items []Item) (added int, err error)

	// AddItems adds items (State pending unless set) and ignores those whose
	// (Kind, UpstreamID) exists. It returns how many were new. An item may be
	// added as pending or absent (with Reason); any other State is refused
	// with an error wrapping ErrState and nothing is added.
	AddItems(ctx context.Context, items []Item) (added int, err error)
	// Claim moves up to limit due items of the given kinds to in_progress,
	// owned by c.Owner with a lease until the store's clock plus c.Lease, and
	// returns them (Owner and LeaseUntil set). Due are the pending or failed
	// items whose NextAttemptAt is not after now, and the in_progress items
	// whose lease has expired on the store's clock, whoever held them (their
	// Attempts are not counted up: the holder died or stalled, it did not
	// fail). They come oldest NextAttemptAt first, then by ID. No kinds means
	// all kinds; limit ≤ 0 means no limit. An item is never handed out twice
	// while its lease holds, even to concurrent callers of several
	// processes. An empty Owner or a Lease ≤ 0 is an error.
	Claim(ctx context.Context, c Claimer, kinds []string, now time.Time, limit int) ([]Item, error)
	// Renew extends the leases of the items ids that c.Owner still holds
	// (in_progress and owned by it, expired or not) to the store's clock plus
	// c.Lease, and returns the others, in the order given: items another
	// owner claimed, that are no longer in_progress (released by another
	// replica's RecoverInProgress, finished) or unknown. The caller has lost
	// those and must abandon them. Renew changes nothing else (not
	// UpdatedAt).
	Renew(ctx context.Context, c Claimer, ids []int64) (lost []int64, err error)
	// Done marks an in_progress item of owner stored: key, size and digest as
	// the sink verified them. Only call it after the sink's Put returned nil.
	Done(ctx context.Context, owner string, id int64, key string, size int64, sha256 string) error
	// DoneArgs is Done that also replaces the item's Args with args, in the
	// same transaction: what was decided at the write (the retention rule the
	// object was stored under) is kept with the item exactly when it is done.
	// args must be a JSON object, as AddItems takes it.
	DoneArgs(ctx context.Context, owner string, id int64, key string, size int64, sha256 string, args json.RawMessage) error
	// Absent marks an item as having no recording, with the reason and the
	// source's evidence. Unlike the other transitions it also applies to
	// pending and failed items, whoever calls it (owner is checked on an
	// in_progress item only): a job may rule an item absent without
	// claiming it.
	Absent(ctx context.Context, owner string, id int64, reason, evidence string) error
	// Resolve is an operator's decision that a failed or dead item has no
	// recording: it becomes absent with the operator's reason and AttestedAt
	// = at. Any other state is refused with ErrState. It returns the item as
	// it is now.
	Resolve(ctx context.Context, id int64, reason string, at time.Time) (Item, error)
	// Fail records a failed attempt of owner's in_progress item: Attempts+1,
	// LastError = msg. The item becomes dead when Attempts reaches
	// maxAttempts, else failed and due at next. It returns the new state.
	Fail(ctx context.Context, owner string, id int64, msg string, next time.Time, maxAttempts int) (State, error)
	// Defer puts owner's in_progress item back to pending, due at next,
	// without counting an attempt (an OIFDE record not yet settled). note
	// replaces LastError ("" clears it).
	Defer(ctx context.Context, owner string, id int64, next time.Time, note string) error
	// Release puts owner's in_progress item back to pending, due at once,
	// without counting an attempt (work abandoned at shutdown).
	Release(ctx context.Context, owner string, id int64) error
	// RecoverInProgress releases (pending, due at once, no attempt counted)
	// the in_progress items that owner holds and those whose lease has
	// expired, whoever held them; the items other owners hold under a lease
	// that has not expired are left to them. Call it once at start with the
	// replica's ID. It returns how many it released.
	RecoverInProgress(ctx context.Context, owner string) (int, error)
	// Requeue moves every dead item of the given kinds (all kinds when none)
	// back to pending with Attempts 0. It returns how many.
	Requeue(ctx context.Context, kinds ...string) (int, error)

	// Item returns one item by ID, or an error wrapping ErrNotFound.
	Item(ctx context.Context, id int64) (Item, error)
	// Items returns the items in any of the given states (all when none),
	// ordered by ID.
	Items(ctx context.Context, states ...State) ([]Item, error)
	// DayCalls and DayItems return one calendar day's calls (by CallID) and
	// items (by ID).
	DayCalls(ctx context.Context, day string) ([]Call, error)
	DayItems(ctx context.Context, day string) ([]Item, error)
	// EachDayItem calls fn with each of one day's items, by ID, without
	// holding them all: a day's ledger reads tens of thousands. It stops at
	// the first error of fn and returns it. fn must not use the store (the
	// read holds SQLite's one connection until it ends).
	EachDayItem(ctx context.Context, day string, fn func(Item) error) error
	// Days summarises every day that has calls or items, oldest first.
	Days(ctx context.Context) ([]DaySummary, error)

	// Watermark returns a job's watermark, ok false when it has none.
	Watermark(ctx context.Context, job string) (t time.Time, ok bool, err error)
	// SetWatermark moves a job's watermark forward to t: it stores t when the
	// job has none or t is not before the stored one (t equal to it changes
	// nothing and returns nil). A t before the stored watermark, which
	// another replica has moved on meanwhile, is refused with an error
	// wrapping ErrConflict, and the stored one stays.
	SetWatermark(ctx context.Context, job string, t time.Time) error

	// LastSuccess returns when a job last finished a run without failures
	// (SetLastSuccess), ok false when it never has.
	LastSuccess(ctx context.Context, job string) (t time.Time, ok bool, err error)
	// SetLastSuccess records that a job finished a run without failures at
	// t. It keeps the latest time: a t not after the stored one changes
	// nothing and returns nil (replicas finishing runs of the same job in
	// any order leave the newest), so that a metric restored from it after
	// a restart never goes back.
	SetLastSuccess(ctx context.Context, job string, t time.Time) error

	// LastRun returns the last run recorded for a job (SetLastRun), ok
	// false when none is.
	LastRun(ctx context.Context, job string) (r JobRun, ok bool, err error)
	// SetLastRun records r as the last run of job r.Job. A run is recorded
	// when it starts (RunRunning) and again when it ends, with the same
	// Started: a record replaces the stored one unless that one started
	// later (another replica's run of the job that began since), in which
	// case nothing changes and nil is returned, so that replicas recording
	// in any order leave the run that started last. An empty Job, a zero
	// Started or a Result not in RunResults is an error and changes
	// nothing; Error is diagnostic text, stored as the store can hold it.
	SetLastRun(ctx context.Context, r JobRun) error

	// Ledger returns the digest and key of the last ledger written for a day.
	Ledger(ctx context.Context, day string) (sha256, key string, ok bool, err error)
	// SetLedger records the ledger object written for a day, replacing the
	// record whose digest is prev: the digest Ledger returned, "" when it
	// found none. When the day's record is another (another replica wrote a
	// ledger since the caller read it) it is refused with an error wrapping
	// ErrConflict and nothing changes.
	SetLedger(ctx context.Context, day, prev, sha256, key string) error

	// TryLease takes the named lease for owner until the store's clock plus
	// ttl, and reports whether owner holds it now: when no one holds it, when
	// owner already does (the lease is extended: this is also how it is
	// renewed), or when the holder's lease has expired. ok false means
	// another owner holds it and its lease has not expired. The names are
	// the caller's ("cdr:<window begin>", "ledger:<day>", "janitor"). An
	// empty name or owner, or a ttl ≤ 0, is an error.
	TryLease(ctx context.Context, name, owner string, ttl time.Duration) (ok bool, err error)
	// ReleaseLease gives up owner's lease of name, so that another owner may
	// take it at once. A lease that owner does not hold (never taken, or
	// expired and taken by another) is left as it is, and that is no error.
	ReleaseLease(ctx context.Context, name, owner string) error
	// Leases returns the named leases held now, by name: those whose Until
	// is after the store's clock. Released and expired ones are left out.
	// It is a read (it works on a read-only store), for status.
	Leases(ctx context.Context) ([]Lease, error)

	// Close releases the store and its lock.
	Close() error
}

// RunResult is how a job's run ended (JobRun.Result).
type RunResult string

// Run results.
const (
	RunRunning     RunResult = "running"     // started, not ended: going on, or its process died (killed, crashed, power lost)
	RunOK          RunResult = "ok"          // ended without errors or failures
	RunFailed      RunResult = "failed"      // ended on an error, or recorded failed windows, packages, attempts or dead items
	RunInterrupted RunResult = "interrupted" // stopped by a signal (shutdown or reload) before it ended by itself
)

// RunResults lists every run result.
var RunResults = []RunResult{RunRunning, RunOK, RunFailed, RunInterrupted}

// JobRun is one run of a job, as the store keeps the last of each job
// (SetLastRun): what archiver status shows.
type JobRun struct {
	Job      string
	Started  time.Time
	Finished time.Time // zero while it runs
	Result   RunResult
	// Error is a one-line summary of what went wrong ("" when nothing
	// did), without secrets: the archiver's errors never carry any.
	Error   string
	Done    int    // items completed (recordings stored or found stored already, lookups done) and CDR packages completed
	Failed  int    // failed attempts recorded (the items are retried), dead ones included, and CDR packages not obtained
	Bytes   int64  // bytes newly stored
	Replica string // the replica ID of the process that ran it
}

// CheckJobRun returns the error SetLastRun gives r when r cannot be
// recorded: no Job, a zero Started, or a Result not in RunResults.
func CheckJobRun(r JobRun) error {
	switch {
	case r.Job == "":
		return errors.New("no job")
	case r.Started.IsZero():
		return errors.New("no start time")
	case !slices.Contains(RunResults, r.Result):
		return fmt.Errorf("unknown result %q", r.Result)
	}
	return nil
}

// Lease is a named lease of singleton work (Store.TryLease) and who holds it.
type Lease struct {
	Name  string
	Owner string    // a replica ID
	Until time.Time // when it expires unless renewed
}

// Sentinel errors.
var (
	// ErrLocked: another process holds the state. Open returns a *LockedError.
	ErrLocked = errors.New("checkpoint: state is locked by another process")
	// ErrNotFound: no such item or package.
	ErrNotFound = errors.New("checkpoint: not found")
	// ErrState: the transition is not allowed from the item's current state
	// (e.g. Done on an item that is not in_progress).
	ErrState = errors.New("checkpoint: invalid state transition")
	// ErrLeaseLost: the in_progress item is another owner's now (the
	// caller's lease expired and it was claimed again). It wraps ErrState.
	ErrLeaseLost = fmt.Errorf("checkpoint: lease lost: %w", ErrState)
	// ErrConflict: the record changed since the caller read it (a watermark
	// that moved further, a ledger another replica wrote).
	ErrConflict = errors.New("checkpoint: conflict: changed by another writer")
)

// LockedError says which state file is locked and, when known, by which PID.
type LockedError struct {
	Path string
	PID  int // 0 when unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("checkpoint: %s is in use by another archiver process (pid %d); only one may run on a state file", e.Path, e.PID)
	}
	return fmt.Sprintf("checkpoint: %s is in use by another archiver process; only one may run on a state file", e.Path)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
