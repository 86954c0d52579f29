// Schedules: a sentence for people, and the next due times computed in the
// browser for the settings preview. The server's own calculation
// (dirsync.Schedule.Next, shown as "next run" on the overview) is the one that
// counts; this one follows the same wall-clock rules: every recurring
// frequency is a list of wall times per day in the schedule's time zone.

export function describe(s) {
  if (!s) return 'unknown';
  const tz = s.timeZone || 'UTC';
  switch (s.frequency) {
    case 'manual': return 'manual: only Sync now starts a run';
    case 'once': return s.at ? `once, at ${new Date(s.at).toLocaleString()}` : 'once (no time set)';
    case 'daily': return `daily at ${s.timeOfDay || '??:??'} (${tz})`;
    case 'hourly': return `hourly at minute ${s.minute || 0} (${tz})`;
    case 'minutes': return `every ${s.everyMinutes || '?'} minutes from midnight (${tz})`;
  }
  return `frequency ${s.frequency}`;
}

// wallParts returns the wall clock of instant t (ms) in zone tz.
function wallParts(t, tz) {
  const f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
  const p = {};
  for (const x of f.formatToParts(new Date(t))) p[x.type] = Number(x.value);
  return p;
}

function offsetAt(t, tz) {
  const p = wallParts(t, tz);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(t / 1000) * 1000;
}

// instant returns the instant of a wall time in tz. A wall time skipped by
// a clock change moves later by the jump, like the server's rule.
export function instant(y, m, d, minutes, tz) {
  const wall = Date.UTC(y, m, d, 0, minutes);
  let t = wall - offsetAt(wall, tz);
  t = wall - offsetAt(t, tz);
  return t;
}

export function validZone(tz) {
  try { new Intl.DateTimeFormat('en-US', { timeZone: tz }); return true; } catch { return false; }
}

function slots(s) {
  switch (s.frequency) {
    case 'daily': {
      const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(s.timeOfDay || '');
      return m ? [Number(m[1]) * 60 + Number(m[2])] : null;
    }
    case 'hourly': {
      const min = Number(s.minute || 0);
      if (!(min >= 0 && min <= 59)) return null;
      return Array.from({ length: 24 }, (_, i) => i * 60 + min);
    }
    case 'minutes': {
      const n = Number(s.everyMinutes || 0);
      if (!(n >= 15 && n <= 1440)) return null;
      const out = [];
      for (let x = 0; x < 1440; x += n) out.push(x);
      return out;
    }
  }
  return null;
}

// nextTimes returns up to count due instants (Date) after now, or a reason
// string when there are none.
export function nextTimes(s, count, now = Date.now()) {
  const tz = s.timeZone || 'UTC';
  if (!validZone(tz)) return `"${tz}" is not a time zone name such as Europe/Berlin`;
  if (s.frequency === 'manual') return 'Manual: no run is scheduled; use Sync now.';
  if (s.frequency === 'once') {
    if (!s.at) return 'Choose the time of the one-time sync.';
    const t = new Date(s.at);
    return t.getTime() > now ? [t] : 'That time is past: nothing will run.';
  }
  const sl = slots(s);
  if (!sl) return 'Complete the schedule to see its next runs.';
  const out = [];
  const today = wallParts(now, tz);
  for (let k = 0; k < 60 && out.length < count; k++) {
    const day = new Date(Date.UTC(today.year, today.month - 1, today.day + k));
    for (const minutes of sl) {
      const t = instant(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), minutes, tz);
      if (t > now && (out.length === 0 || t > out[out.length - 1].getTime())) out.push(new Date(t));
      if (out.length >= count) break;
    }
  }
  return out;
}

// inZone formats an instant on the wall clock of tz.
export function inZone(d, tz) {
  return new Intl.DateTimeFormat(undefined, { timeZone: tz || 'UTC', weekday: 'short', dateStyle: undefined, year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' }).format(d);
}

// wallInput turns an instant into the value of a datetime-local input on
// the wall clock of tz ("2026-12-01T14:30").
export function wallInput(iso, tz) {
  if (!iso) return '';
  const p = wallParts(new Date(iso).getTime(), tz || 'UTC');
  const two = (n) => String(n).padStart(2, '0');
  return `${p.year}-${two(p.month)}-${two(p.day)}T${two(p.hour)}:${two(p.minute)}`;
}

// fromWallInput is the inverse: a datetime-local value read in tz.
export function fromWallInput(v, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(v || '');
  if (!m) return null;
  return new Date(instant(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]) * 60 + Number(m[5]), tz || 'UTC')).toISOString().replace('.000Z', 'Z');
}
