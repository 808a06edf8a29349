package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Retention is the [retention] table: the rules that give each recording
// its Object Lock retention and legal hold from its call data.
type Retention struct {
	// Rules are tried in order; the first whose conditions all hold for a
	// recording is its rule. A recording no rule matches gets the sink's
	// own Object Lock settings (sink.s3.object_lock_mode, retention_days,
	// legal_hold).
	Rules []RetentionRule `toml:"rules"`
}

// RetentionRule is one [[retention.rules]] table: conditions on a
// recording's call data and the Object Lock it then gets.
//
// A condition is a list of values; it holds when the recording's field is
// one of them (exact, case-sensitive match). An empty or absent list puts
// no condition on the field. A recording whose field is unknown (empty)
// fails every condition on that field.
type RetentionRule struct {
	Name string `toml:"name"` // recorded in the object's metadata and in the ledger

	Tenant      []string `toml:"tenant"`       // cec.tenant_id
	Kind        []string `toml:"kind"`         // recording kind: agent, transfer, ivr
	VDN         []string `toml:"vdn"`          // vdn_id
	Agent       []string `toml:"agent"`        // agent_id
	Skill       []string `toml:"skill"`        // current_skill_id (recording index)
	WantedSkill []string `toml:"wanted_skill"` // user_wanted_skill_id (recording index)
	CallType    []string `toml:"call_type"`    // call_type (recording index)
	MediaType   []string `toml:"media_type"`   // media_type (recording index)

	// RetentionDays is the retention period from the object's write time;
	// 0 keeps the sink's default retention (sink.s3.retention_days).
	RetentionDays int `toml:"retention_days"`
	// Mode is GOVERNANCE or COMPLIANCE; empty means sink.s3.object_lock_mode.
	Mode string `toml:"mode"`
	// LegalHold places a legal hold on the object (on top of
	// sink.s3.legal_hold, which a rule cannot lift).
	LegalHold bool `toml:"legal_hold"`
}

// Condition fields of a retention rule: the key names of RetentionRule's
// condition lists, which are also the names of the attributes a recording
// is matched on.
const (
	RuleTenant      = "tenant"
	RuleKind        = "kind"
	RuleVDN         = "vdn"
	RuleAgent       = "agent"
	RuleSkill       = "skill"
	RuleWantedSkill = "wanted_skill"
	RuleCallType    = "call_type"
	RuleMediaType   = "media_type"
)

// RuleFields lists the condition fields in a fixed order.
func RuleFields() []string {
	return []string{RuleTenant, RuleKind, RuleVDN, RuleAgent, RuleSkill, RuleWantedSkill, RuleCallType, RuleMediaType}
}

// RuleKinds are the values the kind condition accepts (the recording kinds).
func RuleKinds() []string { return []string{"agent", "transfer", "ivr"} }

// Object Lock modes.
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// MaxRetentionDays is the longest retention a rule may give (S3 allows
// 100 years).
const MaxRetentionDays = 36500

// Conditions returns the rule's condition lists by field name; a field
// without a condition is absent.
func (r *RetentionRule) Conditions() map[string][]string {
	out := map[string][]string{}
	for _, f := range RuleFields() {
		if vals := r.condition(f); len(vals) > 0 {
			out[f] = vals
		}
	}
	return out
}

func (r *RetentionRule) condition(field string) []string {
	switch field {
	case RuleTenant:
		return r.Tenant
	case RuleKind:
		return r.Kind
	case RuleVDN:
		return r.VDN
	case RuleAgent:
		return r.Agent
	case RuleSkill:
		return r.Skill
	case RuleWantedSkill:
		return r.WantedSkill
	case RuleCallType:
		return r.CallType
	case RuleMediaType:
		return r.MediaType
	}
	return nil
}

// Matches reports whether every condition of the rule holds for attrs,
// the recording's fields by condition name.
func (r *RetentionRule) Matches(attrs map[string]string) bool {
	for _, f := range RuleFields() {
		vals := r.condition(f)
		if len(vals) == 0 {
			continue
		}
		v := attrs[f]
		if v == "" || !slices.Contains(vals, v) {
			return false
		}
	}
	return true
}

// Match returns the first rule that matches attrs, or nil.
func (t *Retention) Match(attrs map[string]string) *RetentionRule {
	for i := range t.Rules {
		if t.Rules[i].Matches(attrs) {
			return &t.Rules[i]
		}
	}
	return nil
}

// EffectiveMode is the rule's Object Lock mode: its own, or the sink's
// default (sink.s3.object_lock_mode) when it names none.
func (r *RetentionRule) EffectiveMode(sinkMode string) string {
	if r.Mode != "" {
		return r.Mode
	}
	return sinkMode
}

var ruleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ruleField names a key of the n-th (1-based) [[retention.rules]] table.
func ruleField(n int, key string) string {
	if key == "" {
		return fmt.Sprintf("retention.rules[%d]", n)
	}
	return fmt.Sprintf("retention.rules[%d].%s", n, key)
}

// retention checks [retention] against the sink that must apply it.
func (v *validator) retention(t *Retention, s *Sink) {
	if len(t.Rules) == 0 {
		return
	}
	switch {
	case s.Type != SinkS3:
		v.add("retention.rules", `need sink.type = "s3" on a bucket with Object Lock: the %q sink cannot lock objects`, s.Type)
	case s.S3.Checksum == "none":
		v.add("retention.rules", `need a checksum: S3 refuses Object Lock on a write without one (sink.s3.checksum = "none")`)
	}
	names, before := map[string]int{}, len(v.errs)
	for i := range t.Rules {
		r, n := &t.Rules[i], i+1
		switch {
		case r.Name == "":
			v.add(ruleField(n, "name"), "required: it is recorded in the object's metadata and in the ledger")
		case !ruleNameRE.MatchString(r.Name):
			v.add(ruleField(n, "name"), "%q: want 1-64 characters A-Z a-z 0-9 . _ -, starting with a letter or digit", r.Name)
		case names[r.Name] > 0:
			v.add(ruleField(n, "name"), "%q is also the name of retention.rules[%d]", r.Name, names[r.Name])
		default:
			names[r.Name] = n
		}
		for _, f := range RuleFields() {
			seen := map[string]bool{}
			for _, val := range r.condition(f) {
				switch {
				case strings.TrimSpace(val) == "":
					v.add(ruleField(n, f), "empty value: a recording with an unknown %s matches no condition on it", f)
				case seen[val]:
					v.add(ruleField(n, f), "%q is listed twice", val)
				case f == RuleKind && !slices.Contains(RuleKinds(), val):
					v.add(ruleField(n, f), "must list only %q, %q or %q (got %q)", "agent", "transfer", "ivr", val)
				}
				seen[val] = true
			}
		}
		switch {
		case r.RetentionDays < 0 || r.RetentionDays > MaxRetentionDays:
			v.add(ruleField(n, "retention_days"), "must be between 0 and %d (got %d)", MaxRetentionDays, r.RetentionDays)
		case r.RetentionDays == 0 && !r.LegalHold:
			v.add(ruleField(n, ""), "gives nothing: set retention_days, legal_hold or both")
		}
		switch {
		case r.Mode != "" && r.Mode != LockGovernance && r.Mode != LockCompliance:
			v.add(ruleField(n, "mode"), `must be "GOVERNANCE" or "COMPLIANCE" (got %q)`, r.Mode)
		case r.Mode != "" && r.RetentionDays == 0:
			v.add(ruleField(n, "mode"), "only used with retention_days")
		case r.RetentionDays > 0 && r.EffectiveMode(s.S3.ObjectLockMode) == "":
			v.add(ruleField(n, "mode"), `required with retention_days when sink.s3.object_lock_mode is not set ("GOVERNANCE" or "COMPLIANCE")`)
		}
	}
	if len(v.errs) > before {
		return // the rules are compared once each is valid
	}
	for _, p := range RuleOverlaps(t.Rules) {
		v.add(ruleField(p.Later+1, ""), "%s", p.Msg)
	}
}

// RuleOverlap is a problem between two rules: Later (0-based) never
// matches because Earlier matches every recording it would (shadowed), or
// the two overlap with different results and no earlier rule decides the
// recordings they share (ambiguous).
type RuleOverlap struct {
	Earlier, Later int
	Shadowed       bool
	Msg            string
}

// RuleOverlaps finds the shadowed and ambiguous rules. Rules are sets of
// recordings, one list of allowed values per field (no list: any value).
// With first-match-wins order:
//
//   - a rule contained in an earlier one never matches (shadowed): an error;
//   - an earlier rule contained in a later one is an exception to it: fine;
//   - two rules that share recordings, neither containing the other, with
//     different results (retention, mode or hold) are ambiguous unless an
//     earlier rule than both contains every recording they share: the
//     order alone would decide, silently, which of two intents wins.
func RuleOverlaps(rules []RetentionRule) []RuleOverlap {
	sets := make([]ruleSet, len(rules))
	for i := range rules {
		sets[i] = rules[i].Conditions()
	}
	var out []RuleOverlap
	for j := range rules {
		for i := range j {
			if sets[j].within(sets[i]) {
				out = append(out, RuleOverlap{Earlier: i, Later: j, Shadowed: true, Msg: fmt.Sprintf(
					"never matches: every recording it matches is matched first by retention.rules[%d] (%q); remove it, narrow it or move it before that rule",
					i+1, rules[i].Name)})
				break
			}
			inter, ok := sets[i].intersect(sets[j])
			if !ok || sets[i].within(sets[j]) || sameResult(&rules[i], &rules[j]) {
				continue
			}
			covered := false
			for k := range i {
				if inter.within(sets[k]) {
					covered = true
					break
				}
			}
			if !covered {
				out = append(out, RuleOverlap{Earlier: i, Later: j, Msg: fmt.Sprintf(
					"overlaps retention.rules[%d] (%q) with a different result: recordings with %s match both and would get %q only; "+
						"put a rule for them before both, or narrow one of the two",
					i+1, rules[i].Name, inter, rules[i].Name)})
			}
		}
	}
	return out
}

func sameResult(a, b *RetentionRule) bool {
	return a.RetentionDays == b.RetentionDays && a.Mode == b.Mode && a.LegalHold == b.LegalHold
}

// ruleSet is a rule's conditions: field → allowed values; an absent field
// allows any value.
type ruleSet map[string][]string

// within reports whether every recording s allows, o allows too.
func (s ruleSet) within(o ruleSet) bool {
	for f, ov := range o {
		sv, ok := s[f]
		if !ok {
			return false
		}
		for _, x := range sv {
			if !slices.Contains(ov, x) {
				return false
			}
		}
	}
	return true
}

// intersect is the set of recordings both allow; ok is false when none.
func (s ruleSet) intersect(o ruleSet) (ruleSet, bool) {
	out := ruleSet{}
	for _, f := range RuleFields() {
		sv, sok := s[f]
		ov, ook := o[f]
		switch {
		case sok && ook:
			var both []string
			for _, x := range sv {
				if slices.Contains(ov, x) {
					both = append(both, x)
				}
			}
			if len(both) == 0 {
				return nil, false
			}
			out[f] = both
		case sok:
			out[f] = sv
		case ook:
			out[f] = ov
		}
	}
	return out, true
}

// String describes the set: "vdn in [12], skill in [5 7]", or "any value".
func (s ruleSet) String() string {
	var parts []string
	for _, f := range RuleFields() {
		if vals, ok := s[f]; ok {
			parts = append(parts, fmt.Sprintf("%s in %q", f, vals))
		}
	}
	if len(parts) == 0 {
		return "any field values"
	}
	return strings.Join(parts, ", ")
}
