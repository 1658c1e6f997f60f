#pragma once
// The prefix cache's disk tier: sequence-state snapshots at block boundaries, one file per
// snapshot under dir/<identity hash>/<chain key>.snap, so they outlive the process and outgrow
// memory.
//  - Names: the same kind of hash chain over whole blocks as the memory tier, seeded with the
//    identity (checkpoint, build, numeric mode; runtime/cache_identity.h), the block size and an
//    optional salt (a namespace, e.g. per account), so nothing foreign is ever looked up.
//  - Writes run on a writer thread: the caller only clones the state. A write goes to a temporary
//    file, is synced, then renamed into place, so a crash (kill -9) leaves whole files or
//    temporaries, which the next start removes.
//  - Reads check a header, the size and a checksum of tokens + state, then the stored tokens
//    against the prompt, then the state's layout against the model; a torn or corrupt file is
//    deleted and counted, never used. Concurrent lookups of the same snapshot share one read.
//  - The directory is bounded by budget_bytes, least recently used first out (a hit refreshes the
//    file's mtime, so the order survives restarts).
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/model.h"
#include "runtime/metrics.h"

namespace v4::runtime {

struct DiskCacheOptions {
  std::filesystem::path dir;
  std::string identity;            // required: what may read these snapshots
  int64_t block_tokens = 128;
  int64_t budget_bytes = int64_t(64) << 30;
  int64_t max_pending_bytes = int64_t(1) << 30;  // queued writes beyond this are dropped (counted)
};

struct DiskCacheStats {
  int64_t hits = 0, hit_tokens = 0;      // lookups answered from disk, and their tokens
  int64_t file_reads = 0;                // files read (hits that joined another read did not read)
  int64_t shared_reads = 0;              // lookups that joined a read already under way
  int64_t corrupt = 0;                   // files found torn or corrupt, deleted
  int64_t stale_temporaries = 0;         // unfinished writes of dead processes, deleted at start
  int64_t writes = 0, write_bytes = 0, write_errors = 0, writes_dropped = 0;
  int64_t evictions = 0;
  int64_t bytes = 0, entries = 0;        // on disk now
  int64_t pending_writes = 0;            // queued or being written now
};

class DiskCache {
 public:
  // Creates dir/<identity hash>/ (mode 0700) and indexes the snapshots already there. `blank` is
  // Model::new_state(): the layout every read-back state must have.
  DiskCache(DiskCacheOptions options, std::unique_ptr<model::SequenceState> blank);
  ~DiskCache();  // finishes the queued writes
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  struct Hit {
    std::shared_ptr<const model::SequenceState> state;  // shared with concurrent readers: clone it
    int64_t tokens = 0;
  };
  // The longest snapshot of a prefix of `tokens` with more than min_tokens and at most max_tokens
  // tokens (0 tokens: none).
  Hit lookup(std::span<const int32_t> tokens, int64_t max_tokens, int64_t min_tokens = 0, uint64_t salt = 0);
  // Queues a write of `state`, which has consumed exactly `prefix` (a whole number of blocks),
  // unless that snapshot is on disk or queued already. Cheap on the caller's thread (a clone).
  void store(std::span<const int32_t> prefix, const model::SequenceState& state, uint64_t salt = 0);
  bool contains(std::span<const int32_t> prefix, uint64_t salt = 0) const;
  void flush();  // waits until every queued write is on disk

  DiskCacheStats stats() const;
  // Prometheus text: counters and gauges above plus read / write latency histograms.
  void write_metrics(std::string& out, const std::string& prefix) const;
  const std::filesystem::path& directory() const { return dir_; }
  int64_t block_tokens() const { return options_.block_tokens; }

 private:
  struct Entry {
    int64_t tokens = 0, file_bytes = 0;
    std::list<uint64_t>::iterator lru;  // front = most recent
  };
  struct Job {
    uint64_t key;
    std::vector<int32_t> tokens;
    std::unique_ptr<model::SequenceState> state;
    int64_t bytes;
  };
  struct Loaded {
    std::shared_ptr<const model::SequenceState> state;
    std::vector<int32_t> tokens;
  };

  std::vector<uint64_t> chain_keys(std::span<const int32_t> tokens, int64_t blocks, uint64_t salt) const;
  std::filesystem::path file_of(uint64_t key) const;
  void scan();
  Loaded read_shared(uint64_t key);
  Loaded read_file(uint64_t key);
  void discard_corrupt(uint64_t key, const std::string& why);
  void writer_loop();
  void write_job(Job& job);
  void index_locked(uint64_t key, int64_t tokens, int64_t file_bytes, bool most_recent);
  void evict_locked();

  DiskCacheOptions options_;
  std::unique_ptr<model::SequenceState> blank_;
  uint64_t identity_hash_ = 0;
  std::filesystem::path dir_;

  mutable std::mutex mutex_;  // everything below
  std::unordered_map<uint64_t, Entry> index_;
  std::list<uint64_t> lru_;
  std::unordered_map<uint64_t, std::shared_future<Loaded>> reading_;
  std::deque<Job> queue_;
  std::unordered_map<uint64_t, bool> queued_keys_;
  int64_t pending_bytes_ = 0;
  bool writing_ = false, stopping_ = false;
  std::condition_variable work_cv_, idle_cv_;
  DiskCacheStats stats_;
  Histogram read_seconds_, write_seconds_;
  uint64_t temp_counter_ = 0;

  std::thread writer_;
};

}  // namespace v4::runtime
