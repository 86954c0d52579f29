package dirsync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
)

// StartRequest asks for a run.
type StartRequest struct {
	Trigger string
	// Mode forces a full run when ModeFull; "" lets the engine decide.
	Mode        string
	RequestedBy string
	// Preview computes every change without making it (preview.go): the
	// run reads Graph as a real one, holds the lock, and writes only its
	// own records; it ends "previewed".
	Preview bool
	// Settings, for a preview, replaces the saved settings: what would
	// this settings change do? (nil: the saved ones.)
	Settings *Settings
	// clearState deletes the delta token once the lock is taken (reset).
	clearState bool
}

// StartRun starts a run: it takes the single-run lock, creates the run row
// and its log, and enqueues the first work item. A lock whose run stalled
// (no progress for LockStaleAfter) is taken over and that run is failed.
//
// Errors: ECONFLICT when another run holds the lock or took it at the same
// moment (the message names it), and when sync is disabled (the hint says
// how to enable it); EINVALID when the stored settings cannot be read;
// store and queue errors as they come (ETHROTTLED, EUNAVAILABLE, ...), in
// which case no run was started, or the one started was failed with the
// reason.
func (e *Engine) StartRun(ctx context.Context, req StartRequest) (Run, error) {
	settings, _, err := e.Settings(ctx)
	if err != nil {
		return Run{}, err
	}
	if !settings.Enabled && !req.Preview {
		return Run{}, errDisabled()
	}
	if req.Settings != nil {
		if !req.Preview {
			return Run{}, Errorf(EINVALID, "candidate settings are for previews only").WithHint("Save settings with PUT /api/settings.")
		}
		if err := req.Settings.Validate(); err != nil {
			return Run{}, err
		}
	}
	now := e.now()
	id := e.newRunID(now)
	replaced, err := e.takeLock(ctx, id, now)
	if err != nil {
		return Run{}, err
	}
	if replaced != "" {
		e.failStalled(ctx, replaced)
	}
	// Sync may have been disabled between the first read and taking the
	// lock; disabling cancels the lock holder it finds (PutSettings), so
	// reading again after taking the lock closes the gap from this side.
	if settings, _, err = e.Settings(ctx); err != nil || (!settings.Enabled && !req.Preview) {
		e.releaseLock(ctx, id)
		if err == nil {
			err = errDisabled()
		}
		return Run{}, err
	}
	if req.Settings != nil {
		settings = *req.Settings
	}
	if req.clearState {
		if err := e.Store.Delete(ctx, TableState, statePartition, deltaRowKey, ""); err != nil {
			e.releaseLock(ctx, id)
			return Run{}, fmt.Errorf("reset: clear delta token: %w", err)
		}
	}
	delta, err := e.deltaState(ctx)
	if err != nil {
		e.releaseLock(ctx, id)
		return Run{}, err
	}
	dirty, err := e.Store.Get(ctx, TableState, statePartition, dirtyRowKey)
	if err != nil && !IsCode(err, ENOTFOUND) {
		e.releaseLock(ctx, id)
		return Run{}, fmt.Errorf("start run: %w", err)
	}
	unfinished := err == nil
	groups, err := e.dynamicGroups(ctx)
	if err != nil {
		e.releaseLock(ctx, id)
		return Run{}, err
	}
	shape, ruleProps := settings.ShapeHash(), ruleProperties(settings, groups)
	newProps := false
	for _, p := range ruleProps {
		newProps = newProps || !slices.Contains(delta.RuleProps, p)
	}
	mode := ModeDelta
	if req.Mode == ModeFull || delta.Link == "" || delta.ShapeHash != shape || newProps || unfinished {
		mode = ModeFull
	}
	evaluated, err := e.Store.Get(ctx, TableState, statePartition, groupsRowKey)
	if err != nil && !IsCode(err, ENOTFOUND) {
		e.releaseLock(ctx, id)
		return Run{}, fmt.Errorf("start run: %w", err)
	}
	var scope scopeState
	if len(settings.GroupScope) > 0 {
		if scope, err = e.scopeState(ctx, settings); err != nil {
			e.releaseLock(ctx, id)
			return Run{}, err
		}
	}
	seq, err := e.nextRunSeq(ctx)
	if err != nil {
		e.releaseLock(ctx, id)
		return Run{}, err
	}
	run := Run{
		ID: id, Seq: seq, Trigger: req.Trigger, Mode: mode, Status: RunRunning, Phase: PhaseEnumerating,
		RequestedBy: req.RequestedBy, StartedAt: now, Heartbeat: now, LastPage: -1,
		LogName: logName(id, now), ShapeHash: shape,
		GroupsHash: groupsHash(groups), ScopeGen: scope.Gen, ScopeTracked: scope.Tracked, RuleProps: ruleProps,
	}
	run.Evaluate = mode == ModeDelta && run.GroupsHash != evaluated.Str("evaluatedHash")
	run.Preview = req.Preview
	if mode == ModeFull && !req.Preview {
		if run.Fresh, err = e.directoryEmpty(ctx); err != nil {
			e.releaseLock(ctx, id)
			return Run{}, fmt.Errorf("start run: %w", err)
		}
	}
	if err := e.snapshotGroups(ctx, id, groups); err != nil {
		e.releaseLock(ctx, id)
		return Run{}, err
	}
	ent, err := runToEntity(run)
	if err != nil {
		e.releaseLock(ctx, id)
		return Run{}, err
	}
	settingsJSON, _ := json.Marshal(settings)
	putChunked(ent.Props, "settings", string(settingsJSON))
	if _, err := e.Store.Insert(ctx, TableRuns, ent); err != nil {
		e.releaseLock(ctx, id)
		return Run{}, fmt.Errorf("start run: create run: %w", err)
	}
	// A start paused between taking the lock and writing its row can have
	// been replaced as stalled meanwhile (its row did not exist to be
	// failed then). Checking the lock after writing the row closes that:
	// a takeover after this check finds the row and fails it.
	if lock, err := e.readLock(ctx); err != nil || lock.RunID != id {
		e.failRun(ctx, id, ECONFLICT, "Another start replaced this run before it began.", "Look at GET /api/status for the run in progress.")
		if err == nil {
			err = &Error{Code: ECONFLICT, Message: "run " + lock.RunID + " took over while this run was starting", Hint: "Look at GET /api/status."}
		}
		return Run{}, err
	}
	if err := e.Logs.CreateLog(ctx, run.LogName); err != nil {
		e.failRun(ctx, id, ErrorCode(err), "The run log could not be created.", "Check that Blob Storage is reachable (GET /api/health).")
		return Run{}, fmt.Errorf("start run: create log: %w", err)
	}
	lb := e.newLog(run, nil)
	msg := fmt.Sprintf("%s sync started (trigger %s)", mode, req.Trigger)
	if req.Preview {
		msg = fmt.Sprintf("%s preview started (trigger %s): it reads Entra as a sync would and changes nothing", mode, req.Trigger)
		if req.Settings != nil {
			msg += ", under candidate settings"
		}
	}
	switch {
	case req.clearState:
		msg += ": the sync state was reset, so every user is read and users no longer in Entra are removed at the end"
	case mode == ModeFull && delta.Link == "":
		msg += ": no delta token is saved, so every user is read and users no longer in Entra are removed at the end"
	case mode == ModeFull && delta.ShapeHash != shape:
		msg += ": the attribute mapping or scope changed since the last sync"
	case mode == ModeFull && newProps:
		msg += ": a rule reads a user attribute the directory does not hold yet"
	case mode == ModeFull && unfinished && req.Mode != ModeFull:
		msg += fmt.Sprintf(": run %s applied changes but did not finish, so every user is read again", dirty.Str("runId"))
	}
	if replaced != "" {
		msg += fmt.Sprintf("; it replaced run %s, which had stopped making progress", replaced)
	}
	lb.add(LogEvent{Event: EvRunStarted, Message: msg})
	e.flushLog(ctx, run, lb)

	if run.Evaluate {
		lb.add(LogEvent{Event: EvScope, Message: "the dynamic groups changed since the last sync: every user's memberships are evaluated again"})
		e.flushLog(ctx, run, lb)
	}
	first := WorkItem{Kind: WorkPage, RunID: id}
	if mode == ModeDelta {
		first.Link = delta.Link
	}
	if len(settings.GroupScope) > 0 {
		first = firstScopeItem(id, mode, scope)
	}
	if err := e.send(ctx, first, zeroTime); err != nil {
		e.failRun(ctx, id, ErrorCode(err), "The first work item could not be queued.", "Check that Service Bus is reachable (GET /api/health) and the queue sync-work exists.")
		return Run{}, fmt.Errorf("start run: %w", err)
	}
	e.log().InfoContext(ctx, "run started", "run", id, "mode", mode, "trigger", req.Trigger)
	return run, nil
}

func errDisabled() error {
	return Errorf(ECONFLICT, "sync is disabled").WithHint("Enable sync in the settings (enabled: true), then start it again.")
}

func (e *Engine) nextRunSeq(ctx context.Context) (int64, error) {
	ent, err := e.modify(ctx, TableState, statePartition, seqRowKey, func(ent *Entity, _ bool) error {
		ent.Props = map[string]any{"next": ent.Int("next") + 1}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("next run number: %w", err)
	}
	return ent.Int("next"), nil
}

func (e *Engine) deltaState(ctx context.Context) (DeltaState, error) {
	ent, err := e.Store.Get(ctx, TableState, statePartition, deltaRowKey)
	if IsCode(err, ENOTFOUND) {
		return DeltaState{}, nil
	}
	if err != nil {
		return DeltaState{}, fmt.Errorf("read delta state: %w", err)
	}
	return deltaFromEntity(ent), nil
}

// DeltaState returns the saved delta position (the link itself is never
// exposed: it is a credential-like token).
func (e *Engine) DeltaState(ctx context.Context) (DeltaState, error) { return e.deltaState(ctx) }

// ResetResult says what a reset did.
type ResetResult struct {
	// Run is the full sync the reset started; nil while sync is disabled.
	Run *Run `json:"run"`
	// Message says in plain words what happened and what comes next.
	Message string `json:"message"`
}

// Reset clears the sync state (the delta token, not the directory) and
// starts a full sync that sweeps users no longer in Entra. While sync is
// disabled it clears the state and starts nothing: the full sync happens
// once sync is enabled again, and the message says so.
//
// Errors: ECONFLICT while a run is going (cancel it first); store errors.
func (e *Engine) Reset(ctx context.Context, who string) (ResetResult, error) {
	settings, _, err := e.Settings(ctx)
	if err != nil {
		return ResetResult{}, err
	}
	if settings.Enabled {
		run, err := e.StartRun(ctx, StartRequest{Trigger: TriggerReset, Mode: ModeFull, RequestedBy: who, clearState: true})
		if err != nil {
			if IsCode(err, ECONFLICT) {
				if a, aerr := e.ActiveRun(ctx); aerr == nil && a != nil {
					err = &Error{Code: ECONFLICT, Message: fmt.Sprintf("run %s is in progress", a.ID),
						Hint: "Cancel it with POST /api/runs/" + a.ID + "/cancel, then reset again."}
				}
			}
			return ResetResult{}, err
		}
		if err := e.settingsStore().audit(ctx, AuditEntry{Who: who, Action: "sync.reset"}); err != nil {
			e.log().ErrorContext(ctx, "audit of a reset failed", "err", err)
		}
		return ResetResult{Run: &run, Message: "The sync state was cleared; a full sync started."}, nil
	}
	lock, err := e.readLock(ctx)
	if err != nil {
		return ResetResult{}, err
	}
	if lock.RunID != "" {
		if free, err := e.lockFree(ctx, lock, e.now()); err != nil || !free {
			if err == nil {
				err = &Error{Code: ECONFLICT, Message: fmt.Sprintf("run %s is in progress", lock.RunID),
					Hint: "Cancel it with POST /api/runs/" + lock.RunID + "/cancel, then reset again."}
			}
			return ResetResult{}, err
		}
	}
	if err := e.settingsStore().audit(ctx, AuditEntry{Who: who, Action: "sync.reset"}); err != nil {
		return ResetResult{}, err
	}
	if err := e.Store.Delete(ctx, TableState, statePartition, deltaRowKey, ""); err != nil {
		return ResetResult{}, fmt.Errorf("reset: clear delta token: %w", err)
	}
	return ResetResult{Message: "The sync state was cleared. Sync is disabled, so nothing started: the next sync after you enable it is a full one."}, nil
}

// Tick is called by the timer. It ends a run that stalled, then starts a run
// when the schedule has a due time that no tick has claimed yet; the claim
// is an ETag-conditional write, so overlapping ticks and instances start at
// most one run per due time. It returns the started run, or nil.
func (e *Engine) Tick(ctx context.Context) (*Run, error) {
	if err := e.recoverStalled(ctx); err != nil {
		e.log().WarnContext(ctx, "could not check for a stalled run", "err", err)
	}
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
	claimed := false
	_, err = e.modify(ctx, TableState, statePartition, scheduleRowKey, func(ent *Entity, _ bool) error {
		claimed = false // a lost race calls again
		if last := ent.Time("lastDue"); !last.Before(due) {
			return errSkipWrite
		}
		ent.Props = map[string]any{"lastDue": due.UTC()}
		claimed = true
		return nil
	})
	if err != nil || !claimed {
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
