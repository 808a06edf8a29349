package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// pending adds n claimable agent items to s, and as many lookup items
// (another kind, due at the same times) that a claim of agent items must
// pass over.
func pending(b *testing.B, s *Store, n int) {
	b.Helper()
	batch := make([]checkpoint.Item, 0, 1000)
	flush := func() {
		if _, err := s.AddItems(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range n {
		up := strconv.Itoa(i)
		batch = append(batch, checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: up, Day: "2026-03-01"},
			checkpoint.Item{Kind: checkpoint.KindTransferLookup, UpstreamID: up, CallID: up, Day: "2026-03-01"})
		if len(batch) >= cap(batch)-1 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// claimRelease claims limit agent items and releases them again, n times,
// and returns the time the claims took.
func claimRelease(b *testing.B, s *Store, n, limit int) time.Duration {
	b.Helper()
	ctx := context.Background()
	c := checkpoint.Claimer{Owner: "bench", Lease: time.Minute}
	var took time.Duration
	for range n {
		start := time.Now()
		got, err := s.Claim(ctx, c, []string{checkpoint.KindAgent}, time.Now(), limit)
		took += time.Since(start)
		if err != nil || len(got) != limit {
			b.Fatalf("Claim = %d items, %v; want %d", len(got), err, limit)
		}
		for _, it := range got {
			if err := s.Release(ctx, c.Owner, it.ID); err != nil {
				b.Fatal(err)
			}
		}
	}
	return took
}

// BenchmarkStore_Claim measures a claim of 16 agent items (a worker pool's
// claim-ahead) where 20,000 wait (and as many lookups), against the same
// where 200 wait, in the same run: x-vs-small near 1 says a claim costs the
// same however many items wait.
//
// Run: go test -run '^$' -bench Store_Claim -benchtime 100x ./internal/checkpoint/postgres/
// (with ARCHIVER_TEST_POSTGRES_DSN set, see pgtest).
func BenchmarkStore_Claim(b *testing.B) {
	const limit = 16
	b.StopTimer()
	small := open(b, freshDB(b), "bench")
	large := open(b, freshDB(b), "bench")
	pending(b, small, 200)
	pending(b, large, 20000)
	base := claimRelease(b, small, b.N, limit)
	b.StartTimer()
	got := claimRelease(b, large, b.N, limit)
	b.StopTimer()
	b.ReportMetric(float64(got.Microseconds())/float64(b.N), "large-µs/claim")
	b.ReportMetric(float64(base.Microseconds())/float64(b.N), "small-µs/claim")
	b.ReportMetric(got.Seconds()/base.Seconds(), "x-vs-small")
}
