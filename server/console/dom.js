// Building the page. Every value goes in as text (textContent, attributes set one by one), never
// as markup, so a job named "<img src=x onerror=...>" shows exactly those characters.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

export function shortState(state) {
  return String(state || '').replace(/^(JOB|WORKER|ATTEMPT)_STATE_/, '');
}

export function stateBadge(state) {
  const s = shortState(state);
  return el('span', { class: `state state-${s}`, text: s });
}

export function timeAgo(timestamp) {
  if (!timestamp) return '';
  const seconds = Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 129600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function percent(value) {
  return value === undefined || value === null ? '' : `${Number(value).toFixed(2)} %`;
}

export function progress(job) {
  const s = job.latestStats;
  if (!s || !Number(s.totalSteps)) return job.state === 'JOB_STATE_SUCCEEDED' ? '100 %' : '';
  return `${Math.min(100, (100 * (Number(s.step) + 1)) / Number(s.totalSteps)).toFixed(0)} %`;
}

export function isTerminal(state) {
  return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(state);
}
