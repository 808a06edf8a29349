package cecclient

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestClient_GetToken(t *testing.T) {
	ctx := context.Background()
	t.Run("cached and refreshed at 80 percent", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathGetToken: tokenHandler(&calls, 0, 100)})
		clk := newFakeClock()
		c := newTestClient(t, ts.URL, func(o *Options) { o.Now = clk.Now })
		tok, err := c.GetToken(ctx)
		if err != nil || tok != testToken+"-1" {
			t.Fatalf("GetToken = %q, %v", tok, err)
		}
		clk.Advance(79 * time.Second)
		if tok, _ := c.GetToken(ctx); tok != testToken+"-1" || calls.Load() != 1 {
			t.Fatalf("at 79%%: token %q after %d calls", tok, calls.Load())
		}
		clk.Advance(2 * time.Second)
		if tok, _ := c.GetToken(ctx); tok != testToken+"-2" || calls.Load() != 2 {
			t.Fatalf("at 81%%: token %q after %d calls", tok, calls.Load())
		}
	})
	t.Run("single flight", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathGetToken: tokenHandler(&calls, 100*time.Millisecond, 3600)})
		c := newTestClient(t, ts.URL)
		var wg sync.WaitGroup
		toks := make([]string, 50)
		errs := make([]error, 50)
		for i := range toks {
			wg.Go(func() { toks[i], errs[i] = c.GetToken(ctx) })
		}
		wg.Wait()
		for i := range toks {
			if errs[i] != nil || toks[i] != testToken+"-1" {
				t.Fatalf("caller %d: %q, %v", i, toks[i], errs[i])
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d gettoken calls for 50 concurrent callers, want 1", n)
		}
	})
	t.Run("a cancelled caller does not cancel the shared refresh", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathGetToken: tokenHandler(&calls, 200*time.Millisecond, 3600)})
		c := newTestClient(t, ts.URL)
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := c.GetToken(short); err == nil {
			t.Fatal("want a context error")
		}
		if tok, err := c.GetToken(ctx); err != nil || tok != testToken+"-1" || calls.Load() != 1 {
			t.Fatalf("GetToken = %q, %v after %d calls", tok, err, calls.Load())
		}
	})
	t.Run("wrong password is permanent", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathGetToken: tokenHandler(&calls, 0, 3600)})
		c := newTestClient(t, ts.URL, func(o *Options) { o.APIPassword = "wrong" + testPassword })
		_, err := c.GetToken(ctx)
		if !IsPermanent(err) || !strings.Contains(err.Error(), "1001") {
			t.Fatalf("err = %v (%v)", err, Classify(err))
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Errorf("error leaks the password: %v", err)
		}
		if n := ts.hitCount(cecwire.PathGetToken); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
	t.Run("failed refresh keeps a valid token", func(t *testing.T) {
		var fail atomic.Bool
		var calls atomic.Int32
		ok := tokenHandler(&calls, 0, 100)
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathGetToken: func(w http.ResponseWriter, r *http.Request, b []byte, hit int) {
			if fail.Load() {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			ok(w, r, b, hit)
		}})
		clk := newFakeClock()
		c := newTestClient(t, ts.URL, func(o *Options) { o.Now = clk.Now; o.MaxAttempts = 2 })
		if _, err := c.GetToken(ctx); err != nil {
			t.Fatal(err)
		}
		fail.Store(true)
		clk.Advance(90 * time.Second)
		if tok, err := c.GetToken(ctx); err != nil || tok != testToken+"-1" {
			t.Fatalf("at 90%% with a failing server: %q, %v", tok, err)
		}
		clk.Advance(20 * time.Second)
		if _, err := c.GetToken(ctx); !IsTransient(err) {
			t.Fatalf("expired token and failing server: err = %v", err)
		}
	})
	t.Run("not configured", func(t *testing.T) {
		c := newTestClient(t, "http://127.0.0.1:1", func(o *Options) { o.OIFDEURL = "" })
		if _, err := c.GetToken(ctx); !IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
	})
}

// transferPage answers queryTransferRecordHistory with the given ids.
func transferPage(w http.ResponseWriter, total int, ids ...any) {
	list := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		list = append(list, map[string]any{"id": id, "callId": "c", "callingNumber": testPhone, "opResult": "SUCCESS",
			"startTime": 1650000000000, "recordFilePath": "Y:/61/transferrecord/20220401/77448039.wav", "locationId": 256})
	}
	writeJSON(w, map[string]any{"errorCode": 0, "errorMessage": "success", "total": total, "transferRecordList": list})
}

func TestClient_TokenExpiry(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name        string
		alwaysStale bool
	}{{"one refresh, one retry", false}, {"still invalid after the refresh", true}} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			ts := newTestServer(t, map[string]handlerFunc{
				cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
				cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					var q cecwire.OIFDEQuery
					json.Unmarshal(body, &q)
					if c.alwaysStale || q.AuthToken == testToken+"-1" {
						writeJSON(w, map[string]any{"errorCode": 900001, "errorMessage": "token expired"})
						return
					}
					transferPage(w, 1, "r1")
				},
			})
			cl := newTestClient(t, ts.URL)
			cl.GetToken(ctx) // cache token 1, which the server then calls expired
			var got []string
			var err error
			for r, e := range cl.QueryTransferRecords(ctx, OIFDEQuery{CallID: "c"}) {
				if e != nil {
					err = e
					break
				}
				got = append(got, string(r.ID))
			}
			if n := calls.Load(); n != 2 {
				t.Errorf("%d gettoken calls, want 2", n)
			}
			if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != 2 {
				t.Errorf("%d query attempts, want 2", n)
			}
			if c.alwaysStale {
				if !IsTransient(err) || !strings.Contains(err.Error(), "900001") {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err != nil || len(got) != 1 {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}
