package graphsim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxFilterIDs is Graph's limit of object ids in a delta $filter.
const maxFilterIDs = 50

// badRequest is a 400 with Graph's directory error code.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// userSelect resolves a $select list against the user properties the tenant
// knows (case-insensitively, to their canonical names). The result always
// contains "id". Caller holds t.mu.
func (t *Tenant) userSelect(raw string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		canon, ok := t.props[strings.ToLower(p)]
		if !ok && strings.HasPrefix(strings.ToLower(p), "extension_") && validPropName(p) {
			canon, ok = p, true
		}
		if !ok {
			return nil, badf("Could not find a property named '%s' on type 'microsoft.graph.user'.", p)
		}
		if !slices.Contains(out, canon) {
			out = append(out, canon)
		}
	}
	if !slices.Contains(out, "id") {
		out = append(out, "id")
	}
	return out, nil
}

var groupProps = []string{"id", "displayName", "description", "mailEnabled", "securityEnabled", "groupTypes", "mailNickname", "createdDateTime", "members"}

// defaultGroupSelect is what /groups/delta returns without $select:
// members@delta included, as the Graph docs describe.
var defaultGroupSelect = []string{"displayName", "description", "mailEnabled", "securityEnabled", "groupTypes", "mailNickname", "createdDateTime", "id", "members"}

func groupSelect(raw string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		i := slices.IndexFunc(groupProps, func(g string) bool { return strings.EqualFold(g, p) })
		if i < 0 {
			return nil, badf("Could not find a property named '%s' on type 'microsoft.graph.group'.", p)
		}
		if !slices.Contains(out, groupProps[i]) {
			out = append(out, groupProps[i])
		}
	}
	if !slices.Contains(out, "id") {
		out = append(out, "id")
	}
	return out, nil
}

// parseIDFilter parses the only $filter delta functions accept:
// id eq 'a' or id eq 'b' ... with at most 50 ids. The ids come back sorted
// and unique.
func parseIDFilter(expr string) ([]string, error) {
	const unsupported = "Unsupported query: a delta $filter can only be \"id eq '<object id>'\" clauses joined with 'or'."
	sc := &scanner{s: expr}
	var ids []string
	for {
		sc.space()
		if !sc.word("id") {
			return nil, badf("%s", unsupported)
		}
		sc.space()
		if !sc.word("eq") {
			return nil, badf("%s", unsupported)
		}
		sc.space()
		v, ok := sc.quoted()
		if !ok || v == "" {
			return nil, badf("%s", unsupported)
		}
		ids = append(ids, v)
		sc.space()
		if sc.done() {
			break
		}
		if !sc.word("or") {
			return nil, badf("%s", unsupported)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > maxFilterIDs {
		return nil, badf("Too many object ids in the filter: %d. A delta $filter accepts at most %d 'id eq' clauses; split the ids over several rounds.", len(ids), maxFilterIDs)
	}
	return ids, nil
}

// scanner is a tiny lexer for OData filter expressions.
type scanner struct {
	s string
	i int
}

func (sc *scanner) done() bool { return sc.i >= len(sc.s) }

func (sc *scanner) space() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// word consumes w (case-insensitive) when it stands alone.
func (sc *scanner) word(w string) bool {
	end := sc.i + len(w)
	if end > len(sc.s) || !strings.EqualFold(sc.s[sc.i:end], w) {
		return false
	}
	if end < len(sc.s) && isIdentByte(sc.s[end]) {
		return false
	}
	sc.i = end
	return true
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '/' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (sc *scanner) ident() string {
	start := sc.i
	for sc.i < len(sc.s) && isIdentByte(sc.s[sc.i]) {
		sc.i++
	}
	return sc.s[start:sc.i]
}

func (sc *scanner) punct(c byte) bool {
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// quoted reads an OData string literal ('it”s').
func (sc *scanner) quoted() (string, bool) {
	if !sc.punct('\'') {
		return "", false
	}
	var b strings.Builder
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		sc.i++
		if c == '\'' {
			if sc.i < len(sc.s) && sc.s[sc.i] == '\'' {
				b.WriteByte('\'')
				sc.i++
				continue
			}
			return b.String(), true
		}
		b.WriteByte(c)
	}
	return "", false
}

// userPredicate is a parsed /users $filter.
type userPredicate func(id string, attrs map[string]any) bool

// parseUserFilter accepts a small, useful part of the /users filter grammar:
// clauses "<prop> eq '<text>'" (case-insensitive for text), "<prop> eq
// true|false" and "id in ('a','b')", joined with "or".
func (t *Tenant) parseUserFilter(expr string) (userPredicate, error) {
	const unsupported = "Unsupported or invalid query filter clause: the simulator understands \"<property> eq '<value>'\", \"<property> eq true|false\" and \"id in ('a','b')\" joined with 'or'."
	type clause struct {
		prop   string
		values []string // lower-cased text, or "true"/"false"
		isBool bool
	}
	var clauses []clause
	sc := &scanner{s: expr}
	for {
		sc.space()
		name := sc.ident()
		if name == "" {
			return nil, badf("%s", unsupported)
		}
		prop, ok := t.props[strings.ToLower(name)]
		if !ok {
			return nil, badf("Could not find a property named '%s' on type 'microsoft.graph.user'.", name)
		}
		sc.space()
		switch {
		case sc.word("eq"):
			sc.space()
			if v, ok := sc.quoted(); ok {
				clauses = append(clauses, clause{prop: prop, values: []string{strings.ToLower(v)}})
			} else if sc.word("true") {
				clauses = append(clauses, clause{prop: prop, values: []string{"true"}, isBool: true})
			} else if sc.word("false") {
				clauses = append(clauses, clause{prop: prop, values: []string{"false"}, isBool: true})
			} else {
				return nil, badf("%s", unsupported)
			}
		case sc.word("in"):
			sc.space()
			if !sc.punct('(') {
				return nil, badf("%s", unsupported)
			}
			c := clause{prop: prop}
			for {
				sc.space()
				v, ok := sc.quoted()
				if !ok {
					return nil, badf("%s", unsupported)
				}
				c.values = append(c.values, strings.ToLower(v))
				sc.space()
				if sc.punct(')') {
					break
				}
				if !sc.punct(',') {
					return nil, badf("%s", unsupported)
				}
			}
			if len(c.values) > 15 && prop != "id" {
				return nil, badf("Too many values in the 'in' operator: at most 15.")
			}
			clauses = append(clauses, c)
		default:
			return nil, badf("%s", unsupported)
		}
		sc.space()
		if sc.done() {
			break
		}
		if !sc.word("or") {
			return nil, badf("%s", unsupported)
		}
	}
	return func(id string, attrs map[string]any) bool {
		for _, c := range clauses {
			var have string
			if c.prop == "id" {
				have = strings.ToLower(id)
			} else {
				switch v := attrs[c.prop].(type) {
				case string:
					have = strings.ToLower(v)
				case bool:
					if !c.isBool {
						continue
					}
					have = strconv.FormatBool(v)
				default:
					continue
				}
			}
			if slices.Contains(c.values, have) {
				return true
			}
		}
		return false
	}, nil
}

// readToken decodes a state token of the expected kind, answering the
// request itself when the token is unusable. ok false means answered.
func (s *Server) readToken(w http.ResponseWriter, r *http.Request, c *call, raw, kind string, expiring bool) (stateToken, bool) {
	st, foreign, err := s.tokens.decode(raw)
	if err != nil || st.Kind != kind {
		graphError(w, c, http.StatusBadRequest, "Request_BadRequest",
			"The state token (skiptoken or deltatoken) is malformed or was not issued for this resource. Start again without it.")
		return st, false
	}
	if foreign {
		// Issued by an earlier simulator process: its sync state is gone.
		s.writeExpired(w, r, c, s.cfg.ExpiryForm, 0)
		return st, false
	}
	if expiring {
		s.tenant.mu.RLock()
		epoch := s.tenant.epoch
		s.tenant.mu.RUnlock()
		age := s.cfg.Now().Sub(time.Unix(0, st.Issued))
		if st.Epoch < epoch || age > s.cfg.TokenLifetime {
			s.writeExpired(w, r, c, s.cfg.ExpiryForm, 0)
			return st, false
		}
	}
	return st, true
}

func (s *Server) issue(st stateToken) string {
	st.Issued = s.cfg.Now().UnixNano()
	return s.tokens.encode(st)
}

// writeBadRequest answers a *badRequest (or any other error) as Graph would.
func writeBadRequest(w http.ResponseWriter, c *call, err error) {
	graphError(w, c, http.StatusBadRequest, "Request_BadRequest", err.Error())
}

// pageSize picks the page size: the Prefer header, else the size the round
// started with, else the configured default.
func (s *Server) pageSize(r *http.Request, roundSize int) int {
	if n := preferredPageSize(r); n > 0 {
		return n
	}
	if roundSize > 0 {
		return roundSize
	}
	return s.cfg.PageSize
}

// topParam reads $top for list endpoints (1..999).
func topParam(r *http.Request) (int, error) {
	v, ok := queryParam(r.URL.Query(), "top")
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, badf("Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", v, MaxPageSize)
	}
	return n, nil
}

// contextSelect is the "(a,b)" part of an @odata.context, without "id" when
// Graph would not show it.
func contextSelect(sel []string) string {
	var parts []string
	for _, p := range sel {
		if p != "id" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ",") + ")"
}

func itoa(n int) string { return strconv.Itoa(n) }
