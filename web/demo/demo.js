// demo.js -- the overselling race run by this browser: for each scenario it
// resets a SKU (PUT), sends the buyers as concurrent fetch calls to the
// purchase endpoint (at most "in flight" at once), samples the SKU (GET)
// while they run, draws stock and orders over time, and ends with the same
// table and sentences as oversell-demo.
'use strict';

// The scenarios of oversell-demo, in its order.
const SCENARIOS = [
  { slug: 'unsafe', label: 'unsafe', mode: 'unsafe', pauses: false },
  { slug: 'locked', label: 'locked', mode: 'locked', pauses: false },
  { slug: 'locked-pauses', label: 'locked + pauses', mode: 'locked', pauses: true },
  { slug: 'fenced-pauses', label: 'fenced + pauses', mode: 'fenced', pauses: true },
];
const SAFE_TTL_MS = 30000; // the lease of the scenarios without pauses
const SAMPLE_MS = 100;
const SAMPLES_MAX = 600; // past it every other sample goes: a long run stays drawable
// SKUs of this page load: two open pages do not buy each other's stock.
const SKU_PREFIX = 'web-' + Math.random().toString(16).slice(2, 8);

const results = new Map(); // slug -> outcome
let running = false;

function readSettings() {
  const num = (id) => {
    const input = document.getElementById(id);
    const v = Number(input.value);
    if (!Number.isInteger(v) || v < Number(input.min) || v > Number(input.max)) {
      throw new Error(`${input.labels[0].firstChild.textContent.trim()}: an integer from ${input.min} to ${input.max}`);
    }
    return v;
  };
  return {
    stock: num('stock'), buyers: num('buyers'), concurrency: num('concurrency'),
    work: num('work'), ttl: num('ttl'), pause: num('pause'), every: num('every'),
  };
}

// ---------------------------------------------------------------- panels

function buildPanels() {
  const box = document.getElementById('panels');
  for (const sc of SCENARIOS) {
    const p = el('article', 'panel');
    p.id = 'panel-' + sc.slug;
    p.setAttribute('aria-labelledby', 'panel-h-' + sc.slug);
    const h = el('h3', null, sc.label);
    h.id = 'panel-h-' + sc.slug;
    p.append(h);
    const svg = svgEl('svg', { viewBox: '0 0 300 140', role: 'img', 'aria-label': `${sc.label}: stock and orders over time` });
    p.append(svg);
    const dl = el('dl');
    for (const [k, label] of [['stock', 'stock'], ['orders', 'orders'], ['oversold', 'oversold'],
      ['rejected', 'refused by fence'], ['soldout', 'sold out'], ['done', 'answered']]) {
      dl.append(el('dt', null, label));
      const dd = el('dd', null, '–');
      dd.dataset.field = k;
      dl.append(dd);
    }
    p.append(dl);
    box.append(p);
  }
}

function setField(slug, field, value, bad) {
  const dd = document.querySelector(`#panel-${slug} dd[data-field="${field}"]`);
  dd.textContent = String(value);
  dd.classList.toggle('bad', Boolean(bad));
}

// Redraws a panel's chart from its samples ({t, stock, orders}) and the
// times of the refused writes.
function drawChart(slug, initial, samples, refusals, tEnd) {
  const svg = document.querySelector(`#panel-${slug} svg`);
  svg.replaceChildren();
  const W = 300, H = 140, L = 30, R = 8, T = 8, B = 18;
  const maxOrders = samples.reduce((m, s) => Math.max(m, s.orders, s.stock), initial);
  const yMax = Math.max(1, Math.ceil(maxOrders * 1.1));
  const tMax = Math.max(tEnd, 1);
  const x = (t) => L + ((W - L - R) * t) / tMax;
  const y = (v) => T + (H - T - B) * (1 - v / yMax);
  svg.append(svgEl('rect', { class: 'chart-over', x: L, y: T, width: W - L - R, height: y(initial) - T }));
  svg.append(svgEl('line', { class: 'chart-limit', x1: L, x2: W - R, y1: y(initial), y2: y(initial) }));
  svg.append(svgEl('line', { class: 'chart-axis', x1: L, x2: L, y1: T, y2: H - B }));
  svg.append(svgEl('line', { class: 'chart-axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const lbl = (tx, ty, text, anchor) => {
    const e = svgEl('text', { class: 'chart-label', x: tx, y: ty, 'text-anchor': anchor || 'end' });
    e.textContent = text;
    svg.append(e);
  };
  lbl(L - 3, y(0) + 3, '0');
  lbl(L - 3, y(initial) + 3, String(initial));
  if (y(initial) - T > 12) lbl(L - 3, T + 8, String(yMax));
  lbl(W - R, H - 4, `${(tMax / 1000).toFixed(2)} s`);
  lbl(L, H - 4, '0 s', 'start');
  for (const t of refusals) {
    svg.append(svgEl('line', { class: 'chart-refused', x1: x(t), x2: x(t), y1: H - B, y2: H - B - 8 }));
  }
  if (samples.length > 0) {
    const pts = (k) => samples.map((s) => `${x(s.t).toFixed(1)},${y(s[k]).toFixed(1)}`).join(' ');
    svg.append(svgEl('polyline', { class: 'chart-stock', points: pts('stock') }));
    svg.append(svgEl('polyline', { class: 'chart-orders', points: pts('orders') }));
  }
}

// ---------------------------------------------------------------- a run

function inventoryPath(sku, op) {
  return `/demo/inventory/${encodeURIComponent(sku)}${op ? '/' + op : ''}`;
}

async function inventory(method, sku, body) {
  const r = await Api.call(method, inventoryPath(sku), body);
  if (r.status === 404 && r.json && r.json.code === 'not_found') {
    throw new Error('this service has no demo routes: start it with --demo');
  }
  if (r.status !== 200 || !r.json) throw new Error(`${method} ${inventoryPath(sku)}: ${problemText(r)}`);
  return r.json;
}

// Runs one scenario and returns its outcome, as oversell-demo tallies it.
async function runScenario(sc, s) {
  const sku = `${SKU_PREFIX}-${sc.slug}`;
  const panel = document.getElementById('panel-' + sc.slug);
  const out = {
    initial: s.stock, stock: s.stock, orders: 0, oversold: 0, buyers: s.buyers,
    created: 0, soldOut: 0, stale: 0, lockTimeout: 0, failed: 0, firstFailure: '', seconds: 0,
  };
  panel.classList.add('running');
  await inventory('PUT', sku, { stock: s.stock });
  const samples = [{ t: 0, stock: s.stock, orders: 0 }];
  const refusals = [];
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  let sampling = true;

  const show = () => {
    const last = samples[samples.length - 1];
    setField(sc.slug, 'stock', last.stock);
    setField(sc.slug, 'orders', last.orders);
    setField(sc.slug, 'oversold', Math.max(0, last.orders - s.stock), last.orders > s.stock);
    setField(sc.slug, 'rejected', out.stale, out.stale > 0);
    setField(sc.slug, 'soldout', out.soldOut);
    setField(sc.slug, 'done', `${done}/${s.buyers}`);
    drawChart(sc.slug, s.stock, samples, refusals, performance.now() - t0);
  };
  const sampler = (async () => {
    while (sampling) {
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
      try {
        const inv = await inventory('GET', sku);
        samples.push({ t: performance.now() - t0, stock: inv.stock, orders: inv.orders });
        if (samples.length > SAMPLES_MAX) {
          const kept = samples.filter((_, i) => i % 2 === 0 || i === samples.length - 1);
          samples.splice(0, samples.length, ...kept);
        }
      } catch (e) {
        // a missed sample only thins the chart; the final GET decides
      }
      show();
    }
  })();

  const buyer = async () => {
    while (next < s.buyers) {
      const i = next++;
      const pauses = sc.pauses && i % s.every === 0;
      const body = {
        mode: sc.mode, quantity: 1, work_ms: s.work,
        pause_ms: pauses ? s.pause : 0, ttl_ms: sc.pauses ? s.ttl : SAFE_TTL_MS,
      };
      try {
        const r = await Api.call('POST', inventoryPath(sku, 'purchase'), body);
        const code = r.json && r.json.code;
        if (r.status === 201) out.created++;
        else if (r.status === 409 && code === 'sold_out') out.soldOut++;
        else if (r.status === 409 && code === 'stale_fence') {
          out.stale++;
          refusals.push(performance.now() - t0);
        } else if (r.status === 409 && code === 'lock_held') out.lockTimeout++;
        else if (out.failed++ === 0) out.firstFailure = problemText(r);
      } catch (e) {
        if (out.failed++ === 0) out.firstFailure = e.message;
      }
      done++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(s.concurrency, s.buyers) }, buyer));
  } finally {
    sampling = false;
    await sampler;
  }
  out.seconds = (performance.now() - t0) / 1000;
  const inv = await inventory('GET', sku);
  out.initial = inv.initial_stock;
  out.stock = inv.stock;
  out.orders = inv.orders;
  out.oversold = inv.oversold;
  samples.push({ t: performance.now() - t0, stock: inv.stock, orders: inv.orders });
  show();
  panel.classList.remove('running');
  return out;
}

// ---------------------------------------------------------------- results

function verdict(sc, r, s) {
  switch (sc.slug) {
    case 'unsafe':
      return r.oversold > 0
        ? `unsafe: ${r.orders} orders for a stock of ${r.initial}; buyers read the same stock and each wrote it minus one.`
        : 'unsafe: the race did not appear this time; raise the buyers, the work ms or the number in flight and run again.';
    case 'locked':
      return r.oversold === 0
        ? 'locked: the lock serialised read and write; nothing oversold.'
        : `locked: oversold ${r.oversold} without any pause, which the lock should have prevented.`;
    case 'locked-pauses':
      return r.oversold > 0
        ? `locked + pauses: leases of ${s.ttl} ms ran out during ${s.pause} ms pauses and a stalled buyer wrote stale stock back; oversold ${r.oversold}.`
        : `locked + pauses: the pauses did not cause an oversell this time (pause ${s.pause} ms vs lease ${s.ttl} ms).`;
    default:
      return r.oversold === 0
        ? `fenced + pauses: the store refused ${r.stale} stale write(s) by their fence; nothing oversold.`
        : `fenced + pauses: oversold ${r.oversold} despite fencing.`;
  }
}

function renderResults(s) {
  const body = document.getElementById('results-body');
  const list = document.getElementById('verdicts');
  body.replaceChildren();
  list.replaceChildren();
  for (const sc of SCENARIOS) {
    const r = results.get(sc.slug);
    if (!r) continue;
    const tr = el('tr');
    tr.dataset.scenario = sc.slug;
    tr.classList.toggle('oversold', r.oversold > 0);
    tr.classList.toggle('refused', r.stale > 0);
    const th = el('th', null, sc.label);
    th.scope = 'row';
    tr.append(th);
    const cells = [['stock', r.initial], ['buyers', r.buyers], ['orders', r.orders],
      ['oversold', r.oversold], ['rejected', r.stale], ['seconds', r.seconds.toFixed(2)]];
    for (const [k, v] of cells) {
      const td = el('td', `num ${k}-cell`, v);
      td.dataset.col = k;
      tr.append(td);
    }
    body.append(tr);
    const li = el('li', null, verdict(sc, r, r.settings || s));
    if (r.failed > 0) li.append(el('span', 'bad', ` ${r.failed} purchase(s) failed; the first: ${r.firstFailure}.`));
    if (r.lockTimeout > 0) li.append(el('span', 'bad', ` ${r.lockTimeout} buyer(s) waited for the lock as long as the server allows.`));
    li.dataset.scenario = sc.slug;
    list.append(li);
  }
}

async function run(slugs) {
  if (running) return;
  const status = document.getElementById('status');
  let s;
  try {
    s = readSettings();
  } catch (e) {
    status.textContent = e.message;
    return;
  }
  running = true;
  document.body.dataset.state = 'running';
  for (const b of document.querySelectorAll('.buttons button')) b.disabled = true;
  try {
    for (const slug of slugs) {
      const sc = SCENARIOS.find((x) => x.slug === slug);
      status.textContent = `Running ${sc.label}: ${s.buyers} buyers, ${s.concurrency} in flight…`;
      const r = await runScenario(sc, s);
      r.settings = s;
      results.set(slug, r);
      renderResults(s);
    }
    status.textContent = 'Done.';
  } catch (e) {
    status.textContent = `Stopped: ${e.message}`;
  } finally {
    running = false;
    document.body.dataset.state = 'idle';
    for (const b of document.querySelectorAll('.buttons button')) b.disabled = false;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  buildPanels();
  for (const sc of SCENARIOS) drawChart(sc.slug, 10, [], [], 1);
  document.getElementById('run-all').addEventListener('click', () => run(SCENARIOS.map((x) => x.slug)));
  for (const b of document.querySelectorAll('[data-run]')) {
    b.addEventListener('click', () => run([b.dataset.run]));
  }
  document.getElementById('settings').addEventListener('submit', (ev) => ev.preventDefault());
  document.body.dataset.state = 'idle';
});
