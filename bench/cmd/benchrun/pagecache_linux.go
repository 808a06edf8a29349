package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// dropCached writes back every file under dir and drops its pages from the
// page cache (posix_fadvise DONTNEED), as best it can, and returns how many
// files it could not drop.
func dropCached(dir string) (failed int) {
	syscall.Sync() // a dirty page is not dropped
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			failed++
			return nil
		}
		if unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) != nil {
			failed++
		}
		f.Close()
		return nil
	})
	return failed
}
