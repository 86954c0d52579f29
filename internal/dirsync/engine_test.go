package dirsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// env is the engine on the in-memory doubles, with directory and want to
// compare what it wrote with the source.
type env struct{ *dirsynctest.Env }

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dirsynctest.NewEngine(t)}
	// Tiny tenants would trip the default percentage threshold; the
	// threshold has tests of its own.
	setThreshold(t, e, dirsync.DeletionThreshold{Enabled: true, MaxCount: 100, MaxPercent: 50})
	return e
}

func uid(n int) string { return dirsynctest.UserID(n) }

func person(n int) map[string]string { return dirsynctest.Person(n) }

// putWithWaiters puts users 1..total in the source, the last `waiting` of
// them with the email of users 1..waiting: each waits, as a duplicate, for
// the user whose email it shares.
func putWithWaiters(e *env, total, waiting int) {
	for n := 1; n <= total; n++ {
		p := person(n)
		if n > total-waiting {
			p["mail"] = person(n - (total - waiting))["mail"]
		}
		e.Source.Put(uid(n), p)
	}
}

// directory returns active users' fields by id.
func (e *env) directory(status string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, ent := range e.Store.Rows(dirsync.TableUsers) {
		if ent.Str("status") != status {
			continue
		}
		f := map[string]string{}
		for k, v := range ent.Props {
			if strings.HasPrefix(k, "f_") {
				f[k[2:]] = v.(string)
			}
		}
		out[ent.RowKey] = f
	}
	return out
}

// want maps source users through the default mapping.
func (e *env) want() map[string]map[string]string {
	out := map[string]map[string]string{}
	for id, a := range e.Source.Users() {
		f := map[string]string{}
		for _, m := range dirsync.DefaultSettings().Mapping {
			v := a[m.Source]
			if v == "" {
				v = a[m.Fallback]
			}
			if v != "" {
				f[m.Field] = v
			}
		}
		out[id] = f
	}
	return out
}

func counters(r dirsync.Run) dirsync.Counters { c := r.Counters; c.SkippedBy = nil; return c }

func TestFirstFullSyncEqualsSource(t *testing.T) {
	e := newEnv(t)
	e.Seed(10)
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull {
		t.Fatalf("run = %s/%s (%s), want succeeded/full", run.Status, run.Mode, run.Error)
	}
	if diff := cmp.Diff(e.want(), e.directory(dirsync.StatusActive)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dirsync.Counters{Seen: 10, Added: 10}, counters(run)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if !strings.Contains(e.Logs.Text(run.LogName), `"event":"run_finished"`) {
		t.Errorf("log lacks run_finished:\n%s", e.Logs.Text(run.LogName))
	}
}

func TestIncrementalRoundAppliesEveryKindOfChange(t *testing.T) {
	e := newEnv(t)
	e.Seed(10)
	e.Sync(dirsynctest.DrainOptions{})

	e.Source.Put(uid(11), person(11)) // added
	p := person(2)
	p["jobTitle"] = "Senior Manager"
	e.Source.Put(uid(2), p)                         // changed
	e.Source.Remove(uid(3), dirsync.RemovedChanged) // soft delete
	e.Source.Remove(uid(4), dirsync.RemovedDeleted) // hard delete
	e.Source.Remove(uid(5), dirsync.RemovedChanged) // soft delete ...
	e.Source.Put(uid(5), person(5))                 // ... then restored
	e.Source.Put(uid(6), person(6))                 // touched, nothing mapped changed
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run = %s/%s (%s), want succeeded/delta", run.Status, run.Mode, run.Error)
	}
	if diff := cmp.Diff(e.want(), e.directory(dirsync.StatusActive)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dirsync.Counters{Seen: 6, Added: 1, Updated: 1, Unchanged: 2, Deleted: 2}, counters(run)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	log := e.Logs.Text(run.LogName)
	for _, wantLine := range []string{`"event":"updated"`, `"field":"jobTitle","old":"Engineer","new":"Senior Manager"`, `"event":"deleted"`} {
		if !strings.Contains(log, wantLine) {
			t.Errorf("log lacks %s:\n%s", wantLine, log)
		}
	}
}

func TestDeletedUserLeavesEveryGroup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.Seed(3)
	e.Sync(dirsynctest.DrainOptions{})
	for _, g := range []string{uid(900), uid(901)} {
		e.AddMember(g, uid(1))
		e.AddMember(g, uid(2))
	}
	e.Source.Remove(uid(1), dirsync.RemovedDeleted)
	e.Sync(dirsynctest.DrainOptions{})
	if _, err := e.Engine.UserGroups(ctx, uid(1)); !dirsync.IsCode(err, dirsync.ENOTFOUND) {
		t.Errorf("groups of a deleted user: %v, want not_found", err)
	}
	groups, err := e.Engine.UserGroups(ctx, uid(2))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{uid(900), uid(901)}, groups); diff != "" {
		t.Errorf("groups of user 2 (-want +got):\n%s", diff)
	}
	members, _, err := e.Engine.GroupMembersPage(ctx, uid(900), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{uid(2)}, members); diff != "" {
		t.Errorf("members of group 900 (-want +got):\n%s", diff)
	}
}

func TestDuplicatesFlaggedAndResolved(t *testing.T) {
	e := newEnv(t)
	e.Seed(4)
	dup := person(2)
	dup["mail"] = "  USER1@Contoso.example " // same email as user 1 after normalizing
	e.Source.Put(uid(2), dup)
	run := e.Sync(dirsynctest.DrainOptions{})
	if diff := cmp.Diff(dirsync.Counters{Seen: 4, Added: 3, Duplicate: 1}, counters(run)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	u, err := e.Engine.GetUser(context.Background(), uid(2))
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != dirsync.StatusDuplicate || u.DuplicateOf != uid(1) || !strings.Contains(u.Reason, "user1@contoso.example") {
		t.Errorf("user 2 = %+v, want duplicate of user 1", u)
	}
	if !strings.Contains(e.Logs.Text(run.LogName), `"event":"duplicate"`) {
		t.Errorf("log lacks the duplicate line")
	}

	// The owner leaves: the duplicate is picked up automatically.
	e.Source.Remove(uid(1), dirsync.RemovedDeleted)
	run = e.Sync(dirsynctest.DrainOptions{})
	u, _ = e.Engine.GetUser(context.Background(), uid(2))
	if u.Status != dirsync.StatusActive {
		t.Errorf("after the owner left, user 2 is %s (%s), want active", u.Status, u.Reason)
	}
	if !strings.Contains(e.Logs.Text(run.LogName), `"event":"duplicate_resolved"`) {
		t.Errorf("log lacks duplicate_resolved:\n%s", e.Logs.Text(run.LogName))
	}
}

func TestRequiredAttributeSkips(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	p := person(2)
	delete(p, "displayName")
	e.Source.Put(uid(2), p)
	run := e.Sync(dirsynctest.DrainOptions{})
	if diff := cmp.Diff(dirsync.Counters{Seen: 3, Added: 2, Skipped: 1, SkippedBy: map[string]int64{"displayName": 1}}, run.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	u, _ := e.Engine.GetUser(context.Background(), uid(2))
	if u.Status != dirsync.StatusSkipped || !strings.Contains(u.Reason, "displayName (Graph displayName)") {
		t.Errorf("user 2 = %s %q", u.Status, u.Reason)
	}
}

func TestEveryUserSkippedFailsTheRunNamingTheField(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 4; i++ {
		p := person(i)
		delete(p, "mail")
		delete(p, "userPrincipalName")
		e.Source.Put(uid(i), p)
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunFailed || !strings.Contains(run.Error, "email (Graph mail or userPrincipalName)") || !strings.Contains(run.Hint, `"email"`) {
		t.Errorf("run = %s %q %q", run.Status, run.Error, run.Hint)
	}
	if _, err := e.Engine.StartRun(context.Background(), dirsync.StartRequest{Trigger: dirsync.TriggerManual}); err != nil {
		t.Errorf("lock not released after failure: %v", err)
	}
}

// failingStore fails every n-th write once, like a worker dying mid-page.
type failingStore struct {
	*dirsynctest.Store
	n, calls int
}

func (f *failingStore) tick(table string) error {
	if table == dirsync.TableRuns || table == dirsync.TableState || table == dirsync.TableSettings {
		return nil
	}
	f.calls++
	if f.calls%f.n == 0 {
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "injected crash"}
	}
	return nil
}

func (f *failingStore) Batch(ctx context.Context, table string, ops []dirsync.BatchOp) error {
	if err := f.tick(table); err != nil {
		return err
	}
	return f.Store.Batch(ctx, table, ops)
}

func (f *failingStore) Insert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	if err := f.tick(table); err != nil {
		return "", err
	}
	return f.Store.Insert(ctx, table, e)
}

func TestRedeliveryAndCrashesKeepCountsExact(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   dirsynctest.DrainOptions
		crash int
	}{
		{name: "every item delivered twice", opt: dirsynctest.DrainOptions{Duplicate: true}},
		{name: "writes fail mid-page", crash: 7},
		{name: "both", opt: dirsynctest.DrainOptions{Duplicate: true}, crash: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.crash > 0 {
				e.Engine.Store = &failingStore{Store: e.Store, n: tc.crash}
			}
			e.Seed(20)
			dup := person(7)
			dup["mail"] = "user3@contoso.example"
			e.Source.Put(uid(7), dup)
			run := e.Sync(tc.opt)
			if diff := cmp.Diff(dirsync.Counters{Seen: 20, Added: 19, Duplicate: 1}, counters(run)); diff != "" {
				t.Errorf("full run counters (-want +got):\n%s", diff)
			}
			e.Source.Put(uid(21), person(21))
			p := person(8)
			p["city"] = "Oslo"
			e.Source.Put(uid(8), p)
			e.Source.Remove(uid(9), dirsync.RemovedDeleted)
			run = e.Sync(tc.opt)
			if run.Status != dirsync.RunSucceeded {
				t.Fatalf("run %s: %s", run.Status, run.Error)
			}
			if diff := cmp.Diff(dirsync.Counters{Seen: 3, Added: 1, Updated: 1, Deleted: 1}, counters(run)); diff != "" {
				t.Errorf("delta run counters (-want +got):\n%s", diff)
			}
			// Users 3 and 7 share an email: whichever claimed it first (crashes
			// decide the order) is active, the other a duplicate.
			dups := e.directory(dirsync.StatusDuplicate)
			if len(dups) != 1 || (dups[uid(3)] == nil && dups[uid(7)] == nil) {
				t.Fatalf("duplicates = %v, want one of users 3 and 7", dups)
			}
			want := e.want()
			for id := range dups {
				delete(want, id)
			}
			if diff := cmp.Diff(want, e.directory(dirsync.StatusActive)); diff != "" {
				t.Errorf("directory (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExpiredTokenLeadsToFullResyncWithSweep(t *testing.T) {
	e := newEnv(t)
	e.Seed(8)
	e.Sync(dirsynctest.DrainOptions{})
	e.Source.Remove(uid(3), dirsync.RemovedDeleted)
	e.Source.Put(uid(9), person(9))
	e.Source.Expire()
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeFull || run.Restarts != 1 {
		t.Fatalf("run = %s/%s restarts %d (%s)", run.Status, run.Mode, run.Restarts, run.Error)
	}
	if diff := cmp.Diff(e.want(), e.directory(dirsync.StatusActive)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	if run.Counters.Deleted != 1 || run.Counters.Added != 1 {
		t.Errorf("counters = %+v, want 1 added and 1 deleted", run.Counters)
	}
	if !strings.Contains(e.Logs.Text(run.LogName), "delta_token_expired") {
		t.Errorf("log does not explain the expiry")
	}
	// and the next run is incremental again
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Mode != dirsync.ModeDelta {
		t.Errorf("next run mode = %s, want delta", run.Mode)
	}
}

func TestThrottlingReschedulesInsteadOfSleeping(t *testing.T) {
	e := newEnv(t)
	e.Seed(5)
	throttled := &dirsync.Error{Code: dirsync.ETHROTTLED, Message: "429", RetryAfter: 2 * time.Minute}
	e.Source.Errs = []error{nil, throttled, throttled}
	start := e.Clock.Now()
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Counters.Added != 5 {
		t.Fatalf("run = %s %+v", run.Status, run.Counters)
	}
	if waited := e.Clock.Now().Sub(start); waited < 4*time.Minute {
		t.Errorf("clock advanced %s; the item should have been scheduled 2 x 2 minutes later", waited)
	}
}

func TestPoisonItemFailsTheRunWithAReason(t *testing.T) {
	e := newEnv(t)
	e.Seed(5)
	for range 10 {
		e.Source.Errs = append(e.Source.Errs, &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "Graph answered 503"})
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunFailed || !strings.Contains(run.Error, "503") || run.Hint == "" {
		t.Errorf("run = %s %q %q", run.Status, run.Error, run.Hint)
	}
	if len(e.Queue.Dead) != 1 {
		t.Errorf("dead letters = %d, want 1", len(e.Queue.Dead))
	}
}

func TestPermissionDeniedFailsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	e.Source.Errs = []error{&dirsync.Error{Code: dirsync.EFORBIDDEN, Message: "Graph denied access", Hint: "Grant User.Read.All"}}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunFailed || run.Hint != "Grant User.Read.All" {
		t.Errorf("run = %s %q %q", run.Status, run.Error, run.Hint)
	}
	if e.Source.Calls != 1 {
		t.Errorf("Graph called %d times; a permission error must not be retried", e.Source.Calls)
	}
}

func setThreshold(t *testing.T, e *env, th dirsync.DeletionThreshold) {
	t.Helper()
	s, etag, _ := e.Engine.Settings(context.Background())
	s.DeletionThreshold = th
	if _, err := e.Engine.PutSettings(context.Background(), s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
}

func TestDeletionThresholdBlocksUntilApproved(t *testing.T) {
	ctx := context.Background()
	for _, approve := range []bool{true, false} {
		t.Run(fmt.Sprintf("approve=%v", approve), func(t *testing.T) {
			e := newEnv(t)
			e.Seed(10)
			setThreshold(t, e, dirsync.DeletionThreshold{Enabled: true, MaxCount: 2})
			e.Sync(dirsynctest.DrainOptions{})
			for i := 1; i <= 5; i++ {
				e.Source.Remove(uid(i), dirsync.RemovedDeleted)
			}
			run := e.Sync(dirsynctest.DrainOptions{})
			if run.Status != dirsync.RunBlocked || run.PendingDeletions != 5 {
				t.Fatalf("run = %s pending %d, want blocked with 5", run.Status, run.PendingDeletions)
			}
			if len(e.directory(dirsync.StatusActive)) != 10 {
				t.Fatalf("users deleted before approval")
			}
			if strings.Count(e.Logs.Text(run.LogName), "pending_deletion") != 5 {
				t.Errorf("log should list the 5 pending deletions")
			}
			if _, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerSchedule}); !dirsync.IsCode(err, dirsync.ECONFLICT) {
				t.Errorf("start while blocked: %v, want conflict", err)
			}
			if approve {
				_, err := e.Engine.ApproveDeletions(ctx, run.ID, "admin")
				if err != nil {
					t.Fatal(err)
				}
			} else if _, err := e.Engine.RejectDeletions(ctx, run.ID, "admin"); err != nil {
				t.Fatal(err)
			}
			run = e.Finish(run.ID, dirsynctest.DrainOptions{})
			wantUsers, wantDeleted := 5, int64(5)
			if !approve {
				wantUsers, wantDeleted = 10, 0
			}
			if run.Status != dirsync.RunSucceeded || run.Counters.Deleted != wantDeleted {
				t.Errorf("run = %s deleted %d, want succeeded %d", run.Status, run.Counters.Deleted, wantDeleted)
			}
			if got := len(e.directory(dirsync.StatusActive)); got != wantUsers {
				t.Errorf("directory has %d users, want %d", got, wantUsers)
			}
		})
	}
}

func TestEmptyEnumerationNeverDeletesEverything(t *testing.T) {
	e := newEnv(t)
	e.Seed(5)
	setThreshold(t, e, dirsync.DeletionThreshold{Enabled: false})
	e.Sync(dirsynctest.DrainOptions{})
	for i := 1; i <= 5; i++ {
		e.Source.Remove(uid(i), dirsync.RemovedDeleted)
	}
	run, err := e.Engine.StartRun(context.Background(), dirsync.StartRequest{Trigger: dirsync.TriggerManual, Mode: dirsync.ModeFull})
	if err != nil {
		t.Fatal(err)
	}
	run = e.Finish(run.ID, dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunBlocked || !strings.Contains(run.Error, "no users at all") {
		t.Errorf("run = %s %q, want blocked", run.Status, run.Error)
	}
	if len(e.directory(dirsync.StatusActive)) != 5 {
		t.Errorf("users were deleted")
	}
}

func TestSingleRunLock(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(3)
	first, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual})
	if !dirsync.IsCode(err, dirsync.ECONFLICT) || !strings.Contains(err.Error(), first.ID) {
		t.Fatalf("second start: %v, want conflict naming %s", err, first.ID)
	}
	// A run that stopped heart-beating is stale: a new run may replace it.
	e.Clock.Advance(31 * time.Minute)
	second, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual})
	if err != nil {
		t.Fatalf("start after stale lock: %v", err)
	}
	old, _ := e.Engine.GetRun(ctx, first.ID)
	if old.Status != dirsync.RunFailed || !strings.Contains(old.Error, "heartbeat") {
		t.Errorf("stale run = %s %q", old.Status, old.Error)
	}
	run := e.Finish(second.ID, dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Errorf("second run = %s %s", run.Status, run.Error)
	}
}

func TestDisableKeepsDataAndEnableResumes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(4)
	e.Sync(dirsynctest.DrainOptions{})
	before := e.Store.Rows(dirsync.TableUsers)
	s, etag, _ := e.Engine.Settings(ctx)
	s.Enabled = false
	etag, err := e.Engine.PutSettings(ctx, s, etag, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual}); !dirsync.IsCode(err, dirsync.ECONFLICT) {
		t.Errorf("start while disabled: %v, want conflict", err)
	}
	if diff := cmp.Diff(before, e.Store.Rows(dirsync.TableUsers)); diff != "" {
		t.Errorf("disabling changed the directory (-want +got):\n%s", diff)
	}
	s.Enabled = true
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	e.Source.Put(uid(5), person(5))
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Mode != dirsync.ModeDelta || run.Counters.Added != 1 {
		t.Errorf("after enable: %s added %d, want a delta run adding 1", run.Mode, run.Counters.Added)
	}
}

func TestResetStartsAFullSync(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(4)
	e.Sync(dirsynctest.DrainOptions{})
	res, err := e.Engine.Reset(ctx, "admin")
	if err != nil || res.Run == nil {
		t.Fatal(res, err)
	}
	run := *res.Run
	if run.Mode != dirsync.ModeFull || run.Trigger != dirsync.TriggerReset {
		t.Errorf("reset run = %s/%s", run.Mode, run.Trigger)
	}
	if _, err := e.Engine.Reset(ctx, "admin"); !dirsync.IsCode(err, dirsync.ECONFLICT) {
		t.Errorf("reset during a run: %v, want conflict", err)
	}
	run = e.Finish(run.ID, dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Counters.Unchanged != 4 {
		t.Errorf("reset run = %s %+v", run.Status, run.Counters)
	}
	if len(e.directory(dirsync.StatusActive)) != 4 {
		t.Errorf("reset must not clear the directory")
	}
}

func TestMappingChangeForcesFullRun(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(3)
	e.Sync(dirsynctest.DrainOptions{})
	s, etag, _ := e.Engine.Settings(ctx)
	s.Mapping = append(s.Mapping, dirsync.FieldMapping{Field: "company", Constant: "Contoso"})
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Mode != dirsync.ModeFull || run.Counters.Updated != 3 {
		t.Errorf("run = %s %+v, want full with 3 updated", run.Mode, run.Counters)
	}
	u, _ := e.Engine.GetUser(ctx, uid(1))
	if u.Fields["company"] != "Contoso" {
		t.Errorf("constant not applied: %v", u.Fields)
	}
}

func TestSettingsETagConflict(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Clock.Advance(time.Minute)
	s, etag, _ := e.Engine.Settings(ctx)
	if _, err := e.Engine.PutSettings(ctx, s, etag, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "b"); !dirsync.IsCode(err, dirsync.EPRECONDITION) {
		t.Errorf("stale etag: %v, want precondition_failed", err)
	}
	audit, _, err := e.Engine.ListAudit(ctx, 10, "")
	var who []string
	for _, a := range audit {
		who = append(who, a.Who)
	}
	// newest first; "admin" is newEnv's threshold change
	if diff := cmp.Diff([]string{"a", "admin"}, who); err != nil || diff != "" {
		t.Errorf("audit authors (-want +got):\n%s (err %v)", diff, err)
	}
}

// Graph's later delta rounds may send only the changed attributes, with
// cleared ones as null: the rest must keep their values.
func TestPartialDeltaUpdatesKeepUnsentFields(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	e.Source.Partial = true
	e.Sync(dirsynctest.DrainOptions{})
	p := person(1)
	p["jobTitle"] = "Senior Manager"
	delete(p, "department")
	e.Source.Put(uid(1), p)
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Counters.Updated != 1 {
		t.Fatalf("counters = %+v", run.Counters)
	}
	if diff := cmp.Diff(e.want(), e.directory(dirsync.StatusActive)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

func TestValidKeyCountsUTF16(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{strings.Repeat("a", 512), true},
		{strings.Repeat("a", 513), false},
		{strings.Repeat("é", 512), true}, // 1024 bytes, 512 units
		{strings.Repeat("😀", 256), true},
		{strings.Repeat("😀", 257), false},
		{"a/b", false}, {"a#b", false}, {"a?b", false}, {"a\\b", false}, {"a\x01b", false}, {"", false},
	} {
		if got := dirsync.ValidKey(tc.key) == ""; got != tc.ok {
			t.Errorf("ValidKey(%.20q...) ok = %v, want %v", tc.key, got, tc.ok)
		}
	}
}
