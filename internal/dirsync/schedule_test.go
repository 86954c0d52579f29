package dirsync_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

func utcTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func daily(tz, hhmm string) dirsync.Schedule {
	return dirsync.Schedule{Frequency: "daily", TimeOfDay: hhmm, TimeZone: tz}
}

func hourly(tz string, minute int) dirsync.Schedule {
	return dirsync.Schedule{Frequency: "hourly", Minute: minute, TimeZone: tz}
}

func every(tz string, n int) dirsync.Schedule {
	return dirsync.Schedule{Frequency: "minutes", EveryMinutes: n, TimeZone: tz}
}

// nextN returns the first n due times after from, in UTC RFC 3339.
func nextN(sc dirsync.Schedule, from time.Time, n int) []string {
	var out []string
	for range n {
		t, ok := sc.Next(from)
		if !ok {
			break
		}
		out = append(out, t.UTC().Format(time.RFC3339))
		from = t
	}
	return out
}

// The transitions used below (from the IANA database):
//
//	Europe/Berlin       2026-03-29 01:00Z 02:00 CET -> 03:00 CEST;  2026-10-25 01:00Z 03:00 CEST -> 02:00 CET
//	America/New_York    2026-03-08 07:00Z 02:00 EST -> 03:00 EDT;   2026-11-01 06:00Z 02:00 EDT -> 01:00 EST
//	Australia/Lord_Howe 2026-10-03 15:30Z 02:00 +1030 -> 02:30 +11; 2026-04-04 15:00Z 02:00 +11 -> 01:30 +1030
//	Asia/Kolkata        +05:30 all year, UTC no change.
func TestScheduleNextAcrossDST(t *testing.T) {
	tests := []struct {
		name string
		sc   dirsync.Schedule
		from string
		want []string
	}{
		{"berlin daily 02:30, spring forward: 02:30 does not exist, runs once at 03:30 CEST",
			daily("Europe/Berlin", "02:30"), "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"}},
		{"berlin daily 02:30, fall back: 02:30 happens twice, runs once at the first (CEST)",
			daily("Europe/Berlin", "02:30"), "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"berlin daily 03:00, fall back: 03:00 CET is unambiguous",
			daily("Europe/Berlin", "03:00"), "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T02:00:00Z", "2026-10-26T02:00:00Z"}},
		{"berlin daily 02:00, spring forward: the jump's first minute moves to 03:00",
			daily("Europe/Berlin", "02:00"), "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}},
		{"new york daily 02:30, spring forward runs at 03:30 EDT",
			daily("America/New_York", "02:30"), "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"}},
		{"new york daily 01:30, fall back runs once at 01:30 EDT",
			daily("America/New_York", "01:30"), "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"lord howe daily 02:15, 30-minute spring forward runs at 02:45 +11",
			daily("Australia/Lord_Howe", "02:15"), "2026-10-03T00:00:00Z",
			[]string{"2026-10-03T15:45:00Z", "2026-10-04T15:15:00Z"}},
		{"lord howe daily 01:45, 30-minute fall back runs once at 01:45 +11",
			daily("Australia/Lord_Howe", "01:45"), "2026-04-04T00:00:00Z",
			[]string{"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}},
		{"kolkata daily 09:00 is 03:30 UTC",
			daily("Asia/Kolkata", "09:00"), "2026-06-01T03:30:00Z",
			[]string{"2026-06-02T03:30:00Z", "2026-06-03T03:30:00Z"}},
		{"utc daily 00:00",
			daily("UTC", "00:00"), "2026-12-31T23:59:59Z",
			[]string{"2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"}},
		{"empty time zone means UTC",
			daily("", "23:15"), "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T23:15:00Z", "2026-01-02T23:15:00Z"}},

		{"berlin hourly :30 across spring forward: every real hour",
			hourly("Europe/Berlin", 30), "2026-03-28T23:00:00Z",
			[]string{"2026-03-28T23:30:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"}},
		{"berlin hourly :30 across fall back: the repeated 02:30 runs twice, an hour apart",
			hourly("Europe/Berlin", 30), "2026-10-24T23:00:00Z",
			[]string{"2026-10-24T23:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"}},
		{"new york hourly :00 across fall back",
			hourly("America/New_York", 0), "2026-11-01T04:30:00Z",
			[]string{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}},
		{"lord howe hourly :15 across spring forward: 02:15 moves to 02:45",
			hourly("Australia/Lord_Howe", 15), "2026-10-03T14:00:00Z",
			[]string{"2026-10-03T14:45:00Z", "2026-10-03T15:45:00Z", "2026-10-03T16:15:00Z"}},
		{"lord howe hourly :15 across fall back: 90 minutes (no :15 in the repeated half hour)",
			hourly("Australia/Lord_Howe", 15), "2026-04-04T14:00:00Z",
			[]string{"2026-04-04T14:15:00Z", "2026-04-04T15:45:00Z", "2026-04-04T16:45:00Z"}},
		{"lord howe hourly :45 across fall back: 01:45 runs twice, 30 minutes apart",
			hourly("Australia/Lord_Howe", 45), "2026-04-04T14:00:00Z",
			[]string{"2026-04-04T14:45:00Z", "2026-04-04T15:15:00Z", "2026-04-04T16:15:00Z"}},
		{"kolkata hourly :00 is :30 UTC",
			hourly("Asia/Kolkata", 0), "2026-06-01T10:00:00Z",
			[]string{"2026-06-01T10:30:00Z", "2026-06-01T11:30:00Z"}},

		{"berlin every 90 minutes on spring forward day: wall slots 00:00 01:30 03:00 04:30",
			every("Europe/Berlin", 90), "2026-03-28T22:59:00Z",
			[]string{"2026-03-28T23:00:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:30:00Z"}},
		{"berlin every 90 minutes on fall back day: no slot in the repeated hour",
			every("Europe/Berlin", 90), "2026-10-24T21:59:00Z",
			[]string{"2026-10-24T22:00:00Z", "2026-10-24T23:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:30:00Z"}},
		{"every 50 minutes restarts at local midnight (23:20 then 00:00)",
			every("Asia/Kolkata", 50), "2026-06-01T17:45:00Z",
			[]string{"2026-06-01T17:50:00Z", "2026-06-01T18:30:00Z", "2026-06-01T19:20:00Z"}},
		{"every 1440 minutes is daily at local midnight",
			every("America/New_York", 1440), "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}},

		{"once in the future", dirsync.Schedule{Frequency: "once", At: ptr(utcTime("2026-12-24T18:00:00Z"))},
			"2026-12-01T00:00:00Z", []string{"2026-12-24T18:00:00Z"}},
		{"once, exactly now, is not strictly after", dirsync.Schedule{Frequency: "once", At: ptr(utcTime("2026-12-24T18:00:00Z"))},
			"2026-12-24T18:00:00Z", nil},
		{"manual never", dirsync.Schedule{Frequency: "manual"}, "2026-01-01T00:00:00Z", nil},
		{"invalid zone never", daily("Mars/Olympus_Mons", "10:00"), "2026-01-01T00:00:00Z", nil},
		{"invalid time never", daily("UTC", "24:00"), "2026-01-01T00:00:00Z", nil},
		{"minutes below 15 never", every("UTC", 5), "2026-01-01T00:00:00Z", nil},
		{"unknown frequency never", dirsync.Schedule{Frequency: "weekly"}, "2026-01-01T00:00:00Z", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nextN(tc.sc, utcTime(tc.from), len(tc.want)+boolInt(tc.want == nil))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Next from %s (-want +got):\n%s", tc.from, diff)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

func TestSchedulePrevious(t *testing.T) {
	tests := []struct {
		name   string
		sc     dirsync.Schedule
		at     string
		want   string // "" = none
		wantOK bool
	}{
		{"exactly on a due time counts", daily("Europe/Berlin", "02:30"), "2026-03-29T01:30:00Z", "2026-03-29T01:30:00Z", true},
		{"a second before it gives the day before", daily("Europe/Berlin", "02:30"), "2026-03-29T01:29:59Z", "2026-03-28T01:30:00Z", true},
		{"after fall back's second 02:30 still the first one", daily("Europe/Berlin", "02:30"), "2026-10-25T01:45:00Z", "2026-10-25T00:30:00Z", true},
		{"hourly in the repeated hour gives the second occurrence", hourly("Europe/Berlin", 30), "2026-10-25T01:45:00Z", "2026-10-25T01:30:00Z", true},
		{"lord howe hourly at the spring jump", hourly("Australia/Lord_Howe", 15), "2026-10-03T16:00:00Z", "2026-10-03T15:45:00Z", true},
		{"minutes", every("America/New_York", 15), "2026-11-01T06:07:00Z", "2026-11-01T06:00:00Z", true},
		{"once past", dirsync.Schedule{Frequency: "once", At: ptr(utcTime("2026-01-01T00:00:00Z"))}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", true},
		{"once ahead", dirsync.Schedule{Frequency: "once", At: ptr(utcTime("2026-01-01T00:00:00Z"))}, "2025-12-31T23:59:59Z", "", false},
		{"manual", dirsync.Schedule{Frequency: "manual"}, "2026-01-01T00:00:00Z", "", false},
		{"invalid", hourly("UTC", 60), "2026-01-01T00:00:00Z", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.sc.Previous(utcTime(tc.at))
			gotS := ""
			if ok {
				gotS = got.UTC().Format(time.RFC3339)
			}
			if gotS != tc.want || ok != tc.wantOK {
				t.Errorf("Previous(%s) = %q, %v; want %q, %v", tc.at, gotS, ok, tc.want, tc.wantOK)
			}
		})
	}
}

var scheduleZones = []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"}

// TestScheduleYearInvariants walks a whole year (both DST changes) for every
// zone and frequency and checks the rules the package doc promises.
func TestScheduleYearInvariants(t *testing.T) {
	start := utcTime("2026-01-01T00:00:00Z")
	end := utcTime("2027-01-01T00:00:00Z")
	for _, tz := range scheduleZones {
		loc := mustZone(t, tz)
		for _, sc := range []dirsync.Schedule{daily(tz, "02:30"), daily(tz, "00:00"), hourly(tz, 15), hourly(tz, 45), every(tz, 30), every(tz, 90)} {
			t.Run(fmt.Sprintf("%s/%s-%s%d%d", tz, sc.Frequency, sc.TimeOfDay, sc.Minute, sc.EveryMinutes), func(t *testing.T) {
				perDay := map[string]int{}
				prev := start
				for cur := start; ; {
					next, ok := sc.Next(cur)
					if !ok {
						t.Fatalf("no due time after %s", cur)
					}
					if !next.After(cur) {
						t.Fatalf("Next(%s) = %s, not after", cur, next)
					}
					if next.After(end) {
						break
					}
					if p, ok := sc.Previous(next); !ok || !p.Equal(next) {
						t.Fatalf("Previous(%s) = %s, want the due time itself", next, p)
					}
					if p, ok := sc.Previous(next.Add(-time.Second)); cur != start && (!ok || !p.Equal(prev)) {
						t.Fatalf("Previous(%s - 1s) = %s, want the due time before, %s", next, p, prev)
					}
					gap := next.Sub(prev)
					switch sc.Frequency {
					case "hourly":
						maxGap := time.Hour
						if tz == "Australia/Lord_Howe" {
							maxGap = 90 * time.Minute
						}
						if prev != start && (gap > maxGap || (tz != "Australia/Lord_Howe" && gap != time.Hour)) {
							t.Errorf("hourly interval %s before %s", gap, next.In(loc))
						}
					case "minutes":
						n := time.Duration(sc.EveryMinutes) * time.Minute
						if prev != start && gap > n+time.Hour {
							t.Errorf("interval %s before %s, more than %s", gap, next.In(loc), n+time.Hour)
						}
						if sc.EveryMinutes == 30 && prev != start && gap != n && tz != "Australia/Lord_Howe" {
							t.Errorf("every 30 minutes: interval %s before %s", gap, next.In(loc))
						}
						if lt := next.In(loc); sc.EveryMinutes == 90 && (lt.Hour()*60+lt.Minute())%90 != 0 && !isJumpDay(lt) {
							t.Errorf("every 90 minutes: %s is not a slot of the day", lt)
						}
					case "daily":
						perDay[next.In(loc).Format("2006-01-02")]++
					}
					prev, cur = next, next
				}
				if sc.Frequency == "daily" {
					if len(perDay) != 365 {
						t.Errorf("daily ran on %d local days, want 365", len(perDay))
					}
					for day, n := range perDay {
						if n != 1 {
							t.Errorf("daily ran %d times on %s", n, day)
						}
					}
				}
			})
		}
	}
}

// isJumpDay reports whether the clock jumps on t's local day.
func isJumpDay(t time.Time) bool {
	y, m, d := t.Date()
	_, a := time.Date(y, m, d, 0, 0, 0, 0, t.Location()).Zone()
	_, b := time.Date(y, m, d, 23, 59, 0, 0, t.Location()).Zone()
	return a != b
}

// TestScheduleNextPreviousAgree checks, at many instants, that nothing is
// due strictly between Previous(t) and Next(t).
func TestScheduleNextPreviousAgree(t *testing.T) {
	for _, tz := range scheduleZones {
		for _, sc := range []dirsync.Schedule{daily(tz, "02:30"), hourly(tz, 45), every(tz, 45)} {
			for at := utcTime("2026-03-27T00:00:00Z"); at.Before(utcTime("2026-04-07T00:00:00Z")); at = at.Add(7*time.Minute + 13*time.Second) {
				p, ok := sc.Previous(at)
				if !ok || p.After(at) {
					t.Fatalf("%s %s: Previous(%s) = %s, %v", tz, sc.Frequency, at, p, ok)
				}
				n, _ := sc.Next(at)
				if n2, _ := sc.Next(p); !n2.Equal(n) {
					t.Fatalf("%s %s at %s: Next(Previous) = %s but Next = %s: a due time between them was missed", tz, sc.Frequency, at, n2, n)
				}
			}
		}
	}
}

func BenchmarkScheduleNext(b *testing.B) {
	sc := every("Europe/Berlin", 15)
	at := utcTime("2026-10-25T00:50:00Z")
	for b.Loop() {
		sc.Next(at)
	}
}
