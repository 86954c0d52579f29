package devhost

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule is a timer trigger's schedule.
type schedule interface {
	// Next returns the first occurrence strictly after t.
	Next(t time.Time) time.Time
}

// ncrontabParser reads the six fields of NCRONTAB: second minute hour day
// month day-of-week, as the Functions timer trigger does.
var ncrontabParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// parseSchedule reads a timer schedule: a six-field NCRONTAB expression
// ("0 */5 * * * *") or a TimeSpan ("00:05:00", an interval, which the host
// accepts on App Service plans). Occurrences are computed in loc.
func parseSchedule(expr string, loc *time.Location) (schedule, error) {
	expr = strings.TrimSpace(expr)
	if strings.Contains(expr, ":") && !strings.Contains(expr, " ") {
		d, err := parseTimeSpan(expr)
		if err != nil {
			return nil, err
		}
		if d <= 0 {
			return nil, fmt.Errorf("schedule %q: the interval must be positive", expr)
		}
		return interval(d), nil
	}
	fields := strings.Fields(expr)
	if len(fields) != 6 {
		hint := ""
		if len(fields) == 5 {
			hint = fmt.Sprintf("; NCRONTAB starts with a seconds field, e.g. \"0 %s\"", expr)
		}
		return nil, fmt.Errorf("schedule %q has %d fields; NCRONTAB has 6: second minute hour day month day-of-week%s", expr, len(fields), hint)
	}
	s, err := ncrontabParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q is not a valid NCRONTAB expression: %v", expr, err)
	}
	return cronSchedule{s: s, loc: loc}, nil
}

type cronSchedule struct {
	s   cron.Schedule
	loc *time.Location
}

func (c cronSchedule) Next(t time.Time) time.Time { return c.s.Next(t.In(c.loc)) }

// interval is a TimeSpan schedule: every d.
type interval time.Duration

func (d interval) Next(t time.Time) time.Time { return t.Add(time.Duration(d)) }

// pastDueAfter is how late a tick may fire before the invocation is marked
// IsPastDue. It is generous so that a loaded machine does not flag every tick.
const pastDueAfter = 2 * time.Second

// timerState is a timer's schedule status, as the host keeps it.
type timerState struct {
	last, next, lastUpdated time.Time
}

// dueInfo is what one tick's invocation carries.
type dueInfo struct {
	status    timerState // the status before this run, sent as ScheduleStatus
	isPastDue bool
}

// tick computes the invocation of an occurrence due at due and fired at now,
// and the status after it, like the host's TimerListener: during the run the
// status is the previous one; afterwards Last is this occurrence and Next the
// one after now.
func tick(s schedule, st timerState, due, now time.Time) (dueInfo, timerState) {
	info := dueInfo{status: st, isPastDue: !due.IsZero() && now.Sub(due) > pastDueAfter}
	last := due
	if last.IsZero() {
		last = now
	}
	return info, timerState{last: last, next: s.Next(now), lastUpdated: now}
}
