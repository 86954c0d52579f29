package dirsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

func TestListUsersPagesThroughEveryBucket(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(57)
	dup := person(12)
	dup["mail"] = "user11@contoso.example"
	e.Source.Put(uid(12), dup)
	e.Sync(dirsynctest.DrainOptions{})

	for _, tc := range []struct {
		name string
		q    dirsync.UserQuery
		want int
	}{
		{"all", dirsync.UserQuery{Limit: 7}, 57},
		{"active", dirsync.UserQuery{Status: dirsync.StatusActive, Limit: 10}, 56},
		{"duplicates", dirsync.UserQuery{Status: dirsync.StatusDuplicate}, 1},
		{"prefix on name", dirsync.UserQuery{Prefix: "user 1"}, 11}, // 1, 10..19
		{"prefix on email", dirsync.UserQuery{Prefix: "USER5"}, 9},  // user5, user50..user57
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			q := tc.q
			for i := 0; ; i++ {
				users, next, err := e.Engine.ListUsers(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range users {
					if seen[u.ID] {
						t.Fatalf("user %s listed twice", u.ID)
					}
					seen[u.ID] = true
				}
				if next == "" {
					break
				}
				q.Token = next
				if i > 100 {
					t.Fatal("paging does not end")
				}
			}
			if len(seen) != tc.want {
				t.Errorf("listed %d users, want %d", len(seen), tc.want)
			}
		})
	}
	if _, _, err := e.Engine.ListUsers(ctx, dirsync.UserQuery{Token: "not-a-token"}); !dirsync.IsCode(err, dirsync.EINVALID) {
		t.Errorf("bad token: %v, want invalid", err)
	}
	if _, _, err := e.Engine.ListUsers(ctx, dirsync.UserQuery{Status: "gone"}); !dirsync.IsCode(err, dirsync.EINVALID) {
		t.Errorf("bad status: %v, want invalid", err)
	}
}

func TestTickStartsOncePerDueTime(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(3)
	s, etag, _ := e.Engine.Settings(ctx)
	s.Schedule = dirsync.Schedule{Frequency: "hourly", Minute: 30, TimeZone: "UTC"}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Set(time.Date(2026, 11, 23, 10, 31, 0, 0, time.UTC))
	run, err := e.Engine.Tick(ctx)
	if err != nil || run == nil || run.Trigger != dirsync.TriggerSchedule {
		t.Fatalf("first tick: run %v, err %v; want a scheduled run", run, err)
	}
	e.Finish(run.ID, dirsynctest.DrainOptions{})
	// Overlapping ticks for the same due time start nothing more.
	for range 3 {
		if again, err := e.Engine.Tick(ctx); err != nil || again != nil {
			t.Fatalf("repeat tick: run %v, err %v; want none", again, err)
		}
	}
	e.Clock.Set(time.Date(2026, 11, 23, 11, 30, 0, 0, time.UTC))
	if next, err := e.Engine.Tick(ctx); err != nil || next == nil {
		t.Fatalf("next due time: run %v, err %v", next, err)
	}
	st, err := e.Engine.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveRun == nil || st.NextRun == nil || !st.NextRun.Equal(time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC)) {
		t.Errorf("status = active %v next %v", st.ActiveRun, st.NextRun)
	}
}

func TestTickDoesNothingWhenDisabled(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, etag, _ := e.Engine.Settings(ctx)
	s.Enabled = false
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	if run, err := e.Engine.Tick(ctx); err != nil || run != nil {
		t.Errorf("tick while disabled: %v %v", run, err)
	}
	st, _ := e.Engine.Status(ctx)
	var codes []dirsync.ActionCode
	for _, a := range st.Actions {
		codes = append(codes, a.Code)
	}
	if diff := cmp.Diff([]dirsync.ActionCode{dirsync.ActionSyncDisabled}, codes); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}
