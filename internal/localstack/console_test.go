package localstack_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/console"
	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/graphsim"
)

// TestConsoleThroughTheHost checks the Console function as the host routes
// it: its files load without a key, with their security headers; nothing
// else does, and a cross-site write is refused even with a valid key.
func TestConsoleThroughTheHost(t *testing.T) {
	e := start(t, graphsim.Config{Users: 5, Seed: 3}, devhost.Options{})
	for _, tc := range []struct {
		method, path, key string
		header            http.Header
		want              int
	}{
		{"GET", "/console/", "", nil, http.StatusOK},
		{"GET", "/console/js/main.js", "", nil, http.StatusOK},
		{"HEAD", "/console/style.css", "", nil, http.StatusOK},
		{"GET", "/console/nope", "", nil, http.StatusNotFound},
		// Console takes GET and HEAD only: anything else reaches the Api
		// function, which serves no such route and changes nothing.
		{"POST", "/console/", "", nil, http.StatusMethodNotAllowed},
		{"GET", "/me", "", nil, http.StatusUnauthorized},
		{"GET", "/me", e.stack.SupportKey, nil, http.StatusOK},
		{"POST", "/sync", e.stack.AdminKey, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
	} {
		resp, body, err := e.stack.Do(e.ctx, tc.key, tc.method, tc.path, nil, tc.header)
		must(t, err)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d: %.200s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			continue
		}
		if strings.HasPrefix(tc.path, "/console/") && tc.method != "POST" {
			if got := resp.Header.Get("Content-Security-Policy"); got != console.CSP {
				t.Errorf("%s %s: CSP %q", tc.method, tc.path, got)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s %s: no nosniff", tc.method, tc.path)
			}
		}
	}
}
