package dirsynctest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Groups in the in-memory Graph, with Graph's semantics (see the Microsoft
// Graph docs "Get incremental changes for groups" and "group: delta"):
//
//   - A group has a displayName and direct members, each a user or a group.
//     Removing a user (Source.Remove) takes it out of every group, as Entra
//     does; restoring a soft-deleted user (Put after RemovedChanged) puts it
//     back into the groups that still exist. Deleting a group takes it out of
//     the groups it was nested in.
//   - GroupsDelta: the first round lists every requested group with all its
//     direct members as added; a round from a delta link taken at version v
//     lists exactly the groups whose state differs from v: a new group with
//     all members, a deleted one as Removed "deleted", a renamed one with its
//     new displayName, and the members whose membership differs from v (a
//     member added and removed again in between is not reported). A round is
//     fixed when it starts, at the version it starts at; what changes during
//     the round comes in the next one.
//   - A group with more than GroupMembersPerPage member changes is split over
//     several consecutive entries with the same ID and DisplayName, each with
//     a share of the members, as Graph splits a large group's members@delta
//     over pages: callers merge them.
//
// Every method is deterministic: no map order reaches a result.

// DefaultGroupPageSize, DefaultGroupMembersPerPage and DefaultMemberPageSize
// are the fake's paging when the Source fields are zero: small, so tests
// exercise paging and the merging of a group split over entries.
const (
	DefaultGroupPageSize       = 3
	DefaultGroupMembersPerPage = 5
	DefaultMemberPageSize      = 50
)

// fakeGroup is an existing group.
type fakeGroup struct {
	name    string
	members map[string]bool // member id -> is a group
}

type groupEventKind uint8

const (
	evCreated groupEventKind = iota
	evRenamed
	evDeleted
	evMember // a member added or removed
)

// groupEvent is one change to a group at a version.
type groupEvent struct {
	ver     int
	group   string
	kind    groupEventKind
	member  string
	isGroup bool   // the member is a group
	added   bool   // evMember: added (else removed)
	oldName string // evRenamed: the name before
}

// groupRound is a groups delta round, fixed at its start.
type groupRound struct {
	at     int
	filter []string // sorted; empty: every group
	items  []dirsync.SourceGroup
}

// memberRef is one entry of a group's members@delta.
type memberRef struct {
	id      string
	isGroup bool
	removed bool
}

func (s *Source) groupState() {
	if s.groups == nil {
		s.groups = map[string]*fakeGroup{}
		s.deletedGroups = map[string]bool{}
		s.removedFrom = map[string][]string{}
	}
}

// PutGroup creates a group or renames it. It reports whether anything
// changed: renaming to the same name changes nothing, and the id of a deleted
// group is never used again (Entra does not reuse object ids), so PutGroup
// refuses it.
func (s *Source) PutGroup(id, displayName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	if s.deletedGroups[id] || id == "" {
		return false
	}
	if _, isUser := s.users[id]; isUser {
		return false
	}
	if g, ok := s.groups[id]; ok {
		if g.name == displayName {
			return false
		}
		s.ver++
		s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: id, kind: evRenamed, oldName: g.name})
		g.name = displayName
		return true
	}
	s.ver++
	s.groups[id] = &fakeGroup{name: displayName, members: map[string]bool{}}
	s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: id, kind: evCreated})
	return true
}

// DeleteGroup deletes a group for good; it also leaves the groups it was a
// member of. It reports whether the group existed.
func (s *Source) DeleteGroup(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	if _, ok := s.groups[id]; !ok {
		return false
	}
	s.ver++
	for _, pid := range s.sortedGroupIDs() {
		if p := s.groups[pid]; pid != id && p.members[id] {
			delete(p.members, id)
			s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: pid, kind: evMember, member: id, isGroup: true})
		}
	}
	delete(s.groups, id)
	s.deletedGroups[id] = true
	s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: id, kind: evDeleted})
	return true
}

// AddGroupMember adds a present user or an existing group to a group. It
// reports whether anything changed: nothing does when the group does not
// exist, the member is neither a present user nor an existing group, is the
// group itself, or is a member already.
func (s *Source) AddGroupMember(groupID, memberID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	g, ok := s.groups[groupID]
	if !ok || memberID == groupID {
		return false
	}
	if _, in := g.members[memberID]; in {
		return false
	}
	_, isGroup := s.groups[memberID]
	if _, isUser := s.users[memberID]; !isUser && !isGroup {
		return false
	}
	s.ver++
	g.members[memberID] = isGroup
	s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: groupID, kind: evMember, member: memberID, isGroup: isGroup, added: true})
	return true
}

// RemoveGroupMember takes a user or a group out of a group; it reports
// whether it was a member.
func (s *Source) RemoveGroupMember(groupID, memberID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	g, ok := s.groups[groupID]
	if !ok {
		return false
	}
	isGroup, in := g.members[memberID]
	if !in {
		return false
	}
	s.ver++
	delete(g.members, memberID)
	s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: groupID, kind: evMember, member: memberID, isGroup: isGroup})
	return true
}

// userRemoved takes a removed user out of its groups at the current version;
// a soft-deleted one remembers them for a restore. Caller holds s.mu and has
// bumped s.ver.
func (s *Source) userRemoved(id, reason string) {
	s.groupState()
	var from []string
	for _, gid := range s.sortedGroupIDs() {
		g := s.groups[gid]
		if isGroup, in := g.members[id]; in && !isGroup {
			delete(g.members, id)
			s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: gid, kind: evMember, member: id})
			from = append(from, gid)
		}
	}
	if reason == dirsync.RemovedChanged {
		s.removedFrom[id] = from
	} else {
		delete(s.removedFrom, id)
	}
}

// userRestored puts a restored user back into the groups a soft delete took
// it out of, those that still exist. Caller holds s.mu and has bumped s.ver.
func (s *Source) userRestored(id string) {
	s.groupState()
	for _, gid := range s.removedFrom[id] {
		if g, ok := s.groups[gid]; ok {
			if _, in := g.members[id]; !in {
				g.members[id] = false
				s.groupLog = append(s.groupLog, groupEvent{ver: s.ver, group: gid, kind: evMember, member: id, added: true})
			}
		}
	}
	delete(s.removedFrom, id)
}

// Groups returns the existing groups' display names by id (ground truth).
func (s *Source) Groups() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for id, g := range s.groups {
		out[id] = g.name
	}
	return out
}

// GroupMembers returns a group's direct members, users and groups, each
// sorted (nil, nil for a missing group).
func (s *Source) GroupMembers(groupID string) (users, groups []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupID]
	if !ok {
		return nil, nil
	}
	for _, m := range sortedKeys(g.members) {
		if g.members[m] {
			groups = append(groups, m)
		} else {
			users = append(users, m)
		}
	}
	return users, groups
}

// TransitiveUserMembers returns the present users that are members of a
// group directly or through nested groups at any depth: sorted, each once,
// cycles harmless. nil for a missing group.
func (s *Source) TransitiveUserMembers(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	users, _ := s.transitive(groupID)
	return users
}

// transitive expands a group: the present users and the existing nested
// groups (the group itself excluded), each sorted. Caller holds s.mu.
func (s *Source) transitive(groupID string) (users, groups []string) {
	if _, ok := s.groups[groupID]; !ok {
		return nil, nil
	}
	seenU := map[string]bool{}
	seenG := map[string]bool{groupID: true}
	queue := []string{groupID}
	for len(queue) > 0 {
		g := s.groups[queue[0]]
		queue = queue[1:]
		for _, m := range sortedKeys(g.members) {
			if g.members[m] {
				if _, exists := s.groups[m]; exists && !seenG[m] {
					seenG[m] = true
					groups = append(groups, m)
					queue = append(queue, m)
				}
				continue
			}
			if _, present := s.users[m]; present && !seenU[m] {
				seenU[m] = true
				users = append(users, m)
			}
		}
	}
	slices.Sort(users)
	slices.Sort(groups)
	return users, groups
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (s *Source) sortedGroupIDs() []string { return sortedKeys(s.groups) }

// groupErr pops the next injected group error, if any. Caller holds s.mu.
func (s *Source) groupErr() error {
	s.GroupCalls++
	if len(s.GroupErrs) == 0 {
		return nil
	}
	err := s.GroupErrs[0]
	s.GroupErrs = s.GroupErrs[1:]
	return err
}

// GroupsDelta serves one page of a groups delta round. Links:
// "groups|<round>|<offset>|<generation>" within a round and
// "groupsdelta|<round>|<generation>" at its end; Expire invalidates both
// (ETOKENEXPIRED). req.GroupIDs counts only without a link (a link carries
// its round's filter, as Graph's do). Exactly one of NextLink and DeltaLink
// is set. Errors:
// GroupErrs first, ETOKENEXPIRED for an expired link, EINVALID for a link
// that is not a groups link.
func (s *Source) GroupsDelta(ctx context.Context, req dirsync.GroupDeltaRequest) (dirsync.GroupPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	if err := s.groupErr(); err != nil {
		return dirsync.GroupPage{}, err
	}
	parts := strings.Split(req.Link, "|")
	atoi := func(i int) int {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return -1
		}
		return n
	}
	var round, offset int
	switch {
	case req.Link == "":
		round = s.startGroupRound(-1, normFilter(req.GroupIDs))
	case parts[0] == "groupsdelta" && len(parts) == 3, parts[0] == "groups" && len(parts) == 4:
		if atoi(len(parts)-1) < s.gen {
			return dirsync.GroupPage{}, &dirsync.Error{Code: dirsync.ETOKENEXPIRED, Message: "the groups delta token has expired"}
		}
		r := atoi(1)
		if r < 0 || r >= len(s.groupRounds) {
			return dirsync.GroupPage{}, dirsync.Errorf(dirsync.EINVALID, "bad groups link %q", req.Link)
		}
		if parts[0] == "groupsdelta" {
			prev := s.groupRounds[r]
			round = s.startGroupRound(prev.at, prev.filter)
		} else {
			round, offset = r, atoi(2)
		}
	default:
		return dirsync.GroupPage{}, dirsync.Errorf(dirsync.EINVALID, "bad groups link %q", req.Link)
	}
	items := s.groupRounds[round].items
	size := s.GroupPageSize
	if size <= 0 {
		size = DefaultGroupPageSize
	}
	offset = min(max(offset, 0), len(items))
	end := min(offset+size, len(items))
	var page dirsync.GroupPage
	for _, g := range items[offset:end] {
		page.Groups = append(page.Groups, cloneSourceGroup(g))
	}
	if end < len(items) {
		page.NextLink = fmt.Sprintf("groups|%d|%d|%d", round, end, s.gen)
	} else {
		page.DeltaLink = fmt.Sprintf("groupsdelta|%d|%d", round, s.gen)
	}
	return page, nil
}

func normFilter(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func cloneSourceGroup(g dirsync.SourceGroup) dirsync.SourceGroup {
	g.MembersAdded = slices.Clone(g.MembersAdded)
	g.MembersRemoved = slices.Clone(g.MembersRemoved)
	g.GroupsAdded = slices.Clone(g.GroupsAdded)
	g.GroupsRemoved = slices.Clone(g.GroupsRemoved)
	return g
}

// startGroupRound fixes a round of the changes after version since (-1: a
// first round) for the groups in filter, and returns its number. Caller
// holds s.mu.
func (s *Source) startGroupRound(since int, filter []string) int {
	wanted := func(id string) bool {
		_, ok := slices.BinarySearch(filter, id)
		return len(filter) == 0 || ok
	}
	var items []dirsync.SourceGroup
	if since < 0 {
		for _, id := range s.sortedGroupIDs() {
			if wanted(id) {
				items = append(items, s.groupEntries(id, s.allMembers(id))...)
			}
		}
	} else {
		// The groups with events after since, in id order, each judged
		// by its state at since against its state now.
		byGroup := map[string][]groupEvent{}
		for _, e := range s.groupLog {
			if e.ver > since && wanted(e.group) {
				byGroup[e.group] = append(byGroup[e.group], e)
			}
		}
		for _, id := range sortedKeys(byGroup) {
			items = append(items, s.changedGroup(id, byGroup[id])...)
		}
	}
	s.groupRounds = append(s.groupRounds, groupRound{at: s.ver, filter: filter, items: items})
	return len(s.groupRounds) - 1
}

// allMembers lists a group's direct members as added, in id order.
func (s *Source) allMembers(id string) []memberRef {
	g := s.groups[id]
	var out []memberRef
	for _, m := range sortedKeys(g.members) {
		out = append(out, memberRef{id: m, isGroup: g.members[m]})
	}
	return out
}

// changedGroup reports one group from its events since a delta link, oldest
// first: what differs between its state then and now.
func (s *Source) changedGroup(id string, events []groupEvent) []dirsync.SourceGroup {
	existedThen := events[0].kind != evCreated
	g, existsNow := s.groups[id]
	switch {
	case !existedThen && !existsNow:
		return nil // born and gone in between: nothing to tell
	case !existsNow:
		return []dirsync.SourceGroup{{ID: id, Removed: dirsync.RemovedDeleted}}
	case !existedThen:
		return s.groupEntries(id, s.allMembers(id))
	}
	nameThen := g.name
	for _, e := range events {
		if e.kind == evRenamed {
			nameThen = e.oldName
			break
		}
	}
	// A member's first event says whether it was a member then: an add
	// means it was not, a removal that it was.
	first := map[string]groupEvent{}
	for _, e := range events {
		if _, seen := first[e.member]; e.kind == evMember && !seen {
			first[e.member] = e
		}
	}
	var refs []memberRef
	for _, m := range sortedKeys(first) {
		e := first[m]
		wasMember := !e.added
		_, isMember := g.members[m]
		if wasMember != isMember {
			refs = append(refs, memberRef{id: m, isGroup: e.isGroup, removed: !isMember})
		}
	}
	if len(refs) == 0 && nameThen == g.name {
		return nil // changed and changed back
	}
	return s.groupEntries(id, refs)
}

// groupEntries renders a group with its member changes, split into entries
// of at most GroupMembersPerPage members, as Graph splits a large group.
func (s *Source) groupEntries(id string, refs []memberRef) []dirsync.SourceGroup {
	per := s.GroupMembersPerPage
	if per <= 0 {
		per = DefaultGroupMembersPerPage
	}
	name := s.groups[id].name
	var out []dirsync.SourceGroup
	for start := 0; start == 0 || start < len(refs); start += per {
		g := dirsync.SourceGroup{ID: id, DisplayName: name}
		for _, r := range refs[start:min(start+per, len(refs))] {
			switch {
			case r.isGroup && r.removed:
				g.GroupsRemoved = append(g.GroupsRemoved, r.id)
			case r.isGroup:
				g.GroupsAdded = append(g.GroupsAdded, r.id)
			case r.removed:
				g.MembersRemoved = append(g.MembersRemoved, r.id)
			default:
				g.MembersAdded = append(g.MembersAdded, r.id)
			}
		}
		out = append(out, g)
		if len(refs) == 0 {
			break
		}
	}
	return out
}

// GroupTransitiveMembers serves one page of a group's transitive members:
// present users in UserIDs, nested groups at any depth in GroupIDs, in id
// order, MemberPageSize members a page. Links are "members|<group>|<last
// id>", read against the tenant as it is then (not fixed at the first page,
// like Graph's skip tokens for lists). Errors: GroupErrs first, ENOTFOUND for
// a missing or deleted group, EINVALID for a link of another group.
func (s *Source) GroupTransitiveMembers(ctx context.Context, groupID, link string) (dirsync.MemberPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	if err := s.groupErr(); err != nil {
		return dirsync.MemberPage{}, err
	}
	cursor := ""
	if link != "" {
		parts := strings.SplitN(link, "|", 3)
		if len(parts) != 3 || parts[0] != "members" || parts[1] != groupID {
			return dirsync.MemberPage{}, dirsync.Errorf(dirsync.EINVALID, "bad members link %q for group %s", link, groupID)
		}
		cursor = parts[2]
	}
	if _, ok := s.groups[groupID]; !ok {
		return dirsync.MemberPage{}, dirsync.Errorf(dirsync.ENOTFOUND, "group %s was not found in Entra ID", groupID)
	}
	users, groups := s.transitive(groupID)
	isGroup := map[string]bool{}
	for _, g := range groups {
		isGroup[g] = true
	}
	all := slices.Concat(users, groups)
	slices.Sort(all)
	size := s.MemberPageSize
	if size <= 0 {
		size = DefaultMemberPageSize
	}
	i, _ := slices.BinarySearch(all, cursor)
	if i < len(all) && all[i] == cursor && cursor != "" {
		i++
	}
	end := min(i+size, len(all))
	var page dirsync.MemberPage
	for _, id := range all[i:end] {
		if isGroup[id] {
			page.GroupIDs = append(page.GroupIDs, id)
		} else {
			page.UserIDs = append(page.UserIDs, id)
		}
	}
	if end < len(all) {
		page.NextLink = "members|" + groupID + "|" + all[end-1]
	}
	return page, nil
}

// Group returns a group's id and displayName. Errors: GroupErrs first,
// ENOTFOUND for a missing or deleted group.
func (s *Source) Group(ctx context.Context, id string) (dirsync.SourceGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groupState()
	if err := s.groupErr(); err != nil {
		return dirsync.SourceGroup{}, err
	}
	g, ok := s.groups[id]
	if !ok {
		return dirsync.SourceGroup{}, dirsync.Errorf(dirsync.ENOTFOUND, "group %s was not found in Entra ID", id)
	}
	return dirsync.SourceGroup{ID: id, DisplayName: g.name}, nil
}
