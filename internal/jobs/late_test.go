package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// TestArchiver_LateData: recordings indexed only after the first run are
// found by the lookback re-scan; files listed but not yet downloadable
// (F18) fail, stay visible, and are archived once they appear.
func TestArchiver_LateData(t *testing.T) {
	e := newEnv(t, envOptions{sim: func(o *cecsim.Options) { o.LateRecordings, o.UnavailableFiles = 3, 2 }})
	ctx := testCtx(t)
	m := e.sim.Manifest()
	var late, unavailable []cecsim.ManifestRecording
	for _, r := range m.Recordings {
		if r.Late {
			late = append(late, r)
		}
		if r.Unavailable {
			unavailable = append(unavailable, r)
		}
	}
	if len(late) != 3 || len(unavailable) != 2 {
		t.Fatalf("manifest has %d late and %d unavailable recordings, want 3 and 2", len(late), len(unavailable))
	}
	rep, err := e.a.Once(ctx)
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	t.Run("first run", func(t *testing.T) {
		items := itemsByID(e.items())
		for _, r := range late {
			if it, ok := items[r.Kind+"\x00"+r.ID]; ok {
				t.Errorf("late %s: item %s before it was indexed", r.ID, it.State)
			}
		}
		for _, r := range unavailable {
			it := items[r.Kind+"\x00"+r.ID]
			if it.State != checkpoint.StateFailed || it.Attempts != 1 || !strings.Contains(it.LastError, "not found upstream") {
				t.Errorf("unavailable %s: %s attempts %d %q, want failed once, not found", r.ID, it.State, it.Attempts, it.LastError)
			}
		}
		if rep.Failed != len(unavailable) {
			t.Errorf("report: %d failed, want %d", rep.Failed, len(unavailable))
		}
		for day, l := range e.ledgers() {
			if l.Totals.Failed > 0 == l.Complete {
				t.Errorf("ledger %s: complete %v with %d failed", day, l.Complete, l.Totals.Failed)
			}
		}
	})
	if n := e.sim.ReleaseLate(); n != 3 {
		t.Fatalf("ReleaseLate: %d", n)
	}
	if n := e.sim.ReleaseUnavailable(); n != 2 {
		t.Fatalf("ReleaseUnavailable: %d", n)
	}
	// The next run is an hour later: the windows are still within the lookback.
	e.clock.Add(time.Hour)
	rep, err = e.a.Once(ctx)
	if err != nil {
		t.Fatalf("second Once: %v", err)
	}
	if rep.Added != len(late) || rep.Done != len(late)+len(unavailable) {
		t.Errorf("second run: added %d done %d, want %d and %d", rep.Added, rep.Done, len(late), len(late)+len(unavailable))
	}
	e.checkArchive(m)
	e.checkLedgers(m, true)
}
