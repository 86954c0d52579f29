package dirsync

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

const (
	settingsPartition = "settings"
	settingsRow       = "current"
	auditPartition    = "audit"
)

// Settings returns the current settings and their ETag. Before an admin saves
// any, it returns DefaultSettings with an empty ETag.
func (e *Engine) Settings(ctx context.Context) (Settings, string, error) {
	ent, err := e.Store.Get(ctx, TableSettings, settingsPartition, settingsRow)
	if IsCode(err, ENOTFOUND) {
		return DefaultSettings(), "", nil
	}
	if err != nil {
		return Settings{}, "", fmt.Errorf("read settings: %w", err)
	}
	s := DefaultSettings()
	if err := json.Unmarshal([]byte(ent.Str("json")), &s); err != nil {
		return Settings{}, "", fmt.Errorf("read settings: stored document is not valid: %w", err)
	}
	return s, ent.ETag, nil
}

// AuditEntry records one settings change.
type AuditEntry struct {
	Time   time.Time       `json:"time"`
	Who    string          `json:"who"`
	Action string          `json:"action"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// PutSettings validates and saves s. ifMatch must be the ETag returned by
// Settings ("" is accepted only while no settings were ever saved), so two
// admins cannot overwrite each other's changes unseen. Each change writes an
// audit row.
//
// Errors: EINVALID naming the bad field (nothing is saved), EPRECONDITION when
// ifMatch is stale.
func (e *Engine) PutSettings(ctx context.Context, s Settings, ifMatch, who string) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	before, beforeTag, err := e.Settings(ctx)
	if err != nil {
		return "", err
	}
	if ifMatch != beforeTag && ifMatch != "*" {
		return "", &Error{Code: EPRECONDITION, Message: "the settings were changed by someone else since you read them",
			Hint: "GET /api/settings again, re-apply your change, and send it with the new ETag in If-Match."}
	}
	after, _ := json.Marshal(s)
	ent := Entity{PartitionKey: settingsPartition, RowKey: settingsRow, ETag: beforeTag,
		Props: map[string]any{"json": string(after), "updatedBy": who, "updatedAt": e.now()}}
	var etag string
	if beforeTag == "" {
		etag, err = e.Store.Insert(ctx, TableSettings, ent)
		if IsCode(err, ECONFLICT) {
			err = Errorf(EPRECONDITION, "the settings were saved by someone else at the same moment").
				WithHint("GET /api/settings again and re-apply your change.")
		}
	} else {
		etag, err = e.Store.Replace(ctx, TableSettings, ent)
	}
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(before)
	e.audit(ctx, AuditEntry{Who: who, Action: "settings.update", Before: b, After: after})
	return etag, nil
}

func (e *Engine) audit(ctx context.Context, a AuditEntry) {
	now := e.now()
	a.Time = now
	b, _ := json.Marshal(a)
	rk := fmt.Sprintf("%019d-%s", 1<<62-now.UnixNano(), newRunID(now)[16:])
	_, err := e.Store.Insert(ctx, TableAudit, Entity{PartitionKey: auditPartition, RowKey: rk,
		Props: map[string]any{"json": string(b), "who": a.Who, "action": a.Action, "time": now}})
	if err != nil {
		e.log().ErrorContext(ctx, "audit write failed", "action", a.Action, "err", err)
	}
}

// ListAudit returns audit entries newest first, one page at a time.
func (e *Engine) ListAudit(ctx context.Context, limit int, token string) ([]AuditEntry, string, error) {
	page, err := e.Store.Query(ctx, TableAudit, Query{PartitionKey: auditPartition, Top: limit, Continuation: token})
	if err != nil {
		return nil, "", err
	}
	out := make([]AuditEntry, 0, len(page.Entities))
	for _, ent := range page.Entities {
		var a AuditEntry
		if json.Unmarshal([]byte(ent.Str("json")), &a) == nil {
			out = append(out, a)
		}
	}
	return out, page.Continuation, nil
}
