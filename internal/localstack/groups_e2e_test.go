package localstack_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/localstack"
)

// These tests drive groups and scope end to end: the handler under the
// local Functions host, Azurite, the Graph simulator over HTTPS, and the
// admin API for every change an admin makes.

// api sends one API request as admin and decodes the answer; it fails the
// test on an unexpected status.
func (e *e2e) api(method, path string, body any, header http.Header, want int, out any) http.Header {
	e.t.Helper()
	resp, data, err := e.stack.Do(e.ctx, e.stack.AdminKey, method, path, body, header)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		must(e.t, jsonUnmarshal(data, out))
	}
	return resp.Header
}

// members lists a directory group's members through the API, every page.
func (e *e2e) members(groupID string) []string {
	e.t.Helper()
	var out []string
	cursor := ""
	for {
		var page struct {
			Members []struct{ ID string }
			Next    string
		}
		e.api("GET", "/groups/"+groupID+"/members?top=7&cursor="+url.QueryEscape(cursor), nil, nil, http.StatusOK, &page)
		for _, m := range page.Members {
			out = append(out, m.ID)
		}
		if page.Next == "" {
			sort.Strings(out)
			return out
		}
		cursor = page.Next
	}
}

// changeSettings edits the settings through the API. A scope change
// starts a run: it returns its id ("" when none started).
func (e *e2e) changeSettings(edit func(s *dirsync.Settings)) string {
	e.t.Helper()
	var s dirsync.Settings
	h := e.api("GET", "/settings", nil, nil, http.StatusOK, &s)
	edit(&s)
	return e.api("PUT", "/settings", s, http.Header{"If-Match": {h.Get("ETag")}}, http.StatusOK, nil).Get("Entrasync-Run")
}

// syncAfter waits for the run a settings change started, or starts one.
func (e *e2e) syncAfter(runID string) localstack.RunInfo {
	e.t.Helper()
	if runID != "" {
		return e.wait(runID)
	}
	return e.sync(false)
}

func matching(users []graphsim.User, pred func(a map[string]any) bool) []string {
	var out []string
	for _, u := range users {
		if pred(u.Attributes) {
			out = append(out, u.ID)
		}
	}
	sort.Strings(out)
	return out
}

// active keeps the ids that are active directory users (a duplicate or a
// skipped user is in no group).
func (e *e2e) active(ids []string) []string {
	e.t.Helper()
	dir := e.directory()
	var out []string
	for _, id := range ids {
		if dir[id].Status == dirsync.StatusActive {
			out = append(out, id)
		}
	}
	return out
}

func financeSenior(a map[string]any) bool {
	return strings.EqualFold(fmt.Sprint(a["department"]), "finance") && strings.HasPrefix(strings.ToLower(fmt.Sprint(a["jobTitle"])), "senior")
}

func TestDynamicGroupsEndToEnd(t *testing.T) {
	e := start(t, graphsim.Config{Users: 300, Seed: 21, PageSize: 100}, devhost.Options{})
	tenant := e.stack.Graph.Tenant()
	rule := `user.department -eq "Finance" -and user.jobTitle -startsWith "Senior"`

	// Checked before it is saved: against an empty directory, no matches.
	var check struct {
		Valid      bool
		MatchCount int
	}
	e.api("POST", "/groups/validate-rule", map[string]string{"rule": rule}, nil, http.StatusOK, &check)
	if !check.Valid {
		t.Fatalf("validate-rule: %+v", check)
	}
	var created struct {
		Group dirsync.Group
		Run   *struct{ ID string }
	}
	e.api("POST", "/groups", map[string]string{"displayName": "Finance seniors", "rule": rule}, nil, http.StatusCreated, &created)
	gid := created.Group.ID
	if created.Run == nil {
		t.Fatalf("creating a group started no run")
	}
	run := e.wait(created.Run.ID)
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
		t.Fatalf("first run %s/%s: %s", run.Status, run.Mode, run.Error)
	}
	want := e.active(matching(tenant.Users(), financeSenior))
	if len(want) == 0 {
		t.Fatal("the generated tenant has no senior in Finance; pick another seed")
	}
	if diff := cmp.Diff(want, e.members(gid)); diff != "" {
		t.Errorf("members after the full run (-want +got):\n%s", diff)
	}
	if run.Counters["membersAdded"] != int64(len(want)) {
		t.Errorf("membersAdded = %d, want %d", run.Counters["membersAdded"], len(want))
	}
	e.api("POST", "/groups/validate-rule", map[string]string{"rule": rule}, nil, http.StatusOK, &check)
	if check.MatchCount != len(want) {
		t.Errorf("validate-rule against the directory: %d matches, want %d", check.MatchCount, len(want))
	}

	// Incremental: one user joins by an attribute change, a member is
	// deleted in Entra and leaves every group.
	var joiner string
	for _, u := range tenant.Users() {
		if !financeSenior(u.Attributes) {
			joiner = u.ID
			break
		}
	}
	must(t, tenant.UpdateUser(joiner, map[string]any{"department": "Finance", "jobTitle": "Senior Controller"}))
	gone := want[0]
	must(t, tenant.HardDeleteUser(gone))
	run = e.sync(false)
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("incremental run %s/%s: %s", run.Status, run.Mode, run.Error)
	}
	want = e.active(matching(tenant.Users(), financeSenior))
	if diff := cmp.Diff(want, e.members(gid)); diff != "" {
		t.Errorf("members after the incremental run (-want +got):\n%s", diff)
	}
	if slices.Contains(e.members(gid), gone) {
		t.Errorf("deleted user %s is still a member", gone)
	}
	var user struct {
		User struct {
			Groups []struct{ ID, DisplayName, Kind string }
		}
	}
	e.api("GET", "/users/"+joiner, nil, nil, http.StatusOK, &user)
	if len(user.User.Groups) != 1 || user.User.Groups[0].ID != gid || user.User.Groups[0].DisplayName != "Finance seniors" {
		t.Errorf("GET /users/%s groups = %+v, want the Finance seniors group", joiner, user.User.Groups)
	}
	if log := e.log(run.ID, "event=member_added,member_removed"); !strings.Contains(log, "member_added") || !strings.Contains(log, "member_removed") {
		t.Errorf("the run log lacks the membership changes:\n%s", log)
	}

	// A rule edit: every user is evaluated again, in an incremental run.
	var g struct{ Group dirsync.Group }
	h := e.api("GET", "/groups/"+gid, nil, nil, http.StatusOK, &g)
	newRule := `user.department -eq "Finance"`
	var updated struct {
		Run *struct{ ID string }
	}
	e.api("PUT", "/groups/"+gid, map[string]string{"displayName": "Finance", "rule": newRule}, http.Header{"If-Match": {h.Get("ETag")}}, http.StatusOK, &updated)
	if updated.Run == nil {
		t.Fatal("a rule edit started no run")
	}
	run = e.wait(updated.Run.ID)
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run after the rule edit %s/%s: %s", run.Status, run.Mode, run.Error)
	}
	want = e.active(matching(tenant.Users(), func(a map[string]any) bool { return strings.EqualFold(fmt.Sprint(a["department"]), "finance") }))
	if diff := cmp.Diff(want, e.members(gid)); diff != "" {
		t.Errorf("members after the rule edit (-want +got):\n%s", diff)
	}
}

func TestScopeEndToEnd(t *testing.T) {
	e := start(t, graphsim.Config{Users: 200, Seed: 5, PageSize: 50, Groups: -1}, devhost.Options{})
	tenant := e.stack.Graph.Tenant()
	users := tenant.Users()
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	sort.Strings(ids)
	group := func(name string, members ...string) string {
		g, err := tenant.AddGroup(graphsim.Group{DisplayName: name, Members: members})
		must(t, err)
		return g.ID
	}
	// Sales ⊃ Sales EMEA ⊃ Sales Nordics, three levels; 55 teams of one.
	nordics := group("Sales Nordics", ids[3])
	emea := group("Sales EMEA", ids[2], nordics)
	sales := group("Sales", ids[0], ids[1], emea)
	scope := []string{sales}
	for i := range 55 {
		scope = append(scope, group(fmt.Sprintf("Team %02d", i), ids[10+i]))
	}
	started := e.changeSettings(func(s *dirsync.Settings) {
		s.GroupScope, s.MirrorGroups = scope, true
		s.DeletionThreshold = dirsync.DeletionThreshold{}
	})
	if started == "" {
		t.Errorf("a scope change started no run")
	}
	run := e.syncAfter(started)
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("first run %s: %s %s", run.Status, run.Error, run.Hint)
	}
	wantDir := append([]string{ids[0], ids[1], ids[2], ids[3]}, ids[10:65]...)
	sort.Strings(wantDir)
	dirIDs := func() []string {
		var out []string
		for id, u := range e.directory() {
			if u.Status == dirsync.StatusActive {
				out = append(out, id)
			}
		}
		sort.Strings(out)
		return out
	}
	if diff := cmp.Diff(wantDir, dirIDs()); diff != "" {
		t.Errorf("directory scoped to 56 groups (-want +got):\n%s", diff)
	}
	wantSales := []string{ids[0], ids[1], ids[2], ids[3]}
	sort.Strings(wantSales)
	if diff := cmp.Diff(wantSales, e.members(sales)); diff != "" {
		t.Errorf("mirrored Sales (-want +got):\n%s", diff)
	}

	// Entry three levels down, exit directly, and a rename.
	must(t, tenant.AddMember(nordics, ids[100]))
	must(t, tenant.RemoveMember(sales, ids[1]))
	must(t, tenant.UpdateGroup(sales, "Sales (all regions)"))
	run = e.sync(false)
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Error)
	}
	dir := dirIDs()
	if !slices.Contains(dir, ids[100]) || slices.Contains(dir, ids[1]) {
		t.Errorf("after the membership changes: user entering through the nested group present=%v, user leaving present=%v",
			slices.Contains(dir, ids[100]), slices.Contains(dir, ids[1]))
	}
	if run.Counters["deleted"] != 1 || run.Counters["added"] != 1 {
		t.Errorf("counters %v, want 1 added and 1 deleted", run.Counters)
	}
	var g struct{ Group dirsync.Group }
	e.api("GET", "/groups/"+sales, nil, nil, http.StatusOK, &g)
	if g.Group.Kind != dirsync.GroupMirrored || g.Group.DisplayName != "Sales (all regions)" {
		t.Errorf("mirrored group = %+v, want renamed", g.Group)
	}

	// Selected users and a scoping rule combine with the groups.
	selected, _ := tenant.User(ids[150])
	excluded, _ := tenant.User(ids[0])
	run = e.syncAfter(e.changeSettings(func(s *dirsync.Settings) {
		s.UserScope = []string{fmt.Sprint(selected.Attributes["userPrincipalName"])}
		s.ScopeRule = `user.displayName -ne "` + fmt.Sprint(excluded.Attributes["displayName"]) + `"`
	}))
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
		t.Fatalf("run after the scope change %s/%s: %s", run.Status, run.Mode, run.Error)
	}
	dir = dirIDs()
	if !slices.Contains(dir, ids[150]) || slices.Contains(dir, ids[0]) {
		t.Errorf("selected user present=%v (want true); user the rule excludes present=%v (want false)", slices.Contains(dir, ids[150]), slices.Contains(dir, ids[0]))
	}

	// A selected group deleted in Entra: the run says so and deletes nobody.
	before := len(dirIDs())
	must(t, tenant.DeleteGroup(scope[5]))
	run = e.sync(false)
	if run.Status != dirsync.RunFailed || !strings.Contains(run.Error, "was deleted in Entra") || !strings.Contains(run.Hint, "groupScope") {
		t.Errorf("run with a deleted scoped group: %s: %s / %s", run.Status, run.Error, run.Hint)
	}
	if after := len(dirIDs()); after != before {
		t.Errorf("the directory went from %d to %d users after a scoped group was deleted", before, after)
	}
	// Saving settings that name a group Entra does not have is refused.
	var s dirsync.Settings
	h := e.api("GET", "/settings", nil, nil, http.StatusOK, &s)
	resp, body, err := e.stack.Do(e.ctx, e.stack.AdminKey, "PUT", "/settings", s, http.Header{"If-Match": {h.Get("ETag")}})
	must(t, err)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), scope[5]) {
		t.Errorf("PUT settings naming a deleted group: %d %s, want 400 naming it", resp.StatusCode, body)
	}
}
