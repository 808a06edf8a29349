package cecsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// patterns are the file name shapes the interfaces accept.
type patterns struct {
	agentFile *regexp.Regexp   // /{nodeId}/{ccId}/record/{vdnId}/{yyyymmdd}/{agentId}/{name}.wav
	original  *regexp.Regexp   // X:/{nodeId}/{ccId}/{yyyymmdd}/{agentId}/{name}.V3
	oiap      []*regexp.Regexp // the four shapes of A.1; groups: vdn, date
	upload    *regexp.Regexp   // Y:/3rdfile/{vdn}/thirdvoicebotfile/{rand8}_{ms}.wav
	billFile  *regexp.Regexp   // yyyyMMdd_{32 hex}.zip
	integer   *regexp.Regexp
}

func compilePatterns() (*patterns, error) {
	var err error
	c := func(expr string) *regexp.Regexp {
		re, e := regexp.Compile(expr)
		if e != nil && err == nil {
			err = fmt.Errorf("cecsim: compile %q: %w", expr, e)
		}
		return re
	}
	const name = `[A-Za-z0-9_-]+`
	p := &patterns{
		agentFile: c(`^/([0-9]+)/([0-9]+)/record/([0-9]+)/([0-9]{8})/([0-9]+)/` + name + `\.wav$`),
		original:  c(`^[A-Z]:/([0-9]+)/([0-9]+)/([0-9]{8})/([0-9]+)/` + name + `\.V3$`),
		oiap: []*regexp.Regexp{
			c(`^[A-Z]:/record/([0-9]+)/odfsrecord/([0-9]{8})/` + name + `\.wav$`),
			c(`^[A-Z]:/([0-9]+)/odfsrecord/([0-9]{8})/` + name + `\.wav$`),
			c(`^[A-Z]:/record/([0-9]+)/([0-9]{8})/` + name + `\.wav$`),
			c(`^[A-Z]:/([0-9]+)/transferrecord/([0-9]{8})/` + name + `\.wav$`),
		},
		upload:   c(`^[A-Z]:/3rdfile/([0-9]+)/thirdvoicebotfile/[A-Za-z0-9]{8}_[0-9]+\.wav$`),
		billFile: c(`^([0-9]{8})_[0-9a-f]{32}\.zip$`),
		integer:  c(`^[0-9]{1,10}$`),
	}
	return p, err
}

// field is the rule of one string parameter.
type field struct {
	name       string
	max        int // characters
	required   bool
	allowEmpty bool // "" is accepted (and checked by the handler)
}

func required(name string, max int) field { return field{name: name, max: max, required: true} }

func optional(name string, max int) field { return field{name: name, max: max} }

// fieldError is a parameter error with its CC-FS code.
type fieldError struct {
	code, desc string
}

// checkFields applies the CC-FS parameter rules to a JSON object: unknown
// parameters and non-strings are format errors (0300004), a missing required one
// is null (0300001), "" is empty (0300002), more than max characters is too long (0300003).
func checkFields(obj map[string]json.RawMessage, fields []field) *fieldError {
	known := map[string]bool{}
	for _, f := range fields {
		known[f.name] = true
	}
	for k := range obj {
		if !known[k] {
			return &fieldError{cecwire.CodeParamFormat, k + " format wrong: not a parameter of this interface"}
		}
	}
	for _, f := range fields {
		raw, ok := obj[f.name]
		if !ok || string(raw) == "null" {
			if f.required {
				return &fieldError{cecwire.CodeParamNull, f.name + " is null"}
			}
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return &fieldError{cecwire.CodeParamFormat, f.name + " format wrong: not a string"}
		}
		switch {
		case v == "" && !f.allowEmpty:
			return &fieldError{cecwire.CodeParamEmpty, f.name + " is empty string"}
		case f.max > 0 && utf8.RuneCountInString(v) > f.max:
			return &fieldError{cecwire.CodeParamTooLong, fmt.Sprintf("%s too long: %d characters, max %d", f.name, utf8.RuneCountInString(v), f.max)}
		}
	}
	return nil
}

// decodeObject decodes b as one JSON object, nothing before or after it.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return obj, nil
}

// parseCCFS checks the CC-FS envelope and the msgBody fields, then decodes
// msgBody into dst. It returns the error answer, or nil.
func parseCCFS(body []byte, dst any, fields ...field) *reply {
	if len(bytes.TrimSpace(body)) == 0 {
		return ccfsError(cecwire.CodeBodyNull, "request body params is null")
	}
	env, err := decodeObject(body)
	if err != nil {
		return ccfsError(cecwire.CodeParamFormat, "request body format wrong: "+err.Error())
	}
	for k := range env {
		if k != "request" && k != "msgBody" {
			return ccfsError(cecwire.CodeParamFormat, k+" format wrong: not a parameter of the envelope")
		}
	}
	var hdr map[string]json.RawMessage
	var version string
	if raw, ok := env["request"]; !ok || json.Unmarshal(raw, &hdr) != nil || hdr == nil ||
		json.Unmarshal(hdr["version"], &version) != nil || version != cecwire.Version || len(hdr) != 1 {
		return ccfsError(cecwire.CodeWrongVersion, "version is wrong, the current version is "+cecwire.Version)
	}
	raw, ok := env["msgBody"]
	if !ok || string(raw) == "null" {
		return ccfsError(cecwire.CodeBodyNull, "msgBody is null")
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg == nil {
		return ccfsError(cecwire.CodeParamFormat, "msgBody format wrong: not a JSON object")
	}
	if fe := checkFields(msg, fields); fe != nil {
		return ccfsError(fe.code, fe.desc)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return ccfsError(cecwire.CodeParamFormat, "msgBody format wrong: "+err.Error())
	}
	return nil
}

// checkQuery allows only the named query parameters, each at most once. It
// returns their values ("" when absent) and whether each was present.
func checkQuery(raw string, names ...string) (map[string]string, map[string]bool, *reply) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, nil, ccfsError(cecwire.CodeParamFormat, "query string format wrong: "+err.Error())
	}
	vals, present := map[string]string{}, map[string]bool{}
	for k, vs := range q {
		known := false
		for _, n := range names {
			known = known || n == k
		}
		if !known {
			return nil, nil, ccfsError(cecwire.CodeParamFormat, k+" format wrong: not a parameter of this interface")
		}
		if len(vs) != 1 {
			return nil, nil, ccfsError(cecwire.CodeParamFormat, k+" format wrong: given more than once")
		}
		vals[k], present[k] = vs[0], true
	}
	return vals, present, nil
}

// validDate reports whether s is a real yyyymmdd date.
func validDate(s string) bool {
	t, err := time.Parse("20060102", s)
	return err == nil && t.Format("20060102") == s
}

func errNoData() *reply { return ccfsError(cecwire.CodeNoData, "No data found") }

func errNotOwner(param string) *reply {
	return ccfsError(cecwire.CodeParamError, param+" does not belong to the developer")
}

func errDate(param string) *reply {
	return ccfsError(cecwire.CodeFileNameDate, "the date in the value of "+param+" is invalid")
}

// ownedBy reports whether VDN vdn belongs to the developer ak. Leading zeros
// are ignored, so "039" is VDN 39.
func (s *Server) ownedBy(vdn, ak string) bool {
	n, err := strconv.ParseUint(vdn, 10, 32)
	return err == nil && s.ds.vdnOwner[strconv.FormatUint(n, 10)] == ak
}

// downloadRecordFile: CC-FS downloadRecordFile (cec-api.md §4), fileName = index file_name.
func (s *Server) downloadRecordFile(q *request) *reply {
	if _, _, rep := checkQuery(q.r.URL.RawQuery); rep != nil {
		return rep
	}
	var b cecwire.FileNameBody
	if rep := parseCCFS(q.body, &b, required("fileName", 225)); rep != nil {
		return rep
	}
	m := s.pat.agentFile.FindStringSubmatch(b.FileName)
	if m == nil {
		return ccfsError(cecwire.CodeParamFormat, "fileName format wrong: want /{nodeId}/{ccId}/record/{vdnId}/{yyyymmdd}/{agentId}/{name}.wav")
	}
	if !validDate(m[4]) {
		return errDate("fileName")
	}
	if !s.ownedBy(m[3], q.ak) {
		return errNotOwner("fileName")
	}
	rec := s.ds.byFileName[b.FileName]
	// A late recording answers as an unknown one; an unavailable one, listed
	// but not on the file server yet, answers the same code.
	if rec == nil || s.isWithheld(rec) {
		return errNoData()
	}
	return recordingReply(rec, path.Base(rec.fileName))
}

// downloadRecord: CC-FS downloadRecord, the "extended" download by
// original_file_name and/or callId. Several recordings come as one ZIP.
func (s *Server) downloadRecord(q *request) *reply {
	if _, _, rep := checkQuery(q.r.URL.RawQuery); rep != nil {
		return rep
	}
	var b cecwire.DownloadRecordBody
	if rep := parseCCFS(q.body, &b, optional("fileName", 129), optional("callId", 25), optional("ccId", 64)); rep != nil {
		return rep
	}
	if b.FileName == "" && b.CallID == "" {
		return ccfsError(cecwire.CodeParamNull, "fileName and callId is null")
	}
	cc := b.CcID
	if cc == "" {
		cc = "1"
	}
	var recs []*recording
	if b.FileName != "" {
		m := s.pat.original.FindStringSubmatch(b.FileName)
		if m == nil {
			return ccfsError(cecwire.CodeParamFormat, "fileName format wrong: want X:/{nodeId}/{ccId}/{yyyymmdd}/{agentId}/{name}.V3")
		}
		if !validDate(m[3]) {
			return errDate("fileName")
		}
		rec := s.ds.byOriginal[b.FileName]
		if rec == nil || s.isLate(rec) {
			return errNoData()
		}
		if rec.call.ak != q.ak {
			return errNotOwner("fileName")
		}
		if rec.call.ccID != cc || (b.CallID != "" && rec.call.id != b.CallID) || s.isWithheld(rec) {
			return errNoData()
		}
		recs = []*recording{rec}
	} else {
		c := s.ds.byCallID[b.CallID]
		if c == nil {
			return errNoData()
		}
		if c.ak != q.ak {
			return errNotOwner("callId")
		}
		// Late and unavailable recordings are left out of the call's recordings.
		recs = s.downloadable(c.agentRecs)
		if c.ccID != cc || len(recs) == 0 {
			return errNoData()
		}
	}
	return recordingsReply(recs, func(r *recording) string { return path.Base(r.original) }, recs[0].call.id+".zip")
}

// downloadOiapRecord: CC-FS downloadOiapRecord?locationId=N (A.1) for transfer,
// IVR and uploaded recordings.
func (s *Server) downloadOiapRecord(q *request) *reply {
	vals, present, rep := checkQuery(q.r.URL.RawQuery, "locationId")
	if rep != nil {
		return rep
	}
	loc := vals["locationId"]
	if present["locationId"] {
		if loc == "" {
			return ccfsError(cecwire.CodeParamEmpty, "locationId is empty string")
		}
		if !s.pat.integer.MatchString(loc) {
			return ccfsError(cecwire.CodeParamFormat, "locationId format wrong: not an integer")
		}
	}
	var b cecwire.FileNameBody
	if rep := parseCCFS(q.body, &b, required("fileName", 127)); rep != nil {
		return rep
	}
	vdn, date := "", ""
	for _, re := range s.pat.oiap {
		if m := re.FindStringSubmatch(b.FileName); m != nil {
			vdn, date = m[1], m[2]
			break
		}
	}
	if m := s.pat.upload.FindStringSubmatch(b.FileName); m != nil {
		vdn = m[1]
	}
	if vdn == "" {
		return ccfsError(cecwire.CodeParamFormat, "fileName format wrong: not an intelligent-IVR recording path")
	}
	if date != "" && !validDate(date) {
		return errDate("fileName")
	}
	if !s.ownedBy(vdn, q.ak) {
		return errNotOwner("fileName")
	}
	if rec := s.ds.byOiapPath[b.FileName]; rec != nil {
		if present["locationId"] && !sameInteger(loc, rec.location) {
			return errNoData()
		}
		return recordingReply(rec, path.Base(rec.fileName))
	}
	s.mu.Lock()
	up := s.uploads[b.FileName]
	s.mu.Unlock()
	if up == nil {
		return errNoData()
	}
	if present["locationId"] && !sameInteger(loc, "0") && !sameInteger(loc, "256") {
		return errNoData()
	}
	return fileReply(path.Base(b.FileName), int64(len(up.data)), func(w io.Writer) error {
		_, err := w.Write(up.data)
		return err
	})
}

func sameInteger(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x == y
}

// upload is a file stored by ivr/uploadFile.
type upload struct {
	data []byte
	ak   string
	vdn  string
	at   time.Time
}

// Upload is a file ivr/uploadFile accepted, as Uploads lists it.
type Upload struct {
	FileName   string    `json:"fileName"` // the name the answer gave, e.g. Y:/3rdfile/39/thirdvoicebotfile/aB3dE5gH_1631869974029.wav
	LocationID []string  `json:"locationId"`
	VDN        string    `json:"vdn"`    // vdnId, without leading zeros
	AK         string    `json:"ak"`     // the developer who uploaded it
	Size       int64     `json:"size"`   // bytes of the decoded file
	SHA256     string    `json:"sha256"` // lowercase hex of the decoded file
	Time       time.Time `json:"time"`   // Options.Now at the upload
}

// Uploads lists the files ivr/uploadFile accepted, in the order they came.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Upload, 0, len(s.uploadOrder))
	for _, name := range s.uploadOrder {
		up := s.uploads[name]
		sum := sha256.Sum256(up.data)
		out = append(out, Upload{FileName: name, LocationID: uploadLocations(), VDN: up.vdn, AK: up.ak,
			Size: int64(len(up.data)), SHA256: hex.EncodeToString(sum[:]), Time: up.at})
	}
	return out
}

// uploadLocations is the locationId list of an upload (CTI-pool mode).
func uploadLocations() []string { return []string{"0", "256"} }

// uploadFile: CC-FS ivr/uploadFile?vdnId=N (A.4).
func (s *Server) uploadFile(q *request) *reply {
	vals, present, rep := checkQuery(q.r.URL.RawQuery, "vdnId")
	if rep != nil {
		return rep
	}
	var b cecwire.UploadFileBody
	if rep := parseCCFS(q.body, &b, required("data", 0)); rep != nil {
		return rep
	}
	vdn := vals["vdnId"]
	switch {
	case !present["vdnId"]:
		return ccfsError(cecwire.CodeParamNull, "vdnId is null")
	case vdn == "":
		return ccfsError(cecwire.CodeParamEmpty, "vdnId is empty string")
	case !s.pat.integer.MatchString(vdn):
		return ccfsError(cecwire.CodeParamFormat, "vdnId format wrong: not an integer")
	case !s.ownedBy(vdn, q.ak):
		return errNotOwner("vdnId")
	}
	n, _ := strconv.ParseUint(vdn, 10, 32)
	vdn = strconv.FormatUint(n, 10)
	if int64(base64.StdEncoding.DecodedLen(len(b.Data))) > s.o.UploadLimitBytes+2 {
		return ccfsError(cecwire.CodeParamFormat, fmt.Sprintf("data format wrong: the file exceeds the upload limit of %d bytes", s.o.UploadLimitBytes))
	}
	data, err := base64.StdEncoding.Strict().DecodeString(b.Data)
	if err != nil {
		return ccfsError(cecwire.CodeParamFormat, "data format wrong: not base64: "+err.Error())
	}
	if int64(len(data)) > s.o.UploadLimitBytes {
		return ccfsError(cecwire.CodeParamFormat, fmt.Sprintf("data format wrong: the file has %d bytes, the upload limit is %d", len(data), s.o.UploadLimitBytes))
	}
	if err := checkUploadWAV(data); err != nil {
		return ccfsError(cecwire.CodeParamFormat, "data format wrong: "+err.Error())
	}
	s.mu.Lock()
	var name string
	for name == "" || s.uploads[name] != nil {
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		var r [8]byte
		for i := range r {
			r[i] = letters[s.idRNG.IntN(len(letters))]
		}
		name = fmt.Sprintf("Y:/3rdfile/%s/thirdvoicebotfile/%s_%d.wav", vdn, r[:], s.o.Now().UnixMilli())
	}
	s.uploads[name] = &upload{data: data, ak: q.ak, vdn: vdn, at: s.o.Now()}
	s.uploadOrder = append(s.uploadOrder, name)
	s.mu.Unlock()
	s.log.Info("file uploaded", zap.String("vdn", vdn), zap.Int("bytes", len(data)))
	return ccfsSuccess(cecwire.UploadFileData{FileName: name, LocationID: uploadLocations()}, false)
}
