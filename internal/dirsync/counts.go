package dirsync

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
)

// Each users partition (bucket) holds one counts row: how many of the
// bucket's users have each status. It is written in the same entity-group
// batch as every user row it accounts for, conditional on its own ETag, so
// it is exact at every moment and the count step reads 16 rows instead of
// scanning the directory (issue 17: a delta run's cost follows the changes).
//
// The row is also the bucket's version: every write of a user row changes
// it. A bucket without a valid row (a directory from before this row
// existed) is counted once by a scan that is kept only if the row's ETag
// did not change during it (count.go); until then writers keep the row
// "stale" (no counts) but still change its ETag.

// countsRowKey sorts after every user id (GUIDs: hex digits and dashes), so
// a scan of users stops before it with RowKeyBefore: countsRowKey.
const countsRowKey = "~counts"

// bucketCounts is a counts row as read.
type bucketCounts struct {
	Found, Stale bool
	// Empty: the row is absent and the partition holds no user row (a new
	// directory), so the row can start exact (partitionEmpty).
	Empty    bool
	ByStatus map[string]int64
	ETag     string
}

func (c bucketCounts) valid() bool { return c.Found && !c.Stale }

// total is the number of user rows the row counts.
func (c bucketCounts) total() int64 {
	var n int64
	for _, v := range c.ByStatus {
		n += v
	}
	return n
}

func countsFromEntity(ent Entity) bucketCounts {
	c := bucketCounts{Found: true, Stale: ent.Str("state") != "exact", ByStatus: map[string]int64{}, ETag: ent.ETag}
	for k := range ent.Props {
		if st, ok := strings.CutPrefix(k, "n_"); ok {
			c.ByStatus[st] = ent.Int(k)
		}
	}
	return c
}

// countsEntity is an exact counts row of partition pk.
func countsEntity(pk string, byStatus map[string]int64, etag string) Entity {
	p := map[string]any{"state": "exact"}
	for st, n := range byStatus {
		if st != "" {
			p["n_"+st] = n
		}
	}
	return Entity{PartitionKey: pk, RowKey: countsRowKey, Props: p, ETag: etag}
}

func (e *Engine) readCounts(ctx context.Context, pk string) (bucketCounts, error) {
	ent, err := e.Store.Get(ctx, TableUsers, pk, countsRowKey)
	if IsCode(err, ENOTFOUND) {
		empty, err := e.partitionEmpty(ctx, pk)
		return bucketCounts{Empty: empty, ByStatus: map[string]int64{}}, err
	}
	if err != nil {
		return bucketCounts{}, err
	}
	return countsFromEntity(ent), nil
}

// partitionEmpty reports whether users partition pk holds no user row. A
// partition without a counts row is either new (no row at all) or from
// before counts rows existed: a new one can start with an exact row and
// is never scanned by the count step. Every user-row write inserts the
// counts row in its own batch when it is absent, so a row written after
// this query makes an Insert of the counts row fail (ECONFLICT): an
// exact row never misses a user. A page with a continuation but no rows
// (Azure may stop a scan early) counts as not empty.
func (e *Engine) partitionEmpty(ctx context.Context, pk string) (bool, error) {
	page, err := e.Store.Query(ctx, TableUsers, Query{PartitionKey: pk, RowKeyBefore: countsRowKey, Top: 1})
	if err != nil {
		return false, fmt.Errorf("read users partition %s: %w", pk, err)
	}
	return len(page.Entities) == 0 && page.Continuation == "", nil
}

// directoryEmpty reports whether the directory holds no user row (every
// bucket's counts row exact and zero, or absent over an empty partition).
// It decides how a first sync writes (applyPage: no reads, inserts), never
// what it writes: an Insert fails on a row that exists.
func (e *Engine) directoryEmpty(ctx context.Context) (bool, error) {
	for b := range UserBuckets {
		c, err := e.readCounts(ctx, bucketKey(b))
		if err != nil {
			return false, err
		}
		if !c.Empty && !c.valid() || c.total() != 0 {
			return false, nil
		}
	}
	return true, nil
}

// countsOp is the write of the counts row that accounts for ops, user row
// writes of one partition; was maps each row key to the status of the row
// the op replaces or deletes, as read ("" for none). Every op is
// conditional on that read (Insert, or an ETag), so if the batch commits the
// delta is exact; if another writer got in between, the batch fails.
func countsOp(cur bucketCounts, pk string, ops []BatchOp, was map[string]string) BatchOp {
	if !cur.Found && !cur.Empty {
		// The row is inserted (stale) so that a scan rebuilding it sees
		// this write as a change of its ETag.
		return BatchOp{Kind: BatchInsert, Entity: Entity{PartitionKey: pk, RowKey: countsRowKey, Props: map[string]any{"state": "stale"}}}
	}
	if cur.Stale {
		return BatchOp{Kind: BatchReplace, Entity: Entity{PartitionKey: pk, RowKey: countsRowKey, Props: map[string]any{"state": "stale"}, ETag: cur.ETag}}
	}
	n := make(map[string]int64, len(cur.ByStatus)+2)
	for k, v := range cur.ByStatus {
		n[k] = v
	}
	for _, op := range ops {
		if prev := was[op.Entity.RowKey]; prev != "" {
			n[prev]--
		}
		if op.Kind != BatchDelete {
			n[op.Entity.Str("status")]++
		}
	}
	if !cur.Found {
		// A new partition (cur.Empty): its first row starts exact. The
		// Insert fails if another writer created the row meanwhile.
		return BatchOp{Kind: BatchInsert, Entity: countsEntity(pk, n, "")}
	}
	return BatchOp{Kind: BatchReplace, Entity: countsEntity(pk, n, cur.ETag)}
}

// countsAttempts bounds how often usersBatch writes again after another
// writer moved the counts row: pages are applied several at a time, and
// each writes to every partition.
const countsAttempts = 8

// usersBatch writes ops, rows of one users partition (at most MaxBatch-1),
// and the counts row in one batch. The counts row is every writer's: when
// the batch fails and the counts row has moved since it was read, the
// batch is built again on the new counts (the user ops stay conditional on
// the rows as the caller read them, so the delta stays exact). An
// EPRECONDITION, ENOTFOUND or ECONFLICT that remains comes from a user row:
// another writer got in first, and the caller retries from a new read.
//
// The counts row is not read before a batch when this process wrote it
// last (countsCache): the batch is conditional on the ETag that write got,
// so it commits only if the row is still as remembered; if another writer
// moved it, the batch fails, the row is read, and the batch is built again.
// The remembered row is a guess that can only cost a retry, never a wrong
// count.
func (e *Engine) usersBatch(ctx context.Context, ops []BatchOp, was map[string]string) error {
	if len(ops) == 0 {
		return nil
	}
	pk := ops[0].Entity.PartitionKey
	cache := e.countsCache(pk)
	cur, cached := cache.get()
	if !cached {
		var err error
		if cur, err = e.readCounts(ctx, pk); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		counts := countsOp(cur, pk, ops, was)
		all := append(ops[:len(ops):len(ops)], counts)
		err := e.batchETags(ctx, all, cache)
		if err == nil || attempt == countsAttempts || !(IsCode(err, EPRECONDITION) || IsCode(err, ECONFLICT) || IsCode(err, ENOTFOUND)) {
			return err
		}
		now, rerr := e.readCounts(ctx, pk)
		if rerr != nil || (now.Found == cur.Found && now.ETag == cur.ETag) {
			return err // the counts row did not move: a user row did
		}
		cur = now
	}
}

// batchETags writes a users batch whose last op is its partition's counts
// row, and remembers that row as written (or forgets it when the write
// failed or its ETag is not known).
func (e *Engine) batchETags(ctx context.Context, all []BatchOp, cache *countsEntry) error {
	if cache == nil { // the store reports no ETags (countsCache)
		return e.Store.Batch(ctx, TableUsers, all)
	}
	etags, err := e.Store.(BatchETagger).BatchETags(ctx, TableUsers, all)
	if err != nil || len(etags) != len(all) || etags[len(etags)-1] == "" {
		cache.forget()
		return err
	}
	row := all[len(all)-1].Entity
	row.ETag = etags[len(etags)-1]
	cache.put(countsFromEntity(row))
	return nil
}

// countsEntry is a users partition's counts row as this process last wrote
// it. A nil entry remembers nothing.
type countsEntry struct {
	mu  sync.Mutex
	row *bucketCounts
}

func (c *countsEntry) get() (bucketCounts, bool) {
	if c == nil {
		return bucketCounts{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.row == nil {
		return bucketCounts{}, false
	}
	r := *c.row
	r.ByStatus = maps.Clone(r.ByStatus)
	return r, true
}

func (c *countsEntry) put(r bucketCounts) { c.mu.Lock(); c.row = &r; c.mu.Unlock() }
func (c *countsEntry) forget()            { c.mu.Lock(); c.row = nil; c.mu.Unlock() }

// countsRows holds the countsEntry of every partition, per store (the
// engine is copied by value, e.g. for previews, whose store writes no
// counts row it could remember: it is not a BatchETagger).
var countsRows sync.Map // "<store>|<pk>" -> *countsEntry

// countsCache is pk's entry (nil when the store cannot report ETags).
func (e *Engine) countsCache(pk string) *countsEntry {
	if _, ok := e.Store.(BatchETagger); !ok {
		return nil
	}
	key := fmt.Sprintf("%p|%s", e.Store, pk)
	c, _ := countsRows.LoadOrStore(key, &countsEntry{})
	return c.(*countsEntry)
}

// replaceUser writes u over the row it was read as (u.ETag), whose status
// was was, with the counts row. Errors are those of a conditional Replace:
// EPRECONDITION when either row changed meanwhile, ENOTFOUND when gone.
func (e *Engine) replaceUser(ctx context.Context, u User, was string) error {
	err := e.usersBatch(ctx, []BatchOp{{Kind: BatchReplace, Entity: userToEntity(u)}}, map[string]string{u.ID: was})
	if IsCode(err, ECONFLICT) {
		return &Error{Code: EPRECONDITION, Message: "the bucket's counts changed meanwhile", Err: err}
	}
	return err
}

// deleteUserRow deletes u's row, conditional on u.ETag, with the counts
// row. EPRECONDITION when either row changed or the user row is gone.
func (e *Engine) deleteUserRow(ctx context.Context, u User) error {
	op := BatchOp{Kind: BatchDelete, Entity: Entity{PartitionKey: Bucket(u.ID), RowKey: u.ID, ETag: u.ETag}}
	err := e.usersBatch(ctx, []BatchOp{op}, map[string]string{u.ID: u.Status})
	if IsCode(err, ECONFLICT) || IsCode(err, ENOTFOUND) {
		return &Error{Code: EPRECONDITION, Message: "the user or its bucket's counts changed meanwhile", Err: err}
	}
	return err
}

// CountsRowKey is the row key of the counts row of every users partition,
// for tests and tools that read the users table directly.
const CountsRowKey = countsRowKey
