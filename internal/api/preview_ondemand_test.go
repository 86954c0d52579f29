package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

func TestPreviewRoutes(t *testing.T) {
	e := newEnv(t)
	e.Seed(5)
	e.Sync(dirsynctest.DrainOptions{})

	var started struct{ Run dirsync.Run }
	e.call("POST", "/api/sync", adminKey, `{"mode":"preview"}`, "Content-Type", "application/json").want(http.StatusAccepted).decode(&started)
	if !started.Run.Preview || started.Run.Trigger != dirsync.TriggerPreview {
		t.Errorf("preview run = %+v, want a preview", started.Run)
	}
	run := e.Finish(started.Run.ID, dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunPreviewed {
		t.Errorf("preview ended %s (%s), want previewed", run.Status, run.Error)
	}
	e.call("POST", "/api/sync", supportKey, `{"mode":"preview"}`, "Content-Type", "application/json").want(http.StatusForbidden)

	// A settings change, previewed: nothing is saved.
	res := e.call("GET", "/api/settings", adminKey, "").want(http.StatusOK)
	etag := res.header.Get("ETag")
	var s map[string]any
	res.decode(&s)
	s["required"] = []string{"email", "displayName", "employeeId"}
	s["mapping"] = append(s["mapping"].([]any), map[string]any{"field": "badge", "source": "employeeType"})
	b, _ := json.Marshal(s)
	e.call("POST", "/api/settings/preview", adminKey, string(b), "Content-Type", "application/json").want(http.StatusAccepted).decode(&started)
	run = e.Finish(started.Run.ID, dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunPreviewed || run.Counters.SkippedBy["employeeId"] != 5 {
		t.Errorf("settings preview %s %+v, want previewed with 5 users skipped for employeeId", run.Status, run.Counters)
	}
	if after := e.call("GET", "/api/settings", adminKey, "").want(http.StatusOK).header.Get("ETag"); after != etag {
		t.Errorf("a settings preview changed the settings (ETag %s -> %s)", etag, after)
	}
	s["pageSize"] = 5000
	b, _ = json.Marshal(s)
	res = e.call("POST", "/api/settings/preview", adminKey, string(b), "Content-Type", "application/json").want(http.StatusBadRequest)
	if _, msg, _ := res.apiError(); !strings.Contains(msg, "pageSize") {
		t.Errorf("invalid candidate: %s, want it to name pageSize", msg)
	}
}

func TestProvisionUserRoute(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	e.Sync(dirsynctest.DrainOptions{})
	e.Source.Put(dirsynctest.UserID(7), dirsynctest.Person(7))

	var res dirsync.OnDemandResult
	e.call("POST", "/api/users/user7@contoso.example/sync", adminKey, "", "Content-Type", "application/json").want(http.StatusOK).decode(&res)
	if res.Outcome != "added" || res.UserID != dirsynctest.UserID(7) || len(res.Steps) < 4 || res.Run.Trigger != dirsync.TriggerOnDemand {
		t.Errorf("provision = %+v, want user 7 added with its steps", res)
	}
	e.call("POST", "/api/users/"+dirsynctest.UserID(7)+"/sync", supportKey, "").want(http.StatusForbidden)
	r := e.call("POST", "/api/users/not-a-user/sync", adminKey, "", "Content-Type", "application/json").want(http.StatusBadRequest)
	if _, msg, _ := r.apiError(); !strings.Contains(msg, "neither a user object id") {
		t.Errorf("bad key: %s", msg)
	}
	var last result
	for range 6 {
		last = e.call("POST", "/api/users/"+dirsynctest.UserID(1)+"/sync", adminKey, "", "Content-Type", "application/json")
	}
	last.want(http.StatusTooManyRequests)
	if last.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
}
