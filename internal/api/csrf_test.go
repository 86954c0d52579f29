package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/api"
)

// TestCrossSiteWritesAreRefused plays the requests a page on another site
// can make with a signed-in admin's session (Easy Auth's cookie becomes the
// x-ms-client-principal header): none may change anything, while the
// console's own requests and automation with a key go through.
func TestCrossSiteWritesAreRefused(t *testing.T) {
	admin := principal("ada@contoso.example", api.AppRoleAdmin)
	const json = "application/json"
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		key     string
		headers []string
		want    int
	}{
		// What a cross-site <form method=post> sends: a form content type,
		// the cookie, Origin and Sec-Fetch-Site of the other site.
		{"form post from another site", "POST", "/api/sync", "",
			[]string{"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"text/plain post, an old browser without Sec-Fetch-Site", "POST", "/api/reset", "",
			[]string{"Content-Type", "text/plain", "Origin", "https://evil.example"}, http.StatusForbidden},
		// No Origin, no Sec-Fetch-Site (a very old browser): only the
		// content type is left to refuse it.
		{"form post with nothing else", "POST", "/api/sync", "",
			[]string{"Content-Type", "multipart/form-data; boundary=x"}, http.StatusForbidden},
		// JSON from another site: the browser would preflight it, and if
		// it ever did not, Sec-Fetch-Site or Origin still give it away.
		{"json from another site", "POST", "/api/sync", "",
			[]string{"Content-Type", json, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"json from a sibling subdomain", "POST", "/api/sync", "",
			[]string{"Content-Type", json, "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"json with a foreign Origin", "POST", "/api/sync", "",
			[]string{"Content-Type", json, "Origin", "https://evil.example"}, http.StatusForbidden},
		{"json with Origin null", "POST", "/api/sync", "",
			[]string{"Content-Type", json, "Origin", "null"}, http.StatusForbidden},
		{"settings put from another site", "PUT", "/api/settings", "",
			[]string{"Content-Type", json, "If-Match", `"defaults"`, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"a key does not excuse a cross-site request", "POST", "/api/sync", adminKey,
			[]string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},

		// The console: same origin, JSON.
		{"console", "POST", "/api/sync", "",
			[]string{"Content-Type", json, "Sec-Fetch-Site", "same-origin", "Origin", "https://app.example"}, http.StatusAccepted},
		{"console through a proxy (X-Forwarded-Host)", "POST", "/api/sync", "",
			[]string{"Content-Type", "application/json; charset=utf-8", "Origin", "https://app.example", "X-Forwarded-Host", "app.example"}, http.StatusAccepted},
		// Automation: curl sends neither Origin nor Sec-Fetch-Site.
		{"curl with a key and no body", "POST", "/api/sync", adminKey, nil, http.StatusAccepted},
		{"curl -d with a key (form content type)", "POST", "/api/sync", adminKey,
			[]string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusAccepted},
		// Reads are not affected: another site cannot read the answer.
		{"cross-site read", "GET", "/api/status", "",
			[]string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{trustEasyAuth: true})
			e.Seed(2)
			headers := append([]string{"X-MS-CLIENT-PRINCIPAL", admin}, tc.headers...)
			body := ""
			if tc.method == "PUT" {
				body = `{}`
			}
			res := e.call(tc.method, tc.path, tc.key, body, headers...)
			if res.status != tc.want {
				t.Fatalf("status %d, want %d: %s", res.status, tc.want, res.body)
			}
			if tc.want == http.StatusForbidden {
				if code, msg, hint := res.apiError(); code != "forbidden" || !strings.Contains(msg, "write request refused") || hint == "" {
					t.Errorf("error %q %q %q", code, msg, hint)
				}
				if e.Queue.Len() != 0 {
					t.Errorf("a refused request started a run")
				}
			}
		})
	}
}

func TestKeyInQueryParameterDoesNotProveSameSite(t *testing.T) {
	// A form can put ?code= in its action, so the key in the query string
	// is no proof on its own; a JSON body is.
	e := newEnv(t)
	e.Seed(2)
	e.call("POST", "/api/sync?code="+adminKey, "", "", "Content-Type", "application/x-www-form-urlencoded").want(http.StatusForbidden)
	e.call("POST", "/api/sync?code="+adminKey, "", "{}", "Content-Type", "application/json").want(http.StatusAccepted)
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	res := e.call("GET", "/api/status", supportKey, "").want(http.StatusOK)
	got := map[string]string{}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"} {
		got[h] = res.header.Get(h)
	}
	want := map[string]string{"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func TestMe(t *testing.T) {
	type me struct{ Name, Role, Via string }
	for _, tc := range []struct {
		name    string
		key     string
		headers []string
		want    me
	}{
		{"admin key", adminKey, nil, me{"key:admin", "admin", "key"}},
		{"support key", supportKey, nil, me{"key:support", "support", "key"}},
		{"support principal", "", []string{"X-MS-CLIENT-PRINCIPAL", principal("sam@contoso.example", api.AppRoleSupport)}, me{"sam@contoso.example", "support", "easyauth"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{trustEasyAuth: true})
			var got me
			e.call("GET", "/api/me", tc.key, "", tc.headers...).want(http.StatusOK).decode(&got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	e := newEnv(t)
	e.call("GET", "/api/me", "", "").want(http.StatusUnauthorized)
}
