package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// The ledger chain (docs/ledger-chain.schema.json, docs/operations.md
// "Chain of custody"). Every ledger object a tenant's archiver writes is a
// link of one chain, numbered 1, 2, 3 … in write order:
//
//   - prev is the link written just before (any day), null for link 1: the
//     chain of all ledgers;
//   - supersedes is the same day's previous link (the day's current ledger
//     when this one was written), null for a day's first link;
//   - previous_day is the current link, at write time, of the newest
//     earlier day that has one, null when no earlier day has;
//   - pre_chain names the day's ledger written before the chain existed
//     (the state's record of the day), on a day's first link only.
//
// Each reference carries the SHA-256 of the referenced object's stored
// bytes, exactly as stored. After each link, a head object
// (…/ledger/head/<seq>.json, create-only, one per link) names the link
// and its SHA-256; the head with the highest sequence number is the
// chain's newest. The create-only Put of the head is what serialises
// writers: a writer whose head key already exists lost the race and its
// ledger is off the chain (verify reports it as a fork).

// ChainVersion is the version of the chain format: LedgerChain.Version and
// ChainHead.Version.
const ChainVersion = 1

// ChainHeadSchema names the head object's format (ChainHead.Schema).
const ChainHeadSchema = "cec-archiver/ledger-chain-head"

// leaseLedgerChain serialises the writers of a tenant's chain: a ledger
// pass holds it from the first ledger it writes to the last.
const leaseLedgerChain = "ledger-chain"

// maxHeadBytes bounds a head object read back.
const maxHeadBytes = 64 << 10

// LedgerChain is the chain part of a ledger (Ledger.Chain). Ledgers
// written before the chain have none ("pre-chain").
type LedgerChain struct {
	Version     int       `json:"version"`
	Seq         uint64    `json:"seq"`
	Prev        *ChainRef `json:"prev"`
	Supersedes  *ChainRef `json:"supersedes"`
	PreviousDay *ChainRef `json:"previous_day"`
	PreChain    *ChainRef `json:"pre_chain,omitempty"`
}

// ChainRef names one ledger object and the SHA-256 of its stored bytes.
// Seq is 0 for a pre-chain ledger.
type ChainRef struct {
	Seq    uint64 `json:"seq,omitempty"`
	Day    string `json:"day"`
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
}

func (r *ChainRef) same(o *ChainRef) bool {
	if r == nil || o == nil {
		return r == nil && o == nil
	}
	return *r == *o
}

func (r *ChainRef) String() string {
	if r == nil {
		return "none"
	}
	if r.Seq == 0 {
		return fmt.Sprintf("pre-chain %s (day %s, sha256 %s)", r.Key, r.Day, r.SHA256)
	}
	return fmt.Sprintf("seq %d %s (day %s, sha256 %s)", r.Seq, r.Key, r.Day, r.SHA256)
}

// ChainHead is a head object: it names link Seq of the chain.
type ChainHead struct {
	Schema    string    `json:"schema"`
	Version   int       `json:"version"`
	Tenant    string    `json:"tenant"`
	Seq       uint64    `json:"seq"`
	Link      ChainRef  `json:"link"`
	WrittenAt time.Time `json:"written_at"`
}

// chainKeys lays out the chain's objects of a tenant.
type chainKeys struct {
	prefix string // …/{tenant}/ledger/
}

func (a *Archiver) chainKeys() (chainKeys, error) {
	kb, err := sink.NewKeyBuilder(a.Prefix, "{tenant}/ledger/{record_id}")
	if err != nil {
		return chainKeys{}, err
	}
	k, err := kb.Build(sink.KeyFields{Tenant: a.Tenant, RecordID: "x"})
	if err != nil {
		return chainKeys{}, fmt.Errorf("jobs: ledger chain: %w", err)
	}
	return chainKeys{prefix: strings.TrimSuffix(k, "x")}, nil
}

func (k chainKeys) head(seq uint64) string { return k.prefix + "head/" + sink.ChainHeadName(seq) }

// chainObject is what a key under the ledger prefix is.
type chainObject struct {
	head   bool
	seq    uint64 // 0: a pre-chain ledger
	day    string // ledgers
	ledger bool
}

// parse classifies key; ok is false for a key that is neither a head nor a
// ledger name in a day directory.
func (k chainKeys) parse(key string) (chainObject, bool) {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return chainObject{}, false
	}
	if name, ok := strings.CutPrefix(rest, "head/"); ok {
		seq, ok := sink.ParseChainHeadName(name)
		return chainObject{head: true, seq: seq}, ok
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return chainObject{}, false
	}
	day := parts[0] + "-" + parts[1] + "-" + parts[2]
	if t, err := time.Parse(time.DateOnly, day); err != nil || t.Format(time.DateOnly) != day {
		return chainObject{}, false
	}
	_, seq, ok := sink.ParseLedgerName(parts[3])
	return chainObject{ledger: true, seq: seq, day: day}, ok
}

// chainState is the writer's view of the chain, kept between passes while
// no other writer appends (checked at the start of each pass).
type chainState struct {
	mu  sync.Mutex
	idx *chainIndex
}

// chainIndex is built from one listing of the ledger prefix and kept up to
// date by the appends of this process.
type chainIndex struct {
	keys    chainKeys
	head    *ChainHead           // nil: the chain is empty
	links   map[string][]seqKey  // day → its chained ledgers listed or written, by seq
	current map[string]*ChainRef // day → its current link, once confirmed
	fresh   bool                 // checked against the sink in this pass
	// holds are the legal-hold events of each day's current link, by call
	// (holds.go), once read or written.
	holds map[string]map[string][]LedgerHold
}

type seqKey struct {
	seq uint64
	key string
}

func (x *chainIndex) headSeq() uint64 {
	if x.head == nil {
		return 0
	}
	return x.head.Seq
}

// chainPass runs fn while this replica holds the chain lease, with the
// process's chain state locked; ran is false when another replica holds it.
func (a *Archiver) chainPass(ctx context.Context, fn func(ctx context.Context) error) (ran bool, err error) {
	a.chain.mu.Lock()
	defer a.chain.mu.Unlock()
	if a.chain.idx != nil {
		a.chain.idx.fresh = false
	}
	return a.exclusive(ctx, leaseLedgerChain, fn)
}

// chainIndexFor returns the chain index, built or checked for this pass.
// Called with the chain lease held.
func (a *Archiver) chainIndexFor(ctx context.Context) (*chainIndex, error) {
	r, ok := a.Sink.(sink.Reader)
	if !ok {
		return nil, fmt.Errorf("jobs: ledger chain: the sink (%T) cannot list and read back objects", a.Sink)
	}
	if x := a.chain.idx; x != nil {
		if x.fresh {
			return x, nil
		}
		// Another writer appended since this process last did: start over.
		_, err := a.Sink.Stat(ctx, x.keys.head(x.headSeq()+1))
		switch {
		case errors.Is(err, sink.ErrNotFound):
			x.fresh = true
			return x, nil
		case err != nil:
			return nil, fmt.Errorf("jobs: ledger chain: %w", err)
		}
		a.chain.idx = nil
	}
	keys, err := a.chainKeys()
	if err != nil {
		return nil, err
	}
	x := &chainIndex{keys: keys, links: map[string][]seqKey{}, current: map[string]*ChainRef{}}
	var newest uint64
	for obj, err := range r.List(ctx, keys.prefix) {
		if err != nil {
			return nil, fmt.Errorf("jobs: ledger chain: list %s: %w", keys.prefix, err)
		}
		o, ok := keys.parse(obj.Key)
		switch {
		case !ok:
		case o.head:
			newest = max(newest, o.seq)
		case o.seq > 0:
			x.links[o.day] = append(x.links[o.day], seqKey{o.seq, obj.Key})
		}
	}
	for day := range x.links {
		slices.SortFunc(x.links[day], func(p, q seqKey) int { return compareSeq(p.seq, q.seq) })
	}
	if newest > 0 {
		h, err := a.readHead(ctx, r, keys.head(newest))
		if err != nil {
			return nil, err
		}
		if h.Seq != newest || h.Link.Seq != newest || h.Tenant != a.Tenant {
			return nil, fmt.Errorf("jobs: ledger chain: head %s names seq %d (link seq %d, tenant %q): not the head of this chain; verify --chain",
				keys.head(newest), h.Seq, h.Link.Seq, h.Tenant)
		}
		x.head = h
	}
	if err := a.adoptOrphan(ctx, r, x); err != nil {
		return nil, err
	}
	x.fresh = true
	a.chain.idx = x
	return x, nil
}

func compareSeq(p, q uint64) int {
	switch {
	case p < q:
		return -1
	case p > q:
		return 1
	}
	return 0
}

// adoptOrphan completes an append that stopped between the ledger and its
// head (a crash, a failed head Put): a single ledger with the next sequence
// number whose prev is the newest head's link gets its head now. Anything
// else past the head is left for verify to report.
func (a *Archiver) adoptOrphan(ctx context.Context, r sink.Reader, x *chainIndex) error {
	next := x.headSeq() + 1
	var found []seqKey
	var day string
	for d, ls := range x.links {
		for _, l := range ls {
			if l.seq == next {
				found, day = append(found, l), d
			}
		}
	}
	if len(found) != 1 {
		if len(found) > 1 {
			a.log.Error("ledger chain: several ledgers claim the next sequence number; verify --chain reports the fork",
				zap.Uint64("seq", next), zap.Int("ledgers", len(found)))
		}
		return nil
	}
	body, err := readAllLimit(ctx, r, found[0].key, maxLedgerBytes)
	if err != nil {
		return fmt.Errorf("jobs: ledger chain: read %s: %w", found[0].key, err)
	}
	var l struct {
		Tenant string       `json:"tenant"`
		Day    string       `json:"day"`
		Chain  *LedgerChain `json:"chain"`
	}
	var prev *ChainRef
	if x.head != nil {
		prev = &x.head.Link
	}
	if err := json.Unmarshal(body, &l); err != nil || l.Chain == nil || l.Chain.Seq != next || !l.Chain.Prev.same(prev) ||
		l.Tenant != a.Tenant || l.Day != day {
		a.log.Error("ledger chain: a ledger past the head does not follow it; verify --chain reports it",
			zap.String("key", found[0].key), zap.Uint64("seq", next))
		return nil
	}
	ref := ChainRef{Seq: next, Day: day, Key: found[0].key, SHA256: sha256Hex(body)}
	if err := a.putHead(ctx, x, ref); err != nil {
		return err
	}
	a.log.Warn("ledger chain: a ledger written without its head (an interrupted pass) got its head",
		zap.String("key", ref.Key), zap.Uint64("seq", next))
	return nil
}

// currentLink is day's current link: its chained ledger with the highest
// sequence number that a head names. nil when the day has none.
func (a *Archiver) currentLink(ctx context.Context, r sink.Reader, x *chainIndex, day string) (*ChainRef, error) {
	if c, ok := x.current[day]; ok {
		return c, nil
	}
	ls := x.links[day]
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].seq > x.headSeq() {
			continue
		}
		h, err := a.readHead(ctx, r, x.keys.head(ls[i].seq))
		if errors.Is(err, sink.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if h.Link.Key == ls[i].key && h.Link.Seq == ls[i].seq && h.Link.Day == day {
			ref := h.Link
			x.current[day] = &ref
			return &ref, nil
		}
	}
	x.current[day] = nil
	return nil, nil
}

// previousDayLink is the current link of the newest day before day that
// has one.
func (a *Archiver) previousDayLink(ctx context.Context, r sink.Reader, x *chainIndex, day string) (*ChainRef, error) {
	days := make([]string, 0, len(x.links))
	for d := range x.links {
		if d < day {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	for i := len(days) - 1; i >= 0; i-- {
		c, err := a.currentLink(ctx, r, x, days[i])
		if err != nil || c != nil {
			return c, err
		}
	}
	return nil, nil
}

// nextLink is the chain part of day's next ledger. storeKey is the key of
// the state's ledger record of the day, "" when none: when the day has no
// link yet and that is a pre-chain ledger, it is anchored (pre_chain).
func (a *Archiver) nextLink(ctx context.Context, x *chainIndex, day, storeKey string) (*LedgerChain, error) {
	r := a.Sink.(sink.Reader) // chainIndexFor checked it
	c := &LedgerChain{Version: ChainVersion, Seq: x.headSeq() + 1}
	if x.head != nil {
		prev := x.head.Link
		c.Prev = &prev
	}
	var err error
	if c.Supersedes, err = a.currentLink(ctx, r, x, day); err != nil {
		return nil, err
	}
	if c.PreviousDay, err = a.previousDayLink(ctx, r, x, day); err != nil {
		return nil, err
	}
	if c.Supersedes == nil && storeKey != "" {
		if o, ok := x.keys.parse(storeKey); ok && o.ledger && o.seq == 0 && o.day == day {
			body, err := readAllLimit(ctx, r, storeKey, maxLedgerBytes)
			switch {
			case errors.Is(err, sink.ErrNotFound):
				a.log.Warn("ledger chain: the day's pre-chain ledger is missing; not anchored", zap.String("key", storeKey))
			case err != nil:
				return nil, fmt.Errorf("jobs: ledger chain: read %s: %w", storeKey, err)
			default:
				c.PreChain = &ChainRef{Day: day, Key: storeKey, SHA256: sha256Hex(body)}
			}
		}
	}
	return c, nil
}

// appended records link ref (just written, with its head) in the index.
func (x *chainIndex) appended(h *ChainHead) {
	x.head = h
	ref := h.Link
	x.links[ref.Day] = append(x.links[ref.Day], seqKey{ref.Seq, ref.Key})
	x.current[ref.Day] = &ref
}

// putHead writes the head naming ref (create-only) and records it. A head
// key already taken means another writer appended this sequence number:
// the caller's ledger is off the chain.
func (a *Archiver) putHead(ctx context.Context, x *chainIndex, ref ChainRef) error {
	h := &ChainHead{Schema: ChainHeadSchema, Version: ChainVersion, Tenant: a.Tenant, Seq: ref.Seq, Link: ref,
		WrittenAt: a.now().UTC()}
	body, err := json.MarshalIndent(h, "", " ")
	if err != nil {
		return fmt.Errorf("jobs: ledger chain: head: %w", err)
	}
	key := x.keys.head(ref.Seq)
	_, err = a.Sink.Put(a.transferCtx(ctx), key, bytes.NewReader(body), int64(len(body)), sink.Meta{
		ContentType: "application/json",
		Metadata:    map[string]string{"kind": "ledger-head", "chain-seq": fmt.Sprint(ref.Seq), "day": ref.Day},
	})
	if errors.Is(err, sink.ErrConflict) {
		return fmt.Errorf("jobs: ledger chain: head %s was written by another writer meanwhile: ledger %s is off the chain "+
			"(verify --chain reports the fork): %w", key, ref.Key, err)
	}
	if err != nil {
		return fmt.Errorf("jobs: ledger chain: head %s: %w", key, err)
	}
	x.appended(h)
	return nil
}

// readHead reads and decodes a head object.
func (a *Archiver) readHead(ctx context.Context, r sink.Reader, key string) (*ChainHead, error) {
	body, err := readAllLimit(ctx, r, key, maxHeadBytes)
	if err != nil {
		return nil, fmt.Errorf("jobs: ledger chain: read head %s: %w", key, err)
	}
	h, err := decodeHead(body)
	if err != nil {
		return nil, fmt.Errorf("jobs: ledger chain: head %s: %w", key, err)
	}
	return h, nil
}

func decodeHead(body []byte) (*ChainHead, error) {
	var h ChainHead
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("not a head: %w", err)
	}
	if h.Schema != ChainHeadSchema || h.Version != ChainVersion {
		return nil, fmt.Errorf("not a head of version %d: schema %q version %d", ChainVersion, h.Schema, h.Version)
	}
	return &h, nil
}

// readAllLimit reads the object at key, at most limit bytes (more is an
// error).
func readAllLimit(ctx context.Context, r sink.Reader, key string, limit int64) ([]byte, error) {
	rc, obj, err := r.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if obj.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", key, obj.Size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the %d bytes allowed", key, limit)
	}
	return b, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
