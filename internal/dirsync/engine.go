package dirsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Logical table names (the table adapter maps them to real tables).
const (
	TableUsers     = "users"
	TableEmails    = "emails"
	TableMembers   = "members"
	TableGroups    = "groups"
	TableRuns      = "runs"
	TablePages     = "pages"
	TableDeletions = "deletions"
	TableState     = "state"
	TableSettings  = "settings"
	TableAudit     = "audit"
)

const (
	statePartition = "sync"
	lockRow        = "lock"
	deltaRow       = "delta"
	seqRow         = "seq"
	statsRow       = "stats"
)

// Engine runs syncs. It is safe for concurrent use: every decision that two
// workers could race on is an ETag-conditional or insert-if-absent write.
type Engine struct {
	Store  Store
	Logs   LogStore
	Queue  Queue
	Source Source
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// LockStaleAfter is how long a running run may go without a heartbeat
	// before a new run may take its lock (default 30 minutes: longer than the
	// longest Retry-After Graph sends).
	LockStaleAfter time.Duration
	// WaitDelay is how long a collect item waits before checking again that
	// every page was applied (default 2s).
	WaitDelay time.Duration
	// MaxDeliveries is the queue's max delivery count (default 10): on the
	// last delivery a failing item fails its run instead of retrying.
	MaxDeliveries int
	// Concurrency bounds parallel storage reads within one item (default 8).
	Concurrency int
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Engine) staleAfter() time.Duration {
	if e.LockStaleAfter > 0 {
		return e.LockStaleAfter
	}
	return 30 * time.Minute
}

func (e *Engine) waitDelay() time.Duration {
	if e.WaitDelay > 0 {
		return e.WaitDelay
	}
	return 2 * time.Second
}

func (e *Engine) maxDeliveries() int {
	if e.MaxDeliveries > 0 {
		return e.MaxDeliveries
	}
	return 10
}

func (e *Engine) concurrency() int {
	if e.Concurrency > 0 {
		return e.Concurrency
	}
	return 8
}

// StartRequest asks for a run.
type StartRequest struct {
	Trigger string
	// Mode forces a full run when ModeFull; "" lets the engine decide.
	Mode        string
	RequestedBy string
}

// DeltaState is the saved position of incremental sync.
type DeltaState struct {
	Link      string    `json:"-"`
	IssuedAt  time.Time `json:"issuedAt"`
	ShapeHash string    `json:"-"`
	RunID     string    `json:"runId"`
}

// StartRun starts a run: it takes the single-run lock, creates the run row and
// its log, and enqueues the first work item.
//
// Errors: ECONFLICT when another run holds the lock (the message names it),
// EINVALID when sync is disabled, store and queue errors as they come.
func (e *Engine) StartRun(ctx context.Context, req StartRequest) (Run, error) {
	settings, _, err := e.Settings(ctx)
	if err != nil {
		return Run{}, err
	}
	if !settings.Enabled && req.Trigger != TriggerReset {
		return Run{}, Errorf(ECONFLICT, "sync is disabled").WithHint("Enable sync in the settings (enabled: true), then start it again.")
	}
	now := e.now()
	lock, err := e.Store.Get(ctx, TableState, statePartition, lockRow)
	if err != nil && !IsCode(err, ENOTFOUND) {
		return Run{}, fmt.Errorf("start run: read lock: %w", err)
	}
	if holder := lock.Str("runId"); holder != "" {
		if !e.lockStale(lock, now) {
			return Run{}, &Error{Code: ECONFLICT, Message: fmt.Sprintf("run %s is in progress", holder),
				Hint: "Wait for it to finish, or cancel it with POST /api/runs/" + holder + "/cancel."}
		}
		e.failStaleRun(ctx, holder, now)
		if lock, err = e.Store.Get(ctx, TableState, statePartition, lockRow); err != nil {
			return Run{}, fmt.Errorf("start run: read lock: %w", err)
		}
	}

	delta, err := e.deltaState(ctx)
	if err != nil {
		return Run{}, err
	}
	mode := ModeDelta
	if req.Mode == ModeFull || delta.Link == "" || delta.ShapeHash != settings.ShapeHash() {
		mode = ModeFull
	}
	seq, err := e.nextRunSeq(ctx)
	if err != nil {
		return Run{}, err
	}
	id := newRunID(now)
	settingsJSON, _ := json.Marshal(settings)
	run := Run{
		ID: id, Seq: seq, Trigger: req.Trigger, Mode: mode, Status: RunRunning, Phase: PhaseEnumerating,
		RequestedBy: req.RequestedBy, StartedAt: now, Heartbeat: now, LastPage: -1,
		LogName: logName(id, now), ShapeHash: settings.ShapeHash(),
	}
	// Take the lock first: only the winner creates a run row.
	newLock := Entity{PartitionKey: statePartition, RowKey: lockRow, ETag: lock.ETag,
		Props: map[string]any{"runId": id, "status": RunRunning, "heartbeat": now}}
	if lock.ETag == "" {
		_, err = e.Store.Insert(ctx, TableState, newLock)
	} else {
		_, err = e.Store.Replace(ctx, TableState, newLock)
	}
	if IsCode(err, ECONFLICT) || IsCode(err, EPRECONDITION) {
		// Another start won the race: name its run, as for any conflict.
		holder := "another run"
		if cur, gerr := e.Store.Get(ctx, TableState, statePartition, lockRow); gerr == nil && cur.Str("runId") != "" {
			holder = "run " + cur.Str("runId")
		}
		return Run{}, &Error{Code: ECONFLICT, Message: holder + " started at the same moment and is in progress",
			Hint: "Wait for it to finish, or look at GET /api/status."}
	}
	if err != nil {
		return Run{}, fmt.Errorf("start run: take lock: %w", err)
	}
	ent, err := runToEntity(run)
	if err != nil {
		return Run{}, err
	}
	ent.Props["settings"] = string(settingsJSON)
	if _, err := e.Store.Insert(ctx, TableRuns, ent); err != nil {
		e.releaseLock(ctx, id)
		return Run{}, fmt.Errorf("start run: create run: %w", err)
	}
	if err := e.Logs.CreateLog(ctx, run.LogName); err != nil {
		e.releaseLock(ctx, id)
		e.finishRun(ctx, id, RunFailed, "The run log could not be created.", "Check that Blob Storage is reachable (GET /api/health).")
		return Run{}, fmt.Errorf("start run: create log: %w", err)
	}
	lb := e.newLog(run, nil)
	msg := fmt.Sprintf("%s sync started (trigger %s)", mode, req.Trigger)
	switch {
	case mode == ModeFull && delta.Link == "":
		msg += ": no delta token is saved, so every user is read and users no longer in Entra are removed at the end"
	case mode == ModeFull && delta.ShapeHash != settings.ShapeHash():
		msg += ": the attribute mapping or scope changed since the last sync"
	}
	lb.add(LogEvent{Event: EvRunStarted, Message: msg})
	e.flushLog(ctx, run, lb)

	first := WorkItem{Kind: WorkPage, RunID: id, Seq: 0}
	if mode == ModeDelta {
		first.Link = delta.Link
	}
	if err := e.Queue.Send(ctx, first.message()); err != nil {
		e.finishRun(ctx, id, RunFailed, "The first work item could not be queued.", "Check the Service Bus connection (ServiceBusConnection).")
		e.releaseLock(ctx, id)
		return Run{}, fmt.Errorf("start run: enqueue: %w", err)
	}
	e.log().InfoContext(ctx, "run started", "run", id, "mode", mode, "trigger", req.Trigger)
	return run, nil
}

func (e *Engine) lockStale(lock Entity, now time.Time) bool {
	if lock.Str("status") == RunBlocked {
		return false // waiting for an admin is not being stuck
	}
	return now.Sub(lock.Time("heartbeat")) > e.staleAfter()
}

func (e *Engine) failStaleRun(ctx context.Context, id string, now time.Time) {
	e.finishRun(ctx, id, RunFailed,
		fmt.Sprintf("The run stopped making progress (no heartbeat for %s) and was replaced by a new run.", e.staleAfter()),
		"Look for dead-lettered messages on the sync-work queue and at the function logs around the time it stopped.")
	e.log().WarnContext(ctx, "stale run replaced", "run", id)
}

func (e *Engine) nextRunSeq(ctx context.Context) (int64, error) {
	for range 10 {
		ent, err := e.Store.Get(ctx, TableState, statePartition, seqRow)
		if err != nil && !IsCode(err, ENOTFOUND) {
			return 0, fmt.Errorf("next run number: %w", err)
		}
		n := ent.Int("next") + 1
		ent = Entity{PartitionKey: statePartition, RowKey: seqRow, ETag: ent.ETag, Props: map[string]any{"next": n}}
		if ent.ETag == "" {
			_, err = e.Store.Insert(ctx, TableState, ent)
		} else {
			_, err = e.Store.Replace(ctx, TableState, ent)
		}
		if err == nil {
			return n, nil
		}
		if !IsCode(err, ECONFLICT) && !IsCode(err, EPRECONDITION) {
			return 0, fmt.Errorf("next run number: %w", err)
		}
	}
	return 0, Errorf(EUNAVAILABLE, "could not allocate a run number: too much contention")
}

func (e *Engine) deltaState(ctx context.Context) (DeltaState, error) {
	ent, err := e.Store.Get(ctx, TableState, statePartition, deltaRow)
	if IsCode(err, ENOTFOUND) {
		return DeltaState{}, nil
	}
	if err != nil {
		return DeltaState{}, fmt.Errorf("read delta state: %w", err)
	}
	return DeltaState{Link: ent.Str("link"), IssuedAt: ent.Time("issuedAt"), ShapeHash: ent.Str("shapeHash"), RunID: ent.Str("runId")}, nil
}

// DeltaState returns the saved delta position (the link itself is never
// exposed: it is a credential-like token).
func (e *Engine) DeltaState(ctx context.Context) (DeltaState, error) { return e.deltaState(ctx) }

func (e *Engine) releaseLock(ctx context.Context, runID string) {
	for range 5 {
		lock, err := e.Store.Get(ctx, TableState, statePartition, lockRow)
		if err != nil || lock.Str("runId") != runID {
			return
		}
		lock.Props = map[string]any{"runId": "", "status": "", "heartbeat": e.now()}
		if _, err := e.Store.Replace(ctx, TableState, lock); err == nil || !IsCode(err, EPRECONDITION) {
			return
		}
	}
}

func (e *Engine) setLockStatus(ctx context.Context, runID, status string) error {
	for range 5 {
		lock, err := e.Store.Get(ctx, TableState, statePartition, lockRow)
		if err != nil {
			return err
		}
		if lock.Str("runId") != runID {
			return Errorf(ECONFLICT, "run %s no longer holds the lock", runID)
		}
		lock.Props = map[string]any{"runId": runID, "status": status, "heartbeat": e.now()}
		_, err = e.Store.Replace(ctx, TableState, lock)
		if err == nil || !IsCode(err, EPRECONDITION) {
			return err
		}
	}
	return Errorf(EUNAVAILABLE, "could not update the run lock: too much contention")
}

// heartbeat refreshes the lock at most once a minute; failures are harmless.
func (e *Engine) heartbeat(ctx context.Context, runID string) {
	lock, err := e.Store.Get(ctx, TableState, statePartition, lockRow)
	if err != nil || lock.Str("runId") != runID || e.now().Sub(lock.Time("heartbeat")) < time.Minute {
		return
	}
	lock.Props["heartbeat"] = e.now()
	e.Store.Replace(ctx, TableState, lock)
}

// GetRun returns one run. Errors: EINVALID for a malformed id, ENOTFOUND.
func (e *Engine) GetRun(ctx context.Context, id string) (Run, error) {
	r, _, err := e.getRun(ctx, id)
	return r, err
}

func (e *Engine) getRun(ctx context.Context, id string) (Run, Settings, error) {
	rk, err := runRowKey(id)
	if err != nil {
		return Run{}, Settings{}, err
	}
	ent, err := e.Store.Get(ctx, TableRuns, runsPartition, rk)
	if IsCode(err, ENOTFOUND) {
		return Run{}, Settings{}, Errorf(ENOTFOUND, "run %s does not exist", id).WithHint("List runs with GET /api/runs.")
	}
	if err != nil {
		return Run{}, Settings{}, fmt.Errorf("get run %s: %w", id, err)
	}
	s := DefaultSettings()
	if js := ent.Str("settings"); js != "" {
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			return Run{}, Settings{}, fmt.Errorf("get run %s: settings snapshot: %w", id, err)
		}
	}
	return runFromEntity(ent), s, nil
}

// updateRun applies change to the run row with an ETag-conditional write,
// retrying on conflicts. change may return an error to abort.
func (e *Engine) updateRun(ctx context.Context, id string, change func(*Run) error) (Run, error) {
	rk, err := runRowKey(id)
	if err != nil {
		return Run{}, err
	}
	for range 10 {
		ent, err := e.Store.Get(ctx, TableRuns, runsPartition, rk)
		if err != nil {
			return Run{}, fmt.Errorf("update run %s: %w", id, err)
		}
		r := runFromEntity(ent)
		if err := change(&r); err != nil {
			return r, err
		}
		next, err := runToEntity(r)
		if err != nil {
			return r, err
		}
		next.Props["settings"] = ent.Str("settings")
		next.ETag = ent.ETag
		etag, err := e.Store.Replace(ctx, TableRuns, next)
		if err == nil {
			r.ETag = etag
			return r, nil
		}
		if !IsCode(err, EPRECONDITION) {
			return r, fmt.Errorf("update run %s: %w", id, err)
		}
	}
	return Run{}, Errorf(EUNAVAILABLE, "run %s: too many concurrent updates", id)
}

// finishRun ends a run (failed or cancelled paths; success goes through
// finish). It is a no-op on a run that already ended.
func (e *Engine) finishRun(ctx context.Context, id, status, message, hint string) {
	e.endRun(ctx, id, status, "", message, hint)
}

// endRun is finishRun recording the error code of the failure, so the
// status page can tell a missing permission from a passing outage.
func (e *Engine) endRun(ctx context.Context, id, status string, code Code, message, hint string) {
	now := e.now()
	run, err := e.updateRun(ctx, id, func(r *Run) error {
		if r.Finished() {
			return errAlreadyFinished
		}
		r.Status, r.Phase, r.FinishedAt, r.ErrorCode = status, PhaseDone, &now, code
		if message != "" {
			r.Error, r.Hint = message, hint
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errAlreadyFinished) {
			e.log().ErrorContext(ctx, "could not finish run", "run", id, "err", err)
		}
		return
	}
	lb := e.newLog(run, nil)
	ev, lvl := EvRunFailed, LevelError
	if status == RunCancelled {
		ev, lvl = EvRunCancelled, LevelWarn
	}
	lb.add(LogEvent{Event: ev, Level: lvl, Reason: message, Message: hint})
	e.flushLog(ctx, run, lb)
	e.releaseLock(ctx, id)
}

var errAlreadyFinished = errors.New("run already finished")

func (e *Engine) newLog(r Run, page *int64) *logBuffer {
	return &logBuffer{run: r.ID, now: e.now, page: page}
}

// flushLog appends buffered lines to the run log. A log failure must not fail
// the sync (the data is already applied), so it is only reported.
func (e *Engine) flushLog(ctx context.Context, r Run, lb *logBuffer) {
	if lb.buf.Len() == 0 || r.LogName == "" {
		return
	}
	if err := e.Logs.AppendLog(ctx, r.LogName, lb.buf.Bytes()); err != nil {
		e.log().ErrorContext(ctx, "run log append failed", "run", r.ID, "err", err)
	}
	lb.buf.Reset()
}

func (e *Engine) send(ctx context.Context, w WorkItem, notBefore time.Time) error {
	m := w.message()
	m.NotBefore = notBefore
	if err := e.Queue.Send(ctx, m); err != nil {
		return fmt.Errorf("enqueue %s item of run %s: %w", w.Kind, w.RunID, err)
	}
	return nil
}
