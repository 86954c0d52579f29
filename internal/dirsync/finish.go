package dirsync

import (
	"context"
	"fmt"
	"time"
)

// doFinish totals the run, saves the delta token, ends the run and releases
// the lock. Redelivered, it finds the run finished and does nothing.
func (e *Engine) doFinish(ctx context.Context, run Run, s Settings, w WorkItem) error {
	totals, err := e.pageTotals(ctx, run.ID)
	if err != nil {
		return err
	}
	deleted, err := e.deletedCount(ctx, run.ID)
	if err != nil {
		return err
	}
	totals.Deleted = deleted
	now := e.now()

	// A run in which every user was skipped for a missing attribute points
	// at the mapping, not at the users: fail it and say which field.
	if totals.Seen > 0 && totals.Skipped == totals.Seen && run.Mode == ModeFull {
		field, worst := "", int64(0)
		for f, n := range totals.SkippedBy {
			if n > worst || (n == worst && f < field) {
				field, worst = f, n
			}
		}
		desc := describeFields(s, []string{field})
		e.updateRun(ctx, run.ID, func(r *Run) error { r.Counters = totals; return nil })
		e.finishRun(ctx, run.ID, RunFailed,
			fmt.Sprintf("Every user (%d) was skipped: none has the required field %s.", totals.Seen, desc),
			fmt.Sprintf("Fix the mapping of %q in the settings (or remove it from required), then run a full sync.", field))
		return nil
	}

	if run.DeltaLink != "" {
		_, err := e.Store.Upsert(ctx, TableState, Entity{PartitionKey: statePartition, RowKey: deltaRow,
			Props: map[string]any{"link": run.DeltaLink, "issuedAt": now, "shapeHash": run.ShapeHash, "runId": run.ID}})
		if err != nil {
			return fmt.Errorf("save delta token: %w", err)
		}
	}
	if err := e.updateStats(ctx, run, totals); err != nil {
		return err
	}
	finished, err := e.updateRun(ctx, run.ID, func(r *Run) error {
		if r.Finished() {
			return errAlreadyFinished
		}
		r.Status, r.Phase, r.FinishedAt, r.Counters, r.PendingDeletions = RunSucceeded, PhaseDone, &now, totals, 0
		r.Error, r.Hint = "", "" // a blocked run's message no longer applies
		return nil
	})
	if err == errAlreadyFinished {
		return nil
	}
	if err != nil {
		return err
	}
	lb := e.newLog(finished, nil)
	lb.add(LogEvent{Event: EvRunFinished, Counters: &totals, Message: fmt.Sprintf("%s sync finished in %s",
		finished.Mode, now.Sub(finished.StartedAt).Round(time.Second))})
	e.flushLog(ctx, finished, lb)
	e.releaseLock(ctx, run.ID)
	e.log().InfoContext(ctx, "run finished", "run", run.ID, "added", totals.Added, "updated", totals.Updated, "deleted", totals.Deleted)
	return nil
}

// updateStats records the directory's size and its users by status, as
// counted at the end of the run. The size is what the percentage threshold
// of delta runs is taken of.
func (e *Engine) updateStats(ctx context.Context, run Run, c Counters) error {
	counts, err := e.statusCounts(ctx, run.ID)
	if err != nil {
		return err
	}
	props := map[string]any{"runId": run.ID}
	var users int64
	for st, n := range counts {
		props["n_"+st] = n
		users += n
	}
	props["users"] = users
	_, err = e.Store.Upsert(ctx, TableState, Entity{PartitionKey: statePartition, RowKey: statsRow, Props: props})
	return err
}
