package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/sqlite"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/jobs"
)

// isLookup reports whether items of kind are per-call lookups rather than
// recordings: they are work to do, but nothing is archived for them.
func isLookup(kind string) bool {
	return kind == checkpoint.KindTransferLookup || kind == checkpoint.KindIVRLookup
}

// dayStatus is one row of the status table.
type dayStatus struct {
	Day      string `json:"day"`
	Calls    int    `json:"calls"`
	Archived int    `json:"archived"` // recordings done
	Absent   int    `json:"absent"`   // recordings absent by rule
	Pending  int    `json:"pending"`  // items (recordings and lookups) pending or in progress
	Failed   int    `json:"failed"`
	Dead     int    `json:"dead"`
	// ProblemWindows counts the cdr windows covering the day whose newest
	// package is not done (pending, failed or dead): calls may be missing.
	ProblemWindows int  `json:"problem_windows"`
	Complete       bool `json:"complete"` // every item is done or absent, and no window covering the day has a problem
	// Kinds has every count: kind → state → items.
	Kinds        map[string]map[checkpoint.State]int `json:"kinds"`
	LedgerKey    string                              `json:"ledger_key,omitempty"`
	LedgerSHA256 string                              `json:"ledger_sha256,omitempty"`
}

// itemStatus is a failed or dead item as status shows it. Its Args are left
// out: they may hold phone numbers.
type itemStatus struct {
	ID            int64            `json:"id"` // for archiver resolve --id
	Kind          string           `json:"kind"`
	UpstreamID    string           `json:"upstream_id"`
	CallID        string           `json:"call_id,omitempty"`
	Day           string           `json:"day,omitempty"`
	State         checkpoint.State `json:"state"`
	Attempts      int              `json:"attempts"`
	NextAttemptAt *time.Time       `json:"next_attempt_at,omitempty"`
	LastError     string           `json:"last_error,omitempty"`
}

// windowStatus is a cdr window whose newest package is not done.
type windowStatus struct {
	Begin         time.Time        `json:"begin"`
	End           time.Time        `json:"end"`
	BillFileName  string           `json:"bill_file_name"`
	State         checkpoint.State `json:"state"`
	Attempts      int              `json:"attempts"`
	LastError     string           `json:"last_error"`
	QuarantineKey string           `json:"quarantine_key"`
	Days          []string         `json:"days"`
}

// leaseStatus is a named lease of singleton work held now: a cdr window
// (cdr:<begin>), a day's ledger (ledger:<day>), the sink janitor.
type leaseStatus struct {
	Name    string    `json:"name"`
	Replica string    `json:"replica"`
	Until   time.Time `json:"until"`
}

// claimStatus is what one replica holds of the items: how many are in
// progress under its ID, and when the last of their leases expires (past:
// the replica is gone or stalled, and another may claim them).
type claimStatus struct {
	Replica    string    `json:"replica"`
	InProgress int       `json:"in_progress"`
	LeaseUntil time.Time `json:"lease_until"`
}

// jobStatus is one job as status shows it, like velero schedule get: its
// schedule, its last run and when the daemon runs it next.
type jobStatus struct {
	Job      string `json:"job"`
	Enabled  bool   `json:"enabled"`
	Schedule string `json:"schedule"`
	// JitterSeconds is the random delay added to each scheduled run.
	JitterSeconds float64 `json:"jitter_seconds"`
	// LastRun is the last run the state recorded, by any command or
	// replica; null when the job never ran.
	LastRun *runStatus `json:"last_run"`
	// LastSuccess is when the job last ended a run without failures.
	LastSuccess *time.Time `json:"last_success"`
	// NextRun is when archiver run starts the job next (before its
	// jitter): the schedule's next time after the last run's start, as
	// velero computes it, or after now when there is no last run or that
	// time has passed; null when the job is disabled.
	NextRun *time.Time `json:"next_run"`
}

// runStatus is a job's last run.
type runStatus struct {
	Started  time.Time            `json:"started"`
	Finished *time.Time           `json:"finished"` // null while running
	Result   checkpoint.RunResult `json:"result"`   // running, ok, failed, interrupted
	// Recorded is the result the state holds when status shows another:
	// "running" for a run whose process is gone (endedRuns).
	Recorded checkpoint.RunResult `json:"recorded_result,omitempty"`
	// DurationSeconds is Finished − Started; null while running.
	DurationSeconds *float64 `json:"duration_seconds"`
	Error           string   `json:"error,omitempty"` // one line, for failed and interrupted runs
	Done            int      `json:"done"`            // items and CDR packages completed
	Failed          int      `json:"failed"`          // failed attempts, dead items and CDR packages not obtained
	Bytes           int64    `json:"bytes"`
	Replica         string   `json:"replica"`
}

// statusReport is what status prints. With --json every list is present,
// empty or not; Failed is always filled (the table shows it only with
// --failed).
type statusReport struct {
	// Jobs has every job of the configuration, enabled or not, in run order.
	Jobs         []jobStatus    `json:"jobs"`
	Days         []dayStatus    `json:"days"`
	Windows      []windowStatus `json:"windows"`
	CDRWatermark *time.Time     `json:"cdr_watermark,omitempty"`
	Failed       []itemStatus   `json:"failed"`
	// Leases and Claims say which replica does what now.
	Leases []leaseStatus `json:"leases"`
	Claims []claimStatus `json:"claims"`
}

// cmdStatus implements "archiver status".
func (c *cli) cmdStatus(args []string) int {
	fs, path := c.newFlagSet("status", "status [--config FILE] [--json] [--failed]",
		"Print the jobs first, one line each: schedule, last run (start, result:\n"+
			"running, ok, failed or interrupted; duration, items done and failed, bytes)\n"+
			"and the next run of the schedule after the last run (\u2014 when the job is\n"+
			"disabled), then the error of a last run that failed or was interrupted.\n"+
			"Then what the state database holds, one line per calendar day (cec.time_zone):\n"+
			"calls, recordings archived and absent, items pending, failed and dead, cdr\n"+
			"windows with a problem, and whether the day is complete; then every cdr window\n"+
			"whose newest package is pending, failed or dead (bill file, state, attempts,\n"+
			"last error, quarantine key), the cdr watermark and each day's last ledger;\n"+
			"then the replicas at work: the named leases held now (cdr windows, ledgers,\n"+
			"the janitor) and the items in progress per replica ID.\n"+
			"A day covered by such a window is incomplete, and listed even if it has no\n"+
			"calls yet. --json prints every list (jobs, days, windows, failed, leases, claims),\n"+
			"empty or not, and always includes the failed and dead items.\n"+
			"Opens the state read-only: it works while the daemon runs.")
	asJSON := fs.Bool("json", false, "print JSON instead of a table (always with every failed and dead item)")
	failed := fs.Bool("failed", false, "also list every failed and dead item in the table")
	if code, ok := c.parseFlags(fs, args); !ok {
		return code
	}
	cfg, log, ok := c.setup("status", *path)
	if !ok {
		return exitConfig
	}
	defer func() { _ = log.Sync() }()
	ctx := context.Background()
	a, err := wire(ctx, cfg, log.With(zap.String("cmd", "status")), ctx, wireOptions{readOnly: true, noClient: true})
	if err != nil {
		return c.startupError("status", err)
	}
	defer a.close()
	loc, err := cfg.CEC.Location()
	if err != nil {
		fmt.Fprintf(c.stderr, "status: cec.time_zone: %v\n", err)
		return exitConfig
	}
	rep, err := collectStatus(ctx, a.store, loc)
	if err == nil {
		rep.Jobs, err = collectJobs(ctx, a.store, cfg, loc, time.Now())
	}
	if err == nil && cfg.Checkpoint.Driver == config.DriverSQLite {
		endedRuns(rep.Jobs, cfg.Checkpoint.Path, log)
	}
	if ra, ok := a.store.(replicasAlive); ok && err == nil {
		endedReplicaRuns(ctx, rep.Jobs, ra, log)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "status: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		if !c.printJSON("status", rep) {
			return exitFailed
		}
		return exitOK
	}
	printStatus(c.stdout, rep, *failed)
	return exitOK
}

// count adds n items of kind in state to the row's columns. It reports
// whether the state is one the row counts (lookups done or absent are
// counted in Kinds only, not as recordings).
func (row *dayStatus) count(kind string, state checkpoint.State, n int) bool {
	switch state {
	case checkpoint.StateDone:
		if !isLookup(kind) {
			row.Archived += n
		}
	case checkpoint.StateAbsent:
		if !isLookup(kind) {
			row.Absent += n
		}
	case checkpoint.StatePending, checkpoint.StateInProgress:
		row.Pending += n
	case checkpoint.StateFailed:
		row.Failed += n
	case checkpoint.StateDead:
		row.Dead += n
	default:
		return false
	}
	return true
}

// collectStatus reads the report from the store; loc is the tenant time
// zone of the calendar days.
func collectStatus(ctx context.Context, st checkpoint.Store, loc *time.Location) (*statusReport, error) {
	days, err := st.Days(ctx)
	if err != nil {
		return nil, fmt.Errorf("read days: %w", err)
	}
	problems, err := jobs.ProblemWindows(ctx, st, loc)
	if err != nil {
		return nil, err
	}
	rep := &statusReport{Days: []dayStatus{}, Windows: []windowStatus{}, Failed: []itemStatus{}, Leases: []leaseStatus{}, Claims: []claimStatus{}}
	badDays := map[string]int{}
	for _, w := range problems {
		rep.Windows = append(rep.Windows, windowStatus{
			Begin: w.Begin.In(loc), End: w.End.In(loc), BillFileName: w.BillFileName, State: w.State,
			Attempts: w.Attempts, LastError: oneLine(w.LastError), QuarantineKey: w.QuarantineKey, Days: w.Days,
		})
		for _, d := range w.Days {
			badDays[d]++
		}
	}
	seen := map[string]bool{}
	for _, d := range days {
		seen[d.Day] = true
		row := dayStatus{Day: d.Day, Calls: d.Calls, Kinds: d.Counts}
		for kind, states := range d.Counts {
			for state, n := range states {
				row.count(kind, state, n)
			}
		}
		rep.Days = append(rep.Days, row)
	}
	// A day only a problem window knows of has no calls yet, but is not
	// complete: its CDRs were never obtained.
	for d := range badDays {
		if !seen[d] {
			rep.Days = append(rep.Days, dayStatus{Day: d, Kinds: map[string]map[checkpoint.State]int{}})
		}
	}
	slices.SortFunc(rep.Days, func(a, b dayStatus) int { return strings.Compare(a.Day, b.Day) })
	for i := range rep.Days {
		row := &rep.Days[i]
		row.ProblemWindows = badDays[row.Day]
		row.Complete = row.Pending == 0 && row.Failed == 0 && row.Dead == 0 && row.ProblemWindows == 0
		sum, key, ok, err := st.Ledger(ctx, row.Day)
		if err != nil {
			return nil, fmt.Errorf("read ledger of %s: %w", row.Day, err)
		}
		if ok {
			row.LedgerKey, row.LedgerSHA256 = key, sum
		}
	}
	wm, ok, err := st.Watermark(ctx, config.JobCDR)
	if err != nil {
		return nil, fmt.Errorf("read the cdr watermark: %w", err)
	}
	if ok {
		wm = wm.In(loc)
		rep.CDRWatermark = &wm
	}
	items, err := st.Items(ctx, checkpoint.StateFailed, checkpoint.StateDead)
	if err != nil {
		return nil, fmt.Errorf("list failed items: %w", err)
	}
	for _, it := range items {
		s := itemStatus{ID: it.ID, Kind: it.Kind, UpstreamID: it.UpstreamID, CallID: it.CallID, Day: it.Day,
			State: it.State, Attempts: it.Attempts, LastError: oneLine(it.LastError)}
		if it.State == checkpoint.StateFailed && !it.NextAttemptAt.IsZero() {
			next := it.NextAttemptAt
			s.NextAttemptAt = &next
		}
		rep.Failed = append(rep.Failed, s)
	}
	if err := collectReplicas(ctx, st, loc, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// collectReplicas fills in the leases held now and the items in progress
// per replica.
func collectReplicas(ctx context.Context, st checkpoint.Store, loc *time.Location, rep *statusReport) error {
	leases, err := st.Leases(ctx)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	for _, l := range leases {
		rep.Leases = append(rep.Leases, leaseStatus{Name: l.Name, Replica: l.Owner, Until: l.Until.In(loc)})
	}
	inProgress, err := st.Items(ctx, checkpoint.StateInProgress)
	if err != nil {
		return fmt.Errorf("list items in progress: %w", err)
	}
	byReplica := map[string]*claimStatus{}
	for _, it := range inProgress {
		c := byReplica[it.Owner]
		if c == nil {
			c = &claimStatus{Replica: it.Owner}
			byReplica[it.Owner] = c
		}
		c.InProgress++
		if it.LeaseUntil.After(c.LeaseUntil) {
			c.LeaseUntil = it.LeaseUntil.In(loc)
		}
	}
	for _, c := range byReplica {
		rep.Claims = append(rep.Claims, *c)
	}
	slices.SortFunc(rep.Claims, func(a, b claimStatus) int { return strings.Compare(a.Replica, b.Replica) })
	return nil
}

func printStatus(w io.Writer, rep *statusReport, withFailed bool) {
	printJobs(w, rep.Jobs)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DAY\tCALLS\tARCHIVED\tABSENT\tPENDING\tFAILED\tDEAD\tBAD-WINDOWS\tCOMPLETE\t")
	for _, d := range rep.Days {
		complete := "no"
		if d.Complete {
			complete = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", d.Day, d.Calls, d.Archived, d.Absent, d.Pending, d.Failed, d.Dead, d.ProblemWindows, complete)
	}
	_ = tw.Flush()
	if len(rep.Days) == 0 {
		fmt.Fprintln(w, "(no days recorded yet)")
	}
	fmt.Fprintf(w, "\ncdr windows not archived (newest package pending, failed or dead): %d\n", len(rep.Windows))
	for _, win := range rep.Windows {
		fmt.Fprintf(w, "  %s – %s %s bill=%s attempts=%d quarantine=%s: %s\n",
			win.Begin.Format("2006-01-02 15:04"), win.End.Format("2006-01-02 15:04 MST"), win.State,
			orDash(win.BillFileName), win.Attempts, orDash(win.QuarantineKey), orDash(win.LastError))
	}
	if rep.CDRWatermark != nil {
		fmt.Fprintf(w, "\ncdr watermark: %s\n", rep.CDRWatermark.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "\ncdr watermark: none (the cdr job has not completed a window yet)")
	}
	fmt.Fprintln(w, "\nledgers:")
	n := 0
	for _, d := range rep.Days {
		if d.LedgerKey != "" {
			fmt.Fprintf(w, "  %s %s sha256=%s\n", d.Day, d.LedgerKey, d.LedgerSHA256)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  none written yet")
	}
	printReplicas(w, rep)
	if withFailed {
		fmt.Fprintf(w, "\nfailed and dead items: %d\n", len(rep.Failed))
		for _, it := range rep.Failed {
			next := ""
			if it.NextAttemptAt != nil {
				next = " next=" + it.NextAttemptAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "  id=%d %s %s %s call=%s day=%s attempts=%d%s: %s\n",
				it.ID, it.State, it.Kind, it.UpstreamID, orDash(it.CallID), orDash(it.Day), it.Attempts, next, orDash(it.LastError))
		}
	}
}

// printReplicas lists the leases held now and the items each replica has in
// progress; a claim whose lease has passed is marked expired (its replica
// is gone or stalled: another one claims the items).
func printReplicas(w io.Writer, rep *statusReport) {
	fmt.Fprintf(w, "\nleases held (cdr windows, ledgers, janitor): %d\n", len(rep.Leases))
	for _, l := range rep.Leases {
		fmt.Fprintf(w, "  %s replica=%s until=%s\n", l.Name, l.Replica, l.Until.Format(time.RFC3339))
	}
	total := 0
	for _, c := range rep.Claims {
		total += c.InProgress
	}
	fmt.Fprintf(w, "\nitems in progress: %d, by %d replicas\n", total, len(rep.Claims))
	now := time.Now()
	for _, c := range rep.Claims {
		expired := ""
		if !c.LeaseUntil.After(now) {
			expired = " (expired)"
		}
		fmt.Fprintf(w, "  %s %d items, leases until %s%s\n", orDash(c.Replica), c.InProgress, c.LeaseUntil.Format(time.RFC3339), expired)
	}
}

// collectJobs reads every configured job's last run and last success from
// the store and computes its next run from its schedule after now.
func collectJobs(ctx context.Context, st checkpoint.Store, cfg *config.Config, loc *time.Location, now time.Time) ([]jobStatus, error) {
	out := []jobStatus{}
	var err error
	cfg.Jobs.Each(func(name string, j *config.Job) {
		if err != nil {
			return
		}
		js := jobStatus{Job: name, Enabled: j.Enabled, Schedule: j.Schedule, JitterSeconds: j.Jitter.Seconds()}
		r, ok, rerr := st.LastRun(ctx, name)
		if rerr != nil {
			err = fmt.Errorf("read the last run of %s: %w", name, rerr)
			return
		}
		if ok {
			js.LastRun = newRunStatus(r, loc)
		}
		t, ok, serr := st.LastSuccess(ctx, name)
		if serr != nil {
			err = fmt.Errorf("read the last success of %s: %w", name, serr)
			return
		}
		if ok {
			t = t.In(loc)
			js.LastSuccess = &t
		}
		if j.Enabled {
			// The configuration was validated: the schedule parses.
			if spec, perr := config.ParseSchedule(j.Schedule); perr == nil {
				next := nextRun(spec, js.LastRun, now).In(loc)
				js.NextRun = &next
			}
		}
		out = append(out, js)
	})
	return out, err
}

// schedule is what config.ParseSchedule returns (a cron.Schedule: the
// schedule loop is the jobs' business, cmd only asks for the next time).
type schedule interface{ Next(time.Time) time.Time }

// nextRun is spec's next time after the last run's start (so that an
// @every schedule counts from the runs, as the daemon's does), or after now
// when there is no last run or that time has passed.
func nextRun(spec schedule, last *runStatus, now time.Time) time.Time {
	if last != nil {
		if next := spec.Next(last.Started); next.After(now) {
			return next
		}
	}
	return spec.Next(now)
}

func newRunStatus(r checkpoint.JobRun, loc *time.Location) *runStatus {
	rs := &runStatus{Started: r.Started.In(loc), Result: r.Result, Error: r.Error, Done: r.Done, Failed: r.Failed,
		Bytes: r.Bytes, Replica: r.Replica}
	if !r.Finished.IsZero() {
		f := r.Finished.In(loc)
		d := r.Finished.Sub(r.Started).Seconds()
		rs.Finished, rs.DurationSeconds = &f, &d
	}
	return rs
}

// endedRuns shows as interrupted the runs the SQLite state at path records
// as running when no process holds that state: the process that ran them
// ended without recording their end (killed, out of memory, the machine
// stopped). Whoever runs a job holds the state's lock for the run, so a
// running record without a holder cannot be running. A lock that cannot
// be read leaves the records as they are (logged).
func endedRuns(jobs []jobStatus, path string, log *zap.Logger) {
	var running []*runStatus
	for _, j := range jobs {
		if r := j.LastRun; r != nil && r.Result == checkpoint.RunRunning {
			running = append(running, r)
		}
	}
	if len(running) == 0 {
		return
	}
	_, held, err := sqlite.Held(path)
	if err != nil {
		log.Warn("cannot tell whether a process holds the state; runs recorded as running are shown so", zap.Error(err))
		return
	}
	if held {
		return
	}
	for _, r := range running {
		r.Recorded, r.Result = r.Result, checkpoint.RunInterrupted
		r.Error = "recorded as running, but no archiver holds the state: its process ended without recording the end of the run (killed, out of memory, or the machine stopped?)"
	}
}

// replicasAlive is a shared store that tells whether the process of a
// replica still holds its session (postgres.Store.ReplicasAlive).
type replicasAlive interface {
	ReplicasAlive(ctx context.Context, replicas []string) (map[string]bool, error)
}

// endedReplicaRuns shows as interrupted the runs a shared store records as
// running whose replica no longer holds its run lock: its process ended
// without recording their end (its connection to the database went with
// it). A store that cannot tell leaves the records as they are (logged).
func endedReplicaRuns(ctx context.Context, jobs []jobStatus, store replicasAlive, log *zap.Logger) {
	var running []*runStatus
	var replicas []string
	for _, j := range jobs {
		if r := j.LastRun; r != nil && r.Result == checkpoint.RunRunning {
			running = append(running, r)
			replicas = append(replicas, r.Replica)
		}
	}
	if len(running) == 0 {
		return
	}
	alive, err := store.ReplicasAlive(ctx, replicas)
	if err != nil {
		log.Warn("cannot tell whether the replicas of running runs are alive; they are shown as running", zap.Error(err))
		return
	}
	for _, r := range running {
		if alive[r.Replica] {
			continue
		}
		r.Recorded, r.Result = r.Result, checkpoint.RunInterrupted
		r.Error = fmt.Sprintf("recorded as running, but replica %s holds no session on the database: its process ended without recording the end of the run (killed, out of memory, or the machine stopped?)", r.Replica)
	}
}

// printJobs prints the jobs table, like velero schedule get, then the
// error of each last run that failed or was interrupted, with the job's
// last success.
func printJobs(w io.Writer, jobs []jobStatus) {
	const none = "\u2014"
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSCHEDULE\tLAST-RUN\tRESULT\tDURATION\tDONE\tFAILED\tBYTES\tNEXT-RUN")
	for _, j := range jobs {
		last, result, took, done, failed, bytes := "never", none, none, none, none, none
		if r := j.LastRun; r != nil {
			last, result = r.Started.Format(time.RFC3339), string(r.Result)
			if r.DurationSeconds != nil {
				took = fmtRunDuration(time.Duration(*r.DurationSeconds * float64(time.Second)))
				done, failed, bytes = fmt.Sprint(r.Done), fmt.Sprint(r.Failed), fmt.Sprint(r.Bytes)
			}
		}
		next := none
		if j.NextRun != nil {
			next = j.NextRun.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Job, orDash(j.Schedule), last, result, took, done, failed, bytes, next)
	}
	_ = tw.Flush()
	for _, j := range jobs {
		r := j.LastRun
		if r == nil || (r.Result != checkpoint.RunFailed && r.Result != checkpoint.RunInterrupted) {
			continue
		}
		success := "never"
		if j.LastSuccess != nil {
			success = j.LastSuccess.Format(time.RFC3339)
		}
		msg := ""
		if r.Error != "" {
			msg = ": " + r.Error
		}
		fmt.Fprintf(w, "  %s: last run %s%s (last success: %s)\n", j.Job, r.Result, msg, success)
	}
}

// fmtRunDuration rounds d for the jobs table: to the millisecond under a
// second, the tenth of a second under a minute, else the second.
func fmtRunDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
