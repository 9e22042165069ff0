// Makes docs/dashboard.png, the README's picture of the overview: a few assistants do some
// board work against a running server (STEWARD_URL), then headless Chromium screenshots `/`.
//
//   tests/browser/run.sh --docs-screenshot     # starts a fresh server and runs this
//
// Output path: DOCS_SCREENSHOT (default docs/dashboard.png at the repository root).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { connect } from './mcp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.STEWARD_URL || '').replace(/\/+$/, '');
const OUT = process.env.DOCS_SCREENSHOT || path.resolve(here, '../../docs/dashboard.png');
if (!BASE) {
  console.error('set STEWARD_URL (run.sh --docs-screenshot does this)');
  process.exit(2);
}

const text = (reply) => JSON.parse(reply.result.content[0].text);

const claude = await connect(BASE, 'claude-code', '2.1.3');
const cursor = await connect(BASE, 'cursor-vscode', '1.7.2');
const windsurf = await connect(BASE, 'windsurf-client', '1.12.0');
const gemini = await connect(BASE, 'gemini-cli-mcp-client', '0.9.0');

const project = text(await claude.call('manage_project', { action: 'create', title: 'Checkout redesign', description: 'New payment flow' }));
const projectId = project.project?.id || project.project_id || project.id;
for (const [title, status] of [['Design the payment form', 'doing'], ['Wire the card API', 'todo'], ['Accessibility pass', 'todo'], ['Load test', 'review']]) {
  await claude.call('manage_task', { action: 'create', project_id: projectId, title, status });
}
await claude.call('find_tasks', { project_id: projectId });
await cursor.call('find_projects', { query: 'checkout' });
await cursor.call('find_tasks', { filter_by: 'status', filter_value: 'todo' });
await cursor.call('manage_task', { action: 'update', task_id: 'not-a-task' }); // a tool error, on purpose
await windsurf.call('get_completion_stats', { project_id: projectId });
await windsurf.call('find_documents', { project_id: projectId });
await gemini.call('health_check');
await gemini.call('find_projects', {});
await claude.call('get_project_features', { project_id: projectId });
await claude.call('session_info');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  await page.goto(`${BASE}/`);
  await page.locator('.card-server .big').filter({ hasText: /^ok$/ }).waitFor({ timeout: 10000 });
  await page.locator('tr.req td.tool', { hasText: 'session_info' }).first().waitFor({ timeout: 10000 });
  await page.waitForTimeout(3500); // let the "new row" highlight fade
  mkdirSync(path.dirname(OUT), { recursive: true });
  await page.screenshot({ path: OUT, fullPage: true });
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
}
