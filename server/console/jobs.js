// The job list: filters by state and label, refreshes itself every few seconds.
import * as api from './api.js';
import { el, replace, stateBadge, timeAgo, percent, progress } from './dom.js';

const STATES = ['', 'QUEUED', 'RUNNING', 'RESTARTING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
const REFRESH_MS = 3000;

export function render(main) {
  const state = el('select', { id: 'filter-state' },
                   STATES.map((s) => el('option', { value: s, text: s || 'any' })));
  const label = el('input', { id: 'filter-label', placeholder: 'key=value', size: 20 });
  const status = el('p', { id: 'jobs-status', class: 'error' });
  const body = el('tbody', { id: 'jobs-body' });
  const table = el('table', { id: 'jobs' },
      el('thead', {}, el('tr', {}, ['Id', 'Name', 'State', 'Progress', 'Best k-NN', 'Restarts',
                                    'Submitter', 'Age'].map((h) => el('th', { text: h })))),
      body);
  replace(main, el('h1', { text: 'Jobs' }),
          el('div', { class: 'filters' },
             el('label', {}, 'State', state), el('label', {}, 'Label', label)),
          status, table);

  let timer = null;
  let generation = 0;
  async function refresh() {
    const mine = ++generation;
    clearTimeout(timer);
    try {
      const jobs = [];
      let pageToken = '';
      do {  // Every page: the list is for watching, not for thousands of jobs.
        const page = await api.get('jobs', { state: state.value, label: label.value.trim(),
                                             page_size: 500, page_token: pageToken });
        jobs.push(...(page.jobs || []));
        pageToken = page.nextPageToken || '';
      } while (pageToken && jobs.length < 5000);
      if (mine !== generation) return;
      replace(body, jobs.map(row));
      status.textContent = jobs.length ? '' : 'No jobs.';
    } catch (e) {
      if (mine === generation) status.textContent = `${e.field ? e.field + ': ' : ''}${e.message}`;
    }
    if (mine === generation) timer = setTimeout(refresh, REFRESH_MS);
  }
  state.addEventListener('change', refresh);
  label.addEventListener('change', refresh);
  refresh();
  return { stop() { ++generation; clearTimeout(timer); } };
}

function row(job) {
  return el('tr', { 'data-job-id': job.id },
      el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(job.id)}`, text: job.id })),
      el('td', { class: 'job-name', text: job.spec ? job.spec.name : '' }),
      el('td', {}, stateBadge(job.state)),
      el('td', { class: 'num', text: progress(job) }),
      el('td', { class: 'num', text: percent(job.bestKnnTop1) }),
      el('td', { class: 'num', text: job.restarts }),
      el('td', { text: job.submitter }),
      el('td', { text: timeAgo(job.submitTime) }));
}
