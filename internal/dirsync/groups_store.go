package dirsync

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/entrasync/entrasync/internal/rules"
)

// Limits of dynamic groups.
const (
	// MaxDynamicGroups is the most dynamic groups an installation holds:
	// every run evaluates every rule against every synced user.
	MaxDynamicGroups = 500
	// MaxGroupNameChars and MaxGroupDescriptionChars bound a group's texts
	// (in characters, after trimming).
	MaxGroupNameChars        = 256
	MaxGroupDescriptionChars = 1024
)

// groupsUpdatedBySync is UpdatedBy of the groups the engine writes.
const groupsUpdatedBySync = "sync"

// GroupStore keeps the directory groups (TableGroups) and audits the
// changes admins make to them in the settings' audit trail. Dynamic groups
// are the admins'; mirrored groups are the engine's (PutMirrored,
// DeleteMirrored). Membership is not kept here: the engine evaluates it on
// its runs (User.Groups, and the per-group index of members.go).
type GroupStore struct {
	Store  Store
	Now    func() time.Time
	Logger *slog.Logger
	// Random fills b with random bytes (default crypto/rand): group ids
	// and audit row keys.
	Random func(b []byte)
}

func (gs *GroupStore) now() time.Time {
	if gs.Now != nil {
		return gs.Now().UTC()
	}
	return time.Now().UTC()
}

func (gs *GroupStore) trail() auditTrail {
	return auditTrail{store: gs.Store, now: gs.now, random: gs.Random}
}

// List returns every group, dynamic and mirrored, sorted by display name
// (case-insensitively) and then id.
//
// Errors: store errors as they come.
func (gs *GroupStore) List(ctx context.Context) ([]Group, error) {
	var out []Group
	for _, kind := range []GroupKind{GroupDynamic, GroupMirrored} {
		groups, err := gs.listKind(ctx, kind)
		if err != nil {
			return nil, err
		}
		out = append(out, groups...)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i].DisplayName), strings.ToLower(out[j].DisplayName)
		if a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (gs *GroupStore) listKind(ctx context.Context, kind GroupKind) ([]Group, error) {
	var out []Group
	q := Query{PartitionKey: string(kind)}
	for {
		page, err := gs.Store.Query(ctx, TableGroups, q)
		if err != nil {
			return nil, fmt.Errorf("list %s groups: %w", kind, err)
		}
		for _, ent := range page.Entities {
			out = append(out, groupFromEntity(ent))
		}
		if page.Continuation == "" {
			return out, nil
		}
		q.Continuation = page.Continuation
	}
}

func groupNotFound(id string) error {
	return Errorf(ENOTFOUND, "group %s does not exist", id).
		WithHint("List the groups with GET /api/groups; a mirrored group leaves when it leaves groupScope or Entra.")
}

func badGroupID(id string) error {
	return Errorf(EINVALID, "%q is not a group id (a GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e)", id).
		WithHint("List the groups and their ids with GET /api/groups.")
}

// Get returns one group of either kind, with its ETag.
//
// Errors: EINVALID for an id that is not a GUID, ENOTFOUND when no group has
// it, store errors as they come.
func (gs *GroupStore) Get(ctx context.Context, id string) (Group, error) {
	if !validObjectID(id) {
		return Group{}, badGroupID(id)
	}
	id = strings.ToLower(id)
	for _, kind := range []GroupKind{GroupDynamic, GroupMirrored} {
		ent, err := gs.Store.Get(ctx, TableGroups, string(kind), id)
		if err == nil {
			return groupFromEntity(ent), nil
		}
		if !IsCode(err, ENOTFOUND) {
			return Group{}, fmt.Errorf("get group %s: %w", id, err)
		}
	}
	return Group{}, groupNotFound(id)
}

func errMirroredByAdmin() error {
	return Errorf(EINVALID, "mirrored groups follow Entra; change groupScope/mirrorGroups in the settings").
		WithHint("Admins create and edit dynamic groups only (kind \"dynamic\", with a rule). A mirrored group mirrors an Entra group of groupScope while mirrorGroups is on.")
}

// validateDynamic trims g's texts and checks them and the rule.
func validateDynamic(g *Group) error {
	hint := "Correct the group and send it again; nothing was changed."
	g.DisplayName = strings.TrimSpace(g.DisplayName)
	g.Description = strings.TrimSpace(g.Description)
	g.Rule = strings.TrimSpace(g.Rule)
	if g.DisplayName == "" {
		return Errorf(EINVALID, "group: displayName is empty; give the group a name").WithHint("%s", hint)
	}
	if n := utf8.RuneCountInString(g.DisplayName); n > MaxGroupNameChars {
		return Errorf(EINVALID, "group: displayName has %d characters; at most %d are allowed", n, MaxGroupNameChars).WithHint("%s", hint)
	}
	if strings.ContainsFunc(g.DisplayName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Errorf(EINVALID, "group: displayName contains a control character (a line break or tab)").WithHint("%s", hint)
	}
	if n := utf8.RuneCountInString(g.Description); n > MaxGroupDescriptionChars {
		return Errorf(EINVALID, "group: description has %d characters; at most %d are allowed", n, MaxGroupDescriptionChars).WithHint("%s", hint)
	}
	if g.Rule == "" {
		return Errorf(EINVALID, "group: rule is empty; a dynamic group needs a membership rule such as user.department -eq \"Finance\"").
			WithHint("Write the rule in Entra's dynamic membership syntax; POST /api/groups/validate-rule checks it and counts who it matches.")
	}
	if _, err := rules.Parse(g.Rule); err != nil {
		return Errorf(EINVALID, "group: rule: %v", err).
			WithHint("Fix the rule at that position; POST /api/groups/validate-rule checks a rule without saving it. Nothing was changed.")
	}
	return nil
}

// checkDynamicName returns ECONFLICT when another dynamic group than self
// has name (case-insensitively), and the number of dynamic groups.
func (gs *GroupStore) checkDynamicName(ctx context.Context, name, self string) (int, error) {
	groups, err := gs.listKind(ctx, GroupDynamic)
	if err != nil {
		return 0, err
	}
	for _, o := range groups {
		if o.ID != self && strings.EqualFold(o.DisplayName, name) {
			return 0, Errorf(ECONFLICT, "a dynamic group named %q already exists (id %s)", o.DisplayName, o.ID).
				WithHint("Pick another displayName, or edit that group with PUT /api/groups/%s.", o.ID)
		}
	}
	return len(groups), nil
}

// newGroupID returns a random (version 4) GUID.
func (gs *GroupStore) newGroupID() string {
	var b [16]byte
	if gs.Random != nil {
		gs.Random(b[:])
	} else {
		rand.Read(b[:])
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func groupJSON(g *Group) json.RawMessage {
	if g == nil {
		return nil
	}
	b, _ := json.Marshal(g)
	return b
}

// Create adds a dynamic group: it generates the id, trims and checks the
// display name (1 to MaxGroupNameChars characters, unique among dynamic
// groups regardless of case), the description (at most
// MaxGroupDescriptionChars) and the rule (required; it must parse). The
// audit row ("group.create") is written first. Members are not evaluated
// here: the engine's next run does it.
//
// Errors: EINVALID for a kind other than dynamic (mirrored groups are the
// engine's), a bad field (the message names it; for the rule it carries the
// parser's position and what was expected) or when MaxDynamicGroups exist;
// ECONFLICT when another dynamic group has the name; store errors as they
// come (then nothing was created).
func (gs *GroupStore) Create(ctx context.Context, g Group, who string) (Group, error) {
	if g.Kind == "" {
		g.Kind = GroupDynamic
	}
	if g.Kind != GroupDynamic {
		return Group{}, errMirroredByAdmin()
	}
	if err := validateDynamic(&g); err != nil {
		return Group{}, err
	}
	n, err := gs.checkDynamicName(ctx, g.DisplayName, "")
	if err != nil {
		return Group{}, err
	}
	if n >= MaxDynamicGroups {
		return Group{}, Errorf(EINVALID, "there are %d dynamic groups already; at most %d are allowed", n, MaxDynamicGroups).
			WithHint("Delete a dynamic group you no longer need (DELETE /api/groups/{id}), or widen an existing group's rule.")
	}
	now := gs.now()
	g.ID, g.CreatedAt, g.UpdatedAt, g.UpdatedBy, g.ETag = gs.newGroupID(), now, now, who, ""
	err = gs.trail().audited(ctx, AuditEntry{Who: who, Action: "group.create", After: groupJSON(&g)}, func() error {
		etag, err := gs.Store.Insert(ctx, TableGroups, groupToEntity(g))
		g.ETag = etag
		return err
	})
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// getDynamic reads a group an admin is changing: ENOTFOUND when missing,
// EINVALID when it is a mirrored one.
func (gs *GroupStore) getDynamic(ctx context.Context, id string) (Group, error) {
	cur, err := gs.Get(ctx, id)
	if err != nil {
		return Group{}, err
	}
	if cur.Kind != GroupDynamic {
		return Group{}, errMirroredByAdmin()
	}
	return cur, nil
}

func checkIfMatch(ifMatch, etag, id string) error {
	if ifMatch == "" {
		return Errorf(EINVALID, "changing group %s needs the ETag of the version you read", id).
			WithHint("GET /api/groups/%s and send its ETag header back in If-Match (or * to overwrite).", id)
	}
	if ifMatch != "*" && ifMatch != etag {
		return Errorf(EPRECONDITION, "group %s was changed by someone else since you read it", id).
			WithHint("GET /api/groups/%s again, re-apply your change, and send it with the new ETag in If-Match.", id)
	}
	return nil
}

// Update replaces a dynamic group's displayName, description and rule
// (checked as in Create). ifMatch is the ETag the caller read ("*"
// overwrites whatever is there); the kind cannot change. The audit row
// ("group.update", before and after) is written first. Members are
// re-evaluated by the engine's next run.
//
// Errors: EINVALID for a bad field, an empty ifMatch, a change of kind, or a
// mirrored group; ENOTFOUND when the group does not exist; EPRECONDITION
// when ifMatch is stale; ECONFLICT when another dynamic group has the name;
// store errors as they come (then nothing was changed).
func (gs *GroupStore) Update(ctx context.Context, g Group, ifMatch, who string) (Group, error) {
	cur, err := gs.getDynamic(ctx, g.ID)
	if err != nil {
		return Group{}, err
	}
	if g.Kind != "" && g.Kind != cur.Kind {
		return Group{}, Errorf(EINVALID, "group %s is %s; the kind of a group cannot change", cur.ID, cur.Kind).
			WithHint("Leave kind out, or create a new group of the other kind.")
	}
	if err := checkIfMatch(ifMatch, cur.ETag, cur.ID); err != nil {
		return Group{}, err
	}
	if err := validateDynamic(&g); err != nil {
		return Group{}, err
	}
	if _, err := gs.checkDynamicName(ctx, g.DisplayName, cur.ID); err != nil {
		return Group{}, err
	}
	next := cur
	next.DisplayName, next.Description, next.Rule = g.DisplayName, g.Description, g.Rule
	next.UpdatedAt, next.UpdatedBy = gs.now(), who
	err = gs.trail().audited(ctx, AuditEntry{Who: who, Action: "group.update", Before: groupJSON(&cur), After: groupJSON(&next)}, func() error {
		// Conditional on the version read, also for "*": a group deleted
		// meanwhile must not come back.
		etag, err := gs.Store.Replace(ctx, TableGroups, groupToEntity(next))
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return Errorf(EPRECONDITION, "group %s was changed or deleted by someone else at the same moment", cur.ID).
				WithHint("GET /api/groups/%s again and re-apply your change.", cur.ID)
		}
		next.ETag = etag
		return err
	})
	if err != nil {
		return Group{}, fmt.Errorf("update group: %w", err)
	}
	return next, nil
}

// Delete removes a dynamic group (audited as "group.delete"). ifMatch as in
// Update. The group's members are not touched here: the engine's next run
// re-evaluates every user's groups, which drops the deleted group from
// User.Groups and from the member index.
//
// Errors: EINVALID for an empty ifMatch or a mirrored group (the settings
// decide those); ENOTFOUND when the group does not exist; EPRECONDITION
// when ifMatch is stale; store errors as they come.
func (gs *GroupStore) Delete(ctx context.Context, id, ifMatch, who string) error {
	cur, err := gs.getDynamic(ctx, id)
	if err != nil {
		return err
	}
	if err := checkIfMatch(ifMatch, cur.ETag, cur.ID); err != nil {
		return err
	}
	err = gs.trail().audited(ctx, AuditEntry{Who: who, Action: "group.delete", Before: groupJSON(&cur)}, func() error {
		err := gs.Store.Delete(ctx, TableGroups, string(GroupDynamic), cur.ID, cur.ETag)
		if IsCode(err, EPRECONDITION) {
			return Errorf(EPRECONDITION, "group %s was changed by someone else at the same moment", cur.ID).
				WithHint("GET /api/groups/%s again and decide again.", cur.ID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete group %s: %w", cur.ID, err)
	}
	return nil
}

// PutMirrored creates or updates the row of a mirrored group (the Entra
// group's object id and displayName), for the engine. UpdatedBy is "sync";
// CreatedAt is kept from an existing row. It is not audited: it follows
// Entra, not an admin.
//
// Errors: EINVALID for an id that is not a GUID, store errors as they come.
func (gs *GroupStore) PutMirrored(ctx context.Context, g Group) error {
	if !validObjectID(g.ID) {
		return badGroupID(g.ID)
	}
	g.ID = strings.ToLower(g.ID)
	g.Kind, g.Rule, g.UpdatedBy, g.ETag = GroupMirrored, "", groupsUpdatedBySync, ""
	now := gs.now()
	g.UpdatedAt = now
	if g.CreatedAt.IsZero() {
		g.CreatedAt = now
		ent, err := gs.Store.Get(ctx, TableGroups, string(GroupMirrored), g.ID)
		switch {
		case err == nil:
			g.CreatedAt = groupFromEntity(ent).CreatedAt
		case !IsCode(err, ENOTFOUND):
			return fmt.Errorf("put mirrored group %s: %w", g.ID, err)
		}
	}
	if _, err := gs.Store.Upsert(ctx, TableGroups, groupToEntity(g)); err != nil {
		return fmt.Errorf("put mirrored group %s: %w", g.ID, err)
	}
	return nil
}

// DeleteMirrored removes the row of a mirrored group, for the engine; a
// missing row is not an error. Like Delete, it leaves the members to the
// run's evaluation.
//
// Errors: EINVALID for an id that is not a GUID, store errors as they come.
func (gs *GroupStore) DeleteMirrored(ctx context.Context, id string) error {
	if !validObjectID(id) {
		return badGroupID(id)
	}
	if err := gs.Store.Delete(ctx, TableGroups, string(GroupMirrored), strings.ToLower(id), ""); err != nil {
		return fmt.Errorf("delete mirrored group %s: %w", id, err)
	}
	return nil
}

// Groups returns the engine's GroupStore.
func (e *Engine) Groups() *GroupStore {
	return &GroupStore{Store: e.Store, Now: e.now, Logger: e.log(), Random: e.Random}
}

// ListGroups is GroupStore.List.
func (e *Engine) ListGroups(ctx context.Context) ([]Group, error) { return e.Groups().List(ctx) }

// GetGroup is GroupStore.Get.
func (e *Engine) GetGroup(ctx context.Context, id string) (Group, error) {
	return e.Groups().Get(ctx, id)
}

// CreateGroup is GroupStore.Create.
func (e *Engine) CreateGroup(ctx context.Context, g Group, who string) (Group, error) {
	return e.Groups().Create(ctx, g, who)
}

// UpdateGroup is GroupStore.Update.
func (e *Engine) UpdateGroup(ctx context.Context, g Group, ifMatch, who string) (Group, error) {
	return e.Groups().Update(ctx, g, ifMatch, who)
}

// DeleteGroup is GroupStore.Delete.
func (e *Engine) DeleteGroup(ctx context.Context, id, ifMatch, who string) error {
	return e.Groups().Delete(ctx, id, ifMatch, who)
}
