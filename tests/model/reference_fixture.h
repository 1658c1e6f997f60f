#pragma once
// Shared helpers for the model tests: the tiny checkpoint, the reference outputs and a driver that
// runs a fixture case the way the reference did (prefill N tokens, then one token per call).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/safetensors.h"
#include "model/model.h"

namespace v4::model::testing {

inline std::string tiny_dir() { return std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4"; }

inline const core::Checkpoint& tiny_checkpoint() {
  static std::unique_ptr<core::Checkpoint> ckpt = core::Checkpoint::open(tiny_dir());
  return *ckpt;
}

// A reference file's tensor as float / int32 (F32 or I32 only).
class ReferenceFile {
 public:
  // `name` inside `dir` (default the tiny-v4 fixture).
  explicit ReferenceFile(const std::string& name, const std::string& dir = tiny_dir())
      : file_(core::SafetensorsFile::open(dir + "/" + name)) {}
  bool has(const std::string& key) const { return file_->tensors().count(key) != 0; }
  const core::TensorView& view(const std::string& key) const {
    auto it = file_->tensors().find(key);
    if (it == file_->tensors().end()) throw std::runtime_error("reference tensor missing: " + key);
    return it->second;
  }
  std::vector<float> floats(const std::string& key) const {
    const auto& t = view(key);
    if (t.dtype != core::DType::F32) throw std::runtime_error(key + " is not F32");
    std::vector<float> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, v.size() * 4);
    return v;
  }
  // I32, or I64 narrowed (token ids).
  std::vector<int32_t> ints(const std::string& key) const {
    const auto& t = view(key);
    std::vector<int32_t> v(size_t(t.numel()));
    if (t.dtype == core::DType::I64) {
      std::vector<int64_t> wide(v.size());
      std::memcpy(wide.data(), t.data, wide.size() * 8);
      std::copy(wide.begin(), wide.end(), v.begin());
      return v;
    }
    if (t.dtype != core::DType::I32) throw std::runtime_error(key + " is neither I32 nor I64");
    std::memcpy(v.data(), t.data, v.size() * 4);
    return v;
  }

 private:
  std::unique_ptr<core::SafetensorsFile> file_;
};

// Prefill tokens[0, prefill) in one call, then feed the rest one at a time; returns the logits rows
// in the fixture's convention (row 0 after the prefill, row k after feeding token prefill+k-1).
inline std::vector<float> run_teacher_forced(Model& model, const std::vector<int32_t>& tokens, size_t prefill,
                                             ForwardTrace* prefill_trace = nullptr) {
  auto state = model.new_state();
  std::vector<float> out;
  BatchItem item;
  item.state = state.get();
  item.tokens = std::span<const int32_t>(tokens.data(), prefill);
  BatchItem items[1] = {item};
  std::vector<float> row = model.forward_traced(items, prefill_trace);
  out.insert(out.end(), row.begin(), row.end());
  for (size_t k = prefill; k < tokens.size(); ++k) {
    items[0].tokens = std::span<const int32_t>(tokens.data() + k, 1);
    row = model.forward(items);
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

struct Comparison {
  double max_abs = 0, mean_abs = 0, min_cosine = 1, argmax_agreement = 1;
};

inline int64_t argmax(const float* v, int64_t n) { return int64_t(std::max_element(v, v + n) - v); }

inline Comparison compare_rows(const std::vector<float>& got, const std::vector<float>& want, int64_t vocab) {
  Comparison c;
  if (got.size() != want.size()) throw std::runtime_error("row count differs");
  const int64_t rows = int64_t(want.size()) / vocab;
  int64_t agree = 0;
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = got.data() + r * vocab;
    const float* w = want.data() + r * vocab;
    double dot = 0, gg = 0, ww = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const double d = std::fabs(double(g[i]) - double(w[i]));
      c.max_abs = std::max(c.max_abs, d);
      sum += d;
      dot += double(g[i]) * w[i];
      gg += double(g[i]) * g[i];
      ww += double(w[i]) * w[i];
    }
    c.min_cosine = std::min(c.min_cosine, dot / std::sqrt(gg * ww));
    agree += argmax(g, vocab) == argmax(w, vocab);
  }
  c.mean_abs = sum / double(want.size());
  c.argmax_agreement = double(agree) / double(rows);
  return c;
}

inline std::vector<int32_t> slice(const std::vector<int32_t>& v, size_t n) { return {v.begin(), v.begin() + long(n)}; }

// The tiny-v4 model in one mode and that mode's reference file, loaded once per test suite.
template <bool kExact>
class ReferenceSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ModelOptions opts;
    opts.exact = kExact;  // false: the activation quantisers are on, as trained
    opts.threads = 2;
    model_ = Model::load(tiny_checkpoint(), opts).release();
    ref_ = new ReferenceFile(kExact ? "reference-exact.safetensors" : "reference-qat.safetensors");
  }
  static void TearDownTestSuite() {
    delete model_;
    delete ref_;
    model_ = nullptr;
    ref_ = nullptr;
  }
  int64_t vocab() const { return model_->config().vocab_size; }

  static inline Model* model_ = nullptr;
  static inline ReferenceFile* ref_ = nullptr;
};

}  // namespace v4::model::testing
