package dirsynctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/rules"
)

// This file is the deterministic simulator of the engine, after
// FoundationDB's simulation testing and TigerBeetle's VOPR: one seed drives
// everything (which worker runs next, in what order messages arrive, when
// a worker dies, when the clock jumps, what admins and the tenant do), so
// a failing seed reproduces exactly.
//
// The real Engine runs on the in-memory Store, Logs and Source behind thin
// wrappers that make every port call a scheduling point: each worker (a
// queue delivery or an admin request) is a goroutine that runs only when
// the scheduler hands it the turn, one at a time, so interleavings are
// chosen by the seed, not by the Go runtime. A worker can be killed before
// any of its calls; from then on every call it makes fails, as if the
// process were gone, and its message is redelivered when its lock expires.

// SimConfig bounds one scenario.
type SimConfig struct {
	Seed int64
	// Steps is the number of scheduling decisions before the scenario
	// quiesces (default 1200).
	Steps int
	// Users is the tenant's initial size (default: 4 to 24, by seed).
	Users int
	// Trace records every scheduling decision in SimReport.Trace.
	Trace bool
	// TraceUser (the last three digits of a test user's id) adds that
	// user's row writes and Graph answers to the trace.
	TraceUser string
}

// SimReport says what a scenario did and found.
type SimReport struct {
	Seed       int64
	Steps      int
	Runs       int
	Deliveries int
	Faults     map[string]int
	Checks     map[string]int
	Violations []string
	Trace      []string
}

func (r SimReport) String() string {
	return fmt.Sprintf("seed %d: %d steps, %d runs, %d deliveries, faults %v, checks %v", r.Seed, r.Steps, r.Runs, r.Deliveries, r.Faults, r.Checks)
}

// errKilled is what every port call of a killed worker returns.
var errKilled = errors.New("simulated worker killed")

const (
	simLockDuration = 5 * time.Minute // a message's lock (host.json maxAutoLockRenewalDuration)
	simMaxDelivery  = 10
	simWorkers      = 4 // maxConcurrentCalls
)

type simMsg struct {
	msg     dirsync.Message
	count   int
	busy    bool
	dead    bool
	arrival int
}

type worker struct {
	name    string
	runID   string
	msg     *simMsg
	resume  chan struct{}
	parked  chan bool // true: finished
	calls   int
	killAt  int // kill before this call (0: never)
	failAt  int // this call returns a transient error
	killed  bool
	err     error
	started bool
}

type workerKey struct{}

func workerOf(ctx context.Context) *worker { w, _ := ctx.Value(workerKey{}).(*worker); return w }

// point is a scheduling point before a port call. It reports the error the
// call must return instead of running (killed, or an injected fault).
func (w *worker) point() error {
	if w == nil {
		return nil
	}
	w.calls++
	if w.killAt > 0 && w.calls >= w.killAt {
		w.killed = true
	}
	if w.killed {
		return errKilled
	}
	w.parked <- false
	<-w.resume
	if w.failAt == w.calls {
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "simulated transient storage failure"}
	}
	return nil
}

// Sim is one scenario's world.
type Sim struct {
	cfg     SimConfig
	rng     *rand.Rand
	Clock   *Clock
	store   *Store
	logs    *Logs
	Source  *Source
	Engine  *dirsync.Engine
	queue   []*simMsg
	seenIDs map[string]time.Time
	workers []*worker
	arrival int
	nextN   int
	report  SimReport
	// presentSince is when each present user last appeared in the tenant.
	presentSince map[string]time.Time
	quiet        bool
	// groups are the dynamic groups' rules by id, as admins last saved them.
	groups map[string]string
	// photos is the photo store when the scenario syncs photos.
	photos *Photos
	// scopeRule is the settings' scoping rule (it does not change during a
	// scenario); scopeExit is when each user last left its scope.
	scopeRule *rules.Rule
	scopeExit map[string]time.Time
	// scopeGroups are the selected Entra groups (groupScope), mirrored when
	// mirror is set; entraGroups every Entra group of the scenario.
	scopeGroups []string
	mirror      bool
	entraGroups []string
}

func simEntraGroupID(i int) string { return fmt.Sprintf("00000000-0000-4000-b000-%012d", i+1) }

// outOfScope reports whether a tenant user is outside the scoping rule now.
func (s *Sim) outOfScope(id string) bool {
	attrs, ok := s.Source.Users()[id]
	if !ok {
		return false
	}
	if len(s.scopeGroups) > 0 && len(s.groupsOf(id)) == 0 {
		return true
	}
	if s.scopeRule == nil {
		return false
	}
	in, _ := s.scopeRule.Match(simRuleUser(id, attrs), rules.Env{Now: s.Clock.Now()})
	return !in
}

// groupsOf lists the selected groups that contain a user, nested included.
func (s *Sim) groupsOf(id string) []string {
	var out []string
	for _, g := range s.scopeGroups {
		if slices.Contains(s.Source.TransitiveUserMembers(g), id) {
			out = append(out, g)
		}
	}
	return out
}

// Dynamic groups and scoping rules the simulator picks from: they read
// attributes its tenant changes (jobTitle, department).
var simRules = []string{
	`user.department -eq "Engineering" -and user.jobTitle -startsWith "Title 1"`,
	`user.jobTitle -eq "Engineer"`,
	`user.department -eq null -or user.jobTitle -contains "5"`,
	`user.department -in ["Sales", "Finance"]`,
	`-not (user.jobTitle -match "^Title [0-4]")`,
}

var simScopeRules = []string{
	`user.department -ne "Sales"`,
	`user.jobTitle -notContains "7"`,
}

// NewSim builds the world of one seed.
func NewSim(cfg SimConfig) *Sim {
	if cfg.Steps == 0 {
		cfg.Steps = 1200
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	if cfg.Users == 0 {
		cfg.Users = 4 + rng.Intn(21)
	}
	s := &Sim{cfg: cfg, rng: rng, Clock: NewClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)),
		store: NewStore(), logs: NewLogs(), Source: NewSource(), seenIDs: map[string]time.Time{},
		presentSince: map[string]time.Time{},
		report:       SimReport{Seed: cfg.Seed, Faults: map[string]int{}, Checks: map[string]int{}}}
	s.Source.PageSize = 2 + rng.Intn(4)
	s.Source.Partial = rng.Intn(2) == 0
	// A third of the seeds word every link anew, as the local Graph
	// simulator's skiptokens do (from the seed, not the rng, so that every
	// other seed's world stays as it was).
	if s.Source.FreshLinks = cfg.Seed%3 == 0; s.Source.FreshLinks {
		s.report.Faults["graph_fresh_links"]++
	}
	s.Engine = &dirsync.Engine{Store: &simStore{s.store, s}, Logs: &simLogs{s.logs}, Queue: &simQueue{s}, Source: &simSource{s.Source, s},
		Now: s.Clock.Now, Sleep: s.Clock.Advance, Concurrency: 1, MaxDeliveries: simMaxDelivery,
		Random: func(b []byte) { rng.Read(b) }}
	for i := 0; i < cfg.Users; i++ {
		s.addUser()
	}
	ctx := context.Background()
	st, etag, _ := s.Engine.Settings(ctx)
	st.DeletionThreshold = dirsync.DeletionThreshold{Enabled: rng.Intn(2) == 0, MaxCount: 1 + rng.Intn(5)}
	st.PageSize = s.Source.PageSize
	if rng.Intn(4) == 0 {
		s.photos = NewPhotos()
		s.Engine.Photos = simPhotos{s.photos}
		st.PhotoSync, st.PhotoMaxBytes = true, 1024
		for _, id := range s.tenantIDs() {
			if rng.Intn(2) == 0 {
				s.setPhoto(id)
			}
		}
	}
	s.scopeExit = map[string]time.Time{}
	if rng.Intn(4) == 0 {
		st.ScopeRule = simScopeRules[rng.Intn(len(simScopeRules))]
		s.scopeRule, _ = rules.Parse(st.ScopeRule)
	}
	if rng.Intn(4) == 0 {
		// Entra groups: 1 and 2 selected, 3 nested in 1 (and 4 in 3), 5
		// unrelated; each with a few users.
		for i := range 5 {
			s.Source.PutGroup(simEntraGroupID(i), fmt.Sprintf("Entra group %d", i+1))
			s.entraGroups = append(s.entraGroups, simEntraGroupID(i))
		}
		s.Source.AddGroupMember(simEntraGroupID(0), simEntraGroupID(2))
		s.Source.AddGroupMember(simEntraGroupID(2), simEntraGroupID(3))
		for _, id := range s.tenantIDs() {
			if g := rng.Intn(7); g < 5 {
				s.Source.AddGroupMember(simEntraGroupID(g), id)
			}
		}
		s.scopeGroups = []string{simEntraGroupID(0), simEntraGroupID(1)}
		s.mirror = rng.Intn(2) == 0
		st.GroupScope, st.MirrorGroups = s.scopeGroups, s.mirror
	}
	if _, err := s.Engine.PutSettings(ctx, st, etag, "sim"); err != nil {
		panic(err)
	}
	s.groups = map[string]string{}
	for i := range rng.Intn(3) {
		s.putGroup(ctx, simGroupID(i), simRules[rng.Intn(len(simRules))])
	}
	return s
}

func simGroupID(i int) string { return fmt.Sprintf("00000000-0000-4000-9000-%012d", i+1) }

// putGroup saves a dynamic group as the groups API does ("" deletes it).
func (s *Sim) putGroup(ctx context.Context, id, rule string) error {
	if rule == "" {
		if err := s.Engine.Store.Delete(ctx, dirsync.TableGroups, string(dirsync.GroupDynamic), id, ""); err != nil {
			return err
		}
		delete(s.groups, id)
		return nil
	}
	if _, err := s.Engine.Store.Upsert(ctx, dirsync.TableGroups, dirsync.Entity{PartitionKey: string(dirsync.GroupDynamic), RowKey: id,
		Props: map[string]any{"displayName": "group " + id[len(id)-2:], "rule": rule}}); err != nil {
		return err
	}
	s.groups[id] = rule
	return nil
}

func (s *Sim) trace(format string, args ...any) {
	if s.cfg.Trace {
		s.report.Trace = append(s.report.Trace, s.Clock.Now().Format("15:04:05")+" "+fmt.Sprintf(format, args...))
	}
}

func (s *Sim) violate(format string, args ...any) {
	v := fmt.Sprintf("t=%s: ", s.Clock.Now().Format("15:04:05")) + fmt.Sprintf(format, args...)
	s.report.Violations = append(s.report.Violations, v)
}

// ---- the tenant ----

func (s *Sim) person(n int) map[string]string {
	p := Person(n)
	p["mobilePhone"] = fmt.Sprintf("+47 SECRET-%d", n) // sensitive: must never reach a log
	if s.rng.Intn(6) == 0 {
		p["mail"] = fmt.Sprintf("user%d@contoso.example", 1+s.rng.Intn(max(s.nextN, 1))) // a likely duplicate
	}
	if s.rng.Intn(10) == 0 {
		delete(p, "mail") // email from userPrincipalName
	}
	return p
}

func (s *Sim) addUser() {
	s.nextN++
	id := UserID(s.nextN)
	s.Source.Put(id, s.person(s.nextN))
	s.presentSince[id] = s.Clock.Now()
}

func (s *Sim) tenantIDs() []string {
	var ids []string
	for id := range s.Source.Users() {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Sim) mutateTenant() {
	// Every change gets its own instant, so "before the run started" is
	// exact, not up to the clock's resolution.
	s.Clock.Advance(time.Millisecond)
	defer func(before map[string]map[string]string) {
		after := s.Source.Users()
		ids := make([]string, 0, len(after))
		for id := range after {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			a := after[id]
			if b, ok := before[id]; !ok {
				s.trace("tenant: %s appears", id[len(id)-3:])
			} else if fmt.Sprint(a) != fmt.Sprint(b) {
				s.trace("tenant: %s changes: %v", id[len(id)-3:], a)
			}
			if s.outOfScope(id) {
				s.scopeExit[id] = s.Clock.Now()
			}
		}
		gone := []string{}
		for id := range before {
			if _, ok := after[id]; !ok {
				gone = append(gone, id)
			}
		}
		sort.Strings(gone)
		for _, id := range gone {
			s.trace("tenant: %s removed", id[len(id)-3:])
		}
	}(s.Source.Users())
	ids := s.tenantIDs()
	pick := func() string { return ids[s.rng.Intn(len(ids))] }
	if len(s.entraGroups) > 0 && s.rng.Intn(4) == 0 {
		s.mutateGroups(ids)
		return
	}
	if s.photos != nil && s.rng.Intn(4) == 0 {
		id := pick()
		if s.rng.Intn(3) == 0 {
			s.Source.RemovePhoto(id)
			s.report.Faults["photo_removed"]++
		} else {
			s.setPhoto(id)
			s.report.Faults["photo_changed"]++
		}
		return
	}
	switch k := s.rng.Intn(7); {
	case k == 0 || len(ids) < 2:
		s.addUser()
		s.report.Faults["tenant_add"]++
	case k == 1:
		id := pick()
		a := s.Source.Users()[id]
		a["jobTitle"] = fmt.Sprintf("Title %d", s.rng.Intn(1000))
		switch s.rng.Intn(6) {
		case 0, 1:
			delete(a, "department")
		case 2:
			a["department"] = "Sales"
		case 3:
			a["department"] = "Finance"
		}
		s.Source.Put(id, a)
		s.report.Faults["tenant_change"]++
	case k == 2:
		id := pick()
		reason := dirsync.RemovedChanged
		if s.rng.Intn(2) == 0 {
			reason = dirsync.RemovedDeleted
		}
		s.Source.Remove(id, reason)
		delete(s.presentSince, id)
		s.report.Faults["tenant_delete"]++
	case k == 3:
		// restore a soft-deleted user
		var gone []string
		for id, why := range s.Source.removed {
			if why == dirsync.RemovedChanged {
				gone = append(gone, id)
			}
		}
		sort.Strings(gone)
		if len(gone) > 0 {
			id := gone[s.rng.Intn(len(gone))]
			n := 0
			fmt.Sscanf(id[len(id)-12:], "%d", &n)
			s.Source.Put(id, s.person(n))
			s.presentSince[id] = s.Clock.Now()
			s.report.Faults["tenant_restore"]++
		}
	case k == 4:
		// two users swap emails
		a, b := pick(), pick()
		users := s.Source.Users()
		ua, ub := users[a], users[b]
		ua["mail"], ub["mail"] = ub["mail"], ua["mail"]
		s.Source.Put(a, ua)
		s.Source.Put(b, ub)
		s.report.Faults["tenant_email_swap"]++
	case k == 5:
		// a chain move: A takes B's email, B a new one
		a, b := pick(), pick()
		users := s.Source.Users()
		ua, ub := users[a], users[b]
		ua["mail"], ub["mail"] = ub["mail"], fmt.Sprintf("moved%d@contoso.example", s.rng.Intn(1e6))
		s.Source.Put(a, ua)
		s.Source.Put(b, ub)
		s.report.Faults["tenant_email_move"]++
	default:
		s.addUser()
		s.report.Faults["tenant_add"]++
	}
}

// setPhoto gives a user a new photo (sometimes over the size limit).
func (s *Sim) setPhoto(id string) {
	n := 1 + s.rng.Intn(1200)
	s.Source.SetPhoto(id, bytes.Repeat([]byte{byte(s.rng.Intn(256))}, n), "image/jpeg")
}

// mutateGroups changes Entra group memberships: users join and leave,
// nested groups are nested and un-nested, groups are renamed. (A selected
// group deleted in Entra holds every run; that has tests of its own.)
func (s *Sim) mutateGroups(ids []string) {
	g := s.entraGroups[s.rng.Intn(len(s.entraGroups))]
	defer func() {
		users, groups := s.Source.GroupMembers(g)
		s.trace("tenant: group %s now has users %d groups %v", g[len(g)-2:], len(users), groups)
	}()
	switch s.rng.Intn(5) {
	case 0, 1:
		s.Source.AddGroupMember(g, ids[s.rng.Intn(len(ids))])
		s.report.Faults["group_member_added"]++
	case 2:
		users, groups := s.Source.GroupMembers(g)
		if all := append(users, groups...); len(all) > 0 {
			s.Source.RemoveGroupMember(g, all[s.rng.Intn(len(all))])
			s.report.Faults["group_member_removed"]++
		}
	case 3:
		// nest or un-nest group 4 in a selected one
		nested, parent := simEntraGroupID(3), s.scopeGroups[s.rng.Intn(len(s.scopeGroups))]
		if _, groups := s.Source.GroupMembers(parent); slices.Contains(groups, nested) {
			s.Source.RemoveGroupMember(parent, nested)
		} else {
			s.Source.AddGroupMember(parent, nested)
		}
		s.report.Faults["group_nesting"]++
	case 4:
		s.Source.PutGroup(g, fmt.Sprintf("Entra group %s renamed %d", g[len(g)-2:], s.rng.Intn(100)))
		s.report.Faults["group_renamed"]++
	}
}

// ---- workers ----

func (s *Sim) spawn(name string, m *simMsg, runID string, f func(ctx context.Context) error) {
	w := &worker{name: name, msg: m, runID: runID, resume: make(chan struct{}), parked: make(chan bool)}
	if !s.quiet {
		switch s.rng.Intn(12) {
		case 0:
			w.killAt = 1 + s.rng.Intn(30)
			s.report.Faults["worker_killed"]++
		case 1:
			w.failAt = 1 + s.rng.Intn(30)
			s.report.Faults["storage_transient"]++
		}
	}
	s.trace("spawn %s kill@%d fail@%d", name, w.killAt, w.failAt)
	ctx := context.WithValue(context.Background(), workerKey{}, w)
	go func() {
		<-w.resume
		w.err = f(ctx)
		w.parked <- true
	}()
	s.workers = append(s.workers, w)
}

// resume runs worker i until its next scheduling point; it reports whether
// the worker finished.
func (s *Sim) resume(i int) {
	w := s.workers[i]
	w.started = true
	w.resume <- struct{}{}
	if done := <-w.parked; !done {
		return
	}
	s.workers = append(s.workers[:i], s.workers[i+1:]...)
	s.trace("done %s killed=%v err=%v", w.name, w.killed, w.err)
	if m := w.msg; m != nil {
		m.busy = false
		switch {
		case w.killed:
			m.count++
			m.msg.NotBefore = s.Clock.Now().Add(simLockDuration)
		case w.err != nil:
			m.count++
			m.msg.NotBefore = s.Clock.Now()
		default:
			if !s.quiet && s.rng.Intn(15) == 0 {
				// The completion was lost: Service Bus delivers it again.
				m.count++
				m.msg.NotBefore = s.Clock.Now().Add(simLockDuration)
				s.report.Faults["redelivered_after_success"]++
				return
			}
			s.removeMsg(m)
			return
		}
		if m.count >= simMaxDelivery {
			m.dead = true
			s.removeMsg(m)
			s.report.Faults["dead_lettered"]++
		}
	}
}

func (s *Sim) removeMsg(m *simMsg) {
	for i, q := range s.queue {
		if q == m {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return
		}
	}
}

func (s *Sim) deliverable() []*simMsg {
	var out []*simMsg
	now := s.Clock.Now()
	for _, m := range s.queue {
		if !m.busy && !m.msg.NotBefore.After(now) {
			out = append(out, m)
		}
	}
	return out
}

func (s *Sim) deliver(m *simMsg) {
	m.busy = true
	s.report.Deliveries++
	d := dirsync.Delivery{MessageID: m.msg.ID, Count: m.count + 1}
	body := m.msg.Body
	w, _ := dirsync.DecodeWorkItem(body)
	s.spawn("deliver "+m.msg.ID, m, w.RunID, func(ctx context.Context) error { return s.Engine.HandleWork(ctx, body, d) })
}

// admin starts one admin request as a worker.
func (s *Sim) admin() {
	ctx0 := context.Background()
	active, _ := s.Engine.ActiveRun(ctx0)
	switch k := s.rng.Intn(10); {
	case k < 3:
		s.report.Faults["sync_now"]++
		mode := ""
		if s.rng.Intn(4) == 0 {
			mode = dirsync.ModeFull
		}
		s.spawn("sync now", nil, "", func(ctx context.Context) error {
			_, err := s.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, Mode: mode, RequestedBy: "sim"})
			return err
		})
	case k == 3:
		s.report.Faults["tick"]++
		s.spawn("tick", nil, "", func(ctx context.Context) error { _, err := s.Engine.Tick(ctx); return err })
	case k == 4 && active != nil && s.rng.Intn(3) == 0:
		s.report.Faults["cancel"]++
		id := active.ID
		s.spawn("cancel", nil, id, func(ctx context.Context) error { _, err := s.Engine.CancelRun(ctx, id, "sim"); return err })
	case k == 5 && active != nil && active.Status == dirsync.RunBlocked:
		id := active.ID
		if s.rng.Intn(2) == 0 {
			s.report.Faults["approve"]++
			s.spawn("approve", nil, id, func(ctx context.Context) error { _, err := s.Engine.ApproveDeletions(ctx, id, "sim"); return err })
		} else {
			s.report.Faults["reject"]++
			s.spawn("reject", nil, id, func(ctx context.Context) error { _, err := s.Engine.RejectDeletions(ctx, id, "sim"); return err })
		}
	case k == 6 && s.rng.Intn(3) == 0:
		s.report.Faults["settings_toggle"]++
		s.spawn("toggle enabled", nil, "", func(ctx context.Context) error {
			st, etag, err := s.Engine.Settings(ctx)
			if err != nil {
				return err
			}
			st.Enabled = !st.Enabled || s.rng.Intn(2) == 0
			_, err = s.Engine.PutSettings(ctx, st, etag, "sim")
			return err
		})
	case k == 9 && s.rng.Intn(2) == 0 && len(s.tenantIDs()) > 0:
		s.report.Faults["on_demand"]++
		ids := s.tenantIDs()
		id := ids[s.rng.Intn(len(ids))]
		s.spawn("on demand", nil, "", func(ctx context.Context) error {
			_, err := s.Engine.ProvisionUser(ctx, id, "sim")
			return err
		})
	case k == 9 && s.rng.Intn(2) == 0:
		s.report.Faults["preview"]++
		mode := ""
		if s.rng.Intn(2) == 0 {
			mode = dirsync.ModeFull
		}
		s.spawn("preview", nil, "", func(ctx context.Context) error {
			_, err := s.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerPreview, Mode: mode, Preview: true, RequestedBy: "sim"})
			return err
		})
	case k == 8 && s.rng.Intn(2) == 0:
		s.report.Faults["group_edit"]++
		id, rule := simGroupID(s.rng.Intn(3)), simRules[s.rng.Intn(len(simRules))]
		if s.rng.Intn(4) == 0 {
			rule = ""
		}
		s.spawn("edit group", nil, "", func(ctx context.Context) error { return s.putGroup(ctx, id, rule) })
	case k == 7 && s.rng.Intn(3) == 0:
		s.report.Faults["reset"]++
		s.spawn("reset", nil, "", func(ctx context.Context) error { _, err := s.Engine.Reset(ctx, "sim"); return err })
	default:
		s.report.Faults["sync_now"]++
		s.spawn("sync now", nil, "", func(ctx context.Context) error {
			_, err := s.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "sim"})
			return err
		})
	}
}

func (s *Sim) graphFault() {
	switch s.rng.Intn(4) {
	case 0:
		s.Source.Expire()
		s.report.Faults["token_expired"]++
	case 1:
		s.Source.Errs = append(s.Source.Errs, &dirsync.Error{Code: dirsync.ETHROTTLED, Message: "simulated 429", RetryAfter: time.Duration(1+s.rng.Intn(120)) * time.Second})
		s.report.Faults["graph_throttled"]++
	case 2:
		s.Source.Errs = append(s.Source.Errs, &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "simulated 503"})
		s.report.Faults["graph_unavailable"]++
	case 3:
		s.Source.Errs = append(s.Source.Errs, &dirsync.Error{Code: dirsync.ETOKENEXPIRED, Message: "simulated resyncRequired"})
		s.report.Faults["token_expired"]++
	}
}

// step makes one scheduling decision.
func (s *Sim) step() {
	r := s.rng.Intn(100)
	ready := s.deliverable()
	if len(s.workers) == 0 && len(ready) == 0 && len(s.queue) > 0 && r < 85 {
		// Idle: time passes until the next scheduled message.
		next := s.queue[0].msg.NotBefore
		for _, m := range s.queue {
			if m.msg.NotBefore.Before(next) {
				next = m.msg.NotBefore
			}
		}
		s.Clock.Set(next)
		return
	}
	switch {
	case r < 80:
		// Work: resume a worker, or hand a worker a message.
		if len(ready) > 0 && s.busyWorkers() < simWorkers && (len(s.workers) == 0 || s.rng.Intn(3) == 0) {
			s.deliver(ready[s.rng.Intn(len(ready))])
		} else if len(s.workers) > 0 {
			s.resume(s.rng.Intn(len(s.workers)))
		}
	case !s.quiet && r < 83:
		s.admin()
	case !s.quiet && r < 89:
		s.mutateTenant()
	case !s.quiet && r < 92:
		s.graphFault()
	default:
		// a clock jump: sometimes past the lock's staleness
		d := time.Duration(1+s.rng.Intn(90)) * time.Second
		long := s.rng.Intn(30) == 0
		if long {
			d = time.Duration(10+s.rng.Intn(40)) * time.Minute
			s.report.Faults["clock_jump_long"]++
		}
		s.Clock.Advance(d)
		if long && s.rng.Intn(2) == 0 {
			// Two starts at once after the lock may have gone stale (a
			// double-clicked Sync now, or the timer and Sync now).
			s.report.Faults["concurrent_starts"]++
			for range 2 {
				s.spawn("sync now", nil, "", func(ctx context.Context) error {
					_, err := s.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "sim"})
					return err
				})
			}
		}
	}
}

func (s *Sim) busyWorkers() int {
	n := 0
	for _, w := range s.workers {
		if w.msg != nil {
			n++
		}
	}
	return n
}

// drain runs every worker and message to the end, jumping the clock to the
// next scheduled message when nothing is ready.
func (s *Sim) drain(limit int) {
	for i := 0; i < limit; i++ {
		if len(s.workers) > 0 {
			s.resume(s.rng.Intn(len(s.workers)))
			continue
		}
		ready := s.deliverable()
		if len(ready) > 0 {
			s.deliver(ready[s.rng.Intn(len(ready))])
			continue
		}
		if len(s.queue) == 0 {
			return
		}
		next := s.queue[0].msg.NotBefore
		for _, m := range s.queue {
			if m.msg.NotBefore.Before(next) {
				next = m.msg.NotBefore
			}
		}
		s.Clock.Set(next)
	}
	s.violate("the queue did not drain within %d steps (%d messages left): something waits forever", limit, len(s.queue))
}

// runAdmin runs one admin request to its end (no faults).
func (s *Sim) runAdmin(f func(ctx context.Context) error) error {
	var err error
	s.spawn("final", nil, "", func(ctx context.Context) error { err = f(ctx); return err })
	for len(s.workers) > 0 {
		s.resume(len(s.workers) - 1)
	}
	return err
}

// Run plays the scenario and checks the invariants. It never panics on a
// violation: the report lists them.
func (s *Sim) Run() SimReport {
	for i := 0; i < s.cfg.Steps; i++ {
		s.step()
		s.report.Steps++
		// Counts rows move in the same batch as the rows they count, so
		// they hold between any two store calls, not only when settled.
		if i%10 == 9 {
			s.checkCounts("during the scenario")
		}
	}
	// Quiesce: no more faults; everything in flight runs to its end.
	s.quiet = true
	s.Source.Errs = nil
	s.drain(20000)
	ctx := context.Background()
	// A run that stalled is ended by the timer, after the lock went stale.
	s.Clock.Advance(31 * time.Minute)
	s.runAdmin(func(ctx context.Context) error { _, err := s.Engine.Tick(ctx); return err })
	s.drain(20000)
	s.checkRunsSettled(ctx, "after quiescing")

	// A final sync on a quiet tenant must converge to the ground truth.
	s.runAdmin(func(ctx context.Context) error {
		st, etag, err := s.Engine.Settings(ctx)
		if err != nil {
			return err
		}
		st.Enabled = true
		_, err = s.Engine.PutSettings(ctx, st, etag, "sim")
		return err
	})
	// A run that was blocked before quiescing read a tenant that was still
	// changing: decide it, then start fresh runs until one succeeds.
	var final dirsync.Run
	for attempt := 0; attempt < 4; attempt++ {
		if a, _ := s.Engine.ActiveRun(ctx); a != nil && a.Status == dirsync.RunBlocked {
			id := a.ID
			s.runAdmin(func(ctx context.Context) error { _, err := s.Engine.ApproveDeletions(ctx, id, "sim"); return err })
			s.drain(20000)
			continue
		}
		var run dirsync.Run
		err := s.runAdmin(func(ctx context.Context) error {
			var err error
			run, err = s.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "sim"})
			return err
		})
		if err != nil {
			s.violate("the final sync could not start: %v", err)
			break
		}
		s.drain(20000)
		final, _ = s.Engine.GetRun(ctx, run.ID)
		if final.Status == dirsync.RunSucceeded {
			break
		}
	}
	if final.Status != dirsync.RunSucceeded {
		s.violate("the final sync on a quiet tenant ended %s: %s", final.Status, final.Error)
	} else {
		s.checkDirectory(ctx, final)
		if s.photos != nil {
			s.checkPhotos(ctx)
		}
	}
	s.checkRunsSettled(ctx, "at the end")
	s.checkLogs()
	return s.report
}

// ---- invariants ----

func (s *Sim) runRow(id string) (dirsync.Run, bool) {
	r, err := (&dirsync.Engine{Store: s.store, Logs: s.logs}).GetRun(context.Background(), id)
	return r, err == nil
}

// checkRunsSettled: every run is terminal, or blocked holding the lock with
// the status page naming it; nothing waits forever.
func (s *Sim) checkRunsSettled(ctx context.Context, when string) {
	s.checkCounts(when)
	s.report.Checks["runs_settled"]++
	plain := &dirsync.Engine{Store: s.store, Logs: s.logs, Now: s.Clock.Now}
	runs, _, _ := plain.ListRuns(ctx, "", 100, "")
	s.report.Runs = len(runs)
	lock, _ := plain.ActiveRun(ctx)
	st, _ := plain.Status(ctx)
	for _, r := range runs {
		if when == "at the end" {
			s.report.Checks["run_"+string(r.Status)]++
		}
		switch {
		case r.Finished():
		case r.Status == dirsync.RunBlocked && lock != nil && lock.ID == r.ID:
			named := false
			for _, a := range st.Actions {
				named = named || a.Code == dirsync.ActionDeletionsBlocked
			}
			if !named {
				s.violate("%s: run %s is blocked but the status page names no action", when, r.ID)
			}
		default:
			s.violate("%s: run %s is %s/%s and nothing will move it (lock: %v)", when, r.ID, r.Status, r.Phase, lock != nil && lock.ID == r.ID)
		}
	}
}

// checkCounts: with no run applying anything, every exact counts row (one
// per users partition, counts.go) equals a scan of its partition by status,
// and at the end, after a succeeded final sync, every partition has one.
func (s *Sim) checkCounts(when string) {
	s.report.Checks["counts_equal_scan"]++
	scan := map[string]map[string]int64{}
	rows := map[string]dirsync.Entity{}
	for _, ent := range s.store.Rows(dirsync.TableUsers) {
		if ent.RowKey == dirsync.CountsRowKey {
			rows[ent.PartitionKey] = ent
			continue
		}
		if scan[ent.PartitionKey] == nil {
			scan[ent.PartitionKey] = map[string]int64{}
		}
		scan[ent.PartitionKey][ent.Str("status")]++
	}
	for b := range dirsync.UserBuckets {
		pk := fmt.Sprintf("b%02d", b)
		row, ok := rows[pk]
		if !ok || row.Str("state") != "exact" {
			if when == "at the end" {
				s.violate("%s: users partition %s has no exact counts row (%v)", when, pk, row.Props)
			}
			continue
		}
		for _, st := range []string{dirsync.StatusActive, dirsync.StatusDuplicate, dirsync.StatusSkipped} {
			if got, want := row.Int("n_"+st), scan[pk][st]; got != want {
				s.violate("%s: users partition %s counts %d %s users, a scan finds %d", when, pk, got, st, want)
			}
		}
		for k := range row.Props {
			if st, ok := strings.CutPrefix(k, "n_"); ok && st != dirsync.StatusActive && st != dirsync.StatusDuplicate && st != dirsync.StatusSkipped && row.Int(k) != 0 {
				s.violate("%s: users partition %s counts %d users of status %q", when, pk, row.Int(k), st)
			}
		}
	}
}

// checkDirectory: after a succeeded run on a quiet tenant, the directory
// equals the ground truth mapped through the settings.
func (s *Sim) checkDirectory(ctx context.Context, final dirsync.Run) {
	s.report.Checks["directory_equals_truth"]++
	set, _, _ := s.Engine.Settings(ctx)
	truth := s.inScope(set, s.Source.Users())
	rows := map[string]dirsync.User{}
	for _, ent := range s.store.Rows(dirsync.TableUsers) {
		if ent.RowKey == dirsync.CountsRowKey {
			continue
		}
		u, _ := (&dirsync.Engine{Store: s.store}).GetUser(ctx, ent.RowKey)
		rows[ent.RowKey] = u
	}
	holders := map[string][]string{}
	for id, attrs := range truth {
		u, ok := rows[id]
		if !ok {
			s.violate("user %s exists in Entra but not in the directory after run %s", id, final.ID)
			continue
		}
		want := map[string]string{}
		for _, m := range set.Mapping {
			v := strings.TrimSpace(attrs[m.Source])
			if m.Constant != "" {
				v = m.Constant
			} else if v == "" && m.Fallback != "" {
				v = strings.TrimSpace(attrs[m.Fallback])
			}
			if v != "" {
				want[m.Field] = v
			}
		}
		if fmt.Sprint(want) != fmt.Sprint(u.Fields) && u.Status != dirsync.StatusSkipped {
			s.violate("user %s: fields %v, want %v", id, u.Fields, want)
		}
		if u.Status == dirsync.StatusActive || u.Status == dirsync.StatusDuplicate {
			holders[u.Email] = append(holders[u.Email], id)
		}
	}
	for id := range rows {
		if _, ok := truth[id]; !ok {
			s.violate("user %s is in the directory but not in Entra after run %s", id, final.ID)
		}
	}
	for email, ids := range holders {
		active := 0
		for _, id := range ids {
			if rows[id].Status == dirsync.StatusActive {
				active++
			}
		}
		if email != "" && active != 1 {
			claim, _ := s.store.Get(ctx, dirsync.TableEmails, dirsync.Bucket(email), "c|"+dirsync.EscapeKey(email))
			s.violate("email %s: %d active users among %v, want exactly 1 (duplicates resolved); claim %v", email, active, ids, claim.Props)
		}
	}
	s.checkMemberships(ctx, final, truth, rows)
	// Counters: a full run on a quiet tenant saw every user once.
	if final.Mode == dirsync.ModeFull && final.Restarts == 0 {
		s.report.Checks["counters"]++
		c := final.Counters
		if all := len(s.Source.Users()); c.Seen != int64(all) {
			s.violate("run %s saw %d users, the tenant has %d", final.ID, c.Seen, all)
		}
		if sum := c.Added + c.Updated + c.Unchanged + c.Duplicate + c.Skipped + c.Failed + c.OutOfScope; sum != c.Seen {
			s.violate("run %s: outcomes add up to %d, seen is %d (%+v)", final.ID, sum, c.Seen, c)
		}
	}
}

// inScope filters the tenant by the settings' scope.
func (s *Sim) inScope(set dirsync.Settings, users map[string]map[string]string) map[string]map[string]string {
	var rule *rules.Rule
	if set.ScopeRule != "" {
		rule, _ = rules.Parse(set.ScopeRule)
	}
	out := map[string]map[string]string{}
	for id, attrs := range users {
		if len(set.GroupScope) > 0 && len(s.groupsOf(id)) == 0 {
			continue
		}
		if rule != nil {
			if ok, _ := rule.Match(simRuleUser(id, attrs), rules.Env{Now: s.Clock.Now()}); !ok {
				continue
			}
		}
		out[id] = attrs
	}
	return out
}

func simRuleUser(id string, attrs map[string]string) rules.User {
	a := maps.Clone(attrs)
	a["id"] = id
	return rules.FromGraph(a)
}

// checkMemberships: after a succeeded run on a quiet tenant, every synced
// user's row lists exactly the dynamic groups whose rule its Entra
// attributes match, and the per-group index lists exactly the rows' members.
func (s *Sim) checkMemberships(ctx context.Context, final dirsync.Run, truth map[string]map[string]string, rows map[string]dirsync.User) {
	s.report.Checks["memberships_equal_rules"]++
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	want := map[string][]string{} // group → members
	for uid, attrs := range truth {
		u := rows[uid]
		var mine []string
		for _, gid := range ids {
			r, _ := rules.Parse(s.groups[gid])
			if ok, _ := r.Match(simRuleUser(uid, attrs), rules.Env{Now: final.StartedAt}); ok {
				mine = append(mine, gid)
				if u.Status == dirsync.StatusActive {
					want[gid] = append(want[gid], uid)
				}
			}
		}
		if s.mirror {
			for _, gid := range s.groupsOf(uid) {
				mine = append(mine, gid)
				if u.Status == dirsync.StatusActive {
					want[gid] = append(want[gid], uid)
				}
			}
			sort.Strings(mine)
		}
		if u.Status == dirsync.StatusActive && fmt.Sprint(mine) != fmt.Sprint(u.Groups) {
			s.violate("user %s: groups %v, want %v (rules on its attributes %v)", uid, u.Groups, mine, attrs)
		}
	}
	got := map[string][]string{}
	for _, ent := range s.store.Rows(dirsync.TableMembers) {
		gid, ok := strings.CutPrefix(ent.PartitionKey, "g|")
		if !ok || !ent.Bool("present") {
			continue
		}
		if _, exists := rows[ent.RowKey]; !exists {
			s.violate("group %s lists member %s, which has no directory row", gid, ent.RowKey)
		}
		got[gid] = append(got[gid], ent.RowKey)
	}
	if s.mirror {
		ids = append(ids, s.scopeGroups...)
	}
	for _, gid := range ids {
		sort.Strings(want[gid])
		sort.Strings(got[gid])
		if fmt.Sprint(want[gid]) != fmt.Sprint(got[gid]) {
			s.violate("group %s: index lists %v, want %v", gid, got[gid], want[gid])
		}
		delete(got, gid)
	}
	if s.mirror {
		names := s.Source.Groups()
		for _, gid := range s.scopeGroups {
			row, err := s.store.Get(ctx, dirsync.TableGroups, string(dirsync.GroupMirrored), gid)
			if err != nil || row.Str("displayName") != names[gid] {
				s.violate("mirrored group %s: %q (%v), want Entra's name %q", gid, row.Str("displayName"), err, names[gid])
			}
		}
	}
	for gid, m := range got {
		if len(m) > 0 {
			// A deleted group's index is left for cleanup, but its members
			// must have left: every row was evaluated without it.
			for _, uid := range m {
				if slices.Contains(rows[uid].Groups, gid) {
					s.violate("user %s still lists deleted group %s", uid, gid)
				}
			}
		}
	}
}

// checkPhotos: a day of syncs after the tenant went quiet, every active
// user's stored photo is Entra's (none when Entra has none or it is over
// the limit), and its row holds Entra's photo ETag.
func (s *Sim) checkPhotos(ctx context.Context) {
	s.report.Checks["photos_equal_truth"]++
	for range 2 {
		s.Clock.Advance(12 * time.Hour)
		s.runAdmin(func(ctx context.Context) error {
			_, err := s.Engine.StartRun(ctx, dirsync.StartRequest{Trigger: dirsync.TriggerManual, RequestedBy: "sim"})
			return err
		})
		s.drain(20000)
	}
	stored := s.photos.All()
	for _, ent := range s.store.Rows(dirsync.TableUsers) {
		if ent.RowKey == dirsync.CountsRowKey || ent.Str("status") != dirsync.StatusActive {
			continue
		}
		id := ent.RowKey
		data, ctype, etag := s.Source.Photo(id)
		got, has := stored[id]
		want := len(data) > 0 && len(data) <= 1024
		switch {
		case want && (!has || !bytes.Equal(got.Data, data) || got.ContentType != ctype):
			s.violate("user %s: stored photo (%v, %d bytes) is not Entra's (%d bytes)", id, has, len(got.Data), len(data))
		case !want && has:
			s.violate("user %s: a photo is stored, Entra has none within the limit (%d bytes)", id, len(data))
		}
		u, _ := (&dirsync.Engine{Store: s.store}).GetUser(ctx, id)
		if u.PhotoETag != etag {
			s.violate("user %s: row photo ETag %q, Entra's %q", id, u.PhotoETag, etag)
		}
	}
}

// checkLogs: nothing sensitive in any run log.
func (s *Sim) checkLogs() {
	s.report.Checks["logs_without_secrets"]++
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	for name, b := range s.logs.logs {
		if strings.Contains(b.String(), "SECRET-") {
			s.violate("run log %s holds a sensitive value", name)
		}
	}
}

// ---- the port wrappers: every call is a scheduling point ----

type simStore struct {
	*Store
	sim *Sim
}

func (p *simStore) Get(ctx context.Context, table, pk, rk string) (dirsync.Entity, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.Entity{}, err
	}
	return p.Store.Get(ctx, table, pk, rk)
}

func (p *simStore) Insert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	return p.write(ctx, table, dirsync.BatchInsert, e, p.Store.Insert)
}

func (p *simStore) Upsert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	return p.write(ctx, table, dirsync.BatchUpsert, e, p.Store.Upsert)
}

func (p *simStore) Replace(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	return p.write(ctx, table, dirsync.BatchReplace, e, p.Store.Replace)
}

// write is a single-row write: a scheduling point, then the checks.
func (p *simStore) write(ctx context.Context, table string, kind dirsync.BatchKind, e dirsync.Entity,
	do func(context.Context, string, dirsync.Entity) (string, error)) (string, error) {
	if err := workerOf(ctx).point(); err != nil {
		return "", err
	}
	p.sim.beforeWrite(ctx, table, []dirsync.BatchOp{{Kind: kind, Entity: e}})
	etag, err := do(ctx, table, e)
	p.sim.afterWrite(ctx, table, err)
	return etag, err
}

func (p *simStore) Delete(ctx context.Context, table, pk, rk, etag string) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	p.sim.beforeWrite(ctx, table, []dirsync.BatchOp{{Kind: dirsync.BatchDelete, Entity: dirsync.Entity{PartitionKey: pk, RowKey: rk, ETag: etag}}})
	err := p.Store.Delete(ctx, table, pk, rk, etag)
	p.sim.afterWrite(ctx, table, err)
	return err
}

func (p *simStore) Batch(ctx context.Context, table string, ops []dirsync.BatchOp) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	p.sim.beforeWrite(ctx, table, ops)
	err := p.Store.Batch(ctx, table, ops)
	p.sim.afterWrite(ctx, table, err)
	return err
}

func (p *simStore) BatchETags(ctx context.Context, table string, ops []dirsync.BatchOp) ([]string, error) {
	if err := workerOf(ctx).point(); err != nil {
		return nil, err
	}
	p.sim.beforeWrite(ctx, table, ops)
	etags, err := p.Store.BatchETags(ctx, table, ops)
	p.sim.afterWrite(ctx, table, err)
	return etags, err
}

func (p *simStore) Query(ctx context.Context, table string, q dirsync.Query) (dirsync.EntityPage, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.EntityPage{}, err
	}
	return p.Store.Query(ctx, table, q)
}

// beforeWrite checks the write invariants against the world as it is at
// the moment of the write (a write that then fails its condition is
// checked too, which only makes the checks stricter where they matter).
func (s *Sim) beforeWrite(ctx context.Context, table string, ops []dirsync.BatchOp) {
	w := workerOf(ctx)
	switch table {
	case dirsync.TableUsers, dirsync.TableEmails, dirsync.TableMembers, dirsync.TableGroups:
		if w != nil && w.runID != "" {
			if run, ok := s.runRow(w.runID); ok && run.Preview {
				s.report.Checks["preview_writes_nothing"]++
				s.violate("preview run %s wrote to the %s table (%s)", run.ID, table, w.name)
			}
		}
	}
	switch table {
	case dirsync.TableUsers:
		for _, op := range ops {
			id := op.Entity.RowKey
			if id == dirsync.CountsRowKey {
				continue
			}
			cur, err := s.store.Get(ctx, table, op.Entity.PartitionKey, id)
			exists := err == nil
			if op.Kind == dirsync.BatchDelete {
				if !exists || (op.Entity.ETag != "" && cur.ETag != op.Entity.ETag) {
					continue // the delete will not happen
				}
				s.report.Checks["deletion_safe"]++
				since, present := s.presentSince[id]
				if !present || w == nil || w.runID == "" {
					continue
				}
				run, ok := s.runRow(w.runID)
				s.trace("DELETE user %s by %s", id[len(id)-3:], w.name)
				if exit, out := s.scopeExit[id]; ok && out && !exit.Before(run.StartedAt) || s.outOfScope(id) {
					continue // it left the scope: removing it is the scope's promise
				}
				if ok && !since.After(run.StartedAt) {
					s.violate("run %s deleted user %s, which has existed in Entra since %s, before the run started (%s)",
						w.runID, id, since.Format("15:04:05"), run.StartedAt.Format("15:04:05"))
				}
				continue
			}
			if s.cfg.Trace && op.Entity.RowKey[33:] == s.cfg.TraceUser {
				s.trace("user row %s %d status=%v email=%v stamp=%v/%v by %s", id[33:], op.Kind, op.Entity.Props["status"], op.Entity.Props["email"], op.Entity.Props["runSeq"], op.Entity.Props["pageSeq"], w.name)
			}
			if !exists || (op.Entity.ETag != "" && cur.ETag != op.Entity.ETag) || op.Kind == dirsync.BatchInsert {
				continue
			}
			s.report.Checks["stamp_monotonic"]++
			oldRun, oldPage := cur.Int("runSeq"), cur.Int("pageSeq")
			newRun, newPage := op.Entity.Int("runSeq"), op.Entity.Int("pageSeq")
			if newRun < oldRun || (newRun == oldRun && newPage < oldPage) {
				s.violate("user %s: a write stamped %d/%d overwrote a newer row stamped %d/%d", id, newRun, newPage, oldRun, oldPage)
			}
		}
	case dirsync.TableEmails:
		for _, op := range ops {
			s.trace("email row %d %s %v by %s", op.Kind, op.Entity.RowKey, op.Entity.Props, w.name)
		}
	case dirsync.TableDeletions:
		for _, op := range ops {
			s.trace("deletion row %s/%s %v by %s", op.Entity.PartitionKey[16:], op.Entity.RowKey[33:], op.Entity.Props, w.name)
		}
	case dirsync.TableState:
		for _, op := range ops {
			if op.Entity.RowKey != "delta" || op.Kind == dirsync.BatchDelete {
				continue
			}
			s.report.Checks["token_moves_with_success"]++
			runID := op.Entity.Str("runId")
			if run, ok := s.runRow(runID); !ok || run.Status != dirsync.RunSucceeded {
				s.violate("the delta token was saved by run %s, which is %s", runID, run.Status)
			}
		}
	}
}

// afterWrite traces a failed write of the tables the trace follows.
func (s *Sim) afterWrite(ctx context.Context, table string, err error) {
	if s.cfg.Trace && err != nil && (table == dirsync.TableEmails || table == dirsync.TableUsers) {
		s.trace("  ^ %s write failed: %v (by %s)", table, err, workerOf(ctx).name)
	}
}

type simLogs struct{ *Logs }

func (p *simLogs) CreateLog(ctx context.Context, name string) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	return p.Logs.CreateLog(ctx, name)
}

func (p *simLogs) AppendLog(ctx context.Context, name string, data []byte) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	return p.Logs.AppendLog(ctx, name, data)
}

func (p *simLogs) OpenLog(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := workerOf(ctx).point(); err != nil {
		return nil, err
	}
	return p.Logs.OpenLog(ctx, name)
}

type simQueue struct{ sim *Sim }

// Send keeps Service Bus's duplicate detection (10 minutes by message id).
func (p *simQueue) Send(ctx context.Context, m dirsync.Message) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	s := p.sim
	if t, ok := s.seenIDs[m.ID]; ok && s.Clock.Now().Sub(t) < 10*time.Minute {
		return nil
	}
	s.seenIDs[m.ID] = s.Clock.Now()
	s.arrival++
	s.queue = append(s.queue, &simMsg{msg: m, arrival: s.arrival})
	return nil
}

type simSource struct {
	*Source
	sim *Sim
}

func (p *simSource) UsersDelta(ctx context.Context, req dirsync.DeltaRequest) (dirsync.UserPage, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.UserPage{}, err
	}
	if !p.sim.quiet && p.sim.rng.Intn(10) == 0 {
		// The tenant changes while its pages are read.
		p.sim.mutateTenant()
	}
	page, err := p.Source.UsersDelta(ctx, req)
	if p.sim.cfg.Trace {
		var ids []string
		for _, u := range page.Users {
			ids = append(ids, u.ID[33:]+u.Removed)
			if u.ID[33:] == p.sim.cfg.TraceUser {
				p.sim.trace("graph sends %s: %v cleared %v", u.ID, u.Attributes, u.Cleared)
			}
		}
		p.sim.trace("graph %q -> %v next=%q delta=%q err=%v (by %s)", req.Link, ids, page.NextLink, page.DeltaLink, err, workerOf(ctx).name)
	}
	return page, err
}

// The group reads are scheduling points like every other port call (a
// worker can be killed before one, or be interleaved with others there).
func (p *simSource) GroupsDelta(ctx context.Context, req dirsync.GroupDeltaRequest) (dirsync.GroupPage, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.GroupPage{}, err
	}
	page, err := p.Source.GroupsDelta(ctx, req)
	if p.sim.cfg.Trace {
		var g []string
		for _, sg := range page.Groups {
			g = append(g, fmt.Sprintf("%s%s+%d-%d+g%v-g%v", sg.ID[len(sg.ID)-2:], sg.Removed, len(sg.MembersAdded), len(sg.MembersRemoved), sg.GroupsAdded, sg.GroupsRemoved))
		}
		p.sim.trace("groups delta %q ids=%d -> %v next=%q delta=%q err=%v (by %s)", req.Link, len(req.GroupIDs), g, page.NextLink, page.DeltaLink, err, workerOf(ctx).name)
	}
	return page, err
}

func (p *simSource) GroupTransitiveMembers(ctx context.Context, groupID, link string) (dirsync.MemberPage, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.MemberPage{}, err
	}
	page, err := p.Source.GroupTransitiveMembers(ctx, groupID, link)
	if p.sim.cfg.Trace {
		p.sim.trace("transitive %s %q -> %d users %v groups next=%q err=%v (by %s)", groupID[len(groupID)-2:], link, len(page.UserIDs), page.GroupIDs, page.NextLink, err, workerOf(ctx).name)
	}
	return page, err
}

func (p *simSource) User(ctx context.Context, id string, sel []string) (dirsync.SourceUser, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.SourceUser{}, err
	}
	return p.Source.User(ctx, id, sel)
}

func (p *simSource) UserPhotos(ctx context.Context, ids []string) (map[string]dirsync.PhotoInfo, map[string]error, error) {
	if err := workerOf(ctx).point(); err != nil {
		return nil, nil, err
	}
	return p.Source.UserPhotos(ctx, ids)
}

func (p *simSource) UserPhotoData(ctx context.Context, id string, maxBytes int64) ([]byte, error) {
	if err := workerOf(ctx).point(); err != nil {
		return nil, err
	}
	return p.Source.UserPhotoData(ctx, id, maxBytes)
}

// simPhotos makes every photo store call a scheduling point.
type simPhotos struct{ *Photos }

func (p simPhotos) PutPhoto(ctx context.Context, userID, contentType string, r io.Reader, size int64) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	return p.Photos.PutPhoto(ctx, userID, contentType, r, size)
}

func (p simPhotos) DeletePhoto(ctx context.Context, userID string) error {
	if err := workerOf(ctx).point(); err != nil {
		return err
	}
	return p.Photos.DeletePhoto(ctx, userID)
}

func (p *simSource) Group(ctx context.Context, id string) (dirsync.SourceGroup, error) {
	if err := workerOf(ctx).point(); err != nil {
		return dirsync.SourceGroup{}, err
	}
	return p.Source.Group(ctx, id)
}
