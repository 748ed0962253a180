// ui.js -- the live view: a page of the listing API per kind (locks,
// semaphores), polled every second and rendered in place (rows keyed by
// name, so focus and scroll stay put), one name's detail with its queue,
// force release behind a confirmation, and the hot-locks table (the names
// this instance saw most contended), polled every few seconds. Only public
// API calls.
'use strict';

const POLL_MS = 1000;
// The hot-locks table counts over a minute: a call every HOT_EVERY_TICKS
// ticks is fresh enough, for HOT_LIMIT names.
const HOT_EVERY_TICKS = 3;
const HOT_LIMIT = 10;

const KINDS = {
  locks: { path: '/v1/locks', member: 'locks', body: 'locks-body', empty: 'locks-empty', prev: 'locks-prev', next: 'locks-next', page: 'locks-page' },
  sems: { path: '/v1/semaphores', member: 'semaphores', body: 'sems-body', empty: 'sems-empty', prev: 'sems-prev', next: 'sems-next', page: 'sems-page' },
};

const state = {
  paused: false,
  prefix: '',
  limit: 100,
  // per kind: the cursors of the pages seen (cursors[i] opens page i) and
  // the next page's cursor as the last answer gave it
  pages: { locks: { cursors: [null], index: 0, next: null }, sems: { cursors: [null], index: 0, next: null } },
  detail: null, // {kind, name, status (last answer), opener (the button that opened it)}
  ticks: 0,
  forceDenied: false,
  lastError: '',
};

// ---------------------------------------------------------------- cells

// A lease's TTL as a meter: the time left against the time left plus the
// time held (the whole lease when it was never renewed).
function ttlMeter(h) {
  const wrap = el('span', 'ttl');
  if (typeof h.ttl_ms !== 'number') return wrap;
  const m = el('meter');
  m.min = 0;
  m.max = Math.max(1, h.ttl_ms + (h.held_ms || 0));
  m.value = h.ttl_ms;
  m.low = m.max * 0.25;
  m.optimum = m.max;
  m.title = `${formatMs(h.ttl_ms)} left`;
  m.setAttribute('aria-label', `TTL left ${formatMs(h.ttl_ms)}`);
  wrap.append(m, ' ', el('span', 'meta', formatMs(h.ttl_ms)));
  return wrap;
}

function holdersList(item) {
  const ul = el('ul', 'holders');
  const holders = Array.isArray(item.holders) ? item.holders : [];
  for (const h of holders) {
    const li = el('li');
    li.dataset.owner = h.owner || '';
    li.append(el('span', 'owner', h.owner || '(no owner)'), ' ');
    const bits = [];
    if (h.mode) bits.push(h.mode);
    if (typeof h.fence === 'number') bits.push(`fence ${h.fence}`);
    if (typeof h.permits === 'number') bits.push(`${h.permits} permit${h.permits === 1 ? '' : 's'}`);
    if (typeof h.count === 'number' && h.count > 1) bits.push(`count ${h.count}`);
    if (typeof h.held_ms === 'number') bits.push(`held ${formatMs(h.held_ms)}`);
    li.append(el('span', 'meta', bits.join(' · ')), ' ', ttlMeter(h));
    ul.append(li);
  }
  const total = typeof item.holder_count === 'number' ? item.holder_count : holders.length;
  if (total > holders.length) ul.append(el('li', 'meta', `and ${total - holders.length} more`));
  if (holders.length === 0 && item.held && item.owner !== undefined) {
    // a status without the holders array: its first holder inline
    const li = el('li');
    li.dataset.owner = item.owner || '';
    li.append(el('span', 'owner', item.owner || '(no owner)'), ' ',
      el('span', 'meta', `fence ${item.fence} · held ${formatMs(item.held_ms)}`), ' ', ttlMeter(item));
    ul.append(li);
  }
  return ul;
}

function reservations(item) {
  const parts = [];
  if (typeof item.reserved_ms === 'number') parts.push(`hand-off reserved ${formatMs(item.reserved_ms)}`);
  if (typeof item.delay_ms === 'number') parts.push(`lock-delay ${formatMs(item.delay_ms)}`);
  return parts.join('; ');
}

// ---------------------------------------------------------------- listing

function nameButton(kind, name) {
  const b = el('button', 'name-link', name);
  b.type = 'button';
  b.setAttribute('aria-label', `Details of ${name}`);
  b.addEventListener('click', () => openDetail(kind, name, b));
  return b;
}

// Replaces a cell's content only when it changed, so that a screen reader
// or a selection is not disturbed every second.
function setCell(td, key, build) {
  if (td.dataset.key === key) return;
  td.dataset.key = key;
  td.replaceChildren(build());
}

function renderRows(kind, items) {
  const k = KINDS[kind];
  const body = document.getElementById(k.body);
  const rows = new Map();
  for (const tr of body.children) rows.set(tr.dataset.name, tr);
  let i = 0;
  for (const item of items) {
    let tr = rows.get(item.name);
    if (!tr) {
      tr = el('tr');
      tr.dataset.name = item.name;
      const th = el('th');
      th.scope = 'row';
      th.append(nameButton(kind, item.name));
      tr.append(th);
      const labels = kind === 'locks' ? ['mode', 'holders', 'waiting', 'reservations'] : ['used / limit', 'holders', 'waiting'];
      for (const label of labels) {
        const td = el('td');
        td.dataset.label = label;
        tr.append(td);
      }
    }
    rows.delete(item.name);
    const tds = tr.querySelectorAll('td');
    const sig = (v) => JSON.stringify(v);
    if (kind === 'locks') {
      setCell(tds[0], sig(item.mode), () => document.createTextNode(item.held ? (item.mode || '') : 'queued'));
      setCell(tds[1], sig([item.holders, item.owner, item.ttl_ms, item.held_ms]), () => holdersList(item));
      tds[2].className = 'num';
      setCell(tds[2], sig(item.waiting), () => document.createTextNode(String(item.waiting || 0)));
      setCell(tds[3], reservations(item), () => document.createTextNode(reservations(item)));
    } else {
      tds[0].className = 'num';
      setCell(tds[0], sig([item.used, item.limit]), () => document.createTextNode(`${item.used} / ${item.limit}`));
      setCell(tds[1], sig([item.holders, item.holder_count]), () => holdersList(item));
      tds[2].className = 'num';
      setCell(tds[2], sig(item.waiting), () => document.createTextNode(String(item.waiting || 0)));
    }
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    i++;
  }
  for (const tr of rows.values()) tr.remove();
  document.getElementById(k.empty).hidden = items.length > 0 || state.pages[kind].index > 0;
}

function renderPager(kind) {
  const k = KINDS[kind];
  const p = state.pages[kind];
  document.getElementById(k.prev).disabled = p.index === 0;
  document.getElementById(k.next).disabled = !p.next;
  document.getElementById(k.page).textContent = `page ${p.index + 1}`;
}

// A page: the listing API walks the keyspace (SCAN), so one call may find
// fewer names than asked, or none, and still have a next_cursor. A page
// follows the cursor until it holds limit names, the walk ends, or
// MAX_CALLS_PER_PAGE calls were made (bounded work per second), and shows
// its names sorted.
const MAX_CALLS_PER_PAGE = 20;

async function refreshList(kind) {
  const k = KINDS[kind];
  const p = state.pages[kind];
  const found = new Map();
  let cursor = p.cursors[p.index];
  let calls = 0;
  do {
    const q = new URLSearchParams({ limit: String(state.limit) });
    if (state.prefix) q.set('prefix', state.prefix);
    if (cursor) q.set('cursor', cursor);
    const r = await Api.call('GET', `${k.path}?${q}`);
    if (r.status !== 200 || !r.json || !Array.isArray(r.json[k.member])) {
      throw new Error(r.status === 404
        ? `this service has no listing endpoint ${k.path} (a build before it)`
        : `GET ${k.path}: ${problemText(r)}`);
    }
    for (const item of r.json[k.member]) found.set(item.name, item);
    cursor = r.json.next_cursor || null;
    calls++;
  } while (cursor && found.size < state.limit && calls < MAX_CALLS_PER_PAGE);
  p.next = cursor;
  const items = [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  renderRows(kind, items);
  renderPager(kind);
}

function turnPage(kind, delta) {
  const p = state.pages[kind];
  if (delta > 0 && p.next) {
    p.cursors = p.cursors.slice(0, p.index + 1);
    p.cursors.push(p.next);
    p.index++;
  } else if (delta < 0 && p.index > 0) {
    p.index--;
  }
  refreshList(kind).catch(showError);
}

function resetPages() {
  for (const kind of Object.keys(KINDS)) state.pages[kind] = { cursors: [null], index: 0, next: null };
}

// ---------------------------------------------------------------- detail

function detailPath(d) {
  return `${KINDS[d.kind].path}/${encodeURIComponent(d.name)}`;
}

function openDetail(kind, name, opener) {
  state.detail = { kind, name, status: null, opener };
  const sec = document.getElementById('detail');
  sec.hidden = false;
  const h = document.getElementById('detail-h');
  h.textContent = name;
  document.getElementById('audit').hidden = true;
  document.getElementById('audit').replaceChildren();
  document.getElementById('detail-summary').replaceChildren();
  document.getElementById('detail-holders').replaceChildren();
  document.getElementById('detail-queue').replaceChildren();
  renderForceButton();
  h.focus();
  refreshDetail().catch(showError);
}

function closeDetail() {
  const d = state.detail;
  state.detail = null;
  document.getElementById('detail').hidden = true;
  if (d && d.opener && d.opener.isConnected) {
    d.opener.focus();
  } else if (d) {
    const b = document.querySelector(`#${KINDS[d.kind].body} tr[data-name="${CSS.escape(d.name)}"] button`);
    if (b) b.focus();
  }
}

function renderForceButton() {
  const b = document.getElementById('force-release');
  b.hidden = state.forceDenied;
  document.getElementById('force-note').textContent = state.forceDenied
    ? 'Force release needs an admin key; the key in use was refused (403 forbidden).'
    : 'Ends every holder\'s lease and wakes the queue. Needs an admin key when the service has keys.';
}

function summaryRows(d, s) {
  const rows = [['kind', d.kind === 'locks' ? 'lock' : 'semaphore']];
  if (d.kind === 'locks') {
    rows.push(['state', s.held ? `held (${s.mode || 'exclusive'})` : (s.waiting ? 'queued' : 'free')]);
  } else {
    rows.push(['permits', `${s.used} of ${s.limit} in use`]);
  }
  rows.push(['holders', String(typeof s.holder_count === 'number' ? s.holder_count : (s.holders || []).length)]);
  rows.push(['waiting', String(s.waiting || 0)]);
  if (typeof s.reserved_ms === 'number') rows.push(['hand-off reserved', formatMs(s.reserved_ms)]);
  if (typeof s.delay_ms === 'number') rows.push(['lock-delay', formatMs(s.delay_ms)]);
  return rows;
}

// The column names, for the stacked layout at phone width (ui.css).
function labelCells(tr, labels) {
  tr.querySelectorAll('td').forEach((td, i) => { td.dataset.label = labels[i]; });
}

function renderDetail(d, s) {
  const dl = document.getElementById('detail-summary');
  dl.replaceChildren();
  for (const [k, v] of summaryRows(d, s)) {
    dl.append(el('dt', null, k), el('dd', null, v));
  }
  const hb = document.getElementById('detail-holders');
  hb.replaceChildren();
  let holders = Array.isArray(s.holders) ? s.holders : [];
  if (holders.length === 0 && s.held) holders = [s];
  for (const h of holders) {
    const tr = el('tr');
    tr.dataset.owner = h.owner || '';
    tr.append(el('td', null, h.owner || '(no owner)'), el('td', null, h.mode || '—'),
      el('td', 'num mono', h.fence), el('td', 'num', typeof h.permits === 'number' ? h.permits : h.count),
      el('td', 'num', formatMs(h.held_ms)));
    const td = el('td');
    td.append(ttlMeter(h));
    tr.append(td);
    labelCells(tr, ['owner', 'mode', 'fence', 'count / permits', 'held', 'TTL left']);
    hb.append(tr);
  }
  const qb = document.getElementById('detail-queue');
  qb.replaceChildren();
  (Array.isArray(s.queue) ? s.queue : []).forEach((w, i) => {
    const tr = el('tr');
    tr.dataset.owner = w.owner || '';
    tr.append(el('td', 'num', i + 1), el('td', null, w.owner || '(no owner)'), el('td', null, w.mode || ''),
      el('td', 'num', typeof w.permits === 'number' ? w.permits : 1), el('td', 'num', formatMs(w.waited_ms)));
    labelCells(tr, ['#', 'owner', 'mode', 'permits', 'waited']);
    qb.append(tr);
  });
  if (typeof s.waiting === 'number' && Array.isArray(s.queue) && s.waiting > s.queue.length) {
    const tr = el('tr');
    const td = el('td', 'muted', `and ${s.waiting - s.queue.length} more`);
    td.colSpan = 5;
    tr.append(td);
    qb.append(tr);
  }
}

async function refreshDetail() {
  const d = state.detail;
  if (!d) return;
  const r = await Api.call('GET', detailPath(d));
  if (state.detail !== d) return;
  if (r.status !== 200 || !r.json) throw new Error(`GET ${detailPath(d)}: ${problemText(r)}`);
  d.status = r.json;
  renderDetail(d, r.json);
}

// ---------------------------------------------------------------- hot locks

// The API's kind of a hot name, as this page's (KINDS); null for a kind
// this page does not know.
function hotKind(kind) {
  return kind === 'lock' ? 'locks' : kind === 'semaphore' ? 'sems' : null;
}

// waits, and "≤ +n" when the top-k may overcount it by n.
function hotWaits(h) {
  const f = document.createDocumentFragment();
  f.append(String(h.waits));
  if (h.waits_error > 0) {
    const s = el('span', 'meta', `≤ +${h.waits_error}`);
    s.title = `may be over by at most ${h.waits_error}`;
    f.append(' ', s);
  }
  return f;
}

function hotMean(h) {
  return h.waits > 0 && typeof h.wait_ms_total === 'number' ? formatMs(h.wait_ms_total / h.waits) : '—';
}

// Rows keyed by kind and name (a lock and a semaphore may share a name),
// in the API's order, most contended first.
function renderHot(names) {
  const body = document.getElementById('hot-body');
  const rows = new Map();
  for (const tr of body.children) rows.set(`${tr.dataset.kind} ${tr.dataset.name}`, tr);
  let i = 0;
  for (const h of names) {
    const id = `${h.kind} ${h.name}`;
    let tr = rows.get(id);
    if (!tr) {
      tr = el('tr');
      tr.dataset.kind = h.kind;
      tr.dataset.name = h.name;
      const th = el('th');
      th.scope = 'row';
      const kind = hotKind(h.kind);
      th.append(kind ? nameButton(kind, h.name) : el('span', 'mono', h.name));
      tr.append(th);
      for (const label of ['kind', 'waits', 'mean wait', 'grants']) {
        const td = el('td', label === 'kind' ? null : 'num');
        td.dataset.label = label;
        tr.append(td);
      }
    }
    rows.delete(id);
    const tds = tr.querySelectorAll('td');
    setCell(tds[0], h.kind, () => document.createTextNode(h.kind));
    setCell(tds[1], JSON.stringify([h.waits, h.waits_error]), () => hotWaits(h));
    setCell(tds[2], hotMean(h), () => document.createTextNode(hotMean(h)));
    setCell(tds[3], String(h.grants), () => document.createTextNode(String(h.grants)));
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    i++;
  }
  for (const tr of rows.values()) tr.remove();
  document.getElementById('hot-empty').hidden = names.length > 0;
}

async function refreshHot() {
  const r = await Api.call('GET', `/v1/stats/hot?limit=${HOT_LIMIT}`);
  if (r.status !== 200 || !r.json || !Array.isArray(r.json.names)) {
    throw new Error(r.status === 404
      ? 'this service has no /v1/stats/hot (a build before it)'
      : `GET /v1/stats/hot: ${problemText(r)}`);
  }
  renderHot(r.json.names);
}

// ---------------------------------------------------------------- force release

function knownHolders(s) {
  if (!s) return [];
  if (Array.isArray(s.holders) && s.holders.length > 0) return s.holders;
  return s.held ? [s] : [];
}

function askForce() {
  const d = state.detail;
  if (!d) return;
  const dialog = document.getElementById('confirm');
  const holders = knownHolders(d.status);
  document.getElementById('confirm-text').textContent =
    `Force release ${d.kind === 'locks' ? 'lock' : 'semaphore'} “${d.name}”? Every holder's lease ends now ` +
    'and the queue is woken. A holder that is still working will find its token refused.';
  const ul = document.getElementById('confirm-holders');
  ul.replaceChildren();
  for (const h of holders) ul.append(el('li', null, `${h.owner || '(no owner)'} — fence ${h.fence}`));
  if (holders.length === 0) ul.append(el('li', null, 'no holder right now'));
  dialog.returnValue = '';
  dialog.showModal();
}

async function forceRelease() {
  const d = state.detail;
  if (!d) return;
  const before = knownHolders(d.status).map((h) => ({ owner: h.owner, fence: h.fence }));
  const at = new Date();
  const r = await Api.call('DELETE', detailPath(d));
  const audit = document.getElementById('audit');
  audit.replaceChildren();
  audit.hidden = false;
  if (r.status === 403) {
    state.forceDenied = true;
    renderForceButton();
    audit.append(el('p', 'bad', `Refused: ${problemText(r)}`));
    return;
  }
  if (r.status !== 200) {
    audit.append(el('p', 'bad', `Not released: ${problemText(r)}`));
    return;
  }
  audit.dataset.result = 'released';
  audit.append(el('p', null, `Force release of “${d.name}” at ${at.toISOString()}: the service ended ${r.json.holders} holder(s) ` +
    'and logged an audit line with your key\'s name, the name, and the holders\' owners and fences.'));
  const ul = el('ul');
  for (const h of before) ul.append(el('li', null, `${h.owner || '(no owner)'} — fence ${h.fence}`));
  if (before.length > 0) {
    audit.append(el('p', null, 'The holders this page saw last:'), ul);
  }
  audit.append(el('pre', 'mono', `${r.status} ${JSON.stringify(r.json)}`));
  await refreshDetail().catch(showError);
}

// ---------------------------------------------------------------- loop

// The alert changes only when the problem does: a screen reader hears it
// once, not every second. The time of the last update is not announced.
function showProblem(text) {
  if (state.lastError === text) return;
  state.lastError = text;
  document.getElementById('problem').textContent = text;
}

function showError(e) {
  showProblem(typeof e === 'string' ? e : e.message);
}

// No calls while the tab is hidden: nobody is looking.
async function tick() {
  if (!state.paused && !document.hidden) {
    const hot = state.ticks++ % HOT_EVERY_TICKS === 0;
    try {
      await refreshList('locks');
      await refreshList('sems');
      await refreshDetail();
      if (hot) await refreshHot();
      showProblem('');
      document.getElementById('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      showError(e);
    }
  }
  setTimeout(tick, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  let debounce = null;
  const prefix = document.getElementById('prefix');
  prefix.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (!prefix.checkValidity()) {
        showError('A prefix is made of A-Z a-z 0-9 . _ : - only.');
        return;
      }
      state.prefix = prefix.value;
      resetPages();
      refreshList('locks').then(() => refreshList('sems')).catch(showError);
    }, 300);
  });
  document.getElementById('controls').addEventListener('submit', (ev) => ev.preventDefault());
  document.getElementById('page-size').addEventListener('change', (ev) => {
    state.limit = Number(ev.target.value);
    resetPages();
  });
  const pause = document.getElementById('pause');
  pause.addEventListener('click', () => {
    state.paused = !state.paused;
    pause.setAttribute('aria-pressed', String(state.paused));
    pause.textContent = state.paused ? 'Resume updates' : 'Pause updates';
  });
  for (const kind of Object.keys(KINDS)) {
    document.getElementById(KINDS[kind].prev).addEventListener('click', () => turnPage(kind, -1));
    document.getElementById(KINDS[kind].next).addEventListener('click', () => turnPage(kind, 1));
  }
  document.getElementById('detail-close').addEventListener('click', closeDetail);
  document.getElementById('force-release').addEventListener('click', askForce);
  document.getElementById('confirm').addEventListener('close', () => {
    if (document.getElementById('confirm').returnValue === 'release') forceRelease().catch(showError);
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && state.detail && !document.getElementById('confirm').open) closeDetail();
  });
  tick();
});
