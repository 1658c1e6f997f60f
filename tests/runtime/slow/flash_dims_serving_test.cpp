// The flash-dims oracle through the serving runtime (exact mode): case L's 2,304-token prompt as
// the scheduler feeds it (128-token chunks), then continuations of it served from the prefix cache
// and batched together, each against the reference's logits row with the bounds of
// ../shared/fixtures/README.md (max-abs <= 3e-4, argmax 100%). The checkpoint is written into the
// build tree by the model.flash_dims_checkpoint test (its path comes as argv[1]).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "../../model/reference_fixture.h"
#include "fake_model.h"
#include "runtime/engine.h"

namespace v4::runtime::testing {
namespace {

using model::testing::compare_rows;
using model::testing::Comparison;
using model::testing::ReferenceFile;

std::string g_checkpoint_dir;
constexpr int64_t kPrefill = 2304;
constexpr double kLogitBound = 3e-4;

// Passes calls through, keeping each batch item's logits row with the position it started at and
// its number of new tokens; can hold a forward() until released, so that the test can queue
// requests while the scheduler is busy (they are then admitted, and batched, together).
class RowRecorder final : public model::Model {
 public:
  struct Row {
    int64_t p0, n;
    std::vector<float> logits;
  };
  explicit RowRecorder(std::shared_ptr<model::Model> inner) : inner_(std::move(inner)) {}
  const core::ModelConfig& config() const override { return inner_->config(); }
  std::unique_ptr<model::SequenceState> new_state() const override { return inner_->new_state(); }
  std::vector<float> forward(std::span<const model::BatchItem> batch) override {
    {
      std::unique_lock lock(mutex_);
      in_forward_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !hold_; });
    }
    std::vector<int64_t> p0;
    for (const auto& item : batch) p0.push_back(item.state->position());
    std::vector<float> out = inner_->forward(batch);
    const size_t V = size_t(config().vocab_size);
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < batch.size(); ++i)
      rows_.push_back({p0[i], int64_t(batch[i].tokens.size()), {out.begin() + long(i * V), out.begin() + long((i + 1) * V)}});
    in_forward_ = false;
    return out;
  }
  void hold() {
    std::lock_guard lock(mutex_);
    hold_ = true;
  }
  void wait_until_held() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return in_forward_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    hold_ = false;
    cv_.notify_all();
  }
  // The row of the item that started at p0 with n new tokens.
  std::vector<float> row(int64_t p0, int64_t n) {
    std::lock_guard lock(mutex_);
    for (const Row& r : rows_)
      if (r.p0 == p0 && r.n == n) return r.logits;
    return {};
  }

 private:
  std::shared_ptr<model::Model> inner_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool hold_ = false, in_forward_ = false;
  std::vector<Row> rows_;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

GenerationRequest greedy(const std::vector<int32_t>& tokens, int64_t prompt_len, int max_tokens) {
  GenerationRequest r;
  r.prompt.assign(tokens.begin(), tokens.begin() + prompt_len);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  return r;
}

void expect_row(RowRecorder& rec, const ReferenceFile& ref, int64_t p0, int64_t n, int64_t ref_row, const char* how) {
  const int64_t V = rec.config().vocab_size;
  const std::vector<float> all = ref.floats("L.logits");
  const std::vector<float> want(all.begin() + ref_row * V, all.begin() + (ref_row + 1) * V);
  const std::vector<float> got = rec.row(p0, n);
  ASSERT_EQ(got.size(), size_t(V)) << "no logits row for positions " << p0 << ".." << p0 + n - 1;
  const Comparison c = compare_rows(got, want, V);
  std::printf("[flash-dims serving] L.logits row %lld (%s): max-abs %.3g (bound %g), argmax %s\n", (long long)ref_row,
              how, c.max_abs, kLogitBound, c.argmax_agreement == 1 ? "equal" : "DIFFERENT");
  EXPECT_LE(c.max_abs, kLogitBound) << "row " << ref_row;
  EXPECT_EQ(c.argmax_agreement, 1.0) << "row " << ref_row;
}

TEST(FlashDimsServing, ChunkedPrefillThenBatchedPrefixCacheHitsMatchTheReference) {
  ASSERT_FALSE(g_checkpoint_dir.empty()) << "usage: test_runtime_flash_dims CHECKPOINT_DIR";
  const ReferenceFile ref("reference-exact.safetensors", std::string(V4_SHARED_DIR) + "/fixtures/flash-dims");
  const std::vector<int32_t> tokens = ref.ints("L.tokens");
  auto ckpt = core::Checkpoint::open(g_checkpoint_dir);
  model::ModelOptions opts;
  opts.exact = true;
  opts.threads = 2;
  auto recorder = std::make_shared<RowRecorder>(model::Model::load(*ckpt, opts));
  auto engine = create_engine(recorder, EngineOptions{});

  // 1. The prompt alone, fed by the scheduler in 128-token chunks; its end is cached.
  const auto t0 = std::chrono::steady_clock::now();
  Collector first;
  engine->submit(greedy(tokens, kPrefill, 1), first.callbacks());
  ASSERT_TRUE(first.wait(std::chrono::minutes(25)));
  std::printf("[flash-dims serving] %lld-token prompt through the engine: %.1f s wall, %.1f s CPU (2 threads)\n",
              (long long)kPrefill, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              cpu_seconds());
  expect_row(*recorder, ref, kPrefill - 128, 128, 0, "last prefill chunk");

  // 2. Three continuations, each resumed from the cached 2,304-token state: +1 token (then two
  //    greedy decode steps), then +8 and +16 queued behind it, so they run batched together and
  //    beside its decode steps.
  recorder->hold();
  Collector c1, c8, c16;
  engine->submit(greedy(tokens, kPrefill + 1, 3), c1.callbacks());
  recorder->wait_until_held();
  engine->submit(greedy(tokens, kPrefill + 8, 1), c8.callbacks());
  engine->submit(greedy(tokens, kPrefill + 16, 1), c16.callbacks());
  recorder->release();
  for (Collector* c : {&c1, &c8, &c16}) {
    ASSERT_TRUE(c->wait(std::chrono::minutes(25)));
    EXPECT_EQ(c->finish->cached_prompt_tokens, kPrefill);
  }
  EXPECT_GE(engine->metrics().max_batch_sequences, 3);
  expect_row(*recorder, ref, kPrefill, 1, 1, "prefix-cache hit");
  expect_row(*recorder, ref, kPrefill, 8, 8, "prefix-cache hit, batched");
  expect_row(*recorder, ref, kPrefill, 16, 16, "prefix-cache hit, batched");
}

}  // namespace
}  // namespace v4::runtime::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) v4::runtime::testing::g_checkpoint_dir = argv[1];
  return RUN_ALL_TESTS();
}
