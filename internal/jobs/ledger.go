package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// JobLedger is the watermark name of the ledger writer.
const JobLedger = "ledger"

// ledgerMargin re-examines days updated shortly before the last ledger pass
// (clock granularity, writes racing the pass).
const ledgerMargin = time.Minute

// Ledger is the completeness ledger of one calendar day: every call the CDR
// packages listed, with each of its recordings archived, absent (and why),
// pending, failed or dead.
type Ledger struct {
	Version     int        `json:"version"`
	Tenant      string     `json:"tenant"`
	Day         string     `json:"day"`
	GeneratedAt *time.Time `json:"generated_at,omitempty"`
	Complete    bool       `json:"complete"`
	// Incomplete says why Complete is false, one line per cause (failed or
	// pending items, lookups not done, CDR windows not obtained).
	Incomplete []string       `json:"incomplete,omitempty"`
	Totals     LedgerTotals   `json:"totals"`
	Calls      []LedgerCall   `json:"calls"`
	Orphans    []LedgerRecord `json:"orphans,omitempty"` // items whose call is not among the day's calls
	// Chain links the ledger into the tenant's chain of ledgers (chain.go);
	// nil in a ledger written before the chain ("pre-chain"). It is not
	// part of the content digest.
	Chain *LedgerChain `json:"chain,omitempty"`
}

// LedgerTotals counts a day's calls and recordings by state. Pending
// includes in_progress.
type LedgerTotals struct {
	Calls    int `json:"calls"`
	Archived int `json:"archived"`
	Absent   int `json:"absent"`   // on the source's evidence or by an operator (Attested counts those)
	Attested int `json:"attested"` // absent by an operator's decision
	Pending  int `json:"pending"`
	Failed   int `json:"failed"`
	Dead     int `json:"dead"`
}

// LedgerCall is one call of a ledger.
type LedgerCall struct {
	CallID     string         `json:"call_id"`
	Begin      time.Time      `json:"begin"`
	VDN        string         `json:"vdn"`
	Recordings []LedgerRecord `json:"recordings"`
	Lookups    LedgerLookups  `json:"lookups"`
	// Holds are the legal holds placed on and lifted from the call's
	// objects (archiver hold), oldest first (hold.go).
	Holds []LedgerHold `json:"holds,omitempty"`
}

// LedgerLookups is the state of each lookup of a call ("missing" when the
// call has none). A struct, not a map: the text is the same (the members in
// the order of their names) at a sixth of the memory, which counts in a day
// of many calls.
type LedgerLookups struct {
	IVR      string `json:"ivr"`
	Transfer string `json:"transfer"`
}

// LedgerRecord is one recording (or absent record) of a call.
type LedgerRecord struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	CallID string `json:"call_id,omitempty"` // orphans only
	State  string `json:"state"`
	Key    string `json:"key,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Evidence is what the source said that proves an absence.
	Evidence string `json:"evidence,omitempty"`
	// AttestedAt is set when the absence is an operator's decision (archiver
	// resolve); Reason is then the operator's.
	AttestedAt *time.Time `json:"attested_at,omitempty"`
	Error      string     `json:"error,omitempty"`
	Attempts   int        `json:"attempts,omitempty"`
	// Retention is the retention rule the recording is stored under
	// (retention.go); absent when no rule matched it.
	Retention *RetentionChoice `json:"retention,omitempty"`
}

// WriteLedgers writes a new ledger object for every day that changed since
// the last pass (the "ledger" watermark) and whose content differs from the
// last ledger written. Ledger objects are create-only and never replaced:
// the newest key of a day is its current ledger. It also exports the item
// counts to Metrics.
//
// Every ledger is a link of the tenant's ledger chain (chain.go): the pass
// runs under the store lease "ledger-chain", so one replica at a time
// appends; when another replica holds it the whole pass is skipped and the
// watermark left as it is (the holder's pass covers the days). Within the
// pass a day's ledger is also written under the store lease ledger:<day>;
// a day another replica holds is skipped, and then the pass leaves the
// watermark as it is.
// The day's ledger record is replaced only if it is still the one read
// (checkpoint.Store.SetLedger): a replica that lost the race keeps the
// other's record.
func (a *Archiver) WriteLedgers(ctx context.Context) (written int, err error) {
	if err := a.init(); err != nil {
		return 0, err
	}
	log := a.log.With(zap.String("job", JobLedger))
	sctx := storeCtx(ctx)
	start := a.now()
	since, haveSince, err := a.Store.Watermark(sctx, JobLedger)
	if err != nil {
		return 0, a.storeErr("read ledger watermark", err)
	}
	days, err := a.Store.Days(sctx)
	if err != nil {
		return 0, a.storeErr("days", err)
	}
	a.met.SetItems(itemCounts(days))
	problems, err := a.problemDays(ctx)
	if err != nil {
		return 0, err
	}
	// Days a failed or pending window covers get a ledger that says so,
	// even before any call of theirs is known; a day whose window is a
	// problem is always re-examined (the digest tells whether it changed).
	known := map[string]bool{}
	for _, d := range days {
		known[d.Day] = true
	}
	for day := range problems {
		if !known[day] {
			days = append(days, checkpoint.DaySummary{Day: day})
		}
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Day < days[j].Day })
	skipped := 0
	ran, err := a.chainPass(ctx, func(ctx context.Context) error {
		for _, d := range days {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if haveSince && d.Updated.Before(since.Add(-ledgerMargin)) && problems[d.Day] == nil {
				continue
			}
			var ok bool
			ran, err := a.exclusive(ctx, ledgerLease(d.Day), func(ctx context.Context) error {
				var err error
				ok, err = a.writeLedger(ctx, d.Day, start, problems[d.Day])
				return err
			})
			if err != nil {
				return err
			}
			if !ran {
				skipped++
				log.Info("ledger skipped: another replica is writing it", zap.String("day", d.Day))
				continue
			}
			if ok {
				written++
				log.Info("ledger written", zap.String("day", d.Day))
			}
		}
		return nil
	})
	if err != nil {
		return written, err
	}
	if !ran {
		log.Info("ledger pass skipped: another replica is appending to the ledger chain")
		return 0, nil
	}
	if skipped > 0 {
		return written, nil
	}
	if _, err := a.setWatermark(sctx, JobLedger, start); err != nil {
		return written, err
	}
	return written, nil
}

// problemDays maps each day to the cdr windows covering it whose newest
// package is not done.
func (a *Archiver) problemDays(ctx context.Context) (map[string][]WindowProblem, error) {
	wins, err := ProblemWindows(storeCtx(ctx), a.Store, a.loc())
	if err != nil {
		a.met.CheckpointError()
		return nil, err
	}
	out := map[string][]WindowProblem{}
	for _, w := range wins {
		for _, d := range w.Days {
			out[d] = append(out[d], w)
		}
	}
	return out, nil
}

// BuildLedger assembles a day's ledger from the checkpoint store (without
// GeneratedAt).
func (a *Archiver) BuildLedger(ctx context.Context, day string) (*Ledger, error) {
	if err := a.init(); err != nil {
		return nil, err
	}
	problems, err := a.problemDays(ctx)
	if err != nil {
		return nil, err
	}
	return a.buildLedger(ctx, day, problems[day])
}

func (a *Archiver) buildLedger(ctx context.Context, day string, windows []WindowProblem) (*Ledger, error) {
	sctx := storeCtx(ctx)
	calls, err := a.Store.DayCalls(sctx, day)
	if err != nil {
		return nil, a.storeErr("day calls", err)
	}
	l := &Ledger{Version: 1, Tenant: a.Tenant, Day: day, Calls: []LedgerCall{}}
	idx := map[string]int{}
	sort.Slice(calls, func(i, j int) bool { return calls[i].CallID < calls[j].CallID })
	for _, c := range calls {
		idx[c.CallID] = len(l.Calls)
		l.Calls = append(l.Calls, LedgerCall{
			CallID: c.CallID, Begin: c.Begin.UTC(), VDN: c.VDN, Recordings: []LedgerRecord{},
			Lookups: LedgerLookups{Transfer: "missing", IVR: "missing"},
		})
	}
	l.Totals.Calls = len(calls)
	// The day's items one at a time: a day of 20,000 calls has 60,000 (with
	// their lookups), which held at once were the largest part of the
	// process's memory at the end of a pass.
	err = a.Store.EachDayItem(sctx, day, func(it checkpoint.Item) error {
		i, known := idx[it.CallID]
		switch it.Kind {
		case checkpoint.KindTransferLookup, checkpoint.KindIVRLookup:
			if known {
				// A lookup is named after the job that does it.
				if it.Kind == checkpoint.KindIVRLookup {
					l.Calls[i].Lookups.IVR = string(it.State)
				} else {
					l.Calls[i].Lookups.Transfer = string(it.State)
				}
			}
			return nil
		}
		rec := LedgerRecord{
			Kind: it.Kind, ID: it.UpstreamID, State: string(it.State), Reason: it.Reason, Evidence: it.Evidence,
			Error: it.LastError, Attempts: it.Attempts, Retention: retentionOf(it),
		}
		if !it.AttestedAt.IsZero() {
			at := it.AttestedAt.UTC()
			rec.AttestedAt = &at
			l.Totals.Attested++
		}
		if it.State == checkpoint.StateDone {
			rec.Key, rec.Size, rec.SHA256 = it.Key, it.Size, it.SHA256
		}
		switch it.State {
		case checkpoint.StateDone:
			l.Totals.Archived++
		case checkpoint.StateAbsent:
			l.Totals.Absent++
		case checkpoint.StateFailed:
			l.Totals.Failed++
		case checkpoint.StateDead:
			l.Totals.Dead++
		default:
			l.Totals.Pending++
		}
		if known {
			l.Calls[i].Recordings = append(l.Calls[i].Recordings, rec)
		} else {
			rec.CallID = it.CallID
			l.Orphans = append(l.Orphans, rec)
		}
		return nil
	})
	if err != nil {
		return nil, a.storeErr("day items", err)
	}
	less := func(r []LedgerRecord) func(i, j int) bool {
		return func(i, j int) bool {
			if r[i].Kind != r[j].Kind {
				return r[i].Kind < r[j].Kind
			}
			if r[i].CallID != r[j].CallID {
				return r[i].CallID < r[j].CallID
			}
			return r[i].ID < r[j].ID
		}
	}
	lookupsOpen := 0
	for i := range l.Calls {
		c := &l.Calls[i]
		sort.Slice(c.Recordings, less(c.Recordings))
		if c.Lookups.Transfer != string(checkpoint.StateDone) || c.Lookups.IVR != string(checkpoint.StateDone) {
			lookupsOpen++
		}
	}
	sort.Slice(l.Orphans, less(l.Orphans))
	t := l.Totals
	for _, c := range []struct {
		n    int
		what string
	}{
		{t.Pending, "recordings pending"}, {t.Failed, "recordings failed"}, {t.Dead, "recordings dead"},
		{lookupsOpen, "calls whose transfer or IVR lookup is not done"},
	} {
		if c.n > 0 {
			l.Incomplete = append(l.Incomplete, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	for _, w := range windows {
		why := fmt.Sprintf("cdr window %s – %s: package %s is %s", w.Begin.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339),
			orNone(w.BillFileName), w.State)
		if w.Attempts > 0 {
			why += fmt.Sprintf(" after %d attempts", w.Attempts)
		}
		if w.LastError != "" {
			why += ": " + oneLine(w.LastError)
		}
		l.Incomplete = append(l.Incomplete, why)
	}
	l.Complete = len(l.Incomplete) == 0
	return l, nil
}

// writeLedger writes day's ledger if it differs from the last one written,
// as the next link of the chain (the chain lease is held).
func (a *Archiver) writeLedger(ctx context.Context, day string, now time.Time, windows []WindowProblem) (written bool, err error) {
	return a.writeLedgerHold(ctx, day, now, windows, "", nil)
}

// writeLedgerHold is writeLedger that also appends hold, when not nil, to
// the holds of call holdCall (archiver hold). The holds of the day's calls
// are carried from its current link (holds.go).
func (a *Archiver) writeLedgerHold(ctx context.Context, day string, now time.Time, windows []WindowProblem, holdCall string, hold *LedgerHold) (written bool, err error) {
	sctx := storeCtx(ctx)
	l, err := a.buildLedger(ctx, day, windows)
	if err != nil {
		return false, err
	}
	_, readable := a.Sink.(sink.Reader)
	var x *chainIndex
	if readable {
		defer func() {
			if err != nil {
				a.chain.idx = nil // read the chain again from the sink next time
			}
		}()
		if x, err = a.chainIndexFor(ctx); err != nil {
			return false, err
		}
		if err := a.carryHolds(ctx, x, l, holdCall, hold); err != nil {
			return false, err
		}
	} else if hold != nil {
		return false, fmt.Errorf("jobs: ledger %s: the sink (%T) cannot be read back: no chain to record the hold in", day, a.Sink)
	}
	digest, err := ledgerDigest(l)
	if err != nil {
		return false, fmt.Errorf("jobs: ledger %s: %w", day, err)
	}
	last, lastKey, ok, err := a.Store.Ledger(sctx, day)
	if err != nil {
		return false, a.storeErr("ledger", err)
	}
	if ok && last == digest {
		return false, nil
	}
	prev := ""
	if ok {
		prev = last
	}
	// Full precision: two passes within one second (a quick re-run) must
	// still order their ledgers, by generated_at and by key.
	gen := now.UTC()
	l.GeneratedAt = &gen
	if readable {
		if done, err := a.recordChained(ctx, x, day, digest, prev, lastKey, ok); done || err != nil {
			return false, err
		}
		if l.Chain, err = a.nextLink(ctx, x, day, lastKey); err != nil {
			return false, err
		}
	} else {
		a.log.Error("ledger written without the chain: the sink cannot be read back", zap.String("day", day),
			zap.String("sink", fmt.Sprintf("%T", a.Sink)))
	}
	body, err := writeLedgerFile(a.SpoolDir, l)
	if err != nil {
		return false, fmt.Errorf("jobs: ledger %s: %w", day, err)
	}
	defer body.close()
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return false, fmt.Errorf("jobs: ledger: day %q: %w", day, err)
	}
	name := sink.PreChainLedgerName(gen, digest)
	meta := map[string]string{"kind": "ledger", "day": day, "ledger-sha256": digest}
	if l.Chain != nil {
		if name, err = sink.LedgerName(gen, l.Chain.Seq, digest); err != nil {
			return false, fmt.Errorf("jobs: ledger %s: %w", day, err)
		}
		meta["chain-seq"] = fmt.Sprint(l.Chain.Seq)
	}
	key, err := a.ledKeys.Build(sink.KeyFields{Tenant: a.Tenant, Time: t, RecordID: name})
	if err != nil {
		return false, fmt.Errorf("jobs: ledger %s: key: %w", day, err)
	}
	if _, err := a.Sink.Put(a.transferCtx(ctx), key, body.f, body.size,
		sink.Meta{SHA256: body.sha256, ContentType: "application/json", Metadata: meta}); err != nil {
		return false, fmt.Errorf("jobs: ledger %s: %w", day, err)
	}
	if l.Chain != nil {
		if err := a.putHead(ctx, x, ChainRef{Seq: l.Chain.Seq, Day: day, Key: key, SHA256: body.sha256}); err != nil {
			return false, err
		}
		x.keptHolds(day, l)
	}
	if err := a.Store.SetLedger(sctx, day, prev, digest, key); errors.Is(err, checkpoint.ErrConflict) {
		// Another replica recorded a ledger of the day since it was read
		// (its object and ours are both in the sink; the record is theirs).
		a.log.Warn("ledger record changed meanwhile by another replica; theirs stays", zap.String("day", day),
			zap.String("key", key), zap.Error(err))
		return false, nil
	} else if err != nil {
		return false, a.storeErr("set ledger", err)
	}
	a.met.Ledger()
	return true, nil
}

// recordChained handles a day whose current link is not the state's
// record (a pass interrupted after the head, before the record): when that
// link holds the content being written (digest), it is recorded and done
// is true; otherwise a new link follows it.
func (a *Archiver) recordChained(ctx context.Context, x *chainIndex, day, digest, prev, lastKey string, haveLast bool) (done bool, err error) {
	cur, err := a.currentLink(ctx, a.Sink.(sink.Reader), x, day)
	if err != nil || cur == nil || (haveLast && cur.Key == lastKey) {
		return false, err
	}
	obj, err := a.Sink.Stat(ctx, cur.Key)
	if err != nil || obj.Metadata["ledger-sha256"] != digest {
		return false, nil // a new link supersedes it; verify reports a missing one
	}
	if err := a.Store.SetLedger(storeCtx(ctx), day, prev, digest, cur.Key); err != nil && !errors.Is(err, checkpoint.ErrConflict) {
		return false, a.storeErr("set ledger", err)
	}
	a.log.Warn("ledger record restored from the chain (an interrupted pass)", zap.String("day", day), zap.String("key", cur.Key))
	return true, nil
}

// oneLine keeps the first line of s, at most 300 bytes.
func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
