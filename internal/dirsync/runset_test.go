package dirsync

import (
	"fmt"
	"testing"
	"time"
)

// TestRunSetForgetsOldRuns: the per-process record of the runs that already
// marked the waiter pass due holds a day of runs, not every run since the
// process started.
func TestRunSetForgetsOldRuns(t *testing.T) {
	s := runSet{keep: 24 * time.Hour}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for h := range 48 {
		id := fmt.Sprintf("run-%02d", h)
		if !s.add(id, t0.Add(time.Duration(h)*time.Hour)) {
			t.Fatalf("add(%s) = false for a new run", id)
		}
		if s.add(id, t0.Add(time.Duration(h)*time.Hour)) {
			t.Fatalf("add(%s) = true for a run already added", id)
		}
	}
	if got := len(s.added); got > 26 {
		t.Errorf("after 48 hourly runs the set holds %d runs; want at most a day's (25)", got)
	}
	s.remove("run-47")
	if !s.add("run-47", t0.Add(47*time.Hour)) {
		t.Error("a removed run is not new again")
	}
	// A clock that jumps back forgets nothing: only more marks are safe.
	if !s.add("early", t0) || len(s.added) == 1 {
		t.Errorf("a clock jumped back emptied the set (len %d)", len(s.added))
	}
}
