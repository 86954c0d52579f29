package localstack_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/azurite"
	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/testenv"
)

// TestTimerStartsOneScheduledRunAndNoSecretIsLogged fires SyncTimer through
// the host (the third trigger kind with the real handler): the first tick
// starts the run that is due, a second tick for the same due time starts
// nothing. Then it reads everything the handler printed: no connection
// string key, client secret or function key may appear in it.
func TestTimerStartsOneScheduledRunAndNoSecretIsLogged(t *testing.T) {
	out := &testenv.SyncBuffer{}
	e := start(t, graphsim.Config{Users: 30, Seed: 23, PageSize: 10}, devhost.Options{HandlerOutput: out},
		map[string]string{"LOG_LEVEL": "debug"})
	must(t, e.stack.Host.Invoke(e.ctx, "SyncTimer", ""))
	must(t, e.stack.Host.Invoke(e.ctx, "SyncTimer", ""))
	var runs struct {
		Runs []struct {
			ID      string `json:"id"`
			Trigger string `json:"trigger"`
		} `json:"runs"`
	}
	code, err := e.stack.Call(e.ctx, e.stack.SupportKey, http.MethodGet, "/runs", nil, &runs)
	must(t, err)
	if code != http.StatusOK || len(runs.Runs) != 1 || runs.Runs[0].Trigger != dirsync.TriggerSchedule {
		t.Fatalf("after two ticks: %d %+v, want exactly one scheduled run", code, runs.Runs)
	}
	if run := e.wait(runs.Runs[0].ID); run.Status != dirsync.RunSucceeded {
		t.Fatalf("scheduled run: %s %s", run.Status, run.Error)
	}
	// A failing Graph credential must not leak either: a wrong secret's
	// error passes through the logs.
	e.stack.Graph.Tenant().SetFault(graphsim.Fault{Route: "token", Kind: graphsim.KindStatus, Status: 500, Count: 1})
	e.sync(true)

	logs := out.String()
	if !strings.Contains(logs, "handler listening") {
		t.Fatalf("handler output not captured:\n%.500s", logs)
	}
	secrets := map[string]string{
		"storage account key": azurite.AccountKey,
		"graph client secret": e.stack.Graph.Config().ClientSecret,
		"admin key":           e.stack.AdminKey,
		"support key":         e.stack.SupportKey,
	}
	for name, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the handler's output contains the %s", name)
		}
	}
	if strings.Contains(logs, "AccountKey=") || strings.Contains(logs, "SharedAccessSignature") || strings.Contains(logs, "sig=") {
		t.Errorf("the handler's output contains a connection string or SAS")
	}
}
