package main

// The Kubernetes objects deploy/ ships, as typed structs with every field the
// manifests may use. They are decoded strictly (yaml.v3 KnownFields): a
// misspelt or misplaced field (`replica:`, `concurrencypolicy:`, a volume
// mount under the pod instead of the container) is an error, where kubectl
// would drop it silently or the API server refuse it at apply time. A field
// the manifests start using is added here.

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"gopkg.in/yaml.v3"
)

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// head is what every object has; the rest is decoded by kind.
type head struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sSecurityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	FSGroup                  *int64 `yaml:"fsGroup"`
	FSGroupChangePolicy      string `yaml:"fsGroupChangePolicy"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type k8sEnvVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		ResourceFieldRef *struct {
			ContainerName string `yaml:"containerName"`
			Resource      string `yaml:"resource"`
		} `yaml:"resourceFieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		ConfigMapKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"configMapKeyRef"`
	} `yaml:"valueFrom"`
}

type k8sContainer struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env       []k8sEnvVar `yaml:"env"`
	EnvFrom   []any       `yaml:"envFrom"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext k8sSecurityContext `yaml:"securityContext"`
	ReadinessProbe  *k8sProbe          `yaml:"readinessProbe"`
	LivenessProbe   *k8sProbe          `yaml:"livenessProbe"`
	VolumeMounts    []volumeMount      `yaml:"volumeMounts"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type topologySpread struct {
	MaxSkew            int           `yaml:"maxSkew"`
	TopologyKey        string        `yaml:"topologyKey"`
	WhenUnsatisfiable  string        `yaml:"whenUnsatisfiable"`
	NodeTaintsPolicy   string        `yaml:"nodeTaintsPolicy"`
	NodeAffinityPolicy string        `yaml:"nodeAffinityPolicy"`
	MinDomains         *int          `yaml:"minDomains"`
	MatchLabelKeys     []string      `yaml:"matchLabelKeys"`
	LabelSelector      labelSelector `yaml:"labelSelector"`
}

type k8sVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int   `yaml:"defaultMode"`
	} `yaml:"secret"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
		Medium    string `yaml:"medium"`
	} `yaml:"emptyDir"`
}

type k8sPodSpec struct {
	RestartPolicy                 string             `yaml:"restartPolicy"`
	AutomountServiceAccountToken  *bool              `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool              `yaml:"enableServiceLinks"`
	TerminationGracePeriodSeconds *int               `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               k8sSecurityContext `yaml:"securityContext"`
	TopologySpreadConstraints     []topologySpread   `yaml:"topologySpreadConstraints"`
	InitContainers                []k8sContainer     `yaml:"initContainers"`
	Containers                    []k8sContainer     `yaml:"containers"`
	Volumes                       []k8sVolume        `yaml:"volumes"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     k8sPodSpec `yaml:"spec"`
}

type k8sDeployment struct {
	head `yaml:",inline"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxSurge       any `yaml:"maxSurge"`
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Template             podTemplate   `yaml:"template"`
	} `yaml:"spec"`
}

type k8sCronJob struct {
	head `yaml:",inline"`
	Spec struct {
		Schedule                   string `yaml:"schedule"`
		TimeZone                   string `yaml:"timeZone"`
		ConcurrencyPolicy          string `yaml:"concurrencyPolicy"`
		StartingDeadlineSeconds    *int   `yaml:"startingDeadlineSeconds"`
		SuccessfulJobsHistoryLimit *int   `yaml:"successfulJobsHistoryLimit"`
		FailedJobsHistoryLimit     *int   `yaml:"failedJobsHistoryLimit"`
		JobTemplate                struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				BackoffLimit     *int `yaml:"backoffLimit"`
				PodFailurePolicy *struct {
					Rules []struct {
						Action      string `yaml:"action"`
						OnExitCodes *struct {
							ContainerName string `yaml:"containerName"`
							Operator      string `yaml:"operator"`
							Values        []int  `yaml:"values"`
						} `yaml:"onExitCodes"`
						OnPodConditions []struct {
							Type string `yaml:"type"`
						} `yaml:"onPodConditions"`
					} `yaml:"rules"`
				} `yaml:"podFailurePolicy"`
				ActiveDeadlineSeconds   *int        `yaml:"activeDeadlineSeconds"`
				TTLSecondsAfterFinished *int        `yaml:"ttlSecondsAfterFinished"`
				Template                podTemplate `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
	} `yaml:"spec"`
}

type k8sPDB struct {
	head `yaml:",inline"`
	Spec struct {
		MinAvailable   any           `yaml:"minAvailable"`
		MaxUnavailable any           `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type networkPolicyPeer struct {
	NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
	PodSelector       *labelSelector `yaml:"podSelector"`
	IPBlock           *struct {
		CIDR   string   `yaml:"cidr"`
		Except []string `yaml:"except"`
	} `yaml:"ipBlock"`
}

type networkPolicyPort struct {
	Port     any    `yaml:"port"`
	Protocol string `yaml:"protocol"`
}

type k8sNetworkPolicy struct {
	head `yaml:",inline"`
	Spec struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From  []networkPolicyPeer `yaml:"from"`
			Ports []networkPolicyPort `yaml:"ports"`
		} `yaml:"ingress"`
		Egress []struct {
			To    []networkPolicyPeer `yaml:"to"`
			Ports []networkPolicyPort `yaml:"ports"`
		} `yaml:"egress"`
	} `yaml:"spec"`
}

type k8sService struct {
	head `yaml:",inline"`
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sConfigMap struct {
	head `yaml:",inline"`
	Data map[string]string `yaml:"data"`
}

type k8sSecret struct {
	head       `yaml:",inline"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type k8sPVC struct {
	head `yaml:",inline"`
	Spec struct {
		AccessModes []string `yaml:"accessModes"`
		Resources   struct {
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
		StorageClassName string `yaml:"storageClassName"`
	} `yaml:"spec"`
}

type k8sNamespace struct {
	head `yaml:",inline"`
}

// kustomization is a Kustomization or a Component.
type kustomization struct {
	head       `yaml:",inline"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Components []string `yaml:"components"`
	Patches    []struct {
		Path   string `yaml:"path"`
		Patch  string `yaml:"patch"`
		Target *struct {
			Kind      string `yaml:"kind"`
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"target"`
	} `yaml:"patches"`
	ConfigMapGenerator []struct {
		Name      string   `yaml:"name"`
		Namespace string   `yaml:"namespace"`
		Behavior  string   `yaml:"behavior"`
		Files     []string `yaml:"files"`
		Options   *struct {
			DisableNameSuffixHash bool              `yaml:"disableNameSuffixHash"`
			Labels                map[string]string `yaml:"labels"`
		} `yaml:"options"`
	} `yaml:"configMapGenerator"`
	Images []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

// k8sServiceMonitor is the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1), the fields the monitoring component uses.
type k8sServiceMonitor struct {
	head `yaml:",inline"`
	Spec struct {
		NamespaceSelector struct {
			MatchNames []string `yaml:"matchNames"`
		} `yaml:"namespaceSelector"`
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct {
			Port        string `yaml:"port"`
			Path        string `yaml:"path"`
			Interval    string `yaml:"interval"`
			HonorLabels bool   `yaml:"honorLabels"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

// k8sPrometheusRule is the Prometheus Operator's PrometheusRule
// (monitoring.coreos.com/v1): groups of alerting rules.
type k8sPrometheusRule struct {
	head `yaml:",inline"`
	Spec struct {
		Groups []struct {
			Name     string `yaml:"name"`
			Interval string `yaml:"interval"`
			Rules    []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	} `yaml:"spec"`
}

// objects are the strictly decoded objects of one or more YAML streams,
// by kind.
type objects struct {
	Deployments     []k8sDeployment
	CronJobs        []k8sCronJob
	PDBs            []k8sPDB
	NetworkPolicies []k8sNetworkPolicy
	Services        []k8sService
	ConfigMaps      []k8sConfigMap
	Secrets         []k8sSecret
	PVCs            []k8sPVC
	Namespaces      []k8sNamespace
	Kustomizations  []kustomization
	ServiceMonitors []k8sServiceMonitor
	PrometheusRules []k8sPrometheusRule
}

// strict decodes one document into v, failing on any field v lacks.
func strict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// add decodes one object of kind into its list.
func (o *objects) add(kind string, b []byte) error {
	var err error
	switch kind {
	case "Deployment":
		err = decodeInto(b, &o.Deployments)
	case "CronJob":
		err = decodeInto(b, &o.CronJobs)
	case "PodDisruptionBudget":
		err = decodeInto(b, &o.PDBs)
	case "NetworkPolicy":
		err = decodeInto(b, &o.NetworkPolicies)
	case "Service":
		err = decodeInto(b, &o.Services)
	case "ConfigMap":
		err = decodeInto(b, &o.ConfigMaps)
	case "Secret":
		err = decodeInto(b, &o.Secrets)
	case "PersistentVolumeClaim":
		err = decodeInto(b, &o.PVCs)
	case "Namespace":
		err = decodeInto(b, &o.Namespaces)
	case "Kustomization", "Component":
		err = decodeInto(b, &o.Kustomizations)
	case "ServiceMonitor":
		err = decodeInto(b, &o.ServiceMonitors)
	case "PrometheusRule":
		err = decodeInto(b, &o.PrometheusRules)
	default:
		err = errors.New("a kind this test does not know: add it to k8sschema_test.go")
	}
	return err
}

func decodeInto[T any](b []byte, list *[]T) error {
	var v T
	if err := strict(b, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// decodeObjects strictly decodes every document of a YAML stream (name is
// for messages) into o.
func decodeObjects(t *testing.T, name string, stream []byte, o *objects) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(stream))
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if len(n.Content) == 0 {
			continue // an empty document
		}
		doc, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Kind string `yaml:"kind"`
		}
		if err := yaml.Unmarshal(doc, &h); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		if h.Kind == "" {
			t.Errorf("%s: document %d has no kind", name, i)
			continue
		}
		if err := o.add(h.Kind, doc); err != nil {
			t.Errorf("%s: document %d (%s): %v", name, i, h.Kind, err)
		}
	}
}
