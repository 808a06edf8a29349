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
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// State is the life-cycle state of an item or a package.
type State string

// States. An item moves pending → in_progress → done | absent | failed;
// failed → in_progress again when due; failed → dead after MaxAttempts.
const (
	StatePending    State = "pending"     // waiting to be tried (never tried, deferred, or released)
	StateInProgress State = "in_progress" // claimed by a worker of the running process
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
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// DaySummary counts one calendar day's calls and items.
type DaySummary struct {
	Day     string
	Calls   int
	Counts  map[string]map[State]int // kind → state → items
	Updated time.Time                // latest UpdatedAt/CreatedAt among the day's items and calls
}

// Store is the checkpoint store. Implementations are safe for concurrent use
// by the goroutines of one process; the SQLite store refuses a second
// process on the same state at Open (ErrLocked), the PostgreSQL store takes
// no lock yet (one archiver per tenant until leases).
//
// Done, Absent, Fail, Defer and Release require an in_progress item (Absent
// also accepts pending and failed ones); otherwise they return an error
// wrapping ErrState, or ErrNotFound for an unknown ID, and change nothing.
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
	// UpdatePackage saves every field of p (by p.ID) except ID and Begin/End.
	// An unknown ID is an error wrapping ErrNotFound.
	UpdatePackage(ctx context.Context, p Package) error
	// CompletePackage, in one transaction, adds the calls (existing call IDs
	// are kept as they are) and the items (existing (Kind, UpstreamID) pairs
	// are kept as they are, whatever their state) and saves p with State done.
	// It returns how many items were new.
	CompletePackage(ctx context.Context, p Package, calls []Call, items []Item) (added int, err error)

	// AddItems adds items (State pending unless set) and ignores those whose
	// (Kind, UpstreamID) exists. It returns how many were new. An item may be
	// added as pending or absent (with Reason); any other State is refused
	// with an error wrapping ErrState and nothing is added.
	AddItems(ctx context.Context, items []Item) (added int, err error)
	// Claim moves up to limit due items of the given kinds to in_progress and
	// returns them: pending or failed items whose NextAttemptAt is not after
	// now, oldest NextAttemptAt first, then by ID. No kinds means all kinds;
	// limit ≤ 0 means no limit. An item is never handed out twice, even to
	// concurrent callers.
	Claim(ctx context.Context, kinds []string, now time.Time, limit int) ([]Item, error)
	// Done marks an in_progress item stored: key, size and digest as the sink
	// verified them. Only call it after the sink's Put returned nil.
	Done(ctx context.Context, id int64, key string, size int64, sha256 string) error
	// Absent marks an item as having no recording, with the reason and the
	// source's evidence. Unlike the other transitions it also applies to
	// pending and failed items: a job may rule an item absent without
	// claiming it.
	Absent(ctx context.Context, id int64, reason, evidence string) error
	// Resolve is an operator's decision that a failed or dead item has no
	// recording: it becomes absent with the operator's reason and AttestedAt
	// = at. Any other state is refused with ErrState. It returns the item as
	// it is now.
	Resolve(ctx context.Context, id int64, reason string, at time.Time) (Item, error)
	// Fail records a failed attempt: Attempts+1, LastError = msg. The item
	// becomes dead when Attempts reaches maxAttempts, else failed and due at
	// next. It returns the new state.
	Fail(ctx context.Context, id int64, msg string, next time.Time, maxAttempts int) (State, error)
	// Defer puts an in_progress item back to pending, due at next, without
	// counting an attempt (an OIFDE record not yet settled). note replaces
	// LastError ("" clears it).
	Defer(ctx context.Context, id int64, next time.Time, note string) error
	// Release puts an in_progress item back to pending, due at once, without
	// counting an attempt (work abandoned at shutdown).
	Release(ctx context.Context, id int64) error
	// RecoverInProgress releases every in_progress item: the process that
	// claimed them is gone. Call it once after Open. It returns how many.
	RecoverInProgress(ctx context.Context) (int, error)
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
	// Days summarises every day that has calls or items, oldest first.
	Days(ctx context.Context) ([]DaySummary, error)

	// Watermark returns a job's watermark, ok false when it has none.
	Watermark(ctx context.Context, job string) (t time.Time, ok bool, err error)
	// SetWatermark stores a job's watermark.
	SetWatermark(ctx context.Context, job string, t time.Time) error

	// Ledger returns the digest and key of the last ledger written for a day.
	Ledger(ctx context.Context, day string) (sha256, key string, ok bool, err error)
	// SetLedger records the ledger object written for a day.
	SetLedger(ctx context.Context, day, sha256, key string) error

	// Close releases the store and its lock.
	Close() error
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
