package graphsim

import (
	"bytes"
	"image/jpeg"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGetUser(t *testing.T) {
	c := startSim(t, Config{Users: 30, Seed: 21})
	tn := c.sim.Tenant()
	var u User
	for _, cand := range tn.Users() {
		if cand.Attributes["manager"] != nil && cand.Attributes["mail"] != nil {
			u = cand
			break
		}
	}
	got := c.get("/users/"+u.ID+"?$select=displayName,mail,jobTitle", http.StatusOK)
	want := map[string]any{
		"@odata.context": c.sim.GraphBaseURL() + "/$metadata#users(displayName,mail,jobTitle)/$entity",
		"id":             u.ID, "displayName": u.Attributes["displayName"], "mail": u.Attributes["mail"],
	}
	if jt, ok := u.Attributes["jobTitle"]; ok {
		want["jobTitle"] = jt
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /users/{id} (-want +got):\n%s", diff)
	}

	byUPN := c.get("/users/"+url.PathEscape(u.Attributes["userPrincipalName"].(string))+"?$select=id", http.StatusOK)
	if byUPN["id"] != u.ID {
		t.Errorf("GET by UPN found %v", byUPN["id"])
	}

	withMgr := c.get("/users/"+u.ID+"?$select=id&$expand=manager($select=id)", http.StatusOK)
	if m, _ := withMgr["manager"].(map[string]any); m["id"] != u.Attributes["manager"] {
		t.Errorf("$expand=manager: %v", withMgr["manager"])
	}
	mgr := c.get("/users/"+u.ID+"/manager?$select=id,displayName", http.StatusOK)
	if mgr["id"] != u.Attributes["manager"] || mgr["@odata.type"] != "#microsoft.graph.user" {
		t.Errorf("/manager: %v", mgr)
	}

	if err := tn.SoftDeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/users/" + u.ID, "/users/00000000-0000-4000-8000-000000000001"} {
		resp, body := c.do(http.MethodGet, path, nil)
		if resp.StatusCode != 404 || errorCode(t, body) != "Request_ResourceNotFound" {
			t.Errorf("GET %s: %d %s, want 404 Request_ResourceNotFound", path, resp.StatusCode, body)
		}
	}
}

func TestPhotos(t *testing.T) {
	c := startSim(t, Config{Users: 40, Seed: 3})
	tn := c.sim.Tenant()
	var with, without string
	for _, rec := range tn.order {
		if rec.photo != nil && with == "" {
			with = rec.id
		}
		if rec.photo == nil && without == "" {
			without = rec.id
		}
	}
	meta := c.get("/users/"+with+"/photo", http.StatusOK)
	etag, _ := meta["@odata.mediaEtag"].(string)
	if !strings.HasPrefix(etag, `"`) || meta["@odata.mediaContentType"] != "image/jpeg" || meta["width"] != 96.0 || meta["height"] != 96.0 {
		t.Errorf("photo metadata %v", meta)
	}
	resp, data := c.do(http.MethodGet, "/users/"+with+"/photo/$value", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("photo $value: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
		t.Errorf("photo bytes are not a JPEG: %v", err)
	}

	for _, path := range []string{"/users/" + without + "/photo", "/users/" + without + "/photo/$value"} {
		resp, body := c.do(http.MethodGet, path, nil)
		if resp.StatusCode != 404 || errorCode(t, body) != "ImageNotFound" {
			t.Errorf("%s: %d %s, want 404 ImageNotFound", path, resp.StatusCode, body)
		}
	}

	// A new photo changes the ETag; delta does not report it.
	rd := c.round("/users/delta?$select=displayName", 0)
	if err := tn.SetPhoto(with, []byte("\xff\xd8\xff new photo"), "image/jpeg", 240, 240); err != nil {
		t.Fatal(err)
	}
	if meta2 := c.get("/users/"+with+"/photo", http.StatusOK); meta2["@odata.mediaEtag"] == etag {
		t.Error("the ETag did not change with the photo")
	}
	if r2 := c.round(rd.deltaLink, 0); len(r2.items) != 0 {
		t.Errorf("a photo change showed in delta: %v", r2.items)
	}
}

func TestUsersList(t *testing.T) {
	c := startSim(t, Config{Users: 90, Seed: 5})
	tn := c.sim.Tenant()
	users := tn.Users()
	all := c.pagedList("/users?$select=id&$top=20", 0)
	if len(all) != 90 {
		t.Errorf("paged /users: %d users, want 90", len(all))
	}
	var withMail User
	for _, u := range users {
		if u.Attributes["mail"] != nil {
			withMail = u
			break
		}
	}
	mail := strings.ToUpper(withMail.Attributes["mail"].(string))
	got := c.pagedList("/users?$select=id,mail&$filter="+url.QueryEscape("mail eq '"+mail+"'"), 0)
	if len(got) < 1 || got[0]["id"] != withMail.ID {
		t.Errorf("mail eq (case-insensitive): %v", got)
	}
	got = c.pagedList("/users?$select=id&$filter="+url.QueryEscape("id in ('"+users[1].ID+"','"+users[7].ID+"')"), 0)
	if diff := cmp.Diff([]string{users[1].ID, users[7].ID}, ids(got)); diff != "" {
		t.Errorf("id in (-want +got):\n%s", diff)
	}
	resp, body := c.do(http.MethodGet, "/users?$filter="+url.QueryEscape("startswith(mail,'a')"), nil)
	if resp.StatusCode != 400 || errorCode(t, body) != "Request_BadRequest" {
		t.Errorf("unsupported filter: %d %s", resp.StatusCode, body)
	}
	// An apostrophe in a value is escaped OData-style, not an injection.
	c.get("/users?$filter="+url.QueryEscape("surname eq 'O''Brien'"), http.StatusOK)
}

func TestGraphIsReadOnly(t *testing.T) {
	c := startSim(t, Config{Users: 2})
	resp, body := c.do(http.MethodPatch, "/users/"+c.sim.Tenant().Users()[0].ID, strings.NewReader(`{}`))
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PATCH on Graph: %d %s", resp.StatusCode, body)
	}
	resp, body = c.do(http.MethodGet, "/me/messages", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown Graph path: %d %s", resp.StatusCode, body)
	}
}
