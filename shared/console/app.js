// The operator console: one script, no build step, on the public JSON API only (what the
// console does, a script with the same credentials can do). Views are plain functions of
// the hash route; every element is built with `h`, which sets text as text (a contact's
// name or reply never becomes markup).

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    // Through the CSSOM: the security policy refuses inline style attributes.
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// Replaces an element's children, skipping the absent ones (`replaceChildren` would
// write "null").
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

// ---------------------------------------------------------------- credentials and calls

const session = { cfg: null, tenant: null, token: null };

class ApiFailure extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
    this.body = body;
  }
}

function credentials() {
  if (session.cfg.auth === 'tenant_header') return { 'x-tenant-id': session.tenant };
  return session.token ? { authorization: `Bearer ${session.token}` } : {};
}

async function call(method, path, body, { csv = false, raw = false } = {}) {
  const headers = { accept: 'application/json', ...credentials() };
  let payload;
  if (body !== undefined) {
    headers['content-type'] = csv ? 'text/csv' : 'application/json';
    payload = csv ? body : JSON.stringify(body);
  }
  const resp = await fetch(path, { method, headers, body: payload });
  if (raw && resp.ok) return resp;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!resp.ok) {
    // A refused token (expired): sign in again. One refused within a minute of signing
    // in (no tenant claim, say) shows the API's message instead of looping.
    const signedInAt = Number(sessionStorage.getItem('signed-in-at') || 0);
    if (resp.status === 401 && session.cfg.auth === 'oidc' && Date.now() - signedInAt > 60000) signIn();
    throw new ApiFailure(resp.status, data);
  }
  return { status: resp.status, data };
}
const get = async (path) => (await call('GET', path)).data;
const post = async (path, body) => (await call('POST', path, body === undefined ? {} : body)).data;

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Sign-in in AWS: OAuth 2.0 authorization code with PKCE at the issuer the HTTP API's JWT
// authorizer trusts; the access token stays in this tab's session storage.
const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
async function discovery() {
  const r = await fetch(`${session.cfg.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!r.ok) throw new Error(`the sign-in provider answered ${r.status}`);
  return r.json();
}
let signingIn = false;
async function signIn() {
  if (signingIn) return;
  signingIn = true;
  const meta = await discovery();
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem('pkce', JSON.stringify({ verifier, state, back: location.hash }));
  location.assign(meta.authorization_endpoint + query({
    response_type: 'code', client_id: session.cfg.client_id, scope: session.cfg.scope,
    redirect_uri: `${location.origin}/console`, state,
    code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: 'S256',
  }));
}
async function finishSignIn() {
  const q = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem('pkce') || 'null');
  sessionStorage.removeItem('pkce');
  // The answer leaves the address bar at once: a reload must not replay it.
  history.replaceState(null, '', `/console${(saved && saved.back) || location.hash || '#/campaigns'}`);
  if (q.get('error')) throw new Error(`the sign-in provider refused: ${q.get('error_description') || q.get('error')}`);
  if (!q.get('code') || !saved || saved.state !== q.get('state')) throw new Error('the sign-in answer does not match the request; sign in again');
  const meta = await discovery();
  const r = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: q.get('code'), client_id: session.cfg.client_id,
      redirect_uri: `${location.origin}/console`, code_verifier: saved.verifier,
    }),
  });
  const tok = await r.json();
  if (!r.ok || !tok.access_token) throw new Error(`sign-in failed: ${tok.error_description || tok.error || r.status}`);
  sessionStorage.setItem('token', tok.access_token);
  sessionStorage.setItem('signed-in-at', String(Date.now()));
}

// ---------------------------------------------------------------- formatting

let tenantZone = 'UTC';

function fmtTime(iso, zone = tenantZone) {
  if (!iso) return '—';
  const d = new Date(iso);
  const s = new Intl.DateTimeFormat('en-GB', { timeZone: zone, dateStyle: 'medium', timeStyle: 'short' }).format(d);
  return `${s} (${zone})`;
}

function zoneParts(ms, zone) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-CA', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms))) parts[p.type] = p.value;
  return parts;
}
function zoneOffset(ms, zone) {
  const p = zoneParts(ms, zone);
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
}
// `YYYY-MM-DDTHH:MM` as the wall clock of `zone` shows the instant, and back.
function toLocalInput(iso, zone) {
  if (!iso) return '';
  const p = zoneParts(new Date(iso).getTime(), zone);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}
function fromLocalInput(value, zone) {
  if (!value) return null;
  const [date, time] = value.split('T');
  const [y, m, d] = date.split('-').map(Number);
  const [hh, mm] = time.split(':').map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  let at = wall - zoneOffset(wall, zone);
  at = wall - zoneOffset(at, zone);
  return new Date(at).toISOString().replace('.000Z', 'Z');
}

const statusBadge = (s) => h('span', { class: `badge status-${s}` }, s);
const channelBadge = (c) => h('span', { class: `badge channel-${c}` }, c === 'sms' ? 'SMS' : c === 'whatsapp' ? 'WhatsApp' : c);
const num = (n) => (n ?? 0).toLocaleString('en-US');
// The lists and segments attached to a campaign, as words.
const audienceText = (c) => (c.audiences || []).map((a) => (a.type === 'list' ? a.name
  : `segment ${[...(a.segment.tags || []), ...Object.entries(a.segment.valued_tags || {}).map(([k, v]) => `${k}=${v}`)].join(' + ')}`)).join(', ') || '—';

function flash(text, bad = false) {
  const el = $('#flash');
  el.className = bad ? 'bad' : '';
  el.textContent = text;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { el.textContent = ''; }, 8000);
}

function errorBox(e) {
  return h('div', { class: 'err-box', role: 'alert' }, e.message || String(e));
}

function confirmDialog(title, text, yes) {
  const dlg = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-yes').textContent = yes;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'yes'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

// A form field: label, control, hint and the place its API error is shown.
let fieldSeq = 0;
function field(name, label, control, hint) {
  const id = `f-${name.replace(/[^a-z0-9]/gi, '-')}-${++fieldSeq}`;
  control.id = control.id || id;
  if (!control.name) control.name = name;
  const err = h('p', { class: 'error', id: `${control.id}-error`, hidden: true });
  control.setAttribute('aria-describedby', `${control.id}-error${hint ? ` ${control.id}-hint` : ''}`);
  const isCheck = control.type === 'checkbox';
  return h('div', { class: `field${isCheck ? ' check' : ''}`, 'data-field': name },
    isCheck ? [control, ' ', h('label', { for: control.id }, label)] : [h('label', { for: control.id }, label), control],
    hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null,
    err);
}

// Shows an API error on the field it names (the longest field whose name starts it), or
// above the form when it names none.
function showFieldError(form, e) {
  for (const el of form.querySelectorAll('.error')) { el.hidden = true; el.textContent = ''; }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const top = form.querySelector('.form-error');
  fill(top);
  const name = e.field || '';
  let best = null;
  for (const f of form.querySelectorAll('[data-field]')) {
    const n = f.dataset.field;
    if (name && (name === n || name.startsWith(`${n}.`) || name.startsWith(`${n}[`)) && (!best || n.length > best.dataset.field.length)) best = f;
  }
  if (!best) { top.append(errorBox(e)); top.scrollIntoView({ block: 'nearest' }); return; }
  const err = best.querySelector('.error');
  err.textContent = e.message;
  err.hidden = false;
  const control = best.querySelector('input, select, textarea');
  if (control) { control.setAttribute('aria-invalid', 'true'); control.focus(); }
}

function table(columns, rows, { stack = true, empty = 'Nothing here yet.' } = {}) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  // Explicit roles: at phone width the rows are laid out as cards, and a table whose
  // cells are not displayed as cells loses its semantics in some screen readers.
  return h('div', { class: 'table-wrap' },
    h('table', { class: stack ? 'stack' : '', role: 'table' },
      h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' }, columns.map((c) => h('th', { scope: 'col', role: 'columnheader', class: c.num ? 'num' : '' }, c.label)))),
      h('tbody', { role: 'rowgroup' }, rows.map((r) => h('tr', { role: 'row' }, columns.map((c) => h('td', { role: 'cell', 'data-label': c.label, class: c.num ? 'num' : '' }, c.cell(r))))))));
}

// ---------------------------------------------------------------- routing

let renderSeq = 0;
let poller = null;

function stopPolling() { if (poller) { clearInterval(poller); poller = null; } }

// Polls `fn` while the view rendered as `seq` is the one shown.
function poll(fn, seq, ms = 2000) {
  if (seq !== renderSeq) return;
  stopPolling();
  let busy = false;
  poller = setInterval(async () => {
    if (seq !== renderSeq) { stopPolling(); return; }
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } catch (e) { /* the next poll tries again */ } finally { busy = false; }
  }, ms);
}

const routes = [
  [/^#\/campaigns\/new$/, () => campaignForm(null)],
  [/^#\/campaigns\/([^/?]+)\/edit$/, (id) => campaignForm(id)],
  [/^#\/campaigns\/([^/?]+)\/contacts\/([^/?]+)$/, conversationView],
  [/^#\/campaigns\/([^/?]+)$/, campaignDetail],
  [/^#\/campaigns(?:\?(.*))?$/, campaignGrid],
  [/^#\/audience$/, audienceView],
  [/^#\/blocks(?:\/([^/?]+))?$/, blocksView],
  [/^#\/accounts$/, accountsView],
  [/^#\/settings$/, settingsView],
];

async function route() {
  stopPolling();
  const seq = ++renderSeq;
  const tenant = session.tenant;
  const hash = location.hash || '#/campaigns';
  for (const a of document.querySelectorAll('.top nav a')) {
    const here = hash.startsWith(a.getAttribute('href'));
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const main = $('#main');
  for (const [re, view] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    try {
      const node = await view(...m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x))));
      if (seq !== renderSeq) return;
      fill(main, node);
      // Whose data the page shows (a script or a test waits for it after a switch).
      if (tenant) main.dataset.tenant = tenant;
      // A screen reader hears the new page from its start.
      if (!main.contains(document.activeElement) || document.activeElement === document.body) main.focus({ preventScroll: true });
      const h1 = main.querySelector('h1');
      document.title = `${h1 ? h1.textContent : 'Console'} · Campaigns console`;
    } catch (e) {
      if (seq === renderSeq) fill(main, h('h1', {}, 'Something went wrong'), errorBox(e));
    }
    return;
  }
  fill(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/campaigns' }, 'Back to the campaigns')));
}

function rerender() { route(); }

// ---------------------------------------------------------------- campaigns grid

const STATUSES = ['DRAFT', 'READY', 'SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED'];
const ACTION_LABELS = {
  edit: 'Edit', launch: 'Launch', unschedule: 'Unschedule', pause: 'Pause', resume: 'Resume',
  retry: 'Start retry campaign', reset: 'Reset list', cancel: 'Cancel campaign', delete: 'Delete',
};

async function runAction(c, name) {
  const base = `/campaigns/${encodeURIComponent(c.id)}`;
  if (name === 'edit') { location.hash = `#/campaigns/${encodeURIComponent(c.id)}/edit`; return false; }
  if (name === 'reset' && !await confirmDialog(`Reset the list of “${c.name}”?`,
    'Every entry goes back to FRESH and its outcome is cleared: everyone in the campaign will get the message again, including those who already received it.', 'Reset the list')) return false;
  if (name === 'cancel' && !await confirmDialog(`Cancel “${c.name}”?`,
    'Nothing more is sent and the campaign cannot be started again. Its statistics stay.', 'Cancel the campaign')) return false;
  if (name === 'delete' && !await confirmDialog(`Delete “${c.name}”?`,
    'The campaign, its hopper and its statistics are removed. This cannot be undone.', 'Delete')) return false;
  try {
    if (name === 'delete') await call('DELETE', base);
    else if (name === 'reset') await post(`${base}/reset`, { confirm: true });
    else await post(`${base}/${name}`);
    flash(`${ACTION_LABELS[name]}: done for “${c.name}”.`);
    return true;
  } catch (e) {
    flash(`${ACTION_LABELS[name]} refused: ${e.message}`, true);
    return false;
  }
}

// The commands the campaign's state allows, as the API judged them; a refused one is
// shown disabled with the API's reason.
function actionButtons(c, after, { menu = true } = {}) {
  // The menu shows every command, refused ones disabled with the reason; the detail
  // page's button row shows only what the campaign's state allows now.
  const items = (c.actions || []).filter((a) => menu || a.allowed).map((a) => {
    const why = a.allowed ? null : h('div', { class: 'why', id: `why-${c.id}-${a.name}` }, a.reason);
    const btn = h('button', {
      type: 'button', disabled: !a.allowed, class: ['cancel', 'delete', 'reset'].includes(a.name) ? 'danger' : '',
      'aria-describedby': why ? `why-${c.id}-${a.name}` : null, 'data-action': a.name,
      onclick: async () => {
        if (menu) btn.closest('details').open = false;
        if (await runAction(c, a.name)) after(a.name);
      },
    }, ACTION_LABELS[a.name] || a.name);
    return menu ? h('div', { role: 'none' }, btn, why) : btn;
  });
  if (!menu) return h('div', { class: 'row' }, items);
  const list = h('div', { class: 'menu-items' }, items);
  const details = h('details', {
    class: 'menu',
    // Fixed to the viewport beside its button: the grid scrolls sideways on a narrow
    // screen, and a menu inside it would be cut off.
    ontoggle: () => {
      if (!details.open) return;
      for (const other of document.querySelectorAll('details.menu[open]')) if (other !== details) other.open = false;
      placeMenu(details);
    },
    onkeydown: (ev) => { if (ev.key === 'Escape' && details.open) { details.open = false; details.querySelector('summary').focus(); } },
  }, h('summary', { 'aria-label': `Actions for ${c.name}` }, 'Actions ▾'), list);
  return details;
}

function placeMenu(details) {
  const list = details.querySelector('.menu-items');
  const at = details.querySelector('summary').getBoundingClientRect();
  const { width, height } = list.getBoundingClientRect();
  const left = Math.max(4, Math.min(at.right - width, window.innerWidth - width - 4));
  // Below its button when it fits, else above it, else as low as the screen allows.
  let top = at.bottom + 2;
  if (top + height > window.innerHeight - 4) top = at.top - height - 2 >= 4 ? at.top - height - 2 : Math.max(4, window.innerHeight - height - 4);
  list.style.cssText = `top:${top}px;left:${left}px`;
}
// An open menu follows its button when the page scrolls or the window changes size.
for (const ev of ['scroll', 'resize']) {
  window.addEventListener(ev, () => { for (const m of document.querySelectorAll('details.menu[open]')) placeMenu(m); }, { passive: true, capture: true });
}

async function campaignGrid(qs) {
  const params = new URLSearchParams(qs || '');
  const accounts = (await get('/accounts')).items;
  // A selective filter on a large tenant: the API answers what it found in the stretch
  // of campaigns it read (up to 2,000) with a cursor to go on; the grid goes on until its
  // page is full or the campaigns end, for at most 10 s.
  const filterQuery = {
    status: params.get('status'), channel: params.get('channel'), account_id: params.get('account_id'),
    name: params.get('name'), include_cancelled: params.get('include_cancelled'),
  };
  const page = { items: [], next_cursor: params.get('cursor') };
  const until = Date.now() + 10000;
  do {
    const more = await get(`/campaigns${query({ ...filterQuery, limit: 25 - page.items.length, cursor: page.next_cursor })}`);
    page.items.push(...more.items);
    page.next_cursor = more.next_cursor;
  } while (page.items.length < 25 && page.next_cursor && Date.now() < until);
  const accountName = Object.fromEntries(accounts.map((a) => [a.id, a.name]));
  const sel = (name, options) => h('select', { name, id: `filter-${name}` },
    options.map(([v, l]) => h('option', { value: v, selected: (params.get(name) || '') === v }, l)));
  const filters = h('form', {
    class: 'card row', role: 'search', 'aria-label': 'Filter campaigns',
    onsubmit: (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      const q = new URLSearchParams();
      for (const [k, v] of f.entries()) if (v) q.set(k, v);
      location.hash = `#/campaigns${q.toString() ? `?${q}` : ''}`;
    },
  },
  field('name', 'Name contains', h('input', { type: 'search', value: params.get('name') || '' })),
  field('status', 'Status', sel('status', [['', 'Any'], ...STATUSES.map((s) => [s, s])])),
  field('channel', 'Channel', sel('channel', [['', 'Any'], ['whatsapp', 'WhatsApp'], ['sms', 'SMS'], ['voice', 'Voice']])),
  field('account_id', 'Account', sel('account_id', [['', 'Any'], ...accounts.map((a) => [a.id, a.name])])),
  field('include_cancelled', 'Show cancelled', h('input', { type: 'checkbox', value: 'true', checked: params.get('include_cancelled') === 'true' })),
  h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  const rows = page.items;
  const grid = table([
    { label: 'Name', cell: (c) => h('a', { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name || '(no name)') },
    { label: 'Channel', cell: (c) => channelBadge(c.channel) },
    { label: 'Status', cell: (c) => statusBadge(c.status) },
    { label: 'Target list', cell: (c) => audienceText(c) },
    { label: 'Account', cell: (c) => accountName[c.account_id] || c.account_id || '—' },
    { label: 'Progress', cell: (c) => h('div', {},
      h('progress', { max: Math.max(c.progress.target, 1), value: c.progress.sent, 'aria-label': `${c.progress.percent}% sent` }),
      ` ${num(c.progress.sent)}/${num(c.progress.target)} (${c.progress.percent}%)`) },
    { label: 'Scheduled at', cell: (c) => (c.start_at ? fmtTime(c.start_at, c.display_timezone || tenantZone) : '—') },
    { label: 'Created', cell: (c) => fmtTime(c.created_at, c.display_timezone || tenantZone) },
    { label: 'Actions', cell: (c) => actionButtons(c, () => rerender()) },
  ], rows, { empty: page.next_cursor ? 'None found yet: the search stopped partway; “Next page” goes on.' : 'No campaigns match. Create one with “New campaign”.' });
  const prev = params.get('cursor');
  const paging = h('div', { class: 'row', style: 'margin-top:8px' },
    prev ? h('button', { type: 'button', onclick: () => history.back() }, '← Previous page') : null,
    page.next_cursor ? h('button', {
      type: 'button',
      onclick: () => { params.set('cursor', page.next_cursor); location.hash = `#/campaigns?${params}`; },
    }, 'Next page →') : null);
  return h('section', {},
    h('div', { class: 'row' }, h('h1', { style: 'margin-right:auto' }, 'Campaigns'),
      h('a', { href: '#/campaigns/new', class: 'button primary' }, 'New campaign')),
    filters, grid, paging);
}

// ---------------------------------------------------------------- create / edit form

function placeholders(body) {
  const seen = [];
  for (const m of (body || '').matchAll(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g)) if (!seen.includes(m[1])) seen.push(m[1]);
  return seen;
}

function renderPreview(t, variables) {
  if (!t) return h('p', { class: 'muted' }, 'Pick a template to see it as a contact will.');
  const names = placeholders(t.body);
  const sample = (i) => {
    const v = variables[i] || {};
    if (v.source === 'contact_name') return 'Asha';
    if (v.source === 'text') return v.value || '…';
    if (v.source === 'field' || v.source === 'valued_tag') return `[${v.name || v.source}]`;
    return `{{${names[i]}}}`;
  };
  const text = (t.body || '').replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (_, n) => sample(names.indexOf(n)));
  const header = t.header;
  return h('div', { class: 'preview', 'aria-label': 'Template preview' },
    header && header.type === 'image' && header.url ? h('img', { src: header.url, alt: 'Header image' }) : null,
    header && header.type && header.type !== 'image' ? h('p', { class: 'muted' }, `[${header.type} header]`) : null,
    h('div', { class: 'preview-body' }, text),
    h('div', { class: 'btns' }, [...(t.quick_replies || []), ...(t.call_to_action || []).map((b) => b.text)].map((b) => h('span', {}, b))));
}

async function campaignForm(id) {
  const [accounts, templates, lists, blocks, tenant] = await Promise.all([
    get('/accounts'), get('/templates'), get('/lists?limit=100'), get('/block-lists?limit=100'), get('/tenant'),
  ]);
  const c = id ? await get(`/campaigns/${encodeURIComponent(id)}`) : null;
  const zone = (c && c.display_timezone) || tenant.timezone || 'UTC';
  const approved = templates.items.filter((t) => t.status === 'APPROVED');
  let variables = c ? [...(c.variables || [])] : [];

  // The accounts that send the chosen channel (the API refuses the others, naming
  // account_id): Twilio sends SMS, the others WhatsApp.
  const SMS_PROVIDERS = ['twilio'];
  const channelOf = (a) => (SMS_PROVIDERS.includes(a.provider) ? 'sms' : 'whatsapp');
  const account = h('select', {});
  function fillAccounts(channel) {
    const keep = account.value || (c ? c.account_id : '');
    const mine = accounts.items.filter((a) => channelOf(a) === channel);
    fill(account, h('option', { value: '' }, mine.length ? 'Choose an account' : `No account sends ${channel === 'sms' ? 'SMS' : channel}`),
      ...mine.map((a) => h('option', { value: a.id, selected: keep === a.id }, `${a.name} (${a.provider})`)));
  }
  const template = h('select', {});
  const preview = h('div', {});
  const varBox = h('div', {});
  const isSms = () => inputs.channel.value === 'sms';
  // On SMS the message is what the variables fill, like a template's body.
  const currentTemplate = () => (isSms()
    ? (inputs.message.value ? { body: inputs.message.value } : null)
    : approved.find((t) => `${t.name}|${t.language}` === template.value && t.account_id === account.value));
  // A URL button ending in {{1}} takes its value from a source of its own.
  const urlBox = h('div', {});
  let urlVar = c && c.url_variable ? { ...c.url_variable } : { source: 'contact_name' };
  const hasUrlVariable = (t) => !!t && (t.call_to_action || []).some((b) => b.type === 'url' && /\{\{1\}\}$/.test(b.url || ''));
  const urlVariable = () => (hasUrlVariable(currentTemplate()) ? { ...urlVar } : (c ? c.url_variable || null : null));
  function fillUrlVariable() {
    if (!hasUrlVariable(currentTemplate())) { fill(urlBox); return; }
    const source = h('select', { 'aria-label': 'Source of the link button’s {{1}}' },
      [['contact_name', 'Contact name'], ['field', 'Contact field'], ['valued_tag', 'Valued tag'], ['text', 'Fixed text']]
        .map(([v, l]) => h('option', { value: v, selected: urlVar.source === v }, l)));
    const detail = h('input', { type: 'text', 'aria-label': 'Field, tag or text for the link button’s {{1}}', value: urlVar.value || urlVar.name || '', hidden: urlVar.source === 'contact_name' });
    const sync = () => {
      const v = source.value;
      detail.hidden = v === 'contact_name';
      urlVar = v === 'contact_name' ? { source: v } : v === 'text' ? { source: v, value: detail.value } : { source: v, name: detail.value };
    };
    source.addEventListener('change', sync);
    detail.addEventListener('input', sync);
    fill(urlBox, h('div', { class: 'field', 'data-field': 'url_variable' }, h('strong', {}, 'Link button {{1}} '), source, ' ', detail, h('p', { class: 'error', hidden: true })));
  }

  function fillTemplates() {
    const keep = template.value || (c && c.template ? `${c.template.name}|${c.template.language}` : '');
    const mine = approved.filter((t) => t.account_id === account.value);
    fill(template, h('option', { value: '' }, mine.length ? 'Choose an approved template' : 'No approved template on this account'),
      ...mine.map((t) => h('option', { value: `${t.name}|${t.language}`, selected: `${t.name}|${t.language}` === keep }, `${t.name} (${t.language}, ${t.category})`)));
  }
  function fillVariables() {
    const t = currentTemplate();
    const names = t ? placeholders(t.body) : [];
    variables = names.map((_, i) => variables[i] || { source: 'contact_name' });
    fill(varBox, ...names.map((n, i) => {
      const v = variables[i];
      const source = h('select', { 'aria-label': `Source of {{${n}}}` },
        [['contact_name', 'Contact name'], ['field', 'Contact field'], ['valued_tag', 'Valued tag'], ['text', 'Fixed text']]
          .map(([s, l]) => h('option', { value: s, selected: v.source === s }, l)));
      const detail = h('input', { type: 'text', 'aria-label': `Field, tag or text for {{${n}}}`, value: v.value || v.name || '', hidden: v.source === 'contact_name' });
      const sync = () => {
        const s = source.value;
        detail.hidden = s === 'contact_name';
        variables[i] = s === 'contact_name' ? { source: s } : s === 'text' ? { source: s, value: detail.value } : { source: s, name: detail.value };
        fill(preview, renderPreview(currentTemplate(), variables));
      };
      source.addEventListener('change', sync);
      detail.addEventListener('input', sync);
      return h('div', { class: 'field', 'data-field': `variables[${i}]` },
        h('span', { class: 'label' }, h('strong', {}, `{{${n}}} `)), source, ' ', detail,
        h('p', { class: 'error', hidden: true }));
    }));
    if (!names.length) varBox.append(h('p', { class: 'muted' }, t ? `This ${isSms() ? 'message' : 'template'} has no placeholders.` : ''));
    fillUrlVariable();
    fill(preview, renderPreview(t, variables));
  }
  account.addEventListener('change', () => { fillTemplates(); fillVariables(); });
  template.addEventListener('change', fillVariables);

  const pacingUnit = h('select', {}, [['messages_per_second', 'messages per second'], ['contacts_per_hour', 'contacts per hour'], ['min_interval_seconds', 'seconds between messages']]
    .map(([v, l]) => h('option', { value: v, selected: c && c.pacing && c.pacing.unit === v }, l)));
  const hours = c && c.calling_hours;
  const useHours = h('input', { type: 'checkbox', checked: !!hours });
  const blockBoxes = blocks.items.map((b) => h('input', { type: 'checkbox', value: b.id, checked: c && (c.block_lists || []).includes(b.id), id: `bl-${b.id}` }));
  const listBoxes = lists.items.map((l) => h('input', { type: 'checkbox', value: l.id, id: `lst-${l.id}` }));
  const inputs = {
    name: h('input', { type: 'text', value: c ? c.name : '', required: true, autocomplete: 'off' }),
    pacing_value: h('input', { type: 'number', min: 1, value: c && c.pacing ? c.pacing.value : 10 }),
    response_timeout_days: h('input', { type: 'number', min: 1, value: c ? c.response_timeout_days : 1 }),
    duplicate_window_days: h('input', { type: 'number', min: 1, max: 7, value: c && c.duplicate_window_days != null ? c.duplicate_window_days : '' }),
    start_at: h('input', { type: 'datetime-local', value: c ? toLocalInput(c.start_at, zone) : '' }),
    end_at: h('input', { type: 'datetime-local', value: c ? toLocalInput(c.end_at, zone) : '' }),
    hours_start: h('input', { type: 'time', value: hours ? hours.start : '09:00' }),
    hours_end: h('input', { type: 'time', value: hours ? hours.end : '20:00' }),
    hours_zone: h('input', { type: 'text', value: hours ? hours.timezone : zone }),
    hours_recipient: h('input', { type: 'checkbox', checked: !!(hours && hours.recipient_timezone) }),
    close_on_quick_reply: h('input', { type: 'checkbox', checked: c && c.close_on_quick_reply }),
    include_active_interactions: h('input', { type: 'checkbox', checked: c && c.include_active_interactions }),
    reply_route: h('input', { type: 'text', value: c && c.reply_route ? c.reply_route : '' }),
    notes: h('textarea', {}, c && c.notes ? c.notes : ''),
    segment_tags: h('input', { type: 'text', value: '' }),
    segment_valued: h('input', { type: 'text', value: '' }),
    channel: h('select', { disabled: !!c && !['DRAFT', 'READY'].includes(c.status) }, [['whatsapp', 'WhatsApp'], ['sms', 'SMS'], ['voice', 'Voice']]
      .map(([v, l]) => h('option', { value: v, selected: (c ? c.channel : 'whatsapp') === v }, l))),
    message: h('textarea', {}, c && c.message ? c.message : ''),
    max_segments: h('input', { type: 'number', min: 1, max: 10, value: c && c.max_segments ? c.max_segments : 6 }),
    fallback_account: h('select', {}, h('option', { value: '' }, 'No SMS fallback'),
      accounts.items.filter((a) => channelOf(a) === 'sms')
        .map((a) => h('option', { value: a.id, selected: !!(c && c.sms_fallback && c.sms_fallback.account_id === a.id) }, `${a.name} (${a.provider})`))),
    fallback_message: h('textarea', {}, c && c.sms_fallback ? c.sms_fallback.message : ''),
    display_timezone: h('input', { type: 'text', value: c && c.display_timezone ? c.display_timezone : '' }),
    retry_attempts: h('input', { type: 'number', min: 0, max: 7, value: c && c.marketing_limit_retry ? c.marketing_limit_retry.max_attempts : 3 }),
    retry_spacing: h('input', { type: 'number', min: 24, max: 168, value: c && c.marketing_limit_retry ? c.marketing_limit_retry.spacing_hours : 24 }),
  };
  // The segment the two inputs describe, or null: every tag and every `key=value`.
  function segment() {
    const tags = inputs.segment_tags.value.split(',').map((t) => t.trim()).filter(Boolean);
    const valued = {};
    for (const pair of inputs.segment_valued.value.split(',').map((t) => t.trim()).filter(Boolean)) {
      const at = pair.indexOf('=');
      if (at > 0) valued[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    return tags.length || Object.keys(valued).length ? { tags, valued_tags: valued } : null;
  }

  // The audience's reach, counted by the API as the lists or the segment change.
  const reachBox = h('p', { class: 'hint', 'aria-live': 'polite', 'data-reach': '' });
  let reachSeq = 0;
  async function countReach() {
    const seq = ++reachSeq;
    const listIds = listBoxes.filter((x) => x.checked).map((x) => x.value);
    const seg = segment();
    if (!listIds.length && !seg) { fill(reachBox); return; }
    fill(reachBox, 'Counting…');
    try {
      const r = await post('/audience/count', { list_ids: listIds, segment: seg });
      if (seq !== reachSeq) return;
      fill(reachBox, h('strong', {}, `${r.exact ? '' : 'At least '}${num(r.contacts)} contact(s)`),
        c ? ' in these lists or this segment (contacts already in the campaign keep their one entry).' : ' would be in the campaign, before block lists, opt-outs and the duplicate window.');
    } catch (e) { if (seq === reachSeq) fill(reachBox, e.message); }
  }
  let reachTimer = null;
  const recount = () => { clearTimeout(reachTimer); reachTimer = setTimeout(countReach, 300); };
  for (const box of listBoxes) box.addEventListener('change', recount);
  inputs.segment_tags.addEventListener('input', recount);
  inputs.segment_valued.addEventListener('input', recount);

  function body() {
    const b = {
      name: inputs.name.value.trim(),
      account_id: account.value || null,
      template: !isSms() && template.value ? { name: template.value.split('|')[0], language: template.value.split('|')[1] } : (c && isSms() ? c.template : null),
      // A copy: the mapping changes in place, and an edit compares with what it was.
      variables: variables.map((v) => ({ ...v })),
      url_variable: urlVariable(),
      pacing: { unit: pacingUnit.value, value: Number(inputs.pacing_value.value) },
      response_timeout_days: Number(inputs.response_timeout_days.value),
      duplicate_window_days: inputs.duplicate_window_days.value === '' ? null : Number(inputs.duplicate_window_days.value),
      start_at: fromLocalInput(inputs.start_at.value, zone),
      end_at: fromLocalInput(inputs.end_at.value, zone),
      calling_hours: useHours.checked ? {
        start: inputs.hours_start.value, end: inputs.hours_end.value, timezone: inputs.hours_zone.value.trim(),
        recipient_timezone: inputs.hours_recipient.checked,
      } : null,
      close_on_quick_reply: inputs.close_on_quick_reply.checked,
      include_active_interactions: inputs.include_active_interactions.checked,
      reply_route: inputs.reply_route.value.trim() || null,
      notes: inputs.notes.value.trim() || null,
      block_lists: blockBoxes.filter((x) => x.checked).map((x) => x.value),
      channel: inputs.channel.value,
      message: isSms() ? (inputs.message.value || null) : (c ? c.message : null),
      max_segments: isSms() && inputs.max_segments.value !== '' ? Number(inputs.max_segments.value) : (c ? c.max_segments : null),
      sms_fallback: !isSms() && inputs.fallback_account.value
        ? { account_id: inputs.fallback_account.value, message: inputs.fallback_message.value }
        : null,
      display_timezone: inputs.display_timezone.value.trim() || null,
      marketing_limit_retry: inputs.retry_attempts.value !== '' && inputs.retry_spacing.value !== ''
        ? { max_attempts: Number(inputs.retry_attempts.value), spacing_hours: Number(inputs.retry_spacing.value) }
        : (c ? c.marketing_limit_retry : null),
    };
    if (!c) for (const k of Object.keys(b)) if (b[k] === null) delete b[k];
    return b;
  }
  // An edit sends only what the operator changed, with the version it read: a setting
  // the form cannot show exactly (a template no longer approved, a start date with
  // seconds) stays as it is.
  let initial = null;
  function changes() {
    const patch = { version: c.version };
    for (const [k, v] of Object.entries(body())) if (JSON.stringify(v) !== JSON.stringify(initial[k])) patch[k] = v;
    return patch;
  }

  const form = h('form', {
    novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      const submit = form.querySelector('button[type=submit]');
      submit.disabled = true;
      try {
        const saved = c
          ? (await call('PATCH', `/campaigns/${encodeURIComponent(c.id)}`, changes())).data
          : await post('/campaigns', body());
        const sid = encodeURIComponent(saved.id);
        // The campaign is saved: an audience that fails now is reported on its page, so
        // a second submit cannot create the campaign twice.
        try {
          for (const box of listBoxes.filter((x) => x.checked)) await post(`/campaigns/${sid}/lists`, { list_id: box.value });
          const seg = segment();
          if (seg) await post(`/campaigns/${sid}/segments`, seg);
          flash(`Saved “${saved.name}” (${saved.status}).`);
        } catch (e) {
          flash(`Saved “${saved.name}”, but its audience was not added: ${e.message}`, true);
        }
        location.hash = `#/campaigns/${sid}`;
      } catch (e) {
        showFieldError(form, e);
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('div', { class: 'form-error', role: 'alert' }),
  h('div', { class: 'grid2' },
    h('div', {},
      h('fieldset', {}, h('legend', {}, 'Campaign'),
        field('name', 'Name', inputs.name),
        field('channel', 'Channel', inputs.channel, 'WhatsApp and SMS campaigns launch; voice campaigns cannot yet.'),
        field('message', 'SMS message', inputs.message, 'Variables as {{1}}, {{2}}…; one character outside GSM-7 (an emoji, say) makes every part 67 characters instead of 153.'),
        field('max_segments', 'At most this many SMS parts (1-10)', inputs.max_segments, 'A longer message is refused; a contact whose values make it longer is not sent to, with the reason.'),
        field('account_id', 'Account', account),
        field('sms_fallback.account_id', 'SMS fallback for numbers not on WhatsApp', inputs.fallback_account, 'Sent once, instead, to a contact WhatsApp refuses as not on WhatsApp (131026).'),
        field('sms_fallback.message', 'SMS fallback message', inputs.fallback_message, 'The same variables as the template: {{1}}, {{2}}…'),
        field('template', 'Template (approved only)', template),
        h('div', { class: 'field' }, h('strong', {}, 'Variables'), varBox, urlBox),
        field('notes', 'Notes', inputs.notes)),
      h('fieldset', {}, h('legend', {}, 'Audience'),
        lists.items.length ? h('div', { 'data-field': 'list_id' }, h('p', { class: 'hint' }, c ? 'Add these lists to the campaign:' : 'Send to these lists:'),
          listBoxes.map((b, i) => h('div', { class: 'check' }, b, ' ', h('label', { for: b.id }, lists.items[i].name))), h('p', { class: 'error', hidden: true }))
          : h('p', { class: 'muted' }, 'No lists yet: import contacts under “Contacts & lists”.'),
        field('tags', 'Or a segment: contacts with all these tags', inputs.segment_tags, 'Comma-separated, e.g. vip, pune'),
        field('valued_tags', 'and these valued tags', inputs.segment_valued, 'key=value, comma-separated, e.g. city=Pune'),
        reachBox,
        blocks.items.length ? h('div', { 'data-field': 'block_lists' }, h('p', { class: 'hint' }, 'Never send to the numbers on:'),
          blockBoxes.map((b, i) => h('div', { class: 'check' }, b, ' ', h('label', { for: b.id }, blocks.items[i].name))), h('p', { class: 'error', hidden: true })) : null)),
    h('div', {},
      h('fieldset', {}, h('legend', {}, 'Preview'), preview),
      h('fieldset', {}, h('legend', {}, 'Pace and timing'),
        h('div', { class: 'row' }, field('pacing', 'Pace', inputs.pacing_value), field('pacing.unit', 'Unit', pacingUnit)),
        field('response_timeout_days', 'Response timeout (days)', inputs.response_timeout_days),
        field('duplicate_window_days', 'Skip contacts sent to in the last N days (1-7)', inputs.duplicate_window_days, 'Leave empty for no duplicate check.'),
        field('start_at', `Start (${zone})`, inputs.start_at, 'Empty: when launched.'),
        field('end_at', `End (${zone})`, inputs.end_at),
        field('calling_hours_on', 'Only send within calling hours', useHours),
        h('div', { class: 'row' },
          field('calling_hours.start', 'From', inputs.hours_start),
          field('calling_hours.end', 'To', inputs.hours_end),
          field('calling_hours.timezone', 'Time zone', inputs.hours_zone)),
        field('calling_hours.recipient_timezone', 'Judge the hours in each recipient’s time zone', inputs.hours_recipient)),
      h('fieldset', {}, h('legend', {}, 'Replies'),
        field('close_on_quick_reply', 'A quick-reply answer closes the interaction', inputs.close_on_quick_reply),
        field('include_active_interactions', 'Send even to contacts in another campaign’s interaction', inputs.include_active_interactions),
        field('reply_route', 'Reply route (bot flow or agent queue)', inputs.reply_route)),
      h('fieldset', {}, h('legend', {}, 'Meta’s marketing limit (131049)'),
        h('div', { class: 'row' },
          field('marketing_limit_retry.max_attempts', 'Send again at most (0-7 times)', inputs.retry_attempts),
          field('marketing_limit_retry.spacing_hours', 'after (24-168 hours)', inputs.retry_spacing))),
      h('fieldset', {}, h('legend', {}, 'Display'),
        field('display_timezone', 'Show this campaign’s times in (IANA zone)', inputs.display_timezone, `Empty: the tenant’s (${tenant.timezone}).`)))),
  h('div', { class: 'row' },
    h('button', { type: 'submit', class: 'primary' }, c ? 'Save changes' : 'Create campaign'),
    h('a', { href: c ? `#/campaigns/${encodeURIComponent(c.id)}` : '#/campaigns' }, 'Cancel')));
  const smsOnly = () => {
    const sms = isSms();
    inputs.message.closest('.field').hidden = !sms;
    inputs.max_segments.closest('.field').hidden = !sms;
    template.closest('.field').hidden = sms;
    inputs.fallback_account.closest('.field').hidden = sms;
    inputs.fallback_message.closest('.field').hidden = sms;
    fillAccounts(sms ? 'sms' : 'whatsapp');
    fillTemplates();
    fillVariables();
  };
  inputs.channel.addEventListener('change', smsOnly);
  inputs.message.addEventListener('input', () => { if (isSms()) fillVariables(); });
  smsOnly();
  if (c) initial = JSON.parse(JSON.stringify(body()));
  return h('section', {}, h('h1', {}, c ? `Edit “${c.name}”` : 'New campaign'), form);
}

// ---------------------------------------------------------------- campaign detail

const HOPPER_STATES = ['FRESH', 'RETRY', 'SENDING', 'PENDING', 'CLOSED', 'FAILED', 'BLOCK_LIST', 'SKIPPED'];

function hopperCards(hop) {
  return h('div', { class: 'counts', 'aria-label': 'Hopper counts' },
    [['total', hop.total], ...HOPPER_STATES.map((s) => [s, hop.states[s] || 0])].map(([k, n]) =>
      h('div', { class: 'count', 'data-count': k }, h('div', { class: 'n' }, num(n)), h('div', { class: 'k' }, k.replace('_', ' ')))));
}

function statsView(s) {
  const max = Math.max(s.target, 1);
  // A channel without read receipts (SMS) has no Read bar and says so.
  const reads = s.read !== null && s.read !== undefined;
  const bars = [['Target', s.target], ['Sent', s.sent], ['Delivered', s.delivered], ...(reads ? [['Read', s.read]] : []), ['Replied', s.replied]];
  const reasons = Object.entries(s.not_sent_by_reason || {});
  const bar = (label, n, bad) => [h('span', {}, label),
    h('div', { class: `bar${bad ? ' bad' : ''}`, style: `width:${(100 * n) / max}%`, role: 'img', 'aria-label': `${label}: ${n}` }),
    h('span', { class: 'v', 'data-stat': label.toLowerCase() }, num(n))];
  return h('div', {},
    h('div', { class: 'pcts' },
      h('div', {}, h('strong', {}, `${s.delivered_pct ?? 0}%`), 'delivered of sent'),
      reads ? h('div', {}, h('strong', {}, `${s.read_pct ?? 0}%`), 'read of delivered')
        : h('div', { 'data-stat': 'no-reads' }, h('strong', {}, 'n/a'), 'SMS reports no reads'),
      h('div', {}, h('strong', {}, `${s.replied_pct ?? 0}%`), 'replied of delivered')),
    h('div', { class: 'chart', 'aria-label': 'Funnel' }, bars.map(([l, n]) => bar(l, n, false))),
    reasons.length ? [h('h3', {}, `Not sent: ${num(s.not_sent)}`),
      h('div', { class: 'chart', 'aria-label': 'Not sent by reason' }, reasons.map(([r, n]) => bar(r, n, true)))] : null);
}

function entriesTable(c, page) {
  const cid = encodeURIComponent(c.id);
  return table([
    { label: 'Phone', cell: (e) => h('a', { href: `#/campaigns/${cid}/contacts/${encodeURIComponent(e.phone)}` }, `+${e.phone}`) },
    { label: 'Name', cell: (e) => e.name || '—' },
    { label: 'State', cell: (e) => e.state },
    { label: 'Attempts', num: true, cell: (e) => e.attempts },
    { label: 'Sent', cell: (e) => (e.sent_at ? fmtTime(e.sent_at, c.display_timezone || tenantZone) : '—') },
    { label: 'Outcome', cell: (e) => e.disposition || e.outcome || e.message_status || '—' },
    { label: 'Reason', cell: (e) => e.reason || e.error || e.last_attempt_error || '—' },
  ], page.items, { empty: 'No entries here.' });
}

async function download(path, filename) {
  const resp = await call('GET', path, undefined, { raw: true });
  const url = URL.createObjectURL(await resp.blob());
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function campaignDetail(id) {
  const seq = renderSeq;
  const cid = encodeURIComponent(id);
  const base = `/campaigns/${cid}`;
  let c = await get(base);
  const lists = await get('/lists?limit=100');
  const zone = c.display_timezone || tenantZone;
  const head = h('div', {});
  const opBox = h('div', { 'aria-live': 'polite' });
  const hopBox = h('div', {});
  const statBox = h('div', {});
  const tabBox = h('div', { role: 'tabpanel', id: 'entries-panel', 'aria-label': 'Entries' });
  let tab = 'open';
  let cursor = null;

  function renderHead() {
    fill(head, 
      h('div', { class: 'row' }, h('h1', { style: 'margin:0 auto 0 0' }, c.name), channelBadge(c.channel), statusBadge(c.status)),
      c.pause_reason ? h('p', { class: 'err-box' }, `Paused by the engine: ${c.pause_reason}`) : null,
      h('p', { class: 'muted' },
        c.channel === 'sms'
          ? `SMS “${c.message || '—'}” (at most ${c.max_segments} parts) · `
          : `Template ${c.template ? `${c.template.name} (${c.template.language})` : '—'}${c.sms_fallback ? ', SMS fallback' : ''} · `,
        `pace ${c.pacing ? `${c.pacing.value} ${c.pacing.unit.replace(/_/g, ' ')}` : '—'} · `,
        `response timeout ${c.response_timeout_days} day(s) · audience ${audienceText(c)} · start ${c.start_at ? fmtTime(c.start_at, zone) : 'when launched'}`,
        c.end_at ? ` · end ${fmtTime(c.end_at, zone)}` : ''),
      h('div', { class: 'row' },
        h('progress', { max: Math.max(c.progress.target, 1), value: c.progress.sent, 'aria-label': 'Sent of target' }),
        h('span', { 'data-progress': '' }, `${num(c.progress.sent)} of ${num(c.progress.target)} sent (${c.progress.percent}%)`)),
      actionButtons(c, async (name) => { if (name === 'delete') location.hash = '#/campaigns'; else await refresh(); }, { menu: false }));
  }
  async function renderOperation() {
    let op = null;
    try { op = await get(`${base}/operation`); } catch (e) { if (e.status !== 404) throw e; }
    if (!op || op.status === 'DONE' || op.status === 'ABORTED') {
      fill(opBox, op && op.status === 'ABORTED' ? h('p', { class: 'muted' }, `Last ${op.kind} stopped: ${op.message || ''}`) : '');
      return;
    }
    const p = op.progress || {};
    fill(opBox, h('div', { class: 'card' },
      h('strong', {}, `${op.kind} in progress `),
      h('progress', { max: 100, value: p.percent || 0, 'aria-label': `${op.kind} progress` }),
      ` ${p.percent || 0}% · ${num(p.examined)} examined · ${num(p.changed)} changed`));
  }
  // The tab's filters: a state of the tab's own, a reason and a disposition.
  const TAB_STATES = { open: ['FRESH', 'SENDING', 'PENDING'], history: ['CLOSED', 'FAILED', 'BLOCK_LIST', 'SKIPPED', 'RETRY'] };
  const stateFilter = h('select', { id: 'entry-state' });
  const reasonFilter = h('input', { type: 'text', id: 'entry-reason', placeholder: 'e.g. block list' });
  const dispositionFilter = h('input', { type: 'text', id: 'entry-disposition', placeholder: 'e.g. replied:Yes' });
  const fillStates = () => fill(stateFilter, h('option', { value: '' }, 'Any'), TAB_STATES[tab].map((st) => h('option', { value: st }, st)));
  fillStates();
  const filters = h('form', {
    class: 'row',
    'aria-label': 'Filter entries',
    onsubmit: (ev) => { ev.preventDefault(); cursor = null; renderTab().catch((e) => fill(tabBox, errorBox(e))); },
  },
  h('div', { class: 'field' }, h('label', { for: 'entry-state' }, 'State'), stateFilter),
  h('div', { class: 'field' }, h('label', { for: 'entry-reason' }, 'Reason'), reasonFilter),
  h('div', { class: 'field' }, h('label', { for: 'entry-disposition' }, 'Disposition'), dispositionFilter),
  h('button', { type: 'submit' }, 'Show'));
  // Answers that arrive after a newer request was made are dropped (a poll started
  // before a click must not paint over what the click asked for).
  let tabReq = 0;
  async function renderTab() {
    const mine = ++tabReq;
    const path = tab === 'open' ? 'hopper/open' : 'hopper/history';
    const page = await get(`${base}/${path}${query({
      limit: 50, cursor, state: stateFilter.value, reason: reasonFilter.value.trim(), disposition: dispositionFilter.value.trim(),
    })}`);
    if (mine !== tabReq) return;
    fill(tabBox, entriesTable(c, page),
      h('div', { class: 'row', style: 'margin-top:6px' },
        cursor ? h('button', { type: 'button', onclick: () => { cursor = null; renderTab(); } }, 'First page') : null,
        page.next_cursor ? h('button', { type: 'button', onclick: () => { cursor = page.next_cursor; renderTab(); } }, 'Next page →') : null));
  }
  let headReq = 0;
  async function refresh() {
    const mine = ++headReq;
    const [cc, hop, stats] = await Promise.all([get(base), get(`${base}/hopper`), get(`${base}/stats`)]);
    if (mine !== headReq) return;
    c = cc;
    const focused = document.activeElement && head.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    renderHead();
    if (focused) { const again = head.querySelector(`[data-action="${focused}"]`); if (again && !again.disabled) again.focus(); }
    fill(hopBox, hopperCards(hop));
    fill(statBox, statsView(stats));
    await renderOperation();
  }

  const tabs = h('div', { class: 'tabs', role: 'tablist' },
    [['open', 'Pending'], ['history', 'History']].map(([k, l]) => h('button', {
      type: 'button', role: 'tab', 'aria-selected': k === tab ? 'true' : 'false', 'data-tab': k, 'aria-controls': 'entries-panel',
      // Arrow keys move between the tabs, as in every tab list.
      onkeydown: (ev) => {
        if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
        const other = tabs.querySelector(`[data-tab="${k === 'open' ? 'history' : 'open'}"]`);
        other.focus();
        other.click();
      },
      onclick: (ev) => {
        tab = k; cursor = null;
        fillStates();
        for (const b of tabs.querySelectorAll('button')) b.setAttribute('aria-selected', b.dataset.tab === k ? 'true' : 'false');
        ev.target.focus();
        renderTab();
      },
    }, l)));

  const costBox = h('div', { 'aria-live': 'polite' });
  const costBtn = h('button', {
    type: 'button',
    onclick: async () => {
      try {
        const r = await call('GET', `${base}/cost`);
        if (r.status === 202) { fill(costBox, h('p', {}, 'Counting in the background; ask again in a moment.')); return; }
        const e = r.data;
        const unit = e.unit === 'message_part' ? 'SMS parts' : 'messages';
        const line = (b) => `${e.currency} ${b.cost.toFixed(2)} for ${num(b.messages)} ${unit}`;
        fill(costBox, h('p', {}, `The whole audience: ${line(e.target)}. Sent so far: ${line(e.sent)}; delivered: ${line(e.delivered)}. ${e.category} prices of ${e.price_table.as_of} (${e.price_table.source}), counted ${fmtTime(e.counted_at, zone)}.`));
      } catch (e) { fill(costBox, errorBox(e)); }
    },
  }, 'Cost estimate');
  const attachList = h('select', { id: 'attach-list', 'aria-label': 'List to add' }, h('option', { value: '' }, 'Choose a list'), lists.items.map((l) => h('option', { value: l.id }, l.name)));
  const testPhones = h('input', { type: 'text', id: 'test-phones', placeholder: '+91 98123 45678, …' });
  const testForm = h('form', {
    class: 'row',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const phones = testPhones.value.split(',').map((p) => p.trim()).filter(Boolean);
        const t = await post(`${base}/test`, { phones });
        flash(`Test campaign “${t.name}” sends to ${phones.length} number(s).`);
      } catch (e) { showFieldError(testForm, e); }
    },
  }, h('div', { class: 'form-error' }), field('phones', 'Test to these numbers (existing contacts)', testPhones), h('button', { type: 'submit' }, 'Send test'));

  await refresh();
  await renderTab();
  // The first page of the tab follows the campaign too, unless the operator is in it
  // (a link or a pager has the focus) or paging.
  poll(async () => { await refresh(); if (!cursor && !tabBox.contains(document.activeElement)) await renderTab(); }, seq);
  return h('section', {},
    h('p', {}, h('a', { href: '#/campaigns' }, '← Campaigns')),
    head, opBox,
    h('h2', {}, 'Hopper'), hopBox,
    h('h2', {}, 'Statistics'), statBox,
    h('div', { class: 'row' },
      h('button', { type: 'button', onclick: () => download(`${base}/export.csv`, `${c.name.replace(/[^A-Za-z0-9_-]+/g, '_')}.csv`).catch((e) => flash(e.message, true)) }, 'Export CSV'),
      costBtn,
      h('button', { type: 'button', onclick: async () => { try { await post(`${base}/stats/recount`); flash('Recount started.'); } catch (e) { flash(e.message, true); } } }, 'Recount')),
    costBox,
    h('div', { class: 'card' },
      h('form', {
        class: 'row',
        onsubmit: async (ev) => {
          ev.preventDefault();
          if (!attachList.value) return;
          try {
            const r = await call('POST', `${base}/lists`, { list_id: attachList.value });
            flash(r.status === 202 ? 'The list is being added in the background.' : `Added ${r.data.added} contact(s) (${r.data.already_present} already there).`);
            await refresh();
          } catch (e) { flash(e.message, true); }
        },
      }, h('div', { class: 'field' }, h('label', { for: 'attach-list' }, 'Add a list'), attachList), h('button', { type: 'submit' }, 'Add list')),
      testForm),
    tabs, filters, tabBox);
}

// ---------------------------------------------------------------- conversation ("spy")

async function conversationView(id, phone) {
  const conv = await get(`/campaigns/${encodeURIComponent(id)}/contacts/${encodeURIComponent(phone)}/conversation`);
  return h('section', {},
    h('p', {}, h('a', { href: `#/campaigns/${encodeURIComponent(id)}` }, '← The campaign')),
    h('h1', {}, `Conversation with +${conv.phone}`),
    h('p', { class: 'muted' }, `Outcome: ${conv.disposition || 'open'}${conv.expires_at ? ` · waits for a reply until ${fmtTime(conv.expires_at)}` : ''}`),
    h('div', { class: 'card', 'aria-label': 'Messages' },
      conv.messages.length ? conv.messages.map((m) => h('div', { class: `bubble ${m.direction}` },
        m.text || `[${m.kind}]`,
        h('div', { class: 'meta' }, `${m.direction === 'outbound' ? 'Sent' : 'Received'} ${fmtTime(m.at)}${m.button ? ` · button “${m.button}”` : ''}${m.template ? ` · template ${m.template}` : ''}`)))
        : h('p', { class: 'muted' }, 'Nothing sent to this contact yet.')));
}

// ---------------------------------------------------------------- contacts, lists, import

async function audienceView() {
  const lists = await get('/lists?limit=100');
  const contactsBox = h('div', {});
  let cursors = [null];
  async function loadContacts(cursor = null) {
    const page = await get(`/contacts${query({ limit: 50, cursor })}`);
    if (cursor === null) cursors = [null];
    fill(contactsBox, 
      table([
        { label: 'Phone', cell: (x) => `+${x.phone}` }, { label: 'Name', cell: (x) => x.name || '—' },
        { label: 'Tags', cell: (x) => (x.tags || []).join(', ') || '—' },
      ], page.items, { empty: 'No contacts yet.' }),
      h('div', { class: 'row', style: 'margin-top:6px' },
        cursors.length > 1 ? h('button', { type: 'button', onclick: () => { cursors.pop(); loadContacts(cursors[cursors.length - 1]); } }, '← Previous page') : null,
        page.next_cursor ? h('button', { type: 'button', onclick: () => { cursors.push(page.next_cursor); loadContacts(page.next_cursor); } }, 'Next page →') : null));
  }
  await loadContacts();
  const listName = h('input', { type: 'text', autocomplete: 'off' });
  const newList = h('form', {
    class: 'row',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try { const l = await post('/lists', { name: listName.value.trim() }); flash(`List “${l.name}” created.`); rerender(); } catch (e) { showFieldError(newList, e); }
    },
  }, h('div', { class: 'form-error' }), field('name', 'New list name', listName), h('button', { type: 'submit' }, 'Create list'));

  const file = h('input', { type: 'file', accept: '.csv,text/csv' });
  const importList = h('select', {}, h('option', { value: '' }, 'No list'), lists.items.map((l) => h('option', { value: l.id }, l.name)));
  const result = h('div', { 'aria-live': 'polite' });
  const importForm = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const f = file.files[0];
      if (!f) { showFieldError(importForm, { field: 'file', message: 'Choose a CSV file first.' }); return; }
      fill(result, h('p', {}, 'Importing…'));
      try {
        const imp = f.size <= 1024 * 1024
          ? (await call('POST', `/contacts/import${query({ list_id: importList.value })}`, await f.text(), { csv: true })).data
          : await uploadImport(f, importList.value, result);
        fill(result, importReport(imp));
        await loadContacts();
      } catch (e) { fill(result); showFieldError(importForm, e); }
    },
  }, h('div', { class: 'form-error' }),
  field('file', 'CSV file (a header row naming phone, name, tags, tag:key, fields…)', file),
  field('list_id', 'Add the contacts to', importList),
  h('button', { type: 'submit', class: 'primary' }, 'Import'));

  return h('section', {}, h('h1', {}, 'Contacts & lists'),
    h('div', { class: 'card' }, h('h2', {}, 'Import contacts'), importForm, result),
    h('h2', {}, 'Lists'),
    table([{ label: 'Name', cell: (l) => l.name }, { label: 'Id', cell: (l) => l.id }, { label: 'Created', cell: (l) => fmtTime(l.created_at) }], lists.items),
    h('div', { class: 'card' }, newList),
    h('h2', {}, 'Contacts'), contactsBox);
}

// A file over the inline limit goes to object storage through a presigned upload; the
// import then runs in the background and is followed until it finishes.
async function uploadImport(f, listId, progressBox) {
  const seq = renderSeq;
  const until = Date.now() + 30 * 60 * 1000;
  const ticket = await post('/imports', { list_id: listId || null });
  const put = await fetch(ticket.upload_url, { method: ticket.method || 'PUT', headers: ticket.headers || {}, body: f });
  if (!put.ok) throw new Error(`the upload answered ${put.status}`);
  for (;;) {
    const imp = await get(`/imports/${encodeURIComponent(ticket.import.id)}`);
    if (imp.status === 'COMPLETED' || imp.status === 'FAILED') return imp;
    // Left or too long: the import goes on without the page (GET /imports/{id}).
    if (seq !== renderSeq || Date.now() > until) return imp;
    fill(progressBox, h('p', {}, `Importing: ${num(imp.rows)} rows read, ${num(imp.imported)} imported, ${num(imp.invalid)} invalid…`));
    await new Promise((r) => setTimeout(r, 1500));
  }
}

function importReport(imp) {
  return h('div', { class: 'card', 'data-import': imp.status },
    h('p', {}, h('strong', {}, `Import ${imp.status.toLowerCase()}: `), `${num(imp.rows)} rows, ${num(imp.imported)} imported, ${num(imp.invalid)} invalid.`),
    imp.failure ? h('p', { class: 'error' }, imp.failure) : null,
    (imp.errors || []).length ? table([{ label: 'Line', num: true, cell: (e) => e.line }, { label: 'Why', cell: (e) => e.reason }], imp.errors, { stack: false }) : null);
}

// ---------------------------------------------------------------- block lists and opt-outs

// A paged table that loads its own pages (`load(cursor)` answers an API page).
function pagedTable(columns, load, empty) {
  const box = h('div', {});
  const stack = [null];
  async function show(cursor) {
    const page = await load(cursor);
    fill(box, table(columns, page.items, { empty }),
      h('div', { class: 'row', style: 'margin-top:6px' },
        stack.length > 1 ? h('button', { type: 'button', onclick: () => { stack.pop(); show(stack[stack.length - 1]); } }, '← Previous page') : null,
        page.next_cursor ? h('button', { type: 'button', onclick: () => { stack.push(page.next_cursor); show(page.next_cursor); } }, 'Next page →') : null));
  }
  return { box, show: () => { stack.length = 1; return show(null); } };
}

async function blocksView(openId) {
  const blocks = await get('/block-lists?limit=100');
  const name = h('input', { type: 'text' });
  const description = h('input', { type: 'text' });
  const newBlock = h('form', {
    class: 'row',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const b = await post('/block-lists', { name: name.value.trim(), description: description.value.trim() || null });
        flash(`Block list “${b.name}” created.`);
        location.hash = `#/blocks/${encodeURIComponent(b.id)}`;
      } catch (e) { showFieldError(newBlock, e); }
    },
  }, h('div', { class: 'form-error' }), field('name', 'New block list name', name), field('description', 'Description', description), h('button', { type: 'submit' }, 'Create block list'));

  const open = blocks.items.find((b) => b.id === openId);
  let detail = null;
  if (open) {
    const bid = encodeURIComponent(open.id);
    const numbers = pagedTable([
      { label: 'Number', cell: (n) => `+${n.phone}` },
      { label: 'Added', cell: (n) => fmtTime(n.added_at) },
      { label: '', cell: (n) => h('button', { type: 'button', class: 'danger', onclick: async () => {
        try { await call('DELETE', `/block-lists/${bid}/numbers/${encodeURIComponent(n.phone)}`); await numbers.show(); } catch (e) { flash(e.message, true); }
      } }, `Remove +${n.phone}`) },
    ], (cursor) => get(`/block-lists/${bid}/numbers${query({ limit: 50, cursor })}`), 'No numbers on this list yet.');
    const phones = h('textarea', { placeholder: 'One number per line or comma-separated' });
    const addForm = h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const r = await post(`/block-lists/${bid}/numbers`, { phones: phones.value.split(/[\n,]+/).map((x) => x.trim()).filter(Boolean) });
          flash(`${r.added} added, ${r.already_present} already there${r.errors && r.errors.length ? `; not numbers: ${r.errors.map((x) => x.input).join(', ')}` : ''}.`, !!(r.errors && r.errors.length));
          phones.value = '';
          numbers.show();
        } catch (e) { showFieldError(addForm, e); }
      },
    }, h('div', { class: 'form-error' }), field('phones', `Add numbers to “${open.name}”`, phones), h('button', { type: 'submit', class: 'primary' }, 'Add numbers'));
    await numbers.show();
    detail = h('div', { class: 'card' }, h('h2', {}, `Block list “${open.name}”`), open.description ? h('p', { class: 'muted' }, open.description) : null,
      addForm, numbers.box,
      h('button', {
        type: 'button', class: 'danger',
        onclick: async () => {
          if (!await confirmDialog(`Delete the block list “${open.name}”?`, 'Its numbers can be sent to again by the campaigns that attached it.', 'Delete')) return;
          try { await call('DELETE', `/block-lists/${bid}`); flash('Block list deleted.'); location.hash = '#/blocks'; } catch (e) { flash(e.message, true); }
        },
      }, 'Delete this block list'));
  }

  const optPhone = h('input', { type: 'text' });
  const optNote = h('input', { type: 'text' });
  const optOuts = pagedTable([
    { label: 'Number', cell: (o) => `+${o.phone}` }, { label: 'Source', cell: (o) => o.source },
    { label: 'When', cell: (o) => fmtTime(o.at) }, { label: 'Note', cell: (o) => o.note || '—' },
    { label: '', cell: (o) => h('button', { type: 'button', onclick: async () => {
      if (!await confirmDialog(`Remove +${o.phone} from the opt-out list?`, 'Campaigns may send to this number again. Do this only when the customer asked for it.', 'Remove')) return;
      try { await call('DELETE', `/opt-outs/${encodeURIComponent(o.phone)}`); flash(`+${o.phone} may be sent to again.`); await optOuts.show(); } catch (e) { flash(e.message, true); }
    } }, `Opt +${o.phone} back in`) },
  ], (cursor) => get(`/opt-outs${query({ limit: 50, cursor })}`), 'Nobody has opted out.');
  const optForm = h('form', {
    class: 'row',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try { await post('/opt-outs', { phone: optPhone.value.trim(), note: optNote.value.trim() || null }); optPhone.value = ''; optNote.value = ''; flash('Opted out.'); optOuts.show(); } catch (e) { showFieldError(optForm, e); }
    },
  }, h('div', { class: 'form-error' }), field('phone', 'Number', optPhone), field('note', 'Note', optNote), h('button', { type: 'submit' }, 'Opt out'));
  await optOuts.show();

  return h('section', {}, h('h1', {}, 'Block lists & opt-outs'),
    table([
      { label: 'Name', cell: (b) => h('a', { href: `#/blocks/${encodeURIComponent(b.id)}` }, b.name) },
      { label: 'Description', cell: (b) => b.description || '—' }, { label: 'Created', cell: (b) => fmtTime(b.created_at) },
    ], blocks.items, { empty: 'No block lists yet.' }),
    h('div', { class: 'card' }, newBlock),
    detail,
    h('h2', {}, 'Opt-out list'),
    h('p', { class: 'muted' }, 'No campaign of the tenant sends to these numbers, whatever its block lists say. STOP and the opt-out keywords add numbers here.'),
    h('div', { class: 'card' }, optForm), optOuts.box);
}

// ---------------------------------------------------------------- accounts and templates

async function accountsView() {
  const [accounts, templates] = await Promise.all([get('/accounts'), get('/templates')]);
  const acc = {
    name: h('input', { type: 'text' }),
    provider: h('select', {}, [['meta', 'Meta Cloud API (WhatsApp)'], ['kaleyra', 'Kaleyra (WhatsApp)'],
      ['aws_social', 'AWS End User Messaging Social (WhatsApp)'], ['twilio', 'Twilio (SMS)'],
      ['aws_sms', 'AWS End User Messaging SMS']].map(([v, l]) => h('option', { value: v }, l))),
    sender_id: h('input', { type: 'text' }), token_ref: h('input', { type: 'text', placeholder: 'secretsmanager:campaigns/acme/meta-token' }),
    waba_id: h('input', { type: 'text' }),
  };
  const accForm = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const b = Object.fromEntries(Object.entries(acc).map(([k, el]) => [k, el.value.trim() || null]));
      for (const k of Object.keys(b)) if (b[k] === null) delete b[k];
      try { const a = await post('/accounts', b); flash(`Account “${a.name}” added.`); rerender(); } catch (e) { showFieldError(accForm, e); }
    },
  }, h('div', { class: 'form-error' }),
  h('div', { class: 'grid2' },
    field('name', 'Name', acc.name), field('provider', 'Provider', acc.provider),
    field('sender_id', 'Sender id (Meta phone_number_id)', acc.sender_id,
      'Kaleyra <sid>:<from>; AWS Social phone-number-id-…; Twilio <AccountSid>:<From>; AWS SMS the number in E.164'),
    field('token_ref', 'Token reference (never the token itself)', acc.token_ref, 'secretsmanager:NAME, ssm:NAME or env:VAR'),
    field('waba_id', 'WhatsApp Business Account id', acc.waba_id)),
  h('button', { type: 'submit', class: 'primary' }, 'Add account'));

  const tpl = {
    // SMS accounts have no templates.
    account_id: h('select', {}, accounts.items.filter((a) => !['twilio', 'aws_sms'].includes(a.provider))
      .map((a) => h('option', { value: a.id }, a.name))),
    name: h('input', { type: 'text' }), language: h('input', { type: 'text', value: 'en' }),
    category: h('select', {}, ['MARKETING', 'UTILITY', 'AUTHENTICATION'].map((x) => h('option', { value: x }, x))),
    body: h('textarea', {}), quick_replies: h('input', { type: 'text', placeholder: 'Yes, No' }),
    header_url: h('input', { type: 'text', placeholder: 'https://…/image.jpg' }),
  };
  const tplForm = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const b = {
        account_id: tpl.account_id.value, name: tpl.name.value.trim(), language: tpl.language.value.trim(),
        category: tpl.category.value, body: tpl.body.value,
        quick_replies: tpl.quick_replies.value.split(',').map((x) => x.trim()).filter(Boolean),
      };
      if (tpl.header_url.value.trim()) b.header = { type: 'image', url: tpl.header_url.value.trim() };
      try { const t = await post('/templates', b); flash(`Template “${t.name}” registered (${t.status}).`); rerender(); } catch (e) { showFieldError(tplForm, e); }
    },
  }, h('div', { class: 'form-error' }),
  h('div', { class: 'grid2' },
    field('account_id', 'Account', tpl.account_id), field('name', 'Name', tpl.name),
    field('language', 'Language', tpl.language), field('category', 'Category', tpl.category),
    field('quick_replies', 'Quick replies', tpl.quick_replies, 'Comma-separated'),
    field('header', 'Header image URL', tpl.header_url)),
  field('body', 'Body ({{1}}, {{2}} … for the variables)', tpl.body),
  h('button', { type: 'submit', class: 'primary', disabled: !accounts.items.length }, 'Register template'));

  const sync = async (a) => {
    try { const r = await post(`/accounts/${encodeURIComponent(a.id)}/templates/sync`, {}); flash(`Synchronised ${a.name}: ${JSON.stringify(r)}`); rerender(); } catch (e) { flash(e.message, true); }
  };
  return h('section', {}, h('h1', {}, 'Accounts & templates'),
    table([
      { label: 'Name', cell: (a) => a.name }, { label: 'Provider', cell: (a) => a.provider },
      { label: 'Sender', cell: (a) => a.sender_id }, { label: 'Rate/s', num: true, cell: (a) => a.rate_limit },
      { label: 'Tier', cell: (a) => a.messaging_tier ?? 'unlimited' },
      { label: 'Recontact template', cell: (a) => recontactPicker(a, templates.items) },
      { label: '', cell: (a) => h('button', { type: 'button', onclick: () => sync(a), disabled: !a.waba_id, title: a.waba_id ? null : 'No WABA id to synchronise from' }, 'Sync templates') },
    ], accounts.items, { empty: 'No accounts yet.' }),
    h('div', { class: 'card' }, h('h2', {}, 'Add an account'), accForm),
    h('h2', {}, 'Templates'),
    table([
      { label: 'Name', cell: (t) => t.name }, { label: 'Language', cell: (t) => t.language },
      { label: 'Category', cell: (t) => t.category }, { label: 'Status', cell: (t) => t.status },
      { label: 'Quality', cell: (t) => t.quality || '—' },
      { label: 'Preview', cell: (t) => renderPreview(t, []) },
    ], templates.items, { empty: 'No templates yet.' }),
    h('div', { class: 'card' }, h('h2', {}, 'Register a template'), tplForm));
}

// The template sent when a contact's 24-hour window has closed: one of the account's
// approved templates.
function recontactPicker(a, templates) {
  const current = a.recontact_template ? `${a.recontact_template.name}|${a.recontact_template.language}` : '';
  const mine = templates.filter((t) => t.account_id === a.id && t.status === 'APPROVED');
  const sel = h('select', { 'aria-label': `Recontact template of ${a.name}` },
    h('option', { value: '' }, current ? '' : 'None'),
    mine.map((t) => h('option', { value: `${t.name}|${t.language}`, selected: `${t.name}|${t.language}` === current }, `${t.name} (${t.language})`)));
  sel.addEventListener('change', async () => {
    if (!sel.value) return;
    const [name, language] = sel.value.split('|');
    try {
      await call('PUT', `/accounts/${encodeURIComponent(a.id)}/recontact-template`, { name, language });
      flash(`${a.name} recontacts with ${name} (${language}).`);
    } catch (e) { flash(e.message, true); }
  });
  return mine.length ? sel : '—';
}

// ---------------------------------------------------------------- tenant settings

async function settingsView() {
  const t = await get('/tenant');
  const zone = h('input', { type: 'text', value: t.timezone });
  const words = h('input', { type: 'text', value: (t.opt_out_keywords || []).join(', ') });
  const help = h('textarea', { maxlength: 320 }, t.sms_help_text || '');
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const saved = (await call('PUT', '/tenant', {
          timezone: zone.value.trim(),
          opt_out_keywords: words.value.split(',').map((w) => w.trim()).filter(Boolean),
          sms_help_text: help.value.trim() || null,
        })).data;
        tenantZone = saved.timezone;
        flash('Settings saved.');
      } catch (e) { showFieldError(form, e); }
    },
  }, h('div', { class: 'form-error' }),
  field('timezone', 'Time zone (IANA, e.g. Asia/Kolkata)', zone),
  field('opt_out_keywords', 'Opt-out keywords', words, 'Comma-separated; STOP always opts out. On SMS, STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT do too.'),
  field('sms_help_text', 'Answer to an SMS HELP', help, 'At most 320 characters; empty: the SMS provider’s own HELP answer.'),
  h('button', { type: 'submit', class: 'primary' }, 'Save'));
  return h('section', {}, h('h1', {}, 'Settings'), h('p', {}, `Tenant ${t.id} · campaigns ${t.campaigns_enabled ? 'enabled' : 'disabled by the platform administrator'}`), form);
}

// ---------------------------------------------------------------- start

function renderWho() {
  const who = $('#who');
  if (session.cfg.auth === 'tenant_header') {
    const input = h('input', { type: 'text', id: 'tenant', value: session.tenant, size: 10, autocomplete: 'off' });
    fill(who, h('form', {
      class: 'row',
      onsubmit: (ev) => {
        ev.preventDefault();
        session.tenant = input.value.trim() || session.cfg.tenant;
        localStorage.setItem('tenant', session.tenant);
        start();
      },
    }, h('label', { for: 'tenant' }, 'Tenant'), input, h('button', { type: 'submit' }, 'Switch')));
  } else {
    fill(who, h('button', { type: 'button', onclick: () => { sessionStorage.clear(); signIn(); } }, 'Sign in again'));
  }
}

async function start() {
  try {
    const t = await get('/tenant');
    tenantZone = t.timezone || 'UTC';
  } catch (e) { /* the view shows the error */ }
  route();
}

async function boot() {
  session.cfg = await (await fetch('/console/config.json')).json();
  if (session.cfg.auth === 'tenant_header') {
    session.tenant = localStorage.getItem('tenant') || session.cfg.tenant;
  } else {
    const q = new URLSearchParams(location.search);
    if (q.has('code') || q.has('error')) {
      try {
        await finishSignIn();
      } catch (e) {
        renderWho();
        fill($('#main'), h('h1', {}, 'Not signed in'), errorBox(e));
        return;
      }
    }
    session.token = sessionStorage.getItem('token');
    if (!session.token) { await signIn(); return; }
  }
  renderWho();
  window.addEventListener('hashchange', route);
  start();
}

boot().catch((e) => fill($('#main'), h('h1', {}, 'The console could not start'), errorBox(e)));
