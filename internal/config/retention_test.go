package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rulesBase = `[cec]
fs_url = "https://cec.example.com:28443"
oifde_url = "https://cec.example.com:28090"
ak = "test-ak"
sk = "test-sk"
tenant_id = "test-tenant"
api_password = "test-password"

[sink]
type = "s3"

[sink.s3]
bucket = "archive"
object_lock_mode = "GOVERNANCE"
retention_days = 30
`

func loadRules(t *testing.T, rules string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(rulesBase+rules), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(path, nil)
}

// TestRetention_Load: [[retention.rules]] decode in order with their
// conditions and results, and the first matching rule wins.
func TestRetention_Load(t *testing.T) {
	cfg, err := loadRules(t, `
[[retention.rules]]
name = "vip-disputes"
vdn = ["12"]
skill = ["5"]
retention_days = 3650
mode = "COMPLIANCE"
legal_hold = true

[[retention.rules]]
name = "vdn-12"
vdn = ["12"]
retention_days = 365

[[retention.rules]]
name = "ivr"
kind = ["ivr"]
vdn = ["13"]
call_type = ["0", "1"]
legal_hold = true
`)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	rules := cfg.Retention.Rules
	if len(rules) != 3 || rules[0].Name != "vip-disputes" || rules[1].Name != "vdn-12" || rules[2].Name != "ivr" {
		t.Fatalf("rules = %+v", rules)
	}
	if r := rules[0]; r.RetentionDays != 3650 || r.Mode != LockCompliance || !r.LegalHold || r.EffectiveMode("GOVERNANCE") != LockCompliance {
		t.Errorf("rule 1 = %+v", r)
	}
	if m := rules[1].EffectiveMode(cfg.Sink.S3.ObjectLockMode); m != LockGovernance {
		t.Errorf("rule 2 mode = %q, want the sink's GOVERNANCE", m)
	}
	for _, c := range []struct {
		attrs map[string]string
		want  string
	}{
		{map[string]string{"vdn": "12", "skill": "5", "kind": "agent"}, "vip-disputes"},
		{map[string]string{"vdn": "12", "skill": "6", "kind": "agent"}, "vdn-12"},
		{map[string]string{"vdn": "12", "kind": "ivr"}, "vdn-12"},
		{map[string]string{"vdn": "13", "kind": "ivr", "call_type": "1"}, "ivr"},
		{map[string]string{"vdn": "13", "kind": "ivr"}, ""}, // unknown call type: no condition on it holds
		{map[string]string{"vdn": "13", "kind": "agent", "call_type": "1"}, ""},
		{nil, ""},
	} {
		got := ""
		if r := cfg.Retention.Match(c.attrs); r != nil {
			got = r.Name
		}
		if got != c.want {
			t.Errorf("Match(%v) = %q, want %q", c.attrs, got, c.want)
		}
	}
}

// TestRetention_Overlaps: which pairs of rules are shadowed or ambiguous.
func TestRetention_Overlaps(t *testing.T) {
	rule := func(name string, days int, hold bool, conds map[string][]string) RetentionRule {
		r := RetentionRule{Name: name, RetentionDays: days, LegalHold: hold}
		r.VDN, r.Skill, r.Agent = conds["vdn"], conds["skill"], conds["agent"]
		return r
	}
	for _, c := range []struct {
		name  string
		rules []RetentionRule
		want  []string // "later<-earlier" 1-based, "!" for shadowed
	}{
		{"Disjoint", []RetentionRule{rule("a", 1, false, map[string][]string{"vdn": {"1"}}), rule("b", 2, false, map[string][]string{"vdn": {"2"}})}, nil},
		{"ExceptionFirst", []RetentionRule{rule("a", 1, false, map[string][]string{"vdn": {"1"}, "agent": {"7"}}), rule("b", 2, false, map[string][]string{"vdn": {"1"}})}, nil},
		{"CatchAllLast", []RetentionRule{rule("a", 1, true, map[string][]string{"vdn": {"1"}}), rule("b", 2, false, nil)}, nil},
		{"CatchAllFirst", []RetentionRule{rule("a", 2, false, nil), rule("b", 1, true, map[string][]string{"vdn": {"1"}})}, []string{"2<-1!"}},
		{"SameSetLater", []RetentionRule{rule("a", 2, false, map[string][]string{"vdn": {"1", "2"}}), rule("b", 2, false, map[string][]string{"vdn": {"2"}})}, []string{"2<-1!"}},
		{"Ambiguous", []RetentionRule{rule("a", 2, false, map[string][]string{"vdn": {"1"}}), rule("b", 0, true, map[string][]string{"skill": {"5"}})}, []string{"2<-1"}},
		{"SameResult", []RetentionRule{rule("a", 2, false, map[string][]string{"vdn": {"1"}}), rule("b", 2, false, map[string][]string{"skill": {"5"}})}, nil},
		{"DecidedFirst", []RetentionRule{
			rule("both", 9, true, map[string][]string{"vdn": {"1"}, "skill": {"5"}}),
			rule("a", 2, false, map[string][]string{"vdn": {"1"}}), rule("b", 0, true, map[string][]string{"skill": {"5"}}),
		}, nil},
		{"PartlyDecided", []RetentionRule{
			rule("both", 9, true, map[string][]string{"vdn": {"1"}, "skill": {"5"}}),
			rule("a", 2, false, map[string][]string{"vdn": {"1", "2"}}), rule("b", 0, true, map[string][]string{"skill": {"5"}}),
		}, []string{"3<-2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, p := range RuleOverlaps(c.rules) {
				s := itoa(p.Later+1) + "<-" + itoa(p.Earlier+1)
				if p.Shadowed {
					s += "!"
				}
				got = append(got, s)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("overlaps = %v, want %v", got, c.want)
			}
		})
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

// TestDocs_CoversRuleKeys: docs/configuration.md has a row for every key
// of a [[retention.rules]] table (they are not keys of their own, so
// TestDocs_CoversEveryKey does not see them).
func TestDocs_CoversRuleKeys(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keysAt([]string{"retention", "rules"}) {
		if row := "| `retention.rules[]." + k + "` |"; !strings.Contains(string(data), row) {
			t.Errorf("docs/configuration.md has no row %s", row)
		}
	}
	if len(keysAt([]string{"retention", "rules"})) < 10 {
		t.Errorf("keysAt(retention.rules) = %v", keysAt([]string{"retention", "rules"}))
	}
}
