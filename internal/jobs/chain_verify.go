package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Kinds of ChainProblem.
const (
	// ChainMissing: an object the chain names (a link, an anchored
	// pre-chain ledger) is not in the sink.
	ChainMissing = "missing"
	// ChainAltered: an object's stored bytes do not hash as the chain
	// records (a new version of the key, other bytes, a replaced object).
	ChainAltered = "altered"
	// ChainForked: a ledger that follows a link of the chain but is not on
	// it (two ledgers claim one sequence number), or a link whose prev is
	// not the link before it.
	ChainForked = "forked"
	// ChainOrphaned: an object under the ledger prefix the chain does not
	// reach and that follows none of its links (or is no ledger or head).
	ChainOrphaned = "orphaned"
	// ChainHeadProblem: a head object missing (the sequence has a gap),
	// unreadable, or naming another link than the chain has at its
	// sequence number (a forged head).
	ChainHeadProblem = "head"
	// ChainInconsistent: a link whose own fields disagree with the chain:
	// seq, day, tenant, version, supersedes, previous_day, pre_chain.
	ChainInconsistent = "inconsistent"
	// ChainState: the checkpoint's ledger record of a day is not the
	// chain's current link of the day.
	ChainState = "state"
)

// ChainProblem is one problem of the chain, naming the object.
type ChainProblem struct {
	Kind   string `json:"kind"`
	Seq    uint64 `json:"seq,omitempty"` // the link's sequence number, when known
	Day    string `json:"day,omitempty"`
	Key    string `json:"key"`
	Detail string `json:"detail"`
}

func (p ChainProblem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	if p.Seq > 0 {
		fmt.Fprintf(&b, " seq %d", p.Seq)
	}
	if p.Day != "" {
		b.WriteString(" day " + p.Day)
	}
	if p.Key != "" {
		b.WriteString(" " + p.Key)
	}
	return b.String() + ": " + p.Detail
}

// ChainDay is a day's part of the chain.
type ChainDay struct {
	Day     string   `json:"day"`
	Links   int      `json:"links"`   // links of the day on the chain
	Current ChainRef `json:"current"` // its newest
}

// ChainReport is the outcome of VerifyChain. The chain verifies exactly
// when Problems is empty.
type ChainReport struct {
	// Head is the link the newest head names; nil when there is no head.
	Head  *ChainRef `json:"head"`
	Heads int       `json:"heads"` // head objects listed
	// Links is the length of the chain (the newest head's sequence
	// number); Verified counts the links read back whose bytes hash as the
	// chain records.
	Links    int        `json:"links"`
	Verified int        `json:"verified"`
	Days     []ChainDay `json:"days"`
	// PreChain lists the ledgers written before the chain that no link
	// anchors: not covered by the chain, and not a problem.
	PreChain []string `json:"pre_chain"`
	// Anchored counts the pre-chain ledgers a link anchors (pre_chain),
	// each read back and checked.
	Anchored int            `json:"anchored"`
	Problems []ChainProblem `json:"problems"`
}

// chainRead is what reading one ledger object found.
type chainRead struct {
	missing   bool
	bad       string // unusable: too large, invalid key
	sha       string
	decodeErr error
	tenant    string
	day       string
	chain     *LedgerChain
}

// walked is the chain's link at one sequence number.
type walked struct {
	ref   ChainRef
	chain *LedgerChain // nil when the link could not be read or trusted
}

type chainVerifier struct {
	r      sink.Reader
	keys   chainKeys
	tenant string
	rep    *ChainReport
	reads  map[string]*chainRead
}

func (v *chainVerifier) problem(kind string, seq uint64, day, key, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, ChainProblem{Kind: kind, Seq: seq, Day: day, Key: key, Detail: fmt.Sprintf(format, args...)})
}

// VerifyChain checks the ledger chain under ledgerPrefix (the keys'
// "{prefix}/{tenant}/ledger/", escaped as keys are) against the sink
// alone: it lists the prefix once, reads every head, walks from the newest
// head back to link 1 by each link's prev, hashing every link's stored
// bytes, then checks each link's supersedes and previous_day in write
// order, the anchored pre-chain ledgers, and what the walk did not reach.
// Problems are in the report; the error is for what stops the check (the
// sink failing, ctx ending).
func VerifyChain(ctx context.Context, r sink.Reader, ledgerPrefix, tenant string) (*ChainReport, error) {
	v := &chainVerifier{r: r, keys: chainKeys{prefix: ledgerPrefix}, tenant: tenant, reads: map[string]*chainRead{},
		rep: &ChainReport{Days: []ChainDay{}, PreChain: []string{}, Problems: []ChainProblem{}}}
	heads := map[uint64]string{}
	chained := map[string]chainObject{}
	var pre []string
	for obj, err := range r.List(ctx, ledgerPrefix) {
		if err != nil {
			return v.rep, fmt.Errorf("jobs: verify chain: list %s: %w", ledgerPrefix, err)
		}
		o, ok := v.keys.parse(obj.Key)
		switch {
		case !ok:
			v.problem(ChainOrphaned, 0, "", obj.Key, "not a ledger or head object of the chain")
		case o.head:
			heads[o.seq] = obj.Key
		case o.seq > 0:
			chained[obj.Key] = o
		default:
			pre = append(pre, obj.Key)
		}
	}
	v.rep.Heads = len(heads)
	var newest uint64
	for s := range heads {
		newest = max(newest, s)
	}
	hs, err := v.readHeads(ctx, heads)
	if err != nil {
		return v.rep, err
	}
	for s := uint64(1); s <= newest; s++ {
		if heads[s] == "" {
			v.problem(ChainHeadProblem, s, "", v.keys.head(s), "head missing: the heads run 1 to %d without it", newest)
		}
	}
	if newest == 0 && len(chained) > 0 {
		v.problem(ChainHeadProblem, 0, "", v.keys.head(1), "no head object, but %d chained ledgers", len(chained))
	}
	if h := hs[newest]; h != nil {
		ref := h.Link
		v.rep.Head = &ref
	}
	links, err := v.walk(ctx, newest, hs)
	if err != nil {
		return v.rep, err
	}
	v.rep.Links = int(newest)
	onChain := map[string]bool{}
	for _, w := range links {
		onChain[w.ref.Key] = true
	}
	if err := v.offChain(ctx, chained, onChain, links, newest); err != nil {
		return v.rep, err
	}
	anchored := v.forward(links, newest)
	for _, k := range slices.Sorted(maps.Keys(anchored)) {
		if err := v.checkAnchor(ctx, anchored[k]); err != nil {
			return v.rep, err
		}
	}
	for _, k := range pre {
		if anchored[k] == nil {
			v.rep.PreChain = append(v.rep.PreChain, k)
		}
	}
	return v.rep, nil
}

// readHeads reads every listed head, a few at a time; the unreadable ones
// are problems and absent from the result.
func (v *chainVerifier) readHeads(ctx context.Context, heads map[uint64]string) (map[uint64]*ChainHead, error) {
	seqs := slices.Sorted(maps.Keys(heads))
	out := make([]*ChainHead, len(seqs))
	bad := make([]string, len(seqs))
	err := forEach(ctx, 8, len(seqs), func(ctx context.Context, i int) error {
		body, err := readAllLimit(ctx, v.r, heads[seqs[i]], maxHeadBytes)
		switch {
		case errors.Is(err, sink.ErrNotFound):
			bad[i] = "head listed, then missing"
			return nil
		case errors.Is(err, sink.ErrInvalidKey), errors.Is(err, sink.ErrConflict):
			bad[i] = err.Error()
			return nil
		case err != nil:
			return fmt.Errorf("jobs: verify chain: read %s: %w", heads[seqs[i]], err)
		}
		h, err := decodeHead(body)
		switch {
		case err != nil:
			bad[i] = err.Error()
		case h.Seq != seqs[i] || h.Link.Seq != seqs[i]:
			bad[i] = fmt.Sprintf("the head of seq %d says seq %d, link seq %d", seqs[i], h.Seq, h.Link.Seq)
		case h.Tenant != v.tenant:
			bad[i] = fmt.Sprintf("tenant %q, want %q", h.Tenant, v.tenant)
		default:
			out[i] = h
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	hs := map[uint64]*ChainHead{}
	for i, s := range seqs {
		if bad[i] != "" {
			v.problem(ChainHeadProblem, s, "", heads[s], "%s", bad[i])
			continue
		}
		hs[s] = out[i]
	}
	return hs, nil
}

// walk goes from the newest head back to link 1. At each sequence number
// the link is the one the next link's prev names (the chain), else the one
// its head names; both are compared.
func (v *chainVerifier) walk(ctx context.Context, newest uint64, hs map[uint64]*ChainHead) (map[uint64]*walked, error) {
	links := map[uint64]*walked{}
	var next *ChainRef // the prev of the link after s
	var later *walked  // the link after s
	for s := newest; s >= 1; s-- {
		var fromPrev, fromHead *ChainRef
		if next != nil && next.Seq == s {
			fromPrev = next
		}
		if h := hs[s]; h != nil {
			l := h.Link
			fromHead = &l
		}
		next = nil
		w, err := v.link(ctx, s, fromPrev, later, fromHead)
		if err != nil {
			return nil, err
		}
		if w == nil {
			continue
		}
		links[s] = w
		if w.chain == nil {
			continue
		}
		switch p := w.chain.Prev; {
		case s == 1 && p != nil:
			v.problem(ChainInconsistent, s, w.ref.Day, w.ref.Key, "link 1 has a prev (%s)", p)
		case s > 1 && p == nil:
			v.problem(ChainInconsistent, s, w.ref.Day, w.ref.Key, "no prev: the chain has %d links before it", s-1)
		case s > 1 && p.Seq != s-1:
			v.problem(ChainForked, s, w.ref.Day, w.ref.Key, "follows seq %d, not seq %d: the links between are off its chain", p.Seq, s-1)
		case s > 1:
			next, later = p, w
		}
	}
	return links, nil
}

// link checks the link at seq s: fromPrev is what the prev of the next
// link (later) names (nil for the newest, or when the next link could not
// be read), fromHead what head s names.
func (v *chainVerifier) link(ctx context.Context, s uint64, fromPrev *ChainRef, later *walked, fromHead *ChainRef) (*walked, error) {
	if fromPrev == nil && fromHead == nil {
		v.problem(ChainMissing, s, "", "", "no link: its head is missing or unreadable and the next link does not lead to it")
		return nil, nil
	}
	ref, named := fromPrev, ""
	if ref != nil {
		named = fmt.Sprintf("link %d (%s)", later.ref.Seq, later.ref.Key)
	} else {
		ref, named = fromHead, "head "+v.keys.head(s)
	}
	rd, err := v.read(ctx, ref.Key)
	if err != nil {
		return nil, err
	}
	w := &walked{ref: *ref}
	if fromPrev != nil && fromHead != nil && fromHead.Key != fromPrev.Key {
		v.problem(ChainHeadProblem, s, fromHead.Day, v.keys.head(s), "names %s, but the chain's link %d is %s (named by %s): a forged head or a fork",
			fromHead.Key, s, ref.Key, named)
	}
	switch {
	case rd.missing:
		v.problem(ChainMissing, s, ref.Day, ref.Key, "deleted: the link named by %s is not in the sink", named)
		return w, nil
	case rd.bad != "":
		v.problem(ChainAltered, s, ref.Day, ref.Key, "%s", rd.bad)
		return w, nil
	case rd.sha == ref.SHA256:
		if fromHead != nil && !fromHead.same(ref) {
			if fromHead.Key == ref.Key {
				v.problem(ChainHeadProblem, s, ref.Day, v.keys.head(s), "names %s; the chain has %s: a forged head", fromHead, ref)
			} // another key: reported above
		}
	case fromPrev != nil && fromHead != nil && fromHead.Key == ref.Key && rd.sha == fromHead.SHA256:
		// The bytes are those head s records: link s+1 is the one that
		// disagrees.
		v.problem(ChainForked, later.ref.Seq, later.ref.Day, later.ref.Key,
			"records sha256 %s for link %d %s, which hashes to %s as its head records: it does not follow the chain", ref.SHA256, s, ref.Key, rd.sha)
		w.ref.SHA256 = rd.sha
	default:
		why := "a new version, other bytes, or a replaced object"
		if fromPrev == nil {
			why += "; or the head is forged"
		}
		v.problem(ChainAltered, s, ref.Day, ref.Key, "stored bytes hash to sha256 %s, %s records %s (%s)", rd.sha, named, ref.SHA256, why)
		return w, nil
	}
	v.rep.Verified++
	bad := func(format string, args ...any) (*walked, error) {
		v.problem(ChainInconsistent, s, ref.Day, ref.Key, format, args...)
		return w, nil
	}
	o, _ := v.keys.parse(ref.Key)
	switch {
	case rd.decodeErr != nil:
		return bad("not a ledger: %v", rd.decodeErr)
	case rd.chain == nil:
		return bad("a ledger without the chain (pre-chain) where the chain has link %d", s)
	case rd.chain.Version != ChainVersion:
		return bad("chain version %d, want %d", rd.chain.Version, ChainVersion)
	case rd.chain.Seq != s || o.seq != s:
		return bad("claims seq %d (its name %d) at seq %d of the chain", rd.chain.Seq, o.seq, s)
	case rd.day != ref.Day || o.day != ref.Day:
		return bad("day %q (its key's %q), the chain records %q", rd.day, o.day, ref.Day)
	case rd.tenant != v.tenant:
		return bad("tenant %q, want %q", rd.tenant, v.tenant)
	}
	w.chain = rd.chain
	return w, nil
}

// offChain reports the chained ledgers the walk did not reach.
func (v *chainVerifier) offChain(ctx context.Context, chained map[string]chainObject, onChain map[string]bool,
	links map[uint64]*walked, newest uint64) error {
	for _, k := range slices.Sorted(maps.Keys(chained)) {
		if onChain[k] {
			continue
		}
		o := chained[k]
		rd, err := v.read(ctx, k)
		if err != nil {
			return err
		}
		if rd.missing {
			continue // listed, then removed: nothing names it
		}
		if rd.chain == nil || rd.decodeErr != nil {
			v.problem(ChainOrphaned, o.seq, o.day, k, "named as link %d, but not a chained ledger; the chain does not reach it", o.seq)
			continue
		}
		s, p := rd.chain.Seq, rd.chain.Prev
		follows := s >= 1 && s <= newest+1 &&
			((s == 1 && p == nil) || (p != nil && links[s-1] != nil && p.same(&links[s-1].ref)))
		switch {
		case follows && s <= newest:
			other := "(unknown)"
			if w := links[s]; w != nil {
				other = w.ref.Key
			}
			v.problem(ChainForked, s, o.day, k, "follows link %d like the chain's link %d %s: two ledgers claim seq %d", s-1, s, other, s)
		case follows:
			v.problem(ChainOrphaned, s, o.day, k, "follows the newest link %d but has no head: an append interrupted before its head "+
				"(the next ledger pass completes it)", newest)
		default:
			v.problem(ChainOrphaned, s, o.day, k, "claims seq %d after %s; the chain does not reach it", s, p)
		}
	}
	return nil
}

// forward checks supersedes, previous_day and pre_chain of every link in
// write order, and returns the pre-chain ledgers anchored, by key.
func (v *chainVerifier) forward(links map[uint64]*walked, newest uint64) map[string]*ChainRef {
	cur := map[string]*ChainRef{}
	count := map[string]int{}
	var days []string // sorted
	anchored := map[string]*ChainRef{}
	for s := uint64(1); s <= newest; s++ {
		w := links[s]
		if w == nil {
			continue
		}
		day := w.ref.Day
		if c := w.chain; c != nil {
			if !c.Supersedes.same(cur[day]) {
				v.problem(ChainInconsistent, s, day, w.ref.Key, "supersedes %s; the day's current link was %s", c.Supersedes, cur[day])
			}
			i := sort.SearchStrings(days, day)
			var pd *ChainRef
			if i > 0 {
				pd = cur[days[i-1]]
			}
			if !c.PreviousDay.same(pd) {
				v.problem(ChainInconsistent, s, day, w.ref.Key, "previous_day %s; the newest earlier day's current link was %s", c.PreviousDay, pd)
			}
			if p := c.PreChain; p != nil {
				o, ok := v.keys.parse(p.Key)
				switch {
				case cur[day] != nil:
					v.problem(ChainInconsistent, s, day, w.ref.Key, "pre_chain %s on a day that already has a link", p)
				case !ok || !o.ledger || o.seq != 0 || o.day != day || p.Day != day || p.Seq != 0:
					v.problem(ChainInconsistent, s, day, w.ref.Key, "pre_chain %s is not a pre-chain ledger of the day", p)
				default:
					anchored[p.Key] = p
				}
			}
		}
		if cur[day] == nil {
			days = slices.Insert(days, sort.SearchStrings(days, day), day)
		}
		ref := w.ref
		cur[day] = &ref
		count[day]++
	}
	for _, d := range days {
		v.rep.Days = append(v.rep.Days, ChainDay{Day: d, Links: count[d], Current: *cur[d]})
	}
	return anchored
}

// checkAnchor reads an anchored pre-chain ledger back.
func (v *chainVerifier) checkAnchor(ctx context.Context, ref *ChainRef) error {
	rd, err := v.read(ctx, ref.Key)
	if err != nil {
		return err
	}
	switch {
	case rd.missing:
		v.problem(ChainMissing, 0, ref.Day, ref.Key, "deleted: the pre-chain ledger a link anchors is not in the sink")
	case rd.bad != "":
		v.problem(ChainAltered, 0, ref.Day, ref.Key, "%s", rd.bad)
	case rd.sha != ref.SHA256:
		v.problem(ChainAltered, 0, ref.Day, ref.Key, "stored bytes hash to sha256 %s, the anchoring link records %s", rd.sha, ref.SHA256)
	default:
		v.rep.Anchored++
	}
	return nil
}

// read reads a ledger object once, hashing its stored bytes while it
// decodes the fields the chain needs.
func (v *chainVerifier) read(ctx context.Context, key string) (*chainRead, error) {
	if rd, ok := v.reads[key]; ok {
		return rd, nil
	}
	rd := &chainRead{}
	v.reads[key] = rd
	rc, obj, err := v.r.Open(ctx, key)
	switch {
	case errors.Is(err, sink.ErrNotFound):
		rd.missing = true
		return rd, nil
	case errors.Is(err, sink.ErrInvalidKey), errors.Is(err, sink.ErrConflict):
		rd.bad = err.Error()
		return rd, nil
	case err != nil:
		return nil, fmt.Errorf("jobs: verify chain: read %s: %w", key, err)
	}
	defer rc.Close()
	if obj.Size > maxLedgerBytes {
		rd.bad = fmt.Sprintf("%d bytes, more than the %d a ledger may have", obj.Size, maxLedgerBytes)
		return rd, nil
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(io.LimitReader(rc, maxLedgerBytes+1), h)}
	var l struct {
		Tenant string       `json:"tenant"`
		Day    string       `json:"day"`
		Chain  *LedgerChain `json:"chain"`
	}
	rd.decodeErr = json.NewDecoder(cr).Decode(&l)
	_, _ = io.Copy(io.Discard, cr)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cr.err != nil {
		return nil, fmt.Errorf("jobs: verify chain: read %s: %w", key, cr.err)
	}
	rd.sha, rd.tenant, rd.day, rd.chain = hashHex(h), l.Tenant, l.Day, l.Chain
	return rd, nil
}

// forEach runs fn(0..n-1) on up to workers goroutines; the first error
// stops the rest and is returned.
func forEach(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(workers, max(n, 1)) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// verifyChain is VerifyChain for the archiver's tenant, followed by the
// check of the checkpoint's ledger records of the days from..to against
// the chain's current links.
func (a *Archiver) verifyChain(ctx context.Context, r sink.Reader, from, to string) (*ChainReport, error) {
	keys, err := a.chainKeys()
	if err != nil {
		return nil, err
	}
	rep, err := VerifyChain(ctx, r, keys.prefix, a.Tenant)
	if err != nil {
		return rep, err
	}
	cur := map[string]ChainRef{}
	for _, d := range rep.Days {
		cur[d.Day] = d.Current
	}
	days, err := a.Store.Days(ctx)
	if err != nil {
		return rep, a.storeErr("days", err)
	}
	for _, d := range days {
		if (from != "" && d.Day < from) || (to != "" && d.Day > to) {
			continue
		}
		digest, key, ok, err := a.Store.Ledger(ctx, d.Day)
		if err != nil {
			return rep, a.storeErr("ledger", err)
		}
		c, chained := cur[d.Day]
		o, _ := keys.parse(key)
		switch {
		case ok && chained && key == c.Key:
			if err := a.checkContentDigest(ctx, r, rep, c, digest); err != nil {
				return rep, err
			}
		case !ok && chained:
			rep.Problems = append(rep.Problems, ChainProblem{Kind: ChainState, Seq: c.Seq, Day: d.Day, Key: c.Key,
				Detail: "the chain's current link of the day; the state records no ledger"})
		case ok && chained && key != c.Key:
			rep.Problems = append(rep.Problems, ChainProblem{Kind: ChainState, Seq: o.seq, Day: d.Day, Key: key,
				Detail: fmt.Sprintf("the state's ledger of the day, but the chain's current link is seq %d %s", c.Seq, c.Key)})
		case ok && !chained && o.seq > 0:
			rep.Problems = append(rep.Problems, ChainProblem{Kind: ChainState, Seq: o.seq, Day: d.Day, Key: key,
				Detail: "the state's ledger of the day, but the chain has no link of the day"})
		}
	}
	return rep, nil
}

// checkContentDigest compares the content of a day's current link (the
// ledger without generated_at and chain, serialised compactly, as the
// writer digests it) with the digest the state recorded when it was
// written: a link rewritten together with its head, consistent hashes and
// all, still differs from the state.
func (a *Archiver) checkContentDigest(ctx context.Context, r sink.Reader, rep *ChainReport, c ChainRef, digest string) error {
	body, err := readAllLimit(ctx, r, c.Key, maxLedgerBytes)
	if errors.Is(err, sink.ErrNotFound) {
		return nil // reported by the walk
	}
	if err != nil {
		return fmt.Errorf("jobs: verify chain: read %s: %w", c.Key, err)
	}
	var l Ledger
	if err := json.Unmarshal(body, &l); err != nil {
		return nil // reported by the walk
	}
	l.GeneratedAt, l.Chain = nil, nil
	canon, err := json.Marshal(&l)
	if err != nil {
		return fmt.Errorf("jobs: verify chain: %s: %w", c.Key, err)
	}
	if got := sha256Hex(canon); got != digest {
		rep.Problems = append(rep.Problems, ChainProblem{Kind: ChainState, Seq: c.Seq, Day: c.Day, Key: c.Key,
			Detail: fmt.Sprintf("content digest %s, the state recorded %s when the archiver wrote it: the ledger was rewritten", got, digest)})
	}
	return nil
}
