package dirsync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

const (
	settingsPartition = "settings"
	settingsRow       = "current"
)

// SettingsStore keeps the settings document and the audit trail of its
// changes. The document is versioned by its row's ETag.
type SettingsStore struct {
	Store  Store
	Now    func() time.Time
	Logger *slog.Logger
	// Random fills b with random bytes (default crypto/rand).
	Random func(b []byte)
}

// Get returns the current settings and their ETag. Before an admin saves
// any, it returns DefaultSettings with an empty ETag.
//
// Errors: EINVALID when the stored document cannot be read (it is then left
// untouched, so nothing is lost); store errors as they come.
func (ss *SettingsStore) Get(ctx context.Context) (Settings, string, error) {
	ent, err := ss.Store.Get(ctx, TableSettings, settingsPartition, settingsRow)
	if IsCode(err, ENOTFOUND) {
		return DefaultSettings(), "", nil
	}
	if err != nil {
		return Settings{}, "", fmt.Errorf("read settings: %w", err)
	}
	s, err := DecodeSettings([]byte(getChunked(ent, "json")))
	if err != nil {
		return Settings{}, "", &Error{Code: EINVALID, Message: "the stored settings document cannot be read: " + ErrorMessage(err),
			Hint: "Save a corrected document with PUT /api/settings (If-Match: *); the stored one is kept until then."}
	}
	return s, ent.ETag, nil
}

// Put validates and saves s. ifMatch must be the ETag returned by Get ("" is
// accepted only while no settings were ever saved; "*" overwrites), so two
// admins cannot overwrite each other's changes unseen. The audit row is
// written first: a change that cannot be audited is not made.
//
// Errors: EINVALID naming the bad field (nothing is saved), EPRECONDITION
// when ifMatch is stale, store errors as they come.
func (ss *SettingsStore) Put(ctx context.Context, s Settings, ifMatch, who string) (etag string, err error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	before, beforeTag, err := ss.Get(ctx)
	if err != nil && !IsCode(err, EINVALID) {
		return "", err
	}
	if ifMatch != beforeTag && ifMatch != "*" {
		return "", &Error{Code: EPRECONDITION, Message: "the settings were changed by someone else since you read them",
			Hint: "GET /api/settings again, re-apply your change, and send it with the new ETag in If-Match."}
	}
	after, _ := json.Marshal(s)
	b, _ := json.Marshal(before)
	err = ss.trail().audited(ctx, AuditEntry{Who: who, Action: "settings.update", Before: b, After: after}, func() error {
		ent := Entity{PartitionKey: settingsPartition, RowKey: settingsRow, ETag: beforeTag,
			Props: map[string]any{"updatedBy": who, "updatedAt": ss.Now()}}
		putChunked(ent.Props, "json", string(after))
		var err error
		switch {
		case ifMatch == "*":
			ent.ETag = ""
			etag, err = ss.Store.Replace(ctx, TableSettings, ent) // unconditional
		case beforeTag == "":
			etag, err = ss.Store.Insert(ctx, TableSettings, ent)
			if IsCode(err, ECONFLICT) {
				err = Errorf(EPRECONDITION, "the settings were saved by someone else at the same moment").
					WithHint("GET /api/settings again and re-apply your change.")
			}
		default:
			etag, err = ss.Store.Replace(ctx, TableSettings, ent)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	return etag, nil
}

func (ss *SettingsStore) trail() auditTrail {
	return auditTrail{store: ss.Store, now: ss.Now, random: ss.Random}
}

// audit records an admin action.
func (ss *SettingsStore) audit(ctx context.Context, a AuditEntry) error {
	_, err := ss.trail().insert(ctx, a)
	return err
}

// List returns audit entries newest first, one page at a time.
func (ss *SettingsStore) List(ctx context.Context, limit int, token string) ([]AuditEntry, string, error) {
	return ss.trail().list(ctx, limit, token)
}

// Settings returns the current settings and their ETag (SettingsStore.Get).
func (e *Engine) Settings(ctx context.Context) (Settings, string, error) {
	return e.settingsStore().Get(ctx)
}

// PutSettings saves the settings (SettingsStore.Put). Disabling sync
// cancels the run in progress, if any: its applied changes stay, the delta
// token does not move, and nothing more is applied until sync is enabled
// again, as the status page says.
//
// Errors: as SettingsStore.Put.
func (e *Engine) PutSettings(ctx context.Context, s Settings, ifMatch, who string) (string, error) {
	etag, err := e.settingsStore().Put(ctx, s, ifMatch, who)
	if err != nil {
		return "", err
	}
	if !s.Enabled {
		// Read the lock after saving: a start that took it before the save
		// is cancelled here; one after it reads disabled (StartRun).
		if lock, err := e.readLock(ctx); err == nil && lock.RunID != "" {
			if err := e.endRun(ctx, lock.RunID, RunCancelled, "", "Cancelled because sync was disabled by "+who+".",
				"Enable sync to resume; the next run picks up from the last successful one."); err != nil && !IsCode(err, ENOTFOUND) {
				e.log().WarnContext(ctx, "could not cancel the run of a disabled sync", "run", lock.RunID, "err", err)
			}
		}
	}
	return etag, nil
}

// ListAudit returns audit entries newest first (SettingsStore.List).
func (e *Engine) ListAudit(ctx context.Context, limit int, token string) ([]AuditEntry, string, error) {
	return e.settingsStore().List(ctx, limit, token)
}
