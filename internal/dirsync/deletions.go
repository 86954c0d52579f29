package dirsync

import (
	"context"
	"fmt"
)

// Deletions are never applied while pages are read: they are recorded per
// run ("deletions" table, partition = run id) and applied after the round is
// complete, once the threshold check passed or an admin approved them. So a
// read that failed, came back empty or was throttled can never delete.
// Each deletion carries the stamp of the decision; delete.go applies it only
// if no later page, epoch or run has written the user since.

// sweepStamp orders sweep-found deletions after every page of the run.
const sweepStamp = int64(1) << 40

// Deletion outcomes.
const (
	outcomeDeleted = "deleted"
	outcomeKept    = "kept" // a later page, epoch or run wrote the user
)

// PendingDeletion is one deletion of a run.
type PendingDeletion struct {
	UserID  string `json:"userId"`
	UPN     string `json:"upn,omitempty"`
	Reason  string `json:"reason"`
	Outcome string `json:"outcome,omitempty"`
}

// deletion is a row of the deletions table.
type deletion struct {
	PendingDeletion
	// Stamp is the page stamp (or sweepStamp) of the decision.
	Stamp int64
	// GroupsLeft is how many groups the user leaves with its deletion
	// (counted in the run's membersRemoved).
	GroupsLeft int64
	ETag       string
	runID      string
}

func deletionFromEntity(e Entity) deletion {
	return deletion{PendingDeletion: PendingDeletion{UserID: e.RowKey, UPN: e.Str("upn"), Reason: e.Str("reason"), Outcome: e.Str("outcome")},
		Stamp: e.Int("pageSeq"), GroupsLeft: e.Int("groupsLeft"), ETag: e.ETag, runID: e.PartitionKey}
}

func (d deletion) entity() Entity {
	p := map[string]any{"pageSeq": d.Stamp, "reason": d.Reason}
	if d.UPN != "" {
		p["upn"] = d.UPN
	}
	if d.Outcome != "" {
		p["outcome"] = d.Outcome
	}
	if d.GroupsLeft > 0 {
		p["groupsLeft"] = d.GroupsLeft
	}
	return Entity{PartitionKey: d.runID, RowKey: d.UserID, ETag: d.ETag, Props: p}
}

// recordDeletion notes that user u should leave the directory. The row keeps
// the latest decision, whatever order pages arrive in.
func (e *Engine) recordDeletion(ctx context.Context, run Run, s Settings, stamp int64, u User, reason string) error {
	_, err := e.modify(ctx, TableDeletions, run.ID, u.ID, func(ent *Entity, exists bool) error {
		if exists && ent.Int("pageSeq") >= stamp {
			return errSkipWrite
		}
		if exists && stamp == sweepStamp {
			// A page of this run already decided the user goes (left the
			// scope, or removed in Entra), with the better reason: keep it.
			return errSkipWrite
		}
		next := deletion{PendingDeletion: PendingDeletion{UserID: u.ID, UPN: s.logUPN(u.UPN), Reason: reason}, Stamp: stamp, runID: run.ID}
		ent.Props = next.entity().Props
		return nil
	})
	if err != nil {
		return fmt.Errorf("record deletion: %w", err)
	}
	return nil
}

// PendingDeletions lists a run's deletions, a page at a time.
// Errors: EINVALID for a malformed run id or token; store errors.
func (e *Engine) PendingDeletions(ctx context.Context, runID string, limit int, token string) ([]PendingDeletion, string, error) {
	if !ValidRunID(runID) {
		return nil, "", Errorf(EINVALID, "%q is not a run id", runID)
	}
	page, err := e.Store.Query(ctx, TableDeletions, Query{PartitionKey: runID, Top: limit, Continuation: token})
	if err != nil {
		return nil, "", err
	}
	out := make([]PendingDeletion, 0, len(page.Entities))
	for _, ent := range page.Entities {
		out = append(out, deletionFromEntity(ent).PendingDeletion)
	}
	return out, page.Continuation, nil
}

// deletedCount returns how many users the run deleted, and how many group
// memberships they left with them.
func (e *Engine) deletedCount(ctx context.Context, runID string) (users, memberships int64, err error) {
	err = e.scanPartition(ctx, TableDeletions, runID, func(ent Entity) {
		if ent.Str("outcome") == outcomeDeleted {
			users++
			memberships += ent.Int("groupsLeft")
		}
	})
	return users, memberships, err
}
