package graphsim

import (
	"net/http"
	"sort"
	"strings"
)

// deltaFeed is what differs between the users and the groups delta
// functions. Reading $skiptoken, $deltatoken, $select and $filter, the
// extra empty pages of Quirks.EmptyPageEvery and the shape of a page are the
// same for both.
type deltaFeed struct {
	kind          string   // token kind
	entitySet     string   // "users" or "groups", as @odata.context names it
	defaultSelect []string // the properties of a round without $select
	// parseSelect resolves a $select list. Caller holds t.mu for reading.
	parseSelect func(t *Tenant, raw string) ([]string, error)
	// changesFrom is the position a round started from a deltaLink with base
	// version base begins at (nil: 0). Caller holds t.mu for reading.
	changesFrom func(t *Tenant, base uint64) int
	// page fills the page st points at with up to size items and returns the
	// token of the page after it and whether one follows. It takes t.mu.
	page func(t *Tenant, st stateToken, size int, q Quirks) (items []ordered, next stateToken, more bool)
	// echoesPageSize sets Preference-Applied when the client sent
	// Prefer: odata.maxpagesize.
	echoesPageSize bool
}

var usersFeed = deltaFeed{
	kind:          tokUsersDelta,
	entitySet:     "users",
	defaultSelect: defaultUserSelect,
	parseSelect:   (*Tenant).userSelect,
	changesFrom: func(t *Tenant, base uint64) int {
		return sort.Search(len(t.userLog), func(i int) bool { return t.userLog[i].version > base })
	},
	page:           (*Tenant).userDeltaPage,
	echoesPageSize: true,
}

var groupsFeed = deltaFeed{
	kind:          tokGroupsDelta,
	entitySet:     "groups",
	defaultSelect: defaultGroupSelect,
	parseSelect:   func(_ *Tenant, raw string) ([]string, error) { return groupSelect(raw) },
	page:          (*Tenant).groupDeltaPage,
}

// serveDelta serves a delta function: a new round, "sync from now" with
// $deltatoken=latest, the next page of a round ($skiptoken) or a round
// started from a deltaLink ($deltatoken).
func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request, c *call, feed *deltaFeed) {
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
		if st, ok = s.readToken(w, r, c, skip, feed.kind, true); !ok {
			return
		}
		if st.Delta {
			writeBadRequest(w, c, badf("A deltatoken was passed as $skiptoken. Use the @odata.nextLink and @odata.deltaLink URLs as they are."))
			return
		}
	case delta != "" && !strings.EqualFold(delta, "latest"):
		prev, ok := s.readToken(w, r, c, delta, feed.kind, true)
		if !ok {
			return
		}
		if !prev.Delta {
			writeBadRequest(w, c, badf("A skiptoken was passed as $deltatoken. Use the @odata.nextLink and @odata.deltaLink URLs as they are."))
			return
		}
		t.mu.RLock()
		st = stateToken{
			Kind: feed.kind, Phase: phaseChanges, Base: prev.Base, End: t.version,
			Select: prev.Select, NoSelect: prev.NoSelect, Filter: prev.Filter, Size: preferredPageSize(r),
			Epoch: t.epoch,
		}
		if feed.changesFrom != nil {
			st.Pos = feed.changesFrom(t, prev.Base)
		}
		var err error
		if hasSel { // Graph lets a deltaLink change the tracked properties
			st.Select, err = feed.parseSelect(t, rawSel)
			st.NoSelect = false
		}
		t.mu.RUnlock()
		if err != nil {
			writeBadRequest(w, c, err)
			return
		}
	default: // a new round, or "sync from now" with $deltatoken=latest
		t.mu.RLock()
		st = stateToken{Kind: feed.kind, Phase: phaseEnumerate, Base: t.version, Size: preferredPageSize(r), Epoch: t.epoch}
		var err error
		if hasSel {
			st.Select, err = feed.parseSelect(t, rawSel)
		} else {
			st.Select, st.NoSelect = feed.defaultSelect, true
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
			s.writeDeltaPage(w, r, feed, st, nil, st, true)
			return
		}
	}
	s.serveDeltaPage(w, r, feed, st)
}

// serveDeltaPage serves the page st points at.
func (s *Server) serveDeltaPage(w http.ResponseWriter, r *http.Request, feed *deltaFeed, st stateToken) {
	s.pageLatency(r)
	q := s.tenant.currentQuirks()
	if q.EmptyPageEvery > 0 && st.Page > 0 && st.Page%q.EmptyPageEvery == 0 && !st.Empty {
		next := st
		next.Empty = true
		s.writeDeltaPage(w, r, feed, st, nil, next, false)
		return
	}
	st.Empty = false
	items, next, more := feed.page(s.tenant, st, s.pageSize(r, st.Size), q)
	s.writeDeltaPage(w, r, feed, st, items, next, !more)
}

// writeDeltaPage writes a page: a nextLink carrying next, or, on the last
// page, a deltaLink from which the next round starts.
func (s *Server) writeDeltaPage(w http.ResponseWriter, r *http.Request, feed *deltaFeed, st stateToken, items []ordered, next stateToken, last bool) {
	ctx := feed.entitySet
	if !st.NoSelect {
		ctx += contextSelect(st.Select)
	}
	var link kv
	if last {
		base := st.Base
		if st.Phase == phaseChanges {
			base = st.End
		}
		dt := stateToken{Kind: feed.kind, Delta: true, Base: base, Select: st.Select, NoSelect: st.NoSelect, Filter: st.Filter, Epoch: s.currentEpoch()}
		link = kv{"@odata.deltaLink", s.linkBase(r) + "?$deltatoken=" + s.issue(dt)}
	} else {
		link = kv{"@odata.nextLink", s.linkBase(r) + "?$skiptoken=" + s.issue(next)}
	}
	if n := preferredPageSize(r); n > 0 && feed.echoesPageSize {
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+itoa(n))
	}
	s.writeCollection(w, r, ctx, link, items)
}

// writeCollection writes a page of a collection: its @odata.context, the
// link to follow (none when link.k is ""), and the items (an empty array
// for none).
func (s *Server) writeCollection(w http.ResponseWriter, r *http.Request, context string, link kv, items []ordered) {
	page := ordered{{"@odata.context", s.contextURL(r, context)}}
	if link.k != "" {
		page = append(page, link)
	}
	if items == nil {
		items = []ordered{}
	}
	page = append(page, kv{"value", items})
	writeJSON(w, http.StatusOK, graphContentType, page)
}

func (s *Server) currentEpoch() int {
	s.tenant.mu.RLock()
	defer s.tenant.mu.RUnlock()
	return s.tenant.epoch
}
