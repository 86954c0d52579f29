package funcproto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/testenv"
)

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct{ testenv.SyncBuffer }

// records returns the JSON log records written so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

type routerFixture struct {
	router *Router
	logs   *syncBuffer
	server *httptest.Server

	mu      sync.Mutex
	timers  []TimerInfo
	msgs    []ServiceBusMessage
	invs    []*Invocation
	proxied []string
}

func newRouterFixture(t *testing.T) *routerFixture {
	t.Helper()
	f := &routerFixture{logs: &syncBuffer{}}
	f.router = NewRouter(slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	f.router.Timer("SyncTimer", "timer", func(ctx context.Context, inv *Invocation, ti TimerInfo) error {
		inv.Logger.Info("tick", "past_due", ti.IsPastDue)
		inv.Logger.Debug("not collected: below Info")
		f.mu.Lock()
		f.timers = append(f.timers, ti)
		f.invs = append(f.invs, inv)
		f.mu.Unlock()
		if FromContext(ctx) != inv {
			return errors.New("the context does not carry the invocation")
		}
		return nil
	})
	f.router.Queue("SyncWorker", "message", func(ctx context.Context, inv *Invocation, m ServiceBusMessage) error {
		f.mu.Lock()
		f.msgs = append(f.msgs, m)
		f.mu.Unlock()
		switch string(m.Body) {
		case "fail":
			return errors.New("graph answered 503")
		case "panic":
			panic("boom")
		}
		inv.Logger.Info("processed", "message_id", m.MessageID)
		return nil
	})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv := FromContext(r.Context())
		if r.URL.Path == "/api/panic" {
			panic("proxy boom")
		}
		f.mu.Lock()
		f.proxied = append(f.proxied, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Invocation", inv.InvocationID)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, r.Method+" "+r.URL.Path+" mode="+r.URL.Query().Get("mode")+" etag="+r.Header.Get("If-None-Match")+" body="+string(body))
	})
	f.router.HTTP("Api", api)
	f.router.Proxy(api)
	f.server = httptest.NewServer(f.router)
	t.Cleanup(f.server.Close)
	return f
}

func (f *routerFixture) post(t *testing.T, path, invID string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.server.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if invID != "" {
		req.Header.Set(InvocationIDHeader, invID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s: response is not JSON: %v", path, err)
	}
	return resp.StatusCode, m
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sbPayload(body string) []byte {
	twice, _ := json.Marshal(body)
	b, _ := json.Marshal(map[string]any{
		"Data":     map[string]any{"message": string(twice)},
		"Metadata": map[string]any{"MessageId": `"m-1"`, "DeliveryCount": "1"},
	})
	return b
}

func TestRouterTimer(t *testing.T) {
	f := newRouterFixture(t)
	status, resp := f.post(t, "/SyncTimer", "inv-timer-1", fixture(t, "timer_past_due.json"))
	if status != http.StatusOK {
		t.Fatalf("status %d, body %v", status, resp)
	}
	want := map[string]any{
		"Outputs":     map[string]any{},
		"Logs":        []any{`level=INFO msg=tick past_due=true`},
		"ReturnValue": nil,
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	if len(f.invs) != 1 || f.invs[0].InvocationID != "inv-timer-1" || f.invs[0].Sys.MethodName != "SyncTimer" {
		t.Fatalf("invocation = %+v", f.invs)
	}
	// The process log carries the scope; the Debug record too (the process
	// logger's level, not the collector's, decides).
	var scoped int
	for _, r := range f.logs.records(t) {
		if r["function"] == "SyncTimer" && r["invocation_id"] == "inv-timer-1" {
			scoped++
		}
	}
	if scoped != 2 {
		t.Errorf("scoped process log records = %d, want 2: %v", scoped, f.logs.records(t))
	}
}

func TestRouterCaseInsensitiveName(t *testing.T) {
	f := newRouterFixture(t)
	if status, resp := f.post(t, "/synctimer", "", fixture(t, "timer_no_status.json")); status != http.StatusOK {
		t.Fatalf("status %d, body %v", status, resp)
	}
	if id := f.invs[0].InvocationID; !strings.HasPrefix(id, "local-") {
		t.Errorf("invocation id without header = %q, want a generated local- id", id)
	}
}

func TestRouterErrors(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		body       []byte
		wantStatus int
		wantText   string // in the "error" field or in Logs
	}{
		{"unknown function", "/Nope", sbPayload("x"), http.StatusNotFound, `unknown function "Nope": this handler serves Api, SyncTimer, SyncWorker`},
		{"malformed JSON", "/SyncWorker", []byte(`{"Data":`), http.StatusBadRequest, "function SyncWorker: malformed invocation payload: the body is not a JSON object"},
		{"missing binding", "/SyncWorker", []byte(`{"Data":{},"Metadata":{}}`), http.StatusBadRequest, `Data.message: missing`},
		{"handler error", "/SyncWorker", sbPayload("fail"), http.StatusInternalServerError, `err="graph answered 503"`},
		{"handler panic", "/SyncWorker", sbPayload("panic"), http.StatusInternalServerError, "function SyncWorker panicked (invocation inv-err)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t)
			status, resp := f.post(t, tt.path, "inv-err", tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %v", status, tt.wantStatus, resp)
			}
			all, _ := json.Marshal(resp)
			text := string(all)
			if !strings.Contains(text, jsonEscape(tt.wantText)) {
				t.Errorf("response %s does not mention %q", text, tt.wantText)
			}
		})
	}
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func TestRouterPanicIsLoggedWithInvocationID(t *testing.T) {
	f := newRouterFixture(t)
	f.post(t, "/SyncWorker", "inv-panic", sbPayload("panic"))
	var found bool
	for _, r := range f.logs.records(t) {
		if r["msg"] == "function panicked" && r["invocation_id"] == "inv-panic" && r["panic"] == "boom" {
			found = true
		}
	}
	if !found {
		t.Errorf("no 'function panicked' record with the invocation id: %v", f.logs.records(t))
	}
}

func TestRouterMethodNotAllowed(t *testing.T) {
	f := newRouterFixture(t)
	resp, err := http.Get(f.server.URL + "/SyncTimer")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /SyncTimer = %d Allow=%q, want 405 Allow=POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestRouterReadinessProbe(t *testing.T) {
	f := newRouterFixture(t)
	resp, err := http.Get(f.server.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET / = %d, want 200", resp.StatusCode)
	}
}

func TestRouterHTTPPayloadMode(t *testing.T) {
	f := newRouterFixture(t)
	status, resp := f.post(t, "/Api", "inv-http", fixture(t, "http_post.json"))
	if status != http.StatusOK {
		t.Fatalf("status %d, body %v", status, resp)
	}
	want := map[string]any{
		"statusCode": float64(201),
		"headers":    map[string]any{"Content-Type": "text/plain; charset=utf-8", "X-Invocation": "inv-http"},
		"body":       `POST /api/runs/42/retry mode=full etag="abc" body={"reason":"admin asked"}`,
	}
	if diff := cmp.Diff(want, resp["Outputs"].(map[string]any)["res"]); diff != "" {
		t.Errorf("Outputs.res (-want +got):\n%s", diff)
	}
}

func TestRouterProxy(t *testing.T) {
	f := newRouterFixture(t)
	req, _ := http.NewRequest(http.MethodPut, f.server.URL+"/api/runs/7?mode=delta", strings.NewReader("payload"))
	req.Header.Set(InvocationIDHeader, "inv-proxy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Invocation") != "inv-proxy" {
		t.Fatalf("proxied PUT = %d X-Invocation=%q", resp.StatusCode, resp.Header.Get("X-Invocation"))
	}
	if got, want := string(body), "PUT /api/runs/7 mode=delta etag= body=payload"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}

	// A panic in the proxied handler is answered 500 and logged with the id.
	req, _ = http.NewRequest(http.MethodGet, f.server.URL+"/api/panic", nil)
	req.Header.Set(InvocationIDHeader, "inv-proxy-panic")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("panicking proxied handler: status %d, want 500", resp.StatusCode)
	}
	var found bool
	for _, r := range f.logs.records(t) {
		if r["msg"] == "HTTP handler panicked" && r["invocation_id"] == "inv-proxy-panic" && r["path"] == "/api/panic" {
			found = true
		}
	}
	if !found {
		t.Errorf("no panic record with the invocation id: %v", f.logs.records(t))
	}
}

func TestRouterProxyNotConfigured(t *testing.T) {
	r := NewRouter(nil)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/health", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("status = %d, want 404", rec.Code)
	}
}
