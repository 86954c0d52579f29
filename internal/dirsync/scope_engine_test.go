package dirsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// groupSource adds a small, exact model of Entra groups to the fake users
// source: direct members (users or groups), a version per change, groups
// delta rounds that report groups changed since a link's version, and
// transitive members.
type groupSource struct {
	*dirsynctest.Source
	mu      sync.Mutex
	ver     int
	names   map[string]string
	members map[string][]string // direct members
	changed map[string]int      // group → version of its last change
	deleted map[string]bool
	// expired makes every groups delta link answer ETOKENEXPIRED.
	expired bool
}

func newGroupSource(src *dirsynctest.Source) *groupSource {
	return &groupSource{Source: src, names: map[string]string{}, members: map[string][]string{}, changed: map[string]int{}, deleted: map[string]bool{}}
}

func (g *groupSource) touch(id string) { g.ver++; g.changed[id] = g.ver }

func (g *groupSource) put(id, name string, members ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.names[id], g.members[id] = name, members
	delete(g.deleted, id)
	g.touch(id)
}

func (g *groupSource) remove(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleted[id] = true
	g.touch(id)
}

func (g *groupSource) GroupsDelta(ctx context.Context, req dirsync.GroupDeltaRequest) (dirsync.GroupPage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	since, ids := -1, req.GroupIDs
	if req.Link != "" && g.expired {
		return dirsync.GroupPage{}, &dirsync.Error{Code: dirsync.ETOKENEXPIRED, Message: "the groups delta token has expired"}
	}
	if req.Link != "" {
		var list string
		fmt.Sscanf(req.Link, "groups|%d|%s", &since, &list)
		ids = strings.Split(list, ",")
	}
	var page dirsync.GroupPage
	for _, id := range ids {
		if _, known := g.names[id]; !known || g.changed[id] <= since {
			continue
		}
		sg := dirsync.SourceGroup{ID: id, DisplayName: g.names[id]}
		if g.deleted[id] {
			sg.Removed = dirsync.RemovedDeleted
		} else {
			sg.MembersAdded = []string{"changed"}
		}
		page.Groups = append(page.Groups, sg)
	}
	page.DeltaLink = fmt.Sprintf("groups|%d|%s", g.ver, strings.Join(ids, ","))
	return page, nil
}

func (g *groupSource) GroupTransitiveMembers(ctx context.Context, groupID, link string) (dirsync.MemberPage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.names[groupID]; !ok || g.deleted[groupID] {
		return dirsync.MemberPage{}, dirsync.Errorf(dirsync.ENOTFOUND, "group %s not found", groupID)
	}
	users, groups := map[string]bool{}, map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		for _, m := range g.members[id] {
			if _, isGroup := g.names[m]; isGroup {
				if !groups[m] && !g.deleted[m] {
					groups[m] = true
					walk(m)
				}
				continue
			}
			users[m] = true
		}
	}
	walk(groupID)
	var page dirsync.MemberPage
	for u := range users {
		page.UserIDs = append(page.UserIDs, u)
	}
	for m := range groups {
		page.GroupIDs = append(page.GroupIDs, m)
	}
	sort.Strings(page.UserIDs)
	sort.Strings(page.GroupIDs)
	return page, nil
}

func gid(n int) string { return fmt.Sprintf("00000000-0000-4000-a000-%012d", n) }

func (e *env) activeIDs() []string {
	var ids []string
	for id := range e.directory(dirsync.StatusActive) {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func TestGroupScopeFollowsNestedMembershipAndHoldsOnDeletion(t *testing.T) {
	e := newEnv(t)
	setThreshold(t, e, dirsync.DeletionThreshold{})
	src := newGroupSource(e.Source)
	e.Engine.Source = src
	e.Seed(8)
	// Sales contains users 1 and 2 and the group Sales EMEA (user 3), which
	// contains Sales Nordics (user 4).
	src.put(gid(3), "Sales Nordics", uid(4))
	src.put(gid(2), "Sales EMEA", uid(3), gid(3))
	src.put(gid(1), "Sales", uid(1), uid(2), gid(2))
	src.put(gid(9), "Unrelated", uid(7))

	ctx := context.Background()
	s, etag, _ := e.Engine.Settings(ctx)
	s.GroupScope, s.MirrorGroups = []string{gid(1)}, true
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run = %s (%s)", run.Status, run.Error)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(4)}, e.activeIDs()); diff != "" {
		t.Errorf("scoped directory (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(4)}, e.members(gid(1))); diff != "" {
		t.Errorf("mirrored group members (-want +got):\n%s", diff)
	}
	if run.Counters.OutOfScope != 4 {
		t.Errorf("outOfScope = %d, want 4", run.Counters.OutOfScope)
	}

	// Nothing changed: a delta run, one groups request.
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run = %s/%s (%s), want a delta run", run.Status, run.Mode, run.Error)
	}

	// A change three levels down: user 4 leaves the nested group, user 5
	// joins it, and the top group is renamed.
	src.put(gid(3), "Sales Nordics", uid(5))
	src.put(gid(1), "Sales (all)", uid(1), uid(2), gid(2))
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run = %s (%s)", run.Status, run.Error)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(5)}, e.activeIDs()); diff != "" {
		t.Errorf("directory after the nested change (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(5)}, e.members(gid(1))); diff != "" {
		t.Errorf("mirrored members after the nested change (-want +got):\n%s", diff)
	}
	if g, err := e.Store.Get(ctx, dirsync.TableGroups, string(dirsync.GroupMirrored), gid(1)); err != nil || g.Str("displayName") != "Sales (all)" {
		t.Errorf("mirrored group = %v, %v; want renamed to Sales (all)", g.Props, err)
	}

	// The selected group is deleted in Entra: the run says so, and holds.
	src.remove(gid(1))
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunFailed || !strings.Contains(run.Error, "was deleted in Entra") || !strings.Contains(run.Hint, "groupScope") {
		t.Fatalf("run = %s: %s / %s; want failed naming the deleted group", run.Status, run.Error, run.Hint)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(5)}, e.activeIDs()); diff != "" {
		t.Errorf("a deleted scoped group removed users (-want +got):\n%s", diff)
	}
	if _, err := e.Store.Get(ctx, dirsync.TableGroups, string(dirsync.GroupMirrored), gid(1)); !dirsync.IsCode(err, dirsync.ENOTFOUND) {
		t.Errorf("the mirrored copy of the deleted group is still there: %v", err)
	}
}

func TestGroupScopeWithManyGroups(t *testing.T) {
	e := newEnv(t)
	setThreshold(t, e, dirsync.DeletionThreshold{})
	src := newGroupSource(e.Source)
	e.Engine.Source = src
	e.Seed(70)
	var scope []string
	for i := 1; i <= 60; i++ {
		src.put(gid(i), fmt.Sprintf("Team %d", i), uid(i))
		scope = append(scope, gid(i))
	}
	ctx := context.Background()
	s, etag, _ := e.Engine.Settings(ctx)
	s.GroupScope = scope
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run = %s (%s)", run.Status, run.Error)
	}
	got := e.activeIDs()
	if len(got) != 60 || slices.Contains(got, uid(61)) {
		t.Errorf("directory has %d users (want the 60 in the selected groups)", len(got))
	}
}

// Found by the simulator: the last scope item of a delta run, delivered
// again after the users pages began, met an expired groups link and started
// a new scope round; the users pages then read the new generation's scope
// rows while they were being written, found users in no selected group and
// recorded them as leaving. Once the users are read, a scope item changes
// nothing.
func TestNoScopeRoundStartsOnceTheUsersAreRead(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	setThreshold(t, e, dirsync.DeletionThreshold{})
	src := newGroupSource(e.Source)
	e.Engine.Source = src
	e.Seed(4)
	src.put(gid(1), "Sales", uid(1), uid(2))
	s, etag, _ := e.Engine.Settings(ctx)
	s.GroupScope = []string{gid(1)}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
		t.Fatalf("first run = %s (%s)", run.Status, run.Error)
	}

	p := person(1)
	p["jobTitle"] = "Manager"
	e.Source.Put(uid(1), p)
	run, err := e.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var scopeItem []byte
	redelivered := false
	run = e.Finish(run.ID, dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
		w, err := dirsync.DecodeWorkItem(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case w.Kind == dirsync.WorkScope && scopeItem == nil:
			scopeItem = m.Body
		case w.Kind == dirsync.WorkPage && !redelivered:
			redelivered = true
			// The scope item again, its link expired meanwhile; then the
			// first item of the round it would have started.
			src.mu.Lock()
			src.expired = true
			src.mu.Unlock()
			if err := e.Engine.HandleWork(ctx, scopeItem, dirsync.Delivery{Count: 2}); err != nil {
				t.Errorf("scope item delivered again: %v", err)
			}
			next, _ := json.Marshal(dirsync.WorkItem{Kind: dirsync.WorkScope, RunID: w.RunID, Epoch: w.Epoch, Cursor: "1"})
			if err := e.Engine.HandleWork(ctx, next, dirsync.Delivery{Count: 1}); err != nil {
				t.Errorf("next round's scope item: %v", err)
			}
			if r, _ := e.Engine.GetRun(ctx, w.RunID); r.ScopeRound != 0 {
				t.Errorf("a scope round started after the users pages began (round %d)", r.ScopeRound)
			}
		}
		return nil
	}})
	if !redelivered {
		t.Fatal("the run had no users page")
	}
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("run = %s/%s (%s), want a succeeded delta run", run.Status, run.Mode, run.Error)
	}
	if run.Counters.OutOfScope != 0 || run.Counters.Deleted != 0 || run.Counters.Updated != 1 {
		t.Errorf("counters = %+v, want 1 updated and nobody out of scope or deleted", run.Counters)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2)}, e.activeIDs()); diff != "" {
		t.Errorf("scoped directory (-want +got):\n%s", diff)
	}
}

// syncedScopedToSales is a synced directory of users 1..5 whose scope is
// group gid(1), "Sales", with users 1 and 2 in it.
func syncedScopedToSales(t *testing.T) (*env, string) {
	t.Helper()
	ctx := context.Background()
	e := newEnv(t)
	setThreshold(t, e, dirsync.DeletionThreshold{})
	e.Seed(5)
	g := gid(1)
	e.Source.PutGroup(g, "Sales")
	e.Source.AddGroupMember(g, uid(1))
	e.Source.AddGroupMember(g, uid(2))
	s, etag, _ := e.Engine.Settings(ctx)
	s.GroupScope = []string{g}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
		t.Fatalf("first run = %s (%s)", run.Status, run.Error)
	}
	return e, g
}

// A user who joins a selected group after a run's groups delta round and
// before its members are read is in scope from that read on; if it leaves
// the group before the next run, that run's round (from the link issued
// before the join) reports the group, renamed meanwhile, with no net
// member change. The scope is rebuilt all the same: any change of a
// tracked group reported by the round rebuilds it (found by the simulator,
// seed 1471, which then kept a user out of every selected group in the
// directory). A join and leave with no other change of the group may not
// be reported at all (docs/architecture.md, known limits).
func TestGroupReportedWithoutNetMemberChangeRebuildsTheScope(t *testing.T) {
	e, g := syncedScopedToSales(t)
	// User 4 joins (the round sees it and the members are read); user 3
	// joins after the round, before the members are read.
	e.Source.AddGroupMember(g, uid(4))
	joined := false
	run := e.Sync(dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
		if w, _ := dirsync.DecodeWorkItem(m.Body); w.Kind == dirsync.WorkScopeMembers && !joined {
			joined = true
			e.Source.AddGroupMember(g, uid(3))
		}
		return nil
	}})
	if run.Status != dirsync.RunSucceeded || !joined {
		t.Fatalf("second run = %s (%s), members read: %v", run.Status, run.Error, joined)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(4)}, e.activeIDs()); diff != "" {
		t.Fatalf("after the second run (-want +got):\n%s", diff)
	}
	e.Source.RemoveGroupMember(g, uid(3))
	e.Source.PutGroup(g, "Sales team")
	run = e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("third run = %s (%s)", run.Status, run.Error)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(4)}, e.activeIDs()); diff != "" {
		t.Errorf("after user 3 left the group (-want +got):\n%s", diff)
	}
}

// A rebuild reads the selected groups' members twice, around a
// confirmation round whose link is the one saved (scope.go, "Reading the
// members twice"). Before, the link saved was issued before the members
// were read: a member who joined in between and left before the next run
// (or left in between and came back) was a change the next round could
// leave out, and the scope stayed wrong until a full run (the simulator's
// seeds 1471 and 4868). Each case changes the group while the run is at a
// given item (kind, read), runs once more after a change, and checks the
// directory after both runs.
func TestMembersChangedDuringTheReadAreCaught(t *testing.T) {
	g := gid(1)
	type at struct {
		kind string
		pass int
	}
	firstRead, confirmation, secondRead := at{dirsync.WorkScopeMembers, 0}, at{dirsync.WorkScope, 1}, at{dirsync.WorkScopeMembers, 1}
	tests := []struct {
		name string
		// during changes the group when the run first reaches each item
		// named (once per key, in the order reached).
		during map[at]func(src *dirsynctest.Source)
		// wantRun is the directory after the run; then after changes the
		// group and wantNext is the directory after the next run.
		wantRun  []string
		after    func(src *dirsynctest.Source)
		wantNext []string
		// wantUnconfirmed: the members kept changing, the run saved no link.
		wantUnconfirmed bool
	}{
		{
			name:     "joined before the read, left after the run",
			during:   map[at]func(*dirsynctest.Source){firstRead: func(src *dirsynctest.Source) { src.AddGroupMember(g, uid(3)) }},
			wantRun:  []string{uid(1), uid(2), uid(3)},
			after:    func(src *dirsynctest.Source) { src.RemoveGroupMember(g, uid(3)) },
			wantNext: []string{uid(1), uid(2)},
		},
		{
			name:     "left before the read, came back after the run",
			during:   map[at]func(*dirsynctest.Source){firstRead: func(src *dirsynctest.Source) { src.RemoveGroupMember(g, uid(2)) }},
			wantRun:  []string{uid(1)},
			after:    func(src *dirsynctest.Source) { src.AddGroupMember(g, uid(2)) },
			wantNext: []string{uid(1), uid(2)},
		},
		{
			name: "joined before the first read, left before the second",
			during: map[at]func(*dirsynctest.Source){
				firstRead:    func(src *dirsynctest.Source) { src.AddGroupMember(g, uid(3)) },
				confirmation: func(src *dirsynctest.Source) { src.RemoveGroupMember(g, uid(3)) },
			},
			wantRun:  []string{uid(1), uid(2)},
			after:    func(*dirsynctest.Source) {},
			wantNext: []string{uid(1), uid(2)},
		},
		{
			name: "changing at every read: used as read, read again next time",
			during: map[at]func(*dirsynctest.Source){
				firstRead:  func(src *dirsynctest.Source) { src.AddGroupMember(g, uid(3)) },
				secondRead: func(src *dirsynctest.Source) { src.RemoveGroupMember(g, uid(3)); src.AddGroupMember(g, uid(4)) },
			},
			// Three rounds: the first read of each finds user 3 in and
			// user 4 out, the second the other way round (below). The
			// run uses its last first read; the next run reads again.
			wantRun:         []string{uid(1), uid(2), uid(3)},
			after:           func(src *dirsynctest.Source) { src.RemoveGroupMember(g, uid(4)) },
			wantNext:        []string{uid(1), uid(2)},
			wantUnconfirmed: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := syncedScopedToSales(t)
			// A change the round reports, so that the run rebuilds the scope.
			e.Source.PutGroup(g, "Sales team")
			done := map[at]int{}
			flip := tc.wantUnconfirmed
			run := e.Sync(dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
				w, _ := dirsync.DecodeWorkItem(m.Body)
				k := at{w.Kind, w.Bucket}
				f := tc.during[k]
				if f == nil || (done[k] > 0 && !flip) || w.Seq != 0 || w.Page != 0 || count > 1 {
					return nil
				}
				done[k]++
				if flip && done[k] > 1 {
					// Later rounds: undo at the first read what the
					// second read did, and do it again at the second.
					if k == firstRead {
						e.Source.RemoveGroupMember(g, uid(4))
						e.Source.AddGroupMember(g, uid(3))
						return nil
					}
				}
				f(e.Source)
				return nil
			}})
			if run.Status != dirsync.RunSucceeded {
				t.Fatalf("run = %s (%s)", run.Status, run.Error)
			}
			for k := range tc.during {
				if done[k] == 0 {
					t.Fatalf("the run never reached %v", k)
				}
			}
			if run.ScopeUnconfirmed != tc.wantUnconfirmed {
				t.Errorf("run: unconfirmed %v after round %d, want %v", run.ScopeUnconfirmed, run.ScopeRound, tc.wantUnconfirmed)
			}
			if diff := cmp.Diff(tc.wantRun, e.activeIDs()); diff != "" {
				t.Errorf("after the run (-want +got):\n%s", diff)
			}
			tc.after(e.Source)
			if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
				t.Fatalf("next run = %s (%s)", run.Status, run.Error)
			}
			if diff := cmp.Diff(tc.wantNext, e.activeIDs()); diff != "" {
				t.Errorf("after the next run (-want +got):\n%s", diff)
			}
		})
	}
}

// In the last round of a rebuild, a selected group whose members page is
// fetched again (a redelivery) with other members no longer ends the read:
// the run reads every selected group, uses the members as read and saves
// no link, so the next run reads them again. Before, it settled with the
// scope rows written so far, and the users of the groups not read yet
// left the directory (the simulator, seed 14766).
func TestLastRoundReadsEveryGroupWhenMembersMove(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	setThreshold(t, e, dirsync.DeletionThreshold{})
	e.Seed(5)
	sales, support := gid(1), gid(2)
	e.Source.PutGroup(sales, "Sales")
	e.Source.AddGroupMember(sales, uid(1))
	e.Source.AddGroupMember(sales, uid(2))
	e.Source.PutGroup(support, "Support")
	e.Source.AddGroupMember(support, uid(3))
	s, etag, _ := e.Engine.Settings(ctx)
	s.GroupScope = []string{sales, support}
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded {
		t.Fatalf("first run = %s (%s)", run.Status, run.Error)
	}
	e.Source.PutGroup(sales, "Sales team") // the next round reports it: a rebuild
	last := fmt.Sprint(dirsync.MaxScopeRounds - 1)
	seen := map[string]int{}
	run := e.Sync(dirsynctest.DrainOptions{Before: func(m dirsync.Message, count int) error {
		w, _ := dirsync.DecodeWorkItem(m.Body)
		seen[m.ID]++
		switch {
		case w.Kind == dirsync.WorkScope && w.Bucket == 1 && w.Cursor != last && seen[m.ID] == 1:
			// The confirmation round's link expires: a new round, until
			// the last.
			e.Source.Expire()
		case w.Kind == dirsync.WorkScopeMembers && w.Bucket == 0 && w.Seq == 0 && w.Cursor == last:
			switch seen[m.ID] {
			case 1: // the first attempt records the page and fails writing its rows
				e.Store.FailTable, e.Store.FailNext = dirsync.TableMembers, &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "storage is down"}
			case 2: // the group changes before it is fetched again
				e.Source.AddGroupMember(sales, uid(4))
			}
		}
		return nil
	}})
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run = %s (%s)", run.Status, run.Error)
	}
	if run.ScopeRound != dirsync.MaxScopeRounds-1 || !run.ScopeUnconfirmed {
		t.Errorf("run: round %d, unconfirmed %v; want the last round (%d), unconfirmed", run.ScopeRound, run.ScopeUnconfirmed, dirsync.MaxScopeRounds-1)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(4)}, e.activeIDs()); diff != "" {
		t.Errorf("after the run (-want +got):\n%s", diff)
	}
	if run := e.Sync(dirsynctest.DrainOptions{}); run.Status != dirsync.RunSucceeded || run.ScopeUnconfirmed {
		t.Fatalf("next run = %s (%s), unconfirmed %v; want succeeded, confirmed", run.Status, run.Error, run.ScopeUnconfirmed)
	}
	if diff := cmp.Diff([]string{uid(1), uid(2), uid(3), uid(4)}, e.activeIDs()); diff != "" {
		t.Errorf("after the next run (-want +got):\n%s", diff)
	}
}
