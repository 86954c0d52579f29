// Package console serves the admin console: a small web application (plain
// ES modules, no build step, no library) for admins and support that drives
// the API under /api. Its files are embedded in the handler binary with
// go:embed, so a plain `go build` ships it and nothing is fetched at run
// time.
//
// The console is the Console function (functions/Console, route
// console/{*path}, authLevel anonymous): the sign-in page must load before the
// browser has any credential. It serves only these static files; every API
// call the page makes carries credentials (the x-functions-key header
// locally, App Service Authentication's session in Azure) and goes to the
// Api function, which checks them.
//
// Security: every answer has a Content-Security-Policy that allows only the
// console's own scripts and styles (no inline script or style, no eval), no
// framing (frame-ancestors 'none'), and nosniff. The page builds its DOM with
// textContent and never parses data as HTML, so an Entra attribute such as a
// display name of <img src=x onerror=...> shows as text. Writes are protected
// against cross-site requests by the API itself (internal/api/csrf.go).
//
// The browser tests (e2e_test.go, driving e2e/console.mjs with Playwright and
// Debian's Chromium) start the whole local stack and use the console as a
// person would.
package console
