package dirsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// snapshot is every row a preview must leave alone.
func (e *env) snapshot() map[string][]dirsync.Entity {
	out := map[string][]dirsync.Entity{}
	for _, table := range []string{dirsync.TableUsers, dirsync.TableEmails, dirsync.TableMembers, dirsync.TableGroups, dirsync.TableState} {
		rows := e.Store.Rows(table)
		if table == dirsync.TableState {
			var kept []dirsync.Entity
			for _, r := range rows {
				if r.RowKey != "lock" && r.RowKey != "seq" { // the lock is held and released, the run counter moves
					kept = append(kept, r)
				}
			}
			rows = kept
		}
		out[table] = rows
	}
	return out
}

func (e *env) preview(full bool, s *dirsync.Settings) dirsync.Run {
	e.T().Helper()
	mode := ""
	if full {
		mode = dirsync.ModeFull
	}
	run, err := e.Engine.StartRun(context.Background(), dirsync.StartRequest{Trigger: dirsync.TriggerPreview, Mode: mode, Preview: true, Settings: s, RequestedBy: "test"})
	if err != nil {
		e.T().Fatalf("StartRun(preview): %v", err)
	}
	return e.Finish(run.ID, dirsynctest.DrainOptions{})
}

func TestPreviewReportsExactlyWhatTheSyncThenDoes(t *testing.T) {
	e := newEnv(t)
	setThreshold(t, e, dirsync.DeletionThreshold{Enabled: true, MaxCount: 1})
	e.Seed(12)
	e.setPerson(2, financeSenior)
	putDynamicGroup(t, e, financeSeniors, "Finance seniors", `user.department -eq "Finance" -and user.jobTitle -eq "Senior Manager"`)
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
		t.Fatalf("first run %s: %s", run.Status, run.Error)
	}

	// Every kind of change: added, updated, joined a group, deleted (two:
	// more than the threshold), a duplicate, a skipped user.
	e.Source.Put(uid(20), person(20))
	e.setPerson(3, financeSenior)
	e.setPerson(4, func(p map[string]string) { p["jobTitle"] = "Director" })
	e.Source.Remove(uid(5), dirsync.RemovedDeleted)
	e.Source.Remove(uid(2), dirsync.RemovedChanged)
	e.Source.Put(uid(21), func() map[string]string { p := person(21); p["mail"] = "user1@contoso.example"; return p }())
	e.Source.Put(uid(22), func() map[string]string { p := person(22); delete(p, "displayName"); return p }())

	before := e.snapshot()
	preview := e.preview(false, nil)
	if preview.Status != dirsync.RunPreviewed || preview.Mode != dirsync.ModeDelta {
		t.Fatalf("preview = %s/%s (%s), want previewed/delta", preview.Status, preview.Mode, preview.Error)
	}
	if diff := cmp.Diff(before, e.snapshot()); diff != "" {
		t.Fatalf("the preview changed the directory (-before +after):\n%s", diff)
	}
	if log := e.Logs.Text(preview.LogName); !strings.Contains(log, "would hold these deletions") {
		t.Errorf("the preview's log does not say the threshold would hold the deletions:\n%s", log)
	}

	setThreshold(t, e, dirsync.DeletionThreshold{})
	real := e.Sync(dirsynctest.DrainOptions{})
	if real.Status != dirsync.RunSucceeded {
		t.Fatalf("real run %s: %s", real.Status, real.Error)
	}
	if diff := cmp.Diff(real.Counters, preview.Counters); diff != "" {
		t.Errorf("preview counters differ from the real run's (-real +preview):\n%s", diff)
	}
	want := dirsync.Counters{Seen: 7, Added: 1, Updated: 2, Deleted: 2, Duplicate: 1, Skipped: 1, MembersAdded: 1, MembersRemoved: 1, SkippedBy: map[string]int64{"displayName": 1}}
	if diff := cmp.Diff(want, real.Counters); diff != "" {
		t.Errorf("real counters (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(lines(e, real, "event"), lines(e, preview, "event")); diff != "" {
		t.Errorf("the preview's log events differ from the real run's (-real +preview):\n%s", diff)
	}
}

func TestPreviewOfASettingsChange(t *testing.T) {
	e := newEnv(t)
	e.Seed(10)
	e.Sync(dirsynctest.DrainOptions{})
	ctx := context.Background()
	s, _, _ := e.Engine.Settings(ctx)
	cand := s
	cand.Mapping = append(append([]dirsync.FieldMapping{}, s.Mapping...), dirsync.FieldMapping{Field: "costCenter", Source: "employeeType"})
	cand.Required = append(append([]string{}, s.Required...), "costCenter")
	for i := 1; i <= 3; i++ {
		e.setPerson(i, func(p map[string]string) { p["employeeType"] = fmt.Sprint("CC", i) })
	}
	before := e.snapshot()
	preview := e.preview(false, &cand)
	if preview.Status != dirsync.RunPreviewed || preview.Mode != dirsync.ModeFull {
		t.Fatalf("preview = %s/%s (%s), want a previewed full run (the mapping changed)", preview.Status, preview.Mode, preview.Error)
	}
	if diff := cmp.Diff(before, e.snapshot()); diff != "" {
		t.Fatalf("the preview changed the directory (-before +after):\n%s", diff)
	}
	if preview.Counters.Skipped != 7 || preview.Counters.SkippedBy["costCenter"] != 7 || preview.Counters.Updated != 3 {
		t.Errorf("preview counters = %+v, want 7 skipped for costCenter, 3 updated", preview.Counters)
	}
}

// lines returns the values of one field of a run's log lines, in order,
// without the run's own start and end lines.
func lines(e *env, run dirsync.Run, field string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(e.Logs.Text(run.LogName)), "\n") {
		i := strings.Index(l, `"`+field+`":"`)
		if i < 0 {
			continue
		}
		v := l[i+len(field)+4:]
		v = v[:strings.Index(v, `"`)]
		if v == dirsync.EvRunStarted || v == dirsync.EvRunFinished || v == dirsync.EvRunBlocked {
			continue
		}
		out = append(out, v)
	}
	return out
}
