package jobs

import (
	"fmt"
	"time"
)

// Windows are aligned in the tenant time zone:
//
//   - a Window that divides 24h starts at local midnight + k×Window; the last
//     window of a day ends at the next local midnight (a DST day of 23 or 25
//     hours has a shorter or an extra window);
//   - a Window of whole days (24h, 48h, 72h) starts on a local midnight whose
//     day number, counted from 1970-01-01, is a multiple of the days.
//
// A window never exceeds MaxWindow (72h): a three-day window that a DST
// change makes longer is cut at 72h and followed by a short one.

// checkWindow accepts windows that divide 24h or are whole days up to 72h.
func checkWindow(w time.Duration) error {
	day := 24 * time.Hour
	switch {
	case w <= 0 || w > MaxWindow:
		return fmt.Errorf("window %s: want more than 0 and at most %s", w, MaxWindow)
	case w < day && day%w != 0:
		return fmt.Errorf("window %s: must divide 24h or be a whole number of days", w)
	case w >= day && w%day != 0:
		return fmt.Errorf("window %s: must divide 24h or be a whole number of days", w)
	case w < time.Second:
		return fmt.Errorf("window %s: shorter than a second", w)
	}
	return nil
}

// localMidnight is the start of t's day in loc.
func localMidnight(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// dayNumber counts civil days since 1970-01-01.
func dayNumber(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// floorWindow is the start of the aligned window holding t.
func (a *Archiver) floorWindow(t time.Time) time.Time {
	loc, w := a.loc(), a.window()
	mid := localMidnight(t, loc)
	if w < 24*time.Hour {
		k := t.Sub(mid) / w
		return mid.Add(k * w)
	}
	days := int64(w / (24 * time.Hour))
	y, m, d := mid.Date()
	n := dayNumber(y, m, d)
	back := n % days
	if back < 0 {
		back += days
	}
	return time.Date(y, m, d-int(back), 0, 0, 0, 0, loc)
}

// windowAt is the window starting at begin (begin need not be aligned: the
// window then ends at the next aligned boundary).
func (a *Archiver) windowAt(begin time.Time) Window {
	loc, w := a.loc(), a.window()
	start := a.floorWindow(begin)
	var end time.Time
	if w < 24*time.Hour {
		end = start.Add(w)
		y, m, d := start.In(loc).Date()
		if next := time.Date(y, m, d+1, 0, 0, 0, 0, loc); end.After(next) {
			end = next
		}
	} else {
		y, m, d := start.In(loc).Date()
		end = time.Date(y, m, d+int(w/(24*time.Hour)), 0, 0, 0, 0, loc)
	}
	if end.Sub(begin) > MaxWindow {
		end = begin.Add(MaxWindow)
	}
	return Window{Begin: begin.In(loc), End: end.In(loc)}
}

// stepBack is the aligned start n windows before the window holding t
// (t itself when t is a boundary and n is 0).
func (a *Archiver) stepBack(t time.Time, n int) time.Time {
	b := a.floorWindow(t)
	for range n {
		b = a.floorWindow(b.Add(-time.Nanosecond))
	}
	return b
}

// scheduled returns the windows a cdr run processes at now: from Lookback
// windows before the watermark (or, with no watermark, max(1, Lookback)
// windows before the current one) to the last complete window.
func (a *Archiver) scheduled(watermark time.Time, ok bool, now time.Time) []Window {
	var start time.Time
	if ok {
		start = a.stepBack(watermark, a.Lookback)
	} else {
		start = a.stepBack(now, max(1, a.Lookback))
	}
	var out []Window
	for b := start; ; {
		w := a.windowAt(b)
		if w.End.After(now) {
			return out
		}
		out = append(out, w)
		b = w.End
	}
}

// Plan splits [from, to) into consecutive windows of Window (at most 72h),
// the first starting at from, the last ending at to.
func (a *Archiver) Plan(from, to time.Time) []Window {
	step := min(a.window(), MaxWindow)
	loc := a.loc()
	var out []Window
	for b := from; b.Before(to); {
		e := b.Add(step)
		if e.After(to) {
			e = to
		}
		out = append(out, Window{Begin: b.In(loc), End: e.In(loc)})
		b = e
	}
	return out
}
