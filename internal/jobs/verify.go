package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/recording"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// validateObject re-validates an archived object's container while Verify
// re-reads it (Deep): kind is the ledger kind ("agent", "transfer", "ivr"),
// r yields the stored bytes, size is the stored size. It must read r to the
// end or return an error; Verify hashes the same stream, so the object is
// read once. Tests replace it to inject failures.
var validateObject = (*Archiver).validateContainer

// validateContainer applies the checks a recording passed when it was
// archived: a WAV (or an allowed format) consistent with its size, or a ZIP
// bundle (spooled to disk, every member a valid recording).
func (a *Archiver) validateContainer(kind string, r io.Reader, size int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	if !bytes.HasPrefix(head, []byte("PK\x03\x04")) {
		_, err := io.Copy(io.Discard, recording.NewReader(br, size, a.Formats))
		return err
	}
	f, drop, err := createSpool(a.SpoolDir, "verify-*.zip")
	if err != nil {
		return fmt.Errorf("jobs: verify: spool: %w", err)
	}
	defer drop()
	n, err := io.Copy(f, br)
	if err != nil {
		return err
	}
	_, err = recording.CheckZip(f, n, a.Formats, maxBundleEntries, a.maxRecordingBytes())
	return err
}

// maxLedgerBytes bounds the ledger object Verify decodes (about a million
// recordings); a larger one is reported, not read.
const maxLedgerBytes = 256 << 20

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	// From and To bound the calendar days checked (yyyy-mm-dd, both
	// included); "" leaves that side open. Strays are only looked for when
	// both are "" (the whole archive is checked).
	From, To string
	// Deep re-reads every archived object: its bytes are hashed and its
	// container re-validated, instead of trusting the digest the store
	// recorded at write time.
	Deep bool
	// Chain also checks the ledger chain (VerifyChain): the whole chain,
	// whatever From and To, and the ledger records of the days checked
	// against it.
	Chain bool
	// Locks also reads back each archived recording's Object Lock
	// (retention and legal hold) and compares it with its ledger entry
	// (verify_lock.go). The sink must be able to read locks
	// (sink.LockReader), else Verify fails with sink.ErrLockUnsupported.
	Locks bool
}

// VerifyReport is the outcome of Verify. Problems is zero exactly when the
// archive agrees with the checkpoint store.
type VerifyReport struct {
	Days []VerifyDay `json:"days"`
	// Strays are keys under the tenant's prefix that nothing expects: not an
	// archived item's key, not a CDR package's (ZIP, rows, quarantine), not a
	// ledger, not under quarantine/. Only looked for when StraysChecked.
	Strays        []string `json:"strays"`
	StraysChecked bool     `json:"strays_checked"`
	Deep          bool     `json:"deep"`
	// Locks: each recording's Object Lock was checked (VerifyOptions.Locks).
	Locks bool `json:"locks"`
	// Chain is the check of the ledger chain, when asked for (nil
	// otherwise).
	Chain *ChainReport `json:"chain,omitempty"`
	// Problems counts every problem: the days' Problems, the Strays and
	// the Chain's Problems.
	Problems int `json:"problems"`
}

// Ledger states of a VerifyDay.
const (
	LedgerOK         = "ok"         // read, and it agrees with the checkpoint
	LedgerNone       = "none"       // the checkpoint records no ledger for the day
	LedgerUnreadable = "unreadable" // the ledger object is missing, too large or not a ledger
	LedgerDiffers    = "differs"    // read, and it disagrees with the checkpoint (LedgerMismatch)
)

// VerifyDay is the check of one calendar day.
type VerifyDay struct {
	Day       string `json:"day"`
	LedgerKey string `json:"ledger_key,omitempty"` // the day's newest ledger object
	// Ledger is LedgerOK, LedgerNone, LedgerUnreadable or LedgerDiffers.
	// Without a readable ledger the checkpoint's archived items are checked.
	Ledger string `json:"ledger"`
	// Entries are the archived recordings checked (state done); each is
	// counted once, in OK or in the first problem found, in this order:
	// Missing, Invalid (no usable key), SizeMismatch, DigestMismatch,
	// Invalid (the container does not validate, Deep only), LockMismatch
	// (its Object Lock or retention metadata disagrees with the ledger,
	// Locks only; an entry with another problem has its lock problems
	// listed too, but is counted in the other).
	Entries        int `json:"entries"`
	OK             int `json:"ok"`
	Missing        int `json:"missing"`
	SizeMismatch   int `json:"size_mismatch"`
	DigestMismatch int `json:"digest_mismatch"`
	Invalid        int `json:"invalid"`
	LockMismatch   int `json:"lock_mismatch"`
	// LedgerMismatch lists each disagreement between the ledger object and
	// the ledger rebuilt from the checkpoint (BuildLedger).
	LedgerMismatch []string `json:"ledger_mismatch"`
	// Parquet counts the Parquet files checked: those of the day's packages
	// stored in full (verify_parquet.go); their problems are in Problems.
	Parquet int `json:"parquet"`
	// Problems has one line per problem, naming the key: every entry not
	// OK, every ledger mismatch, the ledger object's own problems, and
	// every Parquet file missing or not as stored.
	Problems []string `json:"problems"`
}

// verifyEntry is one archived recording to check.
type verifyEntry struct {
	Kind, ID, CallID, Key string
	Size                  int64
	SHA256                string
	Retention             *RetentionChoice // the ledger's (verify --locks)
}

func (e verifyEntry) String() string {
	return fmt.Sprintf("%s %s, call %s", e.Kind, e.ID, e.CallID)
}

// entry outcomes, in VerifyDay counter order.
type verifyOutcome int

const (
	outcomeOK verifyOutcome = iota
	outcomeMissing
	outcomeInvalid
	outcomeSize
	outcomeDigest
)

type verifyResult struct {
	outcome verifyOutcome
	problem string
	obj     *sink.Object // the object found (Stat or Open), nil when none
}

// Verify checks the archive against the checkpoint store, like restic
// check: for every day the checkpoint knows (within From..To), the day's
// newest ledger object is read back and compared with the ledger rebuilt
// from the checkpoint, and every archived recording it lists is looked up
// in the sink: it must exist with the recorded size and SHA-256. The fast
// pass trusts the digest the store recorded at write time (a Stat per
// object); Deep re-reads each object instead, hashing it and re-validating
// its container in one pass. The Parquet files of the days' CDR packages
// are checked too (verifyParquet). Without a date range it then lists the
// tenant's prefix for strays.
//
// Problems found are in the report; the error is for what stops the check
// (the checkpoint or the sink failing, ctx ending, a sink that cannot be
// read back, bad options). Memory stays bounded: objects are streamed, one
// day's ledgers and the set of archived keys are held.
func (a *Archiver) Verify(ctx context.Context, o VerifyOptions) (*VerifyReport, error) {
	if err := a.init(); err != nil {
		return nil, err
	}
	for _, d := range []string{o.From, o.To} {
		if d == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("jobs: verify: day %q: want yyyy-mm-dd", d)
		}
	}
	if o.From != "" && o.To != "" && o.From > o.To {
		return nil, fmt.Errorf("jobs: verify: from %s is after to %s", o.From, o.To)
	}
	r, ok := a.Sink.(sink.Reader)
	if !ok {
		return nil, fmt.Errorf("jobs: verify: the sink (%T) cannot list and read back objects", a.Sink)
	}
	days, err := a.Store.Days(ctx)
	if err != nil {
		return nil, a.storeErr("days", err)
	}
	var lc *lockCheck
	if o.Locks {
		if lc, err = a.lockCheck(); err != nil {
			return nil, err
		}
	}
	rep := &VerifyReport{Days: []VerifyDay{}, Strays: []string{}, Deep: o.Deep, Locks: o.Locks}
	for _, d := range days {
		if (o.From != "" && d.Day < o.From) || (o.To != "" && d.Day > o.To) {
			continue
		}
		vd, err := a.verifyDay(ctx, r, d.Day, o.Deep, lc)
		if err != nil {
			return rep, err
		}
		rep.Days = append(rep.Days, *vd)
		rep.Problems += len(vd.Problems)
	}
	if err := a.verifyParquet(ctx, r, rep, o); err != nil {
		return rep, err
	}
	if o.From == "" && o.To == "" {
		strays, err := a.strays(ctx, r)
		if err != nil {
			return rep, err
		}
		rep.Strays, rep.StraysChecked = strays, true
		rep.Problems += len(strays)
	}
	if o.Chain {
		c, err := a.verifyChain(ctx, r, o.From, o.To)
		if err != nil {
			return rep, err
		}
		rep.Chain = c
		rep.Problems += len(c.Problems)
	}
	return rep, nil
}

// verifyDay checks one day: its ledger object, then its archived entries
// (and their locks, when lc is not nil).
func (a *Archiver) verifyDay(ctx context.Context, r sink.Reader, day string, deep bool, lc *lockCheck) (*VerifyDay, error) {
	vd := &VerifyDay{Day: day, LedgerMismatch: []string{}, Problems: []string{}}
	want, err := a.BuildLedger(ctx, day)
	if err != nil {
		return nil, err
	}
	digest, key, ok, err := a.Store.Ledger(ctx, day)
	if err != nil {
		return nil, a.storeErr("ledger", err)
	}
	var got *Ledger
	if !ok {
		vd.Ledger = LedgerNone
		vd.Problems = append(vd.Problems, fmt.Sprintf("day %s: no ledger written (the next ledger pass writes it)", day))
	} else {
		vd.LedgerKey = key
		l, problems, err := a.readLedger(ctx, r, key)
		if err != nil {
			return nil, err
		}
		vd.Problems = append(vd.Problems, problems...)
		got = l
		if got == nil {
			vd.Ledger = LedgerUnreadable
		}
	}
	if got != nil {
		vd.LedgerMismatch = compareLedgers(got, want, a.Tenant, day)
		vd.Ledger = LedgerOK
		if len(vd.LedgerMismatch) > 0 {
			vd.Ledger = LedgerDiffers
			note := ""
			if body, err := json.Marshal(want); err == nil {
				sum := sha256.Sum256(body)
				if hex.EncodeToString(sum[:]) != digest {
					note = " (the checkpoint changed since this ledger was written; the next ledger pass writes a new one)"
				}
			}
			for i, m := range vd.LedgerMismatch {
				if i == 0 {
					m += note
				}
				vd.Problems = append(vd.Problems, "ledger "+key+": "+m)
			}
		}
	}
	// The ledger object is what the archive claims; without one, check what
	// the checkpoint says was archived.
	src := got
	if src == nil {
		src = want
	}
	entries := doneEntries(src)
	results, err := a.checkEntries(ctx, r, entries, deep)
	if err != nil {
		return nil, err
	}
	vd.Entries = len(entries)
	for _, res := range results {
		switch res.outcome {
		case outcomeOK:
			vd.OK++
			continue
		case outcomeMissing:
			vd.Missing++
		case outcomeInvalid:
			vd.Invalid++
		case outcomeSize:
			vd.SizeMismatch++
		case outcomeDigest:
			vd.DigestMismatch++
		}
		vd.Problems = append(vd.Problems, res.problem)
	}
	if lc != nil {
		if err := a.checkLocks(ctx, lc, vd, got, entries, results); err != nil {
			return nil, err
		}
	}
	return vd, nil
}

// readLedger reads and decodes a ledger object. A missing, oversized,
// undecodable or damaged object is a problem (nil ledger unless it decoded);
// the error is for a sink failure.
func (a *Archiver) readLedger(ctx context.Context, r sink.Reader, key string) (*Ledger, []string, error) {
	rc, obj, err := r.Open(ctx, key)
	switch {
	case errors.Is(err, sink.ErrNotFound):
		return nil, []string{"ledger " + key + ": object missing"}, nil
	case errors.Is(err, sink.ErrInvalidKey), errors.Is(err, sink.ErrConflict):
		return nil, []string{"ledger " + key + ": " + err.Error()}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("jobs: verify: read ledger: %w", err)
	}
	defer rc.Close()
	if obj.Size > maxLedgerBytes {
		return nil, []string{fmt.Sprintf("ledger %s: %d bytes, more than the %d a ledger may have", key, obj.Size, maxLedgerBytes)}, nil
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(io.LimitReader(rc, maxLedgerBytes+1), h)}
	var l Ledger
	dec := json.NewDecoder(cr) // unknown fields are allowed: newer writers may add some
	decErr := dec.Decode(&l)
	if decErr == nil {
		if err := dec.Decode(&struct{}{}); err != io.EOF {
			decErr = errors.New("data after the ledger")
		}
	}
	_, _ = io.Copy(io.Discard, cr)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if cr.err != nil {
		// The sink failed mid-read: nothing is known about the ledger.
		return nil, nil, fmt.Errorf("jobs: verify: read ledger %s: %w", key, cr.err)
	}
	var problems []string
	sum := hex.EncodeToString(h.Sum(nil))
	if cr.n != obj.Size || (obj.SHA256 != "" && sum != obj.SHA256) {
		problems = append(problems, fmt.Sprintf("ledger %s: read %d bytes sha256 %s, the store recorded %d bytes sha256 %s",
			key, cr.n, sum, obj.Size, verifyOrNone(obj.SHA256)))
	}
	if decErr != nil {
		return nil, append(problems, fmt.Sprintf("ledger %s: not a ledger: %v", key, decErr)), nil
	}
	return &l, problems, nil
}

// doneEntries lists the archived recordings of a ledger: calls' and
// orphans' records in state done.
func doneEntries(l *Ledger) []verifyEntry {
	var out []verifyEntry
	add := func(callID string, r LedgerRecord) {
		if r.State != string(checkpoint.StateDone) {
			return
		}
		out = append(out, verifyEntry{Kind: r.Kind, ID: r.ID, CallID: callID, Key: r.Key, Size: r.Size, SHA256: r.SHA256, Retention: r.Retention})
	}
	for _, c := range l.Calls {
		for _, r := range c.Recordings {
			add(c.CallID, r)
		}
	}
	for _, r := range l.Orphans {
		add(r.CallID, r)
	}
	return out
}

// checkEntries checks entries with a.concurrency() workers; results are in
// entries' order.
func (a *Archiver) checkEntries(ctx context.Context, r sink.Reader, entries []verifyEntry, deep bool) ([]verifyResult, error) {
	results := make([]verifyResult, len(entries))
	err := forEach(ctx, a.concurrency(), len(entries), func(ctx context.Context, i int) error {
		res, err := a.checkEntry(ctx, r, entries[i], deep)
		results[i] = res
		return err
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// checkEntry checks one archived recording. Problems are results; the error
// is for a sink failure that says nothing about the object.
func (a *Archiver) checkEntry(ctx context.Context, r sink.Reader, e verifyEntry, deep bool) (res verifyResult, err error) {
	fail := func(o verifyOutcome, format string, args ...any) (verifyResult, error) {
		return verifyResult{outcome: o, problem: fmt.Sprintf(format, args...)}, nil
	}
	if e.Key == "" {
		return fail(outcomeInvalid, "invalid (%s): archived without a key", e)
	}
	if err := sink.ValidateKey(e.Key); err != nil {
		return fail(outcomeInvalid, "invalid %s (%s): %v", e.Key, e, err)
	}
	if !deep {
		obj, err := a.Sink.Stat(ctx, e.Key)
		if res, done, err := statOutcome(e, err); done {
			return res, err
		}
		defer func() { res.obj = &obj }()
		return compareObject(e, obj.Size, obj.SHA256, "the store recorded")
	}
	rc, obj, err := r.Open(ctx, e.Key)
	if res, done, err := statOutcome(e, err); done {
		return res, err
	}
	defer rc.Close()
	defer func() { res.obj = &obj }()
	h := sha256.New()
	cr := &countingReader{r: rc}
	tee := io.TeeReader(cr, h)
	verr := validateObject(a, e.Kind, tee, obj.Size)
	// Hash what the validator left unread, so the digest covers the whole
	// object whatever the validator consumed.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		if ctx.Err() != nil {
			return verifyResult{}, ctx.Err()
		}
		return verifyResult{}, fmt.Errorf("jobs: verify: read %s: %w", e.Key, err)
	}
	if ctx.Err() != nil {
		return verifyResult{}, ctx.Err()
	}
	if cr.err != nil {
		// The sink failed mid-read (the validator may have seen it first):
		// that says nothing about the object.
		return verifyResult{}, fmt.Errorf("jobs: verify: read %s: %w", e.Key, cr.err)
	}
	if obj.Size != cr.n {
		return fail(outcomeSize, "size %s (%s): read %d bytes, the store reports %d, the ledger %d", e.Key, e, cr.n, obj.Size, e.Size)
	}
	if res, err := compareObject(e, cr.n, hashHex(h), "read"); err != nil || res.outcome != outcomeOK {
		return res, err
	}
	if obj.SHA256 != "" && obj.SHA256 != e.SHA256 {
		return fail(outcomeDigest, "digest %s (%s): the bytes match the ledger but the store recorded sha256 %s", e.Key, e, obj.SHA256)
	}
	if verr != nil {
		return fail(outcomeInvalid, "invalid %s (%s): %v", e.Key, e, verr)
	}
	return verifyResult{outcome: outcomeOK}, nil
}

// statOutcome turns a Stat/Open error into a result (done) or a failure.
func statOutcome(e verifyEntry, err error) (verifyResult, bool, error) {
	switch {
	case err == nil:
		return verifyResult{}, false, nil
	case errors.Is(err, sink.ErrNotFound):
		return verifyResult{outcome: outcomeMissing, problem: fmt.Sprintf("missing %s (%s)", e.Key, e)}, true, nil
	case errors.Is(err, sink.ErrConflict), errors.Is(err, sink.ErrInvalidKey):
		return verifyResult{outcome: outcomeInvalid, problem: fmt.Sprintf("invalid %s (%s): %v", e.Key, e, err)}, true, nil
	default:
		return verifyResult{}, true, fmt.Errorf("jobs: verify: %w", err)
	}
}

// compareObject compares what was found (recorded, or read) with the
// ledger entry.
func compareObject(e verifyEntry, size int64, sum, what string) (verifyResult, error) {
	switch {
	case size != e.Size:
		return verifyResult{outcome: outcomeSize, problem: fmt.Sprintf("size %s (%s): %s %d bytes, the ledger %d", e.Key, e, what, size, e.Size)}, nil
	case sum == "":
		return verifyResult{outcome: outcomeDigest, problem: fmt.Sprintf("digest %s (%s): the store has no sha256 recorded (verify --deep re-hashes)", e.Key, e)}, nil
	case sum != e.SHA256:
		return verifyResult{outcome: outcomeDigest, problem: fmt.Sprintf("digest %s (%s): %s sha256 %s, the ledger %s", e.Key, e, what, sum, verifyOrNone(e.SHA256))}, nil
	}
	return verifyResult{outcome: outcomeOK}, nil
}

// compareLedgers lists how the ledger read back (got) differs from the one
// rebuilt from the checkpoint (want): header, call IDs, and each record's
// kind, id, state, key, size and sha256. Other fields are not compared.
func compareLedgers(got, want *Ledger, tenant, day string) []string {
	out := []string{}
	if got.Tenant != tenant {
		out = append(out, fmt.Sprintf("tenant %q, want %q", got.Tenant, tenant))
	}
	if got.Day != day {
		out = append(out, fmt.Sprintf("day %q, want %q", got.Day, day))
	}
	type recs = map[string]LedgerRecord
	index := func(l *Ledger) (map[string]recs, recs) {
		calls := map[string]recs{}
		for _, c := range l.Calls {
			if calls[c.CallID] == nil {
				calls[c.CallID] = recs{}
			}
			for _, r := range c.Recordings {
				calls[c.CallID][r.Kind+" "+r.ID] = r
			}
		}
		orphans := recs{}
		for _, r := range l.Orphans {
			orphans[r.Kind+" "+r.ID+" (call "+r.CallID+")"] = r
		}
		return calls, orphans
	}
	gc, go_ := index(got)
	wc, wo := index(want)
	compare := func(where string, g, w recs) {
		for _, id := range unionKeys(g, w) {
			gr, inG := g[id]
			wr, inW := w[id]
			switch {
			case !inW:
				out = append(out, fmt.Sprintf("%s%s: in the ledger (%s), not in the checkpoint", where, id, gr.State))
			case !inG:
				out = append(out, fmt.Sprintf("%s%s: in the checkpoint (%s), not in the ledger", where, id, wr.State))
			default:
				if d := recordDiff(gr, wr); d != "" {
					out = append(out, where+id+": "+d)
				}
			}
		}
	}
	for _, id := range unionKeys(gc, wc) {
		g, inG := gc[id]
		w, inW := wc[id]
		switch {
		case !inW:
			out = append(out, fmt.Sprintf("call %s: in the ledger, not in the checkpoint", id))
		case !inG:
			out = append(out, fmt.Sprintf("call %s: in the checkpoint, not in the ledger", id))
		default:
			compare("call "+id+" ", g, w)
		}
	}
	compare("orphan ", go_, wo)
	return out
}

// recordDiff describes the compared fields in which two records differ.
func recordDiff(got, want LedgerRecord) string {
	var d []string
	if got.State != want.State {
		d = append(d, fmt.Sprintf("state %s, checkpoint %s", got.State, want.State))
	}
	if got.Key != want.Key {
		d = append(d, fmt.Sprintf("key %s, checkpoint %s", verifyOrNone(got.Key), verifyOrNone(want.Key)))
	}
	if got.Size != want.Size {
		d = append(d, fmt.Sprintf("size %d, checkpoint %d", got.Size, want.Size))
	}
	if got.SHA256 != want.SHA256 {
		d = append(d, fmt.Sprintf("sha256 %s, checkpoint %s", verifyOrNone(got.SHA256), verifyOrNone(want.SHA256)))
	}
	return strings.Join(d, "; ")
}

func unionKeys[V any](a, b map[string]V) []string {
	ks := make([]string, 0, len(a))
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// strays lists the keys under the tenant's prefix that nothing expects.
// The expected set is built first (archived items' keys, packages' keys),
// then the prefix is listed once.
func (a *Archiver) strays(ctx context.Context, r sink.Reader) ([]string, error) {
	prefix := a.Tenant + "/"
	if a.Prefix != "" {
		prefix = a.Prefix + "/" + prefix
	}
	expected := map[string]struct{}{}
	items, err := a.Store.Items(ctx, checkpoint.StateDone)
	if err != nil {
		return nil, a.storeErr("items", err)
	}
	for _, it := range items {
		if it.Key != "" {
			expected[it.Key] = struct{}{}
		}
	}
	items = nil
	pkgs, err := a.Store.Packages(ctx)
	if err != nil {
		return nil, a.storeErr("packages", err)
	}
	for _, p := range pkgs {
		for _, k := range []string{p.Key, p.RowsKey, p.QuarantineKey} {
			if k != "" {
				expected[k] = struct{}{}
			}
		}
	}
	strays := []string{}
	for obj, err := range r.List(ctx, prefix) {
		if err != nil {
			return strays, fmt.Errorf("jobs: verify: %w", err)
		}
		if _, ok := expected[obj.Key]; ok {
			continue
		}
		if strings.HasPrefix(obj.Key, prefix+"ledger/") || strings.HasPrefix(obj.Key, prefix+"quarantine/") {
			continue
		}
		strays = append(strays, obj.Key)
	}
	return strays, nil
}

// countingReader counts the bytes read and keeps the first read error
// other than io.EOF.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

func hashHex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func verifyOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
