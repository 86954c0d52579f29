package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The group scenarios issue 15 needs, driven only through the control API
// (/_sim) as a developer or another process would: groups nested three deep,
// a group of more than 5,000 members, membership changes, a rename and a
// deletion in later rounds, transitive members and GET /groups/{id}.
func TestGroupScenariosThroughControlAPI(t *testing.T) {
	c := startSim(t, Config{Users: 5200, Seed: 21, Groups: -1, GroupMembersPerPage: 1000})
	users := c.sim.Tenant().Users()
	uid := func(i int) string { return users[i].ID }
	post := func(body string) Group {
		t.Helper()
		status, b := c.control(http.MethodPost, "groups", body)
		if status != http.StatusCreated {
			t.Fatalf("POST /_sim/groups %s: %d %s", body, status, b)
		}
		var g Group
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	ctl := func(method, path, body string, want int) {
		t.Helper()
		if status, b := c.control(method, path, body); status != want {
			t.Fatalf("%s /_sim/%s: %d %s, want %d", method, path, status, b, want)
		}
	}
	quote := func(ids ...string) string {
		b, _ := json.Marshal(ids)
		return string(b)
	}

	// C holds users 3..9; B holds C and user 2; A holds B, users 0, 1 and
	// user 5 (also in C: transitive members list it once).
	gc := post(fmt.Sprintf(`{"displayName":"C","members":%s}`, quote(uid(3), uid(4), uid(5), uid(6), uid(7), uid(8), uid(9))))
	gb := post(fmt.Sprintf(`{"displayName":"B","members":%s}`, quote(gc.ID, uid(2))))
	ga := post(fmt.Sprintf(`{"displayName":"A","members":%s}`, quote(gb.ID, uid(0), uid(1), uid(5))))
	var bigMembers []string
	for i := 10; i < 5200; i++ {
		bigMembers = append(bigMembers, uid(i))
	}
	big := post(fmt.Sprintf(`{"displayName":"Everyone","members":%s}`, quote(bigMembers...)))

	// Transitive members: every level's users once, the nested groups, each
	// entry typed.
	list := c.pagedList("/groups/"+ga.ID+"/transitiveMembers?$select=id", 3)
	var gotUsers, gotGroups []string
	for _, it := range list {
		switch it["@odata.type"] {
		case "#microsoft.graph.user":
			gotUsers = append(gotUsers, it["id"].(string))
		case "#microsoft.graph.group":
			gotGroups = append(gotGroups, it["id"].(string))
		default:
			t.Errorf("member without a known @odata.type: %v", it)
		}
	}
	var wantUsers []string
	for i := range 10 {
		wantUsers = append(wantUsers, uid(i))
	}
	slices.Sort(wantUsers)
	slices.Sort(gotUsers)
	if diff := cmp.Diff(wantUsers, gotUsers); diff != "" {
		t.Errorf("A's transitive users (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedCopy([]string{gb.ID, gc.ID}), sortedCopy(gotGroups)); diff != "" {
		t.Errorf("A's nested groups (-want +got):\n%s", diff)
	}
	status, b := c.control(http.MethodGet, "groups/"+ga.ID+"/transitive", "")
	var truth struct{ Users, Groups []string }
	if err := json.Unmarshal(b, &truth); status != http.StatusOK || err != nil {
		t.Fatalf("GET /_sim/groups/{id}/transitive: %d %s", status, b)
	}
	if diff := cmp.Diff(wantUsers, truth.Users); diff != "" {
		t.Errorf("control API's transitive users (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedCopy([]string{gb.ID, gc.ID}), truth.Groups); diff != "" {
		t.Errorf("control API's transitive groups (-want +got):\n%s", diff)
	}
	one := c.get("/groups/"+gb.ID+"?$select=id,displayName", http.StatusOK)
	if one["id"] != gb.ID || one["displayName"] != "B" || len(one) != 3 { // with @odata.context
		t.Errorf("GET /groups/{id}?$select=id,displayName = %v", one)
	}

	// First round: the big group comes over several pages, one share of
	// members each, and merges to all its members.
	rd := c.round("/groups/delta?$select=displayName,members", 0)
	bigPages := 0
	for _, it := range rd.items {
		if it["id"] == big.ID {
			bigPages++
		}
	}
	if bigPages < 5 {
		t.Errorf("the group of %d members came in %d entries, want it split over pages", len(bigMembers), bigPages)
	}
	got := mergeGroups(t, rd.items)
	if diff := cmp.Diff(sortedCopy(bigMembers), got[big.ID].members); diff != "" {
		t.Errorf("big group's merged members (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedCopy([]string{gb.ID, uid(0), uid(1), uid(5)}), got[ga.ID].members); diff != "" {
		t.Errorf("A's direct members (-want +got):\n%s", diff)
	}

	// Later round: a user added to and one removed from C, C taken out of B
	// and a new group D nested into A, B renamed.
	ctl(http.MethodPost, "groups/"+gc.ID+"/members/"+uid(20), "", http.StatusNoContent)
	ctl(http.MethodDelete, "groups/"+gc.ID+"/members/"+uid(3), "", http.StatusNoContent)
	ctl(http.MethodDelete, "groups/"+gb.ID+"/members/"+gc.ID, "", http.StatusNoContent)
	gd := post(fmt.Sprintf(`{"displayName":"D","members":%s}`, quote(uid(30))))
	ctl(http.MethodPost, "groups/"+ga.ID+"/members/"+gd.ID, "", http.StatusNoContent)
	ctl(http.MethodPatch, "groups/"+gb.ID, `{"displayName":"B renamed"}`, http.StatusOK)
	r2 := c.round(rd.deltaLink, 0)
	got = mergeGroups(t, r2.items)
	type change struct {
		Name           string
		Added, Removed []string
		Gone           bool
	}
	view := func(m map[string]*groupState) map[string]change {
		out := map[string]change{}
		for id, g := range m {
			out[id] = change{g.name, g.members, g.removed, g.gone}
		}
		return out
	}
	want := map[string]change{
		gc.ID: {Name: "C", Added: []string{uid(20)}, Removed: []string{uid(3)}},
		gb.ID: {Name: "B renamed", Removed: []string{gc.ID}},
		gd.ID: {Name: "D", Added: []string{uid(30)}},
		ga.ID: {Name: "A", Added: []string{gd.ID}},
	}
	if diff := cmp.Diff(want, view(got), cmpEmpty); diff != "" {
		t.Errorf("round 2 (-want +got):\n%s", diff)
	}

	// Deleting a group: @removed in groups delta, out of A, and 404 on its
	// object and its transitive members.
	ctl(http.MethodDelete, "groups/"+gd.ID, "", http.StatusNoContent)
	r3 := c.round(r2.deltaLink, 0)
	got = mergeGroups(t, r3.items)
	want = map[string]change{
		gd.ID: {Gone: true},
		ga.ID: {Name: "A", Removed: []string{gd.ID}},
	}
	if diff := cmp.Diff(want, view(got), cmpEmpty); diff != "" {
		t.Errorf("round 3 (-want +got):\n%s", diff)
	}
	for _, it := range r3.items {
		if it["id"] == gd.ID {
			if r, _ := it["@removed"].(map[string]any); r["reason"] != "deleted" {
				t.Errorf("deleted group entry %v", it)
			}
		}
	}
	if status, b := c.control(http.MethodGet, "groups/"+gd.ID+"/transitive", ""); status != http.StatusNotFound {
		t.Errorf("control API's transitive members of a deleted group: %d %s", status, b)
	}
	for _, path := range []string{"/groups/" + gd.ID, "/groups/" + gd.ID + "/transitiveMembers"} {
		resp, body := c.do(http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusNotFound || errorCode(t, body) != "Request_ResourceNotFound" {
			t.Errorf("GET %s of a deleted group: %d %s", path, resp.StatusCode, body)
		}
	}
}

// extensionAttribute1..15 are fields of onPremisesExtensionAttributes in
// Graph, not properties: $select names the object and it comes with all
// fifteen fields.
func TestExtensionAttributes(t *testing.T) {
	c := startSim(t, Config{Users: 3, Seed: 2, Groups: -1})
	tn := c.sim.Tenant()
	u, err := tn.AddUser(User{Attributes: map[string]any{"displayName": "Ext", "extensionAttribute3": "cost-42"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := c.do(http.MethodGet, "/users/delta?$select=extensionAttribute3", nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "extensionAttribute3") {
		t.Errorf("$select=extensionAttribute3: %d %s, want 400", resp.StatusCode, body)
	}
	rd := c.round("/users/delta?$select=displayName,onPremisesExtensionAttributes", 0)
	var ext map[string]any
	for _, it := range rd.items {
		if it["id"] == u.ID {
			ext, _ = it["onPremisesExtensionAttributes"].(map[string]any)
		}
	}
	if len(ext) != 15 || ext["extensionAttribute3"] != "cost-42" || ext["extensionAttribute1"] != nil {
		t.Errorf("onPremisesExtensionAttributes = %v", ext)
	}
	// A change to an extension attribute brings the user back in a round
	// that selected the object.
	if err := tn.UpdateUser(u.ID, map[string]any{"extensionAttribute3": "cost-43"}); err != nil {
		t.Fatal(err)
	}
	r2 := c.round(rd.deltaLink, 0)
	if len(r2.items) != 1 || r2.items[0]["onPremisesExtensionAttributes"].(map[string]any)["extensionAttribute3"] != "cost-43" {
		t.Errorf("round 2 = %v", r2.items)
	}
}
