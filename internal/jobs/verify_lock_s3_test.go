package jobs

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// TestVerify_LocksS3: on cecsim + versitygw with Object Lock, an archive
// with retention rules, a held call and a released one (whose rule-held
// IVR recording the release lifted) verifies clean with Locks, fast and
// deep. Then, behind the archiver's back with the raw S3 client: a hold
// the ledger records is lifted, and so is a rule's; a hold is placed on
// an object of a never-held call and on one of the released call; a
// GOVERNANCE retention is shortened (bypass-governance-retention), another
// turned COMPLIANCE, a third extended. Verify with Locks names exactly the
// five altered objects with their kinds (the extended retention is fine),
// counts them in LockMismatch; without Locks the archive still verifies.
func TestVerify_LocksS3(t *testing.T) {
	e, s, c := lockEnv(t)
	ctx := testCtx(t)
	if _, err := e.a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	// The archived recordings by call, and by rule.
	byCall := e.archivedByCall()
	calls := make([]string, 0, len(byCall))
	for id := range byCall {
		calls = append(calls, id)
	}
	sort.Strings(calls)
	ruleOf := func(it checkpoint.Item) string {
		if r := retentionOf(it); r != nil {
			return r.Rule
		}
		return ""
	}
	hasRule := func(id, rule string) bool {
		return slices.ContainsFunc(byCall[id], func(it checkpoint.Item) bool { return ruleOf(it) == rule })
	}
	// held and released: two calls with a rule-held IVR recording; the
	// others are never held.
	var ivrCalls []string
	for _, id := range calls {
		if hasRule(id, "vdn61-ivr") {
			ivrCalls = append(ivrCalls, id)
		}
	}
	if len(ivrCalls) < 3 {
		t.Fatalf("%d calls with a vdn61-ivr recording, want 3", len(ivrCalls))
	}
	held, released, ruleHeld := ivrCalls[0], ivrCalls[1], ivrCalls[2]
	for _, o := range []HoldOptions{{CallID: held}, {CallID: released}, {CallID: released, Release: true}} {
		if _, err := e.a.Hold(ctx, o); err != nil {
			t.Fatalf("Hold(%+v): %v", o, err)
		}
	}
	for _, o := range []VerifyOptions{{Locks: true}, {Locks: true, Deep: true, Chain: true}} {
		rep := e.verify(t, o)
		if rep.Problems != 0 || !rep.Locks {
			t.Fatalf("Verify(%+v) of the clean archive: locks %v, %q", o, rep.Locks, problems(rep))
		}
	}

	// The objects to alter.
	pick := func(call, rule string) checkpoint.Item {
		t.Helper()
		for _, it := range byCall[call] {
			if ruleOf(it) == rule {
				return it
			}
		}
		t.Fatalf("call %s has no recording of rule %q", call, rule)
		return checkpoint.Item{}
	}
	var vdn39 []checkpoint.Item // never-held calls' GOVERNANCE recordings
	for _, id := range calls {
		if id == held || id == released {
			continue
		}
		for _, it := range byCall[id] {
			if ruleOf(it) == "vdn39" {
				vdn39 = append(vdn39, it)
			}
		}
	}
	if len(vdn39) < 4 {
		t.Fatalf("%d recordings of rule vdn39, want 4", len(vdn39))
	}
	bucket := aws.String(s.Bucket())
	setHold := func(key string, on bool) {
		t.Helper()
		status := types.ObjectLockLegalHoldStatusOff
		if on {
			status = types.ObjectLockLegalHoldStatusOn
		}
		if _, err := c.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{Bucket: bucket, Key: aws.String(s.ObjectKey(key)),
			LegalHold: &types.ObjectLockLegalHold{Status: status}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
			t.Fatalf("legal hold %v on %s: %v", on, key, err)
		}
	}
	setRetention := func(key string, mode types.ObjectLockRetentionMode, until time.Time) {
		t.Helper()
		if _, err := c.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{Bucket: bucket, Key: aws.String(s.ObjectKey(key)),
			Retention:                 &types.ObjectLockRetention{Mode: mode, RetainUntilDate: aws.Time(until)},
			BypassGovernanceRetention: aws.Bool(true), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
			t.Fatalf("retention %s until %v on %s: %v", mode, until, key, err)
		}
		if m, u, _ := objectLock(t, c, s, key); m != string(mode) || !u.Equal(until) {
			t.Fatalf("%s: retention %s until %v after setting %s until %v", key, m, u, mode, until)
		}
	}
	heldIVR, ruleIVR, releasedIVR := pick(held, "vdn61-ivr"), pick(ruleHeld, "vdn61-ivr"), pick(released, "vdn61-ivr")
	now := time.Now().UTC().Truncate(time.Second)
	setHold(heldIVR.Key, false)
	setHold(ruleIVR.Key, false)
	setHold(vdn39[0].Key, true)
	setHold(releasedIVR.Key, true)
	setRetention(vdn39[1].Key, types.ObjectLockRetentionModeGovernance, now.Add(24*time.Hour)) // 3 days → 1
	setRetention(vdn39[2].Key, types.ObjectLockRetentionModeCompliance, now.Add(4*24*time.Hour))
	setRetention(vdn39[3].Key, types.ObjectLockRetentionModeGovernance, now.Add(10*24*time.Hour)) // extended: fine

	want := map[string]string{ // key → the problem's kind and a word of its reason
		heldIVR.Key:     "legal hold mismatch|archiver hold place",
		ruleIVR.Key:     `legal hold mismatch|retention rule "vdn61-ivr" holds it`,
		vdn39[0].Key:    "unexpected legal hold|the call was never held",
		releasedIVR.Key: "unexpected legal hold|archiver hold release",
		vdn39[1].Key:    "retention mismatch|before its write",
		vdn39[2].Key:    "retention mismatch|mode COMPLIANCE",
	}
	for _, deep := range []bool{false, true} {
		rep := e.verify(t, VerifyOptions{Locks: true, Deep: deep})
		got := problems(rep)
		for key, w := range want {
			kind, reason, _ := strings.Cut(w, "|")
			if !slices.ContainsFunc(got, func(p string) bool { return strings.HasPrefix(p, kind+" "+key+" ") && strings.Contains(p, reason) }) {
				t.Errorf("deep %v: no %q problem naming %s (%q): %q", deep, kind, key, reason, got)
			}
		}
		mismatched := 0
		for _, d := range rep.Days {
			mismatched += d.LockMismatch
		}
		if len(got) != len(want) || mismatched != len(want) || rep.Problems != len(want) {
			t.Errorf("deep %v: %d problems (%d lock mismatches, report %d), want %d: %q", deep, len(got), mismatched, rep.Problems, len(want), got)
		}
	}
	if rep := e.verify(t, VerifyOptions{}); rep.Problems != 0 || rep.Locks {
		t.Errorf("Verify without Locks: locks %v, %q; want no problem", rep.Locks, problems(rep))
	}
}

// TestVerify_LocksDir: Locks on the dir sink, which has no Object Lock,
// fails with ErrLockUnsupported before checking anything.
func TestVerify_LocksDir(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.a.Once(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	rep, err := e.a.Verify(context.Background(), VerifyOptions{Locks: true})
	if !errors.Is(err, sink.ErrLockUnsupported) || rep != nil {
		t.Fatalf("Verify(Locks) on the dir sink = %+v, %v; want ErrLockUnsupported", rep, err)
	}
	if !strings.Contains(err.Error(), "s3 sink") {
		t.Errorf("error %q does not say which sink can", err)
	}
}
