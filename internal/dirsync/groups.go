package dirsync

import (
	"time"
)

// GroupKind says where a directory group's members come from.
type GroupKind string

// Group kinds.
const (
	// GroupDynamic groups hold the synced users matching a rule in Entra's
	// dynamic membership language; admins create and edit them.
	GroupDynamic GroupKind = "dynamic"
	// GroupMirrored groups mirror an Entra group of Settings.GroupScope with
	// its synced (transitive) user members; the engine keeps them, admins
	// only read them.
	GroupMirrored GroupKind = "mirrored"
)

// Group is a directory group. Rows live in TableGroups, partition = kind,
// row key = ID. A user's memberships are held on the user's row (User.Groups,
// written with the user under the page stamps) and indexed per group in
// TableMembers (see members.go).
type Group struct {
	// ID is a GUID: generated for dynamic groups, the Entra object id for
	// mirrored ones.
	ID          string    `json:"id"`
	Kind        GroupKind `json:"kind"`
	DisplayName string    `json:"displayName"`
	Description string    `json:"description,omitempty"`
	// Rule is a dynamic group's membership rule (internal/rules syntax).
	Rule string `json:"rule,omitempty"`
	// ETag versions the row (If-Match on PUT and DELETE).
	ETag      string    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// UpdatedBy is who last changed the group (an admin, or "sync").
	UpdatedBy string `json:"updatedBy,omitempty"`
}

func groupToEntity(g Group) Entity {
	return Entity{PartitionKey: string(g.Kind), RowKey: g.ID, ETag: g.ETag, Props: map[string]any{
		"displayName": g.DisplayName, "description": g.Description, "rule": g.Rule,
		"createdAt": g.CreatedAt.UTC(), "updatedAt": g.UpdatedAt.UTC(), "updatedBy": g.UpdatedBy,
	}}
}

func groupFromEntity(e Entity) Group {
	return Group{ID: e.RowKey, Kind: GroupKind(e.PartitionKey), DisplayName: e.Str("displayName"), Description: e.Str("description"),
		Rule: e.Str("rule"), ETag: e.ETag, CreatedAt: e.Time("createdAt"), UpdatedAt: e.Time("updatedAt"), UpdatedBy: e.Str("updatedBy")}
}
