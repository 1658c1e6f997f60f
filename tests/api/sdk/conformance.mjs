// SDK conformance suite: starts `v4flash-testserver` (the product's `serve` with scripted engines,
// tests/support) on a free port and drives every endpoint with the official SDKs (openai@6,
// @anthropic-ai/sdk), plus raw HTTP for what SDKs cannot send. Scripted output is the point here
// (reasoning split, tool calls, stop strings on known text), hence the test server.
//   node tests/api/sdk/conformance.mjs --binary build/v4flash-testserver --scripted-engine
//   node tests/api/sdk/conformance.mjs --binary build/v4flash-testserver --model demo/tiny
import { parseArgs, startServer, Checks, assert, eq } from './harness.mjs';
import { chatChecks } from './chat.mjs';
import { responsesChecks } from './responses.mjs';
import { messagesChecks } from './messages.mjs';

const opts = parseArgs(process.argv.slice(2));
const server = await startServer(opts);
const checks = new Checks(`SDK conformance (${opts.scripted ? 'scripted engine' : opts.model || opts.url})`);
let ok = false;
try {
  await chatChecks(checks, server);
  await responsesChecks(checks, server);
  await messagesChecks(checks, server);

  // What the SDKs cannot produce: the bad-input table at the HTTP level.
  const post = (path, body, headers = {}) => fetch(server.url + path, {
    method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${server.apiKey}`, ...headers },
  });
  await checks.run('http: bad-input table (status + dialect error JSON)', async () => {
    const table = [
      ['/v1/chat/completions', '{"model": "deepseek-v4-flash", "messages": [', {}, 400, 'invalid_request_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'x' }], max_tokens: 'ten' }), {}, 400, 'invalid_request_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'x' }], max_tokens: 400000 }), {}, 422, 'invalid_request_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash' }), {}, 400, 'invalid_request_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), {}, 404, 'not_found_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'x' }] }), { authorization: '' }, 401, 'authentication_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'x' }] }), { authorization: 'Bearer nope' }, 401, 'authentication_error'],
      ['/v1/responses', JSON.stringify({ model: 'deepseek-v4-flash', input: 'x', temperature: -1 }), {}, 422, 'invalid_request_error'],
      ['/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'x'.repeat(33 << 20) }] }), {}, 413, 'invalid_request_error'],
      ['/v1/messages', JSON.stringify({ model: 'deepseek-v4-flash', max_tokens: 5, messages: [{ role: 'user', content: 'x'.repeat(33 << 20) }] }), {}, 413, 'request_too_large'],
      ['/v1/messages', '{"model":', {}, 400, 'invalid_request_error'],
      ['/v1/messages', JSON.stringify({ model: 'deepseek-v4-flash', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), { authorization: '', 'x-api-key': 'wrong' }, 401, 'authentication_error'],
    ];
    for (const [path, body, headers, status, type] of table) {
      const r = await post(path, body, headers);
      const j = await r.json();
      eq(r.status, status, `${path} ${body.slice(0, 80)} status`);
      const errType = path.startsWith('/v1/messages') ? (eq(j.type, 'error', 'anthropic envelope'), j.error.type) : j.error.type;
      eq(errType, type, `${path} ${body.slice(0, 80)} error type`);
    }
  });

  await checks.run('http: /health open, /metrics guarded and Prometheus text', async () => {
    eq((await fetch(server.url + '/health')).status, 200, '/health');
    eq((await fetch(server.url + '/metrics')).status, 401, '/metrics without key');
    const m = await fetch(server.url + '/metrics', { headers: { authorization: `Bearer ${server.apiKey}` } });
    eq(m.status, 200, '/metrics');
    assert((await m.text()).includes('v4flash:'), 'v4flash: metrics');
  });

  await checks.run('http: client abort mid-stream leaves the server healthy', async () => {
    const ctrl = new AbortController();
    const r = await post('/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] }), {});
    const reader = r.body.getReader();
    await reader.read();
    await reader.cancel();
    ctrl.abort();
    const after = await post('/v1/chat/completions', JSON.stringify({ model: 'deepseek-v4-flash', max_tokens: 4, messages: [{ role: 'user', content: 'Hi' }] }));
    eq(after.status, 200, 'next request');
  });
  ok = checks.summary();
} finally {
  const code = await server.stop();
  if (code !== 0) { console.log(`server exit code ${code} after SIGTERM (expected 0)\n${server.log()}`); ok = false; }
  else console.log('server stopped cleanly on SIGTERM');
}
process.exit(ok ? 0 : 1);
