// The Responses API's state through the official `openai` SDK against `v4flash-testserver
// --scripted-engine --db FILE` (the store in the database's `responses` table): create (stored by
// default), retrieve, inputItems.list (auto-paginated), delete, previous_response_id with its prefix
// cache hit, background polled and cancelled.
//   node tests/api/sdk/response_state.mjs --binary build/v4flash-testserver --scripted-engine
import OpenAI from 'openai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, startServer, Checks, assert, eq, schemaOk, openaiValidator, forced, EOS } from './harness.mjs';

const opts = parseArgs(process.argv.slice(2));
const dir = mkdtempSync(path.join(os.tmpdir(), 'v4f-sdk-respstate-'));
// 2 ms a token: a background response runs long enough to be seen running and cancelled.
const server = await startServer(opts, ['--db', path.join(dir, 'v4flash.db'), '--scripted-token-delay-us', '2000']);
const checks = new Checks('SDK response state (scripted engine, --db)');
const client = new OpenAI({ baseURL: server.url + '/v1', apiKey: server.apiKey, maxRetries: 0, fetch: server.fetch });
const validateResponse = openaiValidator('Response');
const validateItem = openaiValidator('ItemResource');
const model = 'deepseek-v4-flash';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function finished(id) {
  for (let i = 0; i < 500; i++) {
    const r = await client.responses.retrieve(id);
    if (r.status !== 'queued' && r.status !== 'in_progress') return r;
    await sleep(20);
  }
  throw new Error(`${id} did not finish`);
}

let ok = false;
try {
  await checks.run('state: create (stored by default) -> retrieve the same object -> inputItems -> delete', async () => {
    const r = await client.responses.create({ model, input: 'Say hello.', instructions: 'Be brief.', x_forced_completion: forced.thinking });
    eq(r.store, true, 'store defaults to true');
    const got = await client.responses.retrieve(r.id);
    schemaOk(validateResponse, got, 'retrieved response');
    eq(got, r, 'retrieved object');
    const sealed = await client.responses.retrieve(r.id, { include: ['reasoning.encrypted_content'] });
    assert(typeof sealed.output[0].encrypted_content === 'string', 'include: the reasoning sealed');
    // input: the scripting fetch's system item, then the user's message; newest first by default
    const page = await client.responses.inputItems.list(r.id);
    eq(page.data.map((i) => i.role), ['user', 'system'], 'roles, newest first');
    eq(page.data[0].content, [{ type: 'input_text', text: 'Say hello.' }], 'content as parts');
    for (const item of page.data) schemaOk(validateItem, item, 'input item');
    const all = [];
    for await (const item of client.responses.inputItems.list(r.id, { limit: 1, order: 'asc' })) all.push(item.id);
    eq(all, page.data.map((i) => i.id).reverse(), 'auto-paginated, oldest first');
    await client.responses.delete(r.id);
    try { await client.responses.retrieve(r.id); throw new Error('expected 404'); }
    catch (e) { assert(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e}`); }
  });

  await checks.run('state: store false keeps nothing', async () => {
    const r = await client.responses.create({ model, input: 'Hi', store: false, x_forced_completion: forced.plain });
    eq(r.store, false, 'store echoed');
    try { await client.responses.retrieve(r.id); throw new Error('expected 404'); }
    catch (e) { assert(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e}`); }
  });

  await checks.run('state: previous_response_id continues the conversation; the prefix cache serves it', async () => {
    const instructions = 'You are a careful assistant. Answer every question briefly and politely.';
    const first = await client.responses.create({ model, instructions, input: 'Weather in Paris?', x_forced_completion: forced.thinking });
    const second = await client.responses.create({
      model, instructions, previous_response_id: first.id, input: 'And tomorrow?', x_forced_completion: forced.plain,
    });
    schemaOk(validateResponse, second, 'second response');
    eq(second.previous_response_id, first.id, 'previous_response_id echoed');
    assert(second.usage.input_tokens_details.cached_tokens > 0, `cached_tokens > 0, got ${JSON.stringify(second.usage)}`);
    assert(second.usage.input_tokens > first.usage.input_tokens, 'the earlier turn is in the prompt');
    try { await client.responses.create({ model, input: 'x', previous_response_id: 'resp_nope' }); throw new Error('expected 404'); }
    catch (e) {
      assert(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e}`);
      eq(e.param, 'previous_response_id', 'param');
      eq(e.code, 'previous_response_not_found', 'code');
    }
  });

  await checks.run('state: background -> queued, polled to completed; cancelling it then is an error', async () => {
    const r = await client.responses.create({ model, input: 'Say hello.', background: true, x_forced_completion: forced.thinking });
    schemaOk(validateResponse, r, 'queued response');
    eq(r.status, 'queued', 'status');
    eq(r.background, true, 'background');
    const done = await finished(r.id);
    schemaOk(validateResponse, done, 'finished response');
    eq(done.status, 'completed', 'final status');
    eq(done.output_text, 'Alpha beta gamma delta.', 'output_text');
    try { await client.responses.cancel(r.id); throw new Error('expected 400'); }
    catch (e) { assert(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e}`); }
  });

  await checks.run('state: background cancel -> cancelled (and again: the same)', async () => {
    const long = 'Thinking.</think>' + ' word'.repeat(3000) + EOS;
    const r = await client.responses.create({ model, input: 'Count.', background: true, x_forced_completion: long });
    const cancelled = await client.responses.cancel(r.id);
    schemaOk(validateResponse, cancelled, 'cancelled response');
    eq(cancelled.status, 'cancelled', 'status');
    eq((await client.responses.cancel(r.id)).status, 'cancelled', 'cancelling twice');
    eq((await client.responses.retrieve(r.id)).status, 'cancelled', 'retrieved');
  });

  await checks.run('state: background with stream is refused naming stream', async () => {
    try { await client.responses.create({ model, input: 'x', background: true, stream: true }); throw new Error('expected 400'); }
    catch (e) { assert(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e}`); eq(e.param, 'stream', 'param'); }
  });
  ok = checks.summary();
} finally {
  const code = await server.stop();
  if (code !== 0) { console.log(`server exit code ${code}\n${server.log()}`); ok = false; }
  rmSync(dir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
