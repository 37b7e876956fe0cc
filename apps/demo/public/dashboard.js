// The live dashboard: one server-sent-events stream of the demo's guard state, rendered without a framework.
// Rows are keyed and updated in place (a cell is written only when its text changes), so nothing flashes.
const $ = (id) => document.getElementById(id);
// 'sv-SE' formats as ISO-like "2026-12-01 17:45:03" in the browser's time zone.
const dateTime = (ms) => (ms ? new Date(ms).toLocaleString('sv-SE') : '');
const clockTime = (ms) => new Date(ms).toLocaleTimeString('sv-SE');
const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
let serverSkewMs = 0;

function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
const age = (ms) => duration(Date.now() + serverSkewMs - ms);

function setText(el, text, cls) {
  const value = String(text ?? '');
  if (el.textContent !== value) el.textContent = value;
  if (cls !== undefined && el.className !== cls) el.className = cls;
}

/**
 * Keeps `tbody` in step with `items`: one <tr> per key, cells written only when they change, rows moved only when
 * their place changes. `cells(item)` returns [text, class?] pairs. `extra(item)` may return a detail row's HTML.
 */
function syncRows(tbody, items, key, cells, { empty = 'nothing yet', onClick, extra } = {}) {
  const rows = tbody.__rows ?? (tbody.__rows = new Map());
  const wanted = new Set();
  let cursor = tbody.firstChild;
  const place = (tr) => {
    if (cursor === tr) cursor = cursor.nextSibling;
    else tbody.insertBefore(tr, cursor);
  };
  for (const item of items) {
    const id = String(key(item));
    wanted.add(id);
    let tr = rows.get(id);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.key = id;
      if (onClick) {
        tr.classList.add('clickable');
        tr.addEventListener('click', () => onClick(id));
      }
      rows.set(id, tr);
    }
    const values = cells(item);
    while (tr.children.length < values.length) tr.appendChild(document.createElement('td'));
    values.forEach(([text, cls = ''], i) => {
      setText(tr.children[i], text, cls);
      if (tr.children[i].title !== String(text ?? '')) tr.children[i].title = String(text ?? '');
    });
    place(tr);
    const detailKey = `${id}::detail`;
    const html = extra?.(item);
    if (html) {
      wanted.add(detailKey);
      let detail = rows.get(detailKey);
      if (!detail) {
        detail = document.createElement('tr');
        detail.className = 'detail';
        detail.innerHTML = `<td colspan="${values.length}"></td>`;
        rows.set(detailKey, detail);
      }
      if (detail.__html !== html) {
        detail.firstChild.innerHTML = html;
        detail.__html = html;
      }
      place(detail);
    }
  }
  for (const [id, tr] of rows) {
    if (!wanted.has(id)) {
      tr.remove();
      rows.delete(id);
    }
  }
  let placeholder = tbody.querySelector('tr.empty');
  if (items.length === 0 && !placeholder) {
    placeholder = document.createElement('tr');
    placeholder.className = 'empty';
    placeholder.innerHTML = `<td colspan="${tbody.closest('table').querySelectorAll('th').length}">${esc(empty)}</td>`;
    tbody.appendChild(placeholder);
  } else if (items.length > 0 && placeholder) placeholder.remove();
}

function niceStep(range, ticks) {
  const raw = range / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const n = raw / power;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * power;
}
const fmtNumber = (v) => (Math.abs(v) >= 1000 ? `${Math.round(v / 100) / 10}k` : Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 2 : 1));

/**
 * A line chart with a time axis (clock times) and a y axis in the series' unit. The y range follows the data (with
 * `floor` as its lowest top, so an idle 0.3 % does not fill the chart); a threshold is drawn only when it is near.
 */
function lineChart(svg, points, series, { unit, floor = 1, zero = true, threshold } = {}) {
  const W = 600, H = 170, L = 46, R = 8, T = 22, B = 22;
  const used = series.map((s) => ({ ...s, values: points.map((p) => [p.t, s.value(p)]).filter(([, v]) => v !== null && v !== undefined) }));
  const all = used.flatMap((s) => s.values.map(([, v]) => v));
  if (points.length < 2 || all.length === 0) {
    svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" class="muted" text-anchor="middle">collecting samples…</text>`;
    return;
  }
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  let lo = zero ? 0 : Math.min(...all);
  let hi = Math.max(...all, zero ? floor : Math.min(...all) + floor);
  const near = threshold !== undefined && threshold <= hi * 1.5;
  if (near) hi = Math.max(hi, threshold);
  if (!zero) {
    const pad = (hi - lo) * 0.1 || 1;
    lo = Math.max(0, lo - pad);
    hi += pad;
  }
  const step = niceStep(hi - lo || 1, 4);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / Math.max(1e-9, hi - lo)) * (H - T - B);
  let out = '';
  for (let v = lo; v <= hi + step / 2; v += step) {
    out += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${L - 4}" y="${y(v) + 4}" class="tick" text-anchor="end">${fmtNumber(Math.round(v * 1000) / 1000)}</text>`;
  }
  const span = t1 - t0;
  const tStep = [5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3].find((s) => span / s <= 5) ?? 900e3;
  for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
    if (x(t) < L + 24 || x(t) > W - R - 24) continue; // a label cut by the edge helps nobody
    out += `<line x1="${x(t)}" x2="${x(t)}" y1="${T}" y2="${H - B}" class="grid"/><text x="${x(t)}" y="${H - 6}" class="tick" text-anchor="middle">${clockTime(t)}</text>`;
  }
  out += `<text x="4" y="13" class="unit">${esc(unit)}</text>`;
  if (near) out += `<line x1="${L}" x2="${W - R}" y1="${y(threshold)}" y2="${y(threshold)}" class="threshold"/><text x="${W - R - 2}" y="${y(threshold) - 3}" class="threshold-label" text-anchor="end">threshold ${fmtNumber(threshold)} ${esc(unit)}</text>`;
  else if (threshold !== undefined) out += `<text x="${W - R - 2}" y="13" class="threshold-label" text-anchor="end">threshold ${fmtNumber(threshold)} ${esc(unit)} (off scale)</text>`;
  for (const s of used) {
    const path = s.values.map(([t, v], i) => `${i === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    out += `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`;
  }
  const legend = used.map((s, i) => `<text x="${L + 6 + i * 110}" y="13" class="legend" fill="${s.color}">■ ${esc(s.name)}</text>`).join('');
  svg.innerHTML = out + legend;
}

const COLORS = { blue: '#58a6ff', orange: '#d29922', green: '#3fb950', red: '#f85149', purple: '#bc8cff' };
const expanded = { detections: new Set(), playbooks: new Set() };
let lastState;

function toggle(set, id) {
  if (set.has(id)) set.delete(id);
  else set.add(id);
  if (lastState) render(lastState);
}

function renderMemory(state) {
  const m = state.memory;
  const status = m?.status ?? '…';
  setText($('memory-status'), status, `st-${status}`);
  setText($('memory-reasons'), m?.reasons?.join('; ') ?? '');
  setText($('rss'), m ? `${m.rssMb} MB of ${m.thresholdMb} MB` : '…');
  setText($('heap'), m ? `${m.heapUsedMb} MB` : '…');
  const leak = m?.leak;
  setText($('leak-rate'), leak ? `${leak.slopeMbPerMin.toFixed(2)} MB/min${leak.detected ? ' · LEAK' : ''}` : '…', leak?.detected ? 'st-critical' : '');
  setText($('leak-fit'), leak ? `R² ${leak.r2.toFixed(2)} over ${leak.samples} samples${leak.r2 < leak.minR2 ? ' (noise, not a trend)' : ''}` : '…');
  setText($('ttt'), m?.timeToThresholdMs ? duration(m.timeToThresholdMs) : 'not growing');
  setText($('cache'), m ? `${m.cacheEntries} of ${m.cacheThreshold}` : '…', m && m.cacheEntries >= m.cacheThreshold ? 'st-critical' : '');
  const series = state.series;
  lineChart($('chart-memory'), series, [
    { name: 'RSS', color: COLORS.blue, value: (p) => p.rssMb },
    { name: 'heap used', color: COLORS.orange, value: (p) => p.heapUsedMb },
  ], { unit: 'MB', zero: false, floor: 20, threshold: m?.thresholdMb });
  lineChart($('chart-cache'), series, [{ name: 'entries', color: COLORS.purple, value: (p) => p.cacheEntries }], { unit: 'entries', floor: 10, threshold: m?.cacheThreshold });
}

function renderRuntime(state) {
  const s = state.series;
  lineChart($('chart-loop'), s, [
    { name: 'p99', color: COLORS.red, value: (p) => p.loopDelayP99Ms },
    { name: 'mean', color: COLORS.blue, value: (p) => p.loopDelayMeanMs },
  ], { unit: 'ms', floor: 20 });
  lineChart($('chart-cpu'), s, [
    { name: 'process CPU', color: COLORS.orange, value: (p) => p.cpuPercent },
    { name: 'service CPU', color: COLORS.red, value: (p) => p.serviceCpuPercent },
    { name: 'loop util.', color: COLORS.green, value: (p) => p.loopUtilizationPercent },
  ], { unit: '%', floor: 10 });
  lineChart($('chart-rate'), s, [{ name: 'req/s', color: COLORS.blue, value: (p) => p.requestsPerSec }], { unit: 'req/s', floor: 1 });
  lineChart($('chart-p95'), s, [{ name: 'p95', color: COLORS.orange, value: (p) => p.p95Ms }], { unit: 'ms', floor: 10 });
  lineChart($('chart-errors'), s, [{ name: '5xx', color: COLORS.red, value: (p) => p.errorPercent }], { unit: '%', floor: 5 });
  const levels = $('pressure-levels');
  const html = state.pressure.levels.map((l) => `<li>${esc(l.resource)} <b class="${l.alarm ? 'st-critical' : 'st-healthy'}">${l.percent === undefined ? '—' : `${l.percent.toFixed(0)} %`}${l.alarm ? ' ALARM' : ''}</b></li>`).join('') || '<li>no samples</li>';
  if (levels.__html !== html) levels.innerHTML = levels.__html = html;
}

function frames(d) {
  const source = d.source?.length ? `<ol class="frames">${d.source.map((f) => `<li><code>${esc(f)}</code></li>`).join('')}</ol>` : '<p class="muted">no source frames recorded for this detection</p>';
  const details = Object.keys(d.details ?? {}).length ? `<pre>${esc(JSON.stringify(d.details, null, 2))}</pre>` : '';
  return `<p><b>${esc(d.message)}</b> <span class="muted">${esc(d.id)} · ${d.origin === 'store' ? 'from the immune log' : 'live'}${d.clearedAt ? ` · cleared ${esc(dateTime(d.clearedAt))}` : ''}</span></p>${source}${details}`;
}

function renderDetections(state) {
  const select = $('filter-component');
  const components = [...new Set(state.detections.map((d) => d.component))].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  for (const c of components) if (!have.includes(c)) select.add(Object.assign(document.createElement('option'), { value: c, textContent: c }));
  const fc = select.value, fs = $('filter-severity').value, fst = $('filter-state').value;
  const shown = state.detections.filter((d) => (!fc || d.component === fc) && (!fs || d.severity === fs) && (!fst || d.state === fst));
  const active = state.detections.filter((d) => d.state === 'active').length;
  setText($('det-active'), String(active), active ? 'st-critical' : 'st-healthy');
  setText($('det-count'), `${active} active · ${state.detections.length} recent${shown.length !== state.detections.length ? ` · ${shown.length} shown` : ''}`);
  syncRows($('detections'), shown, (d) => d.id, (d) => [
    [dateTime(d.detectedAt)], [age(d.detectedAt)], [d.state, `state-${d.state}`], [d.component], [d.pattern], [d.severity, `sev-${d.severity}`], [d.resourceId],
  ], { empty: 'no detections', onClick: (id) => toggle(expanded.detections, id), extra: (d) => (expanded.detections.has(d.id) ? frames(d) : '') });
}

function steps(run) {
  const list = run.steps ?? [];
  if (!list.length) return '<p class="muted">no steps reported yet</p>';
  const rows = list.map((s) => `<li><b>${esc(s.id)}</b> <code>${esc(s.action)}</code> <span class="st-${esc(s.status)}">${esc(s.status)}</span> ${s.durationMs} ms${s.attempts > 1 ? ` · ${s.attempts} attempts` : ''}${s.error ? ` · <span class="st-failed">${esc(s.error)}</span>` : ''}</li>`);
  const verification = run.verification ? `<p>verification: <span class="${run.verification.passed ? 'st-succeeded' : 'st-failed'}">${run.verification.passed ? 'passed' : 'failed'}</span> after ${run.verification.attempts} attempt(s)</p>` : '';
  return `<ol class="steps">${rows.join('')}</ol>${verification}`;
}

function render(state) {
  lastState = state;
  serverSkewMs = state.now - Date.now();
  setText($('mode'), state.mode);
  setText($('pressure'), state.pressure.underPressure ? 'SHEDDING' : 'normal', state.pressure.underPressure ? 'st-critical' : 'st-healthy');
  setText($('clock'), dateTime(state.now));
  renderMemory(state);
  renderRuntime(state);
  renderDetections(state);
  syncRows($('sanitizations'), state.sanitizations, (s) => `${s.detectionId}:${s.finishedAt}`, (s) => [
    [dateTime(s.finishedAt)], [s.component], [s.outcome, `st-${s.outcome}`], [s.actions.join(', ')],
  ], { empty: 'nothing sanitized yet' });
  const breakers = state.breakers.map((b) => `<li>${esc(b.name)} <b class="st-${esc(b.state)}">${esc(b.state)}</b>${b.since ? ` <span class="muted">since ${esc(clockTime(b.since))}</span>` : ''} · <span class="${b.opens ? 'st-warning' : 'muted'}">opened ${b.opens}×</span>${b.lastOpenAt ? ` <span class="muted">(last ${esc(dateTime(b.lastOpenAt))})</span>` : ''}</li>`).join('') || '<li>none</li>';
  if ($('breakers').__html !== breakers) $('breakers').innerHTML = $('breakers').__html = breakers;
  syncRows($('heartbeats'), state.heartbeats, (h) => h.name, (h) => [
    [h.name], [h.state, `st-${h.state}`], [h.restarts + (h.failedRestarts ? ` (+${h.failedRestarts} failed)` : '')], [h.restartsInWindow],
    [h.crashLoopSince ? `since ${dateTime(h.crashLoopSince)}` : 'no', h.crashLoopSince ? 'st-critical' : ''],
    [h.lastRecoveryMs === undefined ? '—' : `${h.lastRecoveryMs} ms`], [`${age(h.lastHeartbeatAt)} ago`],
  ], { empty: 'no watched components' });
  syncRows($('heartbeat-events'), state.heartbeatEvents, (e) => `${e.component}:${e.kind}:${e.at}`, (e) => [
    [dateTime(e.at)], [e.component], [e.kind, `st-${e.kind}`], [e.reason + (e.recoveryMs !== undefined ? ` (recovered in ${e.recoveryMs} ms)` : '')],
  ], { empty: 'no missed heartbeats' });
  setText($('acl-rate'), `${state.acl.violationsLastMinute} in the last minute`);
  syncRows($('acl-actors'), state.acl.actors, (a) => a.actor, (a) => [
    [a.actor], [a.violations], [a.control], [a.lastTopic], [dateTime(a.lastAt)], [a.blacklisted ? 'BLACKLISTED' : 'allowed', a.blacklisted ? 'st-critical' : 'st-healthy'],
  ], { empty: 'no ACL violations' });
  syncRows($('playbooks'), state.playbooks, (p) => p.runId, (p) => [
    [dateTime(p.startedAt)], [p.playbook], [p.status + (p.dryRun ? ' (dry run)' : ''), `st-${p.status}`], [p.reason ?? ''],
    [p.steps ? `${p.steps.filter((s) => s.status === 'succeeded').length}/${p.steps.length} ok ▸` : '…'],
  ], { empty: 'no playbook runs yet', onClick: (id) => toggle(expanded.playbooks, id), extra: (p) => (expanded.playbooks.has(p.runId) ? steps(p) : '') });
  if (state.fleet) {
    $('fleet-card').hidden = false;
    const n = state.fleet.instances.length;
    setText($('fleet-count'), `${n} replica${n === 1 ? '' : 's'}${state.fleet.degraded ? ' · database unreachable: this replica only' : ''}`);
    syncRows($('fleet'), state.fleet.instances, (i) => i.id, (i) => [
      [i.id === state.fleet.self ? `${i.id} (this one)` : i.id], [i.host], [i.pid], [i.mode], [i.status, `st-${i.status}`], [`${(i.ageMs / 1000).toFixed(1)} s ago`],
    ], { empty: 'no replicas listed' });
  }
  syncRows($('immune'), state.immune, (e) => e.id, (e) => [
    [dateTime(e.createdAt)], [e.severity, `st-${e.severity}`], [e.type], [e.module ?? ''], [e.message],
  ], { empty: 'no immune events yet' });
}

for (const id of ['filter-component', 'filter-severity', 'filter-state']) $(id).addEventListener('change', () => lastState && render(lastState));

function connect() {
  const source = new EventSource('/dashboard/stream');
  source.addEventListener('state', (event) => render(JSON.parse(event.data)));
  source.onopen = () => setText($('conn'), 'live', 'conn live');
  source.onerror = () => {
    setText($('conn'), 'reconnecting…', 'conn down');
    // EventSource gives up for good on an HTTP error (503 past the stream cap): try again after its Retry-After.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5_000);
  };
}
connect();
