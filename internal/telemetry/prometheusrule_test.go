package telemetry_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the generated files under deploy/ (the PrometheusRule) from their sources")

const prometheusRuleFile = "k8s/monitoring/prometheusrule.yaml"

// prometheusRuleHeader heads the generated PrometheusRule.
const prometheusRuleHeader = `# GENERATED from deploy/prometheus/alerts.yml: do not edit. Change alerts.yml,
# then: go test ./internal/telemetry -run TestPrometheusRule -update
# (TestPrometheusRule fails while the two differ). Part of the kustomize
# Component of this directory; see kustomization.yaml for the labels your
# Prometheus's ruleSelector may need.
`

// prometheusRule is the PrometheusRule made of alerts.yml: its groups, with
// their expressions, annotations and block scalars as they are there.
func prometheusRule(t *testing.T) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(readDeploy(t, "prometheus/alerts.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	var groups *yaml.Node
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "groups" {
			groups = root.Content[i+1]
		}
	}
	if groups == nil {
		t.Fatal("alerts.yml has no groups")
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	out := mapping(
		str("apiVersion"), str("monitoring.coreos.com/v1"),
		str("kind"), str("PrometheusRule"),
		str("metadata"), mapping(
			str("name"), str("cec-archiver"),
			str("namespace"), str("cec-archiver"),
			str("labels"), mapping(str("app.kubernetes.io/name"), str("cec-archiver")),
		),
		str("spec"), mapping(str("groups"), groups),
	)
	var b bytes.Buffer
	b.WriteString(prometheusRuleHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPrometheusRule: the PrometheusRule of deploy/k8s/monitoring carries
// exactly the groups of deploy/prometheus/alerts.yml (-update rewrites it).
func TestPrometheusRule(t *testing.T) {
	want := prometheusRule(t)
	path := filepath.Join(deployDir, prometheusRuleFile)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readDeploy(t, prometheusRuleFile)
	var rule struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			Groups any `yaml:"groups"`
		} `yaml:"spec"`
	}
	var alerts struct {
		Groups any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(got, &rule); err != nil {
		t.Fatalf("%s: %v", prometheusRuleFile, err)
	}
	if err := yaml.Unmarshal(readDeploy(t, "prometheus/alerts.yml"), &alerts); err != nil {
		t.Fatal(err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Errorf("%s is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", prometheusRuleFile, rule.APIVersion, rule.Kind)
	}
	if !reflect.DeepEqual(rule.Spec.Groups, alerts.Groups) {
		t.Errorf("%s: its groups differ from alerts.yml's; run go test ./internal/telemetry -run TestPrometheusRule -update", prometheusRuleFile)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what alerts.yml generates; run go test ./internal/telemetry -run TestPrometheusRule -update", prometheusRuleFile)
	}
}
