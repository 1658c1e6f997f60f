// The console's Must-show flows in a real browser (Debian's Chromium via playwright-core):
// sign-up / sign-in, a key used from the official OpenAI SDK, the dashboard equal to the ledger,
// revoke -> 401, the model page equal to the rate-card file, the playground (stream, stop, usage),
// logged-out redirect, CSRF-less POSTs refused, and a second account's isolation.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { Checks, assert, eq, launchBrowser, parseArgs, signIn, startConsole } from './harness.mjs';

const opts = parseArgs(process.argv.slice(2));
const ratesFile = path.join(path.dirname(new URL(import.meta.url).pathname), 'rates.json');
const rates = JSON.parse(readFileSync(ratesFile, 'utf8')).models;
const ALICE = { password: 'alice-password-1', credit: '5', admin: true };
const BOB = { password: 'bob-password-12', credit: '1' };
const server = await startConsole(opts, { 'alice@example.com': ALICE, 'bob@example.com': BOB },
  ['--rates', ratesFile, '--signup', 'open', '--signup-credit', '0.5']);
const browser = await launchBrowser();
const checks = new Checks('console flows');
const url = server.url;
const alice = await browser.newContext();
const page = await alice.newPage();
const state = {};

// USD decimal strings compare exactly as numbers of nano-dollars.
const nanos = (usd) => Math.round(Number(usd) * 1e9);
const perMillion = (s) => Number(s ?? 'NaN');

await checks.run('a logged-out visit to /dashboard and /playground redirects to sign-in', async () => {
  const p = await (await browser.newContext()).newPage();
  await p.goto(url + '/dashboard');
  eq(new URL(p.url()).pathname, '/signin', 'dashboard redirect');
  await p.goto(url + '/playground');
  eq(p.url(), url + '/signin?next=/playground', 'playground redirect');
  const r = await fetch(url + '/dashboard', { redirect: 'manual' });
  eq(r.status, 302, 'status');
  await p.context().close();
});

await checks.run('sign up in the browser: a new account with the sign-up credit', async () => {
  const p = await (await browser.newContext()).newPage();
  await p.goto(url + '/signup');
  await p.getByTestId('signin-email').fill('carol@example.com');
  await p.getByTestId('signin-password').fill('carol-password-1');
  await p.getByTestId('signup-submit').click();
  await p.waitForURL(url + '/dashboard');
  await p.getByTestId('credit-balance').filter({ hasText: '$0.5' }).waitFor();
  await p.context().close();
});

await checks.run('sign in, create a key (secret shown once), call it from the OpenAI SDK', async () => {
  await signIn(page, url, 'alice@example.com', ALICE.password);
  eq(await page.getByTestId('credit-balance').textContent(), '$5', 'balance');
  await page.getByTestId('key-name-input').fill('sdk test');
  await page.getByTestId('create-key').click();
  state.secret = (await page.getByTestId('key-secret').textContent()).trim();
  assert(/^sk-v4f-[0-9a-f]{12}-[0-9a-f]{48}$/.test(state.secret), `secret ${state.secret}`);
  state.keyId = state.secret.slice(7, 19);
  const row = page.getByTestId('keys-table').locator(`tr[data-key-id="${state.keyId}"]`);
  await row.waitFor();
  assert(!(await page.getByTestId('keys-table').textContent()).includes(state.secret.slice(20)), 'the table shows the secret');
  const client = new OpenAI({ baseURL: url + '/v1', apiKey: state.secret });
  state.completion = await client.chat.completions.create({
    model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Hello from the SDK' }], max_tokens: 12,
    thinking: { type: 'disabled' },
  });
  assert(state.completion.usage.prompt_tokens > 0, 'prompt tokens');
});

await checks.run("the dashboard shows the request's tokens and cost, equal to the ledger", async () => {
  const ledger = server.usageJson(['--key', state.keyId]);
  eq(ledger.requests, 1, 'ledger rows');
  await page.reload();
  const row = page.getByTestId('requests-table').locator(`tr[data-request-id="${state.completion.id}"]`);
  await row.waitFor();
  eq(Number(await row.getAttribute('data-prompt-tokens')), state.completion.usage.prompt_tokens, 'prompt tokens');
  eq(Number(await row.getAttribute('data-completion-tokens')), state.completion.usage.completion_tokens, 'completion tokens');
  eq(nanos(await row.getAttribute('data-cost-usd')), nanos(ledger.cost_usd), 'request cost');
  eq(await row.getAttribute('data-source'), 'api', 'source');
  assert((await row.textContent()).includes('sdk test'), 'key name in the row');
  const today = new Date().toISOString().slice(0, 10);
  const day = page.getByTestId('usage-table').locator(`tr[data-model="deepseek-v4-flash"][data-day="${today}"]`);
  eq(nanos(await day.getAttribute('data-cost-usd')), nanos(ledger.by_model['deepseek-v4-flash'].cost_usd), 'day cost');
  await page.getByTestId('usage-chart').locator('rect[data-model="deepseek-v4-flash"]').first().waitFor();
  const keyRow = page.getByTestId('keys-table').locator(`tr[data-key-id="${state.keyId}"]`);
  assert((await keyRow.textContent()).includes('$' + ledger.cost_usd), 'key spend equals the ledger');
  const csv = await page.evaluate(async (h) => (await fetch(h)).text(), await page.getByTestId('usage-csv').getAttribute('href'));
  assert(csv.includes(state.completion.id), 'CSV export lists the request');
});

await checks.run('revoke the key in the dashboard (with confirmation): the SDK then gets 401', async () => {
  const keyRow = page.getByTestId('keys-table').locator(`tr[data-key-id="${state.keyId}"]`);
  await keyRow.getByTestId('revoke-key').click();
  await page.getByTestId('confirm').click();
  await keyRow.filter({ hasText: 'revoked' }).waitFor();
  const client = new OpenAI({ baseURL: url + '/v1', apiKey: state.secret, maxRetries: 0 });
  let status = 0;
  try {
    await client.chat.completions.create({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  } catch (e) {
    status = e.status;
  }
  eq(status, 401, 'status after revoke');
});

await checks.run('the model page rate cards equal the rate-card file the server bills with', async () => {
  const p = await (await browser.newContext()).newPage();  // public: signed out
  await p.goto(url + '/models/deepseek-v4-flash');
  const cards = p.getByTestId('rate-card');
  await cards.first().waitFor();
  eq(await cards.count(), 3, 'rate cards');
  for (const [id, r] of Object.entries(rates)) {
    const card = p.locator(`[data-testid="rate-card"][data-model="${id}"]`);
    eq(perMillion(await card.getAttribute('data-input-usd-per-m')), Number(r.input), `${id} input`);
    eq(perMillion(await card.getAttribute('data-output-usd-per-m')), Number(r.output), `${id} output`);
    eq(perMillion(await card.getAttribute('data-cached-input-usd-per-m')), Number(r.cached_input ?? r.input), `${id} cached`);
  }
  const code = await p.getByTestId('code-sample').textContent();
  assert(code.includes(url + '/v1/chat/completions'), 'cURL example uses the base URL');
  await p.locator('[data-testid="rate-card"][data-model="deepseek-v4-flash:variant1"] [data-testid="try-playground"]').click();
  await p.waitForURL(/\/signin\?next=\/playground/);
  await p.context().close();
});

async function playgroundTurn(prompt, maxTokens) {
  await page.getByTestId('thinking-budget-input').fill('4');
  await page.getByTestId('max-tokens-input').fill(String(maxTokens));
  await page.getByTestId('prompt-input').fill(prompt);
  await page.getByTestId('send').click();
}

await checks.run('playground: reasoning and answer stream in, turn usage shows tokens and cost (= ledger)', async () => {
  await page.goto(url + '/playground?model=deepseek-v4-flash:variant1');
  eq(await page.getByTestId('model-select').inputValue(), 'deepseek-v4-flash:variant1', 'model from the link');
  await page.getByTestId('system-input').fill('You are terse.');
  await playgroundTurn('Write a haiku', 40);
  await page.getByTestId('reasoning').last().locator('.reasoning-text').filter({ hasText: /\S/ }).waitFor();
  await page.getByTestId('answer').last().filter({ hasText: /\S/ }).waitFor();
  const usage = page.getByTestId('turn-usage').last();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="turn-usage"]')].at(-1)?.dataset.costUsd);
  const completion = Number(await usage.getAttribute('data-completion-tokens'));
  assert(completion > 4 && completion <= 40, `completion tokens ${completion}`);
  assert(Number(await usage.getAttribute('data-prompt-tokens')) > 0, 'prompt tokens');
  state.playgroundCost = nanos(await usage.getAttribute('data-cost-usd'));
  assert(state.playgroundCost > 0, 'cost');
  await page.getByTestId('view-code').click();
  const code = await page.getByTestId('code-panel').textContent();
  assert(code.includes('"deepseek-v4-flash:variant1"') && code.includes('"thinking_budget": 4'), 'View code shows the request');
});

await checks.run('playground: Stop cancels the stream; only what was generated is billed', async () => {
  await playgroundTurn('Tell me a long story', 3000);
  await page.getByTestId('answer').last().filter({ hasText: /\S/ }).waitFor();
  await page.getByTestId('stop').click();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="turn-usage"]')].at(-1)?.dataset.costUsd);
  const usage = page.getByTestId('turn-usage').last();
  const completion = Number(await usage.getAttribute('data-completion-tokens'));
  assert(completion > 0 && completion < 3000, `stopped after ${completion} tokens`);
  const id = await page.locator('article.turn').last().getAttribute('data-request-id');
  const rows = await page.evaluate(async () => (await (await fetch('/console/api/usage')).json()).requests);
  const row = rows.find((r) => r.request_id === id);
  eq(row.status, 'cancelled', 'ledger status');
  eq(row.source, 'playground', 'ledger source');
  eq(row.output_tokens, completion, 'billed output tokens');
  // The whole account, through the CLI's ledger report, equals the dashboard's per-day table.
  const ledger = server.usageJson();
  await page.goto(url + '/dashboard');
  await page.getByTestId('usage-table').locator('tr[data-model="deepseek-v4-flash:variant1"]').waitFor();
  const sum = await page.getByTestId('usage-table').locator('tr').evaluateAll((trs) =>
    trs.filter((t) => t.dataset.costUsd).map((t) => Math.round(Number(t.dataset.costUsd) * 1e9)).reduce((a, b) => a + b, 0));
  eq(sum, nanos(ledger.cost_usd) - 0, 'dashboard total vs ledger total (alice is the only spender)');
  eq(nanos(ledger.by_model['deepseek-v4-flash:variant1'].cost_usd) >= state.playgroundCost, true, 'playground billed');
});

await checks.run('a CSRF-less POST is refused (console API and cookie-authenticated API)', async () => {
  const res = await page.evaluate(async () => {
    const a = await fetch('/console/api/keys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"x"}' });
    const b = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 }) });
    return [a.status, b.status];
  });
  eq(res[0], 403, 'console POST without X-CSRF-Token');
  eq(res[1], 403, 'API POST with the session cookie but no X-CSRF-Token');
  const cookies = await alice.cookies();
  const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await fetch(url + '/console/api/keys', { method: 'POST', headers: { cookie, 'content-type': 'application/json',
    origin: 'https://evil.example' }, body: '{"name":"x"}' });
  eq(forged.status, 403, 'cross-origin POST with the cookie');
});

await checks.run("a second account cannot see the first one's keys or usage", async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await signIn(p, url, 'bob@example.com', BOB.password);
  await p.getByTestId('usage-table').waitFor();
  eq(await p.getByTestId('keys-table').locator('tbody tr').count(), 0, "bob's keys");
  eq(await p.getByTestId('usage-table').locator('tbody tr').count(), 0, "bob's usage rows");
  eq(await p.getByTestId('requests-table').locator('tbody tr').count(), 0, "bob's requests");
  const probe = await p.evaluate(async (keyId) => {
    const session = await (await fetch('/console/api/session')).json();
    const h = { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token };
    return [(await fetch('/console/api/usage?key=' + keyId)).status,
      (await fetch(`/console/api/keys/${keyId}/revoke`, { method: 'POST', headers: h, body: '{}' })).status,
      (await fetch('/console/api/admin/accounts')).status];
  }, state.keyId);
  eq(probe.join(','), '404,404,403', "bob probing alice's key and the admin list");
  await ctx.close();
});

await browser.close();
await server.stop();
checks.finish();
