package graphsim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testSelect = []string{
	"displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department",
	"officeLocation", "mobilePhone", "businessPhones", "accountEnabled", "userType", "employeeId", "manager",
}

func selectQuery(sel []string) string { return "$select=" + strings.Join(sel, ",") }

// TestFullDeltaRoundEqualsGroundTruth pages a whole first round and checks
// it is exactly Users(), for every spelling of the delta function.
func TestFullDeltaRoundEqualsGroundTruth(t *testing.T) {
	c := startSim(t, Config{Users: 257, Seed: 3})
	want := truth(t, c.sim.Tenant().Users(), testSelect)
	for _, fn := range []string{"delta", "delta()", "microsoft.graph.delta()"} {
		t.Run(fn, func(t *testing.T) {
			rd := c.round("/users/"+fn+"?"+selectQuery(testSelect), 50)
			if rd.pages != 6 {
				t.Errorf("got %d pages of at most 50 for 257 users, want 6", rd.pages)
			}
			if len(rd.items) != 257 {
				t.Errorf("got %d objects, want 257 (each user once)", len(rd.items))
			}
			if diff := cmp.Diff(want, flatten(t, rd.items)); diff != "" {
				t.Errorf("delta round differs from Users() (-want +got):\n%s", diff)
			}
			if !strings.Contains(rd.deltaLink, "/users/"+fn+"?$deltatoken=") {
				t.Errorf("deltaLink %s does not point back at /users/%s with a $deltatoken", rd.deltaLink, fn)
			}
		})
	}
}

func TestDeltaPageSizeDefaultAndCap(t *testing.T) {
	c := startSim(t, Config{Users: 30, PageSize: 7})
	page := c.get("/users/delta", http.StatusOK)
	if n := len(page["value"].([]any)); n != 7 {
		t.Errorf("default page has %d users, want Config.PageSize 7", n)
	}
	resp, _ := c.do(http.MethodGet, "/users/delta", nil, "Prefer", "odata.maxpagesize=5000")
	if got := resp.Header.Get("Preference-Applied"); got != "odata.maxpagesize=999" {
		t.Errorf("Preference-Applied %q, want the cap odata.maxpagesize=999", got)
	}
}

// TestSelectReturnsOnlySelectedAndOmitsAbsent checks $select is honoured and
// a property a user does not have is left out, never null.
func TestSelectReturnsOnlySelectedAndOmitsAbsent(t *testing.T) {
	c := startSim(t, Config{Users: 60, Seed: 5})
	rd := c.round("/users/delta?$select=displayName,mobilePhone,mail", 0)
	sawMissing := false
	for _, it := range rd.items {
		for k, v := range it {
			if !slices.Contains([]string{"id", "displayName", "mobilePhone", "mail"}, k) {
				t.Errorf("user %s has unselected property %q", it["id"], k)
			}
			if v == nil {
				t.Errorf("user %s has %q: null; absent properties must be omitted", it["id"], k)
			}
		}
		if _, ok := it["mobilePhone"]; !ok {
			sawMissing = true
		}
	}
	if !sawMissing {
		t.Error("no user without mobilePhone: the test proves nothing")
	}

	page := c.get("/users/delta", http.StatusOK)
	first := page["value"].([]any)[0].(map[string]any)
	for k := range first {
		if !slices.Contains(defaultUserSelect, k) {
			t.Errorf("without $select, got property %q outside Graph's default set", k)
		}
	}

	resp, body := c.do(http.MethodGet, "/users/delta?$select=displayName,noSuchProperty", nil)
	if resp.StatusCode != http.StatusBadRequest || errorCode(t, body) != "Request_BadRequest" {
		t.Errorf("unknown $select property: %d %s, want 400 Request_BadRequest", resp.StatusCode, body)
	}
}

// TestLaterRounds checks what a round from a deltaLink reports: new and
// changed users in full, soft deletes as @removed "changed", hard deletes as
// "deleted", restores in full, and nothing for changes to unselected
// properties.
func TestLaterRounds(t *testing.T) {
	c := startSim(t, Config{Users: 40, Seed: 11})
	tn := c.sim.Tenant()
	sel := []string{"displayName", "jobTitle", "mail", "manager"}
	r1 := c.round("/users/delta?"+selectQuery(sel), 15)
	users := tn.Users()
	changed, changedTwice, unselected, soft, hard, softThenHard := users[0].ID, users[1].ID, users[2].ID, users[3].ID, users[4].ID, users[5].ID
	newManager := users[6].ID

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	added, err := tn.AddUser(User{Attributes: map[string]any{"displayName": "Zoë Neu", "mail": "zoe.neu@contoso.onmicrosoft.com", "manager": newManager}})
	must(err)
	must(tn.UpdateUser(changed, map[string]any{"jobTitle": "Senior Manager"}))
	must(tn.UpdateUser(changedTwice, map[string]any{"displayName": "First"}))
	must(tn.UpdateUser(changedTwice, map[string]any{"displayName": "Second", "manager": newManager}))
	must(tn.UpdateUser(unselected, map[string]any{"mobilePhone": "+49 170 000"}))
	must(tn.SoftDeleteUser(soft))
	must(tn.HardDeleteUser(hard))
	must(tn.SoftDeleteUser(softThenHard))
	must(tn.HardDeleteUser(softThenHard))

	r2 := c.round(r1.deltaLink, 2)
	got := byID(r2.items)
	if len(r2.items) != len(got) {
		t.Errorf("a user appears twice in round 2: %v", ids(r2.items))
	}
	wantIDs := []string{added.ID, changed, changedTwice, soft, hard, softThenHard}
	if diff := cmp.Diff(sortedCopy(wantIDs), sortedCopy(ids(r2.items))); diff != "" {
		t.Errorf("round 2 reports the wrong users (-want +got):\n%s", diff)
	}
	if got[changed]["jobTitle"] != "Senior Manager" || got[changed]["displayName"] == nil {
		t.Errorf("changed user not reported in full with its new title: %v", got[changed])
	}
	if got[changedTwice]["displayName"] != "Second" {
		t.Errorf("user changed twice reported as %v, want its latest state", got[changedTwice])
	}
	wantMgr := []any{map[string]any{"@odata.type": "#microsoft.graph.user", "id": newManager}}
	if diff := cmp.Diff(wantMgr, got[changedTwice]["manager@delta"]); diff != "" {
		t.Errorf("manager@delta (-want +got):\n%s", diff)
	}
	if got[added.ID]["displayName"] != "Zoë Neu" || got[added.ID]["mail"] == nil {
		t.Errorf("added user: %v", got[added.ID])
	}
	for id, reason := range map[string]string{soft: "changed", hard: "deleted", softThenHard: "deleted"} {
		want := map[string]any{"id": id, "@removed": map[string]any{"reason": reason}}
		if diff := cmp.Diff(want, got[id]); diff != "" {
			t.Errorf("removed user %s (-want +got):\n%s", id, diff)
		}
	}

	must(tn.RestoreUser(soft))
	r3 := c.round(r2.deltaLink, 0)
	if diff := cmp.Diff([]string{soft}, ids(r3.items)); diff != "" {
		t.Fatalf("round 3 after a restore (-want +got):\n%s", diff)
	}
	if r3.items[0]["displayName"] == nil || r3.items[0]["@removed"] != nil {
		t.Errorf("restored user must come back in full: %v", r3.items[0])
	}

	r4 := c.round(r3.deltaLink, 0)
	if len(r4.items) != 0 || r4.pages != 1 {
		t.Errorf("round without changes: %d objects on %d pages, want an empty page", len(r4.items), r4.pages)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestClearedPropertiesInLaterRounds(t *testing.T) {
	for _, nulls := range []bool{false, true} {
		t.Run(map[bool]string{false: "omitted", true: "null"}[nulls], func(t *testing.T) {
			c := startSim(t, Config{Users: 20, Seed: 2, NullForClearedProperties: nulls})
			tn := c.sim.Tenant()
			var victim User
			for _, u := range tn.Users() {
				if _, ok := u.Attributes["manager"]; ok && u.Attributes["mail"] != nil {
					victim = u
					break
				}
			}
			r1 := c.round("/users/delta?$select=displayName,mail,manager", 0)
			if err := tn.UpdateUser(victim.ID, map[string]any{"mail": nil, "manager": nil}); err != nil {
				t.Fatal(err)
			}
			r2 := c.round(r1.deltaLink, 0)
			if len(r2.items) != 1 {
				t.Fatalf("round 2: %v", r2.items)
			}
			got := r2.items[0]
			v, present := got["mail"]
			if nulls && (!present || v != nil) {
				t.Errorf("cleared mail: got %v (present %v), want null", v, present)
			}
			if !nulls && present {
				t.Errorf("cleared mail: got %v, want it omitted", v)
			}
			wantMgr := []any{map[string]any{"@odata.type": "#microsoft.graph.user", "id": victim.Attributes["manager"], "@removed": map[string]any{"reason": "deleted"}}}
			if diff := cmp.Diff(wantMgr, got["manager@delta"]); diff != "" {
				t.Errorf("removed manager (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeltaTokenLatest(t *testing.T) {
	c := startSim(t, Config{Users: 25})
	page := c.get("/users/delta?$deltatoken=latest&$select=displayName", http.StatusOK)
	if n := len(page["value"].([]any)); n != 0 {
		t.Errorf("$deltatoken=latest returned %d users, want none", n)
	}
	dl, ok := page["@odata.deltaLink"].(string)
	if !ok {
		t.Fatalf("no deltaLink: %v", page)
	}
	u, err := c.sim.Tenant().AddUser(User{Attributes: map[string]any{"displayName": "Łukasz Nowy"}})
	if err != nil {
		t.Fatal(err)
	}
	rd := c.round(dl, 0)
	if diff := cmp.Diff([]string{u.ID}, ids(rd.items)); diff != "" {
		t.Errorf("round after latest (-want +got):\n%s", diff)
	}
}

func TestDeltaFilterByID(t *testing.T) {
	c := startSim(t, Config{Users: 30, Seed: 4})
	users := c.sim.Tenant().Users()
	a, b := users[3].ID, users[17].ID
	filter := url.QueryEscape("id eq '" + a + "' or id eq '" + b + "'")
	rd := c.round("/users/delta?$select=displayName&$filter="+filter, 0)
	if diff := cmp.Diff([]string{a, b}, ids(rd.items)); diff != "" {
		t.Errorf("filtered round (-want +got):\n%s", diff)
	}
	if err := c.sim.Tenant().UpdateUser(users[5].ID, map[string]any{"displayName": "Other"}); err != nil {
		t.Fatal(err)
	}
	if err := c.sim.Tenant().UpdateUser(b, map[string]any{"displayName": "Tracked"}); err != nil {
		t.Fatal(err)
	}
	r2 := c.round(rd.deltaLink, 0)
	if diff := cmp.Diff([]string{b}, ids(r2.items)); diff != "" {
		t.Errorf("a filtered later round reports only the filtered users (-want +got):\n%s", diff)
	}
}

func TestTokenExpiry(t *testing.T) {
	tests := []struct {
		name       string
		form       string
		expire     func(c *simClient, clock *fakeClock)
		wantStatus int
		wantCode   string
	}{
		{"older than the lifetime", "", func(_ *simClient, clk *fakeClock) { clk.Advance(7*24*time.Hour + time.Second) }, 400, "syncStateNotFound"},
		{"ExpireTokens", "", func(c *simClient, _ *fakeClock) { c.sim.Tenant().ExpireTokens() }, 400, "syncStateNotFound"},
		{"resync form", KindExpiredResync, func(c *simClient, _ *fakeClock) { c.sim.Tenant().ExpireTokens() }, 400, "resyncRequired"},
		{"410 form", KindExpired410, func(c *simClient, _ *fakeClock) { c.sim.Tenant().ExpireTokens() }, 410, "syncStateNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c := startSim(t, Config{Users: 12, Now: clock.Now, ExpiryForm: tt.form})
			first := c.get("/users/delta()?$select=displayName,mail", http.StatusOK, "Prefer", "odata.maxpagesize=5")
			next := first["@odata.nextLink"].(string)
			rd := c.round("/users/delta()?$select=displayName,mail", 0)

			clock.Advance(6 * 24 * time.Hour) // still valid
			c.round(rd.deltaLink, 0)

			tt.expire(c, clock)
			for _, link := range []string{rd.deltaLink, next} {
				resp, body := c.do(http.MethodGet, link, nil)
				if resp.StatusCode != tt.wantStatus || errorCode(t, body) != tt.wantCode {
					t.Fatalf("expired link: %d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantCode)
				}
				if tt.wantStatus == http.StatusGone {
					loc := resp.Header.Get("Location")
					if !strings.Contains(loc, "/users/delta()?$deltatoken=&$select=displayName,mail") {
						t.Errorf("Location %q should restart the same query with an empty $deltatoken", loc)
					}
					fresh := c.round(loc, 0)
					if len(fresh.items) != 12 {
						t.Errorf("the Location round has %d users, want all 12", len(fresh.items))
					}
				}
			}
		})
	}
}

func TestBadTokens(t *testing.T) {
	c := startSim(t, Config{Users: 5})
	other := startSim(t, Config{Users: 5})
	foreign := other.round("/users/delta", 0).deltaLink
	foreignToken := foreign[strings.Index(foreign, "$deltatoken=")+len("$deltatoken="):]
	groupsLink := c.round("/groups/delta", 0).deltaLink
	groupsToken := groupsLink[strings.Index(groupsLink, "$deltatoken=")+len("$deltatoken="):]
	tests := []struct {
		name, path string
		status     int
		code       string
	}{
		{"garbage deltatoken", "/users/delta?$deltatoken=not-a-token", 400, "Request_BadRequest"},
		{"garbage skiptoken", "/users/delta?$skiptoken=abc.def", 400, "Request_BadRequest"},
		{"tampered token", "/users/delta?$deltatoken=" + strings.Replace(groupsToken, "a", "b", 1), 400, "Request_BadRequest"},
		{"groups token on users", "/users/delta?$deltatoken=" + groupsToken, 400, "Request_BadRequest"},
		{"token of another simulator", "/users/delta?$deltatoken=" + foreignToken, 400, "syncStateNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := c.do(http.MethodGet, tt.path, nil)
			if resp.StatusCode != tt.status || errorCode(t, body) != tt.code {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}

func TestQuirks(t *testing.T) {
	c := startSim(t, Config{Users: 40, Seed: 8, Quirks: Quirks{EmptyPageEvery: 2}})
	rd := c.round("/users/delta?$select=displayName", 10)
	if rd.pages != 5 { // 4 pages of users, one empty page with a nextLink after the 2nd
		t.Errorf("got %d pages, want 5 (4 full, 1 empty with nextLink)", rd.pages)
	}
	if len(rd.items) != 40 {
		t.Errorf("got %d users, want 40", len(rd.items))
	}

	if err := c.sim.Tenant().SetQuirks(Quirks{RepeatEvery: 2}); err != nil {
		t.Fatal(err)
	}
	rd = c.round("/users/delta?$select=displayName", 10)
	got := ids(rd.items)
	// Pages 3 and 5 (of 5) start with the last user of the page before.
	if len(got) != 42 || len(byID(rd.items)) != 40 {
		t.Errorf("with RepeatEvery 2: %d objects, %d distinct; want 42 and 40", len(got), len(byID(rd.items)))
	}

	// A replayed nextLink serves the same page again.
	page := c.get("/users/delta?$select=displayName", http.StatusOK, "Prefer", "odata.maxpagesize=7")
	next := page["@odata.nextLink"].(string)
	a, b := c.get(next, http.StatusOK), c.get(next, http.StatusOK)
	if diff := cmp.Diff(a["value"], b["value"]); diff != "" {
		t.Errorf("replayed nextLink served a different page (-first +second):\n%s", diff)
	}
}

func TestLargeTenantRound(t *testing.T) {
	c := startSim(t, Config{Users: 20000, Seed: 9})
	start := time.Now()
	rd := c.round("/users/delta?"+selectQuery(testSelect), 999)
	if len(rd.items) != 20000 || rd.pages != 21 {
		t.Fatalf("got %d users on %d pages, want 20000 on 21", len(rd.items), rd.pages)
	}
	if diff := cmp.Diff(truth(t, c.sim.Tenant().Users(), testSelect), flatten(t, rd.items)); diff != "" {
		t.Errorf("20k round differs from Users() (-want +got):\n%s", diff)
	}
	t.Logf("20,000 users in %d pages: %s", rd.pages, time.Since(start))
}

// The time spent answering is kept per route (Stats.BusySeconds): for a
// sync that fetches a page at a time, that of users/delta is its time
// fetching, the bench's split between fetch and apply.
func TestBusySecondsCoverEachAnswer(t *testing.T) {
	const latency = 30 * time.Millisecond
	c := startSim(t, Config{Users: 40, PageSize: 10, PageLatency: latency})
	rd := c.round("/users/delta", 10)
	st := c.sim.Tenant().Stats()
	if rd.pages != 4 || st.Requests[RouteUsersDelta] != 4 {
		t.Fatalf("%d pages, %d users/delta requests; want 4 and 4", rd.pages, st.Requests[RouteUsersDelta])
	}
	// Each page waited its latency, and no page took more than a second.
	if got, min := st.BusySeconds[RouteUsersDelta], 4*latency.Seconds(); got < min || got > 4 {
		t.Errorf("users/delta busy %.3f s, want at least 4 x %s = %.2f s and under 4 s", got, latency, min)
	}
	if got := st.BusySeconds[RouteToken]; got <= 0 {
		t.Errorf("token busy %.3f s, want the time its request took", got)
	}
}
