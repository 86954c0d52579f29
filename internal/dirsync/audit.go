package dirsync

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

const auditPartition = "audit"

// AuditEntry records one change an admin made.
type AuditEntry struct {
	Time   time.Time       `json:"time"`
	Who    string          `json:"who"`
	Action string          `json:"action"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// auditTrail writes the rows of TableAudit, newest first. SettingsStore and
// GroupStore share it, so every admin change lands in one trail.
type auditTrail struct {
	store  Store
	now    func() time.Time
	random func(b []byte)
}

// insert writes one audit row and returns its row key.
func (at auditTrail) insert(ctx context.Context, a AuditEntry) (string, error) {
	now := at.now()
	a.Time = now
	b, _ := json.Marshal(a)
	var suffix [3]byte
	if at.random != nil {
		at.random(suffix[:])
	} else {
		rand.Read(suffix[:])
	}
	rk := fmt.Sprintf("%019d-%x", 1<<62-now.UnixNano(), suffix)
	props := map[string]any{"who": a.Who, "action": a.Action, "time": now}
	putChunked(props, "json", string(b))
	if _, err := at.store.Insert(ctx, TableAudit, Entity{PartitionKey: auditPartition, RowKey: rk, Props: props}); err != nil {
		return "", err
	}
	return rk, nil
}

// audited writes the audit row a first and then makes the change (write): a
// change that cannot be audited is not made, and when write fails its audit
// row is withdrawn, so the trail never records a change that did not happen.
// write's error is returned as it is.
func (at auditTrail) audited(ctx context.Context, a AuditEntry, write func() error) error {
	key, err := at.insert(ctx, a)
	if err != nil {
		return fmt.Errorf("%s: audit: %w", a.Action, err)
	}
	if err := write(); err != nil {
		at.store.Delete(ctx, TableAudit, auditPartition, key, "")
		return err
	}
	return nil
}

// list returns audit entries newest first, one page at a time.
func (at auditTrail) list(ctx context.Context, limit int, token string) ([]AuditEntry, string, error) {
	page, err := at.store.Query(ctx, TableAudit, Query{PartitionKey: auditPartition, Top: limit, Continuation: token})
	if err != nil {
		return nil, "", err
	}
	out := make([]AuditEntry, 0, len(page.Entities))
	for _, ent := range page.Entities {
		var a AuditEntry
		if json.Unmarshal([]byte(getChunked(ent, "json")), &a) == nil {
			out = append(out, a)
		}
	}
	return out, page.Continuation, nil
}
