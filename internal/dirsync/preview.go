package dirsync

import (
	"context"
	"encoding/base64"
	"strings"
)

// A preview run reads Graph exactly as a real run and runs the same engine,
// step for step, against a copy-on-write view of the directory: every write
// to the directory's tables (users, emails, members, groups) lands in
// shadow rows of the run (the pages table, partition
// "<run>|pv|<table>|<partition>"), and reads see the shadow rows over the
// real ones. So its counters, its log and its pending deletions are what a
// real run would produce, by construction, while the directory, the
// groups, the email claims and the delta token stay as they were.

// previewTables are the tables a preview run writes to its shadow instead.
var previewTables = map[string]bool{TableUsers: true, TableEmails: true, TableMembers: true, TableGroups: true}

// previewStore is the copy-on-write view of one preview run.
type previewStore struct {
	Store
	runID string
}

var _ Store = (*previewStore)(nil)

const goneProp = "_previewGone" // a shadow tombstone: the row is deleted in the preview

func (p *previewStore) shadowPK(table, pk string) string { return p.runID + "|pv|" + table + "|" + pk }

func (p *previewStore) shadow(e Entity, table string) Entity {
	e.PartitionKey = p.shadowPK(table, e.PartitionKey)
	return e
}

// lookup reads the shadow row of (table, pk, rk): found reports whether a
// shadow row exists (gone: a tombstone).
func (p *previewStore) lookup(ctx context.Context, table, pk, rk string) (ent Entity, found, gone bool, err error) {
	ent, err = p.Store.Get(ctx, TablePages, p.shadowPK(table, pk), rk)
	if IsCode(err, ENOTFOUND) {
		return Entity{}, false, false, nil
	}
	if err != nil {
		return Entity{}, false, false, err
	}
	ent.PartitionKey = pk
	return ent, true, ent.Bool(goneProp), nil
}

func (p *previewStore) Get(ctx context.Context, table, pk, rk string) (Entity, error) {
	if !previewTables[table] {
		return p.Store.Get(ctx, table, pk, rk)
	}
	ent, found, gone, err := p.lookup(ctx, table, pk, rk)
	switch {
	case err != nil:
		return Entity{}, err
	case gone:
		return Entity{}, Errorf(ENOTFOUND, "%s/%s not found", table, rk)
	case found:
		delete(ent.Props, goneProp)
		return ent, nil
	}
	return p.Store.Get(ctx, table, pk, rk)
}

// resolve turns an operation on the view into one on the shadow partition,
// checking its condition against the real row when the shadow has none.
func (p *previewStore) resolve(ctx context.Context, table string, op BatchOp) (BatchOp, error) {
	e := op.Entity
	cur, found, gone, err := p.lookup(ctx, table, e.PartitionKey, e.RowKey)
	if err != nil {
		return BatchOp{}, err
	}
	out := BatchOp{Kind: op.Kind, Entity: p.shadow(e, table)}
	if op.Kind == BatchDelete {
		out.Entity.Props = map[string]any{goneProp: true}
	}
	if found {
		// The shadow row decides, conditions included.
		switch op.Kind {
		case BatchInsert:
			if !gone {
				return BatchOp{}, Errorf(ECONFLICT, "%s/%s exists", table, e.RowKey)
			}
			out.Kind, out.Entity.ETag = BatchReplace, cur.ETag
		case BatchReplace, BatchDelete:
			if gone && e.ETag != "" {
				return BatchOp{}, Errorf(ENOTFOUND, "%s/%s not found", table, e.RowKey)
			}
			out.Kind = BatchReplace
			if e.ETag == "" {
				out.Kind = BatchUpsert
			}
		}
		return out, nil
	}
	if op.Kind == BatchUpsert {
		return out, nil
	}
	real, err := p.Store.Get(ctx, table, e.PartitionKey, e.RowKey)
	exists := err == nil
	if err != nil && !IsCode(err, ENOTFOUND) {
		return BatchOp{}, err
	}
	switch op.Kind {
	case BatchInsert:
		if exists {
			return BatchOp{}, Errorf(ECONFLICT, "%s/%s exists", table, e.RowKey)
		}
	case BatchReplace:
		if e.ETag != "" && !exists {
			return BatchOp{}, Errorf(ENOTFOUND, "%s/%s not found", table, e.RowKey)
		}
		if e.ETag != "" && real.ETag != e.ETag {
			return BatchOp{}, Errorf(EPRECONDITION, "%s/%s changed", table, e.RowKey)
		}
	case BatchDelete:
		if e.ETag != "" && exists && real.ETag != e.ETag {
			return BatchOp{}, Errorf(EPRECONDITION, "%s/%s changed", table, e.RowKey)
		}
	}
	// The first shadow write of a row: an insert, so that of two writers
	// that both checked the real row, the second finds the first's.
	out.Kind, out.Entity.ETag = BatchInsert, ""
	return out, nil
}

func (p *previewStore) write(ctx context.Context, table string, op BatchOp) (string, error) {
	sop, err := p.resolve(ctx, table, op)
	if err != nil {
		return "", err
	}
	var etag string
	switch sop.Kind {
	case BatchInsert:
		etag, err = p.Store.Insert(ctx, TablePages, sop.Entity)
		if IsCode(err, ECONFLICT) && op.Kind != BatchInsert {
			err = Errorf(EPRECONDITION, "%s/%s changed", table, op.Entity.RowKey)
		}
	case BatchUpsert:
		etag, err = p.Store.Upsert(ctx, TablePages, sop.Entity)
	default:
		etag, err = p.Store.Replace(ctx, TablePages, sop.Entity)
	}
	return etag, err
}

func (p *previewStore) Insert(ctx context.Context, table string, e Entity) (string, error) {
	if !previewTables[table] {
		return p.Store.Insert(ctx, table, e)
	}
	return p.write(ctx, table, BatchOp{Kind: BatchInsert, Entity: e})
}

func (p *previewStore) Upsert(ctx context.Context, table string, e Entity) (string, error) {
	if !previewTables[table] {
		return p.Store.Upsert(ctx, table, e)
	}
	return p.write(ctx, table, BatchOp{Kind: BatchUpsert, Entity: e})
}

func (p *previewStore) Replace(ctx context.Context, table string, e Entity) (string, error) {
	if !previewTables[table] {
		return p.Store.Replace(ctx, table, e)
	}
	return p.write(ctx, table, BatchOp{Kind: BatchReplace, Entity: e})
}

func (p *previewStore) Delete(ctx context.Context, table, pk, rk, etag string) error {
	if !previewTables[table] {
		return p.Store.Delete(ctx, table, pk, rk, etag)
	}
	_, err := p.write(ctx, table, BatchOp{Kind: BatchDelete, Entity: Entity{PartitionKey: pk, RowKey: rk, ETag: etag}})
	if IsCode(err, ENOTFOUND) {
		return nil // deletes are idempotent
	}
	return err
}

// Batch resolves every operation against the view, then writes them to the
// shadow partition in one batch: atomic like the real one.
func (p *previewStore) Batch(ctx context.Context, table string, ops []BatchOp) error {
	if !previewTables[table] {
		return p.Store.Batch(ctx, table, ops)
	}
	shadow := make([]BatchOp, 0, len(ops))
	for _, op := range ops {
		sop, err := p.resolve(ctx, table, op)
		if IsCode(err, ENOTFOUND) && op.Kind == BatchDelete {
			continue
		}
		if err != nil {
			return err
		}
		shadow = append(shadow, sop)
	}
	if len(shadow) == 0 {
		return nil
	}
	err := p.Store.Batch(ctx, TablePages, shadow)
	if IsCode(err, ECONFLICT) {
		err = Errorf(EPRECONDITION, "a row of the batch changed meanwhile")
	}
	return err
}

// Query merges the shadow rows over the real ones, in key order. The view
// is only read one partition at a time (every scan of the engine is), and
// its continuation is the last key returned.
func (p *previewStore) Query(ctx context.Context, table string, q Query) (EntityPage, error) {
	if !previewTables[table] {
		return p.Store.Query(ctx, table, q)
	}
	if q.PartitionKey == "" {
		return EntityPage{}, Errorf(EINVALID, "a preview reads %s one partition at a time", table)
	}
	after := ""
	if q.Continuation != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Continuation)
		if err != nil {
			return EntityPage{}, Errorf(EINVALID, "the paging token is not valid; start again without it")
		}
		after = string(b)
	}
	sub := Query{PartitionKey: q.PartitionKey, RowKeyPrefix: q.RowKeyPrefix, RowKeyFrom: q.RowKeyFrom, RowKeyBefore: q.RowKeyBefore, Top: q.Top}
	if after != "" && after >= sub.RowKeyFrom {
		sub.RowKeyFrom = after
	}
	real, err := p.Store.Query(ctx, table, sub)
	if err != nil {
		return EntityPage{}, err
	}
	ssub := sub
	ssub.PartitionKey = p.shadowPK(table, q.PartitionKey)
	shadow, err := p.Store.Query(ctx, TablePages, ssub)
	if err != nil {
		return EntityPage{}, err
	}
	// Rows up to the smaller of the two pages' last keys are complete.
	limit, more := "", false
	if real.Continuation != "" && len(real.Entities) > 0 {
		limit, more = real.Entities[len(real.Entities)-1].RowKey, true
	}
	if shadow.Continuation != "" && len(shadow.Entities) > 0 {
		if last := shadow.Entities[len(shadow.Entities)-1].RowKey; !more || last < limit {
			limit = last
		}
		more = true
	}
	var out EntityPage
	i, j := 0, 0
	for i < len(real.Entities) || j < len(shadow.Entities) {
		var ent Entity
		switch {
		case j >= len(shadow.Entities) || (i < len(real.Entities) && real.Entities[i].RowKey < shadow.Entities[j].RowKey):
			ent = real.Entities[i]
			i++
		case i >= len(real.Entities) || shadow.Entities[j].RowKey < real.Entities[i].RowKey:
			ent = shadow.Entities[j]
			j++
		default: // both: the shadow wins
			ent = shadow.Entities[j]
			i++
			j++
		}
		if more && ent.RowKey > limit {
			break
		}
		if ent.RowKey == after {
			continue // returned by the previous page
		}
		if strings.HasPrefix(ent.PartitionKey, p.runID+"|pv|") {
			ent.PartitionKey = q.PartitionKey
			if ent.Bool(goneProp) {
				continue
			}
		}
		delete(ent.Props, goneProp)
		out.Entities = append(out.Entities, ent)
	}
	if more {
		out.Continuation = base64.RawURLEncoding.EncodeToString([]byte(limit))
	}
	return out, nil
}

// forRun returns the engine a run's work items use: the same engine on
// the run's copy-on-write view. Other runs get e itself.
func (e *Engine) forRun(run Run) *Engine {
	if !run.Preview {
		return e
	}
	pe := *e
	pe.Store = &previewStore{Store: e.Store, runID: run.ID}
	return &pe
}
