package dirsync_test

import (
	"testing"

	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// BenchmarkFullSync measures the engine's own cost (mapping, hashing, claims,
// batching, counters) for a full sync of 10,000 users in pages of 200, on the
// in-memory doubles: storage and Graph latency are not part of it.
func BenchmarkFullSync(b *testing.B) {
	const users = 10000
	for range b.N {
		b.StopTimer()
		env := dirsynctest.NewEngine(b)
		env.Source.PageSize = 200
		env.Seed(users)
		b.StartTimer()
		got := env.Sync(dirsynctest.DrainOptions{})
		b.StopTimer()
		if got.Counters.Added != users {
			b.Fatalf("added %d, want %d (%s)", got.Counters.Added, users, got.Error)
		}
	}
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "users/s")
}
