// Makes the README's console screenshots (not a test): a demo account with some usage, then the
// dashboard, the model page and the playground, wide (1280 px) and narrow (390 px), light theme.
// usage: node tests/console/screenshots.mjs --binary build/v4flash --model CHECKPOINT --screenshots docs/console
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { launchBrowser, parseArgs, signIn, startConsole } from './harness.mjs';

const opts = parseArgs(process.argv.slice(2));
mkdirSync(opts.shots, { recursive: true });
const server = await startConsole(opts, { 'demo@v4flash.local': { password: 'demo-password-1', credit: '10', admin: true } });
const browser = await launchBrowser();
const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await ctx.newPage();
await signIn(page, server.url, 'demo@v4flash.local', 'demo-password-1');
for (const name of ['production', 'staging']) {
  await page.getByTestId('key-name-input').fill(name);
  await page.getByTestId('create-key').click();
  await page.getByTestId('key-secret').filter({ hasText: 'sk-v4f' }).waitFor();
}
const secret = (await page.getByTestId('key-secret').textContent()).trim();
const client = new OpenAI({ baseURL: server.url + '/v1', apiKey: secret });
for (const model of ['deepseek-v4-flash', 'deepseek-v4-flash:variant1', 'deepseek-v4-flash:variant2', 'deepseek-v4-flash'])
  await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 24, thinking: { type: 'disabled' } });
await page.goto(server.url + '/playground?model=deepseek-v4-flash:variant1');
await page.getByTestId('thinking-budget-input').fill('8');
await page.getByTestId('max-tokens-input').fill('48');
await page.getByTestId('prompt-input').fill('Explain **continuous batching** in two sentences.');
await page.getByTestId('send').click();
await page.waitForFunction(() => document.querySelector('[data-testid="turn-usage"]')?.dataset.costUsd, null, { timeout: 180_000 });

const other = await ctx.newPage();
for (const [width, height, tag] of [[1280, 900, 'wide'], [390, 844, 'narrow']]) {
  await page.setViewportSize({ width, height });
  await page.screenshot({ path: path.join(opts.shots, `playground-${tag}.png`) });
  await other.setViewportSize({ width, height });
  for (const [name, where] of [['dashboard', '/dashboard'], ['model', '/models/deepseek-v4-flash']]) {
    await other.goto(server.url + where);
    await other.waitForLoadState('networkidle');
    await other.screenshot({ path: path.join(opts.shots, `${name}-${tag}.png`) });
  }
}
await browser.close();
await server.stop();
console.log(`screenshots in ${opts.shots}`);
