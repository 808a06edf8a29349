package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestManifests checks that the Kubernetes manifests run this image: its
// repository, and as its user.
func TestManifests(t *testing.T) {
	s := imageSpec()
	dir := filepath.Join("..", "..", "deploy", "k8s")
	read := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	type securityContext struct {
		RunAsUser  *int `yaml:"runAsUser"`
		RunAsGroup *int `yaml:"runAsGroup"`
	}
	type container struct {
		Image           string
		Args            []string
		SecurityContext securityContext `yaml:"securityContext"`
	}
	type podSpec struct {
		SecurityContext securityContext `yaml:"securityContext"`
		Containers      []container
	}
	var cron struct {
		Spec struct {
			JobTemplate struct {
				Spec struct{ Template struct{ Spec podSpec } }
			} `yaml:"jobTemplate"`
		}
	}
	var deploy struct {
		Spec struct{ Template struct{ Spec podSpec } }
	}
	read("cronjob.yaml", &cron)
	read("deployment.yaml", &deploy) // its first document: the Deployment
	user := func(uid, gid *int) string {
		if uid == nil || gid == nil {
			return "unset"
		}
		return fmt.Sprintf("%d:%d", *uid, *gid)
	}
	for name, ps := range map[string]podSpec{"cronjob.yaml": cron.Spec.JobTemplate.Spec.Template.Spec, "deployment.yaml": deploy.Spec.Template.Spec} {
		if u := user(ps.SecurityContext.RunAsUser, ps.SecurityContext.RunAsGroup); u != s.User {
			t.Errorf("%s: pod runs as %s, the image as %s", name, u, s.User)
		}
		if len(ps.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(ps.Containers))
		}
		c := ps.Containers[0]
		if !strings.HasPrefix(c.Image, defaultRepository+":") {
			t.Errorf("%s: image %s, want %s:<tag>", name, c.Image, defaultRepository)
		}
		if u := user(c.SecurityContext.RunAsUser, c.SecurityContext.RunAsGroup); u != s.User {
			t.Errorf("%s: container runs as %s, the image as %s", name, u, s.User)
		}
		if len(c.Args) == 0 || strings.HasPrefix(c.Args[0], "/") {
			t.Errorf("%s: args %q: the entrypoint is the binary, args start with its command", name, c.Args)
		}
	}
	var kust struct {
		Images []struct {
			Name   string
			NewTag string `yaml:"newTag"`
		}
	}
	read("kustomization.yaml", &kust)
	if len(kust.Images) != 1 || kust.Images[0].Name != defaultRepository || kust.Images[0].NewTag == "" {
		t.Errorf("kustomization.yaml images %+v, want %s with a newTag", kust.Images, defaultRepository)
	}
}
