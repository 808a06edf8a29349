//go:build !unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
)

// lockFile is not implemented off Unix: without a lock two daemons could
// share one state file, so Open refuses instead.
func lockFile(dbPath, lockPath string) (*os.File, error) {
	return nil, fmt.Errorf("checkpoint: lock %s: %w", lockPath, errors.ErrUnsupported)
}

func unlockFile(f *os.File) error { return f.Close() }

// Held is not implemented off Unix.
func Held(path string) (pid int, held bool, err error) {
	return 0, false, fmt.Errorf("checkpoint: lock %s.lock: %w", path, errors.ErrUnsupported)
}
