package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// testRules are the retention rules of the S3 tests, for the simulator's
// VDNs 39 and 61 (agents vdn*100+1 … +8). The sink's defaults are
// GOVERNANCE for 2 days, no hold.
func testRules() []config.RetentionRule {
	return []config.RetentionRule{
		{Name: "vdn39-trainers", Kind: []string{"agent"}, VDN: []string{"39"}, Agent: []string{"3901", "3902", "3903"},
			RetentionDays: 5, Mode: config.LockCompliance, LegalHold: true},
		{Name: "vdn39", VDN: []string{"39"}, RetentionDays: 3},
		{Name: "vdn61-ivr", Kind: []string{"ivr"}, VDN: []string{"61"}, LegalHold: true},
	}
}

// wantLock is what testRules give a recording: its rule ("" none), mode,
// days and hold.
func wantLock(kind, vdn, agent string) (rule, mode string, days int, hold bool) {
	switch {
	case kind == checkpoint.KindAgent && vdn == "39" && slices.Contains([]string{"3901", "3902", "3903"}, agent):
		return "vdn39-trainers", "COMPLIANCE", 5, true
	case vdn == "39":
		return "vdn39", "GOVERNANCE", 3, false
	case kind == checkpoint.KindIVR && vdn == "61":
		return "vdn61-ivr", "GOVERNANCE", 2, true
	}
	return "", "GOVERNANCE", 2, false
}

// lockEnv is an env on a versitygw bucket with Object Lock, its sink's
// defaults GOVERNANCE for 2 days, and testRules.
func lockEnv(t *testing.T) (*env, *s3.Sink, *awss3.Client) {
	t.Helper()
	if p := config.RuleOverlaps(testRules()); len(p) > 0 {
		t.Fatalf("testRules overlap: %+v", p)
	}
	srv := s3test.Start(t)
	s, err := s3.New(context.Background(), s3.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.NewBucket(t, true), Prefix: "archive", PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, SpoolDir: t.TempDir(),
		ObjectLockMode: "GOVERNANCE", RetentionDays: 2,
	})
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	e := newEnv(t, envOptions{
		sink:     func(sink.Sink) sink.Sink { return s },
		archiver: func(a *Archiver) { a.Retention = Retention{Rules: testRules(), DefaultMode: "GOVERNANCE"} },
	})
	return e, s, srv.Client()
}

// objectLock reads back an object's retention and legal hold.
func objectLock(t *testing.T, c *awss3.Client, s *s3.Sink, key string) (mode string, until time.Time, hold bool) {
	t.Helper()
	ctx := context.Background()
	r, err := c.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey(key))})
	if err != nil {
		t.Fatalf("retention of %s: %v", key, err)
	}
	lh, err := c.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey(key))})
	if err != nil && !strings.Contains(err.Error(), "NoSuchObjectLockConfiguration") { // versitygw: never held
		t.Fatalf("legal hold of %s: %v", key, err)
	}
	return string(r.Retention.Mode), aws.ToTime(r.Retention.RetainUntilDate),
		err == nil && lh.LegalHold != nil && lh.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
}

// currentLedger reads the day's current ledger from the sink.
func currentLedger(t *testing.T, e *env, r sink.Reader, day string) (Ledger, string) {
	t.Helper()
	_, key, ok, err := e.store.Ledger(context.Background(), day)
	if err != nil || !ok {
		t.Fatalf("ledger of %s: %v %v", day, ok, err)
	}
	var l Ledger
	if err := json.Unmarshal(readKey(t, r, key), &l); err != nil {
		t.Fatalf("ledger %s: %v", key, err)
	}
	return l, key
}

// TestRetention_S3: on cecsim + versitygw with Object Lock, every archived
// recording gets the retain-until date, mode and legal hold its first
// matching rule gives (the sink's defaults when none matches), read back
// from versitygw; the rule's name is in the object's metadata and in the
// recording's ledger entry, and the archive verifies.
func TestRetention_S3(t *testing.T) {
	e, s, c := lockEnv(t)
	ctx := testCtx(t)
	before := time.Now()
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	m := e.sim.Manifest()
	calls := map[string]cecsim.ManifestCall{}
	for _, mc := range m.Calls {
		calls[mc.CallID] = mc
	}
	agents := map[string]string{} // kind+id → index agent_id
	for _, r := range m.Recordings {
		agents[r.Kind+"\x00"+r.ID] = r.AgentID
	}
	done := e.items(checkpoint.StateDone)
	perRule := map[string]int{}
	ledgers := map[string]Ledger{}
	for _, it := range done {
		if it.Key == "" {
			continue // a lookup
		}
		mc, ok := calls[it.CallID]
		if !ok {
			t.Fatalf("%s %s: call %s not in the manifest", it.Kind, it.UpstreamID, it.CallID)
		}
		agent := mc.AgentID
		if it.Kind == checkpoint.KindAgent {
			agent = agents[it.Kind+"\x00"+it.UpstreamID]
		}
		rule, mode, days, hold := wantLock(it.Kind, mc.VDN, agent)
		perRule[rule]++
		gotMode, until, gotHold := objectLock(t, c, s, it.Key)
		lo := before.Add(time.Duration(days)*24*time.Hour - time.Second)
		hi := after.Add(time.Duration(days)*24*time.Hour + time.Second)
		if gotMode != mode || until.Before(lo) || until.After(hi) || gotHold != hold {
			t.Errorf("%s %s (vdn %s, agent %s): %s until %v, hold %v; want rule %q: %s for %d days (%v – %v), hold %v",
				it.Kind, it.UpstreamID, mc.VDN, agent, gotMode, until, gotHold, rule, mode, days, lo, hi, hold)
		}
		obj, err := s.Stat(ctx, it.Key)
		if err != nil {
			t.Fatal(err)
		}
		if got := obj.Metadata[MetaKeyRetentionRule]; got != rule {
			t.Errorf("%s: metadata %s = %q, want %q", it.Key, MetaKeyRetentionRule, got, rule)
		}
		l, ok := ledgers[it.Day]
		if !ok {
			l, _ = currentLedger(t, e, s, it.Day)
			ledgers[it.Day] = l
		}
		var rec *LedgerRecord
		for _, lc := range l.Calls {
			for i, r := range lc.Recordings {
				if lc.CallID == it.CallID && r.Kind == it.Kind && r.ID == it.UpstreamID {
					rec = &lc.Recordings[i]
				}
			}
		}
		switch {
		case rec == nil:
			t.Errorf("%s %s: not in the ledger of %s", it.Kind, it.UpstreamID, it.Day)
		case rule == "" && rec.Retention != nil:
			t.Errorf("%s %s: ledger retention %+v, want none", it.Kind, it.UpstreamID, rec.Retention)
		case rule != "" && (rec.Retention == nil || rec.Retention.Rule != rule || rec.Retention.LegalHold != hold):
			t.Errorf("%s %s: ledger retention %+v, want rule %q hold %v", it.Kind, it.UpstreamID, rec.Retention, rule, hold)
		case rule != "":
			checkSchemaDef(t, "retention", rec.Retention)
		}
	}
	for _, r := range append(testRules(), config.RetentionRule{}) {
		if perRule[r.Name] == 0 {
			t.Errorf("no recording got rule %q (%v): the dataset does not exercise it", r.Name, perRule)
		}
	}
	if rep := e.verify(t, VerifyOptions{Chain: true, Locks: true}); rep.Problems != 0 {
		t.Errorf("verify --chain: %q", problems(rep))
	}
}

// TestRetention_S3_RuleAtWrite: the rule is chosen when a recording is
// written, from the rules in force then: the agent recordings whose
// downloads failed while no rule was configured get the rules added
// before their retry (lock read back from versitygw, metadata, ledger),
// and those stored before stay as they were written.
func TestRetention_S3_RuleAtWrite(t *testing.T) {
	e, s, c := lockEnv(t)
	ctx := testCtx(t)
	e.a.Retention.Rules = nil
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecordFile, Rate: 1},
		cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadRecord, Rate: 1})
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	waiting := map[int64]bool{}
	for _, it := range e.items(checkpoint.StateFailed, checkpoint.StateDead) {
		if it.Kind == checkpoint.KindAgent {
			waiting[it.ID] = true
		}
	}
	if len(waiting) == 0 {
		t.Fatal("no agent recording failed: the test proves nothing")
	}
	// The rules arrive; the downloads work again.
	e.a.Retention.Rules = testRules()
	e.sim.SetFaults()
	e.clock.Add(time.Hour)
	before := time.Now()
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	m := e.sim.Manifest()
	vdn, agents := map[string]string{}, map[string]string{}
	for _, mc := range m.Calls {
		vdn[mc.CallID] = mc.VDN
	}
	for _, r := range m.Recordings {
		agents[r.Kind+"\x00"+r.ID] = r.AgentID
	}
	ruled, retried := 0, 0
	for _, it := range e.items(checkpoint.StateDone) {
		if it.Key == "" {
			continue
		}
		rule, mode, days, hold := "", "GOVERNANCE", 2, false
		if waiting[it.ID] {
			retried++
			rule, mode, days, hold = wantLock(it.Kind, vdn[it.CallID], agents[it.Kind+"\x00"+it.UpstreamID])
		}
		if rule != "" {
			ruled++
		}
		gotMode, until, gotHold := objectLock(t, c, s, it.Key)
		if gotMode != mode || gotHold != hold || (waiting[it.ID] && (until.Before(before.Add(time.Duration(days)*24*time.Hour-time.Second)) ||
			until.After(after.Add(time.Duration(days)*24*time.Hour+time.Second)))) {
			t.Errorf("%s %s (retried %v): %s until %v, hold %v; want rule %q: %s for %d days, hold %v",
				it.Kind, it.UpstreamID, waiting[it.ID], gotMode, until, gotHold, rule, mode, days, hold)
		}
		obj, err := s.Stat(ctx, it.Key)
		if err != nil {
			t.Fatal(err)
		}
		if got := obj.Metadata[MetaKeyRetentionRule]; got != rule {
			t.Errorf("%s: metadata %s = %q, want %q", it.Key, MetaKeyRetentionRule, got, rule)
		}
		if got := retentionOf(it); (rule == "" && got != nil) || (rule != "" && (got == nil || got.Rule != rule || got.LegalHold != hold)) {
			t.Errorf("%s %s: the item keeps retention %+v, want rule %q", it.Kind, it.UpstreamID, got, rule)
		}
	}
	if retried != len(waiting) || ruled == 0 {
		t.Fatalf("%d of %d retried recordings done, %d under a rule", retried, len(waiting), ruled)
	}
	if rep := e.verify(t, VerifyOptions{Chain: true, Locks: true}); rep.Problems != 0 {
		t.Errorf("verify --chain: %q", problems(rep))
	}
}

// TestRetention_StoredRule: an object already in the sink (an earlier
// attempt's write whose done mark was lost) keeps the rule its metadata
// names, not the one chosen now.
func TestRetention_StoredRule(t *testing.T) {
	e := newEnv(t, envOptions{archiver: func(a *Archiver) { a.Retention = Retention{Rules: testRules(), DefaultMode: "GOVERNANCE"} }})
	ctx := testCtx(t)
	if err := e.a.init(); err != nil {
		t.Fatal(err)
	}
	put := func(key, rule string) sink.Object {
		md := map[string]string{}
		if rule != "" {
			md[MetaKeyRetentionRule] = rule
		}
		body := []byte("x")
		if _, err := e.dir.Put(ctx, key, bytes.NewReader(body), 1, sink.Meta{Metadata: md}); err != nil {
			t.Fatal(err)
		}
		return sink.Object{Key: key, Size: 1, Existed: true} // as a Put that found it, without metadata
	}
	now := &RetentionChoice{Rule: "vdn39", Mode: "GOVERNANCE", Days: 3}
	for _, tc := range []struct {
		key, stored string
		now, want   *RetentionChoice
	}{
		{"a/same", "vdn39", now, now},
		{"a/other", "vdn39-trainers", now, &RetentionChoice{Rule: "vdn39-trainers", Mode: "COMPLIANCE", Days: 5, LegalHold: true}},
		{"a/gone", "a-rule-since-removed", now, &RetentionChoice{Rule: "a-rule-since-removed"}},
		{"a/none", "", now, nil},
		{"a/none-now", "vdn39", nil, now},
	} {
		obj := put(tc.key, tc.stored)
		if got := e.a.storedRetention(ctx, tc.key, obj, tc.now); !got.equal(tc.want) {
			t.Errorf("%s (stored %q, now %+v): %+v, want %+v", tc.key, tc.stored, tc.now, got, tc.want)
		}
	}
	// Metadata the Put returned is used as it is.
	if got := e.a.storedRetention(ctx, "a/missing", sink.Object{Metadata: map[string]string{MetaKeyRetentionRule: "vdn39"}}, nil); !got.equal(now) {
		t.Errorf("from the Put's metadata: %+v, want %+v", got, now)
	}
}

// failingHolder is the S3 sink whose SetLegalHold fails for the keys in
// fail.
type failingHolder struct {
	*s3.Sink
	mu   sync.Mutex
	fail map[string]bool
}

func (f *failingHolder) SetLegalHold(ctx context.Context, key string, on bool) error {
	f.mu.Lock()
	bad := f.fail[key]
	f.mu.Unlock()
	if bad {
		return errors.New("injected: legal hold refused")
	}
	return f.Sink.SetLegalHold(ctx, key, on)
}

// TestHold_S3_Late: the recordings of a held call archived after the hold
// (transfer and IVR recordings whose downloads failed) are held by the
// ledger pass that lists them, read back from versitygw, with an automatic
// place event in the call's holds; one whose hold cannot be set keeps the
// day incomplete and is held by a later pass; a pass with nothing new adds
// no event; after a release nothing is held again.
func TestHold_S3_Late(t *testing.T) {
	e, s, c := lockEnv(t)
	e.a.Retention.Rules = nil // only the operator's hold
	fh := &failingHolder{Sink: s, fail: map[string]bool{}}
	e.a.Sink = fh
	ctx := testCtx(t)
	e.sim.SetFaults(cecsim.Fault{Kind: cecsim.FaultHTTP500, Path: cecwire.PathDownloadOiapRecord, Rate: 1})
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	// A call with an archived agent recording and two or more transfer or
	// IVR recordings waiting.
	var call string
	waiting := map[string][]checkpoint.Item{}
	archived := map[string]bool{}
	for _, it := range e.items() {
		switch {
		case it.Key == "":
		case it.State == checkpoint.StateDone:
			archived[it.CallID] = true
		case it.Kind == checkpoint.KindTransfer || it.Kind == checkpoint.KindIVR:
			waiting[it.CallID] = append(waiting[it.CallID], it)
		}
	}
	for id, its := range waiting {
		if archived[id] && len(its) >= 2 && (call == "" || id < call) {
			call = id
		}
	}
	if call == "" {
		t.Fatal("no archived call with two recordings waiting: the test proves nothing")
	}
	rep, err := e.a.Hold(ctx, HoldOptions{CallID: call, Reason: "case 7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pending) != len(waiting[call]) {
		t.Fatalf("hold report pending %v, want %d recordings", rep.Pending, len(waiting[call]))
	}
	late := waiting[call]
	fh.mu.Lock()
	fh.fail[late[0].Key] = true
	fh.mu.Unlock()
	e.sim.SetFaults()
	e.clock.Add(time.Hour)
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	callHolds := func(t *testing.T) (Ledger, []LedgerHold) {
		t.Helper()
		l, _ := currentLedger(t, e, s, rep.Day)
		for _, lc := range l.Calls {
			if lc.CallID == call {
				return l, lc.Holds
			}
		}
		t.Fatalf("call %s not in the ledger of %s", call, rep.Day)
		return l, nil
	}
	l, holds := callHolds(t)
	if n := len(holds); n != 2 || holds[1].Action != HoldPlace || holds[1].Reason != lateHoldReason ||
		len(holds[1].Objects) != len(late)-1 || slices.Contains(holds[1].Objects, late[0].Key) {
		t.Fatalf("holds after the late recordings: %+v, want the operator's and an automatic one of %d objects", holds, len(late)-1)
	}
	if l.Complete || !strings.Contains(strings.Join(l.Incomplete, "; "), late[0].Key) {
		t.Errorf("a held call's recording without its hold: complete %v, incomplete %q", l.Complete, l.Incomplete)
	}
	for _, it := range late {
		if _, _, h := objectLock(t, c, s, it.Key); h != (it.Key != late[0].Key) {
			t.Errorf("%s: legal hold %v", it.Key, h)
		}
	}
	// The hold can be set again: the next pass sets it.
	fh.mu.Lock()
	clear(fh.fail)
	fh.mu.Unlock()
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	l, holds = callHolds(t)
	if n := len(holds); n != 3 || holds[2].Reason != lateHoldReason || !slices.Equal(holds[2].Objects, []string{late[0].Key}) {
		t.Fatalf("holds after the retry: %+v", holds)
	}
	if !l.Complete {
		t.Errorf("the day is still incomplete: %q", l.Incomplete)
	}
	for _, it := range late {
		if _, _, h := objectLock(t, c, s, it.Key); !h {
			t.Errorf("%s: not held", it.Key)
		}
	}
	// Nothing new: no event.
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if _, holds = callHolds(t); len(holds) != 3 {
		t.Errorf("a pass with nothing new: holds %+v", holds)
	}
	// Released: a later pass holds nothing again.
	if _, err := e.a.Hold(ctx, HoldOptions{CallID: call, Release: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if _, holds = callHolds(t); len(holds) != 4 || holds[3].Action != HoldRelease {
		t.Errorf("after release: holds %+v", holds)
	}
	for _, it := range late {
		if _, _, h := objectLock(t, c, s, it.Key); h {
			t.Errorf("%s: held after the release", it.Key)
		}
	}
	if rep := e.verify(t, VerifyOptions{Chain: true, Locks: true}); rep.Problems != 0 {
		t.Errorf("verify --chain: %q", problems(rep))
	}
}

// TestHold_S3: archiver hold places the legal hold of every object of a
// call (read back from versitygw) and records the event in a new link
// of the call's day; --release lifts it, also from objects a rule held,
// and is recorded after it; verify --chain passes after both. An unknown
// call, a bucket without Object Lock and the dir sink are refused.
func TestHold_S3(t *testing.T) {
	e, s, c := lockEnv(t)
	ctx := testCtx(t)
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	// A VDN 61 call with an IVR recording (held by its rule) and an agent
	// recording (not held).
	byCall := e.archivedByCall()
	var call string
	var objs []checkpoint.Item
	for id, its := range byCall {
		held := map[string][]bool{}
		for _, it := range its {
			_, _, h := objectLock(t, c, s, it.Key)
			held[it.Kind] = append(held[it.Kind], h)
		}
		// VDN 61: the IVR recordings held by their rule, the agent ones not.
		if len(held[checkpoint.KindIVR]) > 0 && !slices.Contains(held[checkpoint.KindIVR], false) &&
			len(held[checkpoint.KindAgent]) > 0 && !slices.Contains(held[checkpoint.KindAgent], true) && (call == "" || id < call) {
			call, objs = id, its
		}
	}
	if call == "" {
		t.Fatal("no call with an IVR and an agent recording")
	}
	day := objs[0].Day
	holds := func(t *testing.T) []bool {
		var out []bool
		for _, it := range objs {
			_, _, h := objectLock(t, c, s, it.Key)
			out = append(out, h)
		}
		return out
	}
	if h := holds(t); !slices.Contains(h, false) {
		t.Fatalf("before hold: legal holds %v, want one not held", h)
	}
	_, before := currentLedger(t, e, s, day)
	for _, step := range []struct {
		release bool
		action  string
	}{{false, HoldPlace}, {true, HoldRelease}} {
		rep, err := e.a.Hold(ctx, HoldOptions{CallID: call, Release: step.release, Reason: "case 42"})
		if err != nil {
			t.Fatalf("Hold(release %v): %v", step.release, err)
		}
		if len(rep.Objects) != len(objs) || rep.Day != day || rep.Action != step.action {
			t.Fatalf("Hold report %+v, want %d objects of day %s", rep, len(objs), day)
		}
		for i, h := range holds(t) {
			if h == step.release {
				t.Errorf("%s: legal hold %v after %s", objs[i].Key, h, step.action)
			}
		}
		l, key := currentLedger(t, e, s, day)
		if key == before || key != rep.LedgerKey {
			t.Errorf("%s: the day's current ledger is %s (was %s, report %s): no new link", step.action, key, before, rep.LedgerKey)
		}
		before = key
		var got []LedgerHold
		for _, lc := range l.Calls {
			if lc.CallID == call {
				got = lc.Holds
			} else if len(lc.Holds) > 0 {
				t.Errorf("call %s has holds %+v", lc.CallID, lc.Holds)
			}
		}
		if n := len(got); n == 0 || got[n-1].Action != step.action || got[n-1].Reason != "case 42" || len(got[n-1].Objects) != len(objs) {
			t.Fatalf("ledger holds of call %s = %+v, want the %s event last, with %d objects", call, got, step.action, len(objs))
		}
		if step.release && (len(got) != 2 || got[0].Action != HoldPlace) {
			t.Errorf("ledger holds %+v, want place then release", got)
		}
		checkSchemaDef(t, "hold", got[len(got)-1])
		if rep := e.verify(t, VerifyOptions{Chain: true, Locks: true}); rep.Problems != 0 {
			t.Errorf("verify --chain after %s: %q", step.action, problems(rep))
		}
	}
	// A later ledger of the day (a state change) keeps the events.
	late := checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: "late-1", CallID: call, Day: day, State: checkpoint.StateAbsent, Reason: "late record"}
	if _, err := e.store.AddItems(ctx, []checkpoint.Item{late}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if n, err := e.a.WriteLedgers(ctx); err != nil || n != 1 {
		t.Fatalf("WriteLedgers = %d, %v; want 1", n, err)
	}
	if l, _ := currentLedger(t, e, s, day); !slices.ContainsFunc(l.Calls, func(lc LedgerCall) bool { return lc.CallID == call && len(lc.Holds) == 2 }) {
		t.Errorf("the next ledger of %s lost the hold events of call %s", day, call)
	}

	if _, err := e.a.Hold(ctx, HoldOptions{CallID: "no-such-call"}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Hold of an unknown call = %v, want ErrUnknownCall", err)
	}
	d := newEnv(t, envOptions{})
	if _, err := d.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.a.Hold(ctx, HoldOptions{CallID: call}); !errors.Is(err, sink.ErrLockUnsupported) {
		t.Errorf("Hold on the dir sink = %v, want ErrLockUnsupported", err)
	}
}

// TestRetention_Attrs: a recording-index row's skill, wanted skill, call
// type and media type reach the rule conditions, and the choice lands in
// the object metadata and the sink lock of its writes.
func TestRetention_Attrs(t *testing.T) {
	a := &Archiver{Settings: Settings{Tenant: "t1", Retention: Retention{DefaultMode: "GOVERNANCE", Rules: []config.RetentionRule{
		{Name: "disputes", Skill: []string{"7"}, WantedSkill: []string{"6"}, CallType: []string{"1"}, MediaType: []string{"5"}, Tenant: []string{"t1"},
			RetentionDays: 10, LegalHold: true},
	}}}}
	row := func(skill string) *cdr.Row {
		f := make([]string, 18)
		f[14], f[15], f[16], f[17] = "1", "5", "6", skill // call_type, media_type, user_wanted_skill_id, current_skill_id
		return &cdr.Row{Fields: f}
	}
	var om ObjectMeta
	callData(&om, checkpoint.KindAgent, "12", "1001", row("7"))
	if om.Retention != nil || om.Metadata[MetaKeyRetentionRule] != "" {
		t.Fatalf("callData chose a rule when the item was added: %+v %v", om.Retention, om.Metadata)
	}
	it := checkpoint.Item{Kind: checkpoint.KindAgent}
	c := a.retentionAt(it, om)
	if c == nil || *c != (RetentionChoice{Rule: "disputes", Mode: "GOVERNANCE", Days: 10, LegalHold: true}) {
		t.Fatalf("retentionAt = %+v (call data %v)", c, om.Call)
	}
	now := time.Now()
	m := om.sinkMeta("audio/wav", "", c)
	if l := m.Lock; l == nil || l.Mode != "GOVERNANCE" || !l.LegalHold || l.RetainUntil.Before(now.Add(10*24*time.Hour-time.Second)) {
		t.Errorf("sink lock = %+v", l)
	}
	if m.Metadata[MetaKeyRetentionRule] != "disputes" {
		t.Errorf("sink metadata = %v, want the rule named", m.Metadata)
	}
	var other ObjectMeta
	callData(&other, checkpoint.KindAgent, "12", "1001", row("8"))
	if c := a.retentionAt(it, other); c != nil || other.sinkMeta("audio/wav", "", c).Lock != nil ||
		other.sinkMeta("audio/wav", "", c).Metadata[MetaKeyRetentionRule] != "" {
		t.Errorf("a row of skill 8 got %+v", c)
	}
	// Evaluated at the write: a rule added after the item applies to it.
	b := &Archiver{Settings: Settings{Tenant: "t1"}}
	if c := b.retentionAt(it, other); c != nil {
		t.Errorf("no rules: retentionAt = %+v", c)
	}
	b.Retention.Rules = []config.RetentionRule{{Name: "skill8", Skill: []string{"8"}, LegalHold: true}}
	if c := b.retentionAt(it, other); c == nil || c.Rule != "skill8" || !c.LegalHold || c.Days != 0 {
		t.Errorf("a rule added later: retentionAt = %+v", c)
	}
	// An item added by an earlier version (a choice, no call data) keeps its choice.
	old := ObjectMeta{Retention: &RetentionChoice{Rule: "then", Mode: "COMPLIANCE", Days: 3}}
	if c := b.retentionAt(it, old); c == nil || *c != *old.Retention {
		t.Errorf("an earlier version's item: retentionAt = %+v, want %+v", c, old.Retention)
	}
	// A stale rule name in the metadata of an earlier version's row is replaced.
	stale := ObjectMeta{Metadata: map[string]string{MetaKeyRetentionRule: "gone", "call-id": "c1"}}
	if md := stale.sinkMeta("audio/wav", "", nil).Metadata; md[MetaKeyRetentionRule] != "" || md["call-id"] != "c1" {
		t.Errorf("sink metadata without a rule = %v", md)
	}
}

// checkSchemaDef fails t unless obj (a JSON object) has every member
// $defs.<name> of docs/ledger-chain.schema.json requires and only members
// it lists, so that the schema stays in step with the ledger.
func checkSchemaDef(t *testing.T, name string, obj any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "ledger-chain.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]struct {
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	d, ok := schema.Defs[name]
	if !ok {
		t.Fatalf("schema has no $defs.%s", name)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Required {
		if _, ok := m[r]; !ok {
			t.Errorf("%s %s: no %q, which the schema requires", name, b, r)
		}
	}
	for k := range m {
		if _, ok := d.Properties[k]; !ok {
			t.Errorf("%s %s: member %q is not in $defs.%s", name, b, k, name)
		}
	}
}
