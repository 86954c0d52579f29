package dirsync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/rules"
)

// Settings is everything an admin can change. It is stored as one versioned
// document; an invalid document is rejected whole.
type Settings struct {
	// Enabled turns scheduled and manual syncs on. Disabling keeps every row
	// and the delta token, so enabling resumes where it stopped.
	Enabled  bool     `json:"enabled"`
	Schedule Schedule `json:"schedule"`
	// Mapping lists the directory fields and where each comes from.
	Mapping []FieldMapping `json:"mapping"`
	// Required lists directory fields a user must have (non-empty) to be
	// synced; a user missing one is skipped with the reason logged.
	Required []string `json:"required"`
	// EmailField names the directory field used to detect duplicates.
	EmailField        string            `json:"emailField"`
	DeletionThreshold DeletionThreshold `json:"deletionThreshold"`
	// GroupScope limits the sync to the members of these Entra groups
	// (object ids), nested groups included. With UserScope it says who is
	// synced: a user in one of the groups, or listed in UserScope. Both
	// empty means every user.
	GroupScope []string `json:"groupScope"`
	// UserScope lists single users to sync (object ids or
	// userPrincipalNames), besides the members of GroupScope.
	UserScope []string `json:"userScope"`
	// ScopeRule, when set, is a rule in Entra's dynamic membership language
	// a user must also match to be synced (Entra provisioning's scoping
	// filter), e.g. user.userType -eq "Member" -and user.accountEnabled -eq true.
	ScopeRule string `json:"scopeRule"`
	// MirrorGroups keeps the GroupScope groups as directory groups with
	// their synced (transitive) user members.
	MirrorGroups bool `json:"mirrorGroups"`
	// PageSize is the number of users asked of Graph per page (1..999).
	PageSize int `json:"pageSize"`
	// PhotoSync keeps each active user's photo in Blob Storage (photos.go):
	// checked by ETag for users a run adds or changes and for a rolling
	// slice of everyone else, so every photo is checked once a day.
	PhotoSync bool `json:"photoSync"`
	// PhotoMaxBytes is the largest photo stored (1 KiB..20 MiB, default
	// 4 MiB); a larger one is skipped with the reason logged.
	PhotoMaxBytes int64 `json:"photoMaxBytes"`
}

// Photo size limits (Settings.PhotoMaxBytes).
const (
	DefaultPhotoMaxBytes = 4 << 20
	MinPhotoMaxBytes     = 1 << 10
	MaxPhotoMaxBytes     = 20 << 20
)

// FieldMapping maps one directory field to a Graph attribute or a constant.
type FieldMapping struct {
	Field string `json:"field"`
	// Source is the Graph user attribute (e.g. "jobTitle"); Fallback, when
	// set, is used when the user has no value for Source.
	Source   string `json:"source,omitempty"`
	Fallback string `json:"fallback,omitempty"`
	// Constant is a fixed value, used instead of Source when set.
	Constant string `json:"constant,omitempty"`
	// Sensitive fields keep their values out of run logs (names only).
	Sensitive bool `json:"sensitive,omitempty"`
}

// DeletionThreshold holds a run that would delete more users than this for
// an admin's approval. Either limit triggers it; zero disables that limit.
type DeletionThreshold struct {
	Enabled    bool    `json:"enabled"`
	MaxCount   int     `json:"maxCount"`
	MaxPercent float64 `json:"maxPercent"`
}

// Frequency is how often the schedule starts a sync. The values are part of
// the settings document.
type Frequency string

// Frequencies.
const (
	FrequencyOnce    Frequency = "once"
	FrequencyDaily   Frequency = "daily"
	FrequencyHourly  Frequency = "hourly"
	FrequencyMinutes Frequency = "minutes"
	FrequencyManual  Frequency = "manual"
)

// Schedule says when the timer starts a sync.
type Schedule struct {
	// Frequency is once, daily, hourly, minutes or manual.
	Frequency Frequency `json:"frequency"`
	// At is the start time of a one-time sync (RFC 3339).
	At *time.Time `json:"at,omitempty"`
	// TimeOfDay is "HH:MM" for daily syncs, in TimeZone.
	TimeOfDay string `json:"timeOfDay,omitempty"`
	// TimeZone is an IANA name such as "Europe/Berlin" (default "UTC").
	TimeZone string `json:"timeZone,omitempty"`
	// Minute is the minute past the hour for hourly syncs (0..59).
	Minute int `json:"minute,omitempty"`
	// EveryMinutes is the interval for "minutes" (at least 15).
	EveryMinutes int `json:"everyMinutes,omitempty"`
}

// DefaultSettings returns the settings of a fresh installation.
func DefaultSettings() Settings {
	return Settings{
		Enabled:  true,
		Schedule: Schedule{Frequency: FrequencyHourly, TimeZone: "UTC"},
		Mapping: []FieldMapping{
			{Field: "displayName", Source: "displayName"},
			{Field: "givenName", Source: "givenName"},
			{Field: "surname", Source: "surname"},
			{Field: "email", Source: "mail", Fallback: "userPrincipalName"},
			{Field: "upn", Source: "userPrincipalName"},
			{Field: "jobTitle", Source: "jobTitle"},
			{Field: "department", Source: "department"},
			{Field: "city", Source: "city"},
			{Field: "office", Source: "officeLocation"},
			{Field: "mobile", Source: "mobilePhone", Sensitive: true},
			{Field: "businessPhone", Source: "businessPhones", Sensitive: true},
			{Field: "employeeId", Source: "employeeId"},
			{Field: "manager", Source: "manager"},
		},
		Required:          []string{"email", "displayName"},
		EmailField:        "email",
		DeletionThreshold: DeletionThreshold{Enabled: true, MaxCount: 500, MaxPercent: 10},
		PageSize:          200,
		PhotoMaxBytes:     DefaultPhotoMaxBytes,
	}
}

var (
	fieldNameRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)
	graphAttrRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,127}$`)
	timeOfDayRE  = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	maxMappings  = 100
	maxScopeSize = 500
	maxUserScope = 1000
	upnRE        = regexp.MustCompile(`^[^@\s]{1,113}@[^@\s]{1,255}$`)
)

// Validate checks every field and returns an EINVALID error naming the first
// bad field and how to fix it.
func (s Settings) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &Error{Code: EINVALID, Message: fmt.Sprintf("settings: %s: %s", field, fmt.Sprintf(format, args...)),
			Hint: "Correct that field and send the whole settings document again; nothing was changed."}
	}
	if err := s.Schedule.Validate(); err != nil {
		return bad("schedule", "%s", ErrorMessage(err))
	}
	if len(s.Mapping) == 0 {
		return bad("mapping", "at least one field must be mapped")
	}
	if len(s.Mapping) > maxMappings {
		return bad("mapping", "%d fields mapped; at most %d are allowed", len(s.Mapping), maxMappings)
	}
	seen := map[string]bool{}
	for i, m := range s.Mapping {
		where := fmt.Sprintf("mapping[%d]", i)
		if !fieldNameRE.MatchString(m.Field) {
			return bad(where+".field", "%q is not a valid field name: use letters, digits and '_', starting with a letter, at most 64 characters", m.Field)
		}
		if seen[strings.ToLower(m.Field)] {
			return bad(where+".field", "%q is mapped twice; map each field once", m.Field)
		}
		seen[strings.ToLower(m.Field)] = true
		if (m.Source == "") == (m.Constant == "") {
			return bad(where, "field %q needs exactly one of source (a Graph attribute) or constant", m.Field)
		}
		if m.Source != "" && !graphAttrRE.MatchString(m.Source) {
			return bad(where+".source", "%q is not a Graph attribute name (letters and digits, e.g. jobTitle)", m.Source)
		}
		if m.Fallback != "" && (m.Source == "" || !graphAttrRE.MatchString(m.Fallback)) {
			return bad(where+".fallback", "%q must be a Graph attribute name, and needs a source", m.Fallback)
		}
		if len(m.Constant) > 1024 {
			return bad(where+".constant", "is longer than 1024 characters")
		}
	}
	// Field names are case-sensitive (they are property names of the
	// directory); a name that only differs in case would pass a lenient
	// check and then match no field, skipping every user.
	for i, r := range s.Required {
		if err := s.checkFieldName(r); err != "" {
			return bad(fmt.Sprintf("required[%d]", i), "%s; map it first or remove it from required", err)
		}
	}
	if s.EmailField != "" {
		if err := s.checkFieldName(s.EmailField); err != "" {
			return bad("emailField", "%s", err)
		}
	}
	t := s.DeletionThreshold
	if t.MaxCount < 0 {
		return bad("deletionThreshold.maxCount", "must be 0 (no count limit) or more")
	}
	if t.MaxPercent < 0 || t.MaxPercent > 100 {
		return bad("deletionThreshold.maxPercent", "must be between 0 and 100")
	}
	if len(s.GroupScope) > maxScopeSize {
		return bad("groupScope", "%d groups selected; at most %d are allowed", len(s.GroupScope), maxScopeSize)
	}
	for i, g := range s.GroupScope {
		if !validObjectID(g) {
			return bad(fmt.Sprintf("groupScope[%d]", i), "%q is not a group object id (a GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e)", g)
		}
	}
	if len(s.UserScope) > maxUserScope {
		return bad("userScope", "%d users selected; at most %d are allowed (select a group instead)", len(s.UserScope), maxUserScope)
	}
	for i, u := range s.UserScope {
		if !validObjectID(u) && !upnRE.MatchString(u) {
			return bad(fmt.Sprintf("userScope[%d]", i), "%q is neither a user object id (a GUID) nor a userPrincipalName (name@domain)", u)
		}
	}
	if s.ScopeRule != "" {
		if _, err := rules.Parse(s.ScopeRule); err != nil {
			return bad("scopeRule", "%v", err)
		}
	}
	if s.MirrorGroups && len(s.GroupScope) == 0 {
		return bad("mirrorGroups", "mirrors the groups selected in groupScope, and none is selected; select groups or turn mirrorGroups off")
	}
	if s.PageSize < 1 || s.PageSize > 999 {
		return bad("pageSize", "%d is out of range; use 1 to 999 (200 is a good default)", s.PageSize)
	}
	if s.PhotoMaxBytes < MinPhotoMaxBytes || s.PhotoMaxBytes > MaxPhotoMaxBytes {
		return bad("photoMaxBytes", "%d is out of range; use %d (1 KiB) to %d (20 MiB) bytes (%d, 4 MiB, is the default; Entra's photos are at most a few MiB)",
			s.PhotoMaxBytes, MinPhotoMaxBytes, MaxPhotoMaxBytes, DefaultPhotoMaxBytes)
	}
	return nil
}

// Validate checks the schedule alone.
func (sc Schedule) Validate() error {
	if sc.TimeZone != "" {
		if _, err := time.LoadLocation(sc.TimeZone); err != nil {
			return Errorf(EINVALID, "timeZone %q is not an IANA time zone name such as Europe/Berlin", sc.TimeZone)
		}
	}
	switch sc.Frequency {
	case FrequencyManual:
	case FrequencyOnce:
		if sc.At == nil {
			return Errorf(EINVALID, "frequency once needs at (an RFC 3339 time)")
		}
	case FrequencyDaily:
		if !timeOfDayRE.MatchString(sc.TimeOfDay) {
			return Errorf(EINVALID, "frequency daily needs timeOfDay as HH:MM (24-hour), got %q", sc.TimeOfDay)
		}
	case FrequencyHourly:
		if sc.Minute < 0 || sc.Minute > 59 {
			return Errorf(EINVALID, "minute must be 0..59, got %d", sc.Minute)
		}
	case FrequencyMinutes:
		if sc.EveryMinutes < 15 {
			return Errorf(EINVALID, "everyMinutes must be at least 15, got %d", sc.EveryMinutes)
		}
		if sc.EveryMinutes > 24*60 {
			return Errorf(EINVALID, "everyMinutes must be at most 1440, got %d", sc.EveryMinutes)
		}
	default:
		return Errorf(EINVALID, "frequency %q is not one of once, daily, hourly, minutes, manual", sc.Frequency)
	}
	return nil
}

// SelectAttributes returns the Graph attributes to ask for: every mapped
// source and fallback, plus id and userPrincipalName (used in logs).
func (s Settings) SelectAttributes() []string {
	set := map[string]bool{"id": true, "userPrincipalName": true}
	for _, m := range s.Mapping {
		if m.Source != "" {
			set[m.Source] = true
		}
		if m.Fallback != "" {
			set[m.Fallback] = true
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// ShapeHash identifies what a sync produces: mapping, required fields, email
// field and scope. When it differs from the one the delta token was taken
// with, the next run must be a full one. The photo settings are not part of
// it: turning photo sync on must not force a full user sync.
func (s Settings) ShapeHash() string {
	shape := struct {
		M []FieldMapping
		R []string
		E string
		G []string
		U []string `json:",omitempty"`
		S string   `json:",omitempty"`
		X bool     `json:",omitempty"`
	}{s.Mapping, slices.Sorted(slices.Values(s.Required)), s.EmailField, slices.Sorted(slices.Values(s.GroupScope)),
		slices.Sorted(slices.Values(s.UserScope)), s.ScopeRule, s.MirrorGroups}
	b, _ := json.Marshal(shape)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (s Settings) mapping(field string) (FieldMapping, bool) {
	for _, m := range s.Mapping {
		if m.Field == field {
			return m, true
		}
	}
	return FieldMapping{}, false
}

// checkFieldName says why name is not a mapped field ("" when it is).
func (s Settings) checkFieldName(name string) string {
	if _, ok := s.mapping(name); ok {
		return ""
	}
	for _, m := range s.Mapping {
		if strings.EqualFold(m.Field, name) {
			return fmt.Sprintf("%q is not a mapped field; field names are case-sensitive: did you mean %q?", name, m.Field)
		}
	}
	return fmt.Sprintf("%q is not a mapped field", name)
}

// canonicalField returns the mapped field's own spelling of name, so that a
// document stored before names were checked case-sensitively still works.
func (s Settings) canonicalField(name string) string {
	if _, ok := s.mapping(name); ok {
		return name
	}
	for _, m := range s.Mapping {
		if strings.EqualFold(m.Field, name) {
			return m.Field
		}
	}
	return name
}

// emailField is the field duplicates are detected on.
func (s Settings) emailField() string {
	if s.EmailField == "" {
		return "email"
	}
	return s.canonicalField(s.EmailField)
}

// sensitiveAttribute reports whether a Graph attribute feeds a field marked
// sensitive: its value must then stay out of run logs in every form.
func (s Settings) sensitiveAttribute(attr string) bool {
	for _, m := range s.Mapping {
		if m.Sensitive && (m.Source == attr || m.Fallback == attr) {
			return true
		}
	}
	return false
}

// logUPN returns the userPrincipalName to put on log lines: "" when it
// feeds a sensitive field (the object id identifies the user then).
func (s Settings) logUPN(upn string) string {
	if s.sensitiveAttribute("userPrincipalName") {
		return ""
	}
	return upn
}

// logEmail returns an email as run logs may show it.
func (s Settings) logEmail(email string) string {
	if m, ok := s.mapping(s.emailField()); ok && m.Sensitive {
		return "(sensitive)"
	}
	return email
}

// DecodeSettings parses a stored or submitted settings document. A
// top-level field the document leaves out takes its default (documents
// saved by an older version), but a field that is present is taken exactly
// as written: a list is never merged element by element with the default.
//
// Errors: EINVALID when the document is not a JSON object of settings.
func DecodeSettings(b []byte) (Settings, error) {
	var present map[string]json.RawMessage
	if err := json.Unmarshal(b, &present); err != nil {
		return Settings{}, Errorf(EINVALID, "the settings document is not a JSON object: %v", err)
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, Errorf(EINVALID, "the settings document does not match the settings' shape: %v", err)
	}
	def := DefaultSettings()
	for name, fill := range map[string]func(){
		"enabled":           func() { s.Enabled = def.Enabled },
		"schedule":          func() { s.Schedule = def.Schedule },
		"mapping":           func() { s.Mapping = def.Mapping },
		"required":          func() { s.Required = def.Required },
		"emailField":        func() { s.EmailField = def.EmailField },
		"deletionThreshold": func() { s.DeletionThreshold = def.DeletionThreshold },
		"groupScope":        func() { s.GroupScope = def.GroupScope },
		"userScope":         func() { s.UserScope = def.UserScope },
		"scopeRule":         func() { s.ScopeRule = def.ScopeRule },
		"mirrorGroups":      func() { s.MirrorGroups = def.MirrorGroups },
		"pageSize":          func() { s.PageSize = def.PageSize },
		"photoSync":         func() { s.PhotoSync = def.PhotoSync },
		"photoMaxBytes":     func() { s.PhotoMaxBytes = def.PhotoMaxBytes },
	} {
		if _, ok := present[name]; !ok {
			fill()
		}
	}
	return s, nil
}
