// v4flash synth --out DIR --shape tiny|flash [--layers N] [--experts E] [--seed S] [--tokenizer FILE]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "export/synth.h"

namespace {

int64_t parse_int(const std::string& flag, const std::string& text) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) throw std::invalid_argument("--" + flag + " needs an integer, got '" + text + "'");
  return v;
}

int synth(const v4::cli::Args& args) {
  v4::cli::ArgParser p(args);
  p.check_known({"out", "shape", "layers", "experts", "seed", "tokenizer"}, {"quiet"});
  const auto out = p.value("out");
  if (!out || !p.positional().empty()) {
    std::fprintf(stderr,
                 "usage: v4flash synth --out DIR [--shape tiny|flash] [--layers N] [--experts E] [--seed S]\n"
                 "                     [--tokenizer tokenizer.json] [--quiet]\n"
                 "Writes a random-weight DeepSeek-V4 checkpoint in the official format (deterministic per seed).\n"
                 "  tiny : the dimensions of ../shared/fixtures/tiny-v4 (hidden 256, 6 layers, 8 FP4 experts)\n"
                 "  flash: the real V4-Flash dimensions (hidden 4096, 64 x 512 heads, 256 FP4 experts of 2048,\n"
                 "         vocab 129280), 43 layers unless --layers; sharded one file per layer + index.\n"
                 "Layer plan for --layers N: flash N >= 4: layers 0-1 SWA, then CSA (even) / HCA (odd), the\n"
                 "official list at N = 43; flash N < 4: CSA, HCA, ... (N = 2: [4, 128]); tiny N = 6: the fixture\n"
                 "plan, other N: SWA then CSA/HCA alternating. Plus one SWA MTP layer. Hash-routed layers:\n"
                 "the first min(3 (tiny 2), N - 1). --experts sets the routed expert count (top-k capped to it).\n"
                 "--tokenizer copies an HF tokenizer.json beside it with V4's extra special tokens added at\n"
                 "their V4 ids (<think> 128821, </think> 128822, ...) and vocab_size grown to cover every id.\n");
    return 2;
  }
  v4::core::SynthOptions o;
  o.shape = p.value_or("shape", "tiny");
  if (auto v = p.value("layers")) o.layers = parse_int("layers", *v);
  if (auto v = p.value("experts")) o.experts = parse_int("experts", *v);
  if (auto v = p.value("seed")) o.seed = uint64_t(parse_int("seed", *v));
  o.tokenizer = p.value_or("tokenizer", "");

  const bool show = !p.flag("quiet") && isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  auto progress = [&](uint64_t done, uint64_t total) {
    if (!show) return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total && now - last < std::chrono::milliseconds(200)) return;
    last = now;
    const double secs = std::chrono::duration<double>(now - start).count();
    std::fprintf(stderr, "\r  writing %.2f / %.2f GB (%3.0f%%), %.0f MB/s   ", double(done) / 1e9, double(total) / 1e9,
                 total ? 100.0 * double(done) / double(total) : 100.0, secs > 0 ? double(done) / 1e6 / secs : 0.0);
    if (done == total) std::fputc('\n', stderr);
  };
  const auto r = v4::core::write_synthetic_checkpoint(o, *out, progress);
  std::printf("wrote %s: %s shape, %lld layers + %lld MTP, %lld experts, vocab %lld, %zu tensors in %zu file%s, %.3f GB\n",
              out->c_str(), o.shape.c_str(), (long long)r.config.num_hidden_layers,
              (long long)r.config.num_nextn_predict_layers, (long long)r.config.n_routed_experts,
              (long long)r.config.vocab_size, r.tensors, r.files, r.files == 1 ? "" : "s", double(r.bytes) / 1e9);
  if (!o.tokenizer.empty())
    std::printf("tokenizer.json: %lld V4 special tokens added\n", (long long)r.tokenizer_tokens_added);
  return 0;
}

}  // namespace

V4_COMMAND("synth", "write a random-weight DeepSeek-V4 checkpoint (tiny or V4-Flash shapes)", synth);
