package localstack_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
)

// started is the answer of a request that starts a run.
type started struct {
	Run struct{ ID string }
}

func TestPreviewEqualsTheSyncAndWritesNothing(t *testing.T) {
	e := start(t, graphsim.Config{Users: 300, Seed: 31, PageSize: 100}, devhost.Options{})
	e.sync(false)
	e.changeSettings(func(s *dirsync.Settings) { s.DeletionThreshold = dirsync.DeletionThreshold{} })
	tenant := e.stack.Graph.Tenant()
	users := tenant.Users()
	_, err := tenant.AddUser(graphsim.User{Attributes: map[string]any{"displayName": "New Hire", "mail": "new.hire@contoso.example", "userPrincipalName": "new.hire@contoso.example"}})
	must(t, err)
	must(t, tenant.UpdateUser(users[10].ID, map[string]any{"jobTitle": "Chief Previewer"}))
	must(t, tenant.HardDeleteUser(users[11].ID))
	must(t, tenant.SoftDeleteUser(users[12].ID))

	before := e.directory()
	var st started
	e.api("POST", "/sync", map[string]string{"mode": "preview"}, nil, http.StatusAccepted, &st)
	preview := e.wait(st.Run.ID)
	if preview.Status != dirsync.RunPreviewed || preview.Mode != dirsync.ModeDelta {
		t.Fatalf("preview %s/%s: %s", preview.Status, preview.Mode, preview.Error)
	}
	if diff := cmp.Diff(before, e.directory()); diff != "" {
		t.Fatalf("the preview changed the directory (-before +after):\n%s", diff)
	}
	var status struct{ LastPreview *struct{ ID string } }
	e.api("GET", "/status", nil, nil, http.StatusOK, &status)
	if status.LastPreview == nil || status.LastPreview.ID != preview.ID {
		t.Errorf("status lastPreview = %+v, want %s", status.LastPreview, preview.ID)
	}
	real := e.sync(false)
	if diff := cmp.Diff(real.Counters, preview.Counters); diff != "" {
		t.Errorf("the preview's counters differ from the sync's (-sync +preview):\n%s", diff)
	}
	if real.Counters["added"] != 1 || real.Counters["updated"] != 1 || real.Counters["deleted"] != 2 {
		t.Errorf("sync counters %v, want 1 added, 1 updated, 2 deleted", real.Counters)
	}

	// A settings change, previewed, then saved: the same outcome.
	var s dirsync.Settings
	e.api("GET", "/settings", nil, nil, http.StatusOK, &s)
	s.Required = append(s.Required, "jobTitle")
	before = e.directory()
	e.api("POST", "/settings/preview", s, nil, http.StatusAccepted, &st)
	preview = e.wait(st.Run.ID)
	if preview.Status != dirsync.RunPreviewed || preview.Mode != dirsync.ModeFull {
		t.Fatalf("settings preview %s/%s: %s", preview.Status, preview.Mode, preview.Error)
	}
	if diff := cmp.Diff(before, e.directory()); diff != "" {
		t.Fatalf("the settings preview changed the directory (-before +after):\n%s", diff)
	}
	e.changeSettings(func(cur *dirsync.Settings) { cur.Required = s.Required })
	real = e.sync(false)
	if diff := cmp.Diff(real.Counters, preview.Counters); diff != "" {
		t.Errorf("the settings preview's counters differ from the sync's (-sync +preview):\n%s", diff)
	}
	if real.Counters["skipped"] == 0 {
		t.Errorf("requiring jobTitle skipped nobody (%v); the generated tenant has users without one", real.Counters)
	}
}

func TestProvisionOnDemandEndToEnd(t *testing.T) {
	e := start(t, graphsim.Config{Users: 120, Seed: 41, PageSize: 50}, devhost.Options{})
	e.sync(false)
	tenant := e.stack.Graph.Tenant()
	users := tenant.Users()
	added, err := tenant.AddUser(graphsim.User{Attributes: map[string]any{"displayName": "On Demand", "mail": "on.demand@contoso.example", "userPrincipalName": "on.demand@contoso.example"}})
	must(t, err)
	must(t, tenant.UpdateUser(users[5].ID, map[string]any{"jobTitle": "Provisioned Now"}))
	must(t, tenant.HardDeleteUser(users[6].ID))

	provision := func(key, outcome string, want ...string) {
		t.Helper()
		var res dirsync.OnDemandResult
		e.api("POST", "/users/"+key+"/sync", nil, nil, http.StatusOK, &res)
		var text strings.Builder
		for _, s := range res.Steps {
			text.WriteString(s.Step + ": " + s.Message + "\n")
			for _, c := range s.Changes {
				text.WriteString("  " + c.Field + ": " + c.Old + " -> " + c.New + "\n")
			}
		}
		if res.Outcome != outcome {
			t.Errorf("%s: outcome %s, want %s:\n%s", key, res.Outcome, outcome, text.String())
		}
		for _, w := range want {
			if !strings.Contains(text.String(), w) {
				t.Errorf("%s: the steps lack %q:\n%s", key, w, text.String())
			}
		}
	}
	provision("on.demand@contoso.example", "added", "found in Entra", "added to the directory")
	provision(users[5].ID, "updated", "jobTitle: ", " -> Provisioned Now")
	provision(users[6].ID, "notFound", "exists in Entra", "the next sync removes it")
	if u, ok := e.directory()[added.ID]; !ok || u.Status != dirsync.StatusActive {
		t.Errorf("the user provisioned on demand is not in the directory: %+v", u)
	}
	if _, ok := e.directory()[users[6].ID]; !ok {
		t.Errorf("provisioning a deleted user deleted it: deletions stay with syncs")
	}
	// The history shows the on-demand runs.
	var list struct{ Runs []struct{ Trigger string } }
	e.api("GET", "/runs?limit=10", nil, nil, http.StatusOK, &list)
	n := 0
	for _, r := range list.Runs {
		if r.Trigger == dirsync.TriggerOnDemand {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d on-demand runs in the history, want 3", n)
	}
}
