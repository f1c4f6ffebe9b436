// simile App: boot, URL state (load and back/forward) and keyboard shortcuts.
import * as api from './api.js';
import {
  closeSample, fillPageFromResults, findSimilar, loadDataset, loadGrid, openItem, openSampleFromUrl, refreshAfterTagging,
  resetSort, runSort, setDataset, setMode, setPage, setView, showItem, stepSample,
} from './actions.js';
import { detectionFields, renderChrome, renderDatasetSelect } from './chrome.js';
import { $, h, isTyping } from './dom.js';
import { initDups } from './dups.js';
import { initErrors, showError } from './errors.js';
import {
  clearSelection, initGrid, renderCounts, renderGrid, setGridState, setSelection,
} from './grid.js';
import { hideSample, initSample, modalOpen } from './sample.js';
import {
  applySortToPanel, chooseRun, initSort, openSortPanel,
} from './sort.js';
import { on, readUrl, state } from './state.js';
import { initTags } from './tags.js';
import { closeStageForm, initViewBar, stageFormOpen } from './view.js';

async function applyUrl(initial) {
  const u = readUrl();
  const problems = [...u.problems];
  const first = state.datasets[0]?.name;
  const wanted = u.dataset || first;
  if (!wanted) {
    $('#grid').replaceChildren(h('div', { class: 'grid-empty' }, h('p', { text: 'No datasets yet. Create one with the simile CLI.' })));
    renderChrome();
    setGridState('ready');
    return;
  }
  let datasetChanged = false;
  if (wanted !== state.dataset) {
    datasetChanged = true;
    if (!(await loadDataset(wanted))) {
      if (!first || wanted === first || !(await loadDataset(first))) {
        setGridState('error');
        return;
      }
      u.view = [];
      u.sort = null;
      u.mode = 'samples';
      u.sample = null;
      u.page = 1;
    }
  }
  if (u.mode !== 'samples' && !detectionFields().includes(u.mode)) {
    problems.push({ kind: 'bad_request', message: `'${u.mode}' is not a detections field of dataset '${state.dataset}'; showing samples.` });
    u.mode = 'samples';
  }
  const same = !datasetChanged && JSON.stringify(u.view) === JSON.stringify(state.view)
    && u.mode === state.mode && JSON.stringify(u.sort) === JSON.stringify(state.sort);
  const samePage = same && u.page === state.page && (state.items.length || state.total === 0) && !initial;
  if (!same) {
    if (u.mode !== state.mode) state.selection = new Set();
    state.view = u.view;
    state.mode = u.mode;
    state.sort = u.sort;
    state.results = null;
    state.sortPrevPage = 1;
    chooseRun(u.sort?.brain_key);
    applySortToPanel(u.sort);
  }
  state.page = u.page;
  renderChrome();
  if (!samePage) {
    if (same && state.results) {
      fillPageFromResults();
      renderGrid();
      setGridState('ready');
    } else {
      await loadGrid();
    }
  }
  for (const p of problems) showError(new api.ApiError(p.kind, p.message));
  if (u.sample) {
    if (u.sample !== state.sampleId || !modalOpen()) await openSampleFromUrl(u.sample);
  } else if (modalOpen()) {
    hideSample();
    state.sampleId = null;
    state.modalKey = null;
  }
}

// ---------- keyboard ----------
function onKey(ev) {
  if (ev.key === 'Escape') {
    if (modalOpen()) {
      ev.preventDefault();
      closeSample();
    } else if (stageFormOpen()) {
      closeStageForm();
    } else if (isTyping(ev.target)) {
      ev.target.blur();
    } else {
      clearSelection();
    }
    return;
  }
  if (isTyping(ev.target)) return;
  if (modalOpen()) {
    if (ev.key === 'ArrowLeft' && !$('#sample-prev').disabled) {
      ev.preventDefault();
      stepSample(-1);
    } else if (ev.key === 'ArrowRight' && !$('#sample-next').disabled) {
      ev.preventDefault();
      stepSample(1);
    }
    return;
  }
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'a' && state.items.length) {
    ev.preventDefault();
    setSelection([...new Set([...state.selection, ...state.items.map((it) => it.key)])], state.items[0].key);
  }
}

// ---------- boot ----------
const app = {
  setView, setPage, setMode, runSort, resetSort, openItem, showItem, stepSample, closeSample, findSimilar, refreshAfterTagging,
};

async function boot() {
  initErrors();
  initGrid(app);
  initViewBar(app);
  initSort(app);
  initTags(app);
  initSample(app);
  initDups(app);
  on('selection', () => renderCounts());
  $('#dataset-select').addEventListener('change', (ev) => setDataset(ev.target.value));
  $('#mode-select').addEventListener('change', (ev) => setMode(ev.target.value));
  document.addEventListener('keydown', onKey);
  window.addEventListener('popstate', () => applyUrl(false));
  openSortPanel(false);
  setGridState('loading');
  try {
    state.datasets = await api.listDatasets();
  } catch (e) {
    showError(e);
    setGridState('error');
    return;
  }
  renderDatasetSelect();
  await applyUrl(true);
}

boot();
