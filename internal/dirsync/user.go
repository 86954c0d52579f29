package dirsync

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"time"
)

// User statuses.
const (
	StatusActive    = "active"    // in the directory
	StatusDuplicate = "duplicate" // its email belongs to another user; not synced
	StatusSkipped   = "skipped"   // lacks a required attribute; not synced
)

// User is a row of the synced directory.
type User struct {
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
	Status string            `json:"status"`
	// Reason explains a skipped or duplicate status in plain words.
	Reason      string `json:"reason,omitempty"`
	DuplicateOf string `json:"duplicateOf,omitempty"`
	// Missing lists the required fields a skipped user lacks (comma-separated).
	Missing string `json:"-"`
	// Email is the normalized (trimmed, lower-cased) value of the email field.
	Email string `json:"email,omitempty"`
	UPN   string `json:"upn,omitempty"`
	Hash  string `json:"-"`
	// RunSeq and PageSeq stamp the page that last wrote the row, so an older
	// page never overwrites a newer state and a redelivered page is
	// recognised; Action is what that page did (added, updated, ...).
	RunSeq    int64     `json:"-"`
	PageSeq   int64     `json:"-"`
	Action    string    `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	ChangedAt time.Time `json:"changedAt"` // last change of fields or status
	ETag      string    `json:"-"`
}

// mapUser applies the mapping to a Graph user and checks required fields.
// It returns the mapped fields and the required fields that are missing.
//
// With old != nil the user is a partial update from a later delta round: a
// field whose attributes Graph did not send keeps its old value, and an
// attribute Graph sent as null clears it.
func (s Settings) mapUser(su SourceUser, old map[string]string) (fields map[string]string, missing []string) {
	fields = make(map[string]string, len(s.Mapping))
	cleared := map[string]bool{}
	for _, a := range su.Cleared {
		cleared[a] = true
	}
	attr := func(name string) (string, bool) {
		v, ok := su.Attributes[name]
		return strings.TrimSpace(v), ok
	}
	for _, m := range s.Mapping {
		var v string
		switch {
		case m.Constant != "":
			v = m.Constant
		default:
			src, srcSent := attr(m.Source)
			fb, fbSent := "", false
			if m.Fallback != "" {
				fb, fbSent = attr(m.Fallback)
			}
			switch {
			case src != "":
				v = src
			case srcSent || cleared[m.Source] || old == nil:
				v = fb
			case fbSent && fb != "" && old[m.Field] == "":
				v = fb
			default:
				v = old[m.Field] // not sent: unchanged
			}
		}
		if v != "" {
			fields[m.Field] = v
		}
	}
	for _, r := range s.Required {
		if fields[r] == "" {
			missing = append(missing, r)
		}
	}
	return fields, missing
}

// NormalizeEmail trims and lower-cases an email for duplicate detection.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// fieldsHash is a stable hash of the mapped fields: equal hashes mean no
// write is needed.
func fieldsHash(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(fields[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// FieldChange is one changed field, for the run log. Old and New are empty
// for sensitive fields.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// diffFields lists the fields that differ between old and new, in name order,
// leaving out the values of sensitive fields.
func (s Settings) diffFields(old, new map[string]string) []FieldChange {
	names := map[string]bool{}
	for k := range old {
		names[k] = true
	}
	for k := range new {
		names[k] = true
	}
	var out []FieldChange
	for k := range names {
		if old[k] == new[k] {
			continue
		}
		c := FieldChange{Field: k}
		if m, ok := s.mapping(k); !ok || !m.Sensitive {
			c.Old, c.New = old[k], new[k]
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

const fieldPrefix = "f_"

func userToEntity(u User) Entity {
	p := map[string]any{
		"status":    u.Status,
		"hash":      u.Hash,
		"runSeq":    u.RunSeq,
		"pageSeq":   u.PageSeq,
		"action":    u.Action,
		"createdAt": u.CreatedAt.UTC(),
		"changedAt": u.ChangedAt.UTC(),
	}
	for k, v := range map[string]string{"reason": u.Reason, "duplicateOf": u.DuplicateOf, "email": u.Email, "upn": u.UPN, "missing": u.Missing} {
		if v != "" {
			p[k] = v
		}
	}
	for k, v := range u.Fields {
		p[fieldPrefix+k] = v
	}
	return Entity{PartitionKey: Bucket(u.ID), RowKey: u.ID, ETag: u.ETag, Props: p}
}

func userFromEntity(e Entity) User {
	u := User{
		ID: e.RowKey, Status: e.Str("status"), Reason: e.Str("reason"), DuplicateOf: e.Str("duplicateOf"),
		Email: e.Str("email"), Missing: e.Str("missing"), UPN: e.Str("upn"), Hash: e.Str("hash"), RunSeq: e.Int("runSeq"),
		PageSeq: e.Int("pageSeq"), Action: e.Str("action"), CreatedAt: e.Time("createdAt"),
		ChangedAt: e.Time("changedAt"), ETag: e.ETag, Fields: map[string]string{},
	}
	for k, v := range e.Props {
		if s, ok := v.(string); ok && strings.HasPrefix(k, fieldPrefix) {
			u.Fields[k[len(fieldPrefix):]] = s
		}
	}
	return u
}

// newer reports whether stamp (run, page) a is strictly after b.
func newer(aRun, aPage, bRun, bPage int64) bool {
	if aRun != bRun {
		return aRun > bRun
	}
	return aPage > bPage
}
