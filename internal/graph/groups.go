package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// maxFilterIDs is how many "id eq" clauses Graph accepts in one delta $filter.
const maxFilterIDs = 50

// compositePrefix starts a groups link made by this adapter: a round over
// more than 50 group ids is one Graph delta round per chunk of ids, walked one
// after the other, and the link carries every chunk's position.
const compositePrefix = "entrasync-groups:v1:"

// groupRound is the state a composite groups link encodes.
type groupRound struct {
	// Cur is the chunk the next call reads.
	Cur    int          `json:"c"`
	Chunks []groupChunk `json:"k"`
}

// groupChunk is one $filter of at most 50 ids: its ids until its first page
// is read, then the Graph link to follow (next link while its round goes on,
// delta link once it is done).
type groupChunk struct {
	IDs  []string `json:"i,omitempty"`
	Link string   `json:"l,omitempty"`
}

func (r groupRound) encode() string {
	b, _ := json.Marshal(r)
	return compositePrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeGroupRound(link string) (groupRound, error) {
	var r groupRound
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(link, compositePrefix))
	if err != nil || json.Unmarshal(b, &r) != nil {
		return r, errors.New("the stored groups link could not be read")
	}
	if len(r.Chunks) == 0 || r.Cur < 0 || r.Cur >= len(r.Chunks) {
		return r, errors.New("the stored groups link is inconsistent")
	}
	for _, c := range r.Chunks {
		if (c.Link == "") == (len(c.IDs) == 0) || len(c.IDs) > maxFilterIDs {
			return r, errors.New("the stored groups link is inconsistent")
		}
		for _, id := range c.IDs {
			if !isGUID(id) {
				return r, errors.New("the stored groups link holds an invalid group id")
			}
		}
	}
	return r, nil
}

// GroupsDelta fetches one page of /groups/delta with member changes. With
// more than 50 GroupIDs the links it returns are adapter-made (opaque); the
// caller stores and follows them like Graph's own.
func (s *Source) GroupsDelta(ctx context.Context, req dirsync.GroupDeltaRequest) (page dirsync.GroupPage, err error) {
	o := op{name: "read groups (groups delta)", perm: permGroups}
	defer s.guard(o, &err)

	switch {
	case strings.HasPrefix(req.Link, compositePrefix):
		r, err := decodeGroupRound(req.Link)
		if err != nil {
			return page, staleLink(err)
		}
		return s.groupRoundStep(ctx, o, r)
	case req.Link != "":
		raw, err := s.groupsDeltaPage(ctx, o, req.Link, nil)
		if err != nil {
			return page, err
		}
		page.Groups = s.mapGroups(raw)
		page.NextLink, page.DeltaLink = raw.links()
		return page, nil
	}

	chunks, err := chunkGroupIDs(req.GroupIDs)
	if err != nil {
		return page, err
	}
	if len(chunks) <= 1 {
		// All groups, or one filter: Graph's own links will do.
		var ids []string
		if len(chunks) == 1 {
			ids = chunks[0]
		}
		raw, err := s.groupsDeltaPage(ctx, o, "", ids)
		if err != nil {
			return page, err
		}
		page.Groups = s.mapGroups(raw)
		page.NextLink, page.DeltaLink = raw.links()
		return page, nil
	}
	r := groupRound{Chunks: make([]groupChunk, len(chunks))}
	for i, c := range chunks {
		r.Chunks[i].IDs = c
	}
	return s.groupRoundStep(ctx, o, r)
}

// groupRoundStep reads one page of the current chunk and advances the round.
func (s *Source) groupRoundStep(ctx context.Context, o op, r groupRound) (dirsync.GroupPage, error) {
	var page dirsync.GroupPage
	c := &r.Chunks[r.Cur]
	raw, err := s.groupsDeltaPage(ctx, o, c.Link, c.IDs)
	if err != nil {
		return page, err
	}
	page.Groups = s.mapGroups(raw)
	next, delta := raw.links()
	c.IDs = nil
	if next != "" {
		c.Link = next
		page.NextLink = r.encode()
		return page, nil
	}
	c.Link = delta
	r.Cur++
	if r.Cur < len(r.Chunks) {
		page.NextLink = r.encode()
		return page, nil
	}
	// Every chunk is done: the round's delta link holds each chunk's delta
	// link, and following it walks the chunks again from the first.
	r.Cur = 0
	page.DeltaLink = r.encode()
	return page, nil
}

// groupsDeltaPage fetches one Graph page: link if set, else a fresh round
// filtered to ids (all groups when ids is empty).
func (s *Source) groupsDeltaPage(ctx context.Context, o op, link string, ids []string) (rawPage, error) {
	var ri *abs.RequestInformation
	var buildErr error
	if link != "" {
		if err := s.checkLink(link, "/groups/"); err != nil {
			return rawPage{}, staleLink(err)
		}
		ri, buildErr = s.client.Groups().Delta().WithUrl(link).ToGetRequestInformation(ctx, nil)
	} else {
		q := &groups.DeltaRequestBuilderGetQueryParameters{Select: []string{"displayName", "members"}}
		if len(ids) > 0 {
			f := idFilter(ids)
			q.Filter = &f
		}
		ri, buildErr = s.client.Groups().Delta().ToGetRequestInformation(ctx, &groups.DeltaRequestBuilderGetRequestConfiguration{QueryParameters: q})
	}
	body, err := s.send(ctx, o, ri, buildErr)
	if err != nil {
		return rawPage{}, err
	}
	raw, err := decodePage(body, true)
	if err != nil {
		return rawPage{}, unreadable(o, err)
	}
	for i, item := range raw.Value {
		var id string
		if json.Unmarshal(item["id"], &id) != nil || id == "" {
			return rawPage{}, unreadable(o, fmt.Errorf("group %d of the page has no id", i))
		}
	}
	return raw, nil
}

// chunkGroupIDs validates ids as GUIDs (they go into a $filter, so anything
// else could change the query), drops duplicates and splits them into chunks
// of at most 50.
func chunkGroupIDs(ids []string) ([][]string, error) {
	var chunks [][]string
	seen := make(map[string]bool, len(ids))
	var cur []string
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if !isGUID(id) {
			return nil, dirsync.Errorf(dirsync.EINVALID, "%q is not a group id: group ids are GUIDs (the object id shown on the group's overview page in the Entra admin center)", id)
		}
		key := strings.ToLower(id)
		if seen[key] {
			continue
		}
		seen[key] = true
		cur = append(cur, key)
		if len(cur) == maxFilterIDs {
			chunks = append(chunks, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks, nil
}

// idFilter builds "id eq '…' or id eq '…'" from validated GUIDs.
func idFilter(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "id eq '" + id + "'"
	}
	return strings.Join(parts, " or ")
}

// mapGroups maps a groups delta page. members@delta lists the members added
// (no annotation) or removed ("@removed") since the link was issued (every
// member, as added, in a first round): users go to MembersAdded/Removed,
// nested groups (#microsoft.graph.group) to GroupsAdded/Removed, and other
// kinds (devices, service principals, contacts) are left out, since a group
// syncs people. A large group's members arrive over several pages of one
// round, the group repeated on each with the next share of its members
// (Graph: "Paging through members in a large group"); each page is mapped as
// it comes and the caller merges them.
func (s *Source) mapGroups(raw rawPage) []dirsync.SourceGroup {
	out := make([]dirsync.SourceGroup, 0, len(raw.Value))
	for _, item := range raw.Value {
		var g dirsync.SourceGroup
		_ = json.Unmarshal(item["id"], &g.ID)
		_ = json.Unmarshal(item["displayName"], &g.DisplayName)
		if r, ok := item["@removed"]; ok {
			g.Removed = removedReason(r)
			if g.Removed == removedUnknown {
				g.Removed = dirsync.RemovedChanged
			}
		}
		var members []struct {
			Type    string          `json:"@odata.type"`
			ID      string          `json:"id"`
			Removed json.RawMessage `json:"@removed"`
		}
		if v, ok := item["members@delta"]; ok {
			if err := json.Unmarshal(v, &members); err != nil {
				s.log.Warn("graph: unreadable members@delta; group members skipped", "group", g.ID, "err", err)
			}
		}
		for _, m := range members {
			if m.ID == "" {
				continue
			}
			removed := m.Removed != nil
			switch {
			case isUserType(m.Type) && removed:
				g.MembersRemoved = append(g.MembersRemoved, m.ID)
			case isUserType(m.Type):
				g.MembersAdded = append(g.MembersAdded, m.ID)
			case isGroupType(m.Type) && removed:
				g.GroupsRemoved = append(g.GroupsRemoved, m.ID)
			case isGroupType(m.Type):
				g.GroupsAdded = append(g.GroupsAdded, m.ID)
			}
		}
		out = append(out, g)
	}
	return out
}

// isUserType accepts "#microsoft.graph.user" and, when Graph leaves the type
// out, assumes a user.
func isUserType(t string) bool {
	return t == "" || strings.EqualFold(t, "#microsoft.graph.user")
}

func isGroupType(t string) bool { return strings.EqualFold(t, "#microsoft.graph.group") }

// GroupTransitiveMembers fetches one page of a group's transitive members
// (GET /groups/{id}/transitiveMembers, which expands nested groups at any
// depth and lists each member once): users in UserIDs, the nested groups in
// GroupIDs; devices, service principals and contacts are left out. Errors as
// dirsync.Source says; ENOTFOUND when the group does not exist (also on a
// later page, if it was deleted in between), EINVALID for an id that is not
// a GUID or a link that is not a members link.
func (s *Source) GroupTransitiveMembers(ctx context.Context, groupID, link string) (page dirsync.MemberPage, err error) {
	o := op{name: "read group members", perm: permMembers, notFound: fmt.Sprintf("group %s was not found in Entra ID", groupID)}
	defer s.guard(o, &err)
	if !isGUID(groupID) {
		return page, dirsync.Errorf(dirsync.EINVALID, "%q is not a group id: group ids are GUIDs", groupID)
	}
	var ri *abs.RequestInformation
	var buildErr error
	if link != "" {
		if err := s.checkLink(link, "/transitivemembers"); err != nil {
			return page, dirsync.Errorf(dirsync.EINVALID, "%v", err)
		}
		ri, buildErr = s.client.Groups().ByGroupId(groupID).TransitiveMembers().WithUrl(link).ToGetRequestInformation(ctx, nil)
	} else {
		q := &groups.ItemTransitiveMembersRequestBuilderGetQueryParameters{Select: []string{"id"}}
		top := int32(maxPageSize)
		if n := s.cfg.PageSize; n > 0 {
			top = int32(n)
		}
		q.Top = &top
		ri, buildErr = s.client.Groups().ByGroupId(groupID).TransitiveMembers().ToGetRequestInformation(ctx,
			&groups.ItemTransitiveMembersRequestBuilderGetRequestConfiguration{QueryParameters: q})
	}
	body, err := s.send(ctx, o, ri, buildErr)
	if err != nil {
		return page, err
	}
	raw, err := decodePage(body, false)
	if err != nil {
		return page, unreadable(o, err)
	}
	page.UserIDs = make([]string, 0, len(raw.Value))
	for _, item := range raw.Value {
		var id, typ string
		if json.Unmarshal(item["id"], &id) != nil || id == "" {
			return dirsync.MemberPage{}, unreadable(o, errors.New("a member has no id"))
		}
		if t, ok := item["@odata.type"]; ok {
			_ = json.Unmarshal(t, &typ)
		}
		switch {
		case isUserType(typ):
			page.UserIDs = append(page.UserIDs, id)
		case isGroupType(typ):
			page.GroupIDs = append(page.GroupIDs, id)
		}
	}
	page.NextLink = raw.NextLink
	return page, nil
}

// Group fetches one group's id and displayName (GET
// /groups/{id}?$select=id,displayName). Errors as dirsync.Source says;
// ENOTFOUND when the group does not exist or was deleted (Graph answers 404
// Request_ResourceNotFound), EINVALID for an id that is not a GUID (sent, it
// would be a 400 at best).
func (s *Source) Group(ctx context.Context, id string) (g dirsync.SourceGroup, err error) {
	o := op{name: "read a group", perm: permGroups, notFound: fmt.Sprintf("group %s was not found in Entra ID", id)}
	defer s.guard(o, &err)
	if !isGUID(id) {
		return g, dirsync.Errorf(dirsync.EINVALID, "%q is not a group id: group ids are GUIDs (the object id shown on the group's overview page in the Entra admin center)", id)
	}
	ri, buildErr := s.client.Groups().ByGroupId(id).ToGetRequestInformation(ctx, &groups.GroupItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &groups.GroupItemRequestBuilderGetQueryParameters{Select: []string{"id", "displayName"}},
	})
	body, err := s.send(ctx, o, ri, buildErr)
	if err != nil {
		return g, err
	}
	var item struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	}
	if err := strictUnmarshal(body, &item); err != nil {
		return g, unreadable(o, err)
	}
	if item.ID == "" {
		return g, unreadable(o, errors.New(`the group has no "id"`))
	}
	return dirsync.SourceGroup{ID: item.ID, DisplayName: item.DisplayName}, nil
}
