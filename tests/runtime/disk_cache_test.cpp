// The prefix cache's disk tier on the tiny-v4 fixture model: a restarted engine serves a 4K-token
// prompt from disk with the logits of an uncached run, bit for bit (default and exact numerics);
// torn and corrupt files are discarded and counted, never used; identities and salts keep
// snapshots apart; LRU eviction under the byte budget; concurrent lookups share one read.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <barrier>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/checkpoint.h"
#include "fake_model.h"
#include "model/model.h"
#include "runtime/cache_identity.h"
#include "runtime/disk_cache.h"

using namespace v4::runtime;
using namespace v4::runtime::testing;
namespace fs = std::filesystem;

namespace {

const v4::core::Checkpoint& tiny_checkpoint() {
  static std::unique_ptr<v4::core::Checkpoint> ckpt =
      v4::core::Checkpoint::open(std::string(V4_SHARED_DIR) + "/fixtures/tiny-v4");
  return *ckpt;
}

std::shared_ptr<v4::model::Model> tiny_model(bool exact) {
  v4::model::ModelOptions o;
  o.threads = 2;
  o.exact = exact;
  return std::shared_ptr<v4::model::Model>(v4::model::Model::load(tiny_checkpoint(), o));
}

std::vector<int32_t> prompt_of(size_t n, uint64_t salt, int64_t vocab) {
  std::vector<int32_t> p(n);
  uint64_t h = salt;
  for (auto& t : p) {
    h = fake_mix(h, 11);
    t = int32_t(2 + h % uint64_t(vocab - 2));
  }
  return p;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "v4-disk-cache-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::vector<fs::path> snapshots() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(path))
      if (e.path().extension() == ".snap") out.push_back(e.path());
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return fs::file_size(a) > fs::file_size(b); });
    return out;  // largest (longest prefix) first
  }
};

EngineOptions cached_options(const fs::path& dir, bool exact) {
  EngineOptions o;
  o.cache_dir = dir.string();
  o.cache_identity = "tiny-v4 test " + std::string(exact ? "exact" : "default");
  o.step_token_budget = 1024;
  return o;
}

GenerationRequest greedy(std::vector<int32_t> prompt) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = 3;
  r.params.top_logprobs = 20;
  return r;
}

std::shared_ptr<Collector> run_one(Engine& engine, GenerationRequest r) {
  auto c = std::make_shared<Collector>();
  engine.submit(std::move(r), c->callbacks());
  EXPECT_TRUE(c->wait(std::chrono::minutes(5)));
  return c;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_identical(const std::vector<GeneratedToken>& a, const std::vector<GeneratedToken>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].token, b[k].token) << "token " << k;
    ASSERT_TRUE(a[k].logprob && b[k].logprob);
    EXPECT_TRUE(same_bits(a[k].logprob->logprob, b[k].logprob->logprob)) << "token " << k;
    ASSERT_EQ(a[k].top.size(), b[k].top.size());
    for (size_t j = 0; j < a[k].top.size(); ++j) {
      EXPECT_EQ(a[k].top[j].token, b[k].top[j].token);
      EXPECT_TRUE(same_bits(a[k].top[j].logprob, b[k].top[j].logprob)) << "token " << k << " alternative " << j;
    }
  }
}

double metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

// Runs prompt prefixes through a model in 128-token chunks, as the engine does.
std::unique_ptr<v4::model::SequenceState> prefill(v4::model::Model& m, std::span<const int32_t> tokens,
                                                  std::unique_ptr<v4::model::SequenceState> s = nullptr) {
  if (!s) s = m.new_state();
  for (int64_t at = s->position(); at < int64_t(tokens.size()); at += 128) {
    const int64_t n = std::min<int64_t>(128, int64_t(tokens.size()) - at);
    v4::model::BatchItem item{s.get(), tokens.subspan(size_t(at), size_t(n)), false};
    m.forward(std::span(&item, 1));
  }
  return s;
}

std::vector<float> last_chunk_logits(v4::model::Model& m, v4::model::SequenceState& s, std::span<const int32_t> chunk) {
  v4::model::BatchItem item{&s, chunk, true};
  return m.forward(std::span(&item, 1));
}

}  // namespace

class DiskCacheRestart : public ::testing::TestWithParam<bool> {};

// Must show: a restarted server (engine) serves the same 4K-token prompt with >= 3,968 cached
// tokens and the uncached run's logprobs, bit for bit; two requests that hit the snapshot at once
// read the file once.
TEST_P(DiskCacheRestart, FourKTokenPromptAfterRestartIsCachedWithIdenticalLogprobs) {
  const bool exact = GetParam();
  TempDir dir;
  auto model = tiny_model(exact);
  const auto prompt = prompt_of(4096, 7, model->config().vocab_size);
  std::vector<GeneratedToken> uncached;
  {
    auto engine = create_engine(model, cached_options(dir.path, exact));
    auto c = run_one(*engine, greedy(prompt));
    ASSERT_EQ(c->finish->cached_prompt_tokens, 0);
    uncached = c->tokens;
    engine->shutdown();  // waits for the queued snapshot writes
    EXPECT_GT(engine->metrics().disk_cache_entries, 0);
    EXPECT_EQ(metric(engine->prometheus_text(), "v4flash:disk_cache_write_seconds_count"),
              double(engine->metrics().disk_cache_entries));
  }
  auto engine = create_engine(model, cached_options(dir.path, exact));  // the restart
  auto a = std::make_shared<Collector>(), b = std::make_shared<Collector>();
  engine->submit(greedy(prompt), a->callbacks());
  engine->submit(greedy(prompt), b->callbacks());
  ASSERT_TRUE(a->wait(std::chrono::minutes(5)) && b->wait(std::chrono::minutes(5)));
  EXPECT_GE(a->finish->cached_prompt_tokens, 3968);
  EXPECT_EQ(a->finish->cached_prompt_tokens, 3968);  // all but the last block (its last token must run)
  EXPECT_EQ(b->finish->cached_prompt_tokens, 3968);
  expect_identical(uncached, a->tokens);
  expect_identical(uncached, b->tokens);
  const auto m = engine->metrics();
  EXPECT_EQ(m.disk_cache_hits_total, 1);  // the second request found it in memory: one read for both
  EXPECT_EQ(m.disk_cache_hit_tokens_total, 3968);
  EXPECT_EQ(m.prefix_cache_hits_total, 2 * 3968);  // billed like memory hits
  EXPECT_EQ(m.disk_cache_corrupt_total, 0);
  const std::string text = engine->prometheus_text();
  EXPECT_EQ(metric(text, "v4flash:disk_cache_file_reads_total"), 1);
  EXPECT_EQ(metric(text, "v4flash:disk_cache_read_seconds_count"), 1);
}

INSTANTIATE_TEST_SUITE_P(Numerics, DiskCacheRestart, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Exact" : "Default"; });

TEST(DiskCache, FullLogitsAfterADiskHitEqualTheUncachedOnesBitForBit) {
  TempDir dir;
  auto model = tiny_model(false);
  const auto prompt = prompt_of(640, 3, model->config().vocab_size);
  const auto head = std::span(prompt).first(512), tail = std::span(prompt).subspan(512);
  auto state = prefill(*model, head);
  const DiskCacheOptions opts{dir.path, "identity", 128, int64_t(1) << 30};
  {
    DiskCache cache(opts, model->new_state());
    cache.store(head, *state);
    cache.flush();
    EXPECT_EQ(cache.stats().writes, 1);
  }
  const auto expected = last_chunk_logits(*model, *state, tail);
  DiskCache restarted(opts, model->new_state());
  auto hit = restarted.lookup(prompt, 639);
  ASSERT_TRUE(hit.state);
  EXPECT_EQ(hit.tokens, 512);
  auto resumed = hit.state->clone();
  const auto got = last_chunk_logits(*model, *resumed, tail);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);
}

// Must show: a corrupt snapshot is counted, deleted and not used; the request succeeds uncached.
TEST(DiskCache, CorruptSnapshotsAreCountedDeletedAndTheRequestRunsUncached) {
  TempDir dir;
  auto model = tiny_model(false);
  const auto prompt = prompt_of(640, 5, model->config().vocab_size);
  std::vector<GeneratedToken> uncached;
  {
    auto engine = create_engine(model, cached_options(dir.path, false));
    uncached = run_one(*engine, greedy(prompt))->tokens;
  }
  const auto files = dir.snapshots();
  ASSERT_GE(files.size(), 4u);
  for (const auto& f : files) {  // one flipped bit in the state, well past the 64-byte header
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(std::streamoff(fs::file_size(f) / 2));
    char c = 0;
    io.read(&c, 1);
    c ^= 0x10;
    io.seekp(std::streamoff(fs::file_size(f) / 2));
    io.write(&c, 1);
  }
  auto engine = create_engine(model, cached_options(dir.path, false));
  auto c = run_one(*engine, greedy(prompt));
  EXPECT_EQ(c->finish->reason, FinishReason::Length);
  EXPECT_EQ(c->finish->cached_prompt_tokens, 0);
  expect_identical(uncached, c->tokens);
  EXPECT_EQ(engine->metrics().disk_cache_corrupt_total, 4);  // the 4 prefixes of 512..128 tokens, each tried once
  EXPECT_EQ(engine->metrics().disk_cache_hits_total, 0);
  engine->shutdown();  // the uncached run wrote good snapshots in their place
  auto again = create_engine(model, cached_options(dir.path, false));
  EXPECT_EQ(run_one(*again, greedy(prompt))->finish->cached_prompt_tokens, 512);
}

// A torn file (a write cut short) is found at start; the next-longest snapshot serves instead.
TEST(DiskCache, TornSnapshotIsDiscardedAtStartAndTheLongestGoodPrefixWins) {
  TempDir dir;
  auto model = tiny_model(false);
  const auto prompt = prompt_of(700, 9, model->config().vocab_size);
  std::vector<GeneratedToken> uncached;
  {
    auto engine = create_engine(model, cached_options(dir.path, false));
    uncached = run_one(*engine, greedy(prompt))->tokens;
  }
  const auto files = dir.snapshots();
  ASSERT_GE(files.size(), 5u);
  fs::resize_file(files[0], fs::file_size(files[0]) - 100);  // 640 tokens: unusable for this prompt anyway
  fs::resize_file(files[1], fs::file_size(files[1]) / 2);    // 512 tokens: the longest usable one
  auto engine = create_engine(model, cached_options(dir.path, false));
  EXPECT_EQ(engine->metrics().disk_cache_corrupt_total, 2);
  auto c = run_one(*engine, greedy(prompt));
  EXPECT_EQ(c->finish->cached_prompt_tokens, 384);
  expect_identical(uncached, c->tokens);
}

TEST(DiskCache, AnotherIdentityOrSaltNeverReadsTheSnapshot) {
  TempDir dir;
  auto model = tiny_model(false);
  const auto prompt = prompt_of(256, 1, model->config().vocab_size);
  auto state = prefill(*model, prompt);
  {
    DiskCache cache({dir.path, "model A", 128, int64_t(1) << 30}, model->new_state());
    cache.store(prompt, *state, /*salt=*/42);
    cache.flush();
  }
  DiskCache other_model({dir.path, "model B", 128, int64_t(1) << 30}, model->new_state());
  EXPECT_FALSE(other_model.lookup(prompt, 256).state);
  EXPECT_EQ(other_model.stats().entries, 0);
  DiskCache same({dir.path, "model A", 128, int64_t(1) << 30}, model->new_state());
  EXPECT_FALSE(same.lookup(prompt, 256, 0, /*salt=*/0).state);
  EXPECT_FALSE(same.lookup(prompt, 256, 0, /*salt=*/43).state);
  EXPECT_EQ(same.lookup(prompt, 256, 0, /*salt=*/42).tokens, 256);
  EXPECT_EQ(same.lookup(prompt, 256, /*min_tokens=*/256, 42).tokens, 0);  // only longer than min counts
}

TEST(DiskCache, EvictsTheLeastRecentlyUsedUnderTheBudgetAcrossRestarts) {
  TempDir dir;
  auto model = tiny_model(false);
  const int64_t vocab = model->config().vocab_size;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::unique_ptr<v4::model::SequenceState>> states;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(prompt_of(128, 100 + i, vocab));
    states.push_back(prefill(*model, prompts.back()));
  }
  int64_t one = 0;
  {
    DiskCache probe({dir.path / "probe", "id", 128, int64_t(1) << 30}, model->new_state());
    probe.store(prompts[0], *states[0]);
    probe.flush();
    one = probe.stats().bytes;
  }
  const DiskCacheOptions opts{dir.path, "id", 128, 2 * one + one / 2};  // room for two
  {
    DiskCache cache(opts, model->new_state());
    cache.store(prompts[0], *states[0]);
    cache.flush();
    cache.store(prompts[1], *states[1]);
    cache.flush();
    EXPECT_TRUE(cache.lookup(prompts[0], 128).state);  // 0 is now more recent than 1
    cache.store(prompts[2], *states[2]);
    cache.flush();
    EXPECT_EQ(cache.stats().evictions, 1);
    EXPECT_TRUE(cache.contains(prompts[0]));
    EXPECT_FALSE(cache.contains(prompts[1]));
    EXPECT_TRUE(cache.contains(prompts[2]));
    EXPECT_LE(cache.stats().bytes, opts.budget_bytes);
  }
  DiskCache restarted(opts, model->new_state());
  EXPECT_EQ(restarted.stats().entries, 2);
  EXPECT_TRUE(restarted.contains(prompts[0]) && restarted.contains(prompts[2]));
}

TEST(DiskCache, ConcurrentLookupsOfOneSnapshotShareOneRead) {
  TempDir dir;
  auto model = tiny_model(false);
  const auto prompt = prompt_of(2048, 2, model->config().vocab_size);
  auto state = prefill(*model, prompt);
  const DiskCacheOptions opts{dir.path, "id", 128, int64_t(1) << 30};
  {
    DiskCache cache(opts, model->new_state());
    cache.store(prompt, *state);
  }
  // Eight threads released together; a round where none overlapped proves nothing, so retry.
  int64_t shared = 0;
  for (int round = 0; round < 10 && shared == 0; ++round) {
    DiskCache cache(opts, model->new_state());
    constexpr int kThreads = 8;
    std::barrier start(kThreads);
    std::vector<std::shared_ptr<const v4::model::SequenceState>> got(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        got[size_t(t)] = cache.lookup(prompt, 2048).state;
      });
    for (auto& t : threads) t.join();
    const auto s = cache.stats();
    EXPECT_EQ(s.hits, kThreads);
    EXPECT_EQ(s.file_reads + s.shared_reads, kThreads);
    for (const auto& g : got) ASSERT_TRUE(g && g->position() == 2048);
    std::set<const v4::model::SequenceState*> distinct;  // one decoded state per file read
    for (const auto& g : got) distinct.insert(g.get());
    EXPECT_EQ(int64_t(distinct.size()), s.file_reads);
    shared = s.shared_reads;
  }
  EXPECT_GT(shared, 0);
}

TEST(DiskCache, UnfinishedWritesOfDeadProcessesAreRemovedAtStart) {
  TempDir dir;
  auto model = tiny_model(false);
  const DiskCacheOptions opts{dir.path, "id", 128, int64_t(1) << 30};
  fs::path sub;
  {
    DiskCache cache(opts, model->new_state());
    sub = cache.directory();
  }
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const fs::path stale = sub / ("0123456789abcdef." + std::to_string(dead) + ".1.tmp");
  const fs::path live = sub / ("0123456789abcdef." + std::to_string(::getpid()) + ".1.tmp");
  std::ofstream(stale) << "half a snapshot";
  std::ofstream(live) << "a write under way";
  DiskCache cache(opts, model->new_state());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));  // its writer is alive: not ours to delete
  EXPECT_EQ(cache.stats().stale_temporaries, 1);
}

TEST(CacheIdentity, NamesTheCheckpointTheBuildAndTheNumerics) {
  const fs::path tiny = fs::path(V4_SHARED_DIR) / "fixtures/tiny-v4";
  EXPECT_EQ(cache_identity(tiny, false), cache_identity(tiny, false));
  EXPECT_NE(cache_identity(tiny, false), cache_identity(tiny, true));
  EXPECT_NE(cache_identity(tiny, false).find("build=" + engine_build_id()), std::string::npos);
  TempDir copy;  // the same config with one byte of one weight changed
  fs::copy_file(tiny / "config.json", copy.path / "config.json");
  fs::copy_file(tiny / "model.safetensors", copy.path / "model.safetensors");
  EXPECT_EQ(checkpoint_fingerprint(tiny), checkpoint_fingerprint(copy.path));
  {
    std::fstream io(copy.path / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-1, std::ios::end);
    io.put('\x5a');
  }
  EXPECT_NE(checkpoint_fingerprint(tiny), checkpoint_fingerprint(copy.path));
}
