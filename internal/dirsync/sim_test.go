package dirsync_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// TestSimulation explores the engine with the deterministic simulator
// (dirsynctest/sim.go): every seed is a scenario of concurrent deliveries in
// any order, duplicates, killed workers, clock jumps past the lock's
// staleness, admin actions, tenant changes and Graph faults, checked
// against the invariants of docs/architecture.md.
//
//	SIM_SEED=n     replay one seed (prints what it did)
//	SIM_SEEDS=n    how many seeds (default 300)
//	SIM_BUDGET=5m  explore seeds until the time is up (make simulate)
//	SIM_FIRST=n    the first seed (default 1)
//	SIM_TRACE=1    with SIM_SEED: print every scheduling decision
//	SIM_TRACE_USER=007  with SIM_TRACE: also that test user's writes and Graph answers
//
// knownOpen lists seeds whose failure is understood but not fixed yet,
// each with what it shows. They are run and reported; a listed seed that
// passes fails the test, so the list cannot go stale.
var knownOpen = map[int64]string{}

func TestSimulation(t *testing.T) {
	if s := os.Getenv("SIM_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("SIM_SEED=%q: %v", s, err)
		}
		rep := dirsynctest.NewSim(dirsynctest.SimConfig{Seed: seed, Trace: os.Getenv("SIM_TRACE") != "", TraceUser: os.Getenv("SIM_TRACE_USER")}).Run()
		t.Log(rep)
		for _, line := range rep.Trace {
			t.Log(line)
		}
		for _, v := range rep.Violations {
			t.Errorf("seed %d: %s", seed, v)
		}
		return
	}
	seeds := envInt(t, "SIM_SEEDS", 300)
	first := envInt(t, "SIM_FIRST", 1)
	var budget time.Duration
	if b := os.Getenv("SIM_BUDGET"); b != "" {
		d, err := time.ParseDuration(b)
		if err != nil {
			t.Fatalf("SIM_BUDGET=%q: %v", b, err)
		}
		budget, seeds = d, 1<<30
	}
	start := time.Now()
	faults, checks := map[string]int{}, map[string]int{}
	ran, failed := 0, 0
	for seed := int64(first); seed < int64(first+seeds); seed++ {
		if budget > 0 && time.Since(start) > budget {
			break
		}
		rep := dirsynctest.NewSim(dirsynctest.SimConfig{Seed: seed}).Run()
		ran++
		if why, ok := knownOpen[seed]; ok && os.Getenv("SIM_BUDGET") == "" {
			if len(rep.Violations) == 0 {
				t.Errorf("seed %d is listed as known open (%s) but passes now: remove it from knownOpen", seed, why)
			} else {
				t.Logf("known open, seed %d: %s: %s", seed, why, rep.Violations[0])
			}
			continue
		}
		for k, v := range rep.Faults {
			faults[k] += v
		}
		for k, v := range rep.Checks {
			checks[k] += v
		}
		if len(rep.Violations) > 0 {
			failed++
			t.Errorf("seed %d failed (replay: SIM_SEED=%d go test ./internal/dirsync/ -run TestSimulation -v):", seed, seed)
			for i, v := range rep.Violations {
				if i == 5 {
					t.Errorf("  ... %d more", len(rep.Violations)-5)
					break
				}
				t.Errorf("  %s", v)
			}
			if failed >= 5 {
				break
			}
		}
	}
	t.Logf("simulated %d seeds (from %d) in %s; %d failed", ran, first, time.Since(start).Round(time.Millisecond), failed)
	t.Logf("faults injected: %v", faults)
	t.Logf("invariants checked: %v", checks)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}
