// The console's entry point: sign-in, navigation and the hash router.
import { h, replace, field, errorBox } from './dom.js';
import { get, session, setUnauthorizedHandler, APIError } from './api.js';
import * as overview from './overview.js';
import * as history from './history.js';
import * as run from './run.js';
import * as directory from './directory.js';
import * as settings from './settings.js';
import * as audit from './audit.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const banner = document.getElementById('banner');

// Pages in the navigation. Groups is left out until the API has groups.
const pages = [
  { path: '/', label: 'Overview', page: overview },
  { path: '/runs', label: 'History', page: history },
  { path: '/users', label: 'Directory', page: directory },
  { path: '/settings', label: 'Settings', page: settings },
  { path: '/audit', label: 'Audit', page: audit },
];

let me = null;
let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(qs || '') };
}

export function navigate(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString() : '';
  location.hash = '#' + path + (q ? '?' + q : '');
}

// showBanner shows a short message for everyone, announced by screen readers.
export function showBanner(text, kind = 'info') {
  replace(banner, text ? h('p', { class: 'banner banner-' + kind }, text) : null);
}

function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  if (!me) return;
  const { path, query } = parseHash();
  const parts = path.split('/').filter(Boolean);
  let page, params = {};
  if (parts.length === 0) page = overview;
  else if (parts[0] === 'runs' && parts.length === 2) { page = run; params.id = parts[1]; }
  else if (parts[0] === 'users' && parts.length === 2) { page = directory; params.id = parts[1]; }
  else page = (pages.find(p => p.path === '/' + parts[0]) || {}).page;
  for (const a of nav.querySelectorAll('a')) {
    const current = a.getAttribute('href') === '#' + (parts.length ? '/' + parts[0] : '/');
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  showBanner('');
  if (!page) {
    replace(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'There is no page ', h('code', {}, path), '. ', h('a', { href: '#/' }, 'Go to the overview.')));
    focusHeading();
    return;
  }
  const ctx = { me, isAdmin: me.role === 'admin', main, params, query, navigate, showBanner, focusHeading };
  replace(main);
  try {
    cleanup = page.render(ctx) || null;
  } catch (e) {
    replace(main, errorBox(e));
  }
}

// focusHeading moves focus to the page's heading after navigation, so
// keyboard and screen reader users start at the top of the new page.
function focusHeading() {
  const h1 = main.querySelector('h1');
  if (h1) { h1.setAttribute('tabindex', '-1'); h1.focus({ preventScroll: false }); }
}

function renderNav() {
  replace(nav, h('ul', {}, pages.map(p => h('li', {}, h('a', { href: '#' + p.path }, p.label)))));
  nav.hidden = false;
  replace(who,
    h('span', { class: 'badge badge-role', title: me.via === 'key' ? 'signed in with a function key' : 'signed in with App Service Authentication' },
      me.role === 'admin' ? 'admin' : 'support (read-only)'),
    ' ', h('span', { class: 'who-name' }, me.name), ' ',
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

function signOut() {
  session.clear();
  if (me && me.via === 'easyauth') {
    // The session is App Service Authentication's cookie: end it there.
    location.href = '/.auth/logout?post_logout_redirect_uri=' + encodeURIComponent(location.pathname);
    return;
  }
  me = null;
  if (cleanup) { cleanup(); cleanup = null; }
  nav.hidden = true;
  replace(who);
  signIn();
}

// signIn asks for the admin or support key. In Azure with App Service
// Authentication the session cookie already identifies the user and this
// form is not shown; the link to /.auth/login/aad is there for a session that
// expired.
function signIn(err) {
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false', required: true, class: 'wide' });
  const msg = h('div', { 'aria-live': 'polite' }, err ? errorBox(err) : null);
  const form = h('form', { class: 'card signin', onsubmit: async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    session.setKey(key);
    try {
      await start();
    } catch (e) {
      session.clear();
      replace(msg, errorBox(e.status === 401 ? new APIError(401, { error: { message: 'That key was not accepted.', hint: 'Paste the admin key or the support key exactly as `make run` printed it.' } }) : e));
      input.focus();
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Paste the admin or the support key. Locally, ', h('code', {}, 'make run'), ' prints both (', h('code', {}, 'admin key:'), ' and ', h('code', {}, 'support key:'), '). The key is kept for this browser tab only and sent in a header, never in a link.'),
  field('Function key', input),
  h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
  msg,
  h('p', { class: 'muted' }, 'In Azure: ', h('a', { href: '/.auth/login/aad?post_login_redirect_uri=' + encodeURIComponent(location.pathname) }, 'sign in with your Microsoft account'), ' (App Service Authentication, app roles EntraSync.Admin or EntraSync.Support).'));
  replace(main, form);
  input.focus();
}

async function start() {
  me = await get('/me', { noSignIn: true });
  renderNav();
  route();
}

setUnauthorizedHandler((err) => {
  if (!me) return;
  session.clear();
  me = null;
  nav.hidden = true;
  replace(who);
  signIn(new APIError(401, { error: { message: 'Your sign-in is no longer valid: ' + err.message, hint: 'Sign in again.' } }));
});

window.addEventListener('hashchange', route);

start().catch((e) => {
  if (e.status === 401 || e.status === 0 && !session.key()) signIn(session.key() ? e : null);
  else if (e.status === 403) replace(main, h('h1', {}, 'No access'), errorBox(e));
  else signIn(e);
});
