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
	// Raw holds the attributes rawAttributes names, as Graph sent them.
	Raw map[string]string `json:"-"`
	// RunSeq and PageSeq stamp the page that last wrote the row, so an older
	// page never overwrites a newer state and a redelivered page is
	// recognised; Action is what that page did (added, updated, ...).
	RunSeq  int64  `json:"-"`
	PageSeq int64  `json:"-"`
	Action  string `json:"-"`
	// AddedBy and UpdatedBy are the runs that last added (made active) and
	// last changed the user, so a run restarted in a new epoch still counts
	// what its earlier epochs did.
	AddedBy   int64     `json:"-"`
	UpdatedBy int64     `json:"-"`
	CreatedAt time.Time `json:"createdAt"`
	ChangedAt time.Time `json:"changedAt"` // last change of fields or status
	// Groups lists, sorted, the directory groups (dynamic and mirrored) the
	// user is a member of. It is the truth of membership: written with the
	// user's state under the page stamps; TableMembers indexes it per group.
	Groups []string `json:"groups,omitempty"`
	// MemberVer versions Groups for the per-group index (members.go): it
	// grows with every write of the row that changes or re-decides Groups.
	MemberVer string `json:"-"`
	// MemberDiff lists the groups whose membership the row's last write
	// changed: the index entries that write has to set (members_index.go).
	MemberDiff []string `json:"-"`
	// The photo as last stored by photo sync (photos.go): its Graph ETag
	// (@odata.mediaEtag), size in bytes and content type; PhotoBy is the run
	// that last changed these fields, PhotoSkipped why the photo with that
	// ETag is not stored ("" when it is).
	PhotoETag    string `json:"photoETag,omitempty"`
	PhotoSize    int64  `json:"photoSize,omitempty"`
	PhotoType    string `json:"photoType,omitempty"`
	PhotoBy      int64  `json:"-"`
	PhotoSkipped string `json:"photoSkipped,omitempty"`
	ETag         string `json:"-"`
}

// maxFieldChars bounds one mapped value. Graph attributes are far shorter;
// a longer value (a bad import into Entra) is cut, with the reason logged,
// so that 100 mapped fields still fit a table row and a batch its 4 MiB.
const maxFieldChars = 2000

// mapUser applies the mapping to a user's attributes (by Graph name) and
// checks required fields. It returns the mapped fields, the required fields
// that are missing, and the fields whose value was cut to maxFieldChars.
func (s Settings) mapUser(attrs map[string]string) (fields map[string]string, missing, truncated []string) {
	fields = make(map[string]string, len(s.Mapping))
	for _, m := range s.Mapping {
		v := m.Constant
		if v == "" {
			v = strings.TrimSpace(attrs[m.Source])
			if v == "" && m.Fallback != "" {
				v = strings.TrimSpace(attrs[m.Fallback])
			}
		}
		if cut, ok := cutRunes(v, maxFieldChars); ok {
			v = cut
			truncated = append(truncated, m.Field)
		}
		if v != "" {
			fields[m.Field] = v
		}
	}
	for _, r := range s.Required {
		if fields[s.canonicalField(r)] == "" {
			missing = append(missing, s.canonicalField(r))
		}
	}
	return fields, missing, truncated
}

// cutRunes returns s cut to n runes, and whether it was cut.
func cutRunes(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos], true
		}
		i++
	}
	return s, false
}

// rawAttributes lists the Graph attributes kept on the user row as they
// came: the source and fallback of every mapping that has a fallback. A
// later partial update that sends only one of them (mail cleared,
// userPrincipalName not sent) is then mapped against the other's real value,
// not against the field it produced.
func (s Settings) rawAttributes() []string {
	var out []string
	for _, m := range s.Mapping {
		if m.Fallback != "" {
			out = append(out, m.Source, m.Fallback)
		}
	}
	return out
}

// currentAttributes returns a user's attributes as they stand after a
// delta update. A full enumeration sends every set attribute (old == nil).
// A later delta round sends "at least the properties that have been
// updated" (Graph's delta query overview): an attribute not sent keeps its
// last value, known from the row (raw attributes, or the field a mapping
// without fallback copies), and one sent as null is cleared.
func (s Settings) currentAttributes(su SourceUser, old *User) map[string]string {
	if old == nil {
		return su.Attributes
	}
	attrs := map[string]string{}
	for _, m := range s.Mapping {
		if m.Source != "" && m.Fallback == "" {
			if v, ok := old.Fields[m.Field]; ok {
				attrs[m.Source] = v
			}
		}
	}
	for k, v := range old.Raw {
		attrs[k] = v
	}
	for _, a := range su.Cleared {
		delete(attrs, a)
	}
	for k, v := range su.Attributes {
		attrs[k] = v
	}
	return attrs
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

const (
	fieldPrefix = "f_"
	rawPrefix   = "a_"
)

func userToEntity(u User) Entity {
	p := map[string]any{
		"status":    u.Status,
		"hash":      u.Hash,
		"runSeq":    u.RunSeq,
		"pageSeq":   u.PageSeq,
		"action":    u.Action,
		"addedBy":   u.AddedBy,
		"updatedBy": u.UpdatedBy,
		"createdAt": u.CreatedAt.UTC(),
		"changedAt": u.ChangedAt.UTC(),
	}
	if len(u.Groups) > 0 {
		p["groups"] = strings.Join(u.Groups, ",")
	}
	if len(u.MemberDiff) > 0 {
		p["memberDiff"] = strings.Join(u.MemberDiff, ",")
	}
	if u.PhotoETag != "" || u.PhotoBy != 0 {
		p["photoETag"], p["photoSize"], p["photoType"], p["photoBy"], p["photoSkipped"] = u.PhotoETag, u.PhotoSize, u.PhotoType, u.PhotoBy, u.PhotoSkipped
	}
	for k, v := range map[string]string{"reason": u.Reason, "duplicateOf": u.DuplicateOf, "email": u.Email, "upn": u.UPN, "missing": u.Missing, "memberVer": u.MemberVer} {
		if v != "" {
			p[k] = v
		}
	}
	for k, v := range u.Fields {
		p[fieldPrefix+k] = v
	}
	for k, v := range u.Raw {
		p[rawPrefix+k] = v
	}
	return Entity{PartitionKey: Bucket(u.ID), RowKey: u.ID, ETag: u.ETag, Props: p}
}

func userFromEntity(e Entity) User {
	u := User{
		ID: e.RowKey, Status: e.Str("status"), Reason: e.Str("reason"), DuplicateOf: e.Str("duplicateOf"),
		Email: e.Str("email"), Missing: e.Str("missing"), UPN: e.Str("upn"), Hash: e.Str("hash"), RunSeq: e.Int("runSeq"),
		PageSeq: e.Int("pageSeq"), Action: e.Str("action"), AddedBy: e.Int("addedBy"), UpdatedBy: e.Int("updatedBy"), CreatedAt: e.Time("createdAt"),
		ChangedAt: e.Time("changedAt"), ETag: e.ETag, Fields: map[string]string{}, MemberVer: e.Str("memberVer"),
	}
	u.PhotoETag, u.PhotoSize, u.PhotoType, u.PhotoBy, u.PhotoSkipped = e.Str("photoETag"), e.Int("photoSize"), e.Str("photoType"), e.Int("photoBy"), e.Str("photoSkipped")
	if g := e.Str("groups"); g != "" {
		u.Groups = strings.Split(g, ",")
	}
	if g := e.Str("memberDiff"); g != "" {
		u.MemberDiff = strings.Split(g, ",")
	}
	for k, v := range e.Props {
		s, ok := v.(string)
		switch {
		case !ok:
		case strings.HasPrefix(k, fieldPrefix):
			u.Fields[k[len(fieldPrefix):]] = s
		case strings.HasPrefix(k, rawPrefix):
			if u.Raw == nil {
				u.Raw = map[string]string{}
			}
			u.Raw[k[len(rawPrefix):]] = s
		}
	}
	return u
}

// newer reports whether stamp (run, page stamp) a is strictly after b.
func newer(aRun, aPage, bRun, bPage int64) bool {
	if aRun != bRun {
		return aRun > bRun
	}
	return aPage > bPage
}
