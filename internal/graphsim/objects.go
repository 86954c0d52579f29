package graphsim

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func notFound(w http.ResponseWriter, c *call, what string) {
	graphError(w, c, http.StatusNotFound, "Request_ResourceNotFound",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", what))
}

// lookupUser finds an active user by object id or, as Graph allows, by
// userPrincipalName. Caller holds t.mu.
func (t *Tenant) lookupUser(key string) (*userRec, bool) {
	if rec, ok := t.users[key]; ok {
		return rec, rec.state == stateActive
	}
	if !strings.Contains(key, "@") {
		return nil, false
	}
	for _, rec := range t.order {
		if rec.state != stateActive {
			continue
		}
		if upn, _ := t.attrsOf(rec)["userPrincipalName"].(string); strings.EqualFold(upn, key) {
			return rec, true
		}
	}
	return nil, false
}

// selectForObject reads $select for a single-user or list endpoint.
// "manager" is a navigation property there: it is ignored in $select (use
// $expand=manager), as Graph does.
func (t *Tenant) selectForObject(r *http.Request) ([]string, error) {
	raw, ok := queryParam(r.URL.Query(), "select")
	if !ok {
		return defaultUserSelect, nil
	}
	sel, err := t.userSelect(raw)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(sel, func(p string) bool { return p == "manager" }), nil
}

func expandsManager(r *http.Request) bool {
	e, _ := queryParam(r.URL.Query(), "expand")
	e = strings.TrimSpace(e)
	return strings.EqualFold(e, "manager") || strings.HasPrefix(strings.ToLower(e), "manager(")
}

// pathUser reads $select and finds the user the path names, answering the
// request itself (ok false) when either fails. Caller holds t.mu.
func (t *Tenant) pathUser(w http.ResponseWriter, r *http.Request, c *call) (rec *userRec, sel []string, ok bool) {
	sel, err := t.selectForObject(r)
	if err != nil {
		writeBadRequest(w, c, err)
		return nil, nil, false
	}
	rec, ok = t.lookupUser(c.segs[1])
	if !ok {
		notFound(w, c, c.segs[1])
		return nil, nil, false
	}
	return rec, sel, true
}

// handleUser serves GET /v1.0/users/{id | userPrincipalName}.
func (s *Server) handleUser(w http.ResponseWriter, r *http.Request, c *call) {
	t := s.tenant
	t.mu.RLock()
	defer t.mu.RUnlock()
	rec, sel, ok := t.pathUser(w, r, c)
	if !ok {
		return
	}
	ctx := "users/$entity"
	if _, given := queryParam(r.URL.Query(), "select"); given {
		ctx = "users" + contextSelect(sel) + "/$entity"
	}
	o := ordered{{"@odata.context", s.contextURL(r, ctx)}}
	o = append(o, t.renderUser(rec, sel, false, false)...)
	if expandsManager(r) {
		if m, ok := t.attrsOf(rec)["manager"].(string); ok {
			if mrec, ok := t.users[m]; ok && mrec.state == stateActive {
				mo := ordered{{"@odata.type", "#microsoft.graph.user"}}
				mo = append(mo, t.renderUser(mrec, []string{"id", "displayName"}, false, false)...)
				o = append(o, kv{"manager", mo})
			}
		}
	}
	writeJSON(w, http.StatusOK, graphContentType, o)
}

// handleManager serves GET /v1.0/users/{id}/manager.
func (s *Server) handleManager(w http.ResponseWriter, r *http.Request, c *call) {
	t := s.tenant
	t.mu.RLock()
	defer t.mu.RUnlock()
	rec, sel, ok := t.pathUser(w, r, c)
	if !ok {
		return
	}
	m, _ := t.attrsOf(rec)["manager"].(string)
	mrec, ok := t.users[m]
	if m == "" || !ok || mrec.state != stateActive {
		notFound(w, c, "manager")
		return
	}
	o := ordered{{"@odata.context", s.contextURL(r, "directoryObjects/$entity")}, {"@odata.type", "#microsoft.graph.user"}}
	o = append(o, t.renderUser(mrec, sel, false, false)...)
	writeJSON(w, http.StatusOK, graphContentType, o)
}

// handlePhoto serves GET /v1.0/users/{id}/photo and /photo/$value.
func (s *Server) handlePhoto(w http.ResponseWriter, r *http.Request, c *call, content bool) {
	t := s.tenant
	t.mu.RLock()
	rec, ok := t.lookupUser(c.segs[1])
	var p *photoData
	var id string
	if ok {
		p, id = rec.photo, rec.id
	}
	t.mu.RUnlock()
	if !ok {
		notFound(w, c, c.segs[1])
		return
	}
	if p == nil {
		graphError(w, c, http.StatusNotFound, "ImageNotFound",
			"Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.")
		return
	}
	etag := `"` + p.etag + `"`
	w.Header().Set("ETag", etag)
	if content {
		data := p.bytes()
		w.Header().Set("Content-Type", p.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(data)
		}
		return
	}
	writeJSON(w, http.StatusOK, graphContentType, ordered{
		{"@odata.context", s.contextURL(r, "users('"+id+"')/photo/$entity")},
		{"@odata.mediaContentType", p.contentType},
		{"@odata.mediaEtag", etag},
		{"id", fmt.Sprintf("%dX%d", p.width, p.height)},
		{"height", p.height},
		{"width", p.width},
	})
}

// handleGroup serves GET /v1.0/groups/{id}.
func (s *Server) handleGroup(w http.ResponseWriter, r *http.Request, c *call) {
	t := s.tenant
	sel := []string{"id", "displayName", "description", "mailEnabled", "securityEnabled", "groupTypes", "mailNickname", "createdDateTime"}
	if raw, ok := queryParam(r.URL.Query(), "select"); ok {
		var err error
		if sel, err = groupSelect(raw); err != nil {
			writeBadRequest(w, c, err)
			return
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	g, err := t.liveGroup(c.segs[1])
	if err != nil {
		notFound(w, c, c.segs[1])
		return
	}
	o := ordered{{"@odata.context", s.contextURL(r, "groups/$entity")}}
	o = append(o, t.renderGroup(g, sel)...)
	writeJSON(w, http.StatusOK, graphContentType, o)
}

// listState reads the state of a list request: its $skiptoken's, or for a
// first page $top and what first adds from the other query options. It
// answers the request itself (ok false) when either is bad.
func (s *Server) listState(w http.ResponseWriter, r *http.Request, c *call, kind string, first func(st *stateToken) error) (st stateToken, ok bool) {
	if skip, _ := queryParam(r.URL.Query(), "skiptoken"); skip != "" {
		return s.readToken(w, r, c, skip, kind, false)
	}
	top, err := topParam(r)
	if err != nil {
		writeBadRequest(w, c, err)
		return st, false
	}
	st = stateToken{Kind: kind, Size: top}
	if err := first(&st); err != nil {
		writeBadRequest(w, c, err)
		return st, false
	}
	return st, true
}

// handleUsersList serves GET /v1.0/users with $filter, $select and $top.
func (s *Server) handleUsersList(w http.ResponseWriter, r *http.Request, c *call) {
	t := s.tenant
	st, ok := s.listState(w, r, c, tokUsersList, func(st *stateToken) error {
		q := r.URL.Query()
		var err error
		t.mu.RLock()
		defer t.mu.RUnlock()
		if _, ok := queryParam(q, "select"); ok {
			st.Select, err = t.selectForObject(r)
		} else {
			st.Select, st.NoSelect = defaultUserSelect, true
		}
		if err == nil {
			if f, ok := queryParam(q, "filter"); ok {
				st.Expr = f
				_, err = t.parseUserFilter(f)
			}
		}
		return err
	})
	if !ok {
		return
	}
	s.pageLatency(r)
	size := s.listPageSize(r, st.Size)
	t.mu.RLock()
	pred := func(string, map[string]any) bool { return true }
	if st.Expr != "" {
		p, err := t.parseUserFilter(st.Expr)
		if err != nil {
			t.mu.RUnlock()
			writeBadRequest(w, c, err)
			return
		}
		pred = p
	}
	var items []ordered
	more := false
	cursor := st.Cursor
	i := sort.Search(len(t.order), func(i int) bool { return t.order[i].id > st.Cursor })
	for ; i < len(t.order); i++ {
		rec := t.order[i]
		if rec.state != stateActive || !pred(rec.id, t.attrsOf(rec)) {
			continue
		}
		if len(items) == size {
			more = true
			break
		}
		items = append(items, t.renderUser(rec, st.Select, false, false))
		cursor = rec.id
	}
	t.mu.RUnlock()
	ctx := "users"
	if !st.NoSelect {
		ctx += contextSelect(st.Select)
	}
	s.writeListPage(w, r, ctx, st, items, cursor, more)
}

// listPageSize is a list page's size: $top, else the Prefer header, else the
// configured default.
func (s *Server) listPageSize(r *http.Request, top int) int {
	if top > 0 {
		return top
	}
	return s.pageSize(r, 0)
}

// writeListPage writes a page of a list; when more follow, its nextLink
// carries st continuing after cursor.
func (s *Server) writeListPage(w http.ResponseWriter, r *http.Request, context string, st stateToken, items []ordered, cursor string, more bool) {
	var link kv
	if more {
		next := st
		next.Cursor = cursor
		link = kv{"@odata.nextLink", s.linkBase(r) + "?$skiptoken=" + s.issue(next)}
	}
	s.writeCollection(w, r, context, link, items)
}

// transitiveSet is the expanded membership of a group, cached until any
// membership or user state changes.
type transitiveSet struct {
	ver    uint64
	users  []string // sorted
	groups []string // sorted
	all    []string // sorted
}

// transitive expands a group's members through nested groups (cycles are
// harmless). Caller holds t.mu for writing.
func (t *Tenant) transitive(g *groupRec) *transitiveSet {
	if ts, ok := t.trans[g.id]; ok && ts.ver == t.memberVer {
		return ts
	}
	users := map[string]bool{}
	groups := map[string]bool{g.id: true}
	queue := []*groupRec{g}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for m := range cur.members {
			if ng, ok := t.groups[m]; ok {
				if !groups[m] && !ng.deleted {
					groups[m] = true
					queue = append(queue, ng)
				}
				continue
			}
			if rec, ok := t.users[m]; ok && rec.state == stateActive {
				users[m] = true
			}
		}
	}
	delete(groups, g.id)
	ts := &transitiveSet{ver: t.memberVer}
	for id := range users {
		ts.users = append(ts.users, id)
	}
	for id := range groups {
		ts.groups = append(ts.groups, id)
	}
	slices.Sort(ts.users)
	slices.Sort(ts.groups)
	ts.all = slices.Concat(ts.users, ts.groups)
	slices.Sort(ts.all)
	t.trans[g.id] = ts
	return ts
}

// handleTransitiveMembers serves GET /v1.0/groups/{id}/transitiveMembers,
// optionally cast to users (/microsoft.graph.user or /graph.user) or groups.
func (s *Server) handleTransitiveMembers(w http.ResponseWriter, r *http.Request, c *call) {
	t := s.tenant
	st, ok := s.listState(w, r, c, tokMembers, func(st *stateToken) error {
		st.Group = c.segs[1]
		if len(c.segs) == 4 {
			st.Cast = castOf(c.segs[3])
		}
		raw, ok := queryParam(r.URL.Query(), "select")
		if !ok {
			st.NoSelect = true
			return nil
		}
		var err error
		st.Select, err = memberSelect(t, raw)
		return err
	})
	if !ok {
		return
	}
	if st.Group != c.segs[1] {
		writeBadRequest(w, c, badf("The skiptoken belongs to another group's members."))
		return
	}
	s.pageLatency(r)
	size := s.listPageSize(r, st.Size)
	t.mu.Lock()
	g, err := t.liveGroup(st.Group)
	if err != nil {
		t.mu.Unlock()
		notFound(w, c, st.Group)
		return
	}
	ts := t.transitive(g)
	ids := ts.all
	switch st.Cast {
	case "user":
		ids = ts.users
	case "group":
		ids = ts.groups
	}
	var items []ordered
	more := false
	cursor := st.Cursor
	for i := sort.SearchStrings(ids, st.Cursor); i < len(ids); i++ {
		id := ids[i]
		if id <= st.Cursor && st.Cursor != "" {
			continue
		}
		if len(items) == size {
			more = true
			break
		}
		items = append(items, t.renderMember(id, st))
		cursor = id
	}
	t.mu.Unlock()

	ctx := "directoryObjects"
	switch st.Cast {
	case "user":
		ctx = "users"
	case "group":
		ctx = "groups"
	}
	s.writeListPage(w, r, ctx, st, items, cursor, more)
}

// memberSelect accepts properties of users or groups, as a directoryObject
// collection does.
func memberSelect(t *Tenant, raw string) ([]string, error) {
	var out []string
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if canon, ok := t.props[strings.ToLower(p)]; ok {
			out = append(out, canon)
			continue
		}
		if i := slices.IndexFunc(groupProps, func(g string) bool { return strings.EqualFold(g, p) }); i >= 0 {
			out = append(out, groupProps[i])
			continue
		}
		return nil, badf("Could not find a property named '%s' on type 'microsoft.graph.directoryObject'.", p)
	}
	if !slices.Contains(out, "id") {
		out = append(out, "id")
	}
	return out, nil
}

func (t *Tenant) renderMember(id string, st stateToken) ordered {
	if g, ok := t.groups[id]; ok {
		sel := st.Select
		if st.NoSelect {
			sel = []string{"id", "displayName", "description"}
		}
		o := ordered{{"@odata.type", "#microsoft.graph.group"}}
		return append(o, t.renderGroup(g, sel)...)
	}
	sel := st.Select
	if st.NoSelect {
		sel = defaultUserSelect
	}
	sel = slices.DeleteFunc(slices.Clone(sel), func(p string) bool { return p == "manager" })
	o := ordered{{"@odata.type", "#microsoft.graph.user"}}
	return append(o, t.renderUser(t.users[id], sel, false, false)...)
}
