package localstack_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/api"
	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/testenv"
)

// TestEveryRouteThroughTheHostWithBothRoles calls every API route through
// the local Functions host. The Api function is anonymous to the host (see
// docs/architecture.md, "The API's authentication"), so the API itself must
// refuse every route but /api/health without credentials: no key, a forged
// x-ms-client-principal while App Service Authentication is off, and the
// host's master key (which is no API key) are all 401. Support may read and
// is refused every write naming the admin role; admin reads everything.
func TestEveryRouteThroughTheHostWithBothRoles(t *testing.T) {
	e := start(t, graphsim.Config{Users: 40, Seed: 21, PageSize: 20}, devhost.Options{},
		map[string]string{"PHOTO_CONTAINER": testenv.UniqueName(t, "photos")})
	// Photo sync on, so that GET /api/users/{id}/photo has a photo to serve.
	resp, body, err := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodGet, "/settings", nil, nil)
	must(t, err)
	var on dirsync.Settings
	must(t, jsonUnmarshal(body, &on))
	on.PhotoSync = true
	resp, body, err = e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", on, http.Header{"If-Match": {resp.Header.Get("ETag")}})
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", resp.StatusCode, body)
	}
	run := e.sync(false)
	var userID string
	for id, u := range e.directory() {
		if u.Status == dirsync.StatusActive && u.PhotoETag != "" && u.PhotoSkipped == "" {
			userID = id
			break
		}
	}
	if userID == "" {
		t.Fatal("no active user with a stored photo in the generated tenant")
	}
	// A dynamic group for the /groups/{id} routes. Its creation starts a
	// run, which is waited for so that nothing below finds it in the way.
	gresp, gbody, err := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPost, "/groups",
		map[string]string{"displayName": "Everyone", "rule": "user.accountEnabled -ne false"}, nil)
	must(t, err)
	var created struct {
		Group struct{ ID string }
		Run   *struct{ ID string }
	}
	if gresp.StatusCode != http.StatusCreated || jsonUnmarshal(gbody, &created) != nil || created.Group.ID == "" {
		t.Fatalf("POST /groups: %d %s", gresp.StatusCode, gbody)
	}
	if created.Run != nil {
		e.wait(created.Run.ID)
	}
	h, err := api.New(api.Config{Service: &dirsync.Engine{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range h.Routes() {
		path := strings.TrimPrefix(rt.Pattern, "/api")
		switch {
		case strings.HasPrefix(path, "/users/"):
			path = strings.ReplaceAll(path, "{id}", userID)
		case strings.HasPrefix(path, "/groups/"):
			path = strings.ReplaceAll(path, "{id}", created.Group.ID)
		}
		path = strings.ReplaceAll(path, "{id}", run.ID)
		var reqBody any
		if rt.Pattern == "/api/groups/validate-rule" {
			reqBody = map[string]string{"rule": `user.department -eq "Sales"`} // a read that needs a body
		}
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			resp, body, err := e.stack.Do(e.ctx, "", rt.Method, path, reqBody, nil)
			must(t, err)
			if rt.Role == "anonymous" {
				if resp.StatusCode != http.StatusOK {
					t.Errorf("anonymous: %d %s", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"unauthorized"`) {
				t.Errorf("no key: %d %s, want 401 from the API", resp.StatusCode, body)
			}
			forged := http.Header{"X-Ms-Client-Principal": {forgedAdminPrincipal}}
			resp, body, err = e.stack.Do(e.ctx, "", rt.Method, path, reqBody, forged)
			must(t, err)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("forged principal with Easy Auth off: %d %s, want 401", resp.StatusCode, body)
			}
			resp, body, err = e.stack.Do(e.ctx, e.stack.MasterKey, rt.Method, path, reqBody, nil)
			must(t, err)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("the host's master key: %d %s, want 401 (it is no API key)", resp.StatusCode, body)
			}
			resp, body, err = e.stack.Do(e.ctx, e.stack.SupportKey, rt.Method, path, reqBody, nil)
			must(t, err)
			switch rt.Role {
			case "support":
				if resp.StatusCode != http.StatusOK {
					t.Errorf("support: %d %s", resp.StatusCode, body)
				}
				resp, body, err = e.stack.Do(e.ctx, e.stack.AdminKey, rt.Method, path, reqBody, nil)
				must(t, err)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("admin: %d %s", resp.StatusCode, body)
				}
			case "admin":
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "admin") {
					t.Errorf("support on a write: %d %s, want 403 naming the admin role", resp.StatusCode, body)
				}
			}
			if strings.Contains(string(body), e.stack.AdminKey) || strings.Contains(string(body), e.stack.SupportKey) {
				t.Errorf("a key is echoed in the response")
			}
		})
	}

	// Admin writes on a finished run are refused with a conflict that says why.
	for _, action := range []string{"/cancel", "/deletions/approve", "/deletions/reject"} {
		resp, body, err := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPost, "/runs/"+run.ID+action, nil, nil)
		must(t, err)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), `"hint"`) {
			t.Errorf("POST %s on a finished run: %d %s, want 409 with a hint", action, resp.StatusCode, body)
		}
	}
	// Settings are saved with optimistic concurrency: no If-Match is 428, a
	// stale ETag 412, and neither changes anything.
	resp, body, err = e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodGet, "/settings", nil, nil)
	must(t, err)
	var s dirsync.Settings
	must(t, jsonUnmarshal(body, &s))
	stale := resp.Header.Get("ETag")
	s.PageSize = 150
	if resp, body, _ := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", s, nil); resp.StatusCode != http.StatusPreconditionRequired {
		t.Errorf("PUT without If-Match: %d %s, want 428", resp.StatusCode, body)
	}
	if resp, body, _ := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", s, http.Header{"If-Match": {stale}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT with the ETag: %d %s", resp.StatusCode, body)
	}
	s.PageSize = 120
	if resp, body, _ := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", s, http.Header{"If-Match": {stale}}); resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale ETag: %d %s, want 412", resp.StatusCode, body)
	}
	_, body, _ = e.stack.Do(e.ctx, e.stack.SupportKey, http.MethodGet, "/settings", nil, nil)
	must(t, jsonUnmarshal(body, &s))
	if s.PageSize != 150 {
		t.Errorf("page size = %d after the refused PUT, want 150", s.PageSize)
	}

	// Bad input through the host is a 4xx that says what was wrong.
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/runs/x'%20or%201%20eq%201", ""},
		{"GET", "/users/not-a-guid", ""},
		{"GET", "/groups/not-a-guid", ""},
		{"PUT", "/groups/" + created.Group.ID, `{"displayName":"x","rule":"user.city -eq \"a\""}`}, // no If-Match: 428
		{"POST", "/groups", `{"displayName":"x","rule":"user.city \"a\""}`},
		{"GET", "/runs?limit=0", ""},
		{"GET", "/runs?token=garbage", ""},
		{"POST", "/sync", `{"mode":"sideways"}`},
		{"POST", "/sync", `{"mode":`},
		{"GET", "/nowhere", ""},
		{"DELETE", "/settings", ""},
	} {
		req, _ := http.NewRequestWithContext(e.ctx, tc.method, e.stack.APIURL()+tc.path, strings.NewReader(tc.body))
		req.Header.Set("x-functions-key", e.stack.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s %q: %d, want a 4xx", tc.method, tc.path, tc.body, resp.StatusCode)
		}
	}
}

// forgedAdminPrincipal is an x-ms-client-principal claiming the admin app
// role, as a client could send it: only App Service Authentication may set
// that header, so with it off the API must not believe it.
var forgedAdminPrincipal = base64.StdEncoding.EncodeToString([]byte(
	`{"auth_typ":"aad","claims":[{"typ":"roles","val":"EntraSync.Admin"},{"typ":"name","val":"mallory"}],"name_typ":"name","role_typ":"roles"}`))
