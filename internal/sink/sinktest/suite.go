// Package sinktest is the conformance suite every sink.Sink implementation
// runs (see the contract on sink.Sink), plus helpers to generate large test
// bodies without holding them in memory.
//
// Capabilities that only some stores have (Object Lock, server-side
// encryption, multipart uploads) are optional hooks on Harness; the suite
// runs their subtests only when the hook is set and skips them otherwise
// (t.Skip, so a missing capability shows as SKIP, never as PASS).
package sinktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// Harness describes the implementation under test.
type Harness struct {
	// Sink is the sink under test. The suite uses unique keys, so one sink
	// can serve every subtest.
	Sink sink.Sink
	// LargeSize is the size of the "large" bodies: the 100 MB stream and the
	// bodies that fail halfway. For S3 it must exceed the multipart
	// threshold. Default 100 MB.
	LargeSize int64
	// Read returns the stored bytes of key (to prove an original intact).
	Read func(t *testing.T, key string) []byte
	// Attributes returns the stored user metadata and tags of key.
	Attributes func(t *testing.T, key string) (metadata, tags map[string]string)
	// Leftovers lists anything a failed Put may have left behind for key:
	// temp files, open multipart uploads. It must be empty after a failure.
	Leftovers func(t *testing.T, key string) []string
	// WeakCreateOnly says the store cannot make create-only atomic (no
	// conditional writes: HEAD then PUT). The concurrent-writers subtest is
	// then skipped.
	WeakCreateOnly bool

	// Multipart, when set, reports whether key was stored as a multipart
	// upload; the suite expects the large stream to be.
	Multipart func(t *testing.T, key string) bool
	// Lock, when set, returns a sink that writes with Object Lock into a
	// lock-enabled store.
	Lock func(t *testing.T) LockHarness
	// SSE, when set, returns a sink configured for SSE-KMS with KMSKeyID and
	// a recorder of the requests it sends.
	SSE func(t *testing.T) SSEHarness
}

// LockHarness is the Object Lock capability.
type LockHarness struct {
	Sink          sink.Sink
	Mode          string // GOVERNANCE or COMPLIANCE, as configured
	RetentionDays int
	LegalHold     bool
	// Retention reads the stored retention of key.
	Retention func(t *testing.T, key string) (mode string, until time.Time, legalHold bool)
	// DeleteVersion tries to delete the stored version of key; it must fail.
	DeleteVersion func(t *testing.T, key string) error
}

// SSEHarness is the server-side-encryption capability.
type SSEHarness struct {
	Sink     sink.Sink
	KMSKeyID string
	// Requests returns the requests sent so far.
	Requests func() []Request
}

// Request is one recorded outgoing request.
type Request struct {
	Method string
	URL    string
	Header http.Header
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.LargeSize == 0 {
		h.LargeSize = 100 << 20
	}
	run := "conf-" + randHex(4)
	key := func(t *testing.T) string {
		name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
		return run + "/" + name + "/" + randHex(4) + ".bin"
	}
	ctx := context.Background()

	t.Run("PutStat", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			n     int
			known bool
		}{
			{"Small", 1000, true},
			{"SmallUnknownSize", 1000, false},
			{"Empty", 0, true},
			{"EmptyUnknownSize", 0, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				data := Bytes(1, tc.n)
				size := int64(-1)
				if tc.known {
					size = int64(len(data))
				}
				obj, err := h.Sink.Put(ctx, k, OnlyReader(bytes.NewReader(data)), size, sink.Meta{})
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				want := Digest(1, int64(tc.n))
				if obj.Key != k || obj.Size != int64(tc.n) || obj.SHA256 != want || obj.Existed {
					t.Errorf("Put = %+v, want key %s size %d sha256 %s, not existed", obj, k, tc.n, want)
				}
				st, err := h.Sink.Stat(ctx, k)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if st.Size != int64(tc.n) || st.SHA256 != want {
					t.Errorf("Stat = size %d sha256 %s, want %d %s", st.Size, st.SHA256, tc.n, want)
				}
				if got := h.Read(t, k); !bytes.Equal(got, data) {
					t.Errorf("stored %d bytes differ from the %d written", len(got), len(data))
				}
			})
		}
	})

	t.Run("StatMissing", func(t *testing.T) {
		if _, err := h.Sink.Stat(ctx, key(t)); !errors.Is(err, sink.ErrNotFound) {
			t.Errorf("Stat = %v, want ErrNotFound", err)
		}
	})

	t.Run("Reader", func(t *testing.T) { runReader(t, h, run) })

	t.Run("InvalidInput", func(t *testing.T) {
		for _, k := range []string{"", "/abs", "a/../b", "a//b", "a\\b", "a\x00b", "\xff", sink.ReservedPrefix + "/x"} {
			if _, err := h.Sink.Put(ctx, k, strings.NewReader("x"), 1, sink.Meta{}); !errors.Is(err, sink.ErrInvalidKey) {
				t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
			}
		}
		bad := sink.Meta{Metadata: map[string]string{"Bad Key": "v"}}
		if _, err := h.Sink.Put(ctx, key(t), strings.NewReader("x"), 1, bad); !errors.Is(err, sink.ErrInvalidMeta) {
			t.Errorf("Put(bad meta) = %v, want ErrInvalidMeta", err)
		}
	})

	t.Run("CreateOnly", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			n    int64
		}{{"Small", 4096}, {"Large", h.LargeSize / 4}} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				if _, err := h.Sink.Put(ctx, k, Stream(2, tc.n), tc.n, sink.Meta{}); err != nil {
					t.Fatalf("first Put: %v", err)
				}
				t.Run("SameContent", func(t *testing.T) {
					for _, size := range []int64{tc.n, -1} {
						obj, err := h.Sink.Put(ctx, k, OnlyReader(Stream(2, tc.n)), size, sink.Meta{})
						if err != nil {
							t.Fatalf("Put same (size %d): %v", size, err)
						}
						if !obj.Existed || obj.SHA256 != Digest(2, tc.n) || obj.Size != tc.n {
							t.Errorf("Put same = %+v, want Existed with the same digest", obj)
						}
					}
				})
				t.Run("DifferentContent", func(t *testing.T) {
					for _, body := range []struct {
						seed uint64
						n    int64
					}{{3, tc.n}, {2, tc.n - 1}} {
						_, err := h.Sink.Put(ctx, k, OnlyReader(Stream(body.seed, body.n)), -1, sink.Meta{})
						var ce *sink.ConflictError
						if !errors.Is(err, sink.ErrConflict) || !errors.As(err, &ce) {
							t.Fatalf("Put different = %v, want *ConflictError", err)
						}
						if ce.ExistingSHA256 != Digest(2, tc.n) || ce.NewSHA256 != Digest(body.seed, body.n) ||
							ce.ExistingSize != tc.n || ce.NewSize != body.n {
							t.Errorf("ConflictError = %+v", ce)
						}
					}
					st, err := h.Sink.Stat(ctx, k)
					if err != nil || st.SHA256 != Digest(2, tc.n) || st.Size != tc.n {
						t.Errorf("after conflict Stat = %+v, %v; want the original", st, err)
					}
					if tc.n <= 1<<20 && !bytes.Equal(h.Read(t, k), Bytes(2, int(tc.n))) {
						t.Errorf("original bytes changed")
					}
				})
			})
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		if h.WeakCreateOnly {
			t.Skip("the store cannot make create-only atomic (HEAD then PUT)")
		}
		k := key(t)
		const writers = 6
		var wg sync.WaitGroup
		errs := make([]error, writers)
		objs := make([]sink.Object, writers)
		for i := range writers {
			wg.Go(func() {
				seed := uint64(10 + i%2) // two different contents
				objs[i], errs[i] = h.Sink.Put(ctx, k, Stream(seed, 64<<10), 64<<10, sink.Meta{})
			})
		}
		wg.Wait()
		st, err := h.Sink.Stat(ctx, k)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		created := 0
		for i, err := range errs {
			winner := Digest(uint64(10+i%2), 64<<10) == st.SHA256
			switch {
			case winner && err != nil:
				t.Errorf("writer %d with the stored content: %v", i, err)
			case winner && !objs[i].Existed:
				created++
			case !winner && !errors.Is(err, sink.ErrConflict):
				t.Errorf("writer %d with other content: %v, want ErrConflict", i, err)
			}
		}
		if created != 1 {
			t.Errorf("%d writers report creating the object, want exactly 1", created)
		}
	})

	t.Run("ChecksumMismatch", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			n    int64
		}{{"Small", 4096}, {"Large", h.LargeSize / 2}} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				wrong := Digest(99, 1)
				_, err := h.Sink.Put(ctx, k, OnlyReader(Stream(4, tc.n)), -1, sink.Meta{SHA256: wrong})
				if !errors.Is(err, sink.ErrChecksumMismatch) {
					t.Fatalf("Put = %v, want ErrChecksumMismatch", err)
				}
				assertNothing(t, h, k)
				// The right digest goes through.
				if _, err := h.Sink.Put(ctx, k, Stream(4, tc.n), tc.n, sink.Meta{SHA256: Digest(4, tc.n)}); err != nil {
					t.Fatalf("Put with the right digest: %v", err)
				}
			})
		}
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			declared int64
			actual   int64
		}{{"Short", 4096, 4000}, {"Long", 4096, 5000}, {"LargeShort", h.LargeSize / 2, h.LargeSize/2 - 1}} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				_, err := h.Sink.Put(ctx, k, OnlyReader(Stream(5, tc.actual)), tc.declared, sink.Meta{})
				if !errors.Is(err, sink.ErrSizeMismatch) {
					t.Fatalf("Put = %v, want ErrSizeMismatch", err)
				}
				assertNothing(t, h, k)
			})
		}
	})

	t.Run("SourceFailsHalfway", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			n    int64
			size int64
			at   int64 // bytes delivered before the error
		}{
			{"Small", 4096, 4096, 2048},
			{"AfterLastByte", 4096, 4096, 4096},
			{"LargeUnknownSize", h.LargeSize / 2, -1, h.LargeSize / 4},
			{"LargeKnownSize", h.LargeSize / 2, h.LargeSize / 2, h.LargeSize / 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				body := FailAfter(Stream(6, tc.n), tc.at)
				_, err := h.Sink.Put(ctx, k, body, tc.size, sink.Meta{})
				if !errors.Is(err, ErrSource) {
					t.Fatalf("Put = %v, want the source error", err)
				}
				assertNothing(t, h, k)
			})
		}
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		k := key(t)
		cctx, cancel := context.WithCancel(ctx)
		body := &cancelAfter{r: Stream(7, h.LargeSize/2), n: h.LargeSize / 4, cancel: cancel}
		_, err := h.Sink.Put(cctx, k, body, -1, sink.Meta{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put = %v, want context.Canceled", err)
		}
		assertNothing(t, h, k)
	})

	t.Run("MetadataAndTags", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			n    int64
		}{{"Small", 100}, {"Large", h.LargeSize / 4}} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				meta := sink.Meta{
					ContentType: "audio/wav",
					Metadata:    map[string]string{"call-id": "1700000000-42", "vdn": "7", "begin": "2024-05-01T10:00:00Z"},
					Tags:        map[string]string{"call-id": "1700000000-42", "kind": "recording", "note": "a b+c=d:e/f@g"},
				}
				if _, err := h.Sink.Put(ctx, k, Stream(8, tc.n), -1, meta); err != nil {
					t.Fatalf("Put: %v", err)
				}
				md, tags := h.Attributes(t, k)
				for kk, v := range meta.Metadata {
					if md[kk] != v {
						t.Errorf("metadata %s = %q, want %q (all: %v)", kk, md[kk], v, md)
					}
				}
				for kk, v := range meta.Tags {
					if tags[kk] != v {
						t.Errorf("tag %s = %q, want %q (all: %v)", kk, tags[kk], v, tags)
					}
				}
				if st, err := h.Sink.Stat(ctx, k); err != nil || st.SHA256 != Digest(8, tc.n) || st.ContentType != meta.ContentType {
					t.Errorf("Stat = %+v, %v; want sha256 %s and content type %s", st, err, Digest(8, tc.n), meta.ContentType)
				}
			})
		}
	})

	t.Run("LargeStream", func(t *testing.T) {
		k := key(t)
		start := time.Now()
		obj, err := h.Sink.Put(ctx, k, OnlyReader(Stream(9, h.LargeSize)), -1, sink.Meta{})
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		t.Logf("%d MiB in %v", h.LargeSize>>20, time.Since(start).Round(time.Millisecond))
		if obj.Size != h.LargeSize || obj.SHA256 != Digest(9, h.LargeSize) {
			t.Errorf("Put = %+v, want size %d sha256 %s", obj, h.LargeSize, Digest(9, h.LargeSize))
		}
		if r, ok := h.Sink.(sink.Reader); ok {
			// The digest of a stream of unknown size is recorded after the
			// write (S3: a tag); Open reports it as Stat does.
			rc, got, err := r.Open(ctx, k)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			rc.Close()
			if got.Size != h.LargeSize || got.SHA256 != Digest(9, h.LargeSize) {
				t.Errorf("Open = size %d sha256 %s, want %d %s", got.Size, got.SHA256, h.LargeSize, Digest(9, h.LargeSize))
			}
		}
		if h.Multipart == nil {
			t.Log("store has no multipart uploads")
			return
		}
		if !h.Multipart(t, k) {
			t.Errorf("a %d-byte stream was not stored as a multipart upload", h.LargeSize)
		}
	})

	t.Run("ObjectLock", func(t *testing.T) {
		if h.Lock == nil {
			t.Skip("the store has no Object Lock")
		}
		lh := h.Lock(t)
		for _, tc := range []struct {
			name string
			n    int64
		}{{"Small", 100}, {"Large", h.LargeSize / 4}} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				before := time.Now()
				if _, err := lh.Sink.Put(ctx, k, Stream(10, tc.n), -1, sink.Meta{}); err != nil {
					t.Fatalf("Put: %v", err)
				}
				mode, until, hold := lh.Retention(t, k)
				if mode != lh.Mode {
					t.Errorf("retention mode = %q, want %q", mode, lh.Mode)
				}
				want := before.Add(time.Duration(lh.RetentionDays) * 24 * time.Hour)
				if until.Before(want.Add(-time.Minute)) || until.After(want.Add(time.Hour)) {
					t.Errorf("retain until = %v, want about %v", until, want)
				}
				if hold != lh.LegalHold {
					t.Errorf("legal hold = %v, want %v", hold, lh.LegalHold)
				}
				if err := lh.DeleteVersion(t, k); err == nil {
					t.Errorf("deleting the locked version succeeded")
				} else {
					t.Logf("delete refused as it should be: %v", err)
				}
			})
		}
	})

	t.Run("SSE", func(t *testing.T) {
		if h.SSE == nil {
			t.Skip("the store has no server-side encryption")
		}
		sh := h.SSE(t)
		for _, tc := range []struct {
			name string
			n    int64
		}{{"Small", 100}, {"Large", h.LargeSize / 4}} {
			t.Run(tc.name, func(t *testing.T) {
				k := key(t)
				if _, err := sh.Sink.Put(ctx, k, Stream(11, tc.n), -1, sink.Meta{}); err != nil {
					t.Fatalf("Put: %v", err)
				}
				creates := 0
				for _, r := range sh.Requests() {
					if !strings.Contains(r.URL, k) || !createsObject(r) {
						continue
					}
					creates++
					if got := r.Header.Get("X-Amz-Server-Side-Encryption"); got != "aws:kms" {
						t.Errorf("%s %s: x-amz-server-side-encryption = %q, want aws:kms", r.Method, r.URL, got)
					}
					if got := r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); got != sh.KMSKeyID {
						t.Errorf("%s %s: kms key id = %q, want %q", r.Method, r.URL, got, sh.KMSKeyID)
					}
				}
				if creates == 0 {
					t.Errorf("no object-creating request recorded for %s", k)
				}
			})
		}
	})
}

// createsObject reports whether r is a PutObject or CreateMultipartUpload,
// the requests that carry SSE settings (UploadPart must not).
func createsObject(r Request) bool {
	if strings.Contains(r.URL, "tagging") {
		return false // PutObjectTagging
	}
	switch r.Method {
	case http.MethodPut:
		return !strings.Contains(r.URL, "partNumber=")
	case http.MethodPost:
		return strings.Contains(r.URL, "?uploads") || strings.Contains(r.URL, "&uploads")
	}
	return false
}

func assertNothing(t *testing.T, h Harness, k string) {
	t.Helper()
	if obj, err := h.Sink.Stat(context.Background(), k); !errors.Is(err, sink.ErrNotFound) {
		t.Errorf("after the failed Put, Stat = %+v, %v; want ErrNotFound", obj, err)
	}
	if left := h.Leftovers(t, k); len(left) > 0 {
		t.Errorf("the failed Put left %v behind", left)
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// String renders a Request for messages.
func (r Request) String() string { return fmt.Sprintf("%s %s", r.Method, r.URL) }

// runReader checks the sink.Reader contract: List in key order under a
// prefix, never the sink's reserved names; Open streams the bytes.
func runReader(t *testing.T, h Harness, run string) {
	r, ok := h.Sink.(sink.Reader)
	if !ok {
		t.Skip("the sink is not a sink.Reader")
	}
	ctx := context.Background()
	base := run + "/Reader-" + randHex(4)
	// Names chosen so that directory order and key order differ: "a/…"
	// sorts after "a-b" and before "a0".
	names := []string{"a.bin", "a-b.bin", "a/b.bin", "a/c/d.bin", "a0.bin", "b.bin", "empty.bin"}
	sizes := map[string]int{}
	for i, n := range names {
		size := 100 + 37*i
		if n == "empty.bin" {
			size = 0
		}
		sizes[base+"/"+n] = size
		if _, err := h.Sink.Put(ctx, base+"/"+n, bytes.NewReader(Bytes(uint64(20+i), size)), int64(size), sink.Meta{}); err != nil {
			t.Fatalf("Put %s: %v", n, err)
		}
	}
	// A sibling whose key shares the prefix without its "/".
	sibling := base + "x/other.bin"
	if _, err := h.Sink.Put(ctx, sibling, strings.NewReader("other"), 5, sink.Meta{}); err != nil {
		t.Fatalf("Put %s: %v", sibling, err)
	}
	seed := func(key string) uint64 {
		return uint64(20 + slices.Index(names, strings.TrimPrefix(key, base+"/")))
	}
	list := func(t *testing.T, prefix string) []sink.Object {
		t.Helper()
		var out []sink.Object
		for obj, err := range r.List(ctx, prefix) {
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			out = append(out, obj)
		}
		return out
	}
	keysOf := func(objs []sink.Object) []string {
		var ks []string
		for _, o := range objs {
			ks = append(ks, o.Key)
		}
		return ks
	}
	want := func(rel ...string) []string {
		var ks []string
		for _, n := range rel {
			ks = append(ks, base+"/"+n)
		}
		return ks
	}

	t.Run("List", func(t *testing.T) {
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{base + "/", want("a-b.bin", "a.bin", "a/b.bin", "a/c/d.bin", "a0.bin", "b.bin", "empty.bin")},
			{base + "/a", want("a-b.bin", "a.bin", "a/b.bin", "a/c/d.bin", "a0.bin")},
			{base + "/a/", want("a/b.bin", "a/c/d.bin")},
			{base + "/a/c/d.bin", want("a/c/d.bin")},
			{base + "/nothing/", nil},
			{base + "/b.bin/", nil},
			{base, append(want("a-b.bin", "a.bin", "a/b.bin", "a/c/d.bin", "a0.bin", "b.bin", "empty.bin"), sibling)},
		} {
			got := list(t, tc.prefix)
			if !slices.Equal(keysOf(got), tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, keysOf(got), tc.want)
			}
			for _, o := range got {
				if o.Key == sibling {
					continue
				}
				if o.Size != int64(sizes[o.Key]) {
					t.Errorf("List: %s size %d, want %d", o.Key, o.Size, sizes[o.Key])
				}
				if o.SHA256 != "" && o.SHA256 != Digest(seed(o.Key), int64(sizes[o.Key])) {
					t.Errorf("List: %s sha256 %s, want empty or %s", o.Key, o.SHA256, Digest(seed(o.Key), int64(sizes[o.Key])))
				}
				if o.Modified.IsZero() {
					t.Errorf("List: %s has no modification time", o.Key)
				}
			}
		}
	})

	t.Run("ListAll", func(t *testing.T) {
		all := list(t, "")
		ks := keysOf(all)
		if !slices.IsSorted(ks) {
			t.Errorf("List(\"\") is not in key order")
		}
		for _, k := range ks {
			if strings.HasPrefix(k, sink.ReservedPrefix) {
				t.Errorf("List(\"\") yields the reserved name %s", k)
			}
			if err := sink.ValidateKey(k); err != nil {
				t.Errorf("List(\"\") yields %q: %v", k, err)
			}
		}
		for k := range sizes {
			if !slices.Contains(ks, k) {
				t.Errorf("List(\"\") misses %s", k)
			}
		}
		if n := len(slices.Compact(slices.Clone(ks))); n != len(ks) {
			t.Errorf("List(\"\") yields %d keys, %d distinct", len(ks), n)
		}
	})

	t.Run("ListStopsEarly", func(t *testing.T) {
		n := 0
		for _, err := range r.List(ctx, base+"/") {
			if err != nil {
				t.Fatal(err)
			}
			n++
			break
		}
		if n != 1 {
			t.Errorf("%d objects before break, want 1", n)
		}
	})

	t.Run("ListCancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		var last error
		for _, err := range r.List(cctx, base+"/") {
			last = err
		}
		if !errors.Is(last, context.Canceled) {
			t.Errorf("List with a cancelled context ended with %v, want context.Canceled", last)
		}
	})

	t.Run("ListInvalidPrefix", func(t *testing.T) {
		for _, p := range []string{"/abs", "a//", sink.ReservedPrefix + "/", "a/../"} {
			var last error
			for _, err := range r.List(ctx, p) {
				last = err
			}
			if !errors.Is(last, sink.ErrInvalidKey) {
				t.Errorf("List(%q) ended with %v, want ErrInvalidKey", p, last)
			}
		}
	})

	t.Run("Open", func(t *testing.T) {
		for _, n := range []string{"a.bin", "a/c/d.bin", "empty.bin"} {
			k := base + "/" + n
			rc, obj, err := r.Open(ctx, k)
			if err != nil {
				t.Fatalf("Open %s: %v", n, err)
			}
			got, err := io.ReadAll(rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("read %s: %v", n, err)
			}
			if !bytes.Equal(got, Bytes(seed(k), sizes[k])) {
				t.Errorf("Open %s: %d bytes differ from the %d written", n, len(got), sizes[k])
			}
			if want := Digest(seed(k), int64(sizes[k])); obj.Key != k || obj.Size != int64(sizes[k]) || obj.SHA256 != want {
				t.Errorf("Open %s = %+v, want key %s size %d sha256 %s", n, obj, k, sizes[k], want)
			}
		}
	})

	t.Run("OpenMissing", func(t *testing.T) {
		for _, k := range []string{base + "/missing.bin", base + "/a"} {
			rc, _, err := r.Open(ctx, k)
			if err == nil {
				rc.Close()
			}
			if k == base+"/a" && errors.Is(err, sink.ErrConflict) {
				continue // a directory in the dir sink: a prefix of other keys
			}
			if !errors.Is(err, sink.ErrNotFound) {
				t.Errorf("Open(%s) = %v, want ErrNotFound", k, err)
			}
		}
		if _, _, err := r.Open(ctx, sink.ReservedPrefix+"/x"); !errors.Is(err, sink.ErrInvalidKey) {
			t.Errorf("Open(reserved) = %v, want ErrInvalidKey", err)
		}
	})
}
