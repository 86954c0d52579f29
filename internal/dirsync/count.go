package dirsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// A count item's Cursor says which of its two passes it is in:
//
//	"" or "w:<continuation>"  repair: the waiter rows of one emails bucket
//	"c:"                      count: read one users bucket's counts row
//	"s:<rebuildState JSON>"   count: rebuild a counts row by a scan
//
// The repair pass runs over all 16 buckets before the count pass starts,
// because promoting a duplicate changes the counts of the user's bucket,
// which is not the bucket of its email.
const (
	cursorRepair  = "w:"
	cursorCount   = "c:"
	cursorRebuild = "s:"
)

// rebuildState is a counts row rebuild in progress: the ETag of the row
// when the scan started, the statuses counted so far and where the scan
// goes on. Every user row write changes the counts row (counts.go), so if
// the ETag is still the same when the scan ends, the scan saw one state of
// the bucket and its counts are exact.
type rebuildState struct {
	ETag     string           `json:"e"`
	ByStatus map[string]int64 `json:"n,omitempty"`
	Cont     string           `json:"c,omitempty"`
}

// doCount, once every change of the run is applied, first promotes any
// waiting duplicate whose email no active user holds (repairDuplicate):
// every run then ends with its duplicates resolved, delta runs included
// (a delta run in which nothing could leave one waiting skips the pass).
// Then it reads each bucket's counts row and records it once for the run
// (insert-if-absent), so a redelivered item is not counted twice. Both
// passes cost O(duplicates + buckets), not O(directory), and a delta run
// makes the first only when it is due (waiterpass.go); only a bucket
// without an exact counts row (a directory written before counts rows
// existed) is scanned, once. The last item moves the run to finishing,
// after which it can no longer be cancelled.
func (e *Engine) doCount(ctx context.Context, run Run, s Settings, w WorkItem) error {
	switch {
	case w.Cursor == "" || strings.HasPrefix(w.Cursor, cursorRepair):
		return e.repairWaiters(ctx, run, s, w)
	case strings.HasPrefix(w.Cursor, cursorRebuild):
		var st rebuildState
		if err := json.Unmarshal([]byte(w.Cursor[len(cursorRebuild):]), &st); err != nil || st.ETag == "" {
			return e.countBucket(ctx, run, w) // not ours (an item from before an upgrade): count again
		}
		return e.rebuildCounts(ctx, run, w, st)
	}
	return e.countBucket(ctx, run, w)
}

// repairWaiters promotes the duplicates waiting in one emails bucket whose
// email is free (repairDuplicate checks the claim).
func (e *Engine) repairWaiters(ctx context.Context, run Run, s Settings, w WorkItem) error {
	// One item goes on through the buckets while its page budget lasts:
	// most buckets hold no waiter at all, and a queue round trip per
	// bucket was most of the count step's time on a delta run.
	run, err := e.decideWaiterPass(ctx, run, w)
	if err != nil {
		return err
	}
	if run.WaiterPass == waiterPassSkip {
		next := w.next(WorkCount)
		next.Cursor = cursorCount
		return e.send(ctx, next, zeroTime)
	}
	bucket, cont, done := w.Bucket, strings.TrimPrefix(w.Cursor, cursorRepair), false
	lb := e.newLog(run, nil)
	defer e.flushLog(ctx, run, lb)
	for range scanPagesPerItem {
		page, err := e.Store.Query(ctx, TableEmails, Query{PartitionKey: bucketKey(bucket), RowKeyPrefix: "w|", Continuation: cont})
		if err != nil {
			return err
		}
		if err := e.repairPage(ctx, run, s, page.Entities, lb); err != nil {
			return err
		}
		if cont = page.Continuation; cont == "" {
			if bucket+1 >= UserBuckets {
				done = true
				break
			}
			bucket++
		}
	}
	next := w.next(WorkCount)
	if done {
		if err := e.waiterPassDone(ctx, run); err != nil {
			return err
		}
		next.Cursor = cursorCount
	} else {
		next.Bucket, next.Cursor = bucket, cursorRepair+cont
	}
	return e.send(ctx, next, zeroTime)
}

// repairPage checks a page of waiter rows. Waiters of different emails are
// independent (a user waits for one email), so they are checked with bounded
// concurrency; the waiters of one email are checked one after another, as a
// promotion must be written before the next waiter checks that email's claim.
func (e *Engine) repairPage(ctx context.Context, run Run, s Settings, waiters []Entity, lb *logBuffer) error {
	var groups [][]Entity
	last := ""
	for _, wr := range waiters {
		email := wr.RowKey[:strings.LastIndexByte(wr.RowKey, '|')+1]
		if email != last || len(groups) == 0 {
			groups = append(groups, nil)
			last = email
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], wr)
	}
	lbs := make([]*logBuffer, len(groups))
	errs := make([]error, len(groups))
	sem := make(chan struct{}, e.concurrency())
	var wg sync.WaitGroup
	for i, g := range groups {
		lbs[i] = e.newLog(run, nil)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, wr := range g {
				if errs[i] = e.repairWaiter(ctx, run, s, wr, lbs[i]); errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range lbs {
		lb.buf.Write(l.buf.Bytes())
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// repairWaiter promotes the duplicate of waiter row wr if its email is free.
func (e *Engine) repairWaiter(ctx context.Context, run Run, s Settings, wr Entity, lb *logBuffer) error {
	id := wr.Str("user")
	if !validObjectID(id) {
		return nil
	}
	ent, err := e.Store.Get(ctx, TableUsers, Bucket(id), id)
	if IsCode(err, ENOTFOUND) {
		return nil // a waiter left over; releaseEmail drops it
	}
	if err != nil {
		return err
	}
	u := userFromEntity(ent)
	if u.Status != StatusDuplicate || u.Email == "" || waiterKey(u.Email, u.ID) != wr.RowKey {
		return nil
	}
	_, err = e.repairDuplicate(ctx, run, s, u, lb)
	return err
}

// countBucket records one bucket's counts row, or starts rebuilding it.
func (e *Engine) countBucket(ctx context.Context, run Run, w WorkItem) error {
	pk := bucketKey(w.Bucket)
	cur, err := e.readCounts(ctx, pk)
	if err != nil {
		return err
	}
	for n := 1; cur.valid() && w.Bucket+1 < UserBuckets && n < bucketsPerCountItem; n++ {
		// Exact: record it and read the next bucket's in the same item
		// (a few per item: each is one write, so a retried item still
		// makes progress when writes fail often).
		if err := e.recordBucketCounts(ctx, run, w, cur.ByStatus); err != nil {
			return err
		}
		w.Bucket++
		pk = bucketKey(w.Bucket)
		if cur, err = e.readCounts(ctx, pk); err != nil {
			return err
		}
	}
	if cur.valid() {
		return e.bucketCounted(ctx, run, w, cur.ByStatus)
	}
	if !cur.Found {
		// An empty partition (a new directory) starts exact; one from
		// before counts rows existed is scanned below.
		row := Entity{PartitionKey: pk, RowKey: countsRowKey, Props: map[string]any{"state": "stale"}}
		if cur.Empty {
			row = countsEntity(pk, nil, "")
		}
		_, err := e.Store.Insert(ctx, TableUsers, row)
		if err != nil && !IsCode(err, ECONFLICT) {
			return fmt.Errorf("start counting bucket %d: %w", w.Bucket, err)
		}
		if cur, err = e.readCounts(ctx, pk); err != nil {
			return err
		}
		if cur.valid() {
			return e.bucketCounted(ctx, run, w, cur.ByStatus)
		}
	}
	e.log().InfoContext(ctx, "rebuilding the counts of a users bucket by a scan", "run", run.ID, "bucket", w.Bucket)
	return e.rebuildCounts(ctx, run, w, rebuildState{ETag: cur.ETag, ByStatus: map[string]int64{}})
}

// rebuildCounts scans one chunk of a bucket for a rebuild; at the end of
// the bucket it writes the counts row, conditional on the ETag the scan
// started from. If a user row was written meanwhile, the scan starts again.
func (e *Engine) rebuildCounts(ctx context.Context, run Run, w WorkItem, st rebuildState) error {
	pk := bucketKey(w.Bucket)
	restart := func() error {
		next := w.next(WorkCount)
		next.Bucket, next.Cursor, next.Attempt = w.Bucket, cursorCount, w.Attempt+1
		return e.send(ctx, next, zeroTime)
	}
	if cur, err := e.readCounts(ctx, pk); err != nil {
		return err
	} else if cur.ETag != st.ETag {
		return restart() // changed since the scan started (or rebuilt by a twin item)
	}
	if st.ByStatus == nil {
		st.ByStatus = map[string]int64{}
	}
	q := Query{PartitionKey: pk, RowKeyBefore: countsRowKey, Continuation: st.Cont}
	for range scanPagesPerItem {
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			st.ByStatus[ent.Str("status")]++
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" {
			break
		}
	}
	if q.Continuation != "" {
		st.Cont = q.Continuation
		b, _ := json.Marshal(st)
		next := w.next(WorkCount)
		next.Bucket, next.Cursor, next.Attempt = w.Bucket, cursorRebuild+string(b), w.Attempt
		return e.send(ctx, next, zeroTime)
	}
	delete(st.ByStatus, "")
	if _, err := e.Store.Replace(ctx, TableUsers, countsEntity(pk, st.ByStatus, st.ETag)); err != nil {
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return restart()
		}
		return fmt.Errorf("save the counts of bucket %d: %w", w.Bucket, err)
	}
	return e.bucketCounted(ctx, run, w, st.ByStatus)
}

// bucketsPerCountItem bounds the counts rows one count item records.
const bucketsPerCountItem = 4

// recordBucketCounts records a bucket's counts for the run, once.
func (e *Engine) recordBucketCounts(ctx context.Context, run Run, w WorkItem, byStatus map[string]int64) error {
	props := map[string]any{}
	for st, n := range byStatus {
		if st != "" {
			props["n_"+st] = n
		}
	}
	key := chunkKey(WorkItem{Epoch: w.Epoch, Bucket: w.Bucket, Cursor: cursorCount})
	_, err := e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID + "|count", RowKey: key, Props: props})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record count chunk: %w", err)
	}
	return nil
}

// bucketCounted records a bucket's counts for the run once, and moves on.
func (e *Engine) bucketCounted(ctx context.Context, run Run, w WorkItem, byStatus map[string]int64) error {
	if err := e.recordBucketCounts(ctx, run, w, byStatus); err != nil {
		return err
	}
	if w.Bucket+1 < UserBuckets {
		next := w.next(WorkCount)
		next.Bucket, next.Cursor = w.Bucket+1, cursorCount
		return e.send(ctx, next, zeroTime)
	}
	if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase = PhaseFinishing; return nil }); err != nil {
		return err
	}
	return e.send(ctx, w.next(WorkFinish), zeroTime)
}

// statusCounts sums the count chunks of a run.
func (e *Engine) statusCounts(ctx context.Context, runID string) (map[string]int64, error) {
	out := map[string]int64{}
	err := e.scanPartition(ctx, TablePages, runID+"|count", func(ent Entity) {
		for k := range ent.Props {
			if st, ok := strings.CutPrefix(k, "n_"); ok {
				out[st] += ent.Int(k)
			}
		}
	})
	return out, err
}
