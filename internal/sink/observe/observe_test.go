package observe_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/dir"
	"github.com/cec-archiver/cec-archiver/internal/sink/observe"
)

// report is one call of Report.
type report struct {
	op  string
	err error
	d   time.Duration
}

type reports struct {
	mu  sync.Mutex
	got []report
}

func (r *reports) add(op string, err error, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, report{op, err, d})
}

func (r *reports) take() []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// failing is a Sink (not a Reader) whose every call fails with err.
type failing struct{ err error }

func (f failing) Put(context.Context, string, io.Reader, int64, sink.Meta) (sink.Object, error) {
	return sink.Object{}, f.err
}
func (f failing) Stat(context.Context, string) (sink.Object, error) { return sink.Object{}, f.err }

func TestNew(t *testing.T) {
	t.Run("a Sink stays a Sink", func(t *testing.T) {
		s := observe.New(failing{}, nil)
		if _, ok := s.(sink.Reader); ok {
			t.Error("the decorator of a sink without Reader claims to be a Reader")
		}
		if _, ok := s.(*observe.Sink); !ok {
			t.Errorf("New returned %T, want *observe.Sink", s)
		}
	})
	t.Run("a Reader stays a Reader", func(t *testing.T) {
		d, err := dir.New(dir.Options{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if _, ok := observe.New(d, nil).(sink.Reader); !ok {
			t.Error("the decorator of a dir sink is not a sink.Reader")
		}
	})
}

func TestSink_Report(t *testing.T) {
	ctx := context.Background()
	t.Run("errors", func(t *testing.T) {
		boom := errors.New("boom")
		var r reports
		s := observe.New(failing{boom}, r.add)
		if _, err := s.Put(ctx, "k", bytes.NewReader(nil), 0, sink.Meta{}); err != boom {
			t.Errorf("Put: %v, want the wrapped error as is", err)
		}
		if _, err := s.Stat(ctx, "k"); err != boom {
			t.Errorf("Stat: %v, want the wrapped error as is", err)
		}
		got := r.take()
		if len(got) != 2 || got[0].op != observe.OpPut || got[1].op != observe.OpStat ||
			got[0].err != boom || got[1].err != boom {
			t.Errorf("reports %+v, want put and stat with boom", got)
		}
	})
	t.Run("a dir sink passed through", func(t *testing.T) {
		d, err := dir.New(dir.Options{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		var r reports
		s := observe.New(d, r.add)
		body := []byte("hello")
		obj, err := s.Put(ctx, "a/b.bin", bytes.NewReader(body), int64(len(body)), sink.Meta{})
		if err != nil || obj.Size != int64(len(body)) {
			t.Fatalf("Put: %+v, %v", obj, err)
		}
		if _, err := s.Stat(ctx, "a/missing.bin"); !errors.Is(err, sink.ErrNotFound) {
			t.Fatalf("Stat of a missing key: %v", err)
		}
		rd := s.(sink.Reader)
		var keys []string
		for o, err := range rd.List(ctx, "a/") {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, o.Key)
		}
		if len(keys) != 1 || keys[0] != "a/b.bin" {
			t.Errorf("List: %q", keys)
		}
		rc, _, err := rd.Open(ctx, "a/b.bin")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(rc); !bytes.Equal(got, body) {
			t.Errorf("Open read %q", got)
		}
		rc.Close()
		got := r.take()
		want := []struct {
			op    string
			found bool // err is nil
		}{{observe.OpPut, true}, {observe.OpStat, false}, {observe.OpList, true}, {observe.OpOpen, true}}
		if len(got) != len(want) {
			t.Fatalf("reports %+v, want %d", got, len(want))
		}
		for i, w := range want {
			if got[i].op != w.op || (got[i].err == nil) != w.found || got[i].d <= 0 {
				t.Errorf("report %d = %+v, want op %s, err nil %v", i, got[i], w.op, w.found)
			}
		}
	})
}
