package dirsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds the one read-modify-write helper and the typed mappers of
// the small rows in the state partition (lock, delta, stats, schedule, run
// counter). The rows with a life of their own have their mappers beside
// their type: userToEntity (user.go), runToEntity (run.go), claims
// (emails.go), deletions (deletions.go).

// Logical table names (the table adapter maps them to real tables).
const (
	TableUsers     = "users"
	TableEmails    = "emails"
	TableMembers   = "members"
	TableGroups    = "groups"
	TableRuns      = "runs"
	TablePages     = "pages"
	TableDeletions = "deletions"
	TableState     = "state"
	TableSettings  = "settings"
	TableAudit     = "audit"
)

// The state partition: every row in it can be written in one atomic batch,
// which is how finishing a run releases the lock and saves the delta token
// together, or not at all (finish.go).
const (
	statePartition = "sync"
	lockRowKey     = "lock"
	deltaRowKey    = "delta"
	seqRowKey      = "seq"
	statsRowKey    = "stats"
	scheduleRowKey = "schedule"
	// dirtyRowKey names the earliest run that applied changes and has not
	// been followed by a full run that succeeded (start.go, finish.go).
	dirtyRowKey = "dirty"
	// groupsRowKey holds the hash of the dynamic groups the directory's
	// memberships were last evaluated with (membership.go).
	groupsRowKey = "groups"
)

// maxWriteAttempts bounds every optimistic-concurrency loop.
const maxWriteAttempts = 10

// errSkipWrite, returned by a modify change function, writes nothing; modify
// then returns the row as read and nil.
var errSkipWrite = errors.New("no write needed")

// modify is the one read-modify-write loop of the engine. It reads the row
// (exists is false when there is none; ent then has only its keys), lets
// change edit ent.Props, and writes it back conditionally: insert-if-absent
// for a new row, replace on the ETag it read otherwise. A lost race re-reads
// and calls change again, up to maxWriteAttempts times.
//
// Errors: whatever change returns (errSkipWrite excepted), the store's
// errors wrapped with the row, and EUNAVAILABLE when every attempt lost a
// race.
func (e *Engine) modify(ctx context.Context, table, pk, rk string, change func(ent *Entity, exists bool) error) (Entity, error) {
	for range maxWriteAttempts {
		ent, err := e.Store.Get(ctx, table, pk, rk)
		exists := err == nil
		if err != nil && !IsCode(err, ENOTFOUND) {
			return Entity{}, fmt.Errorf("read %s/%s: %w", table, rk, err)
		}
		if !exists {
			ent = Entity{PartitionKey: pk, RowKey: rk, Props: map[string]any{}}
		}
		if err := change(&ent, exists); err != nil {
			if errors.Is(err, errSkipWrite) {
				return ent, nil
			}
			return ent, err
		}
		if exists {
			ent.ETag, err = e.Store.Replace(ctx, table, ent)
		} else {
			ent.ETag, err = e.Store.Insert(ctx, table, ent)
		}
		if err == nil {
			return ent, nil
		}
		if !IsCode(err, ECONFLICT) && !IsCode(err, EPRECONDITION) && !IsCode(err, ENOTFOUND) {
			return Entity{}, fmt.Errorf("write %s/%s: %w", table, rk, err)
		}
	}
	return Entity{}, Errorf(EUNAVAILABLE, "%s/%s: too many concurrent updates; try again", table, rk)
}

// lockState is the single-run lock: the run holding it, whether that run is
// running or blocked, and when it last showed progress.
type lockState struct {
	RunID     string
	Status    RunStatus
	Heartbeat time.Time
	ETag      string
}

func lockFromEntity(e Entity) lockState {
	return lockState{RunID: e.Str("runId"), Status: RunStatus(e.Str("status")), Heartbeat: e.Time("heartbeat"), ETag: e.ETag}
}

func (l lockState) entity() Entity {
	return Entity{PartitionKey: statePartition, RowKey: lockRowKey, ETag: l.ETag,
		Props: map[string]any{"runId": l.RunID, "status": string(l.Status), "heartbeat": l.Heartbeat.UTC()}}
}

// DeltaState is the saved position of incremental sync.
type DeltaState struct {
	Link      string    `json:"-"`
	IssuedAt  time.Time `json:"issuedAt"`
	ShapeHash string    `json:"-"`
	RunID     string    `json:"runId"`
	// RuleProps are the attributes rules read that the rows hold as of this
	// position: a run whose rules read another one must be full.
	RuleProps []string `json:"-"`
}

func deltaFromEntity(e Entity) DeltaState {
	return DeltaState{Link: e.Str("link"), IssuedAt: e.Time("issuedAt"), ShapeHash: e.Str("shapeHash"), RunID: e.Str("runId"),
		RuleProps: splitList(e.Str("ruleProps"))}
}

func (d DeltaState) entity() Entity {
	return Entity{PartitionKey: statePartition, RowKey: deltaRowKey,
		Props: map[string]any{"link": d.Link, "issuedAt": d.IssuedAt.UTC(), "shapeHash": d.ShapeHash, "runId": d.RunID, "ruleProps": strings.Join(d.RuleProps, ",")}}
}

// directoryStats is the directory counted by status at the end of a run:
// what the status page shows and the percentage threshold of delta runs is
// taken of.
type directoryStats struct {
	RunID    string
	ByStatus map[string]int64
}

func (s directoryStats) Users() int64 {
	var n int64
	for _, v := range s.ByStatus {
		n += v
	}
	return n
}

func statsFromEntity(e Entity) directoryStats {
	s := directoryStats{RunID: e.Str("runId"), ByStatus: map[string]int64{}}
	for k := range e.Props {
		if st, ok := strings.CutPrefix(k, "n_"); ok {
			s.ByStatus[st] = e.Int(k)
		}
	}
	return s
}

func (s directoryStats) entity() Entity {
	p := map[string]any{"runId": s.RunID, "users": s.Users()}
	for st, n := range s.ByStatus {
		p["n_"+st] = n
	}
	return Entity{PartitionKey: statePartition, RowKey: statsRowKey, Props: p}
}

// maxPropChars is what one string property may hold: Azure allows 64 KiB,
// counted in UTF-16; staying at 30,000 characters leaves room for any mix.
const maxPropChars = 30000

// putChunked stores s under name, name1, name2, ... so a document larger
// than one property (a settings document with a long scope, an audit entry
// with before and after) is never cut or dropped.
func putChunked(props map[string]any, name, s string) {
	r := []rune(s)
	for i := 0; len(r) > 0 || i == 0; i++ {
		n := min(len(r), maxPropChars)
		key := name
		if i > 0 {
			key = fmt.Sprintf("%s%d", name, i)
		}
		props[key] = string(r[:n])
		r = r[n:]
	}
}

// getChunked reads what putChunked stored.
func getChunked(e Entity, name string) string {
	var b strings.Builder
	b.WriteString(e.Str(name))
	for i := 1; ; i++ {
		part, ok := e.Props[fmt.Sprintf("%s%d", name, i)].(string)
		if !ok {
			return b.String()
		}
		b.WriteString(part)
	}
}
