package packaging_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The versions TestDeb installs, then upgrades to.
const (
	testVersion    = "1.2.3-pkgtest"
	upgradeVersion = "1.2.4-pkgtest"
)

func TestDeb(t *testing.T) {
	needTools(t, "the .deb cannot be built or read here", "bash", "git", "dpkg-deb")
	dir := t.TempDir()
	deb := buildPackage(t, dir, "deb", testVersion)

	t.Run("Files", func(t *testing.T) {
		files, binary := debFiles(t, deb)
		checkFiles(t, files, true)
		// No Depends: the binary is static (tools/image's build).
		f, err := elf.NewFile(bytes.NewReader(binary))
		if err != nil {
			t.Fatalf("%s: %v", binPath, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a program interpreter: not a static binary", binPath)
			}
		}
	})

	t.Run("Control", func(t *testing.T) {
		fields := debFields(t, deb)
		want := map[string]string{
			"Package":      pkgName,
			"Version":      strings.Replace(testVersion, "-", "~", 1),
			"Architecture": runtime.GOARCH,
			"Pre-Depends":  "passwd",
			"Depends":      "",
		}
		for _, k := range sortedKeys(want) {
			if fields[k] != want[k] {
				t.Errorf("%s: %q, want %q", k, fields[k], want[k])
			}
		}
		for name, member := range maintainerScripts() {
			got := debControlMember(t, deb, member)
			if !bytes.Equal(got, readScript(t, name)) {
				t.Errorf("%s differs from packaging/scripts/%s.sh", member, name)
			}
		}
	})

	t.Run("Install", func(t *testing.T) {
		testInstall(t, deb, buildPackage(t, dir, "deb", upgradeVersion))
	})
}

// debFiles reads the data archive of a .deb (dpkg-deb --fsys-tarfile), the
// conffiles from its control archive, and returns the files and the
// binary's contents.
func debFiles(t *testing.T, deb string) (map[string]pkgFile, []byte) {
	t.Helper()
	conffiles := map[string]bool{}
	for _, l := range strings.Fields(string(debControlMember(t, deb, "conffiles"))) {
		conffiles[l] = true
	}
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile: %v\n%s", err, stderr.Bytes())
	}
	files := map[string]pkgFile{}
	var binary []byte
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(strings.TrimPrefix(h.Name, "."), "/")
		if p == "" {
			continue
		}
		f := pkgFile{Mode: fs.FileMode(h.Mode).Perm(), Owner: h.Uname, Group: h.Gname, Config: conffiles[p]}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Mode |= fs.ModeDir
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			f.SHA256 = sha256Hex(b)
			if p == binPath {
				binary = b
			}
		default:
			f.Mode |= fs.ModeIrregular
		}
		files[p] = f
	}
	for p := range conffiles {
		if _, ok := files[p]; !ok {
			t.Errorf("conffile %s is not in the package", p)
		}
	}
	return files, binary
}

// debControlMember returns one file of the control archive (dpkg-deb -I).
func debControlMember(t *testing.T, deb, member string) []byte {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-I", deb, member).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -I %s: %v", member, err)
	}
	return out
}

// debFields returns the control file's fields (continuation lines dropped).
func debFields(t *testing.T, deb string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	for _, l := range strings.Split(string(debControlMember(t, deb, "control")), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// testInstall installs the .deb into this system, checks what it did,
// upgrades to the second package over an edited conffile, removes and
// purges it, and checks that nothing is left but the user. The cleanup
// purges the package and deletes the user (if the test created it) even
// after a failure.
func testInstall(t *testing.T, deb, upgrade string) {
	if os.Geteuid() != 0 {
		t.Skip("not root: installing the package into this system needs root")
	}
	needTools(t, "the package cannot be installed and checked here",
		"dpkg", "dpkg-query", "runuser", "getent", "userdel", "groupdel", "systemctl", "systemd-analyze")
	if out, err := exec.Command("dpkg-query", "-W", pkgName).CombinedOutput(); err == nil {
		t.Fatalf("%s is installed on this machine already (%s): the test would remove it", pkgName, strings.TrimSpace(string(out)))
	}
	for _, p := range []string{binPath, "/etc/archiver", "/var/lib/archiver", "/var/lib/private/archiver"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists on this machine: the test would replace or delete it", p)
		}
	}
	usersBefore, groupsBefore := names(t, "passwd"), names(t, "group")
	before := snapshot(t)
	t.Cleanup(func() {
		if _, err := exec.Command("dpkg-query", "-W", pkgName).CombinedOutput(); err == nil {
			if out, err := exec.Command("dpkg", "-P", pkgName).CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg -P %s: %v\n%s", pkgName, err, out)
			}
		}
		// Whatever users and groups the install made (_archiver, or
		// another name if the scripts are wrong) go, users first.
		for name := range names(t, "passwd") {
			if !usersBefore[name] {
				if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
					t.Errorf("cleanup: userdel %s: %v\n%s", name, err, out)
				}
			}
		}
		for name := range names(t, "group") {
			if !groupsBefore[name] {
				if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
					t.Errorf("cleanup: groupdel %s: %v\n%s", name, err, out)
				}
			}
		}
	})

	dpkg(t, "-i", deb)

	pw, ok := getent(t, "passwd", user)
	if !ok {
		t.Fatalf("no user %s after the install", user)
	}
	uid, _ := strconv.Atoi(pw[2])
	gid, _ := strconv.Atoi(pw[3])
	if uid == 0 || uid >= 1000 || pw[5] != "/nonexistent" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("user %s = %v, want a system user (uid 1-999), home /nonexistent, shell /usr/sbin/nologin", user, pw)
	}
	if gr, ok := getent(t, "group", user); !ok || gr[2] != pw[3] {
		t.Errorf("group %s = %v, want the primary group (gid %s) of user %s", user, gr, pw[3], user)
	}
	ids := map[string]int{"root": 0, user: uid}
	gids := map[string]int{"root": 0, user: gid}
	checkInstalled(t, ids, gids)
	if out := dpkgQuery(t, "${Conffiles}"); !strings.Contains(out, configPath+" ") {
		t.Errorf("dpkg lists conffiles %q, want %s", out, configPath)
	}

	checkSystemd(t)
	if out := run(t, binPath, "version"); !strings.HasPrefix(out, "archiver "+testVersion+"\n") {
		t.Errorf("archiver version printed %q, want archiver %s first", out, testVersion)
	}
	checkConfig(t, uid, gid)

	// Enabled by the operator: the removal must take the link away.
	wants := "/etc/systemd/system/timers.target.wants/archiver-once.timer"
	systemctl(t, "enable", "archiver-once.timer")
	if _, err := os.Lstat(wants); err != nil {
		t.Errorf("systemctl enable archiver-once.timer: %v", err)
	}

	// An upgrade keeps an edited conffile (the same in both packages).
	orig, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := append(orig, "# edited by TestDeb\n"...)
	if err := os.WriteFile(configPath, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	dpkg(t, "-i", upgrade)
	if b, _ := os.ReadFile(configPath); !bytes.Equal(b, edited) {
		t.Errorf("the upgrade replaced the edited %s", configPath)
	}
	if out := run(t, binPath, "version"); !strings.HasPrefix(out, "archiver "+upgradeVersion+"\n") {
		t.Errorf("after the upgrade archiver version printed %q, want archiver %s", out, upgradeVersion)
	}
	checkInstalled(t, ids, gids)

	// Remove: the files go, the conffile and the user stay.
	listed := strings.Fields(run(t, "dpkg", "-L", pkgName))
	dpkg(t, "-r", pkgName)
	if got := dpkgQuery(t, "${db:Status-Status}"); got != "config-files" {
		t.Errorf("status after dpkg -r = %q, want config-files", got)
	}
	for _, e := range layout() {
		_, err := os.Lstat(e.Path)
		switch {
		case e.Config || e.Path == "/etc/archiver":
			if err != nil {
				t.Errorf("%s after dpkg -r: %v, want it kept until the purge", e.Path, err)
			}
		case err == nil:
			t.Errorf("%s is still there after dpkg -r", e.Path)
		}
	}
	if b, _ := os.ReadFile(configPath); !bytes.Equal(b, edited) {
		t.Errorf("dpkg -r changed %s", configPath)
	}
	if _, err := os.Lstat(wants); err == nil {
		t.Errorf("%s is still there after dpkg -r", wants)
	}

	// Purge: nothing left but the user.
	dpkg(t, "-P", pkgName)
	if out, err := exec.Command("dpkg-query", "-W", pkgName).CombinedOutput(); err == nil {
		t.Errorf("dpkg still knows %s after the purge: %s", pkgName, out)
	}
	for _, p := range listed {
		if _, shared := before[p]; shared || !underSnapshot(p) {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after the purge", p)
		}
	}
	if _, ok := getent(t, "passwd", user); !ok {
		t.Errorf("the purge deleted user %s: it must stay (files it owned would pass to the next user of its UID)", user)
	}
	after := snapshot(t)
	for _, p := range sortedKeys(before) {
		if after[p] != before[p] {
			t.Errorf("after the purge %s is %q, was %q", p, after[p], before[p])
		}
	}
	for _, p := range sortedKeys(after) {
		if _, ok := before[p]; !ok {
			t.Errorf("after the purge %s (%s) is left behind", p, after[p])
		}
	}
}

// checkInstalled checks every path of the layout as installed: mode, owner
// (uid, gid by name) and, for files copied from the repository, contents.
func checkInstalled(t *testing.T, uids, gids map[string]int) {
	t.Helper()
	for _, e := range layout() {
		fi, err := os.Lstat(e.Path)
		if err != nil {
			t.Errorf("installed: %v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode() & (fs.ModeDir | fs.ModePerm)
		if mode != e.Mode || int(st.Uid) != uids[e.Owner] || int(st.Gid) != gids[e.Group] {
			t.Errorf("installed %s: %v %d:%d, want %v %s:%s", e.Path, mode, st.Uid, st.Gid, e.Mode, e.Owner, e.Group)
		}
		if e.Source != "" && !e.Config && fileSHA256(t, e.Path) != fileSHA256(t, filepath.Join(repoRoot, e.Source)) {
			t.Errorf("installed %s differs from %s", e.Path, e.Source)
		}
	}
}

// checkSystemd checks that systemd finds and accepts the installed units.
// systemctl cat needs a running manager; without one (systemd not PID 1,
// as in a container) systemd-analyze verify and systemctl --root=/ read
// the unit files offline.
func checkSystemd(t *testing.T) {
	t.Helper()
	if systemdRunning() {
		if out := run(t, "systemctl", "cat", "archiver.service"); !strings.Contains(out, "ExecStart="+binPath+" run ") {
			t.Errorf("systemctl cat archiver.service:\n%s\nwant ExecStart=%s run", out, binPath)
		}
	} else {
		t.Log("systemd is not PID 1 here: systemctl cat cannot run; systemd-analyze verify and systemctl --root=/ check the units")
	}
	units := []string{unitDir + "/archiver.service", unitDir + "/archiver-once.service", unitDir + "/archiver-once.timer"}
	if out := run(t, "systemd-analyze", append([]string{"verify"}, units...)...); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	for _, u := range []string{"archiver.service", "archiver-once.service", "archiver-once.timer"} {
		out, _ := exec.Command("systemctl", "--root=/", "is-enabled", u).CombinedOutput()
		// Found on the unit path, and not enabled by the install.
		want := "disabled"
		if u == "archiver-once.service" {
			want = "static"
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("systemctl --root=/ is-enabled %s = %q, want %s", u, got, want)
		}
	}
}

// checkConfig runs archiver check-config on the installed config as the
// docs describe it: as the service's user it reads the file (0640
// root:_archiver) and reports the missing credentials, exit 2; as anyone
// else it cannot read it; with the credentials given and a writable state
// directory it passes.
func checkConfig(t *testing.T, uid, gid int) {
	t.Helper()
	secrets, err := os.MkdirTemp("", "cec-archiver-pkgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(secrets) })
	env := []string{}
	for k, name := range map[string]string{
		"ARCHIVER_CEC_SK_FILE":             "cec_sk",
		"ARCHIVER_CEC_API_PASSWORD_FILE":   "cec_api_password",
		"ARCHIVER_SINK_S3_SECRET_KEY_FILE": "s3_secret_key",
	} {
		p := filepath.Join(secrets, name)
		if err := os.WriteFile(p, []byte("pkgtest-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+p)
	}
	state := filepath.Join(secrets, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := chownAll(secrets, uid, gid); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, as string
		env      []string
		code     int
		want     []string
	}{
		{"as installed", user, nil, 2, []string{
			"cec.sk_file: cannot read /run/credentials/archiver.service/cec_sk",
			"cec.api_password_file: cannot read /run/credentials/archiver.service/cec_api_password",
			"sink.s3.secret_key_file: cannot read /run/credentials/archiver.service/s3_secret_key",
		}},
		{"other user", "nobody", nil, 2, []string{"open " + configPath + ": permission denied"}},
		// The state directory is systemd's (StateDirectory=), not the package's.
		{"credentials given", user, env, 2, []string{"checkpoint.path: directory /var/lib/archiver: cannot create"}},
		{"credentials and state given", user, append(env, "ARCHIVER_CHECKPOINT_PATH="+state+"/state.db"), 0, []string{"config OK"}},
	} {
		t.Run("check-config/"+tc.name, func(t *testing.T) {
			cmd := exec.Command("runuser", "-u", tc.as, "--", binPath, "check-config", "--config", configPath)
			cmd.Env = append(withoutArchiverEnv(), tc.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if _, err := os.Lstat("/var/lib/archiver"); err == nil {
		t.Error("check-config made /var/lib/archiver")
	}
}

func chownAll(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// withoutArchiverEnv is this process's environment without ARCHIVER_*
// variables, which would override the config under test.
func withoutArchiverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARCHIVER_") {
			env = append(env, kv)
		}
	}
	return env
}

// snapshot records every path under the directories a package can touch
// (mode and owner), to find what an install leaves behind. The user
// database is left out: the user is kept on purpose.
func snapshot(t *testing.T) map[string]string {
	t.Helper()
	skip := map[string]bool{"/etc/.pwd.lock": true}
	for _, f := range []string{"passwd", "group", "shadow", "gshadow", "subuid", "subgid"} {
		skip["/etc/"+f], skip["/etc/"+f+"-"] = true, true
	}
	m := map[string]string{}
	for _, root := range snapshotRoots() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if skip[p] {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			m[p] = fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot %s: %v", root, err)
		}
	}
	return m
}

func snapshotRoots() []string {
	return []string{"/etc", "/usr/bin", "/usr/lib/systemd", "/usr/share/doc", "/var/lib/archiver", "/var/lib/private"}
}

// underSnapshot says whether snapshot looks at path p.
func underSnapshot(p string) bool {
	for _, root := range snapshotRoots() {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}

func systemdRunning() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// systemctl runs a unit-file verb (enable, disable) on the running manager,
// or offline on / when there is none.
func systemctl(t *testing.T, args ...string) {
	t.Helper()
	if !systemdRunning() {
		args = append([]string{"--root=/"}, args...)
	}
	run(t, "systemctl", args...)
}

// dpkg runs dpkg and fails on an error or a warning (a directory it could
// not remove, a conffile prompt).
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if bytes.Contains(bytes.ToLower(out), []byte("warning")) {
		t.Errorf("dpkg %s warned:\n%s", strings.Join(args, " "), out)
	}
}

func dpkgQuery(t *testing.T, format string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "dpkg-query", "-W", "-f="+format, pkgName))
}

// names returns the names in the passwd or group database.
func names(t *testing.T, db string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(run(t, "getent", db)), "\n") {
		name, _, _ := strings.Cut(l, ":")
		m[name] = true
	}
	return m
}

// getent returns the fields of a passwd or group entry, and whether there is one.
func getent(t *testing.T, db, name string) ([]string, bool) {
	t.Helper()
	out, err := exec.Command("getent", db, name).Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 2 {
		return nil, false
	} else if err != nil {
		t.Fatalf("getent %s %s: %v", db, name, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), ":"), true
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
