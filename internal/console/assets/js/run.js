// A run: counters, timings, error and hint; its pending deletions when it is
// blocked; its log with filters, downloads and the read-only link.
import { h, replace, timeEl, fmtDuration, num, badge, errorBox, table, runSeconds, field, readOnlyNote } from './dom.js';
import { get, post, query, download, request } from './api.js';
import { counters } from './overview.js';

const LEVELS = ['info', 'warn', 'error'];
const EVENTS = ['run_started', 'run_finished', 'run_failed', 'run_blocked', 'run_cancelled', 'page', 'added', 'updated', 'deleted',
  'duplicate', 'duplicate_resolved', 'skipped', 'failed', 'pending_deletion', 'deletion_kept', 'delta_token_expired', 'throttled',
  'sweep', 'deletions_approved', 'deletions_rejected'];
const SHOW_LINES = 1000;

export function render(ctx) {
  const { main, params, isAdmin, query: q } = ctx;
  const id = params.id;
  const st = { run: null, timer: 0, stopped: false };
  const head = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const dels = h('div', {});
  const log = h('section', { class: 'card', 'aria-labelledby': 'log-h' });
  replace(main, h('p', {}, h('a', { href: '#/runs' }, '← History')), h('h1', {}, 'Run ', id), head, dels, log);
  ctx.focusHeading();

  async function load() {
    try {
      const r = await get('/runs/' + encodeURIComponent(id));
      if (st.stopped) return;
      const changed = !st.run || st.run.status !== r.run.status;
      st.run = r.run;
      drawHead();
      if (changed) drawDeletions();
      if (r.run.status === 'running') st.timer = setTimeout(load, 1500);
    } catch (e) {
      replace(head, errorBox(e));
    }
  }

  function drawHead() {
    const r = st.run;
    replace(head, h('section', { class: 'card', 'aria-labelledby': 'run-h' },
      h('h2', { id: 'run-h', class: 'sr-only' }, 'Summary'),
      h('p', {}, badge(r.status), ` ${r.mode} sync, started by ${r.trigger}`, r.requestedBy ? ` (${r.requestedBy})` : ''),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Started'), h('dd', {}, timeEl(r.startedAt)),
        h('dt', {}, 'Finished'), h('dd', {}, r.finishedAt ? timeEl(r.finishedAt) : h('span', { class: 'muted' }, 'not yet')),
        h('dt', {}, 'Duration'), h('dd', {}, fmtDuration(runSeconds(r))),
        h('dt', {}, 'Phase'), h('dd', {}, r.phase || '—'),
        h('dt', {}, 'Pages'), h('dd', {}, num(r.pagesDone)),
        r.restarts ? [h('dt', {}, 'Restarts'), h('dd', {}, num(r.restarts))] : null,
        r.pendingDeletions ? [h('dt', {}, 'Pending deletions'), h('dd', {}, num(r.pendingDeletions))] : null,
        h('dt', {}, 'Log blob'), h('dd', {}, h('code', {}, r.logName || '—'))),
      r.error ? h('div', { class: r.status === 'blocked' ? 'banner banner-warn' : 'error-box', role: 'note' }, h('p', {}, h('strong', {}, r.status === 'blocked' ? 'Waiting' : 'Error', r.errorCode && r.status !== 'blocked' ? ` (${r.errorCode})` : '', ': '), r.error), r.hint ? h('p', {}, h('strong', {}, 'What to do: '), r.hint) : null) : null,
      counters(r.counters)));
  }

  function drawDeletions() {
    const r = st.run;
    if (r.status !== 'blocked') { replace(dels); return; }
    const list = h('div', {}, h('p', { class: 'muted' }, 'Loading the pending deletions…'));
    const out = h('div', { 'aria-live': 'polite' });
    const decide = (what, path, question) => async () => {
      if (!window.confirm(question)) return;
      try {
        await post(`/runs/${encodeURIComponent(id)}/deletions/${path}`);
        replace(out, h('p', { class: 'banner banner-ok', role: 'status' }, what));
        setTimeout(load, 500);
      } catch (e) { replace(out, errorBox(e)); }
    };
    replace(dels, h('section', { class: 'card', 'aria-labelledby': 'del-h', id: 'deletions' },
      h('h2', { id: 'del-h' }, `Pending deletions (${num(r.pendingDeletions)})`),
      h('p', {}, 'This run would remove more users than the deletion threshold allows, so it waits for a decision. Approve to remove them from the directory and every group; reject to keep them and finish the run.'),
      isAdmin
        ? h('div', { class: 'row' },
          h('button', { type: 'button', class: 'danger', id: 'approve', onclick: decide('Approved: the deletions are being applied.', 'approve', `Remove these ${r.pendingDeletions} users from the directory?`) }, `Approve ${num(r.pendingDeletions)} deletions`),
          h('button', { type: 'button', id: 'reject', onclick: decide('Rejected: the users stay, the run finishes.', 'reject', 'Keep these users and finish the run?') }, 'Reject (keep the users)'))
        : readOnlyNote('Approving or rejecting deletions'),
      out, list));
    let next = '';
    const more = async () => {
      try {
        const page = await get(`/runs/${encodeURIComponent(id)}/deletions` + query({ limit: 50, token: next }));
        const t = table('Users the run would delete', [
          { label: 'User', cell: d => h('a', { href: '#/users/' + d.userId }, d.upn || d.userId) },
          { label: 'Reason', cell: d => d.reason },
          { label: 'Outcome', cell: d => d.outcome || 'pending' },
        ], page.deletions);
        if (!next) replace(list);
        list.appendChild(t);
        next = page.nextToken || '';
        if (next) list.appendChild(h('button', { type: 'button', onclick: (e) => { e.target.remove(); more(); } }, 'Show more'));
      } catch (e) { replace(list, errorBox(e)); }
    };
    more();
  }

  // ---- the log ----
  const initialLevels = (q.get('level') || '').split(',').filter(l => LEVELS.includes(l));
  const levelBoxes = LEVELS.map(l => h('input', { type: 'checkbox', id: 'level-' + l, value: l, checked: initialLevels.includes(l) }));
  const eventInput = h('input', { type: 'text', id: 'event-filter', list: 'event-names', placeholder: 'e.g. added,updated', value: q.get('event') || '', spellcheck: 'false' });
  const lines = h('div', { 'aria-live': 'polite' });
  const link = h('div', { 'aria-live': 'polite' });
  const filterQuery = () => ({
    level: levelBoxes.filter(b => b.checked).map(b => b.value).join(','),
    event: eventInput.value.split(',').map(s => s.trim()).filter(Boolean).join(','),
  });
  const show = async (ev) => {
    if (ev) ev.preventDefault();
    replace(lines, h('p', { class: 'muted' }, 'Loading the log…'));
    try {
      const res = await request('GET', `/runs/${encodeURIComponent(id)}/log` + query({ format: 'jsonl', ...filterQuery() }), { raw: true, accept: 'application/x-ndjson' });
      const text = await res.text();
      const all = text.split('\n').filter(Boolean);
      const rows = [];
      for (const l of all.slice(0, SHOW_LINES)) { try { rows.push(JSON.parse(l)); } catch { /* a cut line */ } }
      replace(lines,
        h('p', {}, all.length > SHOW_LINES ? `The first ${SHOW_LINES} of ${num(all.length)} lines; download the log for all of them.` : `${num(all.length)} lines.`),
        table('Log lines', [
          { label: 'Time', cell: e => e.time ? new Date(e.time).toLocaleTimeString() : '' },
          { label: 'Level', cell: e => h('span', { class: 'level level-' + e.level }, e.level) },
          { label: 'Event', cell: e => e.event },
          { label: 'Page', cell: e => e.page ?? '', num: true },
          { label: 'User', cell: e => e.userId ? h('a', { href: '#/users/' + e.userId }, e.upn || e.userId) : (e.upn || '') },
          { label: 'Details', cell: e => details(e) },
        ], rows, { class: 'log', empty: 'No line matches the filters.' }));
    } catch (e) { replace(lines, errorBox(e)); }
  };
  const dl = (format) => async () => {
    try {
      await download(`/runs/${encodeURIComponent(id)}/log` + query({ format, ...filterQuery() }), `${id}.${format}`);
    } catch (e) { replace(lines, errorBox(e)); }
  };
  const getLink = async () => {
    try {
      const r = await get(`/runs/${encodeURIComponent(id)}/log/link`);
      const inp = h('input', { type: 'text', readonly: true, id: 'sas-link', value: r.url, class: 'wide' });
      replace(link, field('Read-only link (open it in Azure Storage Explorer or a browser)', inp, { hint: `Valid until ${new Date(r.expiresAt).toLocaleString()}. Anyone with the link can read this run's log until then.` }),
        h('button', { type: 'button', onclick: async (e) => { try { await navigator.clipboard.writeText(r.url); e.target.textContent = 'Copied'; } catch { inp.select(); } } }, 'Copy'));
      inp.focus();
      inp.select();
    } catch (e) { replace(link, errorBox(e)); }
  };
  replace(log,
    h('h2', { id: 'log-h' }, 'Log'),
    h('form', { class: 'row filters', onsubmit: show },
      h('fieldset', {}, h('legend', {}, 'Levels (none checked: all)'), levelBoxes.map(b => h('span', { class: 'check' }, b, h('label', { for: b.id }, b.value)))),
      field('Events (comma-separated; empty: all)', eventInput, { inline: true }),
      h('datalist', { id: 'event-names' }, EVENTS.map(e => h('option', { value: e }))),
      h('button', { type: 'submit', class: 'primary', id: 'show-log' }, 'Show')),
    h('div', { class: 'row' },
      h('button', { type: 'button', id: 'download-csv', onclick: dl('csv') }, 'Download CSV'),
      h('button', { type: 'button', id: 'download-jsonl', onclick: dl('jsonl') }, 'Download JSON Lines'),
      h('button', { type: 'button', id: 'get-link', onclick: getLink }, 'Read-only link for Storage Explorer')),
    link, lines);

  load();
  show();
  return () => { st.stopped = true; clearTimeout(st.timer); };
}

function details(e) {
  const parts = [];
  if (e.reason) parts.push(h('span', {}, e.reason));
  if (e.message) parts.push(h('span', {}, e.message));
  if (e.changes && e.changes.length) {
    parts.push(h('ul', { class: 'changes' }, e.changes.map(c => h('li', {}, h('code', {}, c.field), ': ',
      c.old === undefined && c.new === undefined ? 'changed (sensitive)' : [h('del', {}, c.old ?? ''), ' → ', h('ins', {}, c.new ?? '')]))));
  }
  if (e.counters) parts.push(h('span', {}, Object.entries(e.counters).filter(([, v]) => typeof v === 'number' && v).map(([k, v]) => `${k} ${v}`).join(', ')));
  return parts;
}
