package cecsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// oifdeFailure is the errorCode of every OIFDE failure other than an invalid token.
const oifdeFailure = 1

// token is an OIFDE authToken.
type token struct {
	expires time.Time
	uses    int
}

// oifdeError is the error body of gettoken and queryRecordHistory.
type oifdeError struct {
	ErrorCode int    `json:"errorCode"`
	ErrorMsg  string `json:"errorMsg"`
}

// transferError is the error body of queryTransferRecordHistory, which names
// its message errorMessage.
type transferError struct {
	ErrorCode    int    `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

type transferPage struct {
	ErrorCode    int                 `json:"errorCode"`
	ErrorMessage string              `json:"errorMessage"`
	Total        int64               `json:"total"`
	List         []transferRecordOut `json:"transferRecordList"`
}

type sessionPage struct {
	ErrorCode int                `json:"errorCode"`
	ErrorMsg  string             `json:"errorMsg"`
	Total     int64              `json:"total"`
	List      []sessionRecordOut `json:"recordList"`
}

// getToken: OIFDE gettoken (cec-api.md §2).
func (s *Server) getToken(q *request) *reply {
	fail := func(msg string) *reply { return jsonReply(oifdeError{ErrorCode: oifdeFailure, ErrorMsg: msg}) }
	obj, err := decodeObject(q.body)
	if err != nil {
		return fail("request body format wrong: " + err.Error())
	}
	if fe := checkFields(obj, []field{required("appKey", 64), required("appSecret", 256)}); fe != nil {
		return fail(fe.desc)
	}
	var b cecwire.GetTokenRequest
	if err := json.Unmarshal(q.body, &b); err != nil {
		return fail("request body format wrong: " + err.Error())
	}
	keyOK := subtle.ConstantTimeCompare([]byte(b.AppKey), []byte(s.o.TenantID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(b.AppSecret), []byte(s.o.APIPassword)) == 1
	if !keyOK || !secretOK {
		return fail("appKey or appSecret is wrong")
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fail("cannot create a token")
	}
	tok := hex.EncodeToString(raw[:])
	now := s.o.Now()
	s.mu.Lock()
	for k, t := range s.tokens {
		if !now.Before(t.expires) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = &token{expires: now.Add(s.o.TokenTTL)}
	s.stats.TokensIssued++
	s.mu.Unlock()
	return jsonReply(cecwire.GetTokenResponse{
		ErrorCode:  cecwire.OIFDESuccess,
		ErrorMsg:   "success",
		AuthToken:  tok,
		ExpireTime: max(1, int64(s.o.TokenTTL/time.Second)),
	})
}

// oifdeRecord is what paging needs of a transfer or session record.
type oifdeRecord struct {
	start time.Time
	id    uint64
	idx   int
}

// queryTransferRecords: OIFDE queryTransferRecordHistory (A.5), times in Location.
func (s *Server) queryTransferRecords(q *request) *reply {
	var all []*transferRec
	page, total, rep := s.oifdeQuery(q, cecwire.PathQueryTransferRecords, s.o.Location,
		func(msg string, code int) *reply { return jsonReply(transferError{ErrorCode: code, ErrorMessage: msg}) },
		func(c *dsCall) []oifdeRecord {
			var out []oifdeRecord
			for _, t := range c.transfers {
				out = append(out, oifdeRecord{start: t.start, id: t.id, idx: len(all)})
				all = append(all, t)
			}
			return out
		})
	if rep != nil {
		return rep
	}
	list := make([]transferRecordOut, 0, len(page))
	for _, r := range page {
		list = append(list, all[r.idx].out)
	}
	return jsonReply(transferPage{ErrorCode: cecwire.OIFDESuccess, ErrorMessage: "success", Total: total, List: list})
}

// queryRecordHistory: OIFDE queryRecordHistory (§5), times in UTC.
func (s *Server) queryRecordHistory(q *request) *reply {
	var all []*ivrRec
	page, total, rep := s.oifdeQuery(q, cecwire.PathQueryRecordHistory, time.UTC,
		func(msg string, code int) *reply { return jsonReply(oifdeError{ErrorCode: code, ErrorMsg: msg}) },
		func(c *dsCall) []oifdeRecord {
			var out []oifdeRecord
			for _, v := range c.ivrs {
				out = append(out, oifdeRecord{start: v.start, id: v.id, idx: len(all)})
				all = append(all, v)
			}
			return out
		})
	if rep != nil {
		return rep
	}
	list := make([]sessionRecordOut, 0, len(page))
	for _, r := range page {
		list = append(list, all[r.idx].out)
	}
	return jsonReply(sessionPage{ErrorCode: cecwire.OIFDESuccess, ErrorMsg: "success", Total: total, List: list})
}

// oifdeQuery validates a query (token, paging, filters) and returns one page of
// the matching records, sorted by start time then ID so that paging is stable.
func (s *Server) oifdeQuery(q *request, path string, loc *time.Location,
	fail func(msg string, code int) *reply, records func(*dsCall) []oifdeRecord,
) ([]oifdeRecord, int64, *reply) {
	obj, err := decodeObject(q.body)
	if err != nil {
		return nil, 0, fail("request body format wrong: "+err.Error(), oifdeFailure)
	}
	if fe := checkFields(obj, []field{
		field{name: "tenantId", max: 64, allowEmpty: true}, field{name: "authToken", max: 256, allowEmpty: true}, optional("beginTime", 32), optional("endTime", 32),
		optional("pageNum", 10), optional("pageSize", 3), optional("callId", 64), optional("userMobile", 32),
		optional("ctiCallId", 64),
	}); fe != nil {
		return nil, 0, fail(fe.desc, oifdeFailure)
	}
	var b cecwire.OIFDEQuery
	if err := json.Unmarshal(q.body, &b); err != nil {
		return nil, 0, fail("request body format wrong: "+err.Error(), oifdeFailure)
	}

	// The token: tenantId and a live authToken.
	now := s.o.Now()
	s.mu.Lock()
	tok := s.tokens[b.AuthToken]
	live := b.TenantID == s.o.TenantID && b.AuthToken != "" && tok != nil && now.Before(tok.expires)
	uses := 0
	if live {
		tok.uses++
		uses = tok.uses
	}
	s.mu.Unlock()
	if !live {
		return nil, 0, fail("no token information exists or the token has expired", cecwire.OIFDETokenInvalid)
	}
	// pickFault holds s.mu while it calls the condition: use the copy.
	if _, ok := s.pickFault(path, func(f Fault) bool { return uses > f.AfterUses }, FaultTokenExpiry); ok {
		s.mu.Lock()
		delete(s.tokens, b.AuthToken)
		s.mu.Unlock()
		return nil, 0, fail("no token information exists or the token has expired", cecwire.OIFDETokenInvalid)
	}

	pageSize, pageNum := 100, 1
	if b.PageSize != "" {
		n, err := strconv.Atoi(b.PageSize)
		if err != nil || !cecwire.ValidPageSize(n) || strconv.Itoa(n) != b.PageSize {
			return nil, 0, fail("pageSize is invalid: want 5, 10, 20, 50 or 100", oifdeFailure)
		}
		pageSize = n
	}
	if b.PageNum != "" {
		n, err := strconv.Atoi(b.PageNum)
		if err != nil || n < 1 || strconv.Itoa(n) != b.PageNum {
			return nil, 0, fail("pageNum is invalid: want an integer of at least 1", oifdeFailure)
		}
		pageNum = n
	}
	if b.CallID == "" && b.UserMobile == "" && b.CtiCallID == "" {
		return nil, 0, fail("one of callId, userMobile and ctiCallId is required", oifdeFailure)
	}
	var begin, end time.Time
	if b.BeginTime != "" {
		t, ok := parseLocalTime(b.BeginTime, loc)
		if !ok {
			return nil, 0, fail("beginTime is invalid: want yyyy-MM-dd HH:mm:ss", oifdeFailure)
		}
		begin = t
	}
	if b.EndTime != "" {
		t, ok := parseLocalTime(b.EndTime, loc)
		if !ok {
			return nil, 0, fail("endTime is invalid: want yyyy-MM-dd HH:mm:ss", oifdeFailure)
		}
		end = t
	}
	if !begin.IsZero() && !end.IsZero() && end.Before(begin) {
		return nil, 0, fail("endTime is invalid: it is earlier than beginTime", oifdeFailure)
	}

	// Candidate calls: every given identifier must match.
	var calls []*dsCall
	switch {
	case b.CtiCallID != "":
		if c := s.ds.byCallID[b.CtiCallID]; c != nil {
			calls = []*dsCall{c}
		}
	case b.CallID != "":
		if c := s.ds.byFlowID[b.CallID]; c != nil {
			calls = []*dsCall{c}
		}
	default:
		calls = s.ds.byCaller[b.UserMobile]
	}
	var rows []oifdeRecord
	for _, c := range calls {
		if (b.CtiCallID != "" && c.id != b.CtiCallID) || (b.CallID != "" && c.flowCallID != b.CallID) ||
			(b.UserMobile != "" && c.caller != b.UserMobile) {
			continue
		}
		for _, r := range records(c) {
			sec := r.start.Truncate(time.Second)
			if (!begin.IsZero() && sec.Before(begin)) || (!end.IsZero() && sec.After(end)) {
				continue
			}
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].start.Equal(rows[j].start) {
			return rows[i].start.Before(rows[j].start)
		}
		return rows[i].id < rows[j].id
	})

	offset := (pageNum - 1) * pageSize
	if len(rows) > 0 {
		// huge_total: every page is full, cycling through the real rows.
		if _, ok := s.pickFault(path, nil, FaultHugeTotal); ok {
			full := make([]oifdeRecord, pageSize)
			for i := range full {
				full[i] = rows[(offset+i)%len(rows)]
			}
			return full, hugeTotal, nil
		}
	}
	if _, ok := s.pickFault(path, func(Fault) bool { return pageNum >= 2 }, FaultDuplicateRows); ok {
		offset -= (pageNum - 1) * max(1, pageSize/5)
	}
	if offset >= len(rows) {
		return []oifdeRecord{}, int64(len(rows)), nil
	}
	return rows[offset:min(offset+pageSize, len(rows))], int64(len(rows)), nil
}
