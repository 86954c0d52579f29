package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/api"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
	"github.com/entrasync/entrasync/internal/testenv"
)

// The keys are long and distinctive so a test can search every response and
// log line for them.
const (
	adminKey   = "ADMINKEY-7f3c9d1e5b2a4c6e8f0a1b3c5d7e9f1a"
	supportKey = "SUPPORTKEY-2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e1b"
	version    = "1.2.3-test"
)

func keyHash(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

// env is the real engine on the in-memory doubles, behind the real API on a
// real HTTP server.
type env struct {
	*dirsynctest.Env
	t *testing.T
	// logs wraps Env.Logs and is the engine's LogStore.
	logs *hookLogs
	api  *api.Handler
	srv  *httptest.Server
	// logOut holds everything the API logged.
	logOut *testenv.SyncBuffer
}

type envOptions struct {
	trustEasyAuth bool
	// service wraps the engine (stubs for failure cases).
	service func(api.Service) api.Service
	health  func(context.Context) map[string]error
	// groups looks up Entra groups for settings PUT (api.Config.Groups).
	groups api.GroupLookup
}

func newEnv(t *testing.T, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	e := &env{Env: dirsynctest.NewEngine(t), t: t, logOut: &testenv.SyncBuffer{}}
	e.logs = &hookLogs{Logs: e.Logs}
	e.Engine.Logs = e.logs
	e.Source.PageSize = 50
	var svc api.Service = e.Engine
	if o.service != nil {
		svc = o.service(svc)
	}
	health := o.health
	if health == nil {
		health = func(ctx context.Context) map[string]error {
			return map[string]error{"table": e.Store.Ping(ctx), "blob": e.logs.Ping(ctx)}
		}
	}
	h, err := api.New(api.Config{
		Service: svc, Logger: slog.New(slog.NewJSONHandler(e.logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: version, Health: health,
		AdminKeyHashes: []string{keyHash(adminKey)}, SupportKeyHashes: []string{strings.ToUpper(keyHash(supportKey))},
		TrustEasyAuth: o.trustEasyAuth, Now: e.Clock.Now, Groups: o.groups,
	})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.api = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func uid(n int) string { return dirsynctest.UserID(n) }

func person(n int) map[string]string { return dirsynctest.Person(n) }

// drain runs every queued work item: the runs started over HTTP complete.
func (e *env) drain() { e.Drain(dirsynctest.DrainOptions{}) }

// syncNow starts a sync over HTTP and drains it, returning the finished run.
func (e *env) syncNow() dirsync.Run {
	e.t.Helper()
	res := e.call("POST", "/api/sync", adminKey, "")
	res.want(http.StatusAccepted)
	var got struct{ Run dirsync.Run }
	res.decode(&got)
	return e.Finish(got.Run.ID, dirsynctest.DrainOptions{})
}

// setThreshold changes the deletion threshold directly on the engine.
func (e *env) setThreshold(th dirsync.DeletionThreshold) {
	e.t.Helper()
	ctx := context.Background()
	s, etag, _ := e.Engine.Settings(ctx)
	s.DeletionThreshold = th
	if _, err := e.Engine.PutSettings(ctx, s, etag, "test"); err != nil {
		e.t.Fatal(err)
	}
}

// result is an HTTP response with its body read.
type result struct {
	t      *testing.T
	req    string
	status int
	header http.Header
	body   []byte
}

func (r result) want(status int) result {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("%s: status %d, want %d; body: %s", r.req, r.status, status, r.body)
	}
	return r
}

func (r result) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		r.t.Fatalf("%s: body is not the expected JSON: %v\n%s", r.req, err, r.body)
	}
}

// apiError returns the error object of an error response, failing the test
// when the body is not in the error format.
func (r result) apiError() (code, message, hint string) {
	r.t.Helper()
	var b struct {
		Error struct{ Code, Message, Hint string }
	}
	r.decode(&b)
	if b.Error.Code == "" || b.Error.Message == "" {
		r.t.Fatalf("%s: error body lacks code or message: %s", r.req, r.body)
	}
	return b.Error.Code, b.Error.Message, b.Error.Hint
}

// call makes a request with key in x-functions-key ("" for none); extra
// holds header pairs.
func (e *env) call(method, path, key, body string, extra ...string) result {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("x-functions-key", key)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return result{t: e.t, req: method + " " + path, status: resp.StatusCode, header: resp.Header, body: b}
}

// principal builds an x-ms-client-principal header value.
func principal(name string, roles ...string) string {
	type claim struct {
		Typ string `json:"typ"`
		Val string `json:"val"`
	}
	p := struct {
		AuthTyp string  `json:"auth_typ"`
		Claims  []claim `json:"claims"`
		NameTyp string  `json:"name_typ"`
		RoleTyp string  `json:"role_typ"`
	}{AuthTyp: "aad", NameTyp: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", RoleTyp: "roles"}
	p.Claims = append(p.Claims, claim{"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", name},
		claim{"http://schemas.microsoft.com/identity/claims/objectidentifier", uid(999)})
	for _, r := range roles {
		p.Claims = append(p.Claims, claim{"roles", r})
	}
	b, _ := json.Marshal(p)
	return base64.StdEncoding.EncodeToString(b)
}

// hookLogs is the in-memory LogStore, with logs that can be replaced by a
// generated stream (for logs too big to keep in memory).
type hookLogs struct {
	*dirsynctest.Logs
	mu        sync.Mutex
	generated map[string]func() io.ReadCloser
	urls      int
}

func (l *hookLogs) generate(name string, open func() io.ReadCloser) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.generated == nil {
		l.generated = map[string]func() io.ReadCloser{}
	}
	l.generated[name] = open
}

func (l *hookLogs) OpenLog(ctx context.Context, name string) (io.ReadCloser, error) {
	l.mu.Lock()
	open := l.generated[name]
	l.mu.Unlock()
	if open != nil {
		return open(), nil
	}
	return l.Logs.OpenLog(ctx, name)
}

// LogURL returns a URL with a fake SAS signature, so tests can check that it
// is never logged.
func (l *hookLogs) LogURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	l.mu.Lock()
	l.urls++
	l.mu.Unlock()
	return fmt.Sprintf("https://account.blob.core.windows.net/sync-logs/%s?se=x&sp=r&sig=SASSIGNATURE%d", name, int(ttl.Minutes())), nil
}
