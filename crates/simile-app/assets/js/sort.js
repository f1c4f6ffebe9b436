// The sort panel (sort by similarity to the selection, text search) and the "sorted" indicator.
import { $, h, plural } from './dom.js';
import {
  emit, isPatches, on, patchesField, state,
} from './state.js';

let app = null;

const chosen = new Map(); // "dataset/mode" -> brain key chosen in this session
const choiceKey = () => `${state.dataset}/${state.mode}`;

/** Runs that fit the current grid: sample indexes, or patch indexes of the patches field. */
export function fittingRuns() {
  const pf = patchesField();
  return state.runs.filter((r) => (r.patches_field ?? null) === pf);
}

export function currentRun() {
  return fittingRuns().find((r) => r.key === state.brainKey) || null;
}

/** Chooses the run: keep the current one if it fits, else the remembered one, else the first. */
export function chooseRun(preferred = null) {
  const runs = fittingRuns();
  const remembered = chosen.get(choiceKey());
  const pick = [preferred, state.brainKey, remembered].find((k) => k && runs.some((r) => r.key === k));
  state.brainKey = pick || runs[0]?.key || null;
  renderSortPanel();
}

export function renderSortPanel() {
  const runs = fittingRuns();
  const sel = $('#sort-brain-key');
  if (!runs.length) {
    sel.replaceChildren(h('option', { value: '', text: isPatches() ? `No patch index on ${state.mode}` : 'No sample index' }));
    sel.disabled = true;
  } else {
    sel.replaceChildren(...runs.map((r) => h('option', { value: r.key, text: r.key })));
    sel.disabled = false;
    sel.value = state.brainKey || runs[0].key;
  }
  const run = currentRun();
  $('#sort-run-info').classList.toggle('warn', !!run?.error);
  $('#sort-run-info').textContent = run
    ? run.error
      ? `⚠ ${run.error}`
      : [run.backend, run.metric, run.model || 'no model', run.size == null ? null : `${run.size} indexed`].filter(Boolean).join(' · ')
    : isPatches()
      ? `This dataset has no similarity run on the patches of ${state.mode}. Build one with the CLI.`
      : 'This dataset has no similarity run on samples. Build one with the CLI.';

  const rev = $('#sort-reverse');
  const canReverse = !!run?.supports_reverse;
  rev.disabled = !canReverse;
  if (!canReverse) rev.checked = false;
  $('#sort-reverse-wrap').hidden = !canReverse;

  const prompts = !!run?.supports_prompts;
  $('#text-search').hidden = !prompts;
  $('#text-query').hidden = !prompts;
  $('#text-run').hidden = !prompts;
  updateButtons();
}

export function updateButtons() {
  const run = currentRun();
  const n = state.selection.size;
  const btn = $('#sort-run');
  const noun = isPatches() ? 'patch' : 'sample';
  let why = '';
  if (!run) why = 'No similarity run fits this grid';
  else if (!n) why = `Select one or more ${noun}s first`;
  btn.disabled = !!why;
  btn.title = why || `Sort by similarity to ${plural(n, noun, `${noun === 'patch' ? 'patches' : 'samples'}`)}${n > 1 ? ' (their mean)' : ''}`;
  $('#sort-run-hint').textContent = why || `by ${plural(n, `selected ${noun}`, `selected ${noun === 'patch' ? 'patches' : 'samples'}`)}${n > 1 ? ' (mean)' : ''}`;
  const text = $('#text-query').value.trim();
  $('#text-run').disabled = !run || !text;
  $('#text-run').title = text ? 'Sort by similarity to this text' : 'Type a text query first';
  const find = $('#sample-find-similar');
  if (find) {
    find.disabled = !run;
    find.title = run ? `Sort the grid by similarity to this ${noun} (${run.key})` : 'No similarity run fits this grid';
  }
}

/** The options of the panel: {brain_key, k, reverse, dist_field}. */
export function sortOptions() {
  const kRaw = $('#sort-k').value.trim();
  let k = kRaw === '' ? null : Math.max(1, Math.floor(Number(kRaw)));
  if (k !== null && !Number.isFinite(k)) k = 25;
  const dist = $('#sort-dist-field').value.trim();
  return {
    brain_key: state.brainKey,
    k,
    reverse: !$('#sort-reverse').disabled && $('#sort-reverse').checked,
    dist_field: dist || null,
  };
}

/** Shows the URL's sort options in the panel (after a reload). */
export function applySortToPanel(sort) {
  if (!sort) return;
  if (sort.brain_key) chooseRun(sort.brain_key);
  $('#sort-k').value = sort.k == null ? '' : String(sort.k);
  $('#sort-reverse').checked = !!sort.reverse && !$('#sort-reverse').disabled;
  $('#sort-dist-field').value = sort.dist_field || '';
  if (sort.query && typeof sort.query.text === 'string') $('#text-query').value = sort.query.text;
  updateButtons();
}

export function openSortPanel(open = true) {
  const panel = $('#sort-panel');
  panel.classList.toggle('open', open);
  panel.inert = !open;
  panel.setAttribute('aria-hidden', open ? 'false' : 'true');
  $('#sort-button').setAttribute('aria-expanded', open ? 'true' : 'false');
  if (open) {
    emit('panel', 'sort');
    const first = $('#sort-run').disabled && !$('#text-search').hidden ? $('#text-query') : $('#sort-brain-key');
    setTimeout(() => first.focus({ preventScroll: true }), 0);
  }
}

export function renderSortIndicator() {
  const box = $('#sort-indicator');
  const s = state.sort;
  box.hidden = !s || !state.results;
  document.body.classList.toggle('sorted', !box.hidden);
  if (box.hidden) return;
  const q = s.query || {};
  const noun = isPatches() ? 'patch' : 'sample';
  let what;
  if (Array.isArray(q.ids)) what = plural(q.ids.length, noun, noun === 'patch' ? 'patches' : 'samples');
  else if (typeof q.text === 'string') what = `“${q.text}”`;
  else what = 'a vector';
  $('#sort-indicator-text').replaceChildren(
    h('strong', { text: `Sorted by ${s.reverse ? 'least ' : ''}similarity to ${what}` }),
    h('span', { class: 'muted', text: ` · ${s.brain_key || 'default run'} · ${s.k == null ? 'all' : `k ${s.k}`} · ${plural(state.results.length, 'result')}` }),
  );
}

export function initSort(appApi) {
  app = appApi;
  $('#sort-button').addEventListener('click', () => openSortPanel(true));
  $('#sort-close').addEventListener('click', () => {
    openSortPanel(false);
    $('#sort-button').focus();
  });
  $('#sort-brain-key').addEventListener('change', (ev) => {
    state.brainKey = ev.target.value || null;
    if (state.brainKey) chosen.set(choiceKey(), state.brainKey);
    renderSortPanel();
  });
  $('#sort-k').addEventListener('input', () => {
    const v = Number($('#sort-k').value);
    $('#sort-k-warn').hidden = !(v > 1000);
  });
  $('#sort-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if ($('#sort-run').disabled) return;
    app.runSort({ ...sortOptions(), query: { ids: [...state.selection] } });
  });
  $('#text-query').addEventListener('input', updateButtons);
  $('#text-search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('#text-query').value.trim();
    if (!text || $('#text-run').disabled) return;
    app.runSort({ ...sortOptions(), query: { text } });
  });
  $('#sort-reset').addEventListener('click', () => app.resetSort());
  on('selection', updateButtons);
  on('panel', (which) => {
    if (which !== 'sort' && $('#sort-panel').classList.contains('open')) openSortPanel(false);
  });
}
