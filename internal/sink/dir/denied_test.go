package dir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/internal/stream"
)

// TestClassify: a refused permission is sink.ErrAccessDenied, with the
// original error and message kept. (Tests run as root, which no mode bit
// refuses, so the mapping is tested directly.)
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		denied bool
	}{
		{"Nil", nil, false},
		{"EACCES", fmt.Errorf("dir: put a/b: %w", &fs.PathError{Op: "open", Path: "a/b", Err: syscall.EACCES}), true},
		{"EPERM", &fs.PathError{Op: "link", Path: "a/b", Err: syscall.EPERM}, true},
		{"ErrPermission", os.ErrPermission, true},
		{"NotExist", &fs.PathError{Op: "open", Path: "a/b", Err: syscall.ENOENT}, false},
		{"ReadOnlyFS", &fs.PathError{Op: "open", Path: "a/b", Err: syscall.EROFS}, false},
		{"SourceError", &stream.SourceError{Err: os.ErrPermission}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			if errors.Is(got, sink.ErrAccessDenied) != tc.denied {
				t.Fatalf("errors.Is(classify(%v), sink.ErrAccessDenied) = %v, want %v", tc.err, !tc.denied, tc.denied)
			}
			if tc.err == nil {
				if got != nil {
					t.Fatalf("classify(nil) = %v", got)
				}
				return
			}
			if got.Error() != tc.err.Error() || !errors.Is(got, tc.err) {
				t.Errorf("classify(%v) = %v: the original error must stay, message and chain", tc.err, got)
			}
		})
	}
}
