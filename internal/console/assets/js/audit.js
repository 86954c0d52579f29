// Audit: who changed what and when, the document before and after side by
// side, the changed fields first.
import { h, replace, timeEl, errorBox, pager } from './dom.js';
import { get, query } from './api.js';

export function render(ctx) {
  const { main, query: q } = ctx;
  const list = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  replace(main, h('h1', {}, 'Audit'), h('p', {}, 'Every change of the settings, newest first.'), list);
  ctx.focusHeading();
  get('/audit' + query({ limit: 10, token: q.get('token') || '' })).then(r => {
    replace(list,
      r.entries.length ? h('ol', { class: 'audit' }, r.entries.map(entry)) : h('p', { class: 'muted' }, 'No change yet: the settings are the defaults.'),
      pager('/audit', {}, q, r.nextToken, ['← Newer', 'Older →']));
  }).catch(e => replace(list, errorBox(e)));
}

function entry(e) {
  const before = e.before ?? null, after = e.after ?? null;
  const changes = diff(flatten(before), flatten(after));
  return h('li', { class: 'card audit-entry' },
    h('h2', {}, timeEl(e.time), ' ', h('span', { class: 'who-name' }, e.who), ' ', h('span', { class: 'muted' }, e.action)),
    h('div', { class: 'table-wrap' }, h('table', { class: 'diff' },
      h('caption', { class: 'sr-only' }, 'Changed fields'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
      h('tbody', {}, changes.length === 0
        ? h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No field changed.'))
        : changes.map(c => h('tr', {}, h('th', { scope: 'row' }, h('code', {}, c.path)),
          h('td', { class: 'before' }, c.before === undefined ? h('span', { class: 'muted' }, '(none)') : h('code', {}, c.before)),
          h('td', { class: 'after' }, c.after === undefined ? h('span', { class: 'muted' }, '(none)') : h('code', {}, c.after))))))),
    h('details', {}, h('summary', {}, 'Whole documents'),
      h('div', { class: 'side-by-side' },
        h('figure', {}, h('figcaption', {}, 'Before'), h('pre', {}, before ? JSON.stringify(before, null, 2) : '(defaults)')),
        h('figure', {}, h('figcaption', {}, 'After'), h('pre', {}, after ? JSON.stringify(after, null, 2) : '(none)')))));
}

// flatten turns a document into {"schedule.frequency": "hourly", ...}.
// Mapping rows are keyed by their field name, so removing one row does not
// show every later row as changed.
function flatten(v, prefix = '', out = {}) {
  if (v === null || v === undefined) return out;
  if (Array.isArray(v)) {
    if (v.every(x => x && typeof x === 'object' && 'field' in x)) {
      for (const x of v) flatten(x, `${prefix}[${x.field}]`, out);
    } else {
      out[prefix] = v.length ? v.join(', ') : '[]';
    }
    return out;
  }
  if (typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
    return out;
  }
  out[prefix] = String(v);
  return out;
}

function diff(a, b) {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter(k => a[k] !== b[k]).map(k => ({ path: k, before: a[k], after: b[k] }));
}
