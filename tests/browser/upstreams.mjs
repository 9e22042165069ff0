// Upstreams checks of the dashboard test: a second Steward (run.sh starts it) in gateway mode
// with two upstreams, the first Steward (`board`, a real MCP server) and an address where
// nothing listens (`gone`, with credentials in its URL that must never be shown). Calls go
// through the gateway over MCP; the Upstreams view must show each one's state, calls,
// latencies and last error, and update without a reload.
import path from 'node:path';
import { connect, waitFor } from './mcp.mjs';

/** The text of one cell of an upstream's row. */
async function cell(page, upstream, column) {
  return (await page.locator(`tr.upstream-row[data-upstream="${upstream}"] td.${column}`).textContent()).trim();
}

/** Checks the main server (no upstreams) hides the link, then the gateway's view. */
export async function upstreamChecks({ page, gatewayPage, check, assert, base, gateway, shots, liveMs, uiMs }) {
  await check('upstreams: no Upstreams link on a server without upstreams', async () => {
    await page.goto(`${base}/#/overview`);
    await page.waitForTimeout(1500);
    assert(!(await page.locator('#nav a[data-route="upstreams"]').isVisible()), 'the Upstreams link is shown without upstreams');
  });

  if (!gateway) {
    console.log('- upstreams: the gateway checks skipped (no STEWARD_GATEWAY_URL)');
    return;
  }
  let client;
  await check('upstreams: calls through the gateway reach the board upstream and fail clearly for the gone one', async () => {
    client = await connect(gateway, 'gateway-client', '1.0.0');
    for (let i = 0; i < 3; i += 1) {
      const reply = await client.call('board__health_check');
      assert(reply.result && !reply.result.isError, `board__health_check: ${JSON.stringify(reply)}`);
    }
    const gone = await client.call('gone__anything');
    assert(gone.error && /upstream gone/.test(gone.error.message), `gone__anything: ${JSON.stringify(gone)}`);
  });

  await check('upstreams: the link appears and the view shows each upstream, its state and numbers', async () => {
    await gatewayPage.goto(`${gateway}/#/overview`);
    const link = gatewayPage.locator('#nav a[data-route="upstreams"]');
    await link.waitFor({ state: 'visible' });
    await link.click();
    await gatewayPage.locator('tr.upstream-row[data-upstream="gone"]').waitFor();
    assert((await gatewayPage.locator('h1').textContent()) === 'Upstreams', 'the heading');
    const names = await gatewayPage.locator('tr.upstream-row').evaluateAll((rows) => rows.map((r) => r.dataset.upstream));
    assert(JSON.stringify(names) === '["board","gone"]', `rows: ${JSON.stringify(names)}`);
    assert((await cell(gatewayPage, 'board', 'state')) === 'up', `board state: ${await cell(gatewayPage, 'board', 'state')}`);
    assert((await cell(gatewayPage, 'board', 'breaker')) === 'closed', 'board breaker');
    assert((await cell(gatewayPage, 'board', 'calls')) === '3', `board calls: ${await cell(gatewayPage, 'board', 'calls')}`);
    assert((await cell(gatewayPage, 'board', 'errors')) === '0', 'board errors');
    for (const column of ['latency-upstream', 'latency-total']) {
      const text = await cell(gatewayPage, 'board', column);
      assert(/^\d[\d.,]* (ms|s) \/ \d[\d.,]* (ms|s) \/ \d[\d.,]* (ms|s)$/.test(text), `board ${column}: ${text}`);
    }
    assert((await cell(gatewayPage, 'board', 'restarts')) === '—', 'an HTTP upstream has no child restarts');
    assert((await cell(gatewayPage, 'gone', 'state')) === 'down', `gone state: ${await cell(gatewayPage, 'gone', 'state')}`);
    assert((await cell(gatewayPage, 'gone', 'errors')) === '1', `gone errors: ${await cell(gatewayPage, 'gone', 'errors')}`);
    const lastError = await cell(gatewayPage, 'gone', 'last-error');
    assert(/cannot be reached/.test(lastError), `gone last error: ${lastError}`);
    const page = await gatewayPage.locator('main').textContent();
    assert(!page.includes('s3cret') && !page.includes('operator'), 'the upstream URL credentials are shown');
    assert(page.includes('http://127.0.0.1:9/mcp'), 'the gone upstream location (without credentials)');
    await gatewayPage.screenshot({ path: path.join(shots, 'upstreams.png'), fullPage: true });
  });

  await check('upstreams: a new call through the gateway shows up without a reload', async () => {
    const reply = await client.call('board__health_check');
    assert(reply.result && !reply.result.isError, `board__health_check: ${JSON.stringify(reply)}`);
    await waitFor(async () => (await cell(gatewayPage, 'board', 'calls')) === '4', liveMs, 'board calls 4');
  });

  await check('upstreams: /api/upstreams and /health agree with the view', async () => {
    const api = await (await fetch(`${gateway}/api/upstreams`)).json();
    const gone = api.upstreams.find((u) => u.name === 'gone');
    assert(gone && gone.state === 'down' && gone.location === 'http://127.0.0.1:9/mcp', `api: ${JSON.stringify(gone)}`);
    const health = await fetch(`${gateway}/health`);
    const body = await health.json();
    assert(health.status === 200 && body.status === 'ok', `a down upstream must not fail /health: ${health.status} ${body.status}`);
    assert(body.upstreams.some((u) => u.name === 'gone' && u.state === 'down'), '/health lists gone as down');
    return `within ${uiMs} ms`;
  });
}
