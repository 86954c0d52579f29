package dirsync

import (
	"context"
	"fmt"
)

// scanPagesPerItem bounds one sweep or count item's work (query pages of
// 1,000 rows).
const scanPagesPerItem = 5

// chunkKey names a sweep or count chunk, so its result is recorded once.
func chunkKey(w WorkItem) string {
	return fmt.Sprintf("%03d-%02d-%s", w.Epoch, w.Bucket, shortHash(w.Cursor))
}

// doSweep walks one bucket of the directory after a full enumeration and
// records every user this run did not see: they were deleted in Entra while
// we had no valid delta token. A user written by a later run exists (that
// run saw it) and is never recorded.
//
// When the bucket's counts row is exact, the query asks the store for the
// rows the run did not write only (unseenByFullEnumeration): a full sync of
// an unchanged tenant then reads one short page per bucket instead of
// every row, and the bucket's size comes from the counts row. (The filter
// is a hint; every row returned is checked.)
func (e *Engine) doSweep(ctx context.Context, run Run, s Settings, w WorkItem) error {
	q := Query{PartitionKey: bucketKey(w.Bucket), RowKeyBefore: countsRowKey, Continuation: w.Cursor}
	var scanned, missing, size int64
	filtered := false
	if cur, err := e.readCounts(ctx, q.PartitionKey); err != nil {
		return err
	} else if cur.valid() {
		filtered, q.AnyOf, size = true, unseenByFullEnumeration(run), cur.total()
		if w.Cursor == "" {
			scanned = size // the bucket's size, recorded by its first chunk
		}
	}
	for range scanPagesPerItem {
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			if !filtered {
				scanned++
			}
			u := userFromEntity(ent)
			if seenByFullEnumeration(run, u) {
				continue
			}
			missing++
			if err := e.recordDeletion(ctx, run, s, sweepStamp, u, "not found in Entra during a full sync"); err != nil {
				return err
			}
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" {
			break
		}
	}
	// Record the chunk's scanned count once (insert-if-absent), so a
	// redelivered item does not count its rows twice.
	_, err := e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID + "|sweep", RowKey: chunkKey(w), Props: map[string]any{"scanned": scanned}})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record sweep chunk: %w", err)
	}
	if missing > 0 {
		lb := e.newLog(run, nil)
		if !filtered {
			size = scanned
		}
		lb.add(LogEvent{Event: EvSweep, Message: fmt.Sprintf("bucket %d: %d of %d directory users were not found in Entra", w.Bucket, missing, size)})
		e.flushLog(ctx, run, lb)
	}
	next := w.next(WorkSweep)
	next.Bucket, next.Cursor = w.Bucket, q.Continuation
	if q.Continuation == "" {
		next.Bucket++
		if next.Bucket >= UserBuckets {
			var phase string
			next, phase = e.afterUsers(s, w)
			if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase = phase; return nil }); err != nil {
				return err
			}
		}
	}
	return e.send(ctx, next, zeroTime)
}

// unseenByFullEnumeration are conditions every row seenByFullEnumeration
// rejects meets one of: written by an earlier run, or stamped outside
// [the full enumeration's first epoch, sweepStamp). (Every user row has
// both stamps: userToEntity always writes them.)
func unseenByFullEnumeration(run Run) []IntCond {
	return []IntCond{
		{Prop: "runSeq", Value: run.Seq},
		{Prop: "pageSeq", Value: run.FullFrom << 32},
		{Prop: "pageSeq", AtLeast: true, Value: sweepStamp},
	}
}

// seenByFullEnumeration reports whether the run's full enumeration (the
// epoch it started in, or a later one) wrote u, or a later run did.
func seenByFullEnumeration(run Run, u User) bool {
	if u.RunSeq > run.Seq {
		return true
	}
	return u.RunSeq == run.Seq && u.PageSeq < sweepStamp && stampEpoch(u.PageSeq) >= run.FullFrom
}
