package dirsync

import (
	"context"
	"io"
	"time"
)

// This file holds the small interfaces the engine needs from the outside world.
// Each is implemented by one adapter package named for the system it talks to
// (internal/table, internal/blob, internal/servicebus, internal/graph), and by
// in-memory fakes in internal/dirsync/dirsynctest for unit tests.

// Entity is one row of a table. Property values are limited to the types Azure
// Table Storage can hold losslessly: string, bool, int64, float64 and time.Time
// (UTC). Keys must satisfy ValidKey.
type Entity struct {
	PartitionKey string
	RowKey       string
	// ETag is set by every read and write. A non-empty ETag on Replace, Delete
	// or a conditional batch operation makes the write succeed only if the row
	// still has that ETag.
	ETag  string
	Props map[string]any
}

// Str returns the string property name, or "".
func (e Entity) Str(name string) string { s, _ := e.Props[name].(string); return s }

// Int returns the int64 property name, or 0.
func (e Entity) Int(name string) int64 {
	switch v := e.Props[name].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

// Bool returns the bool property name, or false.
func (e Entity) Bool(name string) bool { b, _ := e.Props[name].(bool); return b }

// Time returns the time property name, or the zero time.
func (e Entity) Time(name string) time.Time { t, _ := e.Props[name].(time.Time); return t }

// BatchKind says what a batch operation does.
type BatchKind int

const (
	BatchInsert  BatchKind = iota // fails the batch if the row exists
	BatchUpsert                   // insert or replace, unconditionally
	BatchReplace                  // replace; conditional on Entity.ETag when set
	BatchDelete                   // delete; conditional on Entity.ETag when set
)

// BatchOp is one operation of a Store.Batch.
type BatchOp struct {
	Kind   BatchKind
	Entity Entity
}

// MaxBatch is the most operations one Store.Batch may carry (Azure's limit).
const MaxBatch = 100

// Query selects rows of one table. Zero fields do not filter.
type Query struct {
	PartitionKey string // exact partition; "" = every partition (a scan: avoid on hot paths)
	RowKeyPrefix string // rows whose key starts with this
	RowKeyFrom   string // rows whose key is >= this
	RowKeyBefore string // rows whose key is < this
	// Top caps the rows returned in one page (1..1000, 0 = 1000).
	Top int
	// AnyOf, when set, lets the store leave out rows that meet none of its
	// conditions (Table Storage filters them on the server, so a scan
	// looking for a few rows does not page through all of them). It is a
	// hint: a store may return other rows too (the preview view does), so
	// callers still check every row.
	AnyOf []IntCond
	// Continuation resumes a previous query; it is the opaque value of
	// EntityPage.Continuation and must be passed back unchanged.
	Continuation string
}

// IntCond is a condition on an integer property of a row: Prop < Value,
// or Prop >= Value when AtLeast. A row without the property meets neither.
type IntCond struct {
	Prop    string
	AtLeast bool
	Value   int64
}

// Meets reports whether an entity meets c.
func (c IntCond) Meets(e Entity) bool {
	if _, ok := e.Props[c.Prop]; !ok {
		return false
	}
	n := e.Int(c.Prop)
	if c.AtLeast {
		return n >= c.Value
	}
	return n < c.Value
}

// MeetsAny reports whether e meets one of conds (true for none: no
// condition to meet).
func MeetsAny(e Entity, conds []IntCond) bool {
	for _, c := range conds {
		if c.Meets(e) {
			return true
		}
	}
	return len(conds) == 0
}

// EntityPage is one page of query results in key order.
type EntityPage struct {
	Entities []Entity
	// Continuation is "" when there are no more rows.
	Continuation string
}

// Store is a set of tables of entities (Azure Table Storage). Table names are
// logical ("users", "runs", ...): the adapter maps them to real tables and
// creates a missing table on first use.
//
// Error contract, for every method: ENOTFOUND when the row is missing (Get,
// conditional Replace), ECONFLICT when Insert finds the row present,
// EPRECONDITION when a conditional write finds another ETag, EINVALID for keys
// or values the store cannot hold (forbidden key characters, oversize
// properties, a malformed continuation token), ETHROTTLED / EUNAVAILABLE for
// transient failures that a later retry may cure, and an EINTERNAL-coded error
// wrapping the operation name for anything else.
type Store interface {
	// Get reads one row.
	Get(ctx context.Context, table, pk, rk string) (Entity, error)
	// Insert creates a row that must not exist; it returns the stored ETag.
	Insert(ctx context.Context, table string, e Entity) (etag string, err error)
	// Upsert creates or replaces a row unconditionally.
	Upsert(ctx context.Context, table string, e Entity) (etag string, err error)
	// Replace overwrites a row. With e.ETag set it is conditional (EPRECONDITION
	// on mismatch, ENOTFOUND if the row is gone); with e.ETag empty it behaves
	// as Upsert.
	Replace(ctx context.Context, table string, e Entity) (etag string, err error)
	// Delete removes a row. A missing row is not an error (deletes are
	// idempotent); a non-empty etag makes it conditional (EPRECONDITION).
	Delete(ctx context.Context, table, pk, rk, etag string) error
	// Batch applies up to MaxBatch operations on rows of ONE partition
	// atomically: all or none. A failing operation fails the whole batch with
	// that operation's code (ECONFLICT, EPRECONDITION, ...); when the store
	// knows which operation it was, the error is a *BatchOpError naming it
	// (FailedOp).
	Batch(ctx context.Context, table string, ops []BatchOp) error
	// Query returns one page of matching rows, in key order.
	Query(ctx context.Context, table string, q Query) (EntityPage, error)
	// Ping checks that the store is reachable and the credentials work.
	Ping(ctx context.Context) error
}

// BatchETagger is a Store whose batches also report the ETag each row got,
// in the order of ops ("" for a delete). It is optional: the engine uses it
// to write a users partition's counts row without reading it first
// (usersBatch); a nil slice with a nil error means the ETags are not known.
// Errors are Batch's.
type BatchETagger interface {
	BatchETags(ctx context.Context, table string, ops []BatchOp) ([]string, error)
}

// LogStore holds run logs as append-only objects (Azure append blobs), named
// like "2026/11/23/<run id>.jsonl" inside the configured container.
//
// Error contract: ENOTFOUND for a missing log, EINVALID for a bad name or an
// oversize append, ETHROTTLED / EUNAVAILABLE for transient failures, EINTERNAL
// wrapping the operation otherwise.
type LogStore interface {
	// CreateLog creates an empty log; an existing log is left as it is (nil).
	CreateLog(ctx context.Context, name string) error
	// AppendLog appends data to the log. Any size is accepted; the adapter
	// splits it into blocks as the service requires.
	AppendLog(ctx context.Context, name string, data []byte) error
	// OpenLog streams the log; the caller closes the reader.
	OpenLog(ctx context.Context, name string) (io.ReadCloser, error)
	// LogURL returns a read-only URL valid for ttl (a SAS link) for people who
	// prefer Storage Explorer. EINVALID when the credentials cannot sign one.
	LogURL(ctx context.Context, name string, ttl time.Duration) (string, error)
	// Ping checks that the store is reachable and the credentials work.
	Ping(ctx context.Context) error
}

// Message is one queue message.
type Message struct {
	// ID is the message id; the queue drops a second message with the same id
	// sent within its duplicate-detection window.
	ID   string
	Body []byte
	// NotBefore schedules the message: it is not delivered before this time.
	// The zero time means now.
	NotBefore time.Time
}

// Queue sends work items to the "sync-work" queue (Azure Service Bus, or the
// local host's in-process queue).
//
// Error contract: EINVALID for an oversize message, ETHROTTLED / EUNAVAILABLE
// for transient failures, EINTERNAL wrapping the operation otherwise.
type Queue interface {
	Send(ctx context.Context, m Message) error
}

// PhotoStore holds one photo per user (Azure block blobs under "photos/" in
// the photo container), with its content type.
//
// Error contract: ENOTFOUND when OpenPhoto finds no photo, EINVALID for a
// user id that cannot be a blob name or a size that does not match the data,
// ETHROTTLED / EUNAVAILABLE for transient failures, EINTERNAL wrapping the
// operation otherwise.
type PhotoStore interface {
	// PutPhoto stores (or replaces) the user's photo, streaming exactly size
	// bytes from r, and keeps contentType.
	PutPhoto(ctx context.Context, userID, contentType string, r io.Reader, size int64) error
	// DeletePhoto removes the user's photo; a missing photo is not an error.
	DeletePhoto(ctx context.Context, userID string) error
	// OpenPhoto streams the user's photo; the caller closes the reader.
	OpenPhoto(ctx context.Context, userID string) (rc io.ReadCloser, contentType string, size int64, err error)
}
