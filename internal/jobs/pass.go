// Package jobs holds the archival jobs: they enumerate a window's calls from
// the CDR packages of CC-FS, fetch every recording of every call (agent,
// transfer and IVR) and store each under a deterministic key with a
// create-only write.
//
// This first version archives one window in one pass without a checkpoint
// store; the checkpointed, scheduled jobs build on it.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Recording kinds, as they appear in object keys and reports.
const (
	KindAgent    = "agent"
	KindTransfer = "transfer"
	KindIVR      = "ivr"
	KindCDR      = "cdr"
)

// Pass archives the calls of time windows. Its fields are set by the caller.
type Pass struct {
	Client       *cecclient.Client
	Sink         sink.Sink
	Keys         *sink.KeyBuilder
	Tenant       string         // tenant label used in object keys
	Location     *time.Location // tenant time zone of CDR dates and bill windows
	CallbackURL  string         // sent with queryBillData; packages are polled for
	SpoolDir     string         // where a CDR package is spooled while it is parsed ("" = os.TempDir)
	MaxPackage   int64          // bytes a CDR package may have
	Poll         time.Duration  // first interval between downloadBillFile polls
	ReadyWait    time.Duration  // how long to wait for a package to become ready
	Concurrency  int            // parallel recording downloads
	ItemAttempts int            // tries of one recording within the pass (default 3)
	Limits       cdr.Limits
	Log          *zap.Logger
	Now          func() time.Time
}

// Item is one archived (or failed) object of a pass.
type Item struct {
	Kind    string // KindAgent | KindTransfer | KindIVR | KindCDR
	ID      string // upstream id: agent file_name, transfer id, IVR logId, billFileName
	CallID  string
	Key     string
	Size    int64
	SHA256  string
	Existed bool   // the sink already held the same bytes
	Err     string // non-empty when the item failed
}

// Absent is a record that has, by rule, no recording to archive.
type Absent struct {
	Kind, ID, CallID, Reason string
}

// Report is the outcome of a pass over one window.
type Report struct {
	BillFileName string
	Calls        []string // CDR call ids of the window, sorted
	Items        []Item
	Absent       []Absent
}

// Failed lists the items that failed.
func (r *Report) Failed() []Item {
	var out []Item
	for _, it := range r.Items {
		if it.Err != "" {
			out = append(out, it)
		}
	}
	return out
}

// Window archives the calls whose start lies in [begin, end).
func (p *Pass) Window(ctx context.Context, begin, end time.Time) (*Report, error) {
	log := p.Log.With(zap.Time("begin", begin), zap.Time("end", end))
	now := p.now()
	responseID, err := p.Client.QueryBillData(ctx, cecclient.BillQuery{
		Begin: begin, End: end, Location: p.Location,
		DataType: cecwire.DataTypeCallRecord, CallBackURL: p.CallbackURL,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: query bill data: %w", err)
	}
	name := cecclient.BillFileName(now.In(p.Location), responseID)
	log.Info("package requested", zap.String("bill_file", name))

	spool, err := p.fetchPackage(ctx, name)
	if err != nil {
		return nil, err
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	rep := &Report{BillFileName: name}
	st, err := spool.Stat()
	if err != nil {
		return nil, err
	}
	pkg, err := cdr.Open(spool, st.Size(), p.Limits)
	if err != nil {
		return nil, fmt.Errorf("jobs: package %s: %w", name, err)
	}

	// The package itself is archived as-is, before anything is derived from it.
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	day := begin.In(p.Location)
	pkgItem, _ := p.put(ctx, KindCDR, name, "", sink.KeyFields{VDN: "all", CallID: "package", Name: name}, day, spool, st.Size())
	rep.Items = append(rep.Items, pkgItem)

	type rec struct {
		row  cdr.Row
		when time.Time
	}
	var agent []rec
	calls := map[string]time.Time{}
	vdns := map[string]string{}
	err = pkg.Walk(cdr.KindRecord, func(r cdr.Row) error {
		callID := r.Get(cdr.KindRecord, "call_id")
		when := p.parseTime(r.Get(cdr.KindRecord, "call_begin"), day)
		agent = append(agent, rec{r, when})
		if _, ok := calls[callID]; !ok {
			calls[callID] = when
		}
		vdns[callID] = r.Get(cdr.KindRecord, "vdn_id")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: package %s: %w", name, err)
	}
	err = pkg.Walk(cdr.KindCall, func(r cdr.Row) error {
		callID := r.Get(cdr.KindCall, "call_id")
		when := p.parseTime(r.Get(cdr.KindCall, "call_begin"), day)
		if t, ok := calls[callID]; !ok || when.Before(t) {
			calls[callID] = when
		}
		if vdns[callID] == "" {
			vdns[callID] = r.Get(cdr.KindCall, "vdn_id")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: package %s: %w", name, err)
	}
	for id := range calls {
		rep.Calls = append(rep.Calls, id)
	}
	sort.Strings(rep.Calls)

	var mu sync.Mutex
	add := func(it Item) {
		mu.Lock()
		rep.Items = append(rep.Items, it)
		mu.Unlock()
	}
	addAbsent := func(a Absent) {
		mu.Lock()
		rep.Absent = append(rep.Absent, a)
		mu.Unlock()
	}

	work := make(chan func(), p.concurrency())
	var wg sync.WaitGroup
	for i := 0; i < p.concurrency(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				f()
			}
		}()
	}
	for _, r := range agent {
		callID := r.row.Get(cdr.KindRecord, "call_id")
		fileName := r.row.Get(cdr.KindRecord, "file_name")
		fields := sink.KeyFields{VDN: r.row.Get(cdr.KindRecord, "vdn_id"), CallID: callID, AgentID: r.row.Get(cdr.KindRecord, "agent_id"), RecordID: fileName, Name: pathBase(fileName)}
		work <- func() {
			add(p.download(ctx, KindAgent, fileName, callID, fields, r.when, func() (*cecclient.Download, error) {
				return p.Client.DownloadRecordFile(ctx, fileName)
			}))
		}
	}
	for _, callID := range rep.Calls {
		when, vdn := calls[callID], vdns[callID]
		work <- func() {
			for it := range p.transfers(ctx, callID, vdn, when, addAbsent) {
				add(it)
			}
			for it := range p.ivr(ctx, callID, vdn, when, addAbsent) {
				add(it)
			}
		}
	}
	close(work)
	wg.Wait()
	sort.Slice(rep.Items, func(i, j int) bool {
		a, b := rep.Items[i], rep.Items[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.ID < b.ID
	})
	return rep, ctx.Err()
}

// transfers archives the recordings of calls transferred to a third party.
func (p *Pass) transfers(ctx context.Context, callID, vdn string, when time.Time, absent func(Absent)) func(func(Item) bool) {
	return func(yield func(Item) bool) {
		q := cecclient.OIFDEQuery{CtiCallID: callID}
		for tr, err := range p.Client.QueryTransferRecords(ctx, q) {
			if err != nil {
				yield(Item{Kind: KindTransfer, ID: "query:" + callID, CallID: callID, Err: err.Error()})
				return
			}
			id := tr.ID.String()
			switch {
			case tr.OpResult != cecwire.OpResultSuccess:
				absent(Absent{KindTransfer, id, callID, "opResult " + tr.OpResult})
				continue
			case tr.RecordFilePath == "":
				absent(Absent{KindTransfer, id, callID, "no recordFilePath (recordResult " + tr.RecordResult + ")"})
				continue
			case tr.RecordResult != "" && tr.RecordResult != cecwire.RecordResultOK:
				absent(Absent{KindTransfer, id, callID, "recordResult " + tr.RecordResult})
				continue
			}
			fileName, loc := tr.RecordFilePath, tr.LocationID.String()
			fields := sink.KeyFields{VDN: vdn, CallID: callID, RecordID: id, Name: id + "-" + pathBase(fileName)}
			it := p.download(ctx, KindTransfer, id, callID, fields, when, func() (*cecclient.Download, error) {
				return p.Client.DownloadOiapRecord(ctx, fileName, loc)
			})
			if !yield(it) {
				return
			}
		}
	}
}

// ivr archives the intelligent-IVR session recordings of a call.
func (p *Pass) ivr(ctx context.Context, callID, vdn string, when time.Time, absent func(Absent)) func(func(Item) bool) {
	return func(yield func(Item) bool) {
		q := cecclient.OIFDEQuery{CtiCallID: callID}
		for sr, err := range p.Client.QueryRecordHistory(ctx, q) {
			if err != nil {
				yield(Item{Kind: KindIVR, ID: "query:" + callID, CallID: callID, Err: err.Error()})
				return
			}
			id := sr.LogID.String()
			if sr.RecordFilePath == "" {
				absent(Absent{KindIVR, id, callID, "no recordFilePath"})
				continue
			}
			fileName, loc := sr.RecordFilePath, sr.LocationID.String()
			fields := sink.KeyFields{VDN: vdn, CallID: callID, RecordID: id, Name: id + "-" + pathBase(fileName)}
			it := p.download(ctx, KindIVR, id, callID, fields, when, func() (*cecclient.Download, error) {
				return p.Client.DownloadOiapRecord(ctx, fileName, loc)
			})
			if !yield(it) {
				return
			}
		}
	}
}

// pathBase is the last element of an upstream path that may use either slash.
func pathBase(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// download fetches one recording and stores it. A transient failure (the
// stream broke, stalled or was cut short: the sink kept nothing) is tried again
// a few times within the pass; what still fails is reported, never dropped.
func (p *Pass) download(ctx context.Context, kind, id, callID string, fields sink.KeyFields, when time.Time, get func() (*cecclient.Download, error)) Item {
	wait := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		it, err := p.downloadOnce(ctx, kind, id, callID, fields, when, get)
		if err == nil || attempt >= p.itemAttempts() || !cecclient.IsTransient(err) || ctx.Err() != nil {
			return it
		}
		p.Log.Info("retrying item", zap.String("kind", kind), zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return it
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (p *Pass) downloadOnce(ctx context.Context, kind, id, callID string, fields sink.KeyFields, when time.Time, get func() (*cecclient.Download, error)) (Item, error) {
	d, err := get()
	if err != nil {
		return Item{Kind: kind, ID: id, CallID: callID, Err: err.Error()}, err
	}
	defer d.Body.Close()
	return p.put(ctx, kind, id, callID, fields, when, d.Body, d.Length)
}

func (p *Pass) itemAttempts() int {
	if p.ItemAttempts < 1 {
		return 3
	}
	return p.ItemAttempts
}

func (p *Pass) put(ctx context.Context, kind, id, callID string, fields sink.KeyFields, when time.Time, body io.Reader, size int64) (Item, error) {
	it := Item{Kind: kind, ID: id, CallID: callID}
	f := fields
	f.Tenant, f.Kind = p.Tenant, kind
	// Keys carry the tenant's calendar day: the key builder formats dates in
	// UTC, so hand it the tenant-local wall clock.
	t := when.In(p.Location)
	f.Time = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	key, err := p.Keys.Build(f)
	if err != nil {
		it.Err = err.Error()
		return it, err
	}
	it.Key = key
	meta := sink.Meta{Metadata: map[string]string{"kind": kind, "call-id": callID}}
	obj, err := p.Sink.Put(ctx, key, body, size, meta)
	if err != nil {
		it.Err = err.Error()
		p.Log.Warn("store failed", zap.String("kind", kind), zap.String("key", key), zap.Error(err))
		return it, err
	}
	it.Size, it.SHA256, it.Existed = obj.Size, obj.SHA256, obj.Existed
	return it, nil
}

// fetchPackage polls downloadBillFile until the package is ready and spools
// it to a temp file, bounded by MaxPackage.
func (p *Pass) fetchPackage(ctx context.Context, name string) (*os.File, error) {
	deadline := p.now().Add(p.ReadyWait)
	wait := p.Poll
	broken := 0 // downloads that failed mid-stream
	for {
		d, err := p.Client.DownloadBillFile(ctx, name)
		if err == nil {
			f, serr := p.spool(d, name)
			if serr == nil {
				return f, nil
			}
			err = serr
		}
		switch {
		case cecclient.IsNotFound(err) && !p.now().After(deadline):
			// not ready yet: poll again
		case cecclient.IsTransient(err) && broken+1 < p.itemAttempts() && ctx.Err() == nil:
			broken++
			p.Log.Info("retrying package download", zap.String("bill_file", name), zap.Int("attempt", broken), zap.Error(err))
		default:
			return nil, fmt.Errorf("jobs: download package %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (p *Pass) spool(d *cecclient.Download, name string) (*os.File, error) {
	defer d.Body.Close()
	f, err := os.CreateTemp(p.SpoolDir, "cdr-*.zip")
	if err != nil {
		return nil, fmt.Errorf("jobs: spool %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(d.Body, p.MaxPackage+1))
	if err == nil && n > p.MaxPackage {
		err = fmt.Errorf("package larger than %d bytes", p.MaxPackage)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("jobs: spool %s: %w", name, err)
	}
	p.Log.Info("package downloaded", zap.String("bill_file", name), zap.Int64("bytes", n), zap.String("sha256", hex.EncodeToString(h.Sum(nil))))
	return f, nil
}

func (p *Pass) parseTime(s string, fallback time.Time) time.Time {
	t, err := time.ParseInLocation(cecwire.TimeLayout, strings.TrimSpace(s), p.Location)
	if err != nil {
		return fallback
	}
	return t
}

func (p *Pass) concurrency() int {
	if p.Concurrency < 1 {
		return 1
	}
	return p.Concurrency
}

func (p *Pass) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Err joins the errors of the failed items, or is nil.
func (r *Report) Err() error {
	var errs []error
	for _, it := range r.Failed() {
		errs = append(errs, fmt.Errorf("%s %s: %s", it.Kind, it.ID, it.Err))
	}
	return errors.Join(errs...)
}
