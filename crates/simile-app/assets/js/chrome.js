// The top bar selects and the panels that depend on the dataset.
import { $, h } from './dom.js';
import { renderLabelFields } from './grid.js';
import { renderRuns } from './runs.js';
import { renderSortIndicator, renderSortPanel } from './sort.js';
import { state } from './state.js';
import { renderTags } from './tags.js';
import { renderViewBar } from './view.js';

export const detectionFields = () => {
  const f = Object.entries(state.info?.fields || {}).filter(([, t]) => t === 'detections').map(([n]) => n);
  return f.length ? f : state.info?.label_fields || [];
};

// ---------- rendering of the chrome ----------
export function renderDatasetSelect() {
  const sel = $('#dataset-select');
  sel.replaceChildren(...state.datasets.map((d) => h('option', { value: d.name, text: `${d.name} (${d.len})` })));
  if (state.dataset) sel.value = state.dataset;
  sel.disabled = state.datasets.length === 0;
}

export function renderModeSelect() {
  const sel = $('#mode-select');
  sel.replaceChildren(h('option', { value: 'samples', text: 'Samples' }),
    ...detectionFields().map((f) => h('option', { value: f, text: `Patches: ${f}` })));
  sel.value = state.mode;
}

export function renderChrome() {
  renderDatasetSelect();
  renderModeSelect();
  renderLabelFields();
  renderViewBar();
  renderTags();
  renderSortPanel();
  renderRuns();
  renderSortIndicator();
  document.title = state.dataset ? `${state.dataset} · simile` : 'simile';
}

