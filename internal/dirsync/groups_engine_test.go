package dirsync_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

const financeSeniors = "00000000-0000-4000-9000-000000000001"

// putDynamicGroup stores a dynamic group definition as the groups API does.
func putDynamicGroup(t *testing.T, e *env, id, name, rule string) {
	t.Helper()
	if _, err := e.Store.Upsert(context.Background(), dirsync.TableGroups, dirsync.Entity{PartitionKey: string(dirsync.GroupDynamic), RowKey: id,
		Props: map[string]any{"displayName": name, "rule": rule}}); err != nil {
		t.Fatal(err)
	}
}

// members lists a group's members as the index holds them.
func (e *env) members(groupID string) []string {
	var out []string
	for _, ent := range e.Store.Rows(dirsync.TableMembers) {
		if ent.PartitionKey == "g|"+groupID && ent.Bool("present") {
			out = append(out, ent.RowKey)
		}
	}
	sort.Strings(out)
	return out
}

// rowGroups lists the groups each active user's row says it is in.
func (e *env) rowGroups(groupID string) []string {
	var out []string
	for _, ent := range e.Store.Rows(dirsync.TableUsers) {
		if ent.Str("status") == dirsync.StatusActive && strings.Contains(ent.Str("groups"), groupID) {
			out = append(out, ent.RowKey)
		}
	}
	sort.Strings(out)
	return out
}

func (e *env) setPerson(n int, change func(p map[string]string)) {
	p := person(n)
	change(p)
	e.Source.Put(uid(n), p)
}

func financeSenior(p map[string]string) { p["department"], p["jobTitle"] = "Finance", "Senior Manager" }

func TestDynamicGroupFollowsUsersAndRules(t *testing.T) {
	e := newEnv(t)
	e.Seed(6)
	e.setPerson(2, financeSenior)
	e.setPerson(4, financeSenior)
	putDynamicGroup(t, e, financeSeniors, "Finance seniors", `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`)

	// A full run evaluates every user.
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run = %s (%s)", run.Status, run.Error)
	}
	want := []string{uid(2), uid(4)}
	if diff := cmp.Diff(want, e.members(financeSeniors)); diff != "" {
		t.Errorf("members after the full run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.rowGroups(financeSeniors)); diff != "" {
		t.Errorf("rows after the full run (-want +got):\n%s", diff)
	}
	if run.Counters.MembersAdded != 2 || !strings.Contains(e.Logs.Text(run.LogName), `"event":"member_added"`) {
		t.Errorf("membersAdded = %d, log:\n%s", run.Counters.MembersAdded, e.Logs.Text(run.LogName))
	}

	// An incremental run: user 3 joins, user 4 leaves (promoted), user 2 is deleted.
	e.setPerson(3, financeSenior)
	e.setPerson(4, func(p map[string]string) { p["department"], p["jobTitle"] = "Finance", "Director" })
	e.Source.Remove(uid(2), dirsync.RemovedDeleted)
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run = %s/%s (%s)", run.Status, run.Mode, run.Error)
	}
	want = []string{uid(3)}
	if diff := cmp.Diff(want, e.members(financeSeniors)); diff != "" {
		t.Errorf("members after the delta run (-want +got):\n%s", diff)
	}
	if run.Counters.MembersAdded != 1 || run.Counters.MembersRemoved != 2 {
		t.Errorf("membership counters = +%d -%d, want +1 -2 (user 4 left, deleted user 2 left too)", run.Counters.MembersAdded, run.Counters.MembersRemoved)
	}
	if log := e.Logs.Text(run.LogName); strings.Count(log, `"event":"member_removed"`) != 2 {
		t.Errorf("want 2 member_removed lines (user 4 demoted, user 2 deleted):\n%s", log)
	}

	// A rule edit: the next (delta) run evaluates every user again.
	putDynamicGroup(t, e, financeSeniors, "Finance", `user.department -eq "Finance"`)
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run = %s/%s (%s)", run.Status, run.Mode, run.Error)
	}
	want = []string{uid(3), uid(4)}
	if diff := cmp.Diff(want, e.members(financeSeniors)); diff != "" {
		t.Errorf("members after the rule edit (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.rowGroups(financeSeniors)); diff != "" {
		t.Errorf("rows after the rule edit (-want +got):\n%s", diff)
	}

	// A rule reading a property no row holds makes the next run full.
	putDynamicGroup(t, e, financeSeniors, "Finance in Oslo", `user.department -eq "Finance" -and user.city -eq "Oslo"`)
	e.setPerson(3, func(p map[string]string) { financeSenior(p); p["city"] = "Oslo" })
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
		t.Fatalf("run = %s/%s (%s), want a full run", run.Status, run.Mode, run.Error)
	}
	if diff := cmp.Diff([]string{uid(3)}, e.members(financeSeniors)); diff != "" {
		t.Errorf("members after the new property (-want +got):\n%s", diff)
	}
}

func TestScopeRuleAndSelectedUsers(t *testing.T) {
	e := newEnv(t)
	e.Seed(6)
	e.setPerson(5, func(p map[string]string) { p["department"] = "Sales" })
	ctx := context.Background()
	s, etag, _ := e.Engine.Settings(ctx)
	s.ScopeRule = `user.department -eq "Engineering"`
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Counters.OutOfScope != 1 || run.Counters.Added != 5 {
		t.Fatalf("run = %s (%s) %+v, want 5 added, 1 out of scope", run.Status, run.Error, run.Counters)
	}
	if _, ok := e.directory(dirsync.StatusActive)[uid(5)]; ok {
		t.Errorf("user 5 (Sales) is synced despite the scoping rule")
	}

	// Leaving scope by an attribute change removes the user; entering adds it.
	e.setPerson(2, func(p map[string]string) { p["department"] = "Sales" })
	e.setPerson(5, func(p map[string]string) {})
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run = %s/%s (%s)", run.Status, run.Mode, run.Error)
	}
	dir := e.directory(dirsync.StatusActive)
	if _, ok := dir[uid(2)]; ok {
		t.Errorf("user 2 left the scope but is still synced")
	}
	if diff := cmp.Diff(e.want()[uid(5)], dir[uid(5)]); diff != "" {
		t.Errorf("user 5 entering scope (-want +got):\n%s", diff)
	}
	if log := e.Logs.Text(run.LogName); !strings.Contains(log, `"event":"out_of_scope"`) || !strings.Contains(log, "left the sync scope") {
		t.Errorf("log does not say user 2 left the scope:\n%s", log)
	}

	// Selected users: only those (by id or UPN), still under the rule.
	setThreshold(t, e, dirsync.DeletionThreshold{})
	s, etag, _ = e.Engine.Settings(ctx)
	s.ScopeRule = ""
	s.UserScope = []string{uid(1), "USER3@contoso.example"}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
		t.Fatalf("run = %s/%s (%s), want a full run after the scope change", run.Status, run.Mode, run.Error)
	}
	var ids []string
	for id := range e.directory(dirsync.StatusActive) {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if diff := cmp.Diff([]string{uid(1), uid(3)}, ids); diff != "" {
		t.Errorf("directory with selected users (-want +got):\n%s", diff)
	}
}

// A rule on an attribute no field maps is read from Graph all the same, and
// kept on the row, so a later partial update of another attribute keeps it.
func TestRuleOnAnUnmappedAttribute(t *testing.T) {
	e := newEnv(t)
	e.Seed(4)
	e.setPerson(1, func(p map[string]string) { p["usageLocation"] = "NO" })
	e.setPerson(2, func(p map[string]string) { p["usageLocation"] = "SE" })
	e.Sync(dirsynctest.DrainOptions{})
	const nordics = "00000000-0000-4000-9000-000000000002"
	putDynamicGroup(t, e, nordics, "Norway", `user.usageLocation -eq "NO"`)
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Mode != dirsync.ModeFull {
		t.Errorf("a rule reading an attribute the rows do not hold: run %s, want full", run.Mode)
	}
	if diff := cmp.Diff([]string{uid(1)}, e.members(nordics)); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	// Partial updates: user 1 changes only its title, user 2 moves to Norway.
	e.Source.Partial = true
	e.setPerson(1, func(p map[string]string) { p["usageLocation"], p["jobTitle"] = "NO", "Lead" })
	e.setPerson(2, func(p map[string]string) { p["usageLocation"] = "NO" })
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Mode != dirsync.ModeDelta {
		t.Fatalf("run %s, want delta", run.Mode)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2)}, e.members(nordics)); diff != "" {
		t.Errorf("members after partial updates (-want +got):\n%s", diff)
	}
}
