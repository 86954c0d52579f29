package dirsync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Work item kinds. A run is a chain of small items on the queue, so no
// invocation holds a tenant in memory or runs past a function's time limit.
// New kinds (group scope, dynamic groups, photos) are added here.
const (
	WorkPage    = "page"    // fetch and apply one Graph page
	WorkCollect = "collect" // wait until every page is applied, then move on
	WorkSweep   = "sweep"   // full runs: find users not seen in this run
	WorkDecide  = "decide"  // check pending deletions against the threshold
	WorkDelete  = "delete"  // apply pending deletions, a chunk at a time
	WorkCount   = "count"   // count directory users by status, a bucket at a time
	WorkFinish  = "finish"  // totals, save the delta token, release the lock
)

// WorkItem is one message on the sync-work queue.
type WorkItem struct {
	Kind  string `json:"kind"`
	RunID string `json:"run"`
	// Seq is the page's sequence number in the run (WorkPage).
	Seq int64 `json:"seq,omitempty"`
	// Link is the Graph link to fetch; "" starts a fresh enumeration.
	Link string `json:"link,omitempty"`
	// Epoch is the run's restart count when the item was made; items of an
	// earlier epoch (before a token-expiry restart) are stale and dropped.
	Epoch int64 `json:"epoch,omitempty"`
	// Bucket and Cursor locate a sweep or delete chunk.
	Bucket int    `json:"bucket,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	// Attempt counts reschedules (throttling, waiting for pages), so each
	// reschedule is a new message id.
	Attempt int `json:"attempt,omitempty"`
}

// MessageID is the item's queue message id: equal items get equal ids, so the
// queue's duplicate detection drops a second send of the same item.
func (w WorkItem) MessageID() string {
	key := fmt.Sprintf("%s|%d|%s|%d|%d|%s|%d", w.Kind, w.Seq, w.Link, w.Epoch, w.Bucket, w.Cursor, w.Attempt)
	return fmt.Sprintf("%s-%s-%d-%s", w.RunID, w.Kind, w.Seq, shortHash(key))
}

// shortHash is a 12-hex-digit digest, for ids and keys derived from long or
// untrusted strings.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// DecodeWorkItem parses a queue message body. Bad input is EINVALID: the
// message cannot be processed by any retry and should be dead-lettered.
func DecodeWorkItem(body []byte) (WorkItem, error) {
	var w WorkItem
	if err := json.Unmarshal(body, &w); err != nil {
		return w, Errorf(EINVALID, "work item is not valid JSON: %v", err)
	}
	switch w.Kind {
	case WorkPage, WorkCollect, WorkSweep, WorkDecide, WorkDelete, WorkCount, WorkFinish:
	default:
		return w, Errorf(EINVALID, "work item kind %q is unknown", w.Kind)
	}
	if !ValidRunID(w.RunID) {
		return w, Errorf(EINVALID, "work item run id %q is not valid", w.RunID)
	}
	if w.Seq < 0 || w.Bucket < 0 || w.Bucket >= UserBuckets || w.Attempt < 0 {
		return w, Errorf(EINVALID, "work item has out-of-range numbers")
	}
	return w, nil
}

func (w WorkItem) message() Message {
	b, _ := json.Marshal(w)
	return Message{ID: w.MessageID(), Body: b}
}
