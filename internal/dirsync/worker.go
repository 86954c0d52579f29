package dirsync

import (
	"context"
	"fmt"
	"time"
)

// Delivery describes how a work item reached us.
type Delivery struct {
	MessageID string
	// Count is the delivery count (1 on the first delivery).
	Count int
}

// HandleWork processes one work item. A nil return completes the message.
// An error abandons it, so the queue redelivers it; on the last allowed
// delivery the run is failed first, with the reason, and the message then
// dead-letters.
//
// Errors: EINVALID for an undecodable item (never retry it), otherwise the
// transient failure that prevented progress.
func (e *Engine) HandleWork(ctx context.Context, body []byte, d Delivery) error {
	w, err := DecodeWorkItem(body)
	if err != nil {
		return err
	}
	log := e.log().With("run", w.RunID, "kind", w.Kind, "seq", w.Seq, "delivery", d.Count)
	run, settings, err := e.getRun(ctx, w.RunID)
	if IsCode(err, ENOTFOUND) {
		log.WarnContext(ctx, "work item for an unknown run dropped")
		return nil
	}
	if err != nil {
		return err
	}
	if run.Finished() || run.Status == RunBlocked {
		log.InfoContext(ctx, "work item for a run that is not running dropped", "status", run.Status)
		return nil
	}
	if w.Kind == WorkPage && w.Epoch < run.Restarts {
		log.InfoContext(ctx, "stale work item from before a restart dropped")
		return nil
	}
	switch w.Kind {
	case WorkPage:
		err = e.doPage(ctx, run, settings, w)
	case WorkCollect:
		err = e.doCollect(ctx, run, w)
	case WorkSweep:
		err = e.doSweep(ctx, run, w)
	case WorkDecide:
		err = e.doDecide(ctx, run, settings, w)
	case WorkDelete:
		err = e.doDelete(ctx, run, w)
	case WorkCount:
		err = e.doCount(ctx, run, w)
	case WorkFinish:
		err = e.doFinish(ctx, run, settings, w)
	}
	if err == nil {
		e.heartbeat(ctx, run.ID)
		return nil
	}
	log.WarnContext(ctx, "work item failed", "err", err, "code", ErrorCode(err))
	if d.Count >= e.maxDeliveries() || isPermanent(err) {
		msg := fmt.Sprintf("The %s step failed %d times: %s", w.Kind, d.Count, ErrorMessage(err))
		hint := ErrorHint(err)
		if isPermanent(err) {
			msg = fmt.Sprintf("The %s step failed: %s", w.Kind, ErrorMessage(err))
		}
		if hint == "" {
			hint = "Check GET /api/health and the function logs; the run can be started again with POST /api/sync once the cause is fixed."
		}
		e.endRun(ctx, run.ID, RunFailed, ErrorCode(err), msg, hint)
		if isPermanent(err) {
			return nil // retrying cannot help; the run says why
		}
	}
	return err
}

// isPermanent reports errors no redelivery can cure.
func isPermanent(err error) bool {
	switch ErrorCode(err) {
	case EFORBIDDEN, EUNAUTHORIZED:
		return true
	}
	return false
}

func (e *Engine) doPage(ctx context.Context, run Run, settings Settings, w WorkItem) error {
	// A page already applied only needs its successor to exist (the queue
	// drops the resend if it does).
	if _, err := e.Store.Get(ctx, TablePages, run.ID, pageRowKey(w.Seq)); err == nil {
		return nil
	} else if !IsCode(err, ENOTFOUND) {
		return err
	}
	page, err := e.Source.UsersDelta(ctx, DeltaRequest{Link: w.Link, Select: settings.SelectAttributes(), PageSize: settings.PageSize})
	switch ErrorCode(err) {
	case "":
	case ETOKENEXPIRED:
		return e.restartFull(ctx, run, w, err)
	case ETHROTTLED:
		return e.reschedule(ctx, run, w, RetryAfter(err), "Graph asked us to slow down")
	default:
		return err
	}
	// Enqueue the successor first, so fetching the next page overlaps with
	// applying this one on another worker.
	if page.NextLink != "" {
		next := WorkItem{Kind: WorkPage, RunID: run.ID, Seq: w.Seq + 1, Link: page.NextLink, Epoch: w.Epoch}
		if err := e.send(ctx, next, time.Time{}); err != nil {
			return err
		}
	} else {
		if page.DeltaLink == "" {
			return Errorf(EINVALID, "Graph returned a page with neither a next link nor a delta link")
		}
		if _, err := e.updateRun(ctx, run.ID, func(r *Run) error {
			r.LastPage, r.DeltaLink = w.Seq, page.DeltaLink
			return nil
		}); err != nil {
			return err
		}
		if err := e.send(ctx, WorkItem{Kind: WorkCollect, RunID: run.ID, Seq: w.Seq}, time.Time{}); err != nil {
			return err
		}
	}
	return e.applyPage(ctx, run, settings, w.Seq, page.Users)
}

// restartFull turns the run into a full enumeration after Graph rejected a
// delta or next link. Never a dead end: the full run sweeps at the end, which
// removes users deleted while we had no valid token.
func (e *Engine) restartFull(ctx context.Context, run Run, w WorkItem, cause error) error {
	const maxRestarts = 3
	updated, err := e.updateRun(ctx, run.ID, func(r *Run) error {
		if r.Restarts > w.Epoch {
			return errAlreadyFinished // another delivery restarted already
		}
		if r.Restarts >= maxRestarts {
			return &Error{Code: EUNAVAILABLE, Message: fmt.Sprintf("Graph rejected the sync position %d times in a row", maxRestarts),
				Hint: "Start a full sync later with POST /api/sync {\"mode\":\"full\"}; if it keeps failing, check Graph service health."}
		}
		r.Restarts++
		r.Mode, r.FullFrom, r.Phase = ModeFull, w.Seq, PhaseEnumerating
		return nil
	})
	if err == errAlreadyFinished {
		return nil
	}
	if err != nil {
		if IsCode(err, EUNAVAILABLE) {
			e.finishRun(ctx, run.ID, RunFailed, ErrorMessage(err), ErrorHint(err))
			return nil
		}
		return err
	}
	lb := e.newLog(updated, &w.Seq)
	lb.add(LogEvent{Event: EvTokenExpired, Level: LevelWarn, Reason: ErrorMessage(cause),
		Message: "The saved sync position is no longer valid (Graph keeps delta tokens for 7 days). A full sync starts now automatically; users deleted in the meantime are removed at its end."})
	e.flushLog(ctx, updated, lb)
	return e.send(ctx, WorkItem{Kind: WorkPage, RunID: run.ID, Seq: w.Seq, Epoch: updated.Restarts}, time.Time{})
}

// reschedule sends the item again for later instead of sleeping, so a long
// Retry-After never burns the function's time limit.
func (e *Engine) reschedule(ctx context.Context, run Run, w WorkItem, wait time.Duration, why string) error {
	if wait <= 0 {
		wait = 30 * time.Second
	}
	const maxAttempts = 200
	if w.Attempt >= maxAttempts {
		e.finishRun(ctx, run.ID, RunFailed, fmt.Sprintf("%s %d times in a row; giving up", why, maxAttempts),
			"Graph throttled this app for a long time. Start the sync again later; if it persists, check other apps using the same app registration.")
		return nil
	}
	w.Attempt++
	lb := e.newLog(run, &w.Seq)
	lb.add(LogEvent{Event: EvThrottled, Level: LevelWarn, Message: fmt.Sprintf("%s; retrying in %s", why, wait.Round(time.Second))})
	e.flushLog(ctx, run, lb)
	return e.send(ctx, w, e.now().Add(wait))
}

// doCollect waits until every page of the round is applied, then moves on:
// full runs sweep, delta runs decide on deletions.
func (e *Engine) doCollect(ctx context.Context, run Run, w WorkItem) error {
	done, err := e.countRows(ctx, TablePages, run.ID)
	if err != nil {
		return err
	}
	if done < run.LastPage+1 {
		w.Attempt++
		return e.send(ctx, w, e.now().Add(e.waitDelay()))
	}
	next := WorkItem{Kind: WorkDecide, RunID: run.ID}
	phase := PhaseDeciding
	if run.Mode == ModeFull {
		next, phase = WorkItem{Kind: WorkSweep, RunID: run.ID}, PhaseSweeping
	}
	if _, err := e.updateRun(ctx, run.ID, func(r *Run) error { r.Phase, r.PagesDone = phase, done; return nil }); err != nil {
		return err
	}
	return e.send(ctx, next, time.Time{})
}

func (e *Engine) countRows(ctx context.Context, table, pk string) (int64, error) {
	var n int64
	err := e.scanPartition(ctx, table, pk, func(Entity) { n++ })
	return n, err
}

// scanPartition calls f for every row of one partition, a query page at a
// time. It is for partitions that are read whole (a run's pages, deletions,
// a user's groups); resumable scans of the directory keep their cursor in
// the work item instead.
func (e *Engine) scanPartition(ctx context.Context, table, pk string, f func(Entity)) error {
	q := Query{PartitionKey: pk}
	for {
		page, err := e.Store.Query(ctx, table, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			f(ent)
		}
		if page.Continuation == "" {
			return nil
		}
		q.Continuation = page.Continuation
	}
}
