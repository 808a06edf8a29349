package checkpointtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// BenchmarkClaim measures a claim of 16 agent items (a worker pool's
// claim-ahead) on large, a store where 20,000 wait besides as many lookups
// due at the same times (another kind, which the claim must pass over),
// against the same on small, where 200 wait, in the same run (see
// addPending): x-vs-small
// near 1 says a claim costs the same however many items wait. Both stores
// must be empty; the store packages' BenchmarkStore_Claim call it.
func BenchmarkClaim(b *testing.B, small, large checkpoint.Store) {
	const limit = 16
	b.StopTimer()
	addPending(b, small, 200)
	addPending(b, large, 20000)
	base := claimRelease(b, small, b.N, limit)
	b.StartTimer()
	got := claimRelease(b, large, b.N, limit)
	b.StopTimer()
	b.ReportMetric(float64(got.Microseconds())/float64(b.N), "large-µs/claim")
	b.ReportMetric(float64(base.Microseconds())/float64(b.N), "small-µs/claim")
	b.ReportMetric(got.Seconds()/base.Seconds(), "x-vs-small")
}

// addPending adds n claimable lookups to s, then n agent items: the
// lookups come first in due order (same times, lower IDs), as those of
// calls whose recordings are done already do while the lookup jobs are off.
func addPending(b *testing.B, s checkpoint.Store, n int) {
	b.Helper()
	batch := make([]checkpoint.Item, 0, 1000)
	flush := func() {
		if _, err := s.AddItems(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for _, kind := range []string{checkpoint.KindTransferLookup, checkpoint.KindAgent} {
		for i := range n {
			up := strconv.Itoa(i)
			batch = append(batch, checkpoint.Item{Kind: kind, UpstreamID: up, CallID: up, Day: "2026-03-01"})
			if len(batch) == cap(batch) {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// claimRelease claims limit agent items and releases them again, n times,
// and returns the time the claims took.
func claimRelease(b *testing.B, s checkpoint.Store, n, limit int) time.Duration {
	b.Helper()
	ctx := context.Background()
	c := checkpoint.Claimer{Owner: "bench-host-1-00000000", Lease: time.Minute}
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
