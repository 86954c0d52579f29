package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func state(status, phase string, pages, seen int64) runState {
	r := runState{Status: status, Phase: phase, PagesDone: pages}
	r.Counters.Seen = seen
	return r
}

func TestProgressLine(t *testing.T) {
	p := &progress{total: 2000}
	for _, tc := range []struct {
		r       runState
		elapsed time.Duration
		want    string
	}{
		{state("running", "enumerating", 0, 0), 0, "[............................]   0%  pages 0  users 0/2000  0 users/s  —"},
		{state("running", "enumerating", 5, 1000), 2 * time.Second, "[##############..............]  50%  pages 5  users 1000/2000  500 users/s  about 2s left"},
		{state("running", "sweeping", 10, 2000), 4 * time.Second, "[############################] 100%  pages 10  users 2000/2000  500 users/s  sweeping"},
		{state("succeeded", "done", 10, 1990), 4 * time.Second, "[############################] 100%  pages 10  users 1990/2000  498 users/s  succeeded"},
	} {
		if diff := cmp.Diff(tc.want, p.line(tc.r, tc.elapsed)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

// Without a terminal, a line every 2 seconds and on each new phase: a log
// gets a handful of lines for a run, not one per poll.
func TestProgressPlainLines(t *testing.T) {
	var out strings.Builder
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{out: &out, total: 100, now: func() time.Time { return now }}
	for i := range 20 {
		p.show(state("running", "enumerating", int64(i), int64(i*5)))
		now = now.Add(250 * time.Millisecond)
	}
	p.show(state("running", "sweeping", 20, 100))
	p.show(state("succeeded", "done", 20, 100))
	p.done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || strings.Contains(out.String(), "\r") {
		t.Errorf("%d lines:\n%s", len(lines), out.String())
	}
	var out2 strings.Builder
	tty := &progress{out: &out2, tty: true, total: 100, now: func() time.Time { return now }}
	tty.show(state("running", "enumerating", 1, 10))
	tty.show(state("succeeded", "done", 2, 100))
	tty.done()
	if got := out2.String(); strings.Count(got, "\r") != 2 || !strings.HasSuffix(got, "\x1b[K\n") {
		t.Errorf("terminal output %q", got)
	}
}
