package graphsim

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// groupState merges a groups delta round the way the docs tell a client to:
// a group may repeat across pages, each time with more members.
type groupState struct {
	name    string
	members []string
	removed []string
	gone    bool
}

func mergeGroups(t *testing.T, items []map[string]any) map[string]*groupState {
	t.Helper()
	out := map[string]*groupState{}
	for _, it := range items {
		id := it["id"].(string)
		g := out[id]
		if g == nil {
			g = &groupState{}
			out[id] = g
		}
		if _, ok := it["@removed"]; ok {
			g.gone = true
			continue
		}
		if n, ok := it["displayName"].(string); ok {
			g.name = n
		}
		if md, ok := it["members@delta"]; ok {
			for _, e := range md.([]any) {
				m := e.(map[string]any)
				typ := m["@odata.type"].(string)
				if typ != "#microsoft.graph.user" && typ != "#microsoft.graph.group" {
					t.Errorf("member entry with @odata.type %q", typ)
				}
				if r, ok := m["@removed"].(map[string]any); ok {
					if r["reason"] != "deleted" {
						t.Errorf("removed member reason %v, want deleted", r["reason"])
					}
					g.removed = append(g.removed, m["id"].(string))
				} else {
					g.members = append(g.members, m["id"].(string))
				}
			}
		}
	}
	for _, g := range out {
		slices.Sort(g.members)
		slices.Sort(g.removed)
	}
	return out
}

func idFilter(ids ...string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "id eq '" + id + "'"
	}
	return url.QueryEscape(strings.Join(parts, " or "))
}

func TestGroupsDeltaFirstRound(t *testing.T) {
	c := startSim(t, Config{Users: 300, Seed: 6, GroupMembersPerPage: 20})
	tn := c.sim.Tenant()
	groups := tn.Groups()
	rd := c.round("/groups/delta?$select=displayName,members", 0)
	got := mergeGroups(t, rd.items)
	if len(got) != len(groups) {
		t.Fatalf("round has %d groups, tenant %d", len(got), len(groups))
	}
	repeated := false
	for _, g := range groups {
		gs := got[g.ID]
		if gs == nil {
			t.Errorf("group %s missing", g.DisplayName)
			continue
		}
		if gs.name != g.DisplayName {
			t.Errorf("group %s: displayName %q", g.ID, gs.name)
		}
		if diff := cmp.Diff(g.Members, gs.members, cmpEmpty); diff != "" {
			t.Errorf("group %s members (-tenant +delta):\n%s", g.DisplayName, diff)
		}
		if len(g.Members) > 20 {
			repeated = true
		}
	}
	if !repeated {
		t.Fatal("no group bigger than one members@delta chunk: the test proves nothing")
	}
	for _, it := range rd.items {
		if md, ok := it["members@delta"].([]any); ok && len(md) > 20 {
			t.Errorf("members@delta with %d entries, want at most 20 per page", len(md))
		}
	}
}

var cmpEmpty = cmp.Transformer("nilToEmpty", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})

func TestGroupsDeltaFilterAndLaterRounds(t *testing.T) {
	c := startSim(t, Config{Users: 120, Seed: 6, GroupMembersPerPage: 5})
	tn := c.sim.Tenant()
	users := tn.Users()
	small, err := tn.AddGroup(Group{DisplayName: "Small", Members: []string{users[0].ID, users[1].ID}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := tn.AddGroup(Group{DisplayName: "Other", Members: []string{users[2].ID}})
	if err != nil {
		t.Fatal(err)
	}
	big := tn.Groups()[0] // the generated groups are all bigger than 5 members or nested
	for _, g := range tn.Groups() {
		if len(g.Members) > len(big.Members) {
			big = g
		}
	}
	rd := c.round("/groups/delta?$select=displayName,members&$filter="+idFilter(small.ID, big.ID), 0)
	got := mergeGroups(t, rd.items)
	if len(got) != 2 || got[small.ID] == nil || got[big.ID] == nil {
		t.Fatalf("filtered round has groups %v", keys(got))
	}
	if diff := cmp.Diff(big.Members, got[big.ID].members); diff != "" {
		t.Errorf("big group members (-want +got):\n%s", diff)
	}

	// Changes: add and remove members, soft-delete a member, rename; a
	// change to a group outside the filter is not reported.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tn.AddMember(small.ID, users[5].ID))
	must(tn.RemoveMember(small.ID, users[0].ID))
	must(tn.SoftDeleteUser(users[1].ID))
	must(tn.UpdateGroup(big.ID, "Renamed"))
	must(tn.AddMember(other.ID, users[6].ID))
	r2 := c.round(rd.deltaLink, 0)
	got = mergeGroups(t, r2.items)
	if diff := cmp.Diff([]string{big.ID, small.ID}, sortedCopy(keys(got))); diff != "" {
		t.Fatalf("round 2 groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{users[5].ID}, got[small.ID].members); diff != "" {
		t.Errorf("added members (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedCopy([]string{users[0].ID, users[1].ID}), got[small.ID].removed); diff != "" {
		t.Errorf("removed members (-want +got):\n%s", diff)
	}
	if got[big.ID].name != "Renamed" || len(got[big.ID].members)+len(got[big.ID].removed) != 0 {
		t.Errorf("renamed group: %+v", got[big.ID])
	}

	// A restored user comes back into its groups; a deleted group is @removed.
	must(tn.RestoreUser(users[1].ID))
	must(tn.DeleteGroup(big.ID))
	r3 := c.round(r2.deltaLink, 0)
	got = mergeGroups(t, r3.items)
	if diff := cmp.Diff([]string{users[1].ID}, got[small.ID].members); diff != "" {
		t.Errorf("restored member (-want +got):\n%s", diff)
	}
	if !got[big.ID].gone {
		t.Errorf("deleted group not reported as removed: %+v", got[big.ID])
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestGroupsDeltaMembershipOnlyTrackedWhenSelected(t *testing.T) {
	c := startSim(t, Config{Users: 20, Groups: 3})
	tn := c.sim.Tenant()
	g := tn.Groups()[0]
	rd := c.round("/groups/delta?$select=displayName", 0)
	for _, it := range rd.items {
		if _, ok := it["members@delta"]; ok {
			t.Fatalf("members@delta without members in $select: %v", it)
		}
	}
	u := tn.Users()[0].ID
	if err := tn.AddMember(g.ID, u); err != nil && !strings.Contains(err.Error(), "already") {
		t.Fatal(err)
	}
	if r2 := c.round(rd.deltaLink, 0); len(r2.items) != 0 {
		t.Errorf("membership change reported although members is not selected: %v", r2.items)
	}
}

func TestGroupsDeltaFilterErrors(t *testing.T) {
	c := startSim(t, Config{Users: 5})
	var many []string
	for i := range 51 {
		many = append(many, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	}
	tests := []struct{ name, filter string }{
		{"51 ids", idFilter(many...)},
		{"not an id filter", url.QueryEscape("displayName eq 'x'")},
		{"and instead of or", url.QueryEscape("id eq 'a' and id eq 'b'")},
		{"unquoted id", url.QueryEscape("id eq a")},
		{"startswith", url.QueryEscape("startswith(displayName,'a')")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := c.do(http.MethodGet, "/groups/delta?$select=members&$filter="+tt.filter, nil)
			if resp.StatusCode != http.StatusBadRequest || errorCode(t, body) != "Request_BadRequest" {
				t.Errorf("got %d %s, want 400 Request_BadRequest", resp.StatusCode, body)
			}
		})
	}
	// Exactly 50 is fine.
	c.get("/groups/delta?$select=members&$filter="+idFilter(many[:50]...), http.StatusOK)
}

func TestTransitiveMembers(t *testing.T) {
	c := startSim(t, Config{Users: 400, Seed: 12})
	tn := c.sim.Tenant()
	var all Group
	want := map[string]bool{}
	groups := tn.Groups()
	for _, g := range groups {
		if g.DisplayName == "All Employees" {
			all = g
		}
	}
	isGroup := map[string]bool{}
	for _, g := range groups {
		isGroup[g.ID] = true
	}
	for _, g := range groups {
		if slices.Contains(all.Members, g.ID) {
			for _, m := range g.Members {
				want[m] = true
			}
		}
	}
	var wantUsers []string
	for id := range want {
		if !isGroup[id] {
			wantUsers = append(wantUsers, id)
		}
	}
	slices.Sort(wantUsers)

	for _, cast := range []string{"/microsoft.graph.user", "/graph.user"} {
		rd := c.pagedList("/groups/"+all.ID+"/transitiveMembers"+cast+"?$select=id,displayName&$top=50", 0)
		if diff := cmp.Diff(wantUsers, ids(rd)); diff != "" {
			t.Errorf("transitive users via %s (-want +got):\n%s", cast, diff)
		}
		for _, it := range rd {
			if it["@odata.type"] != "#microsoft.graph.user" {
				t.Errorf("member %v lacks @odata.type #microsoft.graph.user", it)
			}
		}
	}
	everything := c.pagedList("/groups/"+all.ID+"/transitiveMembers", 0)
	var nestedGroups int
	for _, it := range everything {
		if it["@odata.type"] == "#microsoft.graph.group" {
			nestedGroups++
		}
	}
	if nestedGroups != len(all.Members) || len(everything) != len(wantUsers)+nestedGroups {
		t.Errorf("transitiveMembers without cast: %d objects (%d groups), want %d users and %d groups",
			len(everything), nestedGroups, len(wantUsers), len(all.Members))
	}
	resp, body := c.do(http.MethodGet, "/groups/00000000-0000-4000-8000-000000000000/transitiveMembers", nil)
	if resp.StatusCode != http.StatusNotFound || errorCode(t, body) != "Request_ResourceNotFound" {
		t.Errorf("unknown group: %d %s", resp.StatusCode, body)
	}
}

// pagedList follows nextLinks of a plain collection.
func (c *simClient) pagedList(path string, pageSize int) []map[string]any {
	c.t.Helper()
	var hdr []string
	if pageSize > 0 {
		hdr = []string{"Prefer", fmt.Sprintf("odata.maxpagesize=%d", pageSize)}
	}
	var out []map[string]any
	for link := path; link != ""; {
		page := c.get(link, http.StatusOK, hdr...)
		for _, v := range page["value"].([]any) {
			out = append(out, v.(map[string]any))
		}
		link, _ = page["@odata.nextLink"].(string)
	}
	return out
}
