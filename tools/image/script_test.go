package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// runScript runs scripts/image.sh with env added to the environment.
func runScript(t *testing.T, env []string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("scripts/image.sh needs git: %v", err)
	}
	cmd := exec.Command("bash", append([]string{filepath.Join("..", "..", "scripts", "image.sh")}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// Its notes (such as uncommitted changes) go to stderr; only stdout is
	// what it names.
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/image.sh %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestImageScript runs scripts/image.sh as a release would and checks what
// it names and writes.
func TestImageScript(t *testing.T) {
	t.Run("tag", func(t *testing.T) {
		if got := runScript(t, []string{"VERSION=1.2.3"}, "--tag"); got != defaultRepository+":1.2.3\n" {
			t.Errorf("VERSION=1.2.3: %q", got)
		}
		got := strings.TrimSpace(runScript(t, []string{"VERSION="}, "--tag"))
		// A release tag vX.Y.Z at HEAD, else the dev form; -dirty when the
		// work tree has changes.
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(defaultRepository) + `:([0-9]+\.[0-9]+\.[0-9]+|0\.0\.0-dev\.[0-9]{14}\.[0-9a-f]{12})(-dirty)?$`)
		if !re.MatchString(got) {
			t.Errorf("tag %q, want %s", got, re)
		}
		if _, err := name.NewTag(got); err != nil {
			t.Errorf("%q is no valid tag: %v", got, err)
		}
	})
	t.Run("build", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the archiver; not with -short")
		}
		out := t.TempDir()
		env := []string{"VERSION=0.1.0", "SOURCE_DATE_EPOCH=1796119200", "OUT=" + out}
		first := runScript(t, env)
		m := regexp.MustCompile(`(?m)^image (\S+)\ndigest (sha256:[0-9a-f]{64})$`).FindStringSubmatch(first)
		if m == nil || m[1] != defaultRepository+":0.1.0" {
			t.Fatalf("output:\n%s", first)
		}
		tag, err := name.NewTag(m[1])
		if err != nil {
			t.Fatal(err)
		}
		img := readLayout(t, filepath.Join(out, "image"), tag)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := cf.Config.Labels["org.opencontainers.image.created"]; got != "2026-12-01T10:00:00Z" {
			t.Errorf("created %q, want SOURCE_DATE_EPOCH's 2026-12-01T10:00:00Z", got)
		}
		if _, err := os.Stat(filepath.Join(out, "image.tar")); err != nil {
			t.Error(err)
		}
		// Run again over the same directory: the same digest.
		if again := runScript(t, env); !strings.Contains(again, "digest "+m[2]+"\n") {
			t.Errorf("second run:\n%s\nwant digest %s", again, m[2])
		}
	})
}
