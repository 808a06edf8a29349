package dir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
	"github.com/cec-archiver/cec-archiver/internal/sink/sinktest"
)

func newSink(t *testing.T) (*dir.Sink, string) {
	t.Helper()
	root := t.TempDir()
	s, err := dir.New(dir.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root
}

func TestSink_Conformance(t *testing.T) {
	s, root := newSink(t)
	sinktest.Run(t, sinktest.Harness{
		Sink:      s,
		LargeSize: 100 << 20,
		Read: func(t *testing.T, key string) []byte {
			b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(key)))
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Attributes: func(t *testing.T, key string) (map[string]string, map[string]string) {
			obj, err := s.Stat(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			return obj.Metadata, obj.Tags
		},
		Leftovers: func(t *testing.T, key string) []string {
			names, err := s.TempFiles()
			if err != nil {
				t.Fatal(err)
			}
			return names
		},
	})
}

func TestSink_StatWithoutSidecar(t *testing.T) {
	s, root := newSink(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "a/b.wav", strings.NewReader("hello"), 5, sink.Meta{}); err != nil {
		t.Fatal(err)
	}
	// A crash between publishing and writing the sidecar.
	if err := os.Remove(filepath.Join(root, sink.ReservedPrefix, "meta", "a", "b.wav.json")); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Stat(ctx, "a/b.wav")
	if err != nil {
		t.Fatal(err)
	}
	if obj.SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("sha256 = %s", obj.SHA256)
	}
	got, err := s.Put(ctx, "a/b.wav", strings.NewReader("hello"), -1, sink.Meta{})
	if err != nil || !got.Existed {
		t.Errorf("Put again = %+v, %v; want Existed", got, err)
	}
}

func TestSink_SymlinkEscape(t *testing.T) {
	s, root := newSink(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(context.Background(), "evil/x", strings.NewReader("x"), 1, sink.Meta{})
	if err == nil {
		t.Fatal("Put through a symlink leaving the root succeeded")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the root: %v", entries)
	}
}

func TestSink_KeyPrefixOfAnother(t *testing.T) {
	s, _ := newSink(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "a/b", strings.NewReader("x"), 1, sink.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a", strings.NewReader("y"), 1, sink.Meta{}); err == nil {
		t.Error("Put of a key that is a directory succeeded")
	}
	if _, err := s.Put(ctx, "a/b/c", strings.NewReader("y"), 1, sink.Meta{}); err == nil {
		t.Error("Put below an object succeeded")
	}
}

func TestSink_Janitor(t *testing.T) {
	s, root := newSink(t)
	tmp := filepath.Join(root, sink.ReservedPrefix, "tmp")
	old := filepath.Join(tmp, "put-old")
	if err := os.WriteFile(old, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "put-new"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := s.Janitor(context.Background(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Janitor = %d, %v; want 1", n, err)
	}
	names, _ := s.TempFiles()
	if len(names) != 1 || names[0] != "put-new" {
		t.Errorf("temp files after janitor: %v", names)
	}
}

func TestSink_ListSkipsNonObjects(t *testing.T) {
	s, root := newSink(t)
	ctx := context.Background()
	for _, k := range []string{"t/a.wav", "t/b.wav"} {
		if _, err := s.Put(ctx, k, strings.NewReader("hello"), 5, sink.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	// Not objects: a symlink, an empty directory, and the sink's own files
	// (sidecars, a temp file).
	if err := os.Symlink(filepath.Join(root, "t", "a.wav"), filepath.Join(root, "t", "link.wav")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "t", "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, sink.ReservedPrefix, "tmp", "put-x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// b.wav loses its sidecar: List does not hash, Open does not either.
	if err := os.Remove(filepath.Join(root, sink.ReservedPrefix, "meta", "t", "b.wav.json")); err != nil {
		t.Fatal(err)
	}
	var got []sink.Object
	for obj, err := range s.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, obj)
	}
	const hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if len(got) != 2 || got[0].Key != "t/a.wav" || got[1].Key != "t/b.wav" {
		t.Fatalf("List = %+v, want t/a.wav and t/b.wav only", got)
	}
	if got[0].SHA256 != hello || got[1].SHA256 != "" {
		t.Errorf("List sha256 = %q, %q; want the sidecar's, then empty", got[0].SHA256, got[1].SHA256)
	}
	rc, obj, err := s.Open(ctx, "t/b.wav")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if obj.Size != 5 || obj.SHA256 != "" {
		t.Errorf("Open without sidecar = %+v, want size 5 and no digest", obj)
	}
}
