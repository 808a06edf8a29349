package telemetry_test

// Checks of the files under deploy/: the Grafana dashboard and the alert rules
// use only metrics that exist, the Kubernetes manifests satisfy the
// "restricted" Pod Security Standard and agree with their config.toml, and the
// systemd units carry the hardening set and agree with theirs.
//
// Whether the config.toml files load with internal/config is checked in that
// package (telemetry must not import it).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v3"

	"github.com/cec-archiver/cec-archiver/internal/telemetry"
)

const deployDir = "../../deploy"

func readDeploy(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, rel))
	if err != nil {
		t.Fatalf("read deploy file: %v", err)
	}
	return b
}

// metricNames returns the metric family names an expression refers to, with
// the _bucket, _sum and _count series of histograms mapped to their family.
// The grouping label of the pushed groups (telemetry.JobLabel) is no metric.
func metricNames(expr string) []string {
	var out []string
	for _, n := range regexp.MustCompile(`archiver_[a-z_]+`).FindAllString(expr, -1) {
		if n == telemetry.JobLabel {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok {
				n = base
				break
			}
		}
		out = append(out, n)
	}
	return out
}

// checkMetricNames fails for every name in exprs that Names does not list and
// returns the set of names used.
func checkMetricNames(t *testing.T, where string, exprs []string) map[string]bool {
	t.Helper()
	known := telemetry.Names()
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricNames(e) {
			if !slices.Contains(known, n) {
				t.Errorf("%s: %q uses unknown metric %s", where, e, n)
			}
			used[n] = true
		}
	}
	return used
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.9, rate(archiver_job_duration_seconds_bucket[5m])) / archiver_items{state="dead"} + archiver_job_runs_total`)
	want := []string{"archiver_job_duration_seconds", "archiver_items", "archiver_job_runs_total"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// dashboardPanel is the part of a Grafana panel the test reads.
type dashboardPanel struct {
	ID      int                     `json:"id"`
	Type    string                  `json:"type"`
	Title   string                  `json:"title"`
	Targets []struct{ Expr string } `json:"targets"`
	Panels  []dashboardPanel        `json:"panels"` // collapsed rows
}

func TestDashboard(t *testing.T) {
	var dash struct {
		UID        string                      `json:"uid"`
		Title      string                      `json:"title"`
		Requires   []struct{ Type, ID string } `json:"__requires"`
		Panels     []dashboardPanel            `json:"panels"`
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readDeploy(t, "grafana/archiver-dashboard.json"), &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	var exprs []string
	ids := map[int]bool{}
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)

	t.Run("metadata", func(t *testing.T) {
		if dash.UID == "" || dash.Title == "" {
			t.Errorf("uid %q, title %q: both are required", dash.UID, dash.Title)
		}
		if !slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type string }) bool { return v.Type == "datasource" }) {
			t.Error("no datasource variable: the dashboard would be bound to one Prometheus")
		}
	})
	t.Run("requires", func(t *testing.T) {
		for _, want := range [][2]string{{"grafana", "grafana"}, {"datasource", "prometheus"}, {"panel", "stat"}, {"panel", "timeseries"}} {
			if !slices.ContainsFunc(dash.Requires, func(r struct{ Type, ID string }) bool { return r.Type == want[0] && r.ID == want[1] }) {
				t.Errorf("__requires lacks %s %s", want[0], want[1])
			}
		}
	})
	// Every series the dashboard reads is filtered by the job, instance
	// and tenant variables, as Node Exporter Full filters by job and node:
	// one dashboard for every tenant and host, scraped or pushed.
	t.Run("variables on every query", func(t *testing.T) {
		for _, v := range []string{"job", "instance", "tenant"} {
			if !slices.ContainsFunc(dash.Templating.List, func(l struct{ Name, Type string }) bool { return l.Name == v && l.Type == "query" }) {
				t.Errorf("no query variable %q", v)
			}
		}
		sel := regexp.MustCompile(`archiver_[a-z_]+(\{[^}]*\})?`)
		for _, e := range exprs {
			for _, m := range sel.FindAllStringSubmatch(e, -1) {
				if !strings.HasPrefix(m[1], `{job=~"$job",instance=~"$instance",tenant=~"$tenant"`) {
					t.Errorf("%q: %s is not filtered by $job, $instance and $tenant", e, m[0])
				}
			}
		}
	})
	t.Run("metrics exist", func(t *testing.T) {
		used := checkMetricNames(t, "dashboard", exprs)
		for _, n := range []string{
			"archiver_job_runs_total", "archiver_job_last_success_timestamp_seconds", "archiver_items",
			"archiver_archived_bytes_total", "archiver_watermark_timestamp_seconds", "archiver_checkpoint_errors_total",
			"archiver_last_pass_items", "archiver_last_pass_bytes", "archiver_last_pass_duration_seconds",
			"archiver_last_pass_timestamp_seconds", "archiver_last_pass_success",
		} {
			if !used[n] {
				t.Errorf("the dashboard does not show %s", n)
			}
		}
	})
}

// ruleFile is the Prometheus rule file format.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRules(t *testing.T) {
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(readDeploy(t, "prometheus/alerts.yml")))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yml is not a rule file: %v", err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("alerts.yml has no groups")
	}
	alerts := map[string]bool{}
	var exprs []string
	for _, g := range rf.Groups {
		if g.Name == "" {
			t.Error("a group has no name")
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert name (record %q)", g.Name, r.Record)
				continue
			}
			t.Run(r.Alert, func(t *testing.T) {
				if alerts[r.Alert] {
					t.Error("defined twice")
				}
				alerts[r.Alert] = true
				if strings.TrimSpace(r.Expr) == "" {
					t.Error("empty expr")
				}
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("for %q: %v", r.For, err)
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("severity %q, want critical or warning", s)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Error("summary and description annotations are required")
				}
			})
			exprs = append(exprs, r.Expr)
		}
	}
	used := checkMetricNames(t, "alerts.yml", exprs)
	t.Run("required alerts", func(t *testing.T) {
		for name, metric := range map[string]string{
			"ArchiverJobNotSucceeded":    "archiver_job_last_success_timestamp_seconds",
			"ArchiverJobFailing":         "archiver_job_runs_total",
			"ArchiverDeadItems":          "archiver_items",
			"ArchiverFailedItemsGrowing": "archiver_items",
			"ArchiverCheckpointErrors":   "archiver_checkpoint_errors_total",
			"ArchiverWatermarkLag":       "archiver_watermark_timestamp_seconds",
			"ArchiverMetricsAbsent":      "archiver_build_info",
		} {
			if !alerts[name] {
				t.Errorf("alert %s is missing", name)
			}
			if !used[metric] {
				t.Errorf("no alert uses %s", metric)
			}
		}
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, "up{") }) {
			t.Error("no alert on the scrape target being down (up)")
		}
	})
}

// k8sDoc is one Kubernetes object, decoded loosely.
type k8sDoc struct {
	file string
	raw  map[string]any
}

func (d k8sDoc) kind() string { s, _ := d.raw["kind"].(string); return s }

// k8sDocs decodes every YAML document of every file in deploy/k8s.
func k8sDocs(t *testing.T) []k8sDoc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s (%v)", err)
	}
	var docs []k8sDoc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			if m == nil {
				continue // an empty document
			}
			docs = append(docs, k8sDoc{file: filepath.Base(f), raw: m})
		}
	}
	return docs
}

// redecode converts a loosely decoded value into a typed one.
func redecode(t *testing.T, in, out any) {
	t.Helper()
	b, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type container struct {
	Name            string          `yaml:"name"`
	Image           string          `yaml:"image"`
	Args            []string        `yaml:"args"`
	SecurityContext securityContext `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	Ports []containerPort `yaml:"ports"`
	Env   []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
}

type podSpec struct {
	AutomountServiceAccountToken  *bool           `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int            `yaml:"terminationGracePeriodSeconds"`
	HostNetwork                   bool            `yaml:"hostNetwork"`
	HostPID                       bool            `yaml:"hostPID"`
	HostIPC                       bool            `yaml:"hostIPC"`
	SecurityContext               securityContext `yaml:"securityContext"`
	Containers                    []container     `yaml:"containers"`
	InitContainers                []container     `yaml:"initContainers"`
	Volumes                       []struct {
		Name     string         `yaml:"name"`
		EmptyDir map[string]any `yaml:"emptyDir"`
		PVC      *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		HostPath map[string]any `yaml:"hostPath"`
	} `yaml:"volumes"`
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

// deployConfig is the part of a deploy config.toml the manifests and units
// depend on.
type deployConfig struct {
	CEC map[string]any `toml:"cec"`
	S3  struct {
		S3 map[string]any `toml:"s3"`
	} `toml:"sink"`
	Checkpoint struct {
		Path string `toml:"path"`
	} `toml:"checkpoint"`
	Metrics struct {
		Listen         string `toml:"listen"`
		PushgatewayURL string `toml:"pushgateway_url"`
	} `toml:"metrics"`
	Shutdown struct {
		Timeout string `toml:"timeout"`
	} `toml:"shutdown"`
}

func readDeployConfig(t *testing.T, rel string) deployConfig {
	t.Helper()
	var c deployConfig
	if err := toml.Unmarshal(readDeploy(t, rel), &c); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return c
}

// callbackListen is cec.callback_listen.
func (c deployConfig) callbackListen() string {
	s, _ := c.CEC["callback_listen"].(string)
	return s
}

// shutdownTimeout is shutdown.timeout of a deploy config (25s by default).
func (c deployConfig) shutdownTimeout(t *testing.T) time.Duration {
	t.Helper()
	if c.Shutdown.Timeout == "" {
		return 25 * time.Second
	}
	d, err := time.ParseDuration(c.Shutdown.Timeout)
	if err != nil {
		t.Fatalf("shutdown.timeout: %v", err)
	}
	return d
}

// secretFiles returns the values of the secret *_file keys of the config.
func (c deployConfig) secretFiles() []string {
	var out []string
	for _, k := range []struct {
		m   map[string]any
		key string
	}{
		{c.CEC, "sk_file"}, {c.CEC, "api_password_file"},
		{c.S3.S3, "secret_key_file"}, {c.S3.S3, "phone_hmac_key_file"},
	} {
		if s, ok := k.m[k.key].(string); ok && s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// checkPod applies the restricted Pod Security Standard and the archiver's own
// requirements to a pod spec.
func checkPod(t *testing.T, spec podSpec, cfg deployConfig, shutdown time.Duration) {
	t.Helper()
	if !isFalse(spec.AutomountServiceAccountToken) {
		t.Error("automountServiceAccountToken must be false")
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown+telemetry.PushTimeout {
		t.Errorf("terminationGracePeriodSeconds must exceed shutdown.timeout (%s) plus the push timeout (%s)", shutdown, telemetry.PushTimeout)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("host namespaces are not allowed")
	}
	vols := map[string]int{}
	for i, v := range spec.Volumes {
		vols[v.Name] = i
		if v.HostPath != nil {
			t.Errorf("volume %s: hostPath is not allowed", v.Name)
		}
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		sc, psc := c.SecurityContext, spec.SecurityContext
		if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot must be true", c.Name)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid == nil || *uid != 65532 {
			t.Errorf("%s: runAsUser must be 65532", c.Name)
		}
		if !isFalse(sc.AllowPrivilegeEscalation) {
			t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
		}
		if isTrue(sc.Privileged) {
			t.Errorf("%s: privileged", c.Name)
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Errorf("%s: readOnlyRootFilesystem must be true", c.Name)
		}
		if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none (drop %v, add %v)", c.Name, sc.Capabilities.Drop, sc.Capabilities.Add)
		}
		seccomp := sc.SeccompProfile.Type
		if seccomp == "" {
			seccomp = psc.SeccompProfile.Type
		}
		if seccomp != "RuntimeDefault" {
			t.Errorf("%s: seccompProfile.type = %q, want RuntimeDefault", c.Name, seccomp)
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" || c.Resources.Requests["cpu"] == "" {
			t.Errorf("%s: memory requests and limits and a cpu request are required", c.Name)
		}
		if _, port, ok := strings.Cut(cfg.callbackListen(), ":"); ok && !slices.ContainsFunc(c.Ports, func(p containerPort) bool {
			return p.Name == "callback" && strconv.Itoa(p.ContainerPort) == port
		}) {
			t.Errorf("%s: no container port named callback on %s (cec.callback_listen)", c.Name, port)
		}
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m.Name
		}
		if i, ok := vols[mounts["/tmp"]]; !ok || spec.Volumes[i].EmptyDir == nil {
			t.Errorf("%s: /tmp must be an emptyDir volume", c.Name)
		}
		if i, ok := vols[mounts["/var/lib/archiver"]]; !ok || spec.Volumes[i].PVC == nil || spec.Volumes[i].PVC.ClaimName != "archiver-state" {
			t.Errorf("%s: /var/lib/archiver must be the PVC archiver-state", c.Name)
		}
		if i, ok := vols[mounts["/etc/archiver"]]; !ok || spec.Volumes[i].ConfigMap == nil || spec.Volumes[i].ConfigMap.Name != "archiver-config" {
			t.Errorf("%s: /etc/archiver must be the ConfigMap archiver-config", c.Name)
		}
		if i, ok := vols[mounts["/run/secrets/archiver"]]; !ok || spec.Volumes[i].Secret == nil || spec.Volumes[i].Secret.SecretName != "archiver-secrets" {
			t.Errorf("%s: /run/secrets/archiver must be the Secret archiver-secrets", c.Name)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	docs := k8sDocs(t)
	cfg := readDeployConfig(t, "k8s/config.toml")
	shutdown := cfg.shutdownTimeout(t)
	byKind := map[string][]k8sDoc{}

	t.Run("every document is an object", func(t *testing.T) {
		for _, d := range docs {
			var meta struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			}
			redecode(t, d.raw, &meta)
			if meta.APIVersion == "" || meta.Kind == "" || meta.Metadata.Name == "" {
				t.Errorf("%s: a document lacks apiVersion, kind or metadata.name (%q %q %q)", d.file, meta.APIVersion, meta.Kind, meta.Metadata.Name)
			}
			byKind[meta.Kind] = append(byKind[meta.Kind], d)
		}
		for _, k := range []string{"Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "CronJob", "Deployment", "NetworkPolicy", "Kustomization"} {
			if len(byKind[k]) != 1 {
				t.Errorf("want one %s, got %d", k, len(byKind[k]))
			}
		}
		if len(byKind["Service"]) != 2 {
			t.Errorf("want two Services (metrics, callback), got %d", len(byKind["Service"]))
		}
	})
	one := func(t *testing.T, kind string, out any) {
		t.Helper()
		if len(byKind[kind]) != 1 {
			t.Fatalf("want one %s", kind)
		}
		redecode(t, byKind[kind][0].raw, out)
	}

	t.Run("CronJob", func(t *testing.T) {
		var cj struct {
			Spec struct {
				ConcurrencyPolicy       string `yaml:"concurrencyPolicy"`
				StartingDeadlineSeconds *int   `yaml:"startingDeadlineSeconds"`
				JobTemplate             struct {
					Spec struct {
						BackoffLimit          *int `yaml:"backoffLimit"`
						ActiveDeadlineSeconds *int `yaml:"activeDeadlineSeconds"`
						Template              struct {
							Spec podSpec `yaml:"spec"`
						} `yaml:"template"`
					} `yaml:"spec"`
				} `yaml:"jobTemplate"`
			} `yaml:"spec"`
		}
		one(t, "CronJob", &cj)
		if cj.Spec.ConcurrencyPolicy != "Forbid" {
			t.Errorf("concurrencyPolicy = %q, want Forbid", cj.Spec.ConcurrencyPolicy)
		}
		if d := cj.Spec.StartingDeadlineSeconds; d == nil || *d <= 0 {
			t.Error("startingDeadlineSeconds is required")
		}
		js := cj.Spec.JobTemplate.Spec
		if js.BackoffLimit == nil || js.ActiveDeadlineSeconds == nil {
			t.Error("backoffLimit and activeDeadlineSeconds are required")
		}
		checkPod(t, js.Template.Spec, cfg, shutdown)
		if c := js.Template.Spec.Containers; len(c) == 1 && (len(c[0].Args) == 0 || c[0].Args[0] != "once") {
			t.Errorf("args = %v, want archiver once", c[0].Args)
		}
		if cfg.Metrics.PushgatewayURL == "" {
			t.Error("config.toml: metrics.pushgateway_url is empty, so the CronJob's metrics go nowhere")
		}
	})

	t.Run("Deployment", func(t *testing.T) {
		var dep struct {
			Spec struct {
				Replicas *int `yaml:"replicas"`
				Strategy struct {
					Type string `yaml:"type"`
				} `yaml:"strategy"`
				Template struct {
					Spec podSpec `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		one(t, "Deployment", &dep)
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
			t.Error("replicas must be 1: one process per state file")
		}
		if dep.Spec.Strategy.Type != "Recreate" {
			t.Errorf("strategy = %q, want Recreate", dep.Spec.Strategy.Type)
		}
		spec := dep.Spec.Template.Spec
		checkPod(t, spec, cfg, shutdown)
		if len(spec.Containers) != 1 {
			return
		}
		c := spec.Containers[0]
		if len(c.Args) == 0 || c.Args[0] != "run" {
			t.Errorf("args = %v, want archiver run", c.Args)
		}
		if !slices.ContainsFunc(c.Ports, func(p containerPort) bool { return p.Name == "metrics" && p.ContainerPort == 10108 }) {
			t.Error("no container port named metrics on 10108")
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if env["ARCHIVER_METRICS_LISTEN"] != ":10108" {
			t.Errorf("ARCHIVER_METRICS_LISTEN = %q, want \":10108\"", env["ARCHIVER_METRICS_LISTEN"])
		}
		for name, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != "metrics" {
				t.Errorf("%s probe must GET /healthz on port metrics", name)
			}
		}
	})

	t.Run("Namespace enforces restricted", func(t *testing.T) {
		var ns struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
		}
		one(t, "Namespace", &ns)
		if got := ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
			t.Errorf("pod-security enforce label = %q, want restricted", got)
		}
	})

	t.Run("PVC is ReadWriteOnce", func(t *testing.T) {
		var pvc struct {
			Metadata struct{ Name string } `yaml:"metadata"`
			Spec     struct {
				AccessModes []string `yaml:"accessModes"`
			} `yaml:"spec"`
		}
		one(t, "PersistentVolumeClaim", &pvc)
		if !slices.Equal(pvc.Spec.AccessModes, []string{"ReadWriteOnce"}) {
			t.Errorf("accessModes = %v, want [ReadWriteOnce]", pvc.Spec.AccessModes)
		}
		if cfg.Checkpoint.Path != "/var/lib/archiver/state.db" {
			t.Errorf("config.toml: checkpoint.path = %q, want /var/lib/archiver/state.db (on the PVC)", cfg.Checkpoint.Path)
		}
	})

	t.Run("ConfigMap equals config.toml", func(t *testing.T) {
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		one(t, "ConfigMap", &cm)
		if cm.Data["config.toml"] != string(readDeploy(t, "k8s/config.toml")) {
			t.Error(`configmap.yaml data["config.toml"] differs from deploy/k8s/config.toml`)
		}
	})

	t.Run("Secret holds placeholders for every secret file", func(t *testing.T) {
		var sec struct {
			StringData map[string]string `yaml:"stringData"`
			Data       map[string]string `yaml:"data"`
		}
		one(t, "Secret", &sec)
		if len(sec.Data) > 0 {
			t.Error("secret.example.yaml must use stringData placeholders, not data")
		}
		for k, v := range sec.StringData {
			if !strings.HasPrefix(v, "REPLACE-") {
				t.Errorf("stringData.%s is not a REPLACE- placeholder", k)
			}
		}
		files := cfg.secretFiles()
		if len(files) == 0 {
			t.Fatal("config.toml names no secret files")
		}
		for _, f := range files {
			key, ok := strings.CutPrefix(f, "/run/secrets/archiver/")
			if !ok || sec.StringData[key] == "" {
				t.Errorf("config.toml secret file %s is not a key of the Secret mounted at /run/secrets/archiver", f)
			}
		}
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		var np struct {
			Spec struct {
				PolicyTypes []string `yaml:"policyTypes"`
				Egress      []struct {
					Ports []struct {
						Port     any    `yaml:"port"`
						Protocol string `yaml:"protocol"`
					} `yaml:"ports"`
				} `yaml:"egress"`
			} `yaml:"spec"`
		}
		one(t, "NetworkPolicy", &np)
		if !slices.Contains(np.Spec.PolicyTypes, "Egress") {
			t.Error("policyTypes lacks Egress")
		}
		ports := map[string]bool{}
		for _, e := range np.Spec.Egress {
			for _, p := range e.Ports {
				ports[p.Protocol+"/"+toString(p.Port)] = true
			}
		}
		for _, want := range []string{"TCP/443", "UDP/53", "TCP/53"} {
			if !ports[want] {
				t.Errorf("egress does not allow %s", want)
			}
		}
	})

	t.Run("Kustomization", func(t *testing.T) {
		var k struct {
			Resources []string `yaml:"resources"`
		}
		one(t, "Kustomization", &k)
		for _, r := range k.Resources {
			if _, err := os.Stat(filepath.Join(deployDir, "k8s", r)); err != nil {
				t.Errorf("resource %s: %v", r, err)
			}
		}
		if slices.Contains(k.Resources, "cronjob.yaml") == slices.Contains(k.Resources, "deployment.yaml") {
			t.Error("list exactly one of cronjob.yaml and deployment.yaml: one process per state file")
		}
		if slices.Contains(k.Resources, "secret.example.yaml") {
			t.Error("secret.example.yaml holds placeholders and must not be applied")
		}
	})
}

func toString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// unit is a parsed systemd unit file: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, rel string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readDeploy(t, rel)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", rel, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// last returns the effective (last) value of a key.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// systemdDuration parses the subset of systemd time spans the units use.
func systemdDuration(s string) (time.Duration, error) {
	return time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(s, "min", "m"), " ", ""))
}

// hardening is reliability.md §3.11: directive → required value.
func hardening() map[string]string {
	return map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"CapabilityBoundingSet":   "",
		"UMask":                   "0077",
		"DynamicUser":             "yes",
		"StateDirectory":          "archiver",
	}
}

func TestSystemdUnits(t *testing.T) {
	cfg := readDeployConfig(t, "systemd/config.toml")
	shutdown := cfg.shutdownTimeout(t)
	if cfg.Checkpoint.Path != "/var/lib/archiver/state.db" {
		t.Errorf("systemd/config.toml: checkpoint.path = %q, want /var/lib/archiver/state.db", cfg.Checkpoint.Path)
	}
	for _, tc := range []struct {
		file, verb string
	}{
		{"systemd/archiver.service", "run"},
		{"systemd/archiver-once.service", "once"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			u := parseUnit(t, tc.file)
			for k, want := range hardening() {
				if got, ok := u.last("Service", k); !ok || got != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
			if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
				t.Errorf("SystemCallFilter %v lacks @system-service", u["Service"]["SystemCallFilter"])
			}
			if v, _ := u.last("Service", "MemoryMax"); v == "" {
				t.Error("MemoryMax is required")
			}
			stop, _ := u.last("Service", "TimeoutStopSec")
			if d, err := systemdDuration(stop); err != nil || d <= shutdown+telemetry.PushTimeout {
				t.Errorf("TimeoutStopSec=%q must exceed shutdown.timeout (%s) plus the push timeout (%s)", stop, shutdown, telemetry.PushTimeout)
			}
			start, _ := u.last("Service", "ExecStart")
			if !strings.Contains(start, "archiver "+tc.verb+" --config /etc/archiver/config.toml") {
				t.Errorf("ExecStart=%q, want archiver %s --config /etc/archiver/config.toml", start, tc.verb)
			}
			creds := map[string]bool{}
			for _, lc := range u["Service"]["LoadCredential"] {
				name, _, _ := strings.Cut(lc, ":")
				creds[name] = true
			}
			if len(creds) == 0 {
				t.Error("no LoadCredential=")
			}
			// Every secret file of the (archiver.service) config is a credential of the unit.
			for _, f := range cfg.secretFiles() {
				name, ok := strings.CutPrefix(f, "/run/credentials/archiver.service/")
				if !ok || !creds[name] {
					t.Errorf("config secret file %s is not a LoadCredential= of the unit", f)
				}
			}
			switch tc.verb {
			case "run":
				if v, _ := u.last("Service", "Restart"); v != "on-failure" {
					t.Errorf("Restart=%q, want on-failure", v)
				}
			case "once":
				if v, _ := u.last("Service", "Type"); v != "oneshot" {
					t.Errorf("Type=%q, want oneshot", v)
				}
				if v, _ := u.last("Service", "TimeoutStartSec"); v == "" {
					t.Error("TimeoutStartSec (the run deadline) is required")
				}
			}
		})
	}
	t.Run("archiver-once.timer", func(t *testing.T) {
		u := parseUnit(t, "systemd/archiver-once.timer")
		if v, _ := u.last("Timer", "Persistent"); v != "true" {
			t.Errorf("Persistent=%q, want true", v)
		}
		if v, _ := u.last("Timer", "OnCalendar"); v == "" {
			t.Error("OnCalendar is required")
		}
		if v, _ := u.last("Timer", "Unit"); v != "archiver-once.service" {
			t.Errorf("Unit=%q, want archiver-once.service", v)
		}
	})
}

func TestOperationsDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	t.Run("every metric is documented", func(t *testing.T) {
		for _, n := range telemetry.Names() {
			if !strings.Contains(doc, "| `"+n+"` |") {
				t.Errorf("docs/operations.md has no metrics table row for %s", n)
			}
		}
	})
	t.Run("every documented metric exists", func(t *testing.T) {
		checkMetricNames(t, "docs/operations.md", []string{doc})
	})
	t.Run("every alert is documented", func(t *testing.T) {
		var rf ruleFile
		if err := yaml.Unmarshal(readDeploy(t, "prometheus/alerts.yml"), &rf); err != nil {
			t.Fatal(err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if !strings.Contains(doc, "| `"+r.Alert+"` |") {
					t.Errorf("docs/operations.md has no alerts table row for %s", r.Alert)
				}
			}
		}
	})
}
