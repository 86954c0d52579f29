package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/api"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

func TestNewChecksConfig(t *testing.T) {
	engine := &dirsync.Engine{}
	good := keyHash(adminKey)
	for _, tc := range []struct {
		name string
		cfg  api.Config
		want string
	}{
		{"no service", api.Config{}, "Config.Service is required"},
		{"short hash", api.Config{Service: engine, AdminKeyHashes: []string{"abc"}}, "Config.AdminKeyHashes[0] is not a SHA-256"},
		{"not hex", api.Config{Service: engine, SupportKeyHashes: []string{strings.Repeat("g", 64)}}, "Config.SupportKeyHashes[0]"},
		{"a key in both roles", api.Config{Service: engine, AdminKeyHashes: []string{good}, SupportKeyHashes: []string{good}}, "a key grants one role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := api.New(api.Config{Service: engine, AdminKeyHashes: []string{strings.ToUpper(good)}}); err != nil {
		t.Errorf("New with an upper-case hash: %v", err)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	res := e.call("GET", "/api/health", "", "").want(http.StatusOK)
	var got struct {
		Status, Version string
		Checks          map[string]string
	}
	res.decode(&got)
	want := struct {
		Status, Version string
		Checks          map[string]string
	}{"ok", version, map[string]string{"table": "ok", "blob": "ok"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("health (-want +got):\n%s", diff)
	}

	down := newEnv(t, envOptions{health: func(context.Context) map[string]error {
		return map[string]error{"table": nil, "blob": &dirsync.Error{Code: dirsync.EUNAVAILABLE,
			Message: "blob storage at https://acct.blob.core.windows.net is unreachable"}}
	}})
	res = down.call("GET", "/api/health", "", "").want(http.StatusServiceUnavailable)
	res.decode(&got)
	if got.Status != "unhealthy" || got.Checks["blob"] != "unavailable" || got.Checks["table"] != "ok" {
		t.Errorf("health = %+v", got)
	}
	// Anonymous callers see the code; the message (with the account URL)
	// goes to the log only.
	if strings.Contains(string(res.body), "acct.blob") || !strings.Contains(down.logOut.String(), "acct.blob") {
		t.Errorf("the check's message must be logged, not shown: body %s", res.body)
	}
}

// routeCall is how the role test calls each route.
func routePath(pattern, runID, userID string) string {
	p := strings.ReplaceAll(pattern, "{id}", runID)
	if strings.HasPrefix(pattern, "/api/users/") {
		p = strings.ReplaceAll(pattern, "{id}", userID)
	}
	return p
}

// TestRoles calls every route of the route table as nobody, with a wrong
// key, as support and as admin.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	run := e.syncNow()
	for _, rt := range e.api.Routes() {
		path := routePath(rt.Pattern, run.ID, uid(1))
		body := ""
		if rt.Method == "PUT" {
			body = "{}"
		}
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			none := e.call(rt.Method, path, "", body)
			wrong := e.call(rt.Method, path, "not-a-key", body)
			support := e.call(rt.Method, path, supportKey, body)
			if rt.Role == "anonymous" {
				if none.status != http.StatusOK {
					t.Errorf("anonymous route answered %d without a key", none.status)
				}
				return
			}
			none.want(http.StatusUnauthorized)
			if _, msg, hint := none.apiError(); !strings.Contains(msg, "API key") || !strings.Contains(hint, "x-functions-key") {
				t.Errorf("no key: %q %q", msg, hint)
			}
			wrong.want(http.StatusUnauthorized)
			switch rt.Role {
			case "admin":
				support.want(http.StatusForbidden)
				if _, msg, _ := support.apiError(); !strings.Contains(msg, "this action needs the admin role") {
					t.Errorf("support on a write: %q", msg)
				}
			case "support":
				if support.status == http.StatusUnauthorized || support.status == http.StatusForbidden {
					t.Errorf("support was refused a read: %d %s", support.status, support.body)
				}
			default:
				t.Fatalf("unknown role %q", rt.Role)
			}
		})
	}
	// Admin may call everything (the writes run last: reset starts a run).
	for _, rt := range e.api.Routes() {
		if rt.Method == "PUT" {
			continue // the settings flow has its own test
		}
		res := e.call(rt.Method, routePath(rt.Pattern, run.ID, uid(1)), adminKey, "")
		if res.status == http.StatusUnauthorized || res.status == http.StatusForbidden || res.status >= 500 {
			t.Errorf("admin %s %s: %d %s", rt.Method, rt.Pattern, res.status, res.body)
		}
	}
}

func TestEasyAuthPrincipal(t *testing.T) {
	admin := principal("ada@contoso.example", api.AppRoleAdmin)
	support := principal("sam@contoso.example", api.AppRoleSupport)
	nobody := principal("nora@contoso.example")

	t.Run("trusted", func(t *testing.T) {
		e := newEnv(t, envOptions{trustEasyAuth: true})
		e.Seed(2)
		res := e.call("POST", "/api/sync", "", `{"mode":"full"}`, "X-MS-CLIENT-PRINCIPAL", admin, "Content-Type", "application/json").want(http.StatusAccepted)
		var got struct{ Run dirsync.Run }
		res.decode(&got)
		if got.Run.RequestedBy != "ada@contoso.example" {
			t.Errorf("requestedBy = %q, want the principal's name", got.Run.RequestedBy)
		}
		e.drain()
		e.call("GET", "/api/runs", "", "", "X-MS-CLIENT-PRINCIPAL", support).want(http.StatusOK)
		res = e.call("POST", "/api/sync", "", "", "X-MS-CLIENT-PRINCIPAL", support).want(http.StatusForbidden)
		if _, msg, _ := res.apiError(); !strings.Contains(msg, "needs the admin role") {
			t.Errorf("support principal writing: %q", msg)
		}
		res = e.call("GET", "/api/status", "", "", "X-MS-CLIENT-PRINCIPAL", nobody).want(http.StatusForbidden)
		if _, msg, hint := res.apiError(); !strings.Contains(msg, "needs the support role") || !strings.Contains(msg, "nora@contoso.example") || !strings.Contains(hint, "EntraSync.Support") {
			t.Errorf("principal without a role: %q %q", msg, hint)
		}
		// A key still works for automation; a support principal with the
		// admin key acts as admin.
		e.call("POST", "/api/reset", adminKey, "", "X-MS-CLIENT-PRINCIPAL", support).want(http.StatusAccepted)
		res = e.call("GET", "/api/status", "", "", "X-MS-CLIENT-PRINCIPAL", "%%%not base64").want(http.StatusUnauthorized)
		if _, msg, _ := res.apiError(); !strings.Contains(msg, "x-ms-client-principal") {
			t.Errorf("malformed principal: %q", msg)
		}
	})
	t.Run("not trusted without App Service Authentication", func(t *testing.T) {
		e := newEnv(t)
		e.Seed(2)
		e.call("POST", "/api/sync", "", "", "X-MS-CLIENT-PRINCIPAL", admin).want(http.StatusUnauthorized)
		e.call("GET", "/api/status", "", "", "X-MS-CLIENT-PRINCIPAL", admin).want(http.StatusUnauthorized)
		// the key alone decides
		e.call("POST", "/api/sync", supportKey, "", "X-MS-CLIENT-PRINCIPAL", admin).want(http.StatusForbidden)
		if e.Queue.Len() != 0 {
			t.Errorf("a forged principal started a run")
		}
	})
}

func TestKeyInQueryParameter(t *testing.T) {
	e := newEnv(t)
	e.call("GET", "/api/status?code="+url.QueryEscape(supportKey), "", "").want(http.StatusOK)
	e.call("POST", "/api/sync?code="+url.QueryEscape(supportKey), "", "").want(http.StatusForbidden)
	e.call("GET", "/api/status?code=nope", "", "").want(http.StatusUnauthorized)
}

func TestSyncNowRunsAndIsVisible(t *testing.T) {
	e := newEnv(t)
	e.Seed(120)
	res := e.call("POST", "/api/sync", adminKey, "").want(http.StatusAccepted)
	var started struct{ Run dirsync.Run }
	res.decode(&started)
	if loc := res.header.Get("Location"); loc != "/api/runs/"+started.Run.ID {
		t.Errorf("Location = %q", loc)
	}
	if started.Run.RequestedBy != "key:admin" || started.Run.Status != dirsync.RunRunning || started.Run.Mode != dirsync.ModeFull {
		t.Errorf("started run = %+v", started.Run)
	}

	// While it runs, status shows it with its progress.
	e.Clock.Advance(10 * time.Second)
	var st struct {
		ActiveRun *struct {
			ID                 string
			Phase              string
			RateUsersPerSecond float64
			ElapsedSeconds     int64
		}
		Actions []struct{ Code string }
	}
	e.call("GET", "/api/status", supportKey, "").want(http.StatusOK).decode(&st)
	if st.ActiveRun == nil || st.ActiveRun.ID != started.Run.ID || st.ActiveRun.ElapsedSeconds != 10 || st.ActiveRun.Phase != dirsync.PhaseEnumerating {
		t.Errorf("status while running: %+v", st.ActiveRun)
	}

	e.drain()
	var got struct{ Run dirsync.Run }
	e.call("GET", "/api/runs/"+started.Run.ID, supportKey, "").want(http.StatusOK).decode(&got)
	if got.Run.Status != dirsync.RunSucceeded || got.Run.Counters.Added != 120 || got.Run.FinishedAt == nil {
		t.Errorf("finished run = %+v", got.Run)
	}

	var status struct {
		Enabled              bool
		NextRun              *time.Time
		LastRun              *dirsync.Run
		ActiveRun            any
		DeltaTokenAgeSeconds *int64
		DirectoryUsers       int64
		Actions              []struct{ Code string }
	}
	e.Clock.Advance(90 * time.Second)
	e.call("GET", "/api/status", supportKey, "").want(http.StatusOK).decode(&status)
	wantNext, _ := dirsync.DefaultSettings().Schedule.Next(e.Clock.Now())
	if !status.Enabled || status.NextRun == nil || !status.NextRun.Equal(wantNext) || status.ActiveRun != nil {
		t.Errorf("status: enabled %v next %v (want %v) active %v", status.Enabled, status.NextRun, wantNext, status.ActiveRun)
	}
	if status.LastRun == nil || status.LastRun.ID != started.Run.ID || status.DirectoryUsers != 120 {
		t.Errorf("status last run %+v, users %d", status.LastRun, status.DirectoryUsers)
	}
	if status.DeltaTokenAgeSeconds == nil || *status.DeltaTokenAgeSeconds < 90 {
		t.Errorf("delta token age = %v", status.DeltaTokenAgeSeconds)
	}
	if len(status.Actions) != 0 {
		t.Errorf("actions after a good run: %+v", status.Actions)
	}

	// A full sync on request.
	res = e.call("POST", "/api/sync", adminKey, `{"mode":"full"}`).want(http.StatusAccepted)
	res.decode(&started)
	if started.Run.Mode != dirsync.ModeFull {
		t.Errorf("mode = %s, want full", started.Run.Mode)
	}
	// While it enumerates, status estimates the time left from the rate
	// and the last run's directory size.
	e.Drain(dirsynctest.DrainOptions{MaxSteps: 2})
	e.Clock.Advance(3 * time.Second)
	var progress struct {
		ActiveRun *struct {
			Phase                string
			RateUsersPerSecond   float64
			EstimatedSecondsLeft *int64
		}
	}
	e.call("GET", "/api/status", supportKey, "").want(http.StatusOK).decode(&progress)
	if a := progress.ActiveRun; a == nil || a.Phase != dirsync.PhaseEnumerating || a.RateUsersPerSecond <= 0 || a.EstimatedSecondsLeft == nil || *a.EstimatedSecondsLeft <= 0 {
		t.Errorf("progress of a full run = %+v", a)
	}
	// Cancel it: 200, then 409 the second time.
	e.call("POST", "/api/runs/"+started.Run.ID+"/cancel", adminKey, "").want(http.StatusOK).decode(&got)
	if got.Run.Status != dirsync.RunCancelled || !strings.Contains(got.Run.Error, "key:admin") {
		t.Errorf("cancelled run = %s %q", got.Run.Status, got.Run.Error)
	}
	e.call("POST", "/api/runs/"+started.Run.ID+"/cancel", adminKey, "").want(http.StatusConflict)
	e.drain()
}

func TestTwoSyncNowAtOnce(t *testing.T) {
	e := newEnv(t)
	e.Seed(5)
	for round := range 5 {
		var wg sync.WaitGroup
		results := make([]result, 2)
		start := make(chan struct{})
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = e.call("POST", "/api/sync", adminKey, "")
			}()
		}
		close(start)
		wg.Wait()
		statuses := []int{results[0].status, results[1].status}
		winner, loser := results[0], results[1]
		if winner.status != http.StatusAccepted {
			winner, loser = loser, winner
		}
		if winner.status != http.StatusAccepted || loser.status != http.StatusConflict {
			t.Fatalf("round %d: statuses %v, want one 202 and one 409", round, statuses)
		}
		var won struct{ Run dirsync.Run }
		winner.decode(&won)
		var lost struct {
			Error struct{ Code, Message, RunID string }
		}
		loser.decode(&lost)
		if lost.Error.Code != "conflict" || lost.Error.RunID != won.Run.ID || loser.header.Get("Location") != "/api/runs/"+won.Run.ID {
			t.Errorf("round %d: 409 = %s (Location %q), want it to name run %s", round, loser.body, loser.header.Get("Location"), won.Run.ID)
		}
		e.drain()
	}
	runs, _, _ := e.Engine.ListRuns(context.Background(), "", 100, "")
	if len(runs) != 5 {
		t.Errorf("%d runs exist, want 5", len(runs))
	}
}

func TestBlockedDeletionsApproveAndReject(t *testing.T) {
	for _, approve := range []bool{true, false} {
		t.Run(fmt.Sprintf("approve=%v", approve), func(t *testing.T) {
			e := newEnv(t)
			e.Seed(10)
			e.setThreshold(dirsync.DeletionThreshold{Enabled: true, MaxCount: 2})
			e.syncNow()
			for i := 1; i <= 5; i++ {
				e.Source.Remove(uid(i), dirsync.RemovedDeleted)
			}
			run := e.syncNow()
			if run.Status != dirsync.RunBlocked {
				t.Fatalf("run %s, want blocked", run.Status)
			}
			var st struct {
				Actions []struct {
					Code, Message string
					Requests      []struct{ Method, Path string }
				}
			}
			e.call("GET", "/api/status", supportKey, "").want(http.StatusOK).decode(&st)
			if len(st.Actions) != 1 || st.Actions[0].Code != "deletions_blocked" || !strings.Contains(st.Actions[0].Message, "5 deletions") {
				t.Fatalf("actions = %+v", st.Actions)
			}
			var paths []string
			for _, r := range st.Actions[0].Requests {
				paths = append(paths, r.Method+" "+r.Path)
			}
			wantPaths := []string{"GET /api/runs/" + run.ID + "/deletions", "POST /api/runs/" + run.ID + "/deletions/approve", "POST /api/runs/" + run.ID + "/deletions/reject"}
			if diff := cmp.Diff(wantPaths, paths); diff != "" {
				t.Errorf("action requests (-want +got):\n%s", diff)
			}
			var dels struct {
				Deletions []dirsync.PendingDeletion
				NextToken string
			}
			e.call("GET", "/api/runs/"+run.ID+"/deletions?limit=3", supportKey, "").want(http.StatusOK).decode(&dels)
			if len(dels.Deletions) != 3 || dels.NextToken == "" {
				t.Fatalf("first page of deletions: %+v", dels)
			}
			var rest struct {
				Deletions []dirsync.PendingDeletion
				NextToken string
			}
			e.call("GET", "/api/runs/"+run.ID+"/deletions?limit=3&token="+dels.NextToken, supportKey, "").want(http.StatusOK).decode(&rest)
			if len(rest.Deletions) != 2 || rest.NextToken != "" {
				t.Errorf("second page: %+v", rest)
			}
			// Sync now is refused while the run waits.
			e.call("POST", "/api/sync", adminKey, "").want(http.StatusConflict)
			action := "reject"
			if approve {
				action = "approve"
			}
			e.call("POST", "/api/runs/"+run.ID+"/deletions/"+action, supportKey, "").want(http.StatusForbidden)
			e.call("POST", "/api/runs/"+run.ID+"/deletions/"+action, adminKey, "").want(http.StatusAccepted)
			e.drain()
			var got struct{ Run dirsync.Run }
			e.call("GET", "/api/runs/"+run.ID, supportKey, "").want(http.StatusOK).decode(&got)
			wantDeleted := int64(0)
			if approve {
				wantDeleted = 5
			}
			if got.Run.Status != dirsync.RunSucceeded || got.Run.Counters.Deleted != wantDeleted {
				t.Errorf("after %s: %s, %d deleted", action, got.Run.Status, got.Run.Counters.Deleted)
			}
			// Deciding again is a conflict, not a 500.
			e.call("POST", "/api/runs/"+run.ID+"/deletions/approve", adminKey, "").want(http.StatusConflict)
		})
	}
}

func TestResetAndAudit(t *testing.T) {
	e := newEnv(t)
	e.Seed(4)
	e.syncNow()
	res := e.call("POST", "/api/reset", adminKey, "").want(http.StatusAccepted)
	var got struct{ Run dirsync.Run }
	res.decode(&got)
	if got.Run.Mode != dirsync.ModeFull || got.Run.Trigger != dirsync.TriggerReset {
		t.Errorf("reset run = %s/%s", got.Run.Mode, got.Run.Trigger)
	}
	res = e.call("POST", "/api/reset", adminKey, "").want(http.StatusConflict)
	if code, msg, hint := res.apiError(); code != "conflict" || !strings.Contains(msg, got.Run.ID) || !strings.Contains(hint, "cancel") {
		t.Errorf("reset during a run: %s %q %q", code, msg, hint)
	}
	e.drain()
	var audit struct {
		Entries []dirsync.AuditEntry
	}
	e.call("GET", "/api/audit", supportKey, "").want(http.StatusOK).decode(&audit)
	if len(audit.Entries) == 0 || audit.Entries[0].Action != "sync.reset" || audit.Entries[0].Who != "key:admin" {
		t.Errorf("audit = %+v", audit.Entries)
	}
}

func TestUsers(t *testing.T) {
	e := newEnv(t)
	e.Seed(30)
	dup := person(7)
	dup["mail"] = "user3@contoso.example"
	e.Source.Put(uid(7), dup)
	e.syncNow()
	e.AddMember(uid(500), uid(3))
	e.AddMember(uid(501), uid(3)) // a group deleted since: left out
	if err := e.Engine.Groups().PutMirrored(context.Background(), dirsync.Group{ID: uid(500), DisplayName: "Board"}); err != nil {
		t.Fatal(err)
	}

	// listAll follows nextLink and returns every user once.
	listAll := func(first string) []dirsync.User {
		t.Helper()
		var all []dirsync.User
		seen := map[string]bool{}
		for i, next := 0, first; next != ""; i++ {
			var page struct {
				Users    []dirsync.User
				NextLink string
			}
			e.call("GET", next, supportKey, "").want(http.StatusOK).decode(&page)
			for _, u := range page.Users {
				if seen[u.ID] {
					t.Fatalf("user %s listed twice", u.ID)
				}
				seen[u.ID] = true
				all = append(all, u)
			}
			next = page.NextLink
			if i > 50 {
				t.Fatal("paging does not end")
			}
		}
		return all
	}
	if n := len(listAll("/api/users?limit=7")); n != 30 {
		t.Errorf("listed %d users, want 30", n)
	}
	dups := listAll("/api/users?status=duplicate")
	if len(dups) != 1 || dups[0].ID != uid(7) || dups[0].DuplicateOf != uid(3) {
		t.Errorf("duplicates = %+v", dups)
	}
	if n := len(listAll("/api/users?limit=100&prefix=" + url.QueryEscape("USER 2"))); n != 11 { // 2, 20..29
		t.Errorf("prefix search found %d users, want 11", n)
	}

	type groupRef struct{ ID, DisplayName, Kind string }
	var one struct {
		User struct {
			dirsync.User
			Groups []groupRef `json:"groups"`
		}
	}
	e.call("GET", "/api/users/"+strings.ToUpper(uid(3)), supportKey, "").want(http.StatusOK).decode(&one)
	if one.User.ID != uid(3) || one.User.Fields["email"] != "user3@contoso.example" || one.User.Status != dirsync.StatusActive ||
		one.User.ChangedAt.IsZero() || !cmp.Equal(one.User.Groups, []groupRef{{uid(500), "Board", "mirrored"}}) {
		t.Errorf("user 3 = %+v", one.User)
	}
	e.call("GET", "/api/users/"+uid(7), supportKey, "").want(http.StatusOK).decode(&one)
	if one.User.Status != dirsync.StatusDuplicate || !strings.Contains(one.User.Reason, "user3@contoso.example") || one.User.Groups == nil {
		t.Errorf("user 7 = %+v", one.User)
	}
	res := e.call("GET", "/api/users/"+uid(404), supportKey, "").want(http.StatusNotFound)
	if code, _, _ := res.apiError(); code != "not_found" {
		t.Errorf("missing user: code %s", code)
	}
}

func TestRunsPaging(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	var ids []string
	for range 5 {
		ids = append([]string{e.syncNow().ID}, ids...) // newest first
		e.Clock.Advance(time.Minute)
	}
	var got []string
	next := "/api/runs?limit=2"
	var tokens []string
	for next != "" {
		var page struct {
			Runs      []dirsync.Run
			NextToken string
			NextLink  string
		}
		e.call("GET", next, supportKey, "").want(http.StatusOK).decode(&page)
		for _, r := range page.Runs {
			got = append(got, r.ID)
		}
		if page.NextToken != "" {
			tokens = append(tokens, page.NextToken)
		}
		next = page.NextLink
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	// A token continues only its own listing.
	res := e.call("GET", "/api/runs?status=failed&token="+tokens[0], supportKey, "").want(http.StatusBadRequest)
	if _, msg, _ := res.apiError(); !strings.Contains(msg, "another listing") {
		t.Errorf("token with other filters: %q", msg)
	}
	e.call("GET", "/api/audit?token="+tokens[0], supportKey, "").want(http.StatusBadRequest)

	var failed struct{ Runs []dirsync.Run }
	e.call("GET", "/api/runs?status=failed", supportKey, "").want(http.StatusOK).decode(&failed)
	if failed.Runs == nil || len(failed.Runs) != 0 {
		t.Errorf("failed runs = %+v, want an empty list", failed.Runs)
	}
}

// stubService fails chosen calls, for the error paths a healthy engine
// does not take.
type stubService struct {
	api.Service
	statusErr error
}

func (s stubService) Status(ctx context.Context) (dirsync.Status, error) {
	if s.statusErr != nil {
		return dirsync.Status{}, s.statusErr
	}
	return s.Service.Status(ctx)
}

func TestErrorTable(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{&dirsync.Error{Code: dirsync.ETHROTTLED, Message: "storage is busy", RetryAfter: 2500 * time.Millisecond}, 429, "throttled", "3"},
		{&dirsync.Error{Code: dirsync.ETHROTTLED, Message: "storage is busy"}, 429, "throttled", "30"},
		{&dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "table storage is unreachable"}, 503, "unavailable", ""},
		{&dirsync.Error{Code: dirsync.EUNAUTHORIZED, Message: "the storage key was rejected"}, 401, "unauthorized", ""},
		{&dirsync.Error{Code: dirsync.EFORBIDDEN, Message: "no access to the table"}, 403, "forbidden", ""},
		{&dirsync.Error{Code: dirsync.EBLOCKED, Message: "waiting for approval"}, 409, "blocked", ""},
		{&dirsync.Error{Code: dirsync.EPRECONDITION, Message: "changed"}, 412, "precondition_failed", ""},
		{&dirsync.Error{Code: dirsync.ETOKENEXPIRED, Message: "token https://graph/delta?token=SECRET expired"}, 500, "internal", ""},
		{fmt.Errorf("read settings: %w", errors.New("dial tcp 10.0.0.1: AccountKey=SECRET")), 500, "internal", ""},
		{&dirsync.Error{Code: dirsync.EINTERNAL, Message: "bug with SECRET"}, 500, "internal", ""},
	} {
		t.Run(string(dirsync.ErrorCode(tc.err)), func(t *testing.T) {
			e := newEnv(t, envOptions{service: func(s api.Service) api.Service { return stubService{Service: s, statusErr: tc.err} }})
			res := e.call("GET", "/api/status", supportKey, "").want(tc.status)
			code, msg, hint := res.apiError()
			if code != tc.code || res.header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("code %s Retry-After %q, want %s %q", code, res.header.Get("Retry-After"), tc.code, tc.retryAfter)
			}
			if tc.status == 500 {
				if strings.Contains(string(res.body), "SECRET") || msg != "An internal error occurred." || !strings.Contains(hint, res.header.Get("X-Request-Id")) {
					t.Errorf("500 body %s must be generic and name the request id", res.body)
				}
				if !strings.Contains(e.logOut.String(), res.header.Get("X-Request-Id")) {
					t.Errorf("the log lacks the request id of the 500")
				}
			}
		})
	}
}

func TestRunLogLink(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	run := e.syncNow()
	var link struct {
		URL       string
		ExpiresAt time.Time
	}
	e.call("GET", "/api/runs/"+run.ID+"/log/link", supportKey, "").want(http.StatusOK).decode(&link)
	if !strings.Contains(link.URL, run.LogName) || !strings.Contains(link.URL, "sig=SASSIGNATURE60") || !link.ExpiresAt.Equal(e.Clock.Now().Add(time.Hour)) {
		t.Errorf("default link = %+v", link)
	}
	e.call("GET", "/api/runs/"+run.ID+"/log/link?ttl=24h", adminKey, "").want(http.StatusOK).decode(&link)
	if !strings.Contains(link.URL, "SASSIGNATURE1440") {
		t.Errorf("24h link = %s", link.URL)
	}
	for _, bad := range []string{"25h", "30s", "-1h", "forever", "1"} {
		res := e.call("GET", "/api/runs/"+run.ID+"/log/link?ttl="+bad, supportKey, "").want(http.StatusBadRequest)
		if _, msg, _ := res.apiError(); !strings.Contains(msg, "ttl") {
			t.Errorf("ttl=%s: %q", bad, msg)
		}
	}
	e.call("GET", "/api/runs/20991231-000000-abcdef/log/link", supportKey, "").want(http.StatusNotFound)
	if strings.Contains(e.logOut.String(), "SASSIGNATURE") {
		t.Errorf("a SAS link was logged")
	}
}
