package cecsim

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// billPkg is a CDR / recording-index package requested with queryBillData.
// Its content is fixed when it is requested: the calls come from the immutable
// dataset and hidden is the set of recordings that were late at that moment,
// so a package requested before ReleaseLate never lists the late recordings,
// however late it is downloaded.
type billPkg struct {
	responseID string // with dashes
	fileName   string
	ak         string
	readyAt    time.Time
	ready      bool // set when the callback goes out, whatever the clock says
	begin, end time.Time
	q          cecwire.QueryBillDataBody
	callback   *url.URL            // nil: no callback
	hidden     map[*recording]bool // late recordings at queryBillData time; read-only
	expired    bool                // the expired_package fault hit it: 0300012 for good (guarded by Server.mu)
}

// maxCSVRows is the number of data rows per CSV file of a package.
const maxCSVRows = 1000

// queryBillData: CC-FS queryBillData (cec-api.md §3.1).
func (s *Server) queryBillData(q *request) *reply {
	if _, _, rep := checkQuery(q.r.URL.RawQuery); rep != nil {
		return rep
	}
	var b cecwire.QueryBillDataBody
	if rep := parseCCFS(q.body, &b,
		required("beginTime", 32), required("endTime", 32),
		optional("accountId", 64), optional("agentId", 32), optional("callId", 25),
		optional("callerNo", 26), optional("calleeNo", 26),
		required("dataType", 32), required("callBackURL", 1024),
	); rep != nil {
		return rep
	}
	begin, ok := parseLocalTime(b.BeginTime, s.o.Location)
	if !ok {
		return ccfsError(cecwire.CodeParamFormat, "beginTime format wrong: want yyyy-MM-dd HH:mm:ss")
	}
	end, ok := parseLocalTime(b.EndTime, s.o.Location)
	if !ok {
		return ccfsError(cecwire.CodeParamFormat, "endTime format wrong: want yyyy-MM-dd HH:mm:ss")
	}
	if !end.After(begin) {
		return ccfsError(cecwire.CodeParamFormat, "endTime format wrong: it must be later than beginTime")
	}
	if end.Sub(begin) > cecwire.MaxQueryBillDataWindowDays*24*time.Hour {
		return ccfsError(cecwire.CodeParamFormat, fmt.Sprintf("endTime format wrong: the time range exceeds %d days", cecwire.MaxQueryBillDataWindowDays))
	}
	switch b.DataType {
	case cecwire.DataTypeCall, cecwire.DataTypeRecord, cecwire.DataTypeCallRecord:
	default:
		return ccfsError(cecwire.CodeParamFormat, "dataType format wrong: want call, record or call_record")
	}
	if b.AccountID != "" && b.AccountID != s.o.TenantID {
		return errNotOwner("accountId")
	}
	var cb *url.URL
	if u, err := url.Parse(b.CallBackURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		cb = u
	}

	now := s.o.Now()
	s.mu.Lock()
	id := newUUID(s.idRNG.Uint64(), s.idRNG.Uint64())
	pkg := &billPkg{
		responseID: id,
		fileName:   now.In(s.o.Location).Format(cecwire.BillFileDateLayout) + "_" + strings.ReplaceAll(id, "-", "") + ".zip",
		ak:         q.ak,
		readyAt:    now.Add(s.o.BillReadyDelay),
		begin:      begin,
		end:        end,
		q:          b,
		callback:   cb,
		hidden:     s.lateSnapshot(),
	}
	s.bills[pkg.fileName] = pkg
	startCallback := cb != nil && !s.closed
	if startCallback {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if startCallback {
		go s.callbackLoop(pkg, s.o.Credentials[q.ak])
	}
	s.log.Info("bill package requested", zap.String("responseId", id), zap.String("dataType", b.DataType),
		zap.Bool("callback", cb != nil))
	return ccfsSuccess(cecwire.QueryBillDataData{ResponseID: id}, true)
}

// parseLocalTime parses yyyy-MM-dd HH:mm:ss in loc, rejecting any other text.
func parseLocalTime(s string, loc *time.Location) (time.Time, bool) {
	t, err := time.ParseInLocation(cecwire.TimeLayout, s, loc)
	return t, err == nil && t.Format(cecwire.TimeLayout) == s
}

// newUUID formats 128 random bits as a version 4 UUID with dashes.
func newUUID(hi, lo uint64) string {
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, (hi>>16)&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// callbackLoop waits until the package is ready, then POSTs the callback, retrying
// every CallbackRetry until it succeeds or callbackTries attempts failed.
func (s *Server) callbackLoop(pkg *billPkg, sk string) {
	defer s.wg.Done()
	if !sleepCtx(s.ctx, s.o.BillReadyDelay) {
		return
	}
	s.mu.Lock()
	pkg.ready = true
	s.mu.Unlock()
	body, err := json.Marshal(cecwire.NewEnvelope(cecwire.BillCallbackBody{
		ResponseID: pkg.responseID, BillFileName: pkg.fileName, AccountID: pkg.q.AccountID,
	}))
	if err != nil {
		s.log.Error("callback body", zap.Error(err))
		return
	}
	log := s.log.With(zap.String("responseId", pkg.responseID), zap.String("callbackHost", pkg.callback.Host))
	for try := 1; try <= callbackTries; try++ {
		err := s.postCallback(pkg, sk, body)
		if err == nil {
			log.Info("callback delivered", zap.Int("try", try))
			return
		}
		log.Warn("callback failed", zap.Int("try", try), zap.Error(err))
		if try == callbackTries || !sleepCtx(s.ctx, s.o.CallbackRetry) {
			return
		}
	}
}

// postCallback sends one signed callback. Success is a 2xx answer with a non-empty body.
func (s *Server) postCallback(pkg *billPkg, sk string, body []byte) error {
	u := pkg.callback
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Host = u.Host
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", cecwire.ContentTypeJSON)
	uri := u.EscapedPath() // the path as sent (u.String() escapes it), not decoded: see requestPath
	if uri == "" {
		uri = "/"
	}
	req.Header.Set("Authorization", signAuthV2(pkg.ak, sk, s.o.Now(), http.MethodPost, uri, u.Query(), map[string]string{
		"content-length": strconv.Itoa(len(body)),
		"content-type":   cecwire.ContentTypeJSON,
		"host":           u.Host,
	}, body))
	resp, err := s.o.CallbackClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if len(bytes.TrimSpace(answer)) == 0 {
		return fmt.Errorf("HTTP %d with an empty body", resp.StatusCode)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// downloadBillFile: CC-FS downloadBillFile (A.3).
func (s *Server) downloadBillFile(q *request) *reply {
	if _, _, rep := checkQuery(q.r.URL.RawQuery); rep != nil {
		return rep
	}
	var b cecwire.DownloadBillFileBody
	if rep := parseCCFS(q.body, &b, required("billFileName", 49)); rep != nil {
		return rep
	}
	m := s.pat.billFile.FindStringSubmatch(b.BillFileName)
	if m == nil {
		return ccfsError(cecwire.CodeParamFormat, "billFileName format wrong: want yyyyMMdd_{responseId without dashes}.zip")
	}
	if !validDate(m[1]) {
		return errDate("billFileName")
	}
	s.mu.Lock()
	pkg := s.bills[b.BillFileName]
	ready := pkg != nil && (pkg.ready || !s.o.Now().Before(pkg.readyAt))
	s.mu.Unlock()
	if pkg == nil {
		return errNoData()
	}
	if pkg.ak != q.ak {
		return errNotOwner("billFileName")
	}
	if !ready {
		return errNoData()
	}
	s.mu.Lock()
	expired := pkg.expired
	s.mu.Unlock()
	if expired {
		return errNoData()
	}
	var data []byte
	var err error
	f, _ := s.pickFault(cecwire.PathDownloadBillFile, nil, FaultExpiredPackage, FaultZipBomb, FaultBadPackage)
	switch f.Kind {
	case FaultExpiredPackage:
		s.mu.Lock()
		pkg.expired = true
		s.mu.Unlock()
		s.log.Info("bill package expired by fault", zap.String("billFileName", pkg.fileName))
		return errNoData()
	case FaultZipBomb:
		data, err = s.zipBomb()
	default:
		data, err = s.billZip(pkg, f.Kind == FaultBadPackage)
	}
	if err != nil {
		s.log.Error("build bill package", zap.Error(err))
		return statusReply(http.StatusInternalServerError, "cecsim: build package: "+err.Error())
	}
	return fileReply(pkg.fileName, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// billCalls are the developer's calls whose call_begin is in [begin, end), filtered.
func (s *Server) billCalls(pkg *billPkg) []*dsCall {
	var out []*dsCall
	for _, c := range s.ds.calls {
		if c.ak != pkg.ak || c.begin.Before(pkg.begin) || !c.begin.Before(pkg.end) {
			continue
		}
		f := pkg.q
		if (f.CallID != "" && f.CallID != c.id) || (f.CallerNo != "" && f.CallerNo != c.caller) ||
			(f.CalleeNo != "" && f.CalleeNo != c.callee) {
			continue
		}
		if f.AgentID != "" {
			found := false
			for _, a := range c.agents {
				found = found || a == f.AgentID
			}
			if !found {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// billZip builds the package: the same responseId always gives the same bytes.
// With bad it carries one more row, with an empty call_id: at the end of the
// record CSV, or of the CDR CSV when the package has no record CSV.
func (s *Server) billZip(pkg *billPkg, bad bool) ([]byte, error) {
	calls := s.billCalls(pkg)
	ready := pkg.readyAt.In(s.o.Location)
	h := fnv.New32a()
	h.Write([]byte(pkg.responseID))
	prefix := strings.Replace(ready.Format("20060102150405.000"), ".", "", 1) + fmt.Sprintf("%03d", h.Sum32()%1000)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	write := func(kind string, header []string, rows [][]string) error {
		for seq := 1; seq == 1 || len(rows) > 0; seq++ {
			n := min(len(rows), maxCSVRows)
			fw, err := zw.CreateHeader(&zip.FileHeader{
				Name: fmt.Sprintf("%s_%s_%d.csv", prefix, kind, seq), Method: zip.Deflate, Modified: ready,
			})
			if err != nil {
				return err
			}
			cw := csv.NewWriter(fw)
			if err := cw.Write(header); err != nil {
				return err
			}
			if err := cw.WriteAll(rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	}
	dt := pkg.q.DataType
	if dt == cecwire.DataTypeCall || dt == cecwire.DataTypeCallRecord {
		var rows [][]string
		for _, c := range calls {
			rows = append(rows, s.cdrRows(c)...)
		}
		if bad && dt == cecwire.DataTypeCall {
			rows = append(rows, s.badRow(pkg.ak, false, rows))
		}
		if err := write("call", cecwire.CallColumns, rows); err != nil {
			return nil, err
		}
	}
	if dt == cecwire.DataTypeRecord || dt == cecwire.DataTypeCallRecord {
		var rows [][]string
		for _, c := range calls {
			rows = append(rows, s.recordRows(c, pkg.hidden)...)
		}
		if bad {
			rows = append(rows, s.badRow(pkg.ak, true, rows))
		}
		if err := write("record", cecwire.RecordColumns, rows); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Server) csvTime(t time.Time) string { return t.In(s.o.Location).Format(cecwire.TimeLayout) }

// cdrRows are the 1..3 CDR rows of a call: IVR, queue, agent (the last ones of that
// chain), numbered 1, 2, … with the last one -1.
func (s *Server) cdrRows(c *dsCall) [][]string {
	devices := []string{"3", "1", "2"}[3-c.cdrRows:]
	waitEnd := c.begin.Add(time.Duration(c.waitSec) * time.Second)
	ackEnd := waitEnd.Add(time.Duration(c.ringSec) * time.Second)
	rows := make([][]string, 0, len(devices))
	preType, preNo := "", ""
	for j, dt := range devices {
		agentID, devNo := "", ""
		switch dt {
		case "3":
			devNo = c.ivrFlow
		case "1":
			devNo = c.skill
		case "2":
			devNo, agentID = c.agents[0], c.agents[0]
		}
		num, release := strconv.Itoa(j+1), "0"
		if j == len(devices)-1 {
			num, release = "-1", c.release
		}
		rows = append(rows, []string{
			c.ak, s.o.TenantID, c.ccID, agentID, c.id, c.caller, c.callee,
			s.csvTime(c.begin), s.csvTime(waitEnd), s.csvTime(waitEnd), s.csvTime(ackEnd),
			s.csvTime(c.begin), s.csvTime(c.end),
			dt, devNo, strconv.Itoa(c.callType), release, num, c.vdn, preType, preNo,
		})
		preType, preNo = dt, devNo
	}
	return rows
}

// recordRows are the recording-index rows of a call, one per agent recording
// not in hidden.
func (s *Server) recordRows(c *dsCall, hidden map[*recording]bool) [][]string {
	rows := make([][]string, 0, len(c.agentRecs))
	for k, r := range c.agentRecs {
		if hidden[r] {
			continue
		}
		status, result := "0", ""
		if c.taskDone[k] {
			status, result = "1", "success"
		}
		begin, end := c.begin, c.end
		if !r.begin.IsZero() {
			begin, end = r.begin, r.end
		}
		rows = append(rows, []string{
			c.ak, s.o.TenantID, c.ccID, r.agentID, c.id, c.caller, c.callee,
			s.csvTime(begin), s.csvTime(end), r.fileName, status, result, r.original,
			c.vdn, strconv.Itoa(c.callType), "5", c.skill, c.skill,
		})
	}
	return rows
}
