// The sample view (#sample-modal): the full image with boxes, the fields table, prev/next.
import { getSample, mediaUrl } from './api.js';
import {
  $, basename, compactJson, containRect, drawBoxes, h, isDetections, labelColor, summariseDetections,
} from './dom.js';
import { showError } from './errors.js';
import { isPatches, on, state } from './state.js';
import { updateButtons } from './sort.js';

let app = null;
let token = 0;
let current = null; // {item, sample}
let lastFocus = null;

export const modalOpen = () => !$('#sample-modal').hidden;

function fitImage() {
  const img = $('#sample-image');
  const stage = $('#sample-stage');
  const frame = $('#sample-frame');
  if (!img.naturalWidth) return;
  const cw = stage.clientWidth;
  const ch = stage.clientHeight;
  const r = containRect(img.naturalWidth, img.naturalHeight, cw, ch);
  frame.style.left = `${(r.left / 100) * cw}px`;
  frame.style.top = `${(r.top / 100) * ch}px`;
  frame.style.width = `${(r.width / 100) * cw}px`;
  frame.style.height = `${(r.height / 100) * ch}px`;
  frame.classList.add('ready');
}

function drawModalBoxes() {
  if (!current?.sample) return;
  const fields = (state.info?.label_fields || []).filter((f) => !state.hiddenFields.has(f));
  const shown = isPatches() && !fields.includes(state.mode) ? [...fields, state.mode] : fields;
  drawBoxes($('#sample-overlay'), current.sample.fields, shown, {
    focusId: current.item.labelId,
    labelFields: state.info?.label_fields || [],
  });
}

function valueCell(name, v) {
  if (isDetections(v)) {
    const dets = v.detections;
    return h('td', {},
      h('div', { class: 'det-summary', text: summariseDetections(v) }),
      dets.length ? h('details', { class: 'det-details' },
        h('summary', { text: 'show' }),
        h('ul', {}, dets.map((d) => h('li', { class: d.id && d.id === current?.item.labelId ? 'focus' : null },
          h('span', { class: 'swatch', style: `--c:${labelColor(d.label)}` }),
          h('span', { text: d.label ?? '?' }),
          typeof d.confidence === 'number' ? h('span', { class: 'muted', text: ` ${d.confidence.toFixed(3)}` }) : null,
          h('code', { class: 'muted', text: ` [${(d.bounding_box || []).map((x) => Number(x).toFixed(3)).join(', ')}]` }))))) : null);
  }
  if (name === 'tags' && Array.isArray(v)) {
    return h('td', {}, v.length ? v.map((t) => h('span', { class: 'tag-pill', text: t })) : h('span', { class: 'muted', text: 'none' }));
  }
  const full = typeof v === 'string' ? v : JSON.stringify(v);
  return h('td', {}, h('code', { class: 'json', title: full && full.length > 140 ? full : null, text: compactJson(v) }));
}

function renderFields(sample, item) {
  const rows = [
    h('tr', {}, h('th', { text: 'id' }), h('td', {}, h('code', { text: sample.id }))),
    h('tr', {}, h('th', { text: 'filepath' }), h('td', {}, h('code', { class: 'json', text: sample.filepath }))),
  ];
  if (item.labelId) {
    rows.unshift(h('tr', { class: 'patch-row' }, h('th', { text: 'patch', title: `a patch of ${state.mode}` }),
      h('td', {}, h('span', { class: 'swatch', style: `--c:${labelColor(item.label)}` }), `${item.label ?? ''}`,
        typeof item.confidence === 'number' ? h('span', { class: 'muted', text: ` ${item.confidence.toFixed(3)}` }) : null,
        h('code', { class: 'muted', text: ` ${item.labelId}` }))));
  }
  if (item.distance != null) {
    rows.unshift(h('tr', { class: 'distance-row' }, h('th', { text: 'distance' }), h('td', {}, h('code', { text: String(item.distance) }))));
  }
  const names = Object.keys(sample.fields || {}).sort((a, b) => (a === 'tags' ? -1 : b === 'tags' ? 1 : 0));
  for (const n of names) rows.push(h('tr', {}, h('th', { text: n }), valueCell(n, sample.fields[n])));
  $('#sample-fields').replaceChildren(h('table', { class: 'fields-table' }, h('tbody', {}, rows)));
}

/** Shows `item` (at position `pos` of `total` in the grid order; pos -1 = not in the grid). */
export async function showSample(item, pos, total) {
  const modal = $('#sample-modal');
  if (modal.hidden) {
    lastFocus = document.activeElement;
    modal.hidden = false;
    document.body.classList.add('modal-open');
    setTimeout(() => $('#sample-close').focus({ preventScroll: true }), 0);
  }
  const my = ++token;
  current = { item, sample: item.fields ? { id: item.sampleId, filepath: item.filepath, fields: item.fields } : null };
  $('#sample-title').textContent = basename(item.filepath) || item.sampleId;
  $('#sample-title').title = item.filepath || '';
  $('#sample-position').textContent = pos >= 0 ? `${pos + 1} of ${total}` : 'not in this grid';
  $('#sample-prev').disabled = pos <= 0;
  $('#sample-next').disabled = pos < 0 || pos >= total - 1;
  $('#sample-find-similar').textContent = isPatches() ? 'Find similar patches' : 'Find similar';
  updateButtons();
  if (isPatches() && !item.labelId) {
    $('#sample-find-similar').disabled = true;
    $('#sample-find-similar').title = 'Open a patch from the grid to find similar patches';
  }

  const img = $('#sample-image');
  const src = mediaUrl(state.dataset, item.sampleId);
  if (img.getAttribute('src') !== src) {
    $('#sample-frame').classList.remove('ready');
    $('#sample-stage').classList.remove('broken');
    $('#sample-overlay').replaceChildren();
    img.src = src;
  }
  if (img.complete && img.naturalWidth) fitImage();

  if (current.sample) {
    renderFields(current.sample, item);
    drawModalBoxes();
    return;
  }
  $('#sample-fields').replaceChildren(h('p', { class: 'muted', text: 'Loading fields…' }));
  try {
    const sample = await getSample(state.dataset, item.sampleId);
    if (my !== token) return;
    current.sample = sample;
    renderFields(sample, item);
    drawModalBoxes();
  } catch (e) {
    if (my !== token) return;
    $('#sample-fields').replaceChildren(h('p', { class: 'muted', text: 'The fields could not be loaded.' }));
    showError(e);
  }
}

export function hideSample() {
  const modal = $('#sample-modal');
  if (modal.hidden) return;
  token++;
  modal.hidden = true;
  current = null;
  document.body.classList.remove('modal-open');
  if (lastFocus && document.contains(lastFocus)) lastFocus.focus({ preventScroll: true });
}

export const currentModalItem = () => current?.item || null;

export function initSample(appApi) {
  app = appApi;
  const img = $('#sample-image');
  img.addEventListener('load', () => {
    $('#sample-stage').classList.remove('broken');
    fitImage();
  });
  img.addEventListener('error', () => {
    if (img.getAttribute('src')) $('#sample-stage').classList.add('broken');
  });
  new ResizeObserver(() => fitImage()).observe($('#sample-stage'));
  $('#sample-close').addEventListener('click', () => app.closeSample());
  $('#sample-prev').addEventListener('click', () => app.stepSample(-1));
  $('#sample-next').addEventListener('click', () => app.stepSample(1));
  $('#sample-find-similar').addEventListener('click', () => app.findSimilar());
  $('#sample-modal').addEventListener('click', (ev) => {
    if (ev.target.classList.contains('modal-backdrop')) app.closeSample();
  });
  on('labels', drawModalBoxes);
}
