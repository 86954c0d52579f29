package dirsync_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

func TestStatusCountsUsersByStatus(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(40)
	dup := person(2)
	dup["mail"] = "user1@contoso.example"
	e.Source.Put(uid(2), dup)
	noName := person(3)
	delete(noName, "displayName")
	e.Source.Put(uid(3), noName)
	e.Sync(dirsynctest.DrainOptions{Duplicate: true})
	st, err := e.Engine.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{dirsync.StatusActive: 38, dirsync.StatusDuplicate: 1, dirsync.StatusSkipped: 1}
	if diff := cmp.Diff(want, st.UserCounts); diff != "" || st.DirectoryUsers != 40 {
		t.Errorf("user counts (-want +got):\n%s (total %d)", diff, st.DirectoryUsers)
	}
	// The owner leaves: the duplicate is promoted, counts follow.
	e.Source.Remove(uid(1), dirsync.RemovedDeleted)
	e.Sync(dirsynctest.DrainOptions{})
	st, _ = e.Engine.Status(ctx)
	want = map[string]int64{dirsync.StatusActive: 38, dirsync.StatusDuplicate: 0, dirsync.StatusSkipped: 1}
	if diff := cmp.Diff(want, st.UserCounts); diff != "" || st.DirectoryUsers != 39 {
		t.Errorf("after a deletion (-want +got):\n%s (total %d)", diff, st.DirectoryUsers)
	}
}

func TestStatusNamesAMissingPermission(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	e.Source.Errs = []error{&dirsync.Error{Code: dirsync.EFORBIDDEN, Message: "Graph denied access to users",
		Hint: "Grant the application permission User.Read.All and admin consent"}}
	e.Sync(dirsynctest.DrainOptions{})
	st, err := e.Engine.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Actions) != 1 || st.Actions[0].Code != "graph_permission_missing" || !strings.Contains(st.Actions[0].Hint, "User.Read.All") {
		t.Errorf("actions = %+v", st.Actions)
	}
}
