package dirsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/entrasync/entrasync/internal/rules"
)

// A run evaluates memberships and scope with what it snapshotted at its
// start: the settings (on the run row) and the dynamic groups (in the pages
// table, partition "<run>|groups"), so every worker of one run decides
// alike, whatever an admin edits meanwhile; the edit is picked up by the
// next run (groupsHash differs: it evaluates every user again).

// evaluateStamp is the page stamp the evaluate step versions memberships
// with: after every page of the run, before its sweep.
const evaluateStamp = int64(1) << 39

// deleteStamp versions the memberships a deletion removes.
const deleteStamp = int64(1) << 41

// groupsPerSnapshotRow bounds one snapshot row (a rule is at most 3,072
// characters; 50 of them stay well under a row's 1 MiB).
const groupsPerSnapshotRow = 50

// runGroups is what a run decides memberships and scope with.
type runGroups struct {
	dynamic []compiledGroup // sorted by id
	// scopeRule is Settings.ScopeRule compiled (nil: none).
	scopeRule *rules.Rule
	// userScope holds Settings.UserScope: ids as they are, UPNs lower-cased.
	userScope map[string]bool
	env       rules.Env
	mirror    bool
	scoped    bool // GroupScope or UserScope is set
	// selectAttrs are the Graph attributes to read: mapped ones and those
	// the rules read. rawAttrs are those kept on the row as Graph sent them
	// (fallbacks and rule properties), so a partial delta update can be
	// merged and a rule evaluated later without reading the user again.
	selectAttrs, rawAttrs []string
}

// scopes reports whether anything limits who is synced.
func (rg *runGroups) scopes() bool { return rg.scoped || rg.scopeRule != nil }

type compiledGroup struct {
	id   string
	rule *rules.Rule
}

// groupsHash identifies a set of dynamic groups and their rules.
func groupsHash(groups []Group) string {
	if len(groups) == 0 {
		return "" // as a directory that never had groups
	}
	var b strings.Builder
	for _, g := range groups {
		if g.Kind == GroupDynamic {
			fmt.Fprintf(&b, "%s\x00%s\x00", g.ID, g.Rule)
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

// dynamicGroups reads the current dynamic group definitions, sorted by id.
func (e *Engine) dynamicGroups(ctx context.Context) ([]Group, error) {
	var out []Group
	if err := e.scanPartition(ctx, TableGroups, string(GroupDynamic), func(ent Entity) { out = append(out, groupFromEntity(ent)) }); err != nil {
		return nil, fmt.Errorf("read dynamic groups: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// snapshotGroups writes the run's dynamic groups (id and rule) in one batch.
func (e *Engine) snapshotGroups(ctx context.Context, runID string, groups []Group) error {
	var ops []BatchOp
	for i := 0; i < len(groups); i += groupsPerSnapshotRow {
		chunk := groups[i:min(i+groupsPerSnapshotRow, len(groups))]
		type item struct{ ID, Rule string }
		items := make([]item, len(chunk))
		for j, g := range chunk {
			items[j] = item{g.ID, g.Rule}
		}
		b, _ := json.Marshal(items)
		props := map[string]any{}
		putChunked(props, "groups", string(b))
		ops = append(ops, BatchOp{Kind: BatchInsert, Entity: Entity{PartitionKey: runID + "|groups", RowKey: fmt.Sprintf("%04d", i/groupsPerSnapshotRow), Props: props}})
	}
	if len(ops) == 0 {
		return nil
	}
	if err := e.Store.Batch(ctx, TablePages, ops); err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("snapshot dynamic groups: %w", err)
	}
	return nil
}

var runGroupsCache sync.Map // run id → *runGroups

// runGroups returns the run's snapshot, compiled; cached per run (it never
// changes).
func (e *Engine) runGroups(ctx context.Context, run Run, s Settings) (*runGroups, error) {
	if rg, ok := runGroupsCache.Load(run.ID + "|" + e.cacheKey()); ok {
		return rg.(*runGroups), nil
	}
	rg := &runGroups{env: rules.Env{Now: run.StartedAt}, mirror: s.MirrorGroups && len(s.GroupScope) > 0,
		scoped: len(s.GroupScope) > 0 || len(s.UserScope) > 0, userScope: map[string]bool{}}
	for _, u := range s.UserScope {
		rg.userScope[strings.ToLower(u)] = true // ids and UPNs both compare case-insensitively
	}
	if s.ScopeRule != "" {
		r, err := rules.Parse(s.ScopeRule)
		if err != nil {
			return nil, errPermanent{&Error{Code: EINVALID, Message: "the scoping rule in the settings does not parse: " + err.Error(),
				Hint: "Correct scopeRule in the settings (PUT /api/settings), then sync again."}}
		}
		rg.scopeRule = r
	}
	var bad []string
	var snapshot []Group
	err := e.scanPartition(ctx, TablePages, run.ID+"|groups", func(ent Entity) {
		var items []struct{ ID, Rule string }
		if json.Unmarshal([]byte(getChunked(ent, "groups")), &items) != nil {
			bad = append(bad, ent.RowKey)
			return
		}
		for _, it := range items {
			snapshot = append(snapshot, Group{ID: it.ID, Kind: GroupDynamic, Rule: it.Rule})
			r, err := rules.Parse(it.Rule)
			if err != nil {
				bad = append(bad, it.ID) // validated when saved; never evaluated as "matches nothing" silently
				continue
			}
			rg.dynamic = append(rg.dynamic, compiledGroup{id: it.ID, rule: r})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read the run's groups: %w", err)
	}
	if len(bad) > 0 {
		return nil, errPermanent{&Error{Code: EINVALID, Message: "the rules of dynamic group(s) " + strings.Join(bad, ", ") + " cannot be read",
			Hint: "Open the group(s) with GET /api/groups/{id}, save a valid rule with PUT, then sync again."}}
	}
	sort.Slice(rg.dynamic, func(i, j int) bool { return rg.dynamic[i].id < rg.dynamic[j].id })
	rg.selectAttrs, rg.rawAttrs = runAttributes(s, snapshot)
	runGroupsCache.Store(run.ID+"|"+e.cacheKey(), rg)
	return rg, nil
}

// cacheKey separates the caches of engines on different stores (tests run
// many in one process).
func (e *Engine) cacheKey() string {
	if p, ok := e.Store.(*previewStore); ok {
		return fmt.Sprintf("%p", p.Store)
	}
	return fmt.Sprintf("%p", e.Store)
}

// ruleAttributes is a user's attributes as rules read them.
func ruleAttributes(id string, attrs map[string]string) rules.User {
	if _, ok := attrs["id"]; !ok {
		withID := make(map[string]string, len(attrs)+1)
		for k, v := range attrs {
			withID[k] = v
		}
		withID["id"] = id
		attrs = withID
	}
	return rules.FromGraph(attrs)
}

// groupsOf returns the groups a user with these attributes belongs to if
// synced: the dynamic groups whose rule matches, and (mirroring) the
// selected Entra groups that contain it. A rule that cannot evaluate the
// user's value is reported, and counts as no match.
func (rg *runGroups) groupsOf(id string, attrs map[string]string, inGroups []string) (groups []string, problems []string) {
	u := ruleAttributes(id, attrs)
	for _, g := range rg.dynamic {
		ok, err := g.rule.Match(u, rg.env)
		if err != nil {
			problems = append(problems, fmt.Sprintf("group %s: %v", g.id, err))
			continue
		}
		if ok {
			groups = append(groups, g.id)
		}
	}
	if rg.mirror {
		groups = append(groups, inGroups...)
	}
	sort.Strings(groups)
	return slices.Compact(groups), problems
}

// inScope decides whether a user is synced: (no group or user scope, or in
// a selected group, or selected) and (no scoping rule, or matching it).
// why says, for a user out of scope, what it lacks.
func (rg *runGroups) inScope(id string, attrs map[string]string, inGroups []string) (ok bool, why string) {
	if rg.scoped && len(inGroups) == 0 && !rg.userScope[strings.ToLower(id)] && !rg.userScope[strings.ToLower(attrs["userPrincipalName"])] {
		return false, "not a member of any selected group, and not a selected user"
	}
	if rg.scopeRule != nil {
		match, err := rg.scopeRule.Match(ruleAttributes(id, attrs), rg.env)
		if err != nil {
			return false, "the scoping rule cannot evaluate this user: " + err.Error()
		}
		if !match {
			return false, "does not match the scoping rule"
		}
	}
	return true, ""
}

// runAttributes returns what a run with these settings and groups selects
// from Graph and keeps raw on the rows.
func runAttributes(s Settings, groups []Group) (selectAttrs, rawAttrs []string) {
	props := ruleProperties(s, groups)
	selectAttrs = s.SelectAttributes()
	rawAttrs = s.rawAttributes()
	mapped := map[string]bool{}
	for _, m := range s.Mapping {
		if m.Source != "" && m.Fallback == "" && m.Constant == "" {
			mapped[m.Source] = true
		}
	}
	for _, p := range props {
		if !slices.Contains(selectAttrs, p) {
			selectAttrs = append(selectAttrs, p)
		}
		if !mapped[p] && !slices.Contains(rawAttrs, p) && p != "id" && p != "userPrincipalName" {
			rawAttrs = append(rawAttrs, p)
		}
	}
	sort.Strings(selectAttrs)
	return selectAttrs, rawAttrs
}
