package dirsync

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The membership index. A user's row is the truth of its memberships
// (User.Groups, effective while the user is active: User.Memberships), and
// it is written under the page stamps like every other field. TableMembers
// indexes it per group, for listing a group's members: one "register" row
// per (group, user), PartitionKey "g|<group>", RowKey the user id, holding
// present (member or not) and ver, the version of the user row that
// decided it.
//
// The index cannot be written in the same transaction as the user row (it
// is another partition), and a superseded worker may write late. So:
//   - every write of a user row that changes its memberships gets a version
//     greater than the row's previous one (bumpMemberVer), and records on
//     the row which groups changed (MemberDiff);
//   - after the row is written, the writer sets the register of every
//     changed group to the row's state, only if the register holds an
//     older version (setRegisters): of two writers the newer always wins,
//     whatever order their index writes land in;
//   - a removal is a register with present false (a tombstone), never a
//     deletion, so a late add by an older version cannot resurrect it.
// Every row write is conditional on the ETag the writer read, so the writer
// knows the exact previous memberships and MemberDiff is exact. A write
// interrupted between the row and its registers is completed by whoever
// next writes the row (resyncMembers before it writes).

// Memberships returns the groups the user is a member of: its Groups while
// it is active, none otherwise (a skipped or duplicate user is not synced).
func (u User) Memberships() []string {
	if u.Status != StatusActive {
		return nil
	}
	return u.Groups
}

// memberVer is a version of a row's memberships: the writer's run and
// stamp, then a counter for rewrites under the same stamp. Zero-padded so
// versions compare as strings.
func memberVer(runSeq, stamp int64, n int) string {
	// Stamps can be negative (on demand, before a running run's pages):
	// offset so that every stamp prints as a non-negative number.
	return fmt.Sprintf("%019d.%019d.%06d", runSeq, stamp+memberVerOffset, n)
}

const memberVerOffset = int64(1) << 61

// bumpMemberVer returns a version greater than old for a write by
// (runSeq, stamp): the writer's own version when that is greater, else
// old's with its counter incremented (a retry, a promotion, a deletion of a
// row a later page already wrote). A writer that is not a page (a
// promotion) passes the row's own stamp: a row deleted and created again
// starts its versions afresh, and only the stamp of the page that created
// it orders them after the deleted one's tombstones.
func bumpMemberVer(old string, runSeq, stamp int64) string {
	mine := memberVer(runSeq, stamp, 0)
	if mine > old {
		return mine
	}
	parts := strings.Split(old, ".")
	if len(parts) != 3 {
		return mine
	}
	r, _ := strconv.ParseInt(parts[0], 10, 64)
	s, _ := strconv.ParseInt(parts[1], 10, 64)
	n, _ := strconv.Atoi(parts[2])
	return memberVer(r, s-memberVerOffset, n+1)
}

// prepareMembers versions the write of next over prev (the row as read, or
// nil for a new row): when the effective memberships change, next gets a
// newer version and the groups that changed. (An index write of prev that
// was interrupted is completed before, by resyncMembers on reading prev.)
func prepareMembers(prev *User, next *User, runSeq, stamp int64) {
	var before []string
	oldVer := ""
	if prev != nil {
		before, oldVer = prev.Memberships(), prev.MemberVer
	}
	diff := symmetricDiff(before, next.Memberships())
	sort.Strings(diff)
	next.MemberDiff, next.MemberVer = diff, oldVer
	if len(diff) > 0 {
		next.MemberVer = bumpMemberVer(oldVer, runSeq, stamp)
	}
}

// memberChanges splits a written row's diff into the groups it joined and
// left. It depends on the row alone, so a retried item counts the same.
func memberChanges(u User) (joined, left []string) {
	member := u.Memberships()
	for _, g := range u.MemberDiff {
		if slices.Contains(member, g) {
			joined = append(joined, g)
		} else {
			left = append(left, g)
		}
	}
	return joined, left
}

func symmetricDiff(a, b []string) []string {
	var out []string
	for _, g := range a {
		if !slices.Contains(b, g) {
			out = append(out, g)
		}
	}
	for _, g := range b {
		if !slices.Contains(a, g) {
			out = append(out, g)
		}
	}
	return out
}

// syncMembers sets the registers of u's changed groups to u's memberships
// at u's version. It is idempotent, and a register already holding a newer
// version is left alone.
func (e *Engine) syncMembers(ctx context.Context, u User) error {
	member := u.Memberships()
	for _, g := range u.MemberDiff {
		present := slices.Contains(member, g)
		_, err := e.modify(ctx, TableMembers, MembersPartition(g), u.ID, func(ent *Entity, exists bool) error {
			if exists && ent.Str(MemberVerProp) >= u.MemberVer {
				return errSkipWrite
			}
			// A removal is written even where no register exists: the
			// tombstone keeps a late, older add from creating one.
			ent.Props = map[string]any{MemberPresentProp: present, MemberVerProp: u.MemberVer}
			return nil
		})
		if err != nil {
			return fmt.Errorf("index membership of %s in group %s: %w", u.ID, g, err)
		}
	}
	return nil
}

// resyncMembers completes an index write that may have been interrupted:
// every writer calls it on the row it read before writing over it, since
// the next write's diff is computed from that row's memberships and would
// not repeat the older one. It costs one register read per group of the
// row's last diff, and nothing for rows whose last write changed no
// membership.
func (e *Engine) resyncMembers(ctx context.Context, u User) error {
	return e.syncMembers(ctx, u)
}
