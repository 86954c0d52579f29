// Directory: the synced users, searched by the start of a display name or
// email, filtered by status, paged; and one user's page.
import { h, replace, timeEl, badge, errorBox, table, field, pager } from './dom.js';
import { get, listPage } from './api.js';

const STATUSES = ['active', 'duplicate', 'skipped'];

export function render(ctx) {
  if (ctx.params.id) return renderUser(ctx);
  const { main, query: q, navigate } = ctx;
  const prefix = q.get('prefix') || '', status = q.get('status') || '', token = q.get('token') || '';
  const search = h('input', { type: 'search', id: 'user-search', value: prefix, placeholder: 'Ada, ada@contoso…', spellcheck: 'false', autocomplete: 'off' });
  const select = h('select', { id: 'user-status' }, h('option', { value: '' }, 'any status'), STATUSES.map(s => h('option', { value: s, selected: s === status }, s)));
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading users…'));
  const submit = (e) => { e.preventDefault(); navigate('/users', { prefix: search.value.trim(), status: select.value }); };
  select.addEventListener('change', submit);
  replace(main, h('h1', {}, 'Directory'),
    h('form', { class: 'row filters', role: 'search', onsubmit: submit },
      field('Name or email starts with', search, { inline: true }),
      field('Status', select, { inline: true }),
      h('button', { type: 'submit', class: 'primary' }, 'Search')),
    list);
  ctx.focusHeading();
  listPage('/users', { prefix, status, token, limit: 25 }, 'users').then(r => {
    replace(list,
      table(prefix ? `Users whose name or email starts with ${prefix}` : 'Users', [
        { label: 'Display name', cell: u => h('a', { href: '#/users/' + u.id, class: 'user-link' }, u.fields.displayName || u.upn || u.id) },
        { label: 'Email', cell: u => u.email || u.fields.email || '' },
        { label: 'Department', cell: u => u.fields.department || '' },
        { label: 'Status', cell: u => [badge(u.status), u.reason ? h('span', { class: 'muted' }, ' ', u.reason) : null] },
        { label: 'Last change', cell: u => timeEl(u.changedAt) },
      ], r.users, { empty: 'No user matches.' }),
      pager('/users', { prefix, status }, q, r.nextToken));
  }).catch(e => replace(list, errorBox(e)));
}

function renderUser(ctx) {
  const { main, params } = ctx;
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const title = h('h1', {}, 'User');
  replace(main, h('p', {}, h('a', { href: '#/users' }, '← Directory')), title, body);
  ctx.focusHeading();
  get('/users/' + encodeURIComponent(params.id)).then(({ user: u }) => {
    title.textContent = u.fields.displayName || u.upn || u.id;
    const fields = Object.keys(u.fields).sort();
    replace(body,
      h('section', { class: 'card', 'aria-labelledby': 'st-h' },
        h('h2', { id: 'st-h' }, 'Status'),
        h('p', {}, badge(u.status), u.reason ? ' ' + u.reason : ''),
        u.duplicateOf ? h('p', {}, 'Its email belongs to ', h('a', { href: '#/users/' + u.duplicateOf }, u.duplicateOf), '.') : null,
        h('dl', { class: 'facts' },
          h('dt', {}, 'Object id'), h('dd', {}, h('code', {}, u.id)),
          h('dt', {}, 'UPN'), h('dd', {}, u.upn || '—'),
          h('dt', {}, 'In the directory since'), h('dd', {}, timeEl(u.createdAt)),
          h('dt', {}, 'Last change'), h('dd', {}, timeEl(u.changedAt)))),
      h('section', { class: 'card', 'aria-labelledby': 'fields-h' },
        h('h2', { id: 'fields-h' }, 'Mapped fields'),
        table('Mapped fields', [
          { label: 'Field', cell: f => h('code', {}, f) },
          { label: 'Value', cell: f => u.fields[f] },
        ], fields, { empty: 'No mapped field has a value.' })),
      h('section', { class: 'card', 'aria-labelledby': 'groups-h' },
        h('h2', { id: 'groups-h' }, 'Groups'),
        u.groups.length ? h('ul', {}, u.groups.map(g => h('li', {}, g.displayName + ' ', h('span', { class: 'muted' }, '(' + g.kind + ') '), h('code', {}, g.id)))) : h('p', { class: 'muted' }, 'In no directory group.')));
  }).catch(e => replace(body, errorBox(e)));
}
