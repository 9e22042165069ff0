// Board checks of the dashboard test: projects, the kanban (select and drag), a task's history,
// documents, live updates from an agent, and client-sent text rendered as text.
import path from 'node:path';
import { waitFor } from './mcp.mjs';

const XSS = '<img src=x onerror=alert(1)>';

/** The parsed JSON text of a successful tool result. */
async function tool(client, name, args) {
  const reply = await client.call(name, args);
  const text = reply.result && reply.result.content && reply.result.content[0] && reply.result.content[0].text;
  if (!text || reply.result.isError) throw new Error(`${name}: ${JSON.stringify(reply)}`);
  return JSON.parse(text);
}

export async function boardChecks({ page, agent, check, assert, base, shots, liveMs, uiMs }) {
  const ids = {};
  const column = (status) => page.locator(`.column[data-status=${status}]`);
  const card = (status, id) => column(status).locator(`[data-task="${id}"]`);
  const statusOf = async (id) => (await tool(agent, 'find_tasks', { task_id: id })).task.status;

  await check('board: seeded tasks (one with hostile text everywhere) and a document over MCP', async () => {
    const project = await tool(agent, 'manage_project', { action: 'create', title: `Board ${XSS}` });
    ids.project = project.project_id;
    const task = async (title, extra) =>
      (await tool(agent, 'manage_task', { action: 'create', project_id: ids.project, title, ...extra })).task_id;
    ids.todo = await task('Write the plan', { assignee: 'ana', feature: 'ui', task_order: 10 });
    ids.doing = await task('Build it', { status: 'doing', assignee: 'claude' });
    ids.review = await task(XSS, { status: 'review', description: XSS, assignee: XSS, feature: XSS });
    ids.done = await task('Ship it', { status: 'done' });
    await tool(agent, 'manage_document', { action: 'create', project_id: ids.project, title: `Spec ${XSS}`, document_type: 'spec', content: { note: XSS, steps: ['one', 'two'] } });
  });

  await check('board: #/projects lists the project with counts and progress', async () => {
    await page.goto(`${base}/#/projects`);
    const row = page.locator(`tr[data-project="${ids.project}"]`);
    await row.waitFor();
    const text = await row.textContent();
    assert(text.includes(`Board ${XSS}`), `project title as text: ${text}`);
    assert(text.includes('25% of 4'), `progress: ${text}`);
    await page.screenshot({ path: path.join(shots, 'board-projects.png'), fullPage: true });
  });

  await check('board: the kanban shows each task in its status column', async () => {
    await page.locator(`tr[data-project="${ids.project}"] a`).click();
    for (const status of ['todo', 'doing', 'review', 'done']) await card(status, ids[status]).waitFor();
    const hostile = await card('review', ids.review).textContent();
    assert(hostile.split(XSS).length >= 3, `title and assignee/feature as text: ${hostile}`);
    await page.screenshot({ path: path.join(shots, 'board-kanban.png'), fullPage: true });
  });

  await check('board: the keyboard-reachable select moves a card; MCP sees it; history says dashboard', async () => {
    await card('todo', ids.todo).locator('select').selectOption('review');
    await card('review', ids.todo).waitFor();
    assert((await statusOf(ids.todo)) === 'review', 'find_tasks does not see review');
    const history = await tool(agent, 'get_task_history', { task_id: ids.todo });
    const last = history.history[history.history.length - 1];
    assert(last.field === 'status' && last.new_value === 'review' && last.client_name === 'dashboard', JSON.stringify(last));
  });

  await check('board: dragging a card to another column changes its status', async () => {
    await card('doing', ids.doing).dragTo(column('done'), { sourcePosition: { x: 4, y: 4 }, targetPosition: { x: 20, y: 10 } });
    await card('done', ids.doing).waitFor();
    await waitFor(async () => (await statusOf(ids.doing)) === 'done', uiMs, 'find_tasks to see done');
  });

  await check('board: a manage_task over MCP moves the card on the open page without a reload', async () => {
    const t0 = Date.now();
    await tool(agent, 'manage_task', { action: 'update', task_id: ids.done, status: 'doing' });
    await card('doing', ids.done).waitFor({ timeout: liveMs });
    return `after ${Date.now() - t0} ms`;
  });

  await check('board: the form refuses what manage_task refuses, naming the field', async () => {
    await page.locator('button.new-task').click();
    const form = page.locator('form.task-form');
    await form.locator('input[name=title]').fill('Too important');
    await form.locator('input[name=task_order]').fill('101');
    await form.locator('button[type=submit]').click();
    // The box is there (hidden, empty) before the answer arrives: wait for the answer.
    const box = form.locator('.error-box');
    await box.filter({ hasText: /\S/ }).waitFor();
    const problem = await box.textContent();
    assert(problem.includes('task_order') && problem.includes('between 0 and 100'), problem);
    await form.locator('input[name=task_order]').fill('100');
    await form.locator('button[type=submit]').click();
    await column('todo').locator('.card', { hasText: 'Too important' }).waitFor();
  });

  await check('board: a document\'s JSON content reads as indented text', async () => {
    await page.locator('button.link', { hasText: 'Spec' }).click();
    const pre = await page.locator('.document pre.json').textContent();
    assert(pre.includes(`"note": ${JSON.stringify(XSS)}`) && pre.includes('\n'), pre);
  });

  await check('board: #/tasks/{id} shows the description and a history timeline as text', async () => {
    await page.goto(`${base}/#/tasks/${ids.todo}`);
    await page.locator('.timeline li', { hasText: 'dashboard' }).waitFor();
    const items = await page.locator('.timeline li').allTextContents();
    assert(items.some((t) => t.includes('todo') && t.includes('review')), items.join(' | '));
    await page.goto(`${base}/#/tasks/${ids.review}`);
    await page.locator('.task-title').filter({ hasText: XSS }).waitFor();
    const description = await page.locator('.description').textContent();
    assert(description === XSS, description);
    await page.locator('.timeline li a', { hasText: 'session' }).first().waitFor();
    await page.screenshot({ path: path.join(shots, 'board-task.png'), fullPage: true });
  });

  await check('board: a claimed card names the holder\'s client, links its session and shows the lease end', async () => {
    const claimed = await tool(agent, 'claim_task', { task_id: ids.todo });
    await page.goto(`${base}/#/projects/${ids.project}`);
    const held = card('review', ids.todo).locator('.holder');
    await held.waitFor();
    const text = await held.textContent();
    assert(text.includes('held by claude-code') && text.includes('until'), text);
    assert(!text.includes(claimed.task.claimed_by), `the session id is a link, not text: ${text}`);
    const href = await held.locator('a').getAttribute('href');
    assert(href === `#/session/${encodeURIComponent(claimed.task.claimed_by)}`, href);
    assert((await held.locator('time').getAttribute('datetime')) === claimed.lease_until, 'lease end');
    await tool(agent, 'release_task', { task_id: ids.todo, claim_token: claimed.claim_token });
  });

  await check('board: hostile text never became an element', async () => {
    assert((await page.evaluate(() => document.images.length)) === 0, 'an <img> was created');
  });
}
