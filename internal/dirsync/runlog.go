package dirsync

import (
	"bytes"
	"encoding/json"
	"time"
)

// Log levels.
const (
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// LogEvent is one line of a run log (JSON Lines). Support engineers read
// these in Storage Explorer or download them as JSONL or CSV.
type LogEvent struct {
	Time   time.Time `json:"time"`
	Level  string    `json:"level"`
	Run    string    `json:"run"`
	Page   *int64    `json:"page,omitempty"`
	Event  string    `json:"event"`
	UserID string    `json:"userId,omitempty"`
	UPN    string    `json:"upn,omitempty"`
	// Group is the group a membership or scope line is about.
	Group   string        `json:"group,omitempty"`
	Changes []FieldChange `json:"changes,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Message string        `json:"message,omitempty"`
	// Counters appear on the run's summary line.
	Counters *Counters `json:"counters,omitempty"`
}

// Log events.
const (
	EvRunStarted        = "run_started"
	EvRunFinished       = "run_finished"
	EvRunFailed         = "run_failed"
	EvRunBlocked        = "run_blocked"
	EvRunCancelled      = "run_cancelled"
	EvPage              = "page"
	EvAdded             = "added"
	EvUpdated           = "updated"
	EvDeleted           = "deleted"
	EvDuplicate         = "duplicate"
	EvDuplicateResolved = "duplicate_resolved"
	EvSkipped           = "skipped"
	EvTruncated         = "value_truncated"
	EvFailed            = "failed"
	EvPendingDeletion   = "pending_deletion"
	EvDeletionKept      = "deletion_kept"
	EvTokenExpired      = "delta_token_expired"
	EvRoundRestarted    = "round_restarted"
	EvThrottled         = "throttled"
	EvSweep             = "sweep"
	EvApproved          = "deletions_approved"
	EvRejected          = "deletions_rejected"
	EvMemberAdded       = "member_added"
	EvMemberRemoved     = "member_removed"
	EvOutOfScope        = "out_of_scope"
	EvScope             = "scope"
	EvGroupRemoved      = "group_removed"
	EvRuleProblem       = "rule_problem"
	EvOnDemand          = "on_demand"
)

// logBuffer collects a work item's log lines so they are appended in one
// write.
type logBuffer struct {
	run  string
	now  func() time.Time
	page *int64
	buf  bytes.Buffer
}

func (l *logBuffer) add(ev LogEvent) {
	ev.Run = l.run
	if ev.Time.IsZero() {
		ev.Time = l.now().UTC()
	}
	if ev.Level == "" {
		ev.Level = LevelInfo
	}
	if ev.Page == nil {
		ev.Page = l.page
	}
	b, _ := json.Marshal(ev)
	l.buf.Write(b)
	l.buf.WriteByte('\n')
}
