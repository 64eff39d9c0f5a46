// The wasmbatch console: one page over the same API every client uses (AWS Batch's REST-JSON
// operations, CloudWatch Logs' GetLogEvents, and the server's own GET routes), called from the
// browser. Once the server asks for signatures, every request is signed here with the key the
// user typed in (aws4fetch), so their policy applies to the console as to the CLI. Everything
// the API returns is written into the page as text, never as HTML.

import { AwsClient } from './aws4fetch.js';

const REGION = document.querySelector('meta[name="wasmbatch-region"]').content;
const STATUSES = ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED'];
const ENDED = new Set(['SUCCEEDED', 'FAILED']);
/** Jobs a page, unless the view's `size` says (1 to 100, ListJobs' limit with a filter). */
const PAGE_SIZE = 25;
const REFRESH_MS = 2000;
const KEY_ITEM = 'wasmbatch-console-key';

// ---- Requests -------------------------------------------------------------------------------

/** A refusal or failure the API answered, with AWS's error type. */
class ApiError extends Error {
  constructor(type, message, status) {
    super(type ? `${type}: ${message}` : message);
    this.type = type;
    this.status = status;
  }
}

/** One signer per service the server checks scopes for: `batch`, and `logs` for `POST /`. */
let signers = null;

function useKey(key) {
  signers = key && {
    batch: new AwsClient({ ...key, service: 'batch', region: REGION, retries: 0 }),
    logs: new AwsClient({ ...key, service: 'logs', region: REGION, retries: 0 }),
  };
  const identity = document.getElementById('identity');
  identity.replaceChildren();
  if (key) {
    const out = el('button', { type: 'button', id: 'sign-out' }, 'Sign out');
    out.addEventListener('click', () => {
      sessionStorage.removeItem(KEY_ITEM);
      useKey(null);
      askForKey(null);
    });
    identity.append(`Signed in as ${key.accessKeyId}`, out);
  }
}

/** Refusals that mean "sign (again)": no signature, or a key the server does not know. */
const SIGN_IN = new Set(['MissingAuthenticationTokenException', 'UnrecognizedClientException',
  'InvalidSignatureException', 'IncompleteSignatureException']);

async function send(service, path, init = {}) {
  const url = new URL(path, location.origin).toString();
  const response = signers ? await signers[service].fetch(url, init) : await fetch(url, init);
  if (response.ok) return response;
  let type = (response.headers.get('x-amzn-ErrorType') || '').split(':')[0];
  let message = response.statusText;
  try {
    const body = await response.json();
    message = body.message || body.Message || message;
    type = type || (body.__type || '').split('#').pop();
  } catch { /* not JSON: keep the status text */ }
  if (SIGN_IN.has(type)) askForKey(`The server refused the request: ${type}: ${message}`);
  throw new ApiError(type, message, response.status);
}

/** An AWS Batch operation: `POST /v1/<operation>` with a JSON body. */
async function batch(operation, body = {}) {
  const response = await send('batch', `/v1/${operation.toLowerCase()}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return response.json();
}

async function getJson(path) {
  return (await send('batch', path)).json();
}

// ---- Signing in -----------------------------------------------------------------------------

let signInWaiters = [];

function askForKey(refusal) {
  const form = document.getElementById('sign-in');
  const shown = document.getElementById('sign-in-refusal');
  shown.textContent = refusal || '';
  shown.hidden = !refusal;
  form.hidden = false;
  document.getElementById('view').hidden = true;
}

function keyReady() {
  return document.getElementById('sign-in').hidden
    ? Promise.resolve()
    : new Promise((resolve) => signInWaiters.push(resolve));
}

function setUpSignIn() {
  const form = document.getElementById('sign-in');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = {
      accessKeyId: form.elements['access-key-id'].value.trim(),
      secretAccessKey: form.elements['secret-access-key'].value.trim(),
    };
    // Kept for this tab only, so a reload does not ask again; closing the tab forgets it.
    sessionStorage.setItem(KEY_ITEM, JSON.stringify(key));
    form.elements['secret-access-key'].value = '';
    form.hidden = true;
    document.getElementById('view').hidden = false;
    useKey(key);
    const waiters = signInWaiters;
    signInWaiters = [];
    waiters.forEach((resolve) => resolve());
    render();
  });
  const saved = sessionStorage.getItem(KEY_ITEM);
  if (saved) useKey(JSON.parse(saved));
}

// ---- Page building --------------------------------------------------------------------------

/** An element with attributes and children; strings become text nodes, never markup. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function table(headings, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'muted' }, empty);
  const head = el('tr', {}, headings.map((h) => el('th', { class: h.number ? 'number' : null }, h.label ?? h)));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, rows));
}

function statusBadge(status) {
  return el('span', { class: `status ${status}` }, status);
}

function time(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(from, to) {
  if (!from || !to) return '';
  const ms = to - from;
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 0)} s`;
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function count(n) {
  return n === undefined || n === null ? '' : Number(n).toLocaleString('en-US');
}

function nameOf(arn) {
  return arn ? arn.slice(arn.lastIndexOf('/') + 1) : '';
}

function problem(error) {
  return el('p', { class: 'error', role: 'alert' }, error.message || String(error));
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** Runs `refresh` now and every `ms` until `signal` aborts; a failure is shown in `where`. */
async function every(ms, signal, where, refresh) {
  while (!signal.aborted) {
    try {
      await refresh();
    } catch (error) {
      if (signal.aborted) return;
      where.replaceChildren(problem(error));
      if (SIGN_IN.has(error.type)) await keyReady();
    }
    await sleep(ms, signal);
  }
}

// ---- Views ----------------------------------------------------------------------------------

/** Job queues: state, priority, jobs by status, and each share's use on a fair-share queue. */
async function queuesView(root, signal) {
  root.append(el('h1', {}, 'Job queues'));
  const body = el('div', { id: 'queues' });
  root.append(body);
  await every(REFRESH_MS, signal, body, async () => {
    const [{ jobQueues }, { jobQueues: counted }] = await Promise.all([
      batch('DescribeJobQueues', {}),
      getJson('/v1/jobcounts'),
    ]);
    const counts = new Map(counted.map((q) => [q.jobQueueArn, q.jobCounts]));
    const snapshots = await Promise.all(jobQueues.map((q) => (q.schedulingPolicyArn
      ? batch('GetJobQueueSnapshot', { jobQueue: q.jobQueueArn }).catch((e) => ({ error: e }))
      : null)));
    const rows = jobQueues
      .map((queue, i) => ({ queue, snapshot: snapshots[i] }))
      .sort((a, b) => a.queue.jobQueueName.localeCompare(b.queue.jobQueueName))
      .map(({ queue, snapshot }) => {
        const byStatus = counts.get(queue.jobQueueArn) || {};
        const link = (status) => `#/jobs?queue=${encodeURIComponent(queue.jobQueueName)}&status=${status}`;
        return el('tr', { 'data-queue': queue.jobQueueName },
          el('td', {}, el('a', { href: `#/jobs?queue=${encodeURIComponent(queue.jobQueueName)}` }, queue.jobQueueName)),
          el('td', {}, `${queue.state} / ${queue.status}`),
          el('td', { class: 'number' }, queue.priority),
          STATUSES.map((s) => el('td', { class: 'number', 'data-status': s },
            byStatus[s] ? el('a', { href: link(s) }, count(byStatus[s])) : (counts.has(queue.jobQueueArn) ? '0' : ''))),
          el('td', {}, shares(queue, snapshot)));
      });
    body.replaceChildren(table(
      ['Name', 'State / status', { label: 'Priority', number: true },
        ...STATUSES.map((s) => ({ label: s, number: true })), 'Scheduling'],
      rows, 'No job queues yet: wasmbatch queues create, or aws batch create-job-queue.'));
  });
}

function shares(queue, snapshot) {
  if (!queue.schedulingPolicyArn) return el('span', { class: 'muted' }, 'FIFO');
  const policy = `fair share (${nameOf(queue.schedulingPolicyArn)})`;
  if (!snapshot) return policy;
  if (snapshot.error) return el('span', {}, policy, el('br'), el('span', { class: 'muted' }, snapshot.error.message));
  const utilization = snapshot.queueUtilization?.fairshareUtilization;
  const top = utilization?.topCapacityUtilization || [];
  return el('div', {}, policy, el('br'),
    el('span', { class: 'muted' }, `${utilization?.activeShareCount ?? 0} active shares`),
    el('ul', { class: 'shares' }, top.map((share) => el('li', { 'data-share': share.shareIdentifier },
      `${share.shareIdentifier}: ${share.capacityUsage?.[0]?.quantity ?? 0} vCPU in use, ` +
      `${(share.usageVcpuSeconds ?? 0).toFixed(1)} vCPU·s used, ${share.runnableJobs ?? 0} runnable`))));
}

/** Jobs of a queue, newest first, by status or name prefix, a page at a time. */
async function jobsView(root, signal, params) {
  root.append(el('h1', {}, 'Jobs'));
  const { jobQueues } = await batch('DescribeJobQueues', {});
  const names = jobQueues.map((q) => q.jobQueueName).sort();
  if (names.length === 0) {
    root.append(el('p', { class: 'muted' }, 'No job queues yet.'));
    return;
  }
  const queue = names.includes(params.get('queue')) ? params.get('queue') : names[0];
  const status = STATUSES.includes(params.get('status')) ? params.get('status') : '';
  const prefix = params.get('name') || '';
  const size = Math.min(Math.max(Number.parseInt(params.get('size'), 10) || PAGE_SIZE, 1), 100);
  const form = el('form', { class: 'filters', id: 'job-filters' },
    el('label', {}, 'Job queue', el('select', { name: 'queue' },
      names.map((n) => el('option', { value: n, selected: n === queue }, n)))),
    el('label', {}, 'Status', el('select', { name: 'status' },
      el('option', { value: '' }, 'any'),
      STATUSES.map((s) => el('option', { value: s, selected: s === status }, s)))),
    el('label', {}, 'Name starts with', el('input', { name: 'name', value: prefix, placeholder: 'any' })),
    el('button', { type: 'submit' }, 'Show'));
  const go = (event) => {
    event?.preventDefault();
    const query = new URLSearchParams();
    query.set('queue', form.elements.queue.value);
    if (form.elements.status.value) query.set('status', form.elements.status.value);
    if (form.elements.name.value) query.set('name', form.elements.name.value);
    if (size !== PAGE_SIZE) query.set('size', size);
    location.hash = `#/jobs?${query}`;
  };
  form.addEventListener('submit', go);
  form.elements.queue.addEventListener('change', go);
  form.elements.status.addEventListener('change', go);
  const note = prefix && status
    ? el('p', { class: 'muted' }, 'With a name filter every status is listed, as ListJobs does.') : null;
  const list = el('div', { id: 'jobs' });
  const pager = el('div', { class: 'pager' });
  root.append(form, note ?? '', list, pager);

  // ListJobs pages newest first; `tokens[i]` is the token of page i (page 0 has none).
  const tokens = [null];
  let page = 0;
  let next = null;
  const request = () => {
    const body = { jobQueue: queue, maxResults: size };
    if (prefix) body.filters = [{ name: 'JOB_NAME', values: [`${prefix}*`] }];
    else if (status) body.jobStatus = status;
    else body.filters = [{ name: 'AFTER_CREATED_AT', values: ['0'] }];
    if (tokens[page]) body.nextToken = tokens[page];
    return body;
  };
  const show = async () => {
    const { jobSummaryList, nextToken } = await batch('ListJobs', request());
    next = nextToken || null;
    list.replaceChildren(table(
      ['Name', 'Job ID', 'Status', 'Created', 'Started', 'Stopped', 'Exit code', 'Status reason'],
      jobSummaryList.map((job) => el('tr', { 'data-job-id': job.jobId },
        el('td', {}, el('a', { href: `#/job/${encodeURIComponent(job.jobId)}` }, job.jobName)),
        el('td', { class: 'muted' }, job.jobId),
        el('td', {}, statusBadge(job.status)),
        el('td', {}, time(job.createdAt)),
        el('td', {}, time(job.startedAt)),
        el('td', {}, time(job.stoppedAt)),
        el('td', { class: 'number' }, job.container?.exitCode ?? ''),
        el('td', {}, job.statusReason || job.container?.reason || ''))),
      'No jobs here.'));
    const older = el('button', { type: 'button', id: 'older', disabled: !next }, 'Older');
    const newer = el('button', { type: 'button', id: 'newer', disabled: page === 0 }, 'Newer');
    older.addEventListener('click', () => { tokens[page + 1] = next; page += 1; show().catch((e) => list.replaceChildren(problem(e))); });
    newer.addEventListener('click', () => { page -= 1; show().catch((e) => list.replaceChildren(problem(e))); });
    pager.replaceChildren(newer, older, el('span', { class: 'muted', id: 'page' }, `page ${page + 1}`));
  };
  // The first page follows new jobs; an older page stays put while it is read.
  await every(REFRESH_MS, signal, list, async () => { if (page === 0) await show(); });
}

/** One job: what ran, each attempt's end, its array children, and its log as it grows. */
async function jobView(root, signal, id) {
  const head = el('div', { id: 'job' });
  const attempts = el('div', { id: 'attempts' });
  const children = el('div', { id: 'children' });
  const log = el('pre', { class: 'log', id: 'log', 'aria-live': 'polite' });
  const logState = el('span', { class: 'muted', id: 'log-state' });
  root.append(head, el('h2', {}, 'Attempts'), attempts, children,
    el('h2', {}, 'Log ', logState), log);
  let following = false;
  let ended = false;
  await every(1000, signal, head, async () => {
    if (ended) return;
    const { jobs } = await batch('DescribeJobs', { jobs: [id] });
    const job = jobs[0];
    if (!job) {
      head.replaceChildren(el('h1', {}, 'Job not found'), el('p', { class: 'muted' }, `No job has the ID ${id}.`));
      ended = true;
      return;
    }
    showJob(head, attempts, job);
    if (job.arrayProperties?.size) {
      const { jobSummaryList } = await batch('ListJobs', {
        arrayJobId: job.jobId, maxResults: 100, filters: [{ name: 'AFTER_CREATED_AT', values: ['0'] }],
      });
      children.replaceChildren(el('h2', {}, 'Children'), table(['Index', 'Status', 'Exit code', 'Status reason'],
        jobSummaryList.map((c) => el('tr', {},
          el('td', {}, el('a', { href: `#/job/${encodeURIComponent(c.jobId)}` }, c.arrayProperties?.index ?? c.jobId)),
          el('td', {}, statusBadge(c.status)),
          el('td', { class: 'number' }, c.container?.exitCode ?? ''),
          el('td', {}, c.statusReason || c.container?.reason || ''))), 'No children.'));
    } else if (!following) {
      following = true;
      followLog(id, log, logState, signal);
    }
    ended = ENDED.has(job.status);
  });
}

function showJob(head, attempts, job) {
  const container = job.container || {};
  const resources = (container.resourceRequirements || []).map((r) => `${r.type} ${r.value}`).join(', ');
  const summary = job.arrayProperties?.statusSummary;
  const fields = [
    ['Job ID', job.jobId],
    ['Status', statusBadge(job.status)],
    ['Status reason', job.statusReason],
    ['Job queue', nameOf(job.jobQueue)],
    ['Job definition', nameOf(job.jobDefinition)],
    ['Module', container.image],
    ['Module digest', container.imageDigest],
    ['Command', container.command ? container.command.map((c) => JSON.stringify(c)).join(' ') : undefined],
    ['Resources', resources || undefined],
    ['Exit code', container.exitCode],
    ['Reason', container.reason],
    ['Fuel consumed', count(container.fuelConsumed) || undefined],
    ['Peak memory', bytes(container.peakMemoryBytes) || undefined],
    ['Created', time(job.createdAt)],
    ['Started', time(job.startedAt) || undefined],
    ['Stopped', time(job.stoppedAt) || undefined],
    ['Array size', job.arrayProperties?.size],
    ['Children', summary ? Object.entries(summary).map(([s, n]) => `${s} ${n}`).join(', ') : undefined],
    ['ARN', job.jobArn],
  ].filter(([, value]) => value !== undefined && value !== null && value !== '');
  head.replaceChildren(
    el('h1', {}, job.jobName, ' ', statusBadge(job.status)),
    el('dl', { class: 'fields' }, fields.map(([name, value]) => [
      el('dt', {}, name), el('dd', { 'data-field': name }, value)])));
  attempts.replaceChildren(table(
    ['#', 'Started', 'Stopped', 'Took', 'Exit code', 'Reason', 'Status reason',
      { label: 'Fuel', number: true }, { label: 'Peak memory', number: true }, 'Log stream'],
    (job.attempts || []).map((a, i) => el('tr', {},
      el('td', {}, i + 1),
      el('td', {}, time(a.startedAt)),
      el('td', {}, time(a.stoppedAt)),
      el('td', {}, duration(a.startedAt, a.stoppedAt)),
      el('td', { class: 'number' }, a.container?.exitCode ?? ''),
      el('td', {}, a.container?.reason || ''),
      el('td', {}, a.statusReason || ''),
      el('td', { class: 'number' }, count(a.container?.fuelConsumed)),
      el('td', { class: 'number' }, bytes(a.container?.peakMemoryBytes)),
      el('td', { class: 'muted' }, a.container?.logStreamName || ''))),
    'No attempt has ended yet.'));
}

/** Streams `GET /v1/jobs/{id}/logs?follow=true` (every attempt's lines as the guest writes
 * them, ending with the job) into `log`. */
async function followLog(id, log, state, signal) {
  state.textContent = '(following)';
  try {
    const response = await send('batch', `/v1/jobs/${encodeURIComponent(id)}/logs?follow=true`, { signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(value);
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
    state.textContent = '(the job has ended)';
  } catch (error) {
    if (!signal.aborted) state.textContent = `(stopped: ${error.message})`;
  }
}

/** Compute environments, and in cluster mode the workers that serve them. */
async function environmentsView(root, signal) {
  root.append(el('h1', {}, 'Compute environments'));
  const environments = el('div', { id: 'environments' });
  const workers = el('div', { id: 'workers' });
  root.append(environments, el('h2', {}, 'Workers'), workers);
  await every(REFRESH_MS, signal, environments, async () => {
    const [{ computeEnvironments }, listed] = await Promise.all([
      batch('DescribeComputeEnvironments', {}),
      getJson('/v1/workers').catch((error) => ({ error })),
    ]);
    environments.replaceChildren(table(
      ['Name', 'Type', 'State / status', 'Capacity', 'Status reason'],
      computeEnvironments
        .sort((a, b) => a.computeEnvironmentName.localeCompare(b.computeEnvironmentName))
        .map((e) => el('tr', { 'data-environment': e.computeEnvironmentName },
          el('td', {}, e.computeEnvironmentName),
          el('td', {}, e.type + (e.computeResources?.type ? ` (${e.computeResources.type})` : '')),
          el('td', {}, `${e.state} / ${e.status}`),
          el('td', { 'data-field': 'capacity' }, capacity(e)),
          el('td', { class: 'muted' }, e.statusReason || ''))),
      'No compute environments yet.'));
    if (listed.error) {
      workers.replaceChildren(problem(listed.error));
      return;
    }
    workers.replaceChildren(table(
      ['Worker', 'Compute environment', 'Host', { label: 'vCPUs in use', number: true },
        { label: 'Memory', number: true }, { label: 'Attempts', number: true }, 'Last heartbeat'],
      listed.workers.map((w) => el('tr', {},
        el('td', {}, w.name),
        el('td', {}, w.computeEnvironment),
        el('td', {}, w.host),
        el('td', { class: 'number' }, `${w.usedVcpus} of ${w.vcpus}`),
        el('td', { class: 'number' }, `${count(w.memoryMib)} MiB`),
        el('td', { class: 'number' }, w.runningAttempts),
        el('td', {}, time(w.lastHeartbeatAt)))),
      'No remote workers: every job runs in this server (cluster mode adds workers).'));
  });
}

/** A managed environment's vCPUs; an unmanaged one's, as its live workers bring them. */
function capacity(environment) {
  const live = environment.liveCapacity;
  if (live) {
    return `${live.workers} workers: ${live.usedVcpus} of ${live.vcpus} vCPUs in use, ` +
      `${count(live.memoryMib)} MiB`;
  }
  const most = environment.computeResources?.maxvCpus ?? environment.unmanagedvCpus;
  return most === undefined ? '' : `${most} vCPUs`;
}

// ---- Throughput, from the event stream ------------------------------------------------------

const WINDOW_S = 60;
/** Jobs ended per second, by second (epoch s) → {succeeded, failed}. */
const ends = new Map();

/** Reads `GET /v1/events` as Server-Sent Events through a (signed) fetch, since EventSource
 * cannot sign; on a break it goes on after the last event it saw. */
async function followEvents() {
  const state = document.getElementById('events-state');
  let last = null;
  for (;;) {
    await keyReady();
    try {
      const query = last === null ? '' : `?after=${last}`;
      const response = await send('batch', `/v1/events${query}`, { headers: { accept: 'text/event-stream' } });
      state.textContent = 'live';
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = sseEvent(block);
          if (id !== null) last = id;
        }
      }
      state.textContent = 'reconnecting';
    } catch (error) {
      state.textContent = `events: ${error.message}`;
    }
    await sleep(REFRESH_MS);
  }
}

/** Takes one SSE block into the chart; returns its id, if it had one. */
function sseEvent(block) {
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('id:')) id = line.slice(3).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (data.length === 0) return id;
  try {
    const event = JSON.parse(data.join('\n'));
    const status = event.detail?.status;
    // An array's parent ends when its children have; they are the work, as in the counts.
    const parent = event.detail?.arrayProperties?.size !== undefined;
    if (ENDED.has(status) && !parent) {
      const second = Math.floor(Date.parse(event.time) / 1000) || Math.floor(Date.now() / 1000);
      const slot = ends.get(second) || { succeeded: 0, failed: 0 };
      slot[status === 'SUCCEEDED' ? 'succeeded' : 'failed'] += 1;
      ends.set(second, slot);
    }
  } catch { /* not an event of ours: skip it */ }
  return id;
}

function drawThroughput() {
  const svg = document.getElementById('throughput-chart');
  const now = Math.floor(Date.now() / 1000);
  for (const second of ends.keys()) if (second <= now - WINDOW_S) ends.delete(second);
  let most = 0;
  let succeeded = 0;
  let failed = 0;
  for (const slot of ends.values()) {
    most = Math.max(most, slot.succeeded + slot.failed);
    succeeded += slot.succeeded;
    failed += slot.failed;
  }
  const width = 600 / WINDOW_S;
  const bars = [];
  const ns = 'http://www.w3.org/2000/svg';
  const rect = (x, y, h, kind) => {
    const r = document.createElementNS(ns, 'rect');
    r.setAttribute('x', x); r.setAttribute('y', y);
    r.setAttribute('width', Math.max(width - 1, 1)); r.setAttribute('height', h);
    r.setAttribute('class', kind);
    return r;
  };
  for (let i = 0; i < WINDOW_S; i++) {
    const slot = ends.get(now - WINDOW_S + 1 + i);
    if (!slot) continue;
    const ok = (slot.succeeded / Math.max(most, 1)) * 76;
    const bad = (slot.failed / Math.max(most, 1)) * 76;
    bars.push(rect(i * width, 80 - ok, ok, 'succeeded'), rect(i * width, 80 - ok - bad, bad, 'failed'));
  }
  const axis = document.createElementNS(ns, 'line');
  axis.setAttribute('x1', 0); axis.setAttribute('x2', 600);
  axis.setAttribute('y1', 79.5); axis.setAttribute('y2', 79.5);
  axis.setAttribute('class', 'axis');
  svg.replaceChildren(axis, ...bars);
  const total = document.getElementById('throughput-total');
  total.textContent = `${succeeded + failed} finished (${succeeded} succeeded, ${failed} failed), at most ${most} in a second`;
  total.dataset.succeeded = succeeded;
  total.dataset.failed = failed;
}

// ---- Routing --------------------------------------------------------------------------------

let current = null;

function render() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const [path, query] = (location.hash.slice(1) || '/queues').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  const view = document.getElementById('view');
  view.replaceChildren();
  const name = parts[0] || 'queues';
  for (const link of document.querySelectorAll('header nav a')) {
    link.classList.toggle('current', link.dataset.view === name || (name === 'job' && link.dataset.view === 'jobs'));
  }
  const views = {
    queues: () => queuesView(view, controller.signal),
    jobs: () => jobsView(view, controller.signal, params),
    job: () => jobView(view, controller.signal, decodeURIComponent(parts[1] || '')),
    environments: () => environmentsView(view, controller.signal),
  };
  const show = views[name] || views.queues;
  show().catch((error) => { if (!controller.signal.aborted) view.append(problem(error)); });
}

setUpSignIn();
window.addEventListener('hashchange', render);
render();
followEvents();
drawThroughput();
setInterval(drawThroughput, 1000);
