package dirsync

import (
	"strconv"
	"sync"
	"time"

	// The handler runs on a Linux image that may lack /usr/share/zoneinfo;
	// the embedded database keeps IANA zone names working there.
	_ "time/tzdata"
)

// Next returns the first due time strictly after after; false when there is
// none (manual, a one-time sync already past, an invalid schedule).
//
// Every recurring frequency is defined on the wall clock of TimeZone, so an
// admin who asks for "daily at 02:30 Europe/Berlin" gets 02:30 on the clock in
// Berlin all year. Two days a year the clock jumps, and the rules are:
//
//   - A wall time that does not exist (spring forward: 02:30 in Berlin on
//     the last Sunday of March) is moved later by the length of the jump: it
//     runs at 03:30 local, the same instant as 02:30 in the offset before the
//     change. This is java.time's rule. It never drops a daily run.
//   - A wall time that happens twice (fall back: 02:30 in Berlin on the last
//     Sunday of October) runs once, at its first occurrence, for "daily":
//     once a day means once. For "hourly" and "minutes" both occurrences are
//     due: they are real, distinct instants an hour apart, and skipping the
//     second would leave more than the chosen interval without a sync.
//
// Consequences: "hourly" runs every 60 minutes all year in zones whose
// daylight saving shift is a whole hour (Berlin, New York); in
// Australia/Lord_Howe (a 30-minute shift) the interval around a change is 30
// or 90 minutes, because the run follows the minute on the local clock.
//
// "minutes" (EveryMinutes N, 15..1440) is anchored at local midnight every
// day: the due wall times are 00:00, 00:N, 00:2N, ... up to 23:59, the same
// list every day, so "every 30 minutes" means :00 and :30 on the local clock,
// even right after a DST change. When N does not divide 1440 the last slot of
// a day is followed by the next midnight sooner than N. When N divides 60,
// due times are exactly N real minutes apart all year in zones whose shift is
// a whole hour (a slot in the skipped hour moves onto a real one, both
// occurrences of a repeated one run). Otherwise an interval around a change
// can be shorter, or longer by up to the shift: every 90 minutes in Berlin
// runs at 01:30 CEST and then 03:00 CET, 150 minutes later, on fall-back day.
//
// "once" is the instant At, whatever TimeZone says. "manual" is never due.
// An invalid schedule (see Schedule.Validate) is never due either.
func (sc Schedule) Next(after time.Time) (time.Time, bool) {
	if sc.Frequency == FrequencyOnce {
		if sc.At != nil && sc.At.After(after) {
			return *sc.At, true
		}
		return time.Time{}, false
	}
	p, ok := sc.plan()
	if !ok {
		return time.Time{}, false
	}
	var best time.Time
	y, m, d := after.In(p.loc).Date()
	// Instants of local day D lie within [D 00:00 - 14h, D+1 00:00 + 12h]
	// plus at most one DST jump; the day before D can only contribute a slot
	// moved across midnight by a jump. Days are walked in order and the walk
	// stops once no later day can beat the best found.
	for k := -1; k <= 2; k++ {
		day := time.Date(y, m, d+k, 0, 0, 0, 0, time.UTC)
		if !best.IsZero() && best.Before(day.Add(-14*time.Hour)) {
			break
		}
		p.each(day, func(t time.Time) {
			if t.After(after) && (best.IsZero() || t.Before(best)) {
				best = t
			}
		})
	}
	return best, !best.IsZero()
}

// Previous returns the latest due time at or before atOrBefore; false when
// there is none (manual, a one-time sync still ahead, an invalid schedule).
// The timer uses it to find the due time a tick is for.
func (sc Schedule) Previous(atOrBefore time.Time) (time.Time, bool) {
	if sc.Frequency == FrequencyOnce {
		if sc.At != nil && !sc.At.After(atOrBefore) {
			return *sc.At, true
		}
		return time.Time{}, false
	}
	p, ok := sc.plan()
	if !ok {
		return time.Time{}, false
	}
	var best time.Time
	y, m, d := atOrBefore.In(p.loc).Date()
	for k := 1; k >= -2; k-- {
		day := time.Date(y, m, d+k, 0, 0, 0, 0, time.UTC)
		// A day's instants end before its next midnight + 12h + a jump (at
		// most a day, as Samoa's in 2011).
		if !best.IsZero() && best.After(day.Add(24*time.Hour+12*time.Hour+24*time.Hour)) {
			break
		}
		p.each(day, func(t time.Time) {
			if !t.After(atOrBefore) && t.After(best) {
				best = t
			}
		})
	}
	return best, !best.IsZero()
}

// schedulePlan is a recurring schedule reduced to wall-clock slots per day.
type schedulePlan struct {
	loc *time.Location
	// slots are the due wall times of every day, in minutes after midnight.
	slots []int
	// firstOnly keeps only the first occurrence of a repeated wall time.
	firstOnly bool
}

func (sc Schedule) plan() (schedulePlan, bool) {
	loc, err := cachedLocation(sc.TimeZone)
	if err != nil {
		return schedulePlan{}, false
	}
	// The zone is checked above through the cache; Validate would load it
	// again, which costs more than the whole calculation.
	rest := sc
	rest.TimeZone = ""
	if rest.Validate() != nil {
		return schedulePlan{}, false
	}
	p := schedulePlan{loc: loc}
	switch sc.Frequency {
	case FrequencyDaily:
		h, _ := strconv.Atoi(sc.TimeOfDay[:2])
		m, _ := strconv.Atoi(sc.TimeOfDay[3:])
		p.slots, p.firstOnly = []int{h*60 + m}, true
	case FrequencyHourly:
		for h := range 24 {
			p.slots = append(p.slots, h*60+sc.Minute)
		}
	case FrequencyMinutes:
		for m := 0; m < 24*60; m += sc.EveryMinutes {
			p.slots = append(p.slots, m)
		}
	default:
		return schedulePlan{}, false
	}
	return p, true
}

// each calls f with every due instant of the local day whose date is day's
// (day is that date at 00:00 UTC).
func (p schedulePlan) each(day time.Time, f func(time.Time)) {
	// Most days no clock change is near: one offset serves every slot.
	t := day.Add(-15 * time.Hour).In(p.loc)
	if _, end := t.ZoneBounds(); end.IsZero() || end.After(day.Add(37*time.Hour)) {
		_, off := t.Zone()
		for _, s := range p.slots {
			f(day.Add(time.Duration(s)*time.Minute - time.Duration(off)*time.Second))
		}
		return
	}
	for _, s := range p.slots {
		first, second, n, shifted := wallInstants(p.loc, day.Add(time.Duration(s)*time.Minute))
		switch {
		case n == 0:
			f(shifted)
		case n == 1 || p.firstOnly:
			f(first)
		default:
			f(first)
			f(second)
		}
	}
}

// wallInstants finds the instants at which the clock in loc shows the wall
// time naive (a date and time written as if it were UTC). n is how many
// there are: 1 normally, 2 in a repeated hour (first is the earlier), 0 in a
// skipped one, where shifted is the wall time moved later by the jump.
func wallInstants(loc *time.Location, naive time.Time) (first, second time.Time, n int, shifted time.Time) {
	// UTC offsets lie between -12h and +14h, so the instants showing naive
	// lie within [naive-14h, naive+12h]. Walk the zone periods (spans of one
	// offset) covering that span; each can hold at most one of them.
	t := naive.Add(-15 * time.Hour).In(loc)
	limit := naive.Add(13 * time.Hour)
	for range 16 { // a handful of periods at most; the bound guards bad data
		_, off := t.Zone()
		start, end := t.ZoneBounds()
		c := naive.Add(-time.Duration(off) * time.Second)
		if (start.IsZero() || !c.Before(start)) && (end.IsZero() || c.Before(end)) {
			if n == 0 {
				first = c
			} else {
				second = c
			}
			n++
		}
		if end.IsZero() || end.After(limit) {
			break
		}
		next := end.In(loc)
		_, nextOff := next.Zone()
		// Past this period's end in its own offset, but before the next
		// period's start in the next offset: naive falls in the jump.
		if n == 0 && !c.Before(end) && naive.Add(-time.Duration(nextOff)*time.Second).Before(end) {
			shifted = c
		}
		t = next
	}
	if n == 0 && shifted.IsZero() {
		// Not reachable with real zone data; stay total rather than panic.
		shifted = time.Date(naive.Year(), naive.Month(), naive.Day(), naive.Hour(), naive.Minute(), 0, 0, loc)
	}
	return first, second, n, shifted
}

// locations caches loaded zones: LoadLocation parses the zone file on every
// call, and the timer and the status page ask for the same zone again and
// again.
var locations sync.Map // name -> *time.Location

func cachedLocation(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}
