package graphsim

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
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
		case "onPremisesExtensionAttributes":
			o = append(o, kv{p, extensionAttributes(attrs)})
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

// isExtensionAttribute tells the fields of onPremisesExtensionAttributes,
// extensionAttribute1..15: users carry them as flat attributes here (as the
// ground truth and the adapter's mapping name them), but Graph has no such
// top-level properties and serves them only inside
// onPremisesExtensionAttributes.
func isExtensionAttribute(name string) bool {
	n, ok := strings.CutPrefix(name, "extensionAttribute")
	if !ok || n == "" || n[0] == '0' {
		return false
	}
	i, err := strconv.Atoi(n)
	return err == nil && i >= 1 && i <= 15
}

// extensionAttributes renders onPremisesExtensionAttributes as Graph does:
// all fifteen fields, null for those not set.
func extensionAttributes(attrs map[string]any) ordered {
	o := make(ordered, 0, 15)
	for i := 1; i <= 15; i++ {
		k := "extensionAttribute" + strconv.Itoa(i)
		o = append(o, kv{k, attrs[k]})
	}
	return o
}

func removedObject(id, reason string) ordered {
	return ordered{{"id", id}, {"@removed", ordered{{"reason", reason}}}}
}

// handleUsersDelta serves GET /v1.0/users/delta (also delta() and
// microsoft.graph.delta()).
func (s *Server) handleUsersDelta(w http.ResponseWriter, r *http.Request, c *call) {
	s.serveDelta(w, r, c, &usersFeed)
}

// userDeltaPage fills a page of a users delta round; Quirks.RepeatEvery
// serves a page's first user again.
func (t *Tenant) userDeltaPage(st stateToken, size int, q Quirks) (items []ordered, next stateToken, more bool) {
	repeat := q.RepeatEvery > 0 && st.Page > 0 && st.Page%q.RepeatEvery == 0
	t.mu.RLock()
	defer t.mu.RUnlock()
	next = st
	next.Page++
	if st.Phase == phaseEnumerate {
		items, next.Cursor, more = t.enumerateUsers(st, size, repeat)
	} else {
		items, next.Pos, next.Off, more = t.userChanges(st, size, repeat)
	}
	return items, next, more
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
			if slices.Contains(st.Select, p) || isExtensionAttribute(p) && slices.Contains(st.Select, "onPremisesExtensionAttributes") {
				relevant = true
				break
			}
		}
	}
	return last == pos && relevant
}
