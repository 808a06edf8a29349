package jobs

import (
	"testing"
	"time"
	_ "time/tzdata" // the DST cases need Europe/Berlin whatever the host has

	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/config"
)

func TestCheckWindow(t *testing.T) {
	for _, tc := range []struct {
		w  time.Duration
		ok bool
	}{
		{time.Hour, true}, {15 * time.Minute, true}, {6 * time.Hour, true}, {24 * time.Hour, true},
		{48 * time.Hour, true}, {72 * time.Hour, true},
		{5 * time.Hour, false}, {36 * time.Hour, false}, {96 * time.Hour, false}, {0, false}, {-time.Hour, false},
	} {
		if err := checkWindow(tc.w); (err == nil) != tc.ok {
			t.Errorf("checkWindow(%s) = %v, want ok %v", tc.w, err, tc.ok)
		}
	}
}

func TestArchiver_scheduled(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("first run, hourly", func(t *testing.T) {
		a := &Archiver{Settings: Settings{Location: time.UTC, Window: time.Hour, Lookback: 2}}
		now := time.Date(2026, 11, 3, 12, 30, 0, 0, time.UTC)
		got := a.scheduled(time.Time{}, false, now)
		if len(got) != 2 || !got[0].Begin.Equal(now.Add(-150*time.Minute)) || !got[1].End.Equal(now.Add(-30*time.Minute)) {
			t.Errorf("scheduled = %v, want 10:00–11:00 and 11:00–12:00", got)
		}
	})
	t.Run("from watermark with lookback", func(t *testing.T) {
		a := &Archiver{Settings: Settings{Location: time.UTC, Window: time.Hour, Lookback: 1}}
		wm := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
		got := a.scheduled(wm, true, time.Date(2026, 11, 3, 11, 0, 0, 0, time.UTC))
		if len(got) != 4 || !got[0].Begin.Equal(wm.Add(-time.Hour)) || !got[3].End.Equal(wm.Add(3*time.Hour)) {
			t.Errorf("scheduled = %v, want 07:00 to 11:00 in 4 windows", got)
		}
	})
	for _, tc := range []struct {
		name string
		day  time.Time // a DST change day in Berlin
		w    time.Duration
		n    int
	}{
		{"25h day, 6h windows", time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), 6 * time.Hour, 5},
		{"23h day, 6h windows", time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), 6 * time.Hour, 4},
		{"25h day, 1h windows", time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), time.Hour, 25},
		{"25h day, 24h window", time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), 24 * time.Hour, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Archiver{Settings: Settings{Location: berlin, Window: tc.w}}
			next := tc.day.AddDate(0, 0, 1)
			var got []Window
			for b := tc.day; b.Before(next); {
				w := a.windowAt(b)
				if !w.Begin.Equal(b) || !w.End.After(b) || w.End.Sub(w.Begin) > tc.w+time.Hour {
					t.Fatalf("windowAt(%v) = %v", b, w)
				}
				got = append(got, w)
				b = w.End
			}
			if len(got) != tc.n || !got[len(got)-1].End.Equal(next) {
				t.Errorf("%d windows ending %v, want %d ending at the next midnight %v", len(got), got[len(got)-1].End, tc.n, next)
			}
			for _, w := range got {
				if f := a.floorWindow(w.Begin); !f.Equal(w.Begin) {
					t.Errorf("floorWindow(%v) = %v, want the window start", w.Begin, f)
				}
			}
		})
	}
	t.Run("multi-day windows align on the epoch day", func(t *testing.T) {
		a := &Archiver{Settings: Settings{Location: time.UTC, Window: 48 * time.Hour}}
		for _, d := range []int{0, 1, 2, 3} {
			f := a.floorWindow(time.Date(2026, 11, 1+d, 5, 0, 0, 0, time.UTC))
			if n := dayNumber(f.Date()); n%2 != 0 || f.Hour() != 0 {
				t.Errorf("floorWindow(day %d) = %v (day number %d), want an even day's midnight", d, f, n)
			}
		}
	})
}

// TestArchiver_WindowFailure: a window that fails is reported, the next
// windows are still processed, and the watermark does not pass it.
func TestArchiver_WindowFailure(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testCtx(t)
	// Every try of the first queryBillData fails (the client tries 5 times).
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathQueryBillData, Count: 5})
	rep, err := e.a.Run(ctx, config.JobCDR)
	if err != nil {
		t.Fatalf("Run cdr: %v", err)
	}
	if rep.Windows != 2 || rep.Packages != 1 || rep.PackagesFailed != 1 || len(rep.Errors) != 1 {
		t.Fatalf("report %+v, want the first of 2 windows failed", *rep)
	}
	if wm, ok, _ := e.store.Watermark(ctx, config.JobCDR); ok {
		t.Errorf("watermark %v set past a failed window", wm)
	}
	e.clock.Add(time.Minute)
	rep, err = e.a.Run(ctx, config.JobCDR)
	if err != nil || rep.PackagesFailed != 0 {
		t.Fatalf("second Run cdr: %v, %+v", err, *rep)
	}
	if wm, _, _ := e.store.Watermark(ctx, config.JobCDR); !wm.Equal(simStart.AddDate(0, 0, 2)) {
		t.Errorf("watermark %v, want %v", wm, simStart.AddDate(0, 0, 2))
	}
}
