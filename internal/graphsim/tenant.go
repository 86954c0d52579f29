package graphsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors the Tenant methods wrap, so callers (and the control API) can tell
// what kind of failure it was with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// User is a user as the simulator stores it: the Graph property name of each
// attribute maps to a string, a bool or a []string (businessPhones,
// otherMails...). "manager" holds the manager's object id.
//
// In JSON (control API) a User is one flat object: {"id": "...",
// "displayName": "...", "manager": "<id>", ...}.
type User struct {
	ID         string
	Attributes map[string]any
}

// MarshalJSON writes the flat form.
func (u User) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(u.Attributes)+1)
	for k, v := range u.Attributes {
		m[k] = v
	}
	m["id"] = u.ID
	return marshal(m), nil
}

// UnmarshalJSON reads the flat form. Values must be strings, booleans or
// arrays of strings.
func (u *User) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	u.ID, u.Attributes = "", make(map[string]any, len(m))
	for k, v := range m {
		if k == "id" {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("user id must be a string, not %T", v)
			}
			u.ID = s
			continue
		}
		nv, err := normalizeValue(k, v)
		if err != nil {
			return err
		}
		u.Attributes[k] = nv
	}
	return nil
}

// Group is a group: its display name and its direct members (user or group
// object ids).
type Group struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Members     []string `json:"members"`
}

type userState uint8

const (
	stateActive userState = iota
	stateSoftDeleted
	stateHardDeleted
)

func (s userState) String() string {
	switch s {
	case stateActive:
		return "active"
	case stateSoftDeleted:
		return "softDeleted"
	default:
		return "hardDeleted"
	}
}

type photoData struct {
	etag        string
	contentType string
	data        []byte // nil: generated from seed on demand
	seed        uint64
	width       int
	height      int
}

type userRec struct {
	id      string
	gen     int32          // generator index, -1 for users added through the API
	attrs   map[string]any // nil while a generated user is untouched
	state   userState
	version uint64  // version of the user's last change
	logIdx  []int32 // the user's entries in Tenant.userLog, oldest first
	// cleared keeps attributes removed by UpdateUser (name -> old value) so
	// later delta rounds can send them as null and manager@delta removals.
	cleared map[string]any
	photo   *photoData
	// removedFrom lists the groups a soft delete took the user out of, so a
	// restore puts the user back.
	removedFrom []string
}

type groupRec struct {
	id, displayName, description, created string
	members                               map[string]struct{}
	sorted                                []string // cache of sorted members; nil when stale
	deleted                               bool
}

func (g *groupRec) sortedMembers() []string {
	if g.sorted == nil {
		g.sorted = make([]string, 0, len(g.members))
		for m := range g.members {
			g.sorted = append(g.sorted, m)
		}
		slices.Sort(g.sorted)
	}
	return g.sorted
}

type userLogEntry struct {
	version uint64
	rec     *userRec
	props   []string // nil: the whole object changed (created, deleted, restored)
}

const (
	groupCreated uint8 = iota
	groupUpdated
	groupDeleted
	groupMember
)

type groupLogEntry struct {
	version uint64
	group   *groupRec
	kind    uint8
	member  string
}

// Tenant is the simulated directory. All methods are safe for concurrent use.
type Tenant struct {
	cfg *Config
	gen *generator

	mu         sync.RWMutex
	version    uint64 // bumped once per mutation
	users      map[string]*userRec
	order      []*userRec // every user ever, sorted by id (tombstones included)
	userLog    []userLogEntry
	groups     map[string]*groupRec
	groupOrder []*groupRec // sorted by id
	groupLog   []groupLogEntry
	props      map[string]string // lower-cased property name -> canonical name
	epoch      int               // number of ExpireTokens calls
	memberVer  uint64            // bumped when any membership or user state changes
	trans      map[string]*transitiveSet
	idRNG      *rng

	fmu    sync.Mutex // faults, quirks, stats, throttling
	faults []*faultState
	quirks Quirks
	stats  statsData
	budget map[string][]time.Time
}

func newTenant(cfg *Config) (*Tenant, error) {
	g := newGenerator(cfg.Seed, cfg.Users, cfg.Domain)
	t := &Tenant{
		cfg:    cfg,
		gen:    g,
		users:  make(map[string]*userRec, cfg.Users),
		order:  make([]*userRec, 0, cfg.Users),
		groups: make(map[string]*groupRec),
		props:  make(map[string]string, len(knownUserProps)),
		trans:  make(map[string]*transitiveSet),
		idRNG:  newRNG(cfg.Seed, streamNewID, 0),
		quirks: cfg.Quirks,
		budget: make(map[string][]time.Time),
	}
	t.stats.init()
	for _, p := range knownUserProps {
		t.props[strings.ToLower(p)] = p
	}
	for i, id := range g.ids {
		if _, dup := t.users[id]; dup {
			return nil, fmt.Errorf("graphsim: generated user id %s twice: try another seed", id)
		}
		rec := &userRec{id: id, gen: int32(i)}
		if g.hasPhoto(i) {
			rec.photo = generatedPhoto(cfg.Seed, i)
		}
		t.users[id] = rec
		t.order = append(t.order, rec)
	}
	sort.Slice(t.order, func(a, b int) bool { return t.order[a].id < t.order[b].id })

	specs := g.groups(cfg.Groups)
	recs := make([]*groupRec, len(specs))
	for k, spec := range specs {
		gr := &groupRec{
			id:          newRNG(cfg.Seed, streamGroupID, uint64(k)).guid(),
			displayName: spec.name,
			description: spec.description,
			created:     epoch.Add(time.Duration(k) * 24 * time.Hour).Format(time.RFC3339),
			members:     make(map[string]struct{}, len(spec.users)+len(spec.nested)),
		}
		for _, i := range spec.users {
			gr.members[g.ids[i]] = struct{}{}
		}
		recs[k] = gr
	}
	for k, spec := range specs {
		for _, n := range spec.nested {
			recs[k].members[recs[n].id] = struct{}{}
		}
		if _, dup := t.groups[recs[k].id]; dup {
			return nil, fmt.Errorf("graphsim: generated group id %s twice: try another seed", recs[k].id)
		}
		t.groups[recs[k].id] = recs[k]
		t.groupOrder = append(t.groupOrder, recs[k])
	}
	sort.Slice(t.groupOrder, func(a, b int) bool { return t.groupOrder[a].id < t.groupOrder[b].id })
	return t, nil
}

// knownUserProps are the user properties of Graph v1.0 the simulator accepts
// in $select (a property never set on a user is simply not returned).
// Attributes given to users through AddUser/UpdateUser are accepted too, and
// so is any name starting with "extension_".
var knownUserProps = []string{
	"id", "accountEnabled", "ageGroup", "assignedLicenses", "assignedPlans", "businessPhones",
	"city", "companyName", "consentProvidedForMinor", "country", "createdDateTime", "creationType",
	"deletedDateTime", "department", "displayName", "employeeHireDate", "employeeLeaveDateTime",
	"employeeId", "employeeOrgData", "employeeType", "externalUserState",
	"externalUserStateChangeDateTime", "faxNumber", "givenName", "identities", "imAddresses",
	"isResourceAccount", "jobTitle", "lastPasswordChangeDateTime", "legalAgeGroupClassification",
	"licenseAssignmentStates", "mail", "mailNickname", "mobilePhone", "officeLocation",
	"onPremisesDistinguishedName", "onPremisesDomainName", "onPremisesExtensionAttributes",
	"onPremisesImmutableId", "onPremisesLastSyncDateTime", "onPremisesProvisioningErrors",
	"onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
	"onPremisesUserPrincipalName", "otherMails", "passwordPolicies", "passwordProfile",
	"postalCode", "preferredDataLocation", "preferredLanguage", "provisionedPlans",
	"proxyAddresses", "securityIdentifier", "showInAddressList", "signInSessionsValidFromDateTime",
	"state", "streetAddress", "surname", "usageLocation", "userPrincipalName", "userType",
	"manager",
}

// defaultUserSelect is what Graph returns for a user when no $select is given.
var defaultUserSelect = []string{
	"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
}

func validPropName(k string) bool {
	if k == "" || len(k) > 120 {
		return false
	}
	for i, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// normalizeValue checks an attribute value and turns JSON arrays into
// []string. nil passes through (it means "remove" to UpdateUser).
func normalizeValue(k string, v any) (any, error) {
	if !validPropName(k) {
		return nil, fmt.Errorf("%w: attribute name %q is not a Graph property name (letters, then letters, digits or '_')", ErrInvalid, k)
	}
	switch x := v.(type) {
	case nil, string, bool:
		if k == "manager" {
			if _, ok := v.(bool); ok {
				return nil, fmt.Errorf("%w: attribute \"manager\" must be the manager's object id", ErrInvalid)
			}
		}
		return v, nil
	case []string:
		return slices.Clone(x), nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: attribute %q: list element %d is %T; lists must hold strings", ErrInvalid, k, i, e)
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: attribute %q has a value of type %T: use a string, a boolean or a list of strings", ErrInvalid, k, v)
	}
}

func cloneAttrs(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if l, ok := v.([]string); ok {
			v = slices.Clone(l)
		}
		out[k] = v
	}
	return out
}

func equalValue(a, b any) bool {
	la, aok := a.([]string)
	lb, bok := b.([]string)
	if aok || bok {
		return aok && bok && slices.Equal(la, lb)
	}
	return a == b
}

// attrsOf returns rec's attributes. The map must not be modified unless it
// came from materialize.
func (t *Tenant) attrsOf(rec *userRec) map[string]any {
	if rec.attrs != nil {
		return rec.attrs
	}
	if rec.gen >= 0 && rec.state != stateHardDeleted {
		return t.gen.user(int(rec.gen))
	}
	return map[string]any{}
}

func (t *Tenant) materialize(rec *userRec) map[string]any {
	if rec.attrs == nil {
		rec.attrs = t.attrsOf(rec)
	}
	return rec.attrs
}

func (t *Tenant) bump() uint64 {
	t.version++
	return t.version
}

func (t *Tenant) logUser(rec *userRec, props []string) {
	rec.version = t.version
	rec.logIdx = append(rec.logIdx, int32(len(t.userLog)))
	t.userLog = append(t.userLog, userLogEntry{version: t.version, rec: rec, props: props})
}

func (t *Tenant) logGroup(g *groupRec, kind uint8, member string) {
	t.groupLog = append(t.groupLog, groupLogEntry{version: t.version, group: g, kind: kind, member: member})
	if kind == groupMember || kind == groupDeleted || kind == groupCreated {
		g.sorted = nil
		t.memberVer++
	}
}

func (t *Tenant) newID() string {
	for {
		id := t.idRNG.guid()
		if _, used := t.users[id]; used {
			continue
		}
		if _, used := t.groups[id]; used {
			continue
		}
		return id
	}
}

func (t *Tenant) insertUser(rec *userRec) {
	t.users[rec.id] = rec
	i := sort.Search(len(t.order), func(i int) bool { return t.order[i].id >= rec.id })
	t.order = slices.Insert(t.order, i, rec)
}

func (t *Tenant) activeUser(id string) (*userRec, error) {
	rec, ok := t.users[id]
	if !ok || rec.state == stateHardDeleted {
		return nil, fmt.Errorf("%w: no user %q", ErrNotFound, id)
	}
	if rec.state == stateSoftDeleted {
		return nil, fmt.Errorf("%w: user %q is deleted (restore it first)", ErrNotFound, id)
	}
	return rec, nil
}

func (t *Tenant) checkManager(self, mgr any) error {
	id, _ := mgr.(string)
	if id == "" {
		return fmt.Errorf("%w: attribute \"manager\" must be the manager's object id", ErrInvalid)
	}
	if id == self {
		return fmt.Errorf("%w: a user cannot be its own manager", ErrInvalid)
	}
	if _, err := t.activeUser(id); err != nil {
		return fmt.Errorf("%w: manager %q is not an existing user", ErrInvalid, id)
	}
	return nil
}

func (t *Tenant) noteProps(attrs map[string]any) {
	for k := range attrs {
		if isExtensionAttribute(k) {
			continue // selected as onPremisesExtensionAttributes only, as in Graph
		}
		lk := strings.ToLower(k)
		if _, ok := t.props[lk]; !ok {
			t.props[lk] = k
		}
	}
}

// AddUser adds a user. An empty ID gets a generated GUID. The returned User
// is what was stored.
func (t *Tenant) AddUser(u User) (User, error) {
	attrs := make(map[string]any, len(u.Attributes))
	for k, v := range u.Attributes {
		if k == "id" {
			return User{}, fmt.Errorf("%w: put the id in User.ID, not in the attributes", ErrInvalid)
		}
		nv, err := normalizeValue(k, v)
		if err != nil {
			return User{}, err
		}
		if nv != nil {
			attrs[k] = nv
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	id := u.ID
	if id == "" {
		id = t.newID()
	} else if !validObjectID(id) {
		return User{}, fmt.Errorf("%w: user id %q: use letters, digits and '-' only", ErrInvalid, id)
	}
	if _, exists := t.users[id]; exists {
		return User{}, fmt.Errorf("%w: a user with id %q exists already", ErrConflict, id)
	}
	if _, exists := t.groups[id]; exists {
		return User{}, fmt.Errorf("%w: a group has the id %q", ErrConflict, id)
	}
	if m, ok := attrs["manager"]; ok {
		if err := t.checkManager(id, m); err != nil {
			return User{}, err
		}
	}
	rec := &userRec{id: id, gen: -1, attrs: attrs}
	t.insertUser(rec)
	t.noteProps(attrs)
	t.bump()
	t.logUser(rec, nil)
	t.memberVer++
	return User{ID: id, Attributes: cloneAttrs(attrs)}, nil
}

func validObjectID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// UpdateUser sets attributes of an existing user; a nil value removes the
// attribute. Setting a value equal to the current one is not a change.
func (t *Tenant) UpdateUser(id string, set map[string]any) error {
	norm := make(map[string]any, len(set))
	for k, v := range set {
		if k == "id" {
			return fmt.Errorf("%w: the id of a user cannot change", ErrInvalid)
		}
		nv, err := normalizeValue(k, v)
		if err != nil {
			return err
		}
		norm[k] = nv
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, err := t.activeUser(id)
	if err != nil {
		return err
	}
	if m, ok := norm["manager"]; ok && m != nil {
		if err := t.checkManager(id, m); err != nil {
			return err
		}
	}
	cur := t.attrsOf(rec)
	var changed []string
	for k, v := range norm {
		old, had := cur[k]
		if v == nil && had || v != nil && (!had || !equalValue(old, v)) {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	slices.Sort(changed)
	attrs := t.materialize(rec)
	for _, k := range changed {
		if v := norm[k]; v == nil {
			if rec.cleared == nil {
				rec.cleared = make(map[string]any)
			}
			rec.cleared[k] = attrs[k]
			delete(attrs, k)
		} else {
			attrs[k] = v
			delete(rec.cleared, k)
		}
	}
	t.noteProps(attrs)
	t.bump()
	t.logUser(rec, changed)
	return nil
}

// SoftDeleteUser deletes a user the restorable way: delta reports it with
// @removed reason "changed", and it leaves every group it was in.
func (t *Tenant) SoftDeleteUser(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, err := t.activeUser(id)
	if err != nil {
		return err
	}
	t.bump()
	rec.state = stateSoftDeleted
	rec.removedFrom = t.removeFromAllGroups(id)
	t.logUser(rec, nil)
	t.memberVer++
	return nil
}

// RestoreUser brings back a soft-deleted user with its attributes and the
// group memberships it had.
func (t *Tenant) RestoreUser(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, ok := t.users[id]
	if !ok || rec.state == stateHardDeleted {
		return fmt.Errorf("%w: no deleted user %q", ErrNotFound, id)
	}
	if rec.state != stateSoftDeleted {
		return fmt.Errorf("%w: user %q is not deleted", ErrConflict, id)
	}
	t.bump()
	rec.state = stateActive
	for _, gid := range rec.removedFrom {
		if g, ok := t.groups[gid]; ok && !g.deleted {
			if _, in := g.members[id]; !in {
				g.members[id] = struct{}{}
				t.logGroup(g, groupMember, id)
			}
		}
	}
	rec.removedFrom = nil
	t.logUser(rec, nil)
	t.memberVer++
	return nil
}

// HardDeleteUser deletes a user for good (active or soft-deleted): delta
// reports it with @removed reason "deleted".
func (t *Tenant) HardDeleteUser(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, ok := t.users[id]
	if !ok || rec.state == stateHardDeleted {
		return fmt.Errorf("%w: no user %q", ErrNotFound, id)
	}
	t.bump()
	if rec.state == stateActive {
		t.removeFromAllGroups(id)
	}
	rec.state = stateHardDeleted
	rec.attrs, rec.cleared, rec.photo, rec.removedFrom = nil, nil, nil, nil
	t.logUser(rec, nil)
	t.memberVer++
	return nil
}

func (t *Tenant) removeFromAllGroups(id string) []string {
	var from []string
	for _, g := range t.groupOrder {
		if _, in := g.members[id]; in && !g.deleted {
			delete(g.members, id)
			t.logGroup(g, groupMember, id)
			from = append(from, g.id)
		}
	}
	return from
}

// Users is the ground truth: every existing, not soft-deleted user, sorted by
// id, with all its attributes.
func (t *Tenant) Users() []User {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]User, 0, len(t.order))
	for _, rec := range t.order {
		if rec.state == stateActive {
			out = append(out, User{ID: rec.id, Attributes: t.userAttrsCopy(rec)})
		}
	}
	return out
}

func (t *Tenant) userAttrsCopy(rec *userRec) map[string]any {
	if rec.attrs == nil {
		return t.attrsOf(rec) // generated fresh: already a private copy
	}
	return cloneAttrs(rec.attrs)
}

// User returns an existing, not soft-deleted user.
func (t *Tenant) User(id string) (User, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	rec, ok := t.users[id]
	if !ok || rec.state != stateActive {
		return User{}, false
	}
	return User{ID: id, Attributes: t.userAttrsCopy(rec)}, true
}

// UserStatus is "active", "softDeleted", "hardDeleted", or "" for an id the
// tenant never had.
func (t *Tenant) UserStatus(id string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	rec, ok := t.users[id]
	if !ok {
		return ""
	}
	return rec.state.String()
}

// SoftDeletedUsers lists the users in the recycle bin, sorted by id.
func (t *Tenant) SoftDeletedUsers() []User {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []User
	for _, rec := range t.order {
		if rec.state == stateSoftDeleted {
			out = append(out, User{ID: rec.id, Attributes: t.userAttrsCopy(rec)})
		}
	}
	return out
}

// AddGroup adds a group with its members (users or groups). An empty ID gets
// a generated GUID.
func (t *Tenant) AddGroup(g Group) (Group, error) {
	if strings.TrimSpace(g.DisplayName) == "" {
		return Group{}, fmt.Errorf("%w: a group needs a displayName", ErrInvalid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	id := g.ID
	if id == "" {
		id = t.newID()
	} else if !validObjectID(id) {
		return Group{}, fmt.Errorf("%w: group id %q: use letters, digits and '-' only", ErrInvalid, id)
	}
	if _, exists := t.groups[id]; exists {
		return Group{}, fmt.Errorf("%w: a group with id %q exists already", ErrConflict, id)
	}
	if _, exists := t.users[id]; exists {
		return Group{}, fmt.Errorf("%w: a user has the id %q", ErrConflict, id)
	}
	gr := &groupRec{
		id: id, displayName: g.DisplayName, members: make(map[string]struct{}, len(g.Members)),
		created: t.cfg.Now().UTC().Format(time.RFC3339),
	}
	for _, m := range g.Members {
		if err := t.checkMember(gr, m); err != nil {
			return Group{}, err
		}
		gr.members[m] = struct{}{}
	}
	t.bump()
	t.groups[id] = gr
	i := sort.Search(len(t.groupOrder), func(i int) bool { return t.groupOrder[i].id >= id })
	t.groupOrder = slices.Insert(t.groupOrder, i, gr)
	t.logGroup(gr, groupCreated, "")
	return Group{ID: id, DisplayName: gr.displayName, Members: slices.Clone(gr.sortedMembers())}, nil
}

func (t *Tenant) checkMember(g *groupRec, member string) error {
	if member == g.id {
		return fmt.Errorf("%w: group %q cannot be a member of itself", ErrInvalid, g.id)
	}
	if rec, ok := t.users[member]; ok && rec.state == stateActive {
		return nil
	}
	if mg, ok := t.groups[member]; ok && !mg.deleted {
		return nil
	}
	return fmt.Errorf("%w: member %q is neither an existing user nor an existing group", ErrNotFound, member)
}

func (t *Tenant) liveGroup(id string) (*groupRec, error) {
	g, ok := t.groups[id]
	if !ok || g.deleted {
		return nil, fmt.Errorf("%w: no group %q", ErrNotFound, id)
	}
	return g, nil
}

// AddMember adds a user or a group to a group.
func (t *Tenant) AddMember(groupID, memberID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.liveGroup(groupID)
	if err != nil {
		return err
	}
	if err := t.checkMember(g, memberID); err != nil {
		return err
	}
	if _, in := g.members[memberID]; in {
		return fmt.Errorf("%w: %q is already a member of group %q", ErrConflict, memberID, groupID)
	}
	t.bump()
	g.members[memberID] = struct{}{}
	t.logGroup(g, groupMember, memberID)
	return nil
}

// RemoveMember takes a user or a group out of a group.
func (t *Tenant) RemoveMember(groupID, memberID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.liveGroup(groupID)
	if err != nil {
		return err
	}
	if _, in := g.members[memberID]; !in {
		return fmt.Errorf("%w: %q is not a member of group %q", ErrNotFound, memberID, groupID)
	}
	t.bump()
	delete(g.members, memberID)
	t.logGroup(g, groupMember, memberID)
	return nil
}

// UpdateGroup renames a group.
func (t *Tenant) UpdateGroup(groupID, displayName string) error {
	if strings.TrimSpace(displayName) == "" {
		return fmt.Errorf("%w: a group needs a displayName", ErrInvalid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.liveGroup(groupID)
	if err != nil {
		return err
	}
	if g.displayName == displayName {
		return nil
	}
	t.bump()
	g.displayName = displayName
	t.logGroup(g, groupUpdated, "")
	return nil
}

// DeleteGroup deletes a group for good; groups delta reports it with
// @removed reason "deleted", and it leaves the groups it was nested in.
func (t *Tenant) DeleteGroup(groupID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.liveGroup(groupID)
	if err != nil {
		return err
	}
	t.bump()
	t.removeFromAllGroups(groupID)
	g.deleted = true
	g.members = map[string]struct{}{}
	t.logGroup(g, groupDeleted, "")
	return nil
}

// Groups lists the existing groups, sorted by id, members sorted.
func (t *Tenant) Groups() []Group {
	t.mu.Lock() // sortedMembers fills a cache
	defer t.mu.Unlock()
	var out []Group
	for _, g := range t.groupOrder {
		if !g.deleted {
			out = append(out, Group{ID: g.id, DisplayName: g.displayName, Members: slices.Clone(g.sortedMembers())})
		}
	}
	return out
}

// Group returns one existing group.
func (t *Tenant) Group(id string) (Group, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.liveGroup(id)
	if err != nil {
		return Group{}, false
	}
	return Group{ID: g.id, DisplayName: g.displayName, Members: slices.Clone(g.sortedMembers())}, true
}

// TransitiveMembers is the ground truth of a group's expanded membership:
// the existing users and the nested groups at any depth, each sorted and
// listed once (cycles are harmless). ok is false for a missing or deleted
// group.
func (t *Tenant) TransitiveMembers(id string) (users, groups []string, ok bool) {
	t.mu.Lock() // transitive fills a cache
	defer t.mu.Unlock()
	g, err := t.liveGroup(id)
	if err != nil {
		return nil, nil, false
	}
	ts := t.transitive(g)
	return slices.Clone(ts.users), slices.Clone(ts.groups), true
}

// ExpireTokens invalidates every delta and skip token issued so far: using
// one answers like an expired token (see Config.ExpiryForm).
func (t *Tenant) ExpireTokens() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.epoch++
}

// SetQuirks switches Graph's paging quirks (see Quirks).
func (t *Tenant) SetQuirks(q Quirks) error {
	if q.EmptyPageEvery < 0 || q.RepeatEvery < 0 {
		return fmt.Errorf("%w: quirk values must not be negative", ErrInvalid)
	}
	t.fmu.Lock()
	defer t.fmu.Unlock()
	t.quirks = q
	return nil
}

func (t *Tenant) currentQuirks() Quirks {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	return t.quirks
}

// SetPhoto gives a user a profile photo (data of the given content type,
// width × height pixels). Photo changes do not show in delta, as in Graph.
func (t *Tenant) SetPhoto(id string, data []byte, contentType string, width, height int) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: an empty photo: use DeletePhoto to remove one", ErrInvalid)
	}
	if contentType == "" {
		contentType = "image/jpeg"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, err := t.activeUser(id)
	if err != nil {
		return err
	}
	rec.photo = &photoData{etag: etagOf(data), contentType: contentType, data: slices.Clone(data), width: width, height: height}
	return nil
}

// DeletePhoto removes a user's photo.
func (t *Tenant) DeletePhoto(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, err := t.activeUser(id)
	if err != nil {
		return err
	}
	if rec.photo == nil {
		return fmt.Errorf("%w: user %q has no photo", ErrNotFound, id)
	}
	rec.photo = nil
	return nil
}
