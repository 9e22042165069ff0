// Steward dashboard: plain JavaScript, no framework, no network beyond this server.
//
// SECURITY: every string the API returns may come from an MCP client (client names and
// versions, tool names, error messages, ...). The DOM is built only with createElement,
// textContent and setAttribute; nothing here parses HTML. The server's Content-Security-Policy
// (no inline script, 'self' only) is the second line of defence.
'use strict';

(() => {
  const POLL_MS = 2000; // without /api/events: how often the current view is re-read
  const SSE_RETRY_MS = 30000; // after /api/events failed: when to try it again
  const SAFETY_REFRESH_MS = 30000; // with /api/events: a slow refresh for "ago" times and lifecycle changes
  const HEALTH_MS = 5000; // the banner's own check of /health

  // ---------------------------------------------------------------- DOM helpers

  /** Creates an element. `props`: class, text, on<event> handlers, any other attribute. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = String(value);
        else if (key.startsWith('on') && typeof value === 'function') {
          el.addEventListener(key.slice(2), value);
        } else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    return add(el, children);
  }

  /** Appends children: nodes as they are, anything else as a text node. */
  function add(el, children) {
    for (const child of [children].flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** A class-name-safe token from data (statuses, client types). */
  function token(value) {
    return String(value ?? '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-');
  }

  // ---------------------------------------------------------------- formatting

  const pad = (n) => String(n).padStart(2, '0');

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }

  function ago(iso) {
    if (!iso) return '—';
    const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (!Number.isFinite(seconds)) return String(iso);
    if (seconds < 5) return 'just now';
    if (seconds < 90) return `${seconds} s ago`;
    if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 36 * 3600) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  /** The start-up replay of the ledger journal, after an unclean shutdown (see /health). */
  function recoveryText(r) {
    const parts = [
      `${r.unclean_shutdown ? 'unclean shutdown' : 'journal replayed'} ${ago(r.at)}`,
      `${fmtInt(r.recovered_rows)} rows recovered`,
    ];
    if (r.waiting_rows) parts.push(`${fmtInt(r.waiting_rows)} waiting`);
    if (r.unrecoverable_rows) {
      parts.push(`${fmtInt(r.unrecoverable_rows)} UNRECOVERABLE (${(r.unrecoverable_reasons || []).join('; ')})`);
    }
    return parts.join(' · ');
  }

  function fmtUptime(seconds) {
    const s = Number(seconds);
    if (!Number.isFinite(s)) return '—';
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function fmtInt(n) {
    const v = Number(n);
    return Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—';
  }

  /** Milliseconds, with microsecond precision under 10 ms. */
  function fmtMs(ms, us) {
    if (us !== null && us !== undefined && Number.isFinite(Number(us)) && Number(us) < 10000) {
      return `${(Number(us) / 1000).toFixed(2)} ms`;
    }
    const v = Number(ms);
    if (!Number.isFinite(v)) return '—';
    if (v >= 10000) return `${(v / 1000).toFixed(1)} s`;
    return `${Math.round(v).toLocaleString('en-US')} ms`;
  }

  function fmtCost(value) {
    if (value === null || value === undefined || value === '') return '—';
    const v = Number(value);
    if (!Number.isFinite(v)) return String(value);
    if (v === 0) return '$0';
    if (v < 0.000001) return '<$0.000001';
    if (v >= 1) return `$${v.toFixed(2)}`;
    return `$${Number(v.toPrecision(3))}`;
  }

  function fmtPct(rate) {
    const v = Number(rate);
    if (!Number.isFinite(v)) return '—';
    return `${(v * 100).toFixed(v > 0 && v < 0.001 ? 2 : 1)}%`;
  }

  function fmtBytes(n) {
    const v = Number(n);
    if (!Number.isFinite(v)) return '—';
    if (v < 1024) return `${v} B`;
    if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
    return `${(v / 1024 / 1024).toFixed(1)} MiB`;
  }

  const shortId = (id) => (id ? `${String(id).slice(0, 8)}…` : '—');

  function timeCell(iso) {
    return h('td', { class: 'time', title: iso || '' }, fmtTime(iso));
  }

  function agoCell(iso) {
    return h('td', { class: 'time', title: iso ? `${fmtTime(iso)} (${iso})` : '' }, ago(iso));
  }

  function badge(status, title) {
    return h('span', { class: `badge st-${token(status)}`, title: title || null }, status || '—');
  }

  // ---------------------------------------------------------------- API

  /** GET a JSON endpoint of this server: {ok, status, data, error}. Never throws. */
  async function api(path) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (_) {
      return { ok: false, status: 0, data: null, error: 'cannot reach the server' };
    }
    const text = await response.text().catch(() => '');
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    // With --auth api-key the browser needs a login first (the cookie expired or was revoked).
    if (response.status === 401) {
      window.location.assign('login');
      return { ok: false, status: 401, data: null, error: 'sign in first' };
    }
    if (!response.ok) {
      const message =
        (data && data.error && (data.error.message || data.error)) ||
        text.trim() ||
        `${response.status} ${response.statusText}`;
      return { ok: false, status: response.status, data, error: String(message) };
    }
    if (data === null) return { ok: false, status: response.status, data, error: 'the answer was not JSON' };
    return { ok: true, status: response.status, data, error: null };
  }

  /** A query string from an object, leaving out empty values. */
  function query(params) {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && String(value) !== '') q.set(key, String(value));
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  /** Whether /api/stats answered (null: not asked yet). */
  let statsAvailable = null;

  async function getStats(since) {
    if (statsAvailable === false) return null;
    const r = await api(`api/stats${query({ since })}`);
    if (r.ok) {
      statsAvailable = true;
      return r.data;
    }
    if (r.status === 404 || r.status === 405) statsAvailable = false;
    return null;
  }

  // ---------------------------------------------------------------- health banner

  const banner = () => document.getElementById('banner');

  async function getHealth() {
    let response;
    try {
      response = await fetch('health', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (_) {
      return { reachable: false };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    return { reachable: true, httpStatus: response.status, data };
  }

  async function refreshHealth() {
    const health = await getHealth();
    showBanner(health);
    return health;
  }

  function showBanner(health) {
    const el = banner();
    if (!health.reachable) {
      el.className = 'banner bad';
      el.replaceChildren(
        h('strong', null, 'Steward is unreachable'),
        h('p', null, `No answer from ${location.origin}. What this page shows may be stale; it retries on its own.`),
      );
      el.hidden = false;
      setLive('offline');
      return;
    }
    const data = health.data || {};
    const degraded = data.status === 'degraded' || (health.httpStatus >= 500 && data.status !== 'ok');
    if (!degraded) {
      el.hidden = true;
      el.replaceChildren();
      if (liveMode === 'offline') setLive(sseOpen ? 'sse' : 'polling');
      return;
    }
    const problems = Array.isArray(data.problems) ? data.problems : [];
    el.className = 'banner bad';
    el.replaceChildren(
      h('strong', null, 'DEGRADED: Steward is serving, but something is wrong'),
      problems.length
        ? h('ul', null, problems.map((p) => h('li', null, typeof p === 'string' ? p : JSON.stringify(p))))
        : h('p', null, `/health answered ${health.httpStatus} without a list of problems.`),
      h('p', { class: 'muted' }, 'Details: ', h('a', { href: 'health' }, '/health')),
    );
    el.hidden = false;
  }

  // ---------------------------------------------------------------- live updates

  let liveMode = 'starting';
  let sseOpen = false;
  let pollTimer = null;

  function setLive(mode) {
    liveMode = mode;
    const el = document.getElementById('live');
    if (!el) return;
    const text = {
      starting: 'connecting…',
      sse: '● live',
      polling: `● live (polling every ${POLL_MS / 1000} s)`,
      reconnecting: '◌ reconnecting…',
      offline: '○ offline',
    }[mode];
    el.textContent = text || mode;
    el.className = `live live-${token(mode)}`;
    el.title =
      mode === 'sse'
        ? 'New sessions and requests arrive over /api/events'
        : mode === 'polling'
          ? '/api/events is not available: the page re-reads the API'
          : 'How this page gets new data';
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(() => {
      if (!document.hidden) refreshNow();
    }, POLL_MS);
    if (liveMode !== 'offline') setLive('polling');
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  function startEvents() {
    if (!('EventSource' in window)) {
      startPolling();
      return;
    }
    let source;
    try {
      source = new EventSource('api/events');
    } catch (_) {
      startPolling();
      return;
    }
    source.addEventListener('open', () => {
      sseOpen = true;
      stopPolling();
      setLive('sse');
      refreshNow(); // catch up with whatever happened while not connected
    });
    const onEvent = (kind) => (event) => {
      let row = null;
      try {
        row = JSON.parse(event.data);
      } catch (_) {
        row = null;
      }
      liveEvent(kind, row);
    };
    source.addEventListener('request', onEvent('request'));
    source.addEventListener('session', onEvent('session'));
    source.addEventListener('board', onEvent('board'));
    source.addEventListener('message', onEvent('message'));
    source.addEventListener('error', () => {
      sseOpen = false;
      if (source.readyState === EventSource.CLOSED) {
        // Not an event stream (404 before the endpoint exists, or an error): poll, retry later.
        source.close();
        startPolling();
        setTimeout(startEvents, SSE_RETRY_MS);
      } else {
        // The browser reconnects by itself; poll meanwhile so nothing is missed.
        startPolling();
        setLive('reconnecting');
      }
    });
  }

  let eventTimer = null;
  let lastRefreshEnd = 0;
  function liveEvent(kind, row) {
    // Board views refresh on board changes only, not on every ledger row (a view may still
    // want some rows: a task's view, the calls about that task).
    const v = state.view;
    if (v && v.only && !v.only.includes(kind) && !(v.wants && v.wants(kind, row))) return;
    if (state.view && state.view.onEvent) state.view.onEvent(kind, row);
    if (eventTimer) return;
    // Coalesce bursts: a refresh at most every 300 ms (the overview's statistics: every 2 s).
    const gap = (state.view && state.view.minInterval) || 300;
    const wait = Math.max(100, lastRefreshEnd + gap - Date.now());
    eventTimer = setTimeout(() => {
      eventTimer = null;
      refreshNow();
    }, wait);
  }

  let refreshing = false;
  let refreshAgain = false;

  /** Re-reads the current view's data; overlapping calls collapse into one more run. */
  async function refreshNow() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      do {
        refreshAgain = false;
        const view = state.view;
        if (view && view.refresh) {
          try {
            await view.refresh();
          } catch (error) {
            console.error('refresh failed', error);
          }
        }
      } while (refreshAgain);
    } finally {
      refreshing = false;
      lastRefreshEnd = Date.now();
    }
  }

  // ---------------------------------------------------------------- shared pieces

  const state = { view: null };

  function errorBox(message) {
    return h('p', { class: 'error-box' }, message);
  }

  function table(headers, rows, opts = {}) {
    return h(
      'table',
      { class: `grid ${opts.class || ''}` },
      h('thead', null, h('tr', null, headers.map((x) => (x instanceof Node ? x : h('th', null, x))))),
      h('tbody', null, rows),
    );
  }

  function numTh(label, title) {
    return h('th', { class: 'num', title: title || null }, label);
  }

  /** Client name and version, or a placeholder, as text. */
  function clientLabel(session) {
    if (!session) return h('span', { class: 'muted' }, '(unknown session)');
    const name = session.client_name;
    return h(
      'span',
      { class: 'client' },
      name ? h('span', { class: 'client-name' }, name) : h('span', { class: 'muted' }, '(no name)'),
      session.client_version ? h('span', { class: 'muted ver' }, ` ${session.client_version}`) : null,
    );
  }

  function sessionHref(id) {
    return `#/session/${encodeURIComponent(id)}`;
  }

  /** Key/value details of one object, values as text (objects as indented JSON). */
  function detailsList(obj) {
    const dl = h('dl', { class: 'kv' });
    for (const [key, value] of Object.entries(obj || {})) {
      let shown;
      if (value === null || value === undefined) shown = h('span', { class: 'muted' }, 'null');
      else if (typeof value === 'object') shown = h('pre', null, JSON.stringify(value, null, 2));
      else shown = String(value);
      dl.append(h('dt', null, key), h('dd', null, shown));
    }
    return dl;
  }

  /**
   * A table of ledger rows with expandable details. Remembers which rows were open and which
   * were already seen, so a refresh keeps the open ones open and marks new ones.
   */
  function requestTable(opts) {
    const expanded = new Set();
    const seen = new Set();
    let first = true;
    const wrap = h('div', { class: 'requests-table' });

    function render(rows, sessionsById) {
      const showSession = opts.showSession;
      const headers = [
        h('th', { class: 'toggle', 'aria-label': 'details' }),
        'Time',
        showSession ? 'Client / session' : null,
        'Method',
        'Tool',
        numTh('Duration'),
        'Status',
        numTh('Tokens (est.)', 'Estimated tokens: arguments + result (o200k_base)'),
        numTh('Cost (est.)', 'Estimated cost in USD'),
      ].filter((x) => x !== null);
      const body = [];
      for (const row of rows) {
        const id = row.request_id;
        const isNew = !first && !seen.has(id);
        seen.add(id);
        const open = expanded.has(id);
        const toggle = h('button', {
          class: 'toggle-btn',
          type: 'button',
          'aria-expanded': open ? 'true' : 'false',
          'aria-label': 'show details',
          text: open ? '▾' : '▸',
        });
        const session = sessionsById && row.session_id ? sessionsById.get(row.session_id) : null;
        const tr = h(
          'tr',
          { class: `req st-row-${token(row.status)}${isNew ? ' new' : ''}`, 'data-request-id': id },
          h('td', { class: 'toggle' }, toggle),
          timeCell(row.timestamp),
          showSession
            ? h(
                'td',
                null,
                row.session_id
                  ? h(
                      'a',
                      { href: sessionHref(row.session_id), title: row.session_id, onclick: (e) => e.stopPropagation() },
                      session ? clientLabel(session) : shortId(row.session_id),
                    )
                  : h('span', { class: 'muted' }, 'no session'),
              )
            : null,
          h('td', { class: 'method' }, row.method),
          h('td', { class: 'tool' }, row.tool_name || ''),
          h('td', { class: 'num', title: `${row.duration_us} µs` }, fmtMs(row.duration_ms, row.duration_us)),
          h(
            'td',
            null,
            badge(row.status, row.error_message || null),
            row.error_code !== null && row.error_code !== undefined
              ? h('span', { class: 'muted code' }, ` ${row.error_code}`)
              : null,
          ),
          h(
            'td',
            { class: 'num', title: `arguments ${row.args_tokens ?? '—'} + result ${row.result_tokens ?? '—'}` },
            row.total_tokens === null || row.total_tokens === undefined ? '—' : fmtInt(row.total_tokens),
          ),
          h('td', { class: 'num', title: row.pricing_model ? `priced as ${row.pricing_model}` : null }, fmtCost(row.estimated_cost_usd)),
        );
        const detail = h(
          'tr',
          { class: 'detail', hidden: !open },
          h(
            'td',
            { colspan: headers.length },
            row.error_message ? h('p', { class: 'error-text' }, 'Error: ', h('span', null, row.error_message)) : null,
            h(
              'p',
              { class: 'muted' },
              `${fmtBytes(row.request_bytes)} in, ${fmtBytes(row.response_bytes)} out · `,
              `${row.duration_us} µs · tokens and cost are estimates`,
            ),
            detailsList(row),
          ),
        );
        const flip = () => {
          const nowOpen = detail.hidden;
          detail.hidden = !nowOpen;
          toggle.textContent = nowOpen ? '▾' : '▸';
          toggle.setAttribute('aria-expanded', nowOpen ? 'true' : 'false');
          if (nowOpen) expanded.add(id);
          else expanded.delete(id);
        };
        tr.addEventListener('click', (event) => {
          if (window.getSelection && String(window.getSelection()).length > 0 && event.target !== toggle) return;
          flip();
        });
        body.push(tr, detail);
      }
      first = false;
      if (!rows.length) {
        wrap.replaceChildren(h('p', { class: 'empty' }, opts.empty || 'No requests yet.'));
        return;
      }
      wrap.replaceChildren(table(headers, body, { class: 'requests' }));
    }

    return { el: wrap, render };
  }

  /** Sessions by id, from the first page of /api/sessions (to name the clients of requests). */
  async function sessionMap() {
    const r = await api('api/sessions');
    const map = new Map();
    if (r.ok) for (const s of r.data.sessions || []) map.set(s.session_id, s);
    return map;
  }

  function pager(page, perPage, total, go) {
    const pages = Math.max(1, Math.ceil(Number(total || 0) / perPage));
    return h(
      'div',
      { class: 'pager' },
      h('button', { type: 'button', disabled: page <= 1, onclick: () => go(page - 1) }, '← newer'),
      h('span', null, `page ${fmtInt(page)} of ${fmtInt(pages)} · ${fmtInt(total)} in all`),
      h('button', { type: 'button', disabled: page >= pages, onclick: () => go(page + 1) }, 'older →'),
    );
  }

  function setHash(name, params) {
    const next = `#/${name}${query(params)}`;
    if (location.hash === next) refreshNow();
    else location.hash = next;
  }

  // ---------------------------------------------------------------- views

  /** How estimated costs are computed; the same wording as the CLI's note under cost figures. */
  const COST_FORMULA =
    "tokens counted with o200k_base; cost = argument tokens × the model's output price + result tokens × its input price " +
    '(the model writes the arguments and reads the results; prices: `steward pricing list`)';

  function overviewView() {
    const cards = h('div', { class: 'cards' }, h('p', { class: 'muted' }, 'Loading…'));
    const tools = h('div');
    const clients = h('div');
    const trend = h('div', { class: 'trend' });
    const sourceNote = h('p', { class: 'muted source' });
    const costNote = h('p', { class: 'muted source', 'data-testid': 'cost-formula' }, `Estimated: ${COST_FORMULA}.`);
    const recentSessions = h('div');
    const recent = requestTable({ showSession: true, empty: 'No requests yet: connect an assistant (see Connect).' });
    const sessionHealth = sessionHealthBox();
    const cost = costSection();
    const el = h(
      'section',
      { class: 'view' },
      h('h1', null, 'Overview'),
      cards,
      sourceNote,
      costNote,
      h('h2', null, 'Session health ', h('a', { class: 'more', href: '#/sessions' }, 'sessions →')),
      sessionHealth.el,
      h('h2', null, 'Requests per hour · last 24 h'),
      trend,
      h('h2', null, 'Tools · last 24 h'),
      tools,
      h('h2', null, 'Clients · last 24 h'),
      clients,
      cost.el,
      h('h2', null, 'Recent sessions ', h('a', { class: 'more', href: '#/sessions' }, 'all sessions →')),
      recentSessions,
      h('h2', null, 'Latest requests ', h('a', { class: 'more', href: '#/requests' }, 'request log →')),
      recent.el,
    );

    async function refresh() {
      const [health, active, idle, all, stats, last5m, rows] = await Promise.all([
        refreshHealth(),
        api(`api/sessions${query({ status: 'active' })}`),
        api(`api/sessions${query({ status: 'idle' })}`),
        api('api/sessions'),
        getStats('24h'),
        api(`api/requests${query({ since: '5m' })}`),
        recentRows(),
        sessionHealth.refresh(),
        cost.refresh(),
      ]);
      const sessionsById = new Map();
      if (all.ok) for (const s of all.data.sessions || []) sessionsById.set(s.session_id, s);

      // Totals: /api/stats when the server has it, else counted here from the ledger.
      let totals;
      let toolRows;
      let clientRows;
      let source;
      let hourly = null;
      if (stats && stats.totals) {
        const norm = normalizeStats(stats);
        totals = norm.totals;
        toolRows = norm.tools;
        clientRows = norm.clients;
        hourly = norm.hourly;
        source = `from /api/stats${stats.percentiles === 'histogram' ? ' (percentiles from hourly latency histograms, within ±3%)' : ''}`;
      } else {
        const computed = await computeStats(rows, sessionsById);
        totals = computed.totals;
        toolRows = computed.tools;
        clientRows = computed.clients;
        source = computed.note;
      }
      const totalRequests = Number(totals.requests) || 0;
      const previous = stats && stats.previous_period_requests !== undefined ? Number(stats.previous_period_requests) : null;
      const errorRate = totalRequests ? Number(totals.errors || 0) / totalRequests : 0;
      const perMin = last5m.ok ? Number(last5m.data.total || 0) / 5 : null;

      const hd = health.data || {};
      const ledger = hd.ledger || {};
      const cleanup = (hd.sessions && hd.sessions.cleanup) || null;
      const degraded = !health.reachable || hd.status !== 'ok';
      cards.replaceChildren(
        card(
          'Server',
          h('span', { class: `big ${degraded ? 'bad' : 'good'}` }, health.reachable ? hd.status || `HTTP ${health.httpStatus}` : 'unreachable'),
          [
            ['version', hd.version || '—'],
            ['uptime', fmtUptime(hd.uptime_seconds)],
            ['database', hd.database ? `${hd.database.engine} · ${hd.database.reachable ? 'reachable' : 'UNREACHABLE'}` : '—'],
            ['ledger', `${ledger.status || '—'} · ${fmtInt(ledger.written)} written since start · ${fmtInt(ledger.pending)} pending${ledger.spilled ? ` · ${fmtInt(ledger.spilled)} spilled` : ''}`],
            ...(ledger.recovery ? [['recovery', recoveryText(ledger.recovery)]] : []),
            ['cleanup', cleanup ? `${cleanup.error ? 'FAILED' : 'ok'} · ${ago(cleanup.finished_at)}` : 'not run yet'],
          ],
          'card-server',
        ),
        card(
          'Sessions',
          h('span', { class: 'big', 'data-testid': 'active-sessions' }, active.ok ? fmtInt(active.data.total) : '—'),
          [
            ['active', active.ok ? fmtInt(active.data.total) : active.error],
            ['idle', idle.ok ? fmtInt(idle.data.total) : idle.error],
            ['all time', all.ok ? fmtInt(all.data.total) : all.error],
          ],
          'card-sessions',
          'active now',
        ),
        card(
          'Requests · 24 h',
          h('span', { class: 'big', 'data-testid': 'requests-24h' }, fmtInt(totalRequests)),
          [
            ['per minute', perMin === null ? '—' : `${perMin.toFixed(1)} (last 5 min)`],
            ['errors', `${fmtInt(totals.errors)} · ${fmtPct(errorRate)} error rate`],
            previous === null ? null : ['previous 24 h', fmtInt(previous)],
          ],
          'card-requests',
        ),
        card(
          'Tokens & cost · 24 h',
          h('span', { class: 'big' }, fmtCost(totals.estimated_cost_usd)),
          [
            ['tokens', `${fmtInt(totals.tokens)} (estimated)`],
            ['cost', `${fmtCost(totals.estimated_cost_usd)} (estimated)`],
          ],
          'card-cost',
          'estimated',
        ),
      );
      sourceNote.textContent = `Statistics ${source}. Tokens and costs are estimates.`;

      trend.replaceChildren(hourly && hourly.length ? hourlyChart(hourly) : h('p', { class: 'muted' }, stats ? 'No requests in the last 24 hours.' : 'The hourly trend needs /api/stats, which this server does not offer.'));
      tools.replaceChildren(statsTable(toolRows, 'tool_name', stats ? 'Tool / method' : 'Tool', 'No tool calls in the last 24 hours.'));
      clients.replaceChildren(statsTable(clientRows, 'client_type', 'Client type', 'No requests in the last 24 hours.'));

      const sessionList = all.ok ? (all.data.sessions || []).slice(0, 5) : [];
      recentSessions.replaceChildren(all.ok ? sessionsTable(sessionList) : errorBox(`Sessions: ${all.error}`));
      recent.render(rows.ok ? rows.rows.slice(0, 10) : [], sessionsById);
    }

    return { el, refresh, title: 'Overview', minInterval: 2000 };
  }

  /** Estimated cost and tokens per hour (24 h) or per day (30 days), by client name and type (/api/cost). */
  function costSection() {
    let bucket = 'hour';
    const chart = h('div', { class: 'trend', 'data-testid': 'cost-chart' });
    const byName = h('div', { 'data-testid': 'cost-by-client-name' });
    const byType = h('div', { 'data-testid': 'cost-by-client-type' });
    const period = select('bucket', bucket, [['hour', 'per hour · last 24 h'], ['day', 'per day · last 30 days']]);
    period.setAttribute('aria-label', 'Cost period');
    period.addEventListener('change', () => {
      bucket = period.value;
      refresh();
    });
    const el = h(
      'div',
      { class: 'cost' },
      h('h2', null, 'Cost & tokens over time ', period),
      chart,
      h('h3', null, 'By client name'),
      byName,
      h('h3', null, 'By client type'),
      byType,
    );
    const clientTable = (rows, named) =>
      rows.length
        ? table(
            [...(named ? ['Client'] : []), 'Type', numTh('Requests'), numTh('Errors'), numTh('Tokens (est.)'), numTh('Cost (est.)')],
            rows.map((r) =>
              h('tr', null,
                named ? h('td', { class: 'client-name' }, r.client_name) : null,
                h('td', null, r.client_type),
                h('td', { class: 'num' }, fmtInt(r.requests)),
                h('td', { class: 'num' }, fmtInt(r.errors)),
                h('td', { class: 'num' }, fmtInt(r.tokens)),
                h('td', { class: 'num' }, fmtCost(r.estimated_cost_usd)))),
            { class: 'stats' },
          )
        : h('p', { class: 'empty' }, 'No requests in this period.');
    // The period select and the overview's live refresh both load; answers can arrive out of
    // order, and only the latest request's may be drawn (else a late hourly answer would
    // replace the daily chart the person just chose).
    let latest = 0;
    async function refresh() {
      const mine = ++latest;
      const wanted = bucket;
      const r = await api(`api/cost${query({ bucket: wanted, since: wanted === 'hour' ? '24h' : '30days' })}`);
      if (mine !== latest) return;
      if (!r.ok) {
        chart.replaceChildren(errorBox(`Cost over time: ${r.error}`));
        return;
      }
      chart.replaceChildren(costChart(r.data.series || [], wanted));
      byName.replaceChildren(clientTable(r.data.client_names || [], true));
      byType.replaceChildren(clientTable(r.data.client_types || [], false));
    }
    return { el, refresh };
  }

  /** Bars of estimated cost per bucket, and a line of estimated tokens, as SVG. */
  function costChart(series, bucket) {
    const W = 1200;
    const H = 120;
    const top = 14;
    const bottom = 18;
    const costs = series.map((p) => Number(p.estimated_cost_usd) || 0);
    const tokens = series.map((p) => Number(p.tokens) || 0);
    const maxCost = Math.max(...costs, 0) || 1;
    const maxTokens = Math.max(...tokens, 0) || 1;
    const bw = W / Math.max(1, series.length);
    const y = (v, max) => H - bottom - (v / max) * (H - top - bottom);
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `estimated cost and tokens per ${bucket}` });
    chart.append(svg('line', { x1: 0, x2: W, y1: H - bottom + 0.5, y2: H - bottom + 0.5, class: 'axis' }));
    chart.append(svg('text', { x: 2, y: 10, class: 'label' }, `${fmtCost(maxCost)} / ${bucket} · ${fmtInt(maxTokens)} tokens`));
    const labelEvery = Math.max(1, Math.ceil(series.length / 12));
    const points = [];
    series.forEach((p, i) => {
      const start = new Date(p.start);
      const label = bucket === 'hour' ? `${pad(start.getHours())}:00` : `${start.getUTCFullYear()}-${pad(start.getUTCMonth() + 1)}-${pad(start.getUTCDate())}`;
      const x = i * bw + 1;
      const g = svg('g', { class: 'cost-point' }, svg('title', null, `${label}: ${fmtCost(p.estimated_cost_usd)}, ${fmtInt(p.tokens)} tokens, ${fmtInt(p.requests)} requests (estimated)`));
      g.append(svg('rect', { x, y: y(costs[i], maxCost), width: Math.max(1, bw - 2), height: Math.max(0, H - bottom - y(costs[i], maxCost)), class: 'bar' }));
      if (i % labelEvery === 0) g.append(svg('text', { x: x + bw / 2, y: H - 4, class: 'label', 'text-anchor': 'middle' }, bucket === 'hour' ? label : label.slice(5)));
      chart.append(g);
      points.push(`${(x + bw / 2).toFixed(1)},${y(tokens[i], maxTokens).toFixed(1)}`);
    });
    if (points.length) chart.append(svg('polyline', { points: points.join(' '), class: 'tokens-line' }));
    return h('div', null, chart, h('p', { class: 'muted legend' }, h('span', { class: 'swatch ok' }), ' estimated cost ', h('span', { class: 'swatch tokens' }), ' estimated tokens (own scale)'));
  }

  /** The last day's ledger rows for statistics computed in the browser (at most 1,000). */
  async function recentRows() {
    // With /api/stats only the latest few are shown; without it, statistics are computed here.
    const perPage = statsAvailable === true ? 10 : 1000;
    const r = await api(`api/requests${query({ since: '24h', per_page: perPage })}`);
    if (!r.ok) return { ok: false, rows: [], total: 0, error: r.error };
    return { ok: true, rows: r.data.requests || [], total: Number(r.data.total || 0) };
  }

  /** As /api/stats counts them: everything but `success` and `input_required` (error, tool_error, timeout, cancelled). */
  const isError = (row) => row.status !== 'success' && row.status !== 'input_required';

  function percentile(sorted, p) {
    if (!sorted.length) return null;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[rank];
  }

  /** Per-tool and per-client statistics from ledger rows, shaped like /api/stats. */
  async function computeStats(rows, sessionsById) {
    const list = rows.ok ? rows.rows : [];
    const group = (key) => {
      const groups = new Map();
      for (const row of list) {
        const k = key(row);
        if (k === null) continue;
        if (!groups.has(k)) groups.set(k, []);
        groups.get(k).push(row);
      }
      return [...groups.entries()].map(([k, items]) => {
        const durations = items.map((r) => Number(r.duration_us) / 1000).sort((a, b) => a - b);
        const errors = items.filter((r) => isError(r)).length;
        return {
          key: k,
          count: items.length,
          errors,
          error_rate: items.length ? errors / items.length : 0,
          p50_ms: percentile(durations, 50),
          p95_ms: percentile(durations, 95),
          p99_ms: percentile(durations, 99),
          avg_ms: durations.reduce((a, b) => a + b, 0) / (durations.length || 1),
          max_ms: durations[durations.length - 1] ?? null,
          tokens: items.reduce((a, r) => a + (Number(r.total_tokens) || 0), 0),
          estimated_cost_usd: items.reduce((a, r) => a + (Number(r.estimated_cost_usd) || 0), 0),
        };
      });
    };
    const tools = group((r) => (r.method === 'tools/call' ? r.tool_name || '(none)' : null)).map((g) => ({ ...g, tool_name: g.key }));
    const clients = group((r) => {
      const s = r.session_id ? sessionsById.get(r.session_id) : null;
      return s ? s.client_type : r.session_id ? '(older session)' : '(no session)';
    }).map((g) => ({ ...g, client_type: g.key }));
    const sortByCount = (a, b) => b.count - a.count;
    tools.sort(sortByCount);
    clients.sort(sortByCount);
    const totals = {
      requests: rows.ok ? rows.total : 0,
      errors: list.filter((r) => isError(r)).length,
      tokens: list.reduce((a, r) => a + (Number(r.total_tokens) || 0), 0),
      estimated_cost_usd: list.reduce((a, r) => a + (Number(r.estimated_cost_usd) || 0), 0),
    };
    let note = 'computed in this page from the ledger';
    if (!rows.ok) note = `unavailable (${rows.error})`;
    else if (rows.total > list.length) {
      note = `computed in this page from the latest ${fmtInt(list.length)} of ${fmtInt(rows.total)} requests (errors, tokens and cost cover those only)`;
    }
    return { totals, tools, clients, note };
  }

  /**
   * /api/stats rows in one shape: `tool_name`/`client_type` (or `name`), `error_rate` as a
   * fraction (or `error_rate_percent`), totals `requests` (or `count`).
   */
  function normalizeStats(stats) {
    const row = (r, keyField) => ({
      ...r,
      [keyField]: r[keyField] ?? r.name ?? '—',
      error_rate:
        r.error_rate !== undefined
          ? Number(r.error_rate)
          : r.error_rate_percent !== undefined
            ? Number(r.error_rate_percent) / 100
            : Number(r.count) ? Number(r.errors || 0) / Number(r.count) : 0,
    });
    const t = stats.totals || {};
    return {
      totals: {
        requests: t.requests ?? t.count ?? 0,
        errors: t.errors ?? 0,
        tokens: t.tokens ?? 0,
        estimated_cost_usd: t.estimated_cost_usd ?? 0,
      },
      tools: (stats.tools || []).map((r) => row(r, 'tool_name')),
      clients: (stats.clients || []).map((r) => row(r, 'client_type')),
      hourly: Array.isArray(stats.hourly) ? stats.hourly : null,
    };
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return add(el, children);
  }

  /** Bars of requests (and errors) per hour over the last 24 hours, as SVG. */
  function hourlyChart(hourly) {
    const byHour = new Map();
    for (const b of hourly) {
      const t = new Date(b.hour).getTime();
      if (Number.isFinite(t)) byHour.set(Math.floor(t / 3600000), b);
    }
    const nowHour = Math.floor(Date.now() / 3600000);
    const hours = [];
    for (let i = 23; i >= 0; i--) hours.push(nowHour - i);
    const max = Math.max(1, ...hours.map((x) => Number((byHour.get(x) || {}).count || 0)));
    const W = 1200;
    const H = 110;
    const top = 14;
    const bottom = 18;
    const bw = W / hours.length;
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'requests per hour, last 24 hours' });
    chart.append(svg('line', { x1: 0, x2: W, y1: H - bottom + 0.5, y2: H - bottom + 0.5, class: 'axis' }));
    chart.append(svg('text', { x: 2, y: 10, class: 'label' }, `${fmtInt(max)} / h`));
    hours.forEach((hour, i) => {
      const b = byHour.get(hour) || { count: 0, errors: 0 };
      const count = Number(b.count || 0);
      const errors = Number(b.errors || 0);
      const scale = (H - top - bottom) / max;
      const x = i * bw + 2;
      const hCount = count * scale;
      const hErr = Math.min(hCount, errors * scale);
      const local = new Date(hour * 3600000);
      const label = `${pad(local.getHours())}:00`;
      const g = svg('g', null, svg('title', null, `${label}: ${fmtInt(count)} requests, ${fmtInt(errors)} not successful`));
      g.append(svg('rect', { x, y: H - bottom - hCount, width: bw - 4, height: Math.max(0, hCount), class: 'bar' }));
      if (hErr > 0) g.append(svg('rect', { x, y: H - bottom - hErr, width: bw - 4, height: hErr, class: 'bar-err' }));
      if (i % 3 === 0 || i === hours.length - 1) g.append(svg('text', { x: x + (bw - 4) / 2, y: H - 4, class: 'label', 'text-anchor': 'middle' }, label));
      chart.append(g);
    });
    return h('div', null, chart, h('p', { class: 'muted legend' }, h('span', { class: 'swatch ok' }), ' requests ', h('span', { class: 'swatch err' }), ' not successful (error, tool_error, timeout, cancelled)'));
  }

  function card(title, big, lines, cls, caption) {
    return h(
      'div',
      { class: `card ${cls || ''}` },
      h('h3', null, title),
      h('div', { class: 'big-line' }, big, caption ? h('span', { class: 'caption' }, ` ${caption}`) : null),
      h(
        'dl',
        { class: 'card-kv' },
        lines.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
      ),
    );
  }

  /** Table cells of latencies in milliseconds (`fields` of a statistics row), µs precision under 10 ms. */
  function latencyCells(row, fields) {
    const ms = (v) => (v === null || v === undefined ? '—' : fmtMs(v, Number(v) < 10 ? Number(v) * 1000 : null));
    return fields.map((f) => h('td', { class: 'num' }, ms(row[f])));
  }

  function statsTable(rows, keyField, keyLabel, empty) {
    if (!rows || !rows.length) return h('p', { class: 'empty' }, empty);
    return table(
      [
        keyLabel,
        numTh('Calls'),
        numTh('Errors'),
        numTh('p50'),
        numTh('p95'),
        numTh('p99'),
        numTh('Max'),
        numTh('Tokens (est.)'),
        numTh('Cost (est.)'),
      ],
      rows.map((r) =>
        h(
          'tr',
          null,
          h('td', { class: keyField === 'tool_name' ? 'tool' : null }, r[keyField] ?? '—'),
          h('td', { class: 'num' }, fmtInt(r.count)),
          h('td', { class: `num ${Number(r.errors) > 0 ? 'bad-text' : ''}` }, `${fmtInt(r.errors)} (${fmtPct(r.error_rate)})`),
          latencyCells(r, ['p50_ms', 'p95_ms', 'p99_ms', 'max_ms']),
          h('td', { class: 'num' }, fmtInt(r.tokens)),
          h('td', { class: 'num' }, fmtCost(r.estimated_cost_usd)),
        ),
      ),
      { class: 'stats' },
    );
  }

  function sessionsTable(sessions) {
    if (!sessions.length) return h('p', { class: 'empty' }, 'No sessions yet: connect an assistant (see Connect).');
    return table(
      ['Client', 'Type', 'Protocol', 'Kind', 'Status', 'Connected', 'Last activity', numTh('Requests'), numTh('Errors', 'error, tool_error or timeout'), numTh('Cost (est.)', 'Estimated cost in USD')],
      sessions.map((s) =>
        h(
          'tr',
          {
            class: 'session-row clickable',
            'data-session-id': s.session_id,
            onclick: (event) => {
              if (event.target.closest('a')) return;
              location.hash = sessionHref(s.session_id);
            },
          },
          h('td', null, h('a', { href: sessionHref(s.session_id), title: s.session_id }, clientLabel(s))),
          h('td', null, s.client_type || '—'),
          h('td', null, s.protocol_version || '—'),
          h('td', null, s.kind || '—'),
          h('td', null, badge(s.status, s.disconnect_reason ? `ended: ${s.disconnect_reason}` : null), s.disconnect_reason ? h('span', { class: 'muted' }, ` ${s.disconnect_reason}`) : null),
          timeCell(s.connected_at),
          agoCell(s.last_activity),
          h('td', { class: 'num', 'data-testid': 'session-requests' }, fmtInt((s.totals || {}).requests ?? 0)),
          h('td', { class: 'num' }, fmtInt((s.totals || {}).errors ?? 0)),
          h('td', { class: 'num' }, fmtCost((s.totals || {}).estimated_cost_usd)),
        ),
      ),
      { class: 'sessions' },
    );
  }

  function field(label, input) {
    return h('label', { class: 'field' }, h('span', null, label), input);
  }

  function select(name, value, options) {
    return h(
      'select',
      { name },
      options.map(([v, label]) => h('option', { value: v, selected: v === (value || '') }, label)),
    );
  }

  function sessionsView(route) {
    const p = route.params;
    const page = Math.max(1, Number(p.get('page')) || 1);
    const filters = {
      status: p.get('status') || '',
      client_type: p.get('client_type') || '',
      kind: p.get('kind') || '',
    };
    const form = h(
      'form',
      { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
      field('Status', select('status', filters.status, [['', 'any'], ['active', 'active'], ['idle', 'idle'], ['disconnected', 'disconnected'], ['revoked', 'revoked']])),
      field('Client type', h('input', { name: 'client_type', value: filters.client_type, placeholder: 'e.g. Claude Code', list: 'client-types' })),
      field('Kind', select('kind', filters.kind, [['', 'any'], ['session', 'session'], ['logical', 'logical']])),
      h('datalist', { id: 'client-types' }, ['Claude Code', 'Cursor', 'Windsurf', 'Cline', 'VS Code', 'Gemini CLI', 'Codex', 'Zed', 'MCP Inspector', 'unknown'].map((v) => h('option', { value: v }))),
      h('button', { type: 'submit' }, 'Filter'),
      h('a', { href: '#/sessions', class: 'reset' }, 'reset'),
    );
    function apply() {
      const data = new FormData(form);
      setHash('sessions', { status: data.get('status'), client_type: data.get('client_type'), kind: data.get('kind') });
    }
    form.addEventListener('change', (e) => {
      if (e.target.tagName === 'SELECT') apply();
    });
    const list = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    const sessionHealth = sessionHealthBox();
    const el = h('section', { class: 'view' }, h('h1', null, 'Sessions'), sessionHealth.el, form, list);

    async function refresh() {
      const [r] = await Promise.all([api(`api/sessions${query({ ...filters, page: page > 1 ? page : null })}`), sessionHealth.refresh()]);
      if (!r.ok) {
        list.replaceChildren(errorBox(`Could not list sessions: ${r.error}`));
        return;
      }
      const perPage = Number(r.data.per_page) || 50;
      list.replaceChildren(
        sessionsTable(r.data.sessions || []),
        pager(page, perPage, r.data.total, (n) => setHash('sessions', { ...filters, page: n })),
      );
    }
    return { el, refresh, title: 'Sessions' };
  }

  /** The session's totals from the ledger, as summary rows (text only). */
  function totalsSummary(t) {
    return [
      ['requests', fmtInt(t.requests ?? 0)],
      ['errors', fmtInt(t.errors ?? 0)],
      ['tokens (est.)', fmtInt(t.estimated_tokens ?? 0)],
      ['cost (est.)', fmtCost(t.estimated_cost_usd)],
      t.first_request_at ? ['first request', `${fmtTime(t.first_request_at)} (${ago(t.first_request_at)})`] : null,
      t.last_request_at ? ['last request', `${fmtTime(t.last_request_at)} (${ago(t.last_request_at)})`] : null,
    ];
  }

  function sessionView(route) {
    const id = route.arg || '';
    const head = h('div', null, h('h1', null, 'Session'), h('p', { class: 'muted' }, 'Loading…'));
    const timeline = requestTable({ showSession: false, empty: 'This session has made no requests yet.' });
    const count = h('p', { class: 'muted' });
    const el = h(
      'section',
      { class: 'view' },
      h('p', { class: 'crumbs' }, h('a', { href: '#/sessions' }, '← sessions')),
      head,
      h('h2', null, 'Timeline'),
      count,
      timeline.el,
    );
    let headerDone = false;

    async function refresh() {
      const r = await api(`api/sessions/${encodeURIComponent(id)}`);
      if (!r.ok) {
        head.replaceChildren(h('h1', null, 'Session'), errorBox(r.status === 404 ? `No session has id ${id}.` : `Could not load the session: ${r.error}`));
        return;
      }
      const s = r.data.session || {};
      const requests = r.data.requests || [];
      const total = Number(r.data.request_count ?? requests.length);
      const summary = [
        ['session id', h('code', null, s.session_id)],
        ['client', clientLabel(s)],
        ['client type', s.client_type || '—'],
        ['protocol', s.protocol_version || '—'],
        ['kind', s.kind || '—'],
        ['status', [badge(s.status), s.disconnect_reason ? ` ${s.disconnect_reason}` : null]],
        ['connected', `${fmtTime(s.connected_at)} (${ago(s.connected_at)})`],
        ['last activity', `${fmtTime(s.last_activity)} (${ago(s.last_activity)})`],
        s.disconnected_at ? ['ended', `${fmtTime(s.disconnected_at)} (${ago(s.disconnected_at)})`] : null,
        s.principal ? ['principal', s.principal] : null,
        ...totalsSummary(s.totals || {}),
      ].filter(Boolean);
      const open = headerDone && head.querySelector('details[open]');
      head.replaceChildren(
        h('h1', null, 'Session: ', h('span', { class: 'client-name' }, s.client_name || '(no name)')),
        h('dl', { class: 'summary' }, summary.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
        h('details', { open: !!open }, h('summary', null, 'capabilities and initialize parameters'), detailsList({ client_capabilities: s.client_capabilities, initialize_params: s.initialize_params })),
      );
      headerDone = true;
      document.title = `${s.client_name || 'Session'} · Steward`;
      count.replaceChildren(
        `${fmtInt(total)} request${total === 1 ? '' : 's'}`,
        total > requests.length ? ` (showing the latest ${fmtInt(requests.length)})` : '',
        ' · ',
        h('a', { href: `#/requests${query({ session_id: id })}` }, 'open in the request log'),
      );
      timeline.render(requests, null);
    }
    return { el, refresh, title: 'Session' };
  }

  const STATUSES = ['success', 'error', 'tool_error', 'cancelled', 'timeout', 'input_required'];
  const METHODS = ['initialize', 'notifications/initialized', 'tools/list', 'tools/call', 'ping', 'resources/list', 'prompts/list', 'notifications/cancelled'];

  function requestsView(route) {
    const p = route.params;
    const page = Math.max(1, Number(p.get('page')) || 1);
    const perPage = Math.min(1000, Math.max(1, Number(p.get('per_page')) || 50));
    const filters = {
      session_id: p.get('session_id') || '',
      tool: p.get('tool') || '',
      method: p.get('method') || '',
      status: p.get('status') || '',
      since: p.get('since') || '',
      until: p.get('until') || '',
      q: p.get('q') || '',
    };
    const input = (name, placeholder, extra) => h('input', { name, value: filters[name], placeholder, ...extra });
    const form = h(
      'form',
      { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
      field('Search', input('q', 'text in method, tool, error, session', { type: 'search', size: 24, 'data-testid': 'request-search' })),
      field('Session id', input('session_id', 'any', { size: 18 })),
      field('Tool', input('tool', 'e.g. find_tasks', { list: 'tool-names' })),
      field('Method', input('method', 'e.g. tools/call', { list: 'method-names' })),
      field('Status', select('status', filters.status, [['', 'any'], ...STATUSES.map((s) => [s, s])])),
      field('Since', input('since', '15m, 24h or RFC 3339', { size: 14 })),
      field('Until', input('until', '1h or RFC 3339', { size: 14 })),
      field('Per page', select('per_page', String(perPage), [...new Set(['25', '50', '100', '200', String(perPage)])].sort((a, b) => a - b).map((n) => [n, n]))),
      h('datalist', { id: 'method-names' }, METHODS.map((m) => h('option', { value: m }))),
      h('datalist', { id: 'tool-names' }),
      h('button', { type: 'submit' }, 'Search'),
      h('a', { href: '#/requests', class: 'reset' }, 'reset'),
    );
    function apply(newPage) {
      const data = new FormData(form);
      const next = {};
      for (const key of Object.keys(filters)) next[key] = String(data.get(key) || '').trim();
      const pp = String(data.get('per_page') || '50');
      next.per_page = pp === '50' ? '' : pp;
      next.page = newPage && newPage > 1 ? newPage : '';
      setHash('requests', next);
    }
    form.addEventListener('change', (e) => {
      if (e.target.tagName === 'SELECT') apply();
    });
    const info = h('div', { class: 'muted' });
    const log = requestTable({ showSession: !filters.session_id, empty: 'No request matches these filters.' });
    const pagerBox = h('div');
    const el = h('section', { class: 'view' }, h('h1', null, 'Requests'), form, info, log.el, pagerBox);
    let toolNamesLoaded = false;

    async function refresh() {
      const params = { ...filters, page: page > 1 ? page : null, per_page: perPage !== 50 ? perPage : null };
      const path = `api/requests${query(params)}`;
      const [r, sessionsById] = await Promise.all([api(path), sessionMap()]);
      if (!r.ok) {
        info.replaceChildren(errorBox(`The server refused this search: ${r.error}`));
        log.render([], null);
        pagerBox.replaceChildren();
        return;
      }
      const rows = r.data.requests || [];
      const exportLink = (format, label) =>
        h('a', { href: `api/requests/export${query({ ...filters, format })}`, download: '', 'data-testid': `export-${format}` }, label);
      info.replaceChildren(
        `${fmtInt(r.data.total)} matching request${Number(r.data.total) === 1 ? '' : 's'}, newest first · tokens and costs are estimates · `,
        h('a', { href: path }, 'this page as JSON'),
        ' · export all matches: ',
        exportLink('csv', 'CSV'),
        ' ',
        exportLink('jsonl', 'JSON lines'),
      );
      log.render(rows, sessionsById);
      pagerBox.replaceChildren(pager(page, Number(r.data.per_page) || perPage, r.data.total, (n) => apply(n)));
      if (!toolNamesLoaded) {
        toolNamesLoaded = true;
        const names = new Set(rows.map((x) => x.tool_name).filter(Boolean));
        const stats = await getStats('24h');
        if (stats && stats.tools) for (const t of stats.tools) if (t.tool_name || t.name) names.add(t.tool_name || t.name);
        const list = form.querySelector('#tool-names');
        if (list) list.replaceChildren(...[...names].sort().map((n) => h('option', { value: n })));
      }
    }
    return { el, refresh, title: 'Requests' };
  }

  function connectView() {
    const url = `${location.origin}/mcp`;
    const snippets = [
      ['Claude Code', 'In a terminal:', `claude mcp add --transport http steward ${url}`],
      ['Claude Code (stdio, no server to keep running)', 'In a terminal (the same default database as steward serve):', 'claude mcp add steward -- steward stdio'],
      ['Cursor', '~/.cursor/mcp.json (or .cursor/mcp.json in a project):', JSON.stringify({ mcpServers: { steward: { url } } }, null, 2)],
      ['VS Code', '.vscode/mcp.json:', JSON.stringify({ servers: { steward: { type: 'http', url } } }, null, 2)],
      ['Windsurf', '~/.codeium/windsurf/mcp_config.json:', JSON.stringify({ mcpServers: { steward: { serverUrl: url } } }, null, 2)],
      ['Gemini CLI', '~/.gemini/settings.json:', JSON.stringify({ mcpServers: { steward: { httpUrl: url } } }, null, 2)],
      [
        'Any client, by hand (curl)',
        'Starts a session; the answer carries its Mcp-Session-Id header:',
        `curl -si ${url} \\\n  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"8"}}}'`,
      ],
    ];
    const el = h(
      'section',
      { class: 'view' },
      h('h1', null, 'Connect your assistant'),
      h('p', null, 'This server\'s MCP endpoint is ', h('code', { 'data-testid': 'mcp-url' }, url), '. Copy the snippet for your client:'),
      snippets.map(([title, where, text]) => snippet(title, where, text)),
      h('p', { class: 'muted' }, 'A new client shows up under Sessions as soon as it sends initialize.'),
    );
    return { el, refresh: null, title: 'Connect' };
  }

  function snippet(title, where, text) {
    const pre = h('pre', { class: 'snippet' }, h('code', null, text));
    const button = h('button', { type: 'button', class: 'copy' }, 'Copy');
    button.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = 'Copied';
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(pre);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = 'Selected: press Ctrl+C';
      }
      setTimeout(() => {
        button.textContent = 'Copy';
      }, 2000);
    });
    return h('div', { class: 'snippet-box' }, h('h3', null, title, ' ', button), h('p', { class: 'muted' }, where), pre);
  }

  function notFoundView(route) {
    return {
      el: h('section', { class: 'view' }, h('h1', null, 'Not here'), h('p', null, `There is no view named “${route.name}”. `, h('a', { href: '#/overview' }, 'Go to the overview.'))),
      refresh: null,
      title: 'Not found',
    };
  }


  // ---------------------------------------------------------------- tools

  const RANGES = [['1h', 'last hour'], ['24h', 'last 24 h'], ['7d', 'last 7 days']];

  /**
   * Calls per hour over a range, as SVG bars (errors in red), built with DOM calls only.
   * `series`: [{hour, count, errors}] (missing hours are zero); `hours`: how many to show.
   */
  function callsChart(series, hours, label) {
    const byHour = new Map();
    for (const b of series) {
      const t = new Date(b.hour).getTime();
      if (Number.isFinite(t)) byHour.set(Math.floor(t / 3600000), b);
    }
    const nowHour = Math.floor(Date.now() / 3600000);
    const slots = [];
    for (let i = hours - 1; i >= 0; i--) slots.push(nowHour - i);
    const max = Math.max(1, ...slots.map((x) => Number((byHour.get(x) || {}).count || 0)));
    const W = 1200;
    const H = 140;
    const top = 16;
    const bottom = 18;
    const bw = W / slots.length;
    const scale = (H - top - bottom) / max;
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label, 'data-testid': 'tool-chart' });
    chart.append(svg('line', { x1: 0, x2: W, y1: H - bottom + 0.5, y2: H - bottom + 0.5, class: 'axis' }));
    chart.append(svg('text', { x: 2, y: 11, class: 'label' }, `${fmtInt(max)} / h`));
    const labelEvery = Math.max(1, Math.ceil(slots.length / 8));
    slots.forEach((hour, i) => {
      const b = byHour.get(hour) || {};
      const count = Number(b.count || 0);
      const errors = Math.min(count, Number(b.errors || 0));
      const x = i * bw + Math.min(2, bw * 0.1);
      const w = Math.max(1, bw - Math.min(4, bw * 0.2));
      const d = new Date(hour * 3600000);
      const when = slots.length > 24 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:00` : `${pad(d.getHours())}:00`;
      const g = svg('g', null, svg('title', null, `${when}: ${fmtInt(count)} calls, ${fmtInt(errors)} not successful`));
      if (count > 0) g.append(svg('rect', { x, y: H - bottom - count * scale, width: w, height: count * scale, class: 'bar' }));
      if (errors > 0) g.append(svg('rect', { x, y: H - bottom - errors * scale, width: w, height: errors * scale, class: 'bar-err' }));
      if (i % labelEvery === 0) g.append(svg('text', { x: x + w / 2, y: H - 4, class: 'label', 'text-anchor': 'middle' }, when));
      chart.append(g);
    });
    return chart;
  }

  /** A tool's (or all tools') calls and unsuccessful calls per hour from /api/stats' hourly buckets. */
  function toolSeries(hourly, name) {
    return (hourly || []).map((b) => ({
      hour: b.hour,
      count: name ? Number((b.tools || {})[name] || 0) : Number(b.count || 0),
      errors: name ? Number((b.tool_errors || {})[name] || 0) : Number(b.errors || 0),
    }));
  }

  function toolsView(route) {
    const p = route.params;
    const range = RANGES.some(([v]) => v === p.get('since')) ? p.get('since') : '24h';
    const selected = p.get('tool') || '';
    const hours = { '1h': 2, '24h': 24, '7d': 168 }[range];
    const rangeLinks = h(
      'p',
      { class: 'filters ranges' },
      'Period: ',
      RANGES.map(([v, label]) =>
        h('a', { href: `#/tools${query({ since: v, tool: selected })}`, class: v === range ? 'current' : null, 'aria-current': v === range ? 'true' : null }, label),
      ),
    );
    const chartTitle = h('h2');
    const chartBox = h('div', { class: 'trend' }, h('p', { class: 'muted' }, 'Loading…'));
    const tableBox = h('div');
    const note = h('p', { class: 'muted source' });
    const el = h('section', { class: 'view' }, h('h1', null, 'Tools'), rangeLinks, chartTitle, chartBox, note, h('h2', null, 'Per tool'), tableBox);

    async function refresh() {
      const stats = await getStats(range);
      if (!stats) {
        chartBox.replaceChildren(errorBox('Tool statistics need /api/stats, which did not answer.'));
        tableBox.replaceChildren();
        return;
      }
      const tools = stats.tools || [];
      const known = tools.some((t) => t.name === selected);
      chartTitle.replaceChildren(
        known ? h('span', null, 'Calls per hour · ', h('span', { class: 'tool' }, selected), ' ', h('a', { class: 'more', href: `#/tools${query({ since: range })}` }, 'all tools')) : 'Calls per hour · all tools',
      );
      chartBox.replaceChildren(
        callsChart(toolSeries(stats.hourly, known ? selected : null), hours, known ? `calls per hour of ${selected}` : 'calls per hour, all tools'),
        h('p', { class: 'muted legend', 'data-testid': 'tool-chart-legend' }, h('span', { class: 'swatch ok' }), ' calls ', h('span', { class: 'swatch err' }), ' errors (not successful: error, tool_error, timeout, cancelled)'),
      );
      note.textContent =
        stats.percentiles === 'histogram'
          ? 'Percentiles from hourly latency histograms (within ±3% of the exact value); counts, errors, average and maximum are exact.'
          : 'Percentiles computed from every request of the period.';
      tableBox.replaceChildren(toolsTable(tools, range, selected));
    }
    return { el, refresh, title: 'Tools', minInterval: 2000 };
  }

  function toolsTable(tools, range, selected) {
    if (!tools.length) return h('p', { class: 'empty' }, 'No calls in this period.');
    return table(
      ['Tool / method', numTh('Calls'), numTh('Errors'), numTh('Error rate'), numTh('p50'), numTh('p95'), numTh('p99'), numTh('Avg'), numTh('Max')],
      tools.map((t) =>
        h(
          'tr',
          { class: `tool-row clickable${t.name === selected ? ' selected' : ''}`, 'data-tool': t.name },
          h('td', { class: 'tool' }, h('a', { href: `#/tools${query({ since: range, tool: t.name })}`, title: 'show its calls over time' }, t.name)),
          h('td', { class: 'num' }, fmtInt(t.count)),
          h('td', { class: `num ${Number(t.errors) > 0 ? 'bad-text' : ''}` }, fmtInt(t.errors)),
          h('td', { class: 'num' }, `${Number(t.error_rate_percent || 0).toFixed(2)}%`),
          latencyCells(t, ['p50_ms', 'p95_ms', 'p99_ms', 'avg_ms', 'max_ms']),
        ),
      ),
      { class: 'stats tools' },
    );
  }

  // ---------------------------------------------------------------- upstreams (gateway mode)

  /**
   * The servers Steward stands in front of: up/down and breaker (this replica's view), calls,
   * errors, latencies and sessions re-established (the ledger's, every replica).
   */
  function upstreamsView(route) {
    const p = route.params;
    const range = RANGES.some(([v]) => v === p.get('since')) ? p.get('since') : '24h';
    const rangeLinks = h(
      'p',
      { class: 'filters ranges' },
      'Period: ',
      RANGES.map(([v, label]) =>
        h('a', { href: `#/upstreams${query({ since: v })}`, class: v === range ? 'current' : null, 'aria-current': v === range ? 'true' : null }, label),
      ),
    );
    const box = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    const note = h(
      'p',
      { class: 'muted source' },
      'State, breaker and child restarts: what this server saw last. Calls, errors, latencies and sessions re-established: from the ledger, every replica. ',
      h('a', { href: `api/upstreams${query({ since: range })}` }, '/api/upstreams'),
    );
    const el = h('section', { class: 'view' }, h('h1', null, 'Upstreams'), rangeLinks, box, note);

    async function refresh() {
      const r = await api(`api/upstreams${query({ since: range })}`);
      if (!r.ok) {
        box.replaceChildren(errorBox(`Upstreams: ${r.error}`));
        return;
      }
      const upstreams = r.data.upstreams || [];
      showUpstreamsLink(upstreams.length > 0);
      box.replaceChildren(upstreams.length ? upstreamsTable(upstreams) : h('p', { class: 'empty' }, 'No upstreams: start Steward with --upstream NAME=URL to put it in front of another MCP server.'));
    }
    // Ledger rows of upstream calls refresh it; others do not.
    const wants = (kind, row) => kind === 'request' && Boolean(row && row.upstream);
    return { el, refresh, title: 'Upstreams', only: [], wants, minInterval: 2000 };
  }

  function upstreamsTable(upstreams) {
    const ms = (l, f) => (l && l[f] !== undefined ? l[f] : null);
    return table(
      [
        'Upstream',
        'State',
        'Breaker',
        numTh('Calls'),
        numTh('Errors', 'no answer: unreachable, down, timed out (a tool error is an answer)'),
        numTh('p50 / p95 / p99 upstream', "the upstream's share of each call"),
        numTh('p50 / p95 / p99 total', 'each call as the client saw it'),
        numTh('Sessions re-established', 'the upstream forgot a session (it restarted) and Steward initialized it again'),
        numTh('Child restarts', 'a stdio upstream’s process started again'),
        'Last error',
      ],
      upstreams.map((u) =>
        h(
          'tr',
          { class: 'upstream-row', 'data-upstream': u.name, 'data-state': u.state },
          h('td', { class: 'name' }, h('strong', null, u.name), h('br'), h('span', { class: 'muted' }, u.configured ? `${u.transport} · ${u.location}` : 'not configured here (ledger only)')),
          h('td', { class: 'state' }, badge(u.state, u.since ? `since ${fmtTime(u.since)}` : 'no contact yet')),
          h('td', { class: 'breaker' }, u.breaker ? badge(u.breaker, `opened ${fmtInt(u.breaker_opened)} times; ${fmtInt(u.short_circuited)} calls refused while open`) : '—'),
          h('td', { class: 'num calls' }, fmtInt(u.calls)),
          h('td', { class: `num errors ${Number(u.errors) > 0 ? 'bad-text' : ''}` }, fmtInt(u.errors), Number(u.tool_errors) > 0 ? h('span', { class: 'muted' }, ` (+${fmtInt(u.tool_errors)} tool)`) : null),
          h('td', { class: 'num latency-upstream' }, latencyTriple(u.upstream_latency, ms)),
          h('td', { class: 'num latency-total' }, latencyTriple(u.total_latency, ms)),
          h('td', { class: 'num reestablished' }, fmtInt(u.sessions_reestablished)),
          h('td', { class: 'num restarts' }, u.child_restarts === null || u.child_restarts === undefined ? '—' : fmtInt(u.child_restarts)),
          h('td', { class: 'last-error' }, u.last_error ? [h('span', { class: 'bad-text' }, u.last_error.message), h('br'), h('span', { class: 'muted', title: u.last_error.at || '' }, ago(u.last_error.at))] : h('span', { class: 'muted' }, 'none')),
        ),
      ),
      { class: 'stats upstreams' },
    );
  }

  /** "p50 / p95 / p99" of a latency object, µs precision under 10 ms. */
  function latencyTriple(latency, ms) {
    const one = (f) => {
      const v = ms(latency, f);
      return v === null ? '—' : fmtMs(v, Number(v) < 10 ? Number(v) * 1000 : null);
    };
    return `${one('p50_ms')} / ${one('p95_ms')} / ${one('p99_ms')}`;
  }

  /** The Upstreams link is shown only when there is something to show. */
  function showUpstreamsLink(shown) {
    const link = document.querySelector('#nav a[data-route="upstreams"]');
    if (link) link.hidden = !shown;
  }

  /** At start: configured upstreams are in /health; ledger-only ones need /api/upstreams. */
  async function detectUpstreams(health) {
    const listed = health && health.data && Array.isArray(health.data.upstreams) && health.data.upstreams.length > 0;
    if (listed) return showUpstreamsLink(true);
    const r = await api('api/upstreams');
    showUpstreamsLink(Boolean(r.ok && r.data && (r.data.upstreams || []).length));
  }

  // ---------------------------------------------------------------- session health

  /** Live sessions by time since last activity, and why sessions ended lately. */
  function sessionHealthPanel(data) {
    const live = data.live || {};
    const d = data.disconnects || {};
    const bucket = (name, label, title) =>
      h('div', { class: `bucket bucket-${name}`, title, 'data-testid': `health-${name}` }, h('span', { class: 'big' }, fmtInt(live[name])), h('span', null, label));
    const reasons = Array.isArray(d.reasons) ? d.reasons : [];
    return h(
      'div',
      { class: 'health-panel', 'data-testid': 'session-health' },
      h(
        'div',
        { class: 'buckets' },
        bucket('healthy', 'healthy', 'live, active in the last 5 minutes'),
        bucket('aging', 'aging', 'live, last active 5 to 10 minutes ago'),
        bucket('stale', 'stale', 'live, no activity for over 10 minutes'),
      ),
      h(
        'div',
        { class: 'disconnects' },
        h('p', null, `${fmtInt(d.total)} ended in the last ${d.window || '?'} · ${Number(d.rate_percent || 0).toFixed(1)}% of ${fmtInt(d.sessions_in_window)} sessions live in that time`),
        reasons.length
          ? h('ul', { class: 'reasons' }, reasons.map((r) => h('li', null, h('code', null, r.reason), ` × ${fmtInt(r.count)}`)))
          : h('p', { class: 'muted' }, 'No disconnects.'),
      ),
    );
  }

  /** A box that shows /api/sessions/health, refreshed with its view. */
  function sessionHealthBox() {
    const box = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    async function refresh() {
      const r = await api('api/sessions/health');
      if (r.ok) box.replaceChildren(sessionHealthPanel(r.data));
      else if (r.status === 404) box.replaceChildren(h('p', { class: 'muted' }, 'This server does not report session health.'));
      else box.replaceChildren(errorBox(`Session health: ${r.error}`));
    }
    return { el: box, refresh };
  }

  // ---------------------------------------------------------------- the board

  const TASK_STATUSES = ['todo', 'doing', 'review', 'done'];
  const COLUMN_PAGE = 50; // cards per column page: a 2,000-task board stays light

  /** A state-changing call with the CSRF header the admin guard asks browsers for. */
  async function apiWrite(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: { Accept: 'application/json', 'Content-Type': 'application/json', 'X-Steward-CSRF': '1' },
        body: JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (_) {
      return { ok: false, status: 0, data: null, error: 'cannot reach the server', field: null };
    }
    if (response.status === 401) {
      window.location.assign('login');
      return { ok: false, status: 401, data: null, error: 'sign in first', field: null };
    }
    const data = await response.json().catch(() => null);
    const error = data && data.error;
    return {
      ok: response.ok,
      status: response.status,
      data,
      error: response.ok ? null : String((error && error.message) || `${response.status} ${response.statusText}`),
      field: (error && error.field) || null,
    };
  }

  function projectHref(id) {
    return `#/projects/${encodeURIComponent(id)}`;
  }

  function taskHref(id) {
    return `#/tasks/${encodeURIComponent(id)}`;
  }

  function progressBar(percent) {
    const bar = h('span', { class: 'progress', title: `${percent}% done` }, h('span', { class: 'progress-done' }));
    bar.firstChild.style.width = `${Math.max(0, Math.min(100, Number(percent) || 0))}%`;
    return bar;
  }

  function projectsView() {
    const list = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
    const el = h('section', { class: 'view' }, h('h1', null, 'Projects'), list);
    async function refresh() {
      const r = await api('api/projects');
      if (!r.ok) {
        list.replaceChildren(errorBox(`Could not list projects: ${r.error}`));
        return;
      }
      const projects = r.data.projects || [];
      if (!projects.length) {
        list.replaceChildren(h('p', { class: 'muted' }, 'No projects yet. Agents create them with manage_project.'));
        return;
      }
      list.replaceChildren(
        table(
          ['Project', ...TASK_STATUSES, 'Progress', 'Last activity'],
          projects.map((p) =>
            h(
              'tr',
              { 'data-project': p.id },
              h('td', { class: 'wrap' }, h('a', { href: projectHref(p.id) }, p.title)),
              TASK_STATUSES.map((s) => h('td', { class: 'num' }, fmtInt(p[s]))),
              h('td', null, progressBar(p.progress_percent), ` ${p.progress_percent}% of ${fmtInt(p.total)}`),
              agoCell(p.last_activity),
            ),
          ),
        ),
      );
    }
    return { el, refresh, title: 'Projects', only: ['board'] };
  }

  /** The create/edit form of a task; `task` null for a new one. Calls `done` after saving. */
  function taskForm(projectId, task, done) {
    const t = task || {};
    const problem = h('p', { class: 'error-box', role: 'alert', hidden: true });
    const input = (name, value, attrs) => h('input', { name, value: value ?? '', ...attrs });
    const form = h(
      'form',
      { class: 'task-form', 'aria-label': task ? 'Edit task' : 'New task' },
      h('h2', null, task ? 'Edit task' : 'New task'),
      field('Title', input('title', t.title, { required: true, maxlength: 500 })),
      field('Description', h('textarea', { name: 'description', rows: 5, text: t.description || '' })),
      field('Assignee', input('assignee', t.assignee || 'User')),
      field('Feature', input('feature', t.feature)),
      field('Order (0–100)', input('task_order', t.task_order ?? 0, { type: 'number' })),
      field('Status', select('status', t.status || 'todo', TASK_STATUSES.map((s) => [s, s]))),
      problem,
      h('button', { type: 'submit' }, task ? 'Save' : 'Create'),
      h('button', { type: 'button', onclick: () => done(false) }, 'Cancel'),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const body = {};
      for (const name of ['title', 'description', 'assignee', 'feature', 'status']) body[name] = String(data.get(name) ?? '');
      const order = String(data.get('task_order') ?? '').trim();
      body.task_order = order === '' ? 0 : Number(order);
      if (!body.feature) delete body.feature;
      const r = task
        ? await apiWrite('PATCH', `api/tasks/${encodeURIComponent(task.id)}`, body)
        : await apiWrite('POST', `api/projects/${encodeURIComponent(projectId)}/tasks`, body);
      for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      if (!r.ok) {
        problem.hidden = false;
        problem.textContent = r.field ? `${r.field}: ${r.error}` : r.error;
        const bad = r.field && form.elements.namedItem(r.field);
        if (bad && bad.setAttribute) {
          bad.setAttribute('aria-invalid', 'true');
          bad.focus();
        }
        return;
      }
      done(true);
    });
    return form;
  }

  /** Who holds a task's claim: the client by name, a link to its session, and when the lease
   * ends (the session id stays in the link's tooltip). */
  function holder(task) {
    if (!task.claimed_by) return null;
    return h('span', { class: 'holder', title: `claimed by session ${task.claimed_by}` },
      'held by ', h('span', { class: 'holder-client' }, task.claimed_client || '(no name)'), ' · ',
      h('a', { href: sessionHref(task.claimed_by), title: task.claimed_by, onclick: (e) => e.stopPropagation() }, 'session'),
      ' · until ', h('time', { datetime: task.lease_until || '', title: task.lease_until || '' }, fmtTime(task.lease_until)));
  }

  /** One card: title, assignee, feature, order, holder, and a status select. */
  function taskCard(task, move, edit) {
    const status = select('status', task.status, TASK_STATUSES.map((s) => [s, s]));
    status.setAttribute('aria-label', `Status of ${task.title}`);
    status.addEventListener('change', () => move(task, status.value));
    const card = h(
      'article',
      { class: 'card', draggable: 'true', 'data-task': task.id },
      h('a', { class: 'card-title', href: taskHref(task.id) }, task.title),
      h(
        'div',
        { class: 'card-meta' },
        h('span', { class: 'assignee', title: 'assignee' }, task.assignee),
        task.feature ? h('span', { class: 'feature', title: 'feature' }, task.feature) : null,
        h('span', { class: 'order', title: 'task_order' }, `#${task.task_order}`),
        holder(task),
      ),
      h('div', { class: 'card-actions' }, status, h('button', { type: 'button', onclick: () => edit(task) }, 'Edit')),
    );
    card.addEventListener('dragstart', (e) => {
      e.dataTransfer.setData('text/plain', task.id);
      e.dataTransfer.effectAllowed = 'move';
    });
    return card;
  }

  function projectView(route) {
    const id = route.arg || '';
    const p = route.params;
    const filters = { q: p.get('q') || '', assignee: p.get('assignee') || '', feature: p.get('feature') || '' };
    const pages = Object.fromEntries(TASK_STATUSES.map((s) => [s, 1]));
    const tasksById = new Map();
    const head = h('div', null, h('h1', null, 'Project'));
    const message = h('p', { class: 'error-box', role: 'alert', hidden: true });
    const formSlot = h('div');
    const filterForm = h(
      'form',
      { class: 'filters', onsubmit: (e) => { e.preventDefault(); applyFilters(); } },
      field('Text', h('input', { name: 'q', value: filters.q, type: 'search' })),
      field('Assignee', h('input', { name: 'assignee', value: filters.assignee })),
      field('Feature', h('input', { name: 'feature', value: filters.feature })),
      h('button', { type: 'submit' }, 'Filter'),
      h('a', { href: projectHref(id), class: 'reset' }, 'reset'),
      h('button', { type: 'button', class: 'new-task', onclick: () => openForm(null) }, 'New task'),
    );
    function applyFilters() {
      const data = new FormData(filterForm);
      const next = `${projectHref(id)}${query({ q: data.get('q'), assignee: data.get('assignee'), feature: data.get('feature') })}`;
      if (location.hash === next) refreshNow();
      else location.hash = next;
    }
    const columns = Object.fromEntries(
      TASK_STATUSES.map((s) => {
        const list = h('div', { class: 'cards' });
        const foot = h('div', { class: 'column-foot' });
        const count = h('span', { class: 'muted' });
        const col = h('section', { class: 'column', 'data-status': s, 'aria-label': `${s} column` }, h('h2', null, s, ' ', count), list, foot);
        col.addEventListener('dragover', (e) => {
          e.preventDefault();
          col.classList.add('drop');
        });
        col.addEventListener('dragleave', () => col.classList.remove('drop'));
        col.addEventListener('drop', (e) => {
          e.preventDefault();
          col.classList.remove('drop');
          const task = tasksById.get(e.dataTransfer.getData('text/plain'));
          if (task && task.status !== s) move(task, s);
        });
        return [s, { col, list, foot, count }];
      }),
    );
    const docs = h('div', null);
    const el = h(
      'section',
      { class: 'view' },
      h('p', { class: 'crumbs' }, h('a', { href: '#/projects' }, '← projects')),
      head,
      filterForm,
      message,
      formSlot,
      h('div', { class: 'kanban' }, TASK_STATUSES.map((s) => columns[s].col)),
      docs,
    );

    async function move(task, status) {
      const r = await apiWrite('PATCH', `api/tasks/${encodeURIComponent(task.id)}`, { status });
      message.hidden = r.ok;
      if (!r.ok) message.textContent = `Could not move “${task.title}”: ${r.error}`;
      refreshNow();
    }

    function openForm(task) {
      formSlot.replaceChildren(
        taskForm(id, task, (saved) => {
          formSlot.replaceChildren();
          if (saved) refreshNow();
        }),
      );
      const first = formSlot.querySelector('input');
      if (first) first.focus();
    }

    async function loadColumn(s) {
      const c = columns[s];
      const r = await api(`api/projects/${encodeURIComponent(id)}/tasks${query({ ...filters, status: s, page: pages[s], per_page: COLUMN_PAGE })}`);
      if (!r.ok) {
        c.list.replaceChildren(errorBox(r.error));
        return;
      }
      const tasks = r.data.tasks || [];
      for (const t of tasks) tasksById.set(t.id, t);
      c.count.textContent = `(${fmtInt(r.data.total)})`;
      c.list.replaceChildren(...tasks.map((t) => taskCard(t, move, openForm)));
      if (!tasks.length) c.list.replaceChildren(h('p', { class: 'muted' }, 'No tasks.'));
      const total = Number(r.data.total) || 0;
      c.foot.replaceChildren(
        total > COLUMN_PAGE
          ? pager(pages[s], COLUMN_PAGE, total, (n) => {
              pages[s] = n;
              loadColumn(s);
            })
          : '',
      );
    }

    async function refresh() {
      const r = await api(`api/projects/${encodeURIComponent(id)}`);
      if (!r.ok) {
        head.replaceChildren(h('h1', null, 'Project'), errorBox(r.status === 404 ? `No project has id ${id}.` : `Could not load the project: ${r.error}`));
        return;
      }
      const project = r.data.project || {};
      const counts = r.data.counts || {};
      // replaceChildren would show a null as the text "null": add() skips it.
      head.replaceChildren();
      add(head, [
        h('h1', { class: 'wrap' }, project.title),
        project.description ? h('p', { class: 'wrap description' }, project.description) : null,
        h('p', { class: 'muted' }, progressBar(counts.progress_percent), ` ${counts.progress_percent ?? 0}% done · ${fmtInt(counts.total ?? 0)} live tasks`),
      ]);
      document.title = `${project.title} · Steward`;
      tasksById.clear();
      await Promise.all(TASK_STATUSES.map(loadColumn));
      await refreshDocs();
    }

    async function refreshDocs() {
      const base = `api/projects/${encodeURIComponent(id)}`;
      const [d, v] = await Promise.all([api(`${base}/documents`), api(`${base}/versions`)]);
      const open = docs.querySelector('details[open]');
      docs.replaceChildren(
        h('h2', null, 'Documents'),
        d.ok && (d.data.documents || []).length
          ? table(['Title', 'Type', 'Author', 'Updated'], d.data.documents.map((doc) =>
              h('tr', null,
                h('td', { class: 'wrap' }, h('button', { type: 'button', class: 'link', onclick: () => showDocument(doc.id) }, doc.title)),
                h('td', null, doc.document_type), h('td', null, doc.author), agoCell(doc.updated_at))))
          : h('p', { class: 'muted' }, d.ok ? 'No documents.' : d.error),
        h('div', { class: 'document' }),
        h('h2', null, 'Versions'),
        h('div', { class: 'restore-slot' }),
        v.ok && (v.data.versions || []).length
          ? table(['Field', 'Version', 'Summary', 'By', 'When', '', ''], v.data.versions.map((ver) =>
              h('tr', { class: 'version', 'data-version': `${ver.field_name}-${ver.version_number}` }, h('td', null, ver.field_name), h('td', { class: 'num' }, ver.version_number),
                h('td', { class: 'wrap' }, ver.change_summary), h('td', null, ver.created_by), agoCell(ver.created_at),
                h('td', null, h('details', null, h('summary', null, 'content'), h('pre', { class: 'json' }, JSON.stringify(ver.content, null, 2)))),
                h('td', null, h('button', { type: 'button', class: 'restore', onclick: () => askRestore(ver) }, 'Restore…')))))
          : h('p', { class: 'muted' }, v.ok ? 'No versions.' : v.error),
      );
      renderRestore();
      if (open) open.open = true;
      // A refresh rebuilds the list: keep showing the document the person opened.
      if (openDocument) await showDocument(openDocument);
    }

    // A restore waiting for its confirmation, and what the last one did: kept across the
    // refreshes that rebuild the list.
    let pendingRestore = null;
    let restoreOutcome = null;
    function askRestore(ver) {
      pendingRestore = { field_name: ver.field_name, version_number: ver.version_number };
      restoreOutcome = null;
      renderRestore();
      const yes = docs.querySelector('.confirm-restore');
      if (yes) yes.focus();
    }
    function renderRestore() {
      const slot = docs.querySelector('.restore-slot');
      if (!slot) return;
      if (!pendingRestore) {
        slot.replaceChildren(restoreOutcome ? h('p', { class: restoreOutcome.ok ? 'muted restored' : 'error-box', role: 'status' }, restoreOutcome.text) : '');
        return;
      }
      const { field_name: f, version_number: n } = pendingRestore;
      slot.replaceChildren(
        h('div', { class: 'confirm', role: 'alertdialog', 'aria-label': 'Confirm the restore' },
          h('p', null, `Restore ${f} to version ${n}? The current ${f} is saved as a new version first, so nothing is lost.`),
          h('button', { type: 'button', class: 'confirm-restore', onclick: doRestore }, `Restore version ${n}`),
          h('button', { type: 'button', onclick: () => { pendingRestore = null; renderRestore(); } }, 'Cancel')),
      );
    }
    async function doRestore() {
      const asked = pendingRestore;
      pendingRestore = null;
      const r = await apiWrite('POST', `api/projects/${encodeURIComponent(id)}/versions/restore`, asked);
      restoreOutcome = r.ok
        ? { ok: true, text: `Restored ${asked.field_name} to version ${asked.version_number}; the value before is version ${r.data.backup_version}.` }
        : { ok: false, text: `Could not restore: ${r.error}` };
      await refreshDocs();
    }

    let openDocument = null;
    async function showDocument(docId) {
      openDocument = docId;
      const slot = docs.querySelector('.document');
      const r = await api(`api/projects/${encodeURIComponent(id)}/documents/${encodeURIComponent(docId)}`);
      if (!r.ok) {
        slot.replaceChildren(errorBox(r.error));
        return;
      }
      const doc = r.data.document;
      slot.replaceChildren(
        h('h3', { class: 'wrap' }, doc.title),
        h('p', { class: 'muted' }, `${doc.document_type} · by ${doc.author} · tags: ${(doc.tags || []).join(', ') || '—'}`),
        h('pre', { class: 'json' }, JSON.stringify(doc.content, null, 2)),
      );
    }

    return { el, refresh, title: 'Project', only: ['board'] };
  }

  function taskView(route) {
    const id = route.arg || '';
    const head = h('div', null, h('h1', null, 'Task'), h('p', { class: 'muted' }, 'Loading…'));
    const timeline = h('ol', { class: 'timeline' });
    const activity = h('div', { class: 'activity', 'data-testid': 'task-activity' });
    const el = h('section', { class: 'view' }, head, h('h2', null, 'Activity'), activity, h('h2', null, 'History'), timeline);

    function who(change) {
      if (!change.session_id) return h('span', { class: 'who' }, change.client_name || 'unknown');
      return h('span', { class: 'who' }, change.client_name || '(no name)', ' · ', h('a', { href: sessionHref(change.session_id) }, 'session'));
    }

    async function refresh() {
      const [t, hist, act] = await Promise.all([
        api(`api/tasks/${encodeURIComponent(id)}`),
        api(`api/tasks/${encodeURIComponent(id)}/history`),
        api(`api/tasks/${encodeURIComponent(id)}/activity`),
      ]);
      if (!t.ok) {
        head.replaceChildren(h('h1', null, 'Task'), errorBox(t.status === 404 ? `No task has id ${id}.` : `Could not load the task: ${t.error}`));
        return;
      }
      const task = t.data.task;
      head.replaceChildren(
        h('p', { class: 'crumbs' }, h('a', { href: projectHref(task.project_id) }, '← board')),
        h('h1', { class: 'wrap task-title' }, task.title),
        h('dl', { class: 'summary' },
          h('dt', null, 'status'), h('dd', null, badge(task.status)),
          h('dt', null, 'assignee'), h('dd', { class: 'assignee' }, task.assignee),
          h('dt', null, 'feature'), h('dd', { class: 'feature' }, task.feature || '—'),
          h('dt', null, 'order'), h('dd', null, task.task_order),
          task.claimed_by ? [h('dt', null, 'claim'), h('dd', null, holder(task))] : null,
          task.parent_task_id ? [h('dt', null, 'part of'), h('dd', null, h('a', { href: taskHref(task.parent_task_id) }, 'parent task'))] : null,
          task.archived ? [h('dt', null, 'archived'), h('dd', null, fmtTime(task.archived_at))] : null),
        h('div', { class: 'description wrap' }, task.description || h('span', { class: 'muted' }, 'No description.')),
      );
      document.title = `${task.title} · Steward`;
      activity.replaceChildren(act.ok ? activityView(act.data.activity) : errorBox(`Activity: ${act.error}`));
      const rows = (hist.ok && hist.data.history) || [];
      timeline.replaceChildren(
        ...rows.map((c) =>
          h('li', null,
            h('span', { class: 'when', title: fmtTime(c.changed_at) }, ago(c.changed_at)), ' ',
            h('strong', null, c.field), ' ',
            c.old_value !== null ? h('span', { class: 'old' }, c.old_value) : null,
            c.old_value !== null ? ' → ' : null,
            h('span', { class: 'new' }, c.new_value ?? '—'), ' · ', who(c))),
      );
    }
    const wants = (kind, row) => kind === 'request' && row && row.subject === id;
    return { el, refresh, title: 'Task', only: ['board'], wants };
  }

  /** What the calls about a task cost and who made them (/api/tasks/{id}/activity). */
  function activityView(a) {
    const duration = (seconds) => {
      if (seconds === null || seconds === undefined) return '—';
      const s = Number(seconds);
      if (s < 120) return `${s} s`;
      if (s < 7200) return `${Math.round(s / 60)} min`;
      if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
      return `${(s / 86400).toFixed(1)} d`;
    };
    const summary = h('dl', { class: 'summary' },
      h('dt', null, 'calls'), h('dd', { 'data-testid': 'activity-calls' }, fmtInt(a.calls)),
      h('dt', null, 'tokens'), h('dd', { 'data-testid': 'activity-tokens' }, `${fmtInt(a.estimated_tokens)} (estimated)`),
      h('dt', null, 'cost'), h('dd', { 'data-testid': 'activity-cost' }, `${fmtCost(a.estimated_cost_usd)} (estimated)`),
      h('dt', null, 'errors'), h('dd', { 'data-testid': 'activity-errors' }, `${fmtInt(a.errors)} (${fmtInt(a.tool_errors)} tool errors)`),
      h('dt', null, 'doing → done'), h('dd', { 'data-testid': 'activity-cycle' }, a.started_at ? `${duration(a.doing_to_done_seconds)}${a.done_at ? '' : ' (not done yet)'}` : '—'),
    );
    if (!Number(a.calls)) return h('div', null, summary, h('p', { class: 'muted' }, 'No agent calls about this task in the ledger yet.'));
    const sessions = table(
      ['Client', 'Session', numTh('Calls'), numTh('Errors'), numTh('Tokens (est.)'), numTh('Cost (est.)'), 'Last call'],
      (a.sessions || []).map((p) =>
        h('tr', { class: 'activity-session' },
          h('td', { class: 'client-name' }, p.client_name || '(no name)', p.client_type ? h('span', { class: 'muted' }, ` ${p.client_type}`) : null),
          h('td', null, p.session_id ? h('a', { href: sessionHref(p.session_id), title: p.session_id }, shortId(p.session_id)) : '—'),
          h('td', { class: 'num' }, fmtInt(p.calls)),
          h('td', { class: 'num' }, fmtInt(p.errors)),
          h('td', { class: 'num' }, fmtInt(p.estimated_tokens)),
          h('td', { class: 'num' }, fmtCost(p.estimated_cost_usd)),
          agoCell(p.last_call_at))),
      { class: 'stats' },
    );
    const more = Number(a.session_count) > (a.sessions || []).length ? h('p', { class: 'muted' }, `${fmtInt(a.session_count)} sessions in all; the busiest are shown.`) : null;
    return h('div', null, summary, sessions, more);
  }

  const VIEWS = {
    projects: (r) => (r.arg ? projectView(r) : projectsView(r)),
    tasks: taskView,
    overview: overviewView,
    sessions: sessionsView,
    session: sessionView,
    tools: toolsView,
    requests: requestsView,
    upstreams: upstreamsView,
    connect: connectView,
  };

  // ---------------------------------------------------------------- routing

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const at = raw.indexOf('?');
    const path = at >= 0 ? raw.slice(0, at) : raw;
    const params = new URLSearchParams(at >= 0 ? raw.slice(at + 1) : '');
    const parts = path.split('/').map((part) => {
      try {
        return decodeURIComponent(part);
      } catch (_) {
        return part;
      }
    });
    return { name: parts[0] || 'overview', arg: parts.slice(1).join('/'), params };
  }

  function route() {
    const r = parseHash();
    const make = VIEWS[r.name] || notFoundView;
    const view = make(r);
    state.view = view;
    const navName = r.name === 'session' ? 'sessions' : r.name === 'tasks' ? 'projects' : r.name;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.route === navName) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${view.title} · Steward`;
    document.getElementById('view').replaceChildren(view.el);
    refreshNow();
  }

  function start() {
    setLive('starting');
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refreshNow();
    });
    route();
    refreshHealth().then(detectUpstreams);
    setInterval(() => {
      if (!document.hidden) refreshHealth();
    }, HEALTH_MS);
    setInterval(() => {
      if (sseOpen && !document.hidden) refreshNow();
    }, SAFETY_REFRESH_MS);
    startEvents();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
