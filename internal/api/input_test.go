package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// settingsDoc returns the current settings as a JSON object to edit.
func settingsDoc(t *testing.T, e *env) map[string]any {
	t.Helper()
	var doc map[string]any
	e.call("GET", "/api/settings", supportKey, "").want(http.StatusOK).decode(&doc)
	return doc
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestSettingsETagFlowAndAudit(t *testing.T) {
	e := newEnv(t)
	first := e.call("GET", "/api/settings", supportKey, "").want(http.StatusOK)
	etag := first.header.Get("ETag")
	if etag != `"defaults"` {
		t.Fatalf("ETag before any save = %q", etag)
	}
	var s dirsync.Settings
	first.decode(&s)
	if diff := cmp.Diff(dirsync.DefaultSettings(), s); diff != "" {
		t.Errorf("fresh settings (-want +got):\n%s", diff)
	}

	s.Schedule = dirsync.Schedule{Frequency: "daily", TimeOfDay: "02:30", TimeZone: "Europe/Berlin"}
	s.Mapping = append(s.Mapping, dirsync.FieldMapping{Field: "company", Constant: "Contoso"})
	body := mustJSON(s)

	res := e.call("PUT", "/api/settings", adminKey, body).want(http.StatusPreconditionRequired)
	if code, msg, _ := res.apiError(); code != "precondition_required" || !strings.Contains(msg, "If-Match") {
		t.Errorf("PUT without If-Match: %s %q", code, msg)
	}
	e.call("PUT", "/api/settings", supportKey, body, "If-Match", etag).want(http.StatusForbidden)

	e.Clock.Advance(time.Second) // audit rows are ordered by time
	res = e.call("PUT", "/api/settings", adminKey, body, "If-Match", etag).want(http.StatusOK)
	etag2 := res.header.Get("ETag")
	if etag2 == "" || etag2 == etag || !strings.HasPrefix(etag2, `"`) {
		t.Fatalf("ETag after save = %q", etag2)
	}
	var saved dirsync.Settings
	res.decode(&saved)
	if diff := cmp.Diff(s, saved); diff != "" {
		t.Errorf("saved settings (-want +got):\n%s", diff)
	}
	if got := e.call("GET", "/api/settings", supportKey, "").header.Get("ETag"); got != etag2 {
		t.Errorf("GET ETag = %q, want %q", got, etag2)
	}

	// A stale ETag (and the "before any save" one) is refused.
	for _, stale := range []string{etag, `"bm9wZQ"`, "garbage", `W/"` + strings.Trim(etag2, `"`) + `x"`} {
		res = e.call("PUT", "/api/settings", adminKey, body, "If-Match", stale).want(http.StatusPreconditionFailed)
		if code, _, hint := res.apiError(); code != "precondition_failed" || !strings.Contains(hint, "GET /api/settings") {
			t.Errorf("stale If-Match %s: %s %q", stale, code, hint)
		}
	}
	// The current one works, and so does "*".
	s.PageSize = 300
	e.Clock.Advance(time.Second)
	res = e.call("PUT", "/api/settings", adminKey, mustJSON(s), "If-Match", etag2).want(http.StatusOK)
	s.PageSize = 400
	e.Clock.Advance(time.Second)
	e.call("PUT", "/api/settings", adminKey, mustJSON(s), "If-Match", "*").want(http.StatusOK)

	var audit struct {
		Entries []struct {
			Who, Action   string
			Before, After dirsync.Settings
		}
	}
	e.call("GET", "/api/audit?limit=10", supportKey, "").want(http.StatusOK).decode(&audit)
	var got []string
	for _, a := range audit.Entries {
		got = append(got, a.Action+" by "+a.Who)
	}
	if diff := cmp.Diff([]string{"settings.update by key:admin", "settings.update by key:admin", "settings.update by key:admin"}, got); diff != "" {
		t.Fatalf("audit (-want +got):\n%s", diff)
	}
	if audit.Entries[0].Before.PageSize != 300 || audit.Entries[0].After.PageSize != 400 || audit.Entries[2].Before.Schedule.Frequency != "hourly" {
		t.Errorf("audit before/after wrong: %+v", audit.Entries)
	}
}

// TestInvalidSettingsRejectedWhole sends bad documents; each must be a 400
// naming the field, and change nothing (same ETag, same document, no audit).
func TestInvalidSettingsRejectedWhole(t *testing.T) {
	e := newEnv(t)
	good := settingsDoc(t, e)
	etag := e.call("PUT", "/api/settings", adminKey, mustJSON(good), "If-Match", `"defaults"`).want(http.StatusOK).header.Get("ETag")
	before := e.call("GET", "/api/settings", supportKey, "").body
	audits := len(e.Store.Rows(dirsync.TableAudit))

	// edit returns the good document changed by f.
	edit := func(f func(d map[string]any)) string {
		var d map[string]any
		json.Unmarshal([]byte(mustJSON(good)), &d)
		f(d)
		return mustJSON(d)
	}
	sched := func(s map[string]any) func(d map[string]any) {
		return func(d map[string]any) { d["schedule"] = s }
	}
	mapping := func(d map[string]any) []any { return d["mapping"].([]any) }

	for _, tc := range []struct {
		name, body string
		status     int
		want       string // in the message
	}{
		{"unknown frequency", edit(sched(map[string]any{"frequency": "weekly"})), 400, `schedule: frequency "weekly"`},
		{"bad time of day", edit(sched(map[string]any{"frequency": "daily", "timeOfDay": "25:00"})), 400, "timeOfDay"},
		{"unknown time zone", edit(sched(map[string]any{"frequency": "daily", "timeOfDay": "02:00", "timeZone": "Mars/Base"})), 400, "timeZone"},
		{"interval under 15 minutes", edit(sched(map[string]any{"frequency": "minutes", "everyMinutes": 5})), 400, "everyMinutes"},
		{"minute out of range", edit(sched(map[string]any{"frequency": "hourly", "minute": 60})), 400, "minute"},
		{"once without at", edit(sched(map[string]any{"frequency": "once"})), 400, "at"},
		{"at not a time", edit(sched(map[string]any{"frequency": "once", "at": "tomorrow"})), 400, `"tomorrow" is not a time in RFC 3339`},
		{"no mapping", edit(func(d map[string]any) { d["mapping"] = []any{} }), 400, "mapping: at least one"},
		{"bad field name", edit(func(d map[string]any) { mapping(d)[0].(map[string]any)["field"] = "display name" }), 400, "mapping[0].field"},
		{"field mapped twice", edit(func(d map[string]any) { mapping(d)[1].(map[string]any)["field"] = "DisplayName" }), 400, "mapping[1].field"},
		{"source and constant", edit(func(d map[string]any) { mapping(d)[0].(map[string]any)["constant"] = "x" }), 400, "mapping[0]"},
		{"required field not mapped", edit(func(d map[string]any) { d["required"] = []any{"email", "nickname"} }), 400, "required[1]"},
		{"email field not mapped", edit(func(d map[string]any) { d["emailField"] = "mailbox" }), 400, "emailField"},
		{"threshold percent over 100", edit(func(d map[string]any) { d["deletionThreshold"].(map[string]any)["maxPercent"] = 150 }), 400, "deletionThreshold.maxPercent"},
		{"negative threshold count", edit(func(d map[string]any) { d["deletionThreshold"].(map[string]any)["maxCount"] = -1 }), 400, "deletionThreshold.maxCount"},
		{"injection as a group id", edit(func(d map[string]any) { d["groupScope"] = []any{"x' or 1 eq 1"} }), 400, "groupScope[0]"},
		{"page size 0", edit(func(d map[string]any) { d["pageSize"] = 0 }), 400, "pageSize"},
		{"page size as a string", edit(func(d map[string]any) { d["pageSize"] = "200" }), 400, `field "pageSize" must be a whole number, not a string`},
		{"page size a fraction", edit(func(d map[string]any) { d["pageSize"] = 1.5 }), 400, `field "pageSize" must be a whole number, not the number 1.5`},
		{"enabled as a string", edit(func(d map[string]any) { d["enabled"] = "yes" }), 400, `field "enabled" must be true or false`},
		{"nested wrong type", edit(sched(map[string]any{"frequency": "hourly", "minute": "5"})), 400, `"schedule.minute" must be a whole number`},
		{"mapping as an object", edit(func(d map[string]any) { d["mapping"] = map[string]any{} }), 400, `field "mapping" must be a list`},
		{"unknown field", edit(func(d map[string]any) { d["enable"] = true }), 400, `unknown field "enable"`},
		{"unknown nested field", edit(func(d map[string]any) { mapping(d)[0].(map[string]any)["src"] = "x" }), 400, `unknown field "src"`},
		{"missing enabled", edit(func(d map[string]any) { delete(d, "enabled") }), 400, `the field "enabled" is missing`},
		{"missing two fields", edit(func(d map[string]any) { delete(d, "pageSize"); delete(d, "mapping") }), 400, "2 fields are missing: mapping, pageSize"},
		{"malformed JSON", `{"enabled": true,`, 400, "ends in the middle"},
		{"syntax error", "{\n  \"enabled\": tru\n}", 400, "not valid JSON (line 2"},
		{"an array", `[1,2]`, 400, "the body must be an object, not a list"},
		{"two documents", mustJSON(good) + mustJSON(good), 400, "more than one JSON value"},
		{"null", `null`, 400, "missing"},
		{"empty body", ``, 400, "the body is empty"},
		{"oversize body", `{"mapping":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "larger than 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.call("PUT", "/api/settings", adminKey, tc.body, "If-Match", etag).want(tc.status)
			code, msg, hint := res.apiError()
			t.Logf("%d %s: %s | %s", res.status, code, msg, hint)
			if !strings.Contains(msg, tc.want) || hint == "" {
				t.Errorf("%s %q (hint %q), want a message containing %q", code, msg, hint, tc.want)
			}
			if res.header.Get("ETag") != "" {
				t.Errorf("an error carries an ETag")
			}
		})
	}
	after := e.call("GET", "/api/settings", supportKey, "")
	if after.header.Get("ETag") != etag || string(after.body) != string(before) {
		t.Errorf("rejected documents changed the settings")
	}
	if n := len(e.Store.Rows(dirsync.TableAudit)); n != audits {
		t.Errorf("rejected documents wrote %d audit rows", n-audits)
	}
}

// TestBadInputs: every bad request gets a 4xx in the error format with a
// message and a hint; none is a 500.
func TestBadInputs(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	run := e.syncNow()
	logPath := "/api/runs/" + run.ID + "/log"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
		allow                    string
	}{
		{"malformed JSON", "POST", "/api/sync", `{"mode":`, 400, "ends in the middle", ""},
		{"unknown field", "POST", "/api/sync", `{"mode":"full","force":true}`, 400, `unknown field "force"`, ""},
		{"wrong type", "POST", "/api/sync", `{"mode":1}`, 400, `field "mode" must be a string, not a number`, ""},
		{"bad mode", "POST", "/api/sync", `{"mode":"partial"}`, 400, `mode "partial" is not one of full, preview, full-preview`, ""},
		{"array body", "POST", "/api/sync", `[]`, 400, "must be an object", ""},
		{"oversize body", "POST", "/api/sync", `{"mode":"` + strings.Repeat("f", 2<<20) + `"}`, 413, "larger than 1 MiB", ""},
		{"body on cancel", "POST", "/api/runs/" + run.ID + "/cancel", `{"reason":"x"}`, 400, `unknown field "reason"`, ""},
		{"body on reset", "POST", "/api/reset", `{"full":true}`, 400, `unknown field "full"`, ""},
		{"limit 0", "GET", "/api/runs?limit=0", "", 400, "limit \"0\" is not a whole number from 1 to 100", ""},
		{"limit 101", "GET", "/api/users?limit=101", "", 400, "from 1 to 100", ""},
		{"limit text", "GET", "/api/audit?limit=ten", "", 400, "from 1 to 100", ""},
		{"garbage token", "GET", "/api/runs?token=garbage!", "", 400, "paging token is not valid", ""},
		{"forged token", "GET", "/api/users?token=eyJsIjoieCIsInQiOiJ5In0", "", 400, "another listing", ""},
		{"huge token", "GET", "/api/audit?token=" + strings.Repeat("A", 5000), "", 400, "paging token is not valid", ""},
		{"bad run status", "GET", "/api/runs?status=done", "", 400, `status "done" is not one of`, ""},
		{"typo in parameter", "GET", "/api/runs?stauts=failed", "", 400, `unknown query parameter "stauts"`, ""},
		{"injection as run id", "GET", "/api/runs/" + url.PathEscape("x' or 1 eq 1"), "", 400, `"x' or 1 eq 1" is not a run id`, ""},
		{"injection as run id on cancel", "POST", "/api/runs/" + url.PathEscape("' or PartitionKey ne '") + "/cancel", "", 400, "is not a run id", ""},
		{"injection as user id", "GET", "/api/users/" + url.PathEscape("x' or 1 eq 1"), "", 400, "is not a user object id", ""},
		{"almost a guid", "GET", "/api/users/00000000-0000-4000-8000-00000000000g", "", 400, "is not a user object id", ""},
		{"run that does not exist", "GET", "/api/runs/20991231-000000-abcdef", "", 404, "does not exist", ""},
		{"log of a run that does not exist", "GET", "/api/runs/20991231-000000-abcdef/log", "", 404, "does not exist", ""},
		{"deletions of a run that does not exist", "GET", "/api/runs/20991231-000000-abcdef/deletions", "", 404, "does not exist", ""},
		{"approve a run that does not exist", "POST", "/api/runs/20991231-000000-abcdef/deletions/approve", "", 404, "does not exist", ""},
		{"approve a run that is not blocked", "POST", "/api/runs/" + run.ID + "/deletions/approve", "", 409, "not waiting for approval", ""},
		{"bad user status", "GET", "/api/users?status=gone", "", 400, `status "gone"`, ""},
		{"long prefix", "GET", "/api/users?prefix=" + strings.Repeat("a", 300), "", 400, "prefix", ""},
		{"control character in prefix", "GET", "/api/users?prefix=a%00b", "", 400, "prefix", ""},
		{"bad log format", "GET", logPath + "?format=xml", "", 400, `format "xml"`, ""},
		{"bad log level", "GET", logPath + "?level=warn,debug", "", 400, `level "debug"`, ""},
		{"bad event name", "GET", logPath + "?event=" + url.QueryEscape("added;drop"), "", 400, "not an event name", ""},
		{"unknown route", "GET", "/api/nope", "", 404, "there is no route /api/nope", ""},
		{"api root", "GET", "/api/", "", 404, "there is no route", ""},
		{"trailing slash", "GET", "/api/runs/", "", 404, "there is no route", ""},
		{"outside /api", "GET", "/admin", "", 404, "there is no route", ""},
		{"encoded slash in an id", "GET", "/api/runs/..%2F..%2Fsettings", "", 404, "there is no route", ""},
		{"too deep", "GET", "/api/runs/" + run.ID + "/log/link/extra", "", 404, "there is no route", ""},
		{"DELETE runs", "DELETE", "/api/runs", "", 405, "DELETE is not allowed on /api/runs", "GET"},
		{"GET sync", "GET", "/api/sync", "", 405, "allowed: POST", "POST"},
		{"POST settings", "POST", "/api/settings", `{}`, 405, "allowed: GET, PUT", "GET, PUT"},
		{"PATCH a run", "PATCH", "/api/runs/" + run.ID, "", 405, "allowed: GET", "GET"},
		{"PUT without If-Match", "PUT", "/api/settings", `{}`, 428, "If-Match", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.call(tc.method, tc.path, adminKey, tc.body).want(tc.status)
			_, msg, hint := res.apiError()
			t.Logf("%d: %s | %s", res.status, msg, hint)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to contain %q", msg, tc.want)
			}
			if hint == "" {
				t.Errorf("no hint for %q", msg)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if res.header.Get("Allow") != tc.allow {
				t.Errorf("Allow = %q, want %q", res.header.Get("Allow"), tc.allow)
			}
		})
	}
	if strings.Contains(e.logOut.String(), `"level":"ERROR"`) {
		t.Errorf("bad input was logged as an internal error:\n%s", e.logOut.String())
	}
	// Nothing was started or changed by the bad requests.
	runs, _, _ := e.Engine.ListRuns(context.Background(), "", 100, "")
	if len(runs) != 1 {
		t.Errorf("%d runs, want only the first", len(runs))
	}
}

// TestNoSecretsInResponsesOrLogs sends the keys in the header and in the
// query string, on successes and failures, and looks for them everywhere.
func TestNoSecretsInResponsesOrLogs(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	run := e.syncNow()
	var all strings.Builder
	for _, key := range []string{adminKey, supportKey} {
		q := "code=" + url.QueryEscape(key)
		for _, req := range [][2]string{
			{"GET", "/api/status?" + q}, {"GET", "/api/runs?limit=1&" + q}, {"GET", "/api/users?limit=1&" + q},
			{"GET", "/api/audit?limit=1&" + q}, {"GET", "/api/runs/" + run.ID + "?" + q},
			{"GET", "/api/runs/" + run.ID + "/log?" + q}, {"GET", "/api/runs/" + run.ID + "/log?format=csv&" + q},
			{"GET", "/api/nope?" + q}, {"DELETE", "/api/runs?" + q}, {"GET", "/api/runs?limit=0&" + q},
			{"POST", "/api/sync?" + q}, {"GET", "/api/openapi.json?" + q}, {"GET", "/api/health?" + q},
		} {
			for _, res := range []result{e.call(req[0], req[1], "", ""), e.call(req[0], req[1], key, "")} {
				all.Write(res.body)
				for k, v := range res.header {
					all.WriteString(k + ": " + strings.Join(v, ",") + "\n")
				}
			}
		}
		e.drain()
	}
	e.call("GET", "/api/status", adminKey+"x", "").want(http.StatusUnauthorized)
	for _, secret := range []string{adminKey, supportKey, keyHash(adminKey), keyHash(supportKey)} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a response contains %q", secret[:12])
		}
		if strings.Contains(e.logOut.String(), secret) {
			t.Errorf("the log contains %q", secret[:12])
		}
	}
	if !strings.Contains(all.String(), "nextLink") {
		t.Errorf("the test did not see a nextLink (where a query string could leak)")
	}
}
