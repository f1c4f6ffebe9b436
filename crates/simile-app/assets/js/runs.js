// The runs panel: one row per brain run with its capabilities.
import { $, h } from './dom.js';
import { fittingRuns, chooseRun, openSortPanel } from './sort.js';
import { state } from './state.js';

const yesNo = (b) => (b ? 'yes' : 'no');

export function renderRuns() {
  const box = $('#runs-panel');
  if (!state.runs.length) {
    box.replaceChildren(h('p', { class: 'side-empty', text: 'No brain runs. Build a similarity index with the CLI to sort by similarity.' }));
    return;
  }
  const fits = new Set(fittingRuns().map((r) => r.key));
  const cell = (col, label, value) => h('td', { dataset: { col }, title: label }, h('span', { class: 'run-k', text: label }), h('span', { class: 'run-v', text: value }));
  const rows = state.runs.map((r) => h('tr', {
    dataset: { runKey: r.key },
    class: `${fits.has(r.key) ? 'fits' : 'other'}${r.key === state.brainKey && fits.has(r.key) ? ' current' : ''}${r.error ? ' broken' : ''}`,
    tabindex: fits.has(r.key) ? '0' : null,
    title: fits.has(r.key)
      ? 'Use this run in the sort panel'
      : r.patches_field ? `Indexes patches of ${r.patches_field}: switch the grid to patches of ${r.patches_field} to use it` : 'Indexes samples: switch the grid to samples to use it',
    onclick: () => {
      if (!fits.has(r.key)) return;
      chooseRun(r.key);
      renderRuns();
      openSortPanel(true);
    },
    onkeydown: (ev) => {
      if (ev.key === 'Enter') ev.currentTarget.click();
    },
  },
  h('th', { scope: 'row', dataset: { col: 'key' }, text: r.key }),
  cell('size', 'size', r.size == null ? 'size unknown' : `${r.size} vectors`),
  cell('type', 'type', r.type || '—'),
  cell('backend', 'backend', r.backend || '—'),
  cell('metric', 'metric', r.metric || '—'),
  cell('model', 'model', r.model || '—'),
  cell('patches', 'patches', r.patches_field || '—'),
  cell('prompts', 'prompts', yesNo(r.supports_prompts)),
  r.error ? h('td', { class: 'run-error', dataset: { col: 'error' }, text: `⚠ ${r.error}` }) : null));
  box.replaceChildren(h('table', { class: 'runs-table' },
    h('thead', {}, h('tr', {}, ['key', 'size', 'type', 'backend', 'metric', 'model', 'patches', 'prompts'].map((c) => h('th', { scope: 'col', text: c })))),
    h('tbody', {}, rows)));
}
