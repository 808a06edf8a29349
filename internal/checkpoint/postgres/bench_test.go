package postgres

import (
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
)

// BenchmarkStore_Claim is checkpointtest.BenchmarkClaim on PostgreSQL.
//
// Run: go test -run '^$' -bench Store_Claim -benchtime 100x ./internal/checkpoint/postgres/
// (with ARCHIVER_TEST_POSTGRES_DSN set, see pgtest).
func BenchmarkStore_Claim(b *testing.B) {
	checkpointtest.BenchmarkClaim(b, open(b, freshDB(b), "bench"), open(b, freshDB(b), "bench"))
}
