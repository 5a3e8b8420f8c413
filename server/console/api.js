// The JSON API (/api/v1/) with the token from sessionStorage. Nothing here touches the page.
const TOKEN_KEY = 'dinotrain.token';

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error : {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.field = detail.field || '';
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) { sessionStorage.setItem(TOKEN_KEY, value); }
export function forgetToken() { sessionStorage.removeItem(TOKEN_KEY); }

// Called when the server answers 401, so the page can ask for a token once.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }

function headers(extra = {}) {
  const out = { ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function check(response) {
  if (response.ok) return response;
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401) onUnauthorized();
  throw new ApiError(response.status, body);
}

export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of [].concat(value)) if (v !== undefined && v !== '') query.append(key, v);
  }
  const url = `/api/v1/${path}${query.toString() ? '?' + query : ''}`;
  const response = await check(await fetch(url, { headers: headers(), cache: 'no-store' }));
  return response.json();
}

export async function post(path, body) {
  const response = await check(await fetch(`/api/v1/${path}`, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body || {}),
  }));
  return response.json();
}

// Downloads a checkpoint through fetch (a plain link cannot carry the token) and saves it under
// the name the server gives. The whole file passes through memory once.
export async function download(jobId, checkpointId) {
  const response = await check(await fetch(
      `/api/v1/jobs/${encodeURIComponent(jobId)}/checkpoints/${encodeURIComponent(checkpointId)}/download`,
      { headers: headers() }));
  const blob = await response.blob();
  const expected = Number(response.headers.get('Content-Length'));
  if (expected && blob.size !== expected) throw new Error('download ended early');
  const match = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = match ? match[1] : `${jobId}-${checkpointId}.ckpt`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// Follows a job's server-sent events over fetch (EventSource cannot send the token). Reconnects
// with Last-Event-ID after the server asks to resume or the connection drops, until the job ends
// or stop() is called. onEvent(kind, data, id); onEnd(job).
export function followEvents(jobId, afterIndex, onEvent, onEnd) {
  let lastId = afterIndex;
  let stopped = false;
  let controller = null;
  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      let ended = false;
      try {
        const h = headers();
        if (lastId > 0) h['Last-Event-ID'] = String(lastId);
        const response = await check(await fetch(
            `/api/v1/jobs/${encodeURIComponent(jobId)}/events/stream`,
            { headers: h, signal: controller.signal, cache: 'no-store' }));
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const frame = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let kind = 'message', data = '', id = null;
            for (const line of frame.split('\n')) {
              if (line.startsWith('id: ')) id = Number(line.slice(4));
              else if (line.startsWith('event: ')) kind = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (!data) continue;
            if (id !== null) lastId = id;
            if (kind === 'end') { ended = true; onEnd(JSON.parse(data)); }
            else if (kind !== 'resume') onEvent(kind, JSON.parse(data), id);
          }
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && (e.status === 404 || e.status === 403 || e.status === 401)) return;
      }
      if (ended) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  connect();
  return { stop() { stopped = true; if (controller) controller.abort(); } };
}
