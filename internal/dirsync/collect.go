package dirsync

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// doCollect waits until every page of the epoch's round is applied, then
// moves on: full runs sweep, delta runs decide on deletions. Waiting is not
// progress: a run whose pages stop being applied (their items dead-lettered
// after the worker was killed on every delivery) goes stale, and collect
// then fails it, naming the pages that never arrived, instead of waiting
// forever.
func (e *Engine) doCollect(ctx context.Context, run Run, s Settings, w WorkItem) error {
	done := map[int64]bool{}
	err := e.scanPrefix(ctx, TablePages, run.ID, epochPrefix(w.Epoch), func(ent Entity) {
		done[parseSeq(strings.TrimPrefix(ent.RowKey, epochPrefix(w.Epoch)))] = true
	})
	if err != nil {
		return err
	}
	if int64(len(done)) < run.LastPage+1 {
		lock, err := e.readLock(ctx)
		if err != nil {
			return err
		}
		if lock.RunID == run.ID && e.lockStale(lock, e.now()) {
			var missing []string
			for s := int64(0); s <= run.LastPage && len(missing) < 10; s++ {
				if !done[s] {
					missing = append(missing, fmt.Sprint(s))
				}
			}
			e.failRun(ctx, run.ID, EUNAVAILABLE,
				fmt.Sprintf("Graph page(s) %s of this run were never applied: no progress for %s. Their work items were most likely delivered %d times without finishing (the worker was killed: out of memory or the function timeout) and went to the dead-letter queue.",
					strings.Join(missing, ", "), e.staleAfter(), e.maxDeliveries()),
				"Look at the dead-lettered messages of the sync-work queue and the function logs around that time, then start a new sync: it picks up from the last successful one.")
			return nil
		}
		w.Attempt++
		wait := min(e.waitDelay()<<min(w.Attempt-1, 10), time.Minute)
		if err := e.send(ctx, w, e.now().Add(wait)); err != nil {
			return err
		}
		return errWaiting
	}
	next, phase := e.afterUsers(s, w)
	switch {
	case run.Mode == ModeFull:
		next, phase = w.next(WorkSweep), PhaseSweeping
	case run.Evaluate:
		// The dynamic groups changed since the directory was evaluated,
		// and this delta run read only changed users: evaluate the rest.
		next, phase = w.next(WorkEvaluate), PhaseEvaluating
	}
	if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase, r.PagesDone = phase, int64(len(done)); return nil }); err != nil {
		return err
	}
	return e.send(ctx, next, zeroTime)
}

func parseSeq(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
