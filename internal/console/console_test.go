package console_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/console"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServesTheEmbeddedFilesWithSecurityHeaders(t *testing.T) {
	h := console.New()
	for _, tc := range []struct {
		path, wantType string
	}{
		{"/api/console/", "text/html; charset=utf-8"},
		{"/api/console/index.html", "text/html; charset=utf-8"},
		{"/api/console/js/main.js", "text/javascript; charset=utf-8"},
		{"/api/console/style.css", "text/css; charset=utf-8"},
		{"/API/Console/js/api.js", "text/javascript; charset=utf-8"}, // the host routes case-insensitively
	} {
		rec := get(t, h, "GET", tc.path)
		got := map[string]string{"status": http.StatusText(rec.Code)}
		for _, k := range []string{"Content-Type", "Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Cache-Control"} {
			got[k] = rec.Header().Get(k)
		}
		want := map[string]string{"status": "OK", "Content-Type": tc.wantType, "Content-Security-Policy": console.CSP,
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
		}
		if rec.Body.Len() == 0 {
			t.Errorf("GET %s: empty body", tc.path)
		}
	}
}

func TestCSPForbidsInlineCode(t *testing.T) {
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"} {
		if strings.Contains(console.CSP, bad) {
			t.Errorf("CSP allows %s: %s", bad, console.CSP)
		}
	}
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(console.CSP, want) {
			t.Errorf("CSP lacks %s", want)
		}
	}
}

func TestOtherRequests(t *testing.T) {
	h := console.New()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/console", http.StatusMovedPermanently},
		{"GET", "/api/console/nope.js", http.StatusNotFound},
		{"GET", "/api/console/../status", http.StatusNotFound},
		{"GET", "/api/console/js/", http.StatusNotFound},
		{"POST", "/api/console/", http.StatusMethodNotAllowed},
		{"HEAD", "/api/console/", http.StatusOK},
	} {
		rec := get(t, h, tc.method, tc.path)
		if rec.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
		if rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s %s: no CSP", tc.method, tc.path)
		}
	}
	if loc := get(t, h, "GET", "/api/console").Header().Get("Location"); loc != "/api/console/" {
		t.Errorf("redirect to %q", loc)
	}
	rec := get(t, h, "GET", "/api/console/")
	if rec2 := get(t, h, "GET", "/api/console/", "If-None-Match", rec.Header().Get("ETag")); rec2.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", rec2.Code)
	}
}

func TestIsConsolePath(t *testing.T) {
	got := map[string]bool{}
	for _, p := range []string{"/api/console", "/api/console/", "/api/console/js/main.js", "/API/CONSOLE/x", "/api/status", "/api/consoles", "/api/runs/console/"} {
		got[p] = console.IsConsolePath(p)
	}
	want := map[string]bool{"/api/console": true, "/api/console/": true, "/api/console/js/main.js": true, "/API/CONSOLE/x": true,
		"/api/status": false, "/api/consoles": false, "/api/runs/console/": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestPageHasNoInlineCodeAndBuildsNoHTML reads the page and its scripts: no
// inline script or style (the CSP would block them anyway), every module
// import served, and no API that parses a string as HTML, so untrusted text
// cannot become markup.
func TestPageHasNoInlineCodeAndBuildsNoHTML(t *testing.T) {
	h := console.New()
	index := get(t, h, "GET", "/api/console/").Body.String()
	for _, m := range regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(index, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in index.html: %s", m[0])
		}
	}
	if regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=`).MatchString(index) {
		t.Errorf("index.html has an inline style or event handler")
	}
	files := h.Files()
	forbidden := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|\.style\.|setAttribute\('style'|javascript:`)
	imports := regexp.MustCompile(`(?m)^import .* from '\./([^']+)';`)
	for _, f := range files {
		if !strings.HasSuffix(f, ".js") {
			continue
		}
		src := get(t, h, "GET", "/api/console/"+f).Body.String()
		for i, line := range strings.Split(src, "\n") {
			if forbidden.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d: %s", f, i+1, strings.TrimSpace(line))
			}
		}
		for _, m := range imports.FindAllStringSubmatch(src, -1) {
			if !slices.Contains(files, "js/"+m[1]) {
				t.Errorf("%s imports %s, which is not embedded", f, m[1])
			}
		}
	}
}
