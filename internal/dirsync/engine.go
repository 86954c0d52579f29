package dirsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Engine runs syncs. It is safe for concurrent use: every decision that two
// workers could race on is an ETag-conditional or insert-if-absent write.
//
// A run is a chain of work items (work.go), one file per step: start.go,
// page.go (with apply.go and emails.go), collect.go, sweep.go, decide.go,
// delete.go, count.go, finish.go. lock.go holds the single-run lock,
// admin.go what admins do to runs, status.go what they see.
type Engine struct {
	Store  Store
	Logs   LogStore
	Queue  Queue
	Source Source
	// Photos stores users' photos (photo sync, photos.go); nil turns photo
	// sync off whatever the settings say.
	Photos PhotoStore
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits (default time.Sleep); only a start waiting for a run that
	// is saving its delta token uses it.
	Sleep func(time.Duration)
	// Random fills b with random bytes for run ids (default crypto/rand);
	// the simulator makes it seeded, so a seed replays exactly.
	Random func(b []byte)
	// LockStaleAfter is how long a running run may go without showing
	// progress before it counts as stalled: a new start may then take its
	// lock, and the timer fails it (default 30 minutes: longer than the
	// longest Retry-After Graph sends and than a message's lock lifetime).
	LockStaleAfter time.Duration
	// WaitDelay is how long a collect item first waits before checking again
	// that every page was applied (default 250 ms; it doubles up to a minute).
	WaitDelay time.Duration
	// MaxDeliveries is the queue's max delivery count (default 10): on the
	// last delivery a failing item fails its run instead of retrying.
	MaxDeliveries int
	// Concurrency bounds parallel storage reads within one item (default 8).
	Concurrency int
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Engine) staleAfter() time.Duration {
	if e.LockStaleAfter > 0 {
		return e.LockStaleAfter
	}
	return 30 * time.Minute
}

func (e *Engine) waitDelay() time.Duration {
	if e.WaitDelay > 0 {
		return e.WaitDelay
	}
	// Short: collect is queued when the last page is fetched, and usually
	// waits only for the few pages still being applied; the wait doubles
	// with every check.
	return 250 * time.Millisecond
}

func (e *Engine) maxDeliveries() int {
	if e.MaxDeliveries > 0 {
		return e.MaxDeliveries
	}
	return 10
}

func (e *Engine) concurrency() int {
	if e.Concurrency > 0 {
		return e.Concurrency
	}
	return 8
}

func (e *Engine) settingsStore() *SettingsStore {
	return &SettingsStore{Store: e.Store, Now: e.now, Logger: e.log(), Random: e.Random}
}

// GetRun returns one run. Errors: EINVALID for a malformed id, ENOTFOUND.
func (e *Engine) GetRun(ctx context.Context, id string) (Run, error) {
	r, _, err := e.getRun(ctx, id)
	return r, err
}

// getRun returns the run and the settings snapshot it runs with.
func (e *Engine) getRun(ctx context.Context, id string) (Run, Settings, error) {
	rk, err := runRowKey(id)
	if err != nil {
		return Run{}, Settings{}, err
	}
	ent, err := e.Store.Get(ctx, TableRuns, runsPartition, rk)
	if IsCode(err, ENOTFOUND) {
		return Run{}, Settings{}, Errorf(ENOTFOUND, "run %s does not exist", id).WithHint("List runs with GET /api/runs.")
	}
	if err != nil {
		return Run{}, Settings{}, fmt.Errorf("get run %s: %w", id, err)
	}
	s := DefaultSettings()
	if js := getChunked(ent, "settings"); js != "" {
		if s, err = DecodeSettings([]byte(js)); err != nil {
			return Run{}, Settings{}, fmt.Errorf("get run %s: settings snapshot: %w", id, err)
		}
	}
	return runFromEntity(ent), s, nil
}

// updateRun applies change to the run row with a conditional write (modify),
// keeping the settings snapshot. change may return an error to abort.
func (e *Engine) updateRun(ctx context.Context, id string, change func(*Run) error) (Run, error) {
	rk, err := runRowKey(id)
	if err != nil {
		return Run{}, err
	}
	var r Run
	ent, err := e.modify(ctx, TableRuns, runsPartition, rk, func(ent *Entity, exists bool) error {
		if !exists {
			return Errorf(ENOTFOUND, "run %s does not exist", id)
		}
		r = runFromEntity(*ent)
		if err := change(&r); err != nil {
			return err
		}
		next, err := runToEntity(r)
		if err != nil {
			return err
		}
		for k, v := range ent.Props {
			if strings.HasPrefix(k, "settings") {
				next.Props[k] = v
			}
		}
		ent.Props = next.Props
		return nil
	})
	if err != nil {
		return r, err
	}
	r.ETag = ent.ETag
	return r, nil
}

// errSuperseded marks a work item whose run ended or restarted since the
// item was made: it is dropped without changing anything.
var errSuperseded = errors.New("work item superseded")

// advance is updateRun for work items: the change applies only while the
// item's generation is current (the run is running and in the item's
// epoch). Otherwise nothing is written and errSuperseded is returned. Every
// run-row write a work item makes goes through here: it is the fence that
// keeps a superseded item from moving the run on.
func (e *Engine) advance(ctx context.Context, w WorkItem, change func(*Run) error) (Run, error) {
	return e.updateRun(ctx, w.RunID, func(r *Run) error {
		if r.Status != RunRunning || r.Restarts != w.Epoch {
			return errSuperseded
		}
		return change(r)
	})
}

// endRun ends a run that did not succeed (failed or cancelled), recording
// the failure's code so the status page can tell a missing permission from
// a passing outage, and releases the lock if the run holds it. A run that
// already ended is left as it is (nil). A run that is finishing cannot be
// cancelled any more (ECONFLICT): its delta token is being saved.
func (e *Engine) endRun(ctx context.Context, id string, status RunStatus, code Code, message, hint string) error {
	now := e.now()
	run, err := e.updateRun(ctx, id, func(r *Run) error {
		if r.Finished() {
			return errAlreadyFinished
		}
		if status == RunCancelled && r.Phase == PhaseFinishing {
			return Errorf(ECONFLICT, "run %s is finishing and can no longer be cancelled", id).
				WithHint("Wait a moment: it ends by itself. Its changes are applied either way.")
		}
		r.Status, r.Phase, r.FinishedAt, r.ErrorCode = status, PhaseDone, &now, code
		if message != "" {
			r.Error, r.Hint = message, hint
		}
		return nil
	})
	if errors.Is(err, errAlreadyFinished) {
		return nil
	}
	if err != nil {
		return err
	}
	lb := e.newLog(run, nil)
	ev, lvl := EvRunFailed, LevelError
	if status == RunCancelled {
		ev, lvl = EvRunCancelled, LevelWarn
	}
	lb.add(LogEvent{Event: ev, Level: lvl, Reason: message, Message: hint})
	e.flushLog(ctx, run, lb)
	e.releaseLock(ctx, id)
	return nil
}

// failRun is endRun(failed) for paths that can only report a failure to
// record the failure.
func (e *Engine) failRun(ctx context.Context, id string, code Code, message, hint string) {
	if err := e.endRun(ctx, id, RunFailed, code, message, hint); err != nil {
		e.log().ErrorContext(ctx, "could not record a failed run", "run", id, "err", err)
	}
}

var errAlreadyFinished = errors.New("run already finished")

func (e *Engine) newLog(r Run, page *int64) *logBuffer {
	return &logBuffer{run: r.ID, now: e.now, page: page}
}

// flushLog appends buffered lines to the run log. A log failure must not fail
// the sync (the data is applied or about to be), so it is only reported.
func (e *Engine) flushLog(ctx context.Context, r Run, lb *logBuffer) {
	if lb.buf.Len() == 0 || r.LogName == "" {
		return
	}
	if err := e.Logs.AppendLog(ctx, r.LogName, lb.buf.Bytes()); err != nil {
		e.log().ErrorContext(ctx, "run log append failed", "run", r.ID, "err", err)
	}
	lb.buf.Reset()
}

func (e *Engine) send(ctx context.Context, w WorkItem, notBefore time.Time) error {
	m := w.message()
	m.NotBefore = notBefore
	if err := e.Queue.Send(ctx, m); err != nil {
		return fmt.Errorf("enqueue %s item of run %s: %w", w.Kind, w.RunID, err)
	}
	return nil
}

// scanPartition calls f for every row of one partition (or, with prefix,
// of its rows starting with it), a query page at a time. It is for
// partitions that are read whole (a run's pages, deletions, a user's
// groups); resumable scans of the directory keep their cursor in the work
// item instead.
func (e *Engine) scanPartition(ctx context.Context, table, pk string, f func(Entity)) error {
	return e.scanPrefix(ctx, table, pk, "", f)
}

func (e *Engine) scanPrefix(ctx context.Context, table, pk, prefix string, f func(Entity)) error {
	q := Query{PartitionKey: pk, RowKeyPrefix: prefix}
	for {
		page, err := e.Store.Query(ctx, table, q)
		if err != nil {
			return err
		}
		for _, ent := range page.Entities {
			f(ent)
		}
		if page.Continuation == "" {
			return nil
		}
		q.Continuation = page.Continuation
	}
}

func (e *Engine) countRows(ctx context.Context, table, pk string) (int64, error) {
	var n int64
	err := e.scanPartition(ctx, table, pk, func(Entity) { n++ })
	return n, err
}
