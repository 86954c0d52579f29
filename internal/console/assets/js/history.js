// History: runs newest first, filtered by status, paged; a chart of the last
// runs' changes and durations.
import { h, replace, timeEl, fmtDuration, num, badge, errorBox, table, runSeconds, field, pager } from './dom.js';
import { get, query, listPage } from './api.js';

const STATUSES = ['running', 'succeeded', 'failed', 'blocked', 'cancelled'];
const PAGE = 20;

export function render(ctx) {
  const { main, query: q, navigate } = ctx;
  const status = q.get('status') || '';
  const token = q.get('token') || '';
  const select = h('select', { id: 'status-filter', onchange: (e) => navigate('/runs', { status: e.target.value }) },
    h('option', { value: '' }, 'any status'),
    STATUSES.map(s => h('option', { value: s, selected: s === status }, s)));
  const chart = h('figure', { class: 'card chart', id: 'runs-chart' }, h('p', { class: 'muted' }, 'Loading the chart…'));
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading runs…'));
  replace(main, h('h1', {}, 'History'), chart,
    h('section', { 'aria-labelledby': 'runs-h' },
      h('h2', { id: 'runs-h' }, 'Runs'),
      h('div', { class: 'row filters' }, field('Status', select, { inline: true })),
      list));
  ctx.focusHeading();

  get('/runs' + query({ limit: 30 })).then(r => replace(chart, ...runChart(r.runs))).catch(e => replace(chart, errorBox(e)));

  listPage('/runs', { status, limit: PAGE, token }, 'runs').then(r => {
    const cols = [
      { label: 'Run', cell: x => h('a', { href: '#/runs/' + x.id, class: 'nowrap' }, x.id) },
      { label: 'Status', cell: x => badge(x.status) },
      { label: 'Started', cell: x => timeEl(x.startedAt) },
      { label: 'Took', cell: x => fmtDuration(runSeconds(x)), num: true },
      { label: 'Kind', cell: x => `${x.mode}, ${x.trigger}` },
      ...['seen', 'added', 'updated', 'deleted', 'duplicate', 'skipped', 'failed'].map(n => ({ label: n, num: true, cell: x => num(x.counters[n]) })),
    ];
    const nav = pager('/runs', { status }, q, r.nextToken, ['← Newer runs', 'Older runs →']);
    replace(list, table(status ? `Runs with status ${status}` : 'Runs, newest first', cols, r.runs, { empty: status ? `No ${status} runs.` : 'No runs yet.' }), nav);
  }).catch(e => replace(list, errorBox(e)));
}

// runChart draws the last runs as bars of changes (added, updated, deleted)
// and dots of duration, oldest on the left: a spike or a slow run stands out.
function runChart(runs) {
  const rs = runs.filter(r => r.status !== 'running').slice(0, 30).reverse();
  if (rs.length === 0) return [h('figcaption', {}, 'Last runs'), h('p', { class: 'muted' }, 'No finished run yet.')];
  const W = 640, H = 160, pad = 28, bw = Math.max(4, Math.min(24, (W - 2 * pad) / rs.length - 4));
  const changes = rs.map(r => r.counters.added + r.counters.updated + r.counters.deleted);
  const durs = rs.map(r => runSeconds(r) || 0);
  const maxC = Math.max(1, ...changes), maxD = Math.max(1, ...durs);
  const step = (W - 2 * pad) / rs.length;
  const svg = h('svg:svg', { viewBox: `0 0 ${W} ${H + 20}`, class: 'chart-svg', role: 'img', 'aria-labelledby': 'chart-cap' });
  svg.appendChild(h('svg:line', { x1: pad, y1: H, x2: W - pad, y2: H, class: 'axis' }));
  rs.forEach((r, i) => {
    const x = pad + i * step + (step - bw) / 2;
    const ch = (changes[i] / maxC) * (H - 20);
    const link = h('svg:a', { href: '#/runs/' + r.id });
    const bar = h('svg:rect', { x, y: H - ch, width: bw, height: Math.max(ch, 1), class: 'bar bar-' + r.status });
    bar.appendChild(h('svg:title', {}, `${r.id} ${r.status}: ${num(changes[i])} changes (${num(r.counters.added)} added, ${num(r.counters.updated)} updated, ${num(r.counters.deleted)} deleted), took ${fmtDuration(durs[i])}`));
    link.appendChild(bar);
    svg.appendChild(link);
    const dy = H - (durs[i] / maxD) * (H - 20);
    svg.appendChild(h('svg:circle', { cx: x + bw / 2, cy: dy, r: 3.5, class: 'dur' }));
  });
  svg.appendChild(h('svg:text', { x: pad, y: 12, class: 'chart-label' }, `max ${num(maxC)} changes`));
  svg.appendChild(h('svg:text', { x: W - pad, y: 12, class: 'chart-label', 'text-anchor': 'end' }, `max ${fmtDuration(maxD)}`));
  svg.appendChild(h('svg:text', { x: pad, y: H + 16, class: 'chart-label' }, 'older'));
  svg.appendChild(h('svg:text', { x: W - pad, y: H + 16, class: 'chart-label', 'text-anchor': 'end' }, 'newer'));
  return [
    h('figcaption', { id: 'chart-cap' }, `The last ${rs.length} finished runs: bars are changes (added + updated + deleted), dots are how long each took. Hover or focus a bar for its numbers.`),
    h('div', { class: 'legend' }, h('span', { class: 'key key-bar' }), ' changes ', h('span', { class: 'key key-fail' }), ' failed or blocked ', h('span', { class: 'key key-dur' }), ' duration'),
    svg,
  ];
}
