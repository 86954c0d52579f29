package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Service is what the API needs of the sync engine; *dirsync.Engine
// implements it. Every error is a *dirsync.Error (or wraps one) whose Code
// picks the HTTP status.
type Service interface {
	Status(ctx context.Context) (dirsync.Status, error)
	StartRun(ctx context.Context, req dirsync.StartRequest) (dirsync.Run, error)
	Reset(ctx context.Context, who string) (dirsync.ResetResult, error)
	ActiveRun(ctx context.Context) (*dirsync.Run, error)
	GetRun(ctx context.Context, id string) (dirsync.Run, error)
	ListRuns(ctx context.Context, status dirsync.RunStatus, limit int, token string) ([]dirsync.Run, string, error)
	CancelRun(ctx context.Context, runID, who string) (dirsync.Run, error)
	ApproveDeletions(ctx context.Context, runID, who string) (dirsync.Run, error)
	RejectDeletions(ctx context.Context, runID, who string) (dirsync.Run, error)
	PendingDeletions(ctx context.Context, runID string, limit int, token string) ([]dirsync.PendingDeletion, string, error)
	OpenRunLog(ctx context.Context, runID string) (io.ReadCloser, dirsync.Run, error)
	RunLogURL(ctx context.Context, runID string, ttl time.Duration) (string, error)
	Settings(ctx context.Context) (dirsync.Settings, string, error)
	PutSettings(ctx context.Context, s dirsync.Settings, ifMatch, who string) (string, error)
	ListAudit(ctx context.Context, limit int, token string) ([]dirsync.AuditEntry, string, error)
	ListUsers(ctx context.Context, q dirsync.UserQuery) ([]dirsync.User, string, error)
	GetUser(ctx context.Context, id string) (dirsync.User, error)
	UserGroups(ctx context.Context, userID string) ([]string, error)
	Users(ctx context.Context, ids []string) (map[string]dirsync.User, error)
	ListGroups(ctx context.Context) ([]dirsync.Group, error)
	GetGroup(ctx context.Context, id string) (dirsync.Group, error)
	CreateGroup(ctx context.Context, g dirsync.Group, who string) (dirsync.Group, error)
	UpdateGroup(ctx context.Context, g dirsync.Group, ifMatch, who string) (dirsync.Group, error)
	DeleteGroup(ctx context.Context, id, ifMatch, who string) error
	GroupMembersPage(ctx context.Context, groupID, cursor string, top int) ([]string, string, error)
	PreviewRule(ctx context.Context, rule string, limits dirsync.PreviewLimits) (dirsync.RulePreview, error)
	ProvisionUser(ctx context.Context, key, who string) (dirsync.OnDemandResult, error)
	OpenUserPhoto(ctx context.Context, userID string) (rc io.ReadCloser, contentType string, size int64, err error)
}

var _ Service = (*dirsync.Engine)(nil)

// Config configures the API.
type Config struct {
	// Service is the sync engine (required).
	Service Service
	// Logger receives one line per request and the details of internal
	// errors. Default: discard.
	Logger *slog.Logger
	// Version is shown by GET /api/health and in the OpenAPI document.
	Version string
	// Health checks what the handler depends on (storage, Graph
	// configuration): a nil error means reachable. GET /api/health answers
	// 200 when every check passes and 503 otherwise. Optional.
	Health func(ctx context.Context) map[string]error
	// AdminKeyHashes and SupportKeyHashes are the lower-case hex SHA-256
	// digests of the API keys that grant each role (sent like function
	// keys, in x-functions-key or ?code=; the Api function is anonymous to
	// the host, so these are the only keys that count).
	AdminKeyHashes   []string
	SupportKeyHashes []string
	// TrustEasyAuth says App Service Authentication is on
	// (WEBSITE_AUTH_ENABLED), so the platform sets x-ms-client-principal and
	// strips any a client sent. Only then is the header believed.
	TrustEasyAuth bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Groups looks up Entra groups: a settings PUT refuses groupScope ids
	// that name no group. Optional: without it the ids are saved unchecked.
	Groups GroupLookup
	// PreviewLimits bound the directory scan of POST
	// /api/groups/validate-rule (zero fields: the engine's defaults).
	PreviewLimits dirsync.PreviewLimits
}

// DefaultMaxBodyBytes is the request body limit unless configured.
const DefaultMaxBodyBytes = 1 << 20

// Handler is the API as an http.Handler.
type Handler struct {
	svc     Service
	log     *slog.Logger
	version string
	health  func(ctx context.Context) map[string]error
	auth    authenticator
	now     func() time.Time
	maxBody int64
	routes  []*route
	openapi []byte
	groups  GroupLookup
	// previewLimits bound validate-rule's scan.
	previewLimits dirsync.PreviewLimits
}

// New checks cfg and returns the API handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Service == nil {
		return nil, errors.New("api: Config.Service is required (the sync engine)")
	}
	h := &Handler{svc: cfg.Service, log: cfg.Logger, version: cfg.Version, health: cfg.Health,
		now: cfg.Now, maxBody: cfg.MaxBodyBytes, groups: cfg.Groups, previewLimits: cfg.PreviewLimits}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.version == "" {
		h.version = "dev"
	}
	seen := map[string]string{}
	for _, list := range []struct {
		name   string
		hashes []string
		into   *[][]byte
	}{{"AdminKeyHashes", cfg.AdminKeyHashes, &h.auth.admin}, {"SupportKeyHashes", cfg.SupportKeyHashes, &h.auth.support}} {
		for i, s := range list.hashes {
			s = strings.ToLower(strings.TrimSpace(s))
			if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
				return nil, fmt.Errorf("api: Config.%s[%d] is not a SHA-256 digest as 64 hex digits", list.name, i)
			}
			if other := seen[s]; other != "" && other != list.name {
				return nil, fmt.Errorf("api: Config.%s[%d] is also in %s: a key grants one role", list.name, i, other)
			}
			seen[s] = list.name
			*list.into = append(*list.into, []byte(s))
		}
	}
	h.auth.trustEasyAuth = cfg.TrustEasyAuth
	if len(h.auth.admin) == 0 && !cfg.TrustEasyAuth {
		h.log.Warn("no admin key is configured and App Service Authentication is off: nobody can change settings or start a sync over the API",
			"fix", "set ADMIN_KEY_SHA256 to the SHA-256 of an admin API key")
	}
	h.routes = h.routeTable()
	doc, err := h.openAPIDocument()
	if err != nil {
		return nil, err
	}
	h.openapi = doc
	return h, nil
}

// route is one entry of the route table.
type route struct {
	method  string
	pattern string // "/api/runs/{id}/log": {name} matches one path segment
	role    access
	serve   func(c *call) (*response, error)
	parts   []string
}

// Route is a route as listed by Routes.
type Route struct {
	Method, Pattern string
	// Role is "anonymous", "support" or "admin".
	Role string
}

// Routes lists every route: the OpenAPI document is checked against it.
func (h *Handler) Routes() []Route {
	out := make([]Route, 0, len(h.routes))
	for _, rt := range h.routes {
		out = append(out, Route{Method: rt.method, Pattern: rt.pattern, Role: rt.role.String()})
	}
	return out
}

// routeTable is every route of the API with the role it needs.
func (h *Handler) routeTable() []*route {
	rs := []*route{
		{method: "GET", pattern: "/api/health", role: roleAnonymous, serve: h.getHealth},
		{method: "GET", pattern: "/api/openapi.json", role: roleSupport, serve: h.getOpenAPI},
		{method: "GET", pattern: "/api/me", role: roleSupport, serve: h.getMe},
		{method: "GET", pattern: "/api/status", role: roleSupport, serve: h.getStatus},
		{method: "POST", pattern: "/api/sync", role: roleAdmin, serve: h.postSync},
		{method: "POST", pattern: "/api/reset", role: roleAdmin, serve: h.postReset},
		{method: "GET", pattern: "/api/runs", role: roleSupport, serve: h.listRuns},
		{method: "GET", pattern: "/api/runs/{id}", role: roleSupport, serve: h.getRun},
		{method: "POST", pattern: "/api/runs/{id}/cancel", role: roleAdmin, serve: h.cancelRun},
		{method: "GET", pattern: "/api/runs/{id}/log", role: roleSupport, serve: h.getRunLog},
		{method: "GET", pattern: "/api/runs/{id}/log/link", role: roleSupport, serve: h.getRunLogLink},
		{method: "GET", pattern: "/api/runs/{id}/deletions", role: roleSupport, serve: h.listDeletions},
		{method: "POST", pattern: "/api/runs/{id}/deletions/approve", role: roleAdmin, serve: h.approveDeletions},
		{method: "POST", pattern: "/api/runs/{id}/deletions/reject", role: roleAdmin, serve: h.rejectDeletions},
		{method: "GET", pattern: "/api/settings", role: roleSupport, serve: h.getSettings},
		{method: "PUT", pattern: "/api/settings", role: roleAdmin, serve: h.putSettings},
		{method: "POST", pattern: "/api/settings/preview", role: roleAdmin, serve: h.previewSettings},
		{method: "GET", pattern: "/api/audit", role: roleSupport, serve: h.listAudit},
		{method: "GET", pattern: "/api/users", role: roleSupport, serve: h.listUsers},
		{method: "GET", pattern: "/api/users/{id}", role: roleSupport, serve: h.getUser},
		{method: "POST", pattern: "/api/users/{id}/sync", role: roleAdmin, serve: h.provisionUser},
		{method: "GET", pattern: "/api/groups", role: roleSupport, serve: h.listGroups},
		{method: "POST", pattern: "/api/groups", role: roleAdmin, serve: h.createGroup},
		{method: "POST", pattern: "/api/groups/validate-rule", role: roleSupport, serve: h.validateRule},
		{method: "GET", pattern: "/api/groups/{id}", role: roleSupport, serve: h.getGroup},
		{method: "PUT", pattern: "/api/groups/{id}", role: roleAdmin, serve: h.putGroup},
		{method: "DELETE", pattern: "/api/groups/{id}", role: roleAdmin, serve: h.deleteGroup},
		{method: "GET", pattern: "/api/groups/{id}/members", role: roleSupport, serve: h.listMembers},
		{method: "GET", pattern: "/api/users/{id}/photo", role: roleSupport, serve: h.getUserPhoto},
	}
	for _, rt := range rs {
		rt.parts = strings.Split(strings.TrimPrefix(rt.pattern, "/"), "/")
	}
	return rs
}

// match finds the route for r: the route, the path parameters, and for a
// path that exists with other methods, those methods.
func (h *Handler) match(method, path string) (*route, map[string]string, []string) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var allowed []string
	for _, rt := range h.routes {
		params, ok := matchParts(rt.parts, parts)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, params, nil
		}
		allowed = append(allowed, rt.method)
	}
	sort.Strings(allowed)
	return nil, nil, allowed
}

func matchParts(pattern, parts []string) (map[string]string, bool) {
	if len(pattern) != len(parts) {
		return nil, false
	}
	var params map[string]string
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") {
			if parts[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = parts[i]
			continue
		}
		if p != parts[i] {
			return nil, false
		}
	}
	return params, true
}

// call is one request as a handler sees it.
type call struct {
	r         *http.Request
	w         http.ResponseWriter // only for http.MaxBytesReader
	ctx       context.Context
	params    map[string]string
	caller    caller
	requestID string
	h         *Handler
}

func (c *call) query(name string) string { return c.r.URL.Query().Get(name) }

// response is what a handler returns: JSON (body) or a stream.
type response struct {
	status int
	header http.Header
	body   any
	// stream writes the body; it runs after the status line is sent, so
	// it must have checked everything that can fail early.
	stream func(w io.Writer) error
}

func jsonResponse(status int, body any) *response {
	return &response{status: status, header: http.Header{}, body: body}
}

// statusWriter remembers whether the response started.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	id := newRequestID()
	w.Header().Set("X-Request-Id", id)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Answers are data, never a page: nothing in them may run or be framed.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	c := &call{r: r, w: w, ctx: r.Context(), requestID: id, h: h}
	pattern := ""
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				h.logRequest(r, w, c, pattern, start, "aborted mid-response")
				panic(v)
			}
			h.log.ErrorContext(r.Context(), "panic serving request", "requestId", id, "panic", fmt.Sprint(v))
			if w.status == 0 {
				h.writeError(w, c, errors.New("panic"))
			}
		}
		h.logRequest(r, w, c, pattern, start, "")
	}()

	rt, params, allowed := h.match(r.Method, r.URL.Path)
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			h.writeError(w, c, &dirsync.Error{Code: codeMethodNotAllowed,
				Message: fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")),
				Hint:    "See GET /api/openapi.json for every route and its methods."})
			return
		}
		h.writeError(w, c, &dirsync.Error{Code: dirsync.ENOTFOUND,
			Message: fmt.Sprintf("there is no route %s", r.URL.Path),
			Hint:    "See GET /api/openapi.json for every route (runs, users, groups, settings, status, sync, audit, health)."})
		return
	}
	pattern, c.params = rt.pattern, params
	caller, err := h.auth.identify(r)
	if err == nil {
		err = authorize(caller, rt.role, h.auth.trustEasyAuth)
	}
	if err == nil {
		err = checkSameSite(r)
	}
	c.caller = caller
	if err != nil {
		h.writeError(w, c, err)
		return
	}
	res, err := rt.serve(c)
	if err != nil {
		h.writeError(w, c, err)
		return
	}
	h.writeResponse(w, c, res)
}

func (h *Handler) writeResponse(w *statusWriter, c *call, res *response) {
	for k, v := range res.header {
		w.Header()[k] = v
	}
	if res.stream != nil {
		w.WriteHeader(res.status)
		if err := res.stream(w); err != nil {
			if c.ctx.Err() != nil {
				return // the client went away
			}
			// The status line is out: the only honest signal left is to
			// break the connection, so the client sees a truncated
			// transfer instead of a complete-looking file.
			h.log.ErrorContext(c.ctx, "response stream failed", "requestId", c.requestID, "err", err.Error())
			panic(http.ErrAbortHandler)
		}
		return
	}
	body, err := json.Marshal(res.body)
	if err != nil {
		h.writeError(w, c, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(res.status)
	w.Write(append(body, '\n'))
}

func (h *Handler) writeError(w *statusWriter, c *call, err error) {
	status, body, header, internal := errorResponse(err, c.requestID)
	if internal {
		h.log.ErrorContext(c.ctx, "internal error", "requestId", c.requestID, "path", c.r.URL.Path, "err", err.Error())
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	// Headers meant for a success (ETag, Location, Content-Disposition)
	// must not leak onto an error.
	w.Header().Del("Content-Disposition")
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (h *Handler) logRequest(r *http.Request, w *statusWriter, c *call, pattern string, start time.Time, note string) {
	// The path, never the query string: "code" may hold an API key.
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", w.status, "bytes", w.written,
		"ms", time.Since(start).Milliseconds(), "requestId", c.requestID}
	if pattern != "" {
		attrs = append(attrs, "route", pattern)
	}
	if c.caller.Name != "" {
		attrs = append(attrs, "caller", c.caller.Name)
	}
	if note != "" {
		attrs = append(attrs, "note", note)
	}
	level := slog.LevelInfo
	if pattern == "/api/health" && w.status == http.StatusOK {
		level = slog.LevelDebug // probes every few seconds: only noise at Info
	}
	if w.status >= 500 || note != "" {
		level = slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "api request", attrs...)
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
