// The live dashboard: one server-sent-events stream of the demo's guard state, rendered without a framework.
const $ = (id) => document.getElementById(id);
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '');
const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function rows(target, items, columns, emptyText) {
  target.innerHTML = items.length
    ? items.map((item) => `<tr>${columns.map((col) => col(item)).join('')}</tr>`).join('')
    : `<tr class="empty"><td colspan="${columns.length}">${emptyText}</td></tr>`;
}
const cell = (value, cls = '') => `<td class="${cls}" title="${esc(value)}">${esc(value)}</td>`;

function renderChart(memory) {
  const svg = $('chart');
  const points = memory?.points ?? [];
  if (points.length < 2) {
    svg.innerHTML = '<text x="400" y="115" fill="#8b98a7" text-anchor="middle">collecting samples…</text>';
    return;
  }
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  const max = Math.max(memory.thresholdMb * 1.05, ...points.map((p) => p.rssMb));
  const min = Math.min(...points.map((p) => p.rssMb)) * 0.9;
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * 790 + 5;
  const y = (mb) => 215 - ((mb - min) / Math.max(1, max - min)) * 210;
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.rssMb).toFixed(1)}`).join(' ');
  let fit = '';
  if (memory.regression) {
    const { startT, startMb, endT, endMb } = memory.regression;
    fit = `<line x1="${x(startT)}" y1="${y(startMb)}" x2="${x(endT)}" y2="${y(endMb)}" stroke="#d29922" stroke-width="2" stroke-dasharray="6 4"/>`;
  }
  svg.innerHTML = `
    <line x1="0" x2="800" y1="${y(memory.thresholdMb)}" y2="${y(memory.thresholdMb)}" stroke="#f85149" stroke-dasharray="3 3"/>
    <text x="795" y="${y(memory.thresholdMb) - 4}" fill="#f85149" font-size="11" text-anchor="end">${memory.thresholdMb} MB</text>
    <polyline points="${line}" fill="none" stroke="#58a6ff" stroke-width="2"/>${fit}`;
}

function render(state) {
  $('mode').textContent = state.mode;
  $('memory-status').textContent = state.memory?.status ?? '…';
  $('memory-status').className = `st-${state.memory?.status}`;
  $('pressure').textContent = state.pressure?.underPressure ? 'SHEDDING' : 'normal';
  $('rate').textContent = state.memory ? `${state.memory.growthMbPerMin.toFixed(2)} MB/min · ${state.memory.rssMb.toFixed(0)} MB` : '';
  renderChart(state.memory);
  $('det-count').textContent = `${state.detections.filter((d) => d.active).length} active`;
  rows($('detections'), state.detections, [
    (d) => cell(time(d.detectedAt)), (d) => cell(d.component), (d) => cell(d.pattern),
    (d) => cell(d.severity, `sev-${d.severity}`), (d) => cell(d.resourceId),
  ], 'no detections yet');
  rows($('sanitizations'), state.sanitizations, [
    (s) => cell(time(s.finishedAt)), (s) => cell(s.component), (s) => cell(s.outcome, `st-${s.outcome}`), (s) => cell(s.actions.join(', ')),
  ], 'nothing sanitized yet');
  $('breakers').innerHTML = state.breakers.map((b) => `<li>${esc(b.name)} <b class="st-${b.state}">${esc(b.state)}</b></li>`).join('') || '<li>none</li>';
  $('heartbeats').innerHTML = state.heartbeats.map((h) => `<li>${esc(h.name)} <b class="st-${h.state}">${esc(h.state)}</b></li>`).join('') || '<li>none</li>';
  rows($('playbooks'), state.playbooks, [
    (p) => cell(time(p.startedAt)), (p) => cell(p.playbook), (p) => cell(p.status, `st-${p.status}`), (p) => cell(p.reason ?? ''),
  ], 'no playbook runs yet');
  if (state.fleet) {
    $('fleet-card').hidden = false;
    $('fleet-count').textContent = `${state.fleet.instances.length} replica${state.fleet.instances.length === 1 ? '' : 's'}${state.fleet.degraded ? ' · database unreachable: this replica only' : ''}`;
    rows($('fleet'), state.fleet.instances, [
      (i) => cell(i.id === state.fleet.self ? `${i.id} (this one)` : i.id), (i) => cell(i.host), (i) => cell(i.pid),
      (i) => cell(i.mode), (i) => cell(i.status, `st-${i.status}`), (i) => cell(`${(i.ageMs / 1000).toFixed(1)} s ago`),
    ], 'no replicas listed');
  }
  rows($('immune'), state.immune, [
    (e) => cell(time(e.createdAt)), (e) => cell(e.severity, `st-${e.severity}`), (e) => cell(e.type), (e) => cell(e.module ?? ''), (e) => cell(e.message),
  ], 'no immune events yet');
}

function connect() {
  const source = new EventSource('/dashboard/stream');
  source.addEventListener('state', (event) => render(JSON.parse(event.data)));
  source.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'conn live'; };
  source.onerror = () => {
    $('conn').textContent = 'reconnecting…';
    $('conn').className = 'conn down';
    // EventSource gives up for good on an HTTP error (503 past the stream cap): try again after its Retry-After.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5_000);
  };
}
connect();
