package dirsync_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// waiterQueries counts the queries of waiter rows (the count step's
// waiter pass and releases of marked claims).
type waiterQueries struct {
	dirsync.Store
	mu sync.Mutex
	n  int
}

func (q *waiterQueries) Query(ctx context.Context, table string, qu dirsync.Query) (dirsync.EntityPage, error) {
	if table == dirsync.TableEmails && strings.HasPrefix(qu.RowKeyPrefix, "w|") {
		q.mu.Lock()
		q.n++
		q.mu.Unlock()
	}
	return q.Store.Query(ctx, table, qu)
}

// A delta run looks at every waiting duplicate only when something may
// have left one waiting for a free email (issue 17: three reads per
// duplicate on every run otherwise); the directory ends the same either
// way.
func TestWaiterPassOnlyWhenDue(t *testing.T) {
	tests := []struct {
		name string
		// before prepares the delta run (after the full sync); opt drives it.
		before   func(e *env)
		opt      func(e *env) dirsynctest.DrainOptions
		wantPass bool
	}{
		{name: "a clean delta run", wantPass: false},
		{name: "the last pass is a day old", before: func(e *env) { e.Clock.Advance(25 * time.Hour) }, wantPass: true},
		{name: "no record of a pass (a directory from an earlier version)", before: func(e *env) {
			if err := e.Store.Delete(context.Background(), dirsync.TableState, "sync", "waiterPass", ""); err != nil {
				t.Fatal(err)
			}
		}, wantPass: true},
		{name: "a page delivered again", opt: func(e *env) dirsynctest.DrainOptions {
			return dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
				if w, _ := dirsync.DecodeWorkItem(m.Body); w.Kind == dirsync.WorkPage && count == 1 {
					return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "worker lost"}
				}
				return nil
			}}
		}, wantPass: true},
		{name: "an owner deleted, its release interrupted after the row went", before: func(e *env) {
			e.Source.Remove(uid(1), dirsync.RemovedDeleted)
		}, opt: func(e *env) dirsynctest.DrainOptions {
			failed := false
			return dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
				if w, _ := dirsync.DecodeWorkItem(m.Body); w.Kind == dirsync.WorkDelete && !failed {
					// The handover of the claim to the waiting duplicate fails.
					failed = true
					e.Store.FailTable, e.Store.FailNext = dirsync.TableEmails, &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "storage is down"}
				}
				return nil
			}}
		}, wantPass: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			setThreshold(t, e, dirsync.DeletionThreshold{})
			putWithWaiters(e, 30, 10) // 21..30 wait for 1..10
			if r := e.Sync(dirsynctest.DrainOptions{}); r.Status != dirsync.RunSucceeded {
				t.Fatalf("full sync: %s (%s)", r.Status, r.Error)
			}
			e.setPerson(15, func(p map[string]string) { p["jobTitle"] = "Changed" })
			if tt.before != nil {
				tt.before(e)
			}
			q := &waiterQueries{Store: e.Store}
			e.Engine.Store = q
			opt := dirsynctest.DrainOptions{}
			if tt.opt != nil {
				opt = tt.opt(e)
			}
			run := e.Sync(opt)
			if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
				t.Fatalf("delta run: %s/%s (%s)", run.Status, run.Mode, run.Error)
			}
			// The pass queries each of the 16 buckets' waiters.
			if gotPass := q.n >= dirsync.UserBuckets; gotPass != tt.wantPass {
				t.Errorf("%d waiter queries: the pass was made = %v, want %v", q.n, gotPass, tt.wantPass)
			}
			all := e.directory(dirsync.StatusActive)
			for id, f := range e.directory(dirsync.StatusDuplicate) {
				all[id] = f
			}
			if diff := cmp.Diff(e.want(), all); diff != "" {
				t.Errorf("directory (-want +got):\n%s", diff)
			}
			active := e.directory(dirsync.StatusActive)
			for n := 1; n <= 10; n++ {
				_, owner := active[uid(n)]
				_, waiter := active[uid(n+20)]
				if owner == waiter {
					t.Errorf("email of user %d: owner active %v, waiting duplicate %d active %v; want exactly one", n, owner, n+20, waiter)
				}
			}
			exactCounts(t, e)
			// Right after a pass, the next clean delta run skips it.
			q.n = 0
			if r := e.Sync(dirsynctest.DrainOptions{}); r.Status != dirsync.RunSucceeded || q.n != 0 {
				t.Errorf("the next delta run: %s with %d waiter queries, want succeeded with none", r.Status, q.n)
			}
		})
	}
}
