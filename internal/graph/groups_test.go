package graph

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
)

// nestedGroups builds C (users 3..9) in B (with user 2) in A (with users 0,
// 1 and 5, also in C) and a big group of the users from 10 on, and returns
// A, B, C and the big group.
func nestedGroups(t *testing.T, tn *graphsim.Tenant) (a, b, c, big graphsim.Group) {
	t.Helper()
	users := tn.Users()
	uid := func(i int) string { return users[i].ID }
	add := func(name string, members ...string) graphsim.Group {
		g, err := tn.AddGroup(graphsim.Group{DisplayName: name, Members: members})
		mustDo(t, err)
		return g
	}
	c = add("C", uid(3), uid(4), uid(5), uid(6), uid(7), uid(8), uid(9))
	b = add("B", c.ID, uid(2))
	a = add("A", b.ID, uid(0), uid(1), uid(5))
	var rest []string
	for _, u := range users[10:] {
		rest = append(rest, u.ID)
	}
	big = add("Everyone", rest...)
	return a, b, c, big
}

func TestGroupsDeltaMembers(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 2600, Seed: 4, Groups: -1, GroupMembersPerPage: 500})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	a, b, c, big := nestedGroups(t, tn)
	// A device-like member Graph may list: left out. The simulator has
	// none, so the mapping is checked on its own below.
	users := tn.Users()
	uid := func(i int) string { return users[i].ID }

	norm := cmpopts.SortSlices(func(x, y string) bool { return x < y })
	got, link, pages := walkGroups(t, src, dirsync.GroupDeltaRequest{})
	if pages < 5 {
		t.Errorf("%d pages for a group of %d members at 500 a page", pages, len(big.Members))
	}
	want := map[string]dirsync.SourceGroup{
		a.ID:   {ID: a.ID, DisplayName: "A", MembersAdded: []string{uid(0), uid(1), uid(5)}, GroupsAdded: []string{b.ID}},
		b.ID:   {ID: b.ID, DisplayName: "B", MembersAdded: []string{uid(2)}, GroupsAdded: []string{c.ID}},
		c.ID:   {ID: c.ID, DisplayName: "C", MembersAdded: []string{uid(3), uid(4), uid(5), uid(6), uid(7), uid(8), uid(9)}},
		big.ID: {ID: big.ID, DisplayName: "Everyone", MembersAdded: big.Members},
	}
	if diff := cmp.Diff(want, got, norm, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("first round (-want +got):\n%s", diff)
	}

	// Membership changes, a rename and a deletion in the next round.
	mustDo(t, tn.AddMember(c.ID, uid(20)))
	mustDo(t, tn.RemoveMember(c.ID, uid(3)))
	mustDo(t, tn.RemoveMember(b.ID, c.ID))
	mustDo(t, tn.AddMember(big.ID, b.ID))
	mustDo(t, tn.UpdateGroup(a.ID, "A renamed"))
	got, link, _ = walkGroups(t, src, dirsync.GroupDeltaRequest{Link: link})
	want = map[string]dirsync.SourceGroup{
		a.ID:   {ID: a.ID, DisplayName: "A renamed"},
		b.ID:   {ID: b.ID, DisplayName: "B", GroupsRemoved: []string{c.ID}},
		c.ID:   {ID: c.ID, DisplayName: "C", MembersAdded: []string{uid(20)}, MembersRemoved: []string{uid(3)}},
		big.ID: {ID: big.ID, DisplayName: "Everyone", GroupsAdded: []string{b.ID}},
	}
	if diff := cmp.Diff(want, got, norm, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("second round (-want +got):\n%s", diff)
	}

	mustDo(t, tn.DeleteGroup(b.ID))
	got, _, _ = walkGroups(t, src, dirsync.GroupDeltaRequest{Link: link})
	want = map[string]dirsync.SourceGroup{
		b.ID:   {ID: b.ID, Removed: dirsync.RemovedDeleted},
		a.ID:   {ID: a.ID, DisplayName: "A renamed", GroupsRemoved: []string{b.ID}},
		big.ID: {ID: big.ID, DisplayName: "Everyone", GroupsRemoved: []string{b.ID}},
	}
	if diff := cmp.Diff(want, got, norm, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("third round (-want +got):\n%s", diff)
	}
}

// Member kinds other than users and groups are left out; a member without
// @odata.type is taken for a user.
func TestMapGroupsMemberKinds(t *testing.T) {
	src := &Source{log: discardLogger()}
	body := []byte(`{"value":[{"id":"g1","displayName":"G","members@delta":[
		{"@odata.type":"#microsoft.graph.user","id":"u1"},
		{"@odata.type":"#microsoft.graph.user","id":"u2","@removed":{"reason":"deleted"}},
		{"@odata.type":"#microsoft.graph.group","id":"g2"},
		{"@odata.type":"#microsoft.graph.group","id":"g3","@removed":{"reason":"deleted"}},
		{"@odata.type":"#microsoft.graph.device","id":"d1"},
		{"@odata.type":"#microsoft.graph.servicePrincipal","id":"s1"},
		{"@odata.type":"#microsoft.graph.orgContact","id":"c1","@removed":{"reason":"deleted"}},
		{"id":"u3"}]},
		{"id":"g4","@removed":{"reason":"deleted"}},
		{"id":"g5","@removed":{"reason":"changed"}}],
		"@odata.deltaLink":"https://x/v1.0/groups/delta?$deltatoken=1"}`)
	raw, err := decodePage(body, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []dirsync.SourceGroup{
		{ID: "g1", DisplayName: "G", MembersAdded: []string{"u1", "u3"}, MembersRemoved: []string{"u2"},
			GroupsAdded: []string{"g2"}, GroupsRemoved: []string{"g3"}},
		{ID: "g4", Removed: dirsync.RemovedDeleted},
		{ID: "g5", Removed: dirsync.RemovedChanged},
	}
	if diff := cmp.Diff(want, src.mapGroups(raw)); diff != "" {
		t.Errorf("mapGroups (-want +got):\n%s", diff)
	}
}

func TestGroupTransitiveMembersNested(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 30, Seed: 4, Groups: -1})
	src, _ := newSource(t, sim, func(c *Config) { c.PageSize = 4 })
	tn := sim.Tenant()
	a, b, c, _ := nestedGroups(t, tn)
	users := tn.Users()
	var first10 []string
	for _, u := range users[:10] {
		first10 = append(first10, u.ID)
	}
	type result struct{ Users, Groups []string }
	walk := func(id string) (result, error) {
		var r result
		link := ""
		for pages := 0; pages < 100; pages++ {
			page, err := src.GroupTransitiveMembers(ctxT(t), id, link)
			if err != nil {
				return r, err
			}
			if n := len(page.UserIDs) + len(page.GroupIDs); n > 4 {
				t.Errorf("page of %d members, more than the page size 4", n)
			}
			r.Users = append(r.Users, page.UserIDs...)
			r.Groups = append(r.Groups, page.GroupIDs...)
			if link = page.NextLink; link == "" {
				break
			}
		}
		slices.Sort(r.Users)
		slices.Sort(r.Groups)
		return r, nil
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	tests := []struct {
		group graphsim.Group
		want  result
	}{
		{a, result{sorted(first10...), sorted(b.ID, c.ID)}},
		{b, result{sorted(first10[2:]...), []string{c.ID}}},
		{c, result{sorted(first10[3:]...), nil}},
	}
	for _, tt := range tests {
		got, err := walk(tt.group.ID)
		if err != nil {
			t.Fatalf("group %s: %v", tt.group.DisplayName, err)
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("group %s (-want +got):\n%s", tt.group.DisplayName, diff)
		}
	}

	// A group deleted between two pages: the next page is ENOTFOUND.
	page, err := src.GroupTransitiveMembers(ctxT(t), a.ID, "")
	if err != nil || page.NextLink == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	mustDo(t, tn.DeleteGroup(a.ID))
	for _, link := range []string{page.NextLink, ""} {
		if _, err := src.GroupTransitiveMembers(ctxT(t), a.ID, link); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
			t.Errorf("deleted group (link %q): got %v, want ENOTFOUND", link, err)
		}
	}
	if _, err := src.GroupTransitiveMembers(ctxT(t), "not-a-guid", ""); dirsync.ErrorCode(err) != dirsync.EINVALID {
		t.Errorf("malformed id: got %v, want EINVALID", err)
	}
}

func TestGroup(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 20, Seed: 4, Groups: -1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	_, b, c, _ := nestedGroups(t, tn)
	mustDo(t, tn.DeleteGroup(c.ID))
	tests := []struct {
		name     string
		id       string
		want     dirsync.SourceGroup
		wantCode dirsync.Code
	}{
		{"existing", b.ID, dirsync.SourceGroup{ID: b.ID, DisplayName: "B"}, ""},
		{"deleted", c.ID, dirsync.SourceGroup{}, dirsync.ENOTFOUND},
		{"never existed", "00000000-0000-4000-8000-000000000000", dirsync.SourceGroup{}, dirsync.ENOTFOUND},
		{"not a GUID", "B", dirsync.SourceGroup{}, dirsync.EINVALID},
		{"a filter in disguise", "x' or 1 eq 1", dirsync.SourceGroup{}, dirsync.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := requests(sim, graphsim.RouteGroup)
			got, err := src.Group(ctxT(t), tt.id)
			if code := dirsync.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("Group(%q) error %v (code %q), want code %q", tt.id, err, code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Group(%q) (-want +got):\n%s", tt.id, diff)
			}
			if tt.wantCode == dirsync.EINVALID && requests(sim, graphsim.RouteGroup) != before {
				t.Errorf("a malformed id was sent to Graph")
			}
		})
	}
}

// extensionAttributeN is asked as onPremisesExtensionAttributes and comes
// back flat; manager comes from manager@delta in delta and from $expand for
// one user.
func TestExtensionAttributesAndManager(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 10, Seed: 4, Groups: -1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	boss := tn.Users()[0]
	u, err := tn.AddUser(graphsim.User{Attributes: map[string]any{
		"displayName": "Ext", "extensionAttribute3": "cost-42", "manager": boss.ID,
	}})
	mustDo(t, err)
	sel := []string{"displayName", "extensionAttribute3", "manager"}
	got, deltaLink, _ := walkUsers(t, src, dirsync.DeltaRequest{Select: sel})
	want := map[string]string{"displayName": "Ext", "extensionAttribute3": "cost-42", "manager": boss.ID}
	pick := func(a map[string]string) map[string]string {
		out := map[string]string{}
		for _, k := range sel {
			if v, ok := a[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	if diff := cmp.Diff(want, pick(got[u.ID].Attributes)); diff != "" {
		t.Errorf("users delta (-want +got):\n%s", diff)
	}
	if v, ok := got[u.ID].Attributes["extensionAttribute1"]; !ok || v != "" {
		t.Errorf("an unset extension attribute: %q, %v; want present and empty (Graph sends null)", v, ok)
	}
	one, err := src.User(ctxT(t), u.ID, sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, pick(one.Attributes)); diff != "" {
		t.Errorf("User (-want +got):\n%s", diff)
	}

	// A change to the extension attribute brings the user back.
	mustDo(t, tn.UpdateUser(u.ID, map[string]any{"extensionAttribute3": "cost-43"}))
	again, _, _ := walkUsers(t, src, dirsync.DeltaRequest{Link: deltaLink})
	if v := again[u.ID].Attributes["extensionAttribute3"]; v != "cost-43" {
		t.Errorf("second round: extensionAttribute3 = %q (users %v)", v, fmt.Sprint(len(again)))
	}
}
