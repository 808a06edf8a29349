package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/config"
)

// testLedger is a ledger of n calls with every kind of member set: holds,
// orphans, retention, attested absences, a chain, and strings the encoder
// escapes.
func testLedger(n int) *Ledger {
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	l := &Ledger{Version: 1, Tenant: "t<&>", Day: "2026-11-01", Calls: []LedgerCall{},
		Incomplete: []string{"1 recordings failed"}, Totals: LedgerTotals{Calls: n, Archived: n}}
	for i := range n {
		c := LedgerCall{CallID: fmt.Sprintf("1762%08d", i), Begin: at.Add(time.Duration(i) * time.Second), VDN: "39",
			Recordings: []LedgerRecord{}, Lookups: LedgerLookups{Transfer: "done", IVR: "missing"}}
		if i%3 != 2 {
			c.Recordings = append(c.Recordings, LedgerRecord{Kind: "agent", ID: fmt.Sprintf("/1/%d.wav", i), State: "done",
				Key: fmt.Sprintf("t/2026/11/01/39/%d/agent.wav", i), Size: 8192, SHA256: fmt.Sprintf("%064x", i),
				Retention: &RetentionChoice{Rule: "default", Mode: "GOVERNANCE", Days: 30}})
		}
		if i%5 == 1 {
			c.Recordings = append(c.Recordings, LedgerRecord{Kind: "agent", ID: "gone\u2028", State: "absent", Reason: "r", Evidence: "e <b>",
				AttestedAt: &at, Error: "x", Attempts: 3})
			c.Holds = []LedgerHold{{Action: HoldPlace, At: at, Reason: "case 7", Objects: []string{"k1", "k2"}}}
		}
		l.Calls = append(l.Calls, c)
	}
	l.Orphans = []LedgerRecord{{Kind: "agent", ID: "o", CallID: "c", State: "pending"}}
	return l
}

// TestLedgerLookups: a call's lookups read as the map they were before
// they were a struct, and an older ledger's map reads as the struct.
func TestLedgerLookups(t *testing.T) {
	for _, c := range []LedgerLookups{{}, {IVR: "done", Transfer: "missing"}, {IVR: "a\"<", Transfer: "dead"}} {
		got, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]string{config.JobIVR: c.IVR, config.JobTransfer: c.Transfer})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("lookups %+v: %s, want %s", c, got, want)
		}
		var back LedgerLookups
		if err := json.Unmarshal(want, &back); err != nil || back != c {
			t.Errorf("read back %+v, %v; want %+v", back, err, c)
		}
	}
}

// TestEncodeLedger: the ledger written a call at a time is, byte for byte,
// what json.Marshal and json.MarshalIndent(l, "", " ") make of it, with no
// calls, one, and many; with and without its generation time and chain
// link; the digest is the compact form's and the file the indented one.
func TestEncodeLedger(t *testing.T) {
	gen := time.Date(2026, 11, 2, 3, 4, 5, 6, time.UTC)
	for _, n := range []int{0, 1, 2, 31} {
		for _, linked := range []bool{false, true} {
			l := testLedger(n)
			if linked {
				l.GeneratedAt = &gen
				l.Chain = &LedgerChain{Version: 1, Seq: 9, Prev: &ChainRef{Seq: 8, Day: "2026-10-31", Key: "k", SHA256: "s"}}
			}
			if n == 0 {
				l.Orphans, l.Incomplete = nil, nil
				if linked {
					l.Calls = nil // null, as json.Marshal writes it
				}
			}
			t.Run(fmt.Sprintf("%d calls, linked %v", n, linked), func(t *testing.T) {
				compact, err := json.Marshal(l)
				if err != nil {
					t.Fatal(err)
				}
				indented, err := json.MarshalIndent(l, "", " ")
				if err != nil {
					t.Fatal(err)
				}
				for _, tc := range []struct {
					indent bool
					want   []byte
				}{{false, compact}, {true, indented}} {
					var buf bytes.Buffer
					if err := encodeLedger(&buf, l, tc.indent); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(buf.Bytes(), tc.want) {
						t.Errorf("indent %v: encoded\n%s\nwant\n%s", tc.indent, buf.Bytes(), tc.want)
					}
				}
				sum := sha256.Sum256(compact)
				if d, err := ledgerDigest(l); err != nil || d != hex.EncodeToString(sum[:]) {
					t.Errorf("digest %s, %v; want the compact form's %x", d, err, sum)
				}
				dir := t.TempDir()
				lf, err := writeLedgerFile(dir, l)
				if err != nil {
					t.Fatal(err)
				}
				defer lf.close()
				got, err := io.ReadAll(lf.f)
				sum = sha256.Sum256(indented)
				if err != nil || !bytes.Equal(got, indented) || lf.size != int64(len(indented)) || lf.sha256 != hex.EncodeToString(sum[:]) {
					t.Errorf("file: %d bytes (size %d, sha256 %s), %v; want the indented form, %d bytes", len(got), lf.size, lf.sha256, err, len(indented))
				}
				if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
					t.Errorf("spool directory holds %v, %v; want the file removed from it", ents, err)
				}
			})
		}
	}
}

// BenchmarkLedgerText measures the heap a day's ledger of 20,000 calls
// costs while its digest is computed and its indented text written (to a
// file of the spool directory), against the same done in memory
// (json.Marshal, then json.MarshalIndent: the baseline, measured in the
// same run). peak-B/call is the most heap above the ledger itself held at
// any moment (sampled, the collector kept close to the live heap);
// x-less-than-memory is the baseline's peak over it.
//
// Run: go test -run '^$' -bench 'LedgerText$' -benchtime 3x ./internal/jobs/
func BenchmarkLedgerText(b *testing.B) {
	const calls = 20000
	l := testLedger(calls)
	dir := b.TempDir()
	var peak, basePeak uint64
	for b.Loop() {
		b.StopTimer()
		base := heapInUse()
		stop := sampleHeap(b, &basePeak, base)
		compact, err := json.Marshal(l)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(compact)
		indented, err := json.MarshalIndent(l, "", " ")
		if err != nil {
			b.Fatal(err)
		}
		stop()
		runtime.KeepAlive(indented)
		compact, indented = nil, nil
		b.StartTimer()
		base = heapInUse()
		stop = sampleHeap(b, &peak, base)
		d, err := ledgerDigest(l)
		if err != nil || d != hex.EncodeToString(sum[:]) {
			b.Fatalf("digest %s, %v", d, err)
		}
		lf, err := writeLedgerFile(dir, l)
		if err != nil {
			b.Fatal(err)
		}
		stop()
		lf.close()
	}
	b.ReportMetric(float64(peak)/calls, "peak-B/call")
	b.ReportMetric(float64(basePeak)/calls, "memory-peak-B/call")
	b.ReportMetric(float64(basePeak)/float64(max(peak, 1)), "x-less-than-memory")
}
