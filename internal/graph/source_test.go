package graph

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/testenv"
)

// These tests run the adapter, with the real msgraph-sdk-go and azidentity,
// against the Graph simulator over real HTTPS on loopback.

// startSim starts a simulator and stops it when the test ends.
func startSim(t *testing.T, cfg graphsim.Config) *graphsim.Server {
	t.Helper()
	sim, err := graphsim.New(cfg)
	if err != nil {
		t.Fatalf("graphsim.New: %v", err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start the Graph simulator: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// newSource builds an adapter for sim; edit may change the config. The
// adapter's log lines go to the buffer returned, to check no secret is
// logged.
func newSource(t *testing.T, sim *graphsim.Server, edit func(*Config)) (*Source, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	cfg := Config{
		TenantID:      graphsim.DefaultTenantID,
		ClientID:      graphsim.DefaultClientID,
		ClientSecret:  graphsim.DefaultClientSecret,
		AuthorityHost: sim.AuthorityHost(),
		GraphBaseURL:  sim.GraphBaseURL(),
		TrustedCAPEM:  sim.CertificatePEM(),
		MaxInCallWait: 3 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	src, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(src.closeIdle) // before the simulator's Close, which waits for idle connections
	return src, logs
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantAttrs renders a simulator user the way the adapter must map it.
func wantAttrs(u graphsim.User, selected []string) map[string]string {
	out := map[string]string{"id": u.ID}
	for _, name := range selected {
		v, ok := u.Attributes[name]
		if !ok {
			continue
		}
		switch x := v.(type) {
		case string:
			out[name] = x
		case bool:
			out[name] = fmt.Sprint(x)
		case []string:
			out[name] = strings.Join(x, "; ")
		default:
			out[name] = fmt.Sprint(x)
		}
	}
	return out
}

// attributeNames lists every attribute the ground truth uses.
func attributeNames(users []graphsim.User) []string {
	seen := map[string]bool{}
	for _, u := range users {
		for k := range u.Attributes {
			seen[k] = true
		}
	}
	var names []string
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// walkUsers follows a users delta round to its delta link.
func walkUsers(t *testing.T, src *Source, req dirsync.DeltaRequest) (map[string]dirsync.SourceUser, string, int) {
	t.Helper()
	ctx := ctxT(t)
	got := map[string]dirsync.SourceUser{}
	for pages := 1; ; pages++ {
		page, err := src.UsersDelta(ctx, req)
		if err != nil {
			t.Fatalf("UsersDelta page %d: %v (hint: %s)", pages, err, dirsync.ErrorHint(err))
		}
		if (page.NextLink == "") == (page.DeltaLink == "") {
			t.Fatalf("page %d: want exactly one of NextLink and DeltaLink, got %q and %q", pages, page.NextLink, page.DeltaLink)
		}
		if req.PageSize > 0 && len(page.Users) > req.PageSize {
			t.Fatalf("page %d has %d users, more than the page size %d", pages, len(page.Users), req.PageSize)
		}
		for _, u := range page.Users {
			got[u.ID] = u // a later mention wins: Graph may repeat objects
		}
		if page.DeltaLink != "" {
			return got, page.DeltaLink, pages
		}
		req = dirsync.DeltaRequest{Link: page.NextLink, PageSize: req.PageSize}
		if pages > 10000 {
			t.Fatal("the round never ends")
		}
	}
}

func TestFullEnumeration(t *testing.T) {
	// Graph's legal paging quirks are on: empty pages that still carry a
	// nextLink, and an object repeated at the start of the next page.
	sim := startSim(t, graphsim.Config{Users: 3000, Seed: 7, Groups: -1, Quirks: graphsim.Quirks{EmptyPageEvery: 4, RepeatEvery: 3}})
	src, logs := newSource(t, sim, nil)
	truth := sim.Tenant().Users()
	selected := attributeNames(truth)

	start := time.Now()
	got, deltaLink, pages := walkUsers(t, src, dirsync.DeltaRequest{Select: selected, PageSize: 200})
	t.Logf("enumerated %d users in %d pages in %s", len(got), pages, time.Since(start))
	if deltaLink == "" {
		t.Fatal("no delta link at the end of the round")
	}
	if pages < 3000/200 {
		t.Errorf("%d pages for 3000 users at 200 per page", pages)
	}

	want := map[string]map[string]string{}
	for _, u := range truth {
		want[u.ID] = wantAttrs(u, selected)
	}
	gotAttrs := map[string]map[string]string{}
	for id, u := range got {
		if u.Removed != "" {
			t.Errorf("user %s reported removed (%s) in the first round of an untouched tenant", id, u.Removed)
		}
		gotAttrs[id] = u.Attributes
	}
	if diff := cmp.Diff(want, gotAttrs); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	if strings.Contains(logs.String(), graphsim.DefaultClientSecret) {
		t.Error("the logs contain the client secret")
	}
}

func TestDeltaRound(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 60, Seed: 3, Groups: -1, NullForClearedProperties: true})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	selected := []string{"displayName", "jobTitle", "department", "officeLocation", "mail", "accountEnabled", "businessPhones", "manager"}

	first, deltaLink, _ := walkUsers(t, src, dirsync.DeltaRequest{Select: selected, PageSize: 25})
	users := tn.Users()
	if len(first) != len(users) {
		t.Fatalf("first round: %d users, want %d", len(first), len(users))
	}
	changed, softDel, hardDel, restored := users[1].ID, users[2].ID, users[3].ID, users[4].ID
	if _, ok := users[1].Attributes["officeLocation"]; !ok {
		t.Fatalf("user %s has no officeLocation to clear: pick another seed", changed)
	}
	mustDo(t, tn.SoftDeleteUser(restored)) // soft-deleted before the token and restored after it
	_, deltaLink, _ = walkUsers(t, src, dirsync.DeltaRequest{Link: deltaLink})

	added, err := tn.AddUser(graphsim.User{Attributes: map[string]any{
		"displayName": "Ærin Ødegård", "jobTitle": "Tester", "accountEnabled": true,
		"businessPhones": []any{"+47 1", "+47 2"}, "manager": users[0].ID,
	}})
	mustDo(t, err)
	mustDo(t, tn.UpdateUser(changed, map[string]any{"jobTitle": "Chief Tester", "department": "Quality", "officeLocation": nil}))
	mustDo(t, tn.SoftDeleteUser(softDel))
	mustDo(t, tn.HardDeleteUser(hardDel))
	mustDo(t, tn.RestoreUser(restored))

	second, _, _ := walkUsers(t, src, dirsync.DeltaRequest{Link: deltaLink})

	type change struct {
		Removed string
		Attrs   map[string]string
	}
	got := map[string]change{}
	for id, u := range second {
		got[id] = change{u.Removed, u.Attributes}
	}
	addedNow, _ := tn.User(added.ID)
	changedNow, _ := tn.User(changed)
	restoredNow, _ := tn.User(restored)
	want := map[string]change{
		added.ID: {"", wantAttrs(addedNow, selected)},
		softDel:  {dirsync.RemovedChanged, nil},
		hardDel:  {dirsync.RemovedDeleted, nil},
		restored: {"", wantAttrs(restoredNow, selected)},
		changed:  {"", wantAttrs(changedNow, selected)},
	}
	// Removed users carry only their id; a changed user may carry only the
	// changed properties (Graph's rule for later rounds). Compare removals by
	// reason, and present users' attributes where they were sent.
	for id, g := range got {
		w, ok := want[id]
		if !ok {
			// A user whose manager was deleted changes too: its manager
			// reference goes. Anything else is a spurious change.
			if len(g.Attrs) > 2 || g.Attrs["manager"] != "" || g.Removed != "" {
				t.Errorf("user %s reported in the second round but not changed: %+v", id, g)
			}
			continue
		}
		if g.Removed != w.Removed {
			t.Errorf("user %s: Removed %q, want %q", id, g.Removed, w.Removed)
		}
		if w.Removed != "" {
			continue
		}
		for k, v := range g.Attrs {
			if wv, ok := w.Attrs[k]; !ok && v != "" || ok && wv != v {
				t.Errorf("user %s: attribute %s = %q, want %q", id, k, v, wv)
			}
		}
	}
	for id := range want {
		if _, ok := got[id]; !ok {
			t.Errorf("user %s changed but not reported in the second round", id)
		}
	}
	if g := got[changed]; g.Attrs["jobTitle"] != "Chief Tester" || g.Attrs["department"] != "Quality" {
		t.Errorf("changed user: attributes %v, want jobTitle and department updated", g.Attrs)
	}
	// A cleared property arrives as null and is reported as "", so the
	// engine can tell "cleared" from "not sent".
	if v, ok := got[changed].Attrs["officeLocation"]; !ok || v != "" {
		t.Errorf("changed user: officeLocation = %q (present %v), want present and empty", v, ok)
	}
	if diff := cmp.Diff(wantAttrs(addedNow, selected), got[added.ID].Attrs); diff != "" {
		t.Errorf("added user (-want +got):\n%s", diff)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTokenExpiry(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 30, Seed: 1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	_, usersLink, _ := walkUsers(t, src, dirsync.DeltaRequest{Select: []string{"displayName"}, PageSize: 10})

	for _, kind := range []string{graphsim.KindExpired400, graphsim.KindExpiredResync, graphsim.KindExpired410} {
		for _, route := range []string{graphsim.RouteUsersDelta, graphsim.RouteGroupsDelta} {
			t.Run(kind+" "+route, func(t *testing.T) {
				tn.ClearFaults()
				mustDo(t, tn.SetFault(graphsim.Fault{Route: route, Kind: kind, Count: 1}))
				var err error
				if route == graphsim.RouteUsersDelta {
					_, err = src.UsersDelta(ctxT(t), dirsync.DeltaRequest{Link: usersLink})
				} else {
					_, err = src.GroupsDelta(ctxT(t), dirsync.GroupDeltaRequest{})
				}
				if dirsync.ErrorCode(err) != dirsync.ETOKENEXPIRED {
					t.Fatalf("got %v (%s), want ETOKENEXPIRED", err, dirsync.ErrorCode(err))
				}
				if msg := dirsync.ErrorMessage(err); !strings.Contains(msg, "7 days") || !strings.Contains(msg, "full sync") {
					t.Errorf("message %q does not say what happened in plain words", msg)
				}
			})
		}
	}
	tn.ClearFaults()

	t.Run("token aged out", func(t *testing.T) {
		tn.ExpireTokens()
		_, err := src.UsersDelta(ctxT(t), dirsync.DeltaRequest{Link: usersLink})
		if dirsync.ErrorCode(err) != dirsync.ETOKENEXPIRED {
			t.Fatalf("got %v, want ETOKENEXPIRED", err)
		}
	})
	t.Run("link to another endpoint", func(t *testing.T) {
		_, err := src.UsersDelta(ctxT(t), dirsync.DeltaRequest{Link: "https://graph.microsoft.com/v1.0/users/delta()?$deltatoken=x"})
		if dirsync.ErrorCode(err) != dirsync.ETOKENEXPIRED {
			t.Fatalf("got %v, want ETOKENEXPIRED", err)
		}
	})
	t.Run("corrupt composite groups link", func(t *testing.T) {
		_, err := src.GroupsDelta(ctxT(t), dirsync.GroupDeltaRequest{Link: compositePrefix + "garbage"})
		if dirsync.ErrorCode(err) != dirsync.ETOKENEXPIRED {
			t.Fatalf("got %v, want ETOKENEXPIRED", err)
		}
	})
}

// requests returns how many requests the simulator saw on route.
func requests(sim *graphsim.Server, route string) int { return sim.Tenant().Stats().Requests[route] }

func TestThrottling(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 10, Seed: 1, Groups: -1})
	src, logs := newSource(t, sim, nil)
	tn := sim.Tenant()
	ctx := ctxT(t)

	t.Run("short Retry-After is waited for in the call", func(t *testing.T) {
		before := requests(sim, graphsim.RouteUsersDelta)
		mustDo(t, tn.SetFault(graphsim.Fault{Route: graphsim.RouteUsersDelta, Kind: graphsim.KindThrottle, RetryAfter: time.Second, Count: 1}))
		start := time.Now()
		page, err := src.UsersDelta(ctx, dirsync.DeltaRequest{Select: []string{"displayName"}})
		if err != nil {
			t.Fatalf("UsersDelta: %v", err)
		}
		if len(page.Users) == 0 {
			t.Error("no users after the retry")
		}
		if n := requests(sim, graphsim.RouteUsersDelta) - before; n != 2 {
			t.Errorf("%d requests, want 2 (the throttled one and its retry)", n)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("returned after %s: Retry-After of 1s not honoured", waited)
		}
		if !strings.Contains(logs.String(), "retrying request") {
			t.Error("the retry was not logged")
		}
	})

	t.Run("long Retry-After is handed back", func(t *testing.T) {
		tn.ClearFaults()
		before := requests(sim, graphsim.RouteUsersDelta)
		mustDo(t, tn.SetFault(graphsim.Fault{Route: graphsim.RouteUsersDelta, Kind: graphsim.KindThrottle, RetryAfter: 120 * time.Second}))
		_, err := src.UsersDelta(ctx, dirsync.DeltaRequest{Select: []string{"displayName"}})
		got := []any{dirsync.ErrorCode(err), dirsync.RetryAfter(err), requests(sim, graphsim.RouteUsersDelta) - before}
		want := []any{dirsync.ETHROTTLED, 120 * time.Second, 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("code, RetryAfter, requests (-want +got):\n%s", diff)
		}
	})

	t.Run("budget exceeded", func(t *testing.T) {
		tn.ClearFaults()
		// Throttled for good with Retry-After 2 s: one retry fits the 3 s
		// in-call budget, a second would not.
		mustDo(t, tn.SetFault(graphsim.Fault{Route: graphsim.RouteUser, Kind: graphsim.KindThrottle, RetryAfter: 2 * time.Second}))
		_, err := src.User(ctx, tn.Users()[0].ID, nil)
		if dirsync.ErrorCode(err) != dirsync.ETHROTTLED || dirsync.RetryAfter(err) != 2*time.Second {
			t.Errorf("got %v (code %s, RetryAfter %s), want ETHROTTLED after 2s", err, dirsync.ErrorCode(err), dirsync.RetryAfter(err))
		}
	})
	tn.ClearFaults()
}

func TestTransientFailures(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 10, Seed: 1, Groups: -1})
	src, _ := newSource(t, sim, func(c *Config) { c.RequestTimeout, c.MaxInCallWait = 500*time.Millisecond, 2*time.Second })
	tn := sim.Tenant()
	ctx := ctxT(t)
	id := tn.Users()[0].ID

	tests := []struct {
		name     string
		fault    graphsim.Fault
		wantCode dirsync.Code // "" = the call succeeds
		maxReqs  int          // requests the simulator may see, at most
		minReqs  int
		// ours counts our attempts instead: the simulator counts a request
		// when its handler ends, after a slow one was abandoned.
		ours bool
	}{
		{"500 twice, then fine", graphsim.Fault{Kind: graphsim.KindStatus, Status: 500, Count: 2}, "", 3, 3, false},
		{"502 without body once", graphsim.Fault{Kind: graphsim.KindStatusEmpty, Status: 502, Count: 1}, "", 2, 2, false},
		{"503 once", graphsim.Fault{Kind: graphsim.KindStatus, Status: 503, Count: 1}, "", 2, 2, false},
		{"dropped twice", graphsim.Fault{Kind: graphsim.KindDrop, Count: 2}, "", 3, 3, false},
		{"500 for good", graphsim.Fault{Kind: graphsim.KindStatus, Status: 500}, dirsync.EUNAVAILABLE, 3, 3, false},
		{"503 for good, long Retry-After", graphsim.Fault{Kind: graphsim.KindStatus, Status: 503, RetryAfter: time.Minute}, dirsync.EUNAVAILABLE, 1, 1, false},
		{"504 without body for good", graphsim.Fault{Kind: graphsim.KindStatusEmpty, Status: 504, RetryAfter: time.Second}, dirsync.EUNAVAILABLE, 4, 2, false},
		{"dropped for good", graphsim.Fault{Kind: graphsim.KindDrop}, dirsync.EUNAVAILABLE, 6, 3, false},
		{"too slow", graphsim.Fault{Kind: graphsim.KindSlow, Delay: 5 * time.Second}, dirsync.EUNAVAILABLE, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn.ClearFaults()
			f := tt.fault
			f.Route = graphsim.RouteUser
			mustDo(t, tn.SetFault(f))
			before, oursBefore := requests(sim, graphsim.RouteUser), src.attempts.Load()
			start := time.Now()
			u, err := src.User(ctx, id, []string{"displayName"})
			n := requests(sim, graphsim.RouteUser) - before
			if tt.ours {
				n = int(src.attempts.Load() - oursBefore)
			}
			t.Logf("%d requests in %s: %v", n, time.Since(start).Round(time.Millisecond), err)
			if code := dirsync.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("got %v (code %q), want code %q", err, code, tt.wantCode)
			}
			if err == nil && u.ID != id {
				t.Errorf("got user %q, want %q", u.ID, id)
			}
			if n < tt.minReqs || n > tt.maxReqs {
				t.Errorf("%d requests, want %d..%d", n, tt.minReqs, tt.maxReqs)
			}
		})
	}
	tn.ClearFaults()
}

func TestMalformedPage(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 20, Seed: 1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	ctx := ctxT(t)
	for _, route := range []string{graphsim.RouteUsersDelta, graphsim.RouteGroupsDelta, graphsim.RouteUser, graphsim.RouteUserPhoto, graphsim.RouteTransitiveMember} {
		t.Run(route, func(t *testing.T) {
			tn.ClearFaults()
			mustDo(t, tn.SetFault(graphsim.Fault{Route: route, Kind: graphsim.KindMalformed, Count: 1}))
			var err error
			switch route {
			case graphsim.RouteUsersDelta:
				_, err = src.UsersDelta(ctx, dirsync.DeltaRequest{Select: []string{"displayName"}})
			case graphsim.RouteGroupsDelta:
				_, err = src.GroupsDelta(ctx, dirsync.GroupDeltaRequest{})
			case graphsim.RouteUser:
				_, err = src.User(ctx, tn.Users()[0].ID, nil)
			case graphsim.RouteUserPhoto:
				_, err = src.UserPhoto(ctx, userWithPhoto(t, src, tn))
			case graphsim.RouteTransitiveMember:
				_, err = src.GroupTransitiveMembers(ctx, tn.Groups()[0].ID, "")
			}
			if dirsync.ErrorCode(err) != dirsync.EINVALID || !strings.Contains(dirsync.ErrorMessage(err), "Graph returned a response that could not be read") {
				t.Fatalf("got %v (code %s), want EINVALID saying the response could not be read", err, dirsync.ErrorCode(err))
			}
		})
	}
}

// userWithPhoto finds a user that has a photo (without fault injection in
// the way: it is called before the fault's request).
func userWithPhoto(t *testing.T, src *Source, tn *graphsim.Tenant) string {
	t.Helper()
	u := tn.Users()[0]
	mustDo(t, tn.SetPhoto(u.ID, []byte("\xff\xd8\xff\xe0 a jpeg"), "image/jpeg", 48, 48))
	return u.ID
}

func TestWrongSecret(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 5, Seed: 1, Groups: -1})
	const wrong = "not-the-secret-XYZ123"
	src, logs := newSource(t, sim, func(c *Config) { c.ClientSecret = wrong })
	_, err := src.UsersDelta(ctxT(t), dirsync.DeltaRequest{Select: []string{"displayName"}})
	if dirsync.ErrorCode(err) != dirsync.EUNAUTHORIZED {
		t.Fatalf("got %v (code %s), want EUNAUTHORIZED", err, dirsync.ErrorCode(err))
	}
	for what, text := range map[string]string{
		"message": dirsync.ErrorMessage(err), "hint": dirsync.ErrorHint(err),
		"error chain": fmt.Sprintf("%v %+v", err, err), "logs": logs.String(),
	} {
		if strings.Contains(text, wrong) || strings.Contains(text, graphsim.DefaultClientSecret) {
			t.Errorf("the %s contains a secret: %s", what, text)
		}
	}
	if hint := dirsync.ErrorHint(err); !strings.Contains(hint, "client secret setting") {
		t.Errorf("hint %q does not say which setting to fix", hint)
	}
	if n := requests(sim, graphsim.RouteUsersDelta); n != 0 {
		t.Errorf("%d Graph requests sent without a token", n)
	}
}

// addGroups adds n groups of two users each and returns their ids.
func addGroups(t *testing.T, tn *graphsim.Tenant, n int) []string {
	t.Helper()
	users := tn.Users()
	var ids []string
	for i := range n {
		g, err := tn.AddGroup(graphsim.Group{
			DisplayName: fmt.Sprintf("Chunk group %03d", i),
			Members:     []string{users[i%len(users)].ID, users[(i+1)%len(users)].ID},
		})
		mustDo(t, err)
		ids = append(ids, g.ID)
	}
	return ids
}

// walkGroups follows a groups delta round and returns every group's net
// member changes.
func walkGroups(t *testing.T, src *Source, req dirsync.GroupDeltaRequest) (map[string]dirsync.SourceGroup, string, int) {
	t.Helper()
	ctx := ctxT(t)
	got := map[string]dirsync.SourceGroup{}
	for pages := 1; ; pages++ {
		page, err := src.GroupsDelta(ctx, req)
		if err != nil {
			t.Fatalf("GroupsDelta page %d: %v", pages, err)
		}
		if (page.NextLink == "") == (page.DeltaLink == "") {
			t.Fatalf("page %d: want exactly one of NextLink and DeltaLink", pages)
		}
		for _, g := range page.Groups {
			acc := got[g.ID]
			acc.ID, acc.Removed = g.ID, g.Removed
			if g.DisplayName != "" {
				acc.DisplayName = g.DisplayName
			}
			acc.MembersAdded = append(acc.MembersAdded, g.MembersAdded...)
			acc.MembersRemoved = append(acc.MembersRemoved, g.MembersRemoved...)
			acc.GroupsAdded = append(acc.GroupsAdded, g.GroupsAdded...)
			acc.GroupsRemoved = append(acc.GroupsRemoved, g.GroupsRemoved...)
			got[g.ID] = acc
		}
		if page.DeltaLink != "" {
			return got, page.DeltaLink, pages
		}
		req = dirsync.GroupDeltaRequest{Link: page.NextLink}
		if pages > 1000 {
			t.Fatal("the round never ends")
		}
	}
}

func TestGroupsDeltaChunks(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 40, Seed: 5, Groups: -1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	ids := addGroups(t, tn, 120)
	others := addGroups(t, tn, 5) // not asked for: must not appear

	before := requests(sim, graphsim.RouteGroupsDelta)
	got, deltaLink, pages := walkGroups(t, src, dirsync.GroupDeltaRequest{GroupIDs: ids})
	t.Logf("120 groups in %d pages, %d requests", pages, requests(sim, graphsim.RouteGroupsDelta)-before)
	if !strings.HasPrefix(deltaLink, compositePrefix) {
		t.Errorf("delta link %q is not a composite link", deltaLink)
	}
	if pages < 3 {
		t.Errorf("%d pages for 3 chunks of ids", pages)
	}

	norm := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	want := map[string]dirsync.SourceGroup{}
	for _, g := range tn.Groups() {
		if !slices.Contains(others, g.ID) {
			want[g.ID] = dirsync.SourceGroup{ID: g.ID, DisplayName: g.DisplayName, MembersAdded: g.Members}
		}
	}
	dedupe := func(m map[string]dirsync.SourceGroup) {
		for id, g := range m {
			slices.Sort(g.MembersAdded)
			g.MembersAdded = slices.Compact(g.MembersAdded)
			m[id] = g
		}
	}
	dedupe(got)
	if diff := cmp.Diff(want, got, norm, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}

	// A change in the third chunk shows up when the composite delta link is
	// followed; nothing else does.
	users := tn.Users()
	g := ids[110]
	mustDo(t, tn.AddMember(g, users[20].ID))
	mustDo(t, tn.RemoveMember(g, users[110%len(users)].ID))
	again, _, _ := walkGroups(t, src, dirsync.GroupDeltaRequest{Link: deltaLink})
	wantAgain := map[string]dirsync.SourceGroup{g: {ID: g, DisplayName: again[g].DisplayName,
		MembersAdded: []string{users[20].ID}, MembersRemoved: []string{users[110%len(users)].ID}}}
	if diff := cmp.Diff(wantAgain, again, norm, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("second round (-want +got):\n%s", diff)
	}

	// All groups, and a single chunk, use Graph's own links.
	_, link, _ := walkGroups(t, src, dirsync.GroupDeltaRequest{GroupIDs: ids[:10]})
	if strings.HasPrefix(link, compositePrefix) {
		t.Errorf("one chunk gave a composite link")
	}
	if _, err := src.GroupsDelta(ctxT(t), dirsync.GroupDeltaRequest{GroupIDs: []string{"x' or true"}}); dirsync.ErrorCode(err) != dirsync.EINVALID {
		t.Errorf("a bad group id: got %v, want EINVALID", err)
	}
}

func TestGroupTransitiveMembers(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 300, Seed: 9, PageSize: 50})
	src, _ := newSource(t, sim, func(c *Config) { c.PageSize = 40 })
	tn := sim.Tenant()
	groups := tn.Groups()
	byID := map[string]graphsim.Group{}
	for _, g := range groups {
		byID[g.ID] = g
	}
	// Ground truth: expand nested groups.
	var expand func(id string, seen map[string]bool, out map[string]bool)
	expand = func(id string, seen map[string]bool, out map[string]bool) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, m := range byID[id].Members {
			if _, isGroup := byID[m]; isGroup {
				expand(m, seen, out)
			} else {
				out[m] = true
			}
		}
	}
	nestedSeen := false
	for _, g := range groups {
		wantSet := map[string]bool{}
		expand(g.ID, map[string]bool{}, wantSet)
		for _, m := range g.Members {
			if _, ok := byID[m]; ok {
				nestedSeen = true
			}
		}
		var got []string
		link := ""
		for pages := 0; ; pages++ {
			page, err := src.GroupTransitiveMembers(ctxT(t), g.ID, link)
			if err != nil {
				t.Fatalf("group %s page %d: %v", g.DisplayName, pages, err)
			}
			if len(page.UserIDs) > 40 {
				t.Errorf("page of %d members, more than the page size 40", len(page.UserIDs))
			}
			got = append(got, page.UserIDs...)
			if link = page.NextLink; link == "" {
				break
			}
		}
		slices.Sort(got)
		got = slices.Compact(got)
		var want []string
		for id := range wantSet {
			want = append(want, id)
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("group %s transitive members (-want +got):\n%s", g.DisplayName, diff)
		}
	}
	if !nestedSeen {
		t.Error("the generated tenant has no nested group: the test proves less than it should")
	}
	_, err := src.GroupTransitiveMembers(ctxT(t), "00000000-0000-4000-8000-000000000000", "")
	if dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Errorf("missing group: got %v, want ENOTFOUND", err)
	}
}

func TestUserAndPhoto(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 20, Seed: 2, Groups: -1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	ctx := ctxT(t)
	u := tn.Users()[5]

	got, err := src.User(ctx, u.ID, []string{"displayName", "jobTitle", "businessPhones", "accountEnabled"})
	if err != nil {
		t.Fatal(err)
	}
	want := dirsync.SourceUser{ID: u.ID, Attributes: wantAttrs(u, []string{"displayName", "jobTitle", "businessPhones", "accountEnabled"})}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("User (-want +got):\n%s", diff)
	}
	if _, err := src.User(ctx, "00000000-0000-4000-8000-000000000000", nil); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Errorf("missing user: got %v, want ENOTFOUND", err)
	}
	if _, err := src.User(ctx, "../groups", nil); dirsync.ErrorCode(err) != dirsync.EINVALID {
		t.Errorf("bad id: got %v, want EINVALID", err)
	}

	data := []byte("\xff\xd8\xff\xe0 pretend jpeg")
	mustDo(t, tn.SetPhoto(u.ID, data, "image/jpeg", 64, 48))
	info, err := src.UserPhoto(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.ETag == "" || info.ContentType != "image/jpeg" || info.Width != 64 || info.Height != 48 {
		t.Errorf("UserPhoto = %+v, want an ETag, image/jpeg, 64x48", info)
	}
	gotData, err := src.UserPhotoData(ctx, u.ID, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotData, data) {
		t.Errorf("UserPhotoData = %q, want %q", gotData, data)
	}
	mustDo(t, tn.SetPhoto(u.ID, []byte("another picture"), "image/png", 64, 48))
	if info2, err := src.UserPhoto(ctx, u.ID); err != nil || info2.ETag == info.ETag {
		t.Errorf("after the photo changed: %+v, %v; want a new ETag", info2, err)
	}

	mustDo(t, tn.DeletePhoto(u.ID))
	if _, err := src.UserPhoto(ctx, u.ID); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Errorf("UserPhoto without photo: got %v, want ENOTFOUND", err)
	}
	if _, err := src.UserPhotoData(ctx, u.ID, 1<<20); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Errorf("UserPhotoData without photo: got %v, want ENOTFOUND", err)
	}
}

func TestCertificateCredential(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 5, Seed: 1, Groups: -1})
	dir := t.TempDir()
	path := dir + "/app.pem"
	mustDo(t, os.WriteFile(path, testCertAndKeyPEM(t), 0o600))

	// The simulator accepts client secrets only, so a certificate gets as far
	// as a signed assertion that the token endpoint refuses: proof that the
	// file was read and used, and that the refusal maps to EUNAUTHORIZED.
	src, _ := newSource(t, sim, func(c *Config) { c.ClientSecret, c.CertificatePath = "", path })
	_, err := src.UsersDelta(ctxT(t), dirsync.DeltaRequest{Select: []string{"displayName"}})
	if dirsync.ErrorCode(err) != dirsync.EUNAUTHORIZED {
		t.Fatalf("got %v (code %s), want EUNAUTHORIZED", err, dirsync.ErrorCode(err))
	}

	bad := dir + "/bad.pem"
	mustDo(t, os.WriteFile(bad, []byte("not a certificate"), 0o600))
	for _, p := range []string{bad, dir + "/missing.pem"} {
		_, err := New(Config{TenantID: "t", ClientID: "c", CertificatePath: p, CertificatePassword: "pw-123"})
		if err == nil || !strings.Contains(err.Error(), "Config.CertificatePath") || strings.Contains(err.Error(), "pw-123") {
			t.Errorf("New with certificate %s: %v; want an error naming Config.CertificatePath without the password", p, err)
		}
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 5, Seed: 1, Groups: -1})
	tn := sim.Tenant()
	tests := []struct {
		name       string
		fault      graphsim.Fault
		wantCode   dirsync.Code
		retryAfter time.Duration
	}{
		{"throttled briefly", graphsim.Fault{Kind: graphsim.KindThrottle, RetryAfter: time.Second, Count: 1}, "", 0},
		{"throttled for long", graphsim.Fault{Kind: graphsim.KindThrottle, RetryAfter: time.Minute}, dirsync.ETHROTTLED, time.Minute},
		{"unavailable", graphsim.Fault{Kind: graphsim.KindStatus, Status: 503}, dirsync.EUNAVAILABLE, 0},
		{"dropped", graphsim.Fault{Kind: graphsim.KindDrop}, dirsync.EUNAVAILABLE, 0},
		{"malformed", graphsim.Fault{Kind: graphsim.KindMalformed}, dirsync.EUNAVAILABLE, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn.ClearFaults()
			f := tt.fault
			f.Route = graphsim.RouteToken
			mustDo(t, tn.SetFault(f))
			src, _ := newSource(t, sim, nil) // a new credential: no cached token
			start := time.Now()
			_, err := src.UsersDelta(ctxT(t), dirsync.DeltaRequest{Select: []string{"displayName"}})
			t.Logf("%s: %v", time.Since(start).Round(time.Millisecond), err)
			if code := dirsync.ErrorCode(err); code != tt.wantCode || dirsync.RetryAfter(err) != tt.retryAfter {
				t.Errorf("got %v (code %q, RetryAfter %s), want code %q, RetryAfter %s",
					err, code, dirsync.RetryAfter(err), tt.wantCode, tt.retryAfter)
			}
		})
	}
	tn.ClearFaults()
}
