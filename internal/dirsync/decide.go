package dirsync

import (
	"context"
	"fmt"
)

// doDecide compares the pending deletions with the threshold: within it they
// are applied; beyond it the run is blocked until an admin decides.
func (e *Engine) doDecide(ctx context.Context, run Run, s Settings, w WorkItem) error {
	pending, err := e.countRows(ctx, TableDeletions, run.ID)
	if err != nil {
		return err
	}
	size, err := e.directorySize(ctx, run)
	if err != nil {
		return err
	}
	totals, err := e.pageTotals(ctx, run)
	if err != nil {
		return err
	}
	reason := ""
	t := s.DeletionThreshold
	switch {
	case pending == 0:
	case run.Mode == ModeFull && totals.Seen == 0:
		reason = fmt.Sprintf("Entra returned no users at all, which would delete all %d directory users", pending)
	case t.Enabled && t.MaxCount > 0 && pending > int64(t.MaxCount):
		reason = fmt.Sprintf("%d users would be deleted, more than the threshold of %d", pending, t.MaxCount)
	case t.Enabled && t.MaxPercent > 0 && size > 0 && float64(pending)*100/float64(size) > t.MaxPercent:
		reason = fmt.Sprintf("%d of %d users (%.1f%%) would be deleted, more than the threshold of %.1f%%",
			pending, size, float64(pending)*100/float64(size), t.MaxPercent)
	}
	if reason != "" && run.Preview {
		// A preview holds nothing for approval: it says so, and goes on to
		// show what the deletions would do.
		lb := e.newLog(run, nil)
		lb.add(LogEvent{Event: EvRunBlocked, Level: LevelWarn, Reason: reason,
			Message: "a real sync would hold these deletions for an admin's approval (the deletion threshold); the preview shows them as applied"})
		e.flushLog(ctx, run, lb)
		reason = ""
	}
	if reason == "" {
		if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase = PhaseDeleting; return nil }); err != nil {
			return err
		}
		return e.send(ctx, w.next(WorkDelete), zeroTime)
	}
	hint := fmt.Sprintf("Review the pending deletions (GET /api/runs/%s/deletions), then approve them with POST /api/runs/%s/deletions/approve or keep the users with POST /api/runs/%s/deletions/reject.", run.ID, run.ID, run.ID)
	updated, err := e.advance(ctx, w, func(r *Run) error {
		r.Status, r.Phase, r.PendingDeletions, r.Error, r.Hint = RunBlocked, PhaseDeciding, pending, "Deletions held for approval: "+reason, hint
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.setLockStatus(ctx, run.ID, RunBlocked); err != nil {
		if IsCode(err, ECONFLICT) {
			// The lock went to another run: a blocked run nobody can approve
			// must not linger. End it, saying why.
			e.failRun(ctx, run.ID, EUNAVAILABLE, "The run lost its lock to a newer run before its deletions could be held for approval; nothing was deleted.",
				"Look at the newer run; its own sweep decides again.")
			return nil
		}
		return err
	}
	lb := e.newLog(updated, nil)
	lb.add(LogEvent{Event: EvRunBlocked, Level: LevelWarn, Reason: reason, Message: hint})
	e.flushLog(ctx, updated, lb)
	return e.listPending(ctx, updated)
}

// directorySize is the directory size the percentage threshold is taken
// of: the rows the sweep scanned in full runs, the count at the end of the
// last run for delta runs.
func (e *Engine) directorySize(ctx context.Context, run Run) (int64, error) {
	if run.Mode == ModeFull {
		var n int64
		err := e.scanPartition(ctx, TablePages, run.ID+"|sweep", func(ent Entity) { n += ent.Int("scanned") })
		return n, err
	}
	ent, err := e.Store.Get(ctx, TableState, statePartition, statsRowKey)
	if IsCode(err, ENOTFOUND) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return statsFromEntity(ent).Users(), nil
}

// listPending writes one log line per pending deletion, a query page at a
// time, so the admin can review them.
func (e *Engine) listPending(ctx context.Context, run Run) error {
	q := Query{PartitionKey: run.ID}
	for {
		page, err := e.Store.Query(ctx, TableDeletions, q)
		if err != nil {
			return err
		}
		lb := e.newLog(run, nil)
		for _, ent := range page.Entities {
			d := deletionFromEntity(ent)
			lb.add(LogEvent{Event: EvPendingDeletion, Level: LevelWarn, UserID: d.UserID, UPN: d.UPN, Reason: d.Reason})
		}
		e.flushLog(ctx, run, lb)
		if page.Continuation == "" {
			return nil
		}
		q.Continuation = page.Continuation
	}
}
