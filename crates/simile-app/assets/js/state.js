// The page's state and its mirror in the URL:
// ?dataset=NAME&view=<JSON stages>&sort=<JSON {brain_key,query,k,reverse,dist_field}>&patches=F&sample=ID&page=N

export const PAGE_SIZE = 50;

export const state = {
  datasets: [], // [{name, len}]
  dataset: null, // name
  info: null, // {name, len, fields, label_fields, tags}
  runs: [],
  view: [], // stages
  mode: 'samples', // or a detections field (patches grid)
  page: 1,
  sort: null, // active {brain_key, query, k, reverse, dist_field}
  results: null, // normalised items of the active sort, in result order
  sortPrevPage: 1, // the page to go back to on reset
  items: [], // normalised items of the current page
  total: 0,
  selection: new Set(), // selection keys: sample ids, or label ids in a patches grid
  anchor: null, // key of the last plain/ctrl click (shift-click range start)
  known: new Map(), // key -> item, for every item seen (selection on other pages)
  hiddenFields: new Set(), // label fields whose boxes are hidden
  sampleId: null, // open sample (URL)
  modalKey: null, // key of the item open in the modal (a label id in a patches grid)
  brainKey: null, // run chosen in the sort panel
  dupMarks: null, // {stage: JSON of the duplicates panel's "Show in grid" stage, marks: Map id -> {group, distance}}
};

export const isPatches = () => state.mode !== 'samples';
export const patchesField = () => (isPatches() ? state.mode : null);

/** Normalises a sample, patch or sort result into one item shape used by the grid and modal. */
export function toItem(raw, patchField) {
  if (patchField) {
    return {
      key: raw.id,
      sampleId: raw.sample_id,
      labelId: raw.id,
      filepath: raw.filepath,
      label: raw.label,
      confidence: raw.confidence,
      bbox: raw.bounding_box,
      fields: null,
      distance: raw.distance,
    };
  }
  return {
    key: raw.id,
    sampleId: raw.id,
    labelId: null,
    filepath: raw.filepath,
    fields: raw.fields || {},
    distance: raw.distance,
  };
}

export function pageCount() {
  return Math.max(1, Math.ceil(state.total / PAGE_SIZE));
}

/** The whole ordered list when sorted, else the current page; `offset` is its first index. */
export function currentOrder() {
  if (state.results) return { list: state.results, offset: 0, total: state.results.length };
  return { list: state.items, offset: (state.page - 1) * PAGE_SIZE, total: state.total };
}

function parseJsonParam(params, name, problems) {
  const raw = params.get(name);
  if (raw == null || raw === '') return null;
  try {
    return JSON.parse(raw);
  } catch {
    problems.push({ kind: name === 'view' ? 'bad_view' : 'bad_request', message: `The ${name} in this link is not valid JSON; it was ignored.` });
    return null;
  }
}

/** Reads the URL; returns {dataset, view, sort, mode, sample, page, problems}. */
export function readUrl() {
  const params = new URLSearchParams(location.search);
  const problems = [];
  let view = parseJsonParam(params, 'view', problems) || [];
  if (!Array.isArray(view)) {
    problems.push({ kind: 'bad_view', message: 'The view in this link is not a list of stages; it was ignored.' });
    view = [];
  }
  let sort = parseJsonParam(params, 'sort', problems);
  if (sort && (typeof sort !== 'object' || !sort.query)) {
    problems.push({ kind: 'bad_request', message: 'The sort in this link has no query; it was ignored.' });
    sort = null;
  }
  const page = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
  return {
    dataset: params.get('dataset') || null,
    view,
    sort,
    mode: params.get('patches') || 'samples',
    sample: params.get('sample') || null,
    page,
    problems,
  };
}

export function urlFromState() {
  const p = new URLSearchParams();
  if (state.dataset) p.set('dataset', state.dataset);
  if (state.view.length) p.set('view', JSON.stringify(state.view));
  if (state.sort) p.set('sort', JSON.stringify(state.sort));
  if (isPatches()) p.set('patches', state.mode);
  if (state.sampleId) p.set('sample', state.sampleId);
  if (state.page > 1) p.set('page', String(state.page));
  const qs = p.toString();
  return qs ? `?${qs}` : location.pathname;
}

/** Writes the state into the URL; push adds a history entry (back button), else replaces. */
export function syncUrl(push = false) {
  const url = urlFromState();
  if (url === location.search || (url === location.pathname && !location.search)) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** Page-wide notifications: 'selection', 'grid', 'dataset', 'sort', 'mode'. */
export const bus = new EventTarget();
export const emit = (type, detail) => bus.dispatchEvent(new CustomEvent(type, { detail }));
export const on = (type, fn) => bus.addEventListener(type, (e) => fn(e.detail));
