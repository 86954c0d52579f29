package funcproto

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Invocation is one call of a function by the host.
type Invocation struct {
	// FunctionName is the function's name as registered ("" for a proxied
	// HTTP request, which does not name its function).
	FunctionName string
	// InvocationID is the host's id of this invocation (the
	// X-Azure-Functions-InvocationId header); it ties handler logs to the
	// host's.
	InvocationID string
	// Sys is Metadata.sys (zero for proxied requests).
	Sys Sys
	// Metadata is the payload's raw Metadata, for binding data the typed
	// values do not carry (nil for proxied requests).
	Metadata map[string]json.RawMessage
	// Logger is scoped with the function name and invocation id. Records at
	// Info or above also go back to the host in the response's "Logs".
	Logger *slog.Logger

	logs *logCollector
}

type invocationKey struct{}

// NewContext returns ctx carrying inv.
func NewContext(ctx context.Context, inv *Invocation) context.Context {
	return context.WithValue(ctx, invocationKey{}, inv)
}

// FromContext returns the invocation ctx carries, or nil. HTTP handlers
// served through a Router find theirs here.
func FromContext(ctx context.Context) *Invocation {
	inv, _ := ctx.Value(invocationKey{}).(*Invocation)
	return inv
}

// TimerFunc handles a timer trigger.
type TimerFunc func(ctx context.Context, inv *Invocation, t TimerInfo) error

// QueueFunc handles one Service Bus message. A non-nil error fails the
// invocation: the host abandons the message and Service Bus redelivers it
// until its max delivery count, then dead-letters it.
type QueueFunc func(ctx context.Context, inv *Invocation, m ServiceBusMessage) error

// QueueOption configures a Queue registration.
type QueueOption func(*queueConfig)

type queueConfig struct{ binary bool }

// BinaryBody says the binding has "dataType": "binary" in function.json, so
// the host sends the body as base64.
func BinaryBody() QueueOption { return func(c *queueConfig) { c.binary = true } }

// ProxyPrefix is where proxied HTTP requests arrive: the host's default route
// prefix "api".
const ProxyPrefix = "/api/"

// maxPayload bounds an invocation body: Functions caps HTTP requests at
// 100 MB, and no trigger payload is larger.
const maxPayload = 110 << 20

// Router is the handler's http.Handler: it dispatches the host's POST
// /{FunctionName} invocations to the registered functions and proxied
// requests (paths under /api/) to the Proxy handler. Register functions
// before serving; registration is not meant to race with serving.
type Router struct {
	log   *slog.Logger
	mu    sync.RWMutex
	funcs map[string]*function // by lower-case name: function names are case-insensitive
	proxy http.Handler
}

type function struct {
	name  string
	serve func(ctx context.Context, inv *Invocation, p *Payload) (outputs map[string]any, err error)
}

// NewRouter returns an empty Router logging to log (nil discards).
func NewRouter(log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{log: log, funcs: map[string]*function{}}
}

func (rt *Router) register(name string, f *function) {
	if name == "" || strings.ContainsAny(name, "/ ") {
		panic(fmt.Sprintf("funcproto: invalid function name %q", name))
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	key := strings.ToLower(name)
	if _, dup := rt.funcs[key]; dup {
		panic(fmt.Sprintf("funcproto: function %q registered twice", name))
	}
	rt.funcs[key] = f
}

// Timer registers a timer-triggered function; binding is the trigger's name
// in function.json (e.g. "timer").
func (rt *Router) Timer(name, binding string, fn TimerFunc) {
	rt.register(name, &function{name: name, serve: func(ctx context.Context, inv *Invocation, p *Payload) (map[string]any, error) {
		t, err := p.Timer(binding)
		if err != nil {
			return nil, err
		}
		return nil, fn(ctx, inv, t)
	}})
}

// Queue registers a Service Bus triggered function; binding is the
// trigger's name in function.json (e.g. "message").
func (rt *Router) Queue(name, binding string, fn QueueFunc, opts ...QueueOption) {
	var cfg queueConfig
	for _, o := range opts {
		o(&cfg)
	}
	rt.register(name, &function{name: name, serve: func(ctx context.Context, inv *Invocation, p *Payload) (map[string]any, error) {
		m, err := p.ServiceBusMessage(binding, cfg.binary)
		if err != nil {
			return nil, err
		}
		return nil, fn(ctx, inv, m)
	}})
}

// HTTP registers an HTTP-triggered function served in payload mode (host.json
// without enableProxyingHttpRequest, or a function with other bindings): the
// request in Data.req becomes an *http.Request for h, and h's response goes
// back in Outputs.res. The trigger must be the function's only input and its
// output binding must be named "res".
func (rt *Router) HTTP(name string, h http.Handler) {
	rt.register(name, &function{name: name, serve: func(ctx context.Context, inv *Invocation, p *Payload) (map[string]any, error) {
		binding := ""
		if _, ok := p.Data["req"]; ok {
			binding = "req"
		}
		hr, err := p.HTTPRequest(binding)
		if err != nil {
			return nil, err
		}
		req, err := hr.NewRequest(ctx)
		if err != nil {
			return nil, err
		}
		rec := newResponseRecorder()
		h.ServeHTTP(rec, req)
		return map[string]any{"res": rec.result()}, nil
	}})
}

// Proxy sets the handler for proxied HTTP requests (enableProxyingHttpRequest):
// every request whose path is under /api/. Its request context carries an
// *Invocation (FromContext) with the invocation id and a scoped logger.
func (rt *Router) Proxy(h http.Handler) {
	rt.mu.Lock()
	rt.proxy = h
	rt.mu.Unlock()
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	rt.mu.RLock()
	proxy := rt.proxy
	rt.mu.RUnlock()
	switch {
	case path == "/api" || strings.HasPrefix(path, ProxyPrefix):
		if proxy == nil {
			writeJSON(w, http.StatusNotFound, errorBody(fmt.Sprintf("no proxy handler for %s: this handler serves no proxied HTTP functions", path)))
			return
		}
		rt.serveProxied(w, r, proxy)
	case path == "/":
		// The host polls / until the handler answers, to know it is ready.
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	default:
		name := strings.TrimPrefix(path, "/")
		rt.mu.RLock()
		fn := rt.funcs[strings.ToLower(name)]
		rt.mu.RUnlock()
		if fn == nil || strings.Contains(name, "/") {
			writeJSON(w, http.StatusNotFound, errorBody(fmt.Sprintf("unknown function %q: this handler serves %s", name, rt.names())))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody(fmt.Sprintf("function %s is invoked with POST, not %s", fn.name, r.Method)))
			return
		}
		rt.serveInvocation(w, r, fn)
	}
}

func (rt *Router) names() string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	var out []string
	for _, f := range rt.funcs {
		out = append(out, f.name)
	}
	if len(out) == 0 {
		return "no functions"
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func (rt *Router) newInvocation(r *http.Request, name string) *Invocation {
	id := r.Header.Get(InvocationIDHeader)
	if id == "" {
		// The host always sends one; a direct call (curl, a test) may not.
		id = "local-" + randomHex(8)
	}
	col := &logCollector{}
	base := rt.log.Handler()
	attrs := []slog.Attr{slog.String("invocation_id", id)}
	if name != "" {
		attrs = append([]slog.Attr{slog.String("function", name)}, attrs...)
	}
	return &Invocation{
		FunctionName: name,
		InvocationID: id,
		Logger:       slog.New(teeHandler{base: base.WithAttrs(attrs), col: newCollectingHandler(col)}),
		logs:         col,
	}
}

func (rt *Router) serveInvocation(w http.ResponseWriter, r *http.Request, fn *function) {
	inv := rt.newInvocation(r, fn.name)
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			inv.Logger.Error("function panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp := Response{Outputs: map[string]any{}, Logs: append(inv.logs.snapshot(),
				fmt.Sprintf("function %s panicked (invocation %s); the handler's log has the details", fn.name, inv.InvocationID))}
			writeJSON(w, http.StatusInternalServerError, resp)
		}
	}()

	p, err := DecodePayload(http.MaxBytesReader(w, r.Body, maxPayload))
	if err == nil {
		inv.Metadata = p.Metadata
		inv.Sys, err = p.Sys()
	}
	if err != nil {
		rt.badPayload(w, inv, err)
		return
	}
	ctx := NewContext(r.Context(), inv)
	outputs, err := fn.serve(ctx, inv, p)
	if pe := (*PayloadError)(nil); errors.As(err, &pe) {
		rt.badPayload(w, inv, err)
		return
	}
	if err != nil {
		inv.Logger.Error("function failed", "err", err, "duration", time.Since(start).Round(time.Millisecond))
		resp := Response{Outputs: map[string]any{}, Logs: inv.logs.snapshot()}
		writeJSON(w, http.StatusInternalServerError, resp)
		return
	}
	if outputs == nil {
		outputs = map[string]any{}
	}
	writeJSON(w, http.StatusOK, Response{Outputs: outputs, Logs: inv.logs.snapshot()})
}

func (rt *Router) badPayload(w http.ResponseWriter, inv *Invocation, err error) {
	inv.Logger.Error("bad invocation payload", "err", err)
	body := errorBody(fmt.Sprintf("function %s: %v", inv.FunctionName, err))
	body["Logs"] = inv.logs.snapshot()
	writeJSON(w, http.StatusBadRequest, body)
}

func (rt *Router) serveProxied(w http.ResponseWriter, r *http.Request, h http.Handler) {
	inv := rt.newInvocation(r, "")
	inv.Logger = inv.Logger.With("method", r.Method, "path", r.URL.Path)
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			inv.Logger.Error("HTTP handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !sw.wrote {
				writeJSON(w, http.StatusInternalServerError, errorBody("internal error (invocation "+inv.InvocationID+")"))
			}
		}
	}()
	h.ServeHTTP(sw, r.WithContext(NewContext(r.Context(), inv)))
}

// statusWriter remembers whether a response was started, so a recovered
// panic does not write a second header. It keeps Flush working for
// streaming responses.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) { s.wrote = true; s.ResponseWriter.WriteHeader(code) }
func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		s.wrote = true
		f.Flush()
	}
}
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func errorBody(msg string) map[string]any { return map[string]any{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
