package dirsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Actions recorded on a user row by the page that last wrote it.
const (
	actAdded     = "added"
	actUpdated   = "updated"
	actUnchanged = "unchanged"
	actDuplicate = "duplicate"
	actSkipped   = "skipped"
)

// firstPageGuard is how many users the first page of a full enumeration
// must have, all lacking the same required field, for the run to stop
// before writing anything: that points at the mapping, not at the users.
const firstPageGuard = 20

// userWrite is one row a page writes, with the user it writes.
type userWrite struct {
	op BatchOp
	u  User
	// wasActive: the row was active before this page.
	wasActive bool
	// prev is the row as read (nil for a new row).
	prev *User
	// outOfScope: the user left the scope; the page counts it as such,
	// whatever the write does.
	outOfScope bool
}

// pageContext is what a page decides scope and memberships with.
type pageContext struct {
	rg *runGroups
	// inGroups holds, per user of the page, the selected Entra groups that
	// contain it (scope rows of the run's generation); nil without a group
	// scope.
	inGroups map[string][]string
}

// applyPage applies one page of Graph users and records the page as done with
// its counters. It is idempotent: a row already stamped by this page is
// counted by the action stored on it and not written again, and a row stamped
// by a later page (or run, or epoch) is never overwritten.
//
// The page's log lines are appended before its rows are written, so a
// worker killed in between loses no line (a retry may repeat some).
//
// A first sync of an empty directory (run.Fresh, its first epoch) does not
// read the rows of its users: they are new, and written with Insert, which
// the store refuses for a row that exists. Rows do exist when the page is
// applied again (a redelivery), when Graph repeats a user in another page,
// or when an on-demand sync wrote one meanwhile: the refused page is then
// applied again the ordinary way, reading every row, as a retry would be.
// Removed users are read in either case (their deletion needs the row).
func (e *Engine) applyPage(ctx context.Context, run Run, settings Settings, w WorkItem, users []SourceUser, successor map[string]any) error {
	if run.Fresh && run.Mode == ModeFull && w.Epoch == 0 && run.OnDemandStamp == 0 && !run.Preview {
		err := e.applyPageRows(ctx, run, settings, w, users, successor, false)
		if !rowsMoved(err) {
			return err
		}
		e.log().DebugContext(ctx, "a page of a first sync met rows that exist; applying it again with its rows read", "run", run.ID, "page", w.Seq)
	}
	return e.applyPageRows(ctx, run, settings, w, users, successor, true)
}

// rowsMoved reports whether err (or an error it wraps) says that rows were
// there, or changed, when a write expected otherwise.
func rowsMoved(err error) bool {
	for err != nil {
		var de *Error
		if !errors.As(err, &de) {
			return false
		}
		if de.Code == ECONFLICT || de.Code == EPRECONDITION {
			return true
		}
		err = de.Err
	}
	return false
}

// applyPageRows is applyPage, reading the page's rows first (readRows) or
// only those of removed users (a first sync's inserts).
func (e *Engine) applyPageRows(ctx context.Context, run Run, settings Settings, w WorkItem, users []SourceUser, successor map[string]any, readRows bool) error {
	seq, stamp := w.Seq, pageStamp(w.Epoch, w.Seq)
	if run.OnDemandStamp != 0 {
		stamp = run.OnDemandStamp
	}
	onDemand := run.Trigger == TriggerOnDemand
	lb := e.newLog(run, &seq)
	var c Counters

	// Graph may repeat a user within a page: the last occurrence wins.
	latest := map[string]SourceUser{}
	var order []string
	for _, u := range users {
		if _, ok := latest[u.ID]; !ok {
			order = append(order, u.ID)
		}
		latest[u.ID] = u
	}
	var ids []string
	for _, id := range order {
		if !validObjectID(id) {
			c.Failed++
			lb.add(LogEvent{Event: EvFailed, Level: LevelError, UserID: truncate(id, 64), Reason: "Graph returned a user id that is not a GUID; the user was ignored"})
			continue
		}
		ids = append(ids, id)
	}
	if err := firstPageCheck(run, settings, w, ids, latest); err != nil {
		return err
	}
	toRead := ids
	if !readRows {
		toRead = nil
		for _, id := range ids {
			if latest[id].Removed != "" {
				toRead = append(toRead, id)
			}
		}
	}
	existing, err := e.readUsers(ctx, toRead)
	if err != nil {
		return err
	}
	rg, err := e.runGroups(ctx, run, settings)
	if err != nil {
		return err
	}
	pc := &pageContext{rg: rg}
	if len(settings.GroupScope) > 0 {
		if pc.inGroups, err = e.readScope(ctx, run.ScopeGen, ids); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if old, ok := existing[id]; ok {
			if err := e.resyncMembers(ctx, old); err != nil {
				return err
			}
		}
	}
	ctx = e.preclaimEmails(ctx, run, settings, pc.preclaimable(run, settings, ids, latest, existing), latest, existing)

	var writes, rechecks []userWrite
	for _, id := range ids {
		su := latest[id]
		old, had := existing[id]
		c.Seen++
		sameStamp := had && old.RunSeq == run.Seq && old.PageSeq == stamp
		if sameStamp && su.Removed == "" {
			// An earlier attempt of this page wrote the row. Graph may
			// answer the retry with a newer state of the user, so apply it
			// again; the page's outcome stays what the first attempt found.
			var scratch Counters
			wr, err := e.applyUser(ctx, run, settings, pc, stamp, su, old, had, &scratch, lb)
			if err != nil {
				return err
			}
			if wr != nil && wr.u.Status == old.Status && wr.u.Hash == old.Hash && wr.u.Reason == old.Reason && equalRaw(wr.u.Raw, old.Raw) && slices.Equal(wr.u.Groups, old.Groups) {
				wr = nil // the stamp is already this page's: nothing to write
			}
			if wr == nil {
				countAction(&c, old.Action, old)
				countMembers(&c, old)
				if old.Status == StatusDuplicate {
					// Its email's owner may have let go since (another user
					// of this page, on the earlier attempt): check again.
					rechecks = append(rechecks, userWrite{u: old, wasActive: old.Action == actUpdated})
				}
				continue
			}
			wr.u.Action = retryAction(old, wr.u)
			wr.op.Entity = userToEntity(wr.u)
			wr.wasActive = old.Action == actUpdated || old.Action == actUnchanged
			countAction(&c, wr.u.Action, wr.u)
			writes = append(writes, *wr)
			continue
		}
		if had && !sameStamp && !newer(run.Seq, stamp, old.RunSeq, old.PageSeq) {
			c.Unchanged++ // a later page already wrote a newer state
			continue
		}
		if su.Removed != "" {
			if had && !onDemand {
				if err := e.recordDeletion(ctx, run, settings, stamp, old, "removed in Entra ("+removalWords(su.Removed)+")"); err != nil {
					return err
				}
			}
			continue
		}
		if !had && run.Mode == ModeDelta && pc.rg.scopes() {
			// A user the directory does not hold may be entering scope by
			// a change of the attributes the scope reads, and come with
			// those attributes only: read it whole before deciding.
			full, err := e.Source.User(ctx, su.ID, pc.rg.selectAttrs)
			if IsCode(err, ENOTFOUND) {
				continue // deleted since: the next round says so
			}
			if err != nil {
				return fmt.Errorf("read user %s entering scope: %w", su.ID, err)
			}
			su = full
		}
		if why := pc.outOfScope(run, settings, su, old, had); why != "" {
			c.OutOfScope++
			if !had {
				continue
			}
			// Leaving: its row is kept up to date until the deletion (which
			// an admin may reject) removes it, so a later partial update
			// is merged with what Entra holds, not with a stale row.
			lb.add(LogEvent{Event: EvOutOfScope, UserID: su.ID, UPN: settings.logUPN(old.UPN), Reason: why})
			var scratch Counters
			wr, err := e.applyUser(ctx, run, settings, pc, stamp, su, old, had, &scratch, lb)
			if err != nil {
				return err
			}
			if wr != nil {
				wr.outOfScope = true
				writes = append(writes, *wr)
			}
			if onDemand {
				continue // deletions stay with runs and their threshold
			}
			if err := e.recordDeletion(ctx, run, settings, stamp, old, "left the sync scope: "+why); err != nil {
				return err
			}
			continue
		}
		wr, err := e.applyUser(ctx, run, settings, pc, stamp, su, old, had, &c, lb)
		if err != nil {
			return err
		}
		if wr != nil {
			writes = append(writes, *wr)
		}
	}
	e.flushLog(ctx, run, lb)
	if err := e.writeUsers(ctx, writes, existing, &c, lb); err != nil {
		return fmt.Errorf("apply page %d: %w", seq, err)
	}
	for _, wr := range writes {
		if err := e.indexMembers(ctx, settings, wr.u, &c, lb); err != nil {
			return err
		}
	}
	for _, wr := range append(writes, rechecks...) {
		if wr.u.Status == StatusDuplicate {
			count := &c
			if wr.outOfScope {
				count = &Counters{} // counted as out of scope
			}
			if err := e.recheckDuplicate(ctx, run, settings, wr, count, lb); err != nil {
				return err
			}
		}
	}
	lb.add(LogEvent{Event: EvPage, Message: fmt.Sprintf("page applied: %d users", len(users)), Counters: &c})
	e.flushLog(ctx, run, lb)

	p := map[string]any{}
	for k, v := range successor {
		if v != "" {
			p[k] = v
		}
	}
	c.props(p)
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID, RowKey: pageRowKey(w.Epoch, seq), Props: p})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record page %d: %w", seq, err)
	}
	return nil
}

// firstPageCheck stops a full enumeration before its first write when
// every user of its first page lacks the same required field: the mapping
// is wrong, and applying it would turn the whole directory into skipped
// users before the run's end could say so.
func firstPageCheck(run Run, s Settings, w WorkItem, ids []string, users map[string]SourceUser) error {
	if run.Mode != ModeFull || w.Seq != 0 || len(ids) < firstPageGuard {
		return nil
	}
	var common map[string]bool
	for _, id := range ids {
		su := users[id]
		if su.Removed != "" {
			return nil
		}
		_, missing, _ := s.mapUser(su.Attributes)
		set := map[string]bool{}
		for _, m := range missing {
			if common == nil || common[m] {
				set[m] = true
			}
		}
		if len(set) == 0 {
			return nil
		}
		common = set
	}
	fields := make([]string, 0, len(common))
	for f := range common {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	return errPermanent{&Error{Code: EINVALID,
		Message: fmt.Sprintf("Every user of the first page (%d) lacks the required field %s; nothing was changed.", len(ids), describeFields(s, fields[:1])),
		Hint:    fmt.Sprintf("Fix the mapping of %q in the settings (or remove it from required), then run a full sync.", fields[0])}}
}

// retryAction is a retried page's outcome for a user its first attempt
// recorded as old: what the page did to the user before its first attempt,
// with the state the retry found.
func retryAction(old, now User) string {
	switch {
	case now.Status == StatusSkipped:
		return actSkipped
	case now.Status == StatusDuplicate:
		return actDuplicate
	case old.Action == actUpdated, old.Action == actUnchanged && old.Hash != now.Hash:
		return actUpdated
	case old.Action == actUnchanged:
		return actUnchanged
	}
	return actAdded
}

func removalWords(reason string) string {
	if reason == RemovedDeleted {
		return "permanently deleted"
	}
	return "deleted, restorable for 30 days"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func countAction(c *Counters, action string, u User) {
	switch action {
	case actAdded:
		c.Added++
	case actUpdated:
		c.Updated++
	case actDuplicate:
		c.Duplicate++
	case actSkipped:
		c.Skipped++
		for _, m := range strings.Split(u.Missing, ",") {
			if m != "" {
				c.skippedBy(m, 1)
			}
		}
	default:
		c.Unchanged++
	}
}

// uncount takes back what countAction counted, when a write had to change
// the outcome (a row the store refused, a duplicate promoted).
func uncount(c *Counters, action string, u User) {
	var d Counters
	countAction(&d, action, u)
	c.Added -= d.Added
	c.Updated -= d.Updated
	c.Duplicate -= d.Duplicate
	c.Skipped -= d.Skipped
	c.Unchanged -= d.Unchanged
	for k, v := range d.SkippedBy {
		c.skippedBy(k, -v)
	}
}

// applyUser decides the new state of one present user, claims its email,
// logs what changed and returns the row write (nil when nothing changes in a
// delta run).
func (e *Engine) applyUser(ctx context.Context, run Run, s Settings, pc *pageContext, stamp int64, su SourceUser, old User, had bool, c *Counters, lb *logBuffer) (*userWrite, error) {
	now := e.now()
	attrs := userAttributes(run, s, su, old, had)
	fields, missing, truncated := s.mapUser(attrs)
	upn, _ := cutRunes(strings.TrimSpace(attrs["userPrincipalName"]), maxFieldChars)
	u := User{
		ID: su.ID, Fields: fields, Status: StatusActive, UPN: upn,
		Hash: fieldsHash(fields), RunSeq: run.Seq, PageSeq: stamp, CreatedAt: now, ChangedAt: now, ETag: old.ETag,
	}
	for _, a := range pc.rg.rawAttrs {
		if v, ok := attrs[a]; ok && v != "" {
			if u.Raw == nil {
				u.Raw = map[string]string{}
			}
			u.Raw[a], _ = cutRunes(v, maxFieldChars)
		}
	}
	if had {
		u.CreatedAt, u.ChangedAt, u.AddedBy, u.UpdatedBy = old.CreatedAt, old.ChangedAt, old.AddedBy, old.UpdatedBy
		keepPhoto(&u, old)
	}
	emailField := s.emailField()
	u.Email = NormalizeEmail(fields[emailField])
	logUser := LogEvent{UserID: u.ID, UPN: s.logUPN(u.UPN)}
	for _, f := range truncated {
		ev := logUser
		ev.Event, ev.Level = EvTruncated, LevelWarn
		ev.Reason = fmt.Sprintf("the value of %s was longer than %d characters and was cut", describeFields(s, []string{f}), maxFieldChars)
		lb.add(ev)
	}
	emailProblem := ""
	if u.Email != "" {
		if why := ValidKey(waiterKey(u.Email, u.ID)); why != "" {
			emailProblem = why
		}
	}

	switch {
	case len(missing) > 0 || emailProblem != "":
		u.Status, u.Action = StatusSkipped, actSkipped
		if len(missing) > 0 {
			u.Reason = "missing required attribute(s): " + describeFields(s, missing)
		} else {
			missing = []string{emailField}
			u.Reason = fmt.Sprintf("the %s cannot be checked for duplicates: it %s", describeFields(s, missing), emailProblem)
		}
		u.Email, u.Missing = "", strings.Join(missing, ",")
		countAction(c, actSkipped, u)
		ev := logUser
		ev.Event, ev.Level, ev.Reason = EvSkipped, LevelWarn, u.Reason
		lb.add(ev)
	default:
		owner := u.ID
		// An active user keeping its email already holds the claim: no
		// storage call, so unchanged users cost nothing here. A user
		// without an email claims nothing: no email, no duplicate.
		// A full run verifies every claim: it is the reconciliation that
		// repairs what a superseded run's late write left behind.
		keeps := had && old.Status == StatusActive && old.Email == u.Email
		var err error
		switch {
		case u.Email == "":
		case !keeps:
			owner, err = e.claimEmail(ctx, run, u.Email, u.ID)
		case run.Mode == ModeFull:
			owner, err = e.verifyClaim(ctx, run, u.Email, u.ID)
		}
		if err != nil {
			return nil, err
		}
		if owner != u.ID {
			u.Status, u.Action, u.DuplicateOf = StatusDuplicate, actDuplicate, owner
			u.Reason = fmt.Sprintf("email %s is already used by user %s", s.logEmail(u.Email), owner)
			c.Duplicate++
			ev := logUser
			ev.Event, ev.Level, ev.Reason = EvDuplicate, LevelWarn, u.Reason
			lb.add(ev)
			break
		}
		switch {
		case !had || old.Status != StatusActive:
			u.Action, u.AddedBy = actAdded, run.Seq
			c.Added++
			ev := logUser
			ev.Event = EvAdded
			if had {
				ev.Reason = "was " + old.Status + " before"
			}
			lb.add(ev)
		case old.Hash != u.Hash:
			u.Action, u.UpdatedBy = actUpdated, run.Seq
			c.Updated++
			ev := logUser
			ev.Event, ev.Changes = EvUpdated, s.diffFields(old.Fields, fields)
			lb.add(ev)
		case stampEpoch(stamp) > 0 && old.AddedBy == run.Seq:
			// Added by an earlier epoch of this run: the run's counters come
			// from its last epoch, which must still say so.
			u.Action = actAdded
			c.Added++
		case stampEpoch(stamp) > 0 && old.UpdatedBy == run.Seq:
			u.Action = actUpdated
			c.Updated++
		default:
			u.Action = actUnchanged
			c.Unchanged++
		}
	}
	// Release the email the user held before, if it changed or the user no
	// longer holds one; a waiting duplicate may take it over.
	if had && old.Status == StatusActive && old.Email != "" && old.Email != u.Email {
		if err := e.releaseEmail(ctx, run, s, old.Email, u.ID, nil, lb); err != nil {
			return nil, err
		}
	}
	if had && old.Status == StatusDuplicate && old.Email != "" && (old.Email != u.Email || u.Status != StatusDuplicate) {
		if err := e.Store.Delete(ctx, TableEmails, Bucket(old.Email), waiterKey(old.Email, u.ID), ""); err != nil {
			return nil, fmt.Errorf("drop waiter of %s: %w", u.ID, err)
		}
	}
	if u.Status == StatusDuplicate {
		if _, err := e.Store.Upsert(ctx, TableEmails, waiterRow(u.Email, u.ID)); err != nil {
			return nil, fmt.Errorf("record duplicate %s: %w", u.ID, err)
		}
	}
	groups, problems := pc.rg.groupsOf(su.ID, attrs, pc.inGroups[su.ID])
	u.Groups = groups
	for _, p := range problems {
		ev := logUser
		ev.Event, ev.Level, ev.Reason = EvRuleProblem, LevelWarn, p
		lb.add(ev)
	}
	var prevRow *User
	if had {
		prevRow = &old
	}
	prepareMembers(prevRow, &u, run.Seq, stamp)
	if had && old.Status == u.Status && old.Hash == u.Hash && old.Reason == u.Reason && equalRaw(old.Raw, u.Raw) && slices.Equal(old.Groups, u.Groups) && run.Mode == ModeDelta {
		// Unchanged in a delta run: no write. (Full runs write the stamp: it
		// is how the final sweep knows the user was seen.)
		return nil, nil
	}
	if had && (old.Status != u.Status || old.Hash != u.Hash) {
		u.ChangedAt = now
	}
	kind := BatchInsert
	if had {
		kind = BatchReplace
	}
	return &userWrite{op: BatchOp{Kind: kind, Entity: userToEntity(u)}, u: u, wasActive: had && old.Status == StatusActive, prev: prevRow}, nil
}

// userAttributes returns a user's attributes as they stand after this page
// (see Settings.currentAttributes): a delta run merges Graph's partial
// update with what the row holds.
func userAttributes(run Run, s Settings, su SourceUser, old User, had bool) map[string]string {
	var prev *User
	if had && run.Mode == ModeDelta && old.Status != "" {
		prev = &old
	}
	attrs := s.currentAttributes(su, prev)
	if _, ok := attrs["userPrincipalName"]; !ok && prev != nil && prev.UPN != "" {
		attrs["userPrincipalName"] = prev.UPN
	}
	return attrs
}

// outOfScope says why a present user is not synced ("" when it is).
func (pc *pageContext) outOfScope(run Run, s Settings, su SourceUser, old User, had bool) string {
	if !pc.rg.scopes() {
		return ""
	}
	ok, why := pc.rg.inScope(su.ID, userAttributes(run, s, su, old, had), pc.inGroups[su.ID])
	if ok {
		return ""
	}
	return why
}

// preclaimable are the users of a page whose emails may be claimed ahead,
// in batches (preclaimEmails): not users the scope leaves out, whose claims
// would make in-scope users of the same run duplicates, and in a scoped
// delta run not users new to the directory (read whole before their scope
// is known, see applyPage).
func (pc *pageContext) preclaimable(run Run, s Settings, ids []string, users map[string]SourceUser, existing map[string]User) []string {
	if !pc.rg.scopes() {
		return ids
	}
	var out []string
	for _, id := range ids {
		old, had := existing[id]
		if !had && run.Mode == ModeDelta {
			continue
		}
		if pc.outOfScope(run, s, users[id], old, had) == "" {
			out = append(out, id)
		}
	}
	return out
}

// countMembers counts the membership changes a written row made.
func countMembers(c *Counters, u User) {
	joined, left := memberChanges(u)
	c.MembersAdded += int64(len(joined))
	c.MembersRemoved += int64(len(left))
}

func equalRaw(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func describeFields(s Settings, fields []string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f
		if m, ok := s.mapping(f); ok && m.Source != "" {
			src := m.Source
			if m.Fallback != "" {
				src += " or " + m.Fallback
			}
			parts[i] = fmt.Sprintf("%s (Graph %s)", f, src)
		}
	}
	return strings.Join(parts, ", ")
}

// readUsers reads the rows of ids with bounded concurrency.
func (e *Engine) readUsers(ctx context.Context, ids []string) (map[string]User, error) {
	out := make(map[string]User, len(ids))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, e.concurrency())
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ent, err := e.Store.Get(ctx, TableUsers, Bucket(id), id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[id] = userFromEntity(ent)
			case IsCode(err, ENOTFOUND):
			case firstErr == nil:
				firstErr = fmt.Errorf("read user %s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

// writeUsers writes a page's rows in batches. A row the store refuses as
// invalid (a value it cannot hold) never fails the page, nor every later
// run: that user is stored as skipped with the store's reason instead, or,
// if even that is refused, counted as failed and logged. existing holds the
// rows as read, which the writes replace: the buckets' counts move by the
// difference (counts.go).
func (e *Engine) writeUsers(ctx context.Context, writes []userWrite, existing map[string]User, c *Counters, lb *logBuffer) error {
	ops := make([]BatchOp, len(writes))
	byKey := map[string]*userWrite{}
	was := map[string]string{}
	for i := range writes {
		ops[i] = writes[i].op
		byKey[writes[i].u.ID] = &writes[i]
		if old, ok := existing[writes[i].u.ID]; ok && writes[i].op.Kind != BatchInsert {
			was[writes[i].u.ID] = old.Status
		}
	}
	return e.batchWriteUsers(ctx, ops, was, func(op BatchOp, err error) error {
		wr := byKey[op.Entity.RowKey]
		count := c
		if wr.outOfScope {
			count = &Counters{} // counted as out of scope
		}
		uncount(count, wr.u.Action, wr.u)
		skipped := User{ID: wr.u.ID, Status: StatusSkipped, Action: actSkipped, UPN: truncate(wr.u.UPN, 256),
			Reason: "the directory cannot store this user's attributes: " + truncate(ErrorMessage(err), 300),
			RunSeq: wr.u.RunSeq, PageSeq: wr.u.PageSeq, CreatedAt: wr.u.CreatedAt, ChangedAt: wr.u.ChangedAt, ETag: wr.u.ETag, Fields: map[string]string{}}
		prepareMembers(wr.prev, &skipped, wr.u.RunSeq, wr.u.PageSeq)
		serr := e.usersBatch(ctx, []BatchOp{{Kind: op.Kind, Entity: userToEntity(skipped)}}, was)
		if serr != nil && !IsCode(serr, EINVALID) {
			return conflictRetry(serr)
		}
		ev := LogEvent{UserID: wr.u.ID, Level: LevelError, Reason: skipped.Reason}
		if serr != nil {
			count.Failed++
			ev.Event = EvFailed
		} else {
			countAction(count, actSkipped, skipped)
			ev.Event = EvSkipped
			wr.u = skipped
		}
		lb.add(ev)
		return nil
	})
}

// maxBatchBytes keeps a batch under Azure's 4 MiB per transaction.
const maxBatchBytes = 3 << 20

// entityBytes is an upper bound of an entity's size on the wire (UTF-16
// strings, property names included).
func entityBytes(e Entity) int {
	n := 2*(len(e.PartitionKey)+len(e.RowKey)) + 64
	for k, v := range e.Props {
		n += 2*len(k) + 16
		if s, ok := v.(string); ok {
			n += 2 * len(s)
		}
	}
	return n
}

// batchWrite groups ops by partition into batches of at most MaxBatch
// operations and maxBatchBytes. A conflict means another worker wrote one of
// these rows meanwhile: the item is retried and re-reads them. A batch the
// store refuses as invalid is written one operation at a time, and each
// refused operation goes to invalid (nil to go on; without it, the error
// stands).
func (e *Engine) batchWrite(ctx context.Context, table string, ops []BatchOp, invalid func(BatchOp, error) error) error {
	return e.batchWriteWith(ctx, table, ops, nil, invalid)
}

// batchWriteUsers is batchWrite for user rows: each batch also writes its
// partition's counts row (one op of the batch), moved from the statuses in
// was (row key: status of the row as read) to those written.
func (e *Engine) batchWriteUsers(ctx context.Context, ops []BatchOp, was map[string]string, invalid func(BatchOp, error) error) error {
	if was == nil {
		was = map[string]string{}
	}
	return e.batchWriteWith(ctx, TableUsers, ops, was, invalid)
}

// conflictRetry words a conflict of a batch as a retry of the item.
func conflictRetry(err error) error {
	if IsCode(err, ECONFLICT) || IsCode(err, EPRECONDITION) {
		return &Error{Code: EUNAVAILABLE, Message: "another worker changed the same rows at the same time; the item will be applied again", Err: err}
	}
	return err
}

func (e *Engine) batchWriteWith(ctx context.Context, table string, ops []BatchOp, was map[string]string, invalid func(BatchOp, error) error) error {
	maxOps, batch := MaxBatch, func(group []BatchOp) error { return e.Store.Batch(ctx, table, group) }
	if was != nil {
		// One op of every batch is the partition's counts row.
		maxOps, batch = MaxBatch-1, func(group []BatchOp) error { return e.usersBatch(ctx, group, was) }
	}
	byPK := map[string][]BatchOp{}
	for _, op := range ops {
		byPK[op.Entity.PartitionKey] = append(byPK[op.Entity.PartitionKey], op)
	}
	pks := make([]string, 0, len(byPK))
	for pk := range byPK {
		pks = append(pks, pk)
	}
	sort.Strings(pks)
	write := func(group []BatchOp) error {
		err := batch(group)
		switch {
		case err == nil:
			return nil
		case IsCode(err, ECONFLICT) || IsCode(err, EPRECONDITION) || (was != nil && IsCode(err, ENOTFOUND)):
			return &Error{Code: EUNAVAILABLE, Message: "another worker changed the same rows at the same time; the item will be applied again", Err: err}
		case IsCode(err, EINVALID) && invalid != nil && len(group) > 1:
			for _, op := range group {
				if err := batch([]BatchOp{op}); IsCode(err, EINVALID) {
					if err := invalid(op, err); err != nil {
						return err
					}
				} else if err != nil {
					return conflictRetry(err)
				}
			}
			return nil
		case IsCode(err, EINVALID) && invalid != nil:
			return invalid(group[0], err)
		}
		return err
	}
	for _, pk := range pks {
		group := byPK[pk]
		for len(group) > 0 {
			n, size := 0, 0
			for n < len(group) && n < maxOps {
				size += entityBytes(group[n].Entity)
				if n > 0 && size > maxBatchBytes {
					break
				}
				n++
			}
			if err := write(group[:n]); err != nil {
				return err
			}
			group = group[n:]
		}
	}
	return nil
}
