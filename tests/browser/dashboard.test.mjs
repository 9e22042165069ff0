// Browser test of the Steward dashboard in headless Chromium (playwright-core, Debian's chromium).
//
// Expects a running server: STEWARD_URL=http://127.0.0.1:PORT (run.sh starts one on a temporary
// SQLite file). Makes MCP calls as two clients, one with a hostile clientInfo.name, opens the
// dashboard and checks what a person would see. Prints one line per check and a closing
// `N passed, N failed`; exits non-zero on any failure. Screenshots go to SCREENSHOT_DIR
// (default: target/screenshots at the repository root).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { connect, waitFor } from './mcp.mjs';
import { bigBoardChecks, boardChecks } from './board.mjs';
import { upstreamChecks } from './upstreams.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.STEWARD_URL || '').replace(/\/+$/, '');
// A second Steward in gateway mode in front of the first (run.sh starts it); optional.
const GATEWAY = (process.env.STEWARD_GATEWAY_URL || '').replace(/\/+$/, '');
const SHOTS = process.env.SCREENSHOT_DIR || path.resolve(here, '../../target/screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LIVE_MS = 5000; // a new call must show up within this long, without a reload
const UI_MS = 10000; // anything else the page should show

const HOSTILE = '<img src=x onerror=alert(1)>';
const HOSTILE_TOOL = '<img src=y onerror=alert(2)>';
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'";

if (!BASE) {
  console.error('set STEWARD_URL to the base URL of a running steward serve (run.sh does this)');
  process.exit(2);
}

let passed = 0;
let failed = 0;

/** Runs one check; prints ✓ or ✗ with what was expected and seen. Returns its value or null. */
async function check(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    passed += 1;
    console.log(`✓ ${name}${detail ? ` — ${detail}` : ''} (${Date.now() - started} ms)`);
    return true;
  } catch (error) {
    failed += 1;
    console.log(`✗ ${name} — ${error && error.message ? error.message.split('\n')[0] : error}`);
    return false;
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Text of the request rows' tool cells in the current view. */
async function toolCells(page) {
  return page.locator('tr.req td.tool').allTextContents();
}

async function waitForTool(page, tool, ms, what) {
  await waitFor(async () => (await toolCells(page)).includes(tool), ms, what || `tool ${JSON.stringify(tool)} in the table`);
}

mkdirSync(SHOTS, { recursive: true });

// ------------------------------------------------------------------ MCP traffic
let hostile;
let claude;
await check('two MCP clients connect and call tools over raw Streamable HTTP', async () => {
  hostile = await connect(BASE, HOSTILE, '6.6.6');
  claude = await connect(BASE, 'claude-code', '2.1.0');
  const health = await hostile.call('health_check');
  assert(health.result && !health.result.isError, `health_check: ${JSON.stringify(health)}`);
  const unknown = await hostile.call(HOSTILE_TOOL);
  assert(unknown.error, `an unknown tool should be a JSON-RPC error, got ${JSON.stringify(unknown)}`);
  const created = await claude.call('manage_project', { action: 'create', title: 'Dashboard test <b>bold?</b>' });
  assert(created.result && !created.result.isError, `manage_project: ${JSON.stringify(created)}`);
  const found = await claude.call('find_projects', {});
  assert(found.result && !found.result.isError, `find_projects: ${JSON.stringify(found)}`);
  return `sessions ${hostile.sessionId.slice(0, 8)}… and ${claude.sessionId.slice(0, 8)}…`;
});
if (!hostile || !claude) {
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}

const served = await check('the dashboard assets carry their content types, the CSP and nosniff', async () => {
  for (const [file, type] of [['/', 'text/html'], ['/app.js', 'text/javascript'], ['/app.css', 'text/css']]) {
    const response = await fetch(`${BASE}${file}`);
    assert(response.status === 200, `${file}: HTTP ${response.status}`);
    const ct = response.headers.get('content-type') || '';
    assert(ct.startsWith(type), `${file}: content-type ${ct}, expected ${type}`);
    const csp = response.headers.get('content-security-policy') || '';
    assert(csp.startsWith(CSP), `${file}: content-security-policy ${JSON.stringify(csp)}`);
    assert(response.headers.get('x-content-type-options') === 'nosniff', `${file}: no X-Content-Type-Options: nosniff`);
  }
});

if (!served) {
  console.log('the server does not serve the dashboard: is this binary built with it?');
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}

// ------------------------------------------------------------------ the browser
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const dialogs = [];
const pageErrors = [];
const consoleErrors = [];
const offOrigin = [];

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'light' });
  const page = await context.newPage();
  page.setDefaultTimeout(UI_MS);
  page.on('dialog', async (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    // A 404 of an optional endpoint is logged by the browser itself; anything else counts.
    if (/Failed to load resource/.test(text)) return;
    consoleErrors.push(text);
  });
  page.on('request', (request) => {
    const url = request.url();
    const own = url.startsWith(BASE) || (GATEWAY && url.startsWith(GATEWAY));
    if (!own && !url.startsWith('data:')) offOrigin.push(url);
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return page;
}

const page = await newPage();
let liveMode = '';

try {
  await check('overview: server status, sessions, requests and estimated cost', async () => {
    const response = await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    assert(response && response.status() === 200, `GET / answered ${response && response.status()}`);
    await page.locator('.card-server .big').filter({ hasText: /^ok$/ }).waitFor({ timeout: UI_MS });
    await waitFor(async () => Number((await page.locator('[data-testid=active-sessions]').textContent()).replace(/,/g, '')) >= 2, UI_MS, 'two active sessions');
    await waitFor(async () => Number((await page.locator('[data-testid=requests-24h]').textContent()).replace(/,/g, '')) >= 8, UI_MS, 'at least 8 requests in 24 h');
    // The ledger's write counter restarts with the server: its label must say so (issue 24 item 9).
    const server = await page.locator('.card-server').textContent();
    assert(/ledger\s*ok · [\d,]+ written since start · /.test(server), `the ledger counter is not labelled as since start: ${server}`);
    const cost = await page.locator('.card-cost').textContent();
    assert(/estimated/i.test(cost), `tokens and cost are not labelled as estimates: ${cost}`);
    // The cost formula, once, under the cost figures, in the CLI's words (issue 24 item 14).
    const formula = await page.locator('[data-testid=cost-formula]').textContent();
    assert(formula.includes("cost = argument tokens × the model's output price + result tokens × its input price"), `no cost formula under the cards: ${formula}`);
    assert(await page.locator('#banner').isHidden(), 'the degraded banner shows on a healthy server');
    await waitForTool(page, 'find_projects', UI_MS, 'find_projects among the latest requests');
    liveMode = (await page.locator('#live').textContent()) || '';
    await page.screenshot({ path: path.join(SHOTS, 'overview.png'), fullPage: true });
    return `live indicator: ${liveMode.trim()}`;
  });

  await check('sessions: both clients listed, the hostile name as literal text', async () => {
    await page.click('nav a[data-route=sessions]');
    const hostileCell = page.locator('tr.session-row .client-name').filter({ hasText: HOSTILE });
    await hostileCell.first().waitFor({ timeout: UI_MS });
    assert((await hostileCell.first().textContent()) === HOSTILE, 'the hostile name was not shown verbatim');
    await page.getByText(HOSTILE, { exact: true }).first().waitFor({ timeout: UI_MS });
    await page.locator('tr.session-row .client-name').filter({ hasText: /^claude-code$/ }).first().waitFor({ timeout: UI_MS });
    const types = await page.locator('tr.session-row td:nth-child(2)').allTextContents();
    assert(types.includes('Claude Code'), `client types: ${JSON.stringify(types)}`);
    const images = await page.evaluate(() => document.images.length);
    assert(images === 0, `${images} <img> element(s) in the page: client text became HTML`);
    await page.screenshot({ path: path.join(SHOTS, 'sessions.png'), fullPage: true });
  });

  await check('sessions: a session shows its request count, errors and cost from the ledger', async () => {
    const cell = page.locator(`tr.session-row[data-session-id="${claude.sessionId}"] [data-testid=session-requests]`);
    let expected = null;
    await waitFor(async () => {
      const r = await fetch(`${BASE}/api/sessions/${encodeURIComponent(claude.sessionId)}`);
      const body = await r.json();
      expected = body.session && body.session.totals ? body.session.totals.requests : null;
      await page.click('nav a[data-route=sessions]');
      await cell.first().waitFor({ timeout: UI_MS });
      const shown = Number((await cell.first().textContent()).replace(/,/g, ''));
      return expected >= 3 && shown === expected;
    }, UI_MS, 'the request count of claude-code as /api/sessions/{id} reports it');
    const headers = await page.locator('table.sessions th').allTextContents();
    for (const h of ['Requests', 'Errors', 'Cost (est.)']) assert(headers.includes(h), `headers: ${JSON.stringify(headers)}`);
    return `${expected} requests`;
  });

  await check('session timeline (hostile client): its calls, the hostile tool name as text, expandable details', async () => {
    await page.locator('tr.session-row a').filter({ hasText: HOSTILE }).first().click();
    await waitFor(async () => (await page.evaluate(() => location.hash)).startsWith('#/session/'), UI_MS, 'the session route');
    await waitForTool(page, 'health_check', UI_MS);
    await waitForTool(page, HOSTILE_TOOL, UI_MS, 'the hostile tool name');
    const h1 = await page.locator('h1 .client-name').textContent();
    assert(h1 === HOSTILE, `heading shows ${JSON.stringify(h1)}`);
    const row = page.locator('tr.req').filter({ has: page.locator('td.tool', { hasText: HOSTILE_TOOL }) }).first();
    await row.click();
    const detail = page.locator('tr.detail:not([hidden])').first();
    await detail.waitFor({ timeout: UI_MS });
    const text = await detail.textContent();
    assert(/tool not found/.test(text) && text.includes(HOSTILE_TOOL), `details: ${text.slice(0, 200)}`);
    await page.screenshot({ path: path.join(SHOTS, 'session-timeline.png'), fullPage: true });
  });

  await check('session timeline (claude-code): find_projects and manage_project', async () => {
    await page.click('nav a[data-route=sessions]');
    await page.locator('tr.session-row a').filter({ hasText: /^claude-code/ }).first().click();
    await waitForTool(page, 'find_projects', UI_MS);
    await waitForTool(page, 'manage_project', UI_MS);
  });

  await check('a new tool call appears in the open session timeline without a reload', async () => {
    await page.evaluate(() => {
      window.__noReload = 'still here';
    });
    const t0 = Date.now();
    await claude.call('session_info');
    await waitForTool(page, 'session_info', LIVE_MS, 'session_info in the timeline');
    assert((await page.evaluate(() => window.__noReload)) === 'still here', 'the page reloaded');
    return `after ${Date.now() - t0} ms`;
  });

  await check('requests: the log lists both clients\' calls and filters by tool', async () => {
    await page.click('nav a[data-route=requests]');
    await waitForTool(page, 'find_projects', UI_MS);
    await waitForTool(page, 'health_check', UI_MS);
    await page.fill('input[name=tool]', 'find_projects');
    await page.click('form.filters button[type=submit]');
    await waitFor(async () => {
      const tools = await toolCells(page);
      return tools.length > 0 && tools.every((t) => t === 'find_projects');
    }, UI_MS, 'only find_projects rows');
    await page.click('a.reset');
    await waitForTool(page, 'health_check', UI_MS);
  });

  await check('requests: paging through the log', async () => {
    await page.goto(`${BASE}/#/requests?per_page=5&page=2`);
    await waitFor(async () => /^page 2 of \d+/.test(await page.locator('.pager span').textContent()), UI_MS, 'the pager on page 2');
    const pagerText = await page.locator('.pager span').textContent();
    const total = Number(pagerText.match(/([\d,]+) in all/)[1].replace(/,/g, ''));
    assert(total > 5, `only ${total} requests in the log`);
    const expected = Math.min(5, total - 5);
    await waitFor(async () => (await page.locator('tr.req').count()) === expected, UI_MS, `${expected} rows on page 2`);
    await page.click('.pager button:has-text("newer")');
    await waitFor(async () => /^page 1 of/.test(await page.locator('.pager span').textContent()), UI_MS, 'page 1');
    await page.goto(`${BASE}/#/requests`);
    await waitForTool(page, 'health_check', UI_MS);
    return pagerText;
  });

  await check('requests: the search box finds calls by text; export links carry the filters', async () => {
    await page.goto(`${BASE}/#/requests`);
    await waitForTool(page, 'health_check', UI_MS);
    await page.fill('[data-testid=request-search]', 'MANAGE_proj');
    await page.press('[data-testid=request-search]', 'Enter');
    await waitFor(async () => {
      const tools = await toolCells(page);
      return tools.length > 0 && tools.every((t) => t === 'manage_project');
    }, UI_MS, 'only manage_project rows');
    assert((await page.evaluate(() => location.hash)).includes('q=MANAGE_proj'), 'the search is not in the address');
    const csv = await page.locator('[data-testid=export-csv]').getAttribute('href');
    const jsonl = await page.locator('[data-testid=export-jsonl]').getAttribute('href');
    assert(csv.includes('format=csv') && csv.includes('q=MANAGE_proj'), `CSV link ${csv}`);
    assert(jsonl.includes('format=jsonl') && jsonl.includes('q=MANAGE_proj'), `JSON lines link ${jsonl}`);
    const response = await fetch(`${BASE}/${csv}`);
    assert(response.status === 200, `export answered ${response.status}`);
    assert(/attachment/.test(response.headers.get('content-disposition') || ''), 'the export is not a download');
    const lines = (await response.text()).trim().split('\n');
    assert(lines[0].startsWith('request_id,timestamp,') && lines.length === 2 && lines[1].includes('manage_project'), `CSV: ${lines.join(' | ').slice(0, 300)}`);
    await page.screenshot({ path: path.join(SHOTS, 'requests-search.png'), fullPage: true });
    await page.goto(`${BASE}/#/requests`);
    await waitForTool(page, 'health_check', UI_MS);
    return `${lines.length - 1} row exported`;
  });

  await check('tools: a row per tool with latency percentiles and a calls-over-time chart', async () => {
    await page.click('nav a[data-route=tools]');
    const row = page.locator('tr.tool-row[data-tool=find_projects]');
    await row.waitFor({ timeout: UI_MS });
    const cells = await row.locator('td').allTextContents();
    assert(cells[0] === 'find_projects' && Number(cells[1]) >= 1, `find_projects row: ${JSON.stringify(cells)}`);
    assert(cells.slice(4, 7).every((c) => /\d+(\.\d+)? (ms|s)$/.test(c)), `p50/p95/p99: ${JSON.stringify(cells.slice(4, 7))}`);
    const hostileRow = page.locator('tr.tool-row td.tool').filter({ hasText: HOSTILE_TOOL });
    assert((await hostileRow.first().textContent()) === HOSTILE_TOOL, 'the hostile tool name is not shown verbatim');
    const bars = page.locator('svg[data-testid=tool-chart] rect.bar');
    await waitFor(async () => (await bars.count()) >= 1, UI_MS, 'bars in the chart');
    await row.locator('a').click();
    await waitFor(async () => /find_projects/.test(await page.locator('section.view h2').first().textContent()), UI_MS, 'the chart of find_projects');
    assert((await page.locator('svg[data-testid=tool-chart]').getAttribute('aria-label')).includes('find_projects'), 'the chart is not the tool\'s');
    // A tool whose calls failed shows them in its own chart, in red, with a legend (issue 24 item 6).
    await page.locator('tr.tool-row td.tool a').filter({ hasText: HOSTILE_TOOL }).first().click();
    await waitFor(async () => (await page.locator('svg[data-testid=tool-chart] rect.bar-err').count()) >= 1, UI_MS, 'an error segment in the chart of the failing tool');
    const legend = await page.locator('[data-testid=tool-chart-legend]').textContent();
    assert(/calls/.test(legend) && /errors/.test(legend), `the chart's legend does not name calls and errors: ${legend}`);
    assert((await page.evaluate(() => document.images.length)) === 0, 'client text became HTML');
    await page.screenshot({ path: path.join(SHOTS, 'tools.png'), fullPage: true });
    return `${await page.locator('tr.tool-row').count()} tools`;
  });

  await check('session health: live sessions in age buckets, on the overview', async () => {
    await page.click('nav a[data-route=overview]');
    const healthy = page.locator('[data-testid=health-healthy] .big');
    await waitFor(async () => Number(await healthy.textContent()) >= 2, UI_MS, 'two healthy sessions');
    const panel = await page.locator('[data-testid=session-health]').textContent();
    assert(/aging/.test(panel) && /stale/.test(panel) && /ended in the last 1h/.test(panel), `panel: ${panel}`);
    await page.click('nav a[data-route=requests]');
    await waitForTool(page, 'health_check', UI_MS);
  });

  await check('a new tool call appears in the request log without a reload', async () => {
    await page.evaluate(() => {
      window.__noReload = 'still here';
    });
    const t0 = Date.now();
    await claude.call('get_completion_stats');
    await waitForTool(page, 'get_completion_stats', LIVE_MS, 'get_completion_stats in the log');
    assert((await page.evaluate(() => window.__noReload)) === 'still here', 'the page reloaded');
    return `after ${Date.now() - t0} ms`;
  });

  await check('a new session appears in the sessions list without a reload', async () => {
    await page.click('nav a[data-route=sessions]');
    await page.locator('tr.session-row').first().waitFor({ timeout: UI_MS });
    await page.evaluate(() => {
      window.__noReload = 'still here';
    });
    const t0 = Date.now();
    const name = `cursor-live-${process.pid}`;
    const late = await connect(BASE, name, '0.9');
    await late.call('find_tasks', {});
    await page.locator('tr.session-row .client-name').filter({ hasText: name }).first().waitFor({ timeout: LIVE_MS });
    assert((await page.evaluate(() => window.__noReload)) === 'still here', 'the page reloaded');
    return `after ${Date.now() - t0} ms`;
  });

  await check('without /api/events the page polls and still shows a new call without a reload', async () => {
    const polling = await newPage();
    await polling.route('**/api/events', (route) => route.fulfill({ status: 404, body: '' }));
    await polling.goto(`${BASE}/#/requests`, { waitUntil: 'domcontentloaded' });
    await waitForTool(polling, 'find_projects', UI_MS);
    await waitFor(async () => /polling/.test(await polling.locator('#live').textContent()), UI_MS, 'the polling indicator');
    await polling.evaluate(() => {
      window.__noReload = 'still here';
    });
    const t0 = Date.now();
    await hostile.call('get_project_features', { project_id: '00000000-0000-0000-0000-000000000000' });
    await waitForTool(polling, 'get_project_features', LIVE_MS, 'get_project_features in the log');
    assert((await polling.evaluate(() => window.__noReload)) === 'still here', 'the page reloaded');
    await polling.context().close();
    return `after ${Date.now() - t0} ms`;
  });

  await check('a degraded /health raises the loud banner with its problems (as text)', async () => {
    const sick = await newPage();
    const problems = ['ledger: database refuses writes (12 requests waiting)', '<img src=z onerror=alert(3)>'];
    await sick.route('**/health', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ status: 'degraded', problems, version: 'test', uptime_seconds: 5, database: { engine: 'sqlite', reachable: true }, ledger: { status: 'degraded', pending: 12, written: 3 } }),
      }),
    );
    await sick.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    const banner = sick.locator('#banner');
    await banner.waitFor({ state: 'visible' });
    const text = await banner.textContent();
    assert(/DEGRADED/.test(text), `banner: ${text}`);
    for (const p of problems) assert(text.includes(p), `banner lacks ${JSON.stringify(p)}`);
    const color = await banner.evaluate((el) => getComputedStyle(el).backgroundColor);
    assert(/^rgb\((1[5-9]\d|2\d\d), \d{1,2}, \d{1,2}\)$/.test(color), `banner background ${color} is not red`);
    await sick.locator('.card-server .big').filter({ hasText: /degraded/i }).waitFor();
    assert((await sick.evaluate(() => document.images.length)) === 0, 'a problem string became HTML');
    await sick.screenshot({ path: path.join(SHOTS, 'degraded.png') });
    await sick.context().close();
  });

  await check('connect: snippets carry this server\'s /mcp URL', async () => {
    await page.click('nav a[data-route=connect]');
    // The view renders after the click returns: wait for it rather than read an empty page.
    await page.locator('pre.snippet').first().waitFor({ timeout: UI_MS });
    const snippets = await page.locator('pre.snippet').allTextContents();
    assert(snippets.some((s) => s === `claude mcp add --transport http steward ${BASE}/mcp`), `Claude Code snippet: ${snippets[0]}`);
    for (const key of ['"url"', '"serverUrl"', '"httpUrl"', '"type": "http"']) {
      assert(snippets.some((s) => s.includes(key) && s.includes(`${BASE}/mcp`)), `no snippet with ${key}`);
    }
    return `${snippets.length} snippets`;
  });

  await check('overview again: no script ran, no CSP violation, nothing fetched from elsewhere', async () => {
    await page.click('nav a[data-route=overview]');
    await waitForTool(page, 'get_project_features', UI_MS, 'the latest call on the overview');
    const csp = await page.evaluate(() => window.__csp);
    assert(dialogs.length === 0, `dialogs fired: ${JSON.stringify(dialogs)}`);
    assert(pageErrors.length === 0, `page errors: ${JSON.stringify(pageErrors)}`);
    assert(consoleErrors.length === 0, `console errors: ${JSON.stringify(consoleErrors)}`);
    assert(csp.length === 0, `CSP violations: ${JSON.stringify(csp)}`);
    assert(offOrigin.length === 0, `requests to other origins: ${JSON.stringify(offOrigin)}`);
    const images = await page.evaluate(() => document.images.length);
    assert(images === 0, `${images} <img> element(s) in the page`);
    await page.screenshot({ path: path.join(SHOTS, 'overview-after.png'), fullPage: true });
  });

  await boardChecks({ page, agent: claude, check, assert, base: BASE, shots: SHOTS, liveMs: LIVE_MS, uiMs: UI_MS });
  await bigBoardChecks({ page, agent: claude, check, assert, base: BASE, uiMs: UI_MS });
  await upstreamChecks({ page, gatewayPage: await newPage(), check, assert, base: BASE, gateway: GATEWAY, shots: SHOTS, liveMs: LIVE_MS, uiMs: UI_MS });
  await check('after the board: no dialog, script error or CSP violation', async () => {
    const csp = await page.evaluate(() => window.__csp);
    assert(dialogs.length === 0, `dialogs fired: ${JSON.stringify(dialogs)}`);
    assert(pageErrors.length === 0, `page errors: ${JSON.stringify(pageErrors)}`);
    assert(!csp || csp.length === 0, `CSP violations: ${JSON.stringify(csp)}`);
  });
} finally {
  await browser.close();
}

console.log(`screenshots in ${SHOTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
