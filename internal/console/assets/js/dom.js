// DOM helpers. Every piece of text reaches the page through textContent or
// an attribute set with setAttribute: user attributes come from Entra and are
// untrusted, so nothing here ever parses a string as HTML.

// h builds an element: h('a', {href: '#/runs', class: 'x'}, 'text', child).
// Attributes starting with "on" take a function (an event listener); a
// value of false, null or undefined leaves the attribute out.
export function h(tag, attrs, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'disabled' || k === 'selected') {
      el[k] = !!v;
      if (v) el.setAttribute(k, '');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and puts children in it.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export function nextId(prefix) { uid += 1; return `${prefix}-${uid}`; }

// field is a labelled form control with room for an error message under it.
// path names the settings field it edits (as the API names it in errors,
// e.g. "mapping[2].source"), so a validation error lands on it.
export function field(label, control, opts = {}) {
  const id = control.id || nextId('f');
  control.id = id;
  const err = h('span', { class: 'field-error', id: id + '-err', role: 'alert' });
  if (opts.path) control.dataset.path = opts.path;
  const hint = opts.hint ? h('span', { class: 'field-hint', id: id + '-hint' }, opts.hint) : null;
  const described = [hint ? id + '-hint' : '', id + '-err'].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  return h('div', { class: 'field' + (opts.inline ? ' inline' : '') }, h('label', { for: id }, label), control, hint, err);
}

// Time formatting: local time for people, with the UTC instant in a title.
export function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (isNaN(d)) return String(s);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function timeEl(s) {
  if (!s) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: s, title: new Date(s).toISOString() }, fmtTime(s));
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return '—';
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60), s = seconds % 60;
  if (m < 60) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function runSeconds(run) {
  if (!run || !run.startedAt) return null;
  const end = run.finishedAt ? new Date(run.finishedAt) : new Date();
  return (end - new Date(run.startedAt)) / 1000;
}

export function num(n) { return (n ?? 0).toLocaleString(); }

export function badge(status) {
  return h('span', { class: 'badge badge-' + String(status || 'unknown').replace(/[^a-z]/g, '') }, status || 'unknown');
}

// table builds a table from column definitions {label, cell(row)}.
export function table(caption, columns, rows, opts = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: opts.class || '' },
      h('caption', { class: opts.showCaption ? '' : 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, columns.map(c => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)))),
      h('tbody', {}, rows.length === 0
        ? h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, opts.empty || 'Nothing to show.'))
        : rows.map(r => h('tr', {}, columns.map(c => h('td', { class: c.num ? 'num' : '' }, c.cell(r))))))));
}

// readOnlyNote is what a support user sees instead of a write control.
export function readOnlyNote(what) {
  return h('p', { class: 'note readonly' }, `${what} needs the admin role (Entra app role EntraSync.Admin, or the admin key). You are signed in with the support role, which is read-only.`);
}

// errorBox shows an API error: its message and what to do.
export function errorBox(err, extra) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('p', {}, h('strong', {}, 'Error: '), err.message || String(err)),
    err.hint ? h('p', {}, err.hint) : null,
    extra || null);
}

// pager links to the newer and older pages of a listing. The API pages
// forward only, so the tokens of the pages before this one travel in the
// page's own address ("prev", "-" standing for the first page).
export function pager(path, params, q, nextToken, labels = ['← Previous', 'Next →']) {
  const token = q.get('token') || '';
  const prev = (q.get('prev') || '').split(',').filter(Boolean);
  const link = (p) => '#' + path + '?' + new URLSearchParams(Object.entries({ ...params, ...p }).filter(([, v]) => v)).toString();
  return h('nav', { class: 'row pager', 'aria-label': 'Pages' },
    prev.length ? h('a', { class: 'button', rel: 'prev', href: link({ token: prev[prev.length - 1].replace(/^-$/, ''), prev: prev.slice(0, -1).join(',') }) }, labels[0]) : null,
    nextToken ? h('a', { class: 'button', rel: 'next', href: link({ token: nextToken, prev: [...prev, token || '-'].join(',') }) }, labels[1]) : null);
}
