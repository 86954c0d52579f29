package devhost

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestRouteMatching(t *testing.T) {
	fns := []*Function{
		{Name: "Health", Kind: KindHTTP, Route: "health", Methods: []string{"GET"}},
		{Name: "Api", Kind: KindHTTP, Route: "{*path}"},
		{Name: "Run", Kind: KindHTTP, Route: "runs/{id:int}"},
		{Name: "RunAny", Kind: KindHTTP, Route: "runs/{name}"},
		{Name: "RunLatest", Kind: KindHTTP, Route: "runs/latest"},
		{Name: "Opt", Kind: KindHTTP, Route: "opt/{x?}"},
		{Name: "Guid", Kind: KindHTTP, Route: "g/{id:guid}/log"},
	}
	rt, err := newRouteTable("api", fns)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, method string
		want         string
		values       map[string]string
	}{
		{"/api/health", "GET", "Health", map[string]string{}},
		{"/API/Health/", "GET", "Health", map[string]string{}},              // case-insensitive, trailing slash
		{"/api/health", "POST", "Api", map[string]string{"path": "health"}}, // Health is GET only
		{"/api/runs/42", "GET", "Run", map[string]string{"id": "42"}},       // constrained beats plain
		{"/api/runs/abc", "GET", "RunAny", map[string]string{"name": "abc"}},
		{"/api/runs/latest", "GET", "RunLatest", map[string]string{}}, // literal beats both
		{"/api/runs/42/log", "GET", "Api", map[string]string{"path": "runs/42/log"}},
		{"/api/", "GET", "Api", map[string]string{"path": ""}},
		{"/api", "GET", "Api", map[string]string{"path": ""}},
		{"/api/opt", "GET", "Opt", map[string]string{}},
		{"/api/opt/1", "GET", "Opt", map[string]string{"x": "1"}},
		{"/api/g/0f8fad5b-d9cb-469f-a165-70867728950e/log", "GET", "Guid", map[string]string{"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}},
		{"/api/g/not-a-guid/log", "GET", "Api", map[string]string{"path": "g/not-a-guid/log"}},
		{"/apix/health", "GET", "", nil},
		{"/health", "GET", "", nil},
	}
	for _, tt := range tests {
		fn, values, ok := rt.match(tt.path, tt.method)
		got := ""
		if ok {
			got = fn.Name
		}
		if got != tt.want {
			t.Errorf("%s %s matched %q, want %q", tt.method, tt.path, got, tt.want)
			continue
		}
		if diff := cmp.Diff(tt.values, values, cmpopts.EquateEmpty()); ok && diff != "" {
			t.Errorf("%s %s values (-want +got):\n%s", tt.method, tt.path, diff)
		}
	}
}

func TestRouteTemplateErrors(t *testing.T) {
	tests := []struct{ route, want string }{
		{"a/{*rest}/b", "must be the last segment"},
		{"a/{x?}/b", "must be the last segment"},
		{"a/{x}.{y}", "is not supported"},
		{"a//b", "empty segment"},
		{"a/{x}/{X}", "uses parameter"},
		{"a/{x:regex(^a$)}", "constraint"},
	}
	for _, tt := range tests {
		_, err := parseRoute(tt.route)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseRoute(%q) error = %v, want one containing %q", tt.route, err, tt.want)
		}
	}
}

func TestNoPrefixRoutes(t *testing.T) {
	rt, err := newRouteTable("", []*Function{{Name: "Root", Kind: KindHTTP, Route: "{*all}"}})
	if err != nil {
		t.Fatal(err)
	}
	if fn, v, ok := rt.match("/x/y", "GET"); !ok || fn.Name != "Root" || v["all"] != "x/y" {
		t.Errorf("match = %v %v %v", fn, v, ok)
	}
}

func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 11, 23, 10, 2, 30, 0, time.UTC) // a Monday
	tests := []struct {
		expr    string
		next    time.Time
		wantErr string
	}{
		{"0 */5 * * * *", time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC), ""},
		{"30 2 10 * * *", time.Date(2026, 11, 24, 10, 2, 30, 0, time.UTC), ""}, // strictly after
		{"0 0 9 * * Mon-Fri", time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), ""},
		{"0 0 0 1 Jan *", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"0 30 9 * * 0", time.Date(2026, 11, 29, 9, 30, 0, 0, time.UTC), ""}, // 0 is Sunday
		{"00:05:00", from.Add(5 * time.Minute), ""},                          // TimeSpan
		{"*/5 * * * *", time.Time{}, `NCRONTAB starts with a seconds field, e.g. "0 */5 * * * *"`},
		{"0 61 * * * *", time.Time{}, "not a valid NCRONTAB expression"},
		{"@daily", time.Time{}, "has 1 fields"},
		{"00:00:00", time.Time{}, "must be positive"},
	}
	for _, tt := range tests {
		s, err := parseSchedule(tt.expr, time.UTC)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSchedule(%q) error = %v, want one containing %q", tt.expr, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseSchedule(%q): %v", tt.expr, err)
			continue
		}
		if got := s.Next(from); !got.Equal(tt.next) {
			t.Errorf("%q: Next(%v) = %v, want %v", tt.expr, from, got, tt.next)
		}
	}
}

func TestScheduleTimeZone(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatalf("the system has no tz database: install tzdata (apt-get install tzdata): %v", err)
	}
	s, err := parseSchedule("0 0 9 * * *", paris)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Next(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC); !got.Equal(want) { // 09:00 CET
		t.Errorf("Next = %v, want %v", got.UTC(), want)
	}
}

func TestTick(t *testing.T) {
	s, _ := parseSchedule("0 */5 * * * *", time.UTC)
	due := time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC)
	before := timerState{next: due}
	tests := []struct {
		name     string
		due, now time.Time
		pastDue  bool
		after    timerState
	}{
		{"on time", due, due.Add(100 * time.Millisecond), false,
			timerState{last: due, next: due.Add(5 * time.Minute), lastUpdated: due.Add(100 * time.Millisecond)}},
		{"late", due, due.Add(3 * time.Minute), true,
			timerState{last: due, next: due.Add(5 * time.Minute), lastUpdated: due.Add(3 * time.Minute)}},
		{"startup run", time.Time{}, due.Add(-time.Minute), false,
			timerState{last: due.Add(-time.Minute), next: due, lastUpdated: due.Add(-time.Minute)}},
	}
	for _, tt := range tests {
		info, after := tick(s, before, tt.due, tt.now)
		if info.isPastDue != tt.pastDue {
			t.Errorf("%s: isPastDue = %v, want %v", tt.name, info.isPastDue, tt.pastDue)
		}
		if info.status != before {
			t.Errorf("%s: the invocation's status = %+v, want the status before the run", tt.name, info.status)
		}
		if after != tt.after {
			t.Errorf("%s: status after = %+v, want %+v", tt.name, after, tt.after)
		}
	}
}

func TestParseTimeSpan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"00:05:00", 5 * time.Minute, true},
		{"00:00:00.80", 800 * time.Millisecond, true},
		{"1.02:00:00", 26 * time.Hour, true},
		{"5m", 0, false},
		{"00:61:00", 0, false},
	}
	for _, tt := range tests {
		got, err := parseTimeSpan(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseTimeSpan(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestKeysAuthorize(t *testing.T) {
	k := testKeys
	tests := []struct {
		level, fn, key string
		ok             bool
		grant          grant
	}{
		{"anonymous", "Open", "", true, grant{}},
		{"function", "Secure", "", false, grant{}},
		{"function", "Secure", "secure-fn-key-0123", true, grant{"Function", "default"}},
		{"function", "Other", "secure-fn-key-0123", false, grant{}}, // another function's key
		{"function", "Other", "host-key-0123456789", true, grant{"Function", "default"}},
		{"function", "Other", "master-key-0123456789", true, grant{"Admin", "master"}},
		{"admin", "Other", "host-key-0123456789", false, grant{}},
		{"admin", "Other", "master-key-0123456789", true, grant{"Admin", "master"}},
	}
	for _, tt := range tests {
		g, ok := k.authorize(tt.level, tt.fn, tt.key)
		if ok != tt.ok || g != tt.grant {
			t.Errorf("authorize(%s, %s, %q) = %+v %v, want %+v %v", tt.level, tt.fn, tt.key, g, ok, tt.grant, tt.ok)
		}
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keys.json")
	os.WriteFile(good, []byte(`{"masterKey":"master-0123456","hostKeys":{"default":"host-0123456"},"functionKeys":{"Api":{"ci":"api-ci-012345"}}}`), 0o600)
	k, err := LoadKeys(good)
	if err != nil {
		t.Fatal(err)
	}
	want := Keys{Master: "master-0123456", Host: map[string]string{"default": "host-0123456"}, Function: map[string]map[string]string{"Api": {"ci": "api-ci-012345"}}}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("LoadKeys (-want +got):\n%s", diff)
	}
	short := filepath.Join(dir, "short.json")
	os.WriteFile(short, []byte(`{"masterKey":"abc"}`), 0o600)
	if _, err := LoadKeys(short); err == nil || !strings.Contains(err.Error(), "masterKey is shorter than 8") {
		t.Errorf("short key: %v", err)
	}
}

// repoRoot is the module root, where the app's host.json and functions/ live.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestRepositoryApp loads the project's own host.json and functions/ and
// checks the contract other packages rely on.
func TestRepositoryApp(t *testing.T) {
	root := repoRoot(t)
	h, err := New(Options{AppDir: root, Executable: "/bin/true", Settings: map[string]string{"SYNC_TIMER_SCHEDULE": "0 */5 * * * *"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Function{
		// Anonymous to the host: the API checks its callers itself.
		{Name: "Api", Kind: KindHTTP, Binding: "req", AuthLevel: "anonymous", Route: "{*path}", Proxied: true},
		{Name: "Console", Kind: KindHTTP, Binding: "req", AuthLevel: "anonymous", Methods: []string{"GET", "HEAD"}, Route: "console/{*path}", Proxied: true},
		{Name: "Health", Kind: KindHTTP, Binding: "req", AuthLevel: "anonymous", Methods: []string{"GET"}, Route: "health", Proxied: true},
		{Name: "SyncTimer", Kind: KindTimer, Binding: "timer", Schedule: "0 */5 * * * *"},
		{Name: "SyncWorker", Kind: KindQueue, Binding: "message", QueueName: "sync-work", Connection: "ServiceBusConnection"},
	}
	opts := []cmp.Option{cmpopts.IgnoreFields(Function{}, "Dir"), cmpopts.IgnoreUnexported(Function{})}
	if diff := cmp.Diff(want, h.Functions(), opts...); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
	if h.cfg.maxConcurrent != 4 || h.cfg.lockRenewal != 5*time.Minute || h.cfg.functionTimeout != 10*time.Minute || !h.cfg.proxying || h.cfg.routePrefix != "api" {
		t.Errorf("host.json settings: maxConcurrent %d, lockRenewal %s, functionTimeout %s, proxying %v, prefix %q",
			h.cfg.maxConcurrent, h.cfg.lockRenewal, h.cfg.functionTimeout, h.cfg.proxying, h.cfg.routePrefix)
	}
	if fn, _, ok := h.routes.match("/api/health", "GET"); !ok || fn.Name != "Health" {
		t.Errorf("/api/health does not reach Health")
	}
	if fn, v, ok := h.routes.match("/api/runs/1", "DELETE"); !ok || fn.Name != "Api" || v["path"] != "runs/1" {
		t.Errorf("/api/runs/1 does not reach Api")
	}
	// The console's files are anonymous (the sign-in page loads before any
	// key); a write to that path still needs the Api function's key.
	for _, p := range []string{"/api/console", "/api/console/", "/api/console/js/main.js"} {
		if fn, _, ok := h.routes.match(p, "GET"); !ok || fn.Name != "Console" {
			t.Errorf("GET %s does not reach Console", p)
		}
	}
	if fn, _, ok := h.routes.match("/api/console/x", "POST"); !ok || fn.Name != "Api" {
		t.Errorf("POST /api/console/x reaches %v, want Api (key required)", fn)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"no host.json", func(dir string) {}, "host.json not found"},
		{"old version", func(dir string) {
			os.WriteFile(filepath.Join(dir, "host.json"), []byte(`{"version":"1.0"}`), 0o644)
		}, `version is "1.0"`},
		{"no custom handler", func(dir string) {
			os.WriteFile(filepath.Join(dir, "host.json"), []byte(`{"version":"2.0"}`), 0o644)
		}, "no customHandler section"},
		{"undefined setting", func(dir string) {
			writeHost(dir)
			writeFn(dir, "T", `{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"%NOPE%"}]}`)
		}, "app setting NOPE, which is not defined"},
		{"five-field cron", func(dir string) {
			writeHost(dir)
			writeFn(dir, "T", `{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"*/5 * * * *"}]}`)
		}, "NCRONTAB starts with a seconds field"},
		{"unsupported trigger", func(dir string) {
			writeHost(dir)
			writeFn(dir, "Q", `{"bindings":[{"name":"m","type":"queueTrigger","direction":"in","queueName":"q"}]}`)
		}, `trigger type "queueTrigger" is not supported`},
		{"two triggers", func(dir string) {
			writeHost(dir)
			writeFn(dir, "Q", `{"bindings":[{"name":"a","type":"httpTrigger","direction":"in"},{"name":"b","type":"timerTrigger","direction":"in","schedule":"0 * * * * *"}]}`)
		}, "exactly one trigger"},
		{"bad route", func(dir string) {
			writeHost(dir)
			writeFn(dir, "H", `{"bindings":[{"name":"req","type":"httpTrigger","direction":"in","route":"{*a}/b"},{"name":"res","type":"http","direction":"out"}]}`)
		}, "function H: route"},
		{"encrypted settings", func(dir string) {
			writeHost(dir)
			os.WriteFile(filepath.Join(dir, "local.settings.json"), []byte(`{"IsEncrypted":true,"Values":{}}`), 0o644)
		}, "is encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(dir)
			_, err := New(Options{AppDir: dir, Executable: "/bin/true"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func writeHost(dir string) {
	os.WriteFile(filepath.Join(dir, "host.json"), []byte(`{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`), 0o644)
}

func writeFn(dir, name, body string) {
	os.MkdirAll(filepath.Join(dir, name), 0o755)
	os.WriteFile(filepath.Join(dir, name, "function.json"), []byte(body), 0o644)
}

func TestSettingsFallbackAndDisabled(t *testing.T) {
	dir := t.TempDir()
	writeHost(dir)
	os.WriteFile(filepath.Join(dir, "local.settings.sample.json"), []byte(`{"IsEncrypted":false,"Values":{"SCHED":"0 0 * * * *","AzureWebJobs.Off.Disabled":"true","N":5}}`), 0o644)
	writeFn(dir, "On", `{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"%SCHED%"}]}`)
	writeFn(dir, "Off", `{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"%SCHED%"}]}`)
	writeFn(dir, "Gone", `{"disabled":true,"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"%SCHED%"}]}`)
	h, err := New(Options{AppDir: dir, Executable: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	fns := h.Functions()
	if len(fns) != 1 || fns[0].Name != "On" || fns[0].Schedule != "0 0 * * * *" {
		t.Errorf("functions = %+v, want On only, with the sample file's schedule", fns)
	}
	if h.cfg.values["N"] != "5" {
		t.Errorf("numeric setting = %q, want \"5\"", h.cfg.values["N"])
	}
}
