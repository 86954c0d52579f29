package dirsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// UserQuery selects directory users for the admin API.
type UserQuery struct {
	// Status filters by status ("" = any).
	Status string
	// Prefix matches the start of the display name or the email,
	// case-insensitively.
	Prefix string
	// Limit is the page size (1..100, default 50).
	Limit int
	// Token continues a previous listing.
	Token string
}

type userCursor struct {
	Bucket int    `json:"b"`
	Cont   string `json:"c,omitempty"`
}

// userScanBudget bounds the storage pages one listing call reads, so a
// search that matches little answers promptly with a token to go on.
const userScanBudget = 8

// ListUsers returns directory users bucket by bucket (not sorted by name:
// the storage layout is by object id). A non-empty token means more may
// follow, even when this page has fewer than Limit users.
// Errors: EINVALID for a bad status, prefix or token.
func (e *Engine) ListUsers(ctx context.Context, q UserQuery) ([]User, string, error) {
	switch q.Status {
	case "", StatusActive, StatusDuplicate, StatusSkipped:
	default:
		return nil, "", Errorf(EINVALID, "status %q is not one of active, duplicate, skipped", q.Status)
	}
	if len(q.Prefix) > 256 {
		return nil, "", Errorf(EINVALID, "the search prefix is longer than 256 characters")
	}
	limit := q.Limit
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	cur := userCursor{}
	if q.Token != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Token)
		if err != nil || json.Unmarshal(b, &cur) != nil || cur.Bucket < 0 || cur.Bucket >= UserBuckets {
			return nil, "", Errorf(EINVALID, "the paging token is not valid").WithHint("Start the listing again without a token.")
		}
	}
	prefix := strings.ToLower(q.Prefix)
	var out []User
	for range userScanBudget {
		page, err := e.Store.Query(ctx, TableUsers, Query{PartitionKey: fmt.Sprintf("b%02d", cur.Bucket), Top: limit, Continuation: cur.Cont})
		if err != nil {
			return nil, "", err
		}
		for _, ent := range page.Entities {
			u := userFromEntity(ent)
			if q.Status != "" && u.Status != q.Status {
				continue
			}
			if prefix != "" && !strings.HasPrefix(strings.ToLower(u.Fields["displayName"]), prefix) && !strings.HasPrefix(u.Email, prefix) {
				continue
			}
			out = append(out, u)
		}
		cur.Cont = page.Continuation
		if cur.Cont == "" {
			cur.Bucket++
			if cur.Bucket >= UserBuckets {
				return out, "", nil
			}
		}
		if len(out) >= limit {
			break
		}
	}
	b, _ := json.Marshal(cur)
	return out, base64.RawURLEncoding.EncodeToString(b), nil
}

// Action is something an admin must do, in plain words.
type Action struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Status is the state of the sync at a glance.
type Status struct {
	Enabled   bool       `json:"enabled"`
	Schedule  Schedule   `json:"schedule"`
	NextRun   *time.Time `json:"nextRun,omitempty"`
	ActiveRun *Run       `json:"activeRun,omitempty"`
	LastRun   *Run       `json:"lastRun,omitempty"`
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
	runs, _, err := e.ListRuns(ctx, "", 10, "")
	if err != nil {
		return st, err
	}
	for i := range runs {
		if runs[i].Finished() {
			st.LastRun = &runs[i]
			break
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
	if ent, err := e.Store.Get(ctx, TableState, statePartition, statsRow); err == nil {
		st.DirectoryUsers = ent.Int("users")
		for k := range st.UserCounts {
			st.UserCounts[k] = ent.Int("n_" + k)
		}
	}
	if !s.Enabled {
		st.Actions = append(st.Actions, Action{Code: "sync_disabled", Message: "Sync is disabled: Entra changes are not applied.",
			Hint: "Set enabled to true in the settings (PUT /api/settings) to resume; no data was removed."})
	}
	if a := st.ActiveRun; a != nil && a.Status == RunBlocked {
		st.Actions = append(st.Actions, Action{Code: "deletions_blocked",
			Message: fmt.Sprintf("Run %s is waiting for approval of %d deletions: %s", a.ID, a.PendingDeletions, a.Error),
			Hint:    a.Hint})
	}
	if l := st.LastRun; l != nil && l.Status == RunFailed && (st.ActiveRun == nil) {
		a := Action{Code: "last_run_failed", Message: "The last sync failed: " + l.Error, Hint: l.Hint}
		switch l.ErrorCode {
		case EFORBIDDEN:
			a.Code, a.Message = "graph_permission_missing", "The last sync failed because Microsoft Graph denied access: "+l.Error
		case EUNAUTHORIZED:
			a.Code, a.Message = "credentials_rejected", "The last sync failed because the app's credentials were rejected (wrong, expired or not configured): "+l.Error
		}
		st.Actions = append(st.Actions, a)
	}
	if delta.Link != "" && e.now().Sub(delta.IssuedAt) > 6*24*time.Hour {
		st.Actions = append(st.Actions, Action{Code: "delta_token_old",
			Message: "The saved delta token is older than 6 days; Graph drops them after 7, and the next sync will then be a full one.",
			Hint:    "Nothing to do: a full sync recovers automatically. Sync more often than weekly to avoid it."})
	}
	return st, nil
}

const scheduleRow = "schedule"

// Tick is called by the timer. It starts a run when the schedule has a due
// time that no tick has claimed yet; the claim is an ETag-conditional write,
// so overlapping ticks and instances start at most one run per due time.
// It returns the started run, or nil.
func (e *Engine) Tick(ctx context.Context) (*Run, error) {
	s, _, err := e.Settings(ctx)
	if err != nil {
		return nil, err
	}
	if !s.Enabled {
		return nil, nil
	}
	due, ok := s.Schedule.Previous(e.now())
	if !ok {
		return nil, nil
	}
	ent, err := e.Store.Get(ctx, TableState, statePartition, scheduleRow)
	if err != nil && !IsCode(err, ENOTFOUND) {
		return nil, err
	}
	if last := ent.Time("lastDue"); !last.Before(due) {
		return nil, nil
	}
	claim := Entity{PartitionKey: statePartition, RowKey: scheduleRow, ETag: ent.ETag, Props: map[string]any{"lastDue": due.UTC()}}
	if ent.ETag == "" {
		_, err = e.Store.Insert(ctx, TableState, claim)
	} else {
		_, err = e.Store.Replace(ctx, TableState, claim)
	}
	if IsCode(err, ECONFLICT) || IsCode(err, EPRECONDITION) {
		return nil, nil // another tick claimed this due time
	}
	if err != nil {
		return nil, err
	}
	run, err := e.StartRun(ctx, StartRequest{Trigger: TriggerSchedule, RequestedBy: "schedule"})
	if IsCode(err, ECONFLICT) {
		e.log().InfoContext(ctx, "scheduled sync skipped", "due", due, "reason", ErrorMessage(err))
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &run, nil
}
