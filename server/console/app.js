// The console's router (#/jobs, #/jobs/ID, #/workers) and the token prompt.
import * as api from './api.js';
import * as jobs from './jobs.js';
import * as job from './job.js';
import * as workers from './workers.js';

const main = document.getElementById('main');
const form = document.getElementById('token-form');
const input = document.getElementById('token-input');
let page = null;

function route() {
  if (page) page.stop();
  const hash = location.hash || '#/jobs';
  const jobMatch = /^#\/jobs\/([^/]+)$/.exec(hash);
  document.getElementById('nav-jobs').classList.toggle('active', hash.startsWith('#/jobs'));
  document.getElementById('nav-workers').classList.toggle('active', hash === '#/workers');
  if (jobMatch) page = job.render(main, decodeURIComponent(jobMatch[1]));
  else if (hash === '#/workers') page = workers.render(main);
  else page = jobs.render(main);
}

// Asked once per tab: the first 401 shows the form; the token then stays in sessionStorage.
api.setUnauthorizedHandler(() => {
  document.getElementById('token-error').textContent =
      api.token() ? 'The coordinator does not know this token.' : '';
  form.hidden = false;
  input.focus();
});
form.addEventListener('submit', (event) => {
  event.preventDefault();
  api.setToken(input.value.trim());
  input.value = '';
  form.hidden = true;
  route();
});
document.getElementById('forget-token').addEventListener('click', () => {
  api.forgetToken();
  route();
});
window.addEventListener('hashchange', route);
route();
