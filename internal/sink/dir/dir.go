// Package dir is the sink that keeps objects as files under a local
// directory: the embedded default, for a single host or a mounted volume.
//
// Layout under the root directory:
//
//	<key>                                  the object bytes
//	.cec-archiver/meta/<key>.json          sidecar: size, sha256, metadata, tags
//	.cec-archiver/tmp/put-*                bodies being written
//
// A Put writes the body to a temp file, fsyncs it, then publishes it with a
// hard link, which fails when the key exists: the create-only check is atomic
// even between processes, and unlike rename it can never replace a file. The
// sidecar is written after the link (temp file, fsync, rename); a crash in
// between leaves an object without sidecar, whose digest Stat computes from
// the bytes. All paths go through os.Root, so no key can leave the root, not
// even through a symlink planted inside it.
package dir

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/internal/stream"
)

const (
	metaDir   = sink.ReservedPrefix + "/meta"
	tmpDir    = sink.ReservedPrefix + "/tmp"
	tmpPrefix = "put-"
	fileMode  = 0o640
	dirMode   = 0o750
)

// Options configure a Sink.
type Options struct {
	// Root is the directory holding the objects; it is created if missing.
	Root   string
	Logger *zap.Logger // nil: no logging
}

// Sink stores objects as files under Options.Root.
type Sink struct {
	root *os.Root
	log  *zap.Logger
}

var _ sink.Sink = (*Sink)(nil)

// New opens (creating if needed) the root directory.
func New(opts Options) (*Sink, error) {
	s, err := newSink(opts)
	return s, classify(err)
}

func newSink(opts Options) (*Sink, error) {
	if opts.Root == "" {
		return nil, errors.New("dir: root directory is empty")
	}
	if err := os.MkdirAll(opts.Root, dirMode); err != nil {
		return nil, fmt.Errorf("dir: create root: %w", err)
	}
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("dir: open root: %w", err)
	}
	for _, d := range []string{metaDir, tmpDir} {
		if err := root.MkdirAll(d, dirMode); err != nil {
			root.Close()
			return nil, fmt.Errorf("dir: create %s: %w", d, err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Sink{root: root, log: log.Named("sink.dir")}, nil
}

// Close releases the root directory.
func (s *Sink) Close() error { return s.root.Close() }

type sidecar struct {
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	SHA256      string            `json:"sha256"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Created     time.Time         `json:"created"`
}

// Put implements sink.Sink.
func (s *Sink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	obj, err := s.put(ctx, key, body, size, meta)
	return obj, classify(err)
}

func (s *Sink) put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if err := sink.ValidateKey(key); err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	if err := sink.ValidateMeta(meta); err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	if meta.Lock.Requires() {
		// A file can be deleted by whoever can write the directory: refuse
		// rather than store it unprotected.
		return sink.Object{}, fmt.Errorf("dir: put %s: %w: the dir sink cannot keep a retention or legal hold (use the s3 sink on a bucket with Object Lock)",
			key, sink.ErrLockUnsupported)
	}
	body = stream.SourceReader{R: body}
	existing, err := s.Stat(ctx, key)
	switch {
	case err == nil:
		return s.compare(ctx, key, existing, body, size, meta)
	case !errors.Is(err, sink.ErrNotFound):
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}

	tmp, n, sum, err := s.writeTemp(ctx, body, size, meta)
	if err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	defer func() {
		if err := s.root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("remove temp file", zap.String("file", tmp), zap.Error(err))
		}
	}()
	if err := s.mkdirAll(path.Dir(key)); err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	if err := s.root.Link(tmp, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Lost a race with another writer: decide like any existing key.
			existing, err := s.Stat(ctx, key)
			if err != nil {
				return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
			}
			obj, err := stream.Compare(key, existing, n, sum)
			if err != nil {
				return obj, fmt.Errorf("dir: put %s: %w", key, err)
			}
			return obj, nil
		}
		return sink.Object{}, fmt.Errorf("dir: put %s: publish: %w", key, err)
	}
	if err := s.syncDir(path.Dir(key)); err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	sc := sidecar{
		Key: key, Size: n, SHA256: sum, ContentType: meta.ContentType,
		Metadata: meta.Metadata, Tags: meta.Tags, Created: time.Now().UTC(),
	}
	if err := s.writeSidecar(sc); err != nil {
		// The object is durable and its digest can be recomputed; report the
		// failure so the caller retries, which then finds the same content.
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	// Read back what was published: size and digest of the file at key.
	got, gotSum, err := s.hashFile(ctx, key)
	if err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: verify: %w", key, err)
	}
	if got != n || gotSum != sum {
		return sink.Object{}, fmt.Errorf("dir: put %s: verify: %w: stored %d bytes sha256 %s, wrote %d bytes sha256 %s",
			key, sink.ErrChecksumMismatch, got, gotSum, n, sum)
	}
	fi, err := s.root.Stat(key)
	if err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	return sink.Object{Key: key, Size: n, SHA256: sum, Modified: fi.ModTime()}, nil
}

// compare drains body and decides against the existing object.
func (s *Sink) compare(ctx context.Context, key string, existing sink.Object, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	n, sum, err := stream.Digest(ctx, body, size)
	if err == nil {
		err = stream.CheckDigest(meta.SHA256, sum)
	}
	if err != nil {
		return sink.Object{}, fmt.Errorf("dir: put %s: %w", key, err)
	}
	obj, err := stream.Compare(key, existing, n, sum)
	if err != nil {
		return obj, fmt.Errorf("dir: put %s: %w", key, err)
	}
	return obj, nil
}

// writeTemp copies body into a fresh fsynced temp file and checks size and
// digest. On error nothing is left behind.
func (s *Sink) writeTemp(ctx context.Context, body io.Reader, size int64, meta sink.Meta) (_ string, n int64, sum string, err error) {
	name := tmpDir + "/" + tmpPrefix + randHex(12)
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return "", 0, "", fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = s.root.Remove(name)
		}
	}()
	h := sha256.New()
	src := io.Reader(stream.ContextReader{Ctx: ctx, R: body})
	if size >= 0 {
		src = io.LimitReader(src, size+1)
	}
	n, err = io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		return "", n, "", err
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if err = stream.CheckSize(size, n); err != nil {
		return "", n, "", err
	}
	if err = stream.CheckDigest(meta.SHA256, sum); err != nil {
		return "", n, "", err
	}
	if err = f.Sync(); err != nil {
		return "", n, "", fmt.Errorf("sync temp file: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return "", n, "", fmt.Errorf("close temp file: %w", err)
	}
	return name, n, sum, nil
}

// mkdirAll creates dir and fsyncs each parent whose entry it added, so a
// published file is not lost with a directory that never reached the disk.
func (s *Sink) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	if fi, err := s.root.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is an object, not a directory", sink.ErrConflict, dir)
		}
		return nil
	}
	if err := s.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	if err := s.root.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		if errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%w: a parent of %s is an object, not a directory", sink.ErrConflict, dir)
		}
		return fmt.Errorf("create directory: %w", err)
	}
	return s.syncDir(path.Dir(dir))
}

func (s *Sink) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

func (s *Sink) writeSidecar(sc sidecar) error {
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return err
	}
	name := metaDir + "/" + sc.Key + ".json"
	if err := s.mkdirAll(path.Dir(name)); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	tmp := tmpDir + "/" + tmpPrefix + randHex(12)
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, name)
	}
	if err != nil {
		_ = s.root.Remove(tmp)
		return fmt.Errorf("sidecar: %w", err)
	}
	return s.syncDir(path.Dir(name))
}

func (s *Sink) readSidecar(key string) (sidecar, bool) {
	b, err := s.root.ReadFile(metaDir + "/" + key + ".json")
	if err != nil {
		return sidecar{}, false
	}
	var sc sidecar
	if err := json.Unmarshal(b, &sc); err != nil || sc.Key != key {
		s.log.Warn("ignoring unreadable sidecar", zap.String("key", key), zap.Error(err))
		return sidecar{}, false
	}
	return sc, true
}

// Stat implements sink.Sink. Without a sidecar (a crash between publishing
// and writing it) the digest is computed from the file.
func (s *Sink) Stat(ctx context.Context, key string) (sink.Object, error) {
	obj, err := s.stat(ctx, key)
	return obj, classify(err)
}

func (s *Sink) stat(ctx context.Context, key string) (sink.Object, error) {
	if err := sink.ValidateKey(key); err != nil {
		return sink.Object{}, fmt.Errorf("dir: stat %s: %w", key, err)
	}
	fi, err := s.root.Stat(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return sink.Object{}, fmt.Errorf("dir: stat %s: %w", key, sink.ErrNotFound)
		}
		return sink.Object{}, fmt.Errorf("dir: stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return sink.Object{}, fmt.Errorf("dir: stat %s: %w: not a regular file (a prefix of other keys?)", key, sink.ErrConflict)
	}
	obj := sink.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime()}
	if sc, ok := s.readSidecar(key); ok && sc.Size == fi.Size() {
		obj.SHA256 = sc.SHA256
		obj.Metadata = sc.Metadata
		obj.Tags = sc.Tags
		obj.ContentType = sc.ContentType
		return obj, nil
	}
	n, sum, err := s.hashFile(ctx, key)
	if err != nil {
		return sink.Object{}, fmt.Errorf("dir: stat %s: %w", key, err)
	}
	obj.Size, obj.SHA256 = n, sum
	return obj, nil
}

func (s *Sink) hashFile(ctx context.Context, key string) (int64, string, error) {
	f, err := s.root.Open(key)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	return stream.Digest(ctx, f, -1)
}

// Janitor removes temp files older than olderThan, left by a process that
// died mid-write (reliability F1), and returns how many it removed.
func (s *Sink) Janitor(ctx context.Context, olderThan time.Duration) (int, error) {
	n, err := s.janitor(ctx, olderThan)
	return n, classify(err)
}

func (s *Sink) janitor(ctx context.Context, olderThan time.Duration) (int, error) {
	d, err := s.root.Open(tmpDir)
	if err != nil {
		return 0, fmt.Errorf("dir: janitor: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("dir: janitor: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < olderThan {
			continue
		}
		if err := s.root.Remove(tmpDir + "/" + e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("dir: janitor: %w", err)
		}
		removed++
	}
	return removed, nil
}

// TempFiles lists the temp files present now, for tests and diagnostics.
func (s *Sink) TempFiles() ([]string, error) {
	d, err := s.root.Open(tmpDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// classify makes errors.Is(err, sink.ErrAccessDenied) hold for a refused
// permission (os.ErrPermission: EACCES, EPERM). Every exported method passes
// its errors through it.
func classify(err error) error {
	return stream.Classify(err, func(err error) bool { return errors.Is(err, os.ErrPermission) })
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
