// Tags: the sidebar list (click = add a match_tags stage) and tag/untag of the selection.
import { getDataset, updateTags } from './api.js';
import { $, h, plural } from './dom.js';
import { showError } from './errors.js';
import { setGridState } from './grid.js';
import { isPatches, on, state } from './state.js';

let app = null;
let busy = false;

/** Tags active in the view (match_tags stages). */
function activeTags() {
  const set = new Set();
  for (const st of state.view) if (Array.isArray(st.match_tags)) st.match_tags.forEach((t) => set.add(t));
  return set;
}

export function renderTags() {
  const list = $('#tags-list');
  const tags = Object.entries(state.info?.tags || {}).filter(([, n]) => n > 0).sort((a, b) => a[0].localeCompare(b[0]));
  const active = activeTags();
  if (!tags.length) {
    list.replaceChildren(h('li', { class: 'side-empty', text: 'No tags yet. Select samples and add one below.' }));
  } else {
    list.replaceChildren(...tags.map(([t, n]) => h('li', {},
      h('button', {
        class: `tag-filter${active.has(t) ? ' active' : ''}`,
        type: 'button',
        dataset: { tag: t },
        title: active.has(t) ? `Already filtering on “${t}”` : `Show only samples tagged “${t}”`,
        onclick: () => {
          if (!active.has(t)) app.setView([...state.view, { match_tags: [t] }]);
        },
      }, h('span', { class: 'tag-name', text: t }), h('span', { class: 'tag-count', text: String(n) })))));
  }
  $('#tag-options').replaceChildren(...tags.map(([t]) => h('option', { value: t })));
  updateTagButtons();
}

/** Sample ids behind the selection (label ids map to their samples in a patches grid). */
function selectedSampleIds() {
  if (!isPatches()) return [...state.selection];
  const ids = new Set();
  for (const key of state.selection) {
    const it = state.known.get(key);
    if (it) ids.add(it.sampleId);
  }
  return [...ids];
}

export function updateTagButtons() {
  const n = state.selection.size;
  const text = $('#tag-input').value.trim();
  const why = !n ? 'Select samples first' : !text ? 'Type a tag first' : '';
  for (const id of ['#tag-add', '#tag-remove']) {
    $(id).disabled = busy || !!why;
    $(id).title = why || `${id === '#tag-add' ? 'Tag' : 'Untag'} ${plural(selectedSampleIds().length, 'sample')}`;
  }
  $('#tag-hint').textContent = n
    ? `Acts on ${plural(selectedSampleIds().length, 'selected sample')}`
    : 'Select samples to tag them';
}

async function apply(add) {
  const tag = $('#tag-input').value.trim();
  const ids = selectedSampleIds();
  if (!tag || !ids.length) return;
  busy = true;
  updateTagButtons();
  setGridState('loading'); // the grid is refreshed once the tags are written
  let refreshed = false;
  try {
    const res = await updateTags(state.dataset, ids, add ? [tag] : [], add ? [] : [tag]);
    const fresh = res && res.tags && typeof res.tags === 'object';
    if (fresh) state.info.tags = { ...res.tags }; // every tag's count
    $('#tag-status').textContent = `${add ? 'Tagged' : 'Untagged'} ${plural(res?.updated ?? ids.length, 'sample')} “${tag}”`;
    setTimeout(() => { $('#tag-status').textContent = ''; }, 4000);
    if (!fresh) {
      try {
        state.info = { ...state.info, ...(await getDataset(state.dataset)) };
      } catch {
        /* the counts stay as they were */
      }
    }
    renderTags();
    refreshed = true;
    await app.refreshAfterTagging(ids, add ? [tag] : [], add ? [] : [tag]);
  } catch (e) {
    showError(e);
  } finally {
    if (!refreshed) setGridState('ready'); // nothing written: the grid is as it was
    busy = false;
    updateTagButtons();
  }
}

export function initTags(appApi) {
  app = appApi;
  $('#tag-input').addEventListener('input', updateTagButtons);
  $('#tag-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!$('#tag-add').disabled) apply(true);
  });
  $('#tag-remove').addEventListener('click', () => apply(false));
  on('selection', updateTagButtons);
  on('grid', updateTagButtons);
}
