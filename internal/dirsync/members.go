package dirsync

import (
	"context"
	"fmt"
	"sort"
)

// Membership rows exist in both directions: "g|<group>"/<user> lists a
// group's members and "u|<user>"/<group> a user's groups, so removing a user
// from every group is one partition scan.
func memberOfGroupPK(groupID string) string { return "g|" + groupID }
func groupsOfUserPK(userID string) string   { return "u|" + userID }

// AddMember records userID as a member of groupID (both directions).
func (e *Engine) AddMember(ctx context.Context, groupID, userID string) error {
	for _, ent := range []Entity{
		{PartitionKey: memberOfGroupPK(groupID), RowKey: userID, Props: map[string]any{"user": userID}},
		{PartitionKey: groupsOfUserPK(userID), RowKey: groupID, Props: map[string]any{"group": groupID}},
	} {
		if _, err := e.Store.Upsert(ctx, TableMembers, ent); err != nil {
			return fmt.Errorf("add member: %w", err)
		}
	}
	return nil
}

// UserGroups lists the groups a user belongs to.
func (e *Engine) UserGroups(ctx context.Context, userID string) ([]string, error) {
	var out []string
	if err := e.scanPartition(ctx, TableMembers, groupsOfUserPK(userID), func(ent Entity) { out = append(out, ent.RowKey) }); err != nil {
		return nil, fmt.Errorf("list groups of %s: %w", userID, err)
	}
	sort.Strings(out)
	return out, nil
}

// GroupMembers lists a group's members.
func (e *Engine) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	var out []string
	if err := e.scanPartition(ctx, TableMembers, memberOfGroupPK(groupID), func(ent Entity) { out = append(out, ent.RowKey) }); err != nil {
		return nil, fmt.Errorf("list members of %s: %w", groupID, err)
	}
	return out, nil
}

func (e *Engine) removeMemberships(ctx context.Context, userID string) error {
	groups, err := e.UserGroups(ctx, userID)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if err := e.Store.Delete(ctx, TableMembers, memberOfGroupPK(g), userID, ""); err != nil {
			return fmt.Errorf("remove %s from group %s: %w", userID, g, err)
		}
		if err := e.Store.Delete(ctx, TableMembers, groupsOfUserPK(userID), g, ""); err != nil {
			return fmt.Errorf("remove %s from group %s: %w", userID, g, err)
		}
	}
	return nil
}
