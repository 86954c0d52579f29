package dirsync

import (
	"context"
	"fmt"
	"slices"
)

// WorkEvaluate evaluates the memberships of every directory user again, a
// chunk of a bucket per item, when the dynamic groups changed since the
// directory was last evaluated and the run is incremental (a full run
// evaluates every user as it applies it). It reads the attributes held on
// the rows (the run is full when a rule needs one they do not hold).
const WorkEvaluate = "evaluate"

func init() { steps[WorkEvaluate] = (*Engine).doEvaluate }

func (e *Engine) doEvaluate(ctx context.Context, run Run, s Settings, w WorkItem) error {
	rg, err := e.runGroups(ctx, run, s)
	if err != nil {
		return err
	}
	q := Query{PartitionKey: bucketKey(w.Bucket), RowKeyBefore: countsRowKey, Continuation: w.Cursor}
	lb := e.newLog(run, nil)
	defer e.flushLog(ctx, run, lb)
	var c Counters
	for range scanPagesPerItem {
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			u := userFromEntity(ent)
			if u.RunSeq > run.Seq {
				continue // a newer run wrote it, with its own groups
			}
			if err := e.resyncMembers(ctx, u); err != nil {
				return err
			}
			if err := e.reevaluate(ctx, run, s, rg, u, &c, lb); err != nil {
				return err
			}
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" {
			break
		}
	}
	// The chunk's membership counts are recorded once, beside the pages
	// (the run's counters are summed from its last epoch's records).
	p := map[string]any{}
	c.props(p)
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID, RowKey: epochPrefix(w.Epoch) + "eval-" + chunkKey(w), Props: p})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record evaluate chunk: %w", err)
	}
	next := w.next(WorkEvaluate)
	switch {
	case q.Continuation != "":
		next.Bucket, next.Cursor = w.Bucket, q.Continuation
	case w.Bucket+1 < UserBuckets:
		next.Bucket = w.Bucket + 1
	default:
		var phase string
		next, phase = e.afterUsers(s, w)
		if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase = phase; return nil }); err != nil {
			return err
		}
	}
	return e.send(ctx, next, zeroTime)
}

// reevaluate writes u's groups when the run's rules give others. The write
// is conditional on the row as read: a page or promotion writing the user
// meanwhile makes the item retry.
func (e *Engine) reevaluate(ctx context.Context, run Run, s Settings, rg *runGroups, u User, c *Counters, lb *logBuffer) error {
	attrs := s.UserAttributes(u)
	var inGroups []string
	if rg.mirror {
		scope, err := e.readScope(ctx, run.ScopeGen, []string{u.ID})
		if err != nil {
			return err
		}
		inGroups = scope[u.ID]
	}
	groups, _ := rg.groupsOf(u.ID, attrs, inGroups)
	if slices.Equal(groups, u.Groups) {
		return nil
	}
	next := u
	next.Groups = groups
	prepareMembers(&u, &next, run.Seq, evaluateStamp)
	if _, err := e.Store.Replace(ctx, TableUsers, userToEntity(next)); err != nil {
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return &Error{Code: EUNAVAILABLE, Message: "a user changed while its groups were evaluated; evaluating again", Err: err}
		}
		return fmt.Errorf("evaluate groups of %s: %w", u.ID, err)
	}
	return e.indexMembers(ctx, s, next, c, lb)
}

// indexMembers writes a written row's membership changes to the index, and
// logs and counts them.
func (e *Engine) indexMembers(ctx context.Context, s Settings, u User, c *Counters, lb *logBuffer) error {
	if err := e.syncMembers(ctx, u); err != nil {
		return err
	}
	joined, left := memberChanges(u)
	for _, g := range joined {
		c.MembersAdded++
		lb.add(LogEvent{Event: EvMemberAdded, UserID: u.ID, UPN: s.logUPN(u.UPN), Group: g})
	}
	for _, g := range left {
		c.MembersRemoved++
		lb.add(LogEvent{Event: EvMemberRemoved, UserID: u.ID, UPN: s.logUPN(u.UPN), Group: g})
	}
	return nil
}
