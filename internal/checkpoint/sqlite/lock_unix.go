//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// lockFile takes an exclusive, non-blocking flock on lockPath and writes our
// PID into it. The kernel drops the lock when the file is closed or the
// process dies, so a crashed daemon never leaves a stale lock behind. flock
// locks belong to the open file description: a second lockFile in the same
// process conflicts too.
func lockFile(dbPath, lockPath string) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: open lock %s: %w", lockPath, err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := readPID(f)
			f.Close()
			return nil, &checkpoint.LockedError{Path: dbPath, PID: pid}
		}
		f.Close()
		return nil, fmt.Errorf("checkpoint: lock %s: %w", lockPath, err)
	}
	if err := writePID(f, os.Getpid()); err != nil {
		unlockFile(f)
		return nil, fmt.Errorf("checkpoint: write pid to %s: %w", lockPath, err)
	}
	return f, nil
}

// Held reports whether a process holds the state at path (its
// path+".lock" flock, as Open takes it), and that process's PID when
// readable. It takes no lock: a shared flock is tried and dropped at once.
// A missing lock file is no holder.
func Held(path string) (pid int, held bool, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, false, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	f, err := os.Open(abs + ".lock")
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("checkpoint: open lock %s.lock: %w", abs, err)
	}
	defer f.Close()
	switch err := flock(f, unix.LOCK_SH|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return readPID(f), true, nil
	case err != nil:
		return 0, false, fmt.Errorf("checkpoint: lock %s.lock: %w", abs, err)
	}
	return 0, false, flock(f, unix.LOCK_UN)
}

// unlockFile releases the lock. The PID is left in the file on purpose:
// truncating it after unlocking would race with the next owner's write.
func unlockFile(f *os.File) error {
	err := flock(f, unix.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

func writePID(f *os.File, pid int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return err
}

// readPID returns the PID the holder wrote, 0 when it is unreadable (for
// example while the holder is between truncating and writing).
func readPID(f *os.File) int {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
