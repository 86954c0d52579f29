package dirsync

import (
	"context"
	"fmt"
	"time"
)

// ActionCode names something the status page asks an admin to do. The
// values are part of the API.
type ActionCode string

// Status actions.
const (
	ActionSyncDisabled           ActionCode = "sync_disabled"
	ActionDeletionsBlocked       ActionCode = "deletions_blocked"
	ActionLastRunFailed          ActionCode = "last_run_failed"
	ActionGraphPermissionMissing ActionCode = "graph_permission_missing"
	ActionCredentialsRejected    ActionCode = "credentials_rejected"
	ActionDeltaTokenOld          ActionCode = "delta_token_old"
	ActionRunStalled             ActionCode = "run_stalled"
	ActionNeverSynced            ActionCode = "never_synced"
	ActionNothingScheduled       ActionCode = "nothing_scheduled"
)

// Action is something an admin must do, in plain words.
type Action struct {
	Code    ActionCode `json:"code"`
	Message string     `json:"message"`
	Hint    string     `json:"hint,omitempty"`
}

// Status is the state of the sync at a glance.
type Status struct {
	Enabled   bool       `json:"enabled"`
	Schedule  Schedule   `json:"schedule"`
	NextRun   *time.Time `json:"nextRun,omitempty"`
	ActiveRun *Run       `json:"activeRun,omitempty"`
	// LastRun is the last finished sync (previews and on-demand runs
	// aside); LastPreview the last finished preview, shown beside the
	// button that applies the change it previewed.
	LastRun     *Run `json:"lastRun,omitempty"`
	LastPreview *Run `json:"lastPreview,omitempty"`
	// DeltaTokenIssuedAt is when the saved delta token was taken; Graph
	// keeps them 7 days, after which the next run is a full one.
	DeltaTokenIssuedAt *time.Time `json:"deltaTokenIssuedAt,omitempty"`
	DirectoryUsers     int64      `json:"directoryUsers"`
	// UserCounts counts directory users by status (active, duplicate,
	// skipped) as of the end of the last finished run.
	UserCounts map[string]int64 `json:"userCounts"`
	Actions    []Action         `json:"actions"`
}

// Status gathers the status shown to admins and support.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	s, _, err := e.Settings(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Enabled: s.Enabled, Schedule: s.Schedule, Actions: []Action{}}
	if next, ok := s.Schedule.Next(e.now()); ok && s.Enabled {
		st.NextRun = &next
	}
	if st.ActiveRun, err = e.ActiveRun(ctx); err != nil {
		return st, err
	}
	runs, _, err := e.ListRuns(ctx, "", 50, "")
	if err != nil {
		return st, err
	}
	for i := range runs {
		r := &runs[i]
		switch {
		case !r.Finished():
		case r.Preview:
			if st.LastPreview == nil {
				st.LastPreview = r
			}
		case r.Trigger == TriggerOnDemand:
		case st.LastRun == nil:
			st.LastRun = r
		}
	}
	delta, err := e.deltaState(ctx)
	if err != nil {
		return st, err
	}
	if delta.Link != "" {
		st.DeltaTokenIssuedAt = &delta.IssuedAt
	}
	st.UserCounts = map[string]int64{StatusActive: 0, StatusDuplicate: 0, StatusSkipped: 0}
	if ent, err := e.Store.Get(ctx, TableState, statePartition, statsRowKey); err == nil {
		stats := statsFromEntity(ent)
		st.DirectoryUsers = stats.Users()
		for k := range st.UserCounts {
			st.UserCounts[k] = stats.ByStatus[k]
		}
	}
	if !s.Enabled {
		msg := "Sync is disabled: Entra changes are not applied, and no run is in progress."
		if delta.Link == "" && st.LastRun != nil {
			msg += " The sync state was reset: the next sync after enabling is a full one."
		}
		st.Actions = append(st.Actions, Action{Code: ActionSyncDisabled, Message: msg,
			Hint: "Set enabled to true in the settings (PUT /api/settings) to resume; no data was removed."})
	}
	if lock, err := e.readLock(ctx); err == nil && st.ActiveRun != nil && lock.RunID == st.ActiveRun.ID && e.lockStale(lock, e.now()) {
		st.Actions = append(st.Actions, Action{Code: ActionRunStalled,
			Message: fmt.Sprintf("Run %s has made no progress since %s: its work items were probably dead-lettered.", lock.RunID, lock.Heartbeat.Format(time.RFC3339)),
			Hint:    "The timer ends it within minutes, and Sync now replaces it at once; look at the sync-work dead-letter queue and the function logs for the cause."})
	}
	if a := st.ActiveRun; a != nil && a.Status == RunBlocked {
		st.Actions = append(st.Actions, Action{Code: ActionDeletionsBlocked,
			Message: fmt.Sprintf("Run %s is waiting for approval of %d deletions: %s", a.ID, a.PendingDeletions, a.Error),
			Hint:    a.Hint})
	}
	if l := st.LastRun; l != nil && l.Status == RunFailed && (st.ActiveRun == nil) {
		a := Action{Code: ActionLastRunFailed, Message: "The last sync failed: " + l.Error, Hint: l.Hint}
		switch l.ErrorCode {
		case EFORBIDDEN:
			a.Code, a.Message = ActionGraphPermissionMissing, "The last sync failed because Microsoft Graph denied access: "+l.Error
		case EUNAUTHORIZED:
			a.Code, a.Message = ActionCredentialsRejected, "The last sync failed because the app's credentials were rejected (wrong, expired or not configured): "+l.Error
		}
		st.Actions = append(st.Actions, a)
	}
	if delta.Link != "" && e.now().Sub(delta.IssuedAt) > 6*24*time.Hour {
		st.Actions = append(st.Actions, Action{Code: ActionDeltaTokenOld,
			Message: "The saved delta token is older than 6 days; Graph drops them after 7, and the next sync will then be a full one.",
			Hint:    "Nothing to do: a full sync recovers automatically. Sync more often than weekly to avoid it."})
	}
	return st, nil
}
