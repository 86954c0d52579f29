package dirsync

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// RunStatus is where a run stands. The values are part of the API.
type RunStatus string

// Run statuses.
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunBlocked   RunStatus = "blocked" // deletions wait for an admin's approval
	RunCancelled RunStatus = "cancelled"
	// RunPreviewed is a preview run that finished: its counters and log say
	// what a sync would do; nothing was changed.
	RunPreviewed RunStatus = "previewed"
)

// RunStatuses lists every status, for validating filters.
var RunStatuses = []RunStatus{RunRunning, RunSucceeded, RunFailed, RunBlocked, RunCancelled, RunPreviewed}

// Run modes.
const (
	ModeFull  = "full"  // enumerate every user, then sweep those not seen
	ModeDelta = "delta" // only changes since the stored delta token
)

// Run phases, in order.
const (
	PhaseEnumerating = "enumerating"
	PhaseSweeping    = "sweeping"
	PhaseEvaluating  = "evaluating" // dynamic groups changed: every user's memberships are evaluated again
	PhaseDeciding    = "deciding"
	PhaseDeleting    = "deleting"
	PhaseCounting    = "counting"
	PhaseFinishing   = "finishing"
	PhaseDone        = "done"
)

// Triggers.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerReset    = "reset"
	TriggerPreview  = "preview"
	// TriggerSettings is the full run a scope change starts.
	TriggerSettings = "settings"
	// TriggerGroups is a run started because an admin created, changed or
	// deleted a group, so that membership is evaluated soon.
	TriggerGroups = "groups"
)

// Counters are a run's totals. They are summed from per-page records that are
// written exactly once, so they stay exact under redelivery.
type Counters struct {
	Seen      int64 `json:"seen"`
	Added     int64 `json:"added"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Deleted   int64 `json:"deleted"`
	Duplicate int64 `json:"duplicate"`
	Skipped   int64 `json:"skipped"`
	Failed    int64 `json:"failed"`
	// OutOfScope counts users Graph returned that the scope excludes.
	OutOfScope int64 `json:"outOfScope"`
	// MembersAdded and MembersRemoved count group membership changes.
	MembersAdded   int64 `json:"membersAdded"`
	MembersRemoved int64 `json:"membersRemoved"`
	// SkippedBy counts skipped users per missing required field.
	SkippedBy map[string]int64 `json:"skippedBy,omitempty"`
	// Photo sync (photos.go): users whose photo metadata was checked,
	// photos downloaded and stored, removed (gone in Entra), and skipped
	// (over photoMaxBytes); PhotoRequests counts the Graph HTTP requests the
	// photo phase sent ($batch posts and downloads), PhotoUnits the
	// resource units they cost (each request inside a $batch is one).
	PhotosChecked int64 `json:"photosChecked,omitempty"`
	PhotosFetched int64 `json:"photosFetched,omitempty"`
	PhotosRemoved int64 `json:"photosRemoved,omitempty"`
	PhotosSkipped int64 `json:"photosSkipped,omitempty"`
	PhotoRequests int64 `json:"photoRequests,omitempty"`
	PhotoUnits    int64 `json:"photoUnits,omitempty"`
}

func (c *Counters) add(o Counters) {
	c.Seen += o.Seen
	c.Added += o.Added
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deleted += o.Deleted
	c.Duplicate += o.Duplicate
	c.Skipped += o.Skipped
	c.Failed += o.Failed
	c.OutOfScope += o.OutOfScope
	c.MembersAdded += o.MembersAdded
	c.MembersRemoved += o.MembersRemoved
	c.PhotosChecked += o.PhotosChecked
	c.PhotosFetched += o.PhotosFetched
	c.PhotosRemoved += o.PhotosRemoved
	c.PhotosSkipped += o.PhotosSkipped
	c.PhotoRequests += o.PhotoRequests
	c.PhotoUnits += o.PhotoUnits
	for k, v := range o.SkippedBy {
		if c.SkippedBy == nil {
			c.SkippedBy = map[string]int64{}
		}
		c.SkippedBy[k] += v
	}
}

func (c *Counters) skippedBy(field string, n int64) {
	if c.SkippedBy == nil {
		c.SkippedBy = map[string]int64{}
	}
	c.SkippedBy[field] += n
	if c.SkippedBy[field] == 0 {
		delete(c.SkippedBy, field)
	}
}

func (c Counters) props(p map[string]any) {
	p["c_seen"], p["c_added"], p["c_updated"], p["c_unchanged"] = c.Seen, c.Added, c.Updated, c.Unchanged
	p["c_deleted"], p["c_duplicate"], p["c_skipped"], p["c_failed"] = c.Deleted, c.Duplicate, c.Skipped, c.Failed
	p["c_outOfScope"], p["c_joined"], p["c_left"] = c.OutOfScope, c.MembersAdded, c.MembersRemoved
	for k, v := range map[string]int64{"c_ph_checked": c.PhotosChecked, "c_ph_fetched": c.PhotosFetched, "c_ph_removed": c.PhotosRemoved,
		"c_ph_skipped": c.PhotosSkipped, "c_ph_requests": c.PhotoRequests, "c_ph_units": c.PhotoUnits} {
		if v != 0 {
			p[k] = v // only when photos ran: most records never carry them
		}
	}
	for k, v := range c.SkippedBy {
		p["s_"+k] = v
	}
}

func countersFrom(e Entity) Counters {
	c := Counters{
		Seen: e.Int("c_seen"), Added: e.Int("c_added"), Updated: e.Int("c_updated"), Unchanged: e.Int("c_unchanged"),
		Deleted: e.Int("c_deleted"), Duplicate: e.Int("c_duplicate"), Skipped: e.Int("c_skipped"), Failed: e.Int("c_failed"),
		OutOfScope: e.Int("c_outOfScope"), MembersAdded: e.Int("c_joined"), MembersRemoved: e.Int("c_left"),
		PhotosChecked: e.Int("c_ph_checked"), PhotosFetched: e.Int("c_ph_fetched"), PhotosRemoved: e.Int("c_ph_removed"),
		PhotosSkipped: e.Int("c_ph_skipped"), PhotoRequests: e.Int("c_ph_requests"), PhotoUnits: e.Int("c_ph_units"),
	}
	for k := range e.Props {
		if strings.HasPrefix(k, "s_") {
			if c.SkippedBy == nil {
				c.SkippedBy = map[string]int64{}
			}
			c.SkippedBy[k[2:]] = e.Int(k)
		}
	}
	return c
}

// Run is one sync run.
type Run struct {
	ID          string     `json:"id"`
	Seq         int64      `json:"seq"`
	Trigger     string     `json:"trigger"`
	Mode        string     `json:"mode"`
	Status      RunStatus  `json:"status"`
	Phase       string     `json:"phase"`
	RequestedBy string     `json:"requestedBy,omitempty"`
	StartedAt   time.Time  `json:"startedAt"`
	FinishedAt  *time.Time `json:"finishedAt,omitempty"`
	Heartbeat   time.Time  `json:"heartbeat"`
	Counters    Counters   `json:"counters"`
	// PagesDone is the number of Graph pages applied so far; LastPage is the
	// sequence number of the round's last page once its deltaLink is known
	// (-1 before).
	PagesDone int64 `json:"pagesDone"`
	LastPage  int64 `json:"lastPage"`
	// Restarts counts restarts to a full enumeration after Graph rejected
	// the sync position; it is the run's current epoch. Every work item
	// carries the epoch it was made in, and an item of an earlier epoch is
	// superseded: it may not change anything (see "Generations" in
	// docs/architecture.md).
	Restarts int64 `json:"restarts,omitempty"`
	// FullFrom is the first epoch of the full enumeration the sweep relies
	// on (0 for a run that started full; the restart's epoch otherwise).
	FullFrom int64 `json:"-"`
	// PendingDeletions is the number of deletions waiting (blocked runs).
	PendingDeletions int64  `json:"pendingDeletions,omitempty"`
	Error            string `json:"error,omitempty"`
	// ErrorCode classifies a failure (e.g. "forbidden": a Graph permission
	// is missing; "unauthorized": credentials rejected).
	ErrorCode Code   `json:"errorCode,omitempty"`
	Hint      string `json:"hint,omitempty"`
	LogName   string `json:"logName"`
	ShapeHash string `json:"-"`
	DeltaLink string `json:"-"`
	// GroupsHash identifies the dynamic groups the run snapshotted;
	// Evaluate is set when they differ from those the directory's
	// memberships were last evaluated with (every user is then evaluated
	// again, evaluate.go).
	GroupsHash string `json:"-"`
	Evaluate   bool   `json:"-"`
	// RuleProps are the attributes the run's rules read (saved with its
	// delta position).
	RuleProps []string `json:"-"`
	// Scope (scope.go): ScopeGen is the generation of the scope rows the
	// run reads (its own Seq when it rebuilt them); ScopeLink the groups
	// delta link it ends with; ScopeChanged whether its groups delta round
	// saw a change; ScopeRound counts groups delta rounds within the run;
	// ScopeTracked the groups the round follows (selected and nested).
	ScopeGen     int64    `json:"-"`
	ScopeLink    string   `json:"-"`
	ScopeChanged bool     `json:"-"`
	ScopeRound   int64    `json:"-"`
	ScopeTracked []string `json:"-"`
	// ScopeGrew: reading members found nested groups the round did not follow.
	ScopeGrew bool `json:"-"`
	// ScopeDone: the scope steps ended and the users are being read (with
	// the scope rows of ScopeGen). No scope round may start after that:
	// the users pages would read a generation still being written.
	ScopeDone bool `json:"-"`
	// ScopeCheck is where a rebuild's check stands (scope.go, "Reading the
	// members twice"): scopeReading, scopeConfirming, scopeRereading.
	// ScopeUnconfirmed: the members kept changing; the run uses them as
	// read and saves no groups delta link, so the next run reads them again.
	ScopeCheck       int64 `json:"-"`
	ScopeUnconfirmed bool  `json:"-"`
	// Preview runs compute every change without making it (preview.go).
	Preview bool `json:"preview,omitempty"`
	// OnDemandStamp is the stamp an on-demand run writes (ondemand.go).
	OnDemandStamp int64 `json:"-"`
	// Fresh: the run started full on an empty directory (directoryEmpty),
	// so its first epoch's pages insert their users without reading them
	// first (applyPage).
	Fresh bool `json:"-"`
	// WaiterPass is the count step's decision on the waiter pass
	// (waiterpass.go): "" before it, "skip", or made ("absent", "etag:...").
	WaiterPass string `json:"-"`
	ETag       string `json:"-"`
}

// Finished reports whether the run reached an end state.
func (r Run) Finished() bool {
	return r.Status == RunSucceeded || r.Status == RunFailed || r.Status == RunCancelled || r.Status == RunPreviewed
}

var runIDRE = regexp.MustCompile(`^(\d{8}-\d{6})-([0-9a-f]{6})$`)

// newRunID returns an id like "20261123-112233-a1b2c3": sortable, readable,
// and safe in keys, URLs and blob names.
func (e *Engine) newRunID(now time.Time) string {
	var b [3]byte
	if e.Random != nil {
		e.Random(b[:])
	} else {
		rand.Read(b[:])
	}
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// ValidRunID reports whether id has the form of a run id.
func ValidRunID(id string) bool { return runIDRE.MatchString(id) }

// runRowKey orders runs newest first: the inverted start second, then the id.
func runRowKey(id string) (string, error) {
	m := runIDRE.FindStringSubmatch(id)
	if m == nil {
		return "", Errorf(EINVALID, "%q is not a run id (runs look like 20261123-112233-a1b2c3)", id)
	}
	t, err := time.Parse("20060102-150405", m[1])
	if err != nil {
		return "", Errorf(EINVALID, "%q is not a run id: %v", id, err)
	}
	return fmt.Sprintf("%012d-%s", 999999999999-t.Unix(), id), nil
}

// logName returns the blob name of a run's log: yyyy/mm/dd/<run id>.jsonl.
func logName(id string, started time.Time) string {
	return started.UTC().Format("2006/01/02/") + id + ".jsonl"
}

const runsPartition = "runs"

func runToEntity(r Run) (Entity, error) {
	rk, err := runRowKey(r.ID)
	if err != nil {
		return Entity{}, err
	}
	p := map[string]any{
		"id": r.ID, "seq": r.Seq, "trigger": r.Trigger, "mode": r.Mode, "status": string(r.Status), "phase": r.Phase,
		"startedAt": r.StartedAt.UTC(), "heartbeat": r.Heartbeat.UTC(), "pagesDone": r.PagesDone,
		"lastPage": r.LastPage, "fullFrom": r.FullFrom, "restarts": r.Restarts, "pendingDeletions": r.PendingDeletions,
		"logName": r.LogName, "shapeHash": r.ShapeHash,
		"groupsHash": r.GroupsHash, "evaluate": r.Evaluate, "scopeGen": r.ScopeGen, "scopeChanged": r.ScopeChanged, "scopeRound": r.ScopeRound,
		"scopeGrew": r.ScopeGrew, "ruleProps": strings.Join(r.RuleProps, ","), "preview": r.Preview, "onDemandStamp": r.OnDemandStamp,
		"fresh": r.Fresh, "scopeDone": r.ScopeDone, "scopeCheck": r.ScopeCheck, "scopeUnconfirmed": r.ScopeUnconfirmed,
	}
	if r.WaiterPass != "" {
		p["waiterPass"] = r.WaiterPass
	}
	if r.ScopeLink != "" {
		putChunked(p, "scopeLink", r.ScopeLink)
	}
	if len(r.ScopeTracked) > 0 {
		putChunked(p, "scopeTracked", strings.Join(r.ScopeTracked, ","))
	}
	for k, v := range map[string]string{"requestedBy": r.RequestedBy, "error": r.Error, "errorCode": string(r.ErrorCode), "hint": r.Hint, "deltaLink": r.DeltaLink} {
		if v != "" {
			p[k] = v
		}
	}
	if r.FinishedAt != nil {
		p["finishedAt"] = r.FinishedAt.UTC()
	}
	r.Counters.props(p)
	return Entity{PartitionKey: runsPartition, RowKey: rk, ETag: r.ETag, Props: p}, nil
}

func runFromEntity(e Entity) Run {
	r := Run{
		ID: e.Str("id"), Seq: e.Int("seq"), Trigger: e.Str("trigger"), Mode: e.Str("mode"), Status: RunStatus(e.Str("status")),
		Phase: e.Str("phase"), RequestedBy: e.Str("requestedBy"), StartedAt: e.Time("startedAt"),
		Heartbeat: e.Time("heartbeat"), PagesDone: e.Int("pagesDone"), LastPage: e.Int("lastPage"),
		FullFrom: e.Int("fullFrom"), Restarts: e.Int("restarts"), PendingDeletions: e.Int("pendingDeletions"),
		Error: e.Str("error"), ErrorCode: Code(e.Str("errorCode")), Hint: e.Str("hint"), LogName: e.Str("logName"), ShapeHash: e.Str("shapeHash"),
		DeltaLink: e.Str("deltaLink"), ETag: e.ETag, Counters: countersFrom(e),
		GroupsHash: e.Str("groupsHash"), Evaluate: e.Bool("evaluate"), ScopeGen: e.Int("scopeGen"), ScopeChanged: e.Bool("scopeChanged"),
		ScopeRound: e.Int("scopeRound"), ScopeLink: getChunked(e, "scopeLink"), ScopeGrew: e.Bool("scopeGrew"),
		RuleProps: splitList(e.Str("ruleProps")), Preview: e.Bool("preview"), OnDemandStamp: e.Int("onDemandStamp"),
		Fresh: e.Bool("fresh"), ScopeDone: e.Bool("scopeDone"), WaiterPass: e.Str("waiterPass"),
		ScopeCheck: e.Int("scopeCheck"), ScopeUnconfirmed: e.Bool("scopeUnconfirmed"),
	}
	if t := getChunked(e, "scopeTracked"); t != "" {
		r.ScopeTracked = strings.Split(t, ",")
	}
	if t := e.Time("finishedAt"); !t.IsZero() {
		r.FinishedAt = &t
	}
	return r
}

// pageRowKey keys a page's record by epoch and sequence number, so a page of
// a restarted enumeration never mistakes an earlier epoch's page for itself.
func pageRowKey(epoch, seq int64) string { return fmt.Sprintf("%03d-%09d", epoch, seq) }

// epochPrefix selects the page records of one epoch.
func epochPrefix(epoch int64) string { return fmt.Sprintf("%03d-", epoch) }

// pageStamp is what a page writes on the user rows it applies: epoch-major,
// so every page of a later epoch is newer than every page of an earlier one.
func pageStamp(epoch, seq int64) int64 { return epoch<<32 | seq }

// stampEpoch is the epoch a stamp was written in.
func stampEpoch(stamp int64) int64 { return stamp >> 32 }
