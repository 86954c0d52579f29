package dirsync

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ApproveDeletions lets a blocked run apply its pending deletions.
// Errors: EINVALID/ENOTFOUND for the id, ECONFLICT when the run is not blocked.
func (e *Engine) ApproveDeletions(ctx context.Context, runID, who string) (Run, error) {
	run, err := e.updateRun(ctx, runID, func(r *Run) error {
		if r.Status != RunBlocked {
			return Errorf(ECONFLICT, "run %s is %s, not waiting for approval", runID, r.Status)
		}
		r.Status, r.Phase, r.Error, r.Hint = RunRunning, PhaseDeleting, "", ""
		return nil
	})
	if err != nil {
		return run, e.runErr(ctx, runID, err)
	}
	if err := e.setLockStatus(ctx, runID, RunRunning); err != nil {
		return run, err
	}
	lb := e.newLog(run, nil)
	lb.add(LogEvent{Event: EvApproved, Message: fmt.Sprintf("%d deletions approved by %s", run.PendingDeletions, who)})
	e.flushLog(ctx, run, lb)
	return run, e.send(ctx, WorkItem{Kind: WorkDelete, RunID: runID, Epoch: run.Restarts}, zeroTime)
}

// RejectDeletions finishes a blocked run without deleting anyone: the users
// stay in the directory. The next full sync will propose them again.
// Errors as ApproveDeletions.
func (e *Engine) RejectDeletions(ctx context.Context, runID, who string) (Run, error) {
	run, err := e.updateRun(ctx, runID, func(r *Run) error {
		if r.Status != RunBlocked {
			return Errorf(ECONFLICT, "run %s is %s, not waiting for approval", runID, r.Status)
		}
		r.Status, r.Phase, r.Error, r.Hint = RunRunning, PhaseCounting, "", ""
		return nil
	})
	if err != nil {
		return run, e.runErr(ctx, runID, err)
	}
	if err := e.setLockStatus(ctx, runID, RunRunning); err != nil {
		return run, err
	}
	lb := e.newLog(run, nil)
	lb.add(LogEvent{Event: EvRejected, Level: LevelWarn, Message: fmt.Sprintf("%d deletions rejected by %s; those users stay in the directory", run.PendingDeletions, who)})
	e.flushLog(ctx, run, lb)
	return run, e.send(ctx, WorkItem{Kind: WorkCount, RunID: runID, Epoch: run.Restarts}, zeroTime)
}

// CancelRun stops a running or blocked run. Work already applied stays; the
// delta token is not advanced, so the next run picks up from the last one.
// Errors: EINVALID/ENOTFOUND for the id, ECONFLICT when it already ended or
// is finishing (its token is being saved: it ends by itself in a moment).
func (e *Engine) CancelRun(ctx context.Context, runID, who string) (Run, error) {
	run, err := e.GetRun(ctx, runID)
	if err != nil {
		return run, err
	}
	if run.Finished() {
		return run, Errorf(ECONFLICT, "run %s already ended (%s)", runID, run.Status)
	}
	if err := e.endRun(ctx, runID, RunCancelled, "", "Cancelled by "+who+".", "Start a new sync with POST /api/sync when ready."); err != nil {
		return run, err
	}
	return e.GetRun(ctx, runID)
}

func (e *Engine) runErr(ctx context.Context, runID string, err error) error {
	if IsCode(err, ENOTFOUND) {
		if _, gerr := e.GetRun(ctx, runID); gerr != nil {
			return gerr
		}
	}
	return err
}

// ListRuns returns runs newest first, optionally only those with status.
func (e *Engine) ListRuns(ctx context.Context, status RunStatus, limit int, token string) ([]Run, string, error) {
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	var out []Run
	q := Query{PartitionKey: runsPartition, Top: limit, Continuation: token}
	for {
		page, err := e.Store.Query(ctx, TableRuns, q)
		if err != nil {
			return nil, "", err
		}
		for _, ent := range page.Entities {
			if r := runFromEntity(ent); status == "" || r.Status == status {
				out = append(out, r)
			}
		}
		// With a status filter a page may yield few rows; keep reading until
		// the page is full or the table ends.
		if page.Continuation == "" || len(out) >= limit || status == "" {
			return out, page.Continuation, nil
		}
		q.Continuation = page.Continuation
	}
}

// OpenRunLog streams a run's log (JSON Lines). Errors: EINVALID/ENOTFOUND.
func (e *Engine) OpenRunLog(ctx context.Context, runID string) (io.ReadCloser, Run, error) {
	run, err := e.GetRun(ctx, runID)
	if err != nil {
		return nil, run, err
	}
	rc, err := e.Logs.OpenLog(ctx, run.LogName)
	return rc, run, err
}

// RunLogURL returns a time-limited read-only link to a run's log.
func (e *Engine) RunLogURL(ctx context.Context, runID string, ttl time.Duration) (string, error) {
	run, err := e.GetRun(ctx, runID)
	if err != nil {
		return "", err
	}
	return e.Logs.LogURL(ctx, run.LogName, ttl)
}

// GetUser returns one directory user. Errors: EINVALID for a malformed id,
// ENOTFOUND.
func (e *Engine) GetUser(ctx context.Context, id string) (User, error) {
	if !validObjectID(id) {
		return User{}, Errorf(EINVALID, "%q is not a user object id (a GUID)", id)
	}
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(id), id)
	if IsCode(err, ENOTFOUND) {
		return User{}, Errorf(ENOTFOUND, "user %s is not in the directory", id).
			WithHint("Find users with GET /api/users; a user out of scope, or deleted in Entra, is not in the directory.")
	}
	if err != nil {
		return User{}, err
	}
	return userFromEntity(ent), nil
}

// ActiveRun returns the run holding the lock, if any.
func (e *Engine) ActiveRun(ctx context.Context) (*Run, error) {
	lock, err := e.readLock(ctx)
	if err != nil {
		return nil, err
	}
	id := lock.RunID
	if id == "" {
		return nil, nil
	}
	r, err := e.GetRun(ctx, id)
	if IsCode(err, ENOTFOUND) {
		// The lock is taken before the run row is written: a run that
		// has just started has no row for a moment.
		return &Run{ID: id, Status: RunRunning, Phase: PhaseEnumerating, LastPage: -1}, nil
	}
	if err != nil {
		return nil, err
	}
	if r.Finished() {
		// Ended, and about to release the lock (or a start will take it):
		// nothing is in progress.
		return nil, nil
	}
	{
		if totals, err := e.pageTotals(ctx, r); err == nil {
			r.Counters = totals
		}
		var n int64
		if e.scanPrefix(ctx, TablePages, r.ID, epochPrefix(r.Restarts), func(Entity) { n++ }) == nil {
			r.PagesDone = n
		}
	}
	return &r, nil
}
