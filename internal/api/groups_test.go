package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entrasync/entrasync/internal/dirsync"
)

const financeRule = `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`

type groupWrite struct {
	Group   *dirsync.Group
	Run     *struct{ ID string }
	Message string
}

// createGroup creates a dynamic group over HTTP and returns it with its ETag.
func (e *env) createGroup(name, rule string) (dirsync.Group, string) {
	e.t.Helper()
	res := e.call("POST", "/api/groups", adminKey, mustJSON(map[string]string{"displayName": name, "rule": rule})).want(http.StatusCreated)
	var got groupWrite
	res.decode(&got)
	if got.Group == nil {
		e.t.Fatalf("create: no group in %s", res.body)
	}
	return *got.Group, res.header.Get("ETag")
}

func TestGroupsCreateReadChangeDelete(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	e.syncNow()

	body := mustJSON(map[string]string{"displayName": "Finance seniors", "description": "Finance, Senior Manager", "rule": financeRule})
	e.call("POST", "/api/groups", supportKey, body).want(http.StatusForbidden)
	e.Clock.Advance(time.Second)
	res := e.call("POST", "/api/groups", adminKey, body).want(http.StatusCreated)
	var created groupWrite
	res.decode(&created)
	g := created.Group
	if g == nil || !dirsync.ValidObjectID(g.ID) || g.Kind != dirsync.GroupDynamic || g.Rule != financeRule || g.UpdatedBy != "key:admin" {
		t.Fatalf("created %s", res.body)
	}
	if loc := res.header.Get("Location"); loc != "/api/groups/"+g.ID {
		t.Errorf("Location = %q", loc)
	}
	etag := res.header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) {
		t.Errorf("ETag = %q", etag)
	}
	// Sync is enabled and idle: the write started a run to evaluate it.
	if created.Run == nil || !strings.Contains(created.Message, created.Run.ID) {
		t.Fatalf("create started no run: %s", res.body)
	}
	run, err := e.Engine.GetRun(context.Background(), created.Run.ID)
	if err != nil || run.Trigger != dirsync.TriggerGroups || run.RequestedBy != "key:admin" {
		t.Errorf("run %+v, %v", run, err)
	}

	// Refused creates.
	for _, tc := range []struct {
		name, body string
		status     int
		contains   string
	}{
		{"same name", mustJSON(map[string]string{"displayName": "FINANCE seniors", "rule": financeRule}), http.StatusConflict, "already exists"},
		{"bad rule", mustJSON(map[string]string{"displayName": "x", "rule": `user.department "Finance"`}), http.StatusBadRequest, "position 17"},
		{"mirrored", mustJSON(map[string]string{"displayName": "x", "rule": financeRule, "kind": "mirrored"}), http.StatusBadRequest, "mirrored groups follow Entra"},
		{"unknown field", `{"displayName":"x","rule":"user.city -eq \"a\"","owner":"me"}`, http.StatusBadRequest, `unknown field "owner"`},
		{"no body", "", http.StatusBadRequest, "body is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.call("POST", "/api/groups", adminKey, tc.body).want(tc.status)
			if _, msg, _ := res.apiError(); !strings.Contains(msg, tc.contains) {
				t.Errorf("message %q, want it to contain %q", msg, tc.contains)
			}
		})
	}

	// Read.
	var list struct{ Groups []dirsync.Group }
	e.call("GET", "/api/groups", supportKey, "").want(http.StatusOK).decode(&list)
	if diff := cmp.Diff([]dirsync.Group{*g}, list.Groups); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	res = e.call("GET", "/api/groups/"+strings.ToUpper(g.ID), supportKey, "").want(http.StatusOK)
	var one struct{ Group dirsync.Group }
	res.decode(&one)
	if diff := cmp.Diff(*g, one.Group); diff != "" || res.header.Get("ETag") != etag {
		t.Errorf("get (-want +got):\n%s\nETag %q, want %q", diff, res.header.Get("ETag"), etag)
	}
	e.call("GET", "/api/groups/"+uid(404), supportKey, "").want(http.StatusNotFound)
	e.call("GET", "/api/groups/finance", supportKey, "").want(http.StatusBadRequest)

	// Change: If-Match required, stale refused, support refused.
	change := mustJSON(map[string]string{"displayName": "Finance seniors", "rule": `user.department -eq "Finance"`})
	path := "/api/groups/" + g.ID
	res = e.call("PUT", path, adminKey, change).want(http.StatusPreconditionRequired)
	if code, msg, _ := res.apiError(); code != "precondition_required" || !strings.Contains(msg, "If-Match") {
		t.Errorf("PUT without If-Match: %s %q", code, msg)
	}
	e.call("PUT", path, supportKey, change, "If-Match", etag).want(http.StatusForbidden)
	e.call("PUT", path, adminKey, change, "If-Match", `"c3RhbGU"`).want(http.StatusPreconditionFailed)
	e.call("PUT", "/api/groups/"+uid(404), adminKey, change, "If-Match", "*").want(http.StatusNotFound)
	e.Clock.Advance(time.Second)
	res = e.call("PUT", path, adminKey, change, "If-Match", etag).want(http.StatusOK)
	var changed groupWrite
	res.decode(&changed)
	etag2 := res.header.Get("ETag")
	if changed.Group == nil || changed.Group.Rule != `user.department -eq "Finance"` || etag2 == etag {
		t.Errorf("changed %s, ETag %q", res.body, etag2)
	}
	// The run the create started is still going: no second one.
	if changed.Run != nil || !strings.Contains(changed.Message, "a sync is running now") {
		t.Errorf("change during a run: %s", res.body)
	}
	e.call("PUT", path, adminKey, change, "If-Match", etag).want(http.StatusPreconditionFailed)
	e.drain()

	// Delete.
	e.call("DELETE", path, adminKey, "").want(http.StatusPreconditionRequired)
	e.call("DELETE", path, supportKey, "", "If-Match", etag2).want(http.StatusForbidden)
	e.call("DELETE", path, adminKey, "", "If-Match", etag).want(http.StatusPreconditionFailed)
	e.Clock.Advance(time.Second)
	res = e.call("DELETE", path, adminKey, "", "If-Match", etag2).want(http.StatusOK)
	var deleted groupWrite
	res.decode(&deleted)
	if deleted.Group != nil || deleted.Run == nil || !strings.Contains(deleted.Message, "deleted") {
		t.Errorf("delete answered %s", res.body)
	}
	e.call("GET", path, supportKey, "").want(http.StatusNotFound)
	e.call("DELETE", path, adminKey, "", "If-Match", "*").want(http.StatusNotFound)
	e.drain()

	var audit struct{ Entries []dirsync.AuditEntry }
	e.call("GET", "/api/audit", supportKey, "").want(http.StatusOK).decode(&audit)
	var actions []string
	for _, a := range audit.Entries {
		actions = append(actions, a.Action)
	}
	if diff := cmp.Diff([]string{"group.delete", "group.update", "group.create"}, actions); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestGroupWriteWhileSyncIsDisabled(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, etag, _ := e.Engine.Settings(ctx)
	s.Enabled = false
	if _, err := e.Engine.PutSettings(ctx, s, etag, "test"); err != nil {
		t.Fatal(err)
	}
	res := e.call("POST", "/api/groups", adminKey, mustJSON(map[string]string{"displayName": "x", "rule": financeRule})).want(http.StatusCreated)
	var got groupWrite
	res.decode(&got)
	if got.Run != nil || !strings.Contains(got.Message, "sync is disabled") || e.Queue.Len() != 0 {
		t.Errorf("create while disabled: %s", res.body)
	}
}

func TestGroupMembersPaging(t *testing.T) {
	e := newEnv(t)
	e.Seed(6)
	e.syncNow()
	g, _ := e.createGroup("Everyone", `user.accountEnabled -ne false`)
	e.drain()
	for i := 1; i <= 5; i++ {
		e.AddMember(g.ID, uid(i))
	}
	// A removal register is not a member.
	if err := putRemoved(e, g.ID, uid(6)); err != nil {
		t.Fatal(err)
	}
	type member struct{ ID, DisplayName, UPN, Email, Status string }
	var got []member
	pages := 0
	next := "/api/groups/" + g.ID + "/members?top=3"
	for next != "" {
		var page struct {
			Members []member
			Next    string
		}
		e.call("GET", next, supportKey, "").want(http.StatusOK).decode(&page)
		got = append(got, page.Members...)
		pages++
		next = ""
		if page.Next != "" {
			next = "/api/groups/" + g.ID + "/members?top=3&cursor=" + page.Next
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	var want []member
	for i := 1; i <= 5; i++ {
		want = append(want, member{uid(i), fmt.Sprint("User ", i), fmt.Sprintf("user%d@contoso.example", i), fmt.Sprintf("user%d@contoso.example", i), "active"})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	if pages != 2 {
		t.Errorf("%d pages, want 2", pages)
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/api/groups/" + uid(404) + "/members", http.StatusNotFound},
		{"/api/groups/" + g.ID + "/members?top=0", http.StatusBadRequest},
		{"/api/groups/" + g.ID + "/members?top=1001", http.StatusBadRequest},
		{"/api/groups/" + g.ID + "/members?cursor=garbage", http.StatusBadRequest},
		{"/api/groups/" + g.ID + "/members?limit=3", http.StatusBadRequest},
	} {
		e.call("GET", tc.path, supportKey, "").want(tc.status)
	}
}

func putRemoved(e *env, groupID, userID string) error {
	_, err := e.Store.Upsert(context.Background(), dirsync.TableMembers, dirsync.Entity{
		PartitionKey: dirsync.MembersPartition(groupID), RowKey: userID,
		Props: map[string]any{dirsync.MemberPresentProp: false, dirsync.MemberVerProp: "2"}})
	return err
}

func TestValidateRule(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 12; i++ {
		p := person(i)
		if i%3 == 0 {
			p["department"], p["jobTitle"] = "Finance", "Senior Manager"
		}
		e.Source.Put(uid(i), p)
	}
	e.syncNow()
	check := func(rule string) dirsync.RulePreview {
		t.Helper()
		var got dirsync.RulePreview
		// support may check a rule: it changes nothing
		e.call("POST", "/api/groups/validate-rule", supportKey, mustJSON(map[string]string{"rule": rule})).want(http.StatusOK).decode(&got)
		return got
	}
	got := check(financeRule)
	var sample []string
	for _, u := range got.Sample {
		sample = append(sample, u.ID+" "+u.UPN)
	}
	want := dirsync.RulePreview{Valid: true, Rule: financeRule, Properties: []string{"department", "jobTitle"}, UnreadProperties: []string{},
		MatchCount: 4, Scanned: 12}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(dirsync.RulePreview{}, "Sample")); diff != "" {
		t.Errorf("valid rule (-want +got):\n%s", diff)
	}
	wantSample := []string{}
	for _, i := range []int{3, 6, 9, 12} {
		wantSample = append(wantSample, fmt.Sprintf("%s user%d@contoso.example", uid(i), i))
	}
	if diff := cmp.Diff(wantSample, sample, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("sample (-want +got):\n%s", diff)
	}

	got = check(`user.department -eq "Finance" -and`)
	if got.Valid || got.Error == nil || got.Error.Position != 35 || got.Error.Expected == "" || !strings.Contains(got.Error.Message, "position 35") {
		t.Errorf("invalid rule: %+v %+v", got, got.Error)
	}
	got = check(`user.country -eq "DE" -or user.department -eq "Finance"`)
	if diff := cmp.Diff([]string{"country"}, got.UnreadProperties); diff != "" || got.Note == "" || got.MatchCount != 4 {
		t.Errorf("unread property: %+v (-want +got unread):\n%s", got, diff)
	}
	e.call("POST", "/api/groups/validate-rule", supportKey, "").want(http.StatusBadRequest)
	e.call("POST", "/api/groups/validate-rule", supportKey, `{"rule": 1}`).want(http.StatusBadRequest)
}

func TestUserGroupsByName(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	e.syncNow()
	g, _ := e.createGroup("Finance seniors", financeRule)
	e.drain()
	if err := e.Engine.Groups().PutMirrored(context.Background(), dirsync.Group{ID: uid(700), DisplayName: "Board"}); err != nil {
		t.Fatal(err)
	}
	e.AddMember(g.ID, uid(1))
	e.AddMember(uid(700), uid(1))
	var got struct {
		User struct {
			Groups []struct{ ID, DisplayName, Kind string } `json:"groups"`
		}
	}
	e.call("GET", "/api/users/"+uid(1), supportKey, "").want(http.StatusOK).decode(&got)
	want := []struct{ ID, DisplayName, Kind string }{{uid(700), "Board", "mirrored"}, {g.ID, "Finance seniors", "dynamic"}}
	less := func(a, b struct{ ID, DisplayName, Kind string }) bool { return a.ID < b.ID }
	if diff := cmp.Diff(want, got.User.Groups, cmpopts.SortSlices(less)); diff != "" {
		t.Errorf("groups of user 1 (-want +got):\n%s", diff)
	}
}

// fakeGroups is an Entra with the given groups; it records how many
// lookups ran at once.
type fakeGroups struct {
	exist      map[string]bool
	err        error
	running    atomic.Int32
	mu         sync.Mutex
	maxRunning int32
}

func (f *fakeGroups) Group(ctx context.Context, id string) (dirsync.SourceGroup, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	f.mu.Lock()
	f.maxRunning = max(f.maxRunning, n)
	f.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	if f.err != nil {
		return dirsync.SourceGroup{}, f.err
	}
	if !f.exist[id] {
		return dirsync.SourceGroup{}, dirsync.Errorf(dirsync.ENOTFOUND, "group %s not found", id)
	}
	return dirsync.SourceGroup{ID: id, DisplayName: "g"}, nil
}

func TestSettingsGroupScopeMustExistInEntra(t *testing.T) {
	lookup := &fakeGroups{exist: map[string]bool{}}
	var ids []string
	for i := range 20 {
		ids = append(ids, uid(800+i))
		lookup.exist[uid(800+i)] = true
	}
	e := newEnv(t, envOptions{groups: lookup})
	put := func(scope []string, status int) result {
		t.Helper()
		res := e.call("GET", "/api/settings", supportKey, "").want(http.StatusOK)
		var s dirsync.Settings
		res.decode(&s)
		s.GroupScope = scope
		return e.call("PUT", "/api/settings", adminKey, mustJSON(s), "If-Match", res.header.Get("ETag")).want(status)
	}
	missing := uid(899)
	res := put([]string{ids[0], ids[1], ids[2], missing}, http.StatusBadRequest)
	if _, msg, _ := res.apiError(); !strings.Contains(msg, "groupScope[3]: no group "+missing+" exists in Entra (deleted, or a wrong id); remove it or pick an existing group") {
		t.Errorf("missing group: %q", msg)
	}
	if s, etag, _ := e.Engine.Settings(context.Background()); etag != "" || len(s.GroupScope) != 0 {
		t.Errorf("settings were saved: %v %q", s.GroupScope, etag)
	}
	put(ids, http.StatusOK)
	if lookup.maxRunning > 8 || lookup.maxRunning < 2 {
		t.Errorf("%d lookups ran at once, want 2..8", lookup.maxRunning)
	}
	lookup.err = &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "Graph did not answer", Hint: "Try again."}
	res = put(ids[:1], http.StatusServiceUnavailable)
	if _, msg, _ := res.apiError(); !strings.Contains(msg, "groupScope[0]") || !strings.Contains(msg, "Graph did not answer") {
		t.Errorf("lookup failure: %q", msg)
	}
	lookup.err = nil
	// A malformed id is refused by validation, before any lookup.
	res = put([]string{"not-a-guid"}, http.StatusBadRequest)
	if _, msg, _ := res.apiError(); !strings.Contains(msg, "groupScope[0]") {
		t.Errorf("malformed id: %q", msg)
	}
}
