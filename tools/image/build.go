package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// options are the inputs of one image. The same options (and the same Go
// toolchain and CA bundle) give the same image digest.
type options struct {
	ModuleDir string    // the module root, where go build runs
	Version   string    // main.version and the tag
	Commit    string    // main.commit, org.opencontainers.image.revision
	Created   time.Time // main.date, the image's created time and every file's mtime
	Arch      string    // GOARCH
	CACerts   string    // the CA bundle copied to /etc/ssl/certs/ca-certificates.crt
	// Binary, when set, is a binary built already (with buildFlags); the
	// build is skipped.
	Binary string
	Go     string // the go command
}

func (o options) validate() error {
	var errs []error
	if o.Version == "" || strings.ContainsAny(o.Version, " \t\n") {
		errs = append(errs, fmt.Errorf("-version %q: required, no spaces", o.Version))
	}
	if strings.ContainsAny(o.Commit, " \t\n") {
		errs = append(errs, fmt.Errorf("-commit %q: no spaces", o.Commit))
	}
	if o.Created.IsZero() {
		errs = append(errs, errors.New("-date: required (RFC 3339, e.g. the commit time)"))
	}
	if o.Arch == "" {
		errs = append(errs, errors.New("-arch: required"))
	}
	return errors.Join(errs...)
}

// date is the build date as main.date and the created label carry it.
func (o options) date() string { return o.Created.UTC().Format(time.RFC3339) }

// buildBinary runs the static build of the archiver into dir and returns
// the binary's path.
func buildBinary(ctx context.Context, o options, dir string) (string, error) {
	s := imageSpec()
	out := filepath.Join(dir, "archiver")
	args := append([]string{"build"}, buildFlags(o.Version, o.Commit, o.date())...)
	args = append(args, "-o", out, s.Main)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.ModuleDir
	// GOFLAGS from the environment could add -buildvcs or -race; the
	// flags above are the whole build.
	cmd.Env = append(append(os.Environ(), buildEnv(o.Arch)...), "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// layerTar is the image's one layer, uncompressed: every entry of
// spec.layout in order, owned by root unless the entry says otherwise, with
// mtime o.Created.
func layerTar(o options, binary, caCerts []byte) ([]byte, error) {
	s := imageSpec()
	contents := map[string][]byte{
		passwdFile:                            []byte(passwdContents),
		groupFile:                             []byte(groupContents),
		nsswitchFile:                          []byte(nsswitchContents),
		caCertsFile:                           caCerts,
		strings.TrimPrefix(s.BinaryPath, "/"): binary,
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := o.Created.UTC().Truncate(time.Second)
	for _, e := range s.layout() {
		h := &tar.Header{Name: e.Path, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: mtime, Format: tar.FormatPAX}
		if e.isDir() {
			h.Typeflag = tar.TypeDir
		} else {
			b, ok := contents[e.Path]
			if !ok {
				return nil, fmt.Errorf("layer: no contents for %s", e.Path)
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(b))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !e.isDir() {
			if _, err := tw.Write(contents[e.Path]); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// assemble builds the image from a binary and a CA bundle.
func assemble(o options, binary, caCerts []byte) (v1.Image, error) {
	s := imageSpec()
	layerBytes, err := layerTar(o, binary, caCerts)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	created := v1.Time{Time: o.Created.UTC().Truncate(time.Second)}
	ports := map[string]struct{}{}
	for _, p := range s.Ports {
		ports[p] = struct{}{}
	}
	cf := &v1.ConfigFile{
		Architecture: o.Arch,
		OS:           "linux",
		Created:      created,
		Config: v1.Config{
			User:         s.User,
			Entrypoint:   s.Entrypoint,
			Cmd:          s.Cmd,
			Env:          s.env(),
			WorkingDir:   s.WorkDir,
			ExposedPorts: ports,
			Labels:       s.labels(o.Version, o.Commit, o.Created),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "tools/image: archiver " + o.Version + " (" + strings.Join(buildFlags(o.Version, o.Commit, o.date()), " ") + ")",
			Comment:   "static binary, CA certificates, nonroot user; no shell",
		},
	})
	if err != nil {
		return nil, err
	}
	return img, nil
}
