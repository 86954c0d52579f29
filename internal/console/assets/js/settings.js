// Settings: the mapping editor, required fields, the schedule with a preview
// of its next runs, the deletion threshold and the scope. Saved whole with
// the ETag it was read with; when someone else saved first (412) the page
// says so and offers their version; a validation error of the API is shown
// on the field it names.
import { h, replace, errorBox, field, readOnlyNote, nextId } from './dom.js';
import { request } from './api.js';
import { nextTimes, inZone, validZone, wallInput, fromWallInput } from './schedule.js';

const FREQUENCIES = [
  ['hourly', 'Hourly'], ['daily', 'Daily'], ['minutes', 'Every N minutes'], ['once', 'Once'], ['manual', 'Manual (Sync now only)'],
];

export function render(ctx) {
  const { main, isAdmin } = ctx;
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading the settings…'));
  replace(main, h('h1', {}, 'Settings'), body);
  ctx.focusHeading();
  load(ctx, body, isAdmin);
}

async function load(ctx, body, isAdmin, notice) {
  let res;
  try {
    res = await request('GET', '/settings');
  } catch (e) {
    replace(body, errorBox(e));
    return;
  }
  edit(ctx, body, isAdmin, res.body, res.headers.get('ETag'), notice);
}

function edit(ctx, body, isAdmin, s, etag, notice) {
  // The model being edited: the mapping as rows, required as a flag per row.
  const req = new Set(s.required || []);
  const rows = (s.mapping || []).map(m => ({
    key: nextId('row'), field: m.field || '', kind: m.constant ? 'constant' : 'source',
    source: m.source || '', fallback: m.fallback || '', constant: m.constant || '', sensitive: !!m.sensitive, required: req.has(m.field),
  }));
  const sched = { ...s.schedule };
  const top = h('div', { 'aria-live': 'polite', id: 'settings-message' }, notice || null);

  // ---- enabled ----
  const enabled = h('input', { type: 'checkbox', id: 'set-enabled', checked: s.enabled, 'data-path': 'enabled' });

  // ---- mapping ----
  const mapBody = h('tbody', {});
  const emailSel = h('select', { id: 'set-email', 'data-path': 'emailField' });
  function drawMapping(focusRow) {
    replace(mapBody, rows.map((r, i) => mappingRow(r, i)));
    drawEmail();
    if (focusRow) {
      const el = mapBody.querySelector(`[data-row="${focusRow}"] input`);
      if (el) el.focus();
    }
  }
  function drawEmail() {
    const cur = emailSel.value || s.emailField || '';
    replace(emailSel, h('option', { value: '' }, '(no duplicate detection)'),
      rows.filter(r => r.field).map(r => h('option', { value: r.field, selected: r.field === cur }, r.field)));
  }
  function mappingRow(r, i) {
    const bind = (el, prop, kind = 'value') => {
      el.addEventListener(kind === 'checked' ? 'change' : 'input', () => { r[prop] = el[kind]; if (prop === 'field') drawEmail(); });
      return el;
    };
    const cell = (el, label) => { el.setAttribute('aria-label', `${label} of row ${i + 1}`); const err = h('span', { class: 'field-error', id: nextId('err'), role: 'alert' }); el.setAttribute('aria-describedby', err.id); return h('td', {}, el, err); };
    const fieldIn = bind(h('input', { type: 'text', value: r.field, 'data-path': `mapping[${i}].field`, spellcheck: 'false', size: 14 }), 'field');
    const kindSel = h('select', { 'data-path': `mapping[${i}]` },
      h('option', { value: 'source', selected: r.kind === 'source' }, 'Graph attribute'),
      h('option', { value: 'constant', selected: r.kind === 'constant' }, 'Constant'));
    const srcIn = bind(h('input', { type: 'text', value: r.source, 'data-path': `mapping[${i}].source`, spellcheck: 'false', size: 16, list: 'graph-attrs', hidden: r.kind !== 'source' }), 'source');
    const constIn = bind(h('input', { type: 'text', value: r.constant, 'data-path': `mapping[${i}].constant`, size: 16, hidden: r.kind !== 'constant' }), 'constant');
    const fbIn = bind(h('input', { type: 'text', value: r.fallback, 'data-path': `mapping[${i}].fallback`, spellcheck: 'false', size: 14, list: 'graph-attrs', disabled: r.kind !== 'source' }), 'fallback');
    kindSel.addEventListener('change', () => {
      r.kind = kindSel.value;
      srcIn.hidden = r.kind !== 'source';
      constIn.hidden = r.kind !== 'constant';
      fbIn.disabled = r.kind !== 'source';
    });
    const sens = bind(h('input', { type: 'checkbox', checked: r.sensitive, 'aria-label': `Sensitive (row ${i + 1})` }), 'sensitive', 'checked');
    const reqBox = bind(h('input', { type: 'checkbox', checked: r.required, 'data-required-row': r.key, 'aria-label': `Required (row ${i + 1})` }), 'required', 'checked');
    const remove = h('button', { type: 'button', class: 'link', 'aria-label': `Remove the mapping of ${r.field || 'row ' + (i + 1)}`, onclick: () => {
      rows.splice(i, 1);
      drawMapping();
      addBtn.focus();
    } }, 'Remove');
    const valueCell = cell(srcIn, 'Graph attribute');
    valueCell.insertBefore(constIn, valueCell.firstChild.nextSibling);
    constIn.setAttribute('aria-label', `Constant of row ${i + 1}`);
    return h('tr', { 'data-row': r.key, 'data-path': `mapping[${i}]` },
      cell(fieldIn, 'Directory field'), cell(kindSel, 'Source kind'), valueCell, cell(fbIn, 'Fallback attribute'),
      h('td', { class: 'center' }, sens), h('td', { class: 'center' }, reqBox), h('td', {}, remove));
  }
  const addBtn = h('button', { type: 'button', id: 'add-attribute', onclick: () => {
    const r = { key: nextId('row'), field: '', kind: 'source', source: '', fallback: '', constant: '', sensitive: false, required: false };
    rows.push(r);
    drawMapping(r.key);
  } }, '+ Add new attribute');

  // ---- schedule ----
  const freq = h('select', { id: 'set-frequency', 'data-path': 'schedule.frequency' }, FREQUENCIES.map(([v, l]) => h('option', { value: v, selected: v === sched.frequency }, l)));
  const tz = h('input', { type: 'text', id: 'set-timezone', value: sched.timeZone || 'UTC', list: 'time-zones', 'data-path': 'schedule.timeZone', spellcheck: 'false' });
  const tod = h('input', { type: 'time', id: 'set-timeofday', value: sched.timeOfDay || '02:00', 'data-path': 'schedule.timeOfDay' });
  const minute = h('input', { type: 'number', id: 'set-minute', min: 0, max: 59, value: sched.minute || 0, 'data-path': 'schedule.minute' });
  const every = h('input', { type: 'number', id: 'set-every', min: 15, max: 1440, step: 5, value: sched.everyMinutes || 60, 'data-path': 'schedule.everyMinutes' });
  const at = h('input', { type: 'datetime-local', id: 'set-at', value: wallInput(sched.at, sched.timeZone), 'data-path': 'schedule.at' });
  const wTod = field('Time of day', tod), wMin = field('Minute past the hour', minute), wEvery = field('Every (minutes, 15 to 1440)', every), wAt = field('At (in the time zone below)', at);
  const preview = h('div', { class: 'preview', id: 'schedule-preview', 'aria-live': 'polite' });
  const zones = h('datalist', { id: 'time-zones' }, (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : ['UTC']).map(z => h('option', { value: z })));
  function schedule() {
    const f = freq.value, zone = tz.value.trim() || 'UTC';
    const out = { frequency: f, timeZone: zone };
    if (f === 'daily') out.timeOfDay = tod.value;
    if (f === 'hourly') out.minute = Number(minute.value || 0);
    if (f === 'minutes') out.everyMinutes = Number(every.value || 0);
    if (f === 'once') { const v = validZone(zone) ? fromWallInput(at.value, zone) : null; if (v) out.at = v; }
    return out;
  }
  function drawSchedule() {
    const f = freq.value;
    wTod.hidden = f !== 'daily'; wMin.hidden = f !== 'hourly'; wEvery.hidden = f !== 'minutes'; wAt.hidden = f !== 'once';
    const sc = schedule();
    const times = nextTimes(sc, 5);
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    replace(preview, h('h3', {}, 'Next runs'),
      typeof times === 'string' ? h('p', { class: 'muted' }, times)
        : h('ol', {}, times.map(t => h('li', {}, inZone(t, sc.timeZone), local !== sc.timeZone ? h('span', { class: 'muted' }, ` (your time: ${inZone(t, local)})`) : null))),
      h('p', { class: 'muted small' }, 'The timer checks every 5 minutes, so a run starts within 5 minutes of its time.'));
  }
  for (const el of [freq, tz, tod, minute, every, at]) el.addEventListener('input', drawSchedule);
  freq.addEventListener('change', drawSchedule);

  // ---- threshold, scope, page size ----
  const th = s.deletionThreshold || {};
  const thOn = h('input', { type: 'checkbox', id: 'set-th-enabled', checked: th.enabled, 'data-path': 'deletionThreshold.enabled' });
  const thCount = h('input', { type: 'number', id: 'set-th-count', min: 0, value: th.maxCount ?? 0, 'data-path': 'deletionThreshold.maxCount' });
  const thPct = h('input', { type: 'number', id: 'set-th-percent', min: 0, max: 100, step: 0.1, value: th.maxPercent ?? 0, 'data-path': 'deletionThreshold.maxPercent' });
  const scope = h('textarea', { id: 'set-scope', rows: 3, cols: 40, 'data-path': 'groupScope', spellcheck: 'false' }, (s.groupScope || []).join('\n'));
  const pageSize = h('input', { type: 'number', id: 'set-pagesize', min: 1, max: 999, value: s.pageSize, 'data-path': 'pageSize' });
  const userScope = h('textarea', { id: 'set-userscope', rows: 3, cols: 40, 'data-path': 'userScope', spellcheck: 'false' }, (s.userScope || []).join('\n'));
  const scopeRule = h('textarea', { id: 'set-scoperule', rows: 2, cols: 60, 'data-path': 'scopeRule', spellcheck: 'false' }, s.scopeRule || '');
  const mirror = h('input', { type: 'checkbox', id: 'set-mirror', checked: !!s.mirrorGroups, 'data-path': 'mirrorGroups' });
  const photoSync = h('input', { type: 'checkbox', id: 'set-photosync', checked: !!s.photoSync, 'data-path': 'photoSync' });
  const photoMax = h('input', { type: 'number', id: 'set-photomax', min: 1024, max: 20971520, value: s.photoMaxBytes ?? 4194304, 'data-path': 'photoMaxBytes' });

  function doc() {
    return {
      enabled: enabled.checked,
      schedule: schedule(),
      mapping: rows.map(r => {
        const m = { field: r.field.trim() };
        if (r.kind === 'constant') m.constant = r.constant;
        else { m.source = r.source.trim(); if (r.fallback.trim()) m.fallback = r.fallback.trim(); }
        if (r.sensitive) m.sensitive = true;
        return m;
      }),
      required: rows.filter(r => r.required).map(r => r.field.trim()),
      emailField: emailSel.value,
      deletionThreshold: { enabled: thOn.checked, maxCount: Number(thCount.value || 0), maxPercent: Number(thPct.value || 0) },
      groupScope: scope.value.split(/[\s,]+/).map(x => x.trim()).filter(Boolean),
      userScope: userScope.value.split(/[\s,]+/).map(x => x.trim()).filter(Boolean),
      scopeRule: scopeRule.value.trim(),
      mirrorGroups: mirror.checked,
      pageSize: Number(pageSize.value || 0),
      photoSync: photoSync.checked,
      photoMaxBytes: Number(photoMax.value || 0),
    };
  }

  function clearErrors() {
    for (const el of body.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    for (const el of body.querySelectorAll('.field-error')) el.textContent = '';
  }

  // showFieldError puts the API's message on the control the path names,
  // or the nearest one: "mapping[2].source" → that input; "mapping[2]" → the
  // row's first input; "required[1]" → the required box of the row.
  function showFieldError(path, message, sent) {
    let target = null;
    const m = /^required\[(\d+)\]$/.exec(path);
    if (m) {
      const name = sent.required[Number(m[1])];
      const row = rows.find(r => r.field.trim() === name && r.required);
      if (row) target = body.querySelector(`[data-required-row="${row.key}"]`);
    }
    for (let p = path; !target && p;) {
      target = body.querySelector(`[data-path="${CSS.escape(p)}"]`);
      const up = p.replace(/(\.[A-Za-z]+|\[\d+\])$/, '');
      p = up === p ? '' : up;
    }
    if (!target) return false;
    if (target.tagName === 'TR') target = target.querySelector('select, input:not([hidden])');
    target.setAttribute('aria-invalid', 'true');
    const errId = (target.getAttribute('aria-describedby') || '').split(' ').find(x => x.endsWith('-err') || x.startsWith('err-'));
    const err = errId && document.getElementById(errId);
    if (err) err.textContent = message;
    else target.insertAdjacentElement('afterend', h('span', { class: 'field-error', role: 'alert' }, message));
    target.focus();
    return true;
  }

  const saveBtn = h('button', { type: 'submit', class: 'primary', id: 'save-settings' }, 'Save settings');
  // Preview: a full run under these settings that changes nothing; its
  // outcome shows here, next to the button that saves the change.
  const previewOut = h('div', { id: 'settings-preview', 'aria-live': 'polite' });
  const previewBtn = h('button', { type: 'button', id: 'preview-settings', onclick: async () => {
    clearErrors();
    previewBtn.disabled = true;
    replace(previewOut, h('p', { class: 'banner banner-info', role: 'status' }, 'Previewing: every user is read under these settings; nothing is changed…'));
    try {
      const res = await request('POST', '/settings/preview', { body: doc() });
      let run = res.body.run;
      while (run.status === 'running') {
        await new Promise(r => setTimeout(r, 1000));
        run = (await request('GET', '/runs/' + run.id)).body.run;
      }
      const c = run.counters || {};
      const parts = [`${c.seen || 0} users read`, `${c.added || 0} would be added`, `${c.updated || 0} updated`,
        `${c.skipped || 0} skipped`, `${c.deleted || 0} deleted`, `${c.duplicate || 0} duplicates`];
      if (c.outOfScope) parts.push(`${c.outOfScope} out of scope`);
      replace(previewOut, h('p', { class: 'banner banner-' + (run.status === 'previewed' ? 'ok' : 'error'), role: 'status' },
        run.status === 'previewed' ? 'This change would: ' + parts.join(', ') + '. Nothing was saved. ' : `The preview ${run.status}: ${run.error || ''} `,
        h('a', { href: '#/runs/' + run.id }, 'Open the preview run'), run.hint ? ' ' + run.hint : ''));
    } catch (e) {
      if (e.status === 400) {
        const { path, message } = errorPath(e.message);
        if (path) showFieldError(path, message, doc());
      }
      replace(previewOut, errorBox(e));
    } finally {
      previewBtn.disabled = false;
    }
  } }, 'Preview this change');
  const form = h('form', { class: 'settings', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearErrors();
    replace(top);
    const sent = doc();
    saveBtn.disabled = true;
    try {
      const res = await request('PUT', '/settings', { body: sent, ifMatch: etag });
      replace(top, h('p', { class: 'banner banner-ok', role: 'status' }, 'Saved. A change of the mapping, required fields or scope makes the next run a full one.'));
      edit(ctx, body, isAdmin, res.body, res.headers.get('ETag'), top.firstChild);
    } catch (e) {
      if (e.status === 412) {
        replace(top, h('div', { class: 'error-box', role: 'alert', id: 'conflict' },
          h('p', {}, h('strong', {}, 'Someone else saved the settings after you opened this page. '), 'Your changes were not saved, so theirs are not lost.'),
          h('p', {}, 'Reload to see their version, then make your change again.'),
          h('button', { type: 'button', class: 'primary', id: 'reload-settings', onclick: () => load(ctx, body, isAdmin, h('p', { class: 'banner banner-info', role: 'status' }, 'Reloaded: this is the version saved last. Make your change again and save.')) }, 'Reload the settings')));
        top.querySelector('button').focus();
      } else if (e.status === 400) {
        const { path, message } = errorPath(e.message);
        if (!path || !showFieldError(path, message, sent)) replace(top, errorBox(e));
        else replace(top, h('p', { class: 'banner banner-error', role: 'alert' }, 'Not saved: ' + e.message));
      } else {
        replace(top, errorBox(e));
      }
    } finally {
      saveBtn.disabled = false;
    }
  } },
  h('fieldset', { class: 'plain', disabled: !isAdmin },
    h('section', { class: 'card', 'aria-labelledby': 'sec-sync' },
      h('h2', { id: 'sec-sync' }, 'Sync'),
      h('div', { class: 'switch-row' }, enabled, h('label', { for: 'set-enabled' }, 'Enabled: scheduled and manual syncs run')),
      field('Users per Graph page (1 to 999)', pageSize),
      h('div', { class: 'switch-row' }, photoSync, h('label', { for: 'set-photosync' }, 'Photo sync: keep users\' photos (checked daily by ETag)')),
      field('Largest photo stored, in bytes (1024 to 20971520)', photoMax)),
    h('section', { class: 'card', 'aria-labelledby': 'sec-map' },
      h('h2', { id: 'sec-map' }, 'Attribute mapping'),
      h('p', {}, 'Each directory field comes from a Graph user attribute (with an optional fallback attribute when the user has no value) or is a constant. Sensitive fields keep their values out of run logs. A user missing a required field is skipped, with the reason logged.'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'mapping', id: 'mapping' },
        h('caption', { class: 'sr-only' }, 'Attribute mapping'),
        h('thead', {}, h('tr', {}, ['Directory field', 'Source', 'Graph attribute or value', 'Fallback', 'Sensitive', 'Required', ''].map(x => h('th', { scope: 'col' }, x)))),
        mapBody)),
      h('datalist', { id: 'graph-attrs' }, ['displayName', 'givenName', 'surname', 'mail', 'userPrincipalName', 'jobTitle', 'department', 'companyName', 'city', 'country', 'officeLocation', 'mobilePhone', 'businessPhones', 'employeeId', 'employeeType', 'manager', 'preferredLanguage', 'usageLocation', 'state', 'streetAddress', 'postalCode'].map(a => h('option', { value: a }))),
      h('p', {}, addBtn),
      field('Email field (duplicates by email are flagged and not synced)', emailSel)),
    h('section', { class: 'card', 'aria-labelledby': 'sec-sched' },
      h('h2', { id: 'sec-sched' }, 'Schedule'),
      h('div', { class: 'grid' },
        h('div', {}, field('Frequency', freq), wTod, wMin, wEvery, wAt, field('Time zone (IANA name)', tz), zones),
        preview)),
    h('section', { class: 'card', 'aria-labelledby': 'sec-th' },
      h('h2', { id: 'sec-th' }, 'Deletion threshold'),
      h('p', {}, 'A run that would delete more users than this waits for an admin to approve or reject the deletions. Either limit triggers it; 0 turns a limit off.'),
      h('div', { class: 'switch-row' }, thOn, h('label', { for: 'set-th-enabled' }, 'Hold large deletions for approval')),
      h('div', { class: 'row' }, field('At most this many users', thCount, { inline: true }), field('At most this percent of the directory', thPct, { inline: true }))),
    h('section', { class: 'card', 'aria-labelledby': 'sec-scope' },
      h('h2', { id: 'sec-scope' }, 'Scope'),
      h('p', {}, 'A user is synced when it is in one of the groups (nested groups count) or listed as a selected user, and matches the scoping rule. Nothing selected: every user. Users leaving the scope are removed through the deletion threshold.'),
      field('Only members of these Entra groups (object ids, one per line; empty: every user)', scope),
      field('Selected users (object ids or userPrincipalNames, one per line)', userScope),
      field('Scoping rule (Entra dynamic membership syntax, e.g. user.userType -eq "Member")', scopeRule),
      h('div', { class: 'switch-row' }, mirror, h('label', { for: 'set-mirror' }, 'Mirror the selected groups as directory groups')))),
  isAdmin ? h('div', { class: 'row sticky' }, saveBtn, previewBtn, h('span', { class: 'muted' }, 'Saves the whole document; if someone else saved meanwhile, nothing is overwritten. Preview shows what the change would do, and saves nothing.'))
    : readOnlyNote('Changing settings'),
  previewOut);

  replace(body, top, form);
  drawMapping();
  drawSchedule();
}

// errorPath finds the field an API validation message names:
// "settings: mapping[3].source: ..." or `settings: field "schedule.minute" must be ...`.
export function errorPath(msg) {
  let m = /^settings: ((?:[A-Za-z]+)(?:\[\d+\])?(?:\.[A-Za-z]+)?): (.*)$/.exec(msg || '');
  if (m) {
    let path = m[1];
    if (path === 'schedule') {
      const sub = /\b(timeZone|timeOfDay|everyMinutes|minute|at|frequency)\b/.exec(m[2]);
      if (sub) path = 'schedule.' + sub[1];
    }
    return { path, message: m[2] };
  }
  m = /^settings: field "([^"]+)" (.*)$/.exec(msg || '');
  if (m) return { path: m[1], message: 'must be ' + m[2].replace(/^must be /, '') };
  return { path: '', message: msg };
}
