package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident returns how many of path's pages are in the page cache.
func resident(t *testing.T, path string) (in, all int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			in++
		}
	}
	return in, len(vec)
}

// TestDropCached: the files under a run's directory (nested, as a bucket's
// objects are) leave the page cache, the written ones included.
func TestDropCached(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bucket", "a", "object")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if in, all := resident(t, path); in < all/2 {
		t.Skipf("only %d of %d pages cached after writing and reading the file: nothing to drop here", in, all)
	}
	if failed := dropCached(dir); failed != 0 {
		t.Fatalf("dropCached: %d files not dropped", failed)
	}
	if in, all := resident(t, path); in > all/10 {
		t.Errorf("%d of %d pages still cached after dropCached", in, all)
	}
}
