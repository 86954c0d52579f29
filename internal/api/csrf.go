package api

import (
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Cross-site request forgery. In Azure the console signs in with App Service
// Authentication, whose session cookie the browser attaches to every request
// to the app, including one that a form or script on another site makes. A
// write is therefore only accepted when it carries something such a request
// cannot: a custom header (x-functions-key) or the JSON content type, both of
// which make a browser ask the API first (a CORS preflight, which this API
// never grants); and when the browser, through Sec-Fetch-Site or Origin, does
// not say it came from another site.

// isWrite says whether a method changes something.
func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// checkSameSite refuses a write request that a cross-site page could have
// made. Reads pass: a cross-site page cannot read the answer.
func checkSameSite(r *http.Request) error {
	if !isWrite(r.Method) {
		return nil
	}
	refuse := func(why string) error {
		return &dirsync.Error{Code: dirsync.EFORBIDDEN, Message: "write request refused: " + why,
			Hint: "Use the console on this site, or call the API with the x-functions-key header or Content-Type: application/json; requests from other sites cannot change anything."}
	}
	// Browsers since 2020-2023 (Chromium, Firefox, Safari) send
	// Sec-Fetch-Site, and it alone is authoritative: "none" is a request the
	// user made (address bar, bookmark), "same-origin" the console itself.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site != "same-origin" && site != "none" {
			return refuse("it came from another site (Sec-Fetch-Site: " + quoteShort(site) + ")")
		}
	} else if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(r, origin) {
		return refuse("it came from another site (Origin " + quoteShort(origin) + ")")
	}
	if r.Header.Get("X-Functions-Key") != "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		return nil
	}
	return refuse("it has neither an x-functions-key header nor Content-Type: application/json (a form on another site could send it)")
}

// sameOrigin says whether origin names the host the request was sent to.
// Behind the Functions host (and the local one) the handler sees its own
// address in Host and the one the browser used in X-Forwarded-Host.
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // includes "null": sandboxed frames, file: pages
	}
	hosts := []string{r.Host, r.Header.Get("X-Original-Host")}
	for _, v := range r.Header.Values("X-Forwarded-Host") {
		for _, h := range strings.Split(v, ",") {
			hosts = append(hosts, strings.TrimSpace(h))
		}
	}
	for _, h := range hosts {
		if h != "" && strings.EqualFold(h, u.Host) {
			return true
		}
	}
	return false
}
