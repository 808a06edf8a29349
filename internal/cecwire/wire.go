// Package cecwire holds the wire shapes of the Huawei Cloud CEC interfaces that
// cec-archiver uses: paths, request and response bodies, result codes and the
// CSV columns of the CDR packages. It is the only part of the archiver that the
// CEC simulator shares with the client, so everything here is written from
// ../shared/cec-api.md and carries no behaviour beyond (un)marshalling.
package cecwire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Version is the only accepted value of request.version on CC-FS.
const Version = "2.0"

// Paths of the interfaces, relative to the configured base URL of each service.
const (
	PathQueryBillData          = "/CCFS/resource/ccfs/queryBillData"
	PathDownloadBillFile       = "/CCFS/resource/ccfs/downloadBillFile"
	PathDownloadRecordFile     = "/CCFS/resource/ccfs/downloadRecordFile"
	PathDownloadRecord         = "/CCFS/resource/ccfs/downloadRecord"
	PathDownloadOiapRecord     = "/CCFS/resource/ccfs/downloadOiapRecord" // ?locationId=N
	PathUploadFile             = "/CCFS/resource/ccfs/ivr/uploadFile"     // ?vdnId=N
	PathCMSDownloadRecordFile  = "/rest/cmsapp/v1/openapi/hisindex/downloadRecordFile"
	PathGetToken               = "/oifde/rest/api/gettoken"
	PathQueryTransferRecords   = "/oifde/rest/api/queryTransferRecordHistory"
	PathQueryRecordHistory     = "/oifde/rest/api/queryRecordHistory"
	ContentTypeJSON            = "application/json;charset=UTF-8"
	ContentTypeOctetStream     = "Application/Octet-stream;charset=UTF-8"
	TimeLayout                 = "2006-01-02 15:04:05" // yyyy-MM-dd HH:mm:ss (queries, CSV dates)
	CMSTimeLayout              = "20060102150405"      // yyyyMMddHHmmss (CC-CMS beginTime)
	BillFileDateLayout         = "20060102"            // yyyyMMdd prefix of billFileName
	SignTimeLayout             = "2006-01-02T15:04:05Z"
	AuthV2Prefix               = "auth-v2"
	DefaultSignedHeaders       = "content-length;content-type;host"
	MaxQueryBillDataWindowDays = 3
)

// CC-FS result codes (cec-api.md §6). All of them come back with HTTP 200.
const (
	CodeSuccess            = "0"
	CodeSuccessCMS         = "0100000" // CC-CMS success; seen on some CC-FS replies too
	CodeParamNull          = "0300001"
	CodeParamEmpty         = "0300002"
	CodeParamTooLong       = "0300003"
	CodeParamFormat        = "0300004"
	CodeParamTooShort      = "0300005"
	CodeWrongVersion       = "0300006"
	CodeBodyNull           = "0300007"
	CodeDownloadFlowCtl    = "0300008"
	CodeQueryFlowCtl       = "0300009"
	CodeFileNameDate       = "0300010"
	CodeNoData             = "0300012"
	CodeParamError         = "0300028"
	CodeCMSFailure         = "1" // CC-CMS generic failure ("Record List is empty")
	CMSRecordListEmptyDesc = "Record List is empty"
)

// OIFDE error codes (integers in errorCode).
const (
	OIFDESuccess      = 0
	OIFDETokenInvalid = 900001 // no token information exists or the token has expired
)

// OIFDE page sizes accepted by queryRecordHistory and queryTransferRecordHistory.
var PageSizes = []int{5, 10, 20, 50, 100}

// ValidPageSize reports whether n is one of PageSizes.
func ValidPageSize(n int) bool {
	for _, p := range PageSizes {
		if p == n {
			return true
		}
	}
	return false
}

// RequestHeader is the "request" object of every CC-FS envelope.
type RequestHeader struct {
	Version string `json:"version"`
}

// Envelope is the CC-FS request body: {"request":{"version":"2.0"},"msgBody":{...}}.
type Envelope[T any] struct {
	Request RequestHeader `json:"request"`
	MsgBody T             `json:"msgBody"`
}

// NewEnvelope wraps body with the current version.
func NewEnvelope[T any](body T) Envelope[T] {
	return Envelope[T]{Request: RequestHeader{Version: Version}, MsgBody: body}
}

// LegacyResponse is the "response" object CC-FS still returns for compatibility.
type LegacyResponse struct {
	Version    string `json:"version,omitempty"`
	ResultCode string `json:"resultCode,omitempty"`
	ResultMsg  string `json:"resultMsg,omitempty"`
}

// Result is the JSON body of every CC-FS / CC-CMS answer that is not a file:
// errors of the download interfaces and the answers of queryBillData and uploadFile.
type Result struct {
	ResultCode string          `json:"resultCode"`
	ResultDesc string          `json:"resultDesc"`
	ResultData json.RawMessage `json:"resultData,omitempty"`
	Response   *LegacyResponse `json:"response,omitempty"`
}

// QueryBillDataBody is the msgBody of queryBillData.
type QueryBillDataBody struct {
	BeginTime   string `json:"beginTime"`
	EndTime     string `json:"endTime"`
	AccountID   string `json:"accountId,omitempty"`
	AgentID     string `json:"agentId,omitempty"`
	CallID      string `json:"callId,omitempty"`
	CallerNo    string `json:"callerNo,omitempty"`
	CalleeNo    string `json:"calleeNo,omitempty"`
	DataType    string `json:"dataType"` // DataTypeCall | DataTypeRecord | DataTypeCallRecord
	CallBackURL string `json:"callBackURL"`
}

// dataType values of queryBillData.
const (
	DataTypeCall       = "call"
	DataTypeRecord     = "record"
	DataTypeCallRecord = "call_record"
)

// QueryBillDataData is resultData of a successful queryBillData.
type QueryBillDataData struct {
	ResponseID string `json:"responseId"`
}

// BillCallbackBody is the msgBody CC-FS POSTs to callBackURL when a package is ready.
type BillCallbackBody struct {
	ResponseID   string `json:"responseId"`
	BillFileName string `json:"billFileName"`
	AccountID    string `json:"accountId,omitempty"`
}

// DownloadBillFileBody is the msgBody of downloadBillFile.
type DownloadBillFileBody struct {
	BillFileName string `json:"billFileName"`
}

// FileNameBody is the msgBody of downloadRecordFile and downloadOiapRecord.
type FileNameBody struct {
	FileName string `json:"fileName"`
}

// DownloadRecordBody is the msgBody of downloadRecord (the "extended" download).
type DownloadRecordBody struct {
	FileName string `json:"fileName,omitempty"`
	CallID   string `json:"callId,omitempty"`
	CcID     string `json:"ccId,omitempty"`
}

// UploadFileBody is the msgBody of ivr/uploadFile.
type UploadFileBody struct {
	Data string `json:"data"` // base64 of the WAV file
}

// UploadFileData is resultData of a successful ivr/uploadFile.
type UploadFileData struct {
	FileName   string   `json:"fileName"`
	LocationID []string `json:"locationId,omitempty"`
}

// CMSDownloadRecordFileBody is the flat (no envelope) body of CC-CMS downloadRecordFile.
type CMSDownloadRecordFileBody struct {
	CallID    string `json:"callID"`
	WorkNo    string `json:"workNo,omitempty"`
	BeginTime string `json:"beginTime,omitempty"` // CMSTimeLayout
	CallerNo  string `json:"callerNo,omitempty"`
	CalleeNo  string `json:"calleeNo,omitempty"`
}

// GetTokenRequest is the body of OIFDE gettoken.
type GetTokenRequest struct {
	AppKey    string `json:"appKey"`    // tenant ID
	AppSecret string `json:"appSecret"` // API password
}

// GetTokenResponse is the answer of OIFDE gettoken.
type GetTokenResponse struct {
	ErrorCode  int    `json:"errorCode"`
	ErrorMsg   string `json:"errorMsg"`
	AuthToken  string `json:"authToken"`
	ExpireTime int64  `json:"expireTime"` // seconds, default 3600
}

// OIFDEQuery is the body of queryRecordHistory and queryTransferRecordHistory.
// Every field is a string on the wire, pageNum and pageSize included.
type OIFDEQuery struct {
	TenantID   string `json:"tenantId"`
	AuthToken  string `json:"authToken"`
	BeginTime  string `json:"beginTime,omitempty"`
	EndTime    string `json:"endTime,omitempty"`
	PageNum    string `json:"pageNum,omitempty"`
	PageSize   string `json:"pageSize,omitempty"`
	CallID     string `json:"callId,omitempty"`
	UserMobile string `json:"userMobile,omitempty"`
	CtiCallID  string `json:"ctiCallId,omitempty"`
}

// TransferRecordPage is the answer of queryTransferRecordHistory.
type TransferRecordPage struct {
	ErrorCode    int              `json:"errorCode"`
	ErrorMessage string           `json:"errorMessage"`
	ErrorMsg     string           `json:"errorMsg,omitempty"` // leniency: the sister API's name
	Total        int64            `json:"total"`
	Records      []TransferRecord `json:"transferRecordList"`
}

// TransferRecord is one element of transferRecordList.
type TransferRecord struct {
	ID             FlexString `json:"id"`
	TenantID       string     `json:"tenantId"`
	CallID         string     `json:"callId"`
	CtiCallID      string     `json:"ctiCallId"`
	FlowInstID     FlexString `json:"flowInstId,omitempty"`
	CallingNumber  string     `json:"callingNumber"`
	CalledNumber   string     `json:"calledNumber"`
	TransfNumber   string     `json:"transfNumber"`
	StartTime      int64      `json:"startTime"`         // epoch ms
	EndTime        int64      `json:"endTime,omitempty"` // epoch ms
	RecordFilePath string     `json:"recordFilePath,omitempty"`
	LocationID     FlexString `json:"locationId,omitempty"`
	OpResult       string     `json:"opResult"` // INIT | SUCCESS | FAIL
	RecordResult   string     `json:"recordResult,omitempty"`
}

// opResult values of a transfer record.
const (
	OpResultInit    = "INIT"
	OpResultSuccess = "SUCCESS"
	OpResultFail    = "FAIL"
	RecordResultOK  = "0"
	RecordResultNA  = "N/A"
)

// RecordHistoryPage is the answer of queryRecordHistory.
type RecordHistoryPage struct {
	ErrorCode    int             `json:"errorCode"`
	ErrorMsg     string          `json:"errorMsg"`
	ErrorMessage string          `json:"errorMessage,omitempty"` // leniency: the sister API's name
	Total        int64           `json:"total"`
	Records      []SessionRecord `json:"recordList"`
}

// SessionRecord is one element of recordList (an IVR session record). The
// recording fields are [INFERRED] in cec-api.md §5: named like the transfer record's.
type SessionRecord struct {
	LogID          FlexString `json:"logId"`
	TenantID       string     `json:"tenantId"`
	CallSorID      string     `json:"callSorId"`
	CallID         string     `json:"callId"`
	CtiCallID      string     `json:"ctiCallId"`
	CallingNumber  string     `json:"callingNumber"`
	CalledNumber   string     `json:"calledNumber"`
	BeginTime      FlexString `json:"beginTime,omitempty"`
	EndTime        FlexString `json:"endTime,omitempty"`
	RecordFilePath string     `json:"recordFilePath,omitempty"`
	LocationID     FlexString `json:"locationId,omitempty"`
}

// FlexString decodes a JSON string or a JSON number into its exact text, so
// that numeric IDs above 2^53 keep every digit. It encodes as a string.
type FlexString string

// UnmarshalJSON accepts "abc", 123, 12345678901234567890 and null.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*f = ""
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = FlexString(n.String())
		return nil
	default:
		return fmt.Errorf("cecwire: want a string or a number, got %.20s", b)
	}
}

// String returns the text.
func (f FlexString) String() string { return string(f) }

// FlexInt64 decodes a JSON number or a numeric string ("123").
type FlexInt64 int64

// UnmarshalJSON accepts 123, "123" and null.
func (f *FlexInt64) UnmarshalJSON(b []byte) error {
	var s FlexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if s == "" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return fmt.Errorf("cecwire: not an integer: %q", string(s))
	}
	*f = FlexInt64(n)
	return nil
}

// RecordColumns are the 18 columns of a *_record_*.csv file, in order (cec-api.md §3.3).
var RecordColumns = []string{
	"developer", "account_id", "cc_id", "agent_id", "call_id", "caller_no", "callee_no",
	"call_begin", "call_end", "file_name", "task_status", "task_result", "original_file_name",
	"vdn_id", "call_type", "media_type", "user_wanted_skill_id", "current_skill_id",
}

// CallColumns are the known columns of a *_call_*.csv file, in order. Real files
// may carry more columns after these; readers keep them verbatim.
var CallColumns = []string{
	"developer", "account_id", "cc_id", "agent_id", "call_id", "caller_no", "callee_no",
	"wait_begin", "wait_end", "ack_begin", "ack_end", "call_begin", "call_end",
	"device_type", "device_no", "call_type", "release_cause", "call_id_num", "vdn_id",
	"pre_device_type", "pre_device_no",
}
