package dirsync

import (
	"context"
	"fmt"
	"time"
)

// The single-run lock is the state/sync/lock row. It is only ever taken,
// handed over and released by writes conditional on the ETag of the lock
// as read, after checking who holds it: two starts that both find a stale
// lock cannot both take it, and a run never releases a lock it lost.

// takeLock makes runID the lock holder. A free lock, a lock whose holder
// has ended, and a stale one (no progress for LockStaleAfter; a blocked run
// is never stale) may be taken; a holder that succeeded and is saving its
// delta token is waited for, briefly. It returns the replaced holder when
// that run still had to be failed ("" otherwise).
//
// Errors: ECONFLICT naming the holder when the lock is held, or when
// another start took it at the same moment; store errors as they come.
func (e *Engine) takeLock(ctx context.Context, runID string, now time.Time) (replaced string, err error) {
	for attempt := 0; ; attempt++ {
		lock, err := e.readLock(ctx)
		if err != nil {
			return "", err
		}
		replaced = ""
		if lock.RunID != "" {
			holder, err := e.GetRun(ctx, lock.RunID)
			if err != nil && !IsCode(err, ENOTFOUND) {
				return "", err
			}
			committing := err == nil && holder.Status == RunSucceeded && !e.lockStale(lockState{RunID: lock.RunID, Heartbeat: lock.Heartbeat}, now)
			switch {
			case committing && attempt < 10:
				// It succeeded and is saving its delta token, which releases
				// the lock in a moment: wait rather than refuse, and rather
				// than take the lock from under it (its token would be lost).
				e.pause(200 * time.Millisecond)
				continue
			case err == nil && holder.Finished():
				// Ended without releasing (a crash in between): free.
			case !e.lockStale(lock, now):
				return "", &Error{Code: ECONFLICT, Message: fmt.Sprintf("run %s is in progress", lock.RunID),
					Hint: "Wait for it to finish, or cancel it with POST /api/runs/" + lock.RunID + "/cancel."}
			default:
				replaced = lock.RunID
			}
		}
		next := lockState{RunID: runID, Status: RunRunning, Heartbeat: now, ETag: lock.ETag}
		if lock.ETag == "" {
			_, err = e.Store.Insert(ctx, TableState, next.entity())
		} else {
			_, err = e.Store.Replace(ctx, TableState, next.entity())
		}
		if err == nil {
			if replaced != "" {
				if r, gerr := e.GetRun(ctx, replaced); gerr == nil && r.Finished() {
					replaced = "" // nothing to fail
				}
			}
			return replaced, nil
		}
		if !IsCode(err, ECONFLICT) && !IsCode(err, EPRECONDITION) && !IsCode(err, ENOTFOUND) {
			return "", fmt.Errorf("take lock: %w", err)
		}
		if attempt >= 2 {
			holder := "another run"
			if cur, gerr := e.readLock(ctx); gerr == nil && cur.RunID != "" {
				holder = "run " + cur.RunID
			}
			return "", &Error{Code: ECONFLICT, Message: holder + " started at the same moment and is in progress",
				Hint: "Wait for it to finish, or look at GET /api/status."}
		}
		// The lock changed between reading and writing (a release, or
		// another start): read it again and decide again.
	}
}

// lockFree reports whether a held lock may be taken: its run ended (a crash
// between ending and releasing), or it is stale.
func (e *Engine) lockFree(ctx context.Context, lock lockState, now time.Time) (bool, error) {
	run, err := e.GetRun(ctx, lock.RunID)
	switch {
	case err == nil && run.Finished():
		return true, nil
	case err != nil && !IsCode(err, ENOTFOUND):
		return false, err
	}
	return e.lockStale(lock, now), nil
}

// pause waits d (Engine.Sleep, or the real clock).
func (e *Engine) pause(d time.Duration) {
	if e.Sleep != nil {
		e.Sleep(d)
		return
	}
	time.Sleep(d)
}

func (e *Engine) lockStale(lock lockState, now time.Time) bool {
	if lock.RunID == "" || lock.Status == RunBlocked {
		return false // free, or waiting for an admin, which is not being stuck
	}
	return now.Sub(lock.Heartbeat) > e.staleAfter()
}

// failStalled fails a run whose lock was found stale.
func (e *Engine) failStalled(ctx context.Context, id string) {
	e.failRun(ctx, id, EUNAVAILABLE,
		fmt.Sprintf("The run stopped making progress (no heartbeat for %s) and was ended.", e.staleAfter()),
		"Its work items were probably dead-lettered (the worker was killed, e.g. out of memory or the function timeout): look at the sync-work dead-letter queue and the function logs around the time it stopped. The next sync picks up from the last successful one.")
	e.log().WarnContext(ctx, "stalled run ended", "run", id)
}

// releaseLock frees the lock if runID holds it; a lock held by another run
// is left alone. Failures are logged: a lock held by an ended run is free
// for the next start anyway (lockFree).
func (e *Engine) releaseLock(ctx context.Context, runID string) {
	_, err := e.modify(ctx, TableState, statePartition, lockRowKey, func(ent *Entity, exists bool) error {
		if !exists || ent.Str("runId") != runID {
			return errSkipWrite
		}
		*ent = lockState{Heartbeat: e.now(), ETag: ent.ETag}.entity()
		return nil
	})
	if err != nil {
		e.log().WarnContext(ctx, "could not release the lock", "run", runID, "err", err)
	}
}

// setLockStatus records that the holder is running or blocked.
// Errors: ECONFLICT when runID no longer holds the lock.
func (e *Engine) setLockStatus(ctx context.Context, runID string, status RunStatus) error {
	_, err := e.modify(ctx, TableState, statePartition, lockRowKey, func(ent *Entity, exists bool) error {
		if !exists || ent.Str("runId") != runID {
			return Errorf(ECONFLICT, "run %s no longer holds the lock", runID)
		}
		*ent = lockState{RunID: runID, Status: status, Heartbeat: e.now(), ETag: ent.ETag}.entity()
		return nil
	})
	return err
}

// heartbeat records progress on the lock as the item read it, at most once
// a minute. The write is conditional on that read: if the step changed the
// lock meanwhile (blocked, released), the heartbeat is simply dropped.
// Failures are harmless.
func (e *Engine) heartbeat(ctx context.Context, lock lockState) {
	if lock.RunID == "" || e.now().Sub(lock.Heartbeat) < time.Minute {
		return
	}
	lock.Heartbeat = e.now()
	e.Store.Replace(ctx, TableState, lock.entity())
}

// readLock returns the lock as stored (zero when there is none).
func (e *Engine) readLock(ctx context.Context) (lockState, error) {
	ent, err := e.Store.Get(ctx, TableState, statePartition, lockRowKey)
	if IsCode(err, ENOTFOUND) {
		return lockState{}, nil
	}
	if err != nil {
		return lockState{}, fmt.Errorf("read lock: %w", err)
	}
	return lockFromEntity(ent), nil
}

// recoverStalled ends the lock holder if it stalled, and any recent run
// that is still marked running or blocked without holding the lock (a start
// killed after writing its row, a takeover killed before failing the run it
// replaced), so that nothing waits forever even when nobody starts a new
// run: the timer calls it.
func (e *Engine) recoverStalled(ctx context.Context) error {
	lock, err := e.readLock(ctx)
	if err != nil {
		return err
	}
	runs, _, err := e.ListRuns(ctx, "", 10, "")
	if err != nil {
		return err
	}
	for _, r := range runs {
		if !r.Finished() && r.ID != lock.RunID {
			e.failRun(ctx, r.ID, EUNAVAILABLE, "The run no longer held the sync lock (it was replaced, or its start was interrupted) and was ended.",
				"Nothing to do: the next sync picks up from the last successful one.")
		}
	}
	if lock.RunID == "" {
		return nil
	}
	free, err := e.lockFree(ctx, lock, e.now())
	if err != nil || !free {
		return err
	}
	e.failStalled(ctx, lock.RunID)
	// A holder without a run row (a start that crashed) cannot be ended:
	// release its lock directly, conditional on the lock as read.
	released := lockState{Heartbeat: e.now(), ETag: lock.ETag}
	if _, err := e.Store.Replace(ctx, TableState, released.entity()); err != nil && !IsCode(err, EPRECONDITION) && !IsCode(err, ENOTFOUND) {
		return fmt.Errorf("release stalled lock: %w", err)
	}
	return nil
}
