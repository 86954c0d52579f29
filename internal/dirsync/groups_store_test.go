package dirsync_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
	"github.com/entrasync/entrasync/internal/table"
	"github.com/entrasync/entrasync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// azuriteStore is a real table store on Azurite, with tables of its own.
func azuriteStore(t *testing.T) dirsync.Store {
	t.Helper()
	s, err := table.New(table.Config{ConnectionString: testenv.Storage(t), TablePrefix: testenv.UniqueName(t, "g")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stores runs f on the in-memory store and on Azurite.
func stores(t *testing.T, f func(t *testing.T, s dirsync.Store)) {
	t.Run("memory", func(t *testing.T) { f(t, dirsynctest.NewStore()) })
	t.Run("azurite", func(t *testing.T) { f(t, azuriteStore(t)) })
}

// randomCalls makes every test GroupStore's random bytes differ.
var randomCalls atomic.Int32

func groupStore(s dirsync.Store) *dirsync.GroupStore {
	clock := dirsynctest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tick := func() time.Time { clock.Advance(time.Second); return clock.Now() }
	return &dirsync.GroupStore{Store: s, Now: tick, Random: func(b []byte) {
		n := byte(randomCalls.Add(1))
		for i := range b {
			b[i] = n
		}
	}}
}

func wantCode(t *testing.T, what string, err error, code dirsync.Code, contains string) {
	t.Helper()
	if !dirsync.IsCode(err, code) || !strings.Contains(dirsync.ErrorMessage(err), contains) {
		t.Errorf("%s: %v (code %s), want %s containing %q", what, err, dirsync.ErrorCode(err), code, contains)
	}
	if err != nil && code != dirsync.EUNAVAILABLE && dirsync.ErrorHint(err) == "" {
		t.Errorf("%s: the error has no hint", what)
	}
}

func TestGroupCreateValidates(t *testing.T) {
	ctx := context.Background()
	gs := groupStore(dirsynctest.NewStore())
	if _, err := gs.Create(ctx, dirsync.Group{DisplayName: "Finance", Rule: `user.department -eq "Finance"`}, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		g        dirsync.Group
		code     dirsync.Code
		contains string
	}{
		{"mirrored", dirsync.Group{Kind: dirsync.GroupMirrored, DisplayName: "x", Rule: "user.city -eq \"a\""}, dirsync.EINVALID, "mirrored groups follow Entra"},
		{"no name", dirsync.Group{DisplayName: "   ", Rule: "user.city -eq \"a\""}, dirsync.EINVALID, "displayName is empty"},
		{"long name", dirsync.Group{DisplayName: strings.Repeat("é", 257), Rule: "user.city -eq \"a\""}, dirsync.EINVALID, "257 characters"},
		{"long description", dirsync.Group{DisplayName: "x", Description: strings.Repeat("d", 1025), Rule: "user.city -eq \"a\""}, dirsync.EINVALID, "description has 1025"},
		{"no rule", dirsync.Group{DisplayName: "x"}, dirsync.EINVALID, "rule is empty"},
		{"bad rule", dirsync.Group{DisplayName: "x", Rule: `user.department "Finance"`}, dirsync.EINVALID, "rule: position 17"},
		{"same name", dirsync.Group{DisplayName: " FINANCE ", Rule: "user.city -eq \"a\""}, dirsync.ECONFLICT, `named "Finance" already exists`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gs.Create(ctx, tc.g, "admin")
			wantCode(t, "Create", err, tc.code, tc.contains)
		})
	}
	groups, _ := gs.List(ctx)
	if len(groups) != 1 {
		t.Errorf("after refused creates, %d groups, want 1", len(groups))
	}
}

func TestGroupCreateLimit(t *testing.T) {
	ctx := context.Background()
	s := dirsynctest.NewStore()
	for i := range dirsync.MaxDynamicGroups {
		s.Insert(ctx, dirsync.TableGroups, dirsync.Entity{PartitionKey: "dynamic", RowKey: dirsynctest.UserID(i),
			Props: map[string]any{"displayName": fmt.Sprint("g", i), "rule": `user.city -eq "a"`}})
	}
	_, err := groupStore(s).Create(ctx, dirsync.Group{DisplayName: "one more", Rule: `user.city -eq "a"`}, "admin")
	wantCode(t, "Create", err, dirsync.EINVALID, "at most 500")
}

func TestGroupLifecycle(t *testing.T) {
	stores(t, func(t *testing.T, s dirsync.Store) {
		ctx := context.Background()
		gs := groupStore(s)
		fin, err := gs.Create(ctx, dirsync.Group{DisplayName: " Finance seniors ", Description: "d",
			Rule: `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`}, "ada")
		if err != nil {
			t.Fatal(err)
		}
		if !dirsync.ValidObjectID(fin.ID) || fin.ETag == "" || fin.Kind != dirsync.GroupDynamic || fin.DisplayName != "Finance seniors" || fin.UpdatedBy != "ada" {
			t.Errorf("created %+v", fin)
		}
		all, err := gs.Create(ctx, dirsync.Group{DisplayName: "all", Rule: `user.accountEnabled -eq true`}, "ada")
		if err != nil {
			t.Fatal(err)
		}
		mirror := dirsynctest.UserID(700)
		if err := gs.PutMirrored(ctx, dirsync.Group{ID: mirror, DisplayName: "Board"}); err != nil {
			t.Fatal(err)
		}
		got, err := gs.Get(ctx, strings.ToUpper(fin.ID))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fin, got); diff != "" {
			t.Errorf("Get (-created +got):\n%s", diff)
		}
		list, err := gs.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range list {
			names = append(names, string(g.Kind)+":"+g.DisplayName)
		}
		if diff := cmp.Diff([]string{"dynamic:all", "mirrored:Board", "dynamic:Finance seniors"}, names); diff != "" {
			t.Errorf("List (-want +got):\n%s", diff)
		}

		// Update: stale, fresh, "*", kind, name clash, mirrored.
		change := fin
		change.Rule = `user.department -eq "Finance"`
		_, err = gs.Update(ctx, change, "W/\"stale\"", "bob")
		wantCode(t, "stale Update", err, dirsync.EPRECONDITION, "changed by someone else")
		_, err = gs.Update(ctx, change, "", "bob")
		wantCode(t, "Update without ETag", err, dirsync.EINVALID, "needs the ETag")
		upd, err := gs.Update(ctx, change, fin.ETag, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if upd.Rule != change.Rule || upd.ETag == fin.ETag || upd.UpdatedBy != "bob" || !upd.CreatedAt.Equal(fin.CreatedAt) {
			t.Errorf("updated %+v", upd)
		}
		_, err = gs.Update(ctx, change, fin.ETag, "bob")
		wantCode(t, "Update with the old ETag", err, dirsync.EPRECONDITION, "changed by someone else")
		change.DisplayName = "ALL"
		_, err = gs.Update(ctx, change, "*", "bob")
		wantCode(t, "Update to a taken name", err, dirsync.ECONFLICT, "already exists")
		change.DisplayName, change.Kind = "Finance", dirsync.GroupMirrored
		_, err = gs.Update(ctx, change, "*", "bob")
		wantCode(t, "Update of the kind", err, dirsync.EINVALID, "cannot change")
		change.Kind = ""
		if _, err := gs.Update(ctx, change, "*", "bob"); err != nil {
			t.Errorf("Update with *: %v", err)
		}
		_, err = gs.Update(ctx, dirsync.Group{ID: mirror, DisplayName: "x", Rule: `user.city -eq "a"`}, "*", "bob")
		wantCode(t, "Update of a mirrored group", err, dirsync.EINVALID, "mirrored groups follow Entra")
		_, err = gs.Update(ctx, dirsync.Group{ID: dirsynctest.UserID(404), DisplayName: "x", Rule: `user.city -eq "a"`}, "*", "bob")
		wantCode(t, "Update of a missing group", err, dirsync.ENOTFOUND, "does not exist")

		// Delete.
		wantCode(t, "stale Delete", gs.Delete(ctx, all.ID, "W/\"stale\"", "bob"), dirsync.EPRECONDITION, "changed by someone else")
		wantCode(t, "Delete of a mirrored group", gs.Delete(ctx, mirror, "*", "bob"), dirsync.EINVALID, "mirrored")
		if err := gs.Delete(ctx, all.ID, all.ETag, "bob"); err != nil {
			t.Fatal(err)
		}
		_, err = gs.Get(ctx, all.ID)
		wantCode(t, "Get after Delete", err, dirsync.ENOTFOUND, "does not exist")
		wantCode(t, "Delete again", gs.Delete(ctx, all.ID, "*", "bob"), dirsync.ENOTFOUND, "does not exist")
		_, err = gs.Get(ctx, "not-a-guid")
		wantCode(t, "Get of a bad id", err, dirsync.EINVALID, "not a group id")

		// The engine's side: PutMirrored keeps CreatedAt, DeleteMirrored.
		before, _ := gs.Get(ctx, mirror)
		if err := gs.PutMirrored(ctx, dirsync.Group{ID: mirror, DisplayName: "Board of directors"}); err != nil {
			t.Fatal(err)
		}
		after, _ := gs.Get(ctx, mirror)
		if after.DisplayName != "Board of directors" || after.UpdatedBy != "sync" || !after.CreatedAt.Equal(before.CreatedAt) {
			t.Errorf("mirrored after PutMirrored: %+v", after)
		}
		if err := gs.DeleteMirrored(ctx, mirror); err != nil {
			t.Fatal(err)
		}
		_, err = gs.Get(ctx, mirror)
		wantCode(t, "Get of a deleted mirrored group", err, dirsync.ENOTFOUND, "does not exist")

		// Every admin change, and only those that happened, is audited.
		ss := &dirsync.SettingsStore{Store: s, Now: time.Now}
		entries, _, err := ss.List(ctx, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, a := range entries {
			actions = append(actions, a.Action+" "+a.Who)
		}
		want := []string{"group.delete bob", "group.update bob", "group.update bob", "group.create ada", "group.create ada"}
		if diff := cmp.Diff(want, actions); diff != "" {
			t.Errorf("audit, newest first (-want +got):\n%s", diff)
		}
		if len(entries) == 5 && (entries[0].Before == nil || entries[1].Before == nil || entries[1].After == nil) {
			t.Errorf("audit rows lack before/after: %+v", entries[:2])
		}
	})
}

func TestGroupMembersPage(t *testing.T) {
	stores(t, func(t *testing.T, s dirsync.Store) {
		ctx := context.Background()
		e := &dirsync.Engine{Store: s}
		g, other := dirsynctest.UserID(900), dirsynctest.UserID(901)
		var want []string
		for i := 1; i <= 7; i++ {
			present := i != 2 && i != 3 // two removed registers inside the first page
			if err := dirsynctest.PutMember(ctx, s, g, dirsynctest.UserID(i), present, "00001"); err != nil {
				t.Fatal(err)
			}
			if present {
				want = append(want, dirsynctest.UserID(i))
			}
		}
		dirsynctest.PutMember(ctx, s, other, dirsynctest.UserID(1), true, "1")

		var got []string
		var pages int
		cursor := ""
		for {
			ids, next, err := e.GroupMembersPage(ctx, g, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids...)
			pages++
			if next == "" {
				break
			}
			if pages == 1 {
				_, _, err := e.GroupMembersPage(ctx, other, next, 3)
				wantCode(t, "cursor of another group", err, dirsync.EINVALID, "another group")
			}
			cursor = next
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
		if pages != 2 {
			t.Errorf("%d pages of 3 for 5 members, want 2", pages)
		}
		for _, tc := range []struct {
			name, group, cursor string
			top                 int
			contains            string
		}{
			{"malformed cursor", g, "%%%", 3, "cursor is not valid"},
			{"cursor not JSON", g, "bm90IGpzb24", 3, "cursor is not valid"},
			{"top too big", g, "", 1001, "top 1001 is out of range"},
			{"top negative", g, "", -1, "out of range"},
			{"bad group", "x", "", 3, "not a group id"},
		} {
			_, _, err := e.GroupMembersPage(ctx, tc.group, tc.cursor, tc.top)
			wantCode(t, tc.name, err, dirsync.EINVALID, tc.contains)
		}
		ids, next, err := e.GroupMembersPage(ctx, dirsynctest.UserID(902), "", 0)
		if err != nil || len(ids) != 0 || next != "" || ids == nil {
			t.Errorf("members of an empty group: %v %q %v", ids, next, err)
		}
	})
}

func TestUserGroupsReadsTheUserRow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.Seed(2)
	e.Sync(dirsynctest.DrainOptions{})
	if err := dirsynctest.SetUserGroups(ctx, e.Store, uid(1), []string{uid(902), uid(901)}); err != nil {
		t.Fatal(err)
	}
	got, err := e.Engine.UserGroups(ctx, uid(1))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{uid(901), uid(902)}, got); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if got, err := e.Engine.UserGroups(ctx, uid(2)); err != nil || got == nil || len(got) != 0 {
		t.Errorf("groups of a user in none: %v %v", got, err)
	}
	_, err = e.Engine.UserGroups(ctx, uid(3))
	wantCode(t, "UserGroups of a missing user", err, dirsync.ENOTFOUND, "not in the directory")
}

func TestPreviewRule(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := 1; i <= 12; i++ {
		p := person(i)
		if i%3 == 0 {
			p["department"], p["jobTitle"] = "Finance", "Senior Manager"
		}
		e.Source.Put(uid(i), p)
	}
	e.Sync(dirsynctest.DrainOptions{})
	// Within Entra's limit as written, over it once every value is quoted
	// and every "and" hyphenated.
	nearTheLimit := strings.Repeat("user.department -eq x and ", 117) + "user.department -eq Finance"
	for _, tc := range []struct {
		name, rule string
		limits     dirsync.PreviewLimits
		want       dirsync.RulePreview
		// note is what the note must say ("" when there are no unread
		// properties: no note).
		note string
	}{
		{"matches", `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`, dirsync.PreviewLimits{}, dirsync.RulePreview{
			Valid: true, Rule: `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`,
			Properties: []string{"department", "jobTitle"}, UnreadProperties: []string{}, MatchCount: 4, Scanned: 12,
		}, ""},
		{"unread property", `user.country -eq "DE"`, dirsync.PreviewLimits{}, dirsync.RulePreview{
			Valid: true, Rule: `user.country -eq "DE"`, Properties: []string{"country"}, UnreadProperties: []string{"country"}, Scanned: 12,
		}, ""},
		{"bounded", `user.accountEnabled -ne false`, dirsync.PreviewLimits{MaxRows: 5}, dirsync.RulePreview{
			Valid: true, Rule: `user.accountEnabled -ne false`, Properties: []string{"accountEnabled"}, UnreadProperties: []string{"accountEnabled"},
			MatchCount: 5, Scanned: 5, Partial: true,
		}, ""},
		{"invalid", `user.department "Finance"`, dirsync.PreviewLimits{}, dirsync.RulePreview{
			Error: &dirsync.RuleProblem{Position: 17, Line: 1, Column: 17}, Properties: []string{}, UnreadProperties: []string{},
		}, ""},
		{"normal form over the limit", nearTheLimit, dirsync.PreviewLimits{}, dirsync.RulePreview{
			Valid: true, Rule: strings.Repeat(`user.department -eq "x" -and `, 117) + `user.department -eq "Finance"`,
			Properties: []string{"department"}, UnreadProperties: []string{}, Scanned: 12,
		}, "save the rule as written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Engine.PreviewRule(ctx, tc.rule, tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			if got.Valid && len(got.Sample) != int(min(got.MatchCount, dirsync.PreviewSampleSize)) {
				t.Errorf("sample of %d for %d matches", len(got.Sample), got.MatchCount)
			}
			if tc.note != "" {
				if !strings.Contains(got.Note, tc.note) {
					t.Errorf("note %q, want it to say %q", got.Note, tc.note)
				}
			} else if (len(got.UnreadProperties) > 0) != (got.Note != "") {
				t.Errorf("note %q with unread %v", got.Note, got.UnreadProperties)
			}
			if got.Error != nil && (!strings.Contains(got.Error.Message, "position 17") || got.Error.Expected == "") {
				t.Errorf("error %+v lacks the position or what was expected", got.Error)
			}
			opts := cmp.Options{cmpopts.IgnoreFields(dirsync.RulePreview{}, "Sample", "Note"),
				cmpopts.IgnoreFields(dirsync.RuleProblem{}, "Message", "Expected")}
			if diff := cmp.Diff(tc.want, got, opts); diff != "" {
				t.Errorf("preview (-want +got):\n%s", diff)
			}
		})
	}
}

// failingTable fails every write to one table.
type failingTable struct {
	dirsync.Store
	table string
}

func (f failingTable) err() error {
	return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "storage is down"}
}

func (f failingTable) Insert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	if table == f.table {
		return "", f.err()
	}
	return f.Store.Insert(ctx, table, e)
}

func (f failingTable) Replace(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	if table == f.table {
		return "", f.err()
	}
	return f.Store.Replace(ctx, table, e)
}

func (f failingTable) Delete(ctx context.Context, table, pk, rk, etag string) error {
	if table == f.table {
		return f.err()
	}
	return f.Store.Delete(ctx, table, pk, rk, etag)
}

// A change that cannot be audited is not made, and a change that fails
// leaves no audit row saying it was made.
func TestGroupWritesAndTheirAuditRowsGoTogether(t *testing.T) {
	ctx := context.Background()
	mem := dirsynctest.NewStore()
	good := groupStore(mem)
	g, err := good.Create(ctx, dirsync.Group{DisplayName: "kept", Rule: `user.city -eq "a"`}, "ada")
	if err != nil {
		t.Fatal(err)
	}
	for _, failing := range []string{dirsync.TableGroups, dirsync.TableAudit} {
		t.Run(failing, func(t *testing.T) {
			gs := groupStore(failingTable{Store: mem, table: failing})
			_, err := gs.Create(ctx, dirsync.Group{DisplayName: "new", Rule: `user.city -eq "a"`}, "bob")
			wantCode(t, "Create", err, dirsync.EUNAVAILABLE, "storage is down")
			change := g
			change.Rule = `user.city -eq "b"`
			_, err = gs.Update(ctx, change, g.ETag, "bob")
			wantCode(t, "Update", err, dirsync.EUNAVAILABLE, "storage is down")
			wantCode(t, "Delete", gs.Delete(ctx, g.ID, g.ETag, "bob"), dirsync.EUNAVAILABLE, "storage is down")
		})
	}
	groups, _ := good.List(ctx)
	if len(groups) != 1 || groups[0].Rule != g.Rule {
		t.Errorf("groups after failed writes: %+v", groups)
	}
	entries, _, _ := (&dirsync.SettingsStore{Store: mem}).List(ctx, 100, "")
	if len(entries) != 1 || entries[0].Action != "group.create" || entries[0].Who != "ada" {
		t.Errorf("audit after failed writes: %+v", entries)
	}
}
