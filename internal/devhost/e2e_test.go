package devhost

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv("DEVHOST_TEST_HANDLER") == "1" {
		runTestHandler()
		return
	}
	os.Exit(m.Run())
}

type appSpec struct {
	proxying      bool
	maxConcurrent int
	tickSchedule  string
	runOnStartup  bool
	lockRenewal   string
}

type testApp struct {
	dir     string
	records string
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func httpFunction(authLevel, route string, methods ...string) map[string]any {
	trigger := map[string]any{"name": "req", "type": "httpTrigger", "direction": "in", "authLevel": authLevel, "route": route}
	if len(methods) > 0 {
		trigger["methods"] = methods
	}
	return map[string]any{"bindings": []any{trigger, map[string]any{"name": "res", "type": "http", "direction": "out"}}}
}

// writeApp writes a function app for the test handler into a temp dir.
func writeApp(t *testing.T, spec appSpec) *testApp {
	t.Helper()
	dir := t.TempDir()
	app := &testApp{dir: dir, records: filepath.Join(dir, "records.jsonl")}
	if spec.maxConcurrent == 0 {
		spec.maxConcurrent = 4
	}
	if spec.lockRenewal == "" {
		spec.lockRenewal = "00:05:00"
	}
	if spec.tickSchedule == "" {
		spec.tickSchedule = "0 0 0 1 1 *" // once a year: never during a test
	}
	writeJSONFile(t, filepath.Join(dir, "host.json"), map[string]any{
		"version":         "2.0",
		"functionTimeout": "00:00:30",
		"extensions":      map[string]any{"serviceBus": map[string]any{"maxConcurrentCalls": spec.maxConcurrent, "maxAutoLockRenewalDuration": spec.lockRenewal}},
		"customHandler": map[string]any{
			"description":               map[string]any{"defaultExecutablePath": "handler", "arguments": []string{}},
			"enableProxyingHttpRequest": spec.proxying,
		},
	})
	writeJSONFile(t, filepath.Join(dir, "local.settings.json"), map[string]any{
		"IsEncrypted": false,
		"Values": map[string]string{
			"FUNCTIONS_WORKER_RUNTIME": "custom",
			"TESTHANDLER_RECORDS":      app.records,
			"TICK_SCHEDULE":            spec.tickSchedule,
			"ServiceBusConnection":     "Endpoint=sb://test-ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=not-a-real-key",
		},
	})
	fns := map[string]any{
		"Tick": map[string]any{"bindings": []any{map[string]any{
			"name": "timer", "type": "timerTrigger", "direction": "in", "schedule": "%TICK_SCHEDULE%", "runOnStartup": spec.runOnStartup}}},
		"Work": map[string]any{"bindings": []any{map[string]any{
			"name": "message", "type": "serviceBusTrigger", "direction": "in", "queueName": "work", "connection": "ServiceBusConnection"}}},
		"Hello":     httpFunction("anonymous", "hello/{name}", "get"),
		"Echo":      httpFunction("anonymous", "echo", "post"),
		"Stream":    httpFunction("anonymous", "stream", "get"),
		"Secure":    httpFunction("function", "secure/{*rest}"),
		"AdminOnly": httpFunction("admin", "admin-only"),
		"Open":      httpFunction("anonymous", "open"),
		"Crash":     httpFunction("anonymous", "crash"),
	}
	for name, fj := range fns {
		writeJSONFile(t, filepath.Join(dir, "functions", name, "function.json"), fj)
	}
	return app
}

var testKeys = Keys{
	Master:   "master-key-0123456789",
	Host:     map[string]string{"default": "host-key-0123456789"},
	Function: map[string]map[string]string{"Secure": {"default": "secure-fn-key-0123"}},
}

type hostFixture struct {
	h    *Host
	app  *testApp
	logs *testenv.SyncBuffer
	out  *testenv.SyncBuffer
}

func startHost(t *testing.T, spec appSpec, tweak func(*Options)) *hostFixture {
	t.Helper()
	app := writeApp(t, spec)
	f := &hostFixture{app: app, logs: &testenv.SyncBuffer{}, out: &testenv.SyncBuffer{}}
	opts := Options{
		AppDir:          app.dir,
		Executable:      os.Args[0],
		Addr:            "127.0.0.1:0",
		Keys:            testKeys,
		Settings:        map[string]string{"DEVHOST_TEST_HANDLER": "1"},
		DisableTimers:   true,
		RedeliveryDelay: 10 * time.Millisecond,
		RestartDelay:    50 * time.Millisecond,
		HandlerOutput:   f.out,
		Logger:          slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatalf("Start: %v\nhandler output:\n%s", err, f.out.String())
	}
	t.Cleanup(func() {
		h.Close()
		if t.Failed() {
			t.Logf("devhost log:\n%s\nhandler output:\n%s", f.logs.String(), f.out.String())
		}
	})
	f.h = h
	return f
}

func (f *hostFixture) records(t *testing.T) []record {
	t.Helper()
	b, err := os.ReadFile(f.app.records)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line being written
		}
		out = append(out, r)
	}
	return out
}

// waitFor polls the records until cond holds; the deadline is generous and
// only guards against a hang.
func (f *hostFixture) waitFor(t *testing.T, what string, cond func([]record) bool) []record {
	t.Helper()
	var recs []record
	if !testenv.Eventually(20*time.Second, 20*time.Millisecond, func() bool {
		recs = f.records(t)
		return cond(recs)
	}) {
		t.Fatalf("timed out waiting for %s; records: %+v", what, recs)
	}
	return recs
}

func filter(recs []record, kind, function string) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == kind && (function == "" || r.Function == function) {
			out = append(out, r)
		}
	}
	return out
}

func (f *hostFixture) do(t *testing.T, method, path string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.h.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *hostFixture) waitIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.h.WaitIdle(ctx, true); err != nil {
		t.Fatal(err)
	}
}

func TestProxiedHTTP(t *testing.T) {
	f := startHost(t, appSpec{proxying: true}, nil)
	principal := "eyJhdXRoX3R5cCI6ImFhZCJ9" // {"auth_typ":"aad"}
	resp, body := f.do(t, http.MethodGet, "/api/hello/world?q=1", nil, map[string]string{"X-MS-CLIENT-PRINCIPAL": principal, "User-Agent": "test-client"})
	if resp.StatusCode != http.StatusOK || body != "hello world q=1" {
		t.Fatalf("GET /api/hello/world = %d %q", resp.StatusCode, body)
	}
	recs := filter(f.records(t), "proxied", "")
	if len(recs) != 1 {
		t.Fatalf("proxied records = %+v", recs)
	}
	r := recs[0]
	if r.Path != "/api/hello/world?q=1" || r.Method != "GET" {
		t.Errorf("handler saw %s %s, want GET /api/hello/world?q=1", r.Method, r.Path)
	}
	if r.InvocationID == "" || resp.Header.Get("X-Seen-Invocation") != r.InvocationID {
		t.Errorf("invocation id: header %q, handler saw %q", r.InvocationID, resp.Header.Get("X-Seen-Invocation"))
	}
	for name, want := range map[string]string{
		"X-Ms-Client-Principal":         principal,
		"X-Azure-Functions-Hostversion": HostVersion,
		"User-Agent":                    "test-client Azure-Functions-Host/" + HostVersion,
		"X-Forwarded-Host":              strings.TrimPrefix(f.h.URL(), "http://"),
	} {
		if got := r.Headers.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if r.Headers.Get("X-Forwarded-For") == "" {
		t.Errorf("X-Forwarded-For missing")
	}
}

func TestProxiedHTTPStreamsBodies(t *testing.T) {
	f := startHost(t, appSpec{proxying: true}, nil)

	// A large request body goes through and comes back.
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	resp, body := f.do(t, http.MethodPost, "/api/echo", bytes.NewReader(big), nil)
	if resp.StatusCode != http.StatusAccepted || body != string(big) {
		t.Fatalf("echo: status %d, %d bytes back, want 202 and %d", resp.StatusCode, len(body), len(big))
	}

	// The response streams: the first line arrives while the handler still
	// holds the response open.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.h.URL()+"/api/stream", nil)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	line, err := bufio.NewReader(resp2.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first streamed line = %q, %v", line, err)
	}
}

func TestPayloadHTTP(t *testing.T) {
	f := startHost(t, appSpec{proxying: false}, nil)
	resp, body := f.do(t, http.MethodGet, "/api/hello/world?q=1&q=2", nil, map[string]string{"Accept": "text/plain"})
	if resp.StatusCode != http.StatusOK || body != "hello world q=1" {
		t.Fatalf("GET = %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	recs := filter(f.records(t), "payload", "Hello")
	if len(recs) != 1 {
		t.Fatalf("payload records = %+v", recs)
	}
	var p struct {
		Data struct {
			Req struct {
				URL        string              `json:"Url"`
				Method     string              `json:"Method"`
				Query      map[string]string   `json:"Query"`
				Headers    map[string][]string `json:"Headers"`
				Params     map[string]string   `json:"Params"`
				Identities []map[string]any    `json:"Identities"`
				Body       *string             `json:"Body"`
			} `json:"req"`
		} `json:"Data"`
		Metadata map[string]json.RawMessage `json:"Metadata"`
	}
	if err := json.Unmarshal(recs[0].Raw, &p); err != nil {
		t.Fatal(err)
	}
	req := p.Data.Req
	host := strings.TrimPrefix(f.h.URL(), "http://")
	if want := "http://" + host + "/api/hello/world?q=1&q=2"; req.URL != want {
		t.Errorf("Url = %q, want %q", req.URL, want)
	}
	if diff := cmp.Diff(map[string]string{"q": "1,2"}, req.Query); diff != "" {
		t.Errorf("Query (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"name": "world"}, req.Params); diff != "" {
		t.Errorf("Params (-want +got):\n%s", diff)
	}
	if got := req.Headers["Accept"]; len(got) != 1 || got[0] != "text/plain" {
		t.Errorf("Headers.Accept = %q, want [text/plain] (an array)", got)
	}
	if req.Method != "GET" || req.Body != nil {
		t.Errorf("Method %q Body %v, want GET and no body", req.Method, req.Body)
	}
	if len(req.Identities) != 1 || req.Identities[0]["IsAuthenticated"] != false {
		t.Errorf("Identities = %v, want one anonymous identity", req.Identities)
	}
	// Route values are binding data, serialized twice like every string.
	if got := string(p.Metadata["name"]); got != `"\"world\""` {
		t.Errorf("Metadata.name = %s, want %s", got, `"\"world\""`)
	}
	if recs[0].Headers.Get("X-Azure-Functions-Invocationid") == "" {
		t.Errorf("no invocation id header on the payload request")
	}

	// A body with Content-Length reaches the function; a binary one in base64.
	resp, body = f.do(t, http.MethodPost, "/api/echo", strings.NewReader("ping"), map[string]string{"Content-Type": "application/octet-stream"})
	if resp.StatusCode != http.StatusAccepted || body != "ping" {
		t.Errorf("POST echo = %d %q, want 202 ping", resp.StatusCode, body)
	}
	echo := filter(f.records(t), "payload", "Echo")
	if len(echo) != 1 || !strings.Contains(string(echo[0].Raw), `"Body":"cGluZw=="`) {
		t.Errorf("the binary body was not sent as base64: %+v", echo)
	}
}

func TestFunctionKeys(t *testing.T) {
	f := startHost(t, appSpec{proxying: true}, nil)
	tests := []struct {
		name   string
		path   string
		header string
		want   int
	}{
		{"anonymous route needs no key", "/api/open", "", 200},
		{"function level without a key", "/api/secure/x", "", 401},
		{"function level with a wrong key", "/api/secure/x", "nope-nope-nope", 401},
		{"function level with the function's key", "/api/secure/x", testKeys.Function["Secure"]["default"], 200},
		{"function level with a host key", "/api/secure/x", testKeys.Host["default"], 200},
		{"function level with the master key", "/api/secure/x", testKeys.Master, 200},
		{"function level with a key in ?code=", "/api/secure/x?code=" + testKeys.Host["default"], "", 200},
		{"admin level with a host key", "/api/admin-only", testKeys.Host["default"], 401},
		{"admin level with the master key", "/api/admin-only", testKeys.Master, 200},
		{"no route", "/api/nothing-here", "", 404},
		{"wrong method", "/api/echo", "", 404}, // Echo is POST only
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.header != "" {
				h["x-functions-key"] = tt.header
			}
			resp, body := f.do(t, http.MethodGet, tt.path, nil, h)
			if resp.StatusCode != tt.want {
				t.Errorf("GET %s = %d %q, want %d", tt.path, resp.StatusCode, body, tt.want)
			}
			if resp.StatusCode == 401 && body != "" {
				t.Errorf("401 body = %q, want empty like the host", body)
			}
		})
	}
}

func timerRecords(recs []record) []record {
	var out []record
	for _, r := range filter(recs, "decoded", "Tick") {
		if r.Timer != nil {
			out = append(out, r)
		}
	}
	return out
}

func TestTimerRunOnStartup(t *testing.T) {
	f := startHost(t, appSpec{runOnStartup: true}, func(o *Options) { o.DisableTimers = false })
	recs := f.waitFor(t, "the startup run", func(r []record) bool { return len(timerRecords(r)) == 1 })
	ti := timerRecords(recs)[0].Timer
	if !ti.Schedule.AdjustForDST || ti.IsPastDue || ti.ScheduleStatus == nil {
		t.Fatalf("timer info = %+v", ti)
	}
	if !ti.ScheduleStatus.Last.IsZero() {
		t.Errorf("first run: ScheduleStatus.Last = %v, want the zero time", ti.ScheduleStatus.Last)
	}
	// "0 0 0 1 1 *" is next due on January 1st, 00:00:00 UTC.
	if n := ti.ScheduleStatus.Next; n.Month() != time.January || n.Day() != 1 || n.Hour() != 0 || !n.After(time.Now()) {
		t.Errorf("ScheduleStatus.Next = %v, want the next January 1st", n)
	}
	raw := filter(recs, "payload", "Tick")[0].Raw
	if !strings.Contains(string(raw), `"Last":"0001-01-01T00:00:00+00:00"`) || !strings.Contains(string(raw), `"MethodName":"Tick"`) {
		t.Errorf("timer payload = %s", raw)
	}
}

func TestTimerSchedule(t *testing.T) {
	f := startHost(t, appSpec{tickSchedule: "* * * * * *"}, func(o *Options) { o.DisableTimers = false })
	recs := f.waitFor(t, "two ticks", func(r []record) bool { return len(timerRecords(r)) >= 2 })
	first, second := timerRecords(recs)[0].Timer, timerRecords(recs)[1].Timer
	if first.ScheduleStatus == nil || second.ScheduleStatus == nil {
		t.Fatalf("no schedule status: %+v %+v", first, second)
	}
	// The second run's status names the first run's occurrence as Last.
	if !second.ScheduleStatus.Last.Equal(first.ScheduleStatus.Next) {
		t.Errorf("second tick Last = %v, want the first tick's occurrence %v", second.ScheduleStatus.Last, first.ScheduleStatus.Next)
	}
	if !second.ScheduleStatus.Next.After(first.ScheduleStatus.Next) {
		t.Errorf("second tick Next = %v, not after %v", second.ScheduleStatus.Next, first.ScheduleStatus.Next)
	}
}

func TestTimerAdminFire(t *testing.T) {
	f := startHost(t, appSpec{}, nil)
	resp, _ := f.do(t, http.MethodPost, "/admin/functions/Tick", strings.NewReader(`{"input":""}`), nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin API without the master key = %d, want 401", resp.StatusCode)
	}
	resp, _ = f.do(t, http.MethodPost, "/admin/functions/Tick", strings.NewReader(`{"input":""}`), map[string]string{"x-functions-key": testKeys.Host["default"]})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin API with a host key = %d, want 401", resp.StatusCode)
	}
	resp, body := f.do(t, http.MethodPost, "/admin/functions/tick", strings.NewReader(`{"input":""}`), map[string]string{"x-functions-key": testKeys.Master})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("admin API = %d %s, want 202", resp.StatusCode, body)
	}
	recs := f.waitFor(t, "the manual run", func(r []record) bool { return len(timerRecords(r)) == 1 })
	if ti := timerRecords(recs)[0].Timer; ti.IsPastDue || ti.ScheduleStatus == nil {
		t.Errorf("manual run timer info = %+v", ti)
	}
}

func sendHTTP(t *testing.T, f *hostFixture, body string) (int, map[string]any) {
	t.Helper()
	resp, out := f.do(t, http.MethodPost, "/_devhost/queues/work/messages", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	var m map[string]any
	json.Unmarshal([]byte(out), &m)
	return resp.StatusCode, m
}

func TestQueueDelivery(t *testing.T) {
	f := startHost(t, appSpec{}, nil)
	status, res := sendHTTP(t, f, `{"messageId":"m-1","body":"{\"sleepMs\":0}","applicationProperties":{"runId":"r1"}}`)
	if status != http.StatusCreated || res["status"] != "accepted" || res["messageId"] != "m-1" {
		t.Fatalf("send = %d %v", status, res)
	}
	f.waitIdle(t)
	recs := f.records(t)
	got := filter(recs, "decoded", "Work")
	if len(got) != 1 || got[0].MessageID != "m-1" || got[0].DeliveryCount != 1 || got[0].MessageBody != `{"sleepMs":0}` {
		t.Fatalf("deliveries = %+v", got)
	}
	// The payload has the host's shape: the body serialized twice, numbers as
	// strings, the namespace of the connection setting without its key.
	raw := string(filter(recs, "payload", "Work")[0].Raw)
	for _, want := range []string{
		`"message":"\"{\\\"sleepMs\\\":0}\""`,
		`"DeliveryCount":"1"`,
		`"MessageId":"\"m-1\""`,
		`"ApplicationProperties":{"runId":"r1"}`,
		`"FullyQualifiedNamespace":"test-ns.servicebus.windows.net"`,
		`"MethodName":"Work"`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("payload lacks %s:\n%s", want, raw)
		}
	}
	if strings.Contains(raw, "not-a-real-key") {
		t.Errorf("the payload carries the connection string's key")
	}
}

func TestQueueRedelivery(t *testing.T) {
	f := startHost(t, appSpec{}, nil)
	if _, err := f.h.Send("work", Message{ID: "flaky", Body: []byte(`{"fail":2}`)}); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t)
	var counts []int
	for _, r := range filter(f.records(t), "decoded", "Work") {
		counts = append(counts, r.DeliveryCount)
	}
	if diff := cmp.Diff([]int{1, 2, 3}, counts); diff != "" {
		t.Errorf("delivery counts (-want +got):\n%s", diff)
	}
	if dl := f.h.DeadLetters("work"); len(dl) != 0 {
		t.Errorf("dead letters = %+v, want none", dl)
	}
}

func TestQueueDeadLetter(t *testing.T) {
	f := startHost(t, appSpec{}, func(o *Options) { o.MaxDeliveryCount = 3 })
	if _, err := f.h.Send("work", Message{ID: "poison", Body: []byte(`{"failAlways":true}`)}); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t)
	if n := len(filter(f.records(t), "decoded", "Work")); n != 3 {
		t.Errorf("deliveries = %d, want 3", n)
	}
	resp, body := f.do(t, http.MethodGet, "/_devhost/queues/work/deadletter", nil, nil)
	var dl []DeadLetter
	if err := json.Unmarshal([]byte(body), &dl); err != nil || resp.StatusCode != 200 {
		t.Fatalf("deadletter = %d %s", resp.StatusCode, body)
	}
	if len(dl) != 1 {
		t.Fatalf("dead letters = %+v", dl)
	}
	d := dl[0]
	if d.MessageID != "poison" || d.DeliveryCount != 3 || d.DeadLetterReason != "MaxDeliveryCountExceeded" || d.Body != `{"failAlways":true}` {
		t.Errorf("dead letter = %+v", d)
	}
	if !strings.Contains(d.DeadLetterErrorDescription, "after 3 delivery attempts") || !strings.Contains(d.DeadLetterErrorDescription, "work order says fail") {
		t.Errorf("description %q does not give the attempts and the last error", d.DeadLetterErrorDescription)
	}
	_, counts := f.do(t, http.MethodGet, "/_devhost/queues/work", nil, nil)
	var c QueueCounts
	json.Unmarshal([]byte(counts), &c)
	if diff := cmp.Diff(QueueCounts{Queue: "work", DeadLettered: 1}, c); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

func TestQueueScheduled(t *testing.T) {
	f := startHost(t, appSpec{}, nil)
	due := time.Now().Add(1500 * time.Millisecond).UTC() // room for a slow machine to send "now" first
	status, res := sendHTTP(t, f, fmt.Sprintf(`{"messageId":"later","body":"{}","scheduledEnqueueTimeUtc":%q}`, due.Format(time.RFC3339Nano)))
	if status != http.StatusCreated || res["status"] != "scheduled" {
		t.Fatalf("send scheduled = %d %v", status, res)
	}
	if c, _ := f.h.QueueCounts("work"); c.Scheduled != 1 {
		t.Errorf("counts after scheduling = %+v, want 1 scheduled", c)
	}
	if status, _ := sendHTTP(t, f, `{"messageId":"now","body":"{}"}`); status != http.StatusCreated {
		t.Fatalf("send = %d", status)
	}
	f.waitIdle(t)
	got := filter(f.records(t), "decoded", "Work")
	if len(got) != 2 || got[0].MessageID != "now" || got[1].MessageID != "later" {
		t.Fatalf("deliveries = %+v, want now then later", got)
	}
	if got[1].At.Before(due) {
		t.Errorf("the scheduled message was delivered at %v, before its time %v", got[1].At, due)
	}
}

func TestQueueDuplicateDetection(t *testing.T) {
	f := startHost(t, appSpec{}, nil)
	if status, _ := sendHTTP(t, f, `{"messageId":"dup","body":"{}"}`); status != http.StatusCreated {
		t.Fatalf("first send = %d", status)
	}
	status, res := sendHTTP(t, f, `{"messageId":"dup","body":"{}"}`)
	if status != http.StatusOK || res["status"] != "duplicate" {
		t.Errorf("second send = %d %v, want 200 duplicate", status, res)
	}
	f.waitIdle(t)
	if n := len(filter(f.records(t), "decoded", "Work")); n != 1 {
		t.Errorf("deliveries = %d, want 1", n)
	}
}

func TestQueueSendValidation(t *testing.T) {
	f := startHost(t, appSpec{}, func(o *Options) { o.MaxMessageSize = 1024 })
	tests := []struct {
		body string
		want int
		text string
	}{
		{`{"messageId":"x"}`, 400, "body is missing"},
		{`{"messageId":"x","body":"{}","scheduledEnqueueTimeUtc":"tomorrow"}`, 400, "is not an RFC 3339 time"},
		{`{"messageId":"x","body":"{}","colour":"red"}`, 400, "unknown field"},
		{fmt.Sprintf(`{"messageId":"x","body":%q}`, strings.Repeat("a", 2000)), 413, "at most 1024"},
	}
	for _, tt := range tests {
		status, res := sendHTTP(t, f, tt.body)
		if status != tt.want || !strings.Contains(fmt.Sprint(res["error"]), tt.text) {
			t.Errorf("send %.60s = %d %v, want %d mentioning %q", tt.body, status, res, tt.want, tt.text)
		}
	}
}

func TestQueueChainAndConcurrency(t *testing.T) {
	f := startHost(t, appSpec{maxConcurrent: 2}, nil)
	for i := range 4 {
		body := `{"sleepMs":150}`
		if i == 0 {
			body = `{"sleepMs":150,"send":{"messageId":"child","body":"{}"}}`
		}
		if _, err := f.h.Send("work", Message{ID: fmt.Sprintf("m-%d", i), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	f.waitIdle(t)
	got := filter(f.records(t), "decoded", "Work")
	if len(got) != 5 {
		t.Fatalf("deliveries = %d, want 5 (4 sent and 1 sent by the handler)", len(got))
	}
	for _, r := range got {
		if r.MaxInFlight > 2 {
			t.Errorf("%d deliveries ran at once; maxConcurrentCalls is 2", r.MaxInFlight)
		}
	}
}

func TestHandlerCrashRestart(t *testing.T) {
	f := startHost(t, appSpec{proxying: true}, nil)
	resp, _ := f.do(t, http.MethodGet, "/api/crash", nil, nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("crashing request = %d, want 500", resp.StatusCode)
	}
	// Requests in the moment between the crash and its detection fail, as
	// with the real host; once the devhost has seen the exit, requests wait
	// for the restarted handler.
	if !testenv.Eventually(20*time.Second, 10*time.Millisecond, func() bool {
		return strings.Contains(f.logs.String(), "the handler exited; restarting it")
	}) {
		t.Fatal("the devhost did not notice the crash")
	}
	resp, body := f.do(t, http.MethodGet, "/api/hello/again", nil, nil)
	if resp.StatusCode != http.StatusOK || body != "hello again q=" {
		t.Fatalf("after the crash: %d %q", resp.StatusCode, body)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"msg":"devhost: the handler exited; restarting it","status":"exit status 3"`) {
		t.Errorf("no restart record with the exit status in:\n%s", logs)
	}
}

func TestStartFailsClearly(t *testing.T) {
	tests := []struct {
		name       string
		executable string
		want       string
	}{
		{"missing executable", filepath.Join(t.TempDir(), "no-such-handler"), "build the handler first"},
		{"exits at once", "/bin/false", "exited (exit status 1) before it listened"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := writeApp(t, appSpec{})
			h, err := New(Options{AppDir: app.dir, Executable: tt.executable, Addr: "127.0.0.1:0", HandlerOutput: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			err = h.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestQueueLockExpiry(t *testing.T) {
	// The lock lasts LockDuration + maxAutoLockRenewalDuration = 500ms; the
	// first delivery runs 1.5s, so Service Bus would deliver the message
	// again meanwhile, and refuse the first delivery's completion.
	f := startHost(t, appSpec{lockRenewal: "00:00:00.25"}, func(o *Options) { o.LockDuration = 250 * time.Millisecond })
	if _, err := f.h.Send("work", Message{ID: "slow", Body: []byte(`{"sleepFirstMs":1500}`)}); err != nil {
		t.Fatal(err)
	}
	recs := f.waitFor(t, "both deliveries", func(r []record) bool { return len(filter(r, "decoded", "Work")) == 2 })
	got := filter(recs, "decoded", "Work")
	// The second delivery ends first: the first was still sleeping.
	if got[0].DeliveryCount != 2 || got[1].DeliveryCount != 1 {
		t.Errorf("deliveries in order of completion = %+v, want counts 2 then 1", got)
	}
	f.waitIdle(t)
	if c, _ := f.h.QueueCounts("work"); c != (QueueCounts{Queue: "work"}) {
		t.Errorf("counts = %+v, want an empty queue", c)
	}
	if !strings.Contains(f.logs.String(), "lost its message lock") {
		t.Errorf("no lock-lost warning in the log")
	}
}
