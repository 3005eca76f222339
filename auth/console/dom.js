// Builds elements for the console's views. Text goes in as text nodes only: no value from the
// server (a display name, an email, a user agent) is ever parsed as HTML.

// h('tag.class', {attr: value, on: {click: fn}}, child, ...): a child is a node, a string or
// number (inserted as text), or null/false (skipped); arrays are flattened.
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'hidden' || k === 'disabled' || k === 'required') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

// An in-console link: the hash route built from parts, each part URI-encoded.
export function link(text, ...parts) {
  return h('a', {href: route(...parts)}, text);
}

export function route(...parts) {
  return '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}

// A table that turns into labelled cards on a narrow screen (console.css, td::before shows
// each cell's data-label). columns: [{label, cell: (row) => node or text, cls}]; cls 'compact'
// keeps a phone's card short (cells side by side, labels only where cls 'labelled').
export function table(columns, rows, caption, cls = '') {
  return h('table.data' + cls, caption ? h('caption', caption) : null,
    h('thead', h('tr', columns.map((c) => h('th', {scope: 'col', class: c.cls}, c.label)))),
    h('tbody', rows.map((r) => h('tr', columns.map((c) =>
      h('td', {'data-label': c.label, class: c.cls}, c.cell(r)))))));
}

// Seconds since the epoch (or an ISO text) as "2026-12-07 17:14 UTC"; empty stays empty.
export function when(v) {
  if (v === null || v === undefined || v === '' || v === 0) return '\u2014';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

export function bytes(n) {
  if (typeof n !== 'number') return '\u2014';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

export function duration(s) {
  if (typeof s !== 'number') return '\u2014';
  const d = Math.floor(s / 86400), hr = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60);
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${m} min`;
  return m ? `${m} min ${Math.floor(s % 60)} s` : `${Math.floor(s)} s`;
}

// A yes/no badge: ok true is green, false is the warning colour.
export function badge(text, ok) {
  return h(ok ? 'span.badge.yes' : 'span.badge.no', text);
}
