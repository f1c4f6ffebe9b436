// The nearest-neighbour distance histogram of the duplicates panel, drawn as inline SVG with the
// threshold line; and the numbers around it (rounding, default threshold, estimate).
import { h, plural } from './dom.js';

const SVGNS = 'http://www.w3.org/2000/svg';
// Geometry (px): the SVG is drawn at its box's width, with these margins, so the slider below
// (padded by the margins less half its thumb, in app.css) lines up with the plot.
const H = 138;
const M = { left: 34, right: 10, top: 20, bottom: 20 };
const PH = H - M.top - M.bottom;
let W = 368;
let PW = W - M.left - M.right;

/** Decimals worth showing for a threshold on this histogram (a thousandth of its range). */
function decimals(hist) {
  const span = hist ? hist.max - hist.min : 1;
  return Math.min(12, Math.max(2, Math.ceil(-Math.log10((span || 1) / 1000))));
}

/** A threshold as the number box shows it: "0.00177". */
export const roundThresh = (hist, v) => (Number.isFinite(v) ? String(Number(v.toFixed(decimals(hist)))) : '');

/** Three significant digits, for axes and badges. */
export const short = (v) => (typeof v === 'number' && Number.isFinite(v) ? String(Number(v.toPrecision(3))) : String(v));

/** The first bin edge below which at least 1 % of the samples' nearest distances fall. */
export function defaultThresh(hist) {
  const want = Math.max(1, Math.ceil(hist.n * 0.01));
  let sum = 0;
  for (const b of hist.bins) {
    sum += b.count;
    if (sum >= want) return Number(roundThresh(hist, b.hi));
  }
  return hist.max;
}

/** How many samples have their nearest neighbour within t (interpolated inside a bin). */
export function estimate(hist, t) {
  if (t >= hist.max) return { n: hist.n, exact: true };
  if (t < hist.min) return { n: 0, exact: true };
  let n = 0;
  for (const b of hist.bins) {
    if (b.hi <= t) n += b.count;
    else if (b.lo <= t) n += (b.count * (t - b.lo)) / (b.hi - b.lo || 1);
  }
  return { n: Math.round(n), exact: false };
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c != null) el.append(c);
  return el;
}

function xOf(hist, v) {
  const { min, max } = hist;
  const f = max > min ? (v - min) / (max - min) : 0;
  return M.left + Math.min(1, Math.max(0, f)) * PW;
}

/** The distance under pixel `px` of the drawing (clamped to the axis). */
export function valueAt(hist, px) {
  const { min, max } = hist;
  return min + ((Math.min(Math.max(px, M.left), M.left + PW) - M.left) / PW) * (max - min);
}

/** Draws `hist` into `box` with a line at `thresh`; a message instead when there is nothing. */
export function drawHistogram(box, hist, thresh, { log = false, message = null } = {}) {
  if (!hist || message || !hist.n) {
    const text = message || (hist ? 'No indexed samples in this view.' : 'No sample index');
    box.replaceChildren(h('div', { class: 'dups-histogram-empty', text }));
    return;
  }
  W = Math.max(160, box.clientWidth || 368);
  PW = W - M.left - M.right;
  const top = Math.max(1, ...hist.bins.map((b) => b.count));
  const scale = (c) => (log ? Math.log1p(c) / Math.log1p(top) : c / top) * PH;
  const base = M.top + PH;
  const tx = Number.isFinite(thresh) ? xOf(hist, thresh) : null;
  const bars = [];
  for (const b of hist.bins) {
    if (!b.count) continue;
    const x0 = xOf(hist, b.lo) + 0.5;
    const x1 = Math.max(x0 + 1, xOf(hist, b.hi) - 0.5);
    const y = base - Math.max(1.5, scale(b.count));
    const tip = `${short(b.lo)} – ${short(b.hi)}: ${plural(b.count, 'sample')}`;
    // The bin under the line is split: its left part is within the threshold.
    const split = tx == null ? x0 : Math.min(x1, Math.max(x0, tx));
    if (split > x0) bars.push(svg('rect', { class: 'bar in', x: x0, y, width: split - x0, height: base - y }, svg('title', {}, tip)));
    if (split < x1) bars.push(svg('rect', { class: 'bar', x: split, y, width: x1 - split, height: base - y }, svg('title', {}, tip)));
  }
  let anchor = 'middle';
  if (tx != null && tx < M.left + 30) anchor = 'start';
  else if (tx != null && tx > M.left + PW - 30) anchor = 'end';
  box.replaceChildren(svg('svg', {
    width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'dups-svg', 'data-bins': hist.bins.length,
  },
  tx == null ? null : svg('rect', { class: 'shade', x: M.left, y: M.top, width: tx - M.left, height: PH }),
  svg('line', { class: 'grid-line', x1: M.left, x2: M.left + PW, y1: M.top, y2: M.top }),
  bars,
  svg('line', { class: 'axis', x1: M.left, x2: M.left + PW, y1: base + 0.5, y2: base + 0.5 }),
  svg('text', { class: 'tick', x: M.left - 5, y: M.top + 4, 'text-anchor': 'end' }, String(top)),
  svg('text', { class: 'tick', x: M.left - 5, y: base, 'text-anchor': 'end' }, '0'),
  svg('text', { class: 'tick', x: M.left, y: H - 5, 'text-anchor': 'start' }, short(hist.min)),
  svg('text', { class: 'tick', x: M.left + PW, y: H - 5, 'text-anchor': 'end' }, short(hist.max)),
  svg('text', { class: 'tick unit', x: M.left + PW / 2, y: H - 5, 'text-anchor': 'middle' }, `${hist.metric || ''} distance${log ? ' · log counts' : ''}`),
  tx == null ? null : [
    svg('line', { class: 'thresh-line', x1: tx, x2: tx, y1: M.top - 4, y2: base }),
    svg('text', { class: 'thresh-label', x: tx, y: M.top - 7, 'text-anchor': anchor }, `≤ ${short(thresh)}`),
  ]));
}
