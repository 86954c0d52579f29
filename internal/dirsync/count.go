package dirsync

import (
	"context"
	"fmt"
	"strings"
)

// doCount counts one chunk of a bucket by status once every change of the
// run is applied, and records the chunk's counts once (insert-if-absent), so
// a redelivered chunk is not counted twice. On the way it promotes any
// duplicate whose email no active user holds (repairDuplicate): every run
// then ends with its duplicates resolved, delta runs included. The last chunk moves the run to
// finishing, after which it can no longer be cancelled.
func (e *Engine) doCount(ctx context.Context, run Run, s Settings, w WorkItem) error {
	q := Query{PartitionKey: fmt.Sprintf("b%02d", w.Bucket), Continuation: w.Cursor}
	counts := map[string]int64{}
	lb := e.newLog(run, nil)
	defer e.flushLog(ctx, run, lb)
	for range scanPagesPerItem {
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			status := ent.Str("status")
			if status == StatusDuplicate {
				promoted, err := e.repairDuplicate(ctx, run, s, userFromEntity(ent), lb)
				if err != nil {
					return err
				}
				if promoted {
					status = StatusActive
				}
			}
			counts[status]++
		}
		q.Continuation = page.Continuation
		if q.Continuation == "" {
			break
		}
	}
	props := map[string]any{}
	for st, n := range counts {
		if st != "" {
			props["n_"+st] = n
		}
	}
	_, err := e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID + "|count", RowKey: chunkKey(w), Props: props})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record count chunk: %w", err)
	}
	next := w.next(WorkCount)
	switch {
	case q.Continuation != "":
		next.Bucket, next.Cursor = w.Bucket, q.Continuation
		return e.send(ctx, next, zeroTime)
	case w.Bucket+1 < UserBuckets:
		next.Bucket = w.Bucket + 1
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
