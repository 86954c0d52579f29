package dirsynctest

import (
	"context"
	"slices"
	"strings"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// PutMember writes the member register of userID in groupID (members.go of
// dirsync describes the format) unconditionally, as a test fixture: the
// engine's own writer compares versions first.
func PutMember(ctx context.Context, s dirsync.Store, groupID, userID string, present bool, ver string) error {
	_, err := s.Upsert(ctx, dirsync.TableMembers, dirsync.Entity{
		PartitionKey: dirsync.MembersPartition(groupID), RowKey: userID,
		Props: map[string]any{dirsync.MemberPresentProp: present, dirsync.MemberVerProp: ver},
	})
	return err
}

// SetUserGroups replaces the Groups of a user's directory row (the truth of
// membership, dirsync.User.Groups), as a test fixture. The user must exist.
func SetUserGroups(ctx context.Context, s dirsync.Store, userID string, groups []string) error {
	ent, err := s.Get(ctx, dirsync.TableUsers, dirsync.Bucket(userID), userID)
	if err != nil {
		return err
	}
	groups = slices.Sorted(slices.Values(groups))
	if len(groups) == 0 {
		delete(ent.Props, "groups") // the property userToEntity writes
	} else {
		ent.Props["groups"] = strings.Join(groups, ",")
	}
	_, err = s.Replace(ctx, dirsync.TableUsers, ent)
	return err
}

// AddMember makes userID (already in the directory) a member of groupID:
// a present register and the group on the user's row.
func (e *Env) AddMember(groupID, userID string) {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.Engine.GetUser(ctx, userID)
	if err != nil {
		e.t.Fatalf("AddMember: %v", err)
	}
	if err := PutMember(ctx, e.Store, groupID, userID, true, "0"); err != nil {
		e.t.Fatalf("AddMember: %v", err)
	}
	if !slices.Contains(u.Groups, groupID) {
		if err := SetUserGroups(ctx, e.Store, userID, append(u.Groups, groupID)); err != nil {
			e.t.Fatalf("AddMember: %v", err)
		}
	}
}
