package dirsynctest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Env is the real engine on the in-memory doubles: what tests of the engine,
// and of the packages driving it, run against.
type Env struct {
	Store  *Store
	Logs   *Logs
	Queue  *Queue
	Source *Source
	Photos *Photos
	// Clock is the engine's clock; it starts at 2026-11-23 10:00 UTC.
	Clock *Clock
	// Engine runs on the doubles above. A test may replace one of its ports
	// (say, Logs with a wrapper) before it first uses the engine.
	Engine *dirsync.Engine

	t testing.TB
}

// NewEngine returns an engine on fresh doubles, with the engine's own
// defaults for everything else (settings included).
func NewEngine(t testing.TB) *Env {
	e := &Env{Store: NewStore(), Logs: NewLogs(), Queue: NewQueue(), Source: NewSource(), Photos: NewPhotos(),
		Clock: NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)), t: t}
	e.Engine = &dirsync.Engine{Store: e.Store, Logs: e.Logs, Queue: e.Queue, Source: e.Source, Photos: e.Photos, Now: e.Clock.Now, Sleep: e.Clock.Advance}
	return e
}

// UserID returns the object id of test user n.
func UserID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// Person returns the attributes of test user n: unique names, mail and
// userPrincipalName, the same job title and department for all.
func Person(n int) map[string]string {
	return map[string]string{
		"displayName": fmt.Sprintf("User %d", n), "givenName": "User", "surname": fmt.Sprint(n),
		"mail": fmt.Sprintf("user%d@contoso.example", n), "userPrincipalName": fmt.Sprintf("user%d@contoso.example", n),
		"jobTitle": "Engineer", "department": "Engineering",
	}
}

// Seed puts test users 1 to n into the source.
func (e *Env) Seed(n int) {
	for i := 1; i <= n; i++ {
		e.Source.Put(UserID(i), Person(i))
	}
}

// Drain hands every queued work item to the engine, as the queue's consumer
// would, until the queue is empty (see Queue.Drain), and returns the number
// of deliveries.
func (e *Env) Drain(opt DrainOptions) int {
	return e.Queue.Drain(context.Background(), e.Clock, e.Engine.HandleWork, opt)
}

// Finish drains the queue and returns run runID as it then stands.
func (e *Env) Finish(runID string, opt DrainOptions) dirsync.Run {
	e.t.Helper()
	e.Drain(opt)
	run, err := e.Engine.GetRun(context.Background(), runID)
	if err != nil {
		e.t.Fatalf("GetRun: %v", err)
	}
	return run
}

// Sync starts a manual run and drains the queue, returning the run as it
// ended.
func (e *Env) Sync(opt DrainOptions) dirsync.Run {
	e.t.Helper()
	run, err := e.Engine.StartRun(context.Background(), dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "test"})
	if err != nil {
		e.t.Fatalf("StartRun: %v", err)
	}
	return e.Finish(run.ID, opt)
}

// T is the test the environment belongs to.
func (e *Env) T() testing.TB { return e.t }
