package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestUserPhoto(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	ctx := context.Background()
	s, etag, _ := e.Engine.Settings(ctx)
	s.PhotoSync = true
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	jpeg := "\xff\xd8\xff\xe0 a jpeg"
	e.Source.SetPhoto(uid(1), []byte(jpeg), "image/jpeg")
	e.syncNow()

	for _, key := range []string{supportKey, adminKey} {
		res := e.call("GET", "/api/users/"+uid(1)+"/photo", key, "").want(http.StatusOK)
		if string(res.body) != jpeg || res.header.Get("Content-Type") != "image/jpeg" || res.header.Get("Content-Length") != fmt.Sprint(len(jpeg)) {
			t.Errorf("photo: %q %s %s", res.body, res.header.Get("Content-Type"), res.header.Get("Content-Length"))
		}
		if res.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Error("the photo is served without nosniff")
		}
	}
	res := e.call("GET", "/api/users/"+uid(2)+"/photo", supportKey, "").want(http.StatusNotFound)
	if code, msg, hint := res.apiError(); code != "not_found" || !strings.Contains(msg, "has no stored photo") || hint == "" {
		t.Errorf("no photo: %s %q %q", code, msg, hint)
	}
	res = e.call("GET", "/api/users/"+uid(404)+"/photo", supportKey, "").want(http.StatusNotFound)
	if _, msg, _ := res.apiError(); !strings.Contains(msg, "not in the directory") {
		t.Errorf("unknown user: %q", msg)
	}
	e.call("GET", "/api/users/not-a-guid/photo", supportKey, "").want(http.StatusBadRequest)
	e.call("GET", "/api/users/"+uid(1)+"/photo", "", "").want(http.StatusUnauthorized)
}
