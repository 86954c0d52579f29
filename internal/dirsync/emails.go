package dirsync

import (
	"context"
	"fmt"
	"slices"
	"sort"
)

// Email claims make duplicate detection atomic across concurrent workers:
// the first user to insert the claim row owns the email; others become
// duplicates and wait in "waiter" rows of the same partition until the
// owner lets go.

func claimKey(email string) string          { return "c|" + EscapeKey(email) }
func waiterKey(email, userID string) string { return "w|" + EscapeKey(email) + "|" + userID }

// claimProps is a claim row: who owns the email, claimed by which run.
func claimProps(owner, email string, runSeq int64) map[string]any {
	return map[string]any{"owner": owner, "email": email, "runSeq": runSeq}
}

// waitersProp on a claim row says that duplicates may wait for the email:
// set after a waiter row is written (markWaiting), kept by every later
// write of the claim. A release looks for waiters only when it is set, so
// releasing an email nobody waits for costs no query (issue 17: on Azurite
// a query reads the whole table). A waiter whose mark came too late (the
// claim was released in between), or a claim from before the mark
// existed, is promoted by the count step's waiter pass (waiterpass.go says
// when a delta run makes it).
const waitersProp = "waiters"

// reclaim sets a claim row's properties for a new owner, keeping its
// waiters mark.
func reclaim(claim *Entity, owner, email string, runSeq int64) {
	waiting := claim.Bool(waitersProp)
	claim.Props = claimProps(owner, email, runSeq)
	if waiting {
		claim.Props[waitersProp] = true
	}
}

// markWaiting marks email's claim as waited for (waitersProp), after a
// waiter row was written. Best effort: a claim gone or changed meanwhile
// is left to its writer and to the count step's waiter pass.
func (e *Engine) markWaiting(ctx context.Context, email string) error {
	pk := Bucket(email)
	for range 3 {
		claim, err := e.Store.Get(ctx, TableEmails, pk, claimKey(email))
		if IsCode(err, ENOTFOUND) || (err == nil && claim.Bool(waitersProp)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark email as waited for: %w", err)
		}
		claim.Props[waitersProp] = true
		_, err = e.Store.Replace(ctx, TableEmails, claim)
		if err == nil || IsCode(err, ENOTFOUND) {
			return nil
		}
		if !IsCode(err, EPRECONDITION) {
			return fmt.Errorf("mark email as waited for: %w", err)
		}
	}
	// The claim kept changing: a release may not see this waiter.
	return e.markWaiterPassDue(ctx, "a duplicate could not mark the email it waits for")
}

// waiterRow lists userID as waiting, as a duplicate, for email.
func waiterRow(email, userID string) Entity {
	return Entity{PartitionKey: Bucket(email), RowKey: waiterKey(email, userID), Props: map[string]any{"user": userID}}
}

// claimEmail returns the owner of email after trying to claim it for userID.
// A claim whose owner no longer holds the email (deleted, changed, skipped)
// is stale and taken over.
//
// A claim made earlier in the same run is always honoured, even when its
// owner's row is not written yet (pages write users in one batch at their
// end, after claiming).
func (e *Engine) claimEmail(ctx context.Context, run Run, email, userID string) (string, error) {
	if made, _ := ctx.Value(preclaimedKey{}).(map[string]string); made[email] == userID && userID != "" {
		return userID, nil // claimed by this page attempt a moment ago (preclaimEmails)
	}
	return e.claim(ctx, run, email, userID, true)
}

// claim is claimEmail; with honourSameRun false, a claim of this run is
// checked like any other (once every page is applied, an owner that does
// not hold the email never will: its claim was left by an attempt that
// failed).
func (e *Engine) claim(ctx context.Context, run Run, email, userID string, honourSameRun bool) (string, error) {
	owner, waitsOnOwnRun := userID, false
	_, err := e.modify(ctx, TableEmails, Bucket(email), claimKey(email), func(ent *Entity, exists bool) error {
		owner, waitsOnOwnRun = userID, false
		if !exists {
			ent.Props = claimProps(userID, email, run.claimSeq())
			return nil
		}
		cur, sameRun := ent.Str("owner"), ent.Int("runSeq") == run.claimSeq()
		switch {
		case cur == userID && sameRun:
			return errSkipWrite
		case cur == userID:
			// Its own claim from an earlier run is renewed: that run may
			// never have written its row, and another user of this run must
			// honour the claim rather than find the owner's row missing.
		case sameRun && honourSameRun:
			// Its owner's row may not be written yet, or ever: an attempt
			// that claimed and failed, after which Graph gave the owner
			// another email. The waiter pass checks such claims.
			owner, waitsOnOwnRun = cur, true
			return errSkipWrite
		default:
			holds, err := e.holdsEmail(ctx, cur, email)
			if err != nil {
				return err
			}
			if holds {
				owner = cur
				return errSkipWrite
			}
		}
		reclaim(ent, userID, email, run.claimSeq())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("claim email: %w", err)
	}
	if waitsOnOwnRun {
		if err := e.markWaitingOnOwnRun(ctx, run); err != nil {
			return "", err
		}
	}
	return owner, nil
}

// verifyClaim checks, with one read, that an active user keeping its email
// still owns the claim, and claims it again if not: full runs repair what a
// superseded run's late write left behind.
func (e *Engine) verifyClaim(ctx context.Context, run Run, email, userID string) (string, error) {
	claim, err := e.Store.Get(ctx, TableEmails, Bucket(email), claimKey(email))
	if err == nil && claim.Str("owner") == userID {
		return userID, nil
	}
	if err != nil && !IsCode(err, ENOTFOUND) {
		return "", fmt.Errorf("verify email claim: %w", err)
	}
	return e.claimEmail(ctx, run, email, userID)
}

func (e *Engine) holdsEmail(ctx context.Context, userID, email string) (bool, error) {
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(userID), userID)
	if IsCode(err, ENOTFOUND) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check email owner: %w", err)
	}
	return ent.Str("status") == StatusActive && ent.Str("email") == email, nil
}

// releaseEmail gives up userID's claim on email. If users wait for it as
// duplicates, the first that still has that email is promoted to active.
// read is the claim as the caller read it a moment ago, or nil to read it
// here.
func (e *Engine) releaseEmail(ctx context.Context, run Run, s Settings, email, userID string, read *Entity, lb *logBuffer) error {
	for attempt := 1; ; attempt++ {
		again, err := e.releaseOnce(ctx, run, s, email, userID, read, lb)
		if !again || attempt == 3 || err != nil {
			return err
		}
		read = nil
	}
}

// releaseOnce is one attempt of releaseEmail; again when the claim changed
// between its read and its deletion (a waiter marked it meanwhile).
func (e *Engine) releaseOnce(ctx context.Context, run Run, s Settings, email, userID string, read *Entity, lb *logBuffer) (again bool, err error) {
	pk := Bucket(email)
	var claim Entity
	if read != nil {
		claim = *read
	} else {
		claim, err = e.Store.Get(ctx, TableEmails, pk, claimKey(email))
		if IsCode(err, ENOTFOUND) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("release email: %w", err)
		}
	}
	if owner := claim.Str("owner"); owner != userID {
		// Someone else owns it. If that is a waiter whose promotion was
		// interrupted (claim handed over, row not yet written: a retry of
		// this very release, after a crash), finish the promotion.
		return false, e.finishPromotion(ctx, s, owner, email, userID, lb)
	}
	var waiters EntityPage
	if claim.Bool(waitersProp) {
		if waiters, err = e.Store.Query(ctx, TableEmails, Query{PartitionKey: pk, RowKeyPrefix: "w|" + EscapeKey(email) + "|", Top: 20}); err != nil {
			return false, fmt.Errorf("release email: %w", err)
		}
	}
	for _, wr := range waiters.Entities {
		wid := wr.Str("user")
		if wid == userID {
			// A waiter row of the releasing user itself is left over from an
			// interrupted promotion: it waits for nothing.
			e.Store.Delete(ctx, TableEmails, pk, wr.RowKey, "")
			continue
		}
		ent, err := e.Store.Get(ctx, TableUsers, Bucket(wid), wid)
		if err != nil && !IsCode(err, ENOTFOUND) {
			return false, fmt.Errorf("release email: %w", err)
		}
		if err != nil || ent.Str("status") != StatusDuplicate || ent.Str("email") != email {
			e.Store.Delete(ctx, TableEmails, pk, wr.RowKey, "")
			continue
		}
		reclaim(&claim, wid, email, run.claimSeq())
		if _, err := e.Store.Replace(ctx, TableEmails, claim); err != nil {
			if IsCode(err, EPRECONDITION) {
				return false, nil // someone else changed the claim: they handle it
			}
			return false, fmt.Errorf("release email: %w", err)
		}
		cur := userFromEntity(ent)
		u := cur
		u.Status, u.Reason, u.DuplicateOf, u.ChangedAt = StatusActive, "", "", e.now()
		if err := e.resyncMembers(ctx, cur); err != nil {
			return false, err
		}
		prepareMembers(&cur, &u, cur.RunSeq, cur.PageSeq)
		if err := e.replaceUser(ctx, u, StatusDuplicate); err != nil {
			return false, fmt.Errorf("promote duplicate %s: %w", wid, err)
		}
		if err := e.syncMembers(ctx, u); err != nil {
			return false, err
		}
		e.Store.Delete(ctx, TableEmails, pk, wr.RowKey, "")
		lb.add(LogEvent{Event: EvDuplicateResolved, UserID: wid, UPN: s.logUPN(u.UPN),
			Reason: fmt.Sprintf("email %s is free again (user %s no longer holds it); the user is now synced", s.logEmail(email), userID)})
		return false, nil
	}
	err = e.Store.Delete(ctx, TableEmails, pk, claim.RowKey, claim.ETag)
	switch {
	case IsCode(err, EPRECONDITION):
		// Changed since the read: marked by a new waiter (read it again),
		// or taken by someone else (the next attempt finds that).
		return true, nil
	case err != nil && !IsCode(err, ENOTFOUND):
		return false, fmt.Errorf("release email: %w", err)
	}
	return false, nil
}

// recheckDuplicate closes the race between a page that made u a duplicate
// and another that let the email go at the same time (or earlier in the
// same page, before u's row was written): the releasing side promotes
// only waiters whose rows already say duplicate. So once u's row is
// written, u checks the claim again, and takes the email if its owner no
// longer holds it. Either side then sees the other's write.
func (e *Engine) recheckDuplicate(ctx context.Context, run Run, s Settings, wr userWrite, c *Counters, lb *logBuffer) error {
	u := wr.u
	// Listed as waiting first, the claim marked as waited for next, then
	// the claim checked: a release either sees the mark (its read came
	// later, or its conditional delete fails on the mark's new ETag and it
	// reads again) and with it this waiter, or deleted the claim before
	// the mark, and the check finds the email free.
	if _, err := e.Store.Upsert(ctx, TableEmails, waiterRow(u.Email, u.ID)); err != nil {
		return fmt.Errorf("record duplicate %s: %w", u.ID, err)
	}
	if err := e.markWaiting(ctx, u.Email); err != nil {
		return err
	}
	owner, err := e.claimEmail(ctx, run, u.Email, u.ID)
	if err != nil || owner != u.ID {
		return err
	}
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(u.ID), u.ID)
	if err != nil {
		return fmt.Errorf("promote %s: %w", u.ID, err)
	}
	cur := userFromEntity(ent)
	if cur.Status != StatusDuplicate || cur.Email != u.Email {
		return nil // promoted meanwhile, or changed by a later page
	}
	promoted := cur
	promoted.Status, promoted.Reason, promoted.DuplicateOf, promoted.ChangedAt = StatusActive, "", "", e.now()
	if cur.RunSeq == run.Seq && cur.PageSeq == u.PageSeq {
		// This page's own outcome changes: count what it really did.
		promoted.Action = actAdded
		if wr.wasActive {
			promoted.Action = actUpdated
		}
		uncount(c, actDuplicate, cur)
		countAction(c, promoted.Action, promoted)
	}
	if err := e.resyncMembers(ctx, cur); err != nil {
		return err
	}
	prepareMembers(&cur, &promoted, cur.RunSeq, cur.PageSeq)
	if err := e.replaceUser(ctx, promoted, cur.Status); err != nil {
		return fmt.Errorf("promote %s: %w", u.ID, err)
	}
	if err := e.syncMembers(ctx, promoted); err != nil {
		return err
	}
	e.Store.Delete(ctx, TableEmails, Bucket(u.Email), waiterKey(u.Email, u.ID), "")
	lb.add(LogEvent{Event: EvDuplicateResolved, UserID: u.ID, UPN: s.logUPN(u.UPN),
		Reason: fmt.Sprintf("email %s was let go by its previous owner at the same moment; the user is now synced", s.logEmail(u.Email))})
	return nil
}

// finishPromotion makes owner active if the email's claim names it while its
// row still waits as a duplicate of that email.
func (e *Engine) finishPromotion(ctx context.Context, s Settings, owner, email, from string, lb *logBuffer) error {
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(owner), owner)
	if IsCode(err, ENOTFOUND) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release email: %w", err)
	}
	cur := userFromEntity(ent)
	if cur.Status != StatusDuplicate || cur.Email != email {
		if cur.Status == StatusActive {
			return e.syncMembers(ctx, cur) // an interrupted promotion's index writes
		}
		return nil
	}
	u := cur
	u.Status, u.Reason, u.DuplicateOf, u.ChangedAt = StatusActive, "", "", e.now()
	if err := e.resyncMembers(ctx, cur); err != nil {
		return err
	}
	prepareMembers(&cur, &u, cur.RunSeq, cur.PageSeq)
	if err := e.replaceUser(ctx, u, StatusDuplicate); err != nil {
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return &Error{Code: EUNAVAILABLE, Message: "a waiting duplicate changed while it was promoted; retrying", Err: err}
		}
		return fmt.Errorf("promote duplicate %s: %w", owner, err)
	}
	if err := e.syncMembers(ctx, u); err != nil {
		return err
	}
	e.Store.Delete(ctx, TableEmails, Bucket(email), waiterKey(email, owner), "")
	lb.add(LogEvent{Event: EvDuplicateResolved, UserID: owner, UPN: s.logUPN(u.UPN),
		Reason: fmt.Sprintf("email %s is free again (user %s no longer holds it); the user is now synced", s.logEmail(email), from)})
	return nil
}

// repairDuplicate promotes a duplicate whose email no active user holds
// any more, once every page of the run is applied (count.go). The claim
// can be left behind by a page attempt that claimed an email and failed
// before writing its row, while Graph then gave that user another email: no
// row ever said the user held it, so nothing released it. It reports
// whether the user was promoted.
func (e *Engine) repairDuplicate(ctx context.Context, run Run, s Settings, u User, lb *logBuffer) (bool, error) {
	if u.Status != StatusDuplicate || u.Email == "" {
		return false, nil
	}
	owner, err := e.claim(ctx, run, u.Email, u.ID, false)
	if err != nil || owner != u.ID {
		return false, err
	}
	promoted := u
	promoted.Status, promoted.Reason, promoted.DuplicateOf, promoted.ChangedAt = StatusActive, "", "", e.now()
	if err := e.resyncMembers(ctx, u); err != nil {
		return false, err
	}
	prepareMembers(&u, &promoted, u.RunSeq, u.PageSeq)
	if err := e.replaceUser(ctx, promoted, u.Status); err != nil {
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return false, &Error{Code: EUNAVAILABLE, Message: "a duplicate changed while it was promoted; counting again", Err: err}
		}
		return false, fmt.Errorf("promote %s: %w", u.ID, err)
	}
	if err := e.syncMembers(ctx, promoted); err != nil {
		return false, err
	}
	e.Store.Delete(ctx, TableEmails, Bucket(u.Email), waiterKey(u.Email, u.ID), "")
	lb.add(LogEvent{Event: EvDuplicateResolved, UserID: u.ID, UPN: s.logUPN(u.UPN),
		Reason: fmt.Sprintf("email %s is held by no active user any more; the user is now synced", s.logEmail(u.Email))})
	return true, nil
}

// preclaimEmails claims, in batches of one emails partition, the emails of
// a page's new users (no row yet) that no other user of the page has, before
// the page is applied user by user. applyUser then finds each claim already
// its user's (claim: same owner, same run) and writes nothing: a first sync
// costs one claim write per 100 users instead of one per user. It claims
// only what applyUser would claim for the same user (the same mapping,
// required fields and key checks), and only where no claim exists: a batch
// that meets an existing claim fails as a whole; when the store names the
// claim (FailedOp), the batch is sent again without it, and its user (a
// duplicate, or a claim left by an earlier run or attempt) is left to
// applyUser, which handles taken and stale claims one by one. Otherwise
// the batch's users all are. Errors are not returned for the same reason:
// applyUser claims what this did not. (Before, one duplicate sent its
// whole batch, ~12 users, one by one: about a fifth of a 100,000-user
// first sync's requests with a duplicate in 500 users; issue 17.)
// The returned context carries the claims made, so that claimEmail does
// not read them again.
func (e *Engine) preclaimEmails(ctx context.Context, run Run, s Settings, ids []string, users map[string]SourceUser, existing map[string]User) context.Context {
	emailField := s.emailField()
	seen := map[string]int{}
	claims := map[string]string{} // email -> new user
	for _, id := range ids {
		su := users[id]
		if su.Removed != "" {
			continue
		}
		old, had := existing[id]
		var prev *User
		if had && run.Mode == ModeDelta && old.Status != "" {
			prev = &old
		}
		fields, missing, _ := s.mapUser(s.currentAttributes(su, prev))
		email := NormalizeEmail(fields[emailField])
		if email == "" {
			continue
		}
		seen[email]++
		if !had && len(missing) == 0 && ValidKey(waiterKey(email, id)) == "" {
			claims[email] = id
		}
	}
	// In a fixed order: the simulator replays a seed exactly.
	emails := make([]string, 0, len(claims))
	for email := range claims {
		emails = append(emails, email)
	}
	sort.Strings(emails)
	byPK := map[string][]BatchOp{}
	var pks []string
	for _, email := range emails {
		if seen[email] == 1 {
			pk := Bucket(email)
			if byPK[pk] == nil {
				pks = append(pks, pk)
			}
			byPK[pk] = append(byPK[pk], BatchOp{Kind: BatchInsert, Entity: Entity{PartitionKey: pk, RowKey: claimKey(email), Props: claimProps(claims[email], email, run.claimSeq())}})
		}
	}
	sort.Strings(pks)
	made := map[string]string{}
	for _, pk := range pks {
		ops := byPK[pk]
		for len(ops) > 0 {
			n := min(len(ops), MaxBatch)
			for _, op := range e.claimBatch(ctx, ops[:n]) {
				made[op.Entity.Str("email")] = op.Entity.Str("owner")
			}
			ops = ops[n:]
		}
	}
	if len(made) == 0 {
		return ctx
	}
	return context.WithValue(ctx, preclaimedKey{}, made)
}

// claimBatch inserts the claims of ops as one batch and returns those it
// made. A claim that already exists is left out and the rest sent again,
// as long as the store says which claim it was, up to maxClaimsLeftOut
// times; any other failure gives up the batch (see preclaimEmails: what it
// did not claim, applyUser does).
func (e *Engine) claimBatch(ctx context.Context, ops []BatchOp) []BatchOp {
	ops = slices.Clone(ops)
	for left := 0; len(ops) > 0 && left <= maxClaimsLeftOut; left++ {
		err := e.Store.Batch(ctx, TableEmails, ops)
		if err == nil {
			return ops
		}
		i, named := FailedOp(err)
		if !named || !IsCode(err, ECONFLICT) || i < 0 || i >= len(ops) {
			return nil
		}
		ops = slices.Delete(ops, i, i+1)
	}
	return nil
}

// maxClaimsLeftOut bounds claimBatch's attempts. A duplicate is about one
// user in hundreds, so a batch of a page's ~12 claims in one partition
// rarely meets more than one existing claim; one that meets many (a page
// delivered again after its claims were made) is cheaper claimed one by
// one than by a batch per claim.
const maxClaimsLeftOut = 2

// preclaimedKey carries preclaimEmails' claims (email: owner) in a page's
// context.
type preclaimedKey struct{}
