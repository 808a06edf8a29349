package jobs

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

// noGarbage asserts that every recording object in the sink holds the bytes
// of a manifest recording: nothing that is not a recording was stored.
func (e *env) noGarbage(m *cecsim.Manifest) {
	e.t.Helper()
	sums := map[string]bool{}
	for _, r := range m.Recordings {
		sums[r.SHA256] = true
	}
	for k, sum := range recordingObjects(e.objects()) {
		if !sums[sum] {
			e.t.Errorf("%s holds bytes (sha256 %s) that are no recording of the dataset", k, sum)
		}
	}
}

// failedWith asserts that n items of kind failed with an error containing want.
func (e *env) failedWith(kind string, n int, want string) {
	e.t.Helper()
	got := 0
	for _, it := range e.items(checkpoint.StateFailed, checkpoint.StateDead) {
		if it.Kind != kind {
			continue
		}
		got++
		if !strings.Contains(it.LastError, want) {
			e.t.Errorf("%s %s failed with %q, want it to contain %q", it.Kind, it.UpstreamID, it.LastError, want)
		}
	}
	if got != n {
		e.t.Errorf("%d %s items failed, want %d", got, kind, n)
	}
}

// TestVerdicts_NotARecording: bodies that are not recordings (HTTP 200 text
// or JSON, a WAV shorter or longer than its header says, gzip, endless,
// huge, trickling) are never stored and never done; the items fail, are
// visible, and the next clean run completes the set.
func TestVerdicts_NotARecording(t *testing.T) {
	for _, tc := range []struct {
		kind cecsim.FaultKind
		want string // in the item's last error
	}{
		{cecsim.FaultTextBody, `not a recording`},
		{cecsim.FaultJSONNoCode, `not a recording`},
		{cecsim.FaultRIFFShort, `not a recording`},
		{cecsim.FaultRIFFLong, `not a recording`},
		{cecsim.FaultGzip, `Content-Encoding`},
		{cecsim.FaultEndless, `not a recording`},
		{cecsim.FaultHuge, `too large`},
		{cecsim.FaultTrickle, `slower than`},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{
				sim: func(o *cecsim.Options) {
					o.Calls = 12
					o.Faults = []cecsim.Fault{{Kind: tc.kind, Path: cecwire.PathDownloadRecordFile, Count: 2, DelayMS: 200}}
				},
				client: func(o *cecclient.Options) {
					o.MaxRecordingBytes = 1 << 20
					o.MinRate, o.MinRateWindow = 1024, time.Second
					o.MaxAttempts = 1 // a trickle is transient: retried at once it would pass
				},
				archiver: func(a *Archiver) { a.InPassAttempts = 1 },
			})
			ctx := testCtx(t)
			m := e.sim.Manifest()
			rep, err := e.a.Once(ctx)
			if err != nil {
				t.Fatalf("Once: %v", err)
			}
			if rep.Failed != 2 {
				t.Errorf("first run: %d failed, want 2 (the two misbehaving downloads)", rep.Failed)
			}
			e.failedWith(checkpoint.KindAgent, 2, tc.want)
			e.noGarbage(m)
			for day, l := range e.ledgers() {
				if l.Complete && l.Totals.Failed > 0 {
					t.Errorf("day %s: complete with %d failed", day, l.Totals.Failed)
				}
			}
			if n := e.sim.Stats().Faults[tc.kind]; n != 2 {
				t.Errorf("fault %s injected %d times, want 2", tc.kind, n)
			}
			e.clock.Add(time.Hour)
			if _, err := e.a.Once(ctx); err != nil {
				t.Fatalf("second Once: %v", err)
			}
			e.checkArchive(m)
			e.checkLedgers(m, true)
		})
	}
}

// TestVerdicts_TransferEvidence: a transfer record with recordResult N/A and
// a path is downloaded; one whose download answers 0300012 stays failed
// until settle_max_age, then is absent with that evidence.
func TestVerdicts_TransferEvidence(t *testing.T) {
	e := newEnv(t, envOptions{
		sim:      func(o *cecsim.Options) { o.MissingTransferFiles = 3 },
		archiver: func(a *Archiver) { a.TransferSettleMaxAge = 100 * time.Hour },
	})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	na := 0
	for _, r := range m.Recordings {
		if r.Kind == cecsim.KindTransfer {
			na++
		}
	}
	missing := map[string]bool{}
	for _, ab := range m.Absent {
		if ab.Kind == cecsim.KindTransfer && strings.Contains(ab.Reason, "0300012") {
			missing[ab.ID] = true
		}
	}
	if len(missing) != 3 {
		t.Fatalf("manifest has %d missing transfer files, want 3", len(missing))
	}
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatalf("Once: %v", err)
	}
	byID := itemsByID(e.items())
	for id := range missing {
		it := byID[checkpoint.KindTransfer+"\x00"+id]
		if it.State != checkpoint.StateFailed {
			t.Errorf("missing transfer file %s before settle_max_age: %s, want failed", id, it.State)
		}
	}
	for _, r := range m.Recordings {
		if it := byID[r.Kind+"\x00"+r.ID]; it.State != checkpoint.StateDone {
			t.Errorf("%s %s: %s (%s), want done", r.Kind, r.ID, it.State, it.LastError)
		}
	}
	for _, l := range e.ledgers() {
		if l.Complete && l.Totals.Failed > 0 {
			t.Errorf("ledger %s complete with failed items", l.Day)
		}
	}

	// Past settle_max_age the source's answer is the evidence.
	e.clock.Add(100 * time.Hour)
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatalf("second Once: %v", err)
	}
	byID = itemsByID(e.items())
	for id := range missing {
		it := byID[checkpoint.KindTransfer+"\x00"+id]
		if it.State != checkpoint.StateAbsent || !strings.Contains(it.Evidence, "0300012") || !strings.Contains(it.Evidence, "downloadOiapRecord") {
			t.Errorf("missing transfer file %s: %s, evidence %q; want absent with the download's answer", id, it.State, it.Evidence)
		}
	}
	e.checkArchive(m)
	e.checkLedgers(m, true)
	for _, l := range e.ledgers() {
		for _, c := range l.Calls {
			for _, r := range c.Recordings {
				if r.State == "absent" && r.Evidence == "" {
					t.Errorf("ledger %s: %s %s absent without evidence", l.Day, r.Kind, r.ID)
				}
			}
		}
	}
}

// TestVerdicts_DatasetShapes: colliding base names, recordings that start
// after midnight, calls with recordings of two agents: every recording is
// archived once under its own key, on its call's day.
func TestVerdicts_DatasetShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sim    func(*cecsim.Options)
		method string
	}{
		{"colliding base names", func(o *cecsim.Options) { o.CollidingBaseNames = true }, ""},
		{"after midnight", func(o *cecsim.Options) { o.AfterMidnightRecordings = 3 }, ""},
		{"multi-agent downloadRecord", func(o *cecsim.Options) { o.MultiAgentCalls = 4; o.CollidingBaseNames = true }, config.MethodDownloadRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{sim: tc.sim, archiver: func(a *Archiver) { a.Method = tc.method }})
			ctx := testCtx(t)
			m := e.sim.Manifest()
			if _, err := e.a.Once(ctx); err != nil {
				t.Fatalf("Once: %v", err)
			}
			e.checkArchive(m)
			e.checkLedgers(m, true)
			byID := itemsByID(e.items())
			for _, r := range m.Recordings {
				if it := byID[r.Kind+"\x00"+r.ID]; it.Day != r.Day {
					t.Errorf("%s %s: day %s, the call's day is %s", r.Kind, r.ID, it.Day, r.Day)
				}
			}
		})
	}
}

// TestVerdicts_CMSMultiAgent: with CC-CMS the archiver asks by call ID only;
// a call whose index lists two agents' recordings comes back as a ZIP that
// must hold both.
func TestVerdicts_CMSMultiAgent(t *testing.T) {
	e := newEnv(t, envOptions{
		sim:      func(o *cecsim.Options) { o.MultiAgentCalls = 5; o.CollidingBaseNames = true },
		archiver: func(a *Archiver) { a.Method = config.MethodCMS },
	})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatalf("Once: %v", err)
	}
	want := map[string]map[string]bool{} // call → agent recording digests
	for _, r := range m.Recordings {
		if r.Kind == cecsim.KindAgent {
			if want[r.CallID] == nil {
				want[r.CallID] = map[string]bool{}
			}
			want[r.CallID][r.SHA256] = true
		}
	}
	byID := itemsByID(e.items())
	multi := 0
	for call, sums := range want {
		it := byID[checkpoint.KindAgent+"\x00cms:"+call]
		if it.State != checkpoint.StateDone {
			t.Errorf("call %s: cms item %s (%s), want done", call, it.State, it.LastError)
			continue
		}
		got := storedRecordings(t, filepath.Join(e.root, filepath.FromSlash(it.Key)))
		for sum := range sums {
			if !got[sum] {
				t.Errorf("call %s: the stored download lacks a recording of the index (sha256 %s)", call, sum)
			}
		}
		if len(sums) > 1 {
			multi++
		}
	}
	if multi < 5 {
		t.Errorf("only %d calls with several agent recordings: the test proves little", multi)
	}
	for _, l := range e.ledgers() {
		if !l.Complete {
			t.Errorf("ledger %s incomplete: %v", l.Day, l.Incomplete)
		}
	}
}

// storedRecordings returns the SHA-256 of the recording at path, or of each
// member when it is a ZIP.
func storedRecordings(t *testing.T, path string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	hash := func(r io.Reader) string {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out[hash(f)] = true
		return out
	}
	defer zr.Close()
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[hash(rc)] = true
		rc.Close()
	}
	return out
}

// TestVerdicts_Packages: a zip bomb and a package with an unusable row are
// rejected, never stored under their final key but quarantined, and the
// window fails visibly; an expired package is requested again at once. The
// next run completes the set.
func TestVerdicts_Packages(t *testing.T) {
	for _, tc := range []struct {
		kind       cecsim.FaultKind
		quarantine bool
		want       string
	}{
		{cecsim.FaultZipBomb, true, "invalid CDR package"},
		{cecsim.FaultBadPackage, true, "no call_id"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{sim: func(o *cecsim.Options) {
				o.Faults = []cecsim.Fault{{Kind: tc.kind, Path: cecwire.PathDownloadBillFile, Count: 1}}
			}})
			ctx := testCtx(t)
			m := e.sim.Manifest()
			start := time.Now()
			rep, err := e.a.Once(ctx)
			if err != nil {
				t.Fatalf("Once: %v", err)
			}
			t.Logf("first run took %s", time.Since(start).Round(time.Millisecond))
			if rep.PackagesFailed != 1 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], tc.want) {
				t.Fatalf("first run: %d packages failed, errors %v; want 1 naming %q", rep.PackagesFailed, rep.Errors, tc.want)
			}
			pkgs, err := e.store.Packages(context.Background(), checkpoint.StateFailed)
			if err != nil || len(pkgs) != 1 {
				t.Fatalf("failed packages %+v (%v), want 1", pkgs, err)
			}
			objs := e.objects()
			q := pkgs[0].QuarantineKey
			if q == "" || !strings.HasPrefix(q, quarantineDir) || !strings.Contains(q, pkgs[0].SHA256) || objs[q] != pkgs[0].SHA256 {
				t.Errorf("quarantine key %q (sha256 %s) not stored with the package's digest", q, pkgs[0].SHA256)
			}
			for k := range objs {
				if strings.HasPrefix(k, cdrDir) && strings.Contains(k, strings.TrimSuffix(pkgs[0].BillFileName, ".zip")) {
					t.Errorf("the rejected package took a final key: %s", k)
				}
			}
			day := pkgs[0].Begin.UTC().Format(time.DateOnly)
			if l, ok := e.ledgers()[day]; !ok || l.Complete || len(l.Incomplete) == 0 || !strings.Contains(strings.Join(l.Incomplete, "\n"), "cdr window") {
				t.Errorf("day %s of the failed window: ledger present %v, complete %v, incomplete %q; want incomplete naming the window", day, ok, l.Complete, l.Incomplete)
			}
			wm, _, _ := e.store.Watermark(context.Background(), config.JobCDR)
			if !wm.Before(pkgs[0].End) {
				t.Errorf("cdr watermark %v passed the failed window ending %v", wm, pkgs[0].End)
			}
			e.clock.Add(time.Hour)
			if _, err := e.a.Once(ctx); err != nil {
				t.Fatalf("second Once: %v", err)
			}
			e.checkArchive(m)
			e.checkLedgers(m, true)
		})
	}
	t.Run("expired_package", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{sim: func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultExpiredPackage, Path: cecwire.PathDownloadBillFile, Count: 1}}
		}})
		e.a.ReadyTimeout = time.Hour // waiting it out would hang the test
		ctx := testCtx(t)
		m := e.sim.Manifest()
		rep, err := e.a.Once(ctx)
		if err != nil {
			t.Fatalf("Once: %v", err)
		}
		if rep.PackagesFailed != 0 || e.sim.Stats().Faults[cecsim.FaultExpiredPackage] != 1 {
			t.Errorf("packages failed %d, expired injected %d; want the expired package requested again at once",
				rep.PackagesFailed, e.sim.Stats().Faults[cecsim.FaultExpiredPackage])
		}
		e.checkArchive(m)
		e.checkLedgers(m, true)
	})
}

// TestVerdicts_Upstream: a one-off 401 is retried with a fresh signature and
// stops nothing; an absurd OIFDE total fails the lookup naming the call.
func TestVerdicts_Upstream(t *testing.T) {
	t.Run("one-off 401", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{sim: func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultUnauthorized, Path: cecwire.PathDownloadRecordFile, Count: 1}}
		}})
		m := e.sim.Manifest()
		rep, err := e.a.Once(testCtx(t))
		if err != nil || rep.AuthError != nil || rep.Failed != 0 {
			t.Fatalf("Once = %v, auth %v, failed %d; a one-off 401 must not stop or fail anything", err, rep.AuthError, rep.Failed)
		}
		e.checkArchive(m)
	})
	t.Run("huge_total", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{sim: func(o *cecsim.Options) {
			o.Faults = []cecsim.Fault{{Kind: cecsim.FaultHugeTotal, Path: cecwire.PathQueryTransferRecords, Count: 1}}
		}})
		ctx := testCtx(t)
		m := e.sim.Manifest()
		if _, err := e.a.Once(ctx); err != nil {
			t.Fatalf("Once: %v", err)
		}
		failed := e.items(checkpoint.StateFailed)
		if len(failed) != 1 || failed[0].Kind != checkpoint.KindTransferLookup || !strings.Contains(failed[0].LastError, failed[0].CallID) {
			t.Fatalf("failed items %+v, want the one transfer lookup, naming its call", failed)
		}
		e.clock.Add(time.Hour)
		if _, err := e.a.Once(ctx); err != nil {
			t.Fatalf("second Once: %v", err)
		}
		e.checkArchive(m)
		e.checkLedgers(m, true)
	})
}

// TestVerdicts_AuthStopsOnlyItsInterface: when OIFDE refuses the
// credentials, only the transfer lookups stop (released, not failed): the
// transfer recordings already found are still downloaded from CC-FS in the
// same run.
func TestVerdicts_AuthStopsOnlyItsInterface(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	// Day 1: its transfer records are found, but their downloads fail.
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadOiapRecord, Rate: 1})
	if _, err := e.a.Backfill(ctx, simStart, simStart.AddDate(0, 0, 1), BackfillOptions{Jobs: []string{config.JobTransfer}}); err != nil {
		t.Fatalf("Backfill: %v", err)
	}
	waiting := map[string]bool{}
	for _, it := range e.items(checkpoint.StateFailed) {
		if it.Kind == checkpoint.KindTransfer {
			waiting[it.UpstreamID] = true
		}
	}
	if len(waiting) == 0 {
		t.Fatal("no transfer recording waits for its download: the test proves nothing")
	}
	// Day 2's calls arrive; now OIFDE refuses every transfer query, CC-FS works.
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultUnauthorized, Path: cecwire.PathQueryTransferRecords, Rate: 1})
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatalf("Run(cdr): %v", err)
	}
	e.clock.Add(time.Hour)
	rep, err := e.a.Run(ctx, config.JobTransfer)
	if err != nil {
		t.Fatalf("Run(transfer) = %v; a refusal by OIFDE must not stop the CC-FS downloads", err)
	}
	if rep.AuthError == nil {
		t.Error("the refusal is not reported")
	}
	pending := 0
	for _, it := range e.items() {
		switch it.Kind {
		case checkpoint.KindTransfer:
			if waiting[it.UpstreamID] && it.State != checkpoint.StateDone {
				t.Errorf("transfer recording %s: %s (%s), want done: CC-FS works", it.UpstreamID, it.State, it.LastError)
			}
		case checkpoint.KindTransferLookup:
			if it.State == checkpoint.StatePending {
				pending++
				if it.Attempts != 0 {
					t.Errorf("lookup %s: %d attempts counted for a refused credential", it.UpstreamID, it.Attempts)
				}
			}
			if it.State == checkpoint.StateFailed || it.State == checkpoint.StateDead {
				t.Errorf("lookup %s is %s: a refused credential is not the item's failure", it.UpstreamID, it.State)
			}
		}
	}
	if pending == 0 {
		t.Error("no transfer lookup left pending: day 2's lookups should wait for working credentials")
	}
}
