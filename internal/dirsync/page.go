package dirsync

import (
	"context"
	"fmt"
	"time"
)

// maxRestarts bounds restarts to a full enumeration within one run.
const maxRestarts = 5

// doPage fetches one Graph page and applies it. The successor is queued
// before the page is applied, so fetching the next page overlaps with
// applying this one on another worker; the page's record keeps the
// successor's link, so a page found recorded queues it again (the queue
// drops the duplicate) instead of trusting it was sent.
//
// The first page of an epoch is applied before its successor is queued: it
// is fetched with an empty link, and fetching it again starts a new round
// of Graph's with other pages, so nothing may build on one fetch of it
// until that fetch is recorded. A later page fetched again must lead to
// the same successor it recorded; if Graph answers otherwise, the chain
// of this epoch mixes two rounds, and the enumeration starts again rather
// than risk a user falling between them (and being swept as deleted).
func (e *Engine) doPage(ctx context.Context, run Run, settings Settings, w WorkItem) error {
	if rec, err := e.Store.Get(ctx, TablePages, run.ID, pageRowKey(w.Epoch, w.Seq)); err == nil {
		return e.queueSuccessor(ctx, w, rec.Str("next"), rec.Str("delta"))
	} else if !IsCode(err, ENOTFOUND) {
		return err
	}
	page, err := e.Source.UsersDelta(ctx, DeltaRequest{Link: w.Link, Select: settings.SelectAttributes(), PageSize: settings.PageSize})
	switch ErrorCode(err) {
	case "":
	case ETOKENEXPIRED:
		return e.restartEpoch(ctx, run, w, true, ErrorMessage(err),
			"The saved sync position is no longer valid (Graph keeps delta tokens for 7 days). A full sync starts now automatically; users deleted in the meantime are removed at its end.")
	case ETHROTTLED:
		return e.reschedule(ctx, run, w, RetryAfter(err), "Graph asked us to slow down")
	default:
		return err
	}
	if page.NextLink == "" && page.DeltaLink == "" {
		return Errorf(EINVALID, "Graph returned a page with neither a next link nor a delta link")
	}
	if err := e.markDirty(ctx, run); err != nil {
		return err
	}
	successor := map[string]any{"next": page.NextLink, "delta": page.DeltaLink}
	if w.Seq == 0 {
		if err := e.applyPage(ctx, run, settings, w, page.Users, successor); err != nil {
			return err
		}
		// Two attempts of the first page at once (a redelivery while the
		// first still ran) may have read two rounds: only the recorded one
		// may go on, and rows this attempt stamped from another round would
		// count as seen by it, so the enumeration starts again.
		rec, err := e.Store.Get(ctx, TablePages, run.ID, pageRowKey(w.Epoch, w.Seq))
		if err != nil {
			return fmt.Errorf("read page %d record: %w", w.Seq, err)
		}
		if rec.Str("next") != page.NextLink || rec.Str("delta") != page.DeltaLink {
			return e.restartEpoch(ctx, run, w, false, "two attempts of the first page read different Graph rounds",
				"The first page was read twice at the same time; the round is read again from its start so that no user is missed.")
		}
		return e.queueSuccessor(ctx, w, page.NextLink, page.DeltaLink)
	}
	consistent, err := e.recordSuccessor(ctx, run, w, page.NextLink+"|"+page.DeltaLink)
	if err != nil {
		return err
	}
	if !consistent {
		return e.restartEpoch(ctx, run, w, false, "Graph answered a page fetched again with another next page",
			"Graph's paging changed while this page was retried; the round is read again from its start so that no user is missed.")
	}
	if err := e.queueSuccessor(ctx, w, page.NextLink, page.DeltaLink); err != nil {
		return err
	}
	return e.applyPage(ctx, run, settings, w, page.Users, successor)
}

// recordSuccessor notes which successor a page's first fetch led to, and
// reports whether this fetch leads to the same one.
func (e *Engine) recordSuccessor(ctx context.Context, run Run, w WorkItem, links string) (bool, error) {
	key := shortHash(links)
	ent, err := e.modify(ctx, TablePages, run.ID+"|next", pageRowKey(w.Epoch, w.Seq), func(ent *Entity, exists bool) error {
		if exists {
			return errSkipWrite
		}
		ent.Props = map[string]any{"links": key}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record page %d successor: %w", w.Seq, err)
	}
	return ent.Str("links") == key, nil
}

// queueSuccessor queues what follows a page: the next page, or, after the
// round's last page, collect (recording the round's end on the run).
func (e *Engine) queueSuccessor(ctx context.Context, w WorkItem, nextLink, deltaLink string) error {
	if nextLink != "" {
		next := w.next(WorkPage)
		next.Seq, next.Link = w.Seq+1, nextLink
		return e.send(ctx, next, zeroTime)
	}
	if _, err := e.advance(ctx, w, func(r *Run) error {
		r.LastPage, r.DeltaLink = w.Seq, deltaLink
		return nil
	}); err != nil {
		return err
	}
	collect := w.next(WorkCollect)
	collect.Seq = w.Seq
	return e.send(ctx, collect, zeroTime)
}

// markDirty records, before a run's first write, that it applies changes.
// If the run then does not succeed, its delta token is discarded while its
// changes stay, and a later delta round from the older token may not
// repeat them (Graph sends "at least" what changed: a value changed and
// changed back may be left out). The next run is then a full one
// (StartRun), which rewrites every user.
func (e *Engine) markDirty(ctx context.Context, run Run) error {
	_, err := e.modify(ctx, TableState, statePartition, dirtyRowKey, func(ent *Entity, exists bool) error {
		if exists {
			return errSkipWrite
		}
		ent.Props = map[string]any{"runSeq": run.Seq, "runId": run.ID}
		return nil
	})
	return err
}

// restartEpoch starts the run's round again in a new epoch, whose pages
// start again at 0 and whose collect waits for its own pages only; items of
// the old epoch are superseded from here on. With full (Graph rejected the
// delta or next link) the run becomes a full enumeration: never a dead end,
// the full run sweeps at the end, which removes users deleted while we had
// no valid token. Without it (the chain of pages mixed two of Graph's
// rounds) the round is read again from the same start: a delta run stays a
// delta run (what the old epoch applied was a true read of Graph and stays),
// a full run enumerates again.
func (e *Engine) restartEpoch(ctx context.Context, run Run, w WorkItem, full bool, reason, message string) error {
	startLink := ""
	if !full && run.Mode == ModeDelta {
		delta, err := e.deltaState(ctx)
		if err != nil {
			return err
		}
		startLink = delta.Link
	}
	tooMany := &Error{Code: ETOKENEXPIRED, Message: fmt.Sprintf("The enumeration had to start again %d times in a row (last: %s)", maxRestarts+1, reason),
		Hint: "Start a full sync later with POST /api/sync {\"mode\":\"full\"}; if it keeps failing, check Graph service health."}
	updated, err := e.advance(ctx, w, func(r *Run) error {
		if r.Restarts >= maxRestarts {
			return tooMany
		}
		r.Restarts++
		if startLink == "" {
			r.Mode, r.FullFrom = ModeFull, r.Restarts
		}
		r.Phase, r.LastPage, r.DeltaLink, r.PagesDone = PhaseEnumerating, -1, "", 0
		return nil
	})
	if err == tooMany {
		e.failRun(ctx, run.ID, tooMany.Code, tooMany.Message, tooMany.Hint)
		return nil
	}
	if err != nil {
		return err
	}
	lb := e.newLog(updated, &w.Seq)
	ev := EvTokenExpired
	if !full {
		ev = EvRoundRestarted
	}
	lb.add(LogEvent{Event: ev, Level: LevelWarn, Reason: reason, Message: message})
	e.flushLog(ctx, updated, lb)
	first := WorkItem{Kind: WorkPage, RunID: run.ID, Epoch: updated.Restarts, Link: startLink}
	return e.send(ctx, first, zeroTime)
}

// reschedule sends the item again for later instead of sleeping, so a long
// Retry-After never burns the function's time limit.
func (e *Engine) reschedule(ctx context.Context, run Run, w WorkItem, wait time.Duration, why string) error {
	if wait <= 0 {
		wait = 30 * time.Second
	}
	const maxAttempts = 200
	if w.Attempt >= maxAttempts {
		e.failRun(ctx, run.ID, ETHROTTLED, fmt.Sprintf("%s %d times in a row; giving up", why, maxAttempts),
			"Graph throttled this app for a long time. Start the sync again later; if it persists, check other apps using the same app registration.")
		return nil
	}
	w.Attempt++
	lb := e.newLog(run, &w.Seq)
	lb.add(LogEvent{Event: EvThrottled, Level: LevelWarn, Message: fmt.Sprintf("%s; retrying in %s", why, wait.Round(time.Second))})
	e.flushLog(ctx, run, lb)
	return e.send(ctx, w, e.now().Add(wait))
}
