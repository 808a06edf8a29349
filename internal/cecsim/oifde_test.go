package cecsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

func TestGetToken(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 1, Calls: 2, TokenTTL: 90 * time.Second})
	c := newClient(t, ts)
	var tr cecwire.GetTokenResponse
	readJSON(t, c.oifde(cecwire.PathGetToken, cecwire.GetTokenRequest{AppKey: defaultTenantID, AppSecret: defaultAPIPassword}), &tr)
	if tr.ErrorCode != 0 || len(tr.AuthToken) < 32 || tr.ExpireTime != 90 {
		t.Fatalf("gettoken %+v", tr)
	}
	if tok2 := c.token(); tok2 == tr.AuthToken {
		t.Fatal("tokens repeat")
	}
	for _, body := range []string{
		`{"appKey":"tenant-sim","appSecret":"wrong"}`,
		`{"appKey":"other","appSecret":"sim-api-password"}`,
		`{"appKey":"tenant-sim"}`,
		`{"appKey":"tenant-sim","appSecret":"sim-api-password","x":1}`,
		`not json`,
	} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+cecwire.PathGetToken, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp := c.do(req)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m["errorCode"] != float64(1) || m["errorMsg"] == "" {
			t.Fatalf("%s: %s", body, b)
		}
		if _, ok := m["authToken"]; ok {
			t.Fatalf("%s: token in a failure: %s", body, b)
		}
		if _, ok := m["expireTime"]; ok {
			t.Fatalf("%s: expireTime in a failure: %s", body, b)
		}
	}
	if got := s.Stats().TokensIssued; got != 2 {
		t.Fatalf("TokensIssued = %d", got)
	}
	_, ts2 := newSim(t, Options{Calls: 1, TokenTTL: 300 * time.Millisecond})
	var tr2 cecwire.GetTokenResponse
	readJSON(t, newClient(t, ts2).oifde(cecwire.PathGetToken, cecwire.GetTokenRequest{AppKey: defaultTenantID, AppSecret: defaultAPIPassword}), &tr2)
	if tr2.ExpireTime != 1 {
		t.Fatalf("sub-second TTL: expireTime %d, want 1", tr2.ExpireTime)
	}
}

// transferQuery posts a queryTransferRecordHistory and returns the raw body too.
func transferQuery(t *testing.T, c *client, q cecwire.OIFDEQuery) (cecwire.TransferRecordPage, []byte) {
	t.Helper()
	resp := c.oifde(cecwire.PathQueryTransferRecords, q)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p cecwire.TransferRecordPage
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return p, b
}

func historyQuery(t *testing.T, c *client, q cecwire.OIFDEQuery) cecwire.RecordHistoryPage {
	t.Helper()
	var p cecwire.RecordHistoryPage
	readJSON(t, c.oifde(cecwire.PathQueryRecordHistory, q), &p)
	return p
}

func TestOIFDE_Queries(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 4, Calls: 300, Now: testNow, MaxRecordingBytes: 8 << 10})
	c := newClient(t, ts)
	tok := c.token()
	m := s.Manifest()
	// Every transfer and IVR recording and absence must be found by ctiCallId.
	want := map[string]string{} // id -> kind
	for _, r := range m.Recordings {
		if r.Kind != KindAgent {
			want[r.ID] = r.Kind
		}
	}
	for _, a := range m.Absent {
		want[a.ID] = a.Kind
	}
	got := map[string]string{}
	files := map[string]ManifestRecording{}
	for _, r := range m.Recordings {
		files[r.FileName] = r
	}
	var flowID, mobile string
	for _, call := range m.Calls {
		tp, raw := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CtiCallID: call.CallID})
		if tp.ErrorCode != 0 || tp.Total != int64(len(tp.Records)) || !bytes.Contains(raw, []byte(`"transferRecordList":[`)) {
			t.Fatalf("transfer query: %s", raw)
		}
		for _, r := range tp.Records {
			got[string(r.ID)] = KindTransfer
			if !bytes.Contains(raw, []byte(`"id":`+string(r.ID))) {
				t.Fatalf("id %s is not a JSON number: %s", r.ID, raw)
			}
			if r.CtiCallID != call.CallID || r.TenantID != defaultTenantID || r.StartTime == 0 {
				t.Fatalf("record %+v", r)
			}
			if r.RecordFilePath != "" {
				f := files[r.RecordFilePath]
				if f.ID != string(r.ID) || f.LocationID != string(r.LocationID) {
					t.Fatalf("record %+v, manifest %+v", r, f)
				}
			}
			flowID, mobile = r.CallID, r.CallingNumber
		}
		hp := historyQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CtiCallID: call.CallID})
		if hp.ErrorCode != 0 || hp.Total != int64(len(hp.Records)) {
			t.Fatalf("history %+v", hp)
		}
		for _, r := range hp.Records {
			got[string(r.LogID)] = KindIVR
			if r.RecordFilePath != "" && files[r.RecordFilePath].ID != string(r.LogID) {
				t.Fatalf("session record %+v", r)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("found %d OIFDE records, manifest has %d", len(got), len(want))
	}
	for id, kind := range want {
		if got[id] != kind {
			t.Fatalf("record %s: %q, want %q", id, got[id], kind)
		}
	}
	// callId (flow) and userMobile find the same records.
	byFlow, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID})
	byMobile, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, UserMobile: mobile})
	both, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, UserMobile: mobile, CallID: flowID})
	if byFlow.Total == 0 || byMobile.Total < byFlow.Total || both.Total != byFlow.Total {
		t.Fatalf("flow %d, mobile %d, both %d", byFlow.Total, byMobile.Total, both.Total)
	}
	mismatch, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, UserMobile: "1", CallID: flowID})
	if mismatch.ErrorCode != 0 || mismatch.Total != 0 || mismatch.Records == nil {
		t.Fatalf("mismatch %+v", mismatch)
	}

	t.Run("time filters", func(t *testing.T) {
		r := byFlow.Records[0]
		start := time.UnixMilli(r.StartTime)
		in := func(t time.Time) string { return t.Format(cecwire.TimeLayout) }
		p, _ := transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID,
			BeginTime: in(start.Truncate(time.Second)), EndTime: in(start.Truncate(time.Second))})
		if p.Total == 0 {
			t.Fatal("record at beginTime = endTime = start not found")
		}
		p, _ = transferQuery(t, c, cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID,
			BeginTime: in(start.Truncate(time.Second).Add(time.Hour))})
		if p.Total != 0 {
			t.Fatal("beginTime after every record still finds some")
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name string
			body any
			code int
			msg  string
		}{
			{"no token", cecwire.OIFDEQuery{TenantID: defaultTenantID, CallID: flowID}, cecwire.OIFDETokenInvalid, "token"},
			{"unknown token", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: "abc", CallID: flowID}, cecwire.OIFDETokenInvalid, "token"},
			{"other tenant", cecwire.OIFDEQuery{TenantID: "x", AuthToken: tok, CallID: flowID}, cecwire.OIFDETokenInvalid, "token"},
			{"no identifier", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok}, 1, "callId"},
			{"pageSize 7", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, PageSize: "7"}, 1, "pageSize"},
			{"pageSize 200", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, PageSize: "200"}, 1, "pageSize"},
			{"pageSize 05", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, PageSize: "05"}, 1, "pageSize"},
			{"pageNum 0", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, PageNum: "0"}, 1, "pageNum"},
			{"pageNum x", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, PageNum: "x"}, 1, "pageNum"},
			{"pageNum number", map[string]any{"tenantId": defaultTenantID, "authToken": tok, "callId": flowID, "pageNum": 1}, 1, "pageNum"},
			{"beginTime", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, BeginTime: "2026-11-01"}, 1, "beginTime"},
			{"end before begin", cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, CallID: flowID, BeginTime: "2026-11-02 00:00:00", EndTime: "2026-11-01 00:00:00"}, 1, "endTime"},
			{"unknown field", map[string]any{"tenantId": defaultTenantID, "authToken": tok, "callId": flowID, "x": "1"}, 1, "x"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for _, p := range []string{cecwire.PathQueryTransferRecords, cecwire.PathQueryRecordHistory} {
					resp := c.oifde(p, tc.body)
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var m map[string]any
					if err := json.Unmarshal(b, &m); err != nil {
						t.Fatal(err)
					}
					msgKey := "errorMsg"
					if p == cecwire.PathQueryTransferRecords {
						msgKey = "errorMessage"
					}
					msg, _ := m[msgKey].(string)
					if m["errorCode"] != float64(tc.code) || !strings.Contains(msg, tc.msg) {
						t.Fatalf("%s: %s", p, b)
					}
				}
			})
		}
	})
}

func TestOIFDE_TokenExpiry(t *testing.T) {
	clock := &fakeClock{t: testNow()}
	s, ts := newSim(t, Options{Seed: 4, Calls: 20, Now: clock.Now, TokenTTL: time.Minute})
	c := newClient(t, ts)
	tok := c.token()
	q := cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: tok, UserMobile: "13800130000"}
	if p, _ := transferQuery(t, c, q); p.ErrorCode != 0 {
		t.Fatalf("fresh token: %+v", p)
	}
	clock.Add(time.Minute)
	if p, _ := transferQuery(t, c, q); p.ErrorCode != cecwire.OIFDETokenInvalid {
		t.Fatalf("expired token: %+v", p)
	}
	// token_expiry: every token dies after two uses.
	s.SetFaults(Fault{Kind: FaultTokenExpiry, AfterUses: 2})
	q.AuthToken = c.token()
	for i := 1; i <= 3; i++ {
		p := historyQuery(t, c, q)
		if (i <= 2) != (p.ErrorCode == 0) {
			t.Fatalf("use %d: %+v", i, p)
		}
	}
	if p := historyQuery(t, c, q); p.ErrorCode != cecwire.OIFDETokenInvalid {
		t.Fatalf("after expiry: %+v", p)
	}
	q.AuthToken = c.token()
	if p := historyQuery(t, c, q); p.ErrorCode != 0 {
		t.Fatalf("new token: %+v", p)
	}
	if got := s.Stats().Faults[FaultTokenExpiry]; got != 1 {
		t.Fatalf("token_expiry injected %d times", got)
	}
}

// pageAll pages through a transfer query until a short page.
func pageAll(t *testing.T, c *client, q cecwire.OIFDEQuery, size int) ([]string, int64) {
	t.Helper()
	var ids []string
	var total int64 = -1
	q.PageSize = strconv.Itoa(size)
	for n := 1; ; n++ {
		q.PageNum = strconv.Itoa(n)
		p, raw := transferQuery(t, c, q)
		if p.ErrorCode != 0 {
			t.Fatalf("page %d: %s", n, raw)
		}
		if total >= 0 && p.Total != total {
			t.Fatalf("total changed from %d to %d", total, p.Total)
		}
		total = p.Total
		for _, r := range p.Records {
			ids = append(ids, string(r.ID))
		}
		if len(p.Records) < size {
			return ids, total
		}
	}
}

func TestOIFDE_Paging(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 4, Calls: 800, Now: testNow, MaxRecordingBytes: 4 << 10})
	c := newClient(t, ts)
	q := cecwire.OIFDEQuery{TenantID: defaultTenantID, AuthToken: c.token()}
	best := int64(0)
	for i := 0; i < 3; i++ {
		mq := q
		mq.UserMobile = "1380013000" + strconv.Itoa(i)
		if p, _ := transferQuery(t, c, mq); p.Total > best {
			best, q.UserMobile = p.Total, mq.UserMobile
		}
	}
	if best <= 10 {
		t.Fatalf("the busiest repeat caller has %d transfer records", best)
	}
	all, _ := pageAll(t, c, q, 100)
	if int64(len(all)) != best {
		t.Fatalf("one page: %d records, total %d", len(all), best)
	}
	paged, total := pageAll(t, c, q, 5)
	if strings.Join(paged, ",") != strings.Join(all, ",") || total != best {
		t.Fatalf("pages of 5 differ from one page of 100")
	}
	q2 := q
	q2.PageNum, q2.PageSize = "99", "5"
	if p, _ := transferQuery(t, c, q2); p.Total != best || len(p.Records) != 0 {
		t.Fatalf("page past the end: %+v", p)
	}

	t.Run("duplicate_rows", func(t *testing.T) {
		s.SetFaults(Fault{Kind: FaultDuplicateRows})
		defer s.ClearFaults()
		drift, total := pageAll(t, c, q, 5)
		if total != best {
			t.Fatalf("total %d, want %d", total, best)
		}
		if drift[5] != drift[4] {
			t.Fatalf("page 2 does not repeat the last row of page 1: %v", drift[:10])
		}
		seen := map[string]bool{}
		for _, id := range drift {
			seen[id] = true
		}
		if len(seen) != len(all) || len(drift) <= len(all) {
			t.Fatalf("drifted paging: %d rows, %d unique, want %d unique", len(drift), len(seen), len(all))
		}
		if s.Stats().Faults[FaultDuplicateRows] == 0 {
			t.Fatal("not counted")
		}
	})
}
