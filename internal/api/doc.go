// Package api is entrasync's admin and support HTTP API: the routes under
// /api, who may call each (roles), the one table that turns a dirsync error
// code into an HTTP status, and the OpenAPI document that describes it all.
//
// New returns an http.Handler. The handler binary mounts it for the
// Functions host, which forwards the original request at its original path
// (host.json enableProxyingHttpRequest), so log downloads stream.
//
// Conventions every route follows:
//
//   - JSON in and out. Errors are always {"error":{"code","message","hint"}}
//     with the status from statusByCode (errors.go); an unclassified error is
//     a 500 with a generic message, its details only in the log under the
//     response's X-Request-Id.
//   - Handlers return a response value or an error and never write to the
//     ResponseWriter themselves, so no response is half written when an error
//     comes late. Only the log download streams, after everything that can
//     fail early has been checked.
//   - Roles: admin may do everything; support may read (status, runs, logs,
//     users, groups, settings, audit, the OpenAPI document, and checking a
//     membership rule, which changes nothing). /api/health is
//     anonymous. The caller is identified by App Service Authentication's
//     x-ms-client-principal header (only when Config.TrustEasyAuth says the
//     platform sets it, since anyone can send the header otherwise), with app
//     roles EntraSync.Admin and EntraSync.Support, or by an API key
//     (x-functions-key header or code query parameter) whose SHA-256 is
//     configured for a role. The Api function is anonymous to the Functions
//     host: this package is the only gate (docs/architecture.md). Audit rows and runs record the principal's name
//     or "key:admin" / "key:support", never the key.
//   - Writes (POST, PUT, DELETE) must not be forgeable from another site, since the
//     Easy Auth session is a cookie the browser sends along: each needs the
//     x-functions-key header or Content-Type: application/json (which a
//     cross-site form cannot send) and must not say it comes from another
//     site (Sec-Fetch-Site, else Origin); see csrf.go. GET /api/me tells the
//     admin console who the caller is.
//   - Input from outside is checked before use: bodies are size-limited and
//     decoded strictly (unknown fields, wrong types and trailing data are
//     rejected naming the field), ids must have the shape of a run id or an
//     object id, paging limits are 1..100 and paging tokens must be ones this
//     API issued for the same listing (a group's members page with top
//     1..1000 and the engine's cursor, which names its group).
//   - Group writes (groups.go) leave membership to the sync: after one, a run
//     is started when none is going, and the answer says which, or why not.
//   - Nothing secret is logged or echoed: request logs carry the path, never
//     the query string (which may hold the code key).
package api
