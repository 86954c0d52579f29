package dirsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The member index: TableMembers holds one "register" per group and user,
// PartitionKey MembersPartition(group), RowKey the user's object id, with
// the properties MemberPresentProp (bool) and MemberVerProp (a string
// version, compared lexicographically: a write with an older ver never
// replaces a newer one). A user is a member iff its register exists with
// present = true; a register with present = false is a removal that is
// kept so that a late, older write cannot bring the member back.
//
// The truth of membership is the user's row (User.Groups); the registers
// are its per-group index, written by the engine from it.
const (
	MemberPresentProp = "present"
	MemberVerProp     = "ver"
)

// MembersPartition is the partition of a group's registers in TableMembers.
func MembersPartition(groupID string) string { return "g|" + groupID }

// Paging of GroupMembersPage.
const (
	DefaultMembersTop = 100
	MaxMembersTop     = 1000
	// membersScanBudget bounds the storage pages one GroupMembersPage reads
	// when many registers are removals.
	membersScanBudget = 8
)

type membersCursor struct {
	Group string `json:"g"`
	Cont  string `json:"c"`
}

func badMembersCursor() error {
	return Errorf(EINVALID, "the members cursor is not valid").
		WithHint("Pass back next exactly as it was given, for the same group, or start again without cursor.")
}

// GroupMembersPage returns one page of a group's members (present
// registers), in user-id order, and the cursor of the next page ("" at the
// end). top is the page size (1..MaxMembersTop; 0 means
// DefaultMembersTop). A page may hold fewer than top members and still have
// a next cursor (removed members are skipped, within a bounded scan). It
// does not check that the group exists: a group without members and a
// missing one both give an empty page.
//
// Errors: EINVALID for a group id that is not a GUID, a top out of range or
// a malformed cursor (or one of another group); store errors as they come.
func (e *Engine) GroupMembersPage(ctx context.Context, groupID, cursor string, top int) (userIDs []string, next string, err error) {
	if !validObjectID(groupID) {
		return nil, "", badGroupID(groupID)
	}
	groupID = strings.ToLower(groupID)
	if top == 0 {
		top = DefaultMembersTop
	}
	if top < 1 || top > MaxMembersTop {
		return nil, "", Errorf(EINVALID, "top %d is out of range; use 1 to %d", top, MaxMembersTop).
			WithHint("Leave top out for pages of %d members.", DefaultMembersTop)
	}
	q := Query{PartitionKey: MembersPartition(groupID)}
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		var c membersCursor
		if err != nil || json.Unmarshal(b, &c) != nil || c.Cont == "" {
			return nil, "", badMembersCursor()
		}
		if c.Group != groupID {
			return nil, "", Errorf(EINVALID, "the members cursor belongs to another group").
				WithHint("A cursor only continues the listing of the group that returned it; start again without cursor.")
		}
		q.Continuation = c.Cont
	}
	userIDs = []string{}
	for range membersScanBudget {
		// Ask for no more rows than the page still needs, so the
		// continuation resumes right after the last row looked at.
		q.Top = top - len(userIDs)
		page, err := e.Store.Query(ctx, TableMembers, q)
		if IsCode(err, EINVALID) && q.Continuation != "" {
			return nil, "", badMembersCursor()
		}
		if err != nil {
			return nil, "", fmt.Errorf("members of group %s: %w", groupID, err)
		}
		for _, ent := range page.Entities {
			if ent.Bool(MemberPresentProp) {
				userIDs = append(userIDs, ent.RowKey)
			}
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" || len(userIDs) >= top {
			break
		}
	}
	if q.Continuation == "" {
		return userIDs, "", nil
	}
	b, _ := json.Marshal(membersCursor{Group: groupID, Cont: q.Continuation})
	return userIDs, base64.RawURLEncoding.EncodeToString(b), nil
}

// UserGroups returns the ids of the groups a user is a member of, sorted:
// the Groups of the user's row, the truth of membership. A group deleted
// since the last run can still be listed until that run re-evaluates it.
//
// Errors: EINVALID for an id that is not a GUID, ENOTFOUND when the user is
// not in the directory, store errors as they come.
func (e *Engine) UserGroups(ctx context.Context, userID string) ([]string, error) {
	u, err := e.GetUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	groups := slices.Clone(u.Groups)
	if groups == nil {
		groups = []string{}
	}
	slices.Sort(groups)
	return groups, nil
}

// Users returns the directory rows of ids that exist, by id, read with
// bounded concurrency. Missing users are left out.
//
// Errors: store errors as they come.
func (e *Engine) Users(ctx context.Context, ids []string) (map[string]User, error) {
	return e.readUsers(ctx, ids)
}
