// v4flash export-gguf DIR OUT.gguf [--dense bf16|q8_0] [--quiet]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "export/gguf_writer.h"

namespace {

int export_gguf(const v4::cli::Args& args) {
  v4::cli::ArgParser p(args);
  p.check_known({"dense"}, {"quiet"});
  const auto pos = p.positional();
  const std::string dense = p.value_or("dense", "bf16");
  if (pos.size() != 2 || (dense != "bf16" && dense != "q8_0")) {
    std::fprintf(stderr,
                 "usage: v4flash export-gguf DIR OUT.gguf [--dense bf16|q8_0] [--quiet]\n"
                 "Writes the checkpoint in DIR as a llama.cpp `deepseek4` GGUF (v3): routed FP4 experts as\n"
                 "MXFP4 (bit-exact), FP8 dense matrices dequantised to --dense (default bf16; attn_output_a is\n"
                 "always BF16), BF16 matrices as BF16, 1-d tensors as F32, tid2eid as I32; MTP layers left out.\n"
                 "Tokenizer from DIR/tokenizer.json when present, else a placeholder byte vocabulary.\n");
    return 2;
  }
  v4::core::GgufExportOptions options;
  options.dense = dense == "q8_0" ? v4::core::DenseType::Q8_0 : v4::core::DenseType::BF16;
  const auto ckpt = v4::core::Checkpoint::open(pos[0]);
  const v4::core::GgufWriter writer = v4::core::make_deepseek4_gguf(*ckpt, options);

  const bool show = !p.flag("quiet") && isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  auto progress = [&](uint64_t done, uint64_t total, const std::string& name) {
    if (!show) return;
    const auto now = std::chrono::steady_clock::now();
    if (done != total && now - last < std::chrono::milliseconds(200)) return;
    last = now;
    const double secs = std::chrono::duration<double>(now - start).count();
    std::fprintf(stderr, "\r  %.2f / %.2f GB (%3.0f%%), %.0f MB/s  %-40.40s", double(done) / 1e9, double(total) / 1e9,
                 total ? 100.0 * double(done) / double(total) : 100.0, secs > 0 ? double(done) / 1e6 / secs : 0.0,
                 name.c_str());
    if (done == total) std::fputc('\n', stderr);
  };
  writer.write(pos[1], progress);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %zu tensors, %lld layers (MTP left out), dense %s, %.1f s\n", pos[1].c_str(),
              writer.tensor_count(), (long long)ckpt->config().num_hidden_layers, dense.c_str(), secs);
  return 0;
}

}  // namespace

V4_COMMAND("export-gguf", "write a checkpoint as a llama.cpp deepseek4 GGUF (for the peer benchmark)", export_gguf);
