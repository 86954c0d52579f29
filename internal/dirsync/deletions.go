package dirsync

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Deletions are never applied while pages are read: they are recorded per
// run ("deletions" table, partition = run id) and applied after the round is
// complete, once the threshold check passed or an admin approved them. So a
// read that failed, came back empty or was throttled can never delete.

// sweepStamp orders sweep-found deletions after every page of the run.
const sweepStamp = int64(1) << 40

// Deletion outcomes.
const (
	outcomeDeleted = "deleted"
	outcomeKept    = "kept" // the user came back later in the same run
)

// PendingDeletion is one deletion of a run.
type PendingDeletion struct {
	UserID  string `json:"userId"`
	UPN     string `json:"upn,omitempty"`
	Reason  string `json:"reason"`
	Outcome string `json:"outcome,omitempty"`
}

// recordDeletion notes that user u should leave the directory. The row keeps
// the latest page that asked for it, whatever order pages arrive in.
func (e *Engine) recordDeletion(ctx context.Context, run Run, seq int64, u User, reason string) error {
	for range 5 {
		ent, err := e.Store.Get(ctx, TableDeletions, run.ID, u.ID)
		if err != nil && !IsCode(err, ENOTFOUND) {
			return fmt.Errorf("record deletion: %w", err)
		}
		if err == nil && ent.Int("pageSeq") >= seq {
			return nil
		}
		next := Entity{PartitionKey: run.ID, RowKey: u.ID, ETag: ent.ETag,
			Props: map[string]any{"pageSeq": seq, "reason": reason, "upn": u.UPN}}
		if ent.ETag == "" {
			_, err = e.Store.Insert(ctx, TableDeletions, next)
		} else {
			_, err = e.Store.Replace(ctx, TableDeletions, next)
		}
		if err == nil {
			return nil
		}
		if !IsCode(err, ECONFLICT) && !IsCode(err, EPRECONDITION) {
			return fmt.Errorf("record deletion: %w", err)
		}
	}
	return Errorf(EUNAVAILABLE, "could not record a deletion: too much contention")
}

// sweepPagesPerItem bounds one sweep item's work (query pages of 1,000 rows).
const sweepPagesPerItem = 5

// doSweep walks one bucket of the directory after a full enumeration and
// records every user this run did not see: they were deleted in Entra while
// we had no valid delta token.
func (e *Engine) doSweep(ctx context.Context, run Run, w WorkItem) error {
	q := Query{PartitionKey: fmt.Sprintf("b%02d", w.Bucket), Continuation: w.Cursor}
	var scanned, missing int64
	for range sweepPagesPerItem {
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			scanned++
			u := userFromEntity(ent)
			if u.RunSeq == run.Seq && u.PageSeq >= run.FullFrom {
				continue
			}
			missing++
			if err := e.recordDeletion(ctx, run, sweepStamp, u, "not found in Entra during a full sync"); err != nil {
				return err
			}
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" {
			break
		}
	}
	// Record the chunk's scanned count once (insert-if-absent), so a
	// redelivered item does not count its rows twice.
	chunkKey := fmt.Sprintf("%02d-%s", w.Bucket, shortHash(w.Cursor))
	_, err := e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID + "|sweep", RowKey: chunkKey, Props: map[string]any{"scanned": scanned}})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record sweep chunk: %w", err)
	}
	if missing > 0 {
		lb := e.newLog(run, nil)
		lb.add(LogEvent{Event: EvSweep, Message: fmt.Sprintf("bucket %d: %d of %d directory users were not found in Entra", w.Bucket, missing, scanned)})
		e.flushLog(ctx, run, lb)
	}
	next := WorkItem{Kind: WorkSweep, RunID: run.ID, Bucket: w.Bucket, Cursor: q.Continuation}
	if q.Continuation == "" {
		next = WorkItem{Kind: WorkSweep, RunID: run.ID, Bucket: w.Bucket + 1}
		if w.Bucket+1 >= UserBuckets {
			if _, err := e.updateRun(ctx, run.ID, func(r *Run) error { r.Phase = PhaseDeciding; return nil }); err != nil {
				return err
			}
			next = WorkItem{Kind: WorkDecide, RunID: run.ID}
		}
	}
	return e.send(ctx, next, time.Time{})
}

// directoryStats is the directory size the percentage threshold is taken of.
func (e *Engine) directorySize(ctx context.Context, run Run) (int64, error) {
	if run.Mode == ModeFull {
		var n int64
		err := e.scanPartition(ctx, TablePages, run.ID+"|sweep", func(ent Entity) { n += ent.Int("scanned") })
		return n, err
	}
	ent, err := e.Store.Get(ctx, TableState, statePartition, statsRow)
	if IsCode(err, ENOTFOUND) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return ent.Int("users"), nil
}

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
	totals, err := e.pageTotals(ctx, run.ID)
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
	if reason == "" {
		if _, err := e.updateRun(ctx, run.ID, func(r *Run) error { r.Phase = PhaseDeleting; return nil }); err != nil {
			return err
		}
		return e.send(ctx, WorkItem{Kind: WorkDelete, RunID: run.ID}, time.Time{})
	}
	hint := fmt.Sprintf("Review the pending deletions in the run log, then approve them with POST /api/runs/%s/deletions/approve or keep the users with POST /api/runs/%s/deletions/reject.", run.ID, run.ID)
	updated, err := e.updateRun(ctx, run.ID, func(r *Run) error {
		r.Status, r.Phase, r.PendingDeletions, r.Error, r.Hint = RunBlocked, PhaseDeciding, pending, "Deletions held for approval: "+reason, hint
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.setLockStatus(ctx, run.ID, RunBlocked); err != nil {
		return err
	}
	lb := e.newLog(updated, nil)
	lb.add(LogEvent{Event: EvRunBlocked, Level: LevelWarn, Reason: reason, Message: hint})
	e.flushLog(ctx, updated, lb)
	return e.listPending(ctx, updated)
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
			lb.add(LogEvent{Event: EvPendingDeletion, Level: LevelWarn, UserID: ent.RowKey, UPN: ent.Str("upn"), Reason: ent.Str("reason")})
		}
		e.flushLog(ctx, run, lb)
		if page.Continuation == "" {
			return nil
		}
		q.Continuation = page.Continuation
	}
}

// PendingDeletions lists a run's deletions, a page at a time.
func (e *Engine) PendingDeletions(ctx context.Context, runID string, limit int, token string) ([]PendingDeletion, string, error) {
	if !ValidRunID(runID) {
		return nil, "", Errorf(EINVALID, "%q is not a run id", runID)
	}
	page, err := e.Store.Query(ctx, TableDeletions, Query{PartitionKey: runID, Top: limit, Continuation: token})
	if err != nil {
		return nil, "", err
	}
	out := make([]PendingDeletion, 0, len(page.Entities))
	for _, ent := range page.Entities {
		out = append(out, PendingDeletion{UserID: ent.RowKey, UPN: ent.Str("upn"), Reason: ent.Str("reason"), Outcome: ent.Str("outcome")})
	}
	return out, page.Continuation, nil
}

// doDelete applies one chunk of deletions. Each row's outcome is written
// before the directory is changed, so a redelivered chunk repeats the same
// (idempotent) deletions and the count stays exact.
func (e *Engine) doDelete(ctx context.Context, run Run, w WorkItem) error {
	page, err := e.Store.Query(ctx, TableDeletions, Query{PartitionKey: run.ID, Top: MaxBatch, Continuation: w.Cursor})
	if err != nil {
		return err
	}
	var marks []BatchOp
	for i, ent := range page.Entities {
		if ent.Str("outcome") != "" {
			continue
		}
		outcome := outcomeDeleted
		u, err := e.Store.Get(ctx, TableUsers, Bucket(ent.RowKey), ent.RowKey)
		if err != nil && !IsCode(err, ENOTFOUND) {
			return err
		}
		if err == nil && u.Int("runSeq") == run.Seq && u.Int("pageSeq") > ent.Int("pageSeq") {
			outcome = outcomeKept
		}
		ent.Props["outcome"] = outcome
		page.Entities[i] = ent
		marks = append(marks, BatchOp{Kind: BatchReplace, Entity: ent})
	}
	if len(marks) > 0 {
		if err := e.Store.Batch(ctx, TableDeletions, marks); err != nil {
			if IsCode(err, EPRECONDITION) {
				return &Error{Code: EUNAVAILABLE, Message: "deletion chunk changed concurrently; retrying", Err: err}
			}
			return err
		}
	}
	lb := e.newLog(run, nil)
	for _, ent := range page.Entities {
		switch ent.Str("outcome") {
		case outcomeDeleted:
			if err := e.deleteUser(ctx, run, ent.RowKey, lb); err != nil {
				return err
			}
			lb.add(LogEvent{Event: EvDeleted, UserID: ent.RowKey, UPN: ent.Str("upn"), Reason: ent.Str("reason")})
		case outcomeKept:
			lb.add(LogEvent{Event: EvDeletionKept, UserID: ent.RowKey, UPN: ent.Str("upn"), Reason: "the user reappeared later in the same sync"})
		}
	}
	e.flushLog(ctx, run, lb)
	if page.Continuation != "" {
		return e.send(ctx, WorkItem{Kind: WorkDelete, RunID: run.ID, Cursor: page.Continuation}, time.Time{})
	}
	return e.startCount(ctx, run)
}

// startCount moves the run to counting users by status: once every change
// of the run is applied, a bucket-by-bucket scan gives exact counts for the
// status page, whatever happened before.
func (e *Engine) startCount(ctx context.Context, run Run) error {
	if _, err := e.updateRun(ctx, run.ID, func(r *Run) error { r.Phase = PhaseCounting; return nil }); err != nil {
		return err
	}
	return e.send(ctx, WorkItem{Kind: WorkCount, RunID: run.ID}, time.Time{})
}

// doCount counts one chunk of a bucket by status and records the chunk's
// counts once (insert-if-absent), so a redelivered chunk is not counted twice.
func (e *Engine) doCount(ctx context.Context, run Run, w WorkItem) error {
	q := Query{PartitionKey: fmt.Sprintf("b%02d", w.Bucket), Continuation: w.Cursor}
	counts := map[string]int64{}
	for range sweepPagesPerItem {
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			counts[ent.Str("status")]++
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" {
			break
		}
	}
	props := map[string]any{}
	for st, n := range counts {
		if st != "" {
			props["n_"+st] = n
		}
	}
	_, err := e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID + "|count",
		RowKey: fmt.Sprintf("%02d-%s", w.Bucket, shortHash(w.Cursor)), Props: props})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record count chunk: %w", err)
	}
	switch {
	case q.Continuation != "":
		return e.send(ctx, WorkItem{Kind: WorkCount, RunID: run.ID, Bucket: w.Bucket, Cursor: q.Continuation}, time.Time{})
	case w.Bucket+1 < UserBuckets:
		return e.send(ctx, WorkItem{Kind: WorkCount, RunID: run.ID, Bucket: w.Bucket + 1}, time.Time{})
	}
	if _, err := e.updateRun(ctx, run.ID, func(r *Run) error { r.Phase = PhaseFinishing; return nil }); err != nil {
		return err
	}
	return e.send(ctx, WorkItem{Kind: WorkFinish, RunID: run.ID}, time.Time{})
}

// statusCounts sums the count chunks of a run.
func (e *Engine) statusCounts(ctx context.Context, runID string) (map[string]int64, error) {
	out := map[string]int64{}
	err := e.scanPartition(ctx, TablePages, runID+"|count", func(ent Entity) {
		for k := range ent.Props {
			if st, ok := strings.CutPrefix(k, "n_"); ok {
				out[st] += ent.Int(k)
			}
		}
	})
	return out, err
}

// deleteUser removes a user from the directory and from every group, and
// frees its email. Every step is idempotent.
func (e *Engine) deleteUser(ctx context.Context, run Run, id string, lb *logBuffer) error {
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(id), id)
	if IsCode(err, ENOTFOUND) {
		return e.removeMemberships(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	u := userFromEntity(ent)
	if err := e.removeMemberships(ctx, id); err != nil {
		return err
	}
	if err := e.Store.Delete(ctx, TableUsers, Bucket(id), id, ""); err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	switch {
	case u.Status == StatusActive && u.Email != "":
		return e.releaseEmail(ctx, run, u.Email, id, lb)
	case u.Status == StatusDuplicate && u.Email != "":
		return e.Store.Delete(ctx, TableEmails, Bucket(u.Email), waiterKey(u.Email, id), "")
	}
	return nil
}

// Membership rows exist in both directions: "g|<group>"/<user> lists a
// group's members and "u|<user>"/<group> a user's groups, so removing a user
// from every group is one partition scan.
func memberOfGroupPK(groupID string) string { return "g|" + groupID }
func groupsOfUserPK(userID string) string   { return "u|" + userID }

// AddMember records userID as a member of groupID (both directions).
func (e *Engine) AddMember(ctx context.Context, groupID, userID string) error {
	for _, ent := range []Entity{
		{PartitionKey: memberOfGroupPK(groupID), RowKey: userID, Props: map[string]any{"user": userID}},
		{PartitionKey: groupsOfUserPK(userID), RowKey: groupID, Props: map[string]any{"group": groupID}},
	} {
		if _, err := e.Store.Upsert(ctx, TableMembers, ent); err != nil {
			return fmt.Errorf("add member: %w", err)
		}
	}
	return nil
}

// UserGroups lists the groups a user belongs to.
func (e *Engine) UserGroups(ctx context.Context, userID string) ([]string, error) {
	var out []string
	if err := e.scanPartition(ctx, TableMembers, groupsOfUserPK(userID), func(ent Entity) { out = append(out, ent.RowKey) }); err != nil {
		return nil, fmt.Errorf("list groups of %s: %w", userID, err)
	}
	sort.Strings(out)
	return out, nil
}

// GroupMembers lists a group's members.
func (e *Engine) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	var out []string
	if err := e.scanPartition(ctx, TableMembers, memberOfGroupPK(groupID), func(ent Entity) { out = append(out, ent.RowKey) }); err != nil {
		return nil, fmt.Errorf("list members of %s: %w", groupID, err)
	}
	return out, nil
}

func (e *Engine) removeMemberships(ctx context.Context, userID string) error {
	groups, err := e.UserGroups(ctx, userID)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if err := e.Store.Delete(ctx, TableMembers, memberOfGroupPK(g), userID, ""); err != nil {
			return fmt.Errorf("remove %s from group %s: %w", userID, g, err)
		}
		if err := e.Store.Delete(ctx, TableMembers, groupsOfUserPK(userID), g, ""); err != nil {
			return fmt.Errorf("remove %s from group %s: %w", userID, g, err)
		}
	}
	return nil
}

func (e *Engine) pageTotals(ctx context.Context, runID string) (Counters, error) {
	var c Counters
	err := e.scanPartition(ctx, TablePages, runID, func(ent Entity) { c.add(countersFrom(ent)) })
	return c, err
}

func (e *Engine) deletedCount(ctx context.Context, runID string) (int64, error) {
	var n int64
	err := e.scanPartition(ctx, TableDeletions, runID, func(ent Entity) {
		if ent.Str("outcome") == outcomeDeleted {
			n++
		}
	})
	return n, err
}
