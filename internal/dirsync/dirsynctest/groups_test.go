package dirsynctest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// walkGroupRound follows a groups delta round to its delta link, merging the
// entries of a group split over several (as a caller of Graph must).
func walkGroupRound(t *testing.T, s *Source, req dirsync.GroupDeltaRequest) (map[string]dirsync.SourceGroup, string) {
	t.Helper()
	got := map[string]dirsync.SourceGroup{}
	for pages := 1; ; pages++ {
		page, err := s.GroupsDelta(context.Background(), req)
		if err != nil {
			t.Fatalf("GroupsDelta page %d: %v", pages, err)
		}
		if (page.NextLink == "") == (page.DeltaLink == "") {
			t.Fatalf("page %d: want exactly one of NextLink and DeltaLink, got %q and %q", pages, page.NextLink, page.DeltaLink)
		}
		if len(page.Groups) > DefaultGroupPageSize {
			t.Fatalf("page %d has %d entries, more than %d", pages, len(page.Groups), DefaultGroupPageSize)
		}
		for _, g := range page.Groups {
			if n := len(g.MembersAdded) + len(g.MembersRemoved) + len(g.GroupsAdded) + len(g.GroupsRemoved); n > DefaultGroupMembersPerPage {
				t.Errorf("group %s entry with %d members, more than %d", g.ID, n, DefaultGroupMembersPerPage)
			}
			acc := got[g.ID]
			acc.ID, acc.DisplayName, acc.Removed = g.ID, g.DisplayName, g.Removed
			acc.MembersAdded = append(acc.MembersAdded, g.MembersAdded...)
			acc.MembersRemoved = append(acc.MembersRemoved, g.MembersRemoved...)
			acc.GroupsAdded = append(acc.GroupsAdded, g.GroupsAdded...)
			acc.GroupsRemoved = append(acc.GroupsRemoved, g.GroupsRemoved...)
			got[g.ID] = acc
		}
		if page.DeltaLink != "" {
			return got, page.DeltaLink
		}
		req = dirsync.GroupDeltaRequest{Link: page.NextLink}
		if pages > 1000 {
			t.Fatal("the round never ends")
		}
	}
}

func uid(i int) string { return fmt.Sprintf("u%02d", i) }

// nestedTenant: users u00..u11; A holds B, u00 and u01; B holds C and u02;
// C holds u03..u11 (9 members: split over two entries) and A (a cycle).
func nestedTenant() *Source {
	s := NewSource()
	for i := range 12 {
		s.Put(uid(i), map[string]string{"displayName": uid(i)})
	}
	s.PutGroup("A", "Group A")
	s.PutGroup("B", "Group B")
	s.PutGroup("C", "Group C")
	s.PutGroup("D", "Group D")
	s.AddGroupMember("A", "B")
	s.AddGroupMember("A", uid(0))
	s.AddGroupMember("A", uid(1))
	s.AddGroupMember("B", "C")
	s.AddGroupMember("B", uid(2))
	for i := 3; i < 12; i++ {
		s.AddGroupMember("C", uid(i))
	}
	s.AddGroupMember("C", "A")
	return s
}

func TestGroupsDeltaFirstRound(t *testing.T) {
	s := nestedTenant()
	all := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, uid(i))
		}
		return out
	}
	tests := []struct {
		name   string
		filter []string
		want   map[string]dirsync.SourceGroup
	}{
		{"every group", nil, map[string]dirsync.SourceGroup{
			"A": {ID: "A", DisplayName: "Group A", MembersAdded: all(0, 2), GroupsAdded: []string{"B"}},
			"B": {ID: "B", DisplayName: "Group B", MembersAdded: all(2, 3), GroupsAdded: []string{"C"}},
			"C": {ID: "C", DisplayName: "Group C", MembersAdded: all(3, 12), GroupsAdded: []string{"A"}},
			"D": {ID: "D", DisplayName: "Group D"},
		}},
		{"filtered, with a missing id", []string{"C", "A", "nope", "A"}, map[string]dirsync.SourceGroup{
			"A": {ID: "A", DisplayName: "Group A", MembersAdded: all(0, 2), GroupsAdded: []string{"B"}},
			"C": {ID: "C", DisplayName: "Group C", MembersAdded: all(3, 12), GroupsAdded: []string{"A"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := walkGroupRound(t, s, dirsync.GroupDeltaRequest{GroupIDs: tt.filter})
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("first round (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGroupsDeltaLaterRounds(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *Source)
		filter []string
		want   map[string]dirsync.SourceGroup
	}{
		{"nothing changed", func(*Source) {}, nil, map[string]dirsync.SourceGroup{}},
		{"user added and removed", func(s *Source) {
			s.AddGroupMember("A", uid(5))
			s.RemoveGroupMember("A", uid(0))
		}, nil, map[string]dirsync.SourceGroup{
			"A": {ID: "A", DisplayName: "Group A", MembersAdded: []string{uid(5)}, MembersRemoved: []string{uid(0)}},
		}},
		{"nested group added and removed", func(s *Source) {
			s.AddGroupMember("D", "C")
			s.RemoveGroupMember("A", "B")
		}, nil, map[string]dirsync.SourceGroup{
			"A": {ID: "A", DisplayName: "Group A", GroupsRemoved: []string{"B"}},
			"D": {ID: "D", DisplayName: "Group D", GroupsAdded: []string{"C"}},
		}},
		{"renamed", func(s *Source) { s.PutGroup("B", "Group B2") }, nil, map[string]dirsync.SourceGroup{
			"B": {ID: "B", DisplayName: "Group B2"},
		}},
		{"renamed and back, added and removed again", func(s *Source) {
			s.PutGroup("B", "x")
			s.PutGroup("B", "Group B")
			s.AddGroupMember("B", uid(9))
			s.RemoveGroupMember("B", uid(9))
			s.RemoveGroupMember("B", uid(2))
			s.AddGroupMember("B", uid(2))
		}, nil, map[string]dirsync.SourceGroup{}},
		{"deleted: removed, and out of the group it was nested in", func(s *Source) { s.DeleteGroup("B") }, nil, map[string]dirsync.SourceGroup{
			"A": {ID: "A", DisplayName: "Group A", GroupsRemoved: []string{"B"}},
			"B": {ID: "B", Removed: dirsync.RemovedDeleted},
		}},
		{"created and deleted in between", func(s *Source) {
			s.PutGroup("E", "Group E")
			s.DeleteGroup("E")
		}, nil, map[string]dirsync.SourceGroup{}},
		{"created with members", func(s *Source) {
			s.PutGroup("E", "Group E")
			s.AddGroupMember("E", uid(1))
			s.AddGroupMember("E", "D")
		}, nil, map[string]dirsync.SourceGroup{
			"E": {ID: "E", DisplayName: "Group E", MembersAdded: []string{uid(1)}, GroupsAdded: []string{"D"}},
		}},
		{"user soft-deleted leaves its groups", func(s *Source) { s.Remove(uid(2), dirsync.RemovedChanged) }, nil, map[string]dirsync.SourceGroup{
			"B": {ID: "B", DisplayName: "Group B", MembersRemoved: []string{uid(2)}},
		}},
		{"user soft-deleted and restored is back", func(s *Source) {
			s.Remove(uid(2), dirsync.RemovedChanged)
			s.Put(uid(2), map[string]string{"displayName": "again"})
		}, nil, map[string]dirsync.SourceGroup{}},
		{"filter keeps to its groups", func(s *Source) {
			s.AddGroupMember("A", uid(5))
			s.AddGroupMember("D", uid(5))
		}, []string{"D"}, map[string]dirsync.SourceGroup{
			"D": {ID: "D", DisplayName: "Group D", MembersAdded: []string{uid(5)}},
		}},
		{"many changes are split over entries", func(s *Source) {
			for i := 3; i < 12; i++ {
				s.RemoveGroupMember("C", uid(i))
			}
		}, nil, map[string]dirsync.SourceGroup{
			"C": {ID: "C", DisplayName: "Group C", MembersRemoved: []string{uid(3), uid(4), uid(5), uid(6), uid(7), uid(8), uid(9), uid(10), uid(11)}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := nestedTenant()
			_, link := walkGroupRound(t, s, dirsync.GroupDeltaRequest{GroupIDs: tt.filter})
			tt.change(s)
			got, next := walkGroupRound(t, s, dirsync.GroupDeltaRequest{Link: link})
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round after the change (-want +got):\n%s", diff)
			}
			// The new delta link reports nothing more.
			if again, _ := walkGroupRound(t, s, dirsync.GroupDeltaRequest{Link: next}); len(again) != 0 {
				t.Errorf("a third round reports %v", again)
			}
		})
	}
}

// A round is fixed when it starts: a change while its pages are read comes
// in the next round, and only there.
func TestGroupsDeltaChangeDuringRound(t *testing.T) {
	s := nestedTenant()
	page, err := s.GroupsDelta(context.Background(), dirsync.GroupDeltaRequest{})
	if err != nil || page.NextLink == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	s.AddGroupMember("D", uid(7))
	rest, link := walkGroupRound(t, s, dirsync.GroupDeltaRequest{Link: page.NextLink})
	if d := rest["D"]; len(d.MembersAdded) != 0 {
		t.Errorf("the change shows in the round it happened in: %+v", d)
	}
	got, _ := walkGroupRound(t, s, dirsync.GroupDeltaRequest{Link: link})
	want := map[string]dirsync.SourceGroup{"D": {ID: "D", DisplayName: "Group D", MembersAdded: []string{uid(7)}}}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("next round (-want +got):\n%s", diff)
	}
}

func TestGroupsDeltaLinks(t *testing.T) {
	s := nestedTenant()
	page, _ := s.GroupsDelta(context.Background(), dirsync.GroupDeltaRequest{})
	_, deltaLink := walkGroupRound(t, s, dirsync.GroupDeltaRequest{})
	s.Expire()
	for _, link := range []string{page.NextLink, deltaLink} {
		if _, err := s.GroupsDelta(context.Background(), dirsync.GroupDeltaRequest{Link: link}); dirsync.ErrorCode(err) != dirsync.ETOKENEXPIRED {
			t.Errorf("expired link %q: got %v, want ETOKENEXPIRED", link, err)
		}
	}
	for _, link := range []string{"delta|1|0", "groups|99|0|1", "nonsense"} {
		if _, err := s.GroupsDelta(context.Background(), dirsync.GroupDeltaRequest{Link: link}); dirsync.ErrorCode(err) != dirsync.EINVALID {
			t.Errorf("link %q: got %v, want EINVALID", link, err)
		}
	}
	s.GroupErrs = []error{dirsync.Errorf(dirsync.ETHROTTLED, "429"), nil}
	if _, err := s.GroupsDelta(context.Background(), dirsync.GroupDeltaRequest{}); dirsync.ErrorCode(err) != dirsync.ETHROTTLED {
		t.Errorf("injected error: got %v", err)
	}
	if _, err := s.Group(context.Background(), "A"); err != nil {
		t.Errorf("a nil injected error lets the call through: %v", err)
	}
}

func TestGroupTransitiveMembers(t *testing.T) {
	s := nestedTenant()
	s.MemberPageSize = 4
	s.Remove(uid(11), dirsync.RemovedDeleted)
	type result struct{ Users, Groups []string }
	walk := func(id string) (result, error) {
		var r result
		link := ""
		for {
			page, err := s.GroupTransitiveMembers(context.Background(), id, link)
			if err != nil {
				return r, err
			}
			if n := len(page.UserIDs) + len(page.GroupIDs); n > 4 {
				t.Errorf("page of %d members, more than 4", n)
			}
			r.Users = append(r.Users, page.UserIDs...)
			r.Groups = append(r.Groups, page.GroupIDs...)
			if link = page.NextLink; link == "" {
				return r, nil
			}
		}
	}
	users := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, uid(i))
		}
		return out
	}
	tests := []struct {
		group string
		want  result
	}{
		// The cycle C -> A brings A's and B's members into C's set.
		{"A", result{users(0, 11), []string{"B", "C"}}},
		{"B", result{users(0, 11), []string{"A", "C"}}},
		{"C", result{users(0, 11), []string{"A", "B"}}},
		{"D", result{}},
	}
	for _, tt := range tests {
		got, err := walk(tt.group)
		if err != nil {
			t.Fatalf("group %s: %v", tt.group, err)
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("group %s (-want +got):\n%s", tt.group, diff)
		}
		if diff := cmp.Diff(tt.want.Users, s.TransitiveUserMembers(tt.group), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("TransitiveUserMembers(%s) (-want +got):\n%s", tt.group, diff)
		}
	}

	s.RemoveGroupMember("C", "A")
	if got := s.TransitiveUserMembers("C"); !slices.Equal(got, users(3, 11)) {
		t.Errorf("C without the cycle: %v", got)
	}
	s.DeleteGroup("B")
	if got := s.TransitiveUserMembers("A"); !slices.Equal(got, users(0, 2)) {
		t.Errorf("A after B was deleted: %v", got)
	}
	for _, id := range []string{"B", "missing"} {
		if _, err := s.GroupTransitiveMembers(context.Background(), id, ""); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
			t.Errorf("group %s: got %v, want ENOTFOUND", id, err)
		}
		if _, err := s.Group(context.Background(), id); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
			t.Errorf("Group(%s): got %v, want ENOTFOUND", id, err)
		}
		if got := s.TransitiveUserMembers(id); got != nil {
			t.Errorf("TransitiveUserMembers(%s) = %v", id, got)
		}
	}
	if _, err := s.GroupTransitiveMembers(context.Background(), "A", "members|C|u01"); dirsync.ErrorCode(err) != dirsync.EINVALID {
		t.Errorf("another group's link: got %v, want EINVALID", err)
	}
	g, err := s.Group(context.Background(), "A")
	if diff := cmp.Diff(dirsync.SourceGroup{ID: "A", DisplayName: "Group A"}, g); diff != "" || err != nil {
		t.Errorf("Group(A) (-want +got):\n%s err %v", diff, err)
	}
}

func TestGroupMutationsReportChange(t *testing.T) {
	s := nestedTenant()
	tests := []struct {
		name string
		do   func() bool
		want bool
	}{
		{"add an existing member", func() bool { return s.AddGroupMember("A", uid(0)) }, false},
		{"add to a missing group", func() bool { return s.AddGroupMember("Z", uid(0)) }, false},
		{"add an unknown member", func() bool { return s.AddGroupMember("A", "ghost") }, false},
		{"add a group to itself", func() bool { return s.AddGroupMember("A", "A") }, false},
		{"remove a non-member", func() bool { return s.RemoveGroupMember("A", uid(9)) }, false},
		{"rename to the same name", func() bool { return s.PutGroup("A", "Group A") }, false},
		{"a group id that is a user's", func() bool { return s.PutGroup(uid(0), "x") }, false},
		{"delete", func() bool { return s.DeleteGroup("D") }, true},
		{"delete again", func() bool { return s.DeleteGroup("D") }, false},
		{"reuse a deleted id", func() bool { return s.PutGroup("D", "Group D") }, false},
	}
	for _, tt := range tests {
		if got := tt.do(); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	users, groups := s.GroupMembers("A")
	if diff := cmp.Diff([]string{uid(0), uid(1)}, users); diff != "" {
		t.Errorf("A's users (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"B"}, groups); diff != "" {
		t.Errorf("A's groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"A": "Group A", "B": "Group B", "C": "Group C"}, s.Groups()); diff != "" {
		t.Errorf("Groups (-want +got):\n%s", diff)
	}
}

// The same operations give the same pages, whatever the map order.
func TestGroupsDeltaIsDeterministic(t *testing.T) {
	run := func() []dirsync.GroupPage {
		s := nestedTenant()
		var pages []dirsync.GroupPage
		req := dirsync.GroupDeltaRequest{}
		for {
			p, err := s.GroupsDelta(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, p)
			if p.DeltaLink != "" {
				return pages
			}
			req.Link = p.NextLink
		}
	}
	first := run()
	for range 20 {
		if diff := cmp.Diff(first, run()); diff != "" {
			t.Fatalf("pages differ between runs (-first +again):\n%s", diff)
		}
	}
}
