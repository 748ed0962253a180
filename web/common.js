// common.js -- shared by /ui/ and /demo/: calls to the public API with the
// API key the user typed, which lives in this page's memory only (never in
// storage, a cookie or a URL), and the form that asks for it when the
// service answers 401.
'use strict';

const Api = (() => {
  let key = '';
  let keyWanted = null; // resolves the promise of a call waiting for a key

  // One call: method, path (relative to the origin), optional JSON body.
  // Resolves {status, json, text}; a network failure rejects. A 401 shows
  // the key form and, once a key is given, tries once more with it.
  async function call(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      const headers = {};
      const opts = { method, headers, cache: 'no-store' };
      if (key !== '') headers.Authorization = 'Bearer ' + key;
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        opts.body = JSON.stringify(body);
      }
      const res = await fetch(path, opts);
      const text = await res.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch (e) {
        json = null;
      }
      if (res.status !== 401 || attempt > 0) return { status: res.status, json, text };
      await askKey(key === '' ? 'This service needs an API key.' : 'That key was refused; try another.');
    }
  }

  // Shows the key form and resolves once a key was submitted; concurrent
  // callers share one prompt.
  function askKey(why) {
    if (keyWanted) return keyWanted.promise;
    const form = document.getElementById('key-form');
    const input = document.getElementById('key-input');
    document.getElementById('key-why').textContent = why;
    form.hidden = false;
    input.value = '';
    input.focus();
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    keyWanted = { promise, resolve };
    return promise;
  }

  function setup() {
    const form = document.getElementById('key-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = document.getElementById('key-input');
      if (input.value.trim() === '') return;
      key = input.value.trim();
      input.value = '';
      form.hidden = true;
      const w = keyWanted;
      keyWanted = null;
      if (w) w.resolve();
    });
  }

  return { call, setup, hasKey: () => key !== '' };
})();

// A problem+json answer in one line: "409 lock_held: detail".
function problemText(r) {
  if (r.json && typeof r.json === 'object' && r.json.code) {
    return `${r.status} ${r.json.code}${r.json.detail ? ': ' + r.json.detail : ''}`;
  }
  return `HTTP ${r.status}`;
}

// Milliseconds as people read them: 850 ms, 12.3 s, 4 min 05 s.
function formatMs(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60000);
  const s = Math.floor((ms % 60000) / 1000);
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

// An element with a class and text (both optional).
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

document.addEventListener('DOMContentLoaded', () => Api.setup());
