package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v3"
)

// The kustomizations under deploy/: the SQLite base and the two PostgreSQL
// variants built on it (the overlay sits next to the base, not under it:
// kustomize refuses a base directory that contains its overlay).
const (
	k8sBase     = "k8s"
	k8sPostgres = "k8s-postgres"
	k8sPGCron   = "k8s-postgres/cronjob"
	// pgConfig is the PostgreSQL variants' config.toml.
	pgConfig = "k8s-postgres/component/config.toml"
	// secretDir is where the pods mount the Secret archiver-secrets.
	secretDir = "/run/secrets/archiver"
)

func deployPath(rel string) string {
	return filepath.Join("..", "..", "deploy", filepath.FromSlash(rel))
}

// kustomize renders the kustomization in deploy/rel with kubectl's built-in
// kustomize, as `kubectl apply -k` would, and decodes the result strictly.
// Without kubectl the test skips, visibly: .ci/required-tests makes that a
// failure where the tools must be.
func kustomize(t *testing.T, rel string) objects {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("kubectl not found (%v): the kustomizations cannot be rendered", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", deployPath(rel))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/%s: %v\n%s", rel, err, stderr.String())
	}
	var o objects
	decodeObjects(t, "kubectl kustomize deploy/"+rel, out, &o)
	return o
}

// readObjects strictly decodes the manifests of the file deploy/rel.
func readObjects(t *testing.T, rel string) objects {
	t.Helper()
	b, err := os.ReadFile(deployPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	var o objects
	decodeObjects(t, rel, b, &o)
	return o
}

// TestManifests_Strict decodes every manifest under deploy/k8s and
// deploy/k8s-postgres, and what each kustomization renders, into the
// objects of k8sschema_test.go, failing on any field they do not have.
func TestManifests_Strict(t *testing.T) {
	for _, dir := range []string{k8sBase, k8sPostgres} {
		err := filepath.WalkDir(deployPath(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
				return err
			}
			rel, err := filepath.Rel(deployPath(""), p)
			if err != nil {
				return err
			}
			t.Run(filepath.ToSlash(rel), func(t *testing.T) { readObjects(t, filepath.ToSlash(rel)) })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{k8sBase, k8sPostgres, k8sPGCron} {
		t.Run("kustomize "+k, func(t *testing.T) { kustomize(t, k) })
	}
}

// pods returns the pod specs of o's Deployments and CronJobs, by kind/name.
func pods(o objects) map[string]k8sPodSpec {
	m := map[string]k8sPodSpec{}
	for _, d := range o.Deployments {
		m["Deployment/"+d.Metadata.Name] = d.Spec.Template.Spec
	}
	for _, c := range o.CronJobs {
		m["CronJob/"+c.Metadata.Name] = c.Spec.JobTemplate.Spec.Template.Spec
	}
	return m
}

// selects reports whether a selector's labels are all among labels.
func selects(sel labelSelector, labels map[string]string) bool {
	if len(sel.MatchLabels) == 0 {
		return false
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// configOf returns the config.toml of the ConfigMap archiver-config.
func configOf(t *testing.T, o objects) string {
	t.Helper()
	for _, cm := range o.ConfigMaps {
		if cm.Metadata.Name == "archiver-config" {
			return cm.Data["config.toml"]
		}
	}
	t.Fatal("no ConfigMap archiver-config")
	return ""
}

// TestPostgresManifests checks the PostgreSQL variants as kubectl applies
// them: the Deployment of three replicas spread over nodes with a
// disruption budget, the CronJob whose passes may overlap, no volume, the
// DSN only as a file of the Secret, egress to the database, the restricted
// pod profile, and the ConfigMap holding the PostgreSQL config.toml.
func TestPostgresManifests(t *testing.T) {
	base, dep, cron := kustomize(t, k8sBase), kustomize(t, k8sPostgres), kustomize(t, k8sPGCron)
	variants := map[string]objects{k8sPostgres: dep, k8sPGCron: cron}

	t.Run("Deployment of three replicas spread over nodes", func(t *testing.T) {
		if len(dep.Deployments) != 1 || len(dep.CronJobs) != 0 {
			t.Fatalf("%d Deployments and %d CronJobs, want the Deployment alone", len(dep.Deployments), len(dep.CronJobs))
		}
		d := dep.Deployments[0]
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			t.Errorf("replicas = %s, want 3", toString(d.Spec.Replicas))
		}
		if d.Spec.Strategy.Type != "RollingUpdate" {
			t.Errorf("strategy %q, want RollingUpdate: replicas share the state, no need to stop all first", d.Spec.Strategy.Type)
		}
		ps := d.Spec.Template.Spec
		if len(ps.Containers) != 1 || len(ps.Containers[0].Args) == 0 || ps.Containers[0].Args[0] != "run" {
			t.Errorf("want one container running archiver run")
		}
		spread := slices.ContainsFunc(ps.TopologySpreadConstraints, func(c topologySpread) bool {
			return c.TopologyKey == "kubernetes.io/hostname" && c.MaxSkew == 1 && c.WhenUnsatisfiable == "DoNotSchedule" &&
				selects(c.LabelSelector, d.Spec.Template.Metadata.Labels)
		})
		if !spread {
			t.Error("no topology spread constraint keeps the pods on different nodes (kubernetes.io/hostname, maxSkew 1, DoNotSchedule, selecting the pods)")
		}
		if !selects(d.Spec.Selector, d.Spec.Template.Metadata.Labels) {
			t.Error("the Deployment's selector does not select its pods")
		}
	})

	t.Run("PodDisruptionBudget selects the Deployment's pods", func(t *testing.T) {
		if len(dep.PDBs) != 1 || len(dep.Deployments) != 1 {
			t.Fatalf("%d PodDisruptionBudgets, %d Deployments; want one each", len(dep.PDBs), len(dep.Deployments))
		}
		pdb, d := dep.PDBs[0], dep.Deployments[0]
		if !selects(pdb.Spec.Selector, d.Spec.Template.Metadata.Labels) {
			t.Errorf("selector %v does not select the pods (labels %v)", pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
		}
		if pdb.Metadata.Namespace != d.Metadata.Namespace {
			t.Errorf("namespace %q, the Deployment's is %q", pdb.Metadata.Namespace, d.Metadata.Namespace)
		}
		minAvail, maxUnavail := toString(pdb.Spec.MinAvailable), toString(pdb.Spec.MaxUnavailable)
		if !(maxUnavail == "1" && minAvail == "null") && !(minAvail == "2" && maxUnavail == "null") {
			t.Errorf("minAvailable %s, maxUnavailable %s: want maxUnavailable 1 or minAvailable 2 (of 3)", minAvail, maxUnavail)
		}
	})

	for name, o := range variants {
		t.Run("no volume claim in "+name, func(t *testing.T) {
			if len(o.PVCs) > 0 {
				t.Errorf("%d PersistentVolumeClaims: the state is in the database", len(o.PVCs))
			}
			if len(pods(o)) != 1 {
				t.Errorf("%d workloads, want one", len(pods(o)))
			}
			for w, ps := range pods(o) {
				for _, v := range ps.Volumes {
					if v.PersistentVolumeClaim != nil {
						t.Errorf("%s: volume %s claims %s", w, v.Name, v.PersistentVolumeClaim.ClaimName)
					}
				}
				for _, c := range ps.Containers {
					for _, m := range c.VolumeMounts {
						if m.MountPath == "/var/lib/archiver" {
							t.Errorf("%s: %s mounts %s at the SQLite state directory", w, c.Name, m.Name)
						}
					}
				}
			}
		})
	}

	t.Run("DSN only as a file of the Secret", func(t *testing.T) {
		example := readObjects(t, k8sPostgres+"/secret.example.yaml")
		if len(example.Secrets) != 1 {
			t.Fatalf("secret.example.yaml: %d Secrets", len(example.Secrets))
		}
		for name, o := range variants {
			text := configOf(t, o)
			var raw struct {
				Checkpoint map[string]any `toml:"checkpoint"`
			}
			if err := toml.Unmarshal([]byte(text), &raw); err != nil {
				t.Fatalf("%s: config.toml: %v", name, err)
			}
			if _, ok := raw.Checkpoint["dsn"]; ok {
				t.Errorf("%s: config.toml sets checkpoint.dsn: the DSN holds a password, use checkpoint.dsn_file", name)
			}
			file, _ := raw.Checkpoint["dsn_file"].(string)
			key, ok := strings.CutPrefix(file, secretDir+"/")
			if !ok || strings.Contains(key, "/") || !strings.HasPrefix(example.Secrets[0].StringData[key], "REPLACE-") {
				t.Errorf("%s: checkpoint.dsn_file %q is not a key of the Secret at %s (secret.example.yaml)", name, file, secretDir)
			}
			if len(o.Secrets) > 0 {
				t.Errorf("%s: renders a Secret: the kustomization must not replace the real one", name)
			}
			for w, ps := range pods(o) {
				vols := map[string]k8sVolume{}
				for _, v := range ps.Volumes {
					vols[v.Name] = v
				}
				for _, c := range ps.Containers {
					mounted := slices.ContainsFunc(c.VolumeMounts, func(m volumeMount) bool {
						v := vols[m.Name]
						return m.MountPath == secretDir && m.ReadOnly && v.Secret != nil && v.Secret.SecretName == example.Secrets[0].Metadata.Name
					})
					if !mounted {
						t.Errorf("%s: %s: the Secret %s is not mounted read-only at %s", w, c.Name, example.Secrets[0].Metadata.Name, secretDir)
					}
					if len(c.EnvFrom) > 0 {
						t.Errorf("%s: %s: envFrom", w, c.Name)
					}
					for _, e := range c.Env {
						if strings.HasPrefix(e.Name, "ARCHIVER_CHECKPOINT_") || strings.HasPrefix(e.Name, "PG") ||
							e.ValueFrom != nil && (e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ConfigMapKeyRef != nil) {
							t.Errorf("%s: %s: environment variable %s: the DSN comes from its file only", w, c.Name, e.Name)
						}
					}
					for _, s := range append(append([]string{}, c.Args...), c.Command...) {
						if looksLikeDSN(s) {
							t.Errorf("%s: %s: an argument looks like a DSN", w, c.Name)
						}
					}
					for _, e := range c.Env {
						if looksLikeDSN(e.Value) {
							t.Errorf("%s: %s: %s looks like a DSN", w, c.Name, e.Name)
						}
					}
				}
			}
		}
	})

	t.Run("concurrencyPolicy Allow only in the PostgreSQL CronJob", func(t *testing.T) {
		for name, o := range map[string]objects{k8sBase: base, k8sPGCron: cron} {
			want := "Forbid" // one process per SQLite state file
			if name == k8sPGCron {
				want = "Allow" // overlapping passes share the database safely
			}
			if len(o.CronJobs) != 1 {
				t.Fatalf("%s: %d CronJobs", name, len(o.CronJobs))
			}
			if got := o.CronJobs[0].Spec.ConcurrencyPolicy; got != want {
				t.Errorf("%s: concurrencyPolicy %q, want %q", name, got, want)
			}
		}
		if len(cron.Deployments) != 0 {
			t.Errorf("%s: renders a Deployment as well", k8sPGCron)
		}
	})

	t.Run("egress to the database", func(t *testing.T) {
		for name, o := range variants {
			if len(o.NetworkPolicies) != 1 {
				t.Fatalf("%s: %d NetworkPolicies", name, len(o.NetworkPolicies))
			}
			np := o.NetworkPolicies[0]
			ok := false
			for _, e := range np.Spec.Egress {
				for _, p := range e.Ports {
					ok = ok || p.Protocol == "TCP" && toString(p.Port) == "5432"
				}
			}
			if !ok || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
				t.Errorf("%s: the NetworkPolicy allows no egress to TCP 5432 (PostgreSQL)", name)
			}
			for w := range pods(o) {
				if !selects(np.Spec.PodSelector, podLabels(o, w)) {
					t.Errorf("%s: the NetworkPolicy does not select %s's pods", name, w)
				}
			}
		}
	})

	// That the file loads through internal/config with driver postgres
	// and the DSN from its file is internal/config's TestLoad_DeployConfigs
	// (this module's tools import nothing of the archiver).
	t.Run("the ConfigMap holds the PostgreSQL config.toml", func(t *testing.T) {
		for name, o := range variants {
			b, err := os.ReadFile(deployPath(pgConfig))
			if err != nil {
				t.Fatal(err)
			}
			if configOf(t, o) != string(b) {
				t.Errorf("%s: the ConfigMap's config.toml is not deploy/%s", name, pgConfig)
			}
		}
	})

	t.Run("pods are restricted", func(t *testing.T) {
		var ns k8sNamespace
		if len(dep.Namespaces) == 1 {
			ns = dep.Namespaces[0]
		}
		if ns.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Error("the namespace does not enforce the restricted Pod Security Standard")
		}
		for name, o := range variants {
			for w, ps := range pods(o) {
				checkRestricted(t, name+" "+w, ps, shutdownTimeout(t, pgConfig))
			}
			for _, d := range o.Deployments {
				c := d.Spec.Template.Spec.Containers[0]
				for probe, p := range map[string]*k8sProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
					if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || toString(p.HTTPGet.Port) != "metrics" {
						t.Errorf("%s: %s probe must GET /healthz on port metrics", name, probe)
					}
				}
			}
		}
	})

	t.Run("in step with the base", func(t *testing.T) {
		checkInStep(t, base, dep, cron)
	})
}

// looksLikeDSN reports whether s looks like a PostgreSQL connection string.
func looksLikeDSN(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "postgres://") || strings.Contains(s, "postgresql://") ||
		strings.Contains(s, "password=") || strings.Contains(s, "dbname=")
}

// podLabels returns the pod template labels of the workload kind/name.
func podLabels(o objects, workload string) map[string]string {
	for _, d := range o.Deployments {
		if "Deployment/"+d.Metadata.Name == workload {
			return d.Spec.Template.Metadata.Labels
		}
	}
	for _, c := range o.CronJobs {
		if "CronJob/"+c.Metadata.Name == workload {
			return c.Spec.JobTemplate.Spec.Template.Metadata.Labels
		}
	}
	return nil
}

// checkRestricted checks a pod spec against the restricted Pod Security
// Standard and the grace-period rule (longer than shutdown.timeout).
func checkRestricted(t *testing.T, name string, ps k8sPodSpec, shutdown time.Duration) {
	t.Helper()
	isTrue := func(b *bool) bool { return b != nil && *b }
	isFalse := func(b *bool) bool { return b != nil && !*b }
	if !isFalse(ps.AutomountServiceAccountToken) {
		t.Errorf("%s: automountServiceAccountToken must be false", name)
	}
	if g := ps.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds must exceed shutdown.timeout (%s)", name, shutdown)
	}
	psc := ps.SecurityContext
	for _, c := range append(append([]k8sContainer{}, ps.InitContainers...), ps.Containers...) {
		sc := c.SecurityContext
		if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
			t.Errorf("%s: %s: runAsNonRoot must be true", name, c.Name)
		}
		if uid := cmpOr(sc.RunAsUser, psc.RunAsUser); uid == nil || *uid != 65532 {
			t.Errorf("%s: %s: runAsUser must be 65532, the image's user", name, c.Name)
		}
		if !isFalse(sc.AllowPrivilegeEscalation) || isTrue(sc.Privileged) || !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Errorf("%s: %s: allowPrivilegeEscalation and privileged must be false, readOnlyRootFilesystem true", name, c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: %s: capabilities must drop ALL and add none", name, c.Name)
		}
		if p := cmpOr(sc.SeccompProfile, psc.SeccompProfile); p == nil || p.Type != "RuntimeDefault" {
			t.Errorf("%s: %s: seccompProfile must be RuntimeDefault", name, c.Name)
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" || c.Resources.Requests["cpu"] == "" {
			t.Errorf("%s: %s: memory requests and limits and a cpu request are required", name, c.Name)
		}
	}
}

// cmpOr returns a if it is set, else b.
func cmpOr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// toString prints a scalar YAML value as YAML does ("null" when unset).
func toString(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

// checkInStep checks that the PostgreSQL variants differ from the base only
// where they mean to: deployment.yaml is ../k8s/deployment.yaml but for the
// replicas, the strategy, the spread and the state volume; the rendered
// CronJob is the base's but for concurrencyPolicy and the state volume;
// config.toml is the base's but for [checkpoint]; the image and the Secret's
// keys are the base's.
func checkInStep(t *testing.T, base, dep, cron objects) {
	t.Helper()
	loose := func(rel string) []map[string]any {
		t.Helper()
		b, err := os.ReadFile(deployPath(rel))
		if err != nil {
			t.Fatal(err)
		}
		var docs []map[string]any
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				break
			}
			docs = append(docs, m)
		}
		return docs
	}
	same := func(what string, a, b any) {
		t.Helper()
		if !reflect.DeepEqual(a, b) {
			ya, _ := yaml.Marshal(a)
			yb, _ := yaml.Marshal(b)
			t.Errorf("%s differ beyond what the PostgreSQL variant changes:\n--- base\n%s\n--- postgres\n%s", what, ya, yb)
		}
	}

	bd, pd := loose(k8sBase+"/deployment.yaml"), loose(k8sPostgres+"/deployment.yaml")
	if len(bd) != len(pd) || len(bd) == 0 {
		t.Fatalf("deployment.yaml: %d documents in the base, %d in the overlay", len(bd), len(pd))
	}
	for i := range bd {
		if bd[i]["kind"] == "Deployment" {
			drop(bd[i], "spec.replicas", "spec.strategy")
			drop(pd[i], "spec.replicas", "spec.strategy", "spec.template.spec.topologySpreadConstraints")
			dropState(bd[i], "spec.template.spec")
		}
		same("deployment.yaml document "+bd[i]["kind"].(string), bd[i], pd[i])
	}

	if len(base.CronJobs) == 1 && len(cron.CronJobs) == 1 {
		var bc, pc map[string]any
		reencode(t, base.CronJobs[0], &bc)
		reencode(t, cron.CronJobs[0], &pc)
		drop(bc, "spec.concurrencyPolicy")
		drop(pc, "spec.concurrencyPolicy")
		dropState(bc, "spec.jobTemplate.spec.template.spec")
		same("the rendered CronJobs", bc, pc)
	} else {
		t.Errorf("CronJobs: %d in the base, %d in %s", len(base.CronJobs), len(cron.CronJobs), k8sPGCron)
	}

	var bt, pt map[string]any
	for rel, m := range map[string]*map[string]any{k8sBase + "/config.toml": &bt, pgConfig: &pt} {
		b, err := os.ReadFile(deployPath(rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := toml.Unmarshal(b, m); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		delete(*m, "checkpoint")
	}
	same("config.toml (but [checkpoint])", bt, pt)

	var bk, pk []kustomization
	for rel, k := range map[string]*[]kustomization{k8sBase: &bk, k8sPostgres: &pk} {
		*k = readObjects(t, rel+"/kustomization.yaml").Kustomizations
	}
	if len(bk) == 1 && len(pk) == 1 {
		same("kustomization.yaml images", bk[0].Images, pk[0].Images)
	}

	bs, ps := readObjects(t, k8sBase+"/secret.example.yaml").Secrets, readObjects(t, k8sPostgres+"/secret.example.yaml").Secrets
	if len(bs) == 1 && len(ps) == 1 {
		for k := range bs[0].StringData {
			if _, ok := ps[0].StringData[k]; !ok {
				t.Errorf("secret.example.yaml: the base's key %s is missing from the PostgreSQL one", k)
			}
		}
		same("the example Secrets' names", bs[0].Metadata, ps[0].Metadata)
	}
	if len(dep.Deployments) == 1 && len(base.CronJobs) == 1 {
		img := dep.Deployments[0].Spec.Template.Spec.Containers[0].Image
		if want := base.CronJobs[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image; img != want {
			t.Errorf("the rendered Deployment runs %s, the base %s", img, want)
		}
	}
}

// reencode converts v into out through YAML.
func reencode(t *testing.T, v, out any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// at returns the map at the dotted path p of m, or nil.
func at(m map[string]any, p string) map[string]any {
	for _, k := range strings.Split(p, ".") {
		m, _ = m[k].(map[string]any)
	}
	return m
}

// drop deletes the dotted paths from m.
func drop(m map[string]any, paths ...string) {
	for _, p := range paths {
		parent, key := m, p
		if i := strings.LastIndex(p, "."); i >= 0 {
			parent, key = at(m, p[:i]), p[i+1:]
		}
		delete(parent, key) // a nil parent: nothing to delete
	}
}

// dropState removes the SQLite state volume and its mounts from the pod
// spec at the dotted path p of m.
func dropState(m map[string]any, p string) {
	ps := at(m, p)
	if ps == nil {
		return
	}
	notState := func(list any) []any {
		var out []any
		for _, v := range list.([]any) {
			if e, _ := v.(map[string]any); e["name"] != "state" {
				out = append(out, v)
			}
		}
		return out
	}
	if v, ok := ps["volumes"]; ok {
		ps["volumes"] = notState(v)
	}
	cs, _ := ps["containers"].([]any)
	for _, c := range cs {
		if c, _ := c.(map[string]any); c != nil {
			if v, ok := c["volumeMounts"]; ok {
				c["volumeMounts"] = notState(v)
			}
		}
	}
}

// shutdownTimeout reads shutdown.timeout from a deploy config.toml (25s,
// the default, when absent).
func shutdownTimeout(t *testing.T, rel string) time.Duration {
	t.Helper()
	b, err := os.ReadFile(deployPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Shutdown struct {
			Timeout string `toml:"timeout"`
		} `toml:"shutdown"`
	}
	if err := toml.Unmarshal(b, &c); err != nil {
		t.Fatalf("deploy/%s: %v", rel, err)
	}
	if c.Shutdown.Timeout == "" {
		return 25 * time.Second
	}
	d, err := time.ParseDuration(c.Shutdown.Timeout)
	if err != nil {
		t.Fatalf("deploy/%s: shutdown.timeout: %v", rel, err)
	}
	return d
}
