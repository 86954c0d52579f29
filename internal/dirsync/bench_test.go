package dirsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// BenchmarkFullSync measures the engine's own cost (mapping, hashing, claims,
// batching, counters) for a full sync of 10,000 users in pages of 200, on the
// in-memory doubles: storage and Graph latency are not part of it.
func BenchmarkFullSync(b *testing.B) {
	const users = 10000
	for range b.N {
		b.StopTimer()
		store, logs, queue := dirsynctest.NewStore(), dirsynctest.NewLogs(), dirsynctest.NewQueue()
		source := dirsynctest.NewSource()
		source.PageSize = 200
		for i := range users {
			source.Put(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), map[string]string{
				"displayName": fmt.Sprintf("User %d", i), "mail": fmt.Sprintf("user%d@contoso.example", i),
				"userPrincipalName": fmt.Sprintf("user%d@contoso.example", i), "jobTitle": "Engineer", "department": "Finance",
			})
		}
		clock := dirsynctest.NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
		eng := &dirsync.Engine{Store: store, Logs: logs, Queue: queue, Source: source, Now: clock.Now}
		ctx := context.Background()
		b.StartTimer()
		run, err := eng.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual})
		if err != nil {
			b.Fatal(err)
		}
		queue.Drain(ctx, clock, eng.HandleWork, dirsynctest.DrainOptions{})
		b.StopTimer()
		got, _ := eng.GetRun(ctx, run.ID)
		if got.Counters.Added != users {
			b.Fatalf("added %d, want %d (%s)", got.Counters.Added, users, got.Error)
		}
	}
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "users/s")
}
