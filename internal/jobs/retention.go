package jobs

import (
	"bytes"
	"context"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Retention is the per-recording Object Lock policy ([[retention.rules]],
// docs/configuration.md): the first rule whose conditions hold for a
// recording's call data gives it its retention and legal hold.
type Retention struct {
	Rules []config.RetentionRule
	// DefaultMode is sink.s3.object_lock_mode: the mode of a rule that
	// names none.
	DefaultMode string
	// DefaultLegalHold is sink.s3.legal_hold: the sink holds every object
	// it writes, so verify --locks takes a hold no rule or hold event
	// explains for that one.
	DefaultLegalHold bool
}

// MetaKeyRetentionRule is the object metadata key holding the name of the
// retention rule a recording was stored under.
const MetaKeyRetentionRule = "retention-rule"

// RetentionChoice is what a retention rule gave a recording. It is chosen
// at each write, from the rules in force then and the call data kept with
// the item (ObjectMeta.Call), and kept with the item when it is done
// (Store.DoneArgs), so that the object, its metadata and its ledger entry
// name the same rule. The retain-until date is counted from the write
// (RetentionDays after it, as the sink's default retention is).
type RetentionChoice struct {
	Rule string `json:"rule"`
	// Mode and Days are the retention; none (0) keeps the sink's default.
	Mode string `json:"mode,omitempty"`
	Days int    `json:"days,omitempty"`
	// LegalHold places a legal hold at the write.
	LegalHold bool `json:"legal_hold,omitempty"`
}

func (c *RetentionChoice) equal(o *RetentionChoice) bool {
	if c == nil || o == nil {
		return c == o
	}
	return *c == *o
}

// lock is the sink lock of a write at now; nil keeps the sink's settings.
func (c *RetentionChoice) lock(now time.Time) *sink.ObjectLock {
	if c == nil {
		return nil
	}
	l := &sink.ObjectLock{LegalHold: c.LegalHold}
	if c.Days > 0 && c.Mode != "" {
		l.Mode, l.RetainUntil = c.Mode, now.UTC().Add(time.Duration(c.Days)*24*time.Hour)
	}
	return l
}

// callData keeps in om the call data the retention rules look at, for
// the choice at write time (retentionAt): the kind, VDN and agent of the
// recording and, from its recording-index row when there is one, the
// skill, call type and media type. It is kept whether rules are configured
// or not, so that a rule added later applies to the items pending then.
func callData(om *ObjectMeta, kind, vdn, agent string, row *cdr.Row) {
	attrs := map[string]string{config.RuleKind: kind}
	set := func(field, v string) {
		if v = strings.TrimSpace(v); v != "" {
			attrs[field] = v
		}
	}
	set(config.RuleVDN, vdn)
	set(config.RuleAgent, agent)
	if row != nil {
		for field, col := range map[string]string{
			config.RuleSkill: "current_skill_id", config.RuleWantedSkill: "user_wanted_skill_id",
			config.RuleCallType: "call_type", config.RuleMediaType: "media_type",
		} {
			set(field, row.Get(cdr.KindRecord, col))
		}
	}
	om.Call = attrs
}

// retentionAt chooses the retention rule of a recording being written now:
// the first rule in force whose conditions hold for the item's call data.
// An item added by an earlier version, which chose its rule when it was
// added and kept no call data, keeps that choice.
func (a *Archiver) retentionAt(it checkpoint.Item, om ObjectMeta) *RetentionChoice {
	if om.Call == nil && om.Retention != nil {
		return om.Retention
	}
	if len(a.Retention.Rules) == 0 {
		return nil
	}
	attrs := make(map[string]string, len(om.Call)+2)
	for k, v := range om.Call {
		attrs[k] = v
	}
	attrs[config.RuleTenant] = a.Tenant
	if attrs[config.RuleKind] == "" {
		attrs[config.RuleKind] = it.Kind
	}
	t := config.Retention{Rules: a.Retention.Rules}
	return a.choice(t.Match(attrs))
}

// choice is what rule r gives a recording; nil for no rule.
func (a *Archiver) choice(r *config.RetentionRule) *RetentionChoice {
	if r == nil {
		return nil
	}
	c := &RetentionChoice{Rule: r.Name, LegalHold: r.LegalHold}
	if r.RetentionDays > 0 {
		c.Mode, c.Days = r.EffectiveMode(a.Retention.DefaultMode), r.RetentionDays
	}
	return c
}

// storedRetention is the retention choice of an object that was already
// in the sink (a write of an earlier attempt whose done mark was lost),
// as its metadata names it: what that write chose, not what would be
// chosen now. A rule no longer configured is kept by its name alone.
func (a *Archiver) storedRetention(ctx context.Context, key string, obj sink.Object, now *RetentionChoice) *RetentionChoice {
	md := obj.Metadata
	if md == nil {
		st, err := a.Sink.Stat(ctx, key)
		if err != nil {
			a.log.Warn("retention rule of an object already stored not read back; the rule chosen now is recorded",
				zap.String("key", key), zap.Error(err))
			return now
		}
		md = st.Metadata
	}
	name := md[MetaKeyRetentionRule]
	switch {
	case name == "" && now == nil:
		return nil
	case name == "":
		a.log.Warn("object already stored without a retention rule; none is recorded", zap.String("key", key),
			zap.String("rule_now", now.Rule))
		return nil
	case now != nil && name == now.Rule:
		return now
	}
	for i := range a.Retention.Rules {
		if r := &a.Retention.Rules[i]; r.Name == name {
			return a.choice(r)
		}
	}
	return &RetentionChoice{Rule: name}
}

// retentionOf is the retention choice stored with a recording item, nil
// when it has none (no rule matched, or it was added before the rules).
func retentionOf(it checkpoint.Item) *RetentionChoice {
	if !bytes.Contains(it.Args, []byte(`"retention"`)) {
		return nil // most items: no decoding
	}
	args, err := decodeArgs(it)
	if err != nil {
		return nil
	}
	return meta(args).Retention
}
