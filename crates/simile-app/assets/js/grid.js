// The grid: tiles (thumbnails or patch crops) with boxes, tags and distance badges; selection;
// the pager; the label-field toggles.
import { cropUrl, thumbUrl } from './api.js';
import {
  $, $$, basename, containRect, drawBoxes, formatDistance, h, labelColor, placeOverlay, plural,
} from './dom.js';
import {
  PAGE_SIZE, currentOrder, emit, isPatches, pageCount, state,
} from './state.js';

let app = null;

export function setGridState(s) {
  $('#grid').dataset.state = s;
  document.body.classList.toggle('busy', s === 'loading');
}

const visibleFields = () => (state.info?.label_fields || []).filter((f) => !state.hiddenFields.has(f));

function tileBoxes(tile, item) {
  const overlay = $('.overlay', tile);
  if (!overlay) return;
  if (isPatches()) return;
  drawBoxes(overlay, item.fields, visibleFields(), { labelFields: state.info?.label_fields || [] });
}

/** Kept/duplicate marks while the grid shows the duplicates panel's groups (its last stage). */
function dupMarks() {
  const dm = state.dupMarks;
  const last = state.view[state.view.length - 1];
  return dm && last && JSON.stringify(last) === dm.stage ? dm.marks : null;
}

/** The field of the view's last sort_by stage, if any. */
function sortByField() {
  const st = [...state.view].reverse().find((x) => x && x.sort_by);
  return st ? st.sort_by.field : null;
}

function buildTile(item, index) {
  const patch = isPatches();
  const name = state.dataset;
  const img = h('img', { alt: patch ? item.label || '' : basename(item.filepath), loading: 'lazy', decoding: 'async', draggable: 'false' });
  const overlay = h('div', { class: 'overlay' });
  const media = h('div', { class: 'tile-media' }, img, overlay);
  img.addEventListener('load', () => {
    placeOverlay(overlay, containRect(img.naturalWidth, img.naturalHeight));
    media.classList.add('loaded');
  });
  img.addEventListener('error', () => media.classList.add('broken'));

  const hasDistance = item.distance !== undefined && item.distance !== null;
  // Sorted by a field (a sort_by stage): show each tile's value of it.
  const sortField = !patch && !hasDistance ? sortByField() : null;
  const sortValue = sortField ? item.fields?.[sortField] : undefined;
  const mark = !patch ? dupMarks()?.get(item.sampleId) : null;
  const tags = !patch && Array.isArray(item.fields?.tags) ? item.fields.tags : [];
  const title = patch
    ? `${item.label ?? ''}${typeof item.confidence === 'number' ? ` (${item.confidence.toFixed(2)})` : ''} · ${basename(item.filepath)}`
    : basename(item.filepath);
  const tile = h('div', {
    class: `tile${state.selection.has(item.key) ? ' selected' : ''}${mark ? ` dup-tile${mark.distance == null ? ' dup-tile-kept' : ''}${mark.group % 2 ? ' dup-tile-odd' : ''}` : ''}`,
    tabindex: '0',
    role: 'option',
    'aria-selected': state.selection.has(item.key) ? 'true' : 'false',
    title,
    dataset: {
      sampleId: item.sampleId,
      labelId: patch ? item.labelId : null,
      key: item.key,
      index: String(index),
      distance: hasDistance ? String(item.distance) : null,
    },
  },
  media,
  h('span', { class: 'tile-check', 'aria-hidden': 'true' }),
  h('button', { class: 'tile-open', type: 'button', title: 'Open (double-click)', 'aria-label': 'Open sample' }),
  tags.length ? h('div', { class: 'tile-tags' }, tags.slice(0, 3).map((t) => h('span', { class: 'tag-pill', text: t })), tags.length > 3 ? h('span', { class: 'tag-pill', text: `+${tags.length - 3}` }) : null) : null,
  patch ? h('div', { class: 'tile-label', style: `--c:${labelColor(item.label)}` }, h('span', { class: 'swatch' }), item.label ?? '',
    typeof item.confidence === 'number' ? h('span', { class: 'muted', text: ` ${item.confidence.toFixed(2)}` }) : null) : null,
  hasDistance ? h('span', { class: 'tile-distance', title: `distance ${item.distance}`, text: formatDistance(item.distance) }) : null,
  mark ? h('span', {
    class: `tile-distance tile-dup${mark.distance == null ? ' kept' : ''}`,
    title: mark.distance == null ? `group ${mark.group}: the sample kept` : `group ${mark.group}: a duplicate at distance ${mark.distance}`,
    text: `#${mark.group} ${mark.distance == null ? 'kept' : Number(mark.distance.toPrecision(3))}`,
  }) : null,
  typeof sortValue === 'number' ? h('span', { class: 'tile-distance tile-value', title: `${sortField} ${sortValue}`, text: String(Number(sortValue.toPrecision(3))) }) : null);
  tileBoxes(tile, item);
  img.src = patch ? cropUrl(name, item.sampleId, item.labelId, state.mode) : thumbUrl(name, item.sampleId);
  return tile;
}

function emptyState() {
  let msg;
  if (state.results) msg = 'The sort returned no results in this view.';
  else if (!state.view.length && !state.info?.len) msg = 'This dataset has no samples yet.';
  else msg = isPatches() ? `No patches of ${state.mode} match this view.` : 'No samples match this view.';
  return h('div', { class: 'grid-empty' },
    h('div', { class: 'grid-empty-icon', 'aria-hidden': 'true' }),
    h('p', { text: msg }),
    state.view.length ? h('button', { class: 'btn', type: 'button', text: 'Clear the view', onclick: () => app.setView([]) }) : null);
}

/** Replaces the tiles with state.items (the current page). */
export function renderGrid() {
  const grid = $('#grid');
  const { offset } = currentOrder();
  const start = state.results ? (state.page - 1) * PAGE_SIZE : offset;
  for (const it of state.items) state.known.set(it.key, it);
  const tiles = state.items.map((it, i) => buildTile(it, start + i));
  grid.replaceChildren(...(tiles.length ? tiles : [emptyState()]));
  grid.classList.toggle('patches', isPatches());
  grid.scrollTop = 0;
  renderPager();
  renderCounts();
  emit('grid');
}

export function redrawBoxes() {
  for (const tile of $$('#grid .tile')) {
    const item = state.known.get(tile.dataset.key);
    if (item) tileBoxes(tile, item);
  }
}

export function renderPager() {
  const pages = pageCount();
  $('#page-info').textContent = `page ${state.page} of ${pages}`;
  $('#page-prev').disabled = state.page <= 1;
  $('#page-next').disabled = state.page >= pages;
  const jump = $('#page-jump');
  jump.max = String(pages);
  jump.placeholder = `1–${pages}`;
  jump.disabled = pages <= 1;
  const first = state.total ? (state.page - 1) * PAGE_SIZE + 1 : 0;
  const last = Math.min(state.total, state.page * PAGE_SIZE);
  $('#page-range').textContent = state.total ? `${first}–${last} of ${state.total}` : '';
}

export function renderCounts() {
  $('#total-count').textContent = String(state.total);
  const unit = isPatches() ? 'patches' : 'samples';
  $('#total-label').textContent = state.results ? `${unit} (sorted)` : unit;
  renderSelection();
}

// ---------- selection ----------
export function renderSelection() {
  const n = state.selection.size;
  $('#selection-count').textContent = `${n} selected`;
  $('#selection-count').classList.toggle('has-selection', n > 0);
  $('#selection-clear').hidden = n === 0;
  for (const tile of $$('#grid .tile')) {
    const on = state.selection.has(tile.dataset.key);
    tile.classList.toggle('selected', on);
    tile.setAttribute('aria-selected', on ? 'true' : 'false');
  }
}

export function setSelection(keys, anchor = null) {
  state.selection = new Set(keys);
  if (anchor !== undefined) state.anchor = anchor;
  renderSelection();
  emit('selection');
}

export function clearSelection() {
  if (!state.selection.size) return;
  setSelection([], null);
}

function onTileClick(tile, ev) {
  const key = tile.dataset.key;
  if (ev.shiftKey && state.anchor != null) {
    const keys = state.items.map((it) => it.key);
    const a = keys.indexOf(state.anchor);
    const b = keys.indexOf(key);
    if (a >= 0 && b >= 0) {
      const [lo, hi] = a < b ? [a, b] : [b, a];
      const range = keys.slice(lo, hi + 1);
      const base = ev.ctrlKey || ev.metaKey ? [...state.selection] : [];
      setSelection([...base, ...range], undefined);
      return;
    }
  }
  if (ev.ctrlKey || ev.metaKey) {
    const next = new Set(state.selection);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    setSelection(next, key);
    return;
  }
  setSelection([key], key);
}

export function initGrid(appApi) {
  app = appApi;
  const grid = $('#grid');
  grid.addEventListener('click', (ev) => {
    const tile = ev.target.closest('.tile');
    if (!tile) return;
    if (ev.target.closest('.tile-open')) {
      ev.stopPropagation();
      app.openItem(tile.dataset.key);
      return;
    }
    onTileClick(tile, ev);
  });
  grid.addEventListener('mousedown', (ev) => {
    if (ev.shiftKey && ev.target.closest('.tile')) ev.preventDefault(); // no text selection
  });
  grid.addEventListener('dblclick', (ev) => {
    const tile = ev.target.closest('.tile');
    if (tile && !ev.target.closest('.tile-open')) app.openItem(tile.dataset.key);
  });
  grid.addEventListener('keydown', (ev) => {
    const tile = ev.target.closest('.tile');
    if (!tile || ev.target !== tile) return;
    if (ev.key === 'Enter') {
      ev.preventDefault();
      app.openItem(tile.dataset.key);
    } else if (ev.key === ' ') {
      ev.preventDefault();
      onTileClick(tile, { ctrlKey: true, shiftKey: ev.shiftKey });
    } else if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
      const next = ev.key === 'ArrowRight' ? tile.nextElementSibling : tile.previousElementSibling;
      if (next && next.classList.contains('tile')) {
        ev.preventDefault();
        next.focus();
      }
    }
  });

  $('#page-prev').addEventListener('click', () => app.setPage(state.page - 1));
  $('#page-next').addEventListener('click', () => app.setPage(state.page + 1));
  $('#page-jump').addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter') return;
    ev.preventDefault();
    const n = parseInt(ev.target.value, 10);
    if (!Number.isFinite(n)) return;
    app.setPage(Math.min(Math.max(1, n), pageCount()));
    ev.target.value = '';
  });
  $('#selection-clear').addEventListener('click', clearSelection);
}

// ---------- label-field toggles ----------
export function renderLabelFields() {
  const box = $('#label-fields');
  const fields = state.info?.label_fields || [];
  if (!fields.length) {
    box.replaceChildren(h('p', { class: 'side-empty', text: 'No label fields in this dataset.' }));
    return;
  }
  box.replaceChildren(...fields.map((f, i) => h('label', { class: 'check-row' },
    h('input', {
      type: 'checkbox',
      checked: !state.hiddenFields.has(f),
      dataset: { labelField: f },
      onchange: (ev) => {
        if (ev.target.checked) state.hiddenFields.delete(f);
        else state.hiddenFields.add(f);
        redrawBoxes();
        emit('labels');
      },
    }),
    h('span', { class: `field-line${i > 0 ? ' dashed' : ''}`, 'aria-hidden': 'true' }),
    h('span', { class: 'check-name', text: f }))));
  $('#labels-hint').textContent = isPatches()
    ? 'Patch tiles are crops; boxes show in the sample view.'
    : fields.length > 1 ? `${fields[0]} solid, others dashed` : '';
}

export const selectionSummary = () => plural(state.selection.size, isPatches() ? 'patch' : 'sample', isPatches() ? 'patches' : 'samples');
