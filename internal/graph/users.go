package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// UsersDelta fetches one page of /users/delta: a fresh round when req.Link is
// empty, else the page req.Link points to.
func (s *Source) UsersDelta(ctx context.Context, req dirsync.DeltaRequest) (page dirsync.UserPage, err error) {
	o := op{name: "read users (users delta)", perm: permUsers}
	defer s.guard(o, &err)

	headers := abs.NewRequestHeaders()
	if n := s.pageSize(req.PageSize); n > 0 {
		headers.Add("Prefer", fmt.Sprintf("odata.maxpagesize=%d", n))
	}
	var ri *abs.RequestInformation
	var buildErr error
	if req.Link == "" {
		sel, err := selectList(req.Select)
		if err != nil {
			return page, err
		}
		ri, buildErr = s.client.Users().Delta().ToGetRequestInformation(ctx, &users.DeltaRequestBuilderGetRequestConfiguration{
			Headers:         headers,
			QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{Select: sel},
		})
	} else {
		if err := s.checkLink(req.Link, "/users/"); err != nil {
			return page, staleLink(err)
		}
		ri, buildErr = s.client.Users().Delta().WithUrl(req.Link).ToGetRequestInformation(ctx,
			&users.DeltaRequestBuilderGetRequestConfiguration{Headers: headers})
	}
	body, err := s.send(ctx, o, ri, buildErr)
	if err != nil {
		return page, err
	}
	raw, err := decodePage(body, true)
	if err != nil {
		return page, unreadable(o, err)
	}
	page.Users = make([]dirsync.SourceUser, 0, len(raw.Value))
	for i, item := range raw.Value {
		u, err := mapUser(item)
		if err != nil {
			return dirsync.UserPage{}, unreadable(o, fmt.Errorf("user %d of the page: %w", i, err))
		}
		if u.Removed == removedUnknown {
			s.log.Warn("graph: user removed for an unknown reason; treated as soft-deleted", "user", u.ID)
			u.Removed = dirsync.RemovedChanged
		}
		page.Users = append(page.Users, u)
	}
	page.NextLink, page.DeltaLink = raw.links()
	return page, nil
}

// User fetches one user by object id or user principal name.
func (s *Source) User(ctx context.Context, id string, selectAttrs []string) (u dirsync.SourceUser, err error) {
	o := op{name: "read a user", perm: permUsers, notFound: fmt.Sprintf("user %s was not found in Entra ID", id)}
	defer s.guard(o, &err)
	if err := checkUserID(id); err != nil {
		return u, err
	}
	sel, err := selectList(selectAttrs)
	if err != nil {
		return u, err
	}
	q := &users.UserItemRequestBuilderGetQueryParameters{Select: sel}
	if i := slices.Index(sel, "manager"); i >= 0 {
		// Outside delta, manager is a relationship that $select does not
		// return: it is read with $expand, and only its id is needed.
		// (Delta is the other way round: $expand is not supported there
		// and $select=manager tracks it, delta-query-overview.)
		q.Select = slices.Delete(slices.Clone(sel), i, i+1)
		q.Expand = []string{"manager($select=id)"}
	}
	ri, buildErr := s.client.Users().ByUserId(id).ToGetRequestInformation(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: q,
	})
	body, err := s.send(ctx, o, ri, buildErr)
	if err != nil {
		return u, err
	}
	var item map[string]json.RawMessage
	if err := strictUnmarshal(body, &item); err != nil {
		return u, unreadable(o, err)
	}
	if u, err = mapUser(item); err != nil {
		return u, unreadable(o, err)
	}
	if u.Removed == removedUnknown {
		u.Removed = dirsync.RemovedChanged
	}
	return u, nil
}

// rawPage is a collection page as Graph sends it.
type rawPage struct {
	Value     []map[string]json.RawMessage
	NextLink  string
	DeltaLink string
}

// links returns the page's links, enforcing that exactly one is set (a next
// link wins if both are).
func (p rawPage) links() (next, delta string) {
	if p.NextLink != "" {
		return p.NextLink, ""
	}
	return "", p.DeltaLink
}

// decodePage decodes a collection page. A delta page must end with either
// link; a page without "value" is not a page.
func decodePage(body []byte, delta bool) (rawPage, error) {
	var w struct {
		Value     *[]map[string]json.RawMessage `json:"value"`
		NextLink  string                        `json:"@odata.nextLink"`
		DeltaLink string                        `json:"@odata.deltaLink"`
	}
	if err := strictUnmarshal(body, &w); err != nil {
		return rawPage{}, err
	}
	if w.Value == nil {
		return rawPage{}, errors.New(`the page has no "value" array`)
	}
	if delta && w.NextLink == "" && w.DeltaLink == "" {
		return rawPage{}, errors.New("the delta page has neither @odata.nextLink nor @odata.deltaLink")
	}
	return rawPage{Value: *w.Value, NextLink: w.NextLink, DeltaLink: w.DeltaLink}, nil
}

func strictUnmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("the body is empty")
	}
	return json.Unmarshal(body, v)
}

// removedUnknown marks an "@removed" whose reason is neither "changed" nor
// "deleted"; callers treat it as the restorable kind, the cautious choice.
const removedUnknown = "?"

// mapUser turns one user object into a SourceUser. Attribute values:
// strings as they are, booleans "true"/"false", numbers as written, string
// collections joined with "; ", null (a cleared value) as "". A property
// Graph did not send stays absent. onPremisesExtensionAttributes is flattened
// to extensionAttribute1..15; other objects to "property.field"; "manager"
// (or "manager@delta") to the manager's id. Annotations (@odata.*, @removed)
// are not attributes.
func mapUser(item map[string]json.RawMessage) (dirsync.SourceUser, error) {
	var u dirsync.SourceUser
	if err := json.Unmarshal(item["id"], &u.ID); err != nil || u.ID == "" {
		return u, errors.New(`a user has no "id"`)
	}
	if r, ok := item["@removed"]; ok {
		u.Removed = removedReason(r)
	}
	u.Attributes = make(map[string]string, len(item))
	for k, v := range item {
		switch {
		case k == "manager@delta":
			if id, ok := managerFromDelta(v); ok {
				u.Attributes["manager"] = id
			}
		case strings.Contains(k, "@"):
			// annotation: @odata.type, @removed, photo@odata.mediaReadLink...
		case k == "manager":
			if _, done := u.Attributes["manager"]; !done {
				u.Attributes["manager"] = managerID(v)
			}
		case k == "onPremisesExtensionAttributes":
			var ext map[string]json.RawMessage
			if json.Unmarshal(v, &ext) == nil {
				for name, ev := range ext {
					if !strings.Contains(name, "@") {
						u.Attributes[name] = attrValue(ev)
					}
				}
			}
		case firstByte(v) == '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(v, &obj) == nil {
				for name, ev := range obj {
					if !strings.Contains(name, "@") {
						u.Attributes[k+"."+name] = attrValue(ev)
					}
				}
			}
		default:
			u.Attributes[k] = attrValue(v)
		}
	}
	return u, nil
}

// removedReason reads {"reason": "..."}.
func removedReason(raw json.RawMessage) string {
	var r struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(raw, &r)
	switch r.Reason {
	case dirsync.RemovedChanged, dirsync.RemovedDeleted:
		return r.Reason
	}
	return removedUnknown
}

// managerFromDelta reads "manager@delta": Graph sends an array of directory
// objects (a single object is accepted too); the entry without "@removed" is
// the current manager, and a removal alone means the manager was cleared.
func managerFromDelta(raw json.RawMessage) (string, bool) {
	type ref struct {
		ID      string          `json:"id"`
		Removed json.RawMessage `json:"@removed"`
	}
	var refs []ref
	if firstByte(raw) == '{' {
		var one ref
		if json.Unmarshal(raw, &one) != nil {
			return "", false
		}
		refs = []ref{one}
	} else if json.Unmarshal(raw, &refs) != nil {
		return "", false
	}
	if len(refs) == 0 {
		return "", false
	}
	current := ""
	for _, r := range refs {
		if r.Removed == nil && r.ID != "" {
			current = r.ID
		}
	}
	return current, true
}

// managerID reads an expanded "manager": an object with an id, or null.
func managerID(raw json.RawMessage) string {
	var m struct {
		ID string `json:"id"`
	}
	if firstByte(raw) == '{' && json.Unmarshal(raw, &m) == nil {
		return m.ID
	}
	if firstByte(raw) == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	}
	return ""
}

// attrValue renders one JSON value as an attribute string.
func attrValue(raw json.RawMessage) string {
	switch firstByte(raw) {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case 'n':
		return ""
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) == nil {
			parts := make([]string, 0, len(items))
			for _, it := range items {
				switch firstByte(it) {
				case '{', '[':
					return compact(raw) // objects in a list: keep them as JSON
				case 'n':
					continue
				}
				parts = append(parts, attrValue(it))
			}
			return strings.Join(parts, "; ")
		}
	case '{':
		return compact(raw)
	}
	return string(bytes.TrimSpace(raw)) // true, false, numbers
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func firstByte(raw json.RawMessage) byte {
	for _, c := range raw {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

// propertyName is what a Graph property (or directory extension) name looks
// like; anything else could change the meaning of the $select query.
var propertyName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,119}$`)

// extensionAttribute matches the fields of onPremisesExtensionAttributes,
// extensionAttribute1..15. They are not user properties of their own: Graph
// refuses $select=extensionAttribute1 (400) and returns them only inside
// onPremisesExtensionAttributes, which mapUser flattens back.
var extensionAttribute = regexp.MustCompile(`^(?i:extensionAttribute)([1-9]|1[0-5])$`)

// selectList validates attribute names and returns the $select list, always
// with "id" first and without duplicates; a requested extensionAttributeN is
// asked as onPremisesExtensionAttributes. "manager" stays: delta rounds
// track it through $select (callers outside delta expand it instead).
func selectList(attrs []string) ([]string, error) {
	sel := []string{"id"}
	seen := map[string]bool{"id": true}
	for _, a := range attrs {
		a = strings.TrimSpace(a)
		if !propertyName.MatchString(a) {
			return nil, dirsync.Errorf(dirsync.EINVALID, "%q is not a Microsoft Graph user property name", a).
				WithHint("Use property names as Graph spells them, such as displayName, mail or extension_<appid>_costCenter.")
		}
		if extensionAttribute.MatchString(a) {
			a = "onPremisesExtensionAttributes"
		}
		if !seen[strings.ToLower(a)] {
			seen[strings.ToLower(a)] = true
			sel = append(sel, a)
		}
	}
	return sel, nil
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return guidRE.MatchString(s) }

// checkUserID accepts an object id (GUID) or a user principal name. The SDK
// escapes path parameters, but a value with separators or spaces is a bug
// upstream, better reported than sent.
func checkUserID(id string) error {
	if isGUID(id) {
		return nil
	}
	ok := id != "" && len(id) <= 1024 && strings.Count(id, "@") >= 1
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`/\?%&"<>`, r) {
			ok = false
		}
	}
	if !ok {
		return dirsync.Errorf(dirsync.EINVALID, "%q is not a user id: use the user's object id (a GUID) or user principal name", id)
	}
	return nil
}
