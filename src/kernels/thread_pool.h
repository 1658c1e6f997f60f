#pragma once
// A persistent worker pool for the kernels. parallel_for splits [0, n) into size() contiguous
// ranges (static partitioning, range k goes to worker k, the caller runs range 0), so which thread
// computes an element never changes the element's value: kernels compute each output element
// entirely inside one range, in a fixed order.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace v4::kernels {

class ThreadPool {
 public:
  using RangeFn = std::function<void(int64_t begin, int64_t end)>;

  // threads >= 1 is the total including the calling thread (threads - 1 workers are started).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Runs fn over contiguous ranges covering [0, n) and returns when all are done. The first
  // exception thrown by any range is rethrown here. A call from inside a running range (nested)
  // runs the whole range inline on the calling thread.
  void parallel_for(int64_t n, const RangeFn& fn);

  // The k-th of `parts` contiguous ranges of [0, n): sizes differ by at most one.
  static void split(int64_t n, int parts, int k, int64_t* begin, int64_t* end);

 private:
  void worker_loop(int index);
  void run_range(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
  std::mutex call_mutex_;              // one parallel_for at a time
  std::atomic<uint64_t> generation_{0};  // bumped once per parallel_for
  std::atomic<int> pending_{0};          // workers still running the current job
  bool stop_ = false;
  int64_t job_n_ = 0;
  const RangeFn* job_fn_ = nullptr;
  std::exception_ptr error_;
};

}  // namespace v4::kernels
