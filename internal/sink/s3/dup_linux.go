//go:build linux

package s3

import (
	"os"
	"strconv"
	"syscall"
)

const canDup = true

// dupFile opens f again, read-only, as a new open file description: its own
// offset, so that the kernel's sendfile, which moves the offset of the
// descriptor it reads, never shares one with another transfer of the same
// spool file (a request the store answered early may still be sending when
// the file is reused). /proc/self/fd reaches the unlinked spool file.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var name string
	if err := rc.Control(func(fd uintptr) { name = "/proc/self/fd/" + strconv.FormatUint(uint64(fd), 10) }); err != nil {
		return nil, err
	}
	return os.OpenFile(name, os.O_RDONLY|syscall.O_CLOEXEC, 0)
}
