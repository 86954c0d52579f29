package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served: the Console function's route
// (console/{*path}) under the host's route prefix "api".
const Prefix = "/api/console/"

// CSP is the Content-Security-Policy of every console answer: the page's own
// scripts, styles and images, API calls to its own origin, and nothing inline.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the embedded console. Create it with New.
type Handler struct {
	files map[string]file
}

type file struct {
	body        []byte
	contentType string
	etag        string
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// New returns the console handler with every asset read into memory (a few
// tens of KiB), each with its ETag.
func New() *Handler {
	h := &Handler{files: map[string]file{}}
	sub, _ := fs.Sub(assets, "assets")
	fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil // nothing else is served
		}
		sum := sha256.Sum256(b)
		h.files[p] = file{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return h
}

// Files lists the served paths (relative to Prefix), for tests.
func (h *Handler) Files() []string {
	out := make([]string, 0, len(h.files))
	for p := range h.files {
		out = append(out, p)
	}
	return out
}

// ServeHTTP serves GET and HEAD of Prefix and the files under it. The
// console's address without the trailing slash redirects, so the page's
// relative URLs resolve under Prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "the console only serves GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	if strings.EqualFold(r.URL.Path, strings.TrimSuffix(Prefix, "/")) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	rest, ok := cutPrefixFold(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if rest == "" {
		rest = "index.html"
	}
	f, ok := h.files[rest]
	if !ok {
		http.Error(w, "no such console file; the console is at "+Prefix, http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.contentType)
	hd.Set("ETag", f.etag)
	// Revalidate every time: a new handler version must not run with the
	// old scripts, and a 304 costs almost nothing.
	hd.Set("Cache-Control", "no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && match == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(f.body)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// IsConsolePath says whether a request path belongs to the console rather
// than the API: Prefix and everything under it, and Prefix without its slash.
func IsConsolePath(p string) bool {
	_, ok := cutPrefixFold(p, Prefix)
	return ok || strings.EqualFold(p, strings.TrimSuffix(Prefix, "/"))
}
