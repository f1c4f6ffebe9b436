// Small DOM and formatting helpers shared by the other modules.

/** h('div', {class: 'x', dataset: {id}, onclick}, child, 'text', [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) if (dv != null) el.dataset[dk] = dv;
    } else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (typeof v === 'boolean' || typeof v === 'number') {
      if (k in el) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    } else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const PALETTE = [
  '#ff6b6b', '#4dabf7', '#ffd43b', '#69db7c', '#da77f2',
  '#ff922b', '#3bc9db', '#f783ac', '#a9e34b', '#9775fa',
];

/** A stable colour per label text. */
export function labelColor(label) {
  let h = 2166136261; // FNV-1a
  for (const ch of String(label)) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return PALETTE[h % PALETTE.length];
}

export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function formatDistance(d) {
  if (typeof d !== 'number' || !Number.isFinite(d)) return String(d);
  return d.toFixed(4);
}

export const basename = (p) => String(p || '').split(/[\\/]/).pop();

export function isDetections(v) {
  return !!v && typeof v === 'object' && !Array.isArray(v) && Array.isArray(v.detections);
}

/** "3 detections: circle, square…" */
export function summariseDetections(v) {
  const dets = v.detections;
  if (!dets.length) return 'no detections';
  const labels = dets.map((d) => d.label ?? '?');
  const shown = labels.slice(0, 3).join(', ');
  return `${plural(dets.length, 'detection')}: ${shown}${labels.length > 3 ? '…' : ''}`;
}

/** Compact one-line JSON, shortened for tables (the full value goes into a title). */
export function compactJson(v, max = 140) {
  let s;
  if (typeof v === 'string') s = v;
  else {
    try {
      s = JSON.stringify(v);
    } catch {
      s = String(v);
    }
  }
  if (s === undefined) s = String(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * Where an image of natural size nw×nh lands inside a box of cw×ch with object-fit: contain,
 * as percentages of that box: {left, top, width, height}.
 */
export function containRect(nw, nh, cw = 1, ch = 1) {
  if (!nw || !nh || !cw || !ch) return { left: 0, top: 0, width: 100, height: 100 };
  const scale = Math.min(cw / nw, ch / nh);
  const w = (nw * scale) / cw * 100;
  const hgt = (nh * scale) / ch * 100;
  return { left: (100 - w) / 2, top: (100 - hgt) / 2, width: w, height: hgt };
}

export function placeOverlay(overlay, rect) {
  overlay.style.left = `${rect.left}%`;
  overlay.style.top = `${rect.top}%`;
  overlay.style.width = `${rect.width}%`;
  overlay.style.height = `${rect.height}%`;
}

/**
 * Draws the Detections of the visible label fields into `overlay` (positioned over the displayed
 * image rectangle). fields: the sample's fields; visible: [field names]; focusId: a label to stress.
 */
export function drawBoxes(overlay, fields, visible, { focusId = null, labelFields = [] } = {}) {
  overlay.replaceChildren();
  if (!fields) return;
  visible.forEach((field) => {
    const v = fields[field];
    if (!isDetections(v)) return;
    const dashed = labelFields.indexOf(field) > 0;
    for (const d of v.detections) {
      const bb = d.bounding_box;
      if (!Array.isArray(bb) || bb.length !== 4) continue;
      const [x, y, w, hh] = bb.map(Number);
      const color = labelColor(d.label);
      const conf = typeof d.confidence === 'number' ? ` ${d.confidence.toFixed(2)}` : '';
      const box = h('div', {
        class: `box${dashed ? ' box-dashed' : ''}${focusId && d.id === focusId ? ' box-focus' : ''}${focusId && d.id !== focusId ? ' box-dim' : ''}`,
        dataset: { field, labelId: d.id, label: d.label },
        title: `${field}: ${d.label}${conf}`,
        style: `left:${x * 100}%;top:${y * 100}%;width:${w * 100}%;height:${hh * 100}%;--c:${color}`,
      }, h('span', { class: 'box-label', text: `${d.label ?? ''}${conf}` }));
      overlay.append(box);
    }
  });
}

export const isTyping = (el) =>
  !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
