package graphsim

import (
	"net/http"
	"slices"
	"sort"
	"strings"
)

// renderGroup builds a group object with the selected properties, without
// members. Caller holds t.mu.
func (t *Tenant) renderGroup(g *groupRec, sel []string) ordered {
	o := make(ordered, 0, len(sel))
	for _, p := range sel {
		switch p {
		case "id":
			o = append(o, kv{"id", g.id})
		case "displayName":
			o = append(o, kv{"displayName", g.displayName})
		case "description":
			if g.description != "" {
				o = append(o, kv{"description", g.description})
			}
		case "mailEnabled":
			o = append(o, kv{"mailEnabled", false})
		case "securityEnabled":
			o = append(o, kv{"securityEnabled", true})
		case "groupTypes":
			o = append(o, kv{"groupTypes", []string{}})
		case "mailNickname":
			o = append(o, kv{"mailNickname", nickname(g.displayName)})
		case "createdDateTime":
			o = append(o, kv{"createdDateTime", g.created})
		}
	}
	return o
}

func nickname(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

type memberRef struct {
	id      string
	removed bool
}

// memberEntry is one entry of members@delta.
func (t *Tenant) memberEntry(m memberRef) ordered {
	typ := "#microsoft.graph.user"
	if _, isGroup := t.groups[m.id]; isGroup {
		typ = "#microsoft.graph.group"
	}
	o := ordered{{"@odata.type", typ}, {"id", m.id}}
	if m.removed {
		o = append(o, kv{"@removed", ordered{{"reason", "deleted"}}})
	}
	return o
}

// groupItem is one group a groups delta round reports, with the members to
// spread over members@delta.
type groupItem struct {
	g       *groupRec
	deleted bool
	members []memberRef
}

// handleGroupsDelta serves GET /v1.0/groups/delta.
func (s *Server) handleGroupsDelta(w http.ResponseWriter, r *http.Request, c *call) {
	if e, ok := queryParam(r.URL.Query(), "expand"); ok && !strings.EqualFold(strings.TrimSpace(e), "members") {
		writeBadRequest(w, c, badf("$expand on groups delta supports only 'members'."))
		return
	}
	s.serveDelta(w, r, c, &groupsFeed)
}

// groupDeltaPage fills a page of a groups delta round.
func (t *Tenant) groupDeltaPage(st stateToken, size int, _ Quirks) (items []ordered, next stateToken, more bool) {
	t.mu.Lock() // member lists are sorted into a cache
	var list []groupItem
	start, off := 0, st.Off
	if st.Phase == phaseEnumerate {
		list = t.groupSnapshot(st)
		start = sort.Search(len(list), func(i int) bool { return list[i].g.id >= st.Cursor })
		if start < len(list) && list[start].g.id != st.Cursor {
			off = 0
		}
	} else {
		list = t.groupChanges(st)
		start = st.Pos
	}
	items, gi, off, more := t.groupItems(list, start, off, size, st)
	t.mu.Unlock()

	next = st
	next.Page++
	next.Off = off
	if st.Phase == phaseEnumerate {
		if gi < len(list) {
			next.Cursor = list[gi].g.id
		}
	} else {
		next.Pos = gi
	}
	return items, next, more
}

// groupItems fills a page from list, starting with group start at member
// offset off. A group whose members do not fit in one members@delta chunk
// ends the page and is repeated on the next one with the following chunk.
func (t *Tenant) groupItems(list []groupItem, start, off, size int, st stateToken) (items []ordered, gi, nextOff int, more bool) {
	withMembers := slices.Contains(st.Select, "members")
	per := t.cfg.GroupMembersPerPage
	for gi = start; gi < len(list); {
		if len(items) == size {
			return items, gi, off, true
		}
		it := list[gi]
		if it.deleted {
			items = append(items, removedObject(it.g.id, "deleted"))
			gi, off = gi+1, 0
			continue
		}
		obj := t.renderGroup(it.g, st.Select)
		if !withMembers || len(it.members) == 0 || off >= len(it.members) {
			items = append(items, obj)
			gi, off = gi+1, 0
			continue
		}
		end := min(off+per, len(it.members))
		chunk := make([]ordered, 0, end-off)
		for _, m := range it.members[off:end] {
			chunk = append(chunk, t.memberEntry(m))
		}
		items = append(items, append(obj, kv{"members@delta", chunk}))
		if end < len(it.members) {
			return items, gi, end, true
		}
		gi, off = gi+1, 0
	}
	return items, gi, 0, false
}

// groupSnapshot lists the live groups of a first round with their current
// members (all reported as added). Caller holds t.mu for writing.
func (t *Tenant) groupSnapshot(st stateToken) []groupItem {
	withMembers := slices.Contains(st.Select, "members")
	var list []groupItem
	for _, g := range t.groupOrder {
		if g.deleted {
			continue
		}
		if len(st.Filter) > 0 {
			if _, ok := slices.BinarySearch(st.Filter, g.id); !ok {
				continue
			}
		}
		it := groupItem{g: g}
		if withMembers {
			it.members = asAdded(g.sortedMembers())
		}
		list = append(list, it)
	}
	return list
}

func asAdded(ids []string) []memberRef {
	out := make([]memberRef, len(ids))
	for i, id := range ids {
		out[i] = memberRef{id: id}
	}
	return out
}

// groupChanges lists the groups changed in (Base, End] in the order they
// first changed: created groups with all their members, deleted groups as
// removed, and for the others the members added or removed (current state of
// each touched membership). Caller holds t.mu for writing.
func (t *Tenant) groupChanges(st stateToken) []groupItem {
	withMembers := slices.Contains(st.Select, "members")
	renamedMatters := slices.Contains(st.Select, "displayName")
	type change struct {
		g                         *groupRec
		created, deleted, renamed bool
		touched                   []string
		seen                      map[string]bool
	}
	var order []*change
	byGroup := map[*groupRec]*change{}
	start := sort.Search(len(t.groupLog), func(i int) bool { return t.groupLog[i].version > st.Base })
	for i := start; i < len(t.groupLog) && t.groupLog[i].version <= st.End; i++ {
		e := t.groupLog[i]
		if len(st.Filter) > 0 {
			if _, ok := slices.BinarySearch(st.Filter, e.group.id); !ok {
				continue
			}
		}
		ch := byGroup[e.group]
		if ch == nil {
			ch = &change{g: e.group, seen: map[string]bool{}}
			byGroup[e.group] = ch
			order = append(order, ch)
		}
		switch e.kind {
		case groupCreated:
			ch.created = true
		case groupDeleted:
			ch.deleted = true
		case groupUpdated:
			ch.renamed = true
		case groupMember:
			if !ch.seen[e.member] {
				ch.seen[e.member] = true
				ch.touched = append(ch.touched, e.member)
			}
		}
	}
	var list []groupItem
	for _, ch := range order {
		switch {
		case ch.deleted:
			if ch.created {
				continue // born and gone within the window: nothing to tell
			}
			list = append(list, groupItem{g: ch.g, deleted: true})
		case ch.created:
			it := groupItem{g: ch.g}
			if withMembers {
				it.members = asAdded(ch.g.sortedMembers())
			}
			list = append(list, it)
		case ch.renamed && renamedMatters, len(ch.touched) > 0 && withMembers:
			it := groupItem{g: ch.g}
			if withMembers {
				for _, m := range ch.touched {
					_, in := ch.g.members[m]
					it.members = append(it.members, memberRef{id: m, removed: !in})
				}
			}
			list = append(list, it)
		}
	}
	return list
}
