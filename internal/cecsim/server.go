package cecsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// Server is the simulator. It is an http.Handler serving CC-FS, CC-CMS and
// OIFDE on their documented paths. It is safe for concurrent use.
type Server struct {
	o        Options
	log      *zap.Logger
	ds       *dataset
	manifest *Manifest
	routes   map[string]*endpoint
	pat      *patterns

	ctx    context.Context // cancelled by Close; parent of the callbacks
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	faults   []*faultRule
	faultRNG *rand.Rand
	idRNG    *rand.Rand
	stats    Stats
	tokens   map[string]*token
	bills    map[string]*billPkg // by billFileName
	uploads  map[string]*upload  // by fileName
	// uploadOrder has the uploads' file names in the order they came.
	uploadOrder []string
	// late and unavailable hold the recordings still withheld
	// (Options.LateRecordings, Options.UnavailableFiles).
	late        map[*recording]bool
	unavailable map[*recording]bool

	streams atomic.Int64 // endless, huge and trickle bodies being sent

	bombOnce sync.Once // the zip_bomb package, built on first use
	bomb     []byte
	bombErr  error
}

// Stats counts what the simulator saw.
type Stats struct {
	Requests     map[string]int    `json:"requests"`     // requests per known path
	AuthFailures int               `json:"authFailures"` // 401 answers
	Faults       map[FaultKind]int `json:"faults"`       // faults injected per kind
	TokensIssued int               `json:"tokensIssued"`
}

// service is the product an endpoint belongs to.
type service int

const (
	serviceCCFS service = iota
	serviceCMS
	serviceOIFDE
)

// endpoint is one documented interface.
type endpoint struct {
	path     string
	service  service
	download bool // CC-FS flow control answers 0300008 instead of 0300009
	upload   bool // larger body bound
	handle   func(*request) *reply
}

// request is what a handler needs of an incoming request.
type request struct {
	r    *http.Request
	body []byte
	ak   string // the verified developer (CC-FS, CC-CMS)
}

// reply is a complete answer: handlers build it, ServeHTTP writes it (through a fault if one fires).
type reply struct {
	status int
	header http.Header
	size   int64 // Content-Length; negative: none (chunked)
	body   func(io.Writer) error
	rec    *recording // set when the answer is exactly one recording of the dataset (a WAV)
}

// maxRequestBody bounds every request body except uploads.
const maxRequestBody = 1 << 20

// New builds the dataset deterministically from o.Seed and computes the manifest.
func New(o Options) (*Server, error) {
	o, err := o.normalize()
	if err != nil {
		return nil, err
	}
	pat, err := compilePatterns()
	if err != nil {
		return nil, err
	}
	ds := buildDataset(&o)
	late, unavailable := pickDelayed(ds, o.Seed, o.LateRecordings, o.UnavailableFiles)
	computeDigests(ds.recs)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		o:        o,
		log:      o.Logger.Named("cecsim"),
		ds:       ds,
		manifest: ds.manifest(o.TenantID),
		pat:      pat,
		ctx:      ctx,
		cancel:   cancel,
		faultRNG: rand.New(rand.NewPCG(uint64(o.Seed), 0xfa0175)),
		// Like CC-FS, every queryBillData gets a new responseId, also across
		// restarts of the simulator: the dataset is seeded, request ids are not.
		idRNG:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		stats:   Stats{Requests: map[string]int{}, Faults: map[FaultKind]int{}},
		tokens:  map[string]*token{},
		bills:   map[string]*billPkg{},
		uploads: map[string]*upload{},

		late:        make(map[*recording]bool, len(late)),
		unavailable: make(map[*recording]bool, len(unavailable)),
	}
	for _, r := range late {
		s.late[r] = true
	}
	for _, r := range unavailable {
		s.unavailable[r] = true
	}
	for _, f := range o.Faults {
		s.faults = append(s.faults, &faultRule{Fault: f})
	}
	s.routes = map[string]*endpoint{}
	for _, ep := range []*endpoint{
		{path: cecwire.PathQueryBillData, service: serviceCCFS, handle: s.queryBillData},
		{path: cecwire.PathDownloadBillFile, service: serviceCCFS, download: true, handle: s.downloadBillFile},
		{path: cecwire.PathDownloadRecordFile, service: serviceCCFS, download: true, handle: s.downloadRecordFile},
		{path: cecwire.PathDownloadRecord, service: serviceCCFS, download: true, handle: s.downloadRecord},
		{path: cecwire.PathDownloadOiapRecord, service: serviceCCFS, download: true, handle: s.downloadOiapRecord},
		{path: cecwire.PathUploadFile, service: serviceCCFS, upload: true, handle: s.uploadFile},
		{path: cecwire.PathCMSDownloadRecordFile, service: serviceCMS, download: true, handle: s.cmsDownloadRecordFile},
		{path: cecwire.PathGetToken, service: serviceOIFDE, handle: s.getToken},
		{path: cecwire.PathQueryTransferRecords, service: serviceOIFDE, handle: s.queryTransferRecords},
		{path: cecwire.PathQueryRecordHistory, service: serviceOIFDE, handle: s.queryRecordHistory},
	} {
		s.routes[ep.path] = ep
	}
	s.log.Info("dataset ready",
		zap.Int64("seed", o.Seed), zap.Int("calls", len(ds.calls)), zap.Int("recordings", len(ds.recs)),
		zap.Int("absent", len(ds.absent)), zap.Int("late", len(late)), zap.Int("unavailable", len(unavailable)),
		zap.String("tenant", o.TenantID))
	return s, nil
}

// isServicePath reports whether p is one of the simulated interfaces.
func isServicePath(p string) bool {
	switch p {
	case cecwire.PathQueryBillData, cecwire.PathDownloadBillFile, cecwire.PathDownloadRecordFile,
		cecwire.PathDownloadRecord, cecwire.PathDownloadOiapRecord, cecwire.PathUploadFile,
		cecwire.PathCMSDownloadRecordFile, cecwire.PathGetToken, cecwire.PathQueryTransferRecords,
		cecwire.PathQueryRecordHistory:
		return true
	}
	return false
}

// Manifest returns a copy of the dataset's manifest.
func (s *Server) Manifest() *Manifest { return s.manifest.clone() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{
		Requests:     make(map[string]int, len(s.stats.Requests)),
		AuthFailures: s.stats.AuthFailures,
		Faults:       make(map[FaultKind]int, len(s.stats.Faults)),
		TokensIssued: s.stats.TokensIssued,
	}
	for k, v := range s.stats.Requests {
		out.Requests[k] = v
	}
	for k, v := range s.stats.Faults {
		out.Faults[k] = v
	}
	return out
}

// Close stops the callback goroutines and waits for them. The handler keeps
// answering, but queryBillData no longer sends callbacks.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.o.Admin && strings.HasPrefix(r.URL.Path, adminPrefix) {
		s.serveAdmin(w, r)
		return
	}
	ep, ok := s.routes[r.URL.Path]
	if !ok {
		s.send(w, r, nil, statusReply(http.StatusNotFound, "no such interface: "+r.URL.Path), Fault{})
		return
	}
	s.mu.Lock()
	s.stats.Requests[ep.path]++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		rep := statusReply(http.StatusMethodNotAllowed, "only POST is allowed")
		rep.header.Set("Allow", http.MethodPost)
		s.send(w, r, ep, rep, Fault{})
		return
	}
	limit := int64(maxRequestBody)
	if ep.upload {
		limit = (s.o.UploadLimitBytes+2)/3*4 + 64<<10
	}
	body, err := readBody(r, limit)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errBodyTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		s.send(w, r, ep, statusReply(status, err.Error()), Fault{})
		return
	}
	q := &request{r: r, body: body}
	if ep.service != serviceOIFDE {
		ak, err := VerifyAuthV2(r, body, s.lookupSK, s.o.Now(), s.o.MaxClockSkew)
		if err != nil {
			s.mu.Lock()
			s.stats.AuthFailures++
			s.mu.Unlock()
			s.log.Info("auth-v2 rejected", zap.String("path", ep.path), zap.Error(err))
			s.send(w, r, ep, statusReply(http.StatusUnauthorized, "auth-v2: "+err.Error()), Fault{})
			return
		}
		q.ak = ak
	}
	if err := checkContentType(r); err != nil {
		s.send(w, r, ep, statusReply(http.StatusUnsupportedMediaType, err.Error()), Fault{})
		return
	}
	rep := s.preFault(ep)
	var f Fault
	if rep == nil {
		rep = ep.handle(q)
		f, _ = s.pickFault(ep.path, func(f Fault) bool { return misbehaviourFits(f.Kind, rep) }, bodyFaultKinds...)
		if isMisbehaviour(f.Kind) {
			rep, f = s.misbehave(r.Context(), f, rep), Fault{}
		}
	}
	s.send(w, r, ep, rep, f)
}

func (s *Server) lookupSK(ak string) (string, bool) {
	sk, ok := s.o.Credentials[ak]
	return sk, ok
}

var errBodyTooLarge = errors.New("request body too large")

// readBody reads at most limit bytes of body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errBodyTooLarge, r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
	}
	return b, nil
}

// checkContentType requires application/json (the docs send it on every interface),
// with a UTF-8 charset if one is given.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json;charset=UTF-8", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf("charset %q, want UTF-8", cs)
	}
	return nil
}

// send writes rep, applying a body fault (reset, truncate, slow) if f has one.
func (s *Server) send(w http.ResponseWriter, r *http.Request, ep *endpoint, rep *reply, f Fault) {
	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	if rep.size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(rep.size, 10))
	}
	w.WriteHeader(rep.status)
	if ep != nil {
		s.log.Debug("request", zap.String("path", ep.path), zap.Int("status", rep.status),
			zap.Int64("bytes", rep.size), zap.String("fault", string(f.Kind)))
	}
	var err error
	switch f.Kind {
	case FaultTruncate:
		// net/http closes the connection when fewer bytes than Content-Length were written.
		err = rep.body(&cutWriter{w: w, left: rep.size / 2})
	case FaultReset:
		err = rep.body(&cutWriter{w: w, left: rep.size / 2})
		abortConn(w)
	case FaultSlow:
		delay := time.Duration(f.DelayMS) * time.Millisecond
		if f.DelayMS == 0 {
			delay = defaultSlowDelay
		}
		err = rep.body(&slowWriter{ctx: r.Context(), rc: http.NewResponseController(w), w: w, delay: delay})
	default:
		err = rep.body(w)
	}
	if err != nil && !errors.Is(err, errCut) {
		s.log.Debug("response body not completed", zap.Error(err))
	}
}

// bytesReply answers b with an empty header set for the caller to fill.
func bytesReply(status int, b []byte) *reply {
	return &reply{
		status: status,
		header: http.Header{},
		size:   int64(len(b)),
		body: func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		},
	}
}

// jsonReply answers v as JSON with HTTP 200.
func jsonReply(v any) *reply {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types are marshalled; this is a bug.
		return statusReply(http.StatusInternalServerError, "cecsim: marshal answer: "+err.Error())
	}
	rep := bytesReply(http.StatusOK, b)
	rep.header.Set("Content-Type", cecwire.ContentTypeJSON)
	return rep
}

// statusReply is a non-200 answer explaining itself in a JSON body.
func statusReply(status int, desc string) *reply {
	rep := jsonReply(cecwire.Result{ResultCode: strconv.Itoa(status), ResultDesc: desc})
	rep.status = status
	return rep
}

// ccfsError is a CC-FS failure: HTTP 200 with resultCode, resultDesc, an empty
// resultData and the legacy response object.
func ccfsError(code, desc string) *reply {
	return jsonReply(cecwire.Result{
		ResultCode: code,
		ResultDesc: desc,
		ResultData: json.RawMessage(`""`),
		Response:   &cecwire.LegacyResponse{Version: cecwire.Version, ResultCode: code, ResultMsg: desc},
	})
}

// ccfsSuccess is a CC-FS JSON success with resultData.
func ccfsSuccess(data any, legacy bool) *reply {
	b, err := json.Marshal(data)
	if err != nil {
		return statusReply(http.StatusInternalServerError, "cecsim: marshal answer: "+err.Error())
	}
	res := cecwire.Result{ResultCode: cecwire.CodeSuccess, ResultDesc: "success", ResultData: b}
	if legacy {
		res.Response = &cecwire.LegacyResponse{Version: cecwire.Version, ResultCode: cecwire.CodeSuccess, ResultMsg: "success"}
	}
	return jsonReply(res)
}

// fileReply is a binary success: octet-stream, Content-Length and an attachment name.
func fileReply(name string, size int64, body func(io.Writer) error) *reply {
	h := http.Header{}
	h.Set("Content-Type", cecwire.ContentTypeOctetStream)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	return &reply{status: http.StatusOK, header: h, size: size, body: body}
}

// recordingReply streams one recording.
func recordingReply(rec *recording, name string) *reply {
	rep := fileReply(name, rec.size, func(w io.Writer) error {
		_, err := io.Copy(w, rec.open())
		return err
	})
	rep.rec = rec
	return rep
}

// recordingsReply is one WAV, or a ZIP named zipName when there are several.
func recordingsReply(recs []*recording, wavName func(*recording) string, zipName string) *reply {
	if len(recs) == 1 {
		return recordingReply(recs[0], wavName(recs[0]))
	}
	return fileReply(zipName, recordingsZipSize(recs), func(w io.Writer) error {
		return writeRecordingsZip(w, recs, true)
	})
}
