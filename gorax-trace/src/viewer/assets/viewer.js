// The gorax trace viewer's page. Every string from a trace is written with textContent (never
// as HTML); the page talks only to its own server (see the Content-Security-Policy).
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { version: -1, traceId: null, spanId: null, trace: null, traceVersion: -1 };
  const POLL_MS = 2000;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmtDur(ns) {
    if (ns >= 1e9) return (ns / 1e9).toFixed(2) + ' s';
    if (ns >= 1e6) return (ns / 1e6).toFixed(2) + ' ms';
    if (ns >= 1e3) return (ns / 1e3).toFixed(1) + ' µs';
    return ns + ' ns';
  }

  function fmtBytes(b) {
    if (b >= 1048576) return (b / 1048576).toFixed(1) + ' MiB';
    if (b >= 1024) return (b / 1024).toFixed(1) + ' KiB';
    return b + ' B';
  }

  function parseHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    return { trace: p.get('trace'), span: p.get('span') };
  }

  function setHash(trace, span) {
    const p = new URLSearchParams();
    if (trace) p.set('trace', trace);
    if (span) p.set('span', span);
    const h = '#' + p.toString();
    if (location.hash !== h) history.replaceState(null, '', h);
  }

  function filterQuery() {
    const p = new URLSearchParams();
    for (const input of $('filters').elements) {
      if (!input.name) continue;
      if (input.type === 'checkbox') { if (input.checked) p.set(input.name, '1'); }
      else if (input.value.trim() !== '') p.set(input.name, input.value.trim());
    }
    return p.toString();
  }

  async function getJson(url) {
    const r = await fetch(url, { cache: 'no-store', credentials: 'omit' });
    if (!r.ok) return null;
    return r.json();
  }

  let lastQuery = null;
  async function poll() {
    try {
      const q = filterQuery();
      const data = await getJson('/api/traces?' + q);
      if (data && (data.version !== state.version || q !== lastQuery)) {
        lastQuery = q;
        state.version = data.version;
        renderStats(data.stats);
        renderServices(data.services);
        renderList(data.traces);
        if (state.traceId) await loadTrace(state.traceId, false);
      }
    } catch (e) {
      $('stats').textContent = 'viewer unreachable: ' + e;
    }
  }

  function renderStats(s) {
    $('stats').textContent = s.traces + ' / ' + s.max_traces + ' traces, ' + s.spans + ' spans, ' +
      fmtBytes(s.bytes) + ' / ' + fmtBytes(s.max_bytes) + ' held; evicted: ' + s.evicted_traces +
      ' traces (' + s.evicted_spans + ' spans)' +
      (s.rejected_requests ? '; malformed OTLP requests refused: ' + s.rejected_requests : '');
    $('stats').dataset.evicted = s.evicted_traces;
  }

  function renderServices(services) {
    const sel = $('f-service');
    const current = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const s of services) {
      const o = el('option', null, s);
      o.value = s;
      sel.appendChild(o);
    }
    sel.value = services.includes(current) ? current : '';
  }

  function renderList(traces) {
    const body = $('traces').tBodies[0];
    body.textContent = '';
    $('empty').hidden = traces.length > 0;
    for (const t of traces) {
      const tr = el('tr');
      tr.dataset.traceId = t.trace_id;
      if (t.trace_id === state.traceId) tr.classList.add('selected');
      tr.appendChild(el('td', 'root', t.root || '(no root)'));
      tr.appendChild(el('td', null, t.services.join(', ')));
      tr.appendChild(el('td', 'num', new Date(t.start_ms).toLocaleTimeString()));
      tr.appendChild(el('td', 'num', fmtDur(t.duration_ns)));
      tr.appendChild(el('td', 'num', t.spans));
      tr.appendChild(el('td', 'err-mark', t.errors ? '⚠ ' + t.errors + ' error' + (t.errors > 1 ? 's' : '') : ''));
      tr.addEventListener('click', () => selectTrace(t.trace_id, null));
      body.appendChild(tr);
    }
  }

  async function selectTrace(id, span) {
    state.traceId = id;
    state.spanId = span;
    setHash(id, span);
    for (const tr of $('traces').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.traceId === id);
    await loadTrace(id, true);
  }

  async function loadTrace(id, force) {
    if (!force && state.traceVersion === state.version && state.trace && state.trace.trace_id === id) return;
    const t = await getJson('/api/traces/' + encodeURIComponent(id));
    state.traceVersion = state.version;
    $('trace-pane').hidden = false;
    if (!t) {
      state.trace = null;
      $('trace-title').textContent = 'Trace ' + id + ' is not here (evicted, or not arrived yet)';
      $('waterfall').textContent = '';
      $('detail').hidden = true;
      return;
    }
    state.trace = t;
    renderTrace(t);
  }

  // Parent-first order with depths; spans whose parent is absent are roots.
  function tree(spans) {
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const kids = new Map();
    const roots = [];
    for (const s of spans) {
      if (s.parent_span_id && byId.has(s.parent_span_id)) {
        if (!kids.has(s.parent_span_id)) kids.set(s.parent_span_id, []);
        kids.get(s.parent_span_id).push(s);
      } else roots.push(s);
    }
    const byStart = (a, b) => a.offset_ns - b.offset_ns;
    const out = [];
    const walk = (s, depth) => {
      out.push({ span: s, depth });
      for (const c of (kids.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
    };
    for (const r of roots.sort(byStart)) walk(r, 0);
    return { rows: out, kids };
  }

  function renderTrace(t) {
    const { rows } = tree(t.spans);
    const total = Math.max(1, ...t.spans.map((s) => s.offset_ns + s.duration_ns));
    const services = [...new Set(t.spans.map((s) => s.service))];
    $('trace-title').textContent = (rows[0] ? rows[0].span.name : '') + ' — ' + t.trace_id;
    $('permalink').href = '#trace=' + encodeURIComponent(t.trace_id);
    $('trace-meta').textContent = t.spans.length + ' spans, ' + services.join(', ') + ', ' + fmtDur(total);
    const wf = $('waterfall');
    wf.textContent = '';
    wf.dataset.totalNs = total;
    for (const { span: s, depth } of rows) {
      const row = el('div', 'row');
      row.setAttribute('role', 'treeitem');
      row.dataset.spanId = s.span_id;
      row.dataset.parentSpanId = s.parent_span_id || '';
      row.dataset.depth = depth;
      row.dataset.durationNs = s.duration_ns;
      if (s.status === 'error') row.classList.add('error');
      if (s.span_id === state.spanId) row.classList.add('selected');
      const label = el('div', 'label');
      label.style.paddingLeft = (depth * 14) + 'px';
      label.appendChild(el('span', 'svc', s.service));
      label.appendChild(el('span', 'kind', s.kind));
      label.appendChild(el('span', 'name', s.name));
      if (s.status === 'error') label.appendChild(el('span', 'err-mark', ' ⚠'));
      const track = el('div', 'track');
      const bar = el('div', 'bar');
      bar.style.left = (100 * s.offset_ns / total) + '%';
      bar.style.width = (100 * s.duration_ns / total) + '%';
      bar.title = fmtDur(s.duration_ns);
      track.appendChild(bar);
      const dur = el('span', 'dur', fmtDur(s.duration_ns));
      const endPct = 100 * (s.offset_ns + s.duration_ns) / total;
      // Right of the bar; inside it when the bar ends near the right edge.
      if (endPct > 75) {
        dur.classList.add('inside');
        dur.style.left = (100 * s.offset_ns / total) + '%';
      } else dur.style.left = endPct + '%';
      track.appendChild(dur);
      row.appendChild(label);
      row.appendChild(track);
      row.addEventListener('click', () => selectSpan(s.span_id));
      wf.appendChild(row);
    }
    renderDetail();
  }

  function selectSpan(id) {
    state.spanId = id;
    setHash(state.traceId, id);
    for (const r of $('waterfall').children) r.classList.toggle('selected', r.dataset.spanId === id);
    renderDetail();
  }

  function kvTable(pairs) {
    const table = el('table', 'kv');
    for (const [k, v] of pairs) {
      const tr = el('tr');
      tr.appendChild(el('td', 'key', k));
      tr.appendChild(el('td', 'value', v));
      table.appendChild(tr);
    }
    return table;
  }

  function renderDetail() {
    const d = $('detail');
    const t = state.trace;
    const s = t && t.spans.find((x) => x.span_id === state.spanId);
    d.textContent = '';
    d.hidden = !s;
    if (!s) return;
    d.appendChild(el('h3', null, s.name));
    d.appendChild(kvTable([
      ['service', s.service],
      ['kind', s.kind],
      ['span id', s.span_id],
      ['parent span id', s.parent_span_id || '(root)'],
      ['start offset', fmtDur(s.offset_ns)],
      ['duration', fmtDur(s.duration_ns)],
      ['scope', s.scope],
    ]));
    const status = el('p', 'status-' + s.status, 'status: ' + s.status + (s.status_message ? ' — ' + s.status_message : ''));
    status.id = 'detail-status';
    d.appendChild(status);
    d.appendChild(el('h4', null, 'Attributes (' + s.attributes.length + ')'));
    const attrs = kvTable(s.attributes);
    attrs.id = 'detail-attributes';
    d.appendChild(attrs);
    d.appendChild(el('h4', null, 'Events (' + s.events.length + ')'));
    for (const e of s.events) {
      d.appendChild(el('div', 'event', '+' + fmtDur(e.offset_ns) + '  ' + e.name));
      if (e.attributes.length) d.appendChild(kvTable(e.attributes));
    }
    d.appendChild(el('h4', null, 'Links (' + s.links.length + ')'));
    for (const l of s.links) {
      const line = el('div', 'link');
      if (l.present) {
        const a = el('a', null, l.trace_id + ' / ' + l.span_id);
        a.href = '#trace=' + encodeURIComponent(l.trace_id) + '&span=' + encodeURIComponent(l.span_id);
        a.addEventListener('click', (ev) => { ev.preventDefault(); selectTrace(l.trace_id, l.span_id); });
        line.appendChild(a);
      } else line.textContent = l.trace_id + ' / ' + l.span_id + ' (not here)';
      d.appendChild(line);
      if (l.attributes.length) d.appendChild(kvTable(l.attributes));
    }
    const copy = el('button', null, 'copy subtree as JSON');
    copy.type = 'button';
    copy.id = 'copy-subtree';
    copy.addEventListener('click', () => copyJson(subtree(t, s.span_id)));
    d.appendChild(copy);
  }

  function subtree(t, rootId) {
    const { kids } = tree(t.spans);
    const out = [];
    const walk = (id) => {
      const s = t.spans.find((x) => x.span_id === id);
      if (s) out.push(s);
      for (const c of kids.get(id) || []) walk(c.span_id);
    };
    walk(rootId);
    return { trace_id: t.trace_id, start_unix_nano: t.start_unix_nano, spans: out };
  }

  async function copyJson(value) {
    const text = JSON.stringify(value, null, 2);
    const area = $('copied');
    area.value = text;
    try {
      await navigator.clipboard.writeText(text);
      area.hidden = true;
    } catch (e) {
      // No clipboard permission: show the text, selected, for Ctrl-C.
      area.hidden = false;
      area.select();
    }
  }

  function start() {
    $('copy-trace').addEventListener('click', () => { if (state.trace) copyJson(state.trace); });
    $('filters').addEventListener('input', () => { state.version = -1; poll(); });
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    const h = parseHash();
    if (h.trace) { state.traceId = h.trace; state.spanId = h.span; }
    window.addEventListener('hashchange', () => {
      const n = parseHash();
      if (n.trace && (n.trace !== state.traceId || n.span !== state.spanId)) selectTrace(n.trace, n.span);
    });
    poll();
    setInterval(poll, POLL_MS);
  }

  start();
})();
