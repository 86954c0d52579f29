package dirsync_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

func stepsText(r dirsync.OnDemandResult) string {
	var b strings.Builder
	for _, s := range r.Steps {
		b.WriteString(s.Step + "[" + s.Status + "]: " + s.Message + "\n")
		for _, c := range s.Changes {
			b.WriteString("  " + c.Field + ": " + c.Old + " -> " + c.New + "\n")
		}
		for _, g := range s.Groups {
			b.WriteString("  group " + g + "\n")
		}
	}
	return b.String()
}

func TestProvisionOnDemand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.Seed(5)
	putDynamicGroup(t, e, financeSeniors, "Finance seniors", `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`)
	e.Sync(dirsynctest.DrainOptions{})
	s, etag, _ := e.Engine.Settings(ctx)
	s.ScopeRule = `user.department -ne "Sales"`
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	e.Sync(dirsynctest.DrainOptions{})

	e.Source.Put(uid(9), person(9))
	e.setPerson(2, financeSenior)
	e.setPerson(3, func(p map[string]string) { p["department"] = "Sales" })
	e.Source.Put(uid(10), func() map[string]string { p := person(10); p["mail"] = "user1@contoso.example"; return p }())
	e.Source.Remove(uid(4), dirsync.RemovedDeleted)

	tests := []struct {
		key, outcome string
		want         []string // substrings of the steps
	}{
		{uid(9), "added", []string{"found in Entra", "not in the directory yet", "added to the directory"}},
		{"user2@contoso.example", "updated", []string{"matched directory row " + uid(2), "department: Engineering -> Finance", "joined groups", "group " + financeSeniors}},
		{uid(3), "outOfScope", []string{"out of the sync scope: does not match the scoping rule", "the next sync removes it"}},
		{uid(10), "duplicate", []string{"duplicate: email user1@contoso.example is already used by user " + uid(1)}},
		{uid(4), "notFound", []string{"no user " + uid(4) + " exists in Entra", "the next sync removes it"}},
	}
	for i, tt := range tests {
		if i == onDemandBurst {
			e.Clock.Advance(11e9) // past the rate limit's window
		}
		res, err := e.Engine.ProvisionUser(ctx, tt.key, "admin")
		if err != nil {
			t.Fatalf("%s: %v", tt.key, err)
		}
		text := stepsText(res)
		if res.Outcome != tt.outcome {
			t.Errorf("%s: outcome %s, want %s:\n%s", tt.key, res.Outcome, tt.outcome, text)
		}
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: steps lack %q:\n%s", tt.key, w, text)
			}
		}
		if res.Run.Trigger != dirsync.TriggerOnDemand || res.Run.Status != dirsync.RunSucceeded {
			t.Errorf("%s: run %s/%s, want an on-demand run that succeeded", tt.key, res.Run.Trigger, res.Run.Status)
		}
	}
	dir := e.directory(dirsync.StatusActive)
	if _, ok := dir[uid(9)]; !ok {
		t.Errorf("user 9 was not added")
	}
	if _, ok := dir[uid(4)]; !ok {
		t.Errorf("on demand deleted user 4: deletions stay with runs")
	}
	if diff := cmp.Diff([]string{uid(2)}, e.members(financeSeniors)); diff != "" {
		t.Errorf("group members (-want +got):\n%s", diff)
	}
	// The rate limit.
	var err error
	for range 6 {
		if _, err = e.Engine.ProvisionUser(ctx, uid(1), "admin"); err != nil {
			break
		}
	}
	if !dirsync.IsCode(err, dirsync.ETHROTTLED) || dirsync.RetryAfter(err) <= 0 {
		t.Errorf("6 calls in a row: %v, want ETHROTTLED with a retry time", err)
	}
}

// onDemandBurst is how many of the cases above run before the rate limit's
// window must pass.
const onDemandBurst = 5

func TestProvisionOnDemandWhileASyncRuns(t *testing.T) {
	tests := []struct {
		name string
		// laterNumber: a start paused after taking the lock, replaced as
		// stalled, takes a run number above the running run's when it
		// resumes (found by the simulator).
		laterNumber bool
	}{
		{"the latest run number is the running run's", false},
		{"a later run number was taken meanwhile", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.Seed(5)
			e.Sync(dirsynctest.DrainOptions{})
			// A sync starts and reads its round; Entra changes user 2 twice: the
			// on-demand call sees the first change, the sync's page the second.
			e.setPerson(2, func(p map[string]string) { p["jobTitle"] = "Lead" })
			run, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.laterNumber {
				if _, err := e.Store.Upsert(ctx, dirsync.TableState, dirsync.Entity{PartitionKey: "sync", RowKey: "seq", Props: map[string]any{"next": run.Seq + 1}}); err != nil {
					t.Fatal(err)
				}
			}
			res, err := e.Engine.ProvisionUser(ctx, uid(2), "admin")
			if err != nil || res.Outcome != "updated" {
				t.Fatalf("on demand: %v %s", err, res.Outcome)
			}
			e.setPerson(2, func(p map[string]string) { p["jobTitle"] = "Principal" })
			done := e.Finish(run.ID, dirsynctest.DrainOptions{})
			if done.Status != dirsync.RunSucceeded {
				t.Fatalf("sync %s: %s", done.Status, done.Error)
			}
			// The sync's page is part of the round whose token it saves: it wins.
			if got := e.directory(dirsync.StatusActive)[uid(2)]["jobTitle"]; got != "Principal" {
				t.Errorf("jobTitle = %q after the sync, want the sync's Principal", got)
			}
		})
	}
}
