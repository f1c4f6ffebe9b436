// The duplicates panel (#dups-panel): the histogram of nearest-neighbour distances with a
// threshold, the groups of look-alikes found at that threshold (kept sample → its duplicates),
// "Tag duplicates" and "Show in grid". Works on the current view with a sample-level index.
import * as api from './api.js';
import { $, basename, h, plural } from './dom.js';
import { clearError, showError } from './errors.js';
import {
  emit, isPatches, on, state,
} from './state.js';
import {
  defaultThresh, drawHistogram, estimate, roundThresh, short, valueAt,
} from './histogram.js';
import { renderTags } from './tags.js';

let app = null;

const BINS = 40;
const GROUP_PAGE = 100; // groups rendered at once ("show more" adds the next ones)
const dups = {
  dataset: null, // dataset the panel state belongs to
  key: null, // chosen run
  hist: null, // the distances answer
  histFor: null, // "key\u0000view" it was computed for
  histError: null, // why the last histogram request failed
  thresh: null, // threshold shown on the histogram
  result: null, // the duplicates answer
  resultKey: null, // run of the result
  resultView: null, // JSON of the view the result was computed on
  showStage: null, // the select stage "Show in grid" last added
  shown: GROUP_PAGE,
  seenView: null,
};

let pending = 0;
let outcome = 'ready';
let histToken = 0;
let runToken = 0;
let histAbort = null;
let runAbort = null;

const panelOpen = () => $('#dups-panel').classList.contains('open');
const sampleRuns = () => state.runs.filter((r) => (r.patches_field ?? null) === null);

/** The view the panel works on: the current one without its own "Show in grid" stage. */
function ownView() {
  const v = state.view;
  const last = v[v.length - 1];
  if (last && dups.showStage && JSON.stringify(last) === JSON.stringify(dups.showStage)) return v.slice(0, -1);
  return v;
}

/** Runs `fn` with #dups-panel[data-state] = loading; ready or error once nothing is pending. */
async function track(fn) {
  pending += 1;
  $('#dups-panel').dataset.state = 'loading';
  let result = 'ready';
  try {
    if ((await fn()) === 'stale') result = 'stale';
  } catch (e) {
    showError(e);
    result = 'error';
  } finally {
    pending -= 1;
    if (result !== 'stale') outcome = result;
    if (!pending) $('#dups-panel').dataset.state = outcome;
  }
}

const fmt = (v) => roundThresh(dups.hist, v);

function renderHistogram(message = null) {
  drawHistogram($('#dups-histogram'), dups.hist, dups.thresh, {
    log: $('#dups-log').checked,
    message: message || (dups.key && !dups.hist ? dups.histError || 'Loading distances…' : null),
  });
}

function renderThresh() {
  renderHistogram();
  const hist = dups.hist;
  const est = $('#dups-estimate');
  if (!hist || !hist.n || !Number.isFinite(dups.thresh)) {
    est.textContent = '';
  } else {
    const e = estimate(hist, dups.thresh);
    est.textContent = `${e.exact ? '' : '≈ '}${e.n} of ${hist.n} samples have a neighbour this close`;
  }
  const stale = !!dups.result && (Number($('#dups-thresh-value').value) !== dups.result.thresh || dups.resultKey !== dups.key);
  $('#dups-results').classList.toggle('stale', stale);
  const note = $('#dups-stale');
  if (note) note.hidden = !stale;
}

/** Sets the threshold from the slider or the histogram (rounded to what the box shows). */
function setThresh(v, { fromBox = false } = {}) {
  if (!fromBox) {
    const s = fmt(v);
    $('#dups-thresh-value').value = s;
    dups.thresh = Number(s);
  } else {
    dups.thresh = v;
  }
  $('#dups-thresh').value = String(dups.thresh);
  renderThresh();
}

// ---------- run select ----------
function renderRunSelect() {
  const runs = sampleRuns();
  if (!runs.some((r) => r.key === dups.key)) dups.key = runs[0]?.key ?? null;
  const sel = $('#dups-brain-key');
  if (!runs.length) {
    sel.replaceChildren(h('option', { value: '', text: 'No sample index' }));
    sel.disabled = true;
  } else {
    sel.replaceChildren(...runs.map((r) => h('option', { value: r.key, text: r.key })));
    sel.disabled = false;
    sel.value = dups.key;
  }
  const run = runs.find((r) => r.key === dups.key);
  const info = $('#dups-run-info');
  info.classList.toggle('warn', !!run?.error);
  info.textContent = !run
    ? 'This dataset has no similarity run on samples. Build one with the CLI.'
    : run.error
      ? `⚠ ${run.error}`
      : [run.backend, run.metric, run.model, run.size == null ? null : `${run.size} indexed`].filter(Boolean).join(' · ');
  updateControls();
}

function updateControls() {
  const ready = !!dups.key && !!dups.hist && dups.hist.n > 0;
  $('#dups-thresh').disabled = !ready;
  $('#dups-thresh-value').disabled = !dups.key;
  $('#dups-run').disabled = !dups.key;
  const res = dups.result;
  const tag = $('#dups-tag-input').value.trim();
  $('#dups-tag').disabled = !res || !res.duplicate_ids.length || !tag;
  $('#dups-tag').title = !res?.duplicate_ids.length ? 'No duplicates to tag' : `Tag the ${plural(res.duplicate_ids.length, 'duplicate')} (not the samples kept)`;
  $('#dups-show').disabled = !res || !res.groups.length;
}

// ---------- requests ----------
async function loadHistogram(force = false) {
  if (!dups.key) {
    dups.hist = null;
    renderHistogram();
    renderThresh();
    updateControls();
    if (!pending) $('#dups-panel').dataset.state = 'ready';
    return;
  }
  const view = ownView();
  const key = `${dups.key}\u0000${JSON.stringify(view)}`;
  if (!force && dups.histFor === key && dups.hist) {
    if (!pending) $('#dups-panel').dataset.state = 'ready';
    return;
  }
  const sameRun = dups.histFor?.split('\u0000')[0] === dups.key;
  const my = ++histToken;
  dups.histError = null;
  if (histAbort) histAbort.abort();
  histAbort = new AbortController();
  const { signal } = histAbort;
  await track(async () => {
    try {
      const hist = await api.getDistances(state.dataset, { brainKey: dups.key, bins: BINS, view }, signal);
      if (my !== histToken) return 'stale';
      dups.histError = null;
      dups.hist = hist;
      dups.histFor = key;
      const th = $('#dups-thresh');
      th.min = String(hist.min);
      th.max = String(hist.max);
      $('#dups-thresh-value').step = 'any';
      if (!sameRun || !Number.isFinite(dups.thresh)) setThresh(defaultThresh(hist));
      else setThresh(dups.thresh, { fromBox: true });
      updateControls();
      return true;
    } catch (e) {
      if (my !== histToken) return 'stale';
      dups.hist = null;
      dups.histFor = null;
      dups.histError = 'The distances could not be loaded.';
      renderHistogram();
      updateControls();
      throw e;
    }
  });
}

function readThresh() {
  const raw = $('#dups-thresh-value').value.trim();
  const v = Number(raw);
  if (raw === '' || !Number.isFinite(v)) throw new Error('Give a threshold: a distance, e.g. 0.05.');
  return v;
}

async function runDuplicates() {
  if (!dups.key) return;
  let thresh;
  try {
    thresh = readThresh();
  } catch (e) {
    $('#dups-form-error').textContent = e.message;
    return;
  }
  $('#dups-form-error').textContent = '';
  clearError();
  const view = ownView();
  const key = dups.key;
  const my = ++runToken;
  if (runAbort) runAbort.abort();
  runAbort = new AbortController();
  const { signal } = runAbort;
  $('#dups-run').textContent = 'Finding duplicates…';
  await track(async () => {
    try {
      const res = await api.findDuplicates(state.dataset, { brain_key: key, thresh, view }, signal);
      if (my !== runToken) return 'stale';
      dups.result = res;
      dups.resultKey = key;
      dups.resultView = JSON.stringify(view);
      dups.shown = GROUP_PAGE;
      $('#dups-status').textContent = '';
      renderResults();
      return true;
    } finally {
      if (my === runToken) $('#dups-run').textContent = 'Find duplicates';
    }
  });
}

async function tagDuplicates() {
  const res = dups.result;
  const tag = $('#dups-tag-input').value.trim();
  if (!res || !tag || !res.duplicate_ids.length) return;
  clearError();
  const ids = [...res.duplicate_ids];
  $('#dups-tag').disabled = true;
  await track(async () => {
    try {
      const out = await api.updateTags(state.dataset, ids, [tag], []);
      if (out && out.tags && typeof out.tags === 'object') state.info.tags = { ...out.tags };
      else state.info = { ...state.info, ...(await api.getDataset(state.dataset)) };
      renderTags();
      $('#dups-status').textContent = `Tagged ${plural(out?.updated ?? ids.length, 'duplicate')} “${tag}”`;
      await app.refreshAfterTagging(ids, [tag], []);
      return true;
    } finally {
      updateControls();
    }
  });
}

async function showInGrid() {
  const res = dups.result;
  if (!res || !res.groups.length) return;
  const ids = res.groups.flatMap((g) => [g.id, ...g.duplicates.map((d) => d.id)]);
  const stage = { select: { ids, ordered: true } };
  const base = JSON.parse(dups.resultView || '[]');
  dups.showStage = stage;
  const marks = new Map();
  res.groups.forEach((g, i) => {
    marks.set(g.id, { group: i + 1, distance: null });
    for (const d of g.duplicates) marks.set(d.id, { group: i + 1, distance: d.distance });
  });
  state.dupMarks = { stage: JSON.stringify(stage), marks };
  dups.seenView = JSON.stringify(base);
  if (isPatches()) app.setMode('samples');
  await app.setView([...base, stage]);
}

// ---------- results ----------
function openSample(id, filepath, distance) {
  const known = !isPatches() ? state.known.get(id) : null;
  app.showItem(known || {
    key: id, sampleId: id, labelId: null, filepath, fields: null, distance,
  }, true);
}

function thumb(id, filepath, distance) {
  const kept = distance == null;
  const img = h('img', {
    loading: 'lazy', decoding: 'async', draggable: 'false', alt: basename(filepath), src: api.thumbUrl(state.dataset, id),
  });
  img.addEventListener('error', () => img.parentElement?.classList.add('broken'));
  return h('button', {
    class: `dup-thumb ${kept ? 'dup-kept' : 'dup-member'}`,
    type: 'button',
    title: `${basename(filepath)}${kept ? ' (kept)' : ` · distance ${distance}`} — open`,
    dataset: { sampleId: id, distance: kept ? null : String(distance) },
    onclick: () => openSample(id, filepath, kept ? undefined : distance),
  }, img, h('span', { class: `dup-badge${kept ? ' kept' : ''}`, text: kept ? 'kept' : short(distance) }));
}

function groupEl(g, rank) {
  const nearest = g.duplicates[0]?.distance;
  return h('div', { class: 'dup-group', dataset: { sampleId: g.id } },
    h('div', { class: 'dup-group-head' },
      h('span', { class: 'dup-rank', text: String(rank) }),
      h('span', { class: 'dup-name', title: g.filepath, text: basename(g.filepath) }),
      h('span', { class: 'dup-meta', text: `${plural(g.duplicates.length, 'duplicate')}${nearest == null ? '' : ` · nearest ${short(nearest)}`}` })),
    h('div', { class: 'dup-thumbs' }, thumb(g.id, g.filepath, null), g.duplicates.map((d) => thumb(d.id, d.filepath, d.distance))));
}

function renderResults() {
  const res = dups.result;
  $('#dups-results').hidden = !res;
  if (!res) {
    renderThresh();
    updateControls();
    return;
  }
  const nd = res.duplicate_ids.length;
  $('#dups-summary').replaceChildren(
    h('strong', { title: `thresh ${res.thresh}`, text: `${plural(nd, 'duplicate')} in ${plural(res.groups.length, 'group')} at thresh ${Number(res.thresh.toPrecision(6))}` }),
    h('span', { class: 'muted', text: ` · ${res.unique_count} kept` }),
    ...(res.method && !res.method.exact ? [h('span', {
      class: 'muted dups-method',
      title: 'Large index: pairs were searched inside clusters of similar samples; every distance shown is exact, but a pair split across clusters can be missed.',
      text: ` · searched in ${res.method.cells} clusters${res.method.recall == null ? '' : ` (they saw ${(100 * res.method.recall).toFixed(1)} % of the close pairs of ${res.method.sampled} sampled samples)`}`,
    })] : []),
    h('span', { id: 'dups-stale', class: 'dups-stale', text: 'The threshold changed: find duplicates again.', hidden: true }),
  );
  const groups = res.groups.slice(0, dups.shown).map((g, i) => groupEl(g, i + 1));
  const more = res.groups.length - dups.shown;
  const none = h('p', { class: 'dups-none', text: 'No two samples are this close. Move the threshold to the right.' });
  $('#dups-groups').replaceChildren(...(groups.length ? groups : [none]), ...(more <= 0 ? [] : [h('button', {
    class: 'btn btn-small btn-block dups-more',
    type: 'button',
    text: `Show ${Math.min(more, GROUP_PAGE)} more of ${more} groups`,
    onclick: () => {
      dups.shown += GROUP_PAGE;
      renderResults();
    },
  })]));
  renderThresh();
  updateControls();
}

/** Drops the result and the histogram when the dataset or the panel's view changes. */
function onGrid() {
  if (state.dataset !== dups.dataset) {
    Object.assign(dups, {
      dataset: state.dataset, key: null, hist: null, histFor: null, thresh: null, result: null, showStage: null,
    });
    $('#dups-status').textContent = '';
    renderRunSelect();
    renderResults();
    renderHistogram();
  }
  const view = JSON.stringify(ownView());
  if (view === dups.seenView) return;
  dups.seenView = view;
  if (dups.result && dups.resultView !== view) {
    dups.result = null;
    renderResults();
  }
  if (panelOpen()) loadHistogram();
}

// ---------- open / close ----------
export function openDupsPanel(open = true) {
  const panel = $('#dups-panel');
  panel.classList.toggle('open', open);
  panel.inert = !open;
  panel.setAttribute('aria-hidden', open ? 'false' : 'true');
  $('#dups-button').setAttribute('aria-expanded', open ? 'true' : 'false');
  if (!open) return;
  emit('panel', 'dups');
  renderRunSelect();
  loadHistogram();
  setTimeout(() => $('#dups-brain-key').focus({ preventScroll: true }), 0);
}

export function initDups(appApi) {
  app = appApi;
  openDupsPanel(false);
  renderHistogram();
  $('#dups-button').addEventListener('click', () => openDupsPanel(!panelOpen()));
  $('#dups-close').addEventListener('click', () => {
    openDupsPanel(false);
    $('#dups-button').focus();
  });
  on('panel', (which) => {
    if (which !== 'dups' && panelOpen()) openDupsPanel(false);
  });
  $('#dups-brain-key').addEventListener('change', (ev) => {
    dups.key = ev.target.value || null;
    renderRunSelect();
    renderThresh();
    loadHistogram();
  });
  $('#dups-log').addEventListener('change', renderThresh);
  new ResizeObserver(() => renderHistogram()).observe($('#dups-histogram'));
  $('#dups-thresh').addEventListener('input', (ev) => setThresh(Number(ev.target.value)));
  $('#dups-thresh-value').addEventListener('input', (ev) => {
    const raw = ev.target.value.trim();
    const v = Number(raw);
    if (raw !== '' && Number.isFinite(v)) setThresh(v, { fromBox: true });
    $('#dups-form-error').textContent = '';
  });
  const chart = $('#dups-histogram');
  const pick = (ev) => {
    if (!dups.hist?.n) return;
    const r = chart.getBoundingClientRect();
    setThresh(valueAt(dups.hist, ev.clientX - r.left));
  };
  chart.addEventListener('pointerdown', (ev) => {
    if (!dups.hist?.n) return;
    chart.setPointerCapture(ev.pointerId);
    pick(ev);
  });
  chart.addEventListener('pointermove', (ev) => {
    if (chart.hasPointerCapture(ev.pointerId)) pick(ev);
  });
  $('#dups-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!$('#dups-run').disabled) runDuplicates();
  });
  $('#dups-tag-input').addEventListener('input', updateControls);
  $('#dups-tag-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!$('#dups-tag').disabled) tagDuplicates();
  });
  $('#dups-show').addEventListener('click', showInGrid);
  on('grid', onGrid);
}
