package cecsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// FaultKind names a fault the simulator can inject.
type FaultKind string

// Fault kinds. Each applies only where it makes sense: flow_control on CC-FS,
// token_expiry and duplicate_rows on the OIFDE queries, the others on every
// interface (reset, truncate and slow on binary downloads and JSON answers alike).
//
// The upstream misbehaviours below imitate an upstream that answers HTTP 200
// with something that is not what it claims to be; an archiver must neither
// store it nor take it for a proof that the file does not exist. The
// recording-download ones (text_body … trickle) apply to CC-FS
// downloadRecordFile, downloadRecord, downloadOiapRecord and CC-CMS
// downloadRecordFile; text_body and json_no_code fire on an answer that would
// have been a file (one WAV or a ZIP), the others on an answer that would have
// been one WAV of the dataset (never on a ZIP of several recordings, an upload
// or an error answer).
const (
	FaultHTTP500       FaultKind = "http500"
	FaultHTTP503       FaultKind = "http503"
	FaultTooMany       FaultKind = "429"            // 429 + Retry-After (RetryAfter field: "2" delta-seconds, or an HTTP-date; default "1")
	FaultFlowControl   FaultKind = "flow_control"   // CC-FS HTTP 200 + resultCode 0300008 on downloads, 0300009 on queries
	FaultReset         FaultKind = "reset"          // send headers (with Content-Length) and part of the body, then hijack and close the TCP connection abruptly (SetLinger(0))
	FaultTruncate      FaultKind = "truncate"       // Content-Length says N, send fewer bytes, close cleanly
	FaultSlow          FaultKind = "slow"           // body trickles: send a chunk, then stall DelayMS between chunks (a long stall tests the client's watchdog)
	FaultTokenExpiry   FaultKind = "token_expiry"   // tokens become invalid after AfterUses uses (OIFDE answers 900001)
	FaultDuplicateRows FaultKind = "duplicate_rows" // OIFDE pages repeat rows of the previous page (pagination drift), total unchanged

	FaultTextBody   FaultKind = "text_body"    // HTTP 200, octet-stream, body textBodyError (plain text)
	FaultJSONNoCode FaultKind = "json_no_code" // HTTP 200, octet-stream, body jsonNoCodeBody (JSON without any result code)
	FaultRIFFShort  FaultKind = "riff_short"   // the WAV cut to half its length, Content-Length the cut length (the RIFF and data sizes claim more)
	FaultRIFFLong   FaultKind = "riff_long"    // the WAV followed by riffLongJunk junk bytes, Content-Length covers them
	FaultGzip       FaultKind = "gzip"         // Content-Encoding: gzip, the body is the gzipped WAV, Content-Length the compressed size (whatever Accept-Encoding said)
	FaultEndless    FaultKind = "endless"      // no Content-Length (chunked): a WAV header, then audio bytes until the client goes away
	FaultHuge       FaultKind = "huge"         // Content-Length: hugeLength (5 GiB), a WAV header claiming the most RIFF can, then audio bytes until the client goes away
	FaultTrickle    FaultKind = "trickle"      // the valid WAV with a correct Content-Length, one byte (flushed) every DelayMS (default 2000)

	FaultHugeTotal FaultKind = "huge_total" // OIFDE queries: total hugeTotal (10^15), and every pageNum answers a full page (the matching records repeated)

	FaultZipBomb        FaultKind = "zip_bomb"        // downloadBillFile: a valid ZIP whose one record CSV inflates to zipBombSize (4 GiB) of a repeated row
	FaultBadPackage     FaultKind = "bad_package"     // downloadBillFile: the real package plus one record row (a CDR row for dataType call) with an empty call_id
	FaultExpiredPackage FaultKind = "expired_package" // downloadBillFile: a READY package answers 0300012 from now on, for good; a new queryBillData gives a new one

	FaultUnauthorized FaultKind = "unauthorized" // every path: HTTP 401 with a JSON body, as for a rejected signature (use Count 1 for a one-off)
	// FaultParamRejected: CC-FS HTTP 200 + resultCode 0300004 (a parameter in
	// the wrong format), a permanent refusal: an upstream change the client
	// does not follow.
	FaultParamRejected FaultKind = "param_rejected"
)

// FaultKinds returns every fault kind, in documentation order.
func FaultKinds() []FaultKind {
	return []FaultKind{
		FaultHTTP500, FaultHTTP503, FaultTooMany, FaultFlowControl, FaultReset, FaultTruncate,
		FaultSlow, FaultTokenExpiry, FaultDuplicateRows,
		FaultTextBody, FaultJSONNoCode, FaultRIFFShort, FaultRIFFLong, FaultGzip, FaultEndless, FaultHuge, FaultTrickle,
		FaultHugeTotal, FaultZipBomb, FaultBadPackage, FaultExpiredPackage, FaultUnauthorized, FaultParamRejected,
	}
}

// Bodies and sizes of the upstream misbehaviours.
const (
	textBodyError  = "ERROR: record service unavailable, caller 13800138000\n"
	jsonNoCodeBody = `{"message":"busy","retry":true}`
	riffLongJunk   = 4096
	hugeLength     = 5 << 30 // 5368709120
	hugeTotal      = 1_000_000_000_000_000
	zipBombSize    = 4 << 30 // at least this many bytes inflated
)

// Fault is one fault rule. Rules are evaluated in order; the first that fires wins.
//
// Reset and truncate cut the body after half of Content-Length. Slow sends
// slowChunk bytes, then stalls DelayMS (default 200) before each further chunk.
// token_expiry fires on a query whose token has been used more than AfterUses
// times and invalidates that token. duplicate_rows serves page p (p ≥ 2) shifted
// back by max(1, pageSize/5) rows per page boundary, as if rows had been inserted
// while paging: a page repeats the tail of the previous one, the reported total
// does not change, and the rows pushed past the last page by the shift are served
// on one more page (a client that stops after total rows misses them, as with
// real drift; one that pages until a short page sees every row). Trickle waits
// DelayMS (default 2000) before each byte after the first. expired_package
// fires only on a package that is ready, and that package stays expired when
// the rule is gone.
type Fault struct {
	Kind       FaultKind `json:"kind"`
	Path       string    `json:"path,omitempty"`       // exact request path (cecwire.Path*); "" = every path the kind applies to
	Rate       float64   `json:"rate,omitempty"`       // probability per matching request, deterministic RNG from Seed
	Count      int       `json:"count,omitempty"`      // only the next Count matching requests; Count==0 && Rate==0 means every request
	RetryAfter string    `json:"retryAfter,omitempty"` // FaultTooMany only
	DelayMS    int       `json:"delayMs,omitempty"`    // FaultSlow and FaultTrickle only
	AfterUses  int       `json:"afterUses,omitempty"`  // FaultTokenExpiry only
}

const (
	slowChunk           = 8 << 10
	defaultSlowDelay    = 200 * time.Millisecond
	defaultTrickleDelay = 2 * time.Second
)

// ParseFault reads the command-line form "kind[:rate][@path]", e.g. "http500:0.05",
// "429" or "reset@/CCFS/resource/ccfs/downloadRecordFile", and validates it.
func ParseFault(s string) (Fault, error) {
	var f Fault
	spec, path, hasPath := strings.Cut(s, "@")
	if hasPath {
		if path == "" {
			return f, fmt.Errorf("cecsim: fault %q: empty path after @", s)
		}
		f.Path = path
	}
	kind, rate, hasRate := strings.Cut(spec, ":")
	f.Kind = FaultKind(kind)
	if hasRate {
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil {
			return f, fmt.Errorf("cecsim: fault %q: rate %q is not a number", s, rate)
		}
		f.Rate = r
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("cecsim: fault %q: %w", s, err)
	}
	return f, nil
}

// Validate reports whether the fault can ever apply.
func (f Fault) Validate() error {
	if !knownKind(f.Kind) {
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if f.Path != "" {
		if !isServicePath(f.Path) {
			return fmt.Errorf("fault %s: unknown path %q", f.Kind, f.Path)
		}
		if !faultApplies(f.Kind, f.Path) {
			return fmt.Errorf("fault %s does not apply to %s", f.Kind, f.Path)
		}
	}
	switch {
	case f.Rate < 0 || f.Rate > 1 || f.Rate != f.Rate:
		return fmt.Errorf("fault %s: rate %v is not a probability", f.Kind, f.Rate)
	case f.Count < 0:
		return fmt.Errorf("fault %s: negative count %d", f.Kind, f.Count)
	case f.DelayMS < 0:
		return fmt.Errorf("fault %s: negative delayMs %d", f.Kind, f.DelayMS)
	case f.AfterUses < 0:
		return fmt.Errorf("fault %s: negative afterUses %d", f.Kind, f.AfterUses)
	}
	if f.RetryAfter != "" {
		if n, err := strconv.Atoi(f.RetryAfter); err != nil || n < 0 {
			if _, err := http.ParseTime(f.RetryAfter); err != nil {
				return fmt.Errorf("fault %s: retryAfter %q is neither delta-seconds nor an HTTP-date", f.Kind, f.RetryAfter)
			}
		}
	}
	return nil
}

func knownKind(k FaultKind) bool {
	for _, x := range FaultKinds() {
		if x == k {
			return true
		}
	}
	return false
}

// isRecordingDownload reports whether p is one of the recording download interfaces.
func isRecordingDownload(p string) bool {
	switch p {
	case cecwire.PathDownloadRecordFile, cecwire.PathDownloadRecord, cecwire.PathDownloadOiapRecord,
		cecwire.PathCMSDownloadRecordFile:
		return true
	}
	return false
}

// faultApplies reports whether a kind makes sense on a service path.
func faultApplies(k FaultKind, p string) bool {
	switch k {
	case FaultFlowControl, FaultParamRejected:
		return strings.HasPrefix(p, "/CCFS/")
	case FaultTokenExpiry, FaultDuplicateRows, FaultHugeTotal:
		return p == cecwire.PathQueryRecordHistory || p == cecwire.PathQueryTransferRecords
	case FaultTextBody, FaultJSONNoCode, FaultRIFFShort, FaultRIFFLong, FaultGzip, FaultEndless, FaultHuge, FaultTrickle:
		return isRecordingDownload(p)
	case FaultZipBomb, FaultBadPackage, FaultExpiredPackage:
		return p == cecwire.PathDownloadBillFile
	}
	return true
}

// faultRule is a Fault with its firing count.
type faultRule struct {
	Fault
	fired int
}

// pickFault returns the first rule of one of kinds that matches path, passes
// cond (nil = always) and fires by Count/Rate. It counts the injection.
func (s *Server) pickFault(path string, cond func(Fault) bool, kinds ...FaultKind) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.faults {
		if !kindIn(r.Kind, kinds) || (r.Path != "" && r.Path != path) || !faultApplies(r.Kind, path) {
			continue
		}
		if cond != nil && !cond(r.Fault) {
			continue
		}
		if r.Count > 0 && r.fired >= r.Count {
			continue
		}
		if r.Rate > 0 && s.faultRNG.Float64() >= r.Rate {
			continue
		}
		r.fired++
		s.stats.Faults[r.Kind]++
		return r.Fault, true
	}
	return Fault{}, false
}

func kindIn(k FaultKind, kinds []FaultKind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// SetFaults replaces all faults. Invalid faults are dropped with a warning
// (use Fault.Validate first to catch them).
func (s *Server) SetFaults(f ...Fault) {
	rules := make([]*faultRule, 0, len(f))
	for _, x := range f {
		if err := x.Validate(); err != nil {
			s.log.Warn("fault dropped", zap.Error(err))
			continue
		}
		rules = append(rules, &faultRule{Fault: x})
	}
	s.mu.Lock()
	s.faults = rules
	s.mu.Unlock()
}

// AddFault appends a fault; an invalid one is dropped with a warning.
func (s *Server) AddFault(f Fault) {
	if err := f.Validate(); err != nil {
		s.log.Warn("fault dropped", zap.Error(err))
		return
	}
	s.mu.Lock()
	s.faults = append(s.faults, &faultRule{Fault: f})
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// currentFaults returns a copy of the rules.
func (s *Server) currentFaults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, r := range s.faults {
		out = append(out, r.Fault)
	}
	return out
}

// preFault answers in place of the handler when an error fault fires.
func (s *Server) preFault(ep *endpoint) *reply {
	f, ok := s.pickFault(ep.path, nil, FaultHTTP500, FaultHTTP503, FaultTooMany, FaultFlowControl, FaultUnauthorized, FaultParamRejected)
	if !ok {
		return nil
	}
	switch f.Kind {
	case FaultHTTP500:
		return htmlReply(http.StatusInternalServerError)
	case FaultHTTP503:
		return htmlReply(http.StatusServiceUnavailable)
	case FaultTooMany:
		rep := htmlReply(http.StatusTooManyRequests)
		ra := f.RetryAfter
		if ra == "" {
			ra = "1"
		}
		rep.header.Set("Retry-After", ra)
		return rep
	case FaultUnauthorized:
		return statusReply(http.StatusUnauthorized, "auth-v2: signature does not match")
	case FaultParamRejected:
		return ccfsError(cecwire.CodeParamFormat, "the format of a parameter is incorrect")
	default: // FaultFlowControl
		if ep.download {
			return ccfsError(cecwire.CodeDownloadFlowCtl, "download flow control threshold reached")
		}
		return ccfsError(cecwire.CodeQueryFlowCtl, "query flow control threshold reached")
	}
}

func htmlReply(status int) *reply {
	text := http.StatusText(status)
	body := "<html><head><title>" + strconv.Itoa(status) + " " + text + "</title></head><body><h1>" +
		strconv.Itoa(status) + " " + text + "</h1><p>cecsim injected fault</p></body></html>\n"
	rep := bytesReply(status, []byte(body))
	rep.header.Set("Content-Type", "text/html; charset=utf-8")
	return rep
}

// errCut stops a body writer at the cut point of a reset or truncate fault.
var errCut = errors.New("cecsim: body cut by fault")

// cutWriter passes through the first left bytes, then fails.
type cutWriter struct {
	w    io.Writer
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > c.left {
		n, err := c.w.Write(p[:c.left])
		c.left -= int64(n)
		if err == nil {
			err = errCut
		}
		return n, err
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	return n, err
}

// slowWriter sends chunk bytes at a time and stalls delay before each further chunk.
type slowWriter struct {
	ctx   context.Context
	rc    *http.ResponseController
	w     io.Writer
	delay time.Duration
	sent  bool
}

func (s *slowWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if s.sent {
			t := time.NewTimer(s.delay)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return total, s.ctx.Err()
			case <-t.C:
			}
		}
		n := min(len(p), slowChunk)
		m, err := s.w.Write(p[:n])
		total += m
		if err != nil {
			return total, err
		}
		if err := s.rc.Flush(); err != nil {
			return total, err
		}
		s.sent = true
		p = p[n:]
	}
	return total, nil
}

// abortConn flushes what was written, then closes the TCP connection with
// SO_LINGER 0 so the peer sees a reset. Without hijacking (HTTP/2) the stream is aborted.
func abortConn(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}
