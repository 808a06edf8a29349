// Command image assembles the archiver's container image without a Docker
// daemon or a registry: it builds the static binary (CGO_ENABLED=0,
// -trimpath, version, commit and date in the ldflags) and writes an OCI
// image layout, and optionally a docker-archive tarball for `docker load`
// or `podman load`, holding one layer: the binary, the CA certificates of
// the build machine, /etc/passwd and /etc/group with the nonroot user
// (65532), its home and /tmp. Nothing else: no shell, no package manager.
//
// The image is what the Dockerfile builds on gcr.io/distroless/static-debian12:nonroot
// (same user, entrypoint, command, environment, ports, labels and build
// flags; a test keeps the two in step), and it is reproducible: the same
// source, Go toolchain, CA bundle and flags give the same digest. Every
// timestamp in it is -date (scripts/image.sh passes SOURCE_DATE_EPOCH, or
// the commit's time).
//
//	go run ./tools/image -version 0.1.0 -commit $(git rev-parse HEAD) \
//	    -date 2026-12-01T10:00:00Z -oci dist/image -docker-archive dist/image.tar
//
// scripts/image.sh is the usual way to run it; docs/image.md explains the
// tag and how to push.
package main

import (
	"strings"
	"time"
)

// spec is what the image is made of and how it runs. The Dockerfile must
// say the same (TestDockerfile).
type spec struct {
	// Base is the Dockerfile's final stage, whose user, directories,
	// certificates and environment the offline image reproduces.
	Base       string
	BinaryPath string
	User       string // uid:gid
	WorkDir    string
	Entrypoint []string
	Cmd        []string
	// BaseEnv is the environment Base sets; Env is what the image adds.
	BaseEnv []string
	Env     []string
	Ports   []string
	// Module and Main are what is built: Main (a package of Module) into
	// BinaryPath.
	Module, Main string
	Title        string
	Description  string
	Source       string // org.opencontainers.image.source
}

func imageSpec() spec {
	return spec{
		Base:       "gcr.io/distroless/static-debian12:nonroot",
		BinaryPath: "/usr/local/bin/archiver",
		User:       "65532:65532",
		WorkDir:    "/home/nonroot",
		Entrypoint: []string{"/usr/local/bin/archiver"},
		Cmd:        []string{"run"},
		BaseEnv: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		},
		// The Kubernetes manifests mount the configuration there; with the
		// variable, "docker run IMAGE once" needs no --config.
		Env:         []string{"ARCHIVER_CONFIG=/etc/archiver/config.toml"},
		Ports:       []string{"8080/tcp", "10108/tcp"}, // CC-FS callbacks, metrics
		Module:      "github.com/cec-archiver/cec-archiver",
		Main:        "./cmd/archiver",
		Title:       "cec-archiver",
		Description: "Archives call recordings and CDR packages from Huawei Cloud CEC into S3-compatible storage",
		Source:      "https://github.com/cec-archiver/cec-archiver",
	}
}

// labels are the image's OCI annotations as config labels.
func (s spec) labels(version, commit string, created time.Time) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       s.Title,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    commit,
		"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
	}
}

// env is the image's whole environment.
func (s spec) env() []string { return append(append([]string(nil), s.BaseEnv...), s.Env...) }

// ldflags stamps the build: main.version, main.commit and main.date of
// cmd/archiver (version.go), symbols and DWARF stripped.
func ldflags(version, commit, date string) string {
	return "-s -w -X main.version=" + version + " -X main.commit=" + commit + " -X main.date=" + date
}

// buildEnv is the environment of the static build, besides the caller's.
func buildEnv(arch string) []string {
	return []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch}
}

// buildFlags are the go build flags of the binary, before -o and the
// package. -buildvcs=false: the stamp comes from the ldflags, never from
// the state of the work tree (which would make the binary differ between
// a clean and a dirty tree of the same commit).
func buildFlags(version, commit, date string) []string {
	return []string{"-trimpath", "-buildvcs=false", "-ldflags", ldflags(version, commit, date)}
}

// entry is one file or directory of the layer.
type entry struct {
	Path     string // without the leading "/"; directories end in "/"
	Mode     int64  // permission bits (and sticky)
	UID, GID int
}

func (e entry) isDir() bool { return strings.HasSuffix(e.Path, "/") }

// The files of the layer besides the binary, in the order they are written.
const (
	passwdFile     = "etc/passwd"
	groupFile      = "etc/group"
	nsswitchFile   = "etc/nsswitch.conf"
	caCertsFile    = "etc/ssl/certs/ca-certificates.crt"
	passwdContents = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	groupContents = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"nonroot:x:65532:\n"
	// Go's resolver reads it: hosts files first, then DNS (as distroless).
	nsswitchContents = "hosts: files dns\n"
)

// layout is every entry of the layer, sorted by path, parents first.
func (s spec) layout() []entry {
	bin := strings.TrimPrefix(s.BinaryPath, "/")
	return []entry{
		{Path: "etc/", Mode: 0o755},
		{Path: groupFile, Mode: 0o644},
		{Path: nsswitchFile, Mode: 0o644},
		{Path: passwdFile, Mode: 0o644},
		{Path: "etc/ssl/", Mode: 0o755},
		{Path: "etc/ssl/certs/", Mode: 0o755},
		{Path: caCertsFile, Mode: 0o644},
		{Path: "home/", Mode: 0o755},
		{Path: "home/nonroot/", Mode: 0o700, UID: 65532, GID: 65532},
		{Path: "tmp/", Mode: 0o1777},
		{Path: "usr/", Mode: 0o755},
		{Path: "usr/local/", Mode: 0o755},
		{Path: "usr/local/bin/", Mode: 0o755},
		{Path: bin, Mode: 0o755},
	}
}
