// The view bar: one removable chip per stage, and a small form to add a stage.
import { getDataset } from './api.js';
import { $, h } from './dom.js';
import { state } from './state.js';

let app = null;

const OPS = { eq: '=', ne: '≠', gt: '>', gte: '≥', lt: '<', lte: '≤' };

function val(v) {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(val).join(', ');
  return JSON.stringify(v);
}

export function filterText(f) {
  if (!f || typeof f !== 'object') return JSON.stringify(f);
  const [op] = Object.keys(f);
  const a = f[op];
  if (OPS[op] && Array.isArray(a)) return `${a[0]} ${OPS[op]} ${val(a[1])}`;
  switch (op) {
    case 'in': return `${a[0]} in [${val(a[1])}]`;
    case 'contains': return `${a[0]} contains ${val(a[1])}`;
    case 'exists': return `${a} exists`;
    case 'missing': return `${a} is missing`;
    case 'and': return a.map(filterText).join(' and ');
    case 'or': return `(${a.map(filterText).join(' or ')})`;
    case 'not': return `not (${filterText(a)})`;
    default: return JSON.stringify(f);
  }
}

function labelFilterText(f) {
  const [op] = Object.keys(f || {});
  const a = f[op];
  switch (op) {
    case 'label_in': return `label in ${val(a)}`;
    case 'confidence_at_least': return `confidence ≥ ${a}`;
    case 'ids': return `${a.length} chosen label${a.length === 1 ? '' : 's'}`;
    case 'and': return a.map(labelFilterText).join(', ');
    default: return JSON.stringify(f);
  }
}

/** A readable text for one stage: "ground_truth: label in circle", "take 10 (seed 51)"... */
export function stageText(stage) {
  const [kind] = Object.keys(stage || {});
  const a = stage[kind];
  switch (kind) {
    case 'match': return filterText(a);
    case 'match_tags': return `tags: ${val(a)}`;
    case 'filter_labels': return `${a.field}: ${labelFilterText(a.filter)}${a.only_matches === false ? ' (keep all samples)' : ''}`;
    case 'take': return `take ${a.n}${a.seed != null ? ` (seed ${a.seed})` : ''}`;
    case 'limit': return `limit ${a}`;
    case 'skip': return `skip ${a}`;
    case 'select': return `${a.ids.length} id${a.ids.length === 1 ? '' : 's'}${a.ordered ? ' (ordered)' : ''}`;
    case 'exclude': return `${a.ids.length} id${a.ids.length === 1 ? '' : 's'}`;
    case 'sort_by': return `sort by ${a.field} ${a.reverse ? '↓' : '↑'}`;
    default: return JSON.stringify(stage);
  }
}

export function renderViewBar() {
  const chips = $('#stage-chips');
  if (!state.view.length) {
    chips.replaceChildren(h('span', { class: 'view-empty', text: 'Whole dataset — add a stage to filter' }));
  } else {
    chips.replaceChildren(...state.view.map((st, i) => h('span', {
      class: 'stage-chip',
      title: JSON.stringify(st),
      dataset: { index: String(i), kind: Object.keys(st)[0] },
    },
    ['match', 'filter_labels', 'select', 'exclude'].includes(Object.keys(st)[0])
      ? h('span', { class: 'stage-kind', text: Object.keys(st)[0].replace('_', ' ') }) : null,
    h('span', { class: 'stage-text', text: stageText(st) }),
    h('button', {
      class: 'stage-remove', type: 'button', 'aria-label': `Remove stage ${i + 1}`, title: 'Remove this stage',
      onclick: () => app.setView(state.view.filter((_, j) => j !== i)),
    }))));
  }
  $('#view-clear').hidden = state.view.length === 0;
}

// ---------- add-stage form ----------
const KIND_UI = {
  match: { field: 'field', value: 'value', op: true, fieldPh: 'e.g. uniqueness', valuePh: 'e.g. 0.5 or cat' },
  match_tags: { field: null, value: 'tags', valuePh: 'tag1, tag2' },
  filter_labels: { field: 'label field', value: 'labels', fieldPh: 'ground_truth', valuePh: 'circle, square  or  ≥ 0.5' },
  take: { field: 'seed', value: 'n', fieldPh: 'random', valuePh: '10' },
  limit: { field: null, value: 'n', valuePh: '10' },
  sort_by: { field: 'field', value: null, reverse: true, fieldPh: 'e.g. uniqueness' },
};

/** "12" -> 12, "true" -> true, "\"12\"" -> "12", anything else stays a string. */
export function parseValue(s) {
  const t = s.trim();
  if (t === '') return '';
  if (/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return Number(t);
  if (t === 'true' || t === 'false' || t === 'null') return JSON.parse(t);
  if (/^".*"$/.test(t) || /^\[.*\]$/.test(t) || /^\{.*\}$/.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      /* keep text */
    }
  }
  return t;
}

const splitList = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

function syncFormKind() {
  const kind = $('#stage-kind').value;
  const ui = KIND_UI[kind];
  $('#stage-field-wrap').hidden = !ui.field;
  $('#stage-field-label').textContent = ui.field || '';
  $('#stage-field').placeholder = ui.fieldPh || '';
  $('#stage-op-wrap').hidden = !ui.op;
  $('#stage-value-label').textContent = ui.value || '';
  $('#stage-value').placeholder = ui.valuePh || '';
  $('#stage-value').closest('label').hidden = !ui.value;
  $('#stage-reverse-wrap').hidden = !ui.reverse;
  fillFieldOptions();
  $('#stage-form-error').textContent = '';
}

function fillFieldOptions() {
  const names = $('#stage-kind').value === 'filter_labels'
    ? state.info?.label_fields || []
    : Object.entries(state.info?.fields || {}).filter(([, t]) => t === 'json').map(([n]) => n);
  $('#stage-field-options').replaceChildren(...names.map((n) => h('option', { value: n })));
}

function buildStage() {
  const kind = $('#stage-kind').value;
  const field = $('#stage-field').value.trim();
  const raw = $('#stage-value').value;
  const need = (cond, msg) => {
    if (!cond) throw new Error(msg);
  };
  switch (kind) {
    case 'match': {
      need(field, 'Give a field name.');
      const op = $('#stage-op').value;
      const v = parseValue(raw);
      if (['gt', 'gte', 'lt', 'lte'].includes(op)) need(typeof v === 'number', 'This comparison needs a number.');
      if (op === 'exists' || op === 'missing') return { match: { [op]: field } };
      need(raw.trim() !== '', 'Give a value.');
      return { match: { [op]: [field, v] } };
    }
    case 'match_tags': {
      const tags = splitList(raw);
      need(tags.length, 'Give at least one tag.');
      return { match_tags: tags };
    }
    case 'filter_labels': {
      need(field, 'Give a label field, e.g. ground_truth.');
      const t = raw.trim();
      const conf = t.match(/^(?:>=|≥|>)\s*([\d.]+)$/);
      if (conf) return { filter_labels: { field, filter: { confidence_at_least: Number(conf[1]) }, only_matches: true } };
      const labels = splitList(t);
      need(labels.length, 'Give labels (comma-separated) or “≥ 0.5” for a confidence.');
      return { filter_labels: { field, filter: { label_in: labels }, only_matches: true } };
    }
    case 'take': {
      const n = Number(raw.trim());
      need(Number.isInteger(n) && n >= 0, 'n must be a whole number.');
      let seed = field === '' ? Math.floor(Math.random() * 1e6) : Number(field);
      need(Number.isInteger(seed) && seed >= 0, 'The seed must be a whole number.');
      seed = Math.floor(seed);
      return { take: { n, seed } };
    }
    case 'sort_by': {
      need(field, 'Give the field to sort by, e.g. uniqueness.');
      return { sort_by: { field, reverse: $('#stage-reverse').checked } };
    }
    case 'limit': {
      const n = Number(raw.trim());
      need(Number.isInteger(n) && n >= 0, 'n must be a whole number.');
      return { limit: n };
    }
    default:
      throw new Error(`Unknown stage kind ${kind}`);
  }
}

function openForm(open) {
  const form = $('#stage-form');
  form.hidden = !open;
  $('#add-stage').setAttribute('aria-expanded', open ? 'true' : 'false');
  if (open) {
    syncFormKind();
    (!$('#stage-field-wrap').hidden ? $('#stage-field') : $('#stage-value')).focus();
    refreshFields();
  }
}

/** Fields change behind the page (e.g. compute_uniqueness from the CLI): re-read them. */
async function refreshFields() {
  const name = state.dataset;
  if (!name) return;
  try {
    const info = await getDataset(name);
    if (name !== state.dataset || !info) return;
    state.info = { ...state.info, fields: info.fields, label_fields: info.label_fields };
    if (stageFormOpen()) fillFieldOptions();
  } catch {
    /* keep the names known so far */
  }
}

export const stageFormOpen = () => !$('#stage-form').hidden;
export const closeStageForm = () => openForm(false);

export function initViewBar(appApi) {
  app = appApi;
  $('#add-stage').addEventListener('click', () => openForm($('#stage-form').hidden));
  $('#stage-kind').addEventListener('change', () => {
    syncFormKind();
  });
  $('#stage-cancel').addEventListener('click', () => openForm(false));
  document.addEventListener('mousedown', (ev) => {
    if (stageFormOpen() && !ev.target.closest('#stage-form, #add-stage')) openForm(false);
  });
  $('#view-clear').addEventListener('click', () => app.setView([]));
  $('#stage-op').addEventListener('change', () => {
    const op = $('#stage-op').value;
    $('#stage-value').disabled = op === 'exists' || op === 'missing';
  });
  $('#stage-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    let stage;
    try {
      stage = buildStage();
    } catch (e) {
      $('#stage-form-error').textContent = e.message;
      return;
    }
    openForm(false);
    $('#stage-field').value = '';
    $('#stage-value').value = '';
    app.setView([...state.view, stage]);
  });
}
