package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
)

// failedStateHeld runs once with every agent recording download failing,
// then holds the state open for writing (the closing is the test's
// cleanup), as a running daemon does.
func failedStateHeld(t *testing.T) (*testEnv, *sqlite.Store) {
	t.Helper()
	e := newTestEnv(t, []cecsim.Fault{{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile}}, "")
	if code, out, errOut := e.run("once", "--config", e.config); code != exitFailed {
		t.Fatalf("once = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	held, err := sqlite.Open(e.state, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	return e, held
}

// TestCmdStatus_Replicas: status shows the named leases held now and the
// items in progress per replica, while another process holds the state and
// works; a released lease is not shown.
func TestCmdStatus_Replicas(t *testing.T) {
	const replica = "other-host-9-00000000"
	// Another replica is at work: a window, a ledger, and the failed items.
	e, held := failedStateHeld(t)
	ctx := t.Context()
	for _, name := range []string{"cdr:2026-03-01T00:00:00Z", "ledger:2026-03-01", "janitor"} {
		if ok, err := held.TryLease(ctx, name, replica, time.Hour); err != nil || !ok {
			t.Fatalf("TryLease(%s) = %v, %v", name, ok, err)
		}
	}
	if err := held.ReleaseLease(ctx, "janitor", replica); err != nil {
		t.Fatal(err)
	}
	claimed, err := held.Claim(ctx, checkpoint.Claimer{Owner: replica, Lease: time.Hour}, nil, time.Now().Add(24*time.Hour), 0)
	if err != nil || len(claimed) == 0 {
		t.Fatalf("Claim = %d items, %v; want the failed ones", len(claimed), err)
	}

	t.Run("json", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config, "--json")
		if code != exitOK {
			t.Fatalf("status = %d\nstderr:\n%s", code, errOut)
		}
		var rep statusReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		var names []string
		for _, l := range rep.Leases {
			names = append(names, l.Name)
			if l.Replica != replica || l.Until.Before(time.Now().Add(50*time.Minute)) {
				t.Errorf("lease %+v, want held by %s for an hour", l, replica)
			}
		}
		if strings.Join(names, " ") != "cdr:2026-03-01T00:00:00Z ledger:2026-03-01" {
			t.Errorf("leases %v, want the cdr window and the ledger (the janitor's was released)", names)
		}
		if len(rep.Claims) != 1 || rep.Claims[0].Replica != replica || rep.Claims[0].InProgress != len(claimed) {
			t.Errorf("claims %+v, want %d items in progress under %s", rep.Claims, len(claimed), replica)
		}
	})
	t.Run("table", func(t *testing.T) {
		code, out, errOut := e.run("status", "--config", e.config)
		if code != exitOK {
			t.Fatalf("status = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		t.Logf("status:\n%s", out)
		for _, want := range []string{
			"leases held (cdr windows, ledgers, janitor): 2\n",
			"  cdr:2026-03-01T00:00:00Z replica=" + replica + " until=",
			"  ledger:2026-03-01 replica=" + replica + " until=",
			fmt.Sprintf("items in progress: %d, by 1 replicas\n", len(claimed)),
			"  " + replica + " ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "janitor replica=") || strings.Contains(out, "(expired)") {
			t.Errorf("status lists a released lease or an expired claim:\n%s", out)
		}
	})
}
