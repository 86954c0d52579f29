package localstack_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/localstack"
	"github.com/entrasync/entrasync/internal/table"
	"github.com/entrasync/entrasync/internal/testenv"
)

// These tests run the product end to end: the real handler binary under the
// local Functions host (custom-handler protocol, in-process Service Bus
// queue), Azurite for Table and Blob Storage, and the Graph simulator over
// HTTPS with the real msgraph-sdk-go client.

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	buildOnce sync.Once
	handler   string
	buildErr  error
)

func handlerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := localstack.ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "entrasync-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		handler, buildErr = localstack.BuildHandler(context.Background(), root, dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return handler
}

type e2e struct {
	t      *testing.T
	ctx    context.Context
	stack  *localstack.Stack
	conn   string
	prefix string
}

func start(t *testing.T, g graphsim.Config, host devhost.Options, settings ...map[string]string) *e2e {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	conn := testenv.Storage(t)
	prefix := testenv.UniqueName(t, "e2e")
	host.DisableTimers = true
	appSettings := map[string]string{"LOG_LEVEL": "warn"}
	for _, m := range settings {
		for k, v := range m {
			appSettings[k] = v
		}
	}
	// Later delta rounds send a cleared property as null, as Graph does.
	g.NullForClearedProperties = true
	st, err := localstack.Start(ctx, localstack.Options{
		Handler: handlerBinary(t), StorageConnectionString: conn, TablePrefix: prefix,
		LogContainer: strings.ToLower(prefix), Graph: g, Host: host,
		Settings: appSettings,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &e2e{t: t, ctx: ctx, stack: st, conn: conn, prefix: prefix}
}

// sync starts a run through the API and waits for it to end.
func (e *e2e) sync(full bool) localstack.RunInfo {
	e.t.Helper()
	id, err := e.stack.SyncNow(e.ctx, full)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.wait(id)
}

func (e *e2e) wait(id string) localstack.RunInfo {
	e.t.Helper()
	run, err := e.stack.WaitRun(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return run
}

// directory reads the synced directory straight from Table Storage.
func (e *e2e) directory() map[string]dirsync.User {
	e.t.Helper()
	store, err := table.New(table.Config{ConnectionString: e.conn, TablePrefix: e.prefix})
	if err != nil {
		e.t.Fatal(err)
	}
	eng := &dirsync.Engine{Store: store}
	out := map[string]dirsync.User{}
	q := dirsync.UserQuery{Limit: 100}
	for {
		users, next, err := eng.ListUsers(e.ctx, q)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, u := range users {
			out[u.ID] = u
		}
		if next == "" {
			return out
		}
		q.Token = next
	}
}

// expected maps the simulator's ground truth through the default mapping.
func expected(users []graphsim.User) map[string]map[string]string {
	str := func(v any) string {
		switch v := v.(type) {
		case string:
			return strings.TrimSpace(v)
		case []string:
			return strings.Join(v, "; ")
		case bool:
			return fmt.Sprint(v)
		}
		return ""
	}
	out := map[string]map[string]string{}
	for _, u := range users {
		f := map[string]string{}
		for _, m := range dirsync.DefaultSettings().Mapping {
			v := str(u.Attributes[m.Source])
			if v == "" && m.Fallback != "" {
				v = str(u.Attributes[m.Fallback])
			}
			if v != "" {
				f[m.Field] = v
			}
		}
		out[u.ID] = f
	}
	return out
}

// checkDirectory compares the directory with the simulator: every user with
// its mapped fields; per email exactly one active user, the rest duplicates.
func (e *e2e) checkDirectory() map[string]dirsync.User {
	e.t.Helper()
	dir := e.directory()
	want := expected(e.stack.Graph.Tenant().Users())
	got := map[string]map[string]string{}
	byEmail := map[string][]dirsync.User{}
	for id, u := range dir {
		got[id] = u.Fields
		if u.Status == dirsync.StatusSkipped {
			e.t.Errorf("user %s skipped: %s", id, u.Reason)
		}
		byEmail[u.Email] = append(byEmail[u.Email], u)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		e.t.Errorf("directory differs from the simulator's ground truth (-want +got):\n%s", diff)
	}
	for email, us := range byEmail {
		active := 0
		for _, u := range us {
			if u.Status == dirsync.StatusActive {
				active++
			}
		}
		if active != 1 {
			e.t.Errorf("email %s: %d active users among %d, want exactly 1", email, active, len(us))
		}
	}
	return dir
}

func count(dir map[string]dirsync.User, status string) int64 {
	n := int64(0)
	for _, u := range dir {
		if u.Status == status {
			n++
		}
	}
	return n
}

func TestFullThenIncrementalSyncEqualsGroundTruth(t *testing.T) {
	e := start(t, graphsim.Config{Users: 1200, Seed: 7, PageSize: 100}, devhost.Options{})
	run := e.sync(false)
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
		t.Fatalf("first run %s/%s: %s %s", run.Status, run.Mode, run.Error, run.Hint)
	}
	dir := e.checkDirectory()
	dups := count(dir, dirsync.StatusDuplicate)
	if dups == 0 {
		t.Errorf("the generated tenant shares some emails; expected duplicates")
	}
	if diff := cmp.Diff(map[string]int64{"seen": 1200, "added": 1200 - dups, "duplicate": dups},
		nonZero(run.Counters)); diff != "" {
		t.Errorf("first run counters (-want +got):\n%s", diff)
	}

	tenant := e.stack.Graph.Tenant()
	users := tenant.Users()
	for i := range 3 {
		if _, err := tenant.AddUser(graphsim.User{Attributes: map[string]any{
			"displayName": fmt.Sprintf("Nouveau Ünïcode %d", i), "mail": fmt.Sprintf("nouveau%d@contoso.example", i),
			"userPrincipalName": fmt.Sprintf("nouveau%d@contoso.example", i), "department": "Finance", "jobTitle": "Senior Manager",
		}}); err != nil {
			t.Fatal(err)
		}
	}
	// Pick active users whose email nobody else has, so the counts are plain
	// (deleting a user whose email a duplicate waits for promotes that one).
	perEmail := map[string]int{}
	for _, u := range dir {
		perEmail[u.Email]++
	}
	var active []string
	for _, u := range users {
		if d := dir[u.ID]; d.Status == dirsync.StatusActive && perEmail[d.Email] == 1 {
			active = append(active, u.ID)
		}
	}
	sort.Strings(active)
	must(t, tenant.UpdateUser(active[0], map[string]any{"jobTitle": "Chief Coffee Officer"}))
	must(t, tenant.UpdateUser(active[1], map[string]any{"city": nil, "department": "Finance"}))
	must(t, tenant.SoftDeleteUser(active[2]))
	must(t, tenant.SoftDeleteUser(active[3]))
	must(t, tenant.HardDeleteUser(active[4]))
	run = e.sync(false)
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("second run %s/%s: %s", run.Status, run.Mode, run.Error)
	}
	if diff := cmp.Diff(map[string]int64{"seen": 8, "added": 3, "updated": 2, "deleted": 3}, nonZero(run.Counters)); diff != "" {
		t.Errorf("incremental counters (-want +got):\n%s", diff)
	}
	e.checkDirectory()

	must(t, tenant.RestoreUser(active[2]))
	run = e.sync(false)
	if diff := cmp.Diff(map[string]int64{"seen": 1, "added": 1}, nonZero(run.Counters)); diff != "" {
		t.Errorf("restore counters (-want +got):\n%s", diff)
	}
	e.checkDirectory()

	// A duplicate is picked up when the user holding its email leaves, and a
	// user missing a required attribute is skipped with the reason.
	dir = e.directory()
	var owner, waiting string
	for id, u := range dir {
		if u.Status == dirsync.StatusDuplicate {
			owner, waiting = u.DuplicateOf, id
			break
		}
	}
	must(t, tenant.HardDeleteUser(owner))
	noName, err := tenant.AddUser(graphsim.User{Attributes: map[string]any{"mail": "nameless@contoso.example", "userPrincipalName": "nameless@contoso.example"}})
	must(t, err)
	run = e.sync(false)
	if diff := cmp.Diff(map[string]int64{"seen": 2, "deleted": 1, "skipped": 1}, nonZero(run.Counters)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	dir = e.directory()
	if u := dir[waiting]; u.Status != dirsync.StatusActive {
		t.Errorf("duplicate %s is %s after its email's owner left, want active", waiting, u.Status)
	}
	if u := dir[noName.ID]; u.Status != dirsync.StatusSkipped || !strings.Contains(u.Reason, "displayName") {
		t.Errorf("user without a display name: %s %q, want skipped naming displayName", u.Status, u.Reason)
	}
	if log := e.log(run.ID, "event=skipped,duplicate_resolved&format=csv"); !strings.Contains(log, "duplicate_resolved") || !strings.Contains(log, "missing required attribute") {
		t.Errorf("run log (CSV) lacks the skip or the resolution:\n%s", log)
	}
}

func TestHealthThroughTheHost(t *testing.T) {
	e := start(t, graphsim.Config{}, devhost.Options{})
	resp, body, err := e.stack.Do(e.ctx, "", http.MethodGet, "/health", nil, nil)
	must(t, err)
	var h struct {
		Version string            `json:"version"`
		Checks  map[string]string `json:"checks"`
	}
	must(t, jsonUnmarshal(body, &h))
	if resp.StatusCode != http.StatusOK || h.Version == "" {
		t.Errorf("GET /api/health: %d %s", resp.StatusCode, body)
	}
	// Anything else needs a key the host accepts.
	if code, _ := e.stack.Call(e.ctx, "", http.MethodGet, "/status", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/status without a key: %d, want 401", code)
	}
	if code, _ := e.stack.Call(e.ctx, "wrong-key", http.MethodGet, "/status", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/status with a wrong key: %d, want 401", code)
	}
}

func nonZero(c localstack.Counters) map[string]int64 {
	out := map[string]int64{}
	for k, v := range c {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestExpiredTokenInEachFormLeadsToFullResync(t *testing.T) {
	e := start(t, graphsim.Config{Users: 150, Seed: 3, PageSize: 50}, devhost.Options{})
	if run := e.sync(false); run.Status != dirsync.RunSucceeded {
		t.Fatalf("first run: %s %s", run.Status, run.Error)
	}
	tenant := e.stack.Graph.Tenant()
	for _, form := range []string{graphsim.KindExpired400, graphsim.KindExpiredResync, graphsim.KindExpired410} {
		t.Run(form, func(t *testing.T) {
			// A user deleted while the token is unusable must still go.
			dir := e.directory()
			var victim string
			for _, u := range tenant.Users() {
				if dir[u.ID].Status == dirsync.StatusActive {
					victim = u.ID
					break
				}
			}
			must(t, tenant.HardDeleteUser(victim))
			tenant.SetFault(graphsim.Fault{Route: "users/delta", Kind: form, Count: 1})
			run := e.sync(false)
			if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
				t.Fatalf("run %s/%s: %s %s", run.Status, run.Mode, run.Error, run.Hint)
			}
			if run.Counters["deleted"] != 1 {
				t.Errorf("deleted = %d, want 1 (the user removed while the token was expired)", run.Counters["deleted"])
			}
			e.checkDirectory()
			log := e.log(run.ID, "event=delta_token_expired")
			if !strings.Contains(log, "full sync starts now") {
				t.Errorf("run log does not explain the expiry:\n%s", log)
			}
		})
	}
}

func (e *e2e) log(runID, filter string) string {
	e.t.Helper()
	resp, body, err := e.stack.Do(e.ctx, e.stack.SupportKey, http.MethodGet, "/runs/"+runID+"/log?"+filter, nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("log: %v %v %s", err, resp, body)
	}
	return string(body)
}

func TestThrottlingIsRescheduledAndFinishes(t *testing.T) {
	e := start(t, graphsim.Config{Users: 300, Seed: 5, PageSize: 50}, devhost.Options{})
	tenant := e.stack.Graph.Tenant()
	// A storm of short throttles (retried in-call), then one long
	// Retry-After, which must come back as a scheduled message, not a sleep.
	tenant.SetFault(graphsim.Fault{Route: "users/delta", Kind: graphsim.KindThrottle, RetryAfter: time.Second, Count: 6})
	began := time.Now()
	id, err := e.stack.SyncNow(e.ctx, false)
	must(t, err)
	time.Sleep(500 * time.Millisecond)
	tenant.SetFault(graphsim.Fault{Route: "users/delta", Kind: graphsim.KindThrottle, RetryAfter: 12 * time.Second, Count: 1})
	run := e.wait(id)
	if run.Status != dirsync.RunSucceeded || run.Counters["seen"] != 300 {
		t.Fatalf("run %s seen %d: %s", run.Status, run.Counters["seen"], run.Error)
	}
	if time.Since(began) < 12*time.Second {
		t.Errorf("run finished in %s, before the 12s Retry-After", time.Since(began))
	}
	if log := e.log(id, "event=throttled"); !strings.Contains(log, "retrying in") {
		t.Errorf("no throttled line in the log:\n%s", log)
	}
	e.checkDirectory()
}

// TestRedeliveryAndKilledHandlerKeepCountsExact fails Graph calls and kills
// the handler process in the middle of a run: work items are redelivered,
// and the counts and data still come out exact.
func TestRedeliveryAndKilledHandlerKeepCountsExact(t *testing.T) {
	e := start(t, graphsim.Config{Users: 600, Seed: 11, PageSize: 50, PageLatency: 150 * time.Millisecond},
		devhost.Options{RedeliveryDelay: 200 * time.Millisecond, RestartDelay: 200 * time.Millisecond})
	tenant := e.stack.Graph.Tenant()
	tenant.SetFault(graphsim.Fault{Route: "users/delta", Kind: graphsim.KindStatus, Status: 503, Fraction: 0.3})
	id, err := e.stack.SyncNow(e.ctx, false)
	must(t, err)
	time.Sleep(time.Second)
	killHandler(t, handlerBinary(t))
	time.Sleep(time.Second)
	killHandler(t, handlerBinary(t))
	run := e.wait(id)
	tenant.ClearFaults()
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run %s: %s %s", run.Status, run.Error, run.Hint)
	}
	dir := e.checkDirectory()
	dups := count(dir, dirsync.StatusDuplicate)
	if diff := cmp.Diff(map[string]int64{"seen": 600, "added": 600 - dups, "duplicate": dups}, nonZero(run.Counters)); diff != "" {
		t.Errorf("counters after redelivery (-want +got):\n%s", diff)
	}
}

// killHandler sends SIGKILL to the running handler process(es) started from
// binary, as a crashed worker would die.
func killHandler(t *testing.T, binary string) {
	t.Helper()
	want, _ := filepath.EvalSymlinks(binary)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	killed := 0
	for _, p := range procs {
		exe, err := os.Readlink(p)
		if err != nil || exe != want {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Logf("no handler process found to kill (%s)", want)
	}
}

func TestDeletionThresholdBlocksAndApprovalApplies(t *testing.T) {
	e := start(t, graphsim.Config{Users: 100, Seed: 13, PageSize: 50}, devhost.Options{})
	e.sync(false)
	// Lower the threshold through the API.
	resp, body, err := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodGet, "/settings", nil, nil)
	must(t, err)
	var s dirsync.Settings
	must(t, jsonUnmarshal(body, &s))
	s.DeletionThreshold = dirsync.DeletionThreshold{Enabled: true, MaxCount: 3}
	resp, body, err = e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", s, http.Header{"If-Match": {resp.Header.Get("ETag")}})
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", resp.StatusCode, body)
	}
	tenant := e.stack.Graph.Tenant()
	dir := e.directory()
	deleted := 0
	for _, u := range tenant.Users() {
		if deleted < 5 && dir[u.ID].Status == dirsync.StatusActive {
			must(t, tenant.HardDeleteUser(u.ID))
			deleted++
		}
	}
	run := e.sync(false)
	if run.Status != dirsync.RunBlocked {
		t.Fatalf("run %s, want blocked", run.Status)
	}
	if got := len(e.directory()); got != len(dir) {
		t.Fatalf("directory shrank from %d to %d before approval", len(dir), got)
	}
	var st struct {
		Actions []struct{ Code, Message, Hint string } `json:"actions"`
	}
	code, err := e.stack.Call(e.ctx, e.stack.SupportKey, http.MethodGet, "/status", nil, &st)
	must(t, err)
	if code != 200 || len(st.Actions) == 0 || !strings.Contains(st.Actions[0].Hint, "approve") {
		t.Errorf("status %d actions %+v: want the blocked deletions explained", code, st.Actions)
	}
	if code, _ := e.stack.Call(e.ctx, e.stack.SupportKey, http.MethodPost, "/runs/"+run.ID+"/deletions/approve", nil, nil); code != http.StatusForbidden {
		t.Errorf("support approving: %d, want 403", code)
	}
	if code, err := e.stack.Call(e.ctx, e.stack.AdminKey, http.MethodPost, "/runs/"+run.ID+"/deletions/approve", nil, nil); err != nil || code >= 300 {
		t.Fatalf("approve: %d %v", code, err)
	}
	run = e.wait(run.ID)
	if run.Status != dirsync.RunSucceeded || run.Counters["deleted"] != 5 {
		t.Errorf("after approval: %s deleted %d", run.Status, run.Counters["deleted"])
	}
	e.checkDirectory()
}

func TestOneRunAtATimeDisableEnableAndReset(t *testing.T) {
	e := start(t, graphsim.Config{Users: 200, Seed: 17, PageSize: 50, PageLatency: 100 * time.Millisecond}, devhost.Options{})
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = e.stack.Call(e.ctx, e.stack.AdminKey, http.MethodPost, "/sync", nil, nil)
		}()
	}
	wg.Wait()
	sort.Ints(codes)
	if diff := cmp.Diff([]int{http.StatusAccepted, http.StatusConflict}, codes); diff != "" {
		t.Fatalf("two Sync now at once (-want +got):\n%s", diff)
	}
	var runs struct {
		Runs []localstack.RunInfo `json:"runs"`
	}
	_, err := e.stack.Call(e.ctx, e.stack.AdminKey, http.MethodGet, "/runs", nil, &runs)
	must(t, err)
	if len(runs.Runs) != 1 {
		t.Fatalf("runs = %+v", runs.Runs)
	}
	e.wait(runs.Runs[0].ID)
	before := e.directory()

	setEnabled := func(on bool) {
		resp, body, err := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodGet, "/settings", nil, nil)
		must(t, err)
		var s dirsync.Settings
		must(t, jsonUnmarshal(body, &s))
		s.Enabled = on
		resp, body, err = e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", s, http.Header{"If-Match": {resp.Header.Get("ETag")}})
		must(t, err)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT settings: %d %s", resp.StatusCode, body)
		}
	}
	setEnabled(false)
	if code, _ := e.stack.Call(e.ctx, e.stack.AdminKey, http.MethodPost, "/sync", nil, nil); code != http.StatusConflict {
		t.Errorf("Sync now while disabled: %d, want 409", code)
	}
	if diff := cmp.Diff(before, e.directory()); diff != "" {
		t.Errorf("disabling changed the directory (-want +got):\n%s", diff)
	}
	setEnabled(true)
	e.stack.Graph.Tenant().AddUser(graphsim.User{Attributes: map[string]any{"displayName": "Late Joiner", "mail": "late@contoso.example", "userPrincipalName": "late@contoso.example"}})
	if run := e.sync(false); run.Mode != dirsync.ModeDelta || run.Counters["added"] != 1 {
		t.Errorf("after enabling: %s added %d, want a delta run adding 1", run.Mode, run.Counters["added"])
	}

	var reset struct{ Run localstack.RunInfo }
	code, err := e.stack.Call(e.ctx, e.stack.AdminKey, http.MethodPost, "/reset", nil, &reset)
	if err != nil || code != http.StatusAccepted || reset.Run.Mode != dirsync.ModeFull {
		t.Fatalf("reset: %d %v %+v", code, err, reset.Run)
	}
	if run := e.wait(reset.Run.ID); run.Status != dirsync.RunSucceeded || run.Counters["added"] != 0 {
		t.Errorf("reset run: %s %+v", run.Status, run.Counters)
	}
	e.checkDirectory()
}
