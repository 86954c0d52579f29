// Package dirsynctest holds in-memory implementations of the dirsync ports
// for unit tests of pure logic. They follow the ports' error contracts so the
// engine can be tested in milliseconds; the real adapters are tested against
// Azurite, the Graph simulator and the local host. Env puts the real engine
// on them; Sim (sim.go) is the deterministic simulator that explores the
// engine on them under a seed.
package dirsynctest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Store is an in-memory dirsync.Store.
type Store struct {
	mu     sync.Mutex
	tables map[string]map[string]dirsync.Entity // table -> pk+"\x00"+rk
	etag   int64
	// FailNext, when set, is returned (and cleared) by the next write, or,
	// with FailTable set, by the next write to that table.
	FailNext  error
	FailTable string
}

var _ dirsync.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store { return &Store{tables: map[string]map[string]dirsync.Entity{}} }

func key(pk, rk string) string { return pk + "\x00" + rk }

func (s *Store) table(name string) map[string]dirsync.Entity {
	t := s.tables[name]
	if t == nil {
		t = map[string]dirsync.Entity{}
		s.tables[name] = t
	}
	return t
}

func (s *Store) nextETag() string { s.etag++; return fmt.Sprintf("W/\"%d\"", s.etag) }

func clone(e dirsync.Entity) dirsync.Entity {
	e.Props = maps.Clone(e.Props)
	if e.Props == nil {
		e.Props = map[string]any{}
	}
	return e
}

func checkKeys(e dirsync.Entity) error {
	for _, k := range []string{e.PartitionKey, e.RowKey} {
		if why := dirsync.ValidKey(k); why != "" {
			return dirsync.Errorf(dirsync.EINVALID, "key %q %s", k, why)
		}
	}
	return nil
}

func (s *Store) fail(table string) error {
	if err := s.FailNext; err != nil && (s.FailTable == "" || s.FailTable == table) {
		s.FailNext = nil
		return err
	}
	return nil
}

func (s *Store) Get(ctx context.Context, table, pk, rk string) (dirsync.Entity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.table(table)[key(pk, rk)]
	if !ok {
		return dirsync.Entity{}, dirsync.Errorf(dirsync.ENOTFOUND, "%s/%s/%s not found", table, pk, rk)
	}
	return clone(e), nil
}

func (s *Store) Insert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(table); err != nil {
		return "", err
	}
	return s.apply(table, dirsync.BatchOp{Kind: dirsync.BatchInsert, Entity: e})
}

func (s *Store) Upsert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(table); err != nil {
		return "", err
	}
	return s.apply(table, dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: e})
}

func (s *Store) Replace(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(table); err != nil {
		return "", err
	}
	return s.apply(table, dirsync.BatchOp{Kind: dirsync.BatchReplace, Entity: e})
}

func (s *Store) Delete(ctx context.Context, table, pk, rk, etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(table); err != nil {
		return err
	}
	_, err := s.apply(table, dirsync.BatchOp{Kind: dirsync.BatchDelete, Entity: dirsync.Entity{PartitionKey: pk, RowKey: rk, ETag: etag}})
	return err
}

// apply runs one operation; the caller holds the lock.
func (s *Store) apply(table string, op dirsync.BatchOp) (string, error) {
	e := op.Entity
	if err := checkKeys(e); err != nil {
		return "", err
	}
	t := s.table(table)
	k := key(e.PartitionKey, e.RowKey)
	cur, exists := t[k]
	switch op.Kind {
	case dirsync.BatchInsert:
		if exists {
			return "", dirsync.Errorf(dirsync.ECONFLICT, "%s/%s/%s already exists", table, e.PartitionKey, e.RowKey)
		}
	case dirsync.BatchReplace:
		if e.ETag != "" {
			if !exists {
				return "", dirsync.Errorf(dirsync.ENOTFOUND, "%s/%s/%s not found", table, e.PartitionKey, e.RowKey)
			}
			if cur.ETag != e.ETag {
				return "", dirsync.Errorf(dirsync.EPRECONDITION, "%s/%s/%s changed", table, e.PartitionKey, e.RowKey)
			}
		}
	case dirsync.BatchDelete:
		if !exists {
			return "", nil
		}
		if e.ETag != "" && cur.ETag != e.ETag {
			return "", dirsync.Errorf(dirsync.EPRECONDITION, "%s/%s/%s changed", table, e.PartitionKey, e.RowKey)
		}
		delete(t, k)
		return "", nil
	}
	e = clone(e)
	e.ETag = s.nextETag()
	t[k] = e
	return e.ETag, nil
}

func (s *Store) Batch(ctx context.Context, table string, ops []dirsync.BatchOp) error {
	_, err := s.BatchETags(ctx, table, ops)
	return err
}

// BatchETags is Batch, returning the ETag each row got ("" for deletes).
func (s *Store) BatchETags(ctx context.Context, table string, ops []dirsync.BatchOp) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(table); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, nil
	}
	if len(ops) > dirsync.MaxBatch {
		return nil, dirsync.Errorf(dirsync.EINVALID, "batch of %d operations; at most %d", len(ops), dirsync.MaxBatch)
	}
	etags := make([]string, len(ops))
	pk := ops[0].Entity.PartitionKey
	snapshot := maps.Clone(s.table(table))
	for i, op := range ops {
		if op.Entity.PartitionKey != pk {
			s.tables[table] = snapshot
			return nil, dirsync.Errorf(dirsync.EINVALID, "batch spans partitions %q and %q", pk, op.Entity.PartitionKey)
		}
		if _, exists := s.table(table)[key(op.Entity.PartitionKey, op.Entity.RowKey)]; op.Kind == dirsync.BatchDelete && !exists {
			// As in Table Storage: a batch cannot skip a delete.
			s.tables[table] = snapshot
			return nil, &dirsync.BatchOpError{Index: i, Err: dirsync.Errorf(dirsync.ENOTFOUND, "%s/%s/%s not found", table, op.Entity.PartitionKey, op.Entity.RowKey)}
		}
		etag, err := s.apply(table, op)
		if err != nil {
			s.tables[table] = snapshot
			return nil, &dirsync.BatchOpError{Index: i, Err: err}
		}
		etags[i] = etag
	}
	return etags, nil
}

func (s *Store) Query(ctx context.Context, table string, q dirsync.Query) (dirsync.EntityPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	top := q.Top
	if top <= 0 || top > 1000 {
		top = 1000
	}
	after := ""
	if q.Continuation != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Continuation)
		if err != nil {
			return dirsync.EntityPage{}, dirsync.Errorf(dirsync.EINVALID, "the paging token is not valid; start again without it")
		}
		after = string(b)
	}
	var keys []string
	for k, e := range s.table(table) {
		if q.PartitionKey != "" && e.PartitionKey != q.PartitionKey {
			continue
		}
		if !strings.HasPrefix(e.RowKey, q.RowKeyPrefix) || e.RowKey < q.RowKeyFrom || (q.RowKeyBefore != "" && e.RowKey >= q.RowKeyBefore) {
			continue
		}
		if after != "" && k <= after {
			continue
		}
		if !dirsync.MeetsAny(e, q.AnyOf) {
			continue // filtered as Table Storage would
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var page dirsync.EntityPage
	for i, k := range keys {
		if i == top {
			page.Continuation = base64.RawURLEncoding.EncodeToString([]byte(keys[i-1]))
			break
		}
		page.Entities = append(page.Entities, clone(s.table(table)[k]))
	}
	return page, nil
}

func (s *Store) Ping(ctx context.Context) error { return nil }

// Rows returns every row of a table, for assertions.
func (s *Store) Rows(table string) []dirsync.Entity {
	p, _ := s.Query(context.Background(), table, dirsync.Query{Top: 1000})
	all := p.Entities
	for p.Continuation != "" {
		p, _ = s.Query(context.Background(), table, dirsync.Query{Top: 1000, Continuation: p.Continuation})
		all = append(all, p.Entities...)
	}
	return all
}

// Logs is an in-memory dirsync.LogStore.
type Logs struct {
	mu   sync.Mutex
	logs map[string]*bytes.Buffer
}

var _ dirsync.LogStore = (*Logs)(nil)

func NewLogs() *Logs { return &Logs{logs: map[string]*bytes.Buffer{}} }

func (l *Logs) CreateLog(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logs[name] == nil {
		l.logs[name] = &bytes.Buffer{}
	}
	return nil
}

func (l *Logs) AppendLog(ctx context.Context, name string, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.logs[name]
	if b == nil {
		return dirsync.Errorf(dirsync.ENOTFOUND, "log %s not found", name)
	}
	b.Write(data)
	return nil
}

func (l *Logs) OpenLog(ctx context.Context, name string) (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.logs[name]
	if b == nil {
		return nil, dirsync.Errorf(dirsync.ENOTFOUND, "log %s not found", name)
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(b.Bytes()))), nil
}

func (l *Logs) LogURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	return "memory://" + name, nil
}

func (l *Logs) Ping(ctx context.Context) error { return nil }

// Text returns a log's content.
func (l *Logs) Text(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.logs[name]; b != nil {
		return b.String()
	}
	return ""
}
