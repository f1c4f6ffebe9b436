// The #error banner: data-kind = the error's kind, text = its message. Dismissible.
import { toApiError } from './api.js';
import { $ } from './dom.js';

export function showError(err) {
  const e = toApiError(err);
  if (e.kind === 'aborted') return;
  const box = $('#error');
  box.dataset.kind = e.kind;
  $('#error-message').textContent = e.message;
  box.hidden = false;
}

export function clearError() {
  const box = $('#error');
  box.hidden = true;
  box.removeAttribute('data-kind');
  $('#error-message').textContent = '';
}

export function initErrors() {
  $('#error-close').addEventListener('click', clearError);
}
