package dirsync

import (
	"context"
	"fmt"
	"slices"
	"sort"
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
	// The user rows are read at once (with the engine's concurrency): the
	// outcome of an undecided deletion depends on its row, and every
	// deletion's email orders it against the others below.
	dels := make([]deletion, len(page.Entities))
	rows := make([]*User, len(page.Entities))
	err = e.parallel(ctx, len(page.Entities), func(i int) error {
		dels[i] = deletionFromEntity(page.Entities[i])
		u, err := e.Store.Get(ctx, TableUsers, Bucket(dels[i].UserID), dels[i].UserID)
		if IsCode(err, ENOTFOUND) {
			return nil
		}
		if err != nil {
			return err
		}
		cur := userFromEntity(u)
		rows[i] = &cur
		return nil
	})
	if err != nil {
		return err
	}
	var marks []BatchOp
	for i := range dels {
		d := &dels[i]
		if d.Outcome == "" {
			d.Outcome = outcomeDeleted
			if u := rows[i]; u != nil && writtenSince(run, *d, *u) {
				d.Outcome = outcomeKept
			} else if u != nil {
				d.GroupsLeft = int64(len(u.Memberships()))
			}
			marks = append(marks, BatchOp{Kind: BatchReplace, Entity: d.entity()})
		}
	}
	if err := e.batchWrite(ctx, TableDeletions, marks, nil); err != nil {
		return err
	}
	// The deletions are applied several at a time; each one's steps stay in
	// deleteUser's order. Users of one partition move the same counts row:
	// usersBatch builds it again and resends when another moved it. Users
	// sharing an email (its owner and its waiting duplicates) are applied one
	// after another in the chunk's order, by one goroutine: a release
	// promotes a waiter, and whether that waiter is promoted before its own
	// deletion (and leaves its groups as a member) must not depend on
	// timing. Deletions of different emails touch no common row but the
	// counts rows, so the outcome is that of the chunk applied in order.
	// Log lines are kept per deletion and added in the chunk's order.
	var groups [][]int
	byEmail := map[string]int{}
	for i, u := range rows {
		if u == nil || u.Email == "" {
			groups = append(groups, []int{i})
			continue
		}
		g, ok := byEmail[u.Email]
		if !ok {
			g = len(groups)
			byEmail[u.Email] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	lbs := make([]*logBuffer, len(dels))
	apply := func(i int, first bool) error {
		d := &dels[i]
		lbs[i] = e.newLog(run, nil)
		if d.Outcome == outcomeDeleted {
			// The first deletion of an email group deletes the row read
			// above (the row delete is conditional on its ETag); a later
			// one reads its row again, as the release of the email before
			// it may have promoted it.
			var read *User
			if first {
				read = rows[i]
				if read == nil {
					read = &User{}
				}
			}
			kept, err := e.deleteUser(ctx, run, s, *d, read, lbs[i])
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
			lbs[i].add(LogEvent{Event: EvDeleted, UserID: d.UserID, UPN: d.UPN, Reason: d.Reason})
		case outcomeKept:
			lbs[i].add(LogEvent{Event: EvDeletionKept, UserID: d.UserID, UPN: d.UPN, Reason: "the user was seen again after the decision (later in this sync, or by a newer one)"})
		}
		return nil
	}
	err = e.parallel(ctx, len(groups), func(g int) error {
		for n, i := range groups[g] {
			if err := apply(i, n == 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	lb := e.newLog(run, nil)
	for _, l := range lbs {
		if l != nil {
			lb.buf.Write(l.buf.Bytes())
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
// was written since the decision (it is then left as it is, its group
// registers restored by keepMemberships). read is the user's row as the
// caller read it a moment ago (a zero User when there was none), or nil to
// read it here.
//
// A writer (on demand, a later page) can get in between that read and the
// row delete, after the group registers were cleared: the delete, being
// conditional on the read's ETag, then fails, the chunk is applied again,
// and the retry finds the row written since and keeps it, restoring its
// registers.
func (e *Engine) deleteUser(ctx context.Context, run Run, s Settings, d deletion, read *User, lb *logBuffer) (kept bool, err error) {
	id := d.UserID
	if read == nil {
		ent, err := e.Store.Get(ctx, TableUsers, Bucket(id), id)
		switch {
		case IsCode(err, ENOTFOUND):
			read = &User{}
		case err != nil:
			return false, fmt.Errorf("delete user %s: %w", id, err)
		default:
			u := userFromEntity(ent)
			read = &u
		}
	}
	if read.ID == "" {
		return false, nil // deleted by an earlier attempt, groups first
	}
	u := *read
	if writtenSince(run, d, u) {
		return true, e.keepMemberships(ctx, run, u)
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
	// Its stored photo goes before the row: once the row is gone, nothing
	// would remove it. (A preview deletes nothing for real.)
	if e.Photos != nil && !run.Preview && (s.PhotoSync || u.PhotoETag != "") {
		if err := e.Photos.DeletePhoto(ctx, id); err != nil {
			return false, fmt.Errorf("delete the photo of %s: %w", id, err)
		}
	}
	// The email's claim is read before the row goes: once it is gone, a
	// redelivered chunk finds nothing to delete and would not release the
	// email, so if duplicates wait for it the waiter pass is marked due
	// first.
	var claim *Entity
	if u.Status == StatusActive && u.Email != "" {
		c, err := e.Store.Get(ctx, TableEmails, Bucket(u.Email), claimKey(u.Email))
		switch {
		case err == nil:
			claim = &c
			if c.Bool(waitersProp) {
				if err := e.markWaiterPassDue(ctx, "user "+id+" is deleted while duplicates wait for its email"); err != nil {
					return false, err
				}
			}
		case !IsCode(err, ENOTFOUND):
			return false, fmt.Errorf("delete user %s: read its email claim: %w", id, err)
		}
	}
	if err := e.deleteUserRow(ctx, u); err != nil {
		if IsCode(err, EPRECONDITION) {
			return false, &Error{Code: EUNAVAILABLE, Message: "a user changed while it was being deleted; the chunk is applied again", Err: err}
		}
		return false, fmt.Errorf("delete user %s: %w", id, err)
	}
	switch {
	case u.Status == StatusActive && u.Email != "" && claim != nil:
		return false, e.releaseEmail(ctx, run, s, u.Email, id, claim, lb)
	case u.Status == StatusDuplicate && u.Email != "":
		return false, e.Store.Delete(ctx, TableEmails, Bucket(u.Email), waiterKey(u.Email, id), "")
	}
	return false, nil
}

// keepMemberships restores the group registers of a user whose deletion
// ends kept. An earlier attempt of the deletion may have taken the user out
// of its groups (tombstones at the deletion's version, bumped above the row
// it read) before a writer rewrote the row and the row delete failed; the
// writer's own register writes, at a lower version, then lost. The kept
// row is written again at a version above every such tombstone, with its
// groups as its diff, and the registers follow it. Nothing is written when
// no register of the row's groups is a tombstone newer than the row (a
// first attempt: one register read per group of the user).
func (e *Engine) keepMemberships(ctx context.Context, run Run, u User) error {
	top := u.MemberVer
	for _, g := range u.Memberships() {
		reg, err := e.Store.Get(ctx, TableMembers, MembersPartition(g), u.ID)
		if IsCode(err, ENOTFOUND) {
			continue
		}
		if err != nil {
			return fmt.Errorf("keep the groups of %s: read group %s: %w", u.ID, g, err)
		}
		if v := reg.Str(MemberVerProp); v > top && !reg.Bool(MemberPresentProp) {
			top = v
		}
	}
	if top == u.MemberVer {
		return nil
	}
	again := u
	again.MemberVer = bumpMemberVer(top, run.Seq, deleteStamp)
	again.MemberDiff = slices.Clone(u.MemberDiff)
	for _, g := range u.Memberships() {
		if !slices.Contains(again.MemberDiff, g) {
			again.MemberDiff = append(again.MemberDiff, g)
		}
	}
	sort.Strings(again.MemberDiff)
	if err := e.replaceUser(ctx, again, u.Status); err != nil {
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return &Error{Code: EUNAVAILABLE, Message: "a user changed while its deletion was undone; the chunk is applied again", Err: err}
		}
		return fmt.Errorf("keep the groups of %s: %w", u.ID, err)
	}
	return e.syncMembers(ctx, again)
}
