package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// TestVerify_ExpectHold: the newest hold event naming a key decides
// (its failed keys too); a call whose last event is a place holds the
// keys it did not name; else the rule's hold, else none unless the sink
// holds every object or the ledger (and so the events) is unknown.
func TestVerify_ExpectHold(t *testing.T) {
	at := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	place := func(keys ...string) LedgerHold { return LedgerHold{Action: HoldPlace, At: at, Objects: keys} }
	release := func(keys ...string) LedgerHold {
		return LedgerHold{Action: HoldRelease, At: at.Add(time.Hour), Objects: keys}
	}
	ruleHold := &RetentionChoice{Rule: "disputes", LegalHold: true}
	ruleDays := &RetentionChoice{Rule: "keep", Mode: sink.LockGovernance, Days: 3}
	for _, c := range []struct {
		name        string
		rule        *RetentionChoice
		events      []LedgerHold
		known, dflt bool
		want        holdWant // why: a word of it
	}{
		{"NeverHeld", ruleDays, nil, true, false, holdWant{known: true, why: "never held"}},
		{"RuleHold", ruleHold, nil, true, false, holdWant{known: true, on: true, why: `"disputes"`}},
		{"Placed", nil, []LedgerHold{place("k")}, true, false, holdWant{known: true, on: true, why: "place at 2026-11-03T12:00:00Z"}},
		{"Released", ruleHold, []LedgerHold{place("k"), release("k")}, true, false, holdWant{known: true, why: "release"}},
		{"PlacedAgain", nil, []LedgerHold{place("k"), release("k"), place("k")}, true, false, holdWant{known: true, on: true, why: "place"}},
		{"ArchivedAfterHold", nil, []LedgerHold{place("other")}, true, false, holdWant{known: true, on: true, why: "did not list it"}},
		{"ArchivedAfterRelease", nil, []LedgerHold{place("other"), release("other")}, true, false, holdWant{known: true, why: "released"}},
		{"ArchivedAfterReleaseRuleHold", ruleHold, []LedgerHold{place("other"), release("other")}, true, false, holdWant{known: true, on: true, why: "disputes"}},
		{"FailedRelease", nil, []LedgerHold{place("k"), {Action: HoldRelease, At: at, Objects: []string{}, Failed: []string{"k"}}}, true, false, holdWant{known: true, why: "release"}},
		{"UnknownAction", nil, []LedgerHold{{Action: "audit", Objects: []string{"k"}}}, true, false, holdWant{known: true, why: "never held"}},
		{"SinkHoldsAll", nil, nil, true, true, holdWant{}},
		{"SinkHoldsAllReleased", nil, []LedgerHold{place("k"), release("k")}, true, true, holdWant{known: true, why: "release"}},
		{"LedgerUnknown", nil, nil, false, false, holdWant{}},
		{"LedgerUnknownRuleHold", ruleHold, nil, false, false, holdWant{known: true, on: true, why: "disputes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := expectHold(verifyEntry{Key: "k", Retention: c.rule}, c.events, c.known, c.dflt)
			if got.known != c.want.known || got.on != c.want.on || !strings.Contains(got.why, c.want.why) {
				t.Errorf("expectHold = %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestVerify_LockProblems: the retention of the ledger's rule (mode,
// retain-until no earlier than the write plus its days, less an hour),
// the "retention-rule" metadata and the expected legal hold, each
// reported with its kind and the key.
func TestVerify_LockProblems(t *testing.T) {
	written := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	rule := &RetentionChoice{Rule: "keep", Mode: sink.LockGovernance, Days: 3}
	holdOnly := &RetentionChoice{Rule: "hold", LegalHold: true}
	until := written.Add(3 * 24 * time.Hour)
	meta := func(r string) map[string]string {
		if r == "" {
			return map[string]string{}
		}
		return map[string]string{MetaKeyRetentionRule: r}
	}
	on := holdWant{known: true, on: true, why: "rule"}
	off := holdWant{known: true, why: "never held"}
	for _, c := range []struct {
		name string
		rule *RetentionChoice
		meta string
		zero bool // no Modified
		got  sink.ObjectLock
		hold holdWant
		want []string // the problems' kinds, in order
	}{
		{"OK", rule, "keep", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until}, off, nil},
		{"Extended", rule, "keep", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until.Add(400 * 24 * time.Hour)}, off, nil},
		{"WithinSlack", rule, "keep", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until.Add(-59 * time.Minute)}, off, nil},
		{"Shortened", rule, "keep", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until.Add(-61 * time.Minute)}, off, []string{"retention mismatch"}},
		{"OtherMode", rule, "keep", false, sink.ObjectLock{Mode: "COMPLIANCE", RetainUntil: until}, off, []string{"retention mismatch"}},
		{"NoRetention", rule, "keep", false, sink.ObjectLock{}, off, []string{"retention mismatch"}},
		{"NoWriteTime", rule, "keep", true, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until}, off, []string{"retention mismatch"}},
		{"HoldOnlyRule", holdOnly, "hold", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: written.Add(time.Hour), LegalHold: true}, on, nil},
		{"NoRuleAnyRetention", nil, "", false, sink.ObjectLock{Mode: "COMPLIANCE", RetainUntil: written}, off, nil},
		{"MetadataDiffers", rule, "other", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until}, off, []string{"retention rule mismatch"}},
		{"MetadataMissing", rule, "", false, sink.ObjectLock{Mode: "GOVERNANCE", RetainUntil: until}, off, []string{"retention rule mismatch"}},
		{"MetadataWithoutRule", nil, "keep", false, sink.ObjectLock{}, off, []string{"retention rule mismatch"}},
		{"NotHeld", holdOnly, "hold", false, sink.ObjectLock{}, on, []string{"legal hold mismatch"}},
		{"UnexpectedHold", nil, "", false, sink.ObjectLock{LegalHold: true}, off, []string{"unexpected legal hold"}},
		{"AnyHold", nil, "", false, sink.ObjectLock{LegalHold: true}, holdWant{}, nil},
		{"All", rule, "", false, sink.ObjectLock{Mode: "COMPLIANCE", RetainUntil: until, LegalHold: true}, off,
			[]string{"retention mismatch", "retention rule mismatch", "unexpected legal hold"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := verifyEntry{Kind: "agent", ID: "r1", CallID: "c1", Key: "rec/k.wav", Retention: c.rule}
			obj := sink.Object{Key: e.Key, Modified: written, Metadata: meta(c.meta)}
			if c.zero {
				obj.Modified = time.Time{}
			}
			got := lockProblems(e, obj, c.got, c.hold)
			if len(got) != len(c.want) {
				t.Fatalf("lockProblems = %q, want kinds %q", got, c.want)
			}
			for i, kind := range c.want {
				if !strings.HasPrefix(got[i], kind+" rec/k.wav (agent r1, call c1): ") {
					t.Errorf("problem %q, want kind %q naming the key and the entry", got[i], kind)
				}
			}
		})
	}
}
