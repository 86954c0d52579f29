package graphsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestControlAPIRoundTrip(t *testing.T) {
	c := startSim(t, Config{Users: 5, Seed: 1})
	tn := c.sim.Tenant()
	mgr := tn.Users()[0].ID
	expect := func(status int, want int, body []byte) {
		t.Helper()
		if status != want {
			t.Fatalf("status %d, want %d: %s", status, want, body)
		}
	}

	status, body := c.control("POST", "users", `{"id":"11111111-1111-4111-8111-111111111111","displayName":"Renée Øberg","mail":"renee@contoso.onmicrosoft.com","businessPhones":["+47 1"],"accountEnabled":true,"manager":"`+mgr+`"}`)
	expect(status, 201, body)
	id := "11111111-1111-4111-8111-111111111111"
	want := User{ID: id, Attributes: map[string]any{
		"displayName": "Renée Øberg", "mail": "renee@contoso.onmicrosoft.com",
		"businessPhones": []string{"+47 1"}, "accountEnabled": true, "manager": mgr,
	}}
	got, ok := tn.User(id)
	if diff := cmp.Diff(want, got); !ok || diff != "" {
		t.Fatalf("after POST /_sim/users (-want +got):\n%s", diff)
	}

	status, body = c.control("PATCH", "users/"+id, `{"jobTitle":"Senior Manager","mail":null}`)
	expect(status, 200, body)
	var patched User
	if err := json.Unmarshal(body, &patched); err != nil {
		t.Fatal(err)
	}
	if patched.Attributes["jobTitle"] != "Senior Manager" || patched.Attributes["mail"] != nil {
		t.Errorf("after PATCH: %v", patched.Attributes)
	}

	status, body = c.control("GET", "users", "")
	expect(status, 200, body)
	var all []User
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tn.Users(), all); diff != "" {
		t.Errorf("GET /_sim/users differs from Users() (-want +got):\n%s", diff)
	}

	status, body = c.control("DELETE", "users/"+id, "")
	expect(status, 204, body)
	status, body = c.control("GET", "users/"+id, "")
	expect(status, 404, body)
	if tn.UserStatus(id) != "softDeleted" {
		t.Errorf("status %q after soft delete", tn.UserStatus(id))
	}
	status, body = c.control("POST", "users/"+id+"/restore", "")
	expect(status, 200, body)
	status, body = c.control("DELETE", "users/"+id+"?hard=true", "")
	expect(status, 204, body)
	if tn.UserStatus(id) != "hardDeleted" {
		t.Errorf("status %q after hard delete", tn.UserStatus(id))
	}
	status, body = c.control("POST", "users/"+id+"/restore", "")
	expect(status, 404, body)

	status, body = c.control("POST", "groups", `{"displayName":"Ops","members":["`+mgr+`"]}`)
	expect(status, 201, body)
	var g Group
	_ = json.Unmarshal(body, &g)
	other := tn.Users()[1].ID
	status, body = c.control("POST", "groups/"+g.ID+"/members/"+other, "")
	expect(status, 204, body)
	status, body = c.control("POST", "groups/"+g.ID+"/members/"+other, "")
	expect(status, 409, body)
	status, body = c.control("DELETE", "groups/"+g.ID+"/members/"+mgr, "")
	expect(status, 204, body)
	gg, _ := tn.Group(g.ID)
	if diff := cmp.Diff([]string{other}, gg.Members); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}

	status, body = c.control("POST", "faults", `{"route":"users/delta","kind":"throttle","retryAfter":"2s","count":1}`)
	expect(status, 201, body)
	if diff := cmp.Diff([]Fault{{Route: RouteUsersDelta, Kind: KindThrottle, RetryAfter: 2e9, Count: 1}}, tn.Faults()); diff != "" {
		t.Errorf("faults (-want +got):\n%s", diff)
	}
	if resp, _ := c.do(http.MethodGet, "/users/delta", nil); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("fault set through the control API: %d", resp.StatusCode)
	}
	status, body = c.control("POST", "faults", `{"route":"users/delta","kind":"nope"}`)
	expect(status, 400, body)
	status, body = c.control("DELETE", "faults", "")
	expect(status, 204, body)

	rd := c.round("/users/delta", 0)
	status, body = c.control("POST", "tokens/expire", "")
	expect(status, 204, body)
	if resp, _ := c.do(http.MethodGet, rd.deltaLink, nil); resp.StatusCode != 400 {
		t.Errorf("deltaLink after /_sim/tokens/expire: %d, want 400", resp.StatusCode)
	}

	status, body = c.control("PUT", "quirks", `{"emptyPageEvery":3}`)
	expect(status, 200, body)
	if tn.currentQuirks().EmptyPageEvery != 3 {
		t.Error("quirks not set")
	}

	status, body = c.control("GET", "stats", "")
	expect(status, 200, body)
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Requests[RouteUsersDelta] < 3 || st.Requests["_sim"] < 10 || st.Statuses[429] != 1 {
		t.Errorf("stats %+v", st)
	}

	status, body = c.control("GET", "certificate", "")
	expect(status, 200, body)
	if !strings.Contains(string(body), "BEGIN CERTIFICATE") {
		t.Errorf("certificate: %s", body)
	}
	status, body = c.control("POST", "users", `{"displayName": 5}`)
	expect(status, 400, body)
	status, body = c.control("GET", "nothing-here", "")
	expect(status, 404, body)
}

// `make run` prints the Graph base URL; the ground truth must be one path
// away from it too.
func TestControlAPIUnderTheGraphBaseURL(t *testing.T) {
	c := startSim(t, Config{Users: 3, Seed: 1})
	resp, body := c.do(http.MethodGet, c.sim.GraphBaseURL()+"/_sim/users", nil)
	var all []User
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &all) != nil || len(all) != 3 {
		t.Fatalf("GET <base URL>/_sim/users: %d %s", resp.StatusCode, body)
	}
}
