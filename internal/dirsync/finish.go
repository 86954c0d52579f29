package dirsync

import (
	"context"
	"fmt"
	"time"
)

// doFinish totals the run, marks it succeeded, then saves the delta token
// and the directory's counts and releases the lock in one atomic batch of
// the state partition, conditional on the lock as read: a run that lost its
// lock never moves the token. The run is marked succeeded first, so the
// token only ever moves with a succeeded run; a crash between the two is
// resumed by the redelivered item (HandleWork lets a finish item of a
// succeeded run through).
func (e *Engine) doFinish(ctx context.Context, run Run, s Settings, w WorkItem) error {
	if run.Status == RunSucceeded || run.Status == RunPreviewed {
		return e.commitRun(ctx, run, s)
	}
	totals, err := e.pageTotals(ctx, run)
	if err != nil {
		return err
	}
	deleted, left, err := e.deletedCount(ctx, run.ID)
	if err != nil {
		return err
	}
	totals.Deleted, totals.MembersRemoved = deleted, totals.MembersRemoved+left
	now := e.now()

	// A run in which every user was skipped for a missing attribute points
	// at the mapping, not at the users: fail it and say which field.
	warning, warningHint := "", ""
	if totals.Seen > 0 && totals.Skipped == totals.Seen && run.Mode == ModeFull && run.Preview {
		// A preview says it, and ends previewed: that is its answer.
		field := worstSkip(totals)
		warning = fmt.Sprintf("Every user (%d) would be skipped: none has the required field %s.", totals.Seen, describeFields(s, []string{field}))
		warningHint = fmt.Sprintf("Fix the mapping of %q (or remove it from required) before saving these settings.", field)
	}
	if totals.Seen > 0 && totals.Skipped == totals.Seen && run.Mode == ModeFull && !run.Preview {
		field := worstSkip(totals)
		if _, err := e.advance(ctx, w, func(r *Run) error { r.Counters = totals; return nil }); err != nil {
			return err
		}
		e.failRun(ctx, run.ID, EINVALID,
			fmt.Sprintf("Every user (%d) was skipped: none has the required field %s.", totals.Seen, describeFields(s, []string{field})),
			fmt.Sprintf("Fix the mapping of %q in the settings (or remove it from required), then run a full sync.", field))
		return nil
	}

	if err := e.pruneMirrored(ctx, s); err != nil {
		return err
	}
	finished, err := e.advance(ctx, w, func(r *Run) error {
		r.Status, r.Phase, r.FinishedAt, r.Counters, r.PendingDeletions = RunSucceeded, PhaseDone, &now, totals, 0
		if r.Preview {
			r.Status = RunPreviewed
		}
		r.Error, r.Hint, r.ErrorCode = warning, warningHint, "" // a blocked run's message no longer applies
		return nil
	})
	if err != nil {
		return err
	}
	lb := e.newLog(finished, nil)
	what := finished.Mode + " sync finished"
	if finished.Preview {
		what = finished.Mode + " preview finished (nothing was changed: the counters say what a sync would do)"
	}
	lb.add(LogEvent{Event: EvRunFinished, Counters: &totals, Message: fmt.Sprintf("%s in %s",
		what, now.Sub(finished.StartedAt).Round(time.Second))})
	e.flushLog(ctx, finished, lb)
	e.log().InfoContext(ctx, "run finished", "run", run.ID, "added", totals.Added, "updated", totals.Updated, "deleted", totals.Deleted)
	return e.commitRun(ctx, finished, s)
}

// commitRun saves a succeeded run's delta token and counts and releases its
// lock, all in one batch, while the run still holds the lock.
func (e *Engine) commitRun(ctx context.Context, run Run, s Settings) error {
	if run.Preview {
		// A preview moves nothing: no token, no counts, no scope; it only
		// lets the lock go.
		e.releaseLock(ctx, run.ID)
		return nil
	}
	counts, err := e.statusCounts(ctx, run.ID)
	if err != nil {
		return err
	}
	for range maxWriteAttempts {
		lock, err := e.readLock(ctx)
		if err != nil {
			return err
		}
		if lock.RunID != run.ID {
			if lock.RunID != "" {
				e.log().WarnContext(ctx, "a newer run holds the lock: the delta token of this run is not saved", "run", run.ID, "holder", lock.RunID)
			}
			return nil
		}
		ops := []BatchOp{
			{Kind: BatchReplace, Entity: lockState{Heartbeat: e.now(), ETag: lock.ETag}.entity()},
			{Kind: BatchUpsert, Entity: directoryStats{RunID: run.ID, ByStatus: counts}.entity()},
		}
		if run.DeltaLink != "" {
			ops = append(ops, BatchOp{Kind: BatchUpsert, Entity: DeltaState{Link: run.DeltaLink, IssuedAt: e.now(), ShapeHash: run.ShapeHash, RunID: run.ID, RuleProps: run.RuleProps}.entity()})
		}
		// Every user's memberships now follow the run's groups (a full run
		// applied everyone, a delta run evaluated the rest), and the scope
		// rows of its generation are complete.
		ops = append(ops, BatchOp{Kind: BatchUpsert, Entity: Entity{PartitionKey: statePartition, RowKey: groupsRowKey, Props: map[string]any{"evaluatedHash": run.GroupsHash, "runId": run.ID}}})
		// An unconfirmed scope saves its generation without a link: the
		// next run starts a fresh round and reads the members again.
		if len(s.GroupScope) > 0 && (run.ScopeLink != "" || run.ScopeUnconfirmed) {
			ops = append(ops, BatchOp{Kind: BatchUpsert, Entity: scopeState{Gen: run.ScopeGen, Link: run.ScopeLink, Tracked: run.ScopeTracked, Hash: scopeHash(s)}.entity()})
		}
		// A full run rewrote every user: earlier unfinished runs' changes
		// are covered. A delta run covers only its own.
		if dirty, err := e.Store.Get(ctx, TableState, statePartition, dirtyRowKey); err == nil {
			if d := dirty.Int("runSeq"); d == run.Seq || (run.Mode == ModeFull && run.FullFrom == 0 && d <= run.Seq) || (run.Mode == ModeFull && d == run.Seq) {
				ops = append(ops, BatchOp{Kind: BatchDelete, Entity: Entity{PartitionKey: statePartition, RowKey: dirtyRowKey, ETag: dirty.ETag}})
			}
		} else if !IsCode(err, ENOTFOUND) {
			return err
		}
		err = e.Store.Batch(ctx, TableState, ops)
		if err == nil {
			return nil
		}
		if !IsCode(err, EPRECONDITION) && !IsCode(err, ENOTFOUND) {
			return fmt.Errorf("save delta token: %w", err)
		}
	}
	return Errorf(EUNAVAILABLE, "could not save the delta token: the lock kept changing")
}

// pageTotals sums the page records of the run's last epoch. A restarted
// run reads every user again in its last epoch, and what earlier epochs
// did is known from the rows (addedBy, updatedBy, apply.go), so the last
// epoch's counters are the run's: no user is counted once per epoch, and
// no change is lost with an epoch whose pages never got recorded.
func (e *Engine) pageTotals(ctx context.Context, run Run) (Counters, error) {
	var c Counters
	err := e.scanPrefix(ctx, TablePages, run.ID, epochPrefix(run.Restarts), func(ent Entity) { c.add(countersFrom(ent)) })
	return c, err
}

// worstSkip is the required field most users were skipped for.
func worstSkip(totals Counters) string {
	field, worst := "", int64(0)
	for f, n := range totals.SkippedBy {
		if n > worst || (n == worst && f < field) {
			field, worst = f, n
		}
	}
	return field
}
