package jobs

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// storeError marks a failed checkpoint store call: it stops the job.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// storeErr counts and wraps a failed store call, naming the store when it
// can say which database it is (fmt.Stringer: the PostgreSQL store's server
// and database).
func (a *Archiver) storeErr(op string, err error) error {
	a.met.CheckpointError()
	if d, ok := a.Store.(fmt.Stringer); ok {
		return &storeError{fmt.Errorf("jobs: checkpoint %s on %s: %w", op, d, err)}
	}
	return &storeError{fmt.Errorf("jobs: checkpoint %s: %w", op, err)}
}

// runCDR processes the scheduled windows (plan nil) and advances the cdr
// watermark, or processes plan and leaves the watermark alone (backfill).
//
// Both resume where a killed run stopped. The watermark is saved after each
// window that extends it, so a catch-up over many windows restarts Lookback
// windows before the last one done, not where it began. A backfill skips
// the windows of plan that are settled (see settled) unless rescan: a
// second backfill of the same days requests only what the first did not
// finish, and the recent windows the lookback re-scans anyway.
//
// A window is processed under the store lease cdr:<begin>, so that one
// replica at a time requests it; a window another replica holds is skipped
// this run (Report.WindowsHeld): that replica does it. A skipped window
// holds the watermark back like a failed one, until the end of the run: the
// windows from there on that the store then finds settled (done, none
// open), whoever did them, move it on. The watermark only moves forward
// (checkpoint.Store.SetWatermark): a replica behind another never undoes
// its progress.
func (a *Archiver) runCDR(ctx context.Context, plan []Window, rescan bool) (*Report, error) {
	log := a.log.With(zap.String("job", config.JobCDR))
	rep := &Report{}
	if a.CallbackURL == "" {
		// CC-FS requires callBackURL; polling works whatever it is, but an
		// empty one is refused, so every window would fail.
		return rep, errors.New("jobs: cdr: no callback URL: queryBillData requires callBackURL (cec.callback_url)")
	}
	sctx := storeCtx(ctx)
	backfill := plan != nil
	var wm time.Time
	var wmOK bool
	if !backfill {
		var err error
		wm, wmOK, err = a.Store.Watermark(sctx, config.JobCDR)
		if err != nil {
			return rep, a.storeErr("read cdr watermark", err)
		}
		plan = a.scheduled(wm, wmOK, a.now())
	}
	newWM := wm
	if !wmOK && len(plan) > 0 {
		newWM = plan[0].Begin
	}
	initial := newWM
	a.Progress.planned(len(plan))
	seen := *rep // what a.Progress has counted of rep
	blocked, heldElsewhere := false, false
	var runErr error
	horizon := a.stepBack(a.now(), a.Lookback)
	for _, w := range plan {
		if ctx.Err() != nil {
			break
		}
		if backfill && !rescan {
			ok, err := a.settled(sctx, w, horizon)
			if err != nil {
				runErr = err
				break
			}
			if ok {
				rep.WindowsSettled++
				a.Progress.windowEnded(&seen, rep)
				continue
			}
		}
		ok, held, err := a.cdrWindow(ctx, log, w, rep, nil)
		if held {
			heldElsewhere = true
		}
		if err != nil {
			runErr = err
		}
		// A window behind the stored watermark was done before: a re-scan
		// that failed or that another replica holds does not undo that.
		done := ok || wmOK && !w.End.After(wm)
		a.Progress.windowEnded(&seen, rep)
		if !backfill && !blocked {
			if done && !w.Begin.After(newWM) {
				if w.End.After(newWM) {
					newWM = w.End
					// Saved at once: a run killed later resumes from here.
					moved, err := a.setWatermark(sctx, config.JobCDR, newWM)
					if err != nil {
						return rep, errors.Join(runErr, err)
					}
					if moved {
						a.met.Watermark(config.JobCDR, newWM)
					}
				}
			} else {
				blocked = true
			}
		}
		if runErr != nil {
			break
		}
	}
	if !backfill && blocked && heldElsewhere && runErr == nil && ctx.Err() == nil {
		wm, err := a.settledWatermark(sctx, plan, newWM)
		if err != nil {
			return rep, err
		}
		if wm.After(newWM) {
			moved, err := a.setWatermark(sctx, config.JobCDR, wm)
			if err != nil {
				return rep, err
			}
			if moved {
				a.met.Watermark(config.JobCDR, wm)
			}
			newWM = wm
		}
	}
	if !backfill && runErr == nil && ctx.Err() == nil {
		runErr = a.resumeUnfinished(ctx, log, plan, rep, &seen)
	}
	if !backfill && newWM.After(initial) {
		log.Info("watermark advanced", zap.Time("watermark", newWM))
	}
	if rep.WindowsSettled > 0 {
		log.Info("backfill: windows already done skipped (archiver backfill --rescan requests them again)",
			zap.Int("windows", rep.WindowsSettled))
	}
	if runErr == nil && ctx.Err() != nil {
		runErr = ctx.Err()
	}
	return rep, runErr
}

// cdrWindow processes window w under its lease (cdrLease) and records the
// outcome in rep: ok when its package was obtained and archived, held when
// another replica holds the window (it is skipped), and err when the run
// must stop (a checkpoint failure, refused credentials). A window that
// failed otherwise is counted and logged, and is neither ok nor an err.
// still, when not nil, is asked under the lease whether the window still
// needs its package (another replica may have finished it meanwhile); a
// window that does not is ok.
func (a *Archiver) cdrWindow(ctx context.Context, log *zap.Logger, w Window, rep *Report,
	still func(sctx context.Context) (bool, error)) (ok, held bool, err error) {
	ran, err := a.exclusive(ctx, cdrLease(w), func(ctx context.Context) error {
		if still != nil {
			if need, err := still(storeCtx(ctx)); err != nil || !need {
				return err
			}
		}
		rep.Windows++
		return a.processWindow(ctx, log, w, rep)
	})
	if err == nil {
		if !ran {
			rep.WindowsHeld++
			log.Info("window skipped: another replica is processing it", zap.Time("begin", w.Begin), zap.Time("end", w.End))
		}
		return ran, !ran, nil
	}
	var se *storeError
	switch {
	case errors.As(err, &se):
		return false, false, err
	case errors.Is(err, errLeaseLost):
		// Another replica took the window over (this one stalled past
		// its lease): the package is left to it.
		a.met.LeaseLost(config.JobCDR)
		log.Warn("window abandoned: its lease was lost to another replica", zap.Time("begin", w.Begin), zap.Time("end", w.End), zap.Error(err))
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// Shutdown: the package stays open and is resumed next run.
	default:
		rep.PackagesFailed++
		rep.Errors = append(rep.Errors, fmt.Sprintf("cdr window %s: %v", w, err))
		log.Warn("window failed", zap.Time("begin", w.Begin), zap.Time("end", w.End), zap.Error(err))
		if authError(err) && rep.AuthError == nil {
			rep.AuthError = err
			if !strings.HasPrefix(err.Error(), "jobs: cdr: ") {
				err = fmt.Errorf("jobs: cdr: %w", err) // named once
			}
			return false, false, err
		}
	}
	return false, false, nil
}

// resumeUnfinished takes up again, after the scheduled windows of plan,
// the windows before them whose newest package is not finished (pending or
// failed; checkpoint.Store.UnfinishedWindows): a request a killed replica
// left open, or a re-scan that failed, in a window that has since left the
// lookback. No scheduled run would request those windows again, and the
// days they cover would stay incomplete. Each is processed as a scheduled
// window is (under its lease; an open package is resumed or requested
// again), and a failure fails the run as a scheduled window's does; they do
// not move the watermark, which is past them.
func (a *Archiver) resumeUnfinished(ctx context.Context, log *zap.Logger, plan []Window, rep *Report, seen *Report) error {
	before := a.now()
	if len(plan) > 0 {
		before = plan[0].Begin
	}
	sctx := storeCtx(ctx)
	open, err := a.Store.UnfinishedWindows(sctx, before)
	if err != nil {
		return a.storeErr("unfinished windows", err)
	}
	if len(open) == 0 {
		return nil
	}
	a.Progress.planned(len(plan) + len(open))
	for _, p := range open {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w := Window{Begin: p.Begin.In(a.loc()), End: p.End.In(a.loc())}
		log.Info("taking up a window before the scheduled ones: its newest package is not finished", zap.Time("begin", w.Begin),
			zap.Time("end", w.End), zap.String("bill_file", p.BillFileName), zap.String("state", string(p.State)), zap.Int("attempts", p.Attempts))
		_, _, err := a.cdrWindow(ctx, log, w, rep, func(sctx context.Context) (bool, error) {
			// Still open: the package found, or a newer request of the window.
			q, ok, err := a.Store.OpenPackage(sctx, w.Begin, w.End)
			if err != nil {
				return false, a.storeErr("open package", err)
			}
			return ok && q.ID >= p.ID, nil
		})
		a.Progress.windowEnded(seen, rep)
		if err != nil {
			return err
		}
	}
	return nil
}

// settledWatermark is how far the watermark at wm can move over the
// windows of plan, in order, that the store finds settled now (the newest
// package done, none open): at the end of a run that skipped windows other
// replicas were processing, what they finished meanwhile counts.
func (a *Archiver) settledWatermark(sctx context.Context, plan []Window, wm time.Time) (time.Time, error) {
	for _, w := range plan {
		if !w.End.After(wm) {
			continue
		}
		if w.Begin.After(wm) {
			break
		}
		if _, open, err := a.Store.OpenPackage(sctx, w.Begin, w.End); err != nil {
			return wm, a.storeErr("open package", err)
		} else if open {
			break
		}
		if _, done, err := a.Store.LastDonePackage(sctx, w.Begin, w.End); err != nil {
			return wm, a.storeErr("last done package", err)
		} else if !done {
			break
		}
		wm = w.End
	}
	return wm, nil
}

// settled reports whether backfill can skip window w: its newest package
// is done (no package of it is open or failed since) and w ended before
// horizon, the start of the windows the cdr job's lookback re-requests on
// every run (late CDR rows land there, so those are requested again).
func (a *Archiver) settled(sctx context.Context, w Window, horizon time.Time) (bool, error) {
	if w.End.After(horizon) {
		return false, nil
	}
	if _, open, err := a.Store.OpenPackage(sctx, w.Begin, w.End); err != nil {
		return false, a.storeErr("open package", err)
	} else if open {
		return false, nil
	}
	_, done, err := a.Store.LastDonePackage(sctx, w.Begin, w.End)
	if err != nil {
		return false, a.storeErr("last done package", err)
	}
	return done, nil
}

// processWindow obtains, archives and records the package of one window.
// A package that the callback (or an earlier download) said was ready and
// that now answers not-found has expired at the source: it is requested
// again at once, once per run, instead of being waited on.
func (a *Archiver) processWindow(ctx context.Context, log *zap.Logger, w Window, rep *Report) error {
	sctx := storeCtx(ctx)
	log = log.With(zap.Time("begin", w.Begin), zap.Time("end", w.End))
	p, ok, err := a.Store.OpenPackage(sctx, w.Begin, w.End)
	if err != nil {
		return a.storeErr("open package", err)
	}
	resume := ok && a.now().Before(p.RequestedAt.Add(a.readyTimeout()))
	for try := 0; ; try++ {
		if resume {
			log.Info("resuming package", zap.String("bill_file", p.BillFileName))
		} else {
			if p, err = a.requestPackage(ctx, log, w, p, ok); err != nil {
				return err
			}
		}
		err := a.obtainPackage(ctx, log, w, &p, rep)
		var exp *expiredError
		if errors.As(err, &exp) && try == 0 {
			log.Warn("package expired at the source after it was ready, requesting it again", zap.String("bill_file", p.BillFileName), zap.Error(err))
			resume, ok = false, false
			continue
		}
		return err
	}
}

// requestPackage asks queryBillData for the window's package and records
// the request. open says p is an earlier request of the window that is
// neither done nor dead: it is closed as failed first when still pending.
func (a *Archiver) requestPackage(ctx context.Context, log *zap.Logger, w Window, p checkpoint.Package, open bool) (checkpoint.Package, error) {
	sctx := storeCtx(ctx)
	now := a.now()
	if open && p.State == checkpoint.StatePending {
		// Requested by an earlier run that never saw it ready.
		p.State, p.Attempts = checkpoint.StateFailed, p.Attempts+1
		p.LastError = fmt.Sprintf("not ready after %s", a.readyTimeout())
		if err := a.Store.UpdatePackage(sctx, p); err != nil {
			return p, a.storeErr("update package", err)
		}
	}
	responseID, err := a.Client.QueryBillData(ctx, cecclient.BillQuery{
		Begin: w.Begin, End: w.End, Location: a.loc(),
		DataType: cecwire.DataTypeCallRecord, CallBackURL: a.CallbackURL,
	})
	if err != nil {
		return p, err // the client's error names the interface and the call
	}
	p = checkpoint.Package{
		Begin: w.Begin, End: w.End, ResponseID: responseID,
		BillFileName: cecclient.BillFileName(now.In(a.loc()), responseID),
		RequestedAt:  now, State: checkpoint.StatePending,
	}
	if p.ID, err = a.Store.CreatePackage(sctx, p); err != nil {
		return p, a.storeErr("create package", err)
	}
	log.Info("package requested", zap.String("bill_file", p.BillFileName))
	return p, nil
}

// obtainPackage downloads, checks, archives and records package p; a
// failure is recorded on p.
func (a *Archiver) obtainPackage(ctx context.Context, log *zap.Logger, w Window, p *checkpoint.Package, rep *Report) error {
	sctx := storeCtx(ctx)
	fail := func(err error) error {
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return err // left open: resumed by the next run
		}
		a.met.Package("failed")
		p.State, p.Attempts, p.LastError = checkpoint.StateFailed, p.Attempts+1, err.Error()
		if uerr := a.Store.UpdatePackage(sctx, *p); uerr != nil {
			return errors.Join(err, a.storeErr("update package", uerr))
		}
		return err
	}
	spool, err := a.fetchPackage(ctx, log, p)
	if err != nil {
		return fail(err)
	}
	defer spool.remove()
	if err := a.storePackage(ctx, log, w, p, spool, rep); err != nil {
		var se *storeError
		if errors.As(err, &se) {
			return err
		}
		return fail(err)
	}
	return nil
}

// expiredError: a package said to be ready answers not-found.
type expiredError struct{ name string }

func (e *expiredError) Error() string {
	return fmt.Sprintf("jobs: cdr: package %s answers not found although it was ready (expired at the source)", e.name)
}

// spooled is a package downloaded to a temp file (or a file derived from
// one: its rows, a Parquet table).
type spooled struct {
	f      *os.File
	drop   func() // closes f (createSpool)
	size   int64
	sha256 string
	// content is, for a rows file, the digest of the rows themselves (kind
	// and fields, not entry names or line numbers): CC-FS zips a re-requested
	// window anew, with new entry names, so only this tells an unchanged CDR.
	content string
}

func (s *spooled) remove() { s.drop() }

// newSpooled is a new empty spooled file in dir (createSpool).
func newSpooled(dir, pattern string) (*spooled, error) {
	f, drop, err := createSpool(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &spooled{f: f, drop: drop}, nil
}

// createSpool creates a temporary file in dir (os.CreateTemp's pattern)
// and removes it from dir at once where the system allows: it is used
// through f alone, so a process killed while it is open (a SIGKILL, the
// OOM killer) leaves nothing behind in the spool directory. drop closes f,
// and removes it where it could not be removed at once.
func createSpool(dir, pattern string) (f *os.File, drop func(), err error) {
	f, err = os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, nil, err
	}
	name := f.Name()
	if os.Remove(name) == nil {
		name = ""
	}
	return f, func() {
		f.Close()
		if name != "" {
			os.Remove(name)
		}
	}, nil
}

// fetchPackage waits until the package is ready and spools it: it polls
// downloadBillFile (interval doubling up to a minute) and, with Callbacks,
// also wakes up when the package's callback arrives. It gives up at
// RequestedAt + ReadyTimeout.
func (a *Archiver) fetchPackage(ctx context.Context, log *zap.Logger, p *checkpoint.Package) (*spooled, error) {
	deadline := p.RequestedAt.Add(a.readyTimeout())
	wait, quick := a.pollInterval(), inPassBackoff
	// An earlier download of this package got its bytes: it was ready.
	saidReady := p.SHA256 != ""
	var ready, readyCh <-chan struct{}
	if a.Callbacks != nil {
		ready = a.Callbacks.Wait(p.BillFileName)
		readyCh = ready
	}
	for {
		if a.Callbacks != nil {
			// CC-FS names the package in its callback; prefer that name.
			if name, ok := a.Callbacks.nameFor(p.ResponseID); ok {
				saidReady = true
				if name != p.BillFileName {
					log.Info("callback names the package", zap.String("bill_file", name), zap.String("computed", p.BillFileName))
					p.BillFileName = name
					if err := a.Store.UpdatePackage(storeCtx(ctx), *p); err != nil {
						return nil, a.storeErr("update package", err)
					}
					ready = a.Callbacks.Wait(name)
					readyCh = ready
				}
			}
			select {
			case <-readyCh:
				saidReady = true
			default:
			}
		}
		s, err := a.downloadPackage(a.transferCtx(ctx), p.BillFileName)
		if err == nil {
			log.Info("package downloaded", zap.String("bill_file", p.BillFileName), zap.Int64("bytes", s.size), zap.String("sha256", s.sha256))
			return s, nil
		}
		var d time.Duration
		switch {
		case cecclient.IsNotFound(err) && saidReady:
			return nil, fmt.Errorf("%w: %w", &expiredError{p.BillFileName}, err)
		case cecclient.IsNotFound(err):
			d, quick = wait, inPassBackoff
			wait = min(wait*2, MaxPollInterval)
		case cecclient.IsTransient(err) && a.transferCtx(ctx).Err() == nil:
			log.Info("package download failed, retrying", zap.String("bill_file", p.BillFileName), zap.Error(err))
			d = quick
			quick = min(quick*2, wait)
		default:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("jobs: cdr: download package %s: %w", p.BillFileName, err)
		}
		now := a.now()
		if !now.Before(deadline) {
			return nil, fmt.Errorf("jobs: cdr: package %s not ready after %s: %w", p.BillFileName, a.readyTimeout(), err)
		}
		d = min(d, deadline.Sub(now))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-ready:
			ready = nil // poll now, then on the timer
		case <-t.C:
		}
		t.Stop()
	}
}

// downloadPackage downloads the package into a 0600 temp file, bounded by
// MaxPackageBytes, hashing it on the way, and fsyncs it.
func (a *Archiver) downloadPackage(ctx context.Context, name string) (_ *spooled, err error) {
	d, err := a.Client.DownloadBillFile(ctx, name)
	if err != nil {
		return nil, err
	}
	defer d.Body.Close()
	s, err := newSpooled(a.SpoolDir, "cdr-*.zip")
	if err != nil {
		return nil, fmt.Errorf("jobs: spool %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			s.remove()
		}
	}()
	f := s.f
	h := sha256.New()
	max := a.maxPackageBytes()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(d.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("jobs: spool %s: %w", name, err)
	}
	if n > max {
		return nil, fmt.Errorf("jobs: spool %s: package larger than %d bytes", name, max)
	}
	if d.Length >= 0 && n != d.Length {
		return nil, fmt.Errorf("jobs: spool %s: %d bytes, Content-Length %d: %w", name, n, d.Length, io.ErrUnexpectedEOF)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("jobs: spool %s: %w", name, err)
	}
	s.size, s.sha256 = n, hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// callInfo gathers what the package says about one call.
type callInfo struct {
	idx        int // in the order first met
	begin      time.Time
	vdn, agent string
	records    []string // file_name of each recording-index row (Method cms: the members a call-level download must hold)
}

// badRows counts rows that cannot be used; the first one is named.
type badRows struct {
	n     int
	first string
}

func (b *badRows) add(r cdr.Row, why string) {
	if b.n == 0 {
		b.first = fmt.Sprintf("%s line %d: %s", r.File, r.Line, why)
	}
	b.n++
}

// storePackage checks the package, then archives the ZIP and its rows and
// records calls and items. A package identical to the last done one of the
// window (same ZIP SHA-256, or the same rows under new entry names, as CC-FS
// zips a re-requested window anew) is not stored again.
//
// A package rejected for its content (an unsafe or bomb-like ZIP, a row that
// cannot be used: no call_id, no file_name, no parsable call_begin, no valid
// key) never takes its final key: its bytes are kept under a quarantine key
// that includes their SHA-256 (Package.QuarantineKey, listed by status), the
// package fails naming the file and line, and it is retried on the next run
// (it stays visible and holds the watermark back) — never skipped silently.
func (a *Archiver) storePackage(ctx context.Context, log *zap.Logger, w Window, p *checkpoint.Package, s *spooled, rep *Report) error {
	sctx, tctx := storeCtx(ctx), a.transferCtx(ctx)
	p.Size, p.SHA256 = s.size, s.sha256
	keyTime := wallUTC(w.Begin, a.loc())
	pkg, err := cdr.Open(s.f, s.size, a.limits())
	var calls []checkpoint.Call
	var items *packageItems
	var rows *spooled
	if err == nil {
		calls, items, rows, err = a.parsePackage(pkg, p.BillFileName)
		if rows != nil {
			defer rows.remove()
		}
		defer items.remove()
	} else {
		err = fmt.Errorf("jobs: cdr: package %s: %w", p.BillFileName, err)
	}
	if err != nil {
		if errors.Is(err, cdr.ErrInvalid) {
			if qerr := a.quarantine(tctx, p, s, keyTime, rep); qerr != nil {
				return errors.Join(err, qerr)
			}
			log.Warn("package rejected for its content, quarantined", zap.String("bill_file", p.BillFileName),
				zap.String("quarantine_key", p.QuarantineKey), zap.Error(err))
		}
		return err
	}
	p.QuarantineKey = ""
	nItems := items.Len() + lookupsPerCall*len(calls) // with the lookups
	prev, ok, err := a.Store.LastDonePackage(sctx, w.Begin, w.End)
	if err != nil {
		return a.storeErr("last done package", err)
	}
	if ok && (prev.SHA256 == s.sha256 || prev.RowsSHA256 == rows.content) {
		// The same CDR as the last package of this window: nothing new to
		// store. Calls and items are still offered (they are known already).
		p.State, p.Key, p.RowsKey, p.RowsSHA256, p.LastError = checkpoint.StateDone, "", prev.RowsKey, rows.content, ""
		p.Calls, p.Items = len(calls), nItems
		added, err := a.completePackage(ctx, calls, items, func() (checkpoint.Package, error) { return *p, nil })
		rep.Added += added
		if err != nil {
			return err
		}
		a.met.Package("unchanged")
		rep.Packages++
		log.Info("package unchanged", zap.String("bill_file", p.BillFileName), zap.Int("new_items", added))
		return nil
	}
	key, err := a.cdrKeys.Build(sink.KeyFields{Tenant: a.Tenant, RecordID: p.BillFileName, Time: keyTime})
	if err != nil {
		return fmt.Errorf("jobs: cdr: package %s: key: %w", p.BillFileName, err)
	}
	rowsKey, err := a.cdrKeys.Build(sink.KeyFields{Tenant: a.Tenant, RecordID: p.BillFileName + ".rows.jsonl.gz", Time: keyTime})
	if err != nil {
		return fmt.Errorf("jobs: cdr: package %s: key: %w", p.BillFileName, err)
	}
	// The keys are recorded before anything is stored under them: a package
	// stored and then not completed (the database or the process lost in
	// between) and requested anew later keeps its objects known (verify does
	// not call them strays), and its download is on record (SHA256: it was
	// ready, so a later not-found is its expiry).
	p.Key, p.RowsKey = key, rowsKey
	if err := a.Store.UpdatePackage(sctx, *p); err != nil {
		return a.storeErr("update package", err)
	}
	// The ZIP, its rows and their Parquet are stored while the calls and
	// items are committed (completePackage); the package is done after both.
	store := func() (checkpoint.Package, error) {
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return checkpoint.Package{}, fmt.Errorf("jobs: cdr: package %s: %w", p.BillFileName, err)
		}
		meta := sink.Meta{SHA256: s.sha256, ContentType: "application/zip", Metadata: map[string]string{
			"kind": KindPackage, "window-begin": w.Begin.UTC().Format(time.RFC3339), "window-end": w.End.UTC().Format(time.RFC3339),
		}}
		obj, err := a.Sink.Put(tctx, key, s.f, s.size, meta)
		if err != nil {
			return checkpoint.Package{}, fmt.Errorf("jobs: cdr: store package %s: %w", p.BillFileName, err)
		}
		if !obj.Existed {
			a.met.Bytes(KindPackage, obj.Size)
			rep.Bytes += obj.Size
		}
		obj, err = a.Sink.Put(tctx, rowsKey, rows.f, rows.size, sink.Meta{SHA256: rows.sha256, ContentType: "application/x-ndjson",
			Metadata: map[string]string{"kind": "cdr-rows", "package-sha256": s.sha256}})
		if err != nil {
			return checkpoint.Package{}, fmt.Errorf("jobs: cdr: store rows of %s: %w", p.BillFileName, err)
		}
		if !obj.Existed {
			a.met.Bytes(KindPackage, obj.Size)
			rep.Bytes += obj.Size
		}
		if err := a.storeParquet(tctx, pkg, p, s.sha256, rep); err != nil {
			return checkpoint.Package{}, err
		}
		p.State, p.Key, p.RowsKey, p.RowsSHA256, p.Calls, p.Items, p.LastError = checkpoint.StateDone, key, rowsKey, rows.content, len(calls), nItems, ""
		return *p, nil
	}
	added, err := a.completePackage(ctx, calls, items, store)
	rep.Added += added
	if err != nil {
		return err
	}
	rep.Packages++
	a.met.Package("done")
	log.Info("package archived", zap.String("bill_file", p.BillFileName), zap.String("key", key),
		zap.Int("calls", len(calls)), zap.Int("items", nItems), zap.Int("new_items", added))
	return nil
}

// partCalls is how many calls (with their items) a part of a large
// package holds when its items are committed in parts (completePackage).
const partCalls = 1000

// completePackage records a package's calls, the items of their recordings
// and their lookups (lookupItems, made part by part) and marks it done:
// store stores its objects and returns it as it is to be saved, and only
// once store has succeeded is the package done (Store.CompletePackage, with
// the calls and items, or the last part of them). A package of more than
// partCalls calls is committed in parts while store runs, the calls of each
// part with their items (Store.AddCalls), read from items one part at a
// time; while item jobs run in the same pass (a feed in ctx) each part is
// announced to them, and its recordings are archived while the package and
// the rest of it are stored. Parts of a package that then fails are kept:
// their items are the package's, which is retried, and adding them again
// adds nothing. It returns the items added, also when it fails.
func (a *Archiver) completePackage(ctx context.Context, calls []checkpoint.Call, items *packageItems,
	store func() (checkpoint.Package, error)) (int, error) {
	sctx, fd := storeCtx(ctx), feedOf(ctx)
	size := a.parts
	if size <= 0 {
		size = partCalls
	}
	type result struct {
		added int
		err   error
	}
	parted := make(chan result, 1)
	last := 0 // the first call of the last part
	if len(calls) > size {
		last = (len(calls) - 1) / size * size
		go func() {
			var res result
			for lo := 0; lo < last; lo += size {
				pt := calls[lo : lo+size]
				its, err := items.part(lo, lo+size)
				if err == nil {
					its, err = withLookups(pt, its)
				}
				if err != nil {
					res.err = err
					break
				}
				n, err := a.Store.AddCalls(sctx, pt, its)
				if err != nil {
					res.err = a.storeErr("add calls", err)
					break
				}
				res.added += n
				if n > 0 {
					fd.added()
				}
			}
			parted <- res
		}()
	} else {
		parted <- result{}
	}
	p, err := store()
	res := <-parted
	if err != nil {
		return res.added, err
	}
	if res.err != nil {
		return res.added, res.err
	}
	its, err := items.part(last, len(calls))
	if err == nil {
		its, err = withLookups(calls[last:], its)
	}
	if err != nil {
		return res.added, err
	}
	n, err := a.Store.CompletePackage(sctx, p, calls[last:], its)
	if err != nil {
		return res.added, a.storeErr("complete package", err)
	}
	if n > 0 {
		fd.added()
	}
	return res.added + n, nil
}

// lookupsPerCall is the lookups each call has: transfer and IVR.
const lookupsPerCall = 2

// lookupItems returns the transfer and IVR lookups of calls, in their order.
func lookupItems(calls []checkpoint.Call) ([]checkpoint.Item, error) {
	out := make([]checkpoint.Item, 0, lookupsPerCall*len(calls))
	for _, c := range calls {
		for _, kind := range []string{checkpoint.KindTransferLookup, checkpoint.KindIVRLookup} {
			it, err := withArgs(checkpoint.Item{UpstreamID: c.CallID, CallID: c.CallID, Day: c.Day, State: checkpoint.StatePending},
				LookupArgs{kind: kind, CallID: c.CallID, CallBegin: c.Begin, VDN: c.VDN, AgentID: c.AgentID})
			if err != nil {
				return nil, fmt.Errorf("jobs: cdr: call %s: %s: %w", c.CallID, kind, err)
			}
			out = append(out, it)
		}
	}
	return out, nil
}

// withLookups is items followed by the lookups of calls.
func withLookups(calls []checkpoint.Call, items []checkpoint.Item) ([]checkpoint.Item, error) {
	lookups, err := lookupItems(calls)
	if err != nil {
		return nil, err
	}
	return append(items[:len(items):len(items)], lookups...), nil
}

// quarantine keeps the bytes of a package rejected for its content under
// {tenant}/quarantine/{yyyy}/{mm}/{dd}/<bill file>-<sha256>.zip and notes the
// key on p. The same bytes rejected again map to the same key (the sink
// finds them there); other bytes get their own key.
func (a *Archiver) quarantine(ctx context.Context, p *checkpoint.Package, s *spooled, keyTime time.Time, rep *Report) error {
	key, err := a.quarKeys.Build(sink.KeyFields{Tenant: a.Tenant, Time: keyTime,
		RecordID: strings.TrimSuffix(p.BillFileName, ".zip") + "-" + s.sha256 + ".zip"})
	if err != nil {
		return fmt.Errorf("jobs: cdr: quarantine %s: key: %w", p.BillFileName, err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("jobs: cdr: quarantine %s: %w", p.BillFileName, err)
	}
	obj, err := a.Sink.Put(ctx, key, s.f, s.size, sink.Meta{SHA256: s.sha256, ContentType: "application/zip",
		Metadata: map[string]string{"kind": "cdr-quarantine", "bill-file": p.BillFileName}})
	if err != nil {
		return fmt.Errorf("jobs: cdr: quarantine %s: %w", p.BillFileName, err)
	}
	if !obj.Existed {
		a.met.Bytes(KindPackage, obj.Size)
		rep.Bytes += obj.Size
	}
	p.QuarantineKey = key
	return nil
}

// rowJSON is one line of the rows file.
type rowJSON struct {
	File   string            `json:"file"`
	Kind   string            `json:"kind"`
	Line   int               `json:"line"`
	Fields map[string]string `json:"fields"`
}

// limitWriter fails once more than max bytes are written.
type limitWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.n+int64(len(b)) > l.max {
		return 0, fmt.Errorf("rows file larger than %d bytes", l.max)
	}
	n, err := l.w.Write(b)
	l.n += int64(n)
	return n, err
}

// parsePackage walks both CSV kinds: it writes every row to a gzipped JSON
// Lines temp file and derives the calls and the items of their recordings,
// which it keeps in another (packageItems): memory holds the calls and a
// small record an item, however large the package. The lookups, two items
// a call made of nothing but the call, are made as each part is committed
// (lookupItems). The caller removes the items (when there is no error) and
// the rows (when they are not nil).
func (a *Archiver) parsePackage(pkg *cdr.Package, name string) (_ []checkpoint.Call, _ *packageItems, _ *spooled, err error) {
	rows, err := newSpooled(a.SpoolDir, "cdr-rows-*.jsonl.gz")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("jobs: cdr: rows of %s: %w", name, err)
	}
	f := rows.f
	list, err := newPackageItems(a.SpoolDir)
	if err != nil {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: items of %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			list.remove()
		}
	}()
	h := sha256.New()
	content := sha256.New()
	lw := &limitWriter{w: io.MultiWriter(f, h), max: 2 * a.limits().MaxTotalBytes}
	bw := bufio.NewWriterSize(lw, 64<<10)
	gz := gzip.NewWriter(bw)
	enc := newRowEncoder(gz)
	var digest []byte

	loc := a.loc()
	// The calls, each with its index in callOrder (the order first met).
	// What is kept of a row is copied (strings.Clone): a field is a slice
	// of its whole CSV record.
	calls := map[string]*callInfo{}
	var callOrder []string
	// The items are kept once each (by kind and upstream id), in the order
	// first met; the map holds their indexes in list.
	items := map[string]int{} // kind + "\x00" + upstream id → index in list
	addItem := func(it checkpoint.Item, call int, at *agentPlace) error {
		k := it.Kind + "\x00" + it.UpstreamID
		if _, ok := items[k]; ok {
			return nil
		}
		i, err := list.add(it, call, at)
		if err != nil {
			return fmt.Errorf("jobs: cdr: items of %s: %w", name, err)
		}
		items[k] = i
		return nil
	}
	var bad badRows
	noteCall := func(id string, begin time.Time, vdn, agent string) *callInfo {
		c, ok := calls[id]
		if !ok {
			id = strings.Clone(id)
			c = &callInfo{idx: len(callOrder), begin: begin}
			calls[id] = c
			callOrder = append(callOrder, id)
		}
		if begin.Before(c.begin) {
			c.begin = begin
		}
		if c.vdn == "" {
			c.vdn = strings.Clone(vdn)
		}
		if c.agent == "" {
			c.agent = strings.Clone(agent)
		}
		return c
	}
	parseTime := func(s string) (time.Time, bool) {
		t, err := time.ParseInLocation(cecwire.TimeLayout, strings.TrimSpace(s), loc)
		return t, err == nil
	}
	for _, kind := range []cdr.Kind{cdr.KindCall, cdr.KindRecord} {
		cols := cecwire.CallColumns
		if kind == cdr.KindRecord {
			cols = cecwire.RecordColumns
		}
		err := pkg.Walk(kind, func(r cdr.Row) error {
			if err := enc.encode(kind, cols, r); err != nil {
				return err
			}
			digest = appendContent(digest[:0], kind, r.Fields)
			content.Write(digest)
			callID := strings.TrimSpace(r.Get(kind, "call_id"))
			if callID == "" {
				bad.add(r, "no call_id")
				return nil
			}
			begin, ok := parseTime(r.Get(kind, "call_begin"))
			if !ok && kind == cdr.KindCall {
				begin, ok = parseTime(r.Get(kind, "wait_begin"))
			}
			if !ok {
				bad.add(r, "call_begin is not yyyy-MM-dd HH:mm:ss")
				return nil
			}
			vdn, agent := strings.TrimSpace(r.Get(kind, "vdn_id")), strings.TrimSpace(r.Get(kind, "agent_id"))
			c := noteCall(callID, begin, vdn, agent)
			if kind != cdr.KindRecord {
				return nil
			}
			if a.method() == config.MethodCMS {
				fileName := strings.TrimSpace(r.Get(cdr.KindRecord, "file_name"))
				if fileName == "" {
					bad.add(r, "no file_name")
					return nil
				}
				if !slices.Contains(c.records, fileName) {
					c.records = append(c.records, strings.Clone(fileName))
				}
				return nil
			}
			it, err := a.agentItem(r, callID, begin, vdn, agent)
			if err != nil {
				bad.add(r, err.Error())
				return nil
			}
			// Keyed by its own row's call begin, which its call's earliest
			// row may precede: placed again after the walk.
			return addItem(it, c.idx, &agentPlace{begin: begin, vdn: vdn, agent: agent})
		})
		if err != nil {
			return nil, nil, rows, fmt.Errorf("jobs: cdr: package %s: %w", name, err)
		}
	}
	if err := gz.Close(); err != nil {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: rows of %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: rows of %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: rows of %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: rows of %s: %w", name, err)
	}
	rows.size, rows.sha256, rows.content = lw.n, hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(content.Sum(nil))
	if bad.n > 0 {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: package %s: %w: %d unusable rows, first %s", name, cdr.ErrInvalid, bad.n, bad.first)
	}

	// An agent recording belongs to its call's day, and its key carries the
	// call's date: a recording that starts after midnight is not filed apart
	// from its call.
	begins := make([]time.Time, len(callOrder))
	for i, id := range callOrder {
		begins[i] = calls[id].begin
	}
	err = list.place(begins, func(it *checkpoint.Item, at agentPlace) error {
		if err := a.placeAgent(it, AgentArgs{VDN: at.vdn, AgentID: at.agent}, at.begin); err != nil {
			return fmt.Errorf("jobs: cdr: package %s: call %s recording %s: %w", name, it.CallID, it.UpstreamID, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, rows, err
	}
	sort.Strings(callOrder)
	pos := make([]int, len(callOrder))
	out := make([]checkpoint.Call, 0, len(calls))
	for i, id := range callOrder {
		c := calls[id]
		pos[c.idx] = i
		day := c.begin.In(loc).Format(time.DateOnly)
		out = append(out, checkpoint.Call{CallID: id, Day: day, Begin: c.begin, VDN: c.vdn, AgentID: c.agent})
	}
	list.order(pos)
	if a.method() == config.MethodCMS {
		for i, id := range callOrder {
			c := calls[id]
			if len(c.records) == 0 {
				continue
			}
			it, err := a.cmsItem(id, c)
			if err != nil {
				return nil, nil, rows, fmt.Errorf("jobs: cdr: package %s: call %s: %w", name, id, err)
			}
			if err := addItem(it, i, nil); err != nil {
				return nil, nil, rows, err
			}
		}
	}
	if err := list.done(); err != nil {
		return nil, nil, rows, fmt.Errorf("jobs: cdr: items of %s: %w", name, err)
	}
	return out, list, rows, nil
}

// orNone keeps key fields non-empty: a template may use a field the
// contact centre left blank.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// wallUTC expresses t's wall clock in loc as UTC fields: the key builder
// formats dates in UTC, and keys carry the tenant's calendar day.
func wallUTC(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// pathBase is the last element of an upstream path that may use either slash.
func pathBase(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// agentItem is the item of one recording-index row. Its day and key are
// set by placeAgent once the call's begin is known.
func (a *Archiver) agentItem(r cdr.Row, callID string, begin time.Time, vdn, agent string) (checkpoint.Item, error) {
	loc := a.loc()
	fileName := strings.TrimSpace(r.Get(cdr.KindRecord, "file_name"))
	if fileName == "" {
		return checkpoint.Item{}, errors.New("no file_name")
	}
	end, _ := time.ParseInLocation(cecwire.TimeLayout, strings.TrimSpace(r.Get(cdr.KindRecord, "call_end")), loc)
	m, err := a.Meta.Meta(sink.RecordAttrs{
		CallID: callID, RecordID: fileName, AgentID: agent, VDN: vdn, Begin: begin, End: end,
		CallerNo: r.Get(cdr.KindRecord, "caller_no"), CalleeNo: r.Get(cdr.KindRecord, "callee_no"),
	}, "")
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("metadata: %w", err)
	}
	args := AgentArgs{
		FileName: fileName, OriginalFileName: strings.TrimSpace(r.Get(cdr.KindRecord, "original_file_name")),
		CcID: strings.TrimSpace(r.Get(cdr.KindRecord, "cc_id")), AgentID: agent, VDN: vdn, CallBegin: begin,
		ObjectMeta: objectMeta(m),
	}
	callData(&args.ObjectMeta, checkpoint.KindAgent, vdn, agent, &r)
	it, err := withArgs(checkpoint.Item{UpstreamID: fileName, CallID: callID, State: checkpoint.StatePending}, args)
	if err != nil {
		return checkpoint.Item{}, err
	}
	// A key now, so that a row whose fields cannot make one fails the package naming its line.
	if err := a.placeAgent(&it, args, begin); err != nil {
		return checkpoint.Item{}, err
	}
	return it, nil
}

// placeAgent sets an agent item's day and key from its call's begin.
func (a *Archiver) placeAgent(it *checkpoint.Item, args AgentArgs, callBegin time.Time) error {
	loc := a.loc()
	key, err := a.Keys.Build(sink.KeyFields{
		Tenant: a.Tenant, VDN: orNone(args.VDN), CallID: it.CallID, AgentID: orNone(args.AgentID), RecordID: it.UpstreamID,
		Kind: checkpoint.KindAgent, Name: orNone(pathBase(it.UpstreamID)), Time: wallUTC(callBegin, loc),
	})
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	it.Key, it.Day = key, callBegin.In(loc).Format(time.DateOnly)
	return nil
}

// cmsItem is the one agent item of a call with Method cms: CC-CMS returns
// the call's recordings (a WAV or a ZIP) by call id. Its members list the
// file_name of every recording-index row of the call: the download must
// hold each of them.
func (a *Archiver) cmsItem(callID string, c *callInfo) (checkpoint.Item, error) {
	loc := a.loc()
	id := cmsUpstreamID(callID)
	key, err := a.Keys.Build(sink.KeyFields{
		Tenant: a.Tenant, VDN: orNone(c.vdn), CallID: callID, AgentID: orNone(c.agent), RecordID: id,
		Kind: checkpoint.KindAgent, Name: callID, Time: wallUTC(c.begin, loc),
	})
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("key: %w", err)
	}
	m, err := a.Meta.Meta(sink.RecordAttrs{CallID: callID, RecordID: id, AgentID: c.agent, VDN: c.vdn, Begin: c.begin}, "")
	if err != nil {
		return checkpoint.Item{}, fmt.Errorf("metadata: %w", err)
	}
	om := objectMeta(m)
	callData(&om, checkpoint.KindAgent, c.vdn, c.agent, nil)
	return withArgs(checkpoint.Item{
		UpstreamID: id, CallID: callID, Day: c.begin.In(loc).Format(time.DateOnly), Key: key, State: checkpoint.StatePending,
	}, CMSArgs{CallID: callID, AgentID: c.agent, VDN: c.vdn, CallBegin: c.begin, Members: c.records, ObjectMeta: om})
}
