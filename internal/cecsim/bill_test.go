package cecsim

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func queryBill(t *testing.T, c *client, b cecwire.QueryBillDataBody) string {
	t.Helper()
	var res cecwire.Result
	readJSON(t, c.ccfs(cecwire.PathQueryBillData, "", b), &res)
	var data cecwire.QueryBillDataData
	if err := json.Unmarshal(res.ResultData, &data); err != nil || res.ResultCode != "0" || res.ResultDesc != "success" ||
		res.Response == nil || res.Response.ResultCode != "0" {
		t.Fatalf("queryBillData: %+v %v", res, err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(data.ResponseID) {
		t.Fatalf("responseId %q", data.ResponseID)
	}
	return data.ResponseID
}

// csvFiles reads every CSV of a bill package, by name.
func csvFiles(t *testing.T, b []byte) map[string][][]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		out[f.Name] = rows
	}
	return out
}

func TestQueryBillData_Validation(t *testing.T) {
	_, ts := newSim(t, testOptions())
	c := newClient(t, ts)
	ok := cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00", DataType: "call_record", CallBackURL: "none"}
	queryBill(t, c, ok)
	max := ok
	max.EndTime = "2026-11-04 00:00:00"
	queryBill(t, c, max)
	with := func(f func(*cecwire.QueryBillDataBody)) cecwire.QueryBillDataBody {
		b := ok
		f(&b)
		return b
	}
	without := func(name string) map[string]string {
		m := map[string]string{"beginTime": ok.BeginTime, "endTime": ok.EndTime, "dataType": ok.DataType, "callBackURL": ok.CallBackURL}
		delete(m, name)
		return m
	}
	cases := []struct {
		name       string
		body       any
		code, desc string
	}{
		{"no beginTime", without("beginTime"), cecwire.CodeParamNull, "beginTime is null"},
		{"empty beginTime", with(func(b *cecwire.QueryBillDataBody) { b.BeginTime = "" }), cecwire.CodeParamEmpty, "beginTime is empty"},
		{"no endTime", without("endTime"), cecwire.CodeParamNull, "endTime is null"},
		{"beginTime format", with(func(b *cecwire.QueryBillDataBody) { b.BeginTime = "2026-11-01T00:00:00" }), cecwire.CodeParamFormat, "beginTime"},
		{"beginTime millis", with(func(b *cecwire.QueryBillDataBody) { b.BeginTime = "2026-11-01 00:00:00.000" }), cecwire.CodeParamFormat, "beginTime"},
		{"endTime format", with(func(b *cecwire.QueryBillDataBody) { b.EndTime = "2026-11-32 00:00:00" }), cecwire.CodeParamFormat, "endTime"},
		{"end before begin", with(func(b *cecwire.QueryBillDataBody) { b.EndTime = "2026-10-31 00:00:00" }), cecwire.CodeParamFormat, "endTime"},
		{"end equals begin", with(func(b *cecwire.QueryBillDataBody) { b.EndTime = b.BeginTime }), cecwire.CodeParamFormat, "endTime"},
		{"over 3 days", with(func(b *cecwire.QueryBillDataBody) { b.EndTime = "2026-11-04 00:00:01" }), cecwire.CodeParamFormat, "3 days"},
		{"no dataType", without("dataType"), cecwire.CodeParamNull, "dataType is null"},
		{"bad dataType", with(func(b *cecwire.QueryBillDataBody) { b.DataType = "calls" }), cecwire.CodeParamFormat, "dataType"},
		{"no callBackURL", without("callBackURL"), cecwire.CodeParamNull, "callBackURL is null"},
		{"empty callBackURL", with(func(b *cecwire.QueryBillDataBody) { b.CallBackURL = "" }), cecwire.CodeParamEmpty, "callBackURL is empty"},
		{"foreign accountId", with(func(b *cecwire.QueryBillDataBody) { b.AccountID = "other" }), cecwire.CodeParamError, "accountId"},
		{"callId too long", with(func(b *cecwire.QueryBillDataBody) { b.CallID = strings.Repeat("9", 26) }), cecwire.CodeParamTooLong, "callId"},
		{"empty optional", map[string]string{"beginTime": ok.BeginTime, "endTime": ok.EndTime, "dataType": "call", "callBackURL": "x", "agentId": ""}, cecwire.CodeParamEmpty, "agentId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantResult(t, c.ccfs(cecwire.PathQueryBillData, "", tc.body), tc.code, tc.desc)
		})
	}
}

func TestBill_CallbackAndDownload(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	clock := &fakeClock{t: time.Date(2026, time.November, 3, 20, 0, 0, 0, time.UTC)} // 04:00 on the 4th in Shanghai
	type delivery struct {
		body []byte
		err  error
	}
	got := make(chan delivery, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := VerifyAuthV2(r, body, lookupExample, clock.Now(), time.Minute)
		if err == nil && (r.URL.Path != "/cb/bill" || r.Header.Get("Authorization") == "" ||
			!strings.Contains(r.Header.Get("Authorization"), "/content-length;content-type;host/")) {
			err = io.ErrUnexpectedEOF
		}
		got <- delivery{body, err}
		w.Write([]byte(`{"resultCode":"0"}`))
	}))
	defer cb.Close()
	s, ts := newSim(t, Options{Seed: 9, Calls: 120, Days: 2, Location: loc, Now: clock.Now, BillReadyDelay: time.Hour})
	c := newClient(t, ts)
	c.now = clock.Now
	m := s.Manifest()

	// A package becomes ready only after BillReadyDelay: the callback goes out after it (real time),
	// downloads follow the clock or the callback, whichever comes first.
	id := queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: "2026-11-01 06:00:00", EndTime: "2026-11-02 18:00:00",
		DataType: "call_record", CallBackURL: cb.URL + "/cb/bill", AccountID: defaultTenantID})
	name := "20261104_" + strings.ReplaceAll(id, "-", "") + ".zip"
	wantResult(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: name}), cecwire.CodeNoData, "")
	select {
	case d := <-got:
		t.Fatalf("callback before the package is ready: %s", d.body)
	case <-time.After(50 * time.Millisecond):
	}
	clock.Add(time.Hour)
	b, fname := readFile(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: name}))
	if fname != name {
		t.Fatalf("attachment %s", fname)
	}
	b2, _ := readFile(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: name}))
	if !bytes.Equal(b, b2) {
		t.Fatal("package differs between downloads")
	}

	files := csvFiles(t, b)
	begin := time.Date(2026, time.November, 1, 6, 0, 0, 0, loc)
	end := time.Date(2026, time.November, 2, 18, 0, 0, 0, loc)
	wantCalls := map[string]bool{}
	wantFiles := map[string]bool{}
	for _, mc := range m.Calls {
		if !mc.Begin.Before(begin) && mc.Begin.Before(end) {
			wantCalls[mc.CallID] = true
		}
	}
	for _, r := range m.Recordings {
		if r.Kind == KindAgent && wantCalls[r.CallID] {
			wantFiles[r.FileName] = true
		}
	}
	nameRE := regexp.MustCompile(`^[0-9]{20}_(call|record)_([0-9]+)\.csv$`)
	gotCalls := map[string][]string{}
	gotFiles := map[string]bool{}
	for fn, rows := range files {
		mm := nameRE.FindStringSubmatch(fn)
		if mm == nil {
			t.Fatalf("file name %s", fn)
		}
		cols := cecwire.CallColumns
		if mm[1] == "record" {
			cols = cecwire.RecordColumns
		}
		if strings.Join(rows[0], ",") != strings.Join(cols, ",") {
			t.Fatalf("%s header %v", fn, rows[0])
		}
		for _, row := range rows[1:] {
			if len(row) != len(cols) || row[0] != testAK || row[1] != defaultTenantID {
				t.Fatalf("%s row %v", fn, row)
			}
			if mm[1] == "call" {
				gotCalls[row[4]] = append(gotCalls[row[4]], row[17])
				if cb, err := time.ParseInLocation(cecwire.TimeLayout, row[11], loc); err != nil || cb.Before(begin) || !cb.Before(end) {
					t.Fatalf("call_begin %s outside the window", row[11])
				}
			} else {
				gotFiles[row[9]] = true
			}
		}
	}
	if len(gotCalls) != len(wantCalls) || len(gotFiles) != len(wantFiles) || len(wantCalls) == 0 {
		t.Fatalf("package: %d calls, %d recordings; manifest window: %d calls, %d recordings",
			len(gotCalls), len(gotFiles), len(wantCalls), len(wantFiles))
	}
	for call, nums := range gotCalls {
		if !wantCalls[call] {
			t.Fatalf("call %s not in the window", call)
		}
		want := []string{"-1"}
		switch len(nums) {
		case 2:
			want = []string{"1", "-1"}
		case 3:
			want = []string{"1", "2", "-1"}
		}
		if strings.Join(nums, ",") != strings.Join(want, ",") {
			t.Fatalf("call %s call_id_num %v", call, nums)
		}
	}
	for f := range gotFiles {
		if !wantFiles[f] {
			t.Fatalf("recording %s not expected", f)
		}
	}

	// Another developer may not download it; broken names are refused.
	s2c := newClient(t, ts)
	s2c.now = clock.Now
	cases := []struct{ name, file, code string }{
		{"format", "2026-11-04_x.zip", cecwire.CodeParamFormat},
		{"uppercase", "20261104_" + strings.ToUpper(strings.ReplaceAll(id, "-", "")) + ".zip", cecwire.CodeParamFormat},
		{"date", "20261304_" + strings.ReplaceAll(id, "-", "") + ".zip", cecwire.CodeFileNameDate},
		{"wrong date", "20261103_" + strings.ReplaceAll(id, "-", "") + ".zip", cecwire.CodeNoData},
		{"unknown", "20261104_" + strings.Repeat("0", 32) + ".zip", cecwire.CodeNoData},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantResult(t, s2c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: tc.file}), tc.code, "")
		})
	}
	s.Close() // stops the pending callback
}

func TestBill_Callback(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	failFirst := 2
	got := make(chan []byte, 10)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := VerifyAuthV2(r, body, lookupExample, time.Now(), time.Minute); err != nil {
			t.Errorf("callback signature: %v", err)
		}
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case n == 1:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("no"))
		case n <= failFirst:
			w.WriteHeader(http.StatusOK) // empty body: not a success
		default:
			w.Write([]byte("ok"))
			got <- body
		}
	}))
	defer cb.Close()
	s, ts := newSim(t, Options{Seed: 9, Calls: 10, BillReadyDelay: time.Millisecond, CallbackRetry: 10 * time.Millisecond})
	c := newClient(t, ts)
	c.now = time.Now
	id := queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00",
		DataType: "call", CallBackURL: cb.URL + "/x?token=1"})
	var body []byte
	select {
	case body = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no callback")
	}
	var env cecwire.Envelope[map[string]string]
	if err := json.Unmarshal(body, &env); err != nil || env.Request.Version != "2.0" {
		t.Fatalf("callback %s: %v", body, err)
	}
	if env.MsgBody["responseId"] != id || !strings.HasSuffix(env.MsgBody["billFileName"], "_"+strings.ReplaceAll(id, "-", "")+".zip") {
		t.Fatalf("callback body %s", body)
	}
	if _, ok := env.MsgBody["accountId"]; ok {
		t.Fatalf("accountId echoed though not sent: %s", body)
	}
	// The package is ready once the callback went out.
	b, _ := readFile(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: env.MsgBody["billFileName"]}))
	files := csvFiles(t, b)
	if len(files) != 1 {
		t.Fatalf("dataType call: files %v", files)
	}

	// A callback receiver that always fails gets exactly 6 tries.
	mu.Lock()
	calls, failFirst = -1000, 1<<30
	mu.Unlock()
	queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00",
		DataType: "record", CallBackURL: cb.URL})
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := calls + 1000
		mu.Unlock()
		if n == callbackTries {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			n = calls + 1000
			mu.Unlock()
			if n != callbackTries {
				t.Fatalf("%d tries, want %d", n, callbackTries)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tries after 5s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
}

func TestBill_ManyRows(t *testing.T) {
	s, ts := newSim(t, Options{Seed: 2, Calls: 1500, MinRecordingBytes: 64, MaxRecordingBytes: 64, BillReadyDelay: -1, Now: testNow})
	c := newClient(t, ts)
	id := queryBill(t, c, cecwire.QueryBillDataBody{BeginTime: "2026-11-01 00:00:00", EndTime: "2026-11-02 00:00:00",
		DataType: "call_record", CallBackURL: "-"})
	b, _ := readFile(t, c.ccfs(cecwire.PathDownloadBillFile, "", cecwire.DownloadBillFileBody{BillFileName: "20261103_" + strings.ReplaceAll(id, "-", "") + ".zip"}))
	files := csvFiles(t, b)
	var names []string
	rows := map[string]int{}
	for fn, r := range files {
		names = append(names, fn)
		kind := strings.Split(fn, "_")[1]
		rows[kind] += len(r) - 1
		if len(r)-1 > maxCSVRows || len(r) < 2 {
			t.Fatalf("%s has %d rows", fn, len(r)-1)
		}
	}
	sort.Strings(names)
	agent := 0
	for _, r := range s.Manifest().Recordings {
		if r.Kind == KindAgent {
			agent++
		}
	}
	if rows["record"] != agent || rows["call"] < 1500 || len(names) < 4 {
		t.Fatalf("files %v rows %v (agent recordings %d)", names, rows, agent)
	}
}
