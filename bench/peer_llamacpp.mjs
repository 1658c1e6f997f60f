// llama.cpp (via node-llama-cpp, installed in bench/.peer by peer-llamacpp.sh) on a GGUF written by
// `v4flash export-gguf`: timed prompt eval of N tokens and timed decode of M tokens, one thread count
// per process (a failed graph build in llama.cpp is an abort, not an exception).
//   node bench/peer_llamacpp.mjs --model X.gguf --threads T [--prompt 512] [--gen 16] [--repeats 3]
//        [--smoke] [--timings]
// --smoke: load, evaluate a short prompt, greedy-generate 8 tokens, print them and the top logits.
// Prints one JSON line: {"engine":"llama.cpp","threads":T,"prompt":N,"gen":M,"pp_tps":..,...}.
import {createRequire} from "node:module";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, ".peer", "package.json"));
const {getLlama, LlamaLogLevel} = await import(require.resolve("node-llama-cpp"));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  if (fallback === true || fallback === false) return true;
  return process.argv[i + 1];
}
const modelPath = arg("model");
if (!modelPath) {
  console.error("usage: node bench/peer_llamacpp.mjs --model X.gguf --threads T [--prompt N] [--gen M] [--repeats R] [--smoke]");
  process.exit(2);
}
const threads = Number(arg("threads", "1"));
const promptLen = Number(arg("prompt", "512"));
const genLen = Number(arg("gen", "16"));
const repeats = Number(arg("repeats", "3"));
const smoke = arg("smoke", false);
const timings = arg("timings", false);

// Deterministic token ids (xorshift), avoiding the first 2 ids (BOS/EOS in our exports).
function tokens(count, vocab, seed) {
  let x = seed >>> 0 || 1;
  const out = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.push(2 + (x % (vocab - 2)));
  }
  return out;
}
const stats = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return {min: s[0], median: s[Math.floor(s.length / 2)]};
};

const llama = await getLlama({gpu: false, build: "never", maxThreads: 0, logLevel: LlamaLogLevel.warn});
let t0 = performance.now();
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const loadSeconds = (performance.now() - t0) / 1000;
const embd = (model.fileInfo.tensorInfo ?? []).find((t) => t.name === "token_embd.weight");
const vocab = Number(arg("vocab", "0")) || (embd ? Number(embd.dimensions[1]) : 0);
if (!vocab) throw new Error("cannot tell the vocabulary size: pass --vocab V");
const ctxSize = Math.max(256, promptLen + genLen + 16);
const ctx = await model.createContext({contextSize: ctxSize, batchSize: Math.max(promptLen, 32), sequences: 1,
  threads: {ideal: threads, min: threads}, flashAttention: false, performanceTracking: true});
if (ctx.currentThreads !== threads) console.error(`warning: context runs ${ctx.currentThreads} threads, asked ${threads}`);
const seq = ctx.getSequence();

// --reference ../shared/fixtures/tiny-v4/reference-exact.safetensors (or a JSON {tokens, F, G0, G}): compare
// llama.cpp's last-position logits after 320 and 384 prompt tokens and its 32 greedy tokens.
const referencePath = arg("reference", "");
if (referencePath) {
  const fs = await import("node:fs");
  // A .safetensors path reads the fixture file directly (A.tokens, F.logits, G.logits row 0, G.generated).
  const readReference = (file) => {
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
    const get = (key) => {
      const {dtype, data_offsets: [a, b]} = header[key];
      const bytes = buf.subarray(8 + n + a, 8 + n + b);
      const copy = new Uint8Array(bytes).buffer;  // aligned copy for the typed view
      return Array.from(dtype === "I32" ? new Int32Array(copy) : new Float32Array(copy));
    };
    const tokens = get("A.tokens");
    const G0 = get("G.logits").slice(0, get("F.logits").length);
    return {tokens, F: get("F.logits"), G0, G: get("G.generated")};
  };
  const ref = referencePath.endsWith(".safetensors") ? readReference(referencePath)
    : JSON.parse(fs.readFileSync(referencePath, "utf8"));
  const lastLogits = async (ids) => {
    await seq.clearHistory();
    const res = await seq.controlledEvaluate([...ids.slice(0, -1),
      [ids.at(-1), {generateNext: {token: true, logits: true, options: {temperature: 0}}}]]);
    const {token, logits} = res.at(-1).next;
    const row = new Array(vocab).fill(NaN);
    for (const [t, l] of logits) row[t] = l;
    return {token, row};
  };
  const compare = (got, want) => {
    let maxAbs = 0, sumAbs = 0, argGot = 0, argWant = 0;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(got[i] - want[i]);
      maxAbs = Math.max(maxAbs, Number.isNaN(d) ? Infinity : d), sumAbs += d;
      if (got[i] > got[argGot]) argGot = i;
      if (want[i] > want[argWant]) argWant = i;
    }
    return {max_abs: maxAbs, mean_abs: sumAbs / want.length, argmax: argGot, argmax_ref: argWant};
  };
  const g = await lastLogits(ref.tokens.slice(0, 320));
  const generated = [g.token];
  for await (const t of seq.evaluate([g.token], {temperature: 0})) {
    generated.push(t);
    if (generated.length >= ref.G.length) break;
  }
  let same = 0;
  while (same < ref.G.length && generated[same] === ref.G[same]) same++;
  const f = await lastLogits(ref.tokens);
  console.log(JSON.stringify({engine: "llama.cpp", threads, G0: compare(g.row, ref.G0), F: compare(f.row, ref.F),
    greedy_equal_prefix: same, greedy: generated}));
  process.exit(0);
}

if (smoke) {
  const ids = tokens(Math.min(promptLen, 64), vocab, 1234);
  const res = await seq.controlledEvaluate([...ids.slice(0, -1),
    [ids.at(-1), {generateNext: {token: true, logits: true, options: {temperature: 0}}}]]);
  const {token, logits} = res.at(-1).next;
  const top = [...logits.entries()].slice(0, 5).map(([t, l]) => [t, Number(l.toFixed(4))]);
  const generated = [token];
  for await (const t of seq.evaluate([token], {temperature: 0})) {
    generated.push(t);
    if (generated.length >= 8) break;
  }
  console.log(JSON.stringify({engine: "llama.cpp", smoke: true, threads, vocab, prompt: ids.length, load_s: loadSeconds,
    n_logits: logits.size, top_logits: top, greedy: generated,
    finite: [...logits.values()].every(Number.isFinite)}));
  process.exit(0);
}

const prompt = tokens(promptLen, vocab, 42);
const next = tokens(genLen, vocab, 7);
const pp = [], tg = [];
for (let r = 0; r <= repeats; r++) {  // run 0 is a warm-up
  await seq.clearHistory();
  // Like `v4flash bench`, every forward computes the last position's logits (llama.cpp skips the
  // output head for positions nobody asked logits for), then a greedy pick over them.
  const greedy = {generateNext: {token: true, options: {temperature: 0}}};
  t0 = performance.now();
  await seq.controlledEvaluate([...prompt.slice(0, -1), [prompt.at(-1), greedy]]);
  const ppSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (const t of next) await seq.controlledEvaluate([[t, greedy]]);  // one llama_decode per token
  const tgSeconds = (performance.now() - t0) / 1000;
  if (r > 0) pp.push(promptLen / ppSeconds), tg.push(genLen / tgSeconds);
}
if (timings) {
  llama.logLevel = LlamaLogLevel.info;
  await ctx.printTimings();
}
const p = stats(pp), g = stats(tg);
// tokens/s: best = max (the min time), median
console.log(JSON.stringify({engine: "llama.cpp", threads, prompt: promptLen, gen: genLen, repeats, load_s: loadSeconds,
  pp_tps: Math.max(...pp), pp_tps_median: p.median, tg_tps: Math.max(...tg), tg_tps_median: g.median}));
await ctx.dispose();
await model.dispose();
