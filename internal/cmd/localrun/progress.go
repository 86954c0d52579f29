package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/localstack"
)

// runState is what the progress display reads of a run.
type runState struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Phase     string `json:"phase"`
	PagesDone int64  `json:"pagesDone"`
	Error     string `json:"error"`
	Hint      string `json:"hint"`
	Counters  struct {
		Seen, Added, Updated, Deleted, Duplicate, Skipped int64
	} `json:"counters"`
}

// watch polls the run until it finishes, showing its progress. Live
// counters come from GET /api/status (its activeRun adds up the pages done
// so far); the run's own row has them once it finished.
func watch(ctx context.Context, stack *localstack.Stack, id string, p *progress) (runState, error) {
	var failingSince time.Time
	for {
		var st struct{ ActiveRun *runState }
		code, err := stack.Call(ctx, stack.AdminKey, http.MethodGet, "/status", nil, &st)
		if err == nil && code == http.StatusOK && (st.ActiveRun == nil || st.ActiveRun.ID != id || st.ActiveRun.Status != "running") {
			var env struct{ Run runState }
			code, err = stack.Call(ctx, stack.AdminKey, http.MethodGet, "/runs/"+id, nil, &env)
			st.ActiveRun = &env.Run
		}
		switch {
		case err == nil && code == http.StatusOK:
			failingSince = time.Time{}
			p.show(*st.ActiveRun)
			if st.ActiveRun.Status != "running" {
				p.done()
				return *st.ActiveRun, nil
			}
		case err == nil && code < 500:
			return runState{}, fmt.Errorf("GET /api/runs/%s: %d", id, code)
		default:
			// The handler may be restarting: keep asking for a minute.
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > time.Minute {
				return runState{}, fmt.Errorf("GET /api/runs/%s: %d %v", id, code, err)
			}
		}
		select {
		case <-ctx.Done():
			return runState{}, ctx.Err()
		case <-time.After(400 * time.Millisecond):
		}
	}
}

// progress shows a run's progress: a bar redrawn in place on a terminal,
// or a plain line every few seconds (and on each new phase) otherwise, so a
// log file or CI output gets a handful of lines, not hundreds.
type progress struct {
	out   io.Writer
	tty   bool
	total int64 // users expected: the generated tenant's size
	now   func() time.Time

	start     time.Time
	lastPlain time.Time
	lastPhase string
	drawn     bool
}

const barWidth = 28

func (p *progress) show(r runState) {
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	line := p.line(r, now.Sub(p.start))
	if p.tty {
		fmt.Fprintf(p.out, "\r%s\x1b[K", line)
		p.drawn = true
		return
	}
	if r.Phase != p.lastPhase || now.Sub(p.lastPlain) >= 2*time.Second {
		fmt.Fprintf(p.out, "  %s\n", line)
		p.lastPlain, p.lastPhase = now, r.Phase
	}
}

// done ends the redrawn line.
func (p *progress) done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.out)
	}
}

// line is one progress line: bar, pages, users, rate and time left.
func (p *progress) line(r runState, elapsed time.Duration) string {
	seen := r.Counters.Seen
	rate := 0.0
	if elapsed >= time.Second {
		rate = float64(seen) / elapsed.Seconds()
	}
	frac := 0.0
	if p.total > 0 {
		frac = min(1, float64(seen)/float64(p.total))
	}
	if r.Status != "running" && r.Status != "" {
		frac = 1
	}
	filled := int(frac * barWidth)
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "]"
	left := "—"
	switch {
	case r.Status != "running":
		left = r.Status
	case r.Phase != "enumerating":
		left = r.Phase
	case rate > 0 && seen < p.total:
		left = "about " + (time.Duration(float64(p.total-seen)/rate) * time.Second).Round(time.Second).String() + " left"
	case seen >= p.total:
		left = "reading the last pages"
	}
	return fmt.Sprintf("%s %3.0f%%  pages %d  users %d/%d  %.0f users/s  %s", bar, frac*100, r.PagesDone, seen, p.total, rate, left)
}
