package graphsim

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// graphContentType is what Graph sends with JSON answers.
const graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// kv and ordered build JSON objects whose keys keep their order, as Graph's
// do, and whose strings are not HTML-escaped ("R&D" stays "R&D").
type kv struct {
	k string
	v any
}

type ordered []kv

// MarshalJSON writes the object with its keys in order.
func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encodeTo(&b, e.k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := encodeTo(&b, e.v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func encodeTo(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

func marshal(v any) []byte {
	var b bytes.Buffer
	if err := encodeTo(&b, v); err != nil {
		// Only simulator-built values are encoded here; failing is a bug.
		panic(fmt.Sprintf("graphsim: encode answer: %v", err))
	}
	return b.Bytes()
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body := marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func newRequestID() string { return cryptoGUID() }

func cryptoGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// call is one Graph request on its way through the pipeline.
type call struct {
	route     string
	segs      []string // path segments after /v1.0/
	app       string   // the application the bearer token was issued to
	requestID string
	clientID  string // client-request-id
}

// graphError writes Graph's error shape:
// {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}.
func graphError(w http.ResponseWriter, c *call, status int, code, msg string) {
	writeJSON(w, status, "application/json", errorBody(c, code, msg))
}

func errorBody(c *call, code, msg string) ordered {
	return ordered{{"error", ordered{
		{"code", code},
		{"message", msg},
		{"innerError", ordered{
			{"date", time.Now().UTC().Format("2006-01-02T15:04:05")},
			{"request-id", c.requestID},
			{"client-request-id", c.clientID},
		}},
	}}}
}

// statusWriter remembers the status for stats and logs, and lets the drop
// fault hijack HTTP/1 connections.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("graphsim: connection cannot be hijacked")
	}
	return h.Hijack()
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Handler serves the simulator's whole HTTP surface: the token endpoint,
// Graph v1.0 and the /_sim/ control API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func isDeltaSegment(seg string) bool {
	seg = strings.TrimSuffix(seg, "()")
	return seg == "delta" || seg == "microsoft.graph.delta" || seg == "graph.delta"
}

// castOf maps an OData cast segment to "user" or "group".
func castOf(seg string) string {
	switch strings.TrimPrefix(strings.TrimPrefix(seg, "microsoft."), "graph.") {
	case "user":
		return "user"
	case "group":
		return "group"
	}
	return ""
}

// graphRoute classifies a path under /v1.0/.
func graphRoute(segs []string) string {
	n := len(segs)
	switch {
	case n == 1 && segs[0] == "$batch":
		return RouteBatch
	case n == 1 && segs[0] == "users":
		return RouteUsers
	case n == 2 && segs[0] == "users" && isDeltaSegment(segs[1]):
		return RouteUsersDelta
	case n == 2 && segs[0] == "users":
		return RouteUser
	case n == 3 && segs[0] == "users" && segs[2] == "manager":
		return RouteUserManager
	case n == 3 && segs[0] == "users" && segs[2] == "photo":
		return RouteUserPhoto
	case n == 4 && segs[0] == "users" && segs[2] == "photo" && segs[3] == "$value":
		return RouteUserPhotoValue
	case n == 2 && segs[0] == "groups" && isDeltaSegment(segs[1]):
		return RouteGroupsDelta
	case n == 2 && segs[0] == "groups":
		return RouteGroup
	case n == 3 && segs[0] == "groups" && strings.EqualFold(segs[2], "transitiveMembers"):
		return RouteTransitiveMember
	case n == 4 && segs[0] == "groups" && strings.EqualFold(segs[2], "transitiveMembers") && castOf(segs[3]) != "":
		return RouteTransitiveMember
	}
	return ""
}

func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	start := time.Now()
	route := "unknown"
	defer func() {
		status := w.status
		if status == 0 {
			status = -1 // dropped
		}
		busy := time.Since(start)
		s.tenant.count(func(st *statsData) {
			st.requests[route]++
			st.statuses[status]++
			st.busy[route] += busy
		})
		s.log.Debug("graphsim request", "method", r.Method, "route", route, "status", status, "duration", time.Since(start))
	}()

	path := r.URL.Path
	// The control API also answers under the Graph base URL, so that
	// "<graph base URL>/_sim/users", as `make run` prints it, works.
	if rest, ok := strings.CutPrefix(path, "/v1.0/_sim"); ok && (rest == "" || rest[0] == '/') {
		path = "/_sim" + rest
		r.URL.Path = path
	}
	switch {
	case path == "/_sim" || strings.HasPrefix(path, "/_sim/"):
		route = "_sim"
		s.serveControl(w, r)
		return
	case strings.HasPrefix(path, "/v1.0/"):
		segs := strings.Split(strings.Trim(strings.TrimPrefix(path, "/v1.0/"), "/"), "/")
		c := &call{segs: segs, requestID: newRequestID(), clientID: r.Header.Get("client-request-id")}
		if c.clientID == "" {
			c.clientID = c.requestID
		}
		w.Header().Set("request-id", c.requestID)
		w.Header().Set("client-request-id", c.clientID)
		c.route = graphRoute(segs)
		if c.route == "" {
			graphError(w, c, http.StatusBadRequest, "BadRequest",
				fmt.Sprintf("Resource not found for the segment '%s'.", segs[len(segs)-1]))
			return
		}
		route = c.route
		s.serveGraph(w, r, c)
		return
	case path == "/common/discovery/instance":
		route = RouteDiscovery
		if s.applyAuthFault(w, r, route) {
			return
		}
		s.handleInstanceDiscovery(w, r)
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		route = RouteDiscovery
		if s.applyAuthFault(w, r, route) {
			return
		}
		s.handleOpenIDConfiguration(w, r, segs[0])
	case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		route = RouteToken
		if s.applyAuthFault(w, r, route) {
			return
		}
		s.handleToken(w, r, segs[0])
	default:
		http.Error(w, "graphsim: no such endpoint; Graph lives under /v1.0/, the token endpoint at /{tenant}/oauth2/v2.0/token, the control API under /_sim/", http.StatusNotFound)
	}
}

// serveGraph runs a Graph request through authentication, fault injection
// and the throttling budget, then to its handler.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, c *call) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !(c.route == RouteBatch && r.Method == http.MethodPost) {
		graphError(w, c, http.StatusMethodNotAllowed, "Request_BadRequest",
			fmt.Sprintf("The simulator's Graph is read-only: %s is not supported. Change the tenant through /_sim/.", r.Method))
		return
	}
	app, refusal := s.auth.check(r.Header.Get("Authorization"))
	if refusal != "" {
		s.tenant.count(func(st *statsData) { st.unauthorized++ })
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://`+hostOf(r, s)+`/`+s.cfg.TenantID+`/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
		graphError(w, c, http.StatusUnauthorized, "InvalidAuthenticationToken", refusal)
		return
	}
	c.app = app
	if f, ok := s.tenant.faultFor(c.route); ok {
		if done := s.applyGraphFault(w, r, c, f); done {
			return
		}
	}
	if c.route == RouteBatch {
		s.handleBatch(w, r, c) // each inner request spends its own budget
		return
	}
	if wait, ok := s.tenant.spend(app); !ok {
		w.Header().Set("Retry-After", retryAfterHeader(max(wait, time.Second)))
		graphError(w, c, http.StatusTooManyRequests, "TooManyRequests",
			"Too many requests from this application. Wait for the number of seconds in Retry-After, then try again.")
		return
	}
	s.dispatch(w, r, c)
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, c *call) {
	switch c.route {
	case RouteUsersDelta:
		s.handleUsersDelta(w, r, c)
	case RouteGroupsDelta:
		s.handleGroupsDelta(w, r, c)
	case RouteUsers:
		s.handleUsersList(w, r, c)
	case RouteUser:
		s.handleUser(w, r, c)
	case RouteUserManager:
		s.handleManager(w, r, c)
	case RouteUserPhoto:
		s.handlePhoto(w, r, c, false)
	case RouteUserPhotoValue:
		s.handlePhoto(w, r, c, true)
	case RouteGroup:
		s.handleGroup(w, r, c)
	case RouteTransitiveMember:
		s.handleTransitiveMembers(w, r, c)
	}
}

// applyGraphFault carries out a fault; done reports that the request has
// been answered (every kind but slow).
func (s *Server) applyGraphFault(w http.ResponseWriter, r *http.Request, c *call, f Fault) (done bool) {
	switch f.Kind {
	case KindSlow:
		return !waitSlow(r, f)
	case KindDrop:
		dropConnection(w, r)
		return true
	case KindThrottle:
		setRetryAfter(w, f)
		graphError(w, c, http.StatusTooManyRequests, "TooManyRequests",
			"Too many requests. The application has been throttled; retry after the time in Retry-After.")
		return true
	case KindStatus, KindStatusEmpty:
		setRetryAfter(w, f)
		if f.Kind == KindStatusEmpty {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(f.Status)
			return true
		}
		code, msg := statusError(f.Status)
		graphError(w, c, f.Status, code, msg)
		return true
	case KindMalformed:
		rec := &bufferWriter{header: http.Header{}}
		s.dispatch(rec, r, c)
		body := rec.buf.Bytes()
		if len(body) < 2 {
			body = []byte(`{"@odata.context":"`)
		} else {
			body = body[:len(body)/2]
		}
		w.Header().Set("Content-Type", graphContentType)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return true
	case KindExpired400, KindExpiredResync, KindExpired410:
		s.writeExpired(w, r, c, f.Kind, f.Status)
		return true
	}
	return false
}

// applyAuthFault applies a fault to the token and discovery endpoints, in
// the OAuth error shape.
func (s *Server) applyAuthFault(w http.ResponseWriter, r *http.Request, route string) bool {
	f, ok := s.tenant.faultFor(route)
	if !ok {
		return false
	}
	switch f.Kind {
	case KindSlow:
		return !waitSlow(r, f)
	case KindDrop:
		dropConnection(w, r)
	case KindThrottle:
		setRetryAfter(w, f)
		s.oauthError(w, r, http.StatusTooManyRequests, "temporarily_unavailable", 50196,
			"The server terminated an operation because it encountered a client request loop. Wait, then try again.")
	case KindStatusEmpty:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(f.Status)
	case KindMalformed:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"token_type":"Bearer","expires_in":35`))
	default: // status and the token-expiry kinds, which mean nothing here
		status := f.Status
		if status < 500 {
			status = http.StatusServiceUnavailable
		}
		s.oauthError(w, r, status, "temporarily_unavailable", 90033,
			"A transient error has occurred. Please try again.")
	}
	return true
}

// waitSlow waits out a slow fault's delay; false means the client went away
// first and there is nobody left to answer.
func waitSlow(r *http.Request, f Fault) bool {
	select {
	case <-time.After(f.Delay):
		return true
	case <-r.Context().Done():
		return false
	}
}

// setRetryAfter sends the fault's Retry-After, if it has one.
func setRetryAfter(w http.ResponseWriter, f Fault) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterHeader(f.RetryAfter))
	}
}

func statusError(status int) (code, msg string) {
	switch status {
	case 500:
		return "InternalServerError", "An internal server error occurred while processing the request."
	case 502:
		return "BadGateway", "The gateway received an invalid response from the upstream service."
	case 503:
		return "ServiceNotAvailable", "The service is temporarily unavailable. Retry the request after a delay."
	case 504:
		return "GatewayTimeout", "The upstream service did not answer in time."
	}
	return "UnknownError", http.StatusText(status)
}

// dropConnection closes the connection without an answer: a hijacked and
// closed socket on HTTP/1, a reset stream on HTTP/2.
func dropConnection(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		if h, ok := w.(http.Hijacker); ok {
			if conn, _, err := h.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = conn.Close()
				return
			}
		}
	}
	panic(http.ErrAbortHandler)
}

// bufferWriter captures an answer (for the malformed fault).
type bufferWriter struct {
	header http.Header
	buf    bytes.Buffer
	status int
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(code int)        { b.status = code }

// writeExpired answers a request whose token is no longer valid, in the
// given form.
func (s *Server) writeExpired(w http.ResponseWriter, r *http.Request, c *call, form string, status int) {
	switch form {
	case KindExpiredResync:
		if status == 0 {
			status = http.StatusBadRequest
		}
		graphError(w, c, status, "resyncRequired",
			"Resync is required. The delta token is no longer valid, and the app must reset the sync state.")
	case KindExpired410:
		w.Header().Set("Location", s.freshRoundURL(r, c))
		graphError(w, c, http.StatusGone, "syncStateNotFound",
			"The sync state is gone. Restart with a full synchronization from the URL in the Location header.")
	default:
		graphError(w, c, http.StatusBadRequest, "syncStateNotFound",
			"The sync state generation is not found. The delta token is expired and data must be synchronized again.")
	}
}

// freshRoundURL is where a 410 sends the client: the same delta function
// with an empty $deltatoken (the initial query, per the Graph docs), keeping
// the $select and $filter of the request's token when it has one.
func (s *Server) freshRoundURL(r *http.Request, c *call) string {
	base := "https://" + hostOf(r, s) + "/v1.0/" + strings.Join(c.segs, "/")
	if c.route != RouteUsersDelta && c.route != RouteGroupsDelta {
		return base
	}
	q := r.URL.Query()
	tok := firstNonEmpty(q.Get("$deltatoken"), q.Get("$skiptoken"), q.Get("deltatoken"), q.Get("skiptoken"))
	parts := []string{"$deltatoken="}
	sel, filter := q.Get("$select"), q.Get("$filter")
	if st, _, err := s.tokens.decode(tok); err == nil {
		if !st.NoSelect {
			sel = strings.Join(st.Select, ",")
		}
		if len(st.Filter) > 0 {
			filter = idFilterExpr(st.Filter)
		}
	}
	if sel != "" {
		parts = append(parts, "$select="+escapeQuery(sel))
	}
	if filter != "" {
		parts = append(parts, "$filter="+escapeQuery(filter))
	}
	return base + "?" + strings.Join(parts, "&")
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// escapeQuery escapes a query value, keeping the characters OData links
// usually show literally.
func escapeQuery(v string) string {
	e := url.QueryEscape(v)
	return strings.NewReplacer("%2C", ",", "%27", "'", "%28", "(", "%29", ")").Replace(e)
}

func idFilterExpr(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "id eq '" + id + "'"
	}
	return strings.Join(parts, " or ")
}

// queryParam reads an OData system query option with or without its "$".
func queryParam(q url.Values, name string) (string, bool) {
	if v, ok := q["$"+name]; ok {
		return v[0], true
	}
	if v, ok := q[name]; ok {
		return v[0], true
	}
	return "", false
}

// preferredPageSize reads `Prefer: odata.maxpagesize=N` (0 when absent),
// capped at MaxPageSize.
func preferredPageSize(r *http.Request) int {
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "odata.maxpagesize") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(v), `"`))
			if err == nil && n > 0 {
				return min(n, MaxPageSize)
			}
		}
	}
	return 0
}

// linkBase is the scheme, host and path of the request: links point back at
// the same function with a new token.
func (s *Server) linkBase(r *http.Request) string {
	return "https://" + hostOf(r, s) + r.URL.EscapedPath()
}

func (s *Server) contextURL(r *http.Request, fragment string) string {
	return "https://" + hostOf(r, s) + "/v1.0/$metadata#" + fragment
}

func (s *Server) pageLatency(r *http.Request) {
	if d := s.cfg.PageLatency; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
}
