// Package packaging_test builds the cec-archiver .deb and .rpm with
// scripts/package.sh and checks them: every file with its mode, owner and
// contents, the conffile, the maintainer scripts and dependencies, and that
// the units and the package agree (the unit's binary, config file and user
// are the ones the package ships and creates). TestDeb then installs,
// upgrades, removes and purges the .deb on this machine (it needs root and
// dpkg, and restores the machine even when it fails); TestRPM reads the
// .rpm's header. docs/packages.md describes the packages.
package packaging_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The layout the units, the scripts and the docs rely on.
const (
	repoRoot   = ".."
	pkgName    = "cec-archiver"
	user       = "_archiver"
	binPath    = "/usr/bin/archiver"
	configPath = "/etc/archiver/config.toml"
	credDir    = "/etc/archiver/credentials"
	unitDir    = "/usr/lib/systemd/system"
	docDir     = "/usr/share/doc/cec-archiver"
)

// entry is one path a package must ship, exactly so.
type entry struct {
	Path         string      // absolute, no trailing slash
	Mode         fs.FileMode // fs.ModeDir for directories, plus the permission bits
	Owner, Group string
	Source       string // the repository file it is a copy of; "" for the binary and directories
	Config       bool   // a conffile (deb), %config(noreplace) (rpm)
}

// layout is every file and directory of the packages that is not merely a
// parent directory (those must be 0755 root:root).
func layout() []entry {
	file := func(p, src string) entry {
		return entry{Path: p, Mode: 0o644, Owner: "root", Group: "root", Source: src}
	}
	return []entry{
		{Path: binPath, Mode: 0o755, Owner: "root", Group: "root"},
		file(unitDir+"/archiver.service", "deploy/systemd/archiver.service"),
		file(unitDir+"/archiver-once.service", "deploy/systemd/archiver-once.service"),
		file(unitDir+"/archiver-once.timer", "deploy/systemd/archiver-once.timer"),
		{Path: "/etc/archiver", Mode: fs.ModeDir | 0o755, Owner: "root", Group: "root"},
		{Path: configPath, Mode: 0o640, Owner: "root", Group: user, Source: "deploy/systemd/config.toml", Config: true},
		{Path: credDir, Mode: fs.ModeDir | 0o700, Owner: "root", Group: "root"},
		file(docDir+"/operations.md", "docs/operations.md"),
		file(docDir+"/configuration.md", "docs/configuration.md"),
		file(docDir+"/config.toml.example", "config.toml.example"),
	}
}

// pkgFile is one path as a package holds it.
type pkgFile struct {
	Mode         fs.FileMode
	Owner, Group string
	SHA256       string // hex, regular files only
	Config       bool
}

// checkFiles compares a package's paths with layout(): every entry present
// with its mode, owner, group and contents, no other file, and every other
// directory a parent of an entry, 0755 root:root. configKnown says whether
// files[].Config was read from the package.
func checkFiles(t *testing.T, files map[string]pkgFile, configKnown bool) {
	t.Helper()
	want := map[string]entry{}
	parents := map[string]bool{}
	for _, e := range layout() {
		want[e.Path] = e
		for d := path.Dir(e.Path); d != "/"; d = path.Dir(d) {
			parents[d] = true
		}
		got, ok := files[e.Path]
		if !ok {
			t.Errorf("%s: not in the package", e.Path)
			continue
		}
		if got.Mode != e.Mode || got.Owner != e.Owner || got.Group != e.Group {
			t.Errorf("%s: %v %s:%s, want %v %s:%s", e.Path, got.Mode, got.Owner, got.Group, e.Mode, e.Owner, e.Group)
		}
		if configKnown && got.Config != e.Config {
			t.Errorf("%s: config file = %v, want %v", e.Path, got.Config, e.Config)
		}
		if e.Source != "" && got.SHA256 != fileSHA256(t, filepath.Join(repoRoot, e.Source)) {
			t.Errorf("%s: contents differ from %s", e.Path, e.Source)
		}
	}
	for p, f := range files {
		if _, ok := want[p]; ok {
			continue
		}
		if !f.Mode.IsDir() || !parents[p] {
			t.Errorf("%s: %v in the package, not in the layout", p, f.Mode)
		} else if f.Mode != fs.ModeDir|0o755 || f.Owner != "root" || f.Group != "root" {
			t.Errorf("%s: %v %s:%s, want a parent directory 0755 root:root", p, f.Mode, f.Owner, f.Group)
		}
	}
}

func TestUnits(t *testing.T) { checkUnits(t, readScript(t, "preinstall")) }

// checkUnits checks that the packaged units use what the package ships and
// creates: ExecStart runs the packaged binary on the packaged config file,
// User=/Group= is the user the preinstall script creates, the credentials
// are read from the packaged directory and Documentation= is shipped.
func checkUnits(t *testing.T, preinstall []byte) {
	t.Helper()
	shipped := map[string]bool{}
	for _, e := range layout() {
		shipped[e.Path] = true
	}
	if !bytes.Contains(preinstall, []byte("useradd --system")) || !bytes.Contains(preinstall, []byte(" "+user+"\n")) {
		t.Errorf("the preinstall script does not create the system user %s", user)
	}
	for _, name := range []string{"archiver.service", "archiver-once.service"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		exec := strings.Fields(unitValue(t, name, b, "ExecStart"))
		if len(exec) < 4 || exec[0] != binPath || exec[2] != "--config" || exec[3] != configPath {
			t.Errorf("%s: ExecStart=%s, want %s VERB --config %s", name, strings.Join(exec, " "), binPath, configPath)
		}
		for _, key := range []string{"User", "Group"} {
			if v := unitValue(t, name, b, key); v != user {
				t.Errorf("%s: %s=%s, want %s (the user the package creates)", name, key, v, user)
			}
		}
		doc := strings.TrimPrefix(unitValue(t, name, b, "Documentation"), "file://")
		if !shipped[doc] {
			t.Errorf("%s: Documentation=%s is not in the package", name, doc)
		}
		for _, lc := range unitValues(b, "LoadCredential") {
			_, src, _ := strings.Cut(lc, ":")
			if path.Dir(src) != credDir {
				t.Errorf("%s: LoadCredential=%s is not under %s", name, lc, credDir)
			}
		}
	}
}

// unitValues returns the values of every KEY= line of a unit file.
func unitValues(unit []byte, key string) []string {
	var vs []string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"="); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

// unitValue returns the effective (last) value of KEY in a unit file.
func unitValue(t *testing.T, name string, unit []byte, key string) string {
	t.Helper()
	vs := unitValues(unit, key)
	if len(vs) == 0 {
		t.Errorf("%s: no %s=", name, key)
		return ""
	}
	return vs[len(vs)-1]
}

// needTools skips the test, saying why, when a command is not on PATH
// (.ci/required-tests makes such a skip fail CI).
func needTools(t *testing.T, why string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %s", tool, why)
		}
	}
}

// buildPackage runs scripts/package.sh for one format and version into dir
// and returns the package's path.
func buildPackage(t *testing.T, dir, format, version string) string {
	t.Helper()
	cmd := exec.Command("bash", "scripts/package.sh", "--out", dir, format)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION="+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/package.sh %s: %v\n%s", format, err, stderr.Bytes())
	}
	p := strings.TrimSpace(string(out))
	if !strings.HasPrefix(p, dir+"/") || !strings.HasSuffix(p, "."+format) || strings.Contains(p, "\n") {
		t.Fatalf("scripts/package.sh %s printed %q, want one path under %s", format, out, dir)
	}
	return p
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// maintainerScripts maps nfpm's name of each maintainer script
// (packaging/scripts/NAME.sh) to the deb control file it becomes.
func maintainerScripts() map[string]string {
	return map[string]string{
		"preinstall":  "preinst",
		"postinstall": "postinst",
		"preremove":   "prerm",
		"postremove":  "postrm",
	}
}

func readScript(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "packaging/scripts", name+".sh"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
