// Package graphsim is a Microsoft Graph simulator: a real HTTPS server that
// speaks the subset of Graph v1.0 entrasync uses, over a seeded, generated
// tenant that tests and developers change through the Go API (Tenant) or the
// HTTP control API under /_sim/.
//
// It exists so the real msgraph-sdk-go client and azidentity run their real
// flows end to end without Azure. It uses only the standard library and
// listens on loopback with a certificate generated at Start; clients trust
// CertificatePEM.
//
// # Authentication
//
//   - GET /{tenant}/v2.0/.well-known/openid-configuration: token_endpoint,
//     authorization_endpoint, issuer (same host as the request), ...
//   - GET /common/discovery/instance: MSAL instance discovery (normally
//     disabled with DisableInstanceDiscovery, since MSAL asks a fixed host).
//   - POST /{tenant}/oauth2/v2.0/token, grant_type=client_credentials: answers
//     {"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,
//     "access_token":"<opaque>"} for Config's tenant, client id and secret and
//     a scope ending in "/.default". Refusals use Entra's shape
//     {"error","error_description":"AADSTSnnn: ...","error_codes":[n],
//     "timestamp","trace_id","correlation_id","error_uri"}: wrong secret 401
//     invalid_client AADSTS7000215, unknown client 400 unauthorized_client
//     AADSTS700016, unknown tenant 400 AADSTS90002, bad scope 400
//     invalid_scope AADSTS1002012, other grants 400 unsupported_grant_type.
//
// Every /v1.0 route demands "Authorization: Bearer <token issued here>";
// otherwise 401 InvalidAuthenticationToken. Graph is read-only here: other
// methods than GET and HEAD answer 405.
//
// # Graph routes
//
//   - GET /v1.0/users/delta (also delta() and microsoft.graph.delta()):
//     $select (unknown property: 400), $filter=id eq '..' or ... (at most 50),
//     Prefer: odata.maxpagesize=N (at most 999), $deltatoken=latest. Pages:
//     {"@odata.context", "@odata.nextLink" | "@odata.deltaLink", "value":[...]}.
//     A user carries its selected properties and "id"; a property it does not
//     have is omitted. Selecting manager adds
//     "manager@delta":[{"@odata.type":"#microsoft.graph.user","id":"<id>"}].
//     A first round lists every existing user in id order; a round from a
//     deltaLink lists the users changed since, once each in its latest state:
//     soft-deleted {"id","@removed":{"reason":"changed"}}, hard-deleted
//     reason "deleted", restored users in full. Only changes to selected
//     properties (or creations, deletions and restores) make a user appear.
//     A manager removed since the token comes as a manager@delta entry with
//     @removed reason "deleted"; with Config.NullForClearedProperties other
//     removed properties come as null.
//     Users carry extensionAttribute1..15 as flat attributes (as the ground
//     truth names them), but, as in Graph, they are not properties: $select
//     names onPremisesExtensionAttributes, which comes as an object of all
//     fifteen fields (null for unset ones), and $select=extensionAttribute1
//     is a 400.
//   - GET /v1.0/groups/delta: $select (displayName, description, members,
//     ...; without $select everything including members), the same $filter.
//     Members are in "members@delta":[{"@odata.type":"#microsoft.graph.user"
//     or "#microsoft.graph.group","id"}], removed ones with
//     "@removed":{"reason":"deleted"}. A group with more members than
//     Config.GroupMembersPerPage ends its page and is repeated on the next
//     with the following members. Later rounds report new groups with all
//     members, deleted groups as {"id","@removed":{"reason":"deleted"}}, and
//     for other groups the members added or removed since the token. Soft
//     deleting a user removes it from its groups; restoring puts it back.
//   - GET /v1.0/users/{id or userPrincipalName}: $select, $expand=manager;
//     404 Request_ResourceNotFound. manager in $select is ignored there (it
//     is a navigation property: use $expand=manager or /manager).
//   - GET /v1.0/users/{id}/manager.
//   - GET /v1.0/users: $select, $top, paging, and a small $filter: "<prop> eq
//     '<text>'" (case-insensitive), "<prop> eq true|false", "id in (...)",
//     joined with "or".
//   - GET /v1.0/groups/{id}: $select (id, displayName, ...); 404
//     Request_ResourceNotFound for a missing or deleted group.
//   - GET /v1.0/groups/{id}/transitiveMembers, optionally cast with
//     /microsoft.graph.user or /graph.user (and .group): nested groups
//     expanded at any depth, each member once, objects with "@odata.type",
//     $select, $top, nextLink; 404 for a missing or deleted group.
//   - GET /v1.0/users/{id}/photo: {"@odata.context","@odata.mediaContentType",
//     "@odata.mediaEtag":"\"ETAG\"","id":"96X96","height","width"}; and
//     /photo/$value: the image bytes. No photo: 404 ImageNotFound. Photo
//     changes never show in delta.
//
// Errors use Graph's shape {"error":{"code","message","innerError":{"date",
// "request-id","client-request-id"}}}. An expired delta or skip token (older
// than Config.TokenLifetime by Config.Now, issued before Tenant.ExpireTokens,
// or issued by another simulator process) answers per Config.ExpiryForm: 400
// syncStateNotFound (default), 400 resyncRequired, or 410 Gone, code
// syncStateNotFound, with a Location header that restarts the same query
// with an empty $deltatoken. A malformed or tampered token answers 400
// Request_BadRequest.
//
// # Faults and throttling
//
// Tenant.SetFault (or POST /_sim/faults) makes requests of a route fail in
// one of the Kind* ways, for the next Count requests or a seeded Fraction of
// them. Config.RequestsPer10s sets a per-application budget over which
// requests get 429 with Retry-After. Note for tests: Go's HTTP transport
// retries a GET once, silently, when a reused keep-alive connection closes
// before answering, so a single dropped connection (Count 1) may not reach a
// Go caller; use Count 2 or more.
//
// # Control API
//
// GET /_sim/ lists the routes (users, groups, members, photos, token expiry,
// faults, quirks, stats, certificate). It needs no authentication and
// answers loopback clients only.
package graphsim
