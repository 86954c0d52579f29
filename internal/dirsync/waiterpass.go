package dirsync

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The count step's waiter pass (repairWaiters) looks at every waiting
// duplicate and promotes those whose email nobody holds any more: three
// reads each, so O(duplicates) on every run, whatever the run changed
// (issue 17: 600 reads of a 1,000-change run on a 100,000-user tenant with
// 200 duplicates). A duplicate can only be left waiting for a free email
// by a failed or interrupted step, so a delta run makes the pass only when
// it is due:
//
//   - a work item is delivered again (its first attempt may have stopped
//     anywhere: HandleWork);
//   - a duplicate of a delta run waits for a claim its own run made, whose
//     owner's row may never be written (claim);
//   - a duplicate could not mark the claim it waits for (markWaiting);
//   - a deletion is about to let go of an email duplicates wait for: the
//     row goes before the email is released (deleteUser);
//   - provisioning on demand starts and ends (it is not a work item, so
//     nothing delivers it again after a crash);
//   - the state row is absent (a directory from before the pass could be
//     skipped, or one written by a version that did not mark).
//
// A run that applied changes and did not succeed makes the next run full
// (markDirty), and full runs always make the pass. So does a delta run
// when the last pass is older than waiterPassEvery: a safety net for a
// cause not listed above.
//
// A pass clears the mark only if nothing marked it since the pass began
// (the row's ETag is still the one the run's decision read), so a mark
// made while the pass runs keeps it due for the next run.
const (
	waiterPassRowKey = "waiterPass"
	waiterPassEvery  = 24 * time.Hour
	// Run.WaiterPass: the first repair item's decision.
	waiterPassSkip   = "skip"
	waiterPassAbsent = "absent" // make it; the state row did not exist
	waiterPassETag   = "etag:"  // make it; then clear the row if it still has this ETag
)

// markWaiterPassDue records that the next count step must make the waiter
// pass (why is kept on the row for support).
func (e *Engine) markWaiterPassDue(ctx context.Context, why string) error {
	_, err := e.Store.Upsert(ctx, TableState, Entity{PartitionKey: statePartition, RowKey: waiterPassRowKey,
		Props: map[string]any{"due": true, "why": why, "markedAt": e.now()}})
	if err != nil {
		return fmt.Errorf("mark the waiter pass due: %w", err)
	}
	return nil
}

// sameRunWaits remembers, per process, the delta runs whose duplicates
// already marked the pass due for waiting on the run's own claims: once
// per run is enough, as the pass comes after all of the run's pages.
var sameRunWaits = runSet{keep: waiterPassEvery}

// runSet is a set of run ids that forgets a run keep after adding it, so
// a process that lives for months holds only its last day's runs. A run
// forgotten while it still goes on costs one more mark, which is always
// safe: marking the pass due too often only makes a pass.
type runSet struct {
	keep  time.Duration
	mu    sync.Mutex
	added map[string]time.Time
}

// add reports whether id was new, and forgets the runs added more than
// keep before now.
func (s *runSet) add(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.added[id]; seen {
		return false
	}
	if s.added == nil {
		s.added = make(map[string]time.Time)
	}
	for old, at := range s.added {
		if now.Sub(at) > s.keep {
			delete(s.added, old)
		}
	}
	s.added[id] = now
	return true
}

// remove forgets id (its mark failed: the next wait must try again).
func (s *runSet) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.added, id)
}

// markWaitingOnOwnRun marks the pass due the first time, in this process,
// a duplicate of delta run run waits for a claim the run made.
func (e *Engine) markWaitingOnOwnRun(ctx context.Context, run Run) error {
	if run.Mode == ModeFull && run.OnDemandStamp == 0 {
		return nil // a full run makes the pass anyway
	}
	if !sameRunWaits.add(run.ID, e.now()) {
		return nil
	}
	if err := e.markWaiterPassDue(ctx, "a duplicate waits for an email claimed earlier in run "+run.ID); err != nil {
		sameRunWaits.remove(run.ID)
		return err
	}
	return nil
}

// decideWaiterPass returns the run with its waiter pass decided: made or
// skipped, once per run (the first attempt's decision stands).
//
// Errors: store errors as they come.
func (e *Engine) decideWaiterPass(ctx context.Context, run Run, w WorkItem) (Run, error) {
	if run.WaiterPass != "" {
		return run, nil
	}
	decision := waiterPassAbsent
	ent, err := e.Store.Get(ctx, TableState, statePartition, waiterPassRowKey)
	switch {
	case err == nil:
		decision = waiterPassETag + ent.ETag
		if run.Mode == ModeDelta && !ent.Bool("due") && e.now().Sub(ent.Time("passedAt")) < waiterPassEvery {
			decision = waiterPassSkip
		}
	case !IsCode(err, ENOTFOUND):
		return run, fmt.Errorf("read the waiter pass state: %w", err)
	}
	return e.advance(ctx, w, func(r *Run) error {
		if r.WaiterPass == "" {
			r.WaiterPass = decision
		}
		return nil
	})
}

// waiterPassDone records that run made a whole pass: not due, unless
// marked since its decision (then it stays due for the next run).
//
// Errors: store errors but the expected conflicts.
func (e *Engine) waiterPassDone(ctx context.Context, run Run) error {
	if run.Preview {
		return nil
	}
	row := Entity{PartitionKey: statePartition, RowKey: waiterPassRowKey,
		Props: map[string]any{"due": false, "passedAt": e.now(), "runId": run.ID}}
	var err error
	switch {
	case strings.HasPrefix(run.WaiterPass, waiterPassETag):
		row.ETag = strings.TrimPrefix(run.WaiterPass, waiterPassETag)
		_, err = e.Store.Replace(ctx, TableState, row)
	case run.WaiterPass == waiterPassAbsent:
		_, err = e.Store.Insert(ctx, TableState, row)
	default:
		return nil
	}
	if err == nil || IsCode(err, EPRECONDITION) || IsCode(err, ECONFLICT) || IsCode(err, ENOTFOUND) {
		return nil
	}
	return fmt.Errorf("record the waiter pass: %w", err)
}
