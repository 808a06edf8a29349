package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultRepository is the repository the Kubernetes manifests pull from.
const defaultRepository = "ghcr.io/cec-archiver/cec-archiver"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// outputs says where the image goes.
type outputs struct {
	OCI           string // an OCI image layout directory (created; must be empty or absent)
	DockerArchive string // a docker-archive tarball (docker load, podman load)
	Repository    string // repository of the tag
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("image", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		o    options
		out  outputs
		date string
	)
	flags.StringVar(&o.Version, "version", "", "the version: main.version, the label and the tag (required)")
	flags.StringVar(&o.Commit, "commit", "", "the git commit: main.commit and the revision label")
	flags.StringVar(&date, "date", "", "build time, RFC 3339: main.date, the created time and every file's mtime (required)")
	flags.StringVar(&o.Arch, "arch", runtime.GOARCH, "GOARCH of the image")
	flags.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle to put in the image")
	flags.StringVar(&o.Binary, "binary", "", "use this binary (built with the same flags) instead of building one")
	flags.StringVar(&o.ModuleDir, "C", ".", "the module root")
	flags.StringVar(&o.Go, "go", "go", "the go command")
	flags.StringVar(&out.OCI, "oci", "", "write an OCI image layout to this `directory`")
	flags.StringVar(&out.DockerArchive, "docker-archive", "", "write a docker-archive tarball to this `file` (docker load / podman load)")
	flags.StringVar(&out.Repository, "repository", defaultRepository, "the repository of the tag")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}
	if date != "" {
		t, err := time.Parse(time.RFC3339, date)
		if err != nil {
			return fmt.Errorf("-date: %w", err)
		}
		o.Created = t
	}
	if err := o.validate(); err != nil {
		return err
	}
	if out.OCI == "" && out.DockerArchive == "" {
		return errors.New("nothing to write: give -oci DIR, -docker-archive FILE or both")
	}
	res, err := build(ctx, o, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "image %s\ndigest %s\n", res.Ref, res.Digest)
	if out.OCI != "" {
		fmt.Fprintf(stdout, "oci layout %s\n", out.OCI)
	}
	if out.DockerArchive != "" {
		fmt.Fprintf(stdout, "docker archive %s\n", out.DockerArchive)
	}
	return nil
}

// result is what build made.
type result struct {
	Ref    name.Tag
	Digest v1.Hash // of the image manifest
	Image  v1.Image
}

// build builds (or takes) the binary, assembles the image and writes it.
func build(ctx context.Context, o options, out outputs) (result, error) {
	ref, err := name.NewTag(out.Repository + ":" + o.Version)
	if err != nil {
		return result{}, fmt.Errorf("tag: %w", err)
	}
	bin := o.Binary
	if bin == "" {
		tmp, err := os.MkdirTemp("", "archiver-image-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(tmp)
		if bin, err = buildBinary(ctx, o, tmp); err != nil {
			return result{}, err
		}
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return result{}, err
	}
	ca, err := os.ReadFile(o.CACerts)
	if err != nil {
		return result{}, fmt.Errorf("-ca-certs: %w", err)
	}
	img, err := assemble(o, binary, ca)
	if err != nil {
		return result{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return result{}, err
	}
	if out.OCI != "" {
		if err := writeOCI(out.OCI, ref, img); err != nil {
			return result{}, fmt.Errorf("oci layout %s: %w", out.OCI, err)
		}
	}
	if out.DockerArchive != "" {
		if err := writeDockerArchive(out.DockerArchive, ref, img); err != nil {
			return result{}, fmt.Errorf("docker archive %s: %w", out.DockerArchive, err)
		}
	}
	return result{Ref: ref, Digest: digest, Image: img}, nil
}

// writeOCI writes an OCI image layout into dir, which must be absent or
// empty: the image, tagged in index.json with the annotation
// org.opencontainers.image.ref.name (so skopeo copy oci:DIR:VERSION and
// crane push DIR find it).
func writeOCI(dir string, ref name.Tag, img v1.Image) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return errors.New("not empty")
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.WriteImage(img); err != nil {
		return err
	}
	// The descriptor is written here rather than by AppendImage, which
	// adds an artifactType (meant for artifacts, not images) and no
	// platform.
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := img.Size()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if err := p.AppendDescriptor(v1.Descriptor{
		MediaType: mt, Size: size, Digest: digest,
		Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		Annotations: map[string]string{
			"org.opencontainers.image.ref.name": ref.TagStr(),
			"io.containerd.image.name":          ref.Name(),
		},
	}); err != nil {
		return err
	}
	return normalizeModes(dir)
}

// normalizeModes makes every file of the layout 0644 and every directory
// 0755, whatever the umask and the library's temporary files left.
func normalizeModes(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(path, mode)
	})
}

// writeDockerArchive writes the image as a docker-archive tarball tagged ref,
// through a temporary file renamed into place.
func writeDockerArchive(file string, ref name.Tag, img v1.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(ref, img, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
