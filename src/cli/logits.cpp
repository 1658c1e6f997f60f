// v4flash logits: run the model over a token list the way the reference fixtures were made
// (prefill the first N tokens in one call, then feed the rest one at a time) and write the logits
// rows (and optionally each layer's last-position streams, the indexer's selections and the MTP
// block's logits over the prefill) to a safetensors file.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/checkpoint.h"
#include "model/model.h"

namespace v4::cli {
namespace {



std::vector<int32_t> read_tokens(const ArgParser& p) {
  auto inline_list = p.value("tokens");
  auto file = p.value("tokens-file");
  if (inline_list.has_value() == file.has_value()) throw std::invalid_argument("give exactly one of --tokens or --tokens-file");
  if (inline_list) return parse_token_ids(*inline_list);
  std::ifstream f(*file);
  if (!f) throw std::invalid_argument("cannot read " + *file);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_token_ids(ss.str());
}

// Minimal safetensors output: F32 / I32 tensors, header padded to 8 bytes.
struct OutTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

template <class T>
OutTensor make_tensor(std::string name, const char* dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
  OutTensor t{std::move(name), dtype, std::move(shape), {}};
  t.bytes.resize(v.size() * sizeof(T));
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

void write_safetensors(const std::string& path, const std::vector<OutTensor>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"v4flash logits\"}";
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + path);
  const uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(header.data(), std::streamsize(header.size()));
  for (const auto& t : tensors) f.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
  if (!f) throw std::runtime_error("error writing " + path);
}

int run_logits(const Args& args) {
  ArgParser p(args);
  p.check_known({"model", "tokens", "tokens-file", "prefill", "out", "threads"}, {"exact", "dump-layers", "mtp"});
  const auto model_dir = p.value("model");
  const auto out_path = p.value("out");
  if (!model_dir || !out_path) {
    std::fprintf(stderr,
                 "usage: v4flash logits --model DIR (--tokens 1,2,3 | --tokens-file F) [--prefill N] [--exact]\n"
                 "                      --out FILE.safetensors [--dump-layers] [--mtp] [--threads T]\n"
                 "  --mtp: also run the MTP block over the prefill as the reference does (position t with\n"
                 "         token t+1) and write its logits for every prefill position as mtp_logits\n");
    return 2;
  }
  const std::vector<int32_t> tokens = read_tokens(p);
  if (tokens.empty()) throw std::invalid_argument("no tokens");
  const long long prefill = p.integer("prefill", (long long)tokens.size(), 1, (long long)tokens.size());
  const bool mtp = p.flag("mtp");
  if (mtp && size_t(prefill) >= tokens.size())
    throw std::invalid_argument("--mtp needs at least one token after the prefill (the MTP block reads token t+1)");

  auto ckpt = core::Checkpoint::open(*model_dir);
  model::ModelOptions opts;
  opts.exact = p.flag("exact");
  opts.threads = int(p.integer("threads", 0, 0, 1024));
  opts.enable_mtp = mtp;
  auto model = model::Model::load(*ckpt, opts);
  const auto& cfg = model->config();
  const int64_t V = cfg.vocab_size;

  model::ForwardTrace trace;
  trace.capture_layers = trace.capture_indexer = p.flag("dump-layers");
  auto state = model->new_state();
  model::BatchItem item{state.get(), std::span<const int32_t>(tokens.data(), size_t(prefill)), false};
  std::vector<float> logits = model->forward_traced(std::span<const model::BatchItem>(&item, 1), &trace);
  std::vector<float> mtp_logits;
  if (mtp)  // before the decode steps replace the prefill's final streams
    mtp_logits = model->mtp_logits(*state, std::span<const int32_t>(tokens.data() + 1, size_t(prefill)), true);
  for (size_t k = size_t(prefill); k < tokens.size(); ++k) {
    item.tokens = std::span<const int32_t>(tokens.data() + k, 1);
    const std::vector<float> row = model->forward(std::span<const model::BatchItem>(&item, 1));
    logits.insert(logits.end(), row.begin(), row.end());
  }

  std::vector<OutTensor> out;
  const int64_t rows = int64_t(logits.size()) / V;
  out.push_back(make_tensor("logits", "F32", {rows, V}, logits));
  out.push_back(make_tensor("tokens", "I32", {int64_t(tokens.size())}, tokens));
  if (mtp) out.push_back(make_tensor("mtp_logits", "F32", {prefill, V}, mtp_logits));
  if (p.flag("dump-layers")) {
    for (size_t l = 0; l < trace.layer_out_last.size(); ++l)
      out.push_back(make_tensor("layer" + std::to_string(l) + ".out_last", "F32", {cfg.hc_mult, cfg.hidden_size},
                                trace.layer_out_last[l]));
    // The fixture's convention: compressed-entry id + the prefill length, -1 where masked.
    for (auto& [layer, ids] : trace.indexer_topk) {
      std::vector<int32_t> v = ids;
      for (int32_t& x : v)
        if (x >= 0) x += int32_t(prefill);
      out.push_back(make_tensor("layer" + std::to_string(layer) + ".indexer_topk", "I32", {prefill, cfg.index_topk}, v));
    }
  }
  write_safetensors(*out_path, out);
  std::fprintf(stderr, "wrote %lld logits rows (prefill %lld, %s mode) to %s\n", (long long)rows, prefill,
               opts.exact ? "exact" : "quantised", out_path->c_str());
  return 0;
}

}  // namespace

V4_COMMAND("logits", "prefill N tokens, feed the rest one by one, write the logits (safetensors)", run_logits);

}  // namespace v4::cli
