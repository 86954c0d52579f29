package dirsync_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// queryCounter counts the queries of the users table: a delta run must
// make none (issue 17: its cost follows the changes, not the directory).
type queryCounter struct {
	dirsync.Store
	users int
}

func (q *queryCounter) Query(ctx context.Context, table string, qu dirsync.Query) (dirsync.EntityPage, error) {
	if table == dirsync.TableUsers {
		q.users++
	}
	return q.Store.Query(ctx, table, qu)
}

// scanCounts counts the directory by status, the slow way.
func scanCounts(e *env) map[string]int64 {
	out := map[string]int64{dirsync.StatusActive: 0, dirsync.StatusDuplicate: 0, dirsync.StatusSkipped: 0}
	for _, ent := range e.Store.Rows(dirsync.TableUsers) {
		if ent.RowKey != dirsync.CountsRowKey {
			out[ent.Str("status")]++
		}
	}
	return out
}

// rowCounts sums the counts rows, and says how many partitions lack one.
func rowCounts(e *env) (map[string]int64, int) {
	out := map[string]int64{dirsync.StatusActive: 0, dirsync.StatusDuplicate: 0, dirsync.StatusSkipped: 0}
	missing := 0
	for b := range dirsync.UserBuckets {
		ent, err := e.Store.Get(context.Background(), dirsync.TableUsers, fmt.Sprintf("b%02d", b), dirsync.CountsRowKey)
		if err != nil || ent.Str("state") != "exact" {
			missing++
			continue
		}
		for st := range out {
			out[st] += ent.Int("n_" + st)
		}
	}
	return out, missing
}

// exactCounts checks that every partition has an exact counts row and that
// the rows agree with a scan, and returns their sums.
func exactCounts(t *testing.T, e *env) map[string]int64 {
	t.Helper()
	got, missing := rowCounts(e)
	if missing != 0 {
		t.Errorf("%d partitions have no exact counts row", missing)
	}
	if diff := cmp.Diff(scanCounts(e), got); diff != "" {
		t.Errorf("counts rows against a scan (-scan +rows):\n%s", diff)
	}
	return got
}

func TestCountsRowsFollowTheDirectory(t *testing.T) {
	dup := func(n, of int) map[string]string { p := person(n); p["mail"] = person(of)["mail"]; return p }
	noName := func(n int) map[string]string { p := person(n); delete(p, "displayName"); return p }
	tests := []struct {
		name string
		// change is applied to a synced tenant of 30 users before a delta run.
		change func(e *env)
		want   map[string]int64
	}{
		{"nothing", func(*env) {}, map[string]int64{"active": 30, "duplicate": 0, "skipped": 0}},
		{"adds, a duplicate and a skipped user", func(e *env) {
			e.Source.Put(uid(31), person(31))
			e.Source.Put(uid(32), dup(32, 5))
			e.Source.Put(uid(33), noName(33))
		}, map[string]int64{"active": 31, "duplicate": 1, "skipped": 1}},
		{"deletions and an update", func(e *env) {
			e.Source.Remove(uid(1), "deleted")
			e.Source.Remove(uid(2), "deleted")
			p := person(3)
			p["jobTitle"] = "Manager"
			e.Source.Put(uid(3), p)
		}, map[string]int64{"active": 28, "duplicate": 0, "skipped": 0}},
		{"an active user becomes skipped", func(e *env) { e.Source.Put(uid(4), noName(4)) },
			map[string]int64{"active": 29, "duplicate": 0, "skipped": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.Seed(30)
			if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
				t.Fatalf("first sync: %s (%s)", run.Status, run.Error)
			}
			tt.change(e)
			qc := &queryCounter{Store: e.Store}
			e.Engine.Store = qc
			run := e.Sync(dirsynctest.DrainOptions{})
			if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
				t.Fatalf("delta sync: %s/%s (%s)", run.Status, run.Mode, run.Error)
			}
			if qc.users != 0 {
				t.Errorf("the delta run queried the users table %d times, want 0", qc.users)
			}
			got, missing := rowCounts(e)
			if missing != 0 {
				t.Errorf("%d partitions have no exact counts row", missing)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("counts rows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(scanCounts(e), got); diff != "" {
				t.Errorf("counts rows against a scan (-scan +rows):\n%s", diff)
			}
			st, err := e.Engine.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, st.UserCounts); diff != "" {
				t.Errorf("status userCounts (-want +got):\n%s", diff)
			}
			var users []dirsync.User
			for token := ""; ; {
				page, next, err := e.Engine.ListUsers(context.Background(), dirsync.UserQuery{Limit: 100, Token: token})
				if err != nil {
					t.Fatal(err)
				}
				users = append(users, page...)
				if token = next; token == "" {
					break
				}
			}
			if n := int64(len(users)); n != tt.want["active"]+tt.want["duplicate"]+tt.want["skipped"] {
				t.Errorf("ListUsers returned %d users, want %d (the counts rows are no users)", n, tt.want["active"]+tt.want["duplicate"]+tt.want["skipped"])
			}
		})
	}
}

// A directory written before counts rows existed has none: the first run
// after the upgrade counts each partition once by a scan, and from then on
// the rows are exact without one.
func TestCountsRowsAreRebuiltAfterUpgrade(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(40)
	e.Sync(dirsynctest.DrainOptions{})
	for b := range dirsync.UserBuckets {
		if err := e.Store.Delete(ctx, dirsync.TableUsers, fmt.Sprintf("b%02d", b), dirsync.CountsRowKey, ""); err != nil {
			t.Fatal(err)
		}
	}
	e.Source.Put(uid(41), person(41))
	e.Source.Remove(uid(7), "deleted")
	qc := &queryCounter{Store: e.Store}
	e.Engine.Store = qc
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("upgrade sync: %s/%s (%s)", run.Status, run.Mode, run.Error)
	}
	if qc.users == 0 {
		t.Errorf("the first run after the upgrade did not scan the users table")
	}
	want := map[string]int64{"active": 40, "duplicate": 0, "skipped": 0}
	got, missing := rowCounts(e)
	if missing != 0 {
		t.Errorf("%d partitions have no exact counts row after the upgrade run", missing)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts rows (-want +got):\n%s", diff)
	}

	qc.users = 0
	e.Source.Put(uid(42), person(42))
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
		t.Fatalf("next sync: %s (%s)", run.Status, run.Error)
	}
	if qc.users != 0 {
		t.Errorf("the run after the rebuild queried the users table %d times, want 0", qc.users)
	}
	want["active"] = 41
	if got, _ := rowCounts(e); !cmp.Equal(want, got) {
		t.Errorf("counts rows (-want +got):\n%s", cmp.Diff(want, got))
	}
}

// A rebuild whose partition changes while it scans starts again: the scan
// is kept only if it saw one state of the partition.
func TestCountsRebuildRestartsWhenThePartitionChanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(20)
	e.Sync(dirsynctest.DrainOptions{})
	pk := dirsync.Bucket(uid(3))
	if err := e.Store.Delete(ctx, dirsync.TableUsers, pk, dirsync.CountsRowKey, ""); err != nil {
		t.Fatal(err)
	}
	// A late writer (a superseded run's page) changes the partition while
	// counts are being rebuilt: it can only do so through a batch that
	// also changes the counts row, which the rebuild then notices.
	changed := false
	e.Engine.Store = &changeOnScan{Store: e.Store, pk: pk, once: func() {
		if changed {
			return
		}
		changed = true
		ent, err := e.Store.Get(ctx, dirsync.TableUsers, pk, uid(3))
		if err != nil {
			t.Fatal(err)
		}
		cnt, _ := e.Store.Get(ctx, dirsync.TableUsers, pk, dirsync.CountsRowKey)
		if err := e.Store.Batch(ctx, dirsync.TableUsers, []dirsync.BatchOp{
			{Kind: dirsync.BatchDelete, Entity: dirsync.Entity{PartitionKey: pk, RowKey: uid(3), ETag: ent.ETag}},
			{Kind: dirsync.BatchReplace, Entity: dirsync.Entity{PartitionKey: pk, RowKey: dirsync.CountsRowKey, ETag: cnt.ETag, Props: cnt.Props}},
		}); err != nil {
			t.Fatal(err)
		}
	}}
	e.Source.Put(uid(21), person(21))
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
		t.Fatalf("sync: %s (%s)", run.Status, run.Error)
	}
	if !changed {
		t.Fatal("the partition was never scanned")
	}
	got, missing := rowCounts(e)
	if diff := cmp.Diff(scanCounts(e), got); diff != "" || missing != 0 {
		t.Errorf("counts rows against a scan, %d missing (-scan +rows):\n%s", missing, diff)
	}
}

// changeOnScan calls once after the first page of a scan of partition pk.
type changeOnScan struct {
	dirsync.Store
	pk   string
	once func()
}

func (c *changeOnScan) Query(ctx context.Context, table string, q dirsync.Query) (dirsync.EntityPage, error) {
	p, err := c.Store.Query(ctx, table, q)
	if table == dirsync.TableUsers && q.PartitionKey == c.pk {
		c.once()
	}
	return p, err
}
