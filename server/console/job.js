// One job: summary, collapse warnings, live charts of every statistic, attempts, checkpoints,
// event log, the spec with its defaults, and cancel. Live through the job's event stream.
import * as api from './api.js';
import { el, replace, stateBadge, timeAgo, bytes, percent, progress, isTerminal } from './dom.js';

// StepStats series against step (names as in GetJobMetrics), then k-NN against epoch.
const SERIES = ['loss', 'lr', 'teacher_temp', 'teacher_entropy', 'batch_mean_entropy', 'kl',
                'center_norm', 'images_per_second', 'weight_decay', 'teacher_momentum',
                'data_wait_fraction'];
const CAMEL = (name) => name.replace(/_([a-z])/g, (m, c) => c.toUpperCase());
const EVENT_LOG_SIZE = 300;

export function render(main, jobId) {
  const title = el('h1', { id: 'job-title' });
  const collapse = el('div', { id: 'collapse-banner', class: 'collapse', role: 'alert', hidden: true });
  const summary = el('dl', { class: 'summary', id: 'job-summary' });
  const cancelError = el('p', { id: 'cancel-error', class: 'error' });
  const cancel = el('button', { type: 'button', id: 'cancel-job', class: 'danger', hidden: true,
                                text: 'Cancel job' });
  const chartsBox = el('div', { class: 'charts', id: 'charts' });
  const attempts = el('tbody', { id: 'attempts-body' });
  const checkpoints = el('tbody', { id: 'checkpoints-body' });
  const downloadStatus = el('p', { id: 'download-status' });
  const events = el('div', { class: 'events', id: 'event-log' });
  const spec = el('tbody', { id: 'spec-body' });
  const status = el('p', { id: 'job-status', class: 'error' });
  replace(main, title, status, collapse, summary, cancel, cancelError,
          el('h2', { text: 'Training statistics' }), chartsBox,
          el('h2', { text: 'Attempts' }),
          el('table', { id: 'attempts' }, head(['#', 'State', 'Workers', 'Started', 'Ended',
                                                'Failure', 'Resumed from']), attempts),
          el('h2', { text: 'Checkpoints' }),
          el('table', { id: 'checkpoints' }, head(['Id', 'Attempt', 'Step', 'Epoch', 'Size', 'k-NN',
                                                   'Loss', 'Final', 'Created', '']), checkpoints),
          downloadStatus,
          el('h2', { text: 'Events' }), events,
          el('h2', { text: 'Spec (with defaults)' }), el('table', { class: 'spec' }, spec));

  const charts = new Map();
  for (const name of SERIES) charts.set(name, makeChart(chartsBox, name, 'step'));
  // Few evaluations (often one, at the end): drawn as points, which a line alone would hide.
  charts.set('knn_top1', makeChart(chartsBox, 'knn_top1', 'epoch', 3));
  let live = true;
  let stream = null;
  let timer = null;
  let job = null;
  let checkpointList = [];

  async function loadJob() {
    try {
      job = await api.get(`jobs/${encodeURIComponent(jobId)}`);
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    if (!live) return;
    status.textContent = '';
    title.textContent = `${job.spec.name} (${job.id})`;
    renderSummary(summary, job);
    renderCollapse(collapse, job);
    cancel.hidden = isTerminal(job.state);
    replace(attempts, (job.attempts || []).map(attemptRow));
    if (!spec.firstChild) replace(spec, flatten(job.spec).map(([k, v]) =>
        el('tr', {}, el('td', { text: k }), el('td', { text: v }))));
  }
  async function loadMetrics() {
    try {
      const m = await api.get(`jobs/${encodeURIComponent(jobId)}/metrics`, { max_points: 5000 });
      if (!live) return;
      const byName = new Map((m.series || []).map((s) => [s.name, s.points || []]));
      for (const name of SERIES) {
        setPoints(charts.get(name), (byName.get(name) || []).map((p) =>
            ({ x: Number(p.step), y: p.value })));
      }
      // k-NN is evaluated at checkpoints: their epoch (epochs completed) is its x; the step's
      // epoch from the statistics otherwise.
      const epochOf = new Map((byName.get('epoch') || []).map((p) => [Number(p.step), p.value]));
      for (const c of checkpointList) epochOf.set(Number(c.step), Number(c.epoch));
      const epochSteps = [...epochOf.keys()].sort((a, b) => a - b);
      const epochAt = (step) => {
        let best = step;
        for (const s of epochSteps) if (s <= step) best = epochOf.get(s);
        return best;
      };
      setPoints(charts.get('knn_top1'), (byName.get('knn_top1') || []).map((p) =>
          ({ x: epochAt(Number(p.step)), y: p.value })));
    } catch (e) { status.textContent = e.message; }
  }
  async function loadCheckpoints() {
    try {
      const list = await api.get(`jobs/${encodeURIComponent(jobId)}/checkpoints`);
      if (!live) return;
      checkpointList = list.checkpoints || [];
      replace(checkpoints, (list.checkpoints || []).map((c) => el('tr', { 'data-checkpoint-id': c.id },
          el('td', { text: c.id }), el('td', { class: 'num', text: c.attempt }),
          el('td', { class: 'num', text: c.step }), el('td', { class: 'num', text: c.epoch }),
          el('td', { class: 'num', text: bytes(c.sizeBytes) }),
          el('td', { class: 'num', text: percent(c.knnTop1) }),
          el('td', { class: 'num', text: Number(c.loss).toFixed(4) }),
          el('td', { text: c.isFinal ? 'yes' : '' }), el('td', { text: timeAgo(c.createTime) }),
          el('td', {}, el('button', { type: 'button', class: 'download', text: 'Download',
                                      'data-checkpoint-id': c.id,
                                      onclick: () => startDownload(c.id) })))));
    } catch (e) { status.textContent = e.message; }
  }
  async function startDownload(checkpointId) {
    downloadStatus.textContent = `Downloading ${checkpointId}…`;
    try {
      await api.download(jobId, checkpointId);
      downloadStatus.textContent = `Downloaded ${checkpointId}.`;
    } catch (e) { downloadStatus.textContent = `Download of ${checkpointId} failed: ${e.message}`; }
  }

  function onEvent(kind, event) {
    appendEvent(events, event, kind);
    if (kind === 'progress') {
      const s = event.progress;
      for (const name of SERIES) addPoint(charts.get(name), Number(s.step), s[CAMEL(name)]);
      if (job) { job.latestStats = s; renderSummary(summary, job); }
    } else if (kind === 'checkpoint') {
      loadCheckpoints().then(loadMetrics);
      loadJob();
    } else {
      loadJob();
    }
  }

  cancel.addEventListener('click', async () => {
    cancelError.textContent = '';
    try {
      await api.post(`jobs/${encodeURIComponent(jobId)}/cancel`, { reason: 'cancelled from the console' });
    } catch (e) {
      cancelError.textContent = `Cannot cancel: ${e.message}`;
    }
    loadJob();
  });

  (async () => {
    await loadJob();
    await loadCheckpoints();
    await loadMetrics();
    if (!live || !job) return;
    const from = Math.max(0, Number(job.lastEventIndex || 0) - EVENT_LOG_SIZE);
    stream = api.followEvents(jobId, from, onEvent, () => {
      loadJob(); loadCheckpoints().then(loadMetrics);
    });
    const poll = async () => {  // Fallback, and queued_reason is not an event.
      await loadJob();
      if (live) timer = setTimeout(poll, 5000);
    };
    timer = setTimeout(poll, 5000);
  })();
  return { stop() { live = false; clearTimeout(timer); if (stream) stream.stop();
                    for (const c of charts.values()) c.chart.destroy(); } };
}

function head(names) { return el('thead', {}, el('tr', {}, names.map((n) => el('th', { text: n })))); }

function renderSummary(summary, job) {
  const rows = [
    ['State', stateBadge(job.state)], ['Message', job.message], ['Waiting because', job.queuedReason],
    ['Progress', progress(job)],
    ['Step', job.latestStats ? `${job.latestStats.step} / ${job.latestStats.totalSteps}` : ''],
    ['Best k-NN top-1', percent(job.bestKnnTop1)], ['Latest k-NN top-1', percent(job.latestKnnTop1)],
    ['Restarts', job.restarts], ['Preemptions', job.preemptions], ['Submitter', job.submitter],
    ['Submitted', job.submitTime ? `${job.submitTime} (${timeAgo(job.submitTime)} ago)` : ''],
    ['Started', job.startTime], ['Ended', job.endTime],
    ['Failure', job.failureReason === 'FAILURE_REASON_UNSPECIFIED' ? '' : job.failureReason],
  ];
  replace(summary, rows.filter(([, v]) => v !== '' && v !== undefined && v !== null).map(([k, v]) =>
      [el('dt', { text: k }), el('dd', { id: `job-${k.toLowerCase().replace(/[^a-z]+/g, '-')}` }, v)]));
}

function renderCollapse(banner, job) {
  const warnings = job.collapseWarnings || [];
  banner.hidden = !job.collapseFlagged && warnings.length === 0;
  replace(banner, el('span', { text: `Collapse warning: ${warnings.length} report(s) look like ` +
                                     'representation collapse' }),
          el('ul', {}, warnings.slice(-10).map((w) => el('li', {
            text: `step ${w.step}: ${w.metric} = ${Number(w.value).toPrecision(4)} ` +
                  `(threshold ${w.threshold}, ${w.consecutiveReports} reports in a row)` }))));
}

function attemptRow(a) {
  return el('tr', {},
      el('td', { class: 'num', text: a.number }), el('td', {}, stateBadge(a.state)),
      el('td', { text: (a.ranks || []).map((r) => `${r.rank}: ${r.workerName || ''} ${r.workerId}`).join(', ') }),
      el('td', { text: a.startTime || '' }), el('td', { text: a.endTime || '' }),
      el('td', { text: a.failureReason === 'FAILURE_REASON_UNSPECIFIED' ? '' :
                       `${a.failureReason}: ${a.failureMessage}` }),
      el('td', { text: a.resumeCheckpointId ? `${a.resumeCheckpointId} (step ${a.resumeStep})` : '' }));
}

function appendEvent(log, event, kind) {
  let text = `#${event.index} ${event.time || ''} ${kind}`;
  if (event.stateChange) {
    const c = event.stateChange;
    text += ` ${c.fromState} -> ${c.toState} attempt ${c.attempt} ${c.message || ''}`;
  } else if (event.progress) {
    text += ` step ${event.progress.step} loss ${Number(event.progress.loss).toFixed(4)}`;
  } else if (event.checkpoint) {
    text += ` ${event.checkpoint.id} step ${event.checkpoint.step}`;
  } else if (event.collapseWarning) {
    text += ` ${event.collapseWarning.metric} = ${event.collapseWarning.value}`;
  }
  log.append(el('div', { class: `event event-${kind}`, text }));
  while (log.childElementCount > EVENT_LOG_SIZE) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function flatten(value, prefix = '', out = []) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, Array.isArray(value) ? JSON.stringify(value) : String(value)]);
  }
  return out;
}

function makeChart(box, name, xName, pointRadius = 0) {
  const canvas = el('canvas', { id: `chart-${name}` });
  const card = el('div', { class: 'chart', id: `chart-card-${name}`, 'data-points': 0 },
                  el('h3', { text: `${name} / ${xName}` }), el('div', { class: 'frame' }, canvas));
  box.append(card);
  const chart = new window.Chart(canvas, {
    type: 'line',
    data: { datasets: [{ label: name, data: [], borderWidth: 1.5, pointRadius,
                         borderColor: '#2f5fb3' }] },
    options: { animation: false, parsing: false, maintainAspectRatio: false,
               plugins: { legend: { display: false } },
               scales: { x: { type: 'linear', title: { display: true, text: xName } } } },
  });
  return { chart, card, last: -Infinity };
}

function setPoints(c, points) {
  c.chart.data.datasets[0].data = points;
  c.last = points.length ? points[points.length - 1].x : -Infinity;
  c.card.setAttribute('data-points', points.length);
  c.chart.update('none');
}

function addPoint(c, x, y) {
  if (y === undefined || !(x > c.last)) return;
  c.chart.data.datasets[0].data.push({ x, y: Number(y) });
  c.last = x;
  c.card.setAttribute('data-points', c.chart.data.datasets[0].data.length);
  c.chart.update('none');
}
