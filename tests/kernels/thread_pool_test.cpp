#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "kernels/thread_pool.h"

namespace v4::kernels {
namespace {

TEST(ThreadPool, CoversEveryIndexOnceInContiguousRanges) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {1, 2, 5, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        ASSERT_LT(b, e);
        calls++;
        for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
      EXPECT_LE(calls.load(), threads);
    }
  }
}

TEST(ThreadPool, SplitIsStaticAndBalanced) {
  int64_t b, e;
  ThreadPool::split(10, 3, 0, &b, &e);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(e, 4);
  ThreadPool::split(10, 3, 1, &b, &e);
  EXPECT_EQ(b, 4);
  EXPECT_EQ(e, 7);
  ThreadPool::split(10, 3, 2, &b, &e);
  EXPECT_EQ(b, 7);
  EXPECT_EQ(e, 10);
}

TEST(ThreadPool, RethrowsAndStaysUsable) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(9, [](int64_t b, int64_t) {
    if (b > 0) throw std::runtime_error("range failed");
  }), std::runtime_error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(100, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
  EXPECT_THROW(ThreadPool(0), std::invalid_argument);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.parallel_for(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      pool.parallel_for(10, [&](int64_t bb, int64_t ee) { total += ee - bb; });
  });
  EXPECT_EQ(total.load(), 40);
}

TEST(ThreadPool, ManyShortCalls) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int k = 0; k < 2000; ++k) pool.parallel_for(2, [&](int64_t b, int64_t e) { total += e - b; });
  EXPECT_EQ(total.load(), 4000);
}

}  // namespace
}  // namespace v4::kernels
