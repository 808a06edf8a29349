package dir_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
)

// TestSink_RefusesLock: a Put that asks for a retention or a legal hold
// fails with ErrLockUnsupported and leaves nothing; an empty lock is no
// demand.
func TestSink_RefusesLock(t *testing.T) {
	s, err := dir.New(dir.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, l := range []*sink.ObjectLock{
		{Mode: sink.LockGovernance, RetainUntil: time.Now().Add(time.Hour)},
		{LegalHold: true},
	} {
		if _, err := s.Put(ctx, "a/locked", strings.NewReader("x"), 1, sink.Meta{Lock: l}); !errors.Is(err, sink.ErrLockUnsupported) {
			t.Errorf("Put with lock %+v = %v, want ErrLockUnsupported", l, err)
		}
		if _, err := s.Stat(ctx, "a/locked"); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("refused Put left an object: %v", err)
		}
	}
	if _, err := s.Put(ctx, "a/plain", strings.NewReader("x"), 1, sink.Meta{Lock: &sink.ObjectLock{}}); err != nil {
		t.Errorf("Put with an empty lock = %v", err)
	}
}
