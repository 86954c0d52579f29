package dirsync

import (
	"context"
	"fmt"
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

// applyPage applies one page of Graph users and records the page as done with
// its counters. It is idempotent: a row already stamped by this page is
// counted by the action stored on it and not written again, and a row stamped
// by a later page is never overwritten.
func (e *Engine) applyPage(ctx context.Context, run Run, settings Settings, seq int64, users []SourceUser) error {
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
	existing, err := e.readUsers(ctx, ids)
	if err != nil {
		return err
	}

	var writes []BatchOp
	for _, id := range ids {
		su := latest[id]
		old, had := existing[id]
		c.Seen++
		if had && !newer(run.Seq, seq, old.RunSeq, old.PageSeq) {
			if old.RunSeq == run.Seq && old.PageSeq == seq {
				countAction(&c, old.Action, old) // redelivery: applied before
			} else {
				c.Unchanged++ // a later page already wrote a newer state
			}
			continue
		}
		if su.Removed != "" {
			if had {
				if err := e.recordDeletion(ctx, run, seq, old, "removed in Entra ("+removalWords(su.Removed)+")"); err != nil {
					return err
				}
			}
			continue
		}
		op, err := e.applyUser(ctx, run, settings, seq, su, old, had, &c, lb)
		if err != nil {
			return err
		}
		if op != nil {
			writes = append(writes, *op)
		}
	}
	if err := e.batchWrite(ctx, TableUsers, writes); err != nil {
		return fmt.Errorf("apply page %d: %w", seq, err)
	}
	lb.add(LogEvent{Event: EvPage, Message: fmt.Sprintf("page applied: %d users", len(users)), Counters: &c})
	e.flushLog(ctx, run, lb)

	p := map[string]any{}
	c.props(p)
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID, RowKey: pageRowKey(seq), Props: p})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record page %d: %w", seq, err)
	}
	return nil
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
			if m == "" {
				continue
			}
			if c.SkippedBy == nil {
				c.SkippedBy = map[string]int64{}
			}
			c.SkippedBy[m]++
		}
	default:
		c.Unchanged++
	}
}

// applyUser decides the new state of one present user, claims its email,
// logs what changed and returns the row write (nil when nothing changes in a
// delta run).
func (e *Engine) applyUser(ctx context.Context, run Run, s Settings, seq int64, su SourceUser, old User, had bool, c *Counters, lb *logBuffer) (*BatchOp, error) {
	now := e.now()
	var partialOf map[string]string
	if had && run.Mode == ModeDelta && old.Status != "" {
		partialOf = old.Fields
	}
	fields, missing := s.mapUser(su, partialOf)
	u := User{
		ID: su.ID, Fields: fields, Status: StatusActive, UPN: su.Attributes["userPrincipalName"],
		Hash: fieldsHash(fields), RunSeq: run.Seq, PageSeq: seq, CreatedAt: now, ChangedAt: now, ETag: old.ETag,
	}
	if had {
		u.CreatedAt, u.ChangedAt = old.CreatedAt, old.ChangedAt
	}
	emailField := s.EmailField
	if emailField == "" {
		emailField = "email"
	}
	u.Email = NormalizeEmail(fields[emailField])
	logUser := LogEvent{UserID: u.ID, UPN: u.UPN}

	switch {
	case len(missing) > 0:
		u.Status, u.Action, u.Email = StatusSkipped, actSkipped, ""
		u.Reason = "missing required attribute(s): " + describeFields(s, missing)
		u.Missing = strings.Join(missing, ",")
		c.Skipped++
		for _, m := range missing {
			if c.SkippedBy == nil {
				c.SkippedBy = map[string]int64{}
			}
			c.SkippedBy[m]++
		}
		ev := logUser
		ev.Event, ev.Level, ev.Reason = EvSkipped, LevelWarn, u.Reason
		lb.add(ev)
	default:
		owner := u.ID
		// An active user keeping its email already holds the claim: no
		// storage call, so unchanged users cost nothing here.
		if !had || old.Status != StatusActive || old.Email != u.Email {
			var err error
			if owner, err = e.claimEmail(ctx, run, u.Email, u.ID); err != nil {
				return nil, err
			}
		}
		if owner != u.ID {
			u.Status, u.Action, u.DuplicateOf = StatusDuplicate, actDuplicate, owner
			u.Reason = fmt.Sprintf("email %s is already used by user %s", u.Email, owner)
			c.Duplicate++
			ev := logUser
			ev.Event, ev.Level, ev.Reason = EvDuplicate, LevelWarn, u.Reason
			lb.add(ev)
			break
		}
		switch {
		case !had || old.Status != StatusActive:
			u.Action = actAdded
			c.Added++
			ev := logUser
			ev.Event = EvAdded
			if had {
				ev.Reason = "was " + old.Status + " before"
			}
			lb.add(ev)
		case old.Hash != u.Hash:
			u.Action = actUpdated
			c.Updated++
			ev := logUser
			ev.Event, ev.Changes = EvUpdated, s.diffFields(old.Fields, fields)
			lb.add(ev)
		default:
			u.Action = actUnchanged
			c.Unchanged++
		}
	}
	// Release the email the user held before, if it changed or the user no
	// longer holds one; a waiting duplicate may take it over.
	if had && old.Status == StatusActive && old.Email != "" && old.Email != u.Email {
		if err := e.releaseEmail(ctx, run, old.Email, u.ID, lb); err != nil {
			return nil, err
		}
	}
	if had && old.Status == StatusDuplicate && old.Email != "" && (old.Email != u.Email || u.Status != StatusDuplicate) {
		e.Store.Delete(ctx, TableEmails, Bucket(old.Email), waiterKey(old.Email, u.ID), "")
	}
	if u.Status == StatusDuplicate {
		if _, err := e.Store.Upsert(ctx, TableEmails, Entity{PartitionKey: Bucket(u.Email), RowKey: waiterKey(u.Email, u.ID),
			Props: map[string]any{"user": u.ID}}); err != nil {
			return nil, fmt.Errorf("record duplicate %s: %w", u.ID, err)
		}
	}
	if had && old.Status == u.Status && old.Hash == u.Hash && old.Reason == u.Reason && run.Mode == ModeDelta {
		// Unchanged in a delta run: no write. (Full runs write the stamp: it
		// is how the final sweep knows the user was seen.)
		return nil, nil
	}
	if had && (old.Status != u.Status || old.Hash != u.Hash) {
		u.ChangedAt = now
	}
	ent := userToEntity(u)
	if had {
		return &BatchOp{Kind: BatchReplace, Entity: ent}, nil
	}
	return &BatchOp{Kind: BatchInsert, Entity: ent}, nil
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

// batchWrite groups ops by partition into batches of at most MaxBatch. A
// conflict means another worker wrote one of these rows meanwhile: the item
// is retried and re-reads them.
func (e *Engine) batchWrite(ctx context.Context, table string, ops []BatchOp) error {
	byPK := map[string][]BatchOp{}
	for _, op := range ops {
		byPK[op.Entity.PartitionKey] = append(byPK[op.Entity.PartitionKey], op)
	}
	pks := make([]string, 0, len(byPK))
	for pk := range byPK {
		pks = append(pks, pk)
	}
	sort.Strings(pks)
	for _, pk := range pks {
		group := byPK[pk]
		for len(group) > 0 {
			n := min(len(group), MaxBatch)
			if err := e.Store.Batch(ctx, table, group[:n]); err != nil {
				if IsCode(err, ECONFLICT) || IsCode(err, EPRECONDITION) {
					return &Error{Code: EUNAVAILABLE, Message: "another worker changed the same users at the same time; the page will be applied again", Err: err}
				}
				return err
			}
			group = group[n:]
		}
	}
	return nil
}
