package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/observe"
)

// retainSlack is how much earlier than the object's write time plus its
// rule's days a retain-until date may be. The archiver counts the days
// from just before the Put, the store's Modified is the start (AWS) or the
// end (versitygw) of an upload that streams from CEC and may take minutes,
// and the two clocks differ a little; a retention shortened on purpose is
// shortened by days.
const retainSlack = time.Hour

// lockCheck is what verify --locks reads locks with.
type lockCheck struct {
	lr sink.LockReader
	// defaultHold: the sink holds every object it writes
	// (Retention.DefaultLegalHold), so an unexplained hold is no problem.
	defaultHold bool
}

// lockCheck finds the sink's LockReader: sink.ErrLockUnsupported when it
// has none (the dir sink).
func (a *Archiver) lockCheck() (*lockCheck, error) {
	lr, ok := sinkAs[sink.LockReader](a.Sink)
	if !ok {
		return nil, fmt.Errorf("jobs: verify --locks: %w: the %T sink has no Object Lock to read back (use the s3 sink on a bucket with Object Lock)",
			sink.ErrLockUnsupported, a.Sink)
	}
	return &lockCheck{lr: lr, defaultHold: a.Retention.DefaultLegalHold}, nil
}

// checkLocks reads back the Object Lock of every entry whose object was
// found (results, from checkEntries), with a.concurrency() workers, and
// adds each disagreement with the ledger to vd: an entry otherwise OK is
// counted in LockMismatch instead. l is the day's ledger as read back: its
// calls' hold events say which objects an operator held or released; nil
// (no readable ledger) leaves only the rules' holds expected.
//
// A lock that cannot be read because the object went missing is a
// problem ("lock unreadable"); a store that cannot say (no Object Lock on
// the bucket, a refused permission, a failure) stops the check.
func (a *Archiver) checkLocks(ctx context.Context, lc *lockCheck, vd *VerifyDay, l *Ledger, entries []verifyEntry, results []verifyResult) error {
	var holds map[string][]LedgerHold
	if l != nil {
		holds = callHolds(l)
	}
	problems := make([][]string, len(entries))
	err := forEach(ctx, a.concurrency(), len(entries), func(ctx context.Context, i int) error {
		e, obj := entries[i], results[i].obj
		if obj == nil {
			return nil // missing, or no usable key: already a problem
		}
		got, err := lc.lr.ObjectLock(ctx, e.Key)
		switch {
		case errors.Is(err, sink.ErrNotFound), errors.Is(err, sink.ErrInvalidKey):
			problems[i] = []string{fmt.Sprintf("lock unreadable %s (%s): %v", e.Key, e, err)}
			return nil
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("jobs: verify --locks: %w", err)
		}
		hold := expectHold(e, holds[e.CallID], l != nil, lc.defaultHold)
		problems[i] = lockProblems(e, *obj, got, hold)
		return nil
	})
	if err != nil {
		return err
	}
	for i, p := range problems {
		if len(p) == 0 {
			continue
		}
		if results[i].outcome == outcomeOK {
			vd.OK--
			vd.LockMismatch++
		}
		vd.Problems = append(vd.Problems, p...)
	}
	return nil
}

// holdWant is the legal hold the ledger expects of an object.
type holdWant struct {
	known bool // false: either is right
	on    bool
	why   string
}

// expectHold is the legal hold the ledger expects of e's object, from its
// call's hold events (events, oldest first; known false when the ledger was
// not readable) and its retention rule:
//
//   - the newest event naming the key (in its objects, or its failed ones:
//     what the operator asked for) decides: place held, release not held;
//   - else a call whose last event is a place is held (an object archived
//     after the hold and not held since);
//   - else a rule with a legal hold holds it;
//   - else it is not held, unless the sink holds every object it writes.
func expectHold(e verifyEntry, events []LedgerHold, known, defaultHold bool) holdWant {
	var last *LedgerHold
	for i := len(events) - 1; i >= 0; i-- {
		ev := &events[i]
		if ev.Action != HoldPlace && ev.Action != HoldRelease {
			continue
		}
		if last == nil {
			last = ev
		}
		if slices.Contains(ev.Objects, e.Key) || slices.Contains(ev.Failed, e.Key) {
			return holdWant{known: true, on: ev.Action == HoldPlace, why: "archiver hold " + holdEvent(ev)}
		}
	}
	if last != nil && last.Action == HoldPlace {
		return holdWant{known: true, on: true,
			why: "the call is held by archiver hold " + holdEvent(last) + ", which did not list it (archived later: the next ledger pass of its day holds it)"}
	}
	if r := e.Retention; r != nil && r.LegalHold {
		return holdWant{known: true, on: true, why: fmt.Sprintf("retention rule %q holds it", r.Rule)}
	}
	if defaultHold || !known {
		return holdWant{}
	}
	why := "no retention rule holds it and the call was never held"
	if last != nil {
		why = "no retention rule holds it and the call was released by archiver hold " + holdEvent(last)
	}
	return holdWant{known: true, why: why}
}

func holdEvent(ev *LedgerHold) string {
	return ev.Action + " at " + ev.At.UTC().Format(time.RFC3339)
}

// lockProblems compares an object's Object Lock (got) and its
// "retention-rule" metadata (obj, from Stat or Open) with its ledger
// entry (e.Retention) and the legal hold expected of it. A retention is
// only expected when the entry names a rule with one: the sink's and the
// bucket's default retention are not in the ledger. A retain-until later
// than the rule's days is no problem (a retention may be extended).
func lockProblems(e verifyEntry, obj sink.Object, got sink.ObjectLock, hold holdWant) []string {
	var out []string
	add := func(kind, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s %s (%s): ", kind, e.Key, e)+fmt.Sprintf(format, args...))
	}
	rule := ""
	if r := e.Retention; r != nil {
		rule = r.Rule
		if r.Mode != "" && r.Days > 0 {
			gives := fmt.Sprintf("the ledger's rule %q gives %s for %d days", r.Rule, r.Mode, r.Days)
			switch {
			case got.Mode == "":
				add("retention mismatch", "no retention; %s", gives)
			case !strings.EqualFold(got.Mode, r.Mode):
				add("retention mismatch", "mode %s; %s", got.Mode, gives)
			case obj.Modified.IsZero():
				add("retention mismatch", "the store reports no write time to count the days from; %s", gives)
			default:
				want := obj.Modified.Add(time.Duration(r.Days) * 24 * time.Hour)
				if got.RetainUntil.Before(want.Add(-retainSlack)) {
					add("retention mismatch", "retained until %s, before its write at %s + %d days (%s); %s",
						stamp(got.RetainUntil), stamp(obj.Modified), r.Days, stamp(want), gives)
				}
			}
		}
	}
	if m := obj.Metadata[MetaKeyRetentionRule]; m != rule {
		add("retention rule mismatch", "metadata %s is %s, the ledger's rule %s", MetaKeyRetentionRule, verifyOrNone(m), verifyOrNone(rule))
	}
	switch {
	case !hold.known:
	case hold.on && !got.LegalHold:
		add("legal hold mismatch", "not held; the ledger says held: %s", hold.why)
	case !hold.on && got.LegalHold:
		add("unexpected legal hold", "held; the ledger says not held: %s", hold.why)
	}
	return out
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// sinkAs finds a T (an optional sink interface) behind s and the
// decorators wrapped around it (ObserveSink).
func sinkAs[T any](s sink.Sink) (T, bool) {
	for {
		if v, ok := s.(T); ok {
			return v, true
		}
		switch w := s.(type) {
		case *observe.ReadSink:
			s = w.Sink.Sink
		case *observe.Sink:
			s = w.Sink
		default:
			var zero T
			return zero, false
		}
	}
}
