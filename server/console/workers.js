// The worker registry, refreshed every few seconds.
import * as api from './api.js';
import { el, replace, stateBadge, timeAgo, bytes } from './dom.js';

export function render(main) {
  const dead = el('input', { type: 'checkbox', id: 'include-dead' });
  const status = el('p', { class: 'error' });
  const body = el('tbody', { id: 'workers-body' });
  replace(main, el('h1', { text: 'Workers' }),
          el('div', { class: 'filters' }, el('label', {}, 'Include dead', dead)), status,
          el('table', { id: 'workers' },
             el('thead', {}, el('tr', {}, ['Id', 'Name', 'Host', 'Device', 'Memory', 'Threads',
                                           'State', 'Job', 'Rank', 'Last heartbeat', 'Version']
                                              .map((h) => el('th', { text: h })))),
             body));
  let timer = null;
  let live = true;
  async function refresh() {
    clearTimeout(timer);
    try {
      const list = await api.get('workers', { include_dead: dead.checked ? 'true' : '' });
      if (!live) return;
      replace(body, (list.workers || []).map((w) => el('tr', {},
          el('td', { text: w.id }), el('td', { text: w.name }), el('td', { text: w.hostname }),
          el('td', { text: w.device }), el('td', { class: 'num', text: bytes(w.memoryBytes) }),
          el('td', { class: 'num', text: w.threads }), el('td', {}, stateBadge(w.state)),
          el('td', {}, w.jobId ? el('a', { href: `#/jobs/${encodeURIComponent(w.jobId)}`,
                                           text: w.jobId }) : ''),
          el('td', { class: 'num', text: w.jobId ? w.rank : '' }),
          el('td', { text: timeAgo(w.lastHeartbeat) }), el('td', { text: w.version }))));
      status.textContent = (list.workers || []).length ? '' : 'No workers.';
    } catch (e) {
      if (live) status.textContent = e.message;
    }
    if (live) timer = setTimeout(refresh, 3000);
  }
  dead.addEventListener('change', refresh);
  refresh();
  return { stop() { live = false; clearTimeout(timer); } };
}
