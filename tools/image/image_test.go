package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const (
	testVersion = "0.1.0-test"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

var testCreated = time.Date(2026, time.December, 1, 10, 0, 0, 0, time.UTC)

// testOptions are the options of the test image: the module two levels up,
// the host's architecture and CA bundle.
func testOptions(t *testing.T) options {
	t.Helper()
	ca := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(ca); err != nil {
		// Any PEM file does for the test; the image takes what it is given.
		ca = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return options{ModuleDir: filepath.Join("..", ".."), Version: testVersion, Commit: testCommit,
		Created: testCreated, Arch: runtime.GOARCH, CACerts: ca, Go: goCommand(t)}
}

func goCommand(t *testing.T) string {
	t.Helper()
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		if p, err = exec.LookPath("go"); err != nil {
			t.Fatalf("the go command is needed to build the image: %v", err)
		}
	}
	return p
}

// TestImage builds the image offline twice, from two builds of the binary,
// and checks that both are the same bytes, then what the image holds: its
// config (user, entrypoint, command, environment, labels), its one layer
// (exactly the expected files: no shell), the binary (static, and it runs),
// and the docker-archive tarball.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the archiver twice; not with -short")
	}
	ctx := context.Background()
	o := testOptions(t)
	dir := t.TempDir()
	out := func(n int) outputs {
		return outputs{OCI: filepath.Join(dir, fmt.Sprintf("oci%d", n)),
			DockerArchive: filepath.Join(dir, fmt.Sprintf("image%d.tar", n)), Repository: defaultRepository}
	}
	first, err := build(ctx, o, out(1))
	if err != nil {
		t.Fatal(err)
	}
	second, err := build(ctx, o, out(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s digest %s", first.Ref, first.Digest)

	t.Run("reproducible", func(t *testing.T) {
		if first.Digest != second.Digest {
			t.Errorf("two builds of the same inputs: digests %s and %s", first.Digest, second.Digest)
		}
		a, b := treeDigest(t, out(1).OCI), treeDigest(t, out(2).OCI)
		if !maps.Equal(a, b) {
			t.Errorf("the two OCI layouts differ:\n%v\n%v", a, b)
		}
		if x, y := fileBytes(t, out(1).DockerArchive), fileBytes(t, out(2).DockerArchive); !bytes.Equal(x, y) {
			t.Error("the two docker archives differ")
		}
		// A different date is a different image: the date is an input.
		o2 := o
		o2.Created = o.Created.Add(time.Second)
		bin := filepath.Join(dir, "archiver")
		if err := os.WriteFile(bin, layerFile(t, first.Image, "usr/local/bin/archiver"), 0o755); err != nil {
			t.Fatal(err)
		}
		o2.Binary = bin
		other, err := build(ctx, o2, outputs{OCI: filepath.Join(dir, "oci3"), Repository: defaultRepository})
		if err != nil {
			t.Fatal(err)
		}
		if other.Digest == first.Digest {
			t.Error("another date gave the same digest")
		}
	})

	// What is checked from here on is read back from the layout on disk.
	img := readLayout(t, out(1).OCI, first.Ref)
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate: %v", err)
	}
	s := imageSpec()

	t.Run("config", func(t *testing.T) {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if c.User != "65532:65532" || c.User != s.User {
			t.Errorf("User %q, want 65532:65532", c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/archiver"}) || !slices.Equal(c.Cmd, []string{"run"}) {
			t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
		}
		if !slices.Equal(c.Env, s.env()) || c.WorkingDir != "/home/nonroot" {
			t.Errorf("Env %q WorkingDir %q", c.Env, c.WorkingDir)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(c.ExposedPorts)), []string{"10108/tcp", "8080/tcp"}) {
			t.Errorf("ExposedPorts %v", c.ExposedPorts)
		}
		want := map[string]string{
			"org.opencontainers.image.version":  testVersion,
			"org.opencontainers.image.revision": testCommit,
			"org.opencontainers.image.created":  "2026-12-01T10:00:00Z",
			"org.opencontainers.image.source":   "https://github.com/cec-archiver/cec-archiver",
			"org.opencontainers.image.title":    "cec-archiver",
		}
		for k, v := range want {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
		if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Equal(testCreated) {
			t.Errorf("os %q architecture %q created %v", cf.OS, cf.Architecture, cf.Created)
		}
		mt, _ := img.MediaType()
		if mt != types.OCIManifestSchema1 {
			t.Errorf("manifest media type %s", mt)
		}
	})

	t.Run("files", func(t *testing.T) {
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%d layers, want 1 (%v)", len(layers), err)
		}
		var got []string
		for h := range tarEntries(t, layers[0]) {
			got = append(got, fmt.Sprintf("%s %c %o %d:%d %s", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.UTC().Format(time.RFC3339)))
		}
		want := []string{
			"etc/ 5 755 0:0", "etc/group 0 644 0:0", "etc/nsswitch.conf 0 644 0:0", "etc/passwd 0 644 0:0",
			"etc/ssl/ 5 755 0:0", "etc/ssl/certs/ 5 755 0:0", "etc/ssl/certs/ca-certificates.crt 0 644 0:0",
			"home/ 5 755 0:0", "home/nonroot/ 5 700 65532:65532", "tmp/ 5 1777 0:0",
			"usr/ 5 755 0:0", "usr/local/ 5 755 0:0", "usr/local/bin/ 5 755 0:0", "usr/local/bin/archiver 0 755 0:0",
		}
		for i := range want {
			want[i] += " 2026-12-01T10:00:00Z"
		}
		if !slices.Equal(got, want) {
			t.Errorf("layer entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if p := string(layerFile(t, img, "etc/passwd")); !strings.Contains(p, "\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n") {
			t.Errorf("/etc/passwd:\n%s", p)
		}
		if g := string(layerFile(t, img, "etc/group")); !strings.Contains(g, "\nnonroot:x:65532:\n") {
			t.Errorf("/etc/group:\n%s", g)
		}
		if !bytes.Equal(layerFile(t, img, "etc/ssl/certs/ca-certificates.crt"), fileBytes(t, o.CACerts)) {
			t.Error("the CA bundle is not the build machine's")
		}
	})

	bin := filepath.Join(t.TempDir(), "archiver")
	if err := os.WriteFile(bin, layerFile(t, img, "usr/local/bin/archiver"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("static binary", func(t *testing.T) {
		if err := checkStatic(bin, o.Arch); err != nil {
			t.Error(err)
		}
	})
	wantVersion := fmt.Sprintf("archiver %s\ncommit: %s\ndate: 2026-12-01T10:00:00Z\ngo: %s linux/%s\n", testVersion, testCommit, runtime.Version(), o.Arch)
	t.Run("version", func(t *testing.T) {
		if o.Arch != runtime.GOARCH || runtime.GOOS != "linux" {
			t.Skipf("a linux/%s binary does not run on %s/%s", o.Arch, runtime.GOOS, runtime.GOARCH)
		}
		got, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || string(got) != wantVersion {
			t.Errorf("archiver version: %v\n%s\nwant:\n%s", err, got, wantVersion)
		}
	})
	t.Run("chroot", func(t *testing.T) {
		// The image's root file system alone, as uid 65532, the way a
		// container runs it (less the namespaces): the binary needs
		// nothing from the host, not even its time-zone database.
		if os.Geteuid() != 0 {
			t.Skip("chroot needs root")
		}
		root := t.TempDir()
		extract(t, img, root)
		cfgDir := filepath.Join(root, "etc", "archiver")
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := `[cec]
fs_url = "https://cec.example.com:28443"
oifde_url = "https://cec.example.com:28090"
ak = "test-ak"
sk = "test-sk"
tenant_id = "test-tenant"
api_password = "test-password"
time_zone = "Asia/Shanghai"
callback_url = "https://archiver.example.com:8443/ccfs/callback"
callback_listen = ":8443"

[sink]
type = "dir"
dir = "/tmp/archive"

[checkpoint]
path = "/tmp/state/state.db"
`
		if err := os.WriteFile(filepath.Join(cfgDir, "config.toml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		for _, args := range [][]string{{"version"}, {"check-config"}} {
			cmd := exec.Command(s.BinaryPath, args...)
			cmd.Env, cmd.Dir = cf.Config.Env, "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
			got, err := cmd.CombinedOutput()
			want := wantVersion
			if args[0] == "check-config" {
				want = "config OK\n"
			}
			if err != nil || string(got) != want {
				t.Errorf("chroot: archiver %s: %v\n%s\nwant:\n%s", args[0], err, got, want)
			}
		}
		if st, err := os.Stat(filepath.Join(root, "tmp", "archive")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65532 {
			t.Errorf("check-config did not create /tmp/archive as 65532: %v", err)
		}
	})

	t.Run("docker archive", func(t *testing.T) {
		tag := first.Ref
		dimg, err := tarball.ImageFromPath(out(1).DockerArchive, &tag)
		if err != nil {
			t.Fatal(err)
		}
		cn1, _ := img.ConfigName()
		cn2, err := dimg.ConfigName()
		if err != nil || cn1 != cn2 {
			t.Errorf("config %s in the docker archive, %s in the layout (%v)", cn2, cn1, err)
		}
		l1, _ := img.Layers()
		l2, err := dimg.Layers()
		if err != nil || len(l2) != 1 {
			t.Fatalf("%d layers (%v)", len(l2), err)
		}
		d1, _ := l1[0].DiffID()
		d2, _ := l2[0].DiffID()
		if d1 != d2 {
			t.Errorf("layer %s, want %s", d2, d1)
		}
		var manifest []struct{ RepoTags []string }
		if err := json.Unmarshal(tarMember(t, out(1).DockerArchive, "manifest.json"), &manifest); err != nil ||
			len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{defaultRepository + ":" + testVersion}) {
			t.Errorf("manifest.json: %+v %v", manifest, err)
		}
	})
}

// checkStatic reports why the ELF file at path is not a static linux/arch
// executable: an interpreter (PT_INTERP), a dynamic section or needed
// libraries, or another machine.
func checkStatic(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Type != elf.ET_EXEC || f.Machine != machine {
		errs = append(errs, fmt.Errorf("ELF type %v machine %v, want ET_EXEC %v", f.Type, f.Machine, machine))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			errs = append(errs, fmt.Errorf("program header %v: dynamically linked", p.Type))
		}
	}
	if s := f.Section(".interp"); s != nil {
		errs = append(errs, errors.New("has an .interp section"))
	}
	if s := f.Section(".dynamic"); s != nil {
		errs = append(errs, errors.New("has a .dynamic section"))
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		errs = append(errs, fmt.Errorf("needs %v", libs))
	}
	return errors.Join(errs...)
}

// TestCheckStatic shows checkStatic failing on a dynamically linked
// binary, so that the check of the image's binary can fail.
func TestCheckStatic(t *testing.T) {
	var dynamic string
	for _, p := range []string{"/bin/sh", "/usr/bin/env", "/bin/ls"} {
		if f, err := elf.Open(p); err == nil {
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					dynamic = p
				}
			}
			f.Close()
		}
		if dynamic != "" {
			break
		}
	}
	if dynamic == "" {
		t.Skip("no dynamically linked binary on this system to check against")
	}
	if err := checkStatic(dynamic, runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("checkStatic(%s) = %v, want dynamically linked", dynamic, err)
	}
}

func readLayout(t *testing.T, dir string, ref name.Tag) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Annotations["org.opencontainers.image.ref.name"] != ref.TagStr() || d.Annotations["io.containerd.image.name"] != ref.Name() ||
		d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH || d.ArtifactType != "" {
		t.Errorf("index.json descriptor %+v", d)
	}
	img, err := ii.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tarEntries yields the headers of layer's entries (the body is skipped).
func tarEntries(t *testing.T, layer v1.Layer) func(func(*tar.Header) bool) {
	return func(yield func(*tar.Header) bool) {
		rc, err := layer.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !yield(h) {
				return
			}
		}
	}
}

// layerFile is the contents of the regular file name of img's layer.
func layerFile(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the layer: %v", name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// extract unpacks img's layer into root with the modes and owners it says.
func extract(t *testing.T, img v1.Image, root string) {
	t.Helper()
	layers, _ := img.Layers()
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		mode := os.FileMode(h.Mode & 0o777)
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
	}
	// t.TempDir is 0700: the image's / is 0755, or uid 65532 could not
	// enter its own root.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
}

// treeDigest maps every file under dir to its contents and mode.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st, _ := d.Info()
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%v %x", st.Mode(), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tarMember is the contents of member name of the tar file path.
func tarMember(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", name, path, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return b
		}
	}
}
