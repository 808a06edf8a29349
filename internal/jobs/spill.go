package jobs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// packageItems is the items of a parsed CDR package, kept in a temporary
// file of the spool directory from the parse until they are committed.
// Held in memory they were most of what a package cost (about 1.3 KB an
// item, the arguments' JSON and the key, and more while the parse ran), so
// memory grew with the calls of a package; in memory now is a record of 32
// bytes an item, and the items of one part at a time (part) while they are
// committed.
//
// Each item is written once, in the order first met, with what the parse
// sets (kind, upstream ID, call, day, key, state, arguments); an item with
// anything else set is refused (add), so that nothing the parse sets is
// dropped on the way. An agent item keyed before its call's earliest row
// was seen is written again once placed (place), with what its key was
// made of (agentPlace), written beside it.
type packageItems struct {
	f    *os.File
	drop func()        // closes f (createSpool)
	w    *bufio.Writer // nil once the parse has ended (done)
	end  int64         // bytes written
	recs []itemRec
	buf  []byte
}

// itemRec is where an item is in the file and what it belongs to.
type itemRec struct {
	off   int64
	begin int64 // the call begin an agent row's key was made with (Unix seconds), if placed
	size  int32
	call  int32 // its call's index: first met while parsing, then in calls' order (order)
	nsec  int32
	// placed: an agent item keyed by its own row's begin, which its call's
	// earliest row may precede (place).
	placed bool
}

// newPackageItems creates the file in dir (createSpool: a process killed
// meanwhile leaves nothing behind).
func newPackageItems(dir string) (*packageItems, error) {
	f, drop, err := createSpool(dir, "cdr-items-*.bin")
	if err != nil {
		return nil, err
	}
	return &packageItems{f: f, drop: drop, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Len is the number of items.
func (p *packageItems) Len() int {
	if p == nil {
		return 0
	}
	return len(p.recs)
}

// remove closes and deletes the file.
func (p *packageItems) remove() {
	if p == nil || p.f == nil {
		return
	}
	p.drop()
	p.f = nil
}

// agentPlace is what an agent item's key was made of (placeAgent): its
// own row's call begin, VDN and agent.
type agentPlace struct {
	begin      time.Time
	vdn, agent string
}

// spilledFields are what the file holds of an item: its fields (the
// arguments last) and, for a placed item, its VDN and agent.
const spilledFields = 9

func appendSpilled(b []byte, it checkpoint.Item, vdn, agent string) []byte {
	for _, s := range [...]string{it.Kind, it.UpstreamID, it.CallID, it.Day, it.Key, string(it.State), vdn, agent} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(it.Args)))
	return append(b, it.Args...)
}

// add writes it, of the call with index call, and returns its index. at,
// when not nil, is what an agent item was keyed by (placed again by place).
func (p *packageItems) add(it checkpoint.Item, call int, at *agentPlace) (int, error) {
	rest := it
	rest.Kind, rest.UpstreamID, rest.CallID, rest.Day, rest.Key, rest.State, rest.Args = "", "", "", "", "", "", nil
	if !reflect.ValueOf(rest).IsZero() {
		return 0, fmt.Errorf("item %s/%s: a field the package's item file does not hold is set: %+v", it.Kind, it.UpstreamID, rest)
	}
	var vdn, agent string
	if at != nil {
		vdn, agent = at.vdn, at.agent
	}
	off, err := p.write(it, vdn, agent)
	if err != nil {
		return 0, err
	}
	r := itemRec{off: off, size: int32(p.end - off), call: int32(call), placed: at != nil}
	if at != nil {
		r.begin, r.nsec = at.begin.Unix(), int32(at.begin.Nanosecond())
	}
	p.recs = append(p.recs, r)
	return len(p.recs) - 1, nil
}

// write appends it to the file and returns its offset.
func (p *packageItems) write(it checkpoint.Item, vdn, agent string) (int64, error) {
	if p.w == nil {
		return 0, errors.New("package items: written after the parse")
	}
	b := appendSpilled(p.buf[:0], it, vdn, agent)
	p.buf = b
	if len(b) > 1<<30 {
		return 0, fmt.Errorf("item %s/%s: %d bytes", it.Kind, it.UpstreamID, len(b))
	}
	off := p.end
	if _, err := p.w.Write(b); err != nil {
		return 0, fmt.Errorf("package items: %w", err)
	}
	p.end += int64(len(b))
	return off, nil
}

// done ends the writing: the items can be read.
func (p *packageItems) done() error {
	if p.w == nil {
		return nil
	}
	err := p.w.Flush()
	p.w = nil
	if err != nil {
		return fmt.Errorf("package items: %w", err)
	}
	return nil
}

// read returns the item of r, and its VDN and agent when it is placed.
func (p *packageItems) read(r itemRec, buf []byte) (_ checkpoint.Item, vdn, agent string, _ []byte, _ error) {
	if cap(buf) < int(r.size) {
		buf = make([]byte, r.size)
	}
	buf = buf[:r.size]
	if _, err := p.f.ReadAt(buf, r.off); err != nil {
		return checkpoint.Item{}, "", "", buf, fmt.Errorf("package items: read %d bytes at %d: %w", r.size, r.off, err)
	}
	// One string holds the fields but the arguments, which are bytes.
	var at [spilledFields][2]int
	i := 0
	for k := range at {
		n, w := binary.Uvarint(buf[i:])
		if w <= 0 || n > uint64(len(buf)-i-w) {
			return checkpoint.Item{}, "", "", buf, fmt.Errorf("package items: record at %d is corrupt", r.off)
		}
		at[k] = [2]int{i + w, i + w + int(n)}
		i += w + int(n)
	}
	if i != len(buf) {
		return checkpoint.Item{}, "", "", buf, fmt.Errorf("package items: record at %d is corrupt", r.off)
	}
	s := string(buf[:at[7][1]])
	f := func(k int) string { return s[at[k][0]:at[k][1]] }
	it := checkpoint.Item{Kind: f(0), UpstreamID: f(1), CallID: f(2), Day: f(3), Key: f(4), State: checkpoint.State(f(5))}
	if a := buf[at[8][0]:at[8][1]]; len(a) > 0 {
		it.Args = slices.Clone(a)
	}
	return it, f(6), f(7), buf, nil
}

// place rewrites each placed agent item whose call began before the begin
// it was keyed with: fn gives it its call's day and key, with at what it
// was keyed by and the call's begin. begins are the calls' begins by index
// (first met).
func (p *packageItems) place(begins []time.Time, fn func(it *checkpoint.Item, at agentPlace) error) error {
	// Each record is read from where the parse wrote it, all of it on disk
	// once flushed here; the records written again go after it.
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("package items: %w", err)
	}
	var buf []byte
	for i := range p.recs {
		r := &p.recs[i]
		if !r.placed {
			continue
		}
		begin := begins[r.call]
		if begin.Unix() == r.begin && int32(begin.Nanosecond()) == r.nsec {
			continue // keyed by this begin already
		}
		it, vdn, agent, b, err := p.read(*r, buf)
		buf = b
		if err != nil {
			return err
		}
		if err := fn(&it, agentPlace{begin: begin, vdn: vdn, agent: agent}); err != nil {
			return err
		}
		off, err := p.write(it, vdn, agent)
		if err != nil {
			return err
		}
		r.off, r.size, r.begin, r.nsec = off, int32(p.end-off), begin.Unix(), int32(begin.Nanosecond())
	}
	return nil
}

// order renumbers the calls of the items: pos[i] is the index, in the
// calls' final order, of the call first met i-th.
func (p *packageItems) order(pos []int) {
	for i := range p.recs {
		p.recs[i].call = int32(pos[p.recs[i].call])
	}
}

// part returns the items of the calls with index lo to hi-1, in the order
// first met.
func (p *packageItems) part(lo, hi int) ([]checkpoint.Item, error) {
	if err := p.done(); err != nil {
		return nil, err
	}
	n := 0
	for _, r := range p.recs {
		if int(r.call) >= lo && int(r.call) < hi {
			n++
		}
	}
	out := make([]checkpoint.Item, 0, n)
	var buf []byte
	for _, r := range p.recs {
		if int(r.call) < lo || int(r.call) >= hi {
			continue
		}
		it, _, _, b, err := p.read(r, buf)
		buf = b
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}
