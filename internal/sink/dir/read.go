package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"slices"
	"strings"
	"syscall"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

var _ sink.Reader = (*Sink)(nil)

// List implements sink.Reader. It walks the directories under Options.Root
// that can hold keys starting with prefix, one directory listing in memory
// per level, and yields the regular files; anything else (symlinks, sockets,
// empty directories) is not an object and is left out. The top-level
// ReservedPrefix directory (sidecars, temp files) is never entered. SHA256
// comes from the sidecar when it describes the file's current size, and is
// empty otherwise (List does not hash; Stat does).
func (s *Sink) List(ctx context.Context, prefix string) iter.Seq2[sink.Object, error] {
	return func(yield func(sink.Object, error) bool) {
		for obj, err := range s.list(ctx, prefix) {
			if !yield(obj, classify(err)) {
				return
			}
		}
	}
}

func (s *Sink) list(ctx context.Context, prefix string) iter.Seq2[sink.Object, error] {
	return func(yield func(sink.Object, error) bool) {
		if err := sink.ValidatePrefix(prefix); err != nil {
			yield(sink.Object{}, fmt.Errorf("dir: list %s: %w", prefix, err))
			return
		}
		start := "."
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			start = prefix[:i]
		}
		if start != "." {
			fi, err := s.root.Stat(start)
			switch {
			case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), err == nil && !fi.IsDir():
				return // no key can start with prefix
			case err != nil:
				yield(sink.Object{}, fmt.Errorf("dir: list %s: %w", prefix, err))
				return
			}
		}
		if _, err := s.walk(ctx, start, prefix, yield); err != nil {
			yield(sink.Object{}, fmt.Errorf("dir: list %s: %w", prefix, err))
		}
	}
}

// walk yields the regular files under dir (a key prefix, "." for the root)
// whose key starts with prefix, in key order. It returns false when yield
// asked to stop.
func (s *Sink) walk(ctx context.Context, dir, prefix string, yield func(sink.Object, error) bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return false, err
	}
	// Key order, not name order: a directory's keys continue with "/", so
	// "a/x" sorts before "a0" but after "a-b".
	sortName := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortName(a), sortName(b)) })
	for _, e := range entries {
		key := e.Name()
		if dir != "." {
			key = dir + "/" + key
		} else if strings.HasPrefix(key, sink.ReservedPrefix) {
			continue
		}
		switch {
		case e.IsDir():
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				continue
			}
			if more, err := s.walk(ctx, key, prefix, yield); !more || err != nil {
				return more, err
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return false, err
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the directory was read
			}
			if err != nil {
				return false, err
			}
			obj := sink.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime()}
			if sc, ok := s.readSidecar(key); ok && sc.Size == fi.Size() {
				obj.SHA256 = sc.SHA256
			}
			if !yield(obj, nil) {
				return false, nil
			}
		}
	}
	return true, nil
}

// Open implements sink.Reader. Size and Modified describe the opened file;
// SHA256 comes from the sidecar when it describes that size.
func (s *Sink) Open(ctx context.Context, key string) (io.ReadCloser, sink.Object, error) {
	rc, obj, err := s.open(ctx, key)
	return rc, obj, classify(err)
}

func (s *Sink) open(ctx context.Context, key string) (io.ReadCloser, sink.Object, error) {
	if err := sink.ValidateKey(key); err != nil {
		return nil, sink.Object{}, fmt.Errorf("dir: open %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, sink.Object{}, fmt.Errorf("dir: open %s: %w", key, err)
	}
	f, err := s.root.Open(key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, sink.Object{}, fmt.Errorf("dir: open %s: %w", key, sink.ErrNotFound)
		}
		return nil, sink.Object{}, fmt.Errorf("dir: open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, sink.Object{}, fmt.Errorf("dir: open %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, sink.Object{}, fmt.Errorf("dir: open %s: %w: not a regular file (a prefix of other keys?)", key, sink.ErrConflict)
	}
	obj := sink.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime()}
	if sc, ok := s.readSidecar(key); ok && sc.Size == fi.Size() {
		obj.SHA256, obj.Metadata, obj.Tags = sc.SHA256, sc.Metadata, sc.Tags
	}
	return f, obj, nil
}
