package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
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
	if rep := e.verify(t, VerifyOptions{Chain: true}); rep.Problems != 0 {
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
	byCall := map[string][]checkpoint.Item{}
	for _, it := range e.items(checkpoint.StateDone) {
		if it.Key != "" {
			byCall[it.CallID] = append(byCall[it.CallID], it)
		}
	}
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
		if rep := e.verify(t, VerifyOptions{Chain: true}); rep.Problems != 0 {
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
	a.retain(&om, checkpoint.KindAgent, "12", "1001", row("7"))
	if om.Retention == nil || *om.Retention != (RetentionChoice{Rule: "disputes", Mode: "GOVERNANCE", Days: 10, LegalHold: true}) ||
		om.Metadata[MetaKeyRetentionRule] != "disputes" {
		t.Fatalf("retain = %+v %v", om.Retention, om.Metadata)
	}
	now := time.Now()
	l := om.sinkMeta("audio/wav", "").Lock
	if l == nil || l.Mode != "GOVERNANCE" || !l.LegalHold || l.RetainUntil.Before(now.Add(10*24*time.Hour-time.Second)) {
		t.Errorf("sink lock = %+v", l)
	}
	var other ObjectMeta
	a.retain(&other, checkpoint.KindAgent, "12", "1001", row("8"))
	if other.Retention != nil || other.sinkMeta("audio/wav", "").Lock != nil || other.Metadata[MetaKeyRetentionRule] != "" {
		t.Errorf("a row of skill 8 got %+v %v", other.Retention, other.Metadata)
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
