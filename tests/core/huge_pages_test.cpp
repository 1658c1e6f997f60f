// Memory in 2 MiB pages and the residency read from /proc/self/smaps.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <fstream>
#include <string>

#include "core/huge_pages.h"

using namespace v4::core;

namespace {

// "[never]" in the THP setting: the kernel gives no huge pages at all.
bool thp_disabled() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return !f || s.find("[never]") != std::string::npos;
}

}  // namespace

TEST(HugePageBuffer, RoundsUpToWholeHugePagesZeroFilledAndMoves) {
  HugePageBuffer b(3 * kHugePageBytes + 5);
  EXPECT_EQ(b.size(), 3 * kHugePageBytes + 5);
  EXPECT_EQ(b.mapped_bytes(), 4 * kHugePageBytes);
  ASSERT_NE(b.data(), nullptr);
  for (size_t i = 0; i < b.size(); i += 4093) EXPECT_EQ(b.data()[i], 0) << i;
  b.data()[b.size() - 1] = 7;
  EXPECT_EQ(b.as<const uint32_t>().size(), b.size() / 4);

  HugePageBuffer moved(std::move(b));
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(b.mapped_bytes(), 0u);
  EXPECT_EQ(moved.data()[moved.size() - 1], 7);
  HugePageBuffer empty(0);
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.mapped_bytes(), 0u);
}

// 4 KiB pages only (MADV_NOHUGEPAGE): every touched byte resident, none of it in huge pages.
TEST(PageResidency, CountsResidentBytesAndNoHugeOnesWhereNoneWereGiven) {
  const size_t bytes = 8 * kHugePageBytes;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  ::madvise(p, bytes, MADV_NOHUGEPAGE);
  const PageResidency untouched = page_residency(p, bytes);
  EXPECT_EQ(untouched.resident_bytes, 0u);
  std::memset(p, 1, bytes / 2);
  const PageResidency half = page_residency(p, bytes);
  EXPECT_EQ(half.resident_bytes, bytes / 2);
  EXPECT_EQ(half.huge_bytes, 0u);
  EXPECT_EQ(half.huge_share(), 0.0);
  // A range inside the mapping counts the whole mapping; one outside it counts nothing of it.
  EXPECT_EQ(page_residency(static_cast<char*>(p) + 4096, 1).resident_bytes, bytes / 2);
  ::munmap(p, bytes);
  EXPECT_EQ(page_residency(p, bytes).resident_bytes, 0u);
}

TEST(PageResidency, AHugePageBufferGetsHugePagesWhereTheKernelHasThem) {
  if (thp_disabled()) GTEST_SKIP() << "transparent huge pages are off on this machine";
  HugePageBuffer b(16 * kHugePageBytes);
  std::memset(b.data(), 1, b.size());
  const PageResidency r = page_residency(b.data(), b.size());
  EXPECT_GE(r.resident_bytes, b.size());
  EXPECT_LE(r.huge_bytes, r.resident_bytes);
  // A fault falls back to 4 KiB pages when no free 2 MiB page can be found, so not all of it need
  // be huge; none at all means the hint was lost.
  EXPECT_GT(r.huge_bytes, 0u);
}
