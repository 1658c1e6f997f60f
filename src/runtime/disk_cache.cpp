#include "runtime/disk_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "model/state_codec.h"
#include "runtime/content_hash.h"

namespace v4::runtime {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMagic[8] = {'V', '4', 'F', 'S', 'N', 'A', 'P', '1'};

// The first 64 bytes of a snapshot file; tokens (int32) and the encoded state follow.
struct FileHeader {
  char magic[8];
  uint64_t identity;       // hash of the identity string
  uint64_t key;            // chain key of the prefix (also the file name)
  uint64_t tokens;         // prefix length
  uint64_t state_bytes;    // encoded state after the tokens
  uint64_t body_hash;      // content_hash of tokens + state
  uint64_t reserved;
  uint64_t header_hash;    // content_hash of the 56 bytes before it
};
static_assert(sizeof(FileHeader) == 64);

uint64_t header_hash_of(const FileHeader& h) {
  return content_hash({reinterpret_cast<const std::byte*>(&h), offsetof(FileHeader, header_hash)});
}

std::vector<double> io_latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Parses "<16 hex>" + suffix; false when the name has another shape.
bool parse_key(const std::string& name, const std::string& suffix, uint64_t& key) {
  if (name.size() < 16 + suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string hex = name.substr(0, 16);
  if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  key = std::stoull(hex, nullptr, 16);
  return true;
}

void write_all(int fd, const std::byte* p, size_t n, const fs::path& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error("write " + path.string() + ": " + std::strerror(errno));
    p += w;
    n -= size_t(w);
  }
}

// Writes `bytes` to a temporary beside `target`, syncs it and renames it into place: the target
// is either absent or whole, whenever the process dies.
void write_atomically(const fs::path& tmp, const fs::path& target, std::span<const std::byte> bytes) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("create " + tmp.string() + ": " + std::strerror(errno));
  try {
    write_all(fd, bytes.data(), bytes.size(), tmp);
    if (::fdatasync(fd) != 0) throw std::runtime_error("sync " + tmp.string() + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error("rename to " + target.string() + ": " + err);
  }
  const int dir = ::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);  // the rename itself survives a power cut
    ::close(dir);
  }
}

// A read-only mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || st.st_size <= 0) return;
    size_ = size_t(st.st_size);
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      size_ = 0;
      return;
    }
    ::madvise(p, size_, MADV_SEQUENTIAL | MADV_WILLNEED);
    data_ = static_cast<const std::byte*>(p);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool opened() const { return fd_ >= 0; }
  std::span<const std::byte> bytes() const { return {data_, data_ ? size_ : 0}; }
  void touch() const { ::futimens(fd_, nullptr); }  // mtime = now: the LRU order across restarts

 private:
  int fd_ = -1;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

DiskCache::DiskCache(DiskCacheOptions options, std::unique_ptr<model::SequenceState> blank)
    : options_(std::move(options)),
      blank_(std::move(blank)),
      read_seconds_(io_latency_buckets()),
      write_seconds_(io_latency_buckets()) {
  if (options_.identity.empty()) throw std::invalid_argument("disk cache: no model identity");
  if (options_.block_tokens <= 0) throw std::invalid_argument("disk cache: block size must be positive");
  if (!blank_) throw std::invalid_argument("disk cache: no blank state");
  identity_hash_ = content_hash({reinterpret_cast<const std::byte*>(options_.identity.data()), options_.identity.size()});
  dir_ = options_.dir / fmt::format("{:016x}", identity_hash_);
  fs::create_directories(dir_);
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace);
  if (!fs::exists(dir_ / "IDENTITY")) std::ofstream(dir_ / "IDENTITY") << options_.identity << '\n';
  scan();
  writer_ = std::thread([this] { writer_loop(); });
}

DiskCache::~DiskCache() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

std::vector<uint64_t> DiskCache::chain_keys(std::span<const int32_t> tokens, int64_t blocks, uint64_t salt) const {
  std::vector<uint64_t> keys;
  keys.reserve(size_t(std::max<int64_t>(blocks, 0)));
  uint64_t h = hash_mix(hash_mix(hash_mix(0x243F6A8885A308D3ull, identity_hash_), uint64_t(options_.block_tokens)), salt);
  const int64_t b_tokens = options_.block_tokens;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t i = b * b_tokens; i < (b + 1) * b_tokens; ++i) h = hash_mix(h, uint32_t(tokens[size_t(i)]));
    h = hash_mix(h, uint64_t(b + 1));  // block end marker
    keys.push_back(h);
  }
  return keys;
}

fs::path DiskCache::file_of(uint64_t key) const { return dir_ / fmt::format("{:016x}.snap", key); }

// Indexes whole snapshots (oldest mtime = least recently used), deletes files with a bad header
// and the temporaries of writers that died.
void DiskCache::scan() {
  struct Found {
    fs::file_time_type mtime;
    uint64_t key;
    int64_t tokens, bytes;
  };
  std::vector<Found> found;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    uint64_t key = 0;
    if (parse_key(name, ".tmp", key)) {
      // <key>.<pid>.<n>.tmp: the writer's pid says whether it may still be writing.
      const long pid = std::strtol(name.c_str() + 17, nullptr, 10);
      if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) {
        fs::remove(e.path());
        stats_.stale_temporaries++;
      }
      continue;
    }
    if (!parse_key(name, ".snap", key)) continue;
    FileHeader h{};
    const auto size = int64_t(e.file_size());
    std::ifstream in(e.path(), std::ios::binary);
    const bool whole = in.read(reinterpret_cast<char*>(&h), sizeof h).good() &&
                       std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.header_hash == header_hash_of(h) &&
                       h.identity == identity_hash_ && h.key == key && h.tokens > 0 &&
                       h.tokens % uint64_t(options_.block_tokens) == 0 &&
                       uint64_t(size) == sizeof h + h.tokens * sizeof(int32_t) + h.state_bytes;
    if (!whole) {
      spdlog::warn("disk cache: {} is torn or corrupt; deleted", e.path().string());
      fs::remove(e.path());
      stats_.corrupt++;
      continue;
    }
    found.push_back({e.last_write_time(), key, int64_t(h.tokens), size});
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  for (const Found& f : found) index_locked(f.key, f.tokens, f.bytes, true);
  evict_locked();
  if (!found.empty())
    spdlog::info("disk cache: {} snapshots, {} MiB in {}", index_.size(), stats_.bytes >> 20, dir_.string());
}

void DiskCache::index_locked(uint64_t key, int64_t tokens, int64_t file_bytes, bool most_recent) {
  if (auto it = index_.find(key); it != index_.end()) {
    stats_.bytes -= it->second.file_bytes;
    lru_.erase(it->second.lru);
    index_.erase(it);
  }
  auto pos = most_recent ? lru_.insert(lru_.begin(), key) : lru_.insert(lru_.end(), key);
  index_.emplace(key, Entry{tokens, file_bytes, pos});
  stats_.bytes += file_bytes;
  stats_.entries = int64_t(index_.size());
}

void DiskCache::evict_locked() {
  while (stats_.bytes > options_.budget_bytes && !lru_.empty()) {
    const uint64_t key = lru_.back();
    lru_.pop_back();
    auto it = index_.find(key);
    stats_.bytes -= it->second.file_bytes;
    index_.erase(it);
    ::unlink(file_of(key).c_str());  // a reader that has it open keeps its copy
    stats_.evictions++;
  }
  stats_.entries = int64_t(index_.size());
}

DiskCache::Hit DiskCache::lookup(std::span<const int32_t> tokens, int64_t max_tokens, int64_t min_tokens, uint64_t salt) {
  max_tokens = std::min<int64_t>(max_tokens, int64_t(tokens.size()));
  const int64_t blocks = max_tokens / options_.block_tokens;
  const int64_t min_blocks = std::max<int64_t>(0, min_tokens / options_.block_tokens);
  {
    std::lock_guard lock(mutex_);
    if (blocks <= min_blocks || index_.empty()) return {};
  }
  const auto keys = chain_keys(tokens, blocks, salt);
  for (int64_t b = blocks; b > min_blocks; --b) {
    const uint64_t key = keys[size_t(b - 1)];
    {
      std::lock_guard lock(mutex_);
      if (!index_.count(key)) continue;
    }
    Loaded got = read_shared(key);
    const auto prefix = tokens.first(size_t(b * options_.block_tokens));
    if (!got.state || got.tokens.size() != prefix.size() || !std::equal(prefix.begin(), prefix.end(), got.tokens.begin()))
      continue;  // corrupt (already discarded), evicted meanwhile, or a hash collision
    std::lock_guard lock(mutex_);
    stats_.hits++;
    stats_.hit_tokens += b * options_.block_tokens;
    if (auto it = index_.find(key); it != index_.end()) lru_.splice(lru_.begin(), lru_, it->second.lru);
    return {std::move(got.state), b * options_.block_tokens};
  }
  return {};
}

// One read per snapshot at a time: later lookups of the same key wait for the first one's result.
DiskCache::Loaded DiskCache::read_shared(uint64_t key) {
  std::promise<Loaded> promise;
  {
    std::unique_lock lock(mutex_);
    if (auto it = reading_.find(key); it != reading_.end()) {
      auto future = it->second;
      stats_.shared_reads++;
      lock.unlock();
      return future.get();
    }
    reading_.emplace(key, promise.get_future().share());
  }
  Loaded got;
  try {
    got = read_file(key);
  } catch (const std::exception& e) {
    spdlog::warn("disk cache: reading {} failed: {}", file_of(key).string(), e.what());
  }
  promise.set_value(got);
  std::lock_guard lock(mutex_);
  reading_.erase(key);
  return got;
}

DiskCache::Loaded DiskCache::read_file(uint64_t key) {
  const auto t0 = Clock::now();
  MappedFile file(file_of(key));
  if (!file.opened()) return {};  // evicted since the index said it was there
  const auto bytes = file.bytes();
  FileHeader h{};
  if (bytes.size() >= sizeof h) std::memcpy(&h, bytes.data(), sizeof h);
  const bool whole = bytes.size() >= sizeof h && std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 &&
                     h.header_hash == header_hash_of(h) && h.identity == identity_hash_ && h.key == key &&
                     bytes.size() == sizeof h + h.tokens * sizeof(int32_t) + h.state_bytes;
  if (!whole) {
    discard_corrupt(key, "torn or bad header");
    return {};
  }
  const auto body = bytes.subspan(sizeof h);
  if (content_hash(body) != h.body_hash) {
    discard_corrupt(key, "checksum mismatch");
    return {};
  }
  Loaded got;
  got.tokens.resize(size_t(h.tokens));
  std::memcpy(got.tokens.data(), body.data(), got.tokens.size() * sizeof(int32_t));
  try {
    got.state = model::decode_state(body.subspan(got.tokens.size() * sizeof(int32_t)), *blank_);
  } catch (const std::exception& e) {
    discard_corrupt(key, e.what());
    return {};
  }
  if (got.state->position() != int64_t(h.tokens)) {
    discard_corrupt(key, "state position does not match its tokens");
    return {};
  }
  file.touch();
  std::lock_guard lock(mutex_);
  stats_.file_reads++;
  read_seconds_.observe(seconds_since(t0));
  return got;
}

void DiskCache::discard_corrupt(uint64_t key, const std::string& why) {
  spdlog::warn("disk cache: {} is corrupt ({}); deleted, not used", file_of(key).string(), why);
  std::lock_guard lock(mutex_);
  ::unlink(file_of(key).c_str());
  if (auto it = index_.find(key); it != index_.end()) {
    stats_.bytes -= it->second.file_bytes;
    lru_.erase(it->second.lru);
    index_.erase(it);
  }
  stats_.entries = int64_t(index_.size());
  stats_.corrupt++;
}

void DiskCache::store(std::span<const int32_t> prefix, const model::SequenceState& state, uint64_t salt) {
  const int64_t blocks = int64_t(prefix.size()) / options_.block_tokens;
  if (blocks <= 0 || int64_t(prefix.size()) % options_.block_tokens != 0)
    throw std::invalid_argument("disk cache: prefix is not a whole number of blocks");
  if (state.position() != int64_t(prefix.size()))
    throw std::invalid_argument("disk cache: state position does not match the prefix");
  const uint64_t key = chain_keys(prefix, blocks, salt).back();
  const auto bytes = int64_t(state.bytes());
  {
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return;
    }
    if (queued_keys_.count(key) || stopping_) return;
    if (pending_bytes_ + bytes > options_.max_pending_bytes) {
      stats_.writes_dropped++;  // the disk is behind: better no snapshot than a stalled decode
      return;
    }
    queued_keys_[key] = true;
    pending_bytes_ += bytes;
  }
  Job job{key, std::vector<int32_t>(prefix.begin(), prefix.end()), state.clone(), bytes};
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  work_cv_.notify_one();
}

bool DiskCache::contains(std::span<const int32_t> prefix, uint64_t salt) const {
  const int64_t blocks = int64_t(prefix.size()) / options_.block_tokens;
  if (blocks <= 0 || int64_t(prefix.size()) % options_.block_tokens != 0) return false;
  const uint64_t key = chain_keys(prefix, blocks, salt).back();
  std::lock_guard lock(mutex_);
  return index_.count(key) > 0;
}

void DiskCache::writer_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and every queued write is done
    Job job = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock.unlock();
    write_job(job);
    lock.lock();
    writing_ = false;
    pending_bytes_ -= job.bytes;
    queued_keys_.erase(job.key);
    idle_cv_.notify_all();
  }
}

void DiskCache::write_job(Job& job) {
  const auto t0 = Clock::now();
  const fs::path tmp = dir_ / fmt::format("{:016x}.{}.{}.tmp", job.key, ::getpid(), ++temp_counter_);
  try {
    const size_t token_bytes = job.tokens.size() * sizeof(int32_t);
    std::vector<std::byte> buf(sizeof(FileHeader) + token_bytes);
    buf.reserve(buf.size() + size_t(job.bytes));
    std::memcpy(buf.data() + sizeof(FileHeader), job.tokens.data(), token_bytes);
    model::encode_state(*job.state, buf);
    job.state.reset();
    FileHeader h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.identity = identity_hash_;
    h.key = job.key;
    h.tokens = job.tokens.size();
    h.state_bytes = buf.size() - sizeof h - token_bytes;
    h.body_hash = content_hash(std::span<const std::byte>(buf).subspan(sizeof h));
    h.header_hash = header_hash_of(h);
    std::memcpy(buf.data(), &h, sizeof h);
    if (int64_t(buf.size()) > options_.budget_bytes) {
      std::lock_guard lock(mutex_);
      stats_.writes_dropped++;
      return;
    }
    write_atomically(tmp, file_of(job.key), buf);
    std::lock_guard lock(mutex_);
    index_locked(job.key, int64_t(job.tokens.size()), int64_t(buf.size()), true);
    stats_.writes++;
    stats_.write_bytes += int64_t(buf.size());
    write_seconds_.observe(seconds_since(t0));
    evict_locked();
  } catch (const std::exception& e) {
    spdlog::warn("disk cache: writing a snapshot failed: {}", e.what());
    std::lock_guard lock(mutex_);
    stats_.write_errors++;
  }
}

void DiskCache::flush() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

DiskCacheStats DiskCache::stats() const {
  std::lock_guard lock(mutex_);
  DiskCacheStats s = stats_;
  s.pending_writes = int64_t(queue_.size()) + (writing_ ? 1 : 0);
  return s;
}

void DiskCache::write_metrics(std::string& out, const std::string& p) const {
  std::lock_guard lock(mutex_);
  const auto& s = stats_;
  write_metric(out, p + "disk_cache_hits_total", "counter", "Requests whose longest cached prefix came from disk.", double(s.hits));
  write_metric(out, p + "disk_cache_hit_tokens_total", "counter", "Prompt tokens served from disk snapshots.", double(s.hit_tokens));
  write_metric(out, p + "disk_cache_file_reads_total", "counter", "Snapshot files read (shared reads excluded).", double(s.file_reads));
  write_metric(out, p + "disk_cache_shared_reads_total", "counter", "Lookups that joined a read already under way.", double(s.shared_reads));
  write_metric(out, p + "disk_cache_corrupt_total", "counter", "Snapshot files found torn or corrupt and deleted.", double(s.corrupt));
  write_metric(out, p + "disk_cache_writes_total", "counter", "Snapshot files written.", double(s.writes));
  write_metric(out, p + "disk_cache_write_bytes_total", "counter", "Bytes of snapshot files written.", double(s.write_bytes));
  write_metric(out, p + "disk_cache_write_errors_total", "counter", "Snapshot writes that failed.", double(s.write_errors));
  write_metric(out, p + "disk_cache_writes_dropped_total", "counter", "Snapshots not written (writer behind, or over budget).", double(s.writes_dropped));
  write_metric(out, p + "disk_cache_evictions_total", "counter", "Snapshot files evicted (least recently used).", double(s.evictions));
  write_metric(out, p + "disk_cache_bytes", "gauge", "Bytes of snapshot files on disk.", double(s.bytes));
  write_metric(out, p + "disk_cache_entries", "gauge", "Snapshot files on disk.", double(s.entries));
  read_seconds_.write(out, p + "disk_cache_read_seconds", "Time to read, check and decode a snapshot file.");
  write_seconds_.write(out, p + "disk_cache_write_seconds", "Time to encode, write and sync a snapshot file.");
}

}  // namespace v4::runtime
