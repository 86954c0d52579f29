package dirsync_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// Tests for the review's findings (docs/architecture.md, "Findings"); the
// concurrency ones are also explored by TestSimulation.

// Finding 3: saved settings read back exactly as written.
func TestSettingsReadBackAsWritten(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, etag, _ := e.Engine.Settings(ctx)
	s.Mapping = []dirsync.FieldMapping{{Field: "company", Constant: "Contoso"}, {Field: "email", Source: "mail"}, {Field: "displayName", Source: "displayName"}}
	s.Required = []string{"email"}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	got, etag, err := e.Engine.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Mapping, got.Mapping); diff != "" {
		t.Errorf("mapping read back (-want +got):\n%s", diff)
	}
	if _, err := e.Engine.PutSettings(ctx, got, etag, "admin"); err != nil {
		t.Errorf("saving what was read: %v", err)
	}
}

// Finding 6: field names are case-sensitive, and a wrong case is refused
// with the right spelling.
func TestRequiredFieldCaseIsChecked(t *testing.T) {
	s := dirsync.DefaultSettings()
	s.Required = []string{"EMAIL"}
	err := s.Validate()
	if !dirsync.IsCode(err, dirsync.EINVALID) || !strings.Contains(err.Error(), `did you mean "email"`) {
		t.Errorf("Validate = %v", err)
	}
}

// Finding 5: users without an email are not duplicates of one another.
func TestUsersWithoutEmailAreNotDuplicates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, etag, _ := e.Engine.Settings(ctx)
	s.Required = []string{"displayName"}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		p := person(i)
		delete(p, "mail")
		delete(p, "userPrincipalName")
		e.Source.Put(uid(i), p)
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if diff := cmp.Diff(dirsync.Counters{Seen: 3, Added: 3}, counters(run)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// Finding 4: an email moving between two users in one page.
func TestEmailMovingBetweenUsersInOnePage(t *testing.T) {
	e := newEnv(t)
	e.Source.PageSize = 10
	e.Seed(2)
	e.Sync(dirsynctest.DrainOptions{})
	a, b := person(1), person(2)
	a["mail"], b["mail"] = "user2@contoso.example", "new2@contoso.example"
	e.Source.Put(uid(1), a)
	e.Source.Put(uid(2), b)
	e.Sync(dirsynctest.DrainOptions{})
	if got := e.directory(dirsync.StatusActive); len(got) != 2 {
		t.Errorf("active users = %d, want 2 (no one left a duplicate): %v", len(got), e.directory(dirsync.StatusDuplicate))
	}
}

// Finding 7: one bad value from Graph never fails the run.
func TestBadValuesSkipOrTruncateNeverFailTheRun(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	long := person(4)
	long["jobTitle"] = strings.Repeat("x", 70000)
	e.Source.Put(uid(4), long)
	longMail := person(5)
	longMail["mail"] = strings.Repeat("a", 1100) + "@contoso.example"
	e.Source.Put(uid(5), longMail)
	c1 := person(6)
	c1["mail"] = "c1\u0085@contoso.example"
	e.Source.Put(uid(6), c1)
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run = %s: %s", run.Status, run.Error)
	}
	u4, _ := e.Engine.GetUser(context.Background(), uid(4))
	if u4.Status != dirsync.StatusActive || len(u4.Fields["jobTitle"]) != 2000 {
		t.Errorf("user 4: %s, jobTitle of %d", u4.Status, len(u4.Fields["jobTitle"]))
	}
	u5, _ := e.Engine.GetUser(context.Background(), uid(5))
	if u5.Status != dirsync.StatusSkipped || !strings.Contains(u5.Reason, "cannot be checked for duplicates") {
		t.Errorf("user 5: %s %q", u5.Status, u5.Reason)
	}
	u6, _ := e.Engine.GetUser(context.Background(), uid(6))
	if u6.Status != dirsync.StatusActive {
		t.Errorf("user 6 (C1 control character in the email): %s %q", u6.Status, u6.Reason)
	}
	if !strings.Contains(e.Logs.Text(run.LogName), `"event":"value_truncated"`) {
		t.Errorf("log lacks value_truncated")
	}
}

// Finding 9: a cleared attribute in a partial update keeps its fallback.
func TestClearedAttributeKeepsFallback(t *testing.T) {
	e := newEnv(t)
	e.Source.Partial = true
	e.Seed(2)
	e.Sync(dirsynctest.DrainOptions{})
	p := person(1)
	delete(p, "mail") // mail cleared; userPrincipalName is not sent
	e.Source.Put(uid(1), p)
	run := e.Sync(dirsynctest.DrainOptions{})
	u, _ := e.Engine.GetUser(context.Background(), uid(1))
	if u.Status != dirsync.StatusActive || u.Fields["email"] != "user1@contoso.example" {
		t.Errorf("user 1 after mail cleared: %s %q %v (run %+v)", u.Status, u.Reason, u.Fields, run.Counters)
	}
}

// Finding 11: large settings documents are saved and audited whole.
func TestLargeSettingsAreAudited(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, etag, _ := e.Engine.Settings(ctx)
	for i, n := 0, 100-len(s.Mapping); i < n; i++ {
		s.Mapping = append(s.Mapping, dirsync.FieldMapping{Field: "c" + strings.Repeat("x", 3) + string(rune('a'+i%26)) + strings.Repeat("y", i/26), Constant: strings.Repeat("v", 1000)})
	}
	e.Clock.Advance(time.Second)
	if _, err := e.Engine.PutSettings(ctx, s, etag, "big"); err != nil {
		t.Fatal(err)
	}
	audit, _, _ := e.Engine.ListAudit(ctx, 1, "")
	if len(audit) != 1 || audit[0].Who != "big" {
		t.Fatalf("audit = %+v", audit)
	}
	var after dirsync.Settings
	if err := json.Unmarshal(audit[0].After, &after); err != nil || len(after.Mapping) != 100 {
		t.Errorf("audit after: %d mappings (%v)", len(after.Mapping), err)
	}
}

// Finding 12: a sensitive email and UPN stay out of the log.
func TestSensitiveEmailAndUPNStayOutOfTheLog(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, etag, _ := e.Engine.Settings(ctx)
	for i := range s.Mapping {
		if s.Mapping[i].Field == "email" || s.Mapping[i].Field == "upn" {
			s.Mapping[i].Sensitive = true
		}
	}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	e.Seed(2)
	dup := person(3)
	dup["mail"] = "user1@contoso.example"
	e.Source.Put(uid(3), dup)
	run := e.Sync(dirsynctest.DrainOptions{})
	if log := e.Logs.Text(run.LogName); strings.Contains(log, "@contoso.example") {
		t.Errorf("log holds an email or UPN:\n%s", log)
	}
}

// Finding 14: disabling cancels the run in flight; reset while disabled
// clears the state and starts nothing, and says so.
func TestDisableCancelsAndResetWhileDisabledStartsNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(6)
	e.Sync(dirsynctest.DrainOptions{})
	run, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	s, etag, _ := e.Engine.Settings(ctx)
	s.Enabled = false
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	if got := e.Finish(run.ID, dirsynctest.DrainOptions{}); got.Status != dirsync.RunCancelled {
		t.Errorf("run in flight when disabled: %s, want cancelled", got.Status)
	}
	res, err := e.Engine.Reset(ctx, "admin")
	if err != nil || res.Run != nil || !strings.Contains(res.Message, "nothing started") {
		t.Errorf("reset while disabled = %+v, %v", res, err)
	}
	if d, _ := e.Engine.DeltaState(ctx); d.Link != "" {
		t.Errorf("reset kept the delta token")
	}
}

// Finding 13: a run that is finishing can no longer be cancelled, so the
// token never moves for a cancelled run.
func TestCancelWhileFinishingIsRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.Seed(3)
	run, _ := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual})
	var cancelErr error
	e.Drain(dirsynctest.DrainOptions{Before: func(m dirsync.Message, _ int) error {
		if strings.Contains(m.ID, "-finish-") && cancelErr == nil {
			_, cancelErr = e.Engine.CancelRun(ctx, run.ID, "admin")
			if cancelErr == nil {
				cancelErr = errNone
			}
		}
		return nil
	}})
	got, _ := e.Engine.GetRun(ctx, run.ID)
	if !dirsync.IsCode(cancelErr, dirsync.ECONFLICT) || got.Status != dirsync.RunSucceeded {
		t.Errorf("cancel during finish: %v; run %s", cancelErr, got.Status)
	}
}

var errNone = &dirsync.Error{Code: "none"}

// Finding 2 (and 15): a restart to a full enumeration counts each user once.
func TestRestartCountsSeenOnce(t *testing.T) {
	e := newEnv(t)
	e.Seed(9)
	e.Sync(dirsynctest.DrainOptions{})
	e.Source.Put(uid(10), person(10))
	e.Source.Errs = []error{&dirsync.Error{Code: dirsync.ETOKENEXPIRED, Message: "expired"}}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Restarts != 1 || run.Counters.Seen != 10 {
		t.Errorf("run = %s restarts %d seen %d, want succeeded, 1, 10", run.Status, run.Restarts, run.Counters.Seen)
	}
}

// A page fetched again after its first fetch recorded its successor (the
// first attempt failed while applying it) is the same page when it holds
// the same users, even if Graph words its next link anew, as the local
// Graph simulator does: the run goes on from the recorded link instead of
// reading the whole round again. When it holds other users, the round is
// read again (one restart), and the directory is exact either way.
func TestRefetchedPageIsComparedByItsUsers(t *testing.T) {
	for _, tc := range []struct {
		name string
		// otherUsers makes Graph answer the retried link from another round.
		otherUsers   bool
		wantRestarts int64
	}{
		{name: "same users, new link", wantRestarts: 0},
		{name: "other users", otherUsers: true, wantRestarts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"full", "delta"} {
				e := newEnv(t)
				e.Source.FreshLinks = true
				e.Seed(250) // three pages of 100
				if mode == "delta" {
					e.Sync(dirsynctest.DrainOptions{})
					for i := 1; i <= 250; i += 2 {
						e.setPerson(i, func(p map[string]string) { p["jobTitle"] = "Changed" })
					}
				}
				failed, reverse := false, tc.otherUsers
				run := e.Sync(dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
					w, err := dirsync.DecodeWorkItem(m.Body)
					if err == nil && w.Kind == dirsync.WorkPage && w.Seq == 1 && !failed {
						// The users' batch of page 1 fails after its
						// successor was recorded.
						failed = true
						e.Store.FailTable, e.Store.FailNext = dirsync.TableUsers, &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "storage is down"}
					} else if failed && reverse && e.Store.FailNext == nil && w.Kind == dirsync.WorkPage && w.Seq == 1 {
						// Before page 1's retry.
						e.Source.ReverseRounds()
						reverse = false
					}
					return nil
				}})
				if !failed {
					t.Fatalf("%s: page 1 was never delivered", mode)
				}
				if run.Status != dirsync.RunSucceeded || run.Restarts != tc.wantRestarts {
					t.Errorf("%s: run %s with %d restarts (%s), want succeeded with %d", mode, run.Status, run.Restarts, run.Error, tc.wantRestarts)
				}
				if diff := cmp.Diff(e.want(), e.directory("active")); diff != "" {
					t.Errorf("%s: directory (-want +got):\n%s", mode, diff)
				}
			}
		})
	}
}
