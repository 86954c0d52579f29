package dirsync

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Scope by Entra groups (Settings.GroupScope). Who is in the selected
// groups, nested groups included, is kept in scope rows: TableMembers,
// PartitionKey "s|<user bucket>", RowKey the user id, holding gen (the
// rebuild that wrote it: scopeGeneration) and groups (the selected groups containing the
// user). A page reads the rows of its users with point reads; a user is in a
// selected group when its row's gen is the run's ScopeGen.
//
// Each run with a group scope starts with the scope steps, before any user
// page:
//  1. WorkScope pages through /groups/delta for the selected groups and the
//     nested groups found in them (ScopeTracked), from the saved link in a
//     delta run, fresh otherwise. A selected group removed in Entra holds the
//     run: it fails with the reason and deletes nobody. Renames of mirrored
//     groups are applied. Any change the round reports of a tracked group
//     (members, nesting, name) marks the scope changed.
//  2. Unchanged (a delta run whose round saw no change): the run keeps the
//     saved generation and goes on as a delta run.
//  3. Changed, or a full run: WorkScopeMembers reads every selected group's
//     transitive members and writes scope rows of generation run.Seq; nested
//     groups found that the round did not follow start another round (so
//     their later changes are seen), at most maxScopeRounds. The users are
//     then enumerated in full: users entering scope are added, users
//     leaving it are not stamped and the sweep removes them, through the
//     deletion threshold like every deletion.
//
// A change of a tracked group (members, nesting, name) thus costs a full
// enumeration of the users; a delta run without one costs one groups delta
// request per 50 tracked groups. Scope rows of earlier generations are left in place
// (they are overwritten when their user is in scope again).
//
// Reading the members twice. The saved groups delta link must describe
// the state the scope rows hold: the next round reports only what changed
// since its link was issued, and Graph may leave out a change that was
// undone ("at least" what changed). A link issued before the members are
// read misses a member who joined before the read and left after it (the
// rows keep the member, the round reports nothing), and likewise a member
// who left before the read and came back. So a rebuild reads the members,
// runs a confirmation round from its round's link (WorkScope items with
// Bucket 1; what it reports is applied as in any round, renames and a
// removed selected group, but does not decide anything: changes made
// during the first read are reported and the first read may hold them),
// reads the members again (WorkScopeMembers with Bucket 1, writing no
// rows), and accepts the rows only when both reads hold the same members
// of every group; the link saved is the confirmation round's, issued
// between the two reads. A member the rows hold wrongly at that link was
// then changed before it and changed back after it, the same in both
// reads: two changes around the confirmation, and a third to be missed
// by the next round. Reads that differ start a new round (bounded by
// maxScopeRounds); at the bound the run uses the rows of the first read,
// complete (a change found during it reads on), and saves no link
// (ScopeUnconfirmed), so the next run rebuilds the scope. Each
// members page is recorded once per position (round, read, group, page:
// TablePages, "<run>|scope"), with a digest of its content and the sum
// and count of its members' digests: a page fetched again at a recorded
// position (a redelivery) that holds other members means the members
// moved during the read (a new round too), and the two reads are
// compared by the sums, not page by page, so pagination may differ.

const (
	WorkScope        = "scope"         // one page of /groups/delta for the selected groups
	WorkScopeMembers = "scope-members" // one page of a selected group's transitive members
)

func init() {
	steps[WorkScope] = (*Engine).doScope
	steps[WorkScopeMembers] = (*Engine).doScopeMembers
}

// maxScopeRounds bounds groups delta rounds within one run (a round is
// started again when nested groups are found it did not follow).
const maxScopeRounds = 3

const scopeRowKey = "scope"

// Where a rebuild's check stands (Run.ScopeCheck).
const (
	scopeReading    = 0 // the first read of the members, writing the scope rows
	scopeConfirming = 1 // the confirmation round, from the first round's link
	scopeRereading  = 2 // the second read, compared with the first
)

// scopeCheckPass is the Bucket of the confirmation round's and the second
// read's items (0 for the first round's and the first read's).
const scopeCheckPass = 1

func scopeRowPK(userID string) string { return "s|" + Bucket(userID) }

// scopeGeneration numbers the scope rows a rebuild writes: each round of
// each run its own, increasing, so rows a rebuild does not write (users no
// longer in a selected group) never count as in scope, not even for a
// second round of the same run.
func scopeGeneration(runSeq, round int64) int64 { return runSeq*16 + round }

// scopeState is the saved scope position: the generation of the scope rows,
// the groups delta link and the groups it follows, for the selection
// identified by Hash.
type scopeState struct {
	Gen     int64
	Link    string
	Tracked []string
	Hash    string
	ETag    string
}

func (st scopeState) entity() Entity {
	p := map[string]any{"gen": st.Gen, "hash": st.Hash}
	putChunked(p, "link", st.Link)
	putChunked(p, "tracked", strings.Join(st.Tracked, ","))
	return Entity{PartitionKey: statePartition, RowKey: scopeRowKey, ETag: st.ETag, Props: p}
}

func scopeFromEntity(e Entity) scopeState {
	st := scopeState{Gen: e.Int("gen"), Link: getChunked(e, "link"), Hash: e.Str("hash"), ETag: e.ETag}
	if t := getChunked(e, "tracked"); t != "" {
		st.Tracked = strings.Split(t, ",")
	}
	return st
}

// scopeHash identifies a group selection.
func scopeHash(s Settings) string {
	ids := slices.Sorted(slices.Values(s.GroupScope))
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	return hex.EncodeToString(sum[:8])
}

func (e *Engine) scopeState(ctx context.Context, s Settings) (scopeState, error) {
	ent, err := e.Store.Get(ctx, TableState, statePartition, scopeRowKey)
	if IsCode(err, ENOTFOUND) {
		return scopeState{}, nil
	}
	if err != nil {
		return scopeState{}, fmt.Errorf("read scope state: %w", err)
	}
	st := scopeFromEntity(ent)
	if st.Hash != scopeHash(s) {
		return scopeState{}, nil // another selection: nothing of it applies
	}
	return st, nil
}

// firstScopeItem is the first work item of a run with a group scope.
func firstScopeItem(runID string, mode string, st scopeState) WorkItem {
	w := WorkItem{Kind: WorkScope, RunID: runID}
	if mode == ModeDelta {
		w.Link = st.Link
	}
	return w
}

// doScope applies one page of the groups delta round.
func (e *Engine) doScope(ctx context.Context, run Run, s Settings, w WorkItem) error {
	if !currentScopeRound(run, w) {
		return nil
	}
	if run.ScopeDone {
		return e.resendFirstUserPage(ctx, run, w)
	}
	req := GroupDeltaRequest{Link: w.Link}
	if w.Link == "" {
		req.GroupIDs = scopeTracked(s, run)
	}
	page, err := e.Source.GroupsDelta(ctx, req)
	switch ErrorCode(err) {
	case "":
	case ETOKENEXPIRED:
		// The saved link expired: read the groups afresh, and rebuild.
		return e.restartScopeRound(ctx, run, w, "the saved groups delta link is no longer valid")
	case ETHROTTLED:
		return e.reschedule(ctx, run, w, RetryAfter(err), "Graph asked us to slow down")
	default:
		return err
	}
	if page.NextLink == "" && page.DeltaLink == "" {
		return Errorf(EINVALID, "Graph returned a groups page with neither a next link nor a delta link")
	}
	lb := e.newLog(run, nil)
	defer e.flushLog(ctx, run, lb)
	confirming := w.Bucket == scopeCheckPass
	changed := w.Link == "" // a fresh round reports every group: the scope is rebuilt
	for _, g := range page.Groups {
		selected := slices.Contains(s.GroupScope, g.ID)
		if g.Removed != "" && selected {
			return e.holdScope(ctx, run, s, g.ID, lb)
		}
		// Any tracked group the round reports rebuilds the scope, also one
		// without a net member change: its members were read after the
		// previous round's link was issued, so a member who joined in
		// between and has left since is in the scope rows, and the round
		// reports the join and the leave as nothing. (A rename alone then
		// costs a rebuild too; renames are rare.)
		changed = true
		if selected && g.DisplayName != "" {
			if err := e.mirrorGroupName(ctx, s, g.ID, g.DisplayName, lb); err != nil {
				return err
			}
		}
	}
	if confirming {
		return e.confirmScope(ctx, run, w, page)
	}
	if changed && !run.ScopeChanged {
		if run, err = e.advanceScope(ctx, w, func(r *Run) error { r.ScopeChanged = true; return nil }); err != nil {
			return err
		}
	}
	if page.NextLink != "" {
		next := w.next(WorkScope)
		next.Seq, next.Link, next.Cursor = w.Seq+1, page.NextLink, w.Cursor
		return e.send(ctx, next, zeroTime)
	}
	rebuild := false
	run, err = e.advanceScope(ctx, w, func(r *Run) error {
		if r.ScopeCheck != scopeReading {
			return errSuperseded // a redelivery: the members were read from the link saved
		}
		r.ScopeLink = page.DeltaLink
		rebuild = r.ScopeChanged || r.Mode != ModeDelta
		if rebuild {
			r.ScopeGen = scopeGeneration(r.Seq, r.ScopeRound)
		} else {
			r.ScopeDone = true // the users are read next
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !rebuild {
		lb.add(LogEvent{Event: EvScope, Message: "the selected groups did not change since the last sync"})
		first, err := e.firstUserPage(ctx, run, w)
		if err != nil {
			return err
		}
		return e.send(ctx, first, zeroTime)
	}
	lb.add(LogEvent{Event: EvScope, Message: fmt.Sprintf("reading the members of %d selected group(s), nested groups included", len(s.GroupScope))})
	return e.send(ctx, scopeMembersItem(w, run.ScopeRound, 0), zeroTime)
}

// scopeMembersItem is the first item of a read of the members (pass 0 the
// first, scopeCheckPass the second) in the given round.
func scopeMembersItem(w WorkItem, round int64, pass int) WorkItem {
	members := w.next(WorkScopeMembers)
	members.Cursor, members.Bucket = fmt.Sprint(round), pass
	return members
}

// confirmScope goes on with the confirmation round after one of its pages
// (doScope applied what it reports). At its end its link is saved, and
// the members are read a second time.
func (e *Engine) confirmScope(ctx context.Context, run Run, w WorkItem, page GroupPage) error {
	if page.NextLink != "" {
		next := w.next(WorkScope)
		next.Seq, next.Link, next.Cursor, next.Bucket = w.Seq+1, page.NextLink, w.Cursor, scopeCheckPass
		return e.send(ctx, next, zeroTime)
	}
	run, err := e.advanceScope(ctx, w, func(r *Run) error {
		switch r.ScopeCheck {
		case scopeConfirming:
			r.ScopeLink, r.ScopeCheck = page.DeltaLink, scopeRereading
			return nil
		case scopeRereading:
			return errSkipWrite // a redelivery: the second read began from the link saved
		}
		return errSuperseded
	})
	if err != nil {
		return err
	}
	return e.send(ctx, scopeMembersItem(w, run.ScopeRound, scopeCheckPass), zeroTime)
}

// scopeTracked is what a fresh groups delta round follows: the selected
// groups and the nested groups found in them.
func scopeTracked(s Settings, run Run) []string {
	set := map[string]bool{}
	for _, g := range s.GroupScope {
		set[g] = true
	}
	for _, g := range run.ScopeTracked {
		set[g] = true
	}
	out := make([]string, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

func (e *Engine) restartScopeRound(ctx context.Context, run Run, w WorkItem, why string) error {
	run, err := e.advanceScope(ctx, w, func(r *Run) error {
		r.ScopeRound++
		r.ScopeChanged, r.ScopeGrew = true, false
		r.ScopeCheck, r.ScopeUnconfirmed = scopeReading, false
		return nil
	})
	if err != nil {
		return err
	}
	lb := e.newLog(run, nil)
	lb.add(LogEvent{Event: EvScope, Level: LevelWarn, Message: why + "; the selected groups are read again in full"})
	e.flushLog(ctx, run, lb)
	first := w.next(WorkScope)
	first.Cursor = fmt.Sprint(run.ScopeRound)
	return e.send(ctx, first, zeroTime)
}

// holdScope ends a run whose selected group was deleted in Entra: the
// sync cannot know who is in scope, and removing the group's members would
// delete users an admin meant to keep. Nobody is deleted; a mirrored copy of
// the group leaves the directory.
func (e *Engine) holdScope(ctx context.Context, run Run, s Settings, groupID string, lb *logBuffer) error {
	name := groupID
	if g, err := e.Store.Get(ctx, TableGroups, string(GroupMirrored), groupID); err == nil {
		name = fmt.Sprintf("%q (%s)", g.Str("displayName"), groupID)
		if err := e.Store.Delete(ctx, TableGroups, string(GroupMirrored), groupID, ""); err != nil {
			return fmt.Errorf("remove mirrored group %s: %w", groupID, err)
		}
		lb.add(LogEvent{Event: EvGroupRemoved, Group: groupID, Message: "the mirrored group was deleted in Entra and is removed from the directory"})
	}
	msg := fmt.Sprintf("The selected group %s was deleted in Entra. The sync stopped before changing any user: nobody was removed.", name)
	hint := "Remove the group from groupScope in the settings (PUT /api/settings), or restore it in Entra (deleted groups can be restored for 30 days); then sync again."
	lb.add(LogEvent{Event: EvScope, Level: LevelError, Group: groupID, Reason: msg, Message: hint})
	e.flushLog(ctx, run, lb)
	e.failRun(ctx, run.ID, EINVALID, msg, hint)
	return nil
}

// mirrorGroupName keeps a mirrored group's row and name in step with Entra.
func (e *Engine) mirrorGroupName(ctx context.Context, s Settings, id, name string, lb *logBuffer) error {
	if !s.MirrorGroups {
		return nil
	}
	renamed := ""
	_, err := e.modify(ctx, TableGroups, string(GroupMirrored), id, func(ent *Entity, exists bool) error {
		renamed = ""
		g := groupFromEntity(*ent)
		if exists && g.DisplayName == name {
			return errSkipWrite
		}
		now := e.now()
		if !exists {
			g = Group{ID: id, Kind: GroupMirrored, CreatedAt: now}
		} else {
			renamed = g.DisplayName
		}
		g.DisplayName, g.UpdatedAt, g.UpdatedBy = name, now, "sync"
		ent.Props = groupToEntity(g).Props
		return nil
	})
	if err != nil {
		return fmt.Errorf("mirror group %s: %w", id, err)
	}
	if renamed != "" {
		lb.add(LogEvent{Event: EvScope, Group: id, Message: fmt.Sprintf("mirrored group renamed from %q to %q", renamed, name)})
	}
	return nil
}

// doScopeMembers reads one page of a selected group's transitive members
// (w.Seq is the group's index in GroupScope, w.Page the page within it):
// into scope rows in the first read, to be compared in the second
// (w.Bucket scopeCheckPass).
func (e *Engine) doScopeMembers(ctx context.Context, run Run, s Settings, w WorkItem) error {
	if int(w.Seq) >= len(s.GroupScope) {
		return errPermanent{Errorf(EINVALID, "scope item for group %d of %d", w.Seq, len(s.GroupScope))}
	}
	if !currentScopeRound(run, w) {
		return nil
	}
	if run.ScopeDone {
		return e.resendFirstUserPage(ctx, run, w)
	}
	rereading := w.Bucket == scopeCheckPass
	if !rereading && run.ScopeCheck != scopeReading {
		// A redelivery after the first read ended: the confirmation round
		// may not have been sent.
		if run.ScopeCheck == scopeConfirming {
			return e.send(ctx, confirmScopeItem(w, run), zeroTime)
		}
		return nil
	}
	groupID := s.GroupScope[w.Seq]
	page, err := e.Source.GroupTransitiveMembers(ctx, groupID, w.Link)
	switch ErrorCode(err) {
	case "":
	case ENOTFOUND:
		lb := e.newLog(run, nil)
		return e.holdScope(ctx, run, s, groupID, lb)
	case ETHROTTLED:
		return e.reschedule(ctx, run, w, RetryAfter(err), "Graph asked us to slow down")
	default:
		return err
	}
	moved, err := e.recordScopePage(ctx, run, w, page)
	if err != nil {
		return err
	}
	if moved {
		why := fmt.Sprintf("the members of group %s changed while they were read", groupID)
		if rereading || run.ScopeRound+1 < maxScopeRounds {
			return e.scopeUnsettled(ctx, run, w, why)
		}
		// The last round's first read: the run will use its rows, so they
		// must be complete. The read goes on (this page's rows are written
		// as fetched now), and the run saves no link at its end.
		if run, err = e.markScopeUnconfirmed(ctx, run, w, why); err != nil {
			return err
		}
	}
	if !rereading {
		if err := e.writeScopeRows(ctx, run.ScopeGen, groupID, page.UserIDs); err != nil {
			return err
		}
		if run, err = e.trackFoundGroups(ctx, run, s, w, page.GroupIDs); err != nil {
			return err
		}
	}
	next := w.next(WorkScopeMembers)
	next.Cursor, next.Bucket = w.Cursor, w.Bucket
	switch {
	case page.NextLink != "":
		next.Seq, next.Page, next.Link = w.Seq, w.Page+1, page.NextLink
		return e.send(ctx, next, zeroTime)
	case int(w.Seq)+1 < len(s.GroupScope):
		next.Seq = w.Seq + 1
		return e.send(ctx, next, zeroTime)
	}
	if rereading {
		agree, err := e.scopeReadsAgree(ctx, run)
		if err != nil {
			return err
		}
		if !agree {
			return e.scopeUnsettled(ctx, run, w, "the members of the selected groups changed while they were read")
		}
		return e.scopeSettled(ctx, run, w, false)
	}
	// Every group is read. Nested groups the round did not follow: follow
	// them from now on, with a new round (and read the members again, so
	// that nothing changed between the round and the reads is missed).
	if run.ScopeGrew && run.ScopeRound+1 < maxScopeRounds {
		return e.restartScopeRound(ctx, run, w, "nested groups were found that the groups delta round did not follow")
	}
	if run.ScopeUnconfirmed {
		return e.scopeSettled(ctx, run, w, true) // no round is left to confirm it
	}
	run, err = e.advanceScope(ctx, w, func(r *Run) error {
		if r.ScopeCheck != scopeReading {
			return errSkipWrite
		}
		r.ScopeCheck = scopeConfirming
		return nil
	})
	if err != nil {
		return err
	}
	if run.ScopeCheck != scopeConfirming {
		return nil // a redelivery: the confirmation round has ended
	}
	return e.send(ctx, confirmScopeItem(w, run), zeroTime)
}

// confirmScopeItem is the first item of the confirmation round: from the
// link the round ended with.
func confirmScopeItem(w WorkItem, run Run) WorkItem {
	first := w.next(WorkScope)
	first.Link, first.Cursor, first.Bucket = run.ScopeLink, fmt.Sprint(run.ScopeRound), scopeCheckPass
	return first
}

// trackFoundGroups adds the nested groups a members page found that the
// round does not follow to ScopeTracked, and marks the scope grown.
func (e *Engine) trackFoundGroups(ctx context.Context, run Run, s Settings, w WorkItem, groupIDs []string) (Run, error) {
	var found []string
	for _, g := range groupIDs {
		if !slices.Contains(run.ScopeTracked, g) && !slices.Contains(s.GroupScope, g) {
			found = append(found, g)
		}
	}
	if len(found) == 0 {
		return run, nil
	}
	return e.advanceScope(ctx, w, func(r *Run) error {
		r.ScopeGrew = true
		for _, g := range found {
			if !slices.Contains(r.ScopeTracked, g) {
				r.ScopeTracked = append(r.ScopeTracked, g)
			}
		}
		sort.Strings(r.ScopeTracked)
		return nil
	})
}

// scopeUnsettled handles members that changed while they were read, once
// the first read of the round is complete (the confirmation's second read,
// or their comparison): a new round reads them again, or, once
// maxScopeRounds is reached, the run goes on with the rows of the first
// read and saves no groups delta link, so that the next run rebuilds the
// scope. (A change found during the last round's first read does not end
// the read: doScopeMembers reads on and marks the run unconfirmed.)
func (e *Engine) scopeUnsettled(ctx context.Context, run Run, w WorkItem, why string) error {
	if run.ScopeRound+1 < maxScopeRounds {
		return e.restartScopeRound(ctx, run, w, why)
	}
	run, err := e.markScopeUnconfirmed(ctx, run, w, why)
	if err != nil {
		return err
	}
	return e.scopeSettled(ctx, run, w, true)
}

// markScopeUnconfirmed records that the run's scope rows hold members as
// read while they changed (Run.ScopeUnconfirmed), and says so in the run
// log, before the mark: a retry may repeat the line, none loses it.
func (e *Engine) markScopeUnconfirmed(ctx context.Context, run Run, w WorkItem, why string) (Run, error) {
	if run.ScopeUnconfirmed {
		return run, nil
	}
	lb := e.newLog(run, nil)
	lb.add(LogEvent{Event: EvScope, Level: LevelWarn, Message: why + "; this sync uses the members as read, and the next sync reads them again"})
	e.flushLog(ctx, run, lb)
	return e.advanceScope(ctx, w, func(r *Run) error {
		if r.ScopeUnconfirmed {
			return errSkipWrite
		}
		r.ScopeUnconfirmed = true
		return nil
	})
}

// scopeSettled ends the scope steps of a rebuild: the users are read in
// full next, so that users entering and leaving scope are applied.
func (e *Engine) scopeSettled(ctx context.Context, run Run, w WorkItem, unconfirmed bool) error {
	run, err := e.advanceScope(ctx, w, func(r *Run) error {
		r.Mode, r.FullFrom, r.ScopeDone = ModeFull, r.Restarts, true
		if unconfirmed {
			r.ScopeUnconfirmed, r.ScopeLink = true, ""
		}
		return nil
	})
	if err != nil {
		return err
	}
	lb := e.newLog(run, nil)
	lb.add(LogEvent{Event: EvScope, Message: "the members of the selected groups are read; every user is read next, so that users entering and leaving scope are applied"})
	e.flushLog(ctx, run, lb)
	first, err := e.firstUserPage(ctx, run, w)
	if err != nil {
		return err
	}
	return e.send(ctx, first, zeroTime)
}

// scopePagesPartition holds a run's records of members pages.
func scopePagesPartition(runID string) string { return runID + "|scope" }

// recordScopePage records what a members page held, once per position
// (round, read, group, page): a digest of its content, and the sum and
// count of its members' digests, by which the two reads are compared.
// moved is true when the position was recorded with other content: the
// page was fetched again (a redelivery) and the members changed meanwhile.
func (e *Engine) recordScopePage(ctx context.Context, run Run, w WorkItem, page MemberPage) (moved bool, err error) {
	var sum uint64
	for _, id := range page.UserIDs {
		sum += memberDigest("u|" + id)
	}
	for _, id := range page.GroupIDs {
		sum += memberDigest("g|" + id)
	}
	content := shortHash(fmt.Sprintf("%s|%s|%t", strings.Join(page.UserIDs, ","), strings.Join(page.GroupIDs, ","), page.NextLink != ""))
	pk := scopePagesPartition(run.ID)
	rk := fmt.Sprintf("%d-%d-%04d-%06d", run.ScopeRound, w.Bucket, w.Seq, w.Page)
	props := map[string]any{"group": w.Seq, "sum": fmt.Sprintf("%016x", sum), "n": int64(len(page.UserIDs) + len(page.GroupIDs)), "content": content}
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: pk, RowKey: rk, Props: props})
	if err == nil {
		return false, nil
	}
	if !IsCode(err, ECONFLICT) {
		return false, fmt.Errorf("record members page %s: %w", rk, err)
	}
	ent, err := e.Store.Get(ctx, TablePages, pk, rk)
	if err != nil {
		return false, fmt.Errorf("record members page %s: %w", rk, err)
	}
	return ent.Str("content") != content, nil
}

// memberDigest is a member's share of a read's sum.
func memberDigest(member string) uint64 {
	d := sha256.Sum256([]byte(member))
	return binary.BigEndian.Uint64(d[:8])
}

// scopeReadsAgree reports whether the two reads of the run's current round
// found the same members in every selected group.
func (e *Engine) scopeReadsAgree(ctx context.Context, run Run) (bool, error) {
	type tally struct {
		sum uint64
		n   int64
	}
	reads := [2]map[int64]tally{{}, {}}
	err := e.scanPrefix(ctx, TablePages, scopePagesPartition(run.ID), fmt.Sprintf("%d-", run.ScopeRound), func(ent Entity) {
		pass := strings.SplitN(ent.RowKey, "-", 3)[1]
		if pass != "0" && pass != fmt.Sprint(scopeCheckPass) {
			return
		}
		read := reads[0]
		if pass != "0" {
			read = reads[1]
		}
		var sum uint64
		fmt.Sscanf(ent.Str("sum"), "%x", &sum)
		t := read[ent.Int("group")]
		t.sum += sum
		t.n += ent.Int("n")
		read[ent.Int("group")] = t
	})
	if err != nil {
		return false, fmt.Errorf("compare the reads of the selected groups' members: %w", err)
	}
	return maps.Equal(reads[0], reads[1]), nil
}

// currentScopeRound reports whether a scope item belongs to the run's
// current groups round (its Cursor: "" for the first). An item of an
// earlier round is superseded, like an item of an earlier epoch: were it
// to finish its chain, the users would be read against scope rows the
// current round has not written yet.
// advanceScope is advance for scope items: the change applies only while
// the item's round is the run's (the check is inside the conditional
// write, so a round restarted meanwhile wins).
func (e *Engine) advanceScope(ctx context.Context, w WorkItem, change func(*Run) error) (Run, error) {
	return e.advance(ctx, w, func(r *Run) error {
		if !currentScopeRound(*r, w) || r.ScopeDone {
			return errSuperseded
		}
		return change(r)
	})
}

// resendFirstUserPage is what a scope item of the last round does when it
// comes again after the scope steps ended (a redelivery): it changes
// nothing (a new round would let the users pages read a generation still
// being written), and sends the first users page again in case the item
// that ended the steps stopped before sending it (the queue drops the
// duplicate, and a page applied already is not applied again).
func (e *Engine) resendFirstUserPage(ctx context.Context, run Run, w WorkItem) error {
	first, err := e.firstUserPage(ctx, run, w)
	if err != nil {
		return err
	}
	return e.send(ctx, first, zeroTime)
}

func currentScopeRound(run Run, w WorkItem) bool {
	round := "0"
	if w.Cursor != "" {
		round = w.Cursor
	}
	return round == fmt.Sprint(run.ScopeRound)
}

// firstUserPage is the first users page after the scope steps: from the
// saved delta link in a delta run, a fresh enumeration otherwise.
func (e *Engine) firstUserPage(ctx context.Context, run Run, w WorkItem) (WorkItem, error) {
	first := w.next(WorkPage)
	if run.Mode == ModeDelta {
		delta, err := e.deltaState(ctx)
		if err != nil {
			return first, err
		}
		first.Link = delta.Link
	}
	return first, nil
}

// writeScopeRows records users as members of groupID in generation gen.
func (e *Engine) writeScopeRows(ctx context.Context, gen int64, groupID string, userIDs []string) error {
	return e.parallel(ctx, len(userIDs), func(i int) error {
		uid := userIDs[i]
		if !validObjectID(uid) {
			return nil
		}
		_, err := e.modify(ctx, TableMembers, scopeRowPK(uid), uid, func(ent *Entity, exists bool) error {
			cur := ent.Int("gen")
			groups := splitList(ent.Str("groups"))
			switch {
			case exists && cur > gen:
				return errSkipWrite // a newer run rebuilt the scope
			case exists && cur == gen && slices.Contains(groups, groupID):
				return errSkipWrite
			case exists && cur == gen:
				groups = append(groups, groupID)
				sort.Strings(groups)
			default:
				groups = []string{groupID}
			}
			ent.Props = map[string]any{"gen": gen, "groups": strings.Join(groups, ",")}
			return nil
		})
		if err != nil {
			return fmt.Errorf("record scope of %s: %w", uid, err)
		}
		return nil
	})
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// readScope returns, for each id, the selected groups containing it in
// generation gen (nil when none).
func (e *Engine) readScope(ctx context.Context, gen int64, ids []string) (map[string][]string, error) {
	out := make(map[string][]string, len(ids))
	var mu sync.Mutex
	err := e.parallel(ctx, len(ids), func(i int) error {
		ent, err := e.Store.Get(ctx, TableMembers, scopeRowPK(ids[i]), ids[i])
		if IsCode(err, ENOTFOUND) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read scope of %s: %w", ids[i], err)
		}
		if ent.Int("gen") == gen {
			mu.Lock()
			out[ids[i]] = splitList(ent.Str("groups"))
			mu.Unlock()
		}
		return nil
	})
	return out, err
}

// parallel runs f(0..n-1) with the engine's concurrency and returns the
// first error.
func (e *Engine) parallel(ctx context.Context, n int, f func(i int) error) error {
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, e.concurrency())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// pruneMirrored removes the mirrored groups no longer mirrored (mirroring
// turned off, or the group taken out of groupScope) once a run has
// evaluated every user without them (the settings change made it full).
func (e *Engine) pruneMirrored(ctx context.Context, s Settings) error {
	var stale []string
	err := e.scanPartition(ctx, TableGroups, string(GroupMirrored), func(ent Entity) {
		if !s.MirrorGroups || !slices.Contains(s.GroupScope, ent.RowKey) {
			stale = append(stale, ent.RowKey)
		}
	})
	if err != nil {
		return fmt.Errorf("read mirrored groups: %w", err)
	}
	for _, id := range stale {
		if err := e.Store.Delete(ctx, TableGroups, string(GroupMirrored), id, ""); err != nil {
			return fmt.Errorf("remove mirrored group %s: %w", id, err)
		}
	}
	return nil
}
