package cecsim

import (
	"encoding/json"
	"path"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// cmsError is a CC-CMS failure: HTTP 200 with resultCode "1".
func cmsError(desc string) *reply {
	return jsonReply(cecwire.Result{ResultCode: cecwire.CodeCMSFailure, ResultDesc: desc, ResultData: json.RawMessage(`""`)})
}

// cmsDownloadRecordFile: CC-CMS hisindex/downloadRecordFile (A.2). The body is
// flat JSON; callID is required, the other fields narrow the recordings.
func (s *Server) cmsDownloadRecordFile(q *request) *reply {
	if q.r.URL.RawQuery != "" {
		return cmsError("query parameters are not accepted")
	}
	obj, err := decodeObject(q.body)
	if err != nil {
		return cmsError("request body format wrong: " + err.Error())
	}
	if fe := checkFields(obj, []field{
		required("callID", 25), optional("workNo", 32), optional("beginTime", 14),
		optional("callerNo", 26), optional("calleeNo", 26),
	}); fe != nil {
		return cmsError(fe.desc)
	}
	var b cecwire.CMSDownloadRecordFileBody
	if err := json.Unmarshal(q.body, &b); err != nil {
		return cmsError("request body format wrong: " + err.Error())
	}
	var day string
	if b.BeginTime != "" {
		t, err := time.ParseInLocation(cecwire.CMSTimeLayout, b.BeginTime, s.o.Location)
		if err != nil || t.Format(cecwire.CMSTimeLayout) != b.BeginTime {
			return cmsError("beginTime format wrong: want yyyyMMddHHmmss")
		}
		day = t.Format("2006-01-02")
	}
	c := s.ds.byCallID[b.CallID]
	if c == nil || c.ak != q.ak || (day != "" && day != c.day) ||
		(b.CallerNo != "" && b.CallerNo != c.caller) || (b.CalleeNo != "" && b.CalleeNo != c.callee) {
		return cmsError(cecwire.CMSRecordListEmptyDesc)
	}
	var recs []*recording
	// Late and unavailable recordings are left out of the call's recordings.
	for _, r := range s.downloadable(c.agentRecs) {
		if b.WorkNo == "" || b.WorkNo == r.agentID {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return cmsError(cecwire.CMSRecordListEmptyDesc)
	}
	return recordingsReply(recs, func(r *recording) string { return path.Base(r.fileName) }, c.id+".zip")
}
