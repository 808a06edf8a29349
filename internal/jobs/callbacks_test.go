package jobs

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestCallbacks_ServeHTTP(t *testing.T) {
	const name = "20261103_9239cb50a8384bb0ab503441bf089446.zip"
	body, err := json.Marshal(cecwire.NewEnvelope(cecwire.BillCallbackBody{ResponseID: "9239cb50-a838-4bb0-ab50-3441bf089446", BillFileName: name}))
	if err != nil {
		t.Fatal(err)
	}
	request := func(t *testing.T, sk string) *http.Request {
		signer, err := cecclient.NewSigner(testAK, sk, nil)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "http://archiver.example:8443/cdr-callback", bytes.NewReader(body))
		req.Header.Set("Content-Type", cecwire.ContentTypeJSON)
		if err := signer.Sign(req, body, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	newCB := func() *Callbacks {
		return NewCallbacks(func(ak string) (string, bool) { return testSK, ak == testAK }, zap.NewNop())
	}
	t.Run("bad signature", func(t *testing.T) {
		cb := newCB()
		wait := cb.Wait(name)
		rec := httptest.NewRecorder()
		cb.ServeHTTP(rec, request(t, "not-the-sk"))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", rec.Code)
		}
		if closed(wait) || closed(cb.Wait(name)) {
			t.Error("a rejected callback marked the package ready")
		}
		if _, ok := cb.nameFor("9239cb50-a838-4bb0-ab50-3441bf089446"); ok {
			t.Error("a rejected callback recorded its responseId")
		}
	})
	t.Run("signed", func(t *testing.T) {
		cb := newCB()
		wait := cb.Wait(name)
		rec := httptest.NewRecorder()
		cb.ServeHTTP(rec, request(t, testSK))
		if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"resultCode":"0"`)) {
			t.Errorf("status %d body %q, want 200 resultCode 0", rec.Code, rec.Body.String())
		}
		if !closed(wait) {
			t.Error("the waiter was not woken")
		}
		if !closed(cb.Wait(name)) {
			t.Error("Wait after the callback is not ready")
		}
		if closed(cb.Wait("20261103_00000000000000000000000000000000.zip")) {
			t.Error("another package is ready")
		}
		if n, ok := cb.nameFor("9239cb50-a838-4bb0-ab50-3441bf089446"); !ok || n != name {
			t.Errorf("nameFor = %q %v", n, ok)
		}
	})
	t.Run("not POST", func(t *testing.T) {
		rec := httptest.NewRecorder()
		newCB().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cdr-callback", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", rec.Code)
		}
	})
}

func TestArchiver_AuthError(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatalf("Run cdr: %v", err)
	}
	good := e.a.Client
	co := e.co
	co.SK = "not-the-sk"
	bad, err := cecclient.New(co)
	if err != nil {
		t.Fatal(err)
	}
	e.a.Client = bad
	t.Run("items", func(t *testing.T) {
		rep, err := e.a.Run(ctx, config.JobRecordings)
		if err == nil || rep.AuthError == nil || !cecclient.IsAuth(rep.AuthError) {
			t.Fatalf("Run recordings: %v, AuthError %v; want an auth error", err, rep.AuthError)
		}
		if rep.Released == 0 || rep.Failed != 0 || rep.Dead != 0 || rep.Done != 0 {
			t.Errorf("report %+v, want released items and no attempt counted", *rep)
		}
		for _, it := range e.items() {
			if it.Kind == checkpoint.KindAgent && (it.State != checkpoint.StatePending || it.Attempts != 0) {
				t.Errorf("agent item %s: %s attempts %d, want pending 0", it.UpstreamID, it.State, it.Attempts)
			}
		}
	})
	t.Run("cdr", func(t *testing.T) {
		e.clock.Add(24 * time.Hour)
		rep, err := e.a.Run(ctx, config.JobCDR)
		if err == nil || rep.AuthError == nil || rep.PackagesFailed != 1 {
			t.Fatalf("Run cdr: %v, report %+v; want an auth error on the first window", err, *rep)
		}
		if rep.Windows != 1 {
			t.Errorf("%d windows tried, want the run to stop after the first", rep.Windows)
		}
	})
	e.a.Client = good
	if _, err := e.a.Once(ctx, config.JobRecordings); err != nil {
		t.Fatalf("Once with good credentials: %v", err)
	}
}
