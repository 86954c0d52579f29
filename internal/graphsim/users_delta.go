package graphsim

import (
	"net/http"
	"slices"
	"sort"
	"strings"
)

// renderUser builds a user object with the selected properties. A property
// the user does not have is omitted; in a later round (changes), a property
// removed by UpdateUser is sent as null when Config.NullForClearedProperties
// is set. "manager" becomes manager@delta when delta is true. Caller holds
// t.mu.
func (t *Tenant) renderUser(rec *userRec, sel []string, delta, changes bool) ordered {
	attrs := t.attrsOf(rec)
	o := make(ordered, 0, len(sel)+1)
	var manager bool
	for _, p := range sel {
		switch p {
		case "id":
			o = append(o, kv{"id", rec.id})
			continue
		case "manager":
			manager = true
			continue
		}
		if v, ok := attrs[p]; ok {
			o = append(o, kv{p, v})
		} else if changes && t.cfg.NullForClearedProperties {
			if _, was := rec.cleared[p]; was {
				o = append(o, kv{p, nil})
			}
		}
	}
	if manager && delta {
		if m, ok := attrs["manager"].(string); ok && m != "" {
			o = append(o, kv{"manager@delta", []ordered{{{"@odata.type", "#microsoft.graph.user"}, {"id", m}}}})
		} else if old, was := rec.cleared["manager"].(string); changes && was && old != "" {
			o = append(o, kv{"manager@delta", []ordered{{
				{"@odata.type", "#microsoft.graph.user"}, {"id", old}, {"@removed", ordered{{"reason", "deleted"}}},
			}}})
		}
	}
	return o
}

func removedObject(id, reason string) ordered {
	return ordered{{"id", id}, {"@removed", ordered{{"reason", reason}}}}
}

// handleUsersDelta serves GET /v1.0/users/delta (also delta() and
// microsoft.graph.delta()).
func (s *Server) handleUsersDelta(w http.ResponseWriter, r *http.Request, c *call) {
	t := s.tenant
	q := r.URL.Query()
	skip, _ := queryParam(q, "skiptoken")
	delta, _ := queryParam(q, "deltatoken")
	rawSel, hasSel := queryParam(q, "select")
	rawFilter, hasFilter := queryParam(q, "filter")

	var st stateToken
	switch {
	case skip != "":
		var ok bool
		if st, ok = s.readToken(w, r, c, skip, tokUsersDelta, true); !ok {
			return
		}
		if st.Delta {
			writeBadRequest(w, c, badf("A deltatoken was passed as $skiptoken. Use the @odata.nextLink and @odata.deltaLink URLs as they are."))
			return
		}
	case delta != "" && !strings.EqualFold(delta, "latest"):
		prev, ok := s.readToken(w, r, c, delta, tokUsersDelta, true)
		if !ok {
			return
		}
		if !prev.Delta {
			writeBadRequest(w, c, badf("A skiptoken was passed as $deltatoken. Use the @odata.nextLink and @odata.deltaLink URLs as they are."))
			return
		}
		t.mu.RLock()
		st = stateToken{
			Kind: tokUsersDelta, Phase: phaseChanges, Base: prev.Base, End: t.version,
			Select: prev.Select, NoSelect: prev.NoSelect, Filter: prev.Filter, Size: preferredPageSize(r),
			Epoch: t.epoch,
		}
		st.Pos = sort.Search(len(t.userLog), func(i int) bool { return t.userLog[i].version > prev.Base })
		var err error
		if hasSel { // Graph lets a deltaLink change the tracked properties
			st.Select, err = t.userSelect(rawSel)
			st.NoSelect = false
		}
		t.mu.RUnlock()
		if err != nil {
			writeBadRequest(w, c, err)
			return
		}
	default: // a new round, or "sync from now" with $deltatoken=latest
		t.mu.RLock()
		st = stateToken{Kind: tokUsersDelta, Phase: phaseEnumerate, Base: t.version, Size: preferredPageSize(r), Epoch: t.epoch}
		var err error
		if hasSel {
			st.Select, err = t.userSelect(rawSel)
		} else {
			st.Select, st.NoSelect = defaultUserSelect, true
		}
		t.mu.RUnlock()
		if err == nil && hasFilter {
			st.Filter, err = parseIDFilter(rawFilter)
		}
		if err != nil {
			writeBadRequest(w, c, err)
			return
		}
		if strings.EqualFold(delta, "latest") {
			s.writeUserPage(w, r, st, nil, true)
			return
		}
	}
	s.serveUserPage(w, r, st)
}

// serveUserPage serves the page st points at.
func (s *Server) serveUserPage(w http.ResponseWriter, r *http.Request, st stateToken) {
	s.pageLatency(r)
	q := s.tenant.currentQuirks()
	if q.EmptyPageEvery > 0 && st.Page > 0 && st.Page%q.EmptyPageEvery == 0 && !st.Empty {
		next := st
		next.Empty = true
		s.writeUserPageLinks(w, r, st, nil, next, false)
		return
	}
	st.Empty = false
	repeat := q.RepeatEvery > 0 && st.Page > 0 && st.Page%q.RepeatEvery == 0
	size := s.pageSize(r, st.Size)

	t := s.tenant
	t.mu.RLock()
	var items []ordered
	next := st
	next.Page++
	var more bool
	if st.Phase == phaseEnumerate {
		items, next.Cursor, more = t.enumerateUsers(st, size, repeat)
	} else {
		items, next.Pos, next.Off, more = t.userChanges(st, size, repeat)
	}
	t.mu.RUnlock()
	s.writeUserPageLinks(w, r, st, items, next, !more)
}

func (s *Server) writeUserPage(w http.ResponseWriter, r *http.Request, st stateToken, items []ordered, last bool) {
	s.writeUserPageLinks(w, r, st, items, st, last)
}

// writeUserPageLinks writes a page: a nextLink carrying next, or, on the
// last page, a deltaLink from which the next round starts.
func (s *Server) writeUserPageLinks(w http.ResponseWriter, r *http.Request, st stateToken, items []ordered, next stateToken, last bool) {
	ctx := "users"
	if !st.NoSelect {
		ctx += contextSelect(st.Select)
	}
	page := ordered{{"@odata.context", s.contextURL(r, ctx)}}
	if last {
		base := st.Base
		if st.Phase == phaseChanges {
			base = st.End
		}
		dt := stateToken{Kind: tokUsersDelta, Delta: true, Base: base, Select: st.Select, NoSelect: st.NoSelect, Filter: st.Filter, Epoch: s.currentEpoch()}
		page = append(page, kv{"@odata.deltaLink", s.linkBase(r) + "?$deltatoken=" + s.issue(dt)})
	} else {
		page = append(page, kv{"@odata.nextLink", s.linkBase(r) + "?$skiptoken=" + s.issue(next)})
	}
	if items == nil {
		items = []ordered{}
	}
	page = append(page, kv{"value", items})
	if n := preferredPageSize(r); n > 0 {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+itoa(n))
	}
	writeJSON(w, http.StatusOK, graphContentType, page)
}

func (s *Server) currentEpoch() int {
	s.tenant.mu.RLock()
	defer s.tenant.mu.RUnlock()
	return s.tenant.epoch
}

// enumerateUsers serves a page of a first round: the current state of the
// users after st.Cursor in id order. Caller holds t.mu.
func (t *Tenant) enumerateUsers(st stateToken, size int, repeat bool) (items []ordered, cursor string, more bool) {
	cursor = st.Cursor
	after := func(id string) bool {
		if repeat {
			return id >= st.Cursor
		}
		return id > st.Cursor
	}
	emit := func(rec *userRec) bool {
		if len(items) == size {
			more = true
			return false
		}
		items = append(items, t.renderUser(rec, st.Select, true, false))
		cursor = rec.id
		return true
	}
	if len(st.Filter) > 0 {
		for _, id := range st.Filter {
			if !after(id) {
				continue
			}
			if rec, ok := t.users[id]; ok && rec.state == stateActive && !emit(rec) {
				break
			}
		}
		return items, cursor, more
	}
	i := sort.Search(len(t.order), func(i int) bool { return after(t.order[i].id) })
	for ; i < len(t.order); i++ {
		if rec := t.order[i]; rec.state == stateActive && !emit(rec) {
			break
		}
	}
	return items, cursor, more
}

// userChanges serves a page of a round started from a deltaLink: the users
// changed in (Base, End], each once, at its last change in the window, and
// only if a change touched a selected property (or created, deleted or
// restored it). Caller holds t.mu.
//
// pos is where the next page starts; lastPlus1 is one past the entry of the
// last user served (0 for none), from which RepeatEvery serves it again.
func (t *Tenant) userChanges(st stateToken, size int, repeat bool) (items []ordered, pos, lastPlus1 int, more bool) {
	pos, lastPlus1 = st.Pos, st.Off
	if repeat && st.Off > 0 {
		pos = st.Off - 1
	}
	for ; pos < len(t.userLog) && t.userLog[pos].version <= st.End; pos++ {
		e := t.userLog[pos]
		if !t.emitsAt(e.rec, pos, st) {
			continue
		}
		if len(items) == size {
			return items, pos, lastPlus1, true
		}
		items = append(items, t.renderChange(e.rec, st.Select))
		lastPlus1 = pos + 1
	}
	return items, pos, lastPlus1, false
}

func (t *Tenant) renderChange(rec *userRec, sel []string) ordered {
	switch rec.state {
	case stateHardDeleted:
		return removedObject(rec.id, "deleted")
	case stateSoftDeleted:
		return removedObject(rec.id, "changed")
	}
	return t.renderUser(rec, sel, true, true)
}

// emitsAt decides whether the log entry at pos is where rec is reported in
// the round st.
func (t *Tenant) emitsAt(rec *userRec, pos int, st stateToken) bool {
	if len(st.Filter) > 0 {
		if _, found := slices.BinarySearch(st.Filter, rec.id); !found {
			return false
		}
	}
	last := -1
	relevant := false
	for _, idx := range rec.logIdx {
		e := t.userLog[idx]
		if e.version > st.End {
			break
		}
		last = int(idx)
		if e.version <= st.Base || relevant {
			continue
		}
		if e.props == nil || st.NoSelect {
			relevant = true
			continue
		}
		for _, p := range e.props {
			if slices.Contains(st.Select, p) {
				relevant = true
				break
			}
		}
	}
	return last == pos && relevant
}
