package dirsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Work item kinds. A run is a chain of small items on the queue, so no
// invocation holds a tenant in memory or runs past a function's time limit.
// New kinds (group scope, dynamic groups, photos) are added here and in
// steps below.
const (
	WorkPage    = "page"    // fetch and apply one Graph page (page.go)
	WorkCollect = "collect" // wait until every page is applied (collect.go)
	WorkSweep   = "sweep"   // full runs: find users not seen in this run (sweep.go)
	WorkDecide  = "decide"  // check pending deletions against the threshold (decide.go)
	WorkDelete  = "delete"  // apply pending deletions, a chunk at a time (delete.go)
	WorkCount   = "count"   // count directory users by status (count.go)
	WorkFinish  = "finish"  // totals, save the delta token, release the lock (finish.go)
)

// step is what one work kind does. Every step is idempotent: a redelivered
// or duplicated item has the effect of one.
type step func(e *Engine, ctx context.Context, run Run, s Settings, w WorkItem) error

// steps is the dispatch table of the work kinds.
var steps = map[string]step{
	WorkPage:    (*Engine).doPage,
	WorkCollect: (*Engine).doCollect,
	WorkSweep:   (*Engine).doSweep,
	WorkDecide:  (*Engine).doDecide,
	WorkDelete:  (*Engine).doDelete,
	WorkCount:   (*Engine).doCount,
	WorkFinish:  (*Engine).doFinish,
}

// WorkItem is one message on the sync-work queue. RunID and Epoch are its
// generation: an item whose run has ended or restarted since is superseded
// and changes nothing.
type WorkItem struct {
	Kind  string `json:"kind"`
	RunID string `json:"run"`
	// Seq is the page's sequence number in its epoch (WorkPage, WorkCollect).
	Seq int64 `json:"seq,omitempty"`
	// Link is the Graph link to fetch; "" starts a fresh enumeration.
	Link string `json:"link,omitempty"`
	// Epoch is the run's restart count when the item was made.
	Epoch int64 `json:"epoch,omitempty"`
	// Bucket and Cursor locate a sweep, delete or count chunk.
	Bucket int    `json:"bucket,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	// Page numbers the pages of one chain whose Seq names something else
	// (a scope members page: Seq is the group, Page the page within it).
	Page int64 `json:"page,omitempty"`
	// Attempt counts reschedules (throttling, waiting for pages), so each
	// reschedule is a new message id.
	Attempt int `json:"attempt,omitempty"`
}

// MessageID is the item's queue message id: equal items get equal ids, so the
// queue's duplicate detection drops a second send of the same item.
func (w WorkItem) MessageID() string {
	key := fmt.Sprintf("%s|%d|%s|%d|%d|%s|%d", w.Kind, w.Seq, w.Link, w.Epoch, w.Bucket, w.Cursor, w.Attempt)
	if w.Page != 0 {
		key += fmt.Sprintf("|p%d", w.Page) // only when set: other items keep their ids
	}
	return fmt.Sprintf("%s-%s-%d-%s", w.RunID, w.Kind, w.Seq, shortHash(key))
}

// shortHash is a 12-hex-digit digest, for ids and keys derived from long or
// untrusted strings.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// maxItemLink bounds a work item's link: Graph's links are far shorter, and
// a message must stay well under Service Bus's 256 KB.
const maxItemLink = 16 << 10

// DecodeWorkItem parses a queue message body. Bad input is EINVALID: the
// message cannot be processed by any retry and should be dead-lettered.
func DecodeWorkItem(body []byte) (WorkItem, error) {
	var w WorkItem
	if err := json.Unmarshal(body, &w); err != nil {
		return WorkItem{}, Errorf(EINVALID, "work item is not valid JSON: %v", err)
	}
	if _, ok := steps[w.Kind]; !ok {
		return WorkItem{}, Errorf(EINVALID, "work item kind %q is unknown", truncate(w.Kind, 32))
	}
	if !ValidRunID(w.RunID) {
		return WorkItem{}, Errorf(EINVALID, "work item run id %q is not valid", truncate(w.RunID, 64))
	}
	if w.Seq < 0 || w.Seq >= 1<<31 || w.Epoch < 0 || w.Epoch > maxRestarts || w.Bucket < 0 || w.Bucket >= UserBuckets || w.Attempt < 0 {
		return WorkItem{}, Errorf(EINVALID, "work item has out-of-range numbers")
	}
	if len(w.Link) > maxItemLink || len(w.Cursor) > maxItemLink {
		return WorkItem{}, Errorf(EINVALID, "work item link or cursor is longer than %d bytes", maxItemLink)
	}
	return w, nil
}

func (w WorkItem) message() Message {
	b, _ := json.Marshal(w)
	return Message{ID: w.MessageID(), Body: b}
}

// next returns an item of the same generation.
func (w WorkItem) next(kind string) WorkItem {
	return WorkItem{Kind: kind, RunID: w.RunID, Epoch: w.Epoch}
}

var zeroTime time.Time

// Delivery describes how a work item reached us.
type Delivery struct {
	MessageID string
	// Count is the delivery count (1 on the first delivery).
	Count int
}

// errWaiting is returned by a step that only rescheduled itself to check
// again later: the item is complete, but the run made no progress, so the
// heartbeat is not refreshed (a run that only waits goes stale).
var errWaiting = errors.New("waiting")

// errPermanent wraps a failure that no redelivery can cure.
type errPermanent struct{ error }

func (p errPermanent) Unwrap() error { return p.error }

// HandleWork processes one work item. A nil return completes the message.
// An error abandons it, so the queue redelivers it; on the last allowed
// delivery the run is failed first, with the reason, and the message then
// dead-letters. An item of a run that ended, or of an earlier epoch, is
// dropped (nil).
//
// Errors: EINVALID for an undecodable item (never retry it), otherwise the
// transient failure that prevented progress.
func (e *Engine) HandleWork(ctx context.Context, body []byte, d Delivery) error {
	w, err := DecodeWorkItem(body)
	if err != nil {
		return err
	}
	log := e.log().With("run", w.RunID, "kind", w.Kind, "seq", w.Seq, "epoch", w.Epoch, "delivery", d.Count)
	if d.Count > 1 {
		// An earlier attempt may have stopped anywhere, also between
		// letting an email go and promoting who waits for it.
		if err := e.markWaiterPassDue(ctx, fmt.Sprintf("a %s item of run %s was delivered again", w.Kind, w.RunID)); err != nil {
			return err
		}
	}
	run, settings, err := e.getRun(ctx, w.RunID)
	if IsCode(err, ENOTFOUND) {
		log.WarnContext(ctx, "work item for an unknown run dropped")
		return nil
	}
	if err != nil {
		return err
	}
	// A finish item of a run that already succeeded may still have to save
	// its delta token and release the lock (a crash in between); every other
	// item needs a running run in its own epoch.
	resumeFinish := w.Kind == WorkFinish && (run.Status == RunSucceeded || run.Status == RunPreviewed)
	if !resumeFinish && (run.Status != RunRunning || w.Epoch != run.Restarts) {
		log.InfoContext(ctx, "superseded work item dropped", "status", run.Status, "runEpoch", run.Restarts)
		return nil
	}
	ctx = e.prefetchPage(ctx, run, settings, w)
	var lock lockState
	if !resumeFinish {
		// The lock is the fence between runs: a run that lost it (replaced
		// as stalled while its items were delayed) ends here instead of
		// applying pages beside its successor.
		if lock, err = e.readLock(ctx); err != nil {
			return err
		}
		if lock.RunID != run.ID {
			log.WarnContext(ctx, "work item of a run that lost its lock; the run is ended", "holder", lock.RunID)
			e.failRun(ctx, run.ID, EUNAVAILABLE, "The run lost its lock (it was replaced after making no progress) and was ended.",
				"Look at the run that replaced it in GET /api/runs.")
			return nil
		}
	}
	err = steps[w.Kind](e.forRun(run), ctx, run, settings, w)
	switch {
	case err == nil:
		e.heartbeat(ctx, lock)
		return nil
	case errors.Is(err, errWaiting):
		return nil
	case errors.Is(err, errSuperseded):
		log.InfoContext(ctx, "work item superseded while it ran; nothing was changed by its last step")
		return nil
	}
	log.WarnContext(ctx, "work item failed", "err", err, "code", ErrorCode(err))
	var perm errPermanent
	permanent := errors.As(err, &perm) || isPermanent(err)
	if d.Count >= e.maxDeliveries() || permanent {
		msg := fmt.Sprintf("The %s step failed %d times: %s", w.Kind, d.Count, ErrorMessage(err))
		if permanent {
			msg = fmt.Sprintf("The %s step failed: %s", w.Kind, ErrorMessage(err))
		}
		hint := ErrorHint(err)
		if hint == "" {
			hint = "Check GET /api/health and the function logs; the run can be started again with POST /api/sync once the cause is fixed."
		}
		if w.Epoch == run.Restarts {
			e.failRun(ctx, run.ID, ErrorCode(err), msg, hint)
		}
		if permanent {
			return nil // retrying cannot help; the run says why
		}
	}
	return err
}

// isPermanent reports Graph errors no redelivery can cure.
func isPermanent(err error) bool {
	switch ErrorCode(err) {
	case EFORBIDDEN, EUNAUTHORIZED:
		return true
	}
	return false
}
