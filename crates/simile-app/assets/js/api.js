// HTTP client for the simile App API (docs/app-contract.md). Every failure becomes an ApiError
// with a snake_case `kind` and a human `message`, never a stack trace or "[object Object]".

export class ApiError extends Error {
  constructor(kind, message, status = 0) {
    super(message);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = status;
  }
}

/** Turns anything thrown into an ApiError with a readable message. */
export function toApiError(e) {
  if (e instanceof ApiError) return e;
  if (e && e.name === 'AbortError') return new ApiError('aborted', 'The request was cancelled.');
  if (e instanceof TypeError) {
    return new ApiError('network', 'Could not reach the simile server. Is it still running?');
  }
  const msg = e && typeof e.message === 'string' && e.message ? e.message : 'Something went wrong.';
  return new ApiError('internal', msg);
}

async function errorFromResponse(res) {
  let text = '';
  try {
    text = await res.text();
  } catch {
    /* body unreadable: fall through to the status line */
  }
  try {
    const body = JSON.parse(text);
    const err = body && body.error;
    if (err && typeof err === 'object') {
      const kind = typeof err.kind === 'string' && err.kind ? err.kind : `http_${res.status}`;
      const message = typeof err.message === 'string' && err.message
        ? err.message
        : `The server answered ${res.status} ${res.statusText}`.trim();
      return new ApiError(kind, message, res.status);
    }
    if (typeof err === 'string' && err) return new ApiError(`http_${res.status}`, err, res.status);
  } catch {
    /* not JSON */
  }
  const kind = res.status >= 500 ? 'internal' : 'bad_request';
  const snippet = text && text.length < 200 && !/[<{]/.test(text) ? `: ${text.trim()}` : '';
  return new ApiError(kind, `The server answered ${res.status} ${res.statusText}${snippet}`.trim(), res.status);
}

async function request(method, path, body, signal) {
  let res;
  try {
    res = await fetch(path, {
      method,
      signal,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw toApiError(e);
  }
  if (!res.ok) throw await errorFromResponse(res);
  try {
    return await res.json();
  } catch {
    throw new ApiError('internal', `The server sent an unreadable answer for ${method} ${path.split('?')[0]}.`, res.status);
  }
}

const enc = encodeURIComponent;
const ds = (name) => `/api/datasets/${enc(name)}`;
const viewParam = (view) => (view && view.length ? `&view=${enc(JSON.stringify(view))}` : '');

export const listDatasets = () => request('GET', '/api/datasets');
export const getDataset = (name) => request('GET', ds(name));
export const getRuns = (name) => request('GET', `${ds(name)}/runs`);
export const getSample = (name, id) => request('GET', `${ds(name)}/samples/${enc(id)}`);

export const getSamples = (name, { offset, limit, view }, signal) =>
  request('GET', `${ds(name)}/samples?offset=${offset}&limit=${limit}${viewParam(view)}`, undefined, signal);

export const getPatches = (name, { field, offset, limit, view }, signal) =>
  request('GET', `${ds(name)}/patches?field=${enc(field)}&offset=${offset}&limit=${limit}${viewParam(view)}`, undefined, signal);

export const sortBySimilarity = (name, body, signal) => request('POST', `${ds(name)}/sort`, body, signal);

export const getDistances = (name, { brainKey, bins, view }, signal) =>
  request('GET', `${ds(name)}/distances?brain_key=${enc(brainKey)}&bins=${bins}${viewParam(view)}`, undefined, signal);

export const findDuplicates = (name, body, signal) => request('POST', `${ds(name)}/duplicates`, body, signal);

export const updateTags = (name, ids, add, remove) =>
  request('POST', `${ds(name)}/tags`, { ids, add, remove });

export const thumbUrl = (name, id) => `/thumb/${enc(id)}?dataset=${enc(name)}`;
export const mediaUrl = (name, id) => `/media/${enc(id)}?dataset=${enc(name)}`;
export const cropUrl = (name, sampleId, labelId, field) =>
  `/crop/${enc(sampleId)}/${enc(labelId)}?dataset=${enc(name)}&field=${enc(field)}`;
