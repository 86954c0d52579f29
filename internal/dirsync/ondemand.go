package dirsync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Provision on demand: one user, now, with every step shown (Entra
// provisioning's "provision on demand"). It runs the page path of the engine
// on a single user, as a run of its own (trigger on-demand) with its own
// log, without the single-run lock: it may run beside a sync.
//
// Which write wins beside a sync is decided by the stamps, as between any
// two writers: the on-demand write carries the sequence number of the
// latest run and a stamp that orders it *before* every page of that run
// while the run is going (its pages read Graph as part of the delta round
// whose token they save, so they must win) and *after* every write of it
// once it ended; the next run's pages win over it in any case. It never
// deletes: a user deleted in Entra or out of scope is reported, and
// removing it stays with runs and their threshold.

// TriggerOnDemand marks the runs of ProvisionUser.
const TriggerOnDemand = "on-demand"

// onDemandStamp bases: after every stamp of a finished run (pages, evaluate,
// sweep, deletions), or before every page of a running one.
const (
	onDemandAfter  = int64(1) << 42
	onDemandBefore = -(int64(1) << 42)
)

// On-demand rate limit (Entra allows a few per 10 seconds).
const (
	onDemandLimit  = 5
	onDemandWindow = 10 * time.Second
	onDemandRowKey = "onDemand"
)

// OnDemandStep is one step of an on-demand provisioning, as Entra's view
// shows them.
type OnDemandStep struct {
	// Step is found, scope, match, changes, outcome or groups.
	Step    string        `json:"step"`
	Status  string        `json:"status"` // ok, skipped, warning, error
	Message string        `json:"message"`
	Changes []FieldChange `json:"changes,omitempty"`
	Groups  []string      `json:"groups,omitempty"`
}

// OnDemandResult is what ProvisionUser did.
type OnDemandResult struct {
	Run    Run            `json:"run"`
	UserID string         `json:"userId,omitempty"`
	Steps  []OnDemandStep `json:"steps"`
	// Outcome is added, updated, unchanged, duplicate, skipped,
	// outOfScope or notFound.
	Outcome string `json:"outcome"`
}

// ProvisionUser syncs one user (object id or userPrincipalName) now.
//
// Errors: EINVALID for a key that is neither; ETHROTTLED (RetryAfter set)
// beyond the rate limit; ECONFLICT while sync is disabled; Graph errors as
// Source returns them (EFORBIDDEN names the missing permission); store
// errors. A user missing in Entra is not an error: the result says so.
func (e *Engine) ProvisionUser(ctx context.Context, key, who string) (OnDemandResult, error) {
	key = strings.TrimSpace(key)
	if !validObjectID(key) && !upnRE.MatchString(key) {
		return OnDemandResult{}, Errorf(EINVALID, "%q is neither a user object id (a GUID) nor a userPrincipalName (name@domain)", truncate(key, 100))
	}
	settings, _, err := e.Settings(ctx)
	if err != nil {
		return OnDemandResult{}, err
	}
	if !settings.Enabled {
		return OnDemandResult{}, errDisabled()
	}
	if err := e.onDemandAllowed(ctx); err != nil {
		return OnDemandResult{}, err
	}
	run, err := e.startOnDemand(ctx, settings, who)
	if err != nil {
		return OnDemandResult{}, err
	}
	// Not a work item: nothing would deliver it again after a crash, so the
	// waiter pass is due before it writes, and again after (a pass that
	// ran meanwhile may have looked before its writes).
	if err := e.markWaiterPassDue(ctx, "provisioning on demand ("+run.ID+")"); err != nil {
		e.failRun(ctx, run.ID, ErrorCode(err), "Provisioning on demand failed: "+ErrorMessage(err), ErrorHint(err))
		return OnDemandResult{}, err
	}
	res, err := e.provision(ctx, run, settings, key)
	if merr := e.markWaiterPassDue(ctx, "provisioning on demand ("+run.ID+")"); merr != nil {
		// The mark before stands; only a pass running at this very moment
		// could have cleared it, and the daily pass covers that.
		e.log().WarnContext(ctx, "the waiter pass could not be marked due after provisioning on demand", "run", run.ID, "err", merr)
	}
	if err != nil {
		e.failRun(ctx, run.ID, ErrorCode(err), "Provisioning on demand failed: "+ErrorMessage(err), ErrorHint(err))
		return OnDemandResult{}, err
	}
	return res, nil
}

// onDemandAllowed applies the rate limit, across instances (a state row of
// the recent calls' times, written conditionally).
func (e *Engine) onDemandAllowed(ctx context.Context) error {
	now := e.now()
	var wait time.Duration
	_, err := e.modify(ctx, TableState, statePartition, onDemandRowKey, func(ent *Entity, _ bool) error {
		wait = 0
		var recent []string
		for _, t := range splitList(ent.Str("times")) {
			if at, err := time.Parse(time.RFC3339Nano, t); err == nil && now.Sub(at) < onDemandWindow {
				recent = append(recent, t)
			}
		}
		if len(recent) >= onDemandLimit {
			first, _ := time.Parse(time.RFC3339Nano, recent[0])
			wait = onDemandWindow - now.Sub(first)
			return errSkipWrite
		}
		ent.Props = map[string]any{"times": strings.Join(append(recent, now.Format(time.RFC3339Nano)), ",")}
		return nil
	})
	if err != nil {
		return err
	}
	if wait > 0 {
		return &Error{Code: ETHROTTLED, RetryAfter: wait,
			Message: fmt.Sprintf("at most %d users can be provisioned on demand per %s", onDemandLimit, onDemandWindow),
			Hint:    fmt.Sprintf("Try again in %s; to sync many users, start a sync (POST /api/sync).", wait.Round(time.Second))}
	}
	return nil
}

// startOnDemand writes the on-demand run's row and log.
func (e *Engine) startOnDemand(ctx context.Context, s Settings, who string) (Run, error) {
	seqEnt, err := e.Store.Get(ctx, TableState, statePartition, seqRowKey)
	if err != nil && !IsCode(err, ENOTFOUND) {
		return Run{}, fmt.Errorf("provision on demand: %w", err)
	}
	latest := seqEnt.Int("next")
	now := e.now()
	stamp := onDemandAfter + now.UnixMilli()
	if active, err := e.ActiveRun(ctx); err != nil {
		return Run{}, err
	} else if active != nil && readingUsers(active.Phase) {
		// A run holds the lock and reads users: its pages must win. Once
		// its pages are applied (deciding, deleting, ...), this write
		// orders after them, so a deletion the run decided before finds
		// the user written since, and keeps it.
		stamp = onDemandBefore + now.UnixMilli()
		// Its own number, not the latest: a start paused after taking the
		// lock and then replaced as stalled still takes a number when it
		// resumes, so the latest can be above the running run's (found by
		// the simulator). A run that has only just started has no row yet
		// and no known number: this write is then ordered before every run.
		latest = active.Seq
	}
	groups, err := e.dynamicGroups(ctx)
	if err != nil {
		return Run{}, err
	}
	id := e.newRunID(now)
	run := Run{ID: id, Seq: latest, Trigger: TriggerOnDemand, Mode: ModeFull, Status: RunRunning, Phase: PhaseEnumerating,
		RequestedBy: who, StartedAt: now, Heartbeat: now, LastPage: 0, LogName: logName(id, now), ShapeHash: s.ShapeHash(),
		GroupsHash: groupsHash(groups), RuleProps: ruleProperties(s, groups), OnDemandStamp: stamp}
	if len(s.GroupScope) > 0 {
		st, err := e.scopeState(ctx, s)
		if err != nil {
			return Run{}, err
		}
		run.ScopeGen = st.Gen
	}
	if err := e.snapshotGroups(ctx, id, groups); err != nil {
		return Run{}, err
	}
	ent, err := runToEntity(run)
	if err != nil {
		return Run{}, err
	}
	settingsJSON, _ := json.Marshal(s)
	putChunked(ent.Props, "settings", string(settingsJSON))
	if _, err := e.Store.Insert(ctx, TableRuns, ent); err != nil {
		return Run{}, fmt.Errorf("provision on demand: create run: %w", err)
	}
	if err := e.Logs.CreateLog(ctx, run.LogName); err != nil {
		e.failRun(ctx, id, ErrorCode(err), "The run log could not be created.", "Check that Blob Storage is reachable (GET /api/health).")
		return Run{}, fmt.Errorf("provision on demand: create log: %w", err)
	}
	return run, nil
}

func (e *Engine) provision(ctx context.Context, run Run, s Settings, key string) (OnDemandResult, error) {
	res := OnDemandResult{}
	lb := e.newLog(run, nil)
	rg, err := e.runGroups(ctx, run, s)
	if err != nil {
		return res, err
	}
	su, err := e.Source.User(ctx, key, rg.selectAttrs)
	if IsCode(err, ENOTFOUND) {
		res.Outcome = "notFound"
		step := OnDemandStep{Step: "found", Status: "error", Message: fmt.Sprintf("no user %s exists in Entra (never created, or deleted)", key)}
		if validObjectID(key) {
			if row, err := e.Store.Get(ctx, TableUsers, Bucket(key), key); err == nil {
				res.UserID = key
				step.Message += fmt.Sprintf("; the directory still holds it (%s): the next sync removes it, through the deletion threshold", row.Str("status"))
			}
		}
		res.Steps = append(res.Steps, step)
		lb.add(LogEvent{Event: EvOnDemand, Level: LevelWarn, Reason: step.Message})
		e.flushLog(ctx, run, lb)
		return e.endOnDemand(ctx, run, res, Counters{})
	}
	if err != nil {
		return res, fmt.Errorf("read user %s from Entra: %w", key, err)
	}
	res.UserID = su.ID
	res.Steps = append(res.Steps, OnDemandStep{Step: "found", Status: "ok", Message: fmt.Sprintf("found in Entra: %s (%s)", su.ID, s.logUPN(su.Attributes["userPrincipalName"]))})
	lb.add(LogEvent{Event: EvOnDemand, UserID: su.ID, UPN: s.logUPN(su.Attributes["userPrincipalName"]), Message: "provisioning on demand"})
	e.flushLog(ctx, run, lb)

	before, err := e.Store.Get(ctx, TableUsers, Bucket(su.ID), su.ID)
	had := err == nil
	if err != nil && !IsCode(err, ENOTFOUND) {
		return res, err
	}
	w := WorkItem{Kind: WorkPage, RunID: run.ID}
	if err := e.applyPage(ctx, run, s, w, []SourceUser{su}, nil); err != nil {
		return res, err
	}
	rec, err := e.Store.Get(ctx, TablePages, run.ID, pageRowKey(0, 0))
	if err != nil {
		return res, fmt.Errorf("read the on-demand result: %w", err)
	}
	c := countersFrom(rec)
	events, err := e.runEvents(ctx, run)
	if err != nil {
		return res, err
	}
	res.Steps = append(res.Steps, onDemandSteps(s, su.ID, had, before, c, events)...)
	switch {
	case c.OutOfScope > 0:
		res.Outcome = "outOfScope"
	case c.Added > 0:
		res.Outcome = "added"
	case c.Updated > 0:
		res.Outcome = "updated"
	case c.Duplicate > 0:
		res.Outcome = "duplicate"
	case c.Skipped > 0:
		res.Outcome = "skipped"
	default:
		res.Outcome = "unchanged"
	}
	return e.endOnDemand(ctx, run, res, c)
}

// onDemandSteps turns the run's log lines into Entra's steps.
func onDemandSteps(s Settings, id string, had bool, before Entity, c Counters, events []LogEvent) []OnDemandStep {
	var steps []OnDemandStep
	scope := OnDemandStep{Step: "scope", Status: "ok", Message: "in the sync scope"}
	if len(s.GroupScope) == 0 && len(s.UserScope) == 0 && s.ScopeRule == "" {
		scope.Message = "in the sync scope (no scope is set: every user is synced)"
	}
	match := OnDemandStep{Step: "match", Status: "ok", Message: "not in the directory yet: a new row"}
	if had {
		match.Message = fmt.Sprintf("matched directory row %s (%s)", id, before.Str("status"))
	}
	outcome := OnDemandStep{Step: "outcome", Status: "ok", Message: "nothing changed: the directory already holds what Entra holds"}
	var joined, left []string
	var changes []FieldChange
	for _, ev := range events {
		switch ev.Event {
		case EvOutOfScope:
			scope = OnDemandStep{Step: "scope", Status: "skipped", Message: "out of the sync scope: " + ev.Reason + "; the next sync removes it from the directory"}
		case EvAdded:
			outcome.Message = "added to the directory"
		case EvUpdated:
			outcome.Message = "updated"
			changes = append(changes, ev.Changes...)
		case EvDuplicate:
			outcome = OnDemandStep{Step: "outcome", Status: "warning", Message: "not synced: duplicate: " + ev.Reason}
		case EvSkipped:
			outcome = OnDemandStep{Step: "outcome", Status: "skipped", Message: "not synced: " + ev.Reason}
		case EvMemberAdded:
			joined = append(joined, ev.Group)
		case EvMemberRemoved:
			left = append(left, ev.Group)
		}
	}
	if c.OutOfScope > 0 && !had {
		match.Message = "not in the directory, and not added (out of scope)"
	}
	steps = append(steps, scope, match)
	if len(changes) > 0 {
		steps = append(steps, OnDemandStep{Step: "changes", Status: "ok", Message: fmt.Sprintf("%d field(s) change", len(changes)), Changes: changes})
	}
	steps = append(steps, outcome)
	if len(joined) > 0 {
		steps = append(steps, OnDemandStep{Step: "groups", Status: "ok", Message: "joined groups", Groups: joined})
	}
	if len(left) > 0 {
		steps = append(steps, OnDemandStep{Step: "groups", Status: "ok", Message: "left groups", Groups: left})
	}
	if len(joined)+len(left) == 0 {
		steps = append(steps, OnDemandStep{Step: "groups", Status: "ok", Message: "no group membership changes"})
	}
	return steps
}

// runEvents reads a (small) run's log back.
func (e *Engine) runEvents(ctx context.Context, run Run) ([]LogEvent, error) {
	r, err := e.Logs.OpenLog(ctx, run.LogName)
	if err != nil {
		return nil, fmt.Errorf("read the on-demand log: %w", err)
	}
	defer r.Close()
	var out []LogEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev LogEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, sc.Err()
}

func (e *Engine) endOnDemand(ctx context.Context, run Run, res OnDemandResult, c Counters) (OnDemandResult, error) {
	now := e.now()
	done, err := e.updateRun(ctx, run.ID, func(r *Run) error {
		r.Status, r.Phase, r.FinishedAt, r.Counters, r.PagesDone = RunSucceeded, PhaseDone, &now, c, 1
		return nil
	})
	if err != nil {
		return res, err
	}
	lb := e.newLog(done, nil)
	lb.add(LogEvent{Event: EvRunFinished, Counters: &c, Message: "provisioning on demand finished: " + res.Outcome})
	e.flushLog(ctx, done, lb)
	res.Run = done
	return res, nil
}

// claimSeq is the run number an email claim records. A claim made earlier
// in the same run is honoured even before its owner's row is written
// (emails.go); an on-demand run shares the sequence number of the latest
// run for its stamps, so its claims carry the number negated: no run takes
// them for its own.
func (r Run) claimSeq() int64 {
	if r.Trigger == TriggerOnDemand {
		return -r.Seq
	}
	return r.Seq
}

// readingUsers reports whether a run in this phase may still apply pages.
func readingUsers(phase string) bool {
	switch phase {
	case PhaseDeciding, PhaseDeleting, PhaseCounting, PhaseFinishing, PhaseDone, PhasePhotos:
		return false
	}
	return true
}
