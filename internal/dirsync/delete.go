package dirsync

import (
	"context"
	"fmt"
	"slices"
)

// doDelete applies one chunk of deletions. A deletion is applied only if no
// later page, epoch or run has written the user since the decision (its
// stamp), and the row is deleted conditionally on the state that was
// checked: a user that reappeared, or that a newer run wrote, is kept.
// Each row's outcome is written before the directory is changed, so a
// redelivered chunk repeats the same (idempotent) deletions and the count
// stays exact.
func (e *Engine) doDelete(ctx context.Context, run Run, s Settings, w WorkItem) error {
	page, err := e.Store.Query(ctx, TableDeletions, Query{PartitionKey: run.ID, Top: MaxBatch, Continuation: w.Cursor})
	if err != nil {
		return err
	}
	var marks []BatchOp
	dels := make([]deletion, len(page.Entities))
	for i, ent := range page.Entities {
		d := deletionFromEntity(ent)
		if d.Outcome == "" {
			d.Outcome = outcomeDeleted
			u, err := e.Store.Get(ctx, TableUsers, Bucket(d.UserID), d.UserID)
			if err != nil && !IsCode(err, ENOTFOUND) {
				return err
			}
			if err == nil && writtenSince(run, d, userFromEntity(u)) {
				d.Outcome = outcomeKept
			} else if err == nil {
				d.GroupsLeft = int64(len(userFromEntity(u).Memberships()))
			}
			marks = append(marks, BatchOp{Kind: BatchReplace, Entity: d.entity()})
		}
		dels[i] = d
	}
	if err := e.batchWrite(ctx, TableDeletions, marks, nil); err != nil {
		return err
	}
	lb := e.newLog(run, nil)
	for _, d := range dels {
		if d.Outcome == outcomeDeleted {
			kept, err := e.deleteUser(ctx, run, s, d, lb)
			if err != nil {
				return err
			}
			if kept {
				d.Outcome = outcomeKept
				d.GroupsLeft = 0
				if _, err := e.Store.Replace(ctx, TableDeletions, deletion{PendingDeletion: d.PendingDeletion, Stamp: d.Stamp, runID: run.ID}.entity()); err != nil {
					return fmt.Errorf("record kept user %s: %w", d.UserID, err)
				}
			}
		}
		switch d.Outcome {
		case outcomeDeleted:
			lb.add(LogEvent{Event: EvDeleted, UserID: d.UserID, UPN: d.UPN, Reason: d.Reason})
		case outcomeKept:
			lb.add(LogEvent{Event: EvDeletionKept, UserID: d.UserID, UPN: d.UPN, Reason: "the user was seen again after the decision (later in this sync, or by a newer one)"})
		}
	}
	e.flushLog(ctx, run, lb)
	if page.Continuation != "" {
		next := w.next(WorkDelete)
		next.Cursor = page.Continuation
		return e.send(ctx, next, zeroTime)
	}
	if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase = PhaseCounting; return nil }); err != nil {
		return err
	}
	return e.send(ctx, w.next(WorkCount), zeroTime)
}

// writtenSince reports whether u was written after deletion d was decided:
// by a later run, or by a later page or epoch of this one.
func writtenSince(run Run, d deletion, u User) bool {
	return u.RunSeq > run.Seq || (u.RunSeq == run.Seq && u.PageSeq > d.Stamp)
}

// deleteUser removes a user from the directory and from every group, and
// frees its email. Every step is idempotent. It reports kept when the row
// was written since the decision (it is then left as it is).
func (e *Engine) deleteUser(ctx context.Context, run Run, s Settings, d deletion, lb *logBuffer) (kept bool, err error) {
	id := d.UserID
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(id), id)
	if IsCode(err, ENOTFOUND) {
		return false, nil // deleted by an earlier attempt, groups first
	}
	if err != nil {
		return false, fmt.Errorf("delete user %s: %w", id, err)
	}
	u := userFromEntity(ent)
	if writtenSince(run, d, u) {
		return true, nil
	}
	// The user leaves every group first, through its own row (the user ->
	// groups index): then the row goes. A retry repeats the same removals.
	gone := u
	gone.Status = "deleted"
	prepareMembers(&u, &gone, run.Seq, deleteStamp)
	for _, g := range u.MemberDiff {
		// An index write of u's last change may not have landed: cover it.
		if !slices.Contains(gone.MemberDiff, g) {
			gone.MemberDiff = append(gone.MemberDiff, g)
		}
	}
	if len(gone.MemberDiff) > 0 && gone.MemberVer == u.MemberVer {
		gone.MemberVer = bumpMemberVer(u.MemberVer, run.Seq, deleteStamp)
	}
	if err := e.syncMembers(ctx, gone); err != nil {
		return false, err
	}
	for _, g := range u.Memberships() {
		lb.add(LogEvent{Event: EvMemberRemoved, UserID: id, UPN: d.UPN, Group: g, Reason: "the user was removed from the directory"})
	}
	if err := e.deleteUserRow(ctx, u); err != nil {
		if IsCode(err, EPRECONDITION) {
			return false, &Error{Code: EUNAVAILABLE, Message: "a user changed while it was being deleted; the chunk is applied again", Err: err}
		}
		return false, fmt.Errorf("delete user %s: %w", id, err)
	}
	switch {
	case u.Status == StatusActive && u.Email != "":
		return false, e.releaseEmail(ctx, run, s, u.Email, id, lb)
	case u.Status == StatusDuplicate && u.Email != "":
		return false, e.Store.Delete(ctx, TableEmails, Bucket(u.Email), waiterKey(u.Email, id), "")
	}
	return false, nil
}
