// Loading of grids and sorts, and the actions the panels call (through the `app` object).
import * as api from './api.js';
import { $, h } from './dom.js';
import { clearError, showError } from './errors.js';
import {
  renderCounts, renderGrid, renderLabelFields, renderPager, renderSelection, setGridState, setSelection,
} from './grid.js';
import { renderChrome } from './chrome.js';
import { renderRuns } from './runs.js';
import { currentModalItem, hideSample, showSample } from './sample.js';
import { chooseRun, renderSortIndicator, sortOptions } from './sort.js';
import {
  PAGE_SIZE, currentOrder, emit, isPatches, pageCount, patchesField, state, syncUrl, toItem,
} from './state.js';
import { renderTags } from './tags.js';
import { renderViewBar } from './view.js';

let loadToken = 0;
let inflight = null;

function begin() {
  loadToken += 1;
  if (inflight) inflight.abort();
  inflight = new AbortController();
  setGridState('loading');
  return { my: loadToken, signal: inflight.signal };
}

// ---------- loading ----------
export async function loadDataset(name) {
  let info;
  try {
    info = await api.getDataset(name);
  } catch (e) {
    showError(e);
    return false;
  }
  state.dataset = info.name || name;
  state.info = info;
  state.known.clear();
  state.selection = new Set();
  state.anchor = null;
  state.hiddenFields = new Set();
  state.brainKey = null;
  try {
    const runs = await api.getRuns(state.dataset);
    state.runs = Array.isArray(runs) ? runs : [];
  } catch (e) {
    state.runs = [];
    showError(e);
  }
  return true;
}

export function fillPageFromResults() {
  state.total = state.results.length;
  state.page = Math.min(Math.max(1, state.page), pageCount());
  const start = (state.page - 1) * PAGE_SIZE;
  state.items = state.results.slice(start, start + PAGE_SIZE);
}

async function fetchPage(signal) {
  const args = { offset: (state.page - 1) * PAGE_SIZE, limit: PAGE_SIZE, view: state.view };
  if (isPatches()) {
    const res = await api.getPatches(state.dataset, { ...args, field: state.mode }, signal);
    return { total: res.total, items: (res.patches || []).map((p) => toItem(p, state.mode)) };
  }
  const res = await api.getSamples(state.dataset, args, signal);
  return { total: res.total, items: (res.samples || []).map((s) => toItem(s, null)) };
}

function sortBody(spec) {
  return {
    brain_key: spec.brain_key ?? null,
    query: spec.query,
    k: spec.k ?? null,
    reverse: !!spec.reverse,
    dist_field: spec.dist_field || null,
    view: state.view,
    patches_field: patchesField(),
  };
}

/** Loads the grid for the current state (re-running a sort from the URL when needed). */
export async function loadGrid({ keepScroll = false } = {}) {
  const { my, signal } = begin();
  const scroll = $('#grid').scrollTop;
  let sortError = null;
  try {
    if (state.sort && !state.results) {
      try {
        const res = await api.sortBySimilarity(state.dataset, sortBody(state.sort), signal);
        if (my !== loadToken) return;
        state.results = (res.results || []).map((r) => toItem(r, patchesField()));
        if (res.brain_key) state.sort = { ...state.sort, brain_key: res.brain_key };
      } catch (e) {
        if (my !== loadToken) return;
        sortError = e;
        state.sort = null;
        state.results = null;
        state.page = 1;
      }
    }
    if (state.results) {
      fillPageFromResults();
    } else {
      let page = await fetchPage(signal);
      if (my !== loadToken) return;
      const last = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
      if (state.page > last) {
        state.page = last;
        page = await fetchPage(signal);
        if (my !== loadToken) return;
      }
      state.total = page.total;
      state.items = page.items;
    }
    renderGrid();
    if (keepScroll) $('#grid').scrollTop = scroll;
    renderSortIndicator();
    syncUrl(false);
    setGridState(sortError ? 'error' : 'ready');
    if (sortError) showError(sortError);
  } catch (e) {
    if (my !== loadToken) return;
    showError(e);
    if (!$('#grid .tile')) {
      state.items = [];
      state.total = 0;
      renderCounts();
      renderPager();
      $('#grid').replaceChildren(h('div', { class: 'grid-empty' },
        h('p', { text: 'The grid could not be loaded.' }),
        h('button', { class: 'btn', type: 'button', text: 'Try again', onclick: () => { clearError(); loadGrid(); } })));
    }
    setGridState('error');
  }
}

// ---------- actions ----------
export async function runSort(spec) {
  if (!state.dataset) return;
  clearError();
  const { my, signal } = begin();
  try {
    const res = await api.sortBySimilarity(state.dataset, sortBody(spec), signal);
    if (my !== loadToken) return;
    const pf = patchesField();
    if (!state.sort) state.sortPrevPage = state.page;
    state.sort = {
      brain_key: res.brain_key ?? spec.brain_key ?? null,
      query: spec.query,
      k: spec.k ?? null,
      reverse: !!spec.reverse,
      dist_field: spec.dist_field || null,
    };
    state.results = (res.results || []).map((r) => toItem(r, pf));
    state.page = 1;
    fillPageFromResults();
    renderGrid();
    renderSortIndicator();
    syncUrl(true);
    setGridState('ready');
  } catch (e) {
    if (my !== loadToken) return;
    showError(e); // the previous grid stays as it was
    setGridState('error');
  }
}

export function resetSort() {
  if (!state.sort) return;
  clearError();
  state.sort = null;
  state.results = null;
  state.page = state.sortPrevPage || 1;
  renderSortIndicator();
  syncUrl(true);
  return loadGrid();
}

export function setView(stages) {
  clearError();
  state.view = stages;
  state.page = 1;
  state.sort = null;
  state.results = null;
  renderViewBar();
  renderTags();
  renderSortIndicator();
  syncUrl(true);
  return loadGrid();
}

export async function setPage(n, { push = true } = {}) {
  const page = Math.min(Math.max(1, n), pageCount());
  if (page === state.page && state.items.length) return;
  state.page = page;
  if (state.results) {
    setGridState('loading');
    fillPageFromResults();
    renderGrid();
    setGridState('ready');
    syncUrl(push);
    return;
  }
  syncUrl(push);
  await loadGrid();
}

export async function setDataset(name) {
  clearError();
  hideSample();
  setGridState('loading');
  if (!(await loadDataset(name))) {
    $('#dataset-select').value = state.dataset || '';
    setGridState('error');
    return;
  }
  Object.assign(state, { view: [], mode: 'samples', page: 1, sort: null, results: null, sampleId: null, modalKey: null });
  chooseRun();
  renderChrome();
  syncUrl(true);
  await loadGrid();
}

export function setMode(mode) {
  clearError();
  state.mode = mode;
  Object.assign(state, { page: 1, sort: null, results: null, anchor: null, selection: new Set() });
  chooseRun();
  renderRuns();
  renderLabelFields();
  renderSortIndicator();
  renderSelection();
  emit('selection');
  syncUrl(true);
  return loadGrid();
}

function positionOf(key) {
  const { list, offset, total } = currentOrder();
  const i = list.findIndex((it) => it.key === key);
  return { pos: i < 0 ? -1 : offset + i, total };
}

export function showItem(item, push) {
  state.modalKey = item.key;
  state.sampleId = item.sampleId;
  syncUrl(push);
  const { pos, total } = positionOf(item.key);
  showSample(item, pos, total);
}

export function openItem(key) {
  const item = state.known.get(key);
  if (item) showItem(item, true);
}

export async function stepSample(delta) {
  const { list, offset, total } = currentOrder();
  const i = list.findIndex((it) => it.key === state.modalKey);
  if (i < 0) return;
  const g = offset + i + delta;
  if (g < 0 || g >= total) return;
  if (state.results) {
    const page = Math.floor(g / PAGE_SIZE) + 1;
    if (page !== state.page) await setPage(page, { push: false });
    showItem(state.results[g], false);
    return;
  }
  if (g >= offset && g < offset + list.length) {
    showItem(list[g - offset], false);
    return;
  }
  await setPage(Math.floor(g / PAGE_SIZE) + 1, { push: false });
  const item = state.items[g - (state.page - 1) * PAGE_SIZE];
  if (item) showItem(item, false);
}

export function closeSample(push = true) {
  hideSample();
  if (!state.sampleId) return;
  state.sampleId = null;
  state.modalKey = null;
  syncUrl(push);
}

export function findSimilar() {
  const item = currentModalItem();
  if (!item) return;
  closeSample(false);
  setSelection([item.key], item.key);
  runSort({ ...sortOptions(), query: { ids: [item.key] } });
}

export async function refreshAfterTagging(ids, add, remove) {
  if (state.results) {
    const set = new Set(ids);
    for (const it of state.results) {
      if (!it.fields || !set.has(it.sampleId)) continue;
      const tags = new Set(Array.isArray(it.fields.tags) ? it.fields.tags : []);
      add.forEach((t) => tags.add(t));
      remove.forEach((t) => tags.delete(t));
      it.fields = { ...it.fields, tags: [...tags] };
    }
    const scroll = $('#grid').scrollTop;
    renderGrid();
    $('#grid').scrollTop = scroll;
    setGridState('ready');
    return;
  }
  await loadGrid({ keepScroll: true });
}

/** Opens the sample named in the URL (from the grid when it is there). */
export async function openSampleFromUrl(id) {
  const { list } = currentOrder();
  const item = list.find((it) => it.sampleId === id);
  if (item) {
    showItem(item, false);
    return;
  }
  try {
    const s = await api.getSample(state.dataset, id);
    showItem(toItem(s, null), false);
  } catch (e) {
    showError(e);
    state.sampleId = null;
    syncUrl(false);
  }
}

/** Makes the screen match the URL (on load and on back/forward). */
