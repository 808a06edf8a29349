package cecclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

func collectTransfers(t *testing.T, c *Client, q OIFDEQuery) (ids []string, errs []error) {
	t.Helper()
	for r, err := range c.QueryTransferRecords(context.Background(), q) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, string(r.ID))
	}
	return ids, errs
}

func TestClient_QueryTransferRecords(t *testing.T) {
	t.Run("pages, duplicates, exact big ids, request body", func(t *testing.T) {
		var calls atomic.Int32
		var bodies []cecwire.OIFDEQuery
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				var q cecwire.OIFDEQuery
				json.Unmarshal(body, &q)
				bodies = append(bodies, q)
				switch q.PageNum {
				case "1":
					transferPage(w, 12, json.Number("12345678901234567891"), "2", "3", "4", "5")
				case "2":
					transferPage(w, 12, "5", "6", "7", "8", "9") // 5 again: rows shifted
				default:
					transferPage(w, 12, "10", "11")
				}
			},
		})
		c := newTestClient(t, ts.URL)
		loc := time.FixedZone("UTC+8", 8*3600)
		q := OIFDEQuery{UserMobile: testPhone, PageSize: 5, Location: loc,
			Begin: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
		ids, errs := collectTransfers(t, c, q)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		want := []string{"12345678901234567891", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}
		if len(ids) != len(want) {
			t.Fatalf("ids %v, want %v", ids, want)
		}
		for i := range want {
			if ids[i] != want[i] {
				t.Fatalf("ids %v, want %v", ids, want)
			}
		}
		if len(bodies) != 3 {
			t.Fatalf("%d pages requested, want 3", len(bodies))
		}
		b := bodies[0]
		if b.TenantID != testTenant || b.AuthToken != testToken+"-1" || b.PageSize != "5" || b.UserMobile != testPhone ||
			b.BeginTime != "2026-03-01 08:00:00" || b.EndTime != "2026-03-02 08:00:00" || b.CallID != "" {
			t.Errorf("request body %+v", b)
		}
	})
	t.Run("total respected", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				ids := make([]any, 5)
				for i := range ids {
					ids[i] = strconv.Itoa(hit*10 + i)
				}
				transferPage(w, 10, ids...) // always a full page
			},
		})
		ids, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CallID: "c", PageSize: 5})
		if len(errs) > 0 || len(ids) != 10 || ts.hitCount(cecwire.PathQueryTransferRecords) != 2 {
			t.Fatalf("%d ids, %v, %d pages", len(ids), errs, ts.hitCount(cecwire.PathQueryTransferRecords))
		}
	})
	t.Run("server that never ends", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				ids := make([]any, 5)
				for i := range ids {
					ids[i] = strconv.Itoa(hit*10 + i)
				}
				transferPage(w, 100+hit*5, ids...) // total grows as fast as the rows
			},
		})
		_, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CallID: "c", PageSize: 5})
		if len(errs) != 1 || !errors.Is(errs[0], ErrTooManyPages) {
			t.Fatalf("errs = %v", errs)
		}
		if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != 22 { // ceil(105/5)+1
			t.Errorf("%d pages requested, want 22", n)
		}
	})
	t.Run("drift pushes rows more than one page past total", func(t *testing.T) {
		// 20 rows; every page repeats 3 rows of the one before (rows
		// inserted while paging) and total stays 20.
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				var q cecwire.OIFDEQuery
				json.Unmarshal(body, &q)
				p, _ := strconv.Atoi(q.PageNum)
				var ids []any
				for i := (p - 1) * 2; i < min((p-1)*2+5, 20); i++ {
					ids = append(ids, strconv.Itoa(i))
				}
				transferPage(w, 20, ids...)
			},
		})
		ids, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CallID: "c", PageSize: 5})
		if len(errs) > 0 || len(ids) != 20 {
			t.Fatalf("%d ids %v, errs %v", len(ids), ids, errs)
		}
		if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != 9 { // ceil(20/5)+1 = 5 would lose rows
			t.Errorf("%d pages requested, want 9", n)
		}
	})
	t.Run("the same page again and again", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				transferPage(w, 50, "a", "b", "c", "d", "e") // pageNum ignored
			},
		})
		ids, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CallID: "c", PageSize: 5})
		if len(ids) != 5 || len(errs) != 1 || !errors.Is(errs[0], ErrTooManyPages) {
			t.Fatalf("ids %v, errs %v", ids, errs)
		}
		if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != 2 {
			t.Errorf("%d pages requested, want 2", n)
		}
	})
	t.Run("invalid records are reported, the rest goes on", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
				w.Write([]byte("{\"errorCode\":0,\"total\":4,\"transferRecordList\":[{\"id\":\"a\xffb\"},{\"id\":\"\\ud800\"},{\"id\":\"ok\"},{\"id\":\"x\",\"startTime\":\"" + testPhone + "\"}]}"))
			},
		})
		ids, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CtiCallID: "c"})
		if len(ids) != 1 || ids[0] != "ok" || len(errs) != 3 {
			t.Fatalf("ids %v, errs %v", ids, errs)
		}
		for _, err := range errs {
			if !errors.Is(err, ErrInvalidRecord) || !IsPermanent(err) {
				t.Errorf("err = %v", err)
			}
		}
	})
	t.Run("invalid queries send nothing", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{})
		c := newTestClient(t, ts.URL)
		for name, q := range map[string]OIFDEQuery{
			"page size 7":  {CallID: "c", PageSize: 7},
			"page size 1k": {CallID: "c", PageSize: 1000},
			"no id":        {PageSize: 5},
			"end < begin":  {CallID: "c", Begin: time.Now(), End: time.Now().Add(-time.Hour)},
		} {
			_, errs := collectTransfers(t, c, q)
			if len(errs) != 1 || !errors.Is(errs[0], ErrInvalidArgument) {
				t.Errorf("%s: errs = %v", name, errs)
			}
		}
		if len(ts.hits) != 0 {
			t.Errorf("requests sent: %v", ts.hits)
		}
	})
	t.Run("OIFDE error", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				writeJSON(w, map[string]any{"errorCode": "100002", "errorMessage": "invalid parameter"})
			},
		})
		_, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CallID: "c"})
		var ae *APIError
		if len(errs) != 1 || !errors.As(errs[0], &ae) || ae.ResultCode != "100002" || !IsPermanent(errs[0]) {
			t.Fatalf("errs = %v", errs)
		}
	})
	t.Run("consumer stops early", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				transferPage(w, 100, "a"+strconv.Itoa(hit), "b"+strconv.Itoa(hit), "c", "d", "e")
			},
		})
		for range newTestClient(t, ts.URL).QueryTransferRecords(context.Background(), OIFDEQuery{CallID: "c", PageSize: 5}) {
			break
		}
		if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != 1 {
			t.Errorf("%d pages requested", n)
		}
	})
}

func TestClient_QueryRecordHistory(t *testing.T) {
	var calls atomic.Int32
	ts := newTestServer(t, map[string]handlerFunc{
		cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
		cecwire.PathQueryRecordHistory: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			var q cecwire.OIFDEQuery
			json.Unmarshal(body, &q)
			if q.PageSize != "100" || q.CallID != "flow-1" || q.BeginTime != "" {
				t.Errorf("request body %+v", q)
			}
			rec := func(id any) map[string]any {
				return map[string]any{"logId": id, "callSorId": testPhone, "callId": "flow-1",
					"recordFilePath": "Y:/39/odfsrecord/20201015/10233946082696733.wav", "locationId": 0}
			}
			w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
			json.NewEncoder(w).Encode(map[string]any{"errorCode": 0, "errorMsg": "", "total": "3",
				"recordList": []any{rec(json.Number("98765432109876543210")), rec("L2"), rec("L2")}})
		},
	})
	c := newTestClient(t, ts.URL)
	var got []cecwire.SessionRecord
	for r, err := range c.QueryRecordHistory(context.Background(), OIFDEQuery{CallID: "flow-1"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 2 || got[0].LogID != "98765432109876543210" || got[1].LogID != "L2" ||
		got[0].RecordFilePath == "" || got[0].LocationID != "0" {
		t.Fatalf("got %+v", got)
	}
	if n := ts.hitCount(cecwire.PathQueryRecordHistory); n != 1 {
		t.Errorf("%d pages requested, want 1", n)
	}
}
