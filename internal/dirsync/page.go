package dirsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// maxRestarts bounds restarts to a full enumeration within one run.
const maxRestarts = 10

// doPage fetches one Graph page and applies it. The successor is queued
// before the page is applied, so fetching the next page overlaps with
// applying this one on another worker; the page's record keeps the
// successor's link, so a page found recorded queues it again (the queue
// drops the duplicate) instead of trusting it was sent.
//
// A page fetched again (a retry, or two deliveries at once) must be the
// page its first fetch was, and the chain goes on from the successor that
// first fetch recorded. Graph may word a retried page's next link
// differently (a skiptoken can carry when it was issued, as the local Graph
// simulator's do): the same users in the same order are the same page, and
// the recorded link is followed. If Graph answers with other users (a first
// page read again always starts a new round of Graph's), the epoch's pages
// would mix two rounds: users the first attempt stamped would count as seen
// by a round that may not hold them, and a user could fall between the
// rounds and be swept as deleted. The round is then read again from its
// start in a new epoch (restartEpoch).
func (e *Engine) doPage(ctx context.Context, run Run, settings Settings, w WorkItem) error {
	if rec, err := e.Store.Get(ctx, TablePages, run.ID, pageRowKey(w.Epoch, w.Seq)); err == nil {
		return e.queueSuccessor(ctx, w, rec.Str("next"), rec.Str("delta"))
	} else if !IsCode(err, ENOTFOUND) {
		return err
	}
	page, err := e.fetchPage(ctx, run, settings, w)
	if err == nil && page.NextLink != "" {
		e.prefetchNext(ctx, settings, page.NextLink)
	}
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
	// Every later page of the epoch is queued after this first one's
	// successor, so marking at the first page precedes every write.
	if w.Seq == 0 && !run.Preview {
		if err := e.markDirty(ctx, run); err != nil {
			return err
		}
	}
	next, consistent, err := e.recordSuccessor(ctx, run, w, page)
	if err != nil {
		return err
	}
	if !consistent {
		return e.restartEpoch(ctx, run, w, false, "a page fetched again held other users than its first fetch",
			"Graph answered a retried page from another round (a first page read again always starts a new one); the round is read again from its start so that no user is missed.")
	}
	page.NextLink, page.DeltaLink = next.NextLink, next.DeltaLink
	successor := map[string]any{"next": page.NextLink, "delta": page.DeltaLink}
	if err := e.queueSuccessor(ctx, w, page.NextLink, page.DeltaLink); err != nil {
		return err
	}
	if err := e.notePhotoCandidates(ctx, run, settings, w, page.Users); err != nil {
		return err
	}
	return e.applyPage(ctx, run, settings, w, page.Users, successor)
}

// fetchPage reads the item's page from Graph. The first page of an epoch is
// kept (in the pages table, beside the run's page records) the first time it
// is read, and every later attempt uses that copy: fetched again, a first
// page starts a new round of Graph's with other pages, which would mix two
// rounds in one epoch. Later pages are fetched again by their link
// (recordSuccessor checks that Graph answers the same round). The copy
// holds what the directory holds (sensitive fields included), so it stays
// in the tables, not in the log container that support staff browse.
func (e *Engine) fetchPage(ctx context.Context, run Run, s Settings, w WorkItem) (UserPage, error) {
	rg, err := e.runGroups(ctx, run, s)
	if err != nil {
		return UserPage{}, err
	}
	req := DeltaRequest{Link: w.Link, Select: rg.selectAttrs, PageSize: s.PageSize}
	if w.Seq != 0 {
		if p := e.prefetchedPage(ctx, req); p != nil {
			<-p.done
			return p.page, p.err
		}
		return e.Source.UsersDelta(ctx, req)
	}
	if page, ok, err := e.keptPage(ctx, run, w); err != nil || ok {
		return page, err
	}
	page, err := e.Source.UsersDelta(ctx, req)
	if err != nil {
		return page, err
	}
	b, err := json.Marshal(page)
	if err != nil {
		return UserPage{}, fmt.Errorf("keep first page: %w", err)
	}
	// Rows of up to keptPartsPerRow properties; one batch, so the copy is
	// whole or absent, and of two attempts at once the first one wins.
	const keptPartsPerRow = 16
	var ops []BatchOp
	text := []rune(string(b))
	for row := 0; len(text) > 0 || row == 0; row++ {
		props := map[string]any{}
		for part := 0; part < keptPartsPerRow && len(text) > 0; part++ {
			n := min(len(text), maxPropChars)
			props[fmt.Sprintf("p%02d", part)] = string(text[:n])
			text = text[n:]
		}
		ops = append(ops, BatchOp{Kind: BatchInsert, Entity: Entity{PartitionKey: run.ID + "|kept", RowKey: fmt.Sprintf("%s%04d", epochPrefix(w.Epoch), row), Props: props}})
	}
	if len(ops) > MaxBatch {
		return page, nil // too large to keep (never with Graph's page sizes): use it as read
	}
	if err := e.Store.Batch(ctx, TablePages, ops); err != nil && !IsCode(err, ECONFLICT) {
		return UserPage{}, fmt.Errorf("keep first page: %w", err)
	}
	page, _, err = e.keptPage(ctx, run, w)
	return page, err
}

// keptPage reads the kept copy of an epoch's first page (ok false when
// there is none).
func (e *Engine) keptPage(ctx context.Context, run Run, w WorkItem) (UserPage, bool, error) {
	var b strings.Builder
	rows := 0
	err := e.scanPrefix(ctx, TablePages, run.ID+"|kept", epochPrefix(w.Epoch), func(ent Entity) {
		rows++
		for part := 0; ; part++ {
			v, ok := ent.Props[fmt.Sprintf("p%02d", part)].(string)
			if !ok {
				break
			}
			b.WriteString(v)
		}
	})
	if err != nil {
		return UserPage{}, false, fmt.Errorf("read kept first page: %w", err)
	}
	if rows == 0 {
		return UserPage{}, false, nil
	}
	var page UserPage
	if err := json.Unmarshal([]byte(b.String()), &page); err != nil {
		return UserPage{}, false, fmt.Errorf("read kept first page: %w", err)
	}
	return page, true, nil
}

// recordSuccessor notes which successor a page's first fetch led to, and
// which users it held, and reports the successor the chain goes on from:
// the first fetch's, when this fetch is the same page (consistent). A
// fetch is the same page when it leads to the same links, or when it holds
// the same users in the same order and, like the first, either goes on or
// ends the round (Graph may issue a new skiptoken for the same position).
// A record written before the users were recorded (an older version's)
// compares links only.
//
// It inserts first and reads only when a record exists (a page fetched
// again): it is on the chain of pages' critical path, so the first fetch
// costs one request, not a read and a write.
func (e *Engine) recordSuccessor(ctx context.Context, run Run, w WorkItem, page UserPage) (successor UserPage, consistent bool, err error) {
	links := shortHash(page.NextLink + "|" + page.DeltaLink)
	ids := make([]string, len(page.Users))
	for i, u := range page.Users {
		ids[i] = u.ID
	}
	users := shortHash(strings.Join(ids, "\n"))
	successor = UserPage{NextLink: page.NextLink, DeltaLink: page.DeltaLink}
	pk, rk := run.ID+"|next", pageRowKey(w.Epoch, w.Seq)
	props := map[string]any{"links": links, "users": users, "next": page.NextLink, "delta": page.DeltaLink}
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: pk, RowKey: rk, Props: props})
	if err == nil {
		return successor, true, nil
	}
	if !IsCode(err, ECONFLICT) {
		return UserPage{}, false, fmt.Errorf("record page %d successor: %w", w.Seq, err)
	}
	ent, err := e.Store.Get(ctx, TablePages, pk, rk)
	if err != nil {
		return UserPage{}, false, fmt.Errorf("record page %d successor: %w", w.Seq, err)
	}
	switch {
	case ent.Str("links") == links:
		return successor, true, nil
	case ent.Str("users") == users && (ent.Str("next") == "") == (page.NextLink == "") && (ent.Str("next") != "" || ent.Str("delta") != ""):
		return UserPage{NextLink: ent.Str("next"), DeltaLink: ent.Str("delta")}, true, nil
	}
	return UserPage{}, false, nil
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

// markDirty records, before a run's first write (at each epoch's first
// page), that it applies changes.
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
