// Overview: is the sync on, when does it run next, what is running now,
// what did the last run do, and what must an admin do.
import { h, replace, timeEl, fmtDuration, num, badge, errorBox, readOnlyNote, runSeconds } from './dom.js';
import { get, post, request, APIError } from './api.js';
import { describe } from './schedule.js';

const FAST = 1000, SLOW = 10000;

export function render(ctx) {
  const { main, isAdmin } = ctx;
  const state = { status: null, error: null, message: null, watching: '', timer: 0, stopped: false, mode: '' };
  const view = h('div', { class: 'overview' });
  // The dialog lives outside the view, which is redrawn every second while a
  // run goes: redrawing would close it.
  const dialog = h('dialog', { id: 'reset-dialog', 'aria-labelledby': 'reset-dh' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'reset-dh' }, 'Reset the sync?'),
      h('p', {}, 'Reset clears the sync state: the saved delta token is dropped, and a full sync starts now. It reads every user from Entra, updates the directory, and removes users that no longer exist in Entra (the deletion threshold still applies).'),
      h('p', {}, 'The directory, the settings and the run history are kept. Use it after changing the mapping or when the directory looks out of step.'),
      h('div', { class: 'row' },
        h('button', { value: 'cancel', autofocus: true }, 'Cancel'),
        h('button', { value: 'reset', class: 'danger', id: 'reset-confirm' }, 'Reset and start a full sync'))));
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'reset') {
      // While sync is disabled, reset clears the state and starts nothing:
      // the answer has no run then, and its message says so.
      act('Reset: a full sync started', async () => {
        const r = await post('/reset');
        if (r.run) state.watching = r.run.id;
        return r.message;
      });
    }
  });
  replace(main, h('h1', {}, 'Overview'), view, dialog);
  ctx.focusHeading();

  async function load() {
    clearTimeout(state.timer);
    try {
      state.status = await get('/status');
      state.error = null;
    } catch (e) {
      state.error = e;
    }
    if (state.stopped) return;
    const active = state.status && state.status.activeRun;
    if (state.watching && (!active || active.id !== state.watching)) {
      const done = state.status && state.status.lastRun;
      if (done && done.id === state.watching) {
        state.message = { kind: done.status === 'succeeded' ? 'ok' : 'warn', text: `Run ${done.id} ${done.status}: ${num(done.counters.seen)} seen, ${num(done.counters.added)} added, ${num(done.counters.updated)} updated, ${num(done.counters.deleted)} deleted.` };
      }
      state.watching = '';
    }
    if (active && active.status === 'running') state.watching = active.id;
    draw();
    state.timer = setTimeout(load, active ? FAST : SLOW);
  }

  // act runs a write and shows its outcome; a 409 names the run in the way.
  async function act(what, f) {
    try {
      state.message = null;
      const said = await f();
      state.message = { kind: 'ok', text: typeof said === 'string' && said ? said : what + '.' };
    } catch (e) {
      state.message = { kind: 'error', error: e };
    }
    await load();
  }

  const syncNow = (full) => act(full ? 'Full sync started' : 'Sync started', async () => {
    const res = await post('/sync', full ? { mode: 'full' } : {});
    state.watching = res.run.id;
  });

  // A preview reads Entra as that sync would and changes nothing; its
  // outcome shows beside the button that applies it (lastPreviewCard).
  const previewSync = (full) => act('Preview started: it changes nothing', async () => {
    const res = await post('/sync', { mode: full ? 'full-preview' : 'preview' });
    state.watching = res.run.id;
  });

  async function setEnabled(on) {
    await act(on ? 'Sync enabled' : 'Sync disabled', async () => {
      // Read-modify-write with the ETag; a concurrent save of someone else
      // is re-read once, since only this one switch changes.
      for (let attempt = 0; ; attempt++) {
        const cur = await request('GET', '/settings');
        const s = cur.body;
        s.enabled = on;
        try {
          await request('PUT', '/settings', { body: s, ifMatch: cur.headers.get('ETag') });
          return;
        } catch (e) {
          if (e.status !== 412 || attempt > 0) throw e;
        }
      }
    });
  }

  function draw() {
    // Keep keyboard focus on the same control across redraws.
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focus : '';
    const st = state.status;
    const parts = [];
    if (state.message) {
      parts.push(state.message.error
        ? errorBox(state.message.error, state.message.error.runId ? h('p', {}, h('a', { href: '#/runs/' + state.message.error.runId }, 'Open run ' + state.message.error.runId)) : null)
        : h('p', { class: 'banner banner-' + state.message.kind, role: 'status' }, state.message.text));
    }
    if (state.error && !st) {
      replace(view, ...parts, errorBox(state.error));
      return;
    }
    if (state.error) parts.push(errorBox(state.error));
    const active = st.activeRun;
    parts.push(h('div', { class: 'grid' },
      syncCard(st, active),
      active ? activeCard(st, active) : lastRunCard(st)));
    if (active) parts.push(lastRunCard(st));
    if (st.lastPreview) parts.push(lastPreviewCard(st.lastPreview));
    parts.push(actionsCard(st));
    parts.push(resetCard(st));
    replace(view, ...parts);
    if (focused) {
      const again = view.querySelector(`[data-focus="${focused}"]`);
      if (again) again.focus();
    }
  }

  function syncCard(st, active) {
    const sw = h('input', { type: 'checkbox', role: 'switch', id: 'enabled-switch', checked: st.enabled, disabled: !isAdmin, 'data-focus': 'enabled',
      onchange: (e) => setEnabled(e.target.checked) });
    const modeSel = h('select', { id: 'sync-mode', 'data-focus': 'mode', onchange: (e) => { state.mode = e.target.value; } },
      h('option', { value: '', selected: state.mode === '' }, 'Incremental (changes since the last run)'),
      h('option', { value: 'full', selected: state.mode === 'full' }, 'Full (read every user, remove those gone)'));
    const running = active && active.status === 'running';
    return h('section', { class: 'card', 'aria-labelledby': 'sync-h' },
      h('h2', { id: 'sync-h' }, 'Sync'),
      h('div', { class: 'switch-row' }, sw, h('label', { for: 'enabled-switch' }, st.enabled ? 'Sync is enabled' : 'Sync is disabled')),
      isAdmin ? null : readOnlyNote('Turning sync on or off'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Schedule'), h('dd', {}, describe(st.schedule), ' ', h('a', { href: '#/settings' }, isAdmin ? 'change' : 'settings')),
        h('dt', {}, 'Next run'), h('dd', {}, st.nextRun ? timeEl(st.nextRun) : h('span', { class: 'muted' }, st.enabled ? 'none scheduled' : 'none: sync is disabled')),
        h('dt', {}, 'Directory'), h('dd', {}, `${num(st.directoryUsers)} users (${num((st.userCounts || {}).active)} active, ${num((st.userCounts || {}).duplicate)} duplicate, ${num((st.userCounts || {}).skipped)} skipped)`)),
      isAdmin
        ? h('div', { class: 'row' },
          h('label', { for: 'sync-mode', class: 'sr-only' }, 'Kind of sync'), modeSel,
          h('button', { type: 'button', class: 'primary', id: 'sync-now', 'data-focus': 'syncnow', disabled: !!active,
            'aria-describedby': active ? 'sync-refused' : null, onclick: () => syncNow(state.mode === 'full') }, 'Sync now'),
          h('button', { type: 'button', id: 'preview-sync', 'data-focus': 'preview', disabled: !!active,
            title: 'Compute what this sync would change, without changing anything', onclick: () => previewSync(state.mode === 'full') }, 'Preview'))
        : readOnlyNote('Sync now'),
      active ? h('p', { id: 'sync-refused', class: 'note' }, `Sync now is not possible while run `, h('a', { href: '#/runs/' + active.id }, active.id),
        running ? ' is going.' : ' waits for a decision on its deletions.') : null);
  }

  function activeCard(st, run) {
    const c = run.counters;
    // The total is not known before the last page: estimate it from the
    // directory (a full run reads about that many users).
    const estimate = Math.max(st.directoryUsers || 0, (st.lastRun && st.lastRun.counters.seen) || 0);
    const full = run.mode === 'full' && estimate > 0;
    const rate = run.rateUsersPerSecond || 0;
    const left = full && rate > 0 && c.seen < estimate ? (estimate - c.seen) / rate : null;
    const pct = full ? Math.min(100, Math.round((c.seen / estimate) * 100)) : null;
    const bar = run.phase === 'enumerating' && full
      ? h('progress', { id: 'run-progress', max: String(estimate), value: String(Math.min(c.seen, estimate)), 'aria-labelledby': 'active-h' }, `${pct}%`)
      : h('progress', { id: 'run-progress', 'aria-labelledby': 'active-h' });
    return h('section', { class: 'card', 'aria-labelledby': 'active-h', id: 'active-run' },
      h('h2', { id: 'active-h' }, run.status === 'blocked' ? 'Run waiting for approval' : 'Run in progress'),
      h('p', {}, h('a', { href: '#/runs/' + run.id }, run.id), ' ', badge(run.status), ` ${run.mode} sync, ${run.trigger}`, run.requestedBy ? ` by ${run.requestedBy}` : ''),
      bar,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Phase'), h('dd', { id: 'run-phase' }, run.phase || '—'),
        h('dt', {}, 'Pages'), h('dd', { id: 'run-pages' }, num(run.pagesDone)),
        h('dt', {}, 'Users seen'), h('dd', { id: 'run-seen' }, num(c.seen), full ? ` of about ${num(estimate)} (${pct}%)` : ''),
        h('dt', {}, 'Rate'), h('dd', {}, `${rate.toLocaleString()} users/s`),
        h('dt', {}, 'Elapsed'), h('dd', {}, fmtDuration(run.elapsedSeconds)),
        h('dt', {}, 'Time left'), h('dd', {}, left !== null ? 'about ' + fmtDuration(left) : (run.mode === 'full' ? '—' : 'unknown (incremental: only changes are read)'))),
      counters(c));
  }

  function lastRunCard(st) {
    const r = st.lastRun;
    if (!r) return h('section', { class: 'card', 'aria-labelledby': 'last-h' }, h('h2', { id: 'last-h' }, 'Last run'), h('p', { class: 'muted' }, 'No run has finished yet.'));
    return h('section', { class: 'card', 'aria-labelledby': 'last-h', id: 'last-run' },
      h('h2', { id: 'last-h' }, 'Last run'),
      h('p', {}, h('a', { href: '#/runs/' + r.id }, r.id), ' ', badge(r.status), ` ${r.mode} sync, finished `, timeEl(r.finishedAt), ` after ${fmtDuration(runSeconds(r))}`),
      r.error ? h('p', { class: 'error-text' }, r.error) : null,
      r.hint ? h('p', {}, r.hint) : null,
      counters(r.counters));
  }

  function lastPreviewCard(r) {
    return h('section', { class: 'card', 'aria-labelledby': 'preview-h', id: 'last-preview' },
      h('h2', { id: 'preview-h' }, 'Last preview'),
      h('p', {}, h('a', { href: '#/runs/' + r.id }, r.id), ' ', badge(r.status), ` ${r.mode} preview, finished `, timeEl(r.finishedAt),
        ': nothing was changed; a sync would do this:'),
      r.error ? h('p', { class: 'error-text' }, r.error) : null,
      r.hint ? h('p', {}, r.hint) : null,
      counters(r.counters));
  }

  function actionsCard(st) {
    const items = (st.actions || []).map(a => h('li', { class: 'action action-' + a.code, 'data-code': a.code },
      h('p', {}, h('strong', {}, a.message)),
      a.hint ? h('p', {}, a.hint) : null,
      resolve(st, a)));
    return h('section', { class: 'card', 'aria-labelledby': 'actions-h', id: 'actions' },
      h('h2', { id: 'actions-h' }, 'What needs doing'),
      items.length ? h('ul', { class: 'actions' }, items) : h('p', { class: 'muted' }, 'Nothing: the sync needs no decision.'));
  }

  // resolve is the button or instruction that deals with an action.
  function resolve(st, a) {
    const run = st.activeRun, last = st.lastRun;
    const adminOnly = (btn, what) => isAdmin ? btn : readOnlyNote(what);
    switch (a.code) {
      case 'deletions_blocked':
        return h('div', { class: 'row' },
          h('a', { href: '#/runs/' + run.id, class: 'button' }, 'Review the pending deletions'),
          adminOnly(h('span', {},
            h('button', { type: 'button', class: 'danger', 'data-focus': 'approve', onclick: () => act('Deletions approved', () => post(`/runs/${run.id}/deletions/approve`)) }, `Approve ${num(run.pendingDeletions)} deletions`), ' ',
            h('button', { type: 'button', 'data-focus': 'reject', onclick: () => act('Deletions rejected: those users stay', () => post(`/runs/${run.id}/deletions/reject`)) }, 'Reject (keep the users)')), 'Approving or rejecting deletions'));
      case 'sync_disabled':
        return adminOnly(h('button', { type: 'button', class: 'primary', 'data-focus': 'enable', onclick: () => setEnabled(true) }, 'Enable sync'), 'Enabling sync');
      case 'graph_permission_missing':
        return h('div', {}, h('ol', { class: 'steps' },
          h('li', {}, 'In the Entra admin center, open App registrations, the app of this function app, API permissions.'),
          h('li', {}, 'Add the Microsoft Graph application permission User.Read.All (and GroupMember.Read.All when the sync is scoped to groups), then Grant admin consent.'),
          h('li', {}, 'Start a sync here.')),
        last ? h('a', { href: '#/runs/' + last.id }, 'Open the failed run') : null, ' ',
        adminOnly(syncButton(), 'Sync now'));
      case 'credentials_rejected':
        return h('div', {}, h('ol', { class: 'steps' },
          h('li', {}, 'Check the app settings GRAPH_TENANT_ID and GRAPH_CLIENT_ID, and the credential: a client secret that has not expired (GRAPH_CLIENT_SECRET), the certificate, or the managed identity.'),
          h('li', {}, 'Restart the function app if you changed app settings, then start a sync here.')),
        last ? h('a', { href: '#/runs/' + last.id }, 'Open the failed run') : null, ' ',
        adminOnly(syncButton(), 'Sync now'));
      case 'last_run_failed':
        return h('div', { class: 'row' },
          last ? h('a', { href: '#/runs/' + last.id + '?level=warn,error', class: 'button' }, 'Read what went wrong') : null,
          adminOnly(syncButton(), 'Sync now'));
      case 'never_synced':
        return adminOnly(syncButton(), 'Sync now');
      case 'nothing_scheduled':
        return h('a', { href: '#/settings', class: 'button' }, 'Set a schedule');
    }
    return null;
  }

  function syncButton() {
    return h('button', { type: 'button', class: 'primary', onclick: () => syncNow(false) }, 'Sync now');
  }

  function resetCard(st) {
    if (!isAdmin) return h('section', { class: 'card', 'aria-labelledby': 'reset-h' }, h('h2', { id: 'reset-h' }, 'Reset'), readOnlyNote('Reset'));
    return h('section', { class: 'card', 'aria-labelledby': 'reset-h' },
      h('h2', { id: 'reset-h' }, 'Reset'),
      h('p', {}, 'Start over from a full sync, keeping the directory and settings.'),
      h('button', { type: 'button', id: 'reset', disabled: !!st.activeRun, onclick: () => dialog.showModal() }, 'Reset…'),
      st.activeRun ? h('p', { class: 'note' }, 'Not while a run is going.') : null);
  }

  load();
  return () => { state.stopped = true; clearTimeout(state.timer); };
}

export function counters(c) {
  const names = ['seen', 'added', 'updated', 'unchanged', 'deleted', 'duplicate', 'skipped', 'failed'];
  // Scope and group counters show when a run had any.
  for (const [n, label] of [['outOfScope', 'out of scope'], ['membersAdded', 'joined groups'], ['membersRemoved', 'left groups']]) {
    if (c && c[n]) names.push([n, label]);
  }
  return h('dl', { class: 'counters' }, names.map(n => {
    const [key, label] = Array.isArray(n) ? n : [n, n];
    return h('div', { class: 'counter counter-' + key }, h('dt', {}, label), h('dd', { 'data-counter': key }, num(c ? c[key] : 0)));
  }));
}

export { APIError };
