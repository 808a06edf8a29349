package acceptance

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// statusJSON is the part of "archiver status --json" the tests read.
type statusJSON struct {
	Days []struct {
		Day      string `json:"day"`
		Complete bool   `json:"complete"`
	} `json:"days"`
	Windows []struct {
		BillFileName  string `json:"bill_file_name"`
		State         string `json:"state"`
		LastError     string `json:"last_error"`
		QuarantineKey string `json:"quarantine_key"`
		Days          []string
	} `json:"windows"`
	Failed []struct {
		ID        int64  `json:"id"`
		Kind      string `json:"kind"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
	} `json:"failed"`
}

func (e *env) status() statusJSON {
	e.t.Helper()
	p := e.start("status", "--json", "--failed")
	if code := p.wait(e.t, time.Minute); code != 0 {
		e.t.Fatalf("status: exit %d\n%s", code, p.tail())
	}
	b, err := os.ReadFile(p.stdout.Name())
	if err != nil {
		e.t.Fatal(err)
	}
	var s statusJSON
	if err := json.Unmarshal(b, &s); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, b)
	}
	return s
}

// TestOnce_Misbehaviour: for each way the upstream can misbehave, the first
// run ends with the exit code and message it must, nothing that is not a
// valid recording is stored, the failed item or window is visible in
// status, and a clean run afterwards completes the set (verify, including
// archiver verify --deep).
func TestOnce_Misbehaviour(t *testing.T) {
	rec := cecwire.PathDownloadRecordFile
	for _, tc := range []struct {
		name      string
		sim       func(*cecsim.Options)
		faults    []cecsim.Fault
		env       map[string]string
		exit      int    // of the first run
		stderr    string // in the first run's stderr
		failed    string // kind of a failed item status lists, "window" for a failed cdr window, "" for none
		quarantin bool   // the failed window's bytes are quarantined
		cms       bool   // recordings are fetched per call (ZIP bundles): checked member by member
	}{
		{name: "text body", faults: []cecsim.Fault{{Kind: cecsim.FaultTextBody, Path: rec, Count: 2}}, exit: 1, stderr: "not a recording", failed: "agent"},
		{name: "json without code", faults: []cecsim.Fault{{Kind: cecsim.FaultJSONNoCode, Path: rec, Count: 2}}, exit: 1, stderr: "not a recording", failed: "agent"},
		{name: "short RIFF", faults: []cecsim.Fault{{Kind: cecsim.FaultRIFFShort, Path: rec, Count: 2}}, exit: 1, stderr: "not a recording", failed: "agent"},
		{name: "long RIFF", faults: []cecsim.Fault{{Kind: cecsim.FaultRIFFLong, Path: rec, Count: 2}}, exit: 1, stderr: "not a recording", failed: "agent"},
		// Content-Length longer than the body: transient, retried at once
		// and in the run, so every download is cut.
		{name: "long Content-Length", faults: []cecsim.Fault{{Kind: cecsim.FaultTruncate, Path: rec, Rate: 1}}, exit: 1, stderr: "unexpected EOF", failed: "agent",
			env: map[string]string{"ARCHIVER_CEC_MAX_ATTEMPTS": "1"}},
		{name: "gzip", faults: []cecsim.Fault{{Kind: cecsim.FaultGzip, Path: rec, Count: 2}}, exit: 1, stderr: "Content-Encoding", failed: "agent"},
		{name: "endless", faults: []cecsim.Fault{{Kind: cecsim.FaultEndless, Path: rec, Count: 2}}, exit: 1, stderr: "not a recording", failed: "agent",
			env: map[string]string{"ARCHIVER_CEC_MAX_RECORDING_BYTES": "1MiB"}},
		{name: "huge", faults: []cecsim.Fault{{Kind: cecsim.FaultHuge, Path: rec, Count: 2}}, exit: 1, stderr: "too large", failed: "agent"},
		// A trickle is transient (retried at once, and in the run): every
		// agent download trickles, so that they fail.
		{name: "trickle", faults: []cecsim.Fault{{Kind: cecsim.FaultTrickle, Path: rec, Rate: 1, DelayMS: 300}}, exit: 1, stderr: "slower than", failed: "agent",
			env: map[string]string{"ARCHIVER_CEC_MIN_RATE_WINDOW": "1s", "ARCHIVER_CEC_MAX_ATTEMPTS": "1"}},
		{name: "huge OIFDE total", faults: []cecsim.Fault{{Kind: cecsim.FaultHugeTotal, Path: cecwire.PathQueryTransferRecords, Count: 1}}, exit: 1, stderr: "total", failed: "transfer_lookup"},
		{name: "zip bomb", faults: []cecsim.Fault{{Kind: cecsim.FaultZipBomb, Path: cecwire.PathDownloadBillFile, Count: 1}}, exit: 1, stderr: "invalid CDR package", failed: "window", quarantin: true},
		{name: "rejected package", faults: []cecsim.Fault{{Kind: cecsim.FaultBadPackage, Path: cecwire.PathDownloadBillFile, Count: 1}}, exit: 1, stderr: "no call_id", failed: "window", quarantin: true},
		{name: "expired package", faults: []cecsim.Fault{{Kind: cecsim.FaultExpiredPackage, Path: cecwire.PathDownloadBillFile, Count: 1}}, exit: 0},
		{name: "one-off 401", faults: []cecsim.Fault{{Kind: cecsim.FaultUnauthorized, Path: rec, Count: 1}}, exit: 0},
		{name: "N/A with a path, missing files", sim: func(o *cecsim.Options) { o.MissingTransferFiles = 3 }, exit: 0},
		{name: "colliding base names", sim: func(o *cecsim.Options) { o.CollidingBaseNames = true }, exit: 0},
		{name: "after midnight", sim: func(o *cecsim.Options) { o.AfterMidnightRecordings = 3 }, exit: 0},
		{name: "multi-agent cms", sim: func(o *cecsim.Options) { o.MultiAgentCalls = 4; o.CollidingBaseNames = true }, exit: 0, cms: true,
			env: map[string]string{"ARCHIVER_JOBS_RECORDINGS_METHOD": "cms"}},
		{name: "multi-agent downloadRecord", sim: func(o *cecsim.Options) { o.MultiAgentCalls = 4; o.CollidingBaseNames = true }, exit: 0,
			env: map[string]string{"ARCHIVER_JOBS_RECORDINGS_METHOD": "downloadRecord"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{Calls: 30, Sim: tc.sim, Env: tc.env})
			e.sim.SetFaults(tc.faults...)
			code, p := e.once()
			_, stderr := p.output()
			if code != tc.exit {
				t.Fatalf("first once: exit %d, want %d\n%s", code, tc.exit, p.tail())
			}
			if tc.stderr != "" && !strings.Contains(stderr, tc.stderr) {
				t.Errorf("first once: stderr lacks %q\n%s", tc.stderr, p.tail())
			}
			for _, f := range tc.faults {
				if e.sim.Stats().Faults[f.Kind] == 0 {
					t.Errorf("fault %s was never injected: the case proves nothing", f.Kind)
				}
			}
			// Nothing that is not a recording of the dataset was stored.
			sums := map[string]bool{}
			for _, r := range e.sim.Manifest().Recordings {
				sums[r.SHA256] = true
			}
			for k, o := range e.objects() {
				if isLedger(k) || isCDR(k) || isQuarantine(k) {
					continue
				}
				got := []string{o.SHA256}
				if tc.cms {
					got = e.memberSums(k, o)
				}
				for _, sum := range got {
					if !sums[sum] {
						t.Errorf("%s holds %d bytes that are no recording of the dataset", k, o.Size)
					}
				}
			}
			st := e.status()
			switch tc.failed {
			case "":
			case "window":
				if len(st.Windows) == 0 || st.Windows[0].State != "failed" || !strings.Contains(st.Windows[0].LastError, tc.stderr) {
					t.Errorf("status lists windows %+v, want the failed one with its error", st.Windows)
				} else if tc.quarantin && st.Windows[0].QuarantineKey == "" {
					t.Errorf("status: the rejected package has no quarantine key: %+v", st.Windows[0])
				}
				incomplete := false
				for _, d := range st.Days {
					incomplete = incomplete || !d.Complete
				}
				if !incomplete {
					t.Errorf("status: every day complete with a failed window: %+v", st.Days)
				}
			default:
				found := false
				for _, it := range st.Failed {
					found = found || (it.Kind == tc.failed && it.ID > 0 && it.LastError != "")
				}
				if !found {
					t.Errorf("status --failed lists %+v, want a failed %s item with its error", st.Failed, tc.failed)
				}
			}
			e.sim.SetFaults()
			e.onceUntilClean(3)
			if tc.cms {
				e.verifyBundles()
				return
			}
			e.verify()
		})
	}
}

// verifyBundles is verify for Method cms, where an object holds a call's
// recordings (one WAV, or a ZIP of them): every agent recording of the
// manifest is in exactly one object, every transfer and IVR recording is
// stored once, every day is complete, and archiver verify --deep agrees.
func (e *env) verifyBundles() {
	e.t.Helper()
	m := e.sim.Manifest()
	seen := map[string]int{}
	for k, o := range e.objects() {
		if isLedger(k) || isCDR(k) || isQuarantine(k) {
			continue
		}
		for _, sum := range e.memberSums(k, o) {
			seen[sum]++
		}
	}
	multi := map[string]int{}
	for _, r := range m.Recordings {
		if r.Kind == cecsim.KindAgent {
			multi[r.CallID]++
		}
		if seen[r.SHA256] != 1 {
			e.t.Errorf("%s recording %s of call %s is stored %d times, want once", r.Kind, r.ID, r.CallID, seen[r.SHA256])
		}
	}
	calls := 0
	for _, n := range multi {
		if n > 1 {
			calls++
		}
	}
	if calls < 4 {
		e.t.Errorf("only %d calls with several agent recordings: the case proves little", calls)
	}
	for _, d := range e.status().Days {
		if !d.Complete {
			e.t.Errorf("day %s is not complete", d.Day)
		}
	}
	e.verifyDeep()
}

// memberSums returns the SHA-256 of the object, or of each member when it
// is a ZIP.
func (e *env) memberSums(key string, o *object) []string {
	e.t.Helper()
	r, err := e.s3.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		e.t.Fatalf("get %s: %v", key, err)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		e.t.Fatalf("read %s: %v", key, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return []string{o.SHA256}
	}
	var out []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			e.t.Fatalf("%s member %s: %v", key, f.Name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			e.t.Fatalf("%s member %s: %v", key, f.Name, err)
		}
		out = append(out, hex.EncodeToString(h.Sum(nil)))
	}
	return out
}

// TestOnce_NeverZeroWhileMissing: runs under a random mix of upstream
// misbehaviour never exit 0 while a recording of the manifest is not in the
// archive, and the runs end clean once the upstream behaves.
func TestOnce_NeverZeroWhileMissing(t *testing.T) {
	e := newEnv(t, envOptions{Calls: 80, Sim: func(o *cecsim.Options) {
		o.MissingTransferFiles, o.CollidingBaseNames, o.AfterMidnightRecordings = 2, true, 2
	}, Env: map[string]string{"ARCHIVER_CEC_MAX_RECORDING_BYTES": "1MiB"}})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	kinds := []cecsim.FaultKind{cecsim.FaultTextBody, cecsim.FaultJSONNoCode, cecsim.FaultRIFFShort, cecsim.FaultRIFFLong,
		cecsim.FaultGzip, cecsim.FaultEndless, cecsim.FaultHuge, cecsim.FaultHTTP500, cecsim.FaultTruncate}
	zeroRuns := 0
	for run := 1; run <= 4; run++ {
		var faults []cecsim.Fault
		for _, k := range kinds {
			if rng.IntN(2) == 0 {
				faults = append(faults, cecsim.Fault{Kind: k, Rate: 0.03})
			}
		}
		if rng.IntN(3) == 0 {
			faults = append(faults, cecsim.Fault{Kind: cecsim.FaultBadPackage, Path: cecwire.PathDownloadBillFile, Count: 1})
		}
		e.sim.SetFaults(faults...)
		code, p := e.once()
		if code != 0 && code != 1 {
			t.Fatalf("run %d: exit %d\n%s", run, code, p.tail())
		}
		t.Logf("run %d with %d faults: exit %d", run, len(faults), code)
		if code == 0 {
			zeroRuns++
			e.verify() // an exit 0 must be a complete archive
			if t.Failed() {
				t.Fatalf("run %d exited 0 with the archive incomplete", run)
			}
		}
	}
	e.sim.SetFaults()
	e.onceUntilClean(3)
	e.verify()
	t.Logf("%d of 4 faulted runs exited 0", zeroRuns)
}
