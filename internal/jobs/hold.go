package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Legal-hold actions (LedgerHold.Action).
const (
	HoldPlace   = "place"
	HoldRelease = "release"
)

// LedgerHold is one legal-hold event of a call in the ledger: archiver
// hold placed (or lifted) the S3 legal hold of Objects at At. The events
// of a call accumulate from link to link of its day; the last one says
// whether the call is held.
type LedgerHold struct {
	Action  string    `json:"action"` // HoldPlace or HoldRelease
	At      time.Time `json:"at"`
	Reason  string    `json:"reason,omitempty"`
	Objects []string  `json:"objects"` // object keys whose legal hold was set
	Failed  []string  `json:"failed,omitempty"`
}

// ErrUnknownCall: the state knows no recording of the call.
var ErrUnknownCall = errors.New("unknown call")

// HoldOptions says what archiver hold does.
type HoldOptions struct {
	CallID  string
	Day     string // yyyy-mm-dd: look only there; "" searches the whole state
	Release bool   // lift the hold instead of placing it
	Reason  string // recorded in the ledger (a case number …)
}

// HoldReport is what Hold did.
type HoldReport struct {
	CallID  string       `json:"call_id"`
	Day     string       `json:"day"`
	Action  string       `json:"action"`
	Objects []HoldObject `json:"objects"`
	// Pending lists the call's recordings not archived yet ("kind id"):
	// they get no hold now; run hold again once they are archived.
	Pending []string `json:"pending"`
	// Ledger is the ledger link that records the event (its key and seq).
	LedgerKey string `json:"ledger_key,omitempty"`
	LedgerSeq uint64 `json:"ledger_seq,omitempty"`
}

// HoldObject is one object of the call and its legal hold after Hold.
type HoldObject struct {
	Key       string `json:"key"`
	LegalHold bool   `json:"legal_hold"`
	Error     string `json:"error,omitempty"`
}

// Hold places (or, with Release, lifts) the S3 legal hold of every object
// of a call: each archived recording the state knows for the call, and
// each key the day's current ledger lists under the call. It reads each
// hold back, then records the event in the call's entry of a new ledger
// link of its day (under the chain lease and the day's ledger lease), so
// the chain shows who was held when. Recordings of the call not archived
// yet are listed in the report, not held.
//
// A sink that cannot hold (dir, a bucket without Object Lock) is
// sink.ErrLockUnsupported, a refused permission sink.ErrAccessDenied,
// both before anything is recorded. An object that cannot be held (it is
// missing) is reported and the others still are; Hold then records the
// event and returns the report with an error.
func (a *Archiver) Hold(ctx context.Context, o HoldOptions) (*HoldReport, error) {
	if err := a.init(); err != nil {
		return nil, err
	}
	action := HoldPlace
	if o.Release {
		action = HoldRelease
	}
	if strings.TrimSpace(o.CallID) == "" {
		return nil, errors.New("jobs: hold: a call ID is required")
	}
	lh, ok := legalHolder(a.Sink)
	if !ok {
		return nil, fmt.Errorf("jobs: hold call %s: %w: the %T sink has no Object Lock legal hold (use the s3 sink on a bucket with Object Lock)",
			o.CallID, sink.ErrLockUnsupported, a.Sink)
	}
	day, keys, pending, err := a.callObjects(ctx, o)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jobs: hold call %s: no object of the call is archived yet (not archived: %s); run hold again once they are",
			o.CallID, orNone(strings.Join(pending, ", ")))
	}
	rep := &HoldReport{CallID: o.CallID, Day: day, Action: action, Objects: []HoldObject{}, Pending: pending}
	ev := &LedgerHold{Action: action, At: a.now().UTC(), Reason: strings.TrimSpace(o.Reason), Objects: []string{}}
	var failed error
	for _, key := range keys {
		err := lh.SetLegalHold(ctx, key, !o.Release)
		var held bool
		if err == nil {
			held, err = lh.LegalHold(ctx, key)
			if err == nil && held == o.Release {
				err = fmt.Errorf("the store reports legal hold %v after setting it %v", held, !o.Release)
			}
		}
		if errors.Is(err, sink.ErrLockUnsupported) || errors.Is(err, sink.ErrAccessDenied) || ctx.Err() != nil {
			return nil, fmt.Errorf("jobs: hold call %s: %w", o.CallID, err)
		}
		hobj := HoldObject{Key: key, LegalHold: held}
		if err != nil {
			hobj.Error = err.Error()
			ev.Failed = append(ev.Failed, key)
			failed = errors.Join(failed, err)
		} else {
			ev.Objects = append(ev.Objects, key)
		}
		rep.Objects = append(rep.Objects, hobj)
	}
	a.log.Warn("legal hold "+action+"d by an operator", zap.String("call_id", o.CallID), zap.String("day", day),
		zap.Int("objects", len(ev.Objects)), zap.Int("failed", len(ev.Failed)), zap.String("reason", ev.Reason))
	problems, err := a.problemDays(ctx)
	if err != nil {
		return rep, err
	}
	ran, err := a.chainPass(ctx, func(ctx context.Context) error {
		ran, err := a.exclusive(ctx, ledgerLease(day), func(ctx context.Context) error {
			_, err := a.writeLedgerHold(ctx, day, a.now(), problems[day], o.CallID, ev)
			return err
		})
		if err == nil && !ran {
			err = fmt.Errorf("another replica is writing the ledger of %s", day)
		}
		return err
	})
	if err == nil && !ran {
		err = errors.New("another replica is appending to the ledger chain")
	}
	if err != nil {
		return rep, fmt.Errorf("jobs: hold call %s: the legal holds are set but not recorded in the ledger chain (run hold again): %w", o.CallID, err)
	}
	if x := a.chain.idx; x != nil && x.head != nil {
		rep.LedgerKey, rep.LedgerSeq = x.head.Link.Key, x.head.Link.Seq
	}
	if failed != nil {
		return rep, fmt.Errorf("jobs: hold call %s: %d of %d objects: %w", o.CallID, len(ev.Failed), len(keys), failed)
	}
	return rep, nil
}

// callObjects finds a call's day, the keys of its archived objects (the
// state's and its current ledger's) and its recordings not archived yet.
func (a *Archiver) callObjects(ctx context.Context, o HoldOptions) (day string, keys, pending []string, err error) {
	sctx := storeCtx(ctx)
	var items []checkpoint.Item
	if o.Day != "" {
		items, err = a.Store.DayItems(sctx, o.Day)
	} else {
		items, err = a.Store.Items(sctx)
	}
	if err != nil {
		return "", nil, nil, a.storeErr("items", err)
	}
	seen := map[string]bool{}
	found := false
	for _, it := range items {
		if it.CallID != o.CallID {
			continue
		}
		if day == "" || it.Day < day {
			day = it.Day
		}
		found = true
		switch it.Kind {
		case checkpoint.KindTransferLookup, checkpoint.KindIVRLookup:
			continue
		}
		switch {
		case it.State == checkpoint.StateDone && it.Key != "" && !seen[it.Key]:
			seen[it.Key] = true
			keys = append(keys, it.Key)
		case it.State != checkpoint.StateDone && it.State != checkpoint.StateAbsent:
			pending = append(pending, it.Kind+" "+it.UpstreamID)
		}
	}
	if !found {
		where := "the state"
		if o.Day != "" {
			where = "day " + o.Day + " of the state"
		}
		return "", nil, nil, fmt.Errorf("jobs: hold call %s: %w: %s has no item of it", o.CallID, ErrUnknownCall, where)
	}
	// What the day's current ledger lists under the call.
	if _, key, ok, err := a.Store.Ledger(sctx, day); err != nil {
		return "", nil, nil, a.storeErr("ledger", err)
	} else if r, readable := a.Sink.(sink.Reader); ok && readable {
		body, err := readAllLimit(ctx, r, key, maxLedgerBytes)
		if err != nil && !errors.Is(err, sink.ErrNotFound) {
			return "", nil, nil, fmt.Errorf("jobs: hold call %s: read ledger %s: %w", o.CallID, key, err)
		}
		var l Ledger
		if err == nil && json.Unmarshal(body, &l) == nil {
			for _, c := range l.Calls {
				if c.CallID != o.CallID {
					continue
				}
				for _, rec := range c.Recordings {
					if rec.Key != "" && !seen[rec.Key] {
						seen[rec.Key] = true
						keys = append(keys, rec.Key)
					}
				}
			}
		}
	}
	sort.Strings(keys)
	slices.Sort(pending)
	if pending == nil {
		pending = []string{}
	}
	return day, keys, pending, nil
}

// carryHolds sets the holds of l's calls: those of the day's current
// link, plus hold (when not nil) appended to call holdCall's.
func (a *Archiver) carryHolds(ctx context.Context, x *chainIndex, l *Ledger, holdCall string, hold *LedgerHold) error {
	held, err := a.dayHolds(ctx, x, l.Day)
	if err != nil {
		return err
	}
	placed := hold == nil
	for i := range l.Calls {
		c := &l.Calls[i]
		c.Holds = slices.Clone(held[c.CallID])
		if hold != nil && c.CallID == holdCall {
			c.Holds, placed = append(c.Holds, *hold), true
		}
	}
	if !placed {
		return fmt.Errorf("jobs: ledger %s: call %s is not among the day's calls: %w", l.Day, holdCall, ErrUnknownCall)
	}
	for i := range l.Calls {
		a.holdLate(ctx, l, &l.Calls[i])
	}
	return nil
}

// Reason of the hold events holdLate records.
const lateHoldReason = "automatic: archived after the call was held"

// holdLate places the legal hold of a held call (its last event a place)
// on the call's archived recordings no place event since the last release
// lists: recordings archived after the hold (a late transfer or IVR
// recording, a retried download). The event is recorded in the call's
// holds like an operator's. A recording whose hold cannot be set is retried
// by every later ledger pass and keeps the day incomplete until it is held.
func (a *Archiver) holdLate(ctx context.Context, l *Ledger, c *LedgerCall) {
	covered, held := heldObjects(c.Holds)
	if !held {
		return
	}
	var late []string
	for _, r := range c.Recordings {
		if r.State == string(checkpoint.StateDone) && r.Key != "" && !covered[r.Key] {
			covered[r.Key] = true
			late = append(late, r.Key)
		}
	}
	if len(late) == 0 {
		return
	}
	ev := LedgerHold{Action: HoldPlace, At: a.now().UTC(), Reason: lateHoldReason, Objects: []string{}}
	lh, ok := legalHolder(a.Sink)
	for _, key := range late {
		err := fmt.Errorf("the %T sink has no Object Lock legal hold: %w", a.Sink, sink.ErrLockUnsupported)
		if ok {
			if err = lh.SetLegalHold(ctx, key, true); err == nil {
				var on bool
				if on, err = lh.LegalHold(ctx, key); err == nil && !on {
					err = errors.New("the store reports no legal hold after setting it")
				}
			}
		}
		if err != nil {
			a.log.Error("legal hold of a recording archived after its call was held not set; retried at the next ledger pass",
				zap.String("call_id", c.CallID), zap.String("key", key), zap.Error(err))
			ev.Failed = append(ev.Failed, key)
			continue
		}
		ev.Objects = append(ev.Objects, key)
	}
	if len(ev.Failed) > 0 {
		l.Incomplete = append(l.Incomplete, fmt.Sprintf("call %s is held but %d of its recordings are not: %s",
			c.CallID, len(ev.Failed), strings.Join(ev.Failed, ", ")))
		l.Complete = false
	}
	if len(ev.Objects) == 0 {
		return // nothing newly held: no event (the failures are retried)
	}
	a.log.Warn("legal hold placed on recordings archived after their call was held", zap.String("call_id", c.CallID),
		zap.String("day", l.Day), zap.Int("objects", len(ev.Objects)))
	c.Holds = append(c.Holds, ev)
}

// heldObjects reads a call's hold events: whether the call is held (its
// last event a place), and the objects the place events since the last
// release list.
func heldObjects(holds []LedgerHold) (covered map[string]bool, held bool) {
	covered = map[string]bool{}
	for _, h := range holds {
		switch h.Action {
		case HoldRelease:
			clear(covered)
			held = false
		case HoldPlace:
			held = true
			for _, k := range h.Objects {
				covered[k] = true
			}
		}
	}
	return covered, held
}

// dayHolds returns the holds of the day's current link, by call.
func (a *Archiver) dayHolds(ctx context.Context, x *chainIndex, day string) (map[string][]LedgerHold, error) {
	if h, ok := x.holds[day]; ok {
		return h, nil
	}
	r := a.Sink.(sink.Reader) // chainIndexFor checked it
	out := map[string][]LedgerHold{}
	cur, err := a.currentLink(ctx, r, x, day)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		body, err := readAllLimit(ctx, r, cur.Key, maxLedgerBytes)
		var l Ledger
		switch {
		case errors.Is(err, sink.ErrNotFound):
			// Deleted behind the archiver's back: its events stay in the
			// earlier links, and verify --chain reports the missing link.
			a.log.Error("ledger chain: the day's current link is missing; its hold events are not carried on",
				zap.String("day", day), zap.String("key", cur.Key))
		case err != nil:
			return nil, fmt.Errorf("jobs: ledger %s: read its current link %s for its holds: %w", day, cur.Key, err)
		case json.Unmarshal(body, &l) != nil:
			a.log.Error("ledger chain: the day's current link is not a ledger; its hold events are not carried on",
				zap.String("day", day), zap.String("key", cur.Key))
		default:
			out = callHolds(&l)
		}
	}
	x.setHolds(day, out)
	return out, nil
}

// callHolds are the holds of l's calls, by call.
func callHolds(l *Ledger) map[string][]LedgerHold {
	out := map[string][]LedgerHold{}
	for _, c := range l.Calls {
		if len(c.Holds) > 0 {
			out[c.CallID] = c.Holds
		}
	}
	return out
}

func (x *chainIndex) setHolds(day string, h map[string][]LedgerHold) {
	if x.holds == nil {
		x.holds = map[string]map[string][]LedgerHold{}
	}
	x.holds[day] = h
}

// keptHolds records the holds of l, the day's new current link.
func (x *chainIndex) keptHolds(day string, l *Ledger) { x.setHolds(day, callHolds(l)) }

// legalHolder finds the sink.LegalHolder behind s and the decorators
// wrapped around it (ObserveSink).
func legalHolder(s sink.Sink) (sink.LegalHolder, bool) { return sinkAs[sink.LegalHolder](s) }
