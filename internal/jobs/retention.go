package jobs

import (
	"bytes"
	"strings"
	"time"

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
// when the recording's item is added and kept in its arguments
// (ObjectMeta.Retention), so that the object, its metadata and its ledger
// entry agree however often the write is repeated; the retain-until date
// is counted from each write (RetentionDays after it, as the sink's
// default retention is).
type RetentionChoice struct {
	Rule string `json:"rule"`
	// Mode and Days are the retention; none (0) keeps the sink's default.
	Mode string `json:"mode,omitempty"`
	Days int    `json:"days,omitempty"`
	// LegalHold places a legal hold at the write.
	LegalHold bool `json:"legal_hold,omitempty"`
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

// retain chooses the retention rule of a recording of kind, and records
// it in om (its arguments and its object metadata). row is the
// recording-index row, when there is one: it adds the skill, call type
// and media type conditions.
func (a *Archiver) retain(om *ObjectMeta, kind, vdn, agent string, row *cdr.Row) {
	if len(a.Retention.Rules) == 0 {
		return
	}
	attrs := map[string]string{
		config.RuleTenant: a.Tenant, config.RuleKind: kind, config.RuleVDN: vdn, config.RuleAgent: agent,
	}
	if row != nil {
		for field, col := range map[string]string{
			config.RuleSkill: "current_skill_id", config.RuleWantedSkill: "user_wanted_skill_id",
			config.RuleCallType: "call_type", config.RuleMediaType: "media_type",
		} {
			attrs[field] = strings.TrimSpace(row.Get(cdr.KindRecord, col))
		}
	}
	t := config.Retention{Rules: a.Retention.Rules}
	r := t.Match(attrs)
	if r == nil {
		return
	}
	c := &RetentionChoice{Rule: r.Name, LegalHold: r.LegalHold}
	if r.RetentionDays > 0 {
		c.Mode, c.Days = r.EffectiveMode(a.Retention.DefaultMode), r.RetentionDays
	}
	om.Retention = c
	if om.Metadata == nil {
		om.Metadata = map[string]string{}
	}
	om.Metadata[MetaKeyRetentionRule] = r.Name
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
