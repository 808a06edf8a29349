package cecclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// maxNameBytes bounds the upstream names the client forwards. The documented
// lengths (billFileName ≤ 49, fileName ≤ 127/225/255 depending on the page)
// disagree, so the server's own checks (0300003) decide; this only stops
// absurd input.
const maxNameBytes = 1024

// BillQuery is the input of QueryBillData (cec-api.md §3.1).
type BillQuery struct {
	Begin, End  time.Time      // End-Begin ≤ 3 days
	Location    *time.Location // tenant time zone of beginTime/endTime; nil = UTC
	DataType    string         // cecwire.DataTypeCall, DataTypeRecord or DataTypeCallRecord (default)
	CallBackURL string         // required; where CC-FS posts the file name
	AccountID   string         // optional filters
	AgentID     string
	CallID      string
}

// QueryBillData asks CC-FS to build a CDR / recording-index package for the
// window and returns the responseId. The package is announced later on
// CallBackURL (see DecodeBillCallback); BillFileName derives its name.
func (c *Client) QueryBillData(ctx context.Context, q BillQuery) (responseID string, err error) {
	const op = "query bill data"
	body, err := q.body()
	if err != nil {
		return "", fmt.Errorf("cec: %s: %w", op, err)
	}
	rq, err := c.newRequest(ServiceFS, op, "", cecwire.PathQueryBillData, nil, cecwire.NewEnvelope(body))
	if err != nil {
		return "", err
	}
	err = c.do(ctx, rq, func(resp *http.Response) error {
		b, err := readJSON(resp.Body, c.o.MaxJSONBytes)
		if err != nil {
			return err
		}
		if err := resultError(rq, resp.StatusCode, b); err != nil {
			return err
		}
		var ans struct {
			ResultData struct {
				ResponseID string `json:"responseId"`
			} `json:"resultData"`
		}
		if err := json.Unmarshal(b, &ans); err != nil {
			return decodeErr("resultData", err)
		}
		if err := checkText("resultData.responseId", ans.ResultData.ResponseID, 255); err != nil {
			return &APIError{Service: ServiceFS, Op: op, HTTPStatus: resp.StatusCode, Desc: err.Error()}
		}
		responseID = ans.ResultData.ResponseID
		return nil
	})
	return responseID, err
}

func (q BillQuery) body() (cecwire.QueryBillDataBody, error) {
	var b cecwire.QueryBillDataBody
	switch {
	case q.Begin.IsZero() || q.End.IsZero():
		return b, invalidArg("beginTime and endTime are required")
	case !q.End.After(q.Begin):
		return b, invalidArg("endTime must be after beginTime")
	case q.End.Sub(q.Begin) > cecwire.MaxQueryBillDataWindowDays*24*time.Hour:
		return b, invalidArg("window %s is longer than %d days", q.End.Sub(q.Begin), cecwire.MaxQueryBillDataWindowDays)
	}
	dt := q.DataType
	if dt == "" {
		dt = cecwire.DataTypeCallRecord
	}
	if dt != cecwire.DataTypeCall && dt != cecwire.DataTypeRecord && dt != cecwire.DataTypeCallRecord {
		return b, invalidArg("dataType %q is not call, record or call_record", q.DataType)
	}
	cb, err := url.Parse(q.CallBackURL)
	if q.CallBackURL == "" || err != nil || (cb.Scheme != "https" && cb.Scheme != "http") || cb.Host == "" {
		return b, invalidArg("callBackURL must be an absolute http(s) URL")
	}
	for _, f := range []struct{ name, v string }{{"accountId", q.AccountID}, {"agentId", q.AgentID}, {"callId", q.CallID}} {
		if f.v != "" {
			if err := checkText(f.name, f.v, 256); err != nil {
				return b, invalidArg("%v", err)
			}
		}
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	return cecwire.QueryBillDataBody{
		BeginTime:   q.Begin.In(loc).Format(cecwire.TimeLayout),
		EndTime:     q.End.In(loc).Format(cecwire.TimeLayout),
		AccountID:   q.AccountID,
		AgentID:     q.AgentID,
		CallID:      q.CallID,
		DataType:    dt,
		CallBackURL: q.CallBackURL,
	}, nil
}

// BillFileName returns the name of the package queryBillData builds:
// yyyyMMdd (the date of the call, in callDate's location) + "_" + the
// responseId without dashes + ".zip" (cec-api.md §3.1).
func BillFileName(callDate time.Time, responseID string) string {
	return callDate.Format(cecwire.BillFileDateLayout) + "_" + strings.ReplaceAll(responseID, "-", "") + ".zip"
}

// DownloadBillFile downloads a CDR / recording-index package (ZIP, cec-api.md A.3).
func (c *Client) DownloadBillFile(ctx context.Context, billFileName string) (*Download, error) {
	return c.downloadFS(ctx, "download bill file", billFileName, "billFileName", cecwire.PathDownloadBillFile, nil, 0,
		cecwire.NewEnvelope(cecwire.DownloadBillFileBody{BillFileName: billFileName}))
}

// DownloadRecordFile downloads one recording by the file_name of the
// recording index (a single WAV, cec-api.md §4).
func (c *Client) DownloadRecordFile(ctx context.Context, fileName string) (*Download, error) {
	return c.downloadFS(ctx, "download record file", fileName, "fileName", cecwire.PathDownloadRecordFile, nil, c.o.MaxRecordingBytes,
		cecwire.NewEnvelope(cecwire.FileNameBody{FileName: fileName}))
}

// DownloadRecordRequest selects recordings for DownloadRecord: FileName (the
// index's original_file_name) and/or CallID; CcID defaults to "1" on the server.
type DownloadRecordRequest struct {
	FileName string
	CallID   string
	CcID     string
}

// DownloadRecord is the "extended" download meant for archiving (cec-api.md
// §4): a WAV, or a ZIP (Download.Zip) when the call has several recordings.
func (c *Client) DownloadRecord(ctx context.Context, r DownloadRecordRequest) (*Download, error) {
	const op = "download record"
	if r.FileName == "" && r.CallID == "" {
		return nil, fmt.Errorf("cec: %s: %w", op, invalidArg("fileName or callId is required"))
	}
	for _, f := range []struct{ name, v string }{{"fileName", r.FileName}, {"callId", r.CallID}, {"ccId", r.CcID}} {
		if f.v != "" {
			if err := checkText(f.name, f.v, maxNameBytes); err != nil {
				return nil, fmt.Errorf("cec: %s: %w", op, invalidArg("%v", err))
			}
		}
	}
	obj, fallback := r.FileName, r.FileName
	if obj == "" {
		obj, fallback = "callId "+r.CallID, r.CallID
	}
	rq, err := c.newRequest(ServiceFS, op, displayName(obj), cecwire.PathDownloadRecord, nil,
		cecwire.NewEnvelope(cecwire.DownloadRecordBody(r)))
	if err != nil {
		return nil, err
	}
	rq.maxBody = c.o.MaxRecordingBytes
	return c.download(ctx, rq, fallback)
}

// DownloadOiapRecord downloads an intelligent-IVR recording (cec-api.md A.1).
// locationID, when not empty, must be an integer and is sent as the
// locationId query parameter.
func (c *Client) DownloadOiapRecord(ctx context.Context, fileName string, locationID string) (*Download, error) {
	var q url.Values
	if locationID != "" {
		if _, err := strconv.ParseUint(locationID, 10, 63); err != nil {
			return nil, fmt.Errorf("cec: download oiap record: %w", invalidArg("locationId is not an integer"))
		}
		q = url.Values{"locationId": {locationID}}
	}
	return c.downloadFS(ctx, "download oiap record", fileName, "fileName", cecwire.PathDownloadOiapRecord, q, c.o.MaxRecordingBytes,
		cecwire.NewEnvelope(cecwire.FileNameBody{FileName: fileName}))
}

// downloadFS downloads from CC-FS; maxBody bounds the body (0: no bound).
func (c *Client) downloadFS(ctx context.Context, op, name, field, path string, q url.Values, maxBody int64, body any) (*Download, error) {
	if err := checkText(field, name, maxNameBytes); err != nil {
		return nil, fmt.Errorf("cec: %s: %w", op, invalidArg("%v", err))
	}
	rq, err := c.newRequest(ServiceFS, op, displayName(name), path, q, body)
	if err != nil {
		return nil, err
	}
	rq.maxBody = maxBody
	return c.download(ctx, rq, name)
}

// CMSRecordRequest selects the recordings of one call for CMSDownloadRecordFile.
type CMSRecordRequest struct {
	CallID   string    // required, e.g. 1748587841-77268
	WorkNo   string    // agent ID, optional
	Begin    time.Time // optional; sent as yyyyMMddHHmmss in Begin's own location
	CallerNo string    // optional
	CalleeNo string    // optional
}

// CMSDownloadRecordFile downloads the inspection recordings of a call from
// CC-CMS (cec-api.md A.2): a WAV, or a ZIP when there are several. "Record
// List is empty" is a NotFound error.
func (c *Client) CMSDownloadRecordFile(ctx context.Context, r CMSRecordRequest) (*Download, error) {
	const op = "cms download record file"
	if err := checkText("callID", r.CallID, maxNameBytes); err != nil {
		return nil, fmt.Errorf("cec: %s: %w", op, invalidArg("%v", err))
	}
	for _, f := range []struct{ name, v string }{{"workNo", r.WorkNo}, {"callerNo", r.CallerNo}, {"calleeNo", r.CalleeNo}} {
		if f.v != "" {
			if err := checkText(f.name, f.v, 256); err != nil {
				return nil, fmt.Errorf("cec: %s: %w", op, invalidArg("%v", err))
			}
		}
	}
	body := cecwire.CMSDownloadRecordFileBody{CallID: r.CallID, WorkNo: r.WorkNo, CallerNo: r.CallerNo, CalleeNo: r.CalleeNo}
	if !r.Begin.IsZero() {
		body.BeginTime = r.Begin.Format(cecwire.CMSTimeLayout)
	}
	rq, err := c.newRequest(ServiceCMS, op, displayName(r.CallID), cecwire.PathCMSDownloadRecordFile, nil, body)
	if err != nil {
		return nil, err
	}
	rq.maxBody = c.o.MaxRecordingBytes
	d, err := c.download(ctx, rq, "")
	if err != nil {
		return nil, err
	}
	if d.FileName == "" {
		if base := safeBase(r.CallID); base != "" {
			d.FileName = base + ".wav"
			if d.Zip {
				d.FileName = base + ".zip"
			}
		}
	}
	return d, nil
}

// UploadResult is what CC-FS answers to an upload.
type UploadResult struct {
	FileName    string   // e.g. Y:/3rdfile/53/thirdvoicebotfile/8fSsBaEb_1631869974029.wav
	LocationIDs []string // filled in CTI-pool mode
}

// UploadFile uploads a voice file for a third-party chatbot (cec-api.md A.4).
// The WAV is validated first (ValidateUploadWAV with Options.UploadMaxBytes).
// A retried upload after a lost answer may store the file twice; the server
// names each copy itself.
func (c *Client) UploadFile(ctx context.Context, vdnID int, wav []byte) (UploadResult, error) {
	const op = "upload file"
	if vdnID <= 0 {
		return UploadResult{}, fmt.Errorf("cec: %s: %w", op, invalidArg("vdnId %d is not positive", vdnID))
	}
	if err := ValidateUploadWAV(wav, c.o.UploadMaxBytes); err != nil {
		return UploadResult{}, fmt.Errorf("cec: %s: %w", op, err)
	}
	rq, err := c.newRequest(ServiceFS, op, "", cecwire.PathUploadFile, url.Values{"vdnId": {strconv.Itoa(vdnID)}},
		cecwire.NewEnvelope(cecwire.UploadFileBody{Data: base64.StdEncoding.EncodeToString(wav)}))
	if err != nil {
		return UploadResult{}, err
	}
	var res UploadResult
	err = c.do(ctx, rq, func(resp *http.Response) error {
		b, err := readJSON(resp.Body, c.o.MaxJSONBytes)
		if err != nil {
			return err
		}
		if err := resultError(rq, resp.StatusCode, b); err != nil {
			return err
		}
		var ans struct {
			ResultData struct {
				FileName   string               `json:"fileName"`
				LocationID []cecwire.FlexString `json:"locationId"`
			} `json:"resultData"`
		}
		if err := json.Unmarshal(b, &ans); err != nil {
			return decodeErr("resultData", err)
		}
		if err := checkText("resultData.fileName", ans.ResultData.FileName, maxNameBytes); err != nil {
			return &APIError{Service: ServiceFS, Op: op, HTTPStatus: resp.StatusCode, Desc: err.Error()}
		}
		res = UploadResult{FileName: ans.ResultData.FileName}
		for _, l := range ans.ResultData.LocationID {
			res.LocationIDs = append(res.LocationIDs, string(l))
		}
		return nil
	})
	return res, err
}
