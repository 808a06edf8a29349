package cecclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// DefaultPageSize is the OIFDE page size used when OIFDEQuery.PageSize is 0.
const DefaultPageSize = 100

// OIFDEQuery selects OIFDE records. One of CallID, UserMobile and CtiCallID is
// required (the interfaces cannot list a whole window, cec-api.md A.5).
type OIFDEQuery struct {
	CallID     string
	UserMobile string
	CtiCallID  string
	Begin, End time.Time      // optional
	Location   *time.Location // zone of beginTime/endTime on the wire; nil = UTC (cec-api.md §5)
	PageSize   int            // 5, 10, 20, 50 or 100; 0 = 100
}

// String describes the query with the phone number masked.
func (q OIFDEQuery) String() string {
	return fmt.Sprintf("callId=%s userMobile=%s ctiCallId=%s", displayName(q.CallID), displayName(q.UserMobile), displayName(q.CtiCallID))
}

// ident names the query in errors by the IDs it looks up, masked.
func (q OIFDEQuery) ident() string {
	var parts []string
	for _, f := range []struct{ name, v string }{{"ctiCallId", q.CtiCallID}, {"callId", q.CallID}, {"userMobile", q.UserMobile}} {
		if f.v != "" {
			parts = append(parts, f.name+" "+displayName(f.v))
		}
	}
	return strings.Join(parts, " ")
}

func (q OIFDEQuery) validate() (pageSize int, err error) {
	pageSize = q.PageSize
	if pageSize == 0 {
		pageSize = DefaultPageSize
	}
	if !cecwire.ValidPageSize(pageSize) {
		return 0, invalidArg("pageSize %d is not one of 5, 10, 20, 50, 100", q.PageSize)
	}
	if q.CallID == "" && q.UserMobile == "" && q.CtiCallID == "" {
		return 0, invalidArg("one of callId, userMobile, ctiCallId is required")
	}
	for _, f := range []struct{ name, v string }{{"callId", q.CallID}, {"userMobile", q.UserMobile}, {"ctiCallId", q.CtiCallID}} {
		if f.v != "" {
			if err := checkText(f.name, f.v, 256); err != nil {
				return 0, invalidArg("%v", err)
			}
		}
	}
	if !q.Begin.IsZero() && !q.End.IsZero() && q.End.Before(q.Begin) {
		return 0, invalidArg("endTime is before beginTime")
	}
	return pageSize, nil
}

func (q OIFDEQuery) body(tenant, token string, pageNum, pageSize int) cecwire.OIFDEQuery {
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	b := cecwire.OIFDEQuery{
		TenantID: tenant, AuthToken: token,
		PageNum: strconv.Itoa(pageNum), PageSize: strconv.Itoa(pageSize),
		CallID: q.CallID, UserMobile: q.UserMobile, CtiCallID: q.CtiCallID,
	}
	if !q.Begin.IsZero() {
		b.BeginTime = q.Begin.In(loc).Format(cecwire.TimeLayout)
	}
	if !q.End.IsZero() {
		b.EndTime = q.End.In(loc).Format(cecwire.TimeLayout)
	}
	return b
}

// QueryTransferRecords pages through queryTransferRecordHistory (cec-api.md
// A.5). Records are deduplicated by id across pages. It stops at the first
// short or empty page, or once the distinct records seen reach total. Rows
// can drift between two page requests (a record inserted in front of the
// current page): a page then repeats rows of the previous one and the rows
// it pushed out come on a later page, so repeated rows do not count towards
// total and each one allows for one more row beyond it. The query never asks
// for more than ceil((total+repeated)/pageSize)+1 pages, and fails with
// ErrTooManyPages when a full page brings no row that was not seen before.
// A lookup never asks for more than Options.MaxPages pages: a total that
// would need more fails the query at once, before any record is yielded,
// and so does page MaxPages+1; both errors match ErrInvalidAnswer and name
// the query.
//
// A record whose id is empty, not valid UTF-8 or otherwise undecodable is
// yielded as an error wrapping ErrInvalidRecord and the iteration goes on if
// the consumer keeps ranging; any other error ends the sequence.
func (c *Client) QueryTransferRecords(ctx context.Context, q OIFDEQuery) iter.Seq2[cecwire.TransferRecord, error] {
	return func(yield func(cecwire.TransferRecord, error) bool) {
		queryPages(ctx, c, q, "query transfer records", cecwire.PathQueryTransferRecords, decodeTransferPage, yield)
	}
}

// QueryRecordHistory pages through queryRecordHistory (cec-api.md §5) with
// the same rules as QueryTransferRecords; records are deduplicated by logId.
func (c *Client) QueryRecordHistory(ctx context.Context, q OIFDEQuery) iter.Seq2[cecwire.SessionRecord, error] {
	return func(yield func(cecwire.SessionRecord, error) bool) {
		queryPages(ctx, c, q, "query record history", cecwire.PathQueryRecordHistory, decodeRecordHistoryPage, yield)
	}
}

// page is one decoded OIFDE page.
type page[T any] struct {
	total   int64 // -1 when the server sent none
	rows    int   // records in the page, valid or not
	records []T   // valid records
	ids     []string
	invalid []error // one per rejected record, wrapping ErrInvalidRecord
}

type pageDecoder[T any] func(r io.Reader, maxBytes int64) (page[T], error)

func queryPages[T any](ctx context.Context, c *Client, q OIFDEQuery, op, path string, decode pageDecoder[T], yield func(T, error) bool) {
	var zero T
	pageSize, err := q.validate()
	if err != nil {
		yield(zero, fmt.Errorf("cec: %s: %w", op, err))
		return
	}
	// refuse ends a query whose pages arrived but do not add up: the
	// Observer hears of it as a failed call (Attempt 0), as it would of a
	// page refused on its own.
	refuse := func(err error) {
		c.observe(RequestInfo{Service: ServiceOIFDE, Op: op, Err: err})
		yield(zero, err)
	}
	seen := make(map[string]struct{})
	// rows: rows received; dups: rows whose id an earlier row had (drift);
	// total: page 1's total, -1 when it sent none.
	var rows, dups int64
	total := int64(-1)
	maxPages := int64(c.o.MaxPages)
	limit := maxPages
	for pageNum := 1; ; pageNum++ {
		if int64(pageNum) > limit {
			refuse(fmt.Errorf("cec: %s %s: %w: %w (limit %d pages of %d)", op, q.ident(), ErrInvalidAnswer, ErrTooManyPages, limit, pageSize))
			return
		}
		p, err := fetchPage(ctx, c, q, op, path, pageNum, pageSize, decode)
		if err != nil {
			yield(zero, err)
			return
		}
		if pageNum == 1 {
			total = p.total
			if total > maxPages*int64(pageSize) {
				refuse(fmt.Errorf("cec: %s %s: %w: total %d needs more than Options.MaxPages = %d pages of %d",
					op, q.ident(), ErrInvalidAnswer, total, maxPages, pageSize))
				return
			}
		}
		for _, e := range p.invalid {
			if !yield(zero, fmt.Errorf("cec: %s page %d: %w", op, pageNum, e)) {
				return
			}
		}
		fresh := len(p.invalid) // rows of this page not seen before (an invalid row cannot be matched)
		for i, r := range p.records {
			if _, dup := seen[p.ids[i]]; dup {
				dups++
				continue
			}
			fresh++
			seen[p.ids[i]] = struct{}{}
			if !yield(r, nil) {
				return
			}
		}
		rows += int64(p.rows)
		if p.rows == 0 || p.rows < pageSize {
			return
		}
		// Distinct rows, not rows: counting the repeated rows of a drifted
		// page towards total would stop before the rows it pushed out.
		if p.total >= 0 && rows-dups >= p.total {
			return
		}
		if fresh == 0 {
			// The same rows again (a server ignoring pageNum): more pages
			// would only raise the limit below, never end the query.
			refuse(fmt.Errorf("cec: %s %s: %w: %w (page %d of %d holds only rows already seen)", op, q.ident(), ErrInvalidAnswer, ErrTooManyPages, pageNum, pageSize))
			return
		}
		if total >= 0 {
			limit = min(maxPages, pagesFor(total, dups, int64(pageSize))+1)
		}
	}
}

// pagesFor is ceil((a+b)/ps) for a, b ≥ 0, written so that a huge a cannot
// overflow.
func pagesFor(a, b, ps int64) int64 {
	return a/ps + b/ps + (a%ps+b%ps+ps-1)/ps
}

// fetchPage gets one page, refreshing the token once on 900001 or HTTP 401
// (once in all: a second refusal is returned).
func fetchPage[T any](ctx context.Context, c *Client, q OIFDEQuery, op, path string, pageNum, pageSize int, decode pageDecoder[T]) (page[T], error) {
	var p page[T]
	for try := 0; ; try++ {
		tok, err := c.GetToken(ctx)
		if err != nil {
			return p, fmt.Errorf("cec: %s: %w", op, err)
		}
		rq, err := c.newRequest(ServiceOIFDE, op, "", path, nil, q.body(c.o.TenantID, tok, pageNum, pageSize))
		if err != nil {
			return p, err
		}
		rq.secrets = []string{tok}
		rq.refreshAuth = try == 0
		err = c.do(ctx, rq, func(resp *http.Response) error {
			defer resp.Body.Close()
			got, err := decode(resp.Body, c.o.MaxJSONBytes)
			if err != nil {
				if ae, ok := err.(*APIError); ok {
					ae.Op, ae.HTTPStatus = op, resp.StatusCode
				}
				return err
			}
			p = got
			return nil
		})
		if err != nil && (isTokenInvalid(err) || isUnauthorized(err)) && try == 0 && ctx.Err() == nil {
			if isUnauthorized(err) {
				c.log.Warn("cec: HTTP 401; retrying once with a fresh token",
					zap.String("service", rq.service), zap.String("op", rq.op))
			}
			c.invalidateToken(tok)
			continue
		}
		return p, err
	}
}

// pageEnvelope is an OIFDE page answer decoded leniently: error codes and
// totals as numbers or strings, both error message names, records kept raw so
// that one bad record does not sink the page.
type pageEnvelope struct {
	ErrorCode    cecwire.FlexString `json:"errorCode"`
	ErrorMessage string             `json:"errorMessage"`
	ErrorMsg     string             `json:"errorMsg"`
	Total        *cecwire.FlexInt64 `json:"total"`
	Transfers    []json.RawMessage  `json:"transferRecordList"`
	Records      []json.RawMessage  `json:"recordList"`
}

func decodeEnvelope(r io.Reader, maxBytes int64) (pageEnvelope, error) {
	var env pageEnvelope
	b, err := readJSON(io.NopCloser(r), maxBytes)
	if err != nil {
		return env, err
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return env, decodeErr("page", err)
	}
	if env.ErrorCode != "" && env.ErrorCode != "0" {
		return env, &APIError{Service: ServiceOIFDE, ResultCode: string(env.ErrorCode),
			Desc: firstNonEmpty(env.ErrorMessage, env.ErrorMsg)}
	}
	return env, nil
}

func decodePage[T any](raws []json.RawMessage, total *cecwire.FlexInt64, id func(*T) cecwire.FlexString, idName string) page[T] {
	p := page[T]{total: -1, rows: len(raws)}
	if total != nil && *total >= 0 {
		p.total = int64(*total)
	}
	for i, raw := range raws {
		var rec T
		if err := json.Unmarshal(raw, &rec); err != nil {
			// Keep what can be said about the record without its body.
			var probe struct {
				ID    cecwire.FlexString `json:"id"`
				LogID cecwire.FlexString `json:"logId"`
			}
			_ = json.Unmarshal(raw, &probe)
			pid := firstNonEmpty(string(probe.ID), string(probe.LogID))
			if !validID(pid) {
				pid = "?"
			}
			p.invalid = append(p.invalid, fmt.Errorf("%w: row %d (%s %s): %s", ErrInvalidRecord, i, idName, displayName(pid), maskDigits(err.Error())))
			continue
		}
		v := string(id(&rec))
		if !validID(v) {
			p.invalid = append(p.invalid, fmt.Errorf("%w: row %d: %s is empty or not valid UTF-8", ErrInvalidRecord, i, idName))
			continue
		}
		p.records = append(p.records, rec)
		p.ids = append(p.ids, v)
	}
	return p
}

// validID: IDs feed keys and checkpoints, so they must be non-empty, valid
// UTF-8 and free of U+FFFD, which encoding/json substitutes for invalid bytes
// and lone surrogates (reliability.md §3.3).
func validID(s string) bool {
	return s != "" && len(s) <= 256 && utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError)
}

// decodeTransferPage decodes a queryTransferRecordHistory answer of at most
// maxBytes bytes.
func decodeTransferPage(r io.Reader, maxBytes int64) (page[cecwire.TransferRecord], error) {
	env, err := decodeEnvelope(r, maxBytes)
	if err != nil {
		return page[cecwire.TransferRecord]{}, err
	}
	return decodePage(env.Transfers, env.Total, func(t *cecwire.TransferRecord) cecwire.FlexString { return t.ID }, "id"), nil
}

// decodeRecordHistoryPage decodes a queryRecordHistory answer of at most
// maxBytes bytes.
func decodeRecordHistoryPage(r io.Reader, maxBytes int64) (page[cecwire.SessionRecord], error) {
	env, err := decodeEnvelope(r, maxBytes)
	if err != nil {
		return page[cecwire.SessionRecord]{}, err
	}
	return decodePage(env.Records, env.Total, func(s *cecwire.SessionRecord) cecwire.FlexString { return s.LogID }, "logId"), nil
}
